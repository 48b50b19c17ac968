//! A workflow on the dashboard: its page lists each job with its parents
//! and its state, live, and a job of a workflow links to it.

use crate::dashboard::{dashboard, get_json, page_shows};
use crate::support::browser::{artifact, Browser};
use crate::support::server::TempDir;
use crate::support::{shoal, wait_for_job, Fleet, NatsServer, ShoalProcess};

const FLOW: &str = "name: nightly\njobs:\n\
    - {id: fetch, command: [sh, -c, 'sleep 1']}\n\
    - {id: broken, command: [sh, -c, 'exit 2'], depends_on: [fetch]}\n\
    - {id: report, command: [sh, -c, 'true'], depends_on: [broken]}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_s_page_shows_each_job_with_its_parents_and_its_state_live() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _registry = ShoalProcess::registry(&server).await;
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--allow-exec", "true"]);
    let (_dashboard, addr) = dashboard(&server, &["--group", "acme"]).await;
    let dir = TempDir::new("dashboard-workflow");
    let file = dir.path().join("flow.yaml");
    std::fs::write(&file, FLOW).expect("flow");
    let file = file.display().to_string();
    let browser = Browser::launch();
    let submitted = shoal(
        Some(&server),
        &["workflow", "submit", "-f", &file, "-g", "acme"],
    );
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    wait_for_job(&fleet, "acme.nightly-fetch", "recorded", |job| {
        job.state.is_some()
    })
    .await;
    browser.open(&format!("http://{addr}/#/workflow/acme/nightly"));
    let state = |job: &str| {
        format!("document.querySelector('tr[data-job=\"{job}\"] .badge')?.textContent ?? null")
    };
    page_shows(
        &browser,
        "the page lists the graph",
        "document.querySelectorAll('#workflow tbody tr').length",
        3.into(),
    )
    .await;
    // The page follows the jobs live: the last one ends skipped, no reload.
    page_shows(
        &browser,
        "fetch succeeded",
        &state("nightly-fetch"),
        "succeeded".into(),
    )
    .await;
    page_shows(
        &browser,
        "broken failed",
        &state("nightly-broken"),
        "failed".into(),
    )
    .await;
    page_shows(
        &browser,
        "report skipped",
        &state("nightly-report"),
        "skipped".into(),
    )
    .await;
    let row = browser
        .text("tr[data-job=\"nightly-report\"]")
        .expect("report's row");
    assert!(
        row.contains("broken") && row.contains("parent nightly-broken failed"),
        "{row}"
    );
    browser.screenshot(&artifact("dashboard-workflow.png"));

    // A job of the workflow links to it.
    browser.open(&format!("http://{addr}/#/job/acme/nightly-report"));
    page_shows(
        &browser,
        "the job's link",
        "document.querySelector('#workflow-link')?.textContent ?? null",
        "Workflow nightly".into(),
    )
    .await;

    let (status, view) = get_json(&addr, "/api/workflows/acme/nightly").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["states"]["nightly-report"], "skipped");
    assert_eq!(view["workflow"]["jobs"][2]["depends_on"][0], "broken");
    let (status, view) = get_json(&addr, "/api/workflows/acme/ghost").await;
    assert_eq!(status, 404, "{view}");
    let (status, view) = get_json(&addr, "/api/workflows/globex/nightly").await;
    assert_eq!(status, 403, "{view}");
}
