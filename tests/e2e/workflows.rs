//! Dependencies and workflows: a job waits for its parents without taking
//! a slot, runs once they all succeeded (reading their results), and is
//! skipped when one ends otherwise; a workflow is submitted whole or not at
//! all, shown with each job's state, cancelled, and rebuilt from the streams.

use std::time::Duration;

use async_nats::jetstream::kv;
use shoal_protocol::{JobRecord, JobState};

use crate::projection::{clear, snapshot};
use crate::support::server::TempDir;
use crate::support::{names, wait_for_job, Fleet, NatsServer, ShoalProcess};

/// A diamond a → (b, c) → d whose branch c fails, and e, which joins the
/// same branches but runs all the same.
const DIAMOND: &str = r#"
name: diamond
worker_group: etl
jobs:
  - id: a
    command: [sh, -c, 'sleep 0.3; printf "{\"rows\":7}" > "$SHOAL_RESULT_FILE"']
  - id: b
    depends_on: [a]
    command: [sh, -c, 'cp "$SHOAL_PARENT_RESULTS" "$SHOAL_RESULT_FILE"']
  - id: c
    depends_on: [a]
    command: [sh, -c, 'exit 3']
  - id: d
    depends_on: [b, c]
    command: [sh, -c, 'echo never']
  - id: e
    depends_on: [b, c]
    on_parent_failure: run
    command: [sh, -c, 'cp "$SHOAL_PARENT_RESULTS" "$SHOAL_RESULT_FILE"']
"#;

/// What a `shoal` command said: whether it succeeded, its stdout and its stderr.
struct Said {
    success: bool,
    stdout: String,
    stderr: String,
}

fn shoal(server: Option<&NatsServer>, args: &[&str]) -> Said {
    let out = crate::support::shoal(server, args);
    Said {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write_flow(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("workflow file");
    path.display().to_string()
}

async fn job(fleet: &Fleet, id: &str) -> JobRecord {
    wait_for_job(fleet, &format!("acme.{id}"), "ended", |job| job.done).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_whose_branch_fails_skips_its_join_and_a_join_that_runs_anyway_reads_its_parents_results(
) {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let mut projector = ShoalProcess::projector(&server);
    let mut registry = ShoalProcess::registry(&server).await;
    let mut worker = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "acme",
            "--queues",
            "etl",
            "--allow-exec",
            "true",
            "--concurrency",
            "4",
        ],
    );
    let dir = tempfile_dir();
    let flow = write_flow(dir.path(), "diamond.yaml", DIAMOND);
    let submitted = shoal(
        Some(&server),
        &["workflow", "submit", "-f", &flow, "-g", "acme"],
    );
    assert!(submitted.success, "{}", submitted.stderr);
    assert!(submitted.stdout.contains("5 jobs"), "{}", submitted.stdout);

    let a = job(&fleet, "diamond-a").await;
    let b = job(&fleet, "diamond-b").await;
    let c = job(&fleet, "diamond-c").await;
    let d = job(&fleet, "diamond-d").await;
    let e = job(&fleet, "diamond-e").await;
    assert_eq!(a.state, Some(JobState::Succeeded));
    assert_eq!(b.state, Some(JobState::Succeeded));
    assert_eq!(c.state, Some(JobState::Failed));
    assert_eq!(d.state, Some(JobState::Skipped), "{d:?}");
    assert_eq!(d.error_text.as_deref(), Some("parent diamond-c failed"));
    assert_eq!(d.started_at, None, "a skipped job never ran");
    assert_eq!(e.state, Some(JobState::Succeeded), "{e:?}");
    // No child started before its parents ended.
    let finished = |job: &JobRecord| job.finished_at.expect("an end");
    let started = |job: &JobRecord| job.started_at.expect("a start");
    assert!(started(&b) >= finished(&a) && started(&c) >= finished(&a));
    assert!(started(&e) >= finished(&b) && started(&e) >= finished(&c));
    // A child reads its parents' results, by id.
    let results = |job: &JobRecord| -> serde_json::Value {
        serde_json::from_str(job.result.as_ref().expect("a result").json()).expect("json")
    };
    assert_eq!(results(&b), serde_json::json!({"diamond-a": {"rows": 7}}));
    assert_eq!(
        results(&e),
        serde_json::json!({"diamond-b": {"diamond-a": {"rows": 7}}, "diamond-c": null})
    );

    let table = shoal(Some(&server), &["workflow", "get", "diamond", "-g", "acme"]);
    assert!(table.success, "{}", table.stderr);
    for line in [
        "diamond-d  skipped",
        "diamond-c  failed",
        "parent diamond-c failed",
    ] {
        assert!(table.stdout.contains(line), "{line} in\n{}", table.stdout);
    }
    let graph = shoal(
        Some(&server),
        &["workflow", "get", "diamond", "-g", "acme", "-o", "dot"],
    );
    assert!(
        graph.stdout.starts_with("digraph \"diamond\""),
        "{}",
        graph.stdout
    );
    assert!(graph.stdout.contains("\"a\" -> \"b\"") && graph.stdout.contains("d\\nskipped"));

    // The workflow and its jobs are rebuilt from the streams alone.
    for process in [&mut worker, &mut registry, &mut projector] {
        process.signal(libc::SIGTERM);
        process.wait_exit(Duration::from_secs(30));
    }
    let workflows = workflows_bucket(&fleet).await;
    let (jobs_before, workflows_before) = (snapshot(&fleet.jobs).await, snapshot(&workflows).await);
    assert_eq!(
        workflows_before["acme.diamond"]["jobs"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    clear(&fleet.jobs).await;
    clear(&workflows).await;
    let mut replay = ShoalProcess::start(&server, &["projector", "run", "--replay"]);
    let status = replay
        .wait_exit(Duration::from_secs(60))
        .expect("the replay ends");
    assert!(status.success(), "{}", replay.log());
    assert_eq!(snapshot(&workflows).await, workflows_before);
    let rebuilt = snapshot(&fleet.jobs).await;
    for id in [
        "diamond-a",
        "diamond-b",
        "diamond-c",
        "diamond-d",
        "diamond-e",
    ] {
        let key = format!("acme.{id}");
        assert_eq!(rebuilt[&key]["state"], jobs_before[&key]["state"], "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_with_a_cycle_or_an_unknown_parent_is_refused_whole_and_stores_nothing() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let dir = tempfile_dir();
    let cycle = write_flow(
        dir.path(),
        "cycle.yaml",
        "name: loop\njobs:\n- {id: a, entrypoint: noop}\n- {id: b, entrypoint: noop, depends_on: [a, d]}\n\
         - {id: c, entrypoint: noop, depends_on: [b]}\n- {id: d, entrypoint: noop, depends_on: [c]}\n",
    );
    let refused = shoal(
        Some(&server),
        &["workflow", "submit", "-f", &cycle, "-g", "acme"],
    );
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("a cycle: b → c → d → b"),
        "{}",
        refused.stderr
    );
    let unknown = write_flow(
        dir.path(),
        "unknown.yaml",
        "name: lost\njobs:\n- {id: a, entrypoint: noop}\n- {id: b, entrypoint: noop, depends_on: [ghost]}\n",
    );
    let refused = shoal(
        Some(&server),
        &["workflow", "submit", "-f", &unknown, "-g", "acme"],
    );
    assert!(!refused.success);
    assert!(refused.stderr.contains("`ghost`"), "{}", refused.stderr);

    // A valid one is stored once; the same name again is refused.
    let fine = write_flow(
        dir.path(),
        "fine.yaml",
        "name: fine\njobs:\n- {id: a, entrypoint: noop}\n",
    );
    let stored = shoal(
        Some(&server),
        &["workflow", "submit", "-f", &fine, "-g", "acme"],
    );
    assert!(stored.success, "{}", stored.stderr);
    let workflows = workflows_bucket(&fleet).await;
    crate::support::eventually(Duration::from_secs(10), "the workflow folded", || async {
        workflows.get("acme.fine").await.ok().flatten().is_some()
    })
    .await;
    let again = shoal(
        Some(&server),
        &["workflow", "submit", "-f", &fine, "-g", "acme"],
    );
    assert!(!again.success);
    assert!(
        again.stderr.contains("workflow fine exists"),
        "{}",
        again.stderr
    );

    let stream = fleet
        .js
        .get_stream(names().jobs_stream())
        .await
        .expect("jobs stream");
    let mut stream = stream;
    let messages = stream.info().await.expect("info").state.messages;
    assert_eq!(messages, 2, "the one valid workflow: its job and its graph");
    let jobs = snapshot(&fleet.jobs).await;
    assert_eq!(jobs.keys().collect::<Vec<_>>(), ["acme.fine-a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_for_a_parent_not_submitted_yet_and_cancelling_a_parent_skips_its_descendants()
{
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--concurrency", "1"]);
    let submit = |args: &[&str]| {
        let mut all = vec!["job", "submit", "-g", "acme"];
        all.extend_from_slice(args);
        let out = shoal(Some(&server), &all);
        assert!(out.success, "{}", out.stderr);
    };
    submit(&["--id", "child", "--depends-on", "parent", "noop"]);
    submit(&["--id", "grandchild", "--depends-on", "child", "noop"]);
    let child = wait_for_job(&fleet, "acme.child", "held by its parent", |job| {
        job.attempt > 0 && job.state == Some(JobState::Waiting)
    })
    .await;
    assert_eq!(child.waiting_for.as_deref(), Some("parents parent"));
    submit(&["--id", "parent", "sleep", "30s"]);
    wait_for_job(&fleet, "acme.parent", "running", |job| {
        job.state == Some(JobState::Running)
    })
    .await;
    // The only slot runs the parent; the children wait without one.
    let cancelled = shoal(Some(&server), &["job", "cancel", "-g", "acme", "parent"]);
    assert!(cancelled.success, "{}", cancelled.stderr);
    let child = job(&fleet, "child").await;
    assert_eq!(child.state, Some(JobState::Skipped));
    assert_eq!(child.error_text.as_deref(), Some("parent parent cancelled"));
    let grandchild = job(&fleet, "grandchild").await;
    assert_eq!(grandchild.state, Some(JobState::Skipped));
    assert_eq!(
        grandchild.error_text.as_deref(),
        Some("parent child skipped")
    );
}

async fn workflows_bucket(fleet: &Fleet) -> kv::Store {
    fleet
        .js
        .get_key_value(names().workflows_bucket())
        .await
        .expect("workflows bucket")
}

fn tempfile_dir() -> TempDir {
    TempDir::new("workflow")
}
