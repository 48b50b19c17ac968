//! State is bounded: the records of ended jobs and the folders of jobs
//! expire after their retention while waiting and running ones stay, and
//! the registry keeps working with 100,000 job records without reading
//! them on every tick.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use shoal_protocol::{JobRecord, JobState, Timestamp};

use crate::support::{
    eventually, job_record, names, shoal, wait_for_job, Fleet, NatsServer, ShoalProcess,
};

fn running(job: &JobRecord) -> bool {
    job.state == Some(JobState::Running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_jobs_records_and_folders_expire_after_their_retention_and_waiting_or_running_ones_stay(
) {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let retention = [("SHOAL_JOB_RETENTION", "2s")];
    let _projector = ShoalProcess::start_with(&server, &["projector", "run"], &retention);
    let _registry = ShoalProcess::registry_with(&server, "500ms", &retention).await;
    let worker = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "acme",
            "--allow-exec",
            "true",
            "--concurrency",
            "2",
            "--output-retention",
            "2s",
        ],
    );
    let folders = worker.dir.path().join("output").join("acme");

    let waits = r#"{"id": "waits", "entrypoint": "sleep", "args": ["1ms"]}"#;
    fleet.publish_job("acme", "idle", waits).await;
    wait_for_job(&fleet, "acme.waits", "queued", |job| {
        job.state == Some(JobState::Queued)
    })
    .await;
    let long = r#"{"id": "long", "command": ["sleep", "120"]}"#;
    fleet.publish_job("acme", "default", long).await;
    wait_for_job(&fleet, "acme.long", "running", running).await;
    let quick = r#"{"id": "quick", "command": ["sh", "-c", "echo done > out.txt"]}"#;
    fleet.publish_job("acme", "default", quick).await;
    wait_for_job(&fleet, "acme.quick", "succeeded", |job| job.done).await;
    assert!(folders.join("quick/work/out.txt").exists());

    let ended_at = Instant::now();
    let ended = "the ended job's record and folder are gone";
    eventually(Duration::from_secs(30), ended, || async {
        job_record(&fleet, "acme.quick").await.is_none() && !folders.join("quick").exists()
    })
    .await;
    assert!(ended_at.elapsed() >= Duration::from_secs(1));
    // Both were written before the ended job's, and are older than the retention.
    let long = job_record(&fleet, "acme.long").await;
    assert!(long.as_ref().is_some_and(running), "{long:?}");
    assert!(
        folders.join("long/work").exists(),
        "a running job's folder stays"
    );
    let waits = job_record(&fleet, "acme.waits").await;
    assert_eq!(waits.and_then(|job| job.state), Some(JobState::Queued));
    let gone = shoal(Some(&server), &["job", "get", "quick", "-g", "acme"]);
    assert!(!gone.status.success());

    // A cancel, which the registry writes, is an end too.
    let cancel = shoal(Some(&server), &["job", "cancel", "long", "-g", "acme"]);
    assert!(cancel.status.success(), "{cancel:?}");
    wait_for_job(&fleet, "acme.long", "cancelled", |job| job.done).await;
    let cancelled = "the cancelled job's record and folder are gone";
    eventually(Duration::from_secs(30), cancelled, || async {
        job_record(&fleet, "acme.long").await.is_none() && !folders.join("long").exists()
    })
    .await;
    assert!(job_record(&fleet, "acme.waits").await.is_some());
}

/// How many records the registry must keep working with.
const RECORDS: usize = 100_000;

/// Writes `RECORDS` records of ended jobs of the group `bulk`, as a
/// long-lived installation holds them, without their submissions.
async fn fill_job_bucket(js: &jetstream::Context) {
    let now = Timestamp::now();
    let bucket = names().jobs_bucket();
    let mut acks = Vec::with_capacity(1_000);
    for index in 0..RECORDS {
        let record = JobRecord {
            id: format!("done-{index}"),
            group: "bulk".into(),
            queue: "default".into(),
            state: Some(JobState::Succeeded),
            done: true,
            attempt: 1,
            attempts: 1,
            worker_id: Some("w-bulk".into()),
            entrypoint: Some("sleep".into()),
            args: vec!["1ms".into()],
            stream_sequence: Some(index as u64 + 1),
            submitted_at: Some(now),
            started_at: Some(now),
            finished_at: Some(now),
            exit_code: Some(0),
            ..Default::default()
        };
        let body = serde_json::to_vec(&record).expect("record");
        let ack = js
            .publish(format!("$KV.{bucket}.bulk.done-{index}"), body.into())
            .await
            .expect("publish a record");
        acks.push(ack);
        if acks.len() == acks.capacity() {
            for ack in acks.drain(..) {
                ack.await.expect("record stored");
            }
        }
    }
    for ack in acks {
        ack.await.expect("record stored");
    }
}

/// Messages the server sent to the connections named `name`.
fn messages_sent_to(server: &NatsServer, name: &str) -> u64 {
    let connz = server.monitor("/connz?limit=1024");
    connz["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .filter(|connection| connection["name"] == name)
        .map(|connection| connection["out_msgs"].as_u64().unwrap_or(0))
        .sum()
}

async fn goes_missing(fleet: &Fleet, id: &str) {
    let body = serde_json::json!({"id": id, "entrypoint": "sleep", "args": ["1ms"]});
    let sequence = fleet.publish_job("acme", "idle", &body.to_string()).await;
    let key = format!("acme.{id}");
    wait_for_job(fleet, &key, "queued", |job| {
        job.state == Some(JobState::Queued)
    })
    .await;
    let stream = fleet
        .js
        .get_stream(names().jobs_stream())
        .await
        .expect("jobs stream");
    stream.delete_message(sequence).await.expect("delete");
    wait_for_job(fleet, &key, "missing", |job| {
        job.state == Some(JobState::Missing)
    })
    .await;
}

fn worker_with_tags(server: &NatsServer, name: &str, tags: &str) -> ShoalProcess {
    ShoalProcess::worker(
        server,
        &[
            "--group", "acme", "--name", name, "--queues", "render", "--tags", tags,
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_keeps_working_with_100000_job_records_and_reads_none_of_them_per_tick() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    fill_job_bucket(&fleet.js).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry_with(&server, "500ms", &[]).await;
    let _cpu = worker_with_tags(&server, "cpu", "cpu");

    // A job that no live worker may take is parked, then routed once one comes.
    let body = r#"{"id": "needs-gpu", "entrypoint": "sleep", "args": ["1ms"], "tags": ["gpu"]}"#;
    fleet.publish_job("acme", "render", body).await;
    wait_for_job(&fleet, "acme.needs-gpu", "parked", |job| {
        job.waiting_for.is_some()
    })
    .await;
    let _gpu = worker_with_tags(&server, "gpu", "gpu");
    wait_for_job(&fleet, "acme.needs-gpu", "succeeded", |job| {
        job.state == Some(JobState::Succeeded)
    })
    .await;
    // A waiting job whose submission is deleted is raised as missing.
    goes_missing(&fleet, "vanishing-1").await;

    // From here on, ticks of every periodic task: liveness and the live tag
    // sets twice a second, the reconciler twice a second (raising a missing
    // job takes one), routing parked jobs on each change of the live tag
    // sets (two changes here). Reading every record once is 100,000 messages.
    let before = messages_sent_to(&server, "shoal-registry");
    let started = Instant::now();
    let _fast = worker_with_tags(&server, "fast", "cpu,fast");
    let parked = r#"{"id": "needs-tpu", "entrypoint": "sleep", "args": ["1ms"], "tags": ["tpu"]}"#;
    fleet.publish_job("acme", "render", parked).await;
    wait_for_job(&fleet, "acme.needs-tpu", "parked", |job| {
        job.waiting_for.is_some()
    })
    .await;
    goes_missing(&fleet, "vanishing-2").await;
    let _tpu = worker_with_tags(&server, "tpu", "tpu");
    wait_for_job(&fleet, "acme.needs-tpu", "succeeded", |job| {
        job.state == Some(JobState::Succeeded)
    })
    .await;
    let received = messages_sent_to(&server, "shoal-registry") - before;
    let window = started.elapsed();
    assert!(
        received < (RECORDS / 10) as u64,
        "the registry received {received} messages in {window:?}: it reads every record per tick"
    );
    let bulk = job_record(&fleet, "bulk.done-99999").await;
    assert!(
        bulk.is_some_and(|job| job.done),
        "the records are all there"
    );
}
