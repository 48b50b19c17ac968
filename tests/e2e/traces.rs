//! Traces: a submission's W3C `traceparent` goes on through its attempt: a
//! span of the attempt's own, in the job's events, its output messages and
//! its process's `TRACEPARENT`; `shoal job submit` starts a trace; with
//! `--otlp-endpoint` the submission and each attempt are exported as spans
//! to a collector (here a small OTLP receiver).

use async_nats::HeaderMap;
use shoal_protocol::trace::TraceParent;

use std::time::Duration;

use crate::support::otlp::{OtlpReceiver, Received};
use crate::support::{
    eventually, names, shoal, subjects, wait_for_job, Fleet, NatsServer, ShoalProcess,
};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A worker whose `show` entrypoint prints the job's `TRACEPARENT`.
fn worker(server: &NatsServer, extra: &[&str]) -> ShoalProcess {
    let mut args = vec![
        "--group",
        "acme",
        "--entrypoint",
        "show=sh -c \"echo trace=$TRACEPARENT\"",
    ];
    args.extend_from_slice(extra);
    ShoalProcess::worker(server, &args)
}

async fn publish_traced(fleet: &Fleet, body: &str, traceparent: &str) {
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", traceparent);
    fleet
        .js
        .publish_with_headers(
            subjects().jobs("acme", "default"),
            headers,
            body.to_string().into(),
        )
        .await
        .expect("publish")
        .await
        .expect("publish ack");
}

/// The `TRACEPARENT` the job's process printed.
fn printed_trace(record: &shoal_protocol::JobRecord) -> String {
    let tail = record.stdout_tail.as_deref().unwrap_or_default();
    tail.lines()
        .find_map(|line| line.strip_prefix("trace="))
        .expect("the job printed its TRACEPARENT")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submissions_trace_goes_on_in_the_attempts_process_events_and_output() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = worker(&server, &[]);
    publish_traced(&fleet, r#"{"id":"traced","entrypoint":"show"}"#, PARENT).await;
    let record = wait_for_job(&fleet, "acme.traced", "succeeded", |job| job.done).await;

    // The process continues the trace in a span of its own.
    let seen = printed_trace(&record);
    let attempt: TraceParent = seen.parse().expect("a valid traceparent");
    assert_eq!(attempt.trace_id(), TRACE_ID);
    assert_ne!(
        attempt.span_id(),
        "00f067aa0ba902b7",
        "the attempt's own span"
    );
    assert_eq!(
        record.trace_id.as_deref(),
        Some(TRACE_ID),
        "the record names the trace"
    );

    // Every event of the attempt, and every output message, carries it.
    let events = fleet
        .stored(
            &names().events_stream(),
            &subjects().job_event("acme", "traced"),
        )
        .await;
    assert!(!events.is_empty(), "its outcome at least");
    for event in &events {
        let header = event.headers.as_ref().and_then(|h| h.get("traceparent"));
        assert_eq!(header.map(|value| value.as_str()), Some(seen.as_str()));
        let body: serde_json::Value = serde_json::from_slice(&event.payload).expect("JSON");
        assert_eq!(body["traceparent"], seen.as_str());
    }
    let output = fleet
        .stored(&names().logs_stream(), &subjects().logs("acme", "traced"))
        .await;
    assert!(!output.is_empty());
    for chunk in output.iter().filter(|chunk| !chunk.payload.is_empty()) {
        let header = chunk.headers.as_ref().and_then(|h| h.get("traceparent"));
        assert_eq!(header.map(|value| value.as_str()), Some(seen.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_job_keeps_its_trace_and_a_broken_traceparent_is_ignored() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let _tagged = worker(&server, &["--tags", "gpu", "--name", "gpu"]);
    fleet.worker_id("acme", "gpu").await;
    publish_traced(
        &fleet,
        r#"{"id":"routed","entrypoint":"show","tags":["gpu"]}"#,
        PARENT,
    )
    .await;
    let record = wait_for_job(&fleet, "acme.routed", "succeeded", |job| job.done).await;
    let routed: TraceParent = printed_trace(&record).parse().expect("valid");
    assert_eq!(routed.trace_id(), TRACE_ID);

    // Any submitter writes the header: one that is no traceparent runs the
    // job all the same, with no trace.
    publish_traced(
        &fleet,
        r#"{"id":"broken","entrypoint":"show","tags":["gpu"]}"#,
        "00-zz-not-a-trace",
    )
    .await;
    let record = wait_for_job(&fleet, "acme.broken", "succeeded", |job| job.done).await;
    assert_eq!(printed_trace(&record), "");
    assert_eq!(record.trace_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_job_submit_starts_a_trace() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = worker(&server, &[]);
    let submitted = shoal(
        Some(&server),
        &["job", "submit", "-g", "acme", "--id", "cli", "show"],
    );
    assert!(submitted.status.success(), "{submitted:?}");
    let record = wait_for_job(&fleet, "acme.cli", "succeeded", |job| job.done).await;
    let trace: TraceParent = printed_trace(&record).parse().expect("valid");
    assert_ne!(trace.trace_id(), TRACE_ID);
}

/// The spans received for job `id`, once there are `count` of them.
async fn spans_of(receiver: &OtlpReceiver, id: &str, count: usize) -> Vec<Received> {
    eventually(
        Duration::from_secs(30),
        "the job's spans at the collector",
        || async {
            let spans: Vec<Received> = receiver
                .spans()
                .into_iter()
                .filter(|span| span.attribute("shoal.job.id").as_deref() == Some(id))
                .collect();
            match spans.len() >= count {
                true => Ok(spans),
                false => Err(format!("{} spans: {spans:?}", spans.len())),
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_and_each_attempt_are_exported_as_spans_over_otlp() {
    let receiver = OtlpReceiver::start().await;
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let exporting = [
        "--otlp-endpoint",
        receiver.url.as_str(),
        "--entrypoint",
        "fail=sh -c \"exit 3\"",
    ];
    let _worker = worker(&server, &exporting);
    let submitted = shoal(
        Some(&server),
        &[
            "job",
            "submit",
            "-g",
            "acme",
            "--id",
            "exported",
            "--otlp-endpoint",
            &receiver.url,
            "show",
        ],
    );
    assert!(submitted.status.success(), "{submitted:?}");
    let record = wait_for_job(&fleet, "acme.exported", "succeeded", |job| job.done).await;

    let spans = spans_of(&receiver, "exported", 2).await;
    let submit = spans
        .iter()
        .find(|span| span.service == "shoal-cli")
        .expect("the submission's span");
    let attempt = spans
        .iter()
        .find(|span| span.service == "shoal-worker")
        .expect("the attempt's span");
    // Producer (4) and consumer (5), after the messaging conventions.
    assert_eq!((submit.span.kind, attempt.span.kind), (4, 5));
    assert_eq!(submit.span.name, "submit shoal.jobs.acme.default");
    assert_eq!(attempt.span.name, "run shoal.jobs.acme.default");
    for (span, operation) in [(submit, "send"), (attempt, "process")] {
        assert_eq!(span.attribute("messaging.system").as_deref(), Some("nats"));
        assert_eq!(
            span.attribute("messaging.destination.name").as_deref(),
            Some("shoal.jobs.acme.default")
        );
        assert_eq!(
            span.attribute("messaging.operation.type").as_deref(),
            Some(operation)
        );
        assert_eq!(span.attribute("shoal.group").as_deref(), Some("acme"));
        assert_eq!(span.attribute("shoal.queue").as_deref(), Some("default"));
    }
    assert_eq!(attempt.attribute("shoal.attempt").as_deref(), Some("1"));
    assert_eq!(
        attempt.attribute("shoal.outcome").as_deref(),
        Some("succeeded")
    );
    // One trace: the attempt continues the submission, and is the span
    // the job's process was given.
    assert_eq!(attempt.trace_id(), submit.trace_id());
    assert_eq!(attempt.parent_span_id(), submit.span_id());
    assert!(submit.parent_span_id().is_empty());
    let process: TraceParent = printed_trace(&record).parse().expect("valid");
    assert_eq!(process.span_id(), attempt.span_id());
    assert_eq!(record.trace_id.as_deref(), Some(submit.trace_id().as_str()));

    // An attempt that fails is an error span, with the reason.
    publish_traced(&fleet, r#"{"id":"broken","entrypoint":"fail"}"#, PARENT).await;
    wait_for_job(&fleet, "acme.broken", "failed", |job| job.done).await;
    let failed = spans_of(&receiver, "broken", 1).await;
    let status = failed[0].span.status.clone().expect("a status");
    assert_eq!(status.code, 2, "an error: {status:?}");
    assert!(!status.message.is_empty());
    assert_eq!(failed[0].trace_id(), TRACE_ID);
    assert_eq!(failed[0].parent_span_id(), "00f067aa0ba902b7");
}
