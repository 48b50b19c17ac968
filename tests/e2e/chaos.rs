//! `shoal chaos`: a small run under faults (workers, the projector, the
//! registry and nats-server killed with SIGKILL and started again) loses no
//! job and records no success twice; with concurrency keys and
//! dependencies among the jobs, no key runs more than its limit at once and
//! no dependent starts before its parent ended.

use crate::support::shoal;

#[test]
fn a_small_chaos_run_loses_no_job_and_records_no_success_twice() {
    let output = shoal(
        None,
        &[
            "chaos",
            "--jobs",
            "300",
            "--workers",
            "3",
            "--faults",
            "6",
            "--fault-interval",
            "1s",
            "--seed",
            "7",
            "-o",
            "json",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["submitted"], 300, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["double_success"], 0, "{report}");
    assert_eq!(report["succeeded"], 300, "{report}");
    let faults: u64 = report["faults"]
        .as_object()
        .expect("faults by kind")
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    assert!(faults >= 6, "{report}");
    assert!(report["executions"].as_u64() >= Some(300), "{report}");
}

#[test]
fn a_chaos_run_with_concurrency_keys_and_dependencies_exceeds_no_limit_and_starts_no_child_early() {
    let output = shoal(
        None,
        &[
            "chaos",
            "--holds",
            "--jobs",
            "200",
            "--workers",
            "3",
            "--faults",
            "4",
            "--fault-interval",
            "1s",
            "--seed",
            "11",
            "-o",
            "json",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["succeeded"], 200, "{report}");
    let holds = &report["holds"];
    assert_eq!(holds["limit_exceeded"], 0, "{report}");
    assert_eq!(holds["started_before_parents"], 0, "{report}");
    assert_eq!(holds["dependents"], 20, "{report}");
    assert_eq!(holds["fair"], 100, "half the jobs took turns: {report}");
    assert_eq!(holds["most_at_once"], 3, "the keys were busy: {report}");
}
