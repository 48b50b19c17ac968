//! The limits and workflows of one group stay its own on a server with
//! roles: acme's worker writes only acme's keys of `shoal_limits` (a bucket
//! that refuses rollups, purges and TTLs, so no header empties it), acme's
//! writer submits no workflow into globex nor jobs under globex's fairness
//! keys, and acme's reader sets no limit.

use crate::support::process::shoal_with_env;
use crate::support::secure::{publish_as, services, SecureServer};
use crate::support::{names, server::TempDir, subjects};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_cannot_touch_globexs_limits_or_workflows_nor_empty_the_limits_bucket() {
    let secure = SecureServer::start();
    let services = services(&secure).await;
    let url = secure.server.url.clone();
    let said = |user: &str, args: &[&str]| {
        let out = shoal_with_env(Some(&url), args, &secure.login(user));
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let (set, _, err) = said(
        "globex-admin",
        &["limit", "set", "mail", "--concurrency", "5", "-g", "globex"],
    );
    assert!(set, "globex's admin sets its own limit: {err}");
    let (set, _, err) = said(
        "acme-read",
        &["limit", "set", "mail", "--concurrency", "1", "-g", "acme"],
    );
    assert!(
        !set && err.contains("ermission"),
        "a reader sets no limit: {err}"
    );

    let worker = secure.client_as("acme-worker").await;
    let globex_key = "$KV.shoal_limits.globex.concurrency.mail";
    let refused = publish_as(&worker, globex_key, &[], r#"{"limit":1000}"#).await;
    assert!(
        refused.is_err(),
        "acme's worker wrote globex's key: {refused:?}"
    );
    let own = "$KV.shoal_limits.acme.concurrency.x";
    assert!(
        publish_as(&worker, own, &[], "{}").await.is_ok(),
        "its own key it may write"
    );
    for (what, headers) in [
        ("rollup of the bucket", vec![("Nats-Rollup", "all")]),
        (
            "purge",
            vec![("KV-Operation", "PURGE"), ("Nats-Rollup", "sub")],
        ),
        ("ttl", vec![("Nats-TTL", "1s")]),
    ] {
        let headers: Vec<(&str, String)> = headers
            .into_iter()
            .map(|(name, value)| (name, value.to_string()))
            .collect();
        let outcome = publish_as(&worker, own, &headers, "{}").await;
        assert!(outcome.is_err(), "{what} was taken: {outcome:?}");
    }
    let limits = services
        .fleet
        .js
        .get_key_value(names().limits_bucket())
        .await
        .expect("limits bucket");
    let record = limits
        .get("globex.concurrency.mail")
        .await
        .expect("read")
        .expect("globex's record is still there");
    let record: serde_json::Value = serde_json::from_slice(&record).expect("json");
    assert_eq!(record["limit"], 5);

    let dir = TempDir::new("tenant-workflow");
    let file = dir.path().join("flow.yaml");
    std::fs::write(
        &file,
        "name: raid\ngroup: globex\njobs:\n- {id: a, entrypoint: noop}\n",
    )
    .expect("flow");
    let file = file.display().to_string();
    let (submitted, _, err) = said("acme-write", &["workflow", "submit", "-f", &file]);
    assert!(!submitted, "acme's writer submitted into globex");
    assert!(err.contains("globex"), "{err}");
    let mut jobs = services
        .fleet
        .js
        .get_stream(names().jobs_stream())
        .await
        .expect("jobs stream");
    let stored = jobs.info().await.expect("info").state.messages;
    assert_eq!(stored, 0, "nothing of the refused batch was stored");
    assert!(worker.errors().iter().any(|error| error.contains("globex")));

    // A fairness key's subject is the group's own like its queues'.
    let writer = secure.client_as("acme-write").await;
    let job = r#"{"entrypoint":"noop"}"#;
    let theirs = subjects().fair("globex", "default", "k");
    let refused = publish_as(&writer, &theirs, &[], job).await;
    assert!(
        refused.is_err(),
        "acme's writer jumped globex's turns: {refused:?}"
    );
    let own = subjects().fair("acme", "default", "k");
    let taken = publish_as(&writer, &own, &[], job).await;
    assert!(
        taken.is_ok(),
        "its own key's subject it may write: {taken:?}"
    );
}
