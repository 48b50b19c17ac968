//! A store made by an older version. Its jobs stream allowed message
//! schedules (which the server never turns off): the operator parts refuse
//! it with the steps that replace it, instead of running a fleet in which
//! any user could act on another group. Its job bucket took no records
//! that expire: the operator parts let it, keeping its records.

use std::time::Duration;

use async_nats::jetstream::{kv, stream};

use crate::support::{eventually, names, subjects, NatsServer, ShoalProcess};

/// The jobs stream as an older version made it.
fn older_jobs_stream() -> stream::Config {
    let subjects = subjects();
    stream::Config {
        name: names().jobs_stream(),
        subjects: vec![
            subjects.all_jobs(),
            subjects.all_schedules(),
            subjects.all_routes(),
        ],
        storage: stream::StorageType::File,
        allow_direct: true,
        allow_rollup: true,
        allow_message_schedules: true,
        discard: stream::DiscardPolicy::Old,
        max_age: Duration::from_secs(7 * 86_400),
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_jobs_stream_that_allows_schedules_is_refused_with_the_steps_to_replace_it() {
    let server = NatsServer::start();
    let js = async_nats::jetstream::new(server.client().await);
    js.create_stream(older_jobs_stream())
        .await
        .expect("the older jobs stream");
    for part in [&["projector", "run"][..], &["registry", "run"][..]] {
        let mut process = ShoalProcess::start(&server, part);
        let status = process
            .wait_exit(Duration::from_secs(20))
            .expect("the part exits");
        assert!(!status.success());
        let log = process.log();
        let stream = names().jobs_stream();
        assert!(
            log.contains(&stream) && log.contains(&format!("nats stream rm {stream}")),
            "{log}"
        );
    }
    // The jobs stream was left as it was, its jobs with it.
    let mut jobs = js
        .get_stream(names().jobs_stream())
        .await
        .expect("jobs stream");
    let config = jobs.info().await.expect("info").config.clone();
    assert!(config.allow_rollup && config.allow_message_schedules);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_job_bucket_is_upgraded_to_take_records_that_expire_and_keeps_its_records() {
    let server = NatsServer::start();
    let js = async_nats::jetstream::new(server.client().await);
    let older = js
        .create_key_value(kv::Config {
            bucket: names().jobs_bucket(),
            history: 1,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("the older job bucket");
    older
        .put("acme.old", r#"{"id":"old"}"#.into())
        .await
        .expect("an older record");
    let refused = older
        .create_with_ttl("acme.probe", "{}".into(), Duration::from_secs(1))
        .await;
    assert!(refused.is_err(), "an older bucket takes no TTL");

    let _projector = ShoalProcess::projector(&server);
    let bucket_stream = js
        .get_stream(format!("KV_{}", names().jobs_bucket()))
        .await
        .expect("bucket stream");
    eventually(
        Duration::from_secs(30),
        "the bucket is upgraded",
        || async {
            let info = bucket_stream.get_info().await.expect("info");
            info.config.allow_message_ttl
        },
    )
    .await;
    older
        .create_with_ttl("acme.probe", "{}".into(), Duration::from_secs(1))
        .await
        .expect("the upgraded bucket takes a record that expires");
    eventually(
        Duration::from_secs(30),
        "the record has expired",
        || async { older.get("acme.probe").await.expect("read").is_none() },
    )
    .await;
    let kept = older.get("acme.old").await.expect("read");
    assert!(kept.is_some(), "the older records stay");
}
