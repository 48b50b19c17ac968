//! What one job costs, stage by stage: the CPU time of the worker, the
//! projector, the job's own processes, the server and the bench itself (each
//! read from `/proc` before and after a run), and the messages each stream
//! stored for it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Context, Result};

/// The thread name of the bench's worker runtime.
pub const WORKER_THREADS: &str = "shoal-worker";
/// The thread name of the bench's projector runtime.
pub const PROJECTOR_THREADS: &str = "shoal-projector";

/// CPU seconds used so far, by part.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    by_part: BTreeMap<&'static str, f64>,
}

/// The cost of one job of a run, in CPU microseconds and stored messages.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobCost {
    /// The worker's CPU per job.
    pub worker_us: f64,
    /// The projector's CPU per job.
    pub projector_us: f64,
    /// The job's processes' CPU per job (its guard and program).
    pub processes_us: f64,
    /// The server's CPU per job (unknown for a server the bench did not start).
    pub server_us: Option<f64>,
    /// The bench's own CPU per job: submitting, watching the records.
    pub bench_us: f64,
    /// Submissions stored per job.
    pub submissions: f64,
    /// Job events stored per job.
    pub events: f64,
    /// Job record writes per job.
    pub record_writes: f64,
    /// Log messages stored per job.
    pub log_messages: f64,
}

/// Last sequences of the streams a job writes to.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamMarks {
    submissions: u64,
    events: u64,
    records: u64,
    logs: u64,
}

impl CpuSample {
    /// The CPU used so far by this process's parts and children, and by the
    /// server's process if its pid is known.
    pub fn now(server_pid: Option<u32>) -> Result<Self> {
        let mut by_part = BTreeMap::new();
        for task in std::fs::read_dir("/proc/self/task").context("cannot list /proc/self/task")? {
            let task = task?.path();
            let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            let part = match name.trim() {
                name if name.starts_with(WORKER_THREADS) => "worker",
                name if name.starts_with(PROJECTOR_THREADS) => "projector",
                _ => "bench",
            };
            let (own, _) = cpu_of(&task.join("stat"))?;
            *by_part.entry(part).or_default() += own;
        }
        let (_, children) = cpu_of(std::path::Path::new("/proc/self/stat"))?;
        by_part.insert("processes", children);
        if let Some(pid) = server_pid {
            let (own, _) = cpu_of(std::path::Path::new(&format!("/proc/{pid}/stat")))?;
            by_part.insert("server", own);
        }
        Ok(Self { by_part })
    }

    fn since(&self, before: &Self, part: &str) -> f64 {
        let at = |sample: &Self| sample.by_part.get(part).copied().unwrap_or_default();
        (at(self) - at(before)).max(0.0)
    }
}

impl StreamMarks {
    /// The last sequence of each stream a job writes to.
    pub async fn now(
        js: &async_nats::jetstream::Context,
        layout: &shoal_client::streams::Layout,
    ) -> Result<Self> {
        let last = |name: String| async move {
            let stream = js.get_stream(&name).await?;
            let info = stream.get_info().await?;
            Ok::<u64, crate::error::BoxError>(info.state.last_sequence)
        };
        Ok(Self {
            submissions: last(layout.jobs_stream()).await?,
            events: last(layout.events_stream()).await?,
            records: last(format!("KV_{}", layout.jobs_bucket())).await?,
            logs: last(layout.logs_stream()).await?,
        })
    }
}

/// The cost of each of `jobs` jobs between two samples.
pub fn per_job(
    jobs: usize,
    (cpu_before, cpu_after): (&CpuSample, &CpuSample),
    (marks_before, marks_after): (StreamMarks, StreamMarks),
) -> JobCost {
    let jobs = jobs.max(1) as f64;
    let micros = |part: &str| cpu_after.since(cpu_before, part) * 1e6 / jobs;
    let count = |before: u64, after: u64| after.saturating_sub(before) as f64 / jobs;
    JobCost {
        worker_us: micros("worker"),
        projector_us: micros("projector"),
        processes_us: micros("processes"),
        server_us: cpu_after
            .by_part
            .contains_key("server")
            .then(|| micros("server")),
        bench_us: micros("bench"),
        submissions: count(marks_before.submissions, marks_after.submissions),
        events: count(marks_before.events, marks_after.events),
        record_writes: count(marks_before.records, marks_after.records),
        log_messages: count(marks_before.logs, marks_after.logs),
    }
}

/// User and system CPU seconds in a `stat` file: the task's own, and its
/// waited-for children's.
fn cpu_of(stat: &std::path::Path) -> Result<(f64, f64)> {
    let text =
        std::fs::read_to_string(stat).with_context(|| format!("cannot read {}", stat.display()))?;
    let after_name = text
        .rfind(')')
        .map(|end| &text[end + 1..])
        .context("an unreadable /proc stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime, stime, cutime and cstime are fields 14 to 17 of stat: 12 to 15 after the name.
    let tick = |index: usize| -> Result<f64> {
        Ok(fields
            .get(index)
            .context("a short /proc stat")?
            .parse::<f64>()?)
    };
    let per_second = clock_ticks_per_second();
    Ok((
        (tick(11)? + tick(12)?) / per_second,
        (tick(13)? + tick(14)?) / per_second,
    ))
}

/// The kernel's clock ticks per second, in which `/proc` counts CPU time.
#[allow(unsafe_code)]
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf takes a plain integer and reads no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU seconds (user and system) a process has used.
pub fn process_cpu_seconds(pid: u32) -> Result<f64> {
    cpu_of(std::path::Path::new(&format!("/proc/{pid}/stat"))).map(|(own, _)| own)
}
