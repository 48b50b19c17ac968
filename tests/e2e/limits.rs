//! Limits the whole fleet keeps: at most `limit` jobs of a concurrency key
//! run at once whatever worker takes them, a slot of a worker that dies
//! comes back within its lease and is never granted twice, a key's limit
//! can be raised while jobs wait, and a rate limit spaces starts out.
//! Counted from the jobs' own records of start and end.

use std::time::Duration;

use shoal_protocol::{JobRecord, JobState, Timestamp};

use crate::support::{eventually, shoal, wait_for_job, Fleet, NatsServer, ShoalProcess};

/// A job of `key` (at most `limit` at once) that sleeps `seconds`.
fn keyed(id: &str, key: &str, limit: u32, seconds: f32) -> String {
    serde_json::json!({
        "id": id,
        "entrypoint": "sleep",
        "args": [format!("{}ms", (seconds * 1000.0) as u64)],
        "concurrency": {"key": key, "limit": limit},
    })
    .to_string()
}

/// Most intervals that overlap at one moment.
fn most_at_once(intervals: &[(Timestamp, Timestamp)]) -> usize {
    let mut edges: Vec<(i128, i32)> = Vec::new();
    for (start, end) in intervals {
        edges.push((start.unix_nanos(), 1));
        edges.push((end.unix_nanos(), -1));
    }
    // An end and a start at the same moment do not overlap.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

fn ran(job: &JobRecord) -> (Timestamp, Timestamp) {
    (
        job.started_at.expect("a start"),
        job.finished_at.expect("an end"),
    )
}

/// The first of the jobs `ids` found held back (waiting), within 30 s.
async fn first_held(fleet: &Fleet, ids: &[String], what: &str) -> JobRecord {
    eventually(Duration::from_secs(30), what, || async {
        for id in ids {
            let key = format!("acme.{id}");
            if let Ok(Some(value)) = fleet.jobs.get(&key).await {
                let job: JobRecord = serde_json::from_slice(&value).expect("a record");
                if job.state == Some(JobState::Waiting) {
                    return Some(job);
                }
            }
        }
        None
    })
    .await
}

async fn all_ended(fleet: &Fleet, ids: &[String]) -> Vec<JobRecord> {
    let mut records = Vec::new();
    for id in ids {
        records.push(wait_for_job(fleet, &format!("acme.{id}"), "ended", |job| job.done).await);
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_than_the_limit_of_a_key_run_at_once_across_workers_and_the_others_wait_without_a_slot(
) {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let _one = ShoalProcess::worker(
        &server,
        &["--group", "acme", "--name", "one", "--concurrency", "4"],
    );
    let _two = ShoalProcess::worker(
        &server,
        &["--group", "acme", "--name", "two", "--concurrency", "4"],
    );
    // Both are up before the jobs come: else the first takes them all.
    fleet.worker_id("acme", "one").await;
    fleet.worker_id("acme", "two").await;
    let ids: Vec<String> = (0..8).map(|index| format!("k{index}")).collect();
    for id in &ids {
        fleet
            .publish_job("acme", "default", &keyed(id, "customer-42", 2, 0.4))
            .await;
    }
    // A job of another key is not held back by them: the workers have slots.
    fleet
        .publish_job("acme", "default", &keyed("other", "customer-7", 1, 0.1))
        .await;
    let waiting = first_held(&fleet, &ids, "a job waiting for its key").await;
    assert_eq!(
        waiting.waiting_for.as_deref(),
        Some("concurrency key customer-42 (2 of 2 running)")
    );
    let other = wait_for_job(&fleet, "acme.other", "ended", |job| job.done).await;
    assert_eq!(other.state, Some(JobState::Succeeded));
    let records = all_ended(&fleet, &ids).await;
    assert!(records
        .iter()
        .all(|job| job.state == Some(JobState::Succeeded)));
    let intervals: Vec<_> = records.iter().map(ran).collect();
    assert_eq!(most_at_once(&intervals), 2, "{intervals:?}");
    let workers: std::collections::BTreeSet<_> = records
        .iter()
        .filter_map(|job| job.worker_id.clone())
        .collect();
    assert_eq!(workers.len(), 2, "both workers ran jobs of the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_held_by_a_worker_killed_with_sigkill_comes_back_within_its_lease_and_is_never_granted_twice(
) {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    // Its ack wait, and so the lease of its slots, is 2 s.
    let doomed = ShoalProcess::worker(&server, &["--group", "acme", "--concurrency", "4"]);
    let ids: Vec<String> = (0..4).map(|index| format!("s{index}")).collect();
    for id in &ids[..2] {
        fleet
            .publish_job("acme", "default", &keyed(id, "customer-42", 2, 1.5))
            .await;
    }
    let mut first_runs = Vec::new();
    for id in &ids[..2] {
        let key = format!("acme.{id}");
        let job = wait_for_job(&fleet, &key, "running", |job| {
            job.state == Some(JobState::Running)
        })
        .await;
        first_runs.push((id.clone(), job.started_at.expect("a start")));
    }
    let _survivor = ShoalProcess::worker(&server, &["--group", "acme", "--concurrency", "4"]);
    for id in &ids[2..] {
        fleet
            .publish_job("acme", "default", &keyed(id, "customer-42", 2, 1.5))
            .await;
    }
    for id in &ids[2..] {
        wait_for_job(&fleet, &format!("acme.{id}"), "waiting for a slot", |job| {
            job.state == Some(JobState::Waiting)
        })
        .await;
    }
    doomed.signal(libc::SIGKILL);
    let killed_at = Timestamp::now();
    drop(doomed);
    // The slots come back once the leases end: a waiting job starts.
    let started = eventually(Duration::from_secs(15), "a waiting job started", || async {
        for id in &ids[2..] {
            if let Ok(Some(value)) = fleet.jobs.get(&format!("acme.{id}")).await {
                let job: JobRecord = serde_json::from_slice(&value).expect("a record");
                if let Some(at) = job.started_at {
                    return Some(at);
                }
            }
        }
        None
    })
    .await;
    let after = (started.unix_nanos() - killed_at.unix_nanos()) as f64 / 1e9;
    assert!(after < 8.0, "a slot came back {after:.1}s after the kill");
    let records = all_ended(&fleet, &ids).await;
    assert!(
        records
            .iter()
            .all(|job| job.state == Some(JobState::Succeeded)),
        "{records:?}"
    );
    // The killed attempts ran from their start to the kill; every other
    // from its record's start to its end.
    let mut intervals: Vec<_> = first_runs.iter().map(|(_, at)| (*at, killed_at)).collect();
    intervals.extend(records.iter().map(ran));
    assert!(most_at_once(&intervals) <= 2, "{intervals:?}");
    let rerun = records.iter().filter(|job| job.attempt > 1).count();
    assert_eq!(rerun, 2, "the killed jobs ran again: {records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_s_limit_raised_while_jobs_wait_lets_more_run_at_once() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--concurrency", "8"]);
    let ids: Vec<String> = (0..6).map(|index| format!("r{index}")).collect();
    for id in &ids {
        fleet
            .publish_job("acme", "default", &keyed(id, "bulk", 1, 2.0))
            .await;
    }
    wait_for_job(&fleet, "acme.r5", "waiting", |job| {
        job.state == Some(JobState::Waiting)
    })
    .await;
    let set = shoal(
        Some(&server),
        &["limit", "set", "bulk", "--concurrency", "3", "-g", "acme"],
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert!(String::from_utf8_lossy(&set.stdout).contains("limit: 3"));
    let records = all_ended(&fleet, &ids).await;
    let intervals: Vec<_> = records.iter().map(ran).collect();
    assert_eq!(most_at_once(&intervals), 3, "{intervals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_over_a_rate_limit_wait_and_say_until_when_and_no_window_holds_more_starts() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--concurrency", "8"]);
    let ids: Vec<String> = (0..6).map(|index| format!("m{index}")).collect();
    for id in &ids {
        let body = serde_json::json!({
            "id": id, "entrypoint": "noop", "rate": {"key": "smtp", "limit": 2, "per": "2s"},
        });
        fleet
            .publish_job("acme", "default", &body.to_string())
            .await;
    }
    // Which two start first is the workers' race: one of the others is held.
    let held = first_held(&fleet, &ids, "a job held by the rate").await;
    let why = held.waiting_for.clone().unwrap_or_default();
    assert!(
        why.starts_with("rate limit smtp (2 per 2s) until "),
        "{why}"
    );
    assert!(held.waiting_until.is_some());
    let records = all_ended(&fleet, &ids).await;
    let mut starts: Vec<i128> = records
        .iter()
        .map(|job| job.started_at.expect("a start").unix_nanos())
        .collect();
    starts.sort();
    // Any three starts span a window or more (less the time between a
    // start's count and its record's start, well under 100 ms).
    for three in starts.windows(3) {
        let span = (three[2] - three[0]) as f64 / 1e9;
        assert!(span > 1.9, "three starts within {span:.2}s: {starts:?}");
    }
}
