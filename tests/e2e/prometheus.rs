//! What operators load into Prometheus, Grafana and KEDA: the alerts
//! (deploy/prometheus/alerts.yaml), the dashboard (deploy/grafana/shoal.json)
//! and the `--scaler prometheus` trigger are valid PromQL over metrics and
//! labels a real fleet serves, and the trigger's query adds up to the backlog
//! `supervise` reads.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use promql_parser::label::Matcher;
use promql_parser::parser::{self, Expr, LabelModifier};
use promql_parser::util::{walk_expr, ExprVisitor};
use shoal_protocol::tags::tag_set_key;
use shoal_protocol::Priority;

use crate::support::scrape::{loopback, scrape};
use crate::support::server::repo_dir;
use crate::support::{eventually, names, shoal, subjects, Fleet, NatsServer, ShoalProcess};

const WAIT: Duration = Duration::from_secs(40);

/// One sample of a scrape: its metric name, labels and value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of an OpenMetrics body.
fn samples(body: &str) -> Vec<Sample> {
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(parse_sample)
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        loop {
            let (at, character) = chars.next()?;
            match character {
                '}' => {
                    rest = &inner[at + 1..];
                    break;
                }
                ',' => {}
                '=' => {
                    chars.next()?; // the opening quote
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '\\' => value.push(chars.next()?.1),
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The selectors and grouping labels of a PromQL expression.
#[derive(Default)]
struct Uses {
    selectors: Vec<(String, Vec<Matcher>)>,
    grouping: BTreeSet<String>,
}

impl ExprVisitor for Uses {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let mut grouping = |modifier: &Option<LabelModifier>| {
            if let Some(modifier) = modifier {
                self.grouping
                    .extend(modifier.labels().labels.iter().cloned());
            }
        };
        match expr {
            Expr::Aggregate(aggregate) => grouping(&aggregate.modifier),
            Expr::Binary(binary) => {
                if let Some(modifier) = &binary.modifier {
                    grouping(&modifier.matching);
                }
            }
            Expr::VectorSelector(selector) => self.selectors.push((
                selector.name.clone().unwrap_or_default(),
                selector.matchers.matchers.clone(),
            )),
            Expr::MatrixSelector(matrix) => self.selectors.push((
                matrix.vs.name.clone().unwrap_or_default(),
                matrix.vs.matchers.matchers.clone(),
            )),
            _ => {}
        }
        Ok(true)
    }
}

fn uses_of(what: &str, query: &str) -> Uses {
    let expr = parser::parse(query).unwrap_or_else(|err| panic!("{what}: {err}\n{query}"));
    let mut uses = Uses::default();
    walk_expr(&mut uses, &expr).expect("walk");
    uses
}

/// Why `query` reads something the samples do not hold, if it does.
fn unserved(what: &str, query: &str, served: &[Sample]) -> Option<String> {
    let uses = uses_of(what, query);
    if uses.selectors.is_empty() {
        return Some(format!("{what}: reads no metric: {query}"));
    }
    let mut labels_of_its_metrics = BTreeSet::new();
    for (name, matchers) in &uses.selectors {
        let of_name: Vec<&Sample> = served.iter().filter(|s| &s.name == name).collect();
        if of_name.is_empty() {
            return Some(format!("{what}: no part serves {name}"));
        }
        for sample in &of_name {
            labels_of_its_metrics.extend(sample.labels.keys().cloned());
        }
        for matcher in matchers {
            if !of_name.iter().any(|s| s.labels.contains_key(&matcher.name)) {
                return Some(format!("{what}: {name} has no label {}", matcher.name));
            }
        }
    }
    let missing: Vec<&String> = uses.grouping.difference(&labels_of_its_metrics).collect();
    (!missing.is_empty()).then(|| format!("{what}: groups by {missing:?}, which no sample has"))
}

/// The sum of the samples `query`'s selectors pick (each sample once).
fn selected_sum(query: &str, served: &[Sample]) -> f64 {
    let uses = uses_of("query", query);
    let mut picked: BTreeMap<(String, Vec<(String, String)>), f64> = BTreeMap::new();
    for (name, matchers) in &uses.selectors {
        for sample in served.iter().filter(|s| &s.name == name) {
            let label = |key: &str| sample.labels.get(key).map_or("", String::as_str);
            if matchers.iter().all(|m| m.is_match(label(&m.name))) {
                let labels = sample.labels.clone().into_iter().collect();
                picked.insert((name.clone(), labels), sample.value);
            }
        }
    }
    picked.values().sum()
}

/// Every expression of the alert rules, checking each rule's shape.
fn alert_expressions() -> Vec<(String, String)> {
    let path = repo_dir().join("deploy/prometheus/alerts.yaml");
    let text = std::fs::read_to_string(&path).expect("alerts.yaml");
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).expect("alerts.yaml is YAML");
    let mut expressions = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let severity = rule["labels"]["severity"].as_str();
            assert!(
                matches!(severity, Some("critical" | "warning")),
                "{name}: severity {severity:?}"
            );
            for field in ["summary", "description"] {
                assert!(
                    rule["annotations"][field].as_str().is_some(),
                    "{name}: no {field}"
                );
            }
            let expr = rule["expr"].as_str().expect("expr").to_string();
            expressions.push((name.to_string(), expr));
        }
    }
    expressions
}

/// Every query of the Grafana dashboard, its variables given values.
fn dashboard_expressions() -> Vec<(String, String)> {
    let path = repo_dir().join("deploy/grafana/shoal.json");
    let text = std::fs::read_to_string(&path).expect("shoal.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("shoal.json is JSON");
    let mut expressions = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .expect("a target's expr")
                .replace("$__rate_interval", "1m")
                .replace("$group", ".*");
            expressions.push((panel["title"].as_str().expect("title").to_string(), expr));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = variable["definition"].as_str() {
            // label_values(METRIC, LABEL) reads LABEL of METRIC.
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|rest| rest.strip_suffix(')'))
                .expect("a label_values query");
            let (metric, label) = inner.split_once(", ").expect("metric and label");
            expressions.push((
                format!("variable {}", variable["name"]),
                format!("sum by ({label}) ({metric})"),
            ));
        }
    }
    expressions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_and_the_dashboard_read_metrics_and_labels_a_real_fleet_serves() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let at: Vec<String> = (0..4).map(|_| loopback()).collect();
    let _projector =
        ShoalProcess::start(&server, &["projector", "run", "--metrics-listen", &at[0]]);
    let _registry =
        ShoalProcess::registry_with(&server, "10s", &[("SHOAL_METRICS_LISTEN", &at[1])]).await;
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--metrics-listen", &at[2]]);
    let pool = "name: metered\nversion: v1\ntype: pool\npool:\n  queues: [spare]\n  group: acme\n  replicas: 1\n";
    let _supervisor =
        ShoalProcess::supervisor(&server, pool, &[], &[("SHOAL_METRICS_LISTEN", &at[3])]);
    fleet
        .publish_job("acme", "default", r#"{"id":"ok","entrypoint":"noop"}"#)
        .await;
    fleet
        .publish_job(
            "acme",
            "default",
            r#"{"id":"bad","entrypoint":"nope","retry":{"max_attempts":2,"initial":"100ms"}}"#,
        )
        .await;

    let mut expressions = alert_expressions();
    assert!(expressions.len() >= 3, "the alerts operators expect");
    expressions.extend(dashboard_expressions());
    eventually(WAIT, "every query reads what the parts serve", || async {
        let mut served = Vec::new();
        for addr in &at {
            served.extend(samples(&scrape(addr).await?));
        }
        let failures: Vec<String> = expressions
            .iter()
            .filter_map(|(what, expr)| unserved(what, expr, &served))
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n"))
        }
    })
    .await;
}

#[test]
fn a_query_naming_an_unserved_metric_or_label_is_caught() {
    let served = samples(
        "# TYPE shoal_queue_depth gauge\nshoal_queue_depth{group=\"acme\",queue=\"q\",priority=\"normal\",tags=\"a,b\"} 3\n",
    );
    assert_eq!(served[0].labels["tags"], "a,b");
    assert_eq!(
        unserved("ok", "sum by (group) (shoal_queue_depth)", &served),
        None
    );
    assert!(unserved("typo", "shoal_queue_dept", &served).is_some());
    assert!(unserved("label", "shoal_queue_depth{qeue=\"q\"}", &served).is_some());
    assert!(unserved("grouping", "max by (pool) (shoal_queue_depth)", &served).is_some());
    // Each side of an expression is read, also past a function call.
    let after_a_call = "sum(rate(shoal_queue_depth[1m])) / sum by (qeue) (shoal_queue_depth)";
    assert!(unserved("after a call", after_a_call, &served).is_some());
    assert_eq!(
        selected_sum("sum(shoal_queue_depth{tags=\"a,b\"})", &served),
        3.0
    );
}

/// The prometheus query of each pool's rendered ScaledObject, and the
/// registry's Deployment, for a file holding `pools`.
fn rendered_prometheus(pools: &str) -> (Vec<String>, serde_yaml::Value) {
    use serde::Deserialize;
    let dir = crate::support::server::TempDir::new("prometheus-pool");
    let file = dir.path().join("pools.yaml");
    std::fs::write(&file, pools).expect("write");
    let path = file.display().to_string();
    let output = shoal(
        None,
        &["render", "k8s", "-f", &path, "--scaler", "prometheus"],
    );
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).expect("YAML");
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).expect("YAML"))
        .collect();
    let queries = docs
        .iter()
        .filter(|doc| doc["kind"] == "ScaledObject")
        .map(|scaled| {
            let trigger = &scaled["spec"]["triggers"][0];
            assert_eq!(trigger["type"], "prometheus");
            assert_eq!(trigger["metadata"]["threshold"], "5", "supervise's default");
            trigger["metadata"]["query"]
                .as_str()
                .expect("query")
                .to_string()
        })
        .collect();
    let registry = docs
        .iter()
        .find(|doc| doc["metadata"]["name"] == "shoal-registry")
        .expect("the registry")
        .clone();
    (queries, registry)
}

/// What supervise reads as the backlog of `consumers`.
async fn backlog_of(fleet: &Fleet, consumers: &[String]) -> Result<u64, String> {
    let stream = fleet
        .js
        .get_stream(names().jobs_stream())
        .await
        .map_err(|err| err.to_string())?;
    let mut backlog = 0;
    for name in consumers {
        let info = stream
            .consumer_info(name)
            .await
            .map_err(|err| format!("{name}: {err}"))?;
        backlog += info.num_pending + info.num_ack_pending as u64;
    }
    Ok(backlog)
}

/// Starts a one-slot worker of `acme/<queue>` with `tags`, and gives it a
/// long job, so that every later job of it waits.
async fn busy_worker(server: &NatsServer, fleet: &Fleet, queue: &str, tags: &str) -> ShoalProcess {
    let name = format!("{queue}-{}", if tags.is_empty() { "plain" } else { tags });
    let mut args = vec![
        "--group",
        "acme",
        "--queues",
        queue,
        "--name",
        &name,
        "--concurrency",
        "1",
    ];
    if !tags.is_empty() {
        args.extend(["--tags", tags]);
    }
    let worker = ShoalProcess::worker(server, &args);
    fleet.worker_id("acme", &name).await;
    let tags: Vec<&str> = tags.split(',').filter(|tag| !tag.is_empty()).collect();
    let body = serde_json::json!({"id": format!("hold-{name}"), "entrypoint": "sleep", "args": ["120s"], "tags": tags});
    fleet.publish_job("acme", queue, &body.to_string()).await;
    crate::support::wait_for_job(fleet, &format!("acme.hold-{name}"), "running", |job| {
        job.state == Some(shoal_protocol::JobState::Running)
    })
    .await;
    worker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prometheus_trigger_adds_up_each_pools_backlog_as_supervise_reads_it() {
    let pools = "name: encoders\nversion: v1\ntype: pool\npool:\n  group: acme\n  queues: [video]\n  tags: [ffmpeg]\n  autoscaling: {enabled: true, maxReplicas: 4}\n---\nname: mailers\nversion: v1\ntype: pool\npool:\n  group: acme\n  queues: [mail]\n  autoscaling: {enabled: true, maxReplicas: 4}\n";
    let (queries, registry_deployment) = rendered_prometheus(pools);
    let pod = &registry_deployment["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    let env = pod["spec"]["containers"][0]["env"]
        .as_sequence()
        .expect("env");
    assert!(
        env.iter()
            .any(|var| var["name"] == "SHOAL_METRICS_LISTEN" && var["value"] == "0.0.0.0:9464"),
        "the registry serves what the query reads: {env:?}"
    );

    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let registry_at = loopback();
    let _projector = ShoalProcess::projector(&server);
    let _registry =
        ShoalProcess::registry_with(&server, "10s", &[("SHOAL_METRICS_LISTEN", &registry_at)])
            .await;
    let _workers = [
        busy_worker(&server, &fleet, "video", "ffmpeg").await,
        busy_worker(&server, &fleet, "video", "gpu").await,
        busy_worker(&server, &fleet, "mail", "").await,
    ];
    for (queue, id, tags) in [
        ("video", "ffmpeg-1", r#"["ffmpeg"]"#),
        ("video", "gpu-1", r#"["gpu"]"#),
        ("video", "gpu-2", r#"["gpu"]"#),
        ("mail", "mail-1", "[]"),
        ("mail", "mail-2", "[]"),
    ] {
        let body = format!(r#"{{"id":"{id}","entrypoint":"noop","tags":{tags}}}"#);
        fleet.publish_job("acme", queue, &body).await;
    }
    let high = subjects().jobs_with_priority("acme", "mail", Priority::High);
    fleet
        .js
        .publish(high, r#"{"id":"urgent","entrypoint":"noop"}"#.into())
        .await
        .expect("publish")
        .await
        .expect("publish ack");

    // What supervise sums for each pool: its queue at every priority, and
    // the route of its tag set.
    let names = names();
    let queue_consumers = |queue: &str| -> Vec<String> {
        Priority::ORDER
            .into_iter()
            .map(|priority| names.queue_consumer_name("acme", queue, priority))
            .collect()
    };
    let mut encoders = queue_consumers("video");
    encoders.push(names.route_consumer_name("acme", "video", &tag_set_key(&["ffmpeg".into()])));
    // The ffmpeg route holds one running and one waiting job (the gpu
    // route's three are another pool's); mail one running, two normal and
    // one high waiting.
    for (query, consumers, expected) in [
        (&queries[0], encoders, 2),
        (&queries[1], queue_consumers("mail"), 4),
    ] {
        eventually(WAIT, &format!("{query} to sum {expected}"), || async {
            let backlog = backlog_of(&fleet, &consumers).await?;
            let served = samples(&scrape(&registry_at).await?);
            let summed = selected_sum(query, &served);
            if backlog == expected && summed == expected as f64 {
                Ok(())
            } else {
                Err(format!(
                    "supervise reads {backlog}, the query sums {summed}"
                ))
            }
        })
        .await;
    }
}
