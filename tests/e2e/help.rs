//! Every command explains itself, and the worker's help lists every setting
//! with its default and its variable.

use crate::support::shoal;

#[test]
fn every_command_prints_its_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["dev"],
        &["worker"],
        &["worker", "run"],
        &["worker", "create"],
        &["worker", "get"],
        &["worker", "list"],
        &["worker", "update"],
        &["worker", "delete"],
        &["projector", "run"],
        &["registry", "run"],
        &["job", "submit"],
        &["job", "get"],
        &["job", "wait"],
        &["get"],
        &["apply"],
        &["delete"],
        &["schema", "generate"],
        &["bench"],
        &["supervise"],
        &["render", "k8s"],
        &["schedule", "ls"],
        &["job", "logs"],
        &["job", "cancel"],
        &["job", "retry"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let output = shoal(None, &args);
        assert!(
            output.status.success(),
            "shoal {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage:"),
            "shoal {args:?}"
        );
    }
}

/// The help text of one flag: its line and the lines up to the next flag.
fn block_of<'a>(help: &'a str, flag: &str) -> Option<&'a str> {
    let start = help.find(&format!("{flag} "))?;
    let rest = &help[start..];
    let end = rest[1..].find("\n  -").map_or(rest.len(), |end| end + 1);
    Some(&rest[..end])
}

#[test]
fn worker_run_help_lists_every_setting_with_its_default_and_variable() {
    let output = shoal(None, &["worker", "run", "--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    let without_default = ["credentials", "user", "password", "token", "worker_id"];
    for setting in shoal_worker::settings::setting_names() {
        let flag = format!("--{}", setting.replace('_', "-"));
        let block =
            block_of(&help, &flag).unwrap_or_else(|| panic!("{flag} missing from the help"));
        assert!(
            block.contains("[env: SHOAL_"),
            "{flag} names no variable: {block}"
        );
        assert!(
            block.contains("[default:") || without_default.contains(&setting.as_str()),
            "{flag} shows no default: {block}"
        );
    }
}
