//! Logging in: wrong passwords, unknown NKeys and broken credentials fail
//! at once with a clear error that echoes no secret; a token server, an
//! NKey user made by `shoal auth`, and TLS with the test CA all work; and
//! the repository's users are what `shoal auth` makes of them.

use std::time::Duration;

use crate::support::process::shoal_with_env;
use crate::support::secure::{declare_queues, SecureServer, OPERATOR};
use crate::support::{eventually, ShoalProcess};

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
