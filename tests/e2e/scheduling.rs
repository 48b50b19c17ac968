//! When a job starts: not before the time it was submitted for, again and
//! again on a schedule until the schedule is removed, and ahead of a
//! backlog when its priority is higher.

use std::time::Duration;

use shoal_protocol::{JobState, Priority};

use crate::support::process::submitted_id;
use crate::support::{eventually, shoal, subjects, wait_for_job, Fleet, NatsServer, ShoalProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_in_2s_is_scheduled_until_then_and_not_started_before() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(&server, &["--group", "acme"]);
    let submitted_at = time::OffsetDateTime::now_utc();
    let id = submitted_id(&shoal(
        Some(&server),
        &["job", "submit", "-g", "acme", "--in", "2s", "noop"],
    ));

    let waiting = wait_for_job(&fleet, &format!("acme.{id}"), "scheduled", |job| {
        job.state.is_some()
    })
    .await;
    assert_eq!(waiting.state, Some(JobState::Scheduled));
    let listed =
        String::from_utf8_lossy(&shoal(Some(&server), &["schedule", "ls", "-g", "acme"]).stdout)
            .into_owned();
    assert!(listed.contains(&id) && listed.contains("@at "), "{listed}");
    let done = wait_for_job(&fleet, &format!("acme.{id}"), "succeeded", |job| job.done).await;
    assert_eq!(done.state, Some(JobState::Succeeded));
    let started = done.started_at.expect("started").0;
    assert!(
        started - submitted_at >= Duration::from_secs(2),
        "started {} after submission",
        started - submitted_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_every_1s_runs_again_and_again_until_its_schedule_is_removed() {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let _worker = ShoalProcess::worker(&server, &["--group", "acme"]);
    let submitted_at = time::OffsetDateTime::now_utc();
    let schedule = submitted_id(&shoal(
        Some(&server),
        &["job", "submit", "-g", "acme", "--every", "1s", "noop"],
    ));

    let jobs = shoal_client::RecordStore::<shoal_protocol::JobRecord>::new(fleet.jobs.clone());
    let succeeded = || async {
        jobs.read_all("acme.*")
            .await
            .expect("records")
            .iter()
            .filter(|job| job.state == Some(JobState::Succeeded))
            .count()
    };
    // Runs that started within 4 s of the submission, read as they are recorded.
    let started_in_4s = |records: &[shoal_protocol::JobRecord]| {
        records
            .iter()
            .filter(|job| {
                job.started_at
                    .is_some_and(|at| at.0 - submitted_at <= Duration::from_secs(4))
            })
            .count()
    };
    let what = "3 runs started within 4s of the submission";
    eventually(Duration::from_secs(20), what, || async {
        let runs = started_in_4s(&jobs.read_all("acme.*").await.expect("records"));
        if runs >= 3 {
            Ok(())
        } else {
            Err(format!("{runs} runs"))
        }
    })
    .await;

    // Each run carries its schedule: a label, and an id derived from it.
    for run in jobs.read_all("acme.*").await.expect("records") {
        assert!(run.id.starts_with(&format!("{schedule}-")), "{run:?}");
        assert_eq!(run.labels.get("schedule"), Some(&schedule), "{run:?}");
    }
    // The schedule's id names no job; the answer says where to look.
    let asked = shoal(Some(&server), &["job", "get", &schedule, "-g", "acme"]);
    let said = String::from_utf8_lossy(&asked.stderr);
    assert_eq!(asked.status.code(), Some(66), "{said}");
    assert!(
        said.contains("shoal schedule ls -g acme")
            && said.contains(&format!("latest: {schedule}-")),
        "{said}"
    );

    let removed = shoal(Some(&server), &["schedule", "rm", &schedule]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let listed =
        String::from_utf8_lossy(&shoal(Some(&server), &["schedule", "ls"]).stdout).into_owned();
    assert!(!listed.contains(&schedule), "{listed}");
    // Runs already submitted when the schedule went finish first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut after_removal = succeeded().await;
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = succeeded().await;
        if now == after_removal {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the runs did not settle"
        );
        after_removal = now;
    }
    // Nothing can show that a removed schedule stays silent but time without runs.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        succeeded().await,
        after_removal,
        "the removed schedule ran again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_backlog_of_low_priority_jobs_a_high_priority_one_submitted_last_starts_among_the_first(
) {
    let server = NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    for index in 0..200 {
        let body = format!(r#"{{"id":"low{index}","entrypoint":"sleep","args":["10ms"]}}"#);
        fleet
            .js
            .publish(
                subjects().jobs_with_priority("acme", "default", Priority::Low),
                body.into(),
            )
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    let urgent = submitted_id(&shoal(
        Some(&server),
        &[
            "job",
            "submit",
            "-g",
            "acme",
            "--id",
            "urgent",
            "--priority",
            "high",
            "sleep",
            "10ms",
        ],
    ));
    let _worker = ShoalProcess::worker(&server, &["--group", "acme", "--concurrency", "2"]);

    let urgent = wait_for_job(&fleet, &format!("acme.{urgent}"), "succeeded", |job| {
        job.done
    })
    .await;
    assert_eq!(urgent.priority, shoal_protocol::Priority::High);
    let jobs = shoal_client::RecordStore::<shoal_protocol::JobRecord>::new(fleet.jobs.clone());
    let mut starts: Vec<(time::OffsetDateTime, String)> = jobs
        .read_all("acme.*")
        .await
        .expect("records")
        .into_iter()
        .filter_map(|job| job.started_at.map(|at| (at.0, job.id)))
        .collect();
    starts.sort();
    let place = starts
        .iter()
        .position(|(_, id)| id == "urgent")
        .expect("the urgent job started");
    assert!(
        place < 4,
        "the high-priority job started {}th of {}",
        place + 1,
        starts.len()
    );
}
