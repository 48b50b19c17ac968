//! Turning a job's action into what the worker will do, refusing anything
//! its config does not allow before a single process starts.

use std::collections::BTreeMap;

use shoal_protocol::{Action, Duration};

use crate::config::Entrypoint;
use crate::refusal::Refusal;

/// What the worker does for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Built-in `noop`: nothing, in-process.
    Noop,
    /// Built-in `sleep <duration>`: waits, in-process.
    Sleep(std::time::Duration),
    /// Runs a process.
    Process { argv: Vec<String> },
}

/// Resolves `action` against the worker's entrypoints and `allow_exec`.
/// The refusal is what the failed job carries.
pub fn plan(
    action: &Action,
    entrypoints: &BTreeMap<String, Entrypoint>,
    allow_exec: bool,
) -> Result<Plan, Refusal> {
    match action {
        Action::Entrypoint { name, args } => {
            if let Some(entrypoint) = entrypoints.get(name) {
                let argv = entrypoint.command.iter().chain(args).cloned().collect();
                return Ok(Plan::Process { argv });
            }
            match name.as_str() {
                "noop" => Ok(Plan::Noop),
                "sleep" => {
                    let text = args.first().ok_or(Refusal::SleepWithoutDuration)?;
                    let duration: Duration = text.parse().map_err(Refusal::SleepDuration)?;
                    Ok(Plan::Sleep(duration.get()))
                }
                _ => {
                    let known: Vec<&str> = ["noop", "sleep"]
                        .into_iter()
                        .chain(entrypoints.keys().map(String::as_str))
                        .collect();
                    Err(Refusal::UnknownEntrypoint {
                        name: name.clone(),
                        known: known.join(", "),
                    })
                }
            }
        }
        Action::Command { argv } if allow_exec => Ok(Plan::Process { argv: argv.clone() }),
        Action::Command { argv } => Err(Refusal::RawCommand(
            argv.first().cloned().unwrap_or_default(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entrypoints() -> BTreeMap<String, Entrypoint> {
        BTreeMap::from([(
            "hello".to_string(),
            Entrypoint {
                command: vec!["echo".into(), "hi".into()],
            },
        )])
    }

    #[test]
    fn an_entrypoint_runs_its_command_with_the_jobs_args_after() {
        let action = Action::Entrypoint {
            name: "hello".into(),
            args: vec!["there".into()],
        };
        assert_eq!(
            plan(&action, &entrypoints(), false),
            Ok(Plan::Process {
                argv: vec!["echo".into(), "hi".into(), "there".into()]
            })
        );
    }

    #[test]
    fn built_ins_run_no_process() {
        let noop = Action::Entrypoint {
            name: "noop".into(),
            args: vec![],
        };
        assert_eq!(plan(&noop, &entrypoints(), false), Ok(Plan::Noop));
        let sleep = Action::Entrypoint {
            name: "sleep".into(),
            args: vec!["2s".into()],
        };
        assert_eq!(
            plan(&sleep, &entrypoints(), false),
            Ok(Plan::Sleep(std::time::Duration::from_secs(2)))
        );
    }

    #[test]
    fn unknown_entrypoints_and_raw_commands_without_allow_exec_are_refused() {
        let unknown = Action::Entrypoint {
            name: "rm".into(),
            args: vec![],
        };
        assert!(plan(&unknown, &entrypoints(), true)
            .expect_err("refused")
            .to_string()
            .contains("unknown entrypoint `rm`"));
        let raw = Action::Command {
            argv: vec!["/bin/true".into()],
        };
        assert!(plan(&raw, &entrypoints(), false)
            .expect_err("refused")
            .to_string()
            .contains("allow_exec"));
        assert_eq!(
            plan(&raw, &entrypoints(), true),
            Ok(Plan::Process {
                argv: vec!["/bin/true".into()]
            })
        );
    }
}
