//! Fair share: jobs that share workers take turns. Keys of one queue
//! (`fairness_key`) are let go round-robin, so a lone job behind another
//! key's backlog of 10,000 starts long before that backlog drains; a system
//! worker shares its slots between its own group and `_system`, so a
//! backlog in one does not starve the other. Counted from the jobs' own
//! records of start. Jobs waiting for their turn count toward their
//! group's quota like any waiting job.

use std::future::IntoFuture;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use shoal_protocol::{JobRecord, Timestamp};

use crate::support::{shoal, subjects, wait_for_job, Fleet, NatsServer, ShoalProcess};

/// Publishes `count` no-op jobs with ids `<prefix>-<index>` to `subject`,
/// a thousand acknowledgements in flight at most.
async fn backlog(fleet: &Fleet, subject: &str, prefix: &str, count: usize) {
    let mut acks = FuturesUnordered::new();
    for index in 0..count {
        let body = format!(r#"{{"id":"{prefix}-{index}","entrypoint":"noop"}}"#);
        let ack = fleet
            .js
            .publish(subject.to_string(), body.into())
            .await
            .expect("publish");
        acks.push(ack.into_future());
        if acks.len() >= 1_000 {
            acks.next().await.expect("an ack").expect("stored");
        }
    }
    while let Some(ack) = acks.next().await {
        ack.expect("stored");
    }
}

/// How many of the backlog's jobs started before `at`.
async fn started_before(
    fleet: &Fleet,
    group: &str,
    prefix: &str,
    count: usize,
    at: Timestamp,
) -> usize {
    let mut started = 0;
    for index in 0..count {
        let key = format!("{group}.{prefix}-{index}");
        let Some(entry) = fleet.jobs.get(&key).await.expect("read") else {
            continue;
        };
        let record: JobRecord = serde_json::from_slice(&entry).expect("a job record");
        if record.started_at.is_some_and(|start| start < at) {
            started += 1;
        }
    }
    started
}

/// Waits until the job `key` started, and gives its record.
async fn started(fleet: &Fleet, key: &str) -> JobRecord {
    wait_for_job(fleet, key, "started", |job| job.started_at.is_some()).await
}

fn waited(record: &JobRecord) -> Duration {
    let (Some(submitted), Some(start)) = (record.submitted_at, record.started_at) else {
        return Duration::ZERO;
    };
    Duration::from_nanos((start.unix_nanos() - submitted.unix_nanos()).max(0) as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_job_behind_another_keys_backlog_of_ten_thousand_starts_long_before_it_drains() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--concurrency", "16"]);
    const BACKLOG: usize = 10_000;
    let big = subjects().fair("acme", "default", "big");
    backlog(&fleet, &big, "big", BACKLOG).await;
    // The whole backlog waits, recorded, and its first jobs run.
    let last = format!("acme.big-{}", BACKLOG - 1);
    wait_for_job(&fleet, &last, "recorded", |job| job.state.is_some()).await;
    started(&fleet, "acme.big-0").await;

    let submitted = shoal(
        Some(&server),
        &[
            "job",
            "submit",
            "-g",
            "acme",
            "--id",
            "lone",
            "--fairness-key",
            "lone",
            "noop",
        ],
    );
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let lone = started(&fleet, "acme.lone").await;
    assert_eq!(lone.fairness_key.as_deref(), Some("lone"));
    let start = lone.started_at.expect("a start");
    let ahead = started_before(&fleet, "acme", "big", BACKLOG, start).await;
    eprintln!(
        "the lone job waited {:?}; {ahead} of the backlog's {BACKLOG} jobs started before it",
        waited(&lone)
    );
    assert!(
        ahead < BACKLOG / 2,
        "{ahead} of {BACKLOG} jobs of the other key started before the lone job: it was starved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_a_fairness_key_on_its_queues_own_subject_is_refused_by_the_field() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(&server, &["--group", "acme"]);
    fleet
        .publish_job(
            "acme",
            "default",
            r#"{"id":"skipper","entrypoint":"noop","fairness_key":"big"}"#,
        )
        .await;
    let record = wait_for_job(&fleet, "acme.skipper", "refused", |job| job.done).await;
    let error = record.error_text.unwrap_or_default();
    assert!(error.contains("fairness_key"), "{error}");
    assert!(record.started_at.is_none(), "a refused job never runs");

    let other = subjects().fair("acme", "default", "mine");
    fleet
        .js
        .publish(
            other,
            r#"{"id":"liar","entrypoint":"noop","fairness_key":"theirs"}"#.into(),
        )
        .await
        .expect("publish")
        .await
        .expect("stored");
    let record = wait_for_job(&fleet, "acme.liar", "refused", |job| job.done).await;
    let error = record.error_text.unwrap_or_default();
    assert!(
        error.contains("fairness_key") && error.contains("mine"),
        "{error}"
    );

    let both = shoal(
        Some(&server),
        &[
            "job",
            "submit",
            "-g",
            "acme",
            "--fairness-key",
            "k",
            "--priority",
            "high",
            "noop",
        ],
    );
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("priority"));
}

/// A system worker of `acme` with a backlog of `count` in `crowded` and
/// one job in `quiet`: the lone job starts before half the backlog.
async fn a_backlog_in_one_group_does_not_starve_the_other(crowded: &str, quiet: &str) {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(
        &server,
        &["--group", "acme", "--system", "--concurrency", "4"],
    );
    const BACKLOG: usize = 3_000;
    let subject = subjects().jobs(crowded, "default");
    backlog(&fleet, &subject, "crowd", BACKLOG).await;
    started(&fleet, &format!("{crowded}.crowd-0")).await;
    fleet
        .publish_job(quiet, "default", r#"{"id":"lone","entrypoint":"noop"}"#)
        .await;
    let lone = started(&fleet, &format!("{quiet}.lone")).await;
    let start = lone.started_at.expect("a start");
    let ahead = started_before(&fleet, crowded, "crowd", BACKLOG, start).await;
    assert!(
        ahead < BACKLOG / 2,
        "{ahead} of {BACKLOG} jobs of {crowded} started before the lone job of {quiet}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_workers_own_backlog_does_not_starve_the_system_group() {
    a_backlog_in_one_group_does_not_starve_the_other("acme", "_system").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_the_system_group_does_not_starve_the_workers_own() {
    a_backlog_in_one_group_does_not_starve_the_other("_system", "acme").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_waiting_for_their_turn_count_toward_their_groups_quota() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    // No registry: no job is let go, all wait for their turn.
    let _projector = ShoalProcess::start(
        &server,
        &["projector", "run", "--max-waiting-per-group", "5"],
    );
    let publish = |group: &str, id: String| {
        let subject = subjects().fair(group, "default", "flood");
        let body = format!(r#"{{"id":"{id}","entrypoint":"noop"}}"#);
        let js = fleet.js.clone();
        async move {
            js.publish(subject, body.into())
                .await
                .expect("publish")
                .await
                .expect("stored");
        }
    };
    for n in 0..5 {
        publish("acme", format!("early-{n}")).await;
        wait_for_job(&fleet, &format!("acme.early-{n}"), "queued", |job| {
            job.awaits_its_turn()
        })
        .await;
    }
    let mut rejected = None;
    for n in 0..10 {
        publish("acme", format!("late-{n}")).await;
        let record = wait_for_job(&fleet, &format!("acme.late-{n}"), "recorded", |job| {
            job.state.is_some()
        })
        .await;
        if record.done {
            rejected = Some(record);
            break;
        }
    }
    let rejected = rejected.expect("a job past the quota is rejected");
    let reason = rejected.error_text.unwrap_or_default();
    assert!(reason.contains("quota"), "{reason}");
    publish("globex", "other".into()).await;
    let other = wait_for_job(&fleet, "globex.other", "queued", |job| job.state.is_some()).await;
    assert!(
        other.awaits_its_turn(),
        "another group's job goes on: {other:?}"
    );
}
