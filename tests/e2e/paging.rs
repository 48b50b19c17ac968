//! `shoal get jobs` lists a page at a time, the jobs changed last first,
//! and says how to read the next page.

use std::time::Duration;

use crate::support::wait::eventually;
use crate::support::{shoal, Fleet, NatsServer, ShoalProcess};

/// The ids of one page of ten of group acme's jobs, and the `--before` of
/// the next page the table says there is.
fn page(server: &NatsServer, before: Option<&str>) -> (Vec<String>, Option<String>) {
    let mut args = vec!["get", "jobs", "-g", "acme", "--limit", "10"];
    if let Some(before) = before {
        args.extend(["--before", before]);
    }
    let table = shoal(Some(server), &args);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let next = String::from_utf8_lossy(&table.stderr)
        .trim()
        .strip_prefix("more: add --before ")
        .map(str::to_string);
    args.extend(["-o", "json"]);
    (json_ids(server, &args), next)
}

fn json_ids(server: &NatsServer, args: &[&str]) -> Vec<String> {
    let output = shoal(Some(server), args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let jobs: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("a JSON list of jobs");
    jobs.iter()
        .map(|job| job["id"].as_str().expect("an id").to_string())
        .collect()
}

async fn submit_and_wait_for_records(fleet: &Fleet, ids: &[String]) {
    for id in ids {
        let body = serde_json::json!({"id": id, "entrypoint": "noop"});
        fleet
            .publish_job("acme", "default", &body.to_string())
            .await;
    }
    for id in ids {
        eventually(Duration::from_secs(20), "the job's record", || async {
            crate::support::job_record(fleet, &format!("acme.{id}")).await
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_a_page_at_a_time_the_last_changed_first() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    // No worker: every job stays queued, its record written once.
    let older: Vec<String> = (0..20).map(|index| format!("older-{index}")).collect();
    let newer: Vec<String> = (0..10).map(|index| format!("newer-{index}")).collect();
    submit_and_wait_for_records(&fleet, &older).await;
    submit_and_wait_for_records(&fleet, &newer).await;

    let (first, mut next) = page(&server, None);
    let mut expected = newer.clone();
    expected.sort();
    let mut got = first.clone();
    got.sort();
    assert_eq!(
        got, expected,
        "the first page holds the ten jobs changed last"
    );

    let mut all = first;
    let mut pages = 1;
    while let Some(before) = next.take() {
        let (ids, after) = page(&server, Some(&before));
        assert_eq!(ids.len(), 10, "page {pages}: {ids:?}");
        all.extend(ids);
        pages += 1;
        next = after;
        assert!(pages <= 3, "more pages than jobs: {all:?}");
    }
    assert_eq!(
        pages, 3,
        "thirty jobs make three pages, the last saying no more"
    );
    let mut every: Vec<String> = older.into_iter().chain(newer).collect();
    every.sort();
    all.sort();
    assert_eq!(all, every, "the pages hold every job once");

    // --limit 0 lists every job, oldest submission first.
    let whole = json_ids(
        &server,
        &["get", "jobs", "-g", "acme", "--limit", "0", "-o", "json"],
    );
    assert_eq!(whole.len(), 30);
    assert_eq!(whole.first().map(String::as_str), Some("older-0"));
}
