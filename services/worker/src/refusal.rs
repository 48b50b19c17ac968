//! Why the worker refuses to run a job as it was submitted: the sentence
//! its record carries (`error_text`), naming the field at fault.

use std::path::PathBuf;

use shoal_protocol::duration::InvalidDuration;
use thiserror::Error;

/// A job this worker will not run as it stands.
#[derive(Debug, Error)]
pub enum Refusal {
    /// `sleep` without its duration.
    #[error("entrypoint sleep: expected a duration argument, e.g. sleep 5s")]
    SleepWithoutDuration,
    /// `sleep` with something that is no duration.
    #[error("entrypoint sleep")]
    SleepDuration(#[source] InvalidDuration),
    /// An entrypoint the worker does not know.
    #[error("unknown entrypoint `{name}`: this worker knows {known}")]
    UnknownEntrypoint {
        /// The name asked for.
        name: String,
        /// The names it knows, comma-separated.
        known: String,
    },
    /// A raw command on a worker that runs entrypoints only.
    #[error("raw command `{0}` refused: this worker runs entrypoints only (allow_exec = false)")]
    RawCommand(String),
    /// A variable the worker protects.
    #[error("env: {0} is protected by this worker (protected_env); allow_protected_env = true lets jobs set it")]
    ProtectedEnv(String),
    /// A working dir outside the folder of the job's group.
    #[error("working_dir: {asked} {how} the folder of the job's group {folder} (allow_any_working_dir = true lets jobs run elsewhere)")]
    OutsideGroupFolder {
        /// The working dir asked for.
        asked: String,
        /// How it gets out: `climbs out of`, `is outside`, `leads through a link out of`.
        how: &'static str,
        /// The group's folder.
        folder: String,
    },
    /// A working dir that cannot be made or read.
    #[error("working_dir: cannot use {}", path.display())]
    WorkingDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl PartialEq for Refusal {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}
