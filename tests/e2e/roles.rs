//! Groups fenced apart by the server's own permissions, with the users and
//! roles of `deploy/auth`: every action of every role on its own group and
//! on another, judged by the server's denials, and a body that names
//! another group refused on its own group's subject.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use shoal_protocol::{WorkerEvent, WorkerEventType};

use crate::support::secure::{
    assert_no_secret_written, services, waiting_job, SecureServer, Watched, WAITING_JOB,
};

/// What a user may try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Submit,
    ReadJob,
    ReadKvKey,
    ReadLogs,
    Cancel,
    CreateWorker,
    RegisterWorker,
    TakeJob,
    PublishFakeEvent,
    ApplyPool,
    ScheduleJob,
    CreateConsumer,
}

const ACTIONS: [Action; 12] = [
    Action::Submit,
    Action::ReadJob,
    Action::ReadKvKey,
    Action::ReadLogs,
    Action::Cancel,
    Action::CreateWorker,
    Action::RegisterWorker,
    Action::TakeJob,
    Action::PublishFakeEvent,
    Action::ApplyPool,
    Action::ScheduleJob,
    Action::CreateConsumer,
];

/// What each role may do in its own group (DESIGN.md, "Roles"); in another
/// group, nothing.
fn allowed_in_own_group(role: &str) -> &'static [Action] {
    use Action::*;
    match role {
        "read" => &[ReadJob, ReadKvKey, ReadLogs],
        "write" => &[Submit, ReadJob, ReadKvKey, ReadLogs],
        "admin" => &[
            Submit,
            ReadJob,
            ReadKvKey,
            ReadLogs,
            Cancel,
            CreateWorker,
            ApplyPool,
        ],
        "worker" => &[ReadKvKey, RegisterWorker, TakeJob, PublishFakeEvent],
        other => panic!("no role {other}"),
    }
}

/// Tries `action` on `group` and returns what came of it, and the subject
/// part a denial of it names. `Ok` is evidence that the server let it
/// through (a reply, a stored message, a record, a log chunk, a job).
async fn perform(watched: &Watched, action: Action, group: &str) -> Result<(), String> {
    let client = watched.client.clone();
    let js = jetstream::new(client.clone());
    let text = |err: &dyn std::fmt::Display| err.to_string();
    match action {
        Action::Submit => {
            let subject = format!("shoal.jobs.{group}.default");
            let body = serde_json::json!({"entrypoint": "noop"}).to_string();
            js.publish(subject, body.into())
                .await
                .map_err(|e| text(&e))?
                .await
                .map_err(|e| text(&e))?;
            Ok(())
        }
        Action::ReadJob => request(
            &client,
            format!("shoal.api.job.get.{group}.{WAITING_JOB}"),
            "",
        )
        .await
        .map(|_| ()),
        Action::ReadKvKey => {
            let bucket = js.get_key_value("shoal_jobs").await.map_err(|e| text(&e))?;
            match bucket.get(format!("{group}.{WAITING_JOB}")).await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("no record".into()),
                Err(err) => Err(text(&err)),
            }
        }
        Action::ReadLogs => {
            let answer = request(
                &client,
                format!("shoal.api.job.logs.{group}.{WAITING_JOB}"),
                "{}",
            )
            .await?;
            match answer.payload.as_ref() {
                b"a line\n" => Ok(()),
                other => Err(format!("no log chunk: {}", String::from_utf8_lossy(other))),
            }
        }
        Action::ScheduleJob => {
            // A schedule names its target in a header that permissions do
            // not see: no user but an operator may publish one.
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Schedule", "@every 60s");
            headers.insert(
                "Nats-Schedule-Target",
                format!("shoal.due.{group}.default").as_str(),
            );
            let body = serde_json::json!({"entrypoint": "noop"}).to_string();
            js.publish_with_headers(
                format!("shoal.sched.{group}.default.s1"),
                headers,
                body.into(),
            )
            .await
            .map_err(|e| text(&e))?
            .await
            .map_err(|e| text(&e))?;
            Ok(())
        }
        Action::CreateConsumer => {
            // A consumer of its own could deliver anywhere: no user but an
            // operator may create one.
            let body = serde_json::json!({
                "stream_name": "SHOAL_JOBS",
                "config": {"name": "mine", "filter_subject": format!("shoal.jobs.{group}.default"),
                           "deliver_subject": "somewhere.else", "ack_policy": "none"}
            });
            let answer = request(
                &client,
                format!("$JS.API.CONSUMER.CREATE.SHOAL_JOBS.mine.shoal.jobs.{group}.default"),
                &body.to_string(),
            )
            .await?;
            let reply: serde_json::Value =
                serde_json::from_slice(&answer.payload).map_err(|e| text(&e))?;
            match reply.get("error") {
                None => Ok(()),
                Some(error) => Err(format!("not created: {error}")),
            }
        }
        Action::Cancel => request(
            &client,
            format!("shoal.ctl.{group}.job.nosuchjob.cancel"),
            "",
        )
        .await
        .map(|_| ()),
        Action::CreateWorker => {
            let body = serde_json::json!({"name": format!("w{}", nuid::next()), "group": group});
            request(
                &client,
                format!("shoal.api.worker.create.{group}"),
                &body.to_string(),
            )
            .await
            .map(|_| ())
        }
        Action::RegisterWorker => {
            let id = nuid::next().to_string().to_lowercase();
            let event = WorkerEvent::about(WorkerEventType::Registered, group, &id);
            let body = serde_json::to_vec(&event).map_err(|e| text(&e))?;
            js.publish(format!("shoal.evt.worker.{group}.{id}"), body.into())
                .await
                .map_err(|e| text(&e))?
                .await
                .map_err(|e| text(&e))?;
            Ok(())
        }
        Action::TakeJob => {
            // A pulled job arrives under its own subject, so it is read
            // from a subscription of its own rather than as a reply.
            let inbox = client.new_inbox();
            let mut delivered = client
                .subscribe(inbox.clone())
                .await
                .map_err(|e| text(&e))?;
            client
                .publish_with_reply(
                    format!("$JS.API.CONSUMER.MSG.NEXT.SHOAL_JOBS.jobs~{group}~default"),
                    inbox,
                    r#"{"batch":1,"expires":2000000000}"#.into(),
                )
                .await
                .map_err(|e| text(&e))?;
            client.flush().await.map_err(|e| text(&e))?;
            match tokio::time::timeout(Duration::from_secs(5), delivered.next()).await {
                Ok(Some(message)) if message.status.is_none() => Ok(()),
                other => Err(format!("no job handed out: {other:?}")),
            }
        }
        Action::PublishFakeEvent => {
            let event = serde_json::json!({
                "type": "succeeded", "group": group, "job_id": "forged",
                "attempt": 1, "at": "2026-01-01T00:00:00Z"
            });
            js.publish(
                format!("shoal.evt.job.{group}.forged"),
                event.to_string().into(),
            )
            .await
            .map_err(|e| text(&e))?
            .await
            .map_err(|e| text(&e))?;
            Ok(())
        }
        Action::ApplyPool => {
            let body = serde_json::json!({"resource": {
                "name": "pool-a", "version": "v1", "type": "pool",
                "pool": {"replicas": 1, "queues": ["default"], "group": group}
            }});
            request(
                &client,
                format!("shoal.api.resource.apply.{group}"),
                &body.to_string(),
            )
            .await
            .map(|_| ())
        }
    }
}

/// The part of the subject a denial of `action` on `group` names.
fn denial_marker(action: Action, group: &str) -> String {
    match action {
        Action::Submit => format!("shoal.jobs.{group}.default"),
        Action::ReadJob => format!("shoal.api.job.get.{group}."),
        Action::ReadKvKey => format!("$KV.shoal_jobs.{group}."),
        Action::ReadLogs => format!("shoal.api.job.logs.{group}."),
        Action::Cancel => format!("shoal.ctl.{group}.job."),
        Action::CreateWorker => format!("shoal.api.worker.create.{group}"),
        Action::RegisterWorker => format!("shoal.evt.worker.{group}."),
        Action::TakeJob => format!("jobs~{group}~default"),
        Action::PublishFakeEvent => format!("shoal.evt.job.{group}."),
        Action::ApplyPool => format!("shoal.api.resource.apply.{group}"),
        Action::ScheduleJob => format!("shoal.sched.{group}."),
        Action::CreateConsumer => "$JS.API.CONSUMER.CREATE.SHOAL_JOBS.mine".to_string(),
    }
}

async fn request(
    client: &async_nats::Client,
    subject: String,
    body: &str,
) -> Result<async_nats::Message, String> {
    client
        .request(subject, body.to_string().into())
        .await
        .map_err(|err| err.to_string())
}

/// Allowed when the action's evidence came; denied when the server said
/// so about the action's subject. Anything else fails the test: a timeout
/// is not taken for a denial.
async fn verdict(watched: &Watched, action: Action, group: &str) -> bool {
    let marker = denial_marker(action, group);
    let attempt = perform(watched, action, group);
    tokio::pin!(attempt);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        tokio::select! {
            result = &mut attempt => {
                return match (result, watched.denial_of(&marker)) {
                    (Ok(()), _) => true,
                    (Err(_), Some(_)) => false,
                    (Err(err), None) => panic!("{action:?} on {group} failed without a denial: {err}; server errors: {:?}", watched.errors()),
                };
            }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                if watched.denial_of(&marker).is_some() {
                    return false;
                }
                assert!(Instant::now() < deadline, "{action:?} on {group}: neither done nor denied within 15s");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_do_exactly_what_it_says_in_its_group_and_nothing_in_another() {
    let secure = SecureServer::start();
    let services = services(&secure).await;
    waiting_job(&services.fleet, "acme").await;
    waiting_job(&services.fleet, "globex").await;

    let mut wrong = Vec::new();
    let mut table = String::new();
    for role in ["read", "write", "admin", "worker"] {
        let user = format!("acme-{role}");
        for group in ["acme", "globex"] {
            for action in ACTIONS {
                // A connection per attempt: its denials are its own.
                let watched = secure.client_as(&user).await;
                let allowed = verdict(&watched, action, group).await;
                let expected = group == "acme" && allowed_in_own_group(role).contains(&action);
                table.push_str(&format!(
                    "{user:<12} {group:<7} {action:<16?} {}\n",
                    if allowed { "allowed" } else { "denied" }
                ));
                if allowed != expected {
                    wrong.push(format!(
                        "{user} {action:?} on {group}: {} but should be {}",
                        if allowed { "allowed" } else { "denied" },
                        if expected { "allowed" } else { "denied" }
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}\n\n{table}", wrong.join("\n"));

    // On its own group's subject, a body that names another group is
    // refused by the registry: the subject is what the server let through.
    let admin = secure.client_as("acme-admin").await;
    for (subject, body) in [
        (
            "shoal.api.worker.create.acme",
            serde_json::json!({"name": "sneaky", "group": "globex"}),
        ),
        (
            "shoal.api.resource.apply.acme",
            serde_json::json!({"resource": {"name": "sneaky", "version": "v1", "type": "pool",
                "pool": {"replicas": 1, "queues": ["default"], "group": "globex"}}}),
        ),
    ] {
        let answer = request(&admin.client, subject.to_string(), &body.to_string())
            .await
            .expect("an answer");
        let code = answer
            .headers
            .as_ref()
            .and_then(|headers| headers.get("Nats-Service-Error-Code"))
            .map(|code| code.to_string());
        assert_eq!(code.as_deref(), Some("403"), "{subject}");
    }
    assert_no_secret_written(&secure, &services, &[]).await;
}
