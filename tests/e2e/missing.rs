//! A job deleted from the jobs stream before any worker took it ends
//! missing, and says why.

use shoal_protocol::JobState;

use crate::support::{names, shoal, wait_for_job, Fleet, NatsServer, ShoalProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_deleted_from_the_stream_before_any_worker_took_it_shows_as_missing() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let sequence = fleet
        .publish_job(
            "acme",
            "nobody-serves-this",
            r#"{"id":"vanishing","entrypoint":"noop"}"#,
        )
        .await;
    wait_for_job(&fleet, "acme.vanishing", "queued", |job| {
        job.state == Some(JobState::Queued)
    })
    .await;

    let jobs_stream = names().jobs_stream();
    server.nats(&["stream", "rmm", &jobs_stream, &sequence.to_string(), "-f"]);
    let record = wait_for_job(&fleet, "acme.vanishing", "missing", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Missing));
    assert!(record
        .error_text
        .unwrap_or_default()
        .contains("no longer in the jobs stream"));
    let listed = String::from_utf8_lossy(
        &shoal(
            Some(&server),
            &["get", "jobs", "-g", "acme", "--state", "missing"],
        )
        .stdout,
    )
    .into_owned();
    assert!(listed.contains("vanishing"), "{listed}");
}
