//! `shoal render k8s`: the manifests of a pool name the live stream and
//! consumer of its queue, and the checked-in example is what the code renders.

use std::time::Duration;

use shoal_protocol::tags::tag_set_key;
use shoal_protocol::Priority;

use crate::support::server::repo_dir;
use crate::support::{eventually, names, shoal, Fleet, NatsServer, ShoalProcess};

fn render(file: &str) -> String {
    render_with(file, &[])
}

fn render_with(file: &str, flags: &[&str]) -> String {
    let path = repo_dir().join(file).display().to_string();
    let mut args = vec!["render", "k8s", "-f", &path];
    args.extend_from_slice(flags);
    let output = shoal(None, &args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("YAML text")
}

fn documents(text: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|document| serde_yaml::Value::deserialize(document).expect("YAML"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scaled_object_names_the_live_stream_and_consumer_of_the_pools_queue() {
    let text = render("deploy/examples/video-pool.yaml");
    let docs = documents(&text);
    let kinds: Vec<&str> = docs.iter().filter_map(|doc| doc["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        vec!["Deployment", "ScaledObject", "Deployment", "Deployment"]
    );
    let scaled = docs
        .iter()
        .find(|doc| doc["kind"] == "ScaledObject")
        .expect("a ScaledObject");
    let trigger = &scaled["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "nats-jetstream");
    assert_eq!(
        (
            scaled["spec"]["minReplicaCount"].as_u64(),
            scaled["spec"]["maxReplicaCount"].as_u64()
        ),
        (Some(1), Some(6))
    );
    let workers = &docs[0];
    let grace = workers["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    assert!(
        grace > 30,
        "Kubernetes must wait longer than a worker drains"
    );
    for name in ["shoal-projector", "shoal-registry"] {
        let service = docs
            .iter()
            .find(|doc| doc["metadata"]["name"] == name)
            .expect("a service Deployment");
        assert_eq!(service["spec"]["replicas"].as_u64(), Some(2));
    }

    // A worker of the pool (its group, queue and tags) and the registry's
    // dispatcher create every consumer KEDA reads: each priority of the
    // queue and the route of the pool's tag set.
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let _worker = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "acme",
            "--queues",
            "video",
            "--tags",
            "ffmpeg",
            "--name",
            "pool-replica",
        ],
    );
    let triggers = scaled["spec"]["triggers"].as_sequence().expect("triggers");
    let consumers: Vec<&str> = triggers
        .iter()
        .filter(|trigger| trigger["type"] == "nats-jetstream")
        .map(|trigger| trigger["metadata"]["consumer"].as_str().expect("consumer"))
        .collect();
    // The pool's CPU and memory targets, as the HPA reads them.
    let utilization: Vec<(&str, &str)> = triggers
        .iter()
        .filter(|trigger| trigger["metricType"] == "Utilization")
        .map(|trigger| {
            (
                trigger["type"].as_str().expect("type"),
                trigger["metadata"]["value"].as_str().expect("value"),
            )
        })
        .collect();
    assert_eq!(utilization, [("cpu", "80"), ("memory", "75")]);
    let names = names();
    let queue = |priority| names.queue_consumer_name("acme", "video", priority);
    let route = names.route_consumer_name("acme", "video", &tag_set_key(&["ffmpeg".into()]));
    assert_eq!(
        consumers,
        [
            queue(Priority::High),
            queue(Priority::Normal),
            queue(Priority::Low),
            route
        ]
    );
    let stream_name = trigger["metadata"]["stream"].as_str().expect("stream");
    let stream = fleet
        .js
        .get_stream(stream_name)
        .await
        .expect("the stream KEDA reads exists");
    for consumer_name in consumers {
        let what = format!("a consumer {consumer_name} on {stream_name}");
        eventually(Duration::from_secs(20), &what, || async {
            stream.consumer_info(consumer_name).await.is_ok()
        })
        .await;
    }
}

#[test]
fn the_checked_in_kubernetes_examples_are_what_the_code_renders() {
    for (file, flags) in [
        ("video-pool.yaml", &[][..]),
        (
            "video-pool-prometheus.yaml",
            &["--scaler", "prometheus"][..],
        ),
    ] {
        let rendered = render_with("deploy/examples/video-pool.yaml", flags);
        let checked_in =
            std::fs::read_to_string(repo_dir().join("deploy/k8s").join(file)).expect("example");
        assert_eq!(
            checked_in, rendered,
            "deploy/k8s/{file} is stale: render it again"
        );
    }
}

#[test]
fn a_cpu_target_without_a_cpu_request_is_refused_with_both_fields_named() {
    let dir = crate::support::server::TempDir::new("render-cpu");
    let file = dir.path().join("pool.yaml");
    let pool = "name: hot\nversion: v1\ntype: pool\npool:\n  queues: [q]\n  autoscaling: {enabled: true, maxReplicas: 3, targetCPUUtilizationPercentage: 70}\n";
    std::fs::write(&file, pool).expect("write");
    let output = shoal(None, &["render", "k8s", "-f", &file.display().to_string()]);
    assert!(!output.status.success());
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        errors.contains("pool.autoscaling.targetCPUUtilizationPercentage")
            && errors.contains("pool.resources.requests.cpu"),
        "{errors}"
    );
}

#[test]
fn a_worker_resource_is_refused_for_it_is_no_pool() {
    let output = shoal(
        None,
        &[
            "render",
            "k8s",
            "-f",
            &repo_dir()
                .join("deploy/examples/reports-worker.yaml")
                .display()
                .to_string(),
        ],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("only pools are rendered"));
}

/// Runs the offline validator (deploy/k8s/validate.py) on a manifest file.
fn validate(path: &std::path::Path) -> std::process::Output {
    let python_tools = std::env::var("SHOAL_PYTHON_TOOLS")
        .unwrap_or_else(|_| repo_dir().join(".tools/python").display().to_string());
    std::process::Command::new("python3")
        .arg(repo_dir().join("deploy/k8s/validate.py"))
        .arg(path)
        .env("PYTHONPATH", python_tools)
        .output()
        .expect("run python3 (deploy/tools.sh installs the validator)")
}

#[test]
fn the_rendered_manifests_pass_the_kubernetes_and_keda_schemas_and_a_broken_one_does_not() {
    let dir = crate::support::server::TempDir::new("render");
    let good = dir.path().join("pool.yaml");
    let prometheus = render_with(
        "deploy/examples/video-pool.yaml",
        &["--scaler", "prometheus"],
    );
    let rendered = render("deploy/examples/video-pool.yaml");
    for manifests in [&prometheus, &rendered] {
        std::fs::write(&good, manifests).expect("write");
        let output = validate(&good);
        assert!(
            output.status.success(),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout)
                .matches("valid: ")
                .count(),
            4
        );
    }

    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        rendered
            .replace("maxReplicaCount: 6", "maxReplicaCount: six")
            .replace("- name: SHOAL_NATS_URL", "- nmae: SHOAL_NATS_URL"),
    )
    .expect("write");
    let output = validate(&broken);
    assert!(!output.status.success());
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        errors.contains("invalid: ScaledObject/shoal-pool-video-pool")
            && errors.contains("invalid: Deployment/"),
        "{errors}"
    );
}
