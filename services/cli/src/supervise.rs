//! `shoal supervise`: the supervisor's command, run until SIGTERM or SIGINT;
//! exit 64 for a pool or setting that cannot be used.

use std::process::ExitCode;

use shoal_supervisor::command::{supervise, SuperviseArgs};
use shoal_supervisor::SupervisorError;

use crate::services::shutdown_on_signal;

/// Runs `shoal supervise`.
pub async fn run(args: SuperviseArgs) -> ExitCode {
    let started = async {
        let program = std::env::current_exe()
            .map_err(|err| SupervisorError::Nats(format!("cannot find the shoal binary: {err}")))?;
        let shutdown =
            shutdown_on_signal().map_err(|err| SupervisorError::Nats(crate::one_sentence(&err)))?;
        supervise(args, program, shutdown).await
    };
    match started.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", shoal_client::error_chain(&err));
            ExitCode::from(match err {
                SupervisorError::Pool(_) => crate::exit::USAGE,
                _ => crate::exit::SOFTWARE,
            })
        }
    }
}
