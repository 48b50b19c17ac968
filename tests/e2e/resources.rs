//! Workers and pools as YAML resources: applied, listed and deleted three
//! ways; a dry run writes nothing; a wrong field is refused with its path.

use crate::support::server::{repo_dir, TempDir};
use crate::support::{names, shoal, Fleet, NatsServer, ShoalProcess};

fn run_ok(server: &NatsServer, args: &[&str]) -> String {
    let output = shoal(Some(server), args);
    assert!(
        output.status.success(),
        "shoal {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn examples() -> Vec<String> {
    let dir = repo_dir().join("deploy/examples");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("deploy/examples")
        .map(|entry| entry.expect("entry").path().display().to_string())
        .filter(|path| path.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "the examples are there");
    files
}

async fn pool_keys(fleet: &Fleet) -> Vec<String> {
    use futures_util::StreamExt;
    let js = &fleet.js;
    let store = js
        .get_key_value(names().pools_bucket())
        .await
        .expect("pools bucket");
    let mut keys = Vec::new();
    let mut listed = store.keys().await.expect("the pool keys");
    while let Some(key) = listed.next().await {
        keys.push(key.expect("key"));
    }
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_applies_once_then_changes_nothing_and_each_delete_form_works() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _registry = ShoalProcess::registry(&server).await;

    for file in examples() {
        let applied = run_ok(&server, &["apply", "-f", &file, "-w", "ops"]);
        assert!(
            !applied.is_empty() && applied.lines().all(|line| line.ends_with(": created")),
            "{file}: {applied}"
        );
    }
    for file in examples() {
        let again = run_ok(&server, &["apply", "-f", &file, "-w", "ops"]);
        assert!(
            !again.is_empty() && again.lines().all(|line| line.ends_with(": unchanged")),
            "{file}: {again}"
        );
    }
    assert_eq!(
        pool_keys(&fleet).await,
        vec!["acme.video-pool", "ops.ops-pool"]
    );

    let pools = run_ok(&server, &["get", "-t", "pool", "-a"]);
    assert!(pools.contains("video-pool | v1 | pool | acme"), "{pools}");
    let workers = run_ok(
        &server,
        &["get", "-t", "worker", "-w", "acme", "-o", "json"],
    );
    let workers: serde_json::Value = serde_json::from_str(&workers).expect("json");
    assert_eq!(workers[0]["name"], "reports");
    assert_eq!(workers[0]["worker"]["queues"][0], "reports");

    let scratch = TempDir::new("resources");
    let video = std::fs::read_to_string(repo_dir().join("deploy/examples/video-pool.yaml"))
        .expect("example");
    let dry = scratch.path().join("dry.yaml");
    std::fs::write(
        &dry,
        video
            .replace("name: video-pool", "name: trial-pool")
            .replace("dryRun: false", "dryRun: true"),
    )
    .expect("write");
    let said = run_ok(&server, &["apply", "-f", dry.to_str().expect("utf-8")]);
    assert!(
        said.contains("pool trial-pool in group acme: would be created (dry run)"),
        "{said}"
    );
    let changed = scratch.path().join("changed.yaml");
    std::fs::write(
        &changed,
        video
            .replace("maxReplicas: 6", "maxReplicas: 8")
            .replace("dryRun: false", "dryRun: true"),
    )
    .expect("write");
    let said = run_ok(&server, &["apply", "-f", changed.to_str().expect("utf-8")]);
    assert!(said.contains("would be updated (dry run)"), "{said}");
    assert_eq!(
        pool_keys(&fleet).await,
        vec!["acme.video-pool", "ops.ops-pool"],
        "a dry run writes nothing"
    );
    let unchanged = run_ok(
        &server,
        &[
            "apply",
            "-f",
            &repo_dir()
                .join("deploy/examples/video-pool.yaml")
                .display()
                .to_string(),
        ],
    );
    assert!(
        unchanged.contains("unchanged"),
        "the dry runs changed nothing: {unchanged}"
    );

    let bad = scratch.path().join("bad.yaml");
    std::fs::write(&bad, video.replace("maxReplicas: 6", "maxReplicas: six")).expect("write");
    let refused = shoal(
        Some(&server),
        &["apply", "-f", bad.to_str().expect("utf-8")],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "pool.autoscaling.maxReplicas: invalid type: string \"six\", expected integer"
        ),
        "{stderr}"
    );
    let unknown = scratch.path().join("unknown.yaml");
    std::fs::write(&unknown, video.replace("  replicas: 2", "  replicaz: 2")).expect("write");
    let refused = shoal(
        Some(&server),
        &["apply", "-f", unknown.to_str().expect("utf-8")],
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("pool: unknown field `replicaz`"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let ops = repo_dir()
        .join("deploy/examples/ops-pool.yaml")
        .display()
        .to_string();
    let deleted = run_ok(&server, &["delete", "-f", &ops, "-w", "ops"]);
    assert_eq!(
        deleted
            .lines()
            .filter(|line| line.ends_with(": deleted"))
            .count(),
        2,
        "{deleted}"
    );
    run_ok(
        &server,
        &["delete", "-t", "pool", "-n", "video-pool", "-w", "acme"],
    );
    let identifier = run_ok(&server, &["get", "-t", "worker", "-w", "acme"])
        .lines()
        .find(|line| line.starts_with("reports |"))
        .map(|line| {
            line.split("  ")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .expect("the reports worker is listed");
    run_ok(&server, &["delete", "-i", &identifier]);

    assert_eq!(pool_keys(&fleet).await, Vec::<String>::new());
    let left = run_ok(&server, &["get", "-t", "worker", "-a", "-o", "json"]);
    assert_eq!(left.trim(), "[]", "{left}");
    let missing = shoal(
        Some(&server),
        &["delete", "-t", "pool", "-n", "video-pool", "-w", "acme"],
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("code 404"));
}
