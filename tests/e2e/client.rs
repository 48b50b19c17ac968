//! A Rust program talks to Shoal through `shoal-client` alone: the example
//! submits a job and waits for it; the API submits once under an id,
//! follows a running job's output, waits, retries and cancels.

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use shoal_client::streams::Layout;
use shoal_client::{Client, ClientError, Target};
use shoal_protocol::key::Key;
use shoal_protocol::{JobSpec, JobState, Subjects};

use crate::support::process::{shoal_binary, wait_for_service};
use crate::support::{wait_for_job, Fleet, NatsServer, ShoalProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_submit_and_wait_example_runs_a_job_to_its_end() {
    let server = NatsServer::start();
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(&server, &["--group", "acme"]);
    let example = shoal_binary()
        .parent()
        .expect("the target folder")
        .join("examples/submit_and_wait");
    assert!(
        example.exists(),
        "{} is built by `cargo test --workspace` (or `cargo build -p shoal-client --examples`)",
        example.display()
    );
    let output = Command::new(&example)
        .arg("acme")
        .env("SHOAL_NATS_URL", &server.url)
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("job ") && line.ends_with(" succeeded")),
        "{stdout}"
    );
}

fn talking_job(id: &str) -> JobSpec {
    let script = "for i in 1 2 3; do echo line $i; sleep 0.3; done; exit 3";
    JobSpec {
        id: Some(id.into()),
        command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_submits_once_follows_the_output_retries_and_cancels_through_the_client() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    wait_for_service(&server, "shoal-registry").await;
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let client = Client::over(server.client().await, Layout::new(Subjects::default()));
    let target = Target::new("acme", "default").expect("a target");

    let first = client
        .submit(&target, &talking_job("talk"))
        .await
        .expect("submitted");
    let again = client
        .submit(&target, &talking_job("talk"))
        .await
        .expect("the same job");
    assert_eq!(
        (again.key.clone(), again.sequence),
        (first.key.clone(), first.sequence)
    );
    let mut other = talking_job("talk");
    other.args = vec!["different".into()];
    let taken = client
        .submit(&target, &other)
        .await
        .expect_err("another job");
    assert!(matches!(taken, ClientError::Taken { .. }), "{taken}");

    let mut output = Vec::new();
    let mut chunks = Box::pin(client.logs(&first.key, true));
    let followed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = chunks.next().await {
            output.extend_from_slice(&chunk.expect("a chunk"));
        }
    })
    .await;
    assert!(followed.is_ok(), "the output ended with the job");
    let text = String::from_utf8_lossy(&output);
    assert!(text.contains("line 1\nline 2\nline 3\n"), "{text}");
    let record = client
        .wait(&first.key, Duration::from_secs(30))
        .await
        .expect("ended");
    assert_eq!(
        (record.state, record.exit_code),
        (Some(JobState::Failed), Some(3))
    );

    let retried = client.retry(&first.key).await.expect("retried");
    assert_eq!(retried.key, Key::new("acme", "talk-retry1"));
    let retry = wait_for_job(&fleet, "acme.talk-retry1", "recorded", |job| {
        job.state.is_some()
    })
    .await;
    assert_eq!(
        retry.labels.get("retry_of").map(String::as_str),
        Some("talk")
    );

    let idle = Target::new("acme", "nobody").expect("a target");
    let spec = JobSpec {
        id: Some("idle".into()),
        entrypoint: Some("noop".into()),
        ..Default::default()
    };
    let queued = client.submit(&idle, &spec).await.expect("submitted");
    wait_for_job(&fleet, "acme.idle", "queued", |job| {
        job.state == Some(JobState::Queued)
    })
    .await;
    let cancelled = client.cancel(&queued.key).await.expect("cancel answered");
    assert!(cancelled.cancelled, "{}", cancelled.message);
    let never = client
        .wait(&Key::new("acme", "never"), Duration::from_millis(300))
        .await;
    assert!(
        matches!(never, Err(ClientError::TimedOut { .. })),
        "{never:?}"
    );
}
