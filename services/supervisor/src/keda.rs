//! The KEDA triggers of a pool's ScaledObject: its backlog, read from the
//! NATS monitoring endpoint (one trigger per consumer) or from Prometheus
//! (one query summing the registry's `shoal_queue_depth` over the same
//! consumers, as `supervise` sums them), and the CPU and memory targets the
//! pool declares.

use serde_json::{json, Value};
use shoal_client::streams::Layout;
use shoal_protocol::names::JobConsumer;
use shoal_protocol::resource::{Amounts, PoolSection};
use shoal_protocol::Subjects;

use crate::kubernetes::{RenderArgs, Scaler};
use crate::SupervisorError;

/// Every trigger of the pool `name` of `group`.
pub(crate) fn triggers(
    args: &RenderArgs,
    name: &str,
    group: &str,
    pool: &PoolSection,
) -> Result<Vec<Value>, SupervisorError> {
    let layout = Layout::new(Subjects::default());
    let consumers = layout.pool_consumers(group, pool);
    let mut triggers = match args.scaler {
        Scaler::NatsJetstream => consumers
            .iter()
            .map(|consumer| jetstream_trigger(args, &layout.jobs_stream(), consumer))
            .collect(),
        Scaler::Prometheus => vec![prometheus_trigger(args, &consumers)],
    };
    let Some(scaling) = &pool.autoscaling else {
        return Ok(triggers);
    };
    let requests = pool
        .resources
        .as_ref()
        .and_then(|resources| resources.requests.as_ref());
    let targets = [
        (
            "cpu",
            "targetCPUUtilizationPercentage",
            scaling.target_cpu_utilization_percentage,
            requests.and_then(|amounts: &Amounts| amounts.cpu.as_ref()),
        ),
        (
            "memory",
            "targetMemoryUtilizationPercentage",
            scaling.target_memory_utilization_percentage,
            requests.and_then(|amounts: &Amounts| amounts.memory.as_ref()),
        ),
    ];
    for (kind, field, target, request) in targets {
        let Some(target) = target else { continue };
        if request.is_none() {
            // The HPA measures use against the request; without one it cannot scale.
            return Err(SupervisorError::Pool(format!(
                "{name}: pool.autoscaling.{field} cannot be rendered: KEDA's {kind} trigger \
                 measures use against pool.resources.requests.{kind}, which the pool does not set"
            )));
        }
        triggers.push(json!({
            "type": kind,
            "metricType": "Utilization",
            "metadata": {"value": target.to_string()},
        }));
    }
    Ok(triggers)
}

fn jetstream_trigger(args: &RenderArgs, stream: &str, consumer: &str) -> Value {
    json!({
        "type": "nats-jetstream",
        "metadata": {
            "natsServerMonitoringEndpoint": args.monitoring_endpoint,
            "account": "$G",
            "stream": stream,
            "consumer": consumer,
            "lagThreshold": args.target_backlog.to_string(),
        },
    })
}

fn prometheus_trigger(args: &RenderArgs, consumers: &[String]) -> Value {
    json!({
        "type": "prometheus",
        "metadata": {
            "serverAddress": args.prometheus_address,
            "query": backlog_query(consumers),
            "threshold": args.target_backlog.to_string(),
        },
    })
}

/// The PromQL sum of `shoal_queue_depth` over `consumers`: every priority of
/// their queues, and the routes of their tag sets. Each registry replica
/// serves the same figures, so the replicas' series are collapsed by `max`.
pub(crate) fn backlog_query(consumers: &[String]) -> String {
    let parsed: Vec<JobConsumer> = consumers
        .iter()
        .filter_map(|name| JobConsumer::parse(name))
        .collect();
    let one_of = |values: Vec<&str>| {
        let mut values: Vec<String> = values.into_iter().map(regex_escape).collect();
        values.sort();
        values.dedup();
        values.join("|")
    };
    let groups = one_of(parsed.iter().map(|c| c.group.as_str()).collect());
    let queues = one_of(parsed.iter().map(|c| c.queue.as_str()).collect());
    let scope = format!(r#"group=~"{groups}", queue=~"{queues}""#);
    let mut selectors = vec![format!(
        r#"shoal_queue_depth{{{scope}, priority!="routed"}}"#
    )];
    let mut routes: Vec<String> = parsed
        .iter()
        .filter(|consumer| consumer.priority.is_none())
        .map(JobConsumer::tags_label)
        .collect();
    routes.sort();
    routes.dedup();
    for tags in routes {
        selectors.push(format!(
            r#"shoal_queue_depth{{{scope}, priority="routed", tags="{tags}"}}"#
        ));
    }
    format!(
        "sum(max by (group, queue, priority, tags) ({})) or vector(0)",
        selectors.join(" or ")
    )
}

/// `value` as a literal in a PromQL regular expression (inside a double-quoted string).
fn regex_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        if r"\.+*?()|[]{}^$".contains(character) {
            escaped.push_str(r"\\");
        }
        if character == '"' {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_protocol::names::Names;
    use shoal_protocol::Priority;

    #[test]
    fn the_backlog_query_sums_every_priority_and_the_pools_own_route() {
        let names = Names::new(Subjects::default());
        let mut consumers: Vec<String> = Priority::ORDER
            .into_iter()
            .map(|priority| names.queue_consumer_name("acme", "video", priority))
            .collect();
        consumers.push(names.route_consumer_name("acme", "video", "ffmpeg~gpu"));
        assert_eq!(
            backlog_query(&consumers),
            r#"sum(max by (group, queue, priority, tags) (shoal_queue_depth{group=~"acme", queue=~"video", priority!="routed"} or shoal_queue_depth{group=~"acme", queue=~"video", priority="routed", tags="ffmpeg,gpu"})) or vector(0)"#
        );
    }

    #[test]
    fn names_are_matched_literally() {
        assert_eq!(regex_escape("a.b"), r"a\\.b");
        assert_eq!(regex_escape("plain-name_1"), "plain-name_1");
    }
}
