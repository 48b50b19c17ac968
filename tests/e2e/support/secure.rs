//! A nats-server with the repository's users and roles (`deploy/auth`),
//! every password made up for the test, clients that see the server's
//! permission denials, and the check that no password is written anywhere.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_client::streams::Layout;
use shoal_protocol::{JobState, Priority};

use super::server::{repo_dir, NatsServer};
use super::{eventually, names, subjects, wait_for_job, Fleet, ShoalProcess};

/// The id of the job [`waiting_job`] leaves queued.
pub const WAITING_JOB: &str = "waiting";

/// The users of `deploy/auth/users.conf`.
pub const USERS: [&str; 9] = [
    "shoal",
    "acme-read",
    "acme-write",
    "acme-admin",
    "acme-worker",
    "globex-read",
    "globex-write",
    "globex-admin",
    "globex-worker",
];

/// The operator: the services' user.
pub const OPERATOR: &str = "shoal";

/// A server that knows the users, and their passwords.
pub struct SecureServer {
    /// The server.
    pub server: NatsServer,
    passwords: BTreeMap<String, String>,
}

/// The variable of the server's environment that holds a user's password.
fn password_variable(user: &str) -> String {
    format!("SHOAL_AUTH_{}", user.to_uppercase().replace('-', "_"))
}

impl SecureServer {
    /// Starts `deploy/auth/nats.conf` with a fresh password for every user.
    pub fn start() -> Self {
        Self::start_config("nats.conf", &[])
    }

    /// Starts a configuration of `deploy/auth` with more variables (TLS files).
    pub fn start_config(name: &str, more_env: &[(String, String)]) -> Self {
        let passwords: BTreeMap<String, String> = USERS
            .iter()
            .map(|user| (user.to_string(), format!("pw-{}", nuid::next())))
            .collect();
        let mut env: Vec<(String, String)> = passwords
            .iter()
            .map(|(user, password)| (password_variable(user), password.clone()))
            .collect();
        env.extend_from_slice(more_env);
        let server = NatsServer::start_with(&repo_dir().join("deploy/auth").join(name), &env);
        Self { server, passwords }
    }

    /// Every password in use: none may ever be written anywhere.
    pub fn secrets(&self) -> Vec<String> {
        self.passwords.values().cloned().collect()
    }

    /// A user's password.
    pub fn password(&self, user: &str) -> String {
        self.passwords[user].clone()
    }

    /// The variables a `shoal` process logs in with as `user`.
    pub fn login(&self, user: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("SHOAL_USER".to_string(), user.to_string()),
            ("SHOAL_PASSWORD".to_string(), self.password(user)),
        ];
        if user != OPERATOR {
            env.push(("SHOAL_INBOX_PREFIX".into(), format!("_INBOX.{user}")));
        }
        env
    }

    /// A client logged in as `user`, that keeps the server's denials.
    pub async fn client_as(&self, user: &str) -> Watched {
        let denials = Arc::new(Mutex::new(Vec::new()));
        let seen = denials.clone();
        let client = async_nats::ConnectOptions::with_user_and_password(
            user.to_string(),
            self.password(user),
        )
        .custom_inbox_prefix(format!("_INBOX.{user}"))
        .request_timeout(Some(Duration::from_secs(5)))
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(async_nats::ServerError::Other(text)) = event
                {
                    seen.lock().expect("denials").push(text);
                }
            }
        })
        .connect(&self.server.url)
        .await
        .unwrap_or_else(|err| panic!("{user} cannot connect: {err}"));
        Watched { client, denials }
    }
}

/// A client and the permission violations the server told it of.
pub struct Watched {
    /// The client.
    pub client: async_nats::Client,
    denials: Arc<Mutex<Vec<String>>>,
}

impl Watched {
    /// Every error the server sent.
    pub fn errors(&self) -> Vec<String> {
        self.denials.lock().expect("denials").clone()
    }

    /// The first denial that names `marker`, if one came.
    pub fn denial_of(&self, marker: &str) -> Option<String> {
        self.denials
            .lock()
            .expect("denials")
            .iter()
            .find(|text| text.contains("Permissions Violation") && text.contains(marker))
            .cloned()
    }
}

/// A certificate authority made for one test with `openssl`, and the
/// server's and a client's certificates signed by it.
pub struct TestCa {
    dir: super::server::TempDir,
}

impl TestCa {
    /// Makes the CA, a server certificate for 127.0.0.1 and a client certificate.
    pub fn new() -> Self {
        let dir = super::server::TempDir::new("ca");
        let run = |args: &[&str]| {
            let output = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .stdin(std::process::Stdio::null())
                .output()
                .expect("run openssl");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=shoal-test-ca"];
        ca.extend(key);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
        run(&ca);
        for (name, extensions) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            std::fs::write(dir.path().join(format!("{name}.ext")), extensions).expect("ext");
            let subject = format!("/CN=shoal-test-{name}");
            let (key_file, csr) = (format!("{name}.key"), format!("{name}.csr"));
            let mut request = vec!["req", "-subj", &subject];
            request.extend(key);
            request.extend(["-keyout", &key_file, "-out", &csr]);
            run(&request);
            let (cert, ext) = (format!("{name}.pem"), format!("{name}.ext"));
            run(&[
                "x509",
                "-req",
                "-days",
                "1",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ]);
        }
        Self { dir }
    }

    /// A file of it: `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`.
    pub fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The variables `deploy/auth/tls.conf` reads.
    pub fn server_env(&self) -> Vec<(String, String)> {
        vec![
            ("SHOAL_TLS_SERVER_CERT".into(), self.file("server.pem")),
            ("SHOAL_TLS_SERVER_KEY".into(), self.file("server.key")),
            ("SHOAL_TLS_SERVER_CA".into(), self.file("ca.pem")),
        ]
    }

    /// The variables a client trusts the CA and shows its certificate with.
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("SHOAL_TLS_CA".into(), self.file("ca.pem")),
            ("SHOAL_TLS_CERT".into(), self.file("client.pem")),
            ("SHOAL_TLS_KEY".into(), self.file("client.key")),
        ]
    }
}

/// The operator's fleet view, a projector and a registry logged in as the operator.
pub struct Services {
    /// The operator's view of the streams and buckets.
    pub fleet: Fleet,
    /// The projector.
    pub projector: ShoalProcess,
    /// The registry.
    pub registry: ShoalProcess,
}

/// Starts the operator's services and returns once the registry answers.
pub async fn services(secure: &SecureServer) -> Services {
    let operator = secure.client_as(OPERATOR).await;
    let fleet = Fleet::over(operator.client.clone()).await;
    let login = secure.login(OPERATOR);
    let url = &secure.server.url;
    let projector = ShoalProcess::start_with_env(url, &["projector", "run"], &login);
    let registry = ShoalProcess::start_with_env(
        url,
        &["registry", "run", "--check-interval", "500ms"],
        &login,
    );
    eventually(Duration::from_secs(20), "the registry answers", || async {
        operator
            .client
            .request("$SRV.PING.shoal-registry", "".into())
            .await
            .is_ok()
    })
    .await;
    Services {
        fleet,
        projector,
        registry,
    }
}

/// A job waiting in `group`'s queue, with its consumer and one log chunk.
pub async fn waiting_job(fleet: &Fleet, group: &str) {
    let layout = Layout::new(subjects());
    layout
        .open_queue_consumer(
            &fleet.js,
            group,
            "default",
            Priority::Normal,
            Duration::from_secs(30),
            5,
        )
        .await
        .expect("queue consumer");
    let body = serde_json::json!({"id": WAITING_JOB, "entrypoint": "noop"});
    fleet.publish_job(group, "default", &body.to_string()).await;
    fleet
        .js
        .publish(subjects().logs(group, WAITING_JOB), "a line\n".into())
        .await
        .expect("log chunk")
        .await
        .expect("log chunk stored");
    wait_for_job(fleet, &format!("{group}.{WAITING_JOB}"), "queued", |job| {
        job.state == Some(JobState::Queued)
    })
    .await;
}

/// An admin of `group` applies a worker resource: the registry creates the
/// consumers of its queue, which a worker's user may only read from.
pub fn declare_queues(url: &str, group: &str, admin: &[(String, String)]) {
    let dir = crate::support::server::TempDir::new("resource");
    let file = dir.path().join("worker.yaml");
    std::fs::write(
        &file,
        format!("name: {group}-default\nversion: v1\ntype: worker\nworker:\n  queues: [default]\n  group: {group}\n"),
    )
    .expect("write the resource");
    let applied = super::process::shoal_with_env(
        Some(url),
        &["apply", "-f", &file.display().to_string()],
        admin,
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
}

/// No password of the test is in a log, an event, a log chunk, a record of
/// any bucket, or any of `texts`.
pub async fn assert_no_secret_written(
    secure: &SecureServer,
    services: &Services,
    texts: &[String],
) {
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

/// Publishes with `headers` as `watched`; `Ok(the sequence it was stored at)` or the refusal.
pub async fn publish_as(
    watched: &Watched,
    subject: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Result<u64, String> {
    let js = async_nats::jetstream::new(watched.client.clone());
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.as_str());
    }
    let pending = js
        .publish_with_headers(subject.to_string(), map, body.to_string().into())
        .await
        .map_err(|err| err.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), pending).await {
        Ok(Ok(ack)) => Ok(ack.sequence),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("no answer".into()),
    }
}
