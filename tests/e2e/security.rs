//! Groups fenced apart by the server's own permissions, with the users and
//! roles of `deploy/auth`: every action of every role on its own group and
//! on another, real workers with logins, refused logins, and no secret
//! written anywhere.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use shoal_protocol::{JobState, WorkerEvent, WorkerEventType};

use crate::support::process::shoal_with_env;
use crate::support::secure::{
    declare_queues, services, waiting_job, SecureServer, Services, Watched, OPERATOR, WAITING_JOB,
};
use crate::support::{eventually, names, wait_for_job, Fleet, ShoalProcess};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_its_groups_login_runs_its_jobs_and_cannot_take_another_groups() {
    let secure = SecureServer::start();
    let services = services(&secure).await;
    let url = secure.server.url.clone();
    waiting_job(&services.fleet, "globex").await;

    // Told to serve globex with acme's login: the server denies it, and the
    // worker says so and exits instead of waiting.
    let started = Instant::now();
    let mut stray =
        ShoalProcess::worker_with_env(&url, &["--group", "globex"], &secure.login("acme-worker"));
    let status = stray
        .wait_exit(Duration::from_secs(30))
        .expect("the misconfigured worker exits");
    assert!(!status.success());
    let log = stray.log();
    assert!(
        log.contains("denied") && log.contains("Permissions Violation"),
        "{log}"
    );
    eprintln!("misconfigured worker exited after {:?}", started.elapsed());
    let job = crate::support::job_record(&services.fleet, "globex.waiting")
        .await
        .expect("the globex job");
    assert_eq!(
        job.state,
        Some(JobState::Queued),
        "the globex job was not taken"
    );

    // The same login serving its own group runs its jobs, once an admin
    // of the group has declared its queues (a worker may not create them).
    declare_queues(&url, "acme", &secure.login("acme-admin"));
    let worker = ShoalProcess::worker_with_env(
        &url,
        &[
            "--group",
            "acme",
            "--entrypoint",
            "hello=echo hello",
            "--entrypoint",
            "env=env",
        ],
        &secure.login("acme-worker"),
    );
    let (submitted, logs) = run_in_acme(&secure, &services.fleet, "hi", "hello").await;
    assert_eq!(
        String::from_utf8_lossy(&logs.stdout),
        "hello\n",
        "{}",
        worker.log()
    );
    // A job sees none of the worker's own variables: its login stays its own.
    let (dumped, env_output) = run_in_acme(&secure, &services.fleet, "env", "env").await;
    let env_text = String::from_utf8_lossy(&env_output.stdout).into_owned();
    assert!(env_text.contains("SHOAL_JOB_ID=env"), "{env_text}");
    assert!(!env_text.contains("SHOAL_PASSWORD"), "{env_text}");

    let help = shoal_with_env(
        Some(&url),
        &["worker", "run", "--help"],
        &secure.login("acme-worker"),
    );
    let outputs = [submitted, logs, dumped, env_output, help]
        .iter()
        .map(|output| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
        .collect::<Vec<_>>();
    let mut texts = vec![stray.log(), worker.log()];
    texts.extend(outputs);
    assert_no_secret_written(&secure, &services, &texts).await;
}

/// Submits job `id` running `entrypoint` in acme as acme-write, waits for
/// it to succeed, and reads its output as acme-read.
async fn run_in_acme(
    secure: &SecureServer,
    fleet: &Fleet,
    id: &str,
    entrypoint: &str,
) -> (std::process::Output, std::process::Output) {
    let url = secure.server.url.as_str();
    let submitted = shoal_with_env(
        Some(url),
        &["job", "submit", "--group", "acme", "--id", id, entrypoint],
        &secure.login("acme-write"),
    );
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let record = wait_for_job(fleet, &format!("acme.{id}"), "succeeded", |job| job.done).await;
    assert_eq!(record.state, Some(JobState::Succeeded));
    let logs = shoal_with_env(
        Some(url),
        &["job", "logs", "--group", "acme", id],
        &secure.login("acme-read"),
    );
    (submitted, logs)
}

/// No password of the test is in a log, an event, a log chunk, a record of
/// any bucket, or any of `texts`.
async fn assert_no_secret_written(secure: &SecureServer, services: &Services, texts: &[String]) {
    let mut written: Vec<(String, Vec<u8>)> = vec![
        (
            "projector log".into(),
            services.projector.log().into_bytes(),
        ),
        ("registry log".into(), services.registry.log().into_bytes()),
        ("server log".into(), secure.server.log().into_bytes()),
    ];
    for (index, text) in texts.iter().enumerate() {
        written.push((format!("output {index}"), text.clone().into_bytes()));
    }
    let names = names();
    let streams = [
        names.jobs_stream(),
        names.events_stream(),
        names.heartbeats_stream(),
        names.logs_stream(),
        names.dead_stream(),
    ];
    let buckets = names
        .bucket_names()
        .into_iter()
        .map(|bucket| format!("KV_{bucket}"));
    for stream in streams.into_iter().chain(buckets) {
        for message in services.fleet.stored(&stream, ">").await {
            written.push((
                format!("{stream} {}", message.subject),
                message.payload.to_vec(),
            ));
        }
    }
    for secret in secure.secrets() {
        for (place, bytes) in &written {
            let text = String::from_utf8_lossy(bytes);
            assert!(!text.contains(&secret), "a password is written in {place}");
        }
    }
}

/// Whether a one-shot `shoal` run failed and said `expected`, without
/// echoing any of `secrets`.
fn assert_refused(output: &std::process::Output, expected: &str, secrets: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it should have failed: {stderr}");
    assert!(
        stderr.contains(expected),
        "expected `{expected}` in: {stderr}"
    );
    for secret in secrets {
        assert!(!stderr.contains(secret), "a secret is echoed: {stderr}");
    }
}

fn submit_as(url: &str, env: &[(String, String)]) -> std::process::Output {
    shoal_with_env(
        Some(url),
        &["job", "submit", "--group", "acme", "noop"],
        env,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_unknown_nkeys_and_broken_credentials_fail_at_once_with_a_clear_error() {
    let secure = SecureServer::start();
    let url = secure.server.url.clone();
    let refused = "refused the credentials";
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    };

    // A worker with a wrong password exits (config error code or failure), not a hang.
    let mut worker = ShoalProcess::worker_with_env(
        &url,
        &["--group", "acme"],
        &env(&[
            ("SHOAL_USER", "acme-worker"),
            ("SHOAL_PASSWORD", "not-the-password"),
        ]),
    );
    let status = worker
        .wait_exit(Duration::from_secs(20))
        .expect("a worker with a wrong password exits");
    assert!(!status.success());
    assert!(worker.log().contains(refused), "{}", worker.log());
    assert!(!worker.log().contains("not-the-password"));

    let wrong_password = submit_as(
        &url,
        &env(&[
            ("SHOAL_USER", "acme-write"),
            ("SHOAL_PASSWORD", "guess-1234"),
        ]),
    );
    assert_refused(&wrong_password, refused, &["guess-1234"]);

    // An NKey the server does not know.
    let secrets = crate::support::server::TempDir::new("secrets");
    let made = crate::support::shoal(
        None,
        &[
            "auth",
            "add-user",
            "ghost",
            "--group",
            "acme",
            "--role",
            "write",
            "--nkey",
            "--secrets",
            &secrets.path().display().to_string(),
        ],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let seed_file = secrets.path().join("ghost.nk");
    let seed = std::fs::read_to_string(&seed_file).expect("the seed file");
    assert!(
        !String::from_utf8_lossy(&made.stdout).contains(seed.trim()),
        "the seed is never printed"
    );
    let unknown = submit_as(
        &url,
        &env(&[("SHOAL_NKEY", &seed_file.display().to_string())]),
    );
    assert_refused(&unknown, refused, &[seed.trim()]);

    // Files that hold no usable credentials are named in the error.
    let garbage = secrets.path().join("garbage");
    std::fs::write(&garbage, "this is not a credential\n").expect("write");
    let garbage_path = garbage.display().to_string();
    let bad_seed = submit_as(&url, &env(&[("SHOAL_NKEY", &garbage_path)]));
    assert_refused(&bad_seed, "nkey:", &[]);
    let bad_creds = submit_as(&url, &env(&[("SHOAL_CREDENTIALS", &garbage_path)]));
    assert_refused(&bad_creds, "credentials file", &[]);
    let half_login = submit_as(&url, &env(&[("SHOAL_USER", "acme-write")]));
    assert_refused(&half_login, "password", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_server_takes_its_token_and_refuses_any_other() {
    let dir = crate::support::server::TempDir::new("token");
    let conf = dir.path().join("token.conf");
    let nats_conf = crate::support::server::repo_dir().join("nats.conf");
    // nats-server reads includes relative to the file: the settings are copied in.
    let settings = std::fs::read_to_string(nats_conf).expect("nats.conf");
    std::fs::write(
        &conf,
        format!("{settings}\nauthorization {{ token: $SHOAL_TEST_TOKEN }}\n"),
    )
    .expect("write the config");
    let token = format!("tok-{}", nuid::next());
    let server = crate::support::NatsServer::start_with(
        &conf,
        &[("SHOAL_TEST_TOKEN".to_string(), token.clone())],
    );
    let with_token = |token: &str| vec![("SHOAL_TOKEN".to_string(), token.to_string())];
    let accepted = submit_as(&server.url, &with_token(&token));
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    let refused = submit_as(&server.url, &with_token("tok-wrong"));
    assert_refused(&refused, "refused the credentials", &["tok-wrong", &token]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nkey_user_made_by_shoal_auth_logs_in_with_its_seed_file() {
    let dir = crate::support::server::TempDir::new("nkey");
    let secrets = dir.path().join("secrets").display().to_string();
    let entries = [
        [
            "auth",
            "add-user",
            "shoal",
            "--role",
            "operator",
            "--password-env",
            "",
            "",
        ],
        [
            "auth", "add-user", "acme-nk", "--group", "acme", "--role", "write", "--nkey",
        ],
    ];
    let mut users = String::from("users: [\n");
    for args in entries {
        let mut args: Vec<&str> = args.into_iter().filter(|arg| !arg.is_empty()).collect();
        if args.contains(&"--nkey") {
            args.extend(["--secrets", &secrets]);
        }
        let output = crate::support::shoal(None, &args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        users.push_str(&String::from_utf8_lossy(&output.stdout));
    }
    users.push_str("]\n");
    let conf = dir.path().join("nkey.conf");
    let settings = std::fs::read_to_string(crate::support::server::repo_dir().join("nats.conf"))
        .expect("nats.conf");
    std::fs::write(&conf, format!("{settings}\nauthorization {{\n{users}}}\n"))
        .expect("write the config");
    let operator_password = format!("pw-{}", nuid::next());
    let server = crate::support::NatsServer::start_with(
        &conf,
        &[("SHOAL_AUTH_SHOAL".to_string(), operator_password.clone())],
    );
    // The operator's projector creates the streams; the NKey user submits.
    let _projector = ShoalProcess::start_with_env(
        &server.url,
        &["projector", "run"],
        &[
            ("SHOAL_USER".to_string(), "shoal".to_string()),
            ("SHOAL_PASSWORD".to_string(), operator_password),
        ],
    );
    let login = vec![
        ("SHOAL_NKEY".to_string(), format!("{secrets}/acme-nk.nk")),
        (
            "SHOAL_INBOX_PREFIX".to_string(),
            "_INBOX.acme-nk".to_string(),
        ),
    ];
    submit_once_the_streams_exist(
        &server.url,
        &["job", "submit", "--group", "acme", "noop"],
        &login,
    )
    .await;
}

/// Submits with `args` as a user, again until the operator's services have
/// made the streams (a user may not make them), within 30 s.
async fn submit_once_the_streams_exist(url: &str, args: &[&str], login: &[(String, String)]) {
    let what = format!("shoal {args:?} succeeds once the streams exist");
    eventually(Duration::from_secs(30), &what, || async {
        let submitted = shoal_with_env(Some(url), args, login);
        if submitted.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&submitted.stderr).into_owned())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_services_workers_and_cli_work_with_the_test_ca_and_are_refused_without_it() {
    let ca = crate::support::secure::TestCa::new();
    let secure = SecureServer::start_config("tls.conf", &ca.server_env());
    let url = secure.server.url.replacen("nats://", "tls://", 1);
    let with_tls = |user: &str| {
        let mut env = secure.login(user);
        env.extend(ca.client_env());
        env
    };
    let _projector = ShoalProcess::start_with_env(&url, &["projector", "run"], &with_tls(OPERATOR));
    let _registry = ShoalProcess::start_with_env(&url, &["registry", "run"], &with_tls(OPERATOR));
    submit_once_the_streams_exist(
        &url,
        &[
            "job", "submit", "--group", "acme", "--id", "tls-job", "hello",
        ],
        &with_tls("acme-write"),
    )
    .await;
    // A worker may not make the streams or its queue's consumers: it
    // starts once they are there.
    declare_queues(&url, "acme", &with_tls("acme-admin"));
    let worker = ShoalProcess::worker_with_env(
        &url,
        &["--group", "acme", "--entrypoint", "hello=echo hello"],
        &with_tls("acme-worker"),
    );
    let waited = shoal_with_env(
        Some(&url),
        &[
            "job",
            "wait",
            "--group",
            "acme",
            "--timeout",
            "30s",
            "tls-job",
        ],
        &with_tls("acme-read"),
    );
    assert!(
        waited.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&waited.stderr),
        worker.log()
    );

    let mut no_ca = secure.login("acme-write");
    no_ca.push(("SHOAL_TLS_CERT".into(), ca.file("client.pem")));
    no_ca.push(("SHOAL_TLS_KEY".into(), ca.file("client.key")));
    let untrusted = shoal_with_env(
        Some(&url),
        &["job", "submit", "--group", "acme", "noop"],
        &no_ca,
    );
    assert_refused(&untrusted, "cannot connect to NATS", &[]);
    let stderr = String::from_utf8_lossy(&untrusted.stderr).to_lowercase();
    assert!(
        stderr.contains("certificate") || stderr.contains("tls"),
        "{stderr}"
    );

    let mut no_client_cert = secure.login("acme-write");
    no_client_cert.push(("SHOAL_TLS_CA".into(), ca.file("ca.pem")));
    let anonymous = shoal_with_env(
        Some(&url),
        &["job", "submit", "--group", "acme", "noop"],
        &no_client_cert,
    );
    assert!(
        !anonymous.status.success(),
        "a client without a certificate is refused"
    );
}

#[test]
fn the_repositorys_users_are_what_shoal_auth_makes_of_them() {
    let mut expected = String::from(
        "# Generated by deploy/auth/generate.sh with `shoal auth`; a test checks it.\nusers: [\n",
    );
    for args in [
        &[
            "auth",
            "add-user",
            "shoal",
            "--role",
            "operator",
            "--password-env",
        ][..],
        &["auth", "add-group", "acme", "--password-env"][..],
        &["auth", "add-group", "globex", "--password-env"][..],
    ] {
        let output = crate::support::shoal(None, args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        expected.push_str(&String::from_utf8_lossy(&output.stdout));
    }
    expected.push_str("]\n");
    let kept =
        std::fs::read_to_string(crate::support::server::repo_dir().join("deploy/auth/users.conf"))
            .expect("deploy/auth/users.conf");
    assert!(
        kept == expected,
        "deploy/auth/users.conf is out of date: run `bash deploy/auth/generate.sh target/debug/shoal`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_may_not_set_protected_variables_or_leave_the_output_dir_unless_the_worker_allows_it()
{
    let server = crate::support::NatsServer::start();
    let fleet = Fleet::connect(&server).await;
    let _projector = ShoalProcess::projector(&server);
    let strict = ShoalProcess::worker(&server, &["--group", "strict", "--allow-exec", "true"]);
    let lenient = ShoalProcess::worker(
        &server,
        &[
            "--group",
            "lenient",
            "--allow-exec",
            "true",
            "--allow-protected-env",
            "true",
            "--allow-any-working-dir",
            "true",
        ],
    );
    let outside = crate::support::server::TempDir::new("outside");
    let outside_dir = outside.path().display().to_string();
    let jobs = [
        (
            "preload",
            serde_json::json!({"env": {"LD_PRELOAD": "/tmp/x.so"}}),
        ),
        ("path", serde_json::json!({"env": {"PATH": "/tmp"}})),
        ("elsewhere", serde_json::json!({"working_dir": outside_dir})),
        ("climb", serde_json::json!({"working_dir": "../../../.."})),
    ];
    for group in ["strict", "lenient"] {
        for (id, extra) in &jobs {
            let mut body = serde_json::json!({"id": id, "command": ["/bin/sh", "-c", "pwd"]});
            for (key, value) in extra.as_object().expect("object") {
                body[key] = value.clone();
            }
            fleet.publish_job(group, "default", &body.to_string()).await;
        }
    }
    for (id, _) in &jobs {
        let refused = wait_for_job(&fleet, &format!("strict.{id}"), "failed", |job| job.done).await;
        assert_eq!(refused.state, Some(JobState::Failed), "{}", strict.log());
        let reason = refused.error_text.unwrap_or_default();
        assert!(
            reason.starts_with("env:") || reason.starts_with("working_dir:"),
            "{id}: {reason}"
        );
        let allowed = wait_for_job(&fleet, &format!("lenient.{id}"), "succeeded", |job| {
            job.done
        })
        .await;
        assert_eq!(
            allowed.state,
            Some(JobState::Succeeded),
            "{id}: {}",
            lenient.log()
        );
    }
}
