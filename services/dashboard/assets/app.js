'use strict';
// The dashboard's page: reads the fleet and the jobs from the dashboard's
// API, then follows /api/live (server-sent events of KV changes) so that
// nothing needs a reload. Text from records only ever goes in as text.

const STATES = ['scheduled', 'queued', 'waiting', 'running', 'lost', 'retrying', 'succeeded', 'failed',
  'cancelled', 'timed_out', 'dead', 'missing', 'skipped'];
const MAX_ROWS = 200;
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'timed_out', 'dead', 'missing', 'skipped']);

const fleet = { workers: new Map(), supervisors: new Map(), queues: { queues: [] },
  throughput: [], slotSeconds: 10, groups: [] };
let view = { name: 'fleet' };

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (name === 'text') node.textContent = value;
    else if (name === 'on') for (const [type, handler] of Object.entries(value)) node.addEventListener(type, handler);
    else node.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(state) { return el('span', { class: `badge ${state || ''}`, text: state || 'unknown' }); }

function ago(time) {
  if (!time) return '—';
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(time)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  return `${Math.floor(seconds / 3600)}h ago`;
}

function age(seconds) {
  if (!seconds) return '—';
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${Math.floor(seconds % 60)}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}

function when(time) { return time ? new Date(time).toLocaleString() : '—'; }

async function api(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function keep(map, change) {
  const known = map.get(change.key);
  if (known && known.revision > change.revision) return;
  if (change.record) map.set(change.key, change); else map.delete(change.key);
}

function table(headings, rows, empty) {
  if (rows.length === 0) return el('p', { class: 'muted', text: empty });
  return el('table', {},
    el('thead', {}, el('tr', {}, headings.map(([text, cls]) => el('th', { class: cls, text })))),
    el('tbody', {}, rows));
}

function show(...nodes) {
  const main = document.getElementById('main');
  main.replaceChildren(...nodes);
}

// The fleet: workers, pools, queues and throughput.

function renderFleet() {
  const workers = [...fleet.workers.values()].map((change) => change.record)
    .sort((a, b) => (a.group + a.name).localeCompare(b.group + b.name));
  const workerRows = workers.map((worker) => {
    const busy = (worker.running || []).length;
    return el('tr', { 'data-worker': `${worker.group}.${worker.id}` },
      el('td', { text: worker.group }), el('td', { text: worker.name || worker.id }),
      el('td', {}, badge(worker.status)), el('td', { text: (worker.queues || []).join(', ') }),
      el('td', { text: (worker.tags || []).join(', ') || '—' }),
      el('td', { class: 'num', text: busy }), el('td', { class: 'num', text: Math.max(0, (worker.concurrency || 0) - busy) }),
      el('td', { text: ago(worker.last_seen) }));
  });
  const pools = [...fleet.supervisors.values()].map((change) => change.record);
  const poolRows = pools.map((pool) => {
    const running = (pool.replicas || []).filter((replica) => replica.status === 'running').length;
    const decision = pool.last_decision;
    return el('tr', { 'data-pool': `${pool.group}.${pool.pool}`, 'data-desired': pool.desired, 'data-running': running },
      el('td', { text: pool.group }), el('td', { text: pool.pool }),
      el('td', {}, badge(pool.running ? 'online' : 'offline')),
      el('td', { class: 'num', text: pool.desired }), el('td', { class: 'num', text: running }),
      el('td', { class: 'num', text: pool.restarts }), el('td', { class: 'num', text: pool.load ? pool.load.backlog : '—' }),
      el('td', { text: decision ? `${decision.from ?? '?'} → ${decision.to ?? '?'}: ${decision.why} (${ago(decision.at)})` : '—' }));
  });
  const queues = fleet.queues.queues || [];
  const queueRows = queues.map((queue) => el('tr', { 'data-queue': `${queue.group}.${queue.queue}.${queue.priority}` },
    el('td', { text: queue.group }),
    el('td', {}, el('a', { href: `#/jobs?group=${encodeURIComponent(queue.group)}&queue=${encodeURIComponent(queue.queue)}`, text: queue.queue })),
    el('td', { text: queue.priority }), el('td', { text: queue.tags || '—' }),
    el('td', { class: 'num', text: queue.waiting }), el('td', { class: 'num', text: queue.depth }),
    el('td', { class: 'num', text: age(queue.oldest_seconds) })));
  show(
    el('section', { id: 'workers' }, el('h2', { text: `Workers (${workers.length})` }),
      table([['Group'], ['Name'], ['Status'], ['Queues'], ['Tags'], ['Busy', 'num'], ['Free', 'num'], ['Last heartbeat']],
        workerRows, 'No workers.')),
    el('section', { id: 'pools' }, el('h2', { text: `Pools (${pools.length})` }),
      table([['Group'], ['Pool'], ['Supervisor'], ['Desired', 'num'], ['Running', 'num'], ['Restarts', 'num'], ['Backlog', 'num'], ['Last scaling decision']],
        poolRows, 'No supervised pools.')),
    el('section', { id: 'queues' }, el('h2', { text: 'Queues' }),
      fleet.queues.error ? el('p', { class: 'error', text: fleet.queues.error }) : null,
      table([['Group'], ['Queue'], ['Priority'], ['Tags'], ['Waiting', 'num'], ['Waiting or running', 'num'], ['Oldest waiting', 'num']],
        queueRows, 'No queues yet.'),
      el('h3', { text: 'Jobs ended, last 10 minutes' }), chart(fleet.throughput)));
}

function chart(slots) {
  const ns = 'http://www.w3.org/2000/svg';
  const width = 600; const height = 80;
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('viewBox', `0 0 ${width} ${height + 14}`);
  svg.setAttribute('width', String(width));
  const most = Math.max(1, ...slots.map((slot) => slot.succeeded + slot.failed));
  const step = width / Math.max(1, slots.length);
  slots.forEach((slot, index) => {
    const ok = (slot.succeeded / most) * height; const bad = (slot.failed / most) * height;
    for (const [cls, size, base] of [['ok', ok, height - ok], ['bad', bad, height - ok - bad]]) {
      if (size <= 0) continue;
      const bar = document.createElementNS(ns, 'rect');
      bar.setAttribute('class', cls);
      bar.setAttribute('x', String(index * step + 1)); bar.setAttribute('y', String(base));
      bar.setAttribute('width', String(Math.max(1, step - 2))); bar.setAttribute('height', String(size));
      const title = document.createElementNS(ns, 'title');
      title.textContent = `${new Date(slot.at * 1000).toLocaleTimeString()}: ${slot.succeeded} succeeded, ${slot.failed} not`;
      bar.append(title);
      svg.append(bar);
    }
  });
  const total = slots.reduce((sum, slot) => sum + slot.succeeded + slot.failed, 0);
  svg.setAttribute('data-ended', String(total));
  const label = document.createElementNS(ns, 'text');
  label.setAttribute('x', '0'); label.setAttribute('y', String(height + 12));
  label.setAttribute('font-size', '11'); label.textContent = `${total} jobs ended (${most} at most per ${fleet.slotSeconds}s)`;
  svg.append(label);
  return svg;
}

async function loadFleet() {
  const body = await api('/api/fleet');
  fleet.workers = new Map(body.workers.map((change) => [change.key, change]));
  fleet.supervisors = new Map(body.supervisors.map((change) => [change.key, change]));
  fleet.queues = body.queues;
  fleet.throughput = body.throughput;
  fleet.slotSeconds = body.slot_seconds;
  fleet.groups = body.groups;
  document.getElementById('scope').textContent = body.groups.length ? `groups: ${body.groups.join(', ')}` : 'every group';
}

// The jobs: a filtered list, newest first, a page at a time.

function jobFilters() {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  return { group: params.get('group') || '', queue: params.get('queue') || '', state: params.get('state') || '',
    before: params.get('before') || '' };
}

function matches(filters, record) {
  return (!filters.group || record.group === filters.group) && (!filters.queue || record.queue === filters.queue)
    && (!filters.state || record.state === filters.state);
}

async function loadJobs() {
  const filters = jobFilters();
  const query = new URLSearchParams(Object.entries(filters).filter(([, value]) => value));
  const page = await api(`/api/jobs?${query}`);
  view = { name: 'jobs', filters, rows: new Map(page.jobs.map((row) => [row.key, row])), next: page.next_before };
  renderJobs();
}

function renderJobs() {
  const { filters } = view;
  const rows = [...view.rows.values()].sort((a, b) => b.revision - a.revision).map(({ key, record }) =>
    el('tr', { 'data-key': key, 'data-state': record.state },
      el('td', {}, el('a', { href: `#/job/${encodeURIComponent(record.group)}/${encodeURIComponent(record.id)}`, text: record.id })),
      el('td', { text: record.group }), el('td', { text: record.queue }), el('td', {}, badge(record.state)),
      el('td', { class: 'num', text: record.attempts }), el('td', { text: record.worker_id || '—' }),
      el('td', { text: when(record.submitted_at) }), el('td', { text: when(record.finished_at) })));
  const field = (name, input) => el('label', {}, name, input);
  const form = el('form', { class: 'filters', on: { submit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const query = new URLSearchParams([...data.entries()].filter(([, value]) => value));
    location.hash = `#/jobs?${query}`;
  } } },
  field('Group', el('input', { name: 'group', value: filters.group, placeholder: fleet.groups.join(', ') || 'every group' })),
  field('Queue', el('input', { name: 'queue', value: filters.queue, placeholder: 'every queue' })),
  field('State', el('select', { name: 'state' }, el('option', { value: '', text: 'every state' }),
    STATES.map((state) => el('option', Object.assign({ value: state, text: state }, state === filters.state ? { selected: '' } : {}))))),
  el('button', { type: 'submit', text: 'Show' }));
  const pager = el('div', { class: 'pager' },
    filters.before ? el('button', { text: 'Newest', on: { click: () => { location.hash = pageHash(filters, ''); } } }) : null,
    view.next ? el('button', { text: 'Older', id: 'older', on: { click: () => { location.hash = pageHash(filters, view.next); } } }) : null);
  show(el('section', { id: 'jobs' }, el('h2', { text: 'Jobs' }), form,
    table([['Id'], ['Group'], ['Queue'], ['State'], ['Attempts', 'num'], ['Worker'], ['Submitted'], ['Finished']], rows, 'No jobs.'),
    pager));
}

function pageHash(filters, before) {
  const query = new URLSearchParams(Object.entries({ ...filters, before }).filter(([, value]) => value));
  return `#/jobs?${query}`;
}

// One job: its record, progress, result and output as it comes.

let output = null;

async function loadJob(group, id) {
  view = { name: 'job', group, id, key: `${group}.${id}`, row: null, message: '' };
  show(el('p', { class: 'muted', text: 'Loading…' }));
  try {
    view.row = await api(`/api/jobs/${encodeURIComponent(group)}/${encodeURIComponent(id)}`);
  } catch (err) {
    show(el('p', { class: 'error', text: err.message }));
    return;
  }
  renderJob();
  followOutput(group, id);
}

function followOutput(group, id) {
  if (output) output.close();
  const pre = document.getElementById('output');
  output = new EventSource(`/api/jobs/${encodeURIComponent(group)}/${encodeURIComponent(id)}/output`);
  // Each (re)connection sends the output from its start.
  output.addEventListener('open', () => { pre.textContent = ''; });
  output.addEventListener('chunk', (event) => { pre.textContent += JSON.parse(event.data); pre.scrollTop = pre.scrollHeight; });
  output.addEventListener('failed', (event) => { document.getElementById('output-note').textContent = JSON.parse(event.data); });
  output.addEventListener('end', () => {
    output.close();
    document.getElementById('output-note').textContent = pre.textContent ? 'The job has ended.' : 'The job has ended with no output.';
  });
}

function renderJob() {
  const { record } = view.row;
  const facts = [
    ['Group', record.group], ['Queue', record.queue], ['Priority', record.priority],
    ['Attempt', record.attempts ? `${record.attempt || record.attempts} of ${record.attempts}` : 'none yet'],
    ['Worker', record.worker_id], ['Runs', record.entrypoint || (record.command || []).join(' ')],
    ['Arguments', (record.args || []).join(' ')], ['Tags', (record.tags || []).join(', ')],
    ['Labels', Object.entries(record.labels || {}).map(([name, value]) => `${name}=${value}`).join(', ')],
    ['Submitted', when(record.submitted_at)], ['Scheduled for', record.scheduled_for && when(record.scheduled_for)],
    ['Started', record.started_at && when(record.started_at)], ['Finished', record.finished_at && when(record.finished_at)],
    ['Next attempt', record.next_attempt_at && when(record.next_attempt_at)], ['Waiting for', record.waiting_for],
    ['Depends on', (record.depends_on || []).join(', ')],
    ['Exit code', record.exit_code], ['Error', record.error_text], ['Trace id', record.trace_id],
  ].filter(([, value]) => value !== undefined && value !== null && value !== '');
  const progress = record.progress;
  const actions = el('div', { class: 'actions' },
    record.done ? el('button', { id: 'retry', text: 'Retry', on: { click: () => act('retry') } })
      : el('button', { id: 'cancel', class: 'danger', text: 'Cancel', on: { click: () => act('cancel') } }),
    el('span', { id: 'action-message', text: view.message }));
  const existing = document.getElementById('output');
  const pre = existing || el('pre', { id: 'output' });
  show(el('section', { id: 'job', 'data-key': view.key },
    el('h2', {}, `Job ${record.id} `, el('span', { id: 'job-state' }, badge(record.state))),
    actions,
    progress ? el('div', { class: 'progress-row' }, el('div', { class: 'progress', title: `${progress.percent}%` }, el('div', { id: 'progress' })),
      el('span', { class: 'muted', id: 'progress-text', text: `${progress.percent}% ${progress.message || ''}` })) : null,
    el('dl', { class: 'record' }, facts.map(([name, value]) => [el('dt', { text: name }), el('dd', { text: value })])),
    record.labels && record.labels.workflow ? el('p', {}, el('a', { id: 'workflow-link',
      href: `#/workflow/${encodeURIComponent(record.group)}/${encodeURIComponent(record.labels.workflow)}`,
      text: `Workflow ${record.labels.workflow}` })) : null,
    record.result !== undefined && record.result !== null
      ? [el('h3', { text: 'Result' }), el('pre', { id: 'result', text: JSON.stringify(record.result, null, 2) })] : null,
    el('h3', { text: 'Output' }), pre, el('p', { class: 'muted', id: 'output-note' })));
  if (progress) document.getElementById('progress').style.width = `${progress.percent}%`;
}

async function act(what) {
  const { group, id } = view;
  try {
    const done = await api(`/api/jobs/${encodeURIComponent(group)}/${encodeURIComponent(id)}/${what}`,
      { method: 'POST', headers: { 'x-shoal-dashboard': '1' } });
    view.message = done.message;
  } catch (err) {
    view.message = err.message;
  }
  if (view.name === 'job') document.getElementById('action-message').textContent = view.message;
}

async function loadWorkflow(group, name) {
  view = { name: 'workflow', group, workflow: name, data: null };
  view.data = await api(`/api/workflows/${encodeURIComponent(group)}/${encodeURIComponent(name)}`);
  renderWorkflow();
}

function renderWorkflow() {
  const { workflow, states, why } = view.data;
  const link = (node) => el('a', { href: `#/job/${encodeURIComponent(workflow.group)}/${encodeURIComponent(node.job_id)}`, text: node.id });
  const rows = workflow.jobs.map((node) => el('tr', { 'data-job': node.job_id },
    el('td', {}, link(node)), el('td', {}, badge(states[node.job_id])), el('td', { text: node.queue }),
    el('td', { text: (node.depends_on || []).join(', ') }), el('td', { text: why[node.job_id] || '' })));
  show(el('section', { id: 'workflow', 'data-name': workflow.name },
    el('h2', { text: `Workflow ${workflow.name}` }),
    el('p', { class: 'muted', text: `group ${workflow.group}, submitted ${when(workflow.submitted_at)}` }),
    table([['Job'], ['State'], ['Queue'], ['Depends on'], ['Why']], rows, 'No jobs.')));
}

// Live updates.

// The chart counts ended jobs on the server: read again, at most every two seconds.
let chartPending = false;
function chartLater() {
  if (chartPending) return;
  chartPending = true;
  setTimeout(async () => {
    chartPending = false;
    if (view.name !== 'fleet') return;
    try { await loadFleet(); renderFleet(); } catch (err) { /* the live status says why */ }
  }, 2000);
}

function onJob(change) {
  if (!change.record) return;
  if (view.name === 'fleet' && TERMINAL.has(change.record.state)) chartLater();
  if (view.name === 'jobs') {
    const known = view.rows.get(change.key);
    if (known ? known.revision < change.revision : !view.filters.before && matches(view.filters, change.record)) {
      view.rows.set(change.key, change);
      // A page left open on a busy fleet keeps its newest rows only.
      if (view.rows.size > MAX_ROWS) {
        const oldest = [...view.rows.values()].sort((a, b) => a.revision - b.revision)[0];
        view.rows.delete(oldest.key);
      }
      renderJobs();
    }
  } else if (view.name === 'job' && view.key === change.key && view.row && view.row.revision < change.revision) {
    view.row = change;
    renderJob();
  } else if (view.name === 'workflow' && view.data && change.record.labels
    && change.record.labels.workflow === view.workflow && change.record.group === view.group) {
    view.data.states[change.record.id] = change.record.state;
    const why = change.record.waiting_for || change.record.error_text;
    if (why) view.data.why[change.record.id] = why; else delete view.data.why[change.record.id];
    renderWorkflow();
  }
}

function connect() {
  const status = document.getElementById('connection');
  const live = new EventSource('/api/live');
  const on = (name, handler) => live.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  // Each (re)connection starts with hello: what was missed meanwhile is read again.
  on('hello', () => { status.textContent = 'live'; status.className = 'connection live'; refresh(); });
  on('resync', () => refresh());
  on('worker', (change) => { keep(fleet.workers, change); if (view.name === 'fleet') renderFleet(); });
  on('supervisor', (change) => { keep(fleet.supervisors, change); if (view.name === 'fleet') renderFleet(); });
  on('queues', (queues) => { fleet.queues = queues; if (view.name === 'fleet') renderFleet(); });
  on('job', onJob);
  live.onerror = () => { status.textContent = 'reconnecting'; status.className = 'connection'; };
}

// Navigation.

async function refresh() {
  try {
    await loadFleet();
    await route();
  } catch (err) {
    show(el('p', { class: 'error', text: err.message }));
  }
}

async function route() {
  if (output) { output.close(); output = null; }
  const hash = location.hash.replace(/^#/, '') || '/';
  const path = hash.split('?')[0];
  document.getElementById('nav-fleet').className = path === '/' ? 'active' : '';
  document.getElementById('nav-jobs').className = path.startsWith('/job') ? 'active' : '';
  const job = path.match(/^\/job\/([^/]+)\/([^/]+)$/);
  const workflow = path.match(/^\/workflow\/([^/]+)\/([^/]+)$/);
  try {
    if (job) await loadJob(decodeURIComponent(job[1]), decodeURIComponent(job[2]));
    else if (workflow) await loadWorkflow(decodeURIComponent(workflow[1]), decodeURIComponent(workflow[2]));
    else if (path === '/jobs') await loadJobs();
    else { view = { name: 'fleet' }; await loadFleet(); renderFleet(); }
  } catch (err) {
    show(el('p', { class: 'error', text: err.message }));
  }
}

window.addEventListener('hashchange', route);
setInterval(async () => {
  if (view.name !== 'fleet') return;
  try { await loadFleet(); renderFleet(); } catch (err) { /* the live status says why */ }
}, 10000);
connect();
