//! `shoal auth`: NATS users for the roles of a group, printed as entries of
//! a nats-server `authorization { users: [...] }` block. Secrets go to files
//! (mode 0600) or stay in the server's environment; none is printed.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use shoal_client::streams::Layout;
use shoal_protocol::permissions::{grant, inbox_prefix, Grant, Grantee, Role};
use shoal_protocol::token::validate_token;
use shoal_protocol::Subjects;

/// `shoal auth ...`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Print the users entry of one NATS user with one role in one group.
    AddUser(AddUserArgs),
    /// Print the users entries of a new group: `<group>-read`, `-write`, `-admin` and `-worker`.
    AddGroup(AddGroupArgs),
}

/// How a user proves who it is.
#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    /// Keep the password in the server's environment: the entry reads
    /// `password: $SHOAL_AUTH_<USER>` (upper case, `-` as `_`).
    #[arg(long, conflicts_with_all = ["secrets", "nkey"])]
    password_env: bool,
    /// Folder for the users' secrets, one file each (`<user>.password`, or
    /// `<user>.nk` with --nkey), mode 0600; an existing file is reused.
    #[arg(long, value_name = "DIR")]
    secrets: Option<PathBuf>,
    /// Log in with an NKey instead of a password: the seed goes to the secrets folder.
    #[arg(long, requires = "secrets")]
    nkey: bool,
    /// Subject prefix of the installation.
    #[arg(long, env = "SHOAL_PREFIX", default_value = "shoal")]
    prefix: String,
}

/// Flags of `shoal auth add-user`.
#[derive(Debug, Args)]
pub struct AddUserArgs {
    /// The user's name; its replies come on `_INBOX.<name>`.
    name: String,
    /// Its group (ignored for the operator role).
    #[arg(short, long, default_value = "default")]
    group: String,
    /// Its role: read, write, admin, worker or operator.
    #[arg(short, long)]
    role: String,
    /// A worker's queues, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "default")]
    queues: Vec<String>,
    /// A worker's tags, comma-separated.
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// A worker that also serves `_system`.
    #[arg(long)]
    system: bool,
    #[command(flatten)]
    secret: SecretArgs,
}

/// Flags of `shoal auth add-group`.
#[derive(Debug, Args)]
pub struct AddGroupArgs {
    /// The group.
    group: String,
    /// The queues its worker user serves, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "default")]
    queues: Vec<String>,
    #[command(flatten)]
    secret: SecretArgs,
}

/// Runs an auth command.
pub fn run(command: AuthCommand) -> anyhow::Result<()> {
    let entries = match command {
        AuthCommand::AddUser(args) => {
            let role: Role = args.role.parse().map_err(anyhow::Error::msg)?;
            let grantee = Grantee {
                user: args.name,
                group: args.group,
                queues: args.queues,
                tags: args.tags,
                system: args.system,
            };
            vec![entry(&args.secret, role, &grantee)?]
        }
        AuthCommand::AddGroup(args) => [Role::Read, Role::Write, Role::Admin, Role::Worker]
            .into_iter()
            .map(|role| {
                let grantee = Grantee {
                    user: format!("{}-{role}", args.group),
                    group: args.group.clone(),
                    queues: args.queues.clone(),
                    tags: Vec::new(),
                    system: false,
                };
                entry(&args.secret, role, &grantee)
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let mut out = std::io::stdout().lock();
    for entry in entries {
        out.write_all(entry.as_bytes())?;
    }
    Ok(())
}

/// The users entry of one user, with its secret stored as asked.
fn entry(secret: &SecretArgs, role: Role, grantee: &Grantee) -> anyhow::Result<String> {
    validate_token("user", &grantee.user)?;
    validate_token("group", &grantee.group)?;
    for queue in &grantee.queues {
        validate_token("queues", queue)?;
    }
    for tag in &grantee.tags {
        validate_token("tags", tag)?;
    }
    let layout = Layout::new(Subjects::new(&secret.prefix)?);
    let login = login(secret, &grantee.user)?;
    let what = match role {
        Role::Operator => "role operator (every group)".to_string(),
        role => format!("role {role} of group {}", grantee.group),
    };
    Ok(render(
        &grantee.user,
        &what,
        &login,
        &grant(&layout, role, grantee),
    ))
}

/// The login lines of an entry.
fn login(secret: &SecretArgs, user: &str) -> anyhow::Result<String> {
    if secret.password_env {
        let variable = format!("SHOAL_AUTH_{}", user.to_uppercase().replace('-', "_"));
        return Ok(format!("user: \"{user}\"\n      password: ${variable}"));
    }
    let Some(dir) = &secret.secrets else {
        bail!("secrets: say where the user's secret goes (--secrets DIR) or --password-env");
    };
    if secret.nkey {
        let path = dir.join(format!("{user}.nk"));
        let seed = stored_secret(&path, || {
            let pair = nkeys::KeyPair::new_user();
            pair.seed().map_err(|err| anyhow::anyhow!("nkey: {err}"))
        })?;
        let pair = nkeys::KeyPair::from_seed(seed.trim())
            .map_err(|_| anyhow::anyhow!("nkey: {} holds no valid seed", path.display()))?;
        return Ok(format!("nkey: \"{}\"", pair.public_key()));
    }
    let path = dir.join(format!("{user}.password"));
    let password = stored_secret(&path, random_password)?;
    Ok(format!(
        "user: \"{user}\"\n      password: \"{}\"",
        password.trim()
    ))
}

/// The secret in `path`, made with `make` and written (mode 0600) when the file is new.
fn stored_secret(
    path: &Path,
    make: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    if path.exists() {
        return std::fs::read_to_string(path)
            .with_context(|| format!("secrets: cannot read {}", path.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("secrets: cannot create {}", dir.display()))?;
    }
    let secret = make()?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("secrets: cannot create {}", path.display()))?;
    writeln!(file, "{secret}")?;
    Ok(secret)
}

/// 32 random letters and digits from the kernel's generator.
fn random_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut bytes))
        .context("secrets: cannot read /dev/urandom")?;
    Ok(bytes
        .iter()
        .map(|byte| ALPHABET[usize::from(*byte) % ALPHABET.len()] as char)
        .collect())
}

/// A quoted list of subjects, one per line.
fn subject_list(subjects: &[String]) -> String {
    subjects
        .iter()
        .map(|subject| format!("          \"{subject}\""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One users entry, in nats-server's configuration syntax.
fn render(user: &str, what: &str, login: &str, grant: &Grant) -> String {
    format!(
        "    # {user}: {what}; connects with SHOAL_INBOX_PREFIX={inbox}\n    {{\n      {login}\n      permissions: {{\n        publish: {{ allow: [\n{publish}\n        ] }}\n        subscribe: {{ allow: [\n{subscribe}\n        ] }}\n        allow_responses: {responses}\n      }}\n    }}\n",
        inbox = inbox_prefix(user),
        publish = subject_list(&grant.publish),
        subscribe = subject_list(&grant.subscribe),
        responses = grant.allow_responses,
    )
}
