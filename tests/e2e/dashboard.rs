//! The web dashboard, driven by a real headless Chromium against a real
//! fleet: a job goes from queued to succeeded on the page without a reload,
//! its output follows, its buttons cancel and retry; and what the
//! dashboard refuses: other groups, other host names, changes from pages
//! that are not its own.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::browser::{artifact, Browser};
use crate::support::scrape::{loopback, wait_for_sample};
use crate::support::secure::{services, SecureServer, OPERATOR};
use crate::support::{eventually, wait_for_job, Fleet, NatsServer, ShoalProcess};

const WITHIN: Duration = Duration::from_secs(30);

/// One replica serving group ops, apart from the jobs of the tests.
const NIGHT_POOL: &str =
    "name: night\nversion: v1\ntype: pool\npool:\n  queues: [default]\n  group: ops\n  replicas: 1\n";

/// The worker's entrypoints: `greet` reports progress, prints two lines a
/// second apart and leaves a result; `nap` says so and runs until it is stopped.
const ENTRYPOINTS: &str =
    "greet=sh -c \"echo ::shoal progress 40 copying && echo hello from greet \
     && sleep 1 && echo second line && echo 42 > $SHOAL_RESULT_FILE\";\
     nap=sh -c \"echo napping && sleep 60\"";

/// A dashboard serving on a free loopback address, once it answers.
pub(crate) async fn dashboard(server: &NatsServer, args: &[&str]) -> (ShoalProcess, String) {
    dashboard_as(&server.url, args, &[]).await
}

/// A dashboard of the server at `url`, logged in with `login`.
async fn dashboard_as(
    url: &str,
    args: &[&str],
    login: &[(String, String)],
) -> (ShoalProcess, String) {
    let listen = loopback();
    let mut all = vec!["dashboard", "--listen", listen.as_str()];
    all.extend_from_slice(args);
    let process = ShoalProcess::start_with_env(url, &all, login);
    eventually(WITHIN, "the dashboard answers", || async {
        request(&listen, "GET", "/api/fleet", &[])
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await;
    (process, listen)
}

/// One HTTP/1.0 request to `addr` with `headers` (a `Host` of the
/// address unless one is given); its status and body.
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut head = format!("{method} {path} HTTP/1.0\r\n");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Content-Length: 0\r\n\r\n");
    stream.write_all(head.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// A change posted as the dashboard's own page posts it.
async fn change_from_the_page(addr: &str, path: &str) -> (u16, String) {
    request(addr, "POST", path, &[("x-shoal-dashboard", "1")])
        .await
        .expect("an answer")
}

/// The keys of a page of jobs.
fn keys_of(page: &Value) -> Vec<String> {
    page["jobs"]
        .as_array()
        .expect("a list of jobs")
        .iter()
        .filter_map(|row| row["key"].as_str().map(str::to_string))
        .collect()
}

pub(crate) async fn get_json(addr: &str, path: &str) -> (u16, Value) {
    let (status, body) = request(addr, "GET", path, &[])
        .await
        .expect("the dashboard answers");
    let value = serde_json::from_str(&body)
        .unwrap_or_else(|err| panic!("{path} answered no JSON ({err}): {body}"));
    (status, value)
}

/// Waits until the page's `expression` is `wanted`, saying what it was instead.
pub(crate) async fn page_shows(browser: &Browser, what: &str, expression: &str, wanted: Value) {
    eventually(WITHIN, what, || async {
        match browser.eval(expression) {
            Ok(value) if value == wanted => Ok(()),
            Ok(value) => Err(format!("the page shows {value}")),
            Err(err) => Err(err),
        }
    })
    .await;
}

fn state_of(key: &str) -> String {
    format!("document.querySelector('tr[data-key=\"{key}\"]')?.dataset.state ?? null")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_goes_from_queued_to_succeeded_on_the_page_without_a_reload_and_its_output_follows() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let metrics = loopback();
    let (_dashboard, addr) = dashboard(&server, &["--metrics-listen", &metrics]).await;
    // A pool of another group, run by a supervisor, for the fleet page.
    let _supervisor = ShoalProcess::supervisor(&server, NIGHT_POOL, &[], &[]);
    let browser = Browser::launch();

    browser.open(&format!("http://{addr}/#/jobs?group=acme"));
    page_shows(
        &browser,
        "the page follows the live updates",
        "document.getElementById('connection').textContent",
        "live".into(),
    )
    .await;
    browser
        .eval("window.notReloaded = true")
        .expect("mark the page");

    // No worker yet: the job waits, and the page shows it waiting.
    fleet
        .publish_job("acme", "default", r#"{"id":"greet","entrypoint":"greet"}"#)
        .await;
    page_shows(
        &browser,
        "the new job, queued",
        &state_of("acme.greet"),
        "queued".into(),
    )
    .await;
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--entrypoint", ENTRYPOINTS]);
    page_shows(
        &browser,
        "the job, succeeded",
        &state_of("acme.greet"),
        "succeeded".into(),
    )
    .await;
    assert_eq!(
        browser.eval("window.notReloaded === true"),
        Ok(Value::Bool(true)),
        "the page changed without a reload"
    );

    // Its page: the record and the output lines.
    browser
        .click("tr[data-key=\"acme.greet\"] a")
        .expect("open the job");
    eventually(WITHIN, "the job's output on its page", || async {
        let output = browser.text("#output")?;
        match output.contains("hello from greet\nsecond line") {
            true => Ok(()),
            false => Err(format!("the output shows {output:?}")),
        }
    })
    .await;
    assert_eq!(browser.text("#job-state"), Ok("succeeded".to_string()));
    let facts = browser.text("dl.record").expect("the record");
    assert!(
        facts.contains("Queuedefault") && facts.contains("Attempt1 of 1"),
        "the record on the page: {facts}"
    );
    assert_eq!(browser.text("#result"), Ok("42".to_string()));
    let progress = browser.text("#progress-text").expect("the progress");
    assert!(progress.starts_with("40% copying"), "{progress}");
    let png = browser.screenshot(&artifact("dashboard-job.png"));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );

    // Retry: submitted again under a new id, which runs.
    browser.click("#retry").expect("the Retry button");
    page_shows(
        &browser,
        "the retry's answer",
        "document.getElementById('action-message').textContent",
        "submitted again as greet-retry1".into(),
    )
    .await;
    wait_for_job(&fleet, "acme.greet-retry1", "succeeded", |job| job.done).await;

    // Cancel: a running job's page follows it to its end.
    fleet
        .publish_job("acme", "default", r#"{"id":"long","entrypoint":"nap"}"#)
        .await;
    browser
        .eval("location.hash = '#/job/acme/long'")
        .expect("open the long job");
    // Its output follows while it runs.
    page_shows(
        &browser,
        "the long job running, its first line shown",
        "[document.getElementById('job-state')?.textContent ?? null, \
          document.getElementById('output')?.textContent ?? null]",
        serde_json::json!(["running", "napping\n"]),
    )
    .await;
    browser.click("#cancel").expect("the Cancel button");
    page_shows(
        &browser,
        "the long job, cancelled",
        "document.getElementById('job-state')?.textContent ?? null",
        "cancelled".into(),
    )
    .await;

    // The fleet: the worker online with its queue, and the queue itself.
    browser
        .eval("location.hash = '#/'")
        .expect("open the fleet");
    page_shows(
        &browser,
        "the worker, online",
        "document.querySelector('#workers tbody tr')?.textContent.includes('online') ?? false",
        true.into(),
    )
    .await;
    page_shows(
        &browser,
        "the queue of group acme",
        "!!document.querySelector('tr[data-queue=\"acme.default.normal\"]')",
        true.into(),
    )
    .await;
    page_shows(
        &browser,
        "the supervised pool, its one replica running",
        "(row => row && [row.dataset.desired, row.dataset.running, row.textContent.includes('→')])\
         (document.querySelector('tr[data-pool=\"ops.night\"]'))",
        serde_json::json!(["1", "1", true]),
    )
    .await;
    // The chart counts the three jobs that ended (greet, its retry, long).
    page_shows(
        &browser,
        "three ended jobs on the chart",
        "document.querySelector('svg.chart')?.dataset.ended ?? null",
        "3".into(),
    )
    .await;
    browser.screenshot(&artifact("dashboard-fleet.png"));
    wait_for_sample(&metrics, "shoal_dashboard_live_pages", |pages| pages >= 1.0).await;

    // The list pages, newest first, and filters by state.
    let (_, first) = get_json(&addr, "/api/jobs?group=acme&limit=2").await;
    assert_eq!(keys_of(&first), ["acme.long", "acme.greet-retry1"]);
    let before = first["next_before"].as_u64().expect("a next page");
    let (_, second) = get_json(
        &addr,
        &format!("/api/jobs?group=acme&limit=2&before={before}"),
    )
    .await;
    assert_eq!(keys_of(&second), ["acme.greet"]);
    assert_eq!(second["next_before"], Value::Null);
    let (_, cancelled) = get_json(&addr, "/api/jobs?group=acme&state=cancelled").await;
    assert_eq!(keys_of(&cancelled), ["acme.long"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_shows_only_its_groups_and_refuses_other_hosts_and_foreign_changes() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let _acme = ShoalProcess::worker(&server, &["--group", "acme", "--entrypoint", ENTRYPOINTS]);
    let _beta = ShoalProcess::worker(&server, &["--group", "beta", "--entrypoint", ENTRYPOINTS]);
    fleet
        .publish_job("acme", "default", r#"{"id":"mine","entrypoint":"nap"}"#)
        .await;
    fleet
        .publish_job("beta", "default", r#"{"id":"theirs","entrypoint":"greet"}"#)
        .await;
    wait_for_job(&fleet, "acme.mine", "running", |job| {
        job.state == Some(shoal_protocol::JobState::Running)
    })
    .await;
    wait_for_job(&fleet, "beta.theirs", "succeeded", |job| job.done).await;
    let (_dashboard, addr) = dashboard(
        &server,
        &["--group", "acme", "--allowed-host", "shoal.example"],
    )
    .await;

    let (_, fleet_view) = eventually(WITHIN, "acme's worker on the fleet", || async {
        let (status, body) = get_json(&addr, "/api/fleet").await;
        match body["workers"].as_array().map(Vec::len) {
            Some(1) => Ok((status, body)),
            _ => Err(format!("the fleet is {body}")),
        }
    })
    .await;
    assert_eq!(fleet_view["workers"][0]["record"]["group"], "acme");
    let (status, jobs) = get_json(&addr, "/api/jobs").await;
    assert_eq!(status, 200);
    assert_eq!(keys_of(&jobs), ["acme.mine"], "only acme's jobs");

    for path in ["/api/jobs?group=beta", "/api/jobs/beta/theirs"] {
        let (status, body) = get_json(&addr, path).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body["error"].as_str().expect("why").starts_with("group:"));
    }
    let (status, body) = get_json(&addr, "/api/jobs?state=finished").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().expect("why").starts_with("state:"));
    let (status, body) = get_json(&addr, "/api/jobs/acme/a.b").await;
    assert_eq!(status, 400, "{body}");

    // A page of another site reaching the dashboard through a name of its own.
    let (status, _) = request(&addr, "GET", "/api/fleet", &[("Host", "evil.example")])
        .await
        .expect("an answer");
    assert_eq!(status, 421);
    // A name it was told of, as behind a proxy.
    let (status, _) = request(&addr, "GET", "/api/fleet", &[("Host", "shoal.example:443")])
        .await
        .expect("an answer");
    assert_eq!(status, 200);
    // A change posted by another site's page, which cannot send the header.
    let (status, _) = request(&addr, "POST", "/api/jobs/acme/mine/cancel", &[])
        .await
        .expect("an answer");
    assert_eq!(status, 403);
    let (_, record) = get_json(&addr, "/api/jobs/acme/mine").await;
    assert_eq!(
        record["record"]["state"], "running",
        "nothing was cancelled"
    );
    // The dashboard's own page may.
    let (status, body) = change_from_the_page(&addr, "/api/jobs/acme/mine/cancel").await;
    assert_eq!(status, 200, "{body}");
    wait_for_job(&fleet, "acme.mine", "cancelled", |job| job.done).await;
}

/// Reads the dashboard's live updates until one holds `needle`.
async fn live_update_with(addr: &str, needle: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("reach the dashboard");
    let request = format!("GET /api/live HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("ask for the updates");
    let mut seen = String::new();
    let read = async {
        let mut buffer = [0u8; 8192];
        while !seen.contains(needle) {
            let count = stream.read(&mut buffer).await.expect("the updates");
            assert!(count > 0, "the updates ended before {needle}: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buffer[..count]));
        }
    };
    tokio::time::timeout(WITHIN, read)
        .await
        .unwrap_or_else(|_| panic!("no update with {needle} within {WITHIN:?}"));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_login_sees_its_group_live_through_the_registry_and_nothing_of_another() {
    let secure = SecureServer::start();
    let url = secure.server.url.clone();
    let running = services(&secure).await;
    let fleet = &running.fleet;
    let operator = secure.login(OPERATOR);
    let args = |group: &'static str| {
        [
            "worker",
            "run",
            "--group",
            group,
            "--polling-interval",
            "1s",
        ]
    };
    let _acme = ShoalProcess::start_with_env(&url, &args("acme"), &operator);
    let _globex = ShoalProcess::start_with_env(&url, &args("globex"), &operator);
    fleet
        .publish_job(
            "globex",
            "default",
            r#"{"id":"secret","entrypoint":"noop"}"#,
        )
        .await;
    let reader = secure.login("acme-read");

    // A role may open no watch: without --group it is told what to do.
    let mut unscoped =
        ShoalProcess::start_with_env(&url, &["dashboard", "--listen", &loopback()], &reader);
    let status = unscoped.wait_exit(WITHIN).expect("it exits");
    assert!(!status.success());
    assert!(
        unscoped.log().contains("invalid setting `group`"),
        "{}",
        unscoped.log()
    );

    let (_dashboard, addr) = dashboard_as(&url, &["--group", "acme"], &reader).await;
    eventually(
        WITHIN,
        "acme's worker, read through the registry",
        || async {
            let (_, fleet_view) = get_json(&addr, "/api/fleet").await;
            match fleet_view["workers"].as_array().map(Vec::len) {
                Some(1) if fleet_view["workers"][0]["record"]["group"] == "acme" => Ok(()),
                _ => Err(format!("the fleet is {fleet_view}")),
            }
        },
    )
    .await;

    // A job submitted now comes as a live update, and is listed.
    let update = tokio::spawn({
        let addr = addr.clone();
        async move { live_update_with(&addr, "\"key\":\"acme.fresh\"").await }
    });
    fleet
        .publish_job("acme", "default", r#"{"id":"fresh","entrypoint":"noop"}"#)
        .await;
    update.await.expect("the live update");
    let (status, jobs) = get_json(&addr, "/api/jobs").await;
    assert_eq!(status, 200, "{jobs}");
    assert_eq!(keys_of(&jobs), ["acme.fresh"], "acme's jobs only");

    // The login may not cancel: the page is told why, and nothing changes.
    let (status, body) = change_from_the_page(&addr, "/api/jobs/acme/fresh/cancel").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not"), "{body}");
    let fresh = wait_for_job(fleet, "acme.fresh", "recorded", |_| true).await;
    assert_ne!(fresh.state, Some(shoal_protocol::JobState::Cancelled));
    // Its own job opens.
    let (status, own) = get_json(&addr, "/api/jobs/acme/fresh").await;
    assert_eq!(
        (status, &own["record"]["id"]),
        (200, &serde_json::json!("fresh"))
    );

    // Another group's pages stay out of reach, whatever the dashboard is told.
    wait_for_job(fleet, "globex.secret", "recorded", |_| true).await;
    let (_other, other) = dashboard_as(&url, &["--group", "globex"], &reader).await;
    for path in ["/api/jobs", "/api/jobs/globex/secret"] {
        let (status, body) = get_json(&other, path).await;
        assert_eq!(status, 403, "{path} of globex for acme's reader: {body}");
        assert!(body.get("record").is_none() && body.get("jobs").is_none());
    }
    let (_, fleet_view) = get_json(&other, "/api/fleet").await;
    assert_eq!(fleet_view["workers"], serde_json::json!([]), "{fleet_view}");
}
