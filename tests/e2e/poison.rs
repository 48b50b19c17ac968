//! Messages made to stop a service: times past any calendar, delays of
//! thousands of years, headers that are no text, bodies at the size limit
//! or nested past any parser's depth. Each becomes a `rejected` record or
//! notice, and every service goes on.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use async_nats::jetstream;
use shoal_protocol::{JobState, RejectedNotice};

use crate::support::secure::{declare_queues, services, SecureServer, Watched};
use crate::support::{eventually, names, subjects, wait_for_job, Fleet, ShoalProcess};

/// Publishes a body as `watched` and waits for the stream to store it.
async fn publish(watched: &Watched, subject: &str, body: Vec<u8>) -> u64 {
    let js = jetstream::new(watched.client.clone());
    js.publish(subject.to_string(), body.into())
        .await
        .expect("publish")
        .await
        .expect("stored")
        .sequence
}

/// Publishes with a header block as no NATS client library lets one (a
/// value that is no UTF-8, a status that is no number): over the protocol
/// itself.
fn publish_raw_header(
    url: &str,
    (user, password): (&str, &str),
    subject: &str,
    header_block: &[u8],
    body: &str,
) {
    let address = url.trim_start_matches("nats://");
    let stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("INFO");
    assert!(line.starts_with("INFO"), "{line}");
    let mut writer = stream;
    let connect = serde_json::json!({
        "user": user, "pass": password, "headers": true, "verbose": false, "pedantic": false,
        "protocol": 1,
    });
    let mut headers = header_block.to_vec();
    let header_len = headers.len();
    headers.extend_from_slice(body.as_bytes());
    let mut wire = format!("CONNECT {connect}\r\n").into_bytes();
    wire.extend(format!("HPUB {subject} {header_len} {}\r\n", headers.len()).into_bytes());
    wire.extend(headers);
    wire.extend(b"\r\nPING\r\n");
    writer.write_all(&wire).expect("write");
    line.clear();
    reader.read_line(&mut line).expect("PONG");
    assert_eq!(line.trim(), "PONG", "the server took the message");
}

/// Rejection notices on `shoal.evt.rejected` about `subject`.
async fn notices_about(fleet: &Fleet, subject: &str) -> Vec<RejectedNotice> {
    fleet
        .stored(&names().events_stream(), &subjects().rejected())
        .await
        .iter()
        .filter_map(|message| serde_json::from_slice::<RejectedNotice>(&message.payload).ok())
        .filter(|notice| notice.subject == subject)
        .collect()
}

async fn wait_for_notice(fleet: &Fleet, subject: &str) -> RejectedNotice {
    let what = format!("a rejection notice about {subject}");
    eventually(Duration::from_secs(20), &what, || async {
        notices_about(fleet, subject).await.pop()
    })
    .await
}

fn assert_running(process: &mut ShoalProcess, what: &str) {
    assert!(process.is_running(), "the {what} died: {}", process.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_poisonous_message_stops_the_projector_the_registry_or_a_worker() {
    let secure = SecureServer::start();
    let mut services = services(&secure).await;
    let fleet = &services.fleet;
    let url = secure.server.url.clone();
    declare_queues(&url, "acme", &secure.login("acme-admin"));
    let mut worker = ShoalProcess::worker_with_env(
        &url,
        &["--group", "acme", "--entrypoint", "x=false"],
        &secure.login("acme-worker"),
    );
    let write = secure.client_as("acme-write").await;
    let acme_worker = secure.client_as("acme-worker").await;
    let jobs = subjects().jobs("acme", "default");

    // A delay that overflows any clock: refused where it is read.
    let forever = br#"{"id":"forever","entrypoint":"x","retry":{"max_attempts":2,"initial":"3000000d","max":"3000000d"}}"#;
    publish(&write, &jobs, forever.to_vec()).await;
    let record = wait_for_job(fleet, "acme.forever", "dead", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Dead));
    assert!(
        record
            .error_text
            .as_deref()
            .is_some_and(|text| text.contains("3000000d")),
        "{record:?}"
    );

    // More attempts than the queue delivers: refused, not silently capped.
    let tenfold =
        br#"{"id":"tenfold","entrypoint":"x","retry":{"max_attempts":10,"initial":"100ms"}}"#;
    publish(&write, &jobs, tenfold.to_vec()).await;
    let record = wait_for_job(fleet, "acme.tenfold", "dead", |job| job.done).await;
    assert!(
        record
            .error_text
            .as_deref()
            .is_some_and(|text| text.contains("retry.max_attempts") && text.contains("10")),
        "{record:?}"
    );
    assert_eq!(record.attempts, 0, "it never ran");

    // Times past the calendar, from a worker's login.
    let late = "9999-12-31T23:59:59-01:00";
    let beat =
        serde_json::json!({"worker_id": "w-late", "group": "acme", "at": late, "interval": "5s"});
    let beats = subjects().heartbeat("acme", "w-late");
    publish(&acme_worker, &beats, beat.to_string().into_bytes()).await;
    let notice = wait_for_notice(fleet, &beats).await;
    assert!(notice.reason.contains("9999"), "{notice:?}");
    let event = serde_json::json!({"type": "registered", "worker_id": "w-late", "group": "acme", "at": late});
    let events = subjects().worker_event("acme", "w-late");
    publish(&acme_worker, &events, event.to_string().into_bytes()).await;
    wait_for_notice(fleet, &events).await;

    // A header that is no text.
    let login = secure.password("acme-write");
    for (id, header_block) in [
        (
            "latin",
            &b"NATS/1.0\r\nX-Latin: caf\xe9 \xff\xfe\r\n\r\n"[..],
        ),
        (
            "no-status",
            &b"NATS/1.0 abc not a status\r\nX-Plain: yes\r\n\r\n"[..],
        ),
        ("no-colon", &b"NATS/1.0\r\nno colon here\r\n\r\n"[..]),
    ] {
        publish_raw_header(
            &url,
            ("acme-write", &login),
            &jobs,
            header_block,
            &format!(r#"{{"id":"{id}","entrypoint":"noop"}}"#),
        );
        let record = wait_for_job(fleet, &format!("acme.{id}"), "ended", |job| job.done).await;
        assert_eq!(record.state, Some(JobState::Succeeded), "{record:?}");
    }

    // A body at the server's size limit: its dead letter, headers and all, still fits.
    let filler = "x".repeat(1024 * 1024 - 512);
    let huge = format!(r#"{{"id":"huge","entrypoint":"noop","args":["{filler}"]}}"#);
    let huge_len = huge.len();
    publish(&write, &jobs, huge.into_bytes()).await;
    let record = wait_for_job(fleet, "acme.huge", "dead", |job| job.done).await;
    assert!(
        record
            .error_text
            .as_deref()
            .is_some_and(|text| text.contains("bytes")),
        "{record:?}"
    );
    let letters = fleet
        .stored(&names().dead_stream(), &subjects().dead("acme", "default"))
        .await;
    let letter = letters
        .iter()
        .find(|letter| {
            letter
                .headers
                .as_ref()
                .and_then(|headers| headers.get("Shoal-Job-Id"))
                .is_some_and(|id| id.as_str() == "huge")
        })
        .expect("the dead letter of the huge job");
    let truncated = letter
        .headers
        .as_ref()
        .and_then(|headers| headers.get("Shoal-Truncated"))
        .map(|value| value.to_string());
    assert_eq!(truncated, Some(huge_len.to_string()));
    assert_eq!(letter.payload.len(), shoal_protocol::job::MAX_SPEC_BYTES);

    // A body nested past any parser's depth (its id comes after the nesting).
    let deep = format!(
        r#"{{"nest":{}{},"id":"deep","entrypoint":"noop"}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    publish(&write, &jobs, deep.into_bytes()).await;
    let deep_record = wait_for_job(fleet, "acme.deep", "dead", |job| job.done).await;
    assert!(
        deep_record
            .error_text
            .as_deref()
            .is_some_and(|text| text.contains("nest")),
        "{deep_record:?}"
    );

    // Every service goes on: a good job runs after all of them.
    publish(
        &write,
        &jobs,
        br#"{"id":"after","entrypoint":"noop"}"#.to_vec(),
    )
    .await;
    let after = wait_for_job(fleet, "acme.after", "succeeded", |job| job.done).await;
    assert_eq!(after.state, Some(JobState::Succeeded));
    assert_running(&mut services.projector, "projector");
    assert_running(&mut services.registry, "registry");
    assert_running(&mut worker, "worker");

    // And the streams replay, poison and all.
    let mut replay = ShoalProcess::start_with_env(
        &url,
        &["projector", "run", "--replay"],
        &secure.login(crate::support::secure::OPERATOR),
    );
    let status = replay
        .wait_exit(Duration::from_secs(60))
        .expect("the replay ends");
    assert!(status.success(), "{}", replay.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_cannot_be_folded_is_rejected_after_five_deliveries_not_retried_forever() {
    let server = crate::support::NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let mut projector = ShoalProcess::projector(&server);
    // A jobs bucket that takes no more writes: every fold of a job fails.
    let mut bucket = fleet
        .js
        .get_stream(format!("KV_{}", names().jobs_bucket()))
        .await
        .expect("bucket");
    let mut config = bucket.info().await.expect("info").config.clone();
    config.sealed = true;
    fleet.js.update_stream(config).await.expect("sealed");
    let sequence = fleet
        .publish_job("acme", "default", r#"{"id":"stuck","entrypoint":"noop"}"#)
        .await;
    let jobs = subjects().jobs("acme", "default");
    let notice = eventually(Duration::from_secs(30), "a rejection", || async {
        notices_about(&fleet, &jobs)
            .await
            .into_iter()
            .find(|notice| notice.sequence == sequence)
            .ok_or_else(|| projector.log())
    })
    .await;
    assert!(
        notice
            .reason
            .contains("could not be folded in 5 deliveries"),
        "{notice:?}"
    );
    assert_running(&mut projector, "projector");
}
