//! The exit codes of `shoal`. 0: it did what was asked. 1: what was asked
//! about ended badly (a job failed, a job had nothing to cancel). `job wait`
//! mirrors a failed job's own exit code and exits 124 for a timed-out job.
//! The command's own failures take the codes of sysexits.h (64-78), which no
//! job's outcome takes: a job that exited with one of them, or with 124, is
//! reported as 1 (its code is printed).

use shoal_client::ClientError;
use shoal_protocol::{JobRecord, JobState};

/// A flag, setting or input that cannot be used.
pub const USAGE: u8 = 64;
/// No such job, schedule or file.
pub const NO_INPUT: u8 = 66;
/// No NATS server or no registry answers.
pub const UNAVAILABLE: u8 = 69;
/// Anything else the command could not do.
pub const SOFTWARE: u8 = 70;
/// A wait ran out of time.
pub const TIMED_OUT: u8 = 75;
/// The server or the registry refused it to this login.
pub const NO_PERMISSION: u8 = 77;

/// The exit code of a job that ended, as `job wait` gives it.
pub fn of_job(record: &JobRecord) -> u8 {
    match record.state {
        Some(JobState::Succeeded) => 0,
        Some(JobState::TimedOut) => 124,
        Some(JobState::Failed) => match record.exit_code.and_then(|code| u8::try_from(code).ok()) {
            Some(code) if code == 0 || code == 124 || (USAGE..=78).contains(&code) => 1,
            Some(code) => code,
            None => 1,
        },
        _ => 1,
    }
}

/// A flag or an input that cannot be used, in one sentence naming it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The exit code of a command that failed with `err`.
pub fn of_error(err: &anyhow::Error) -> u8 {
    let unusable = err.chain().any(|cause| {
        cause.is::<Usage>()
            || cause.is::<shoal_protocol::token::InvalidToken>()
            || cause.is::<shoal_protocol::job::InvalidJob>()
            || cause.is::<shoal_protocol::duration::InvalidDuration>()
            || cause.is::<shoal_protocol::resource::InvalidResource>()
    });
    if unusable {
        return USAGE;
    }
    let Some(client) = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<ClientError>())
    else {
        return SOFTWARE;
    };
    match client {
        ClientError::Invalid(_)
        | ClientError::InvalidJob(_)
        | ClientError::Field { .. }
        | ClientError::Taken { .. }
        | ClientError::Ambiguous { .. } => USAGE,
        ClientError::NoSuchJob(_) => NO_INPUT,
        ClientError::Connect(_) | ClientError::NoRegistry(_) | ClientError::RegistryTimedOut(_) => {
            UNAVAILABLE
        }
        ClientError::TimedOut { .. } => TIMED_OUT,
        ClientError::Refused { code: 403, .. } => NO_PERMISSION,
        ClientError::Refused { code: 400, .. } => USAGE,
        ClientError::Refused { code: 404, .. } => NO_INPUT,
        _ => SOFTWARE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(code: i32) -> JobRecord {
        JobRecord {
            state: Some(JobState::Failed),
            exit_code: Some(code),
            ..Default::default()
        }
    }

    #[test]
    fn a_job_never_exits_like_the_command_itself_failed() {
        assert_eq!(of_job(&failed(3)), 3);
        assert_eq!(of_job(&failed(2)), 2);
        for reserved in [64, 66, 69, 70, 75, 77, 78, 124] {
            assert_eq!(of_job(&failed(reserved)), 1, "{reserved}");
        }
        let timed_out = JobRecord {
            state: Some(JobState::TimedOut),
            ..Default::default()
        };
        assert_eq!(of_job(&timed_out), 124);
    }

    #[test]
    fn the_commands_own_failures_take_their_own_codes() {
        let timed_out = ClientError::TimedOut {
            id: "j".into(),
            within: shoal_protocol::Duration::from_secs(1),
        };
        assert_eq!(of_error(&anyhow::Error::from(timed_out)), TIMED_OUT);
        let missing = anyhow::Error::from(ClientError::NoSuchJob("j".into()));
        assert_eq!(of_error(&missing.context("job get")), NO_INPUT);
        assert_eq!(of_error(&anyhow::anyhow!("anything")), SOFTWARE);
        let usage = anyhow::Error::from(Usage("state: `x` is no job state".into()));
        assert_eq!(of_error(&usage), USAGE);
    }
}
