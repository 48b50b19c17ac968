//! The shape a newcomer can rely on: a pure contract crate, services that
//! depend on the contract and the client library only, a thin CLI, and no
//! source file over 600 lines.

use std::path::{Path, PathBuf};

use crate::support::server::repo_dir;

/// The crates named in the `[dependencies]` table of a manifest.
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).expect("a manifest");
    let mut in_dependencies = false;
    let mut names = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && !line.is_empty() && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once(['=', '.']) {
                names.push(name.trim().to_string());
            }
        }
    }
    names
}

fn rust_files(under: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(under).expect("a folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

fn lines_of(file: &Path) -> usize {
    std::fs::read_to_string(file)
        .expect("a source file")
        .lines()
        .count()
}

#[test]
fn the_protocol_is_pure_and_no_service_depends_on_another() {
    let services = repo_dir().join("services");
    let protocol = dependencies(&services.join("protocol/Cargo.toml"));
    for io in ["async-nats", "tokio", "futures-util", "shoal-client"] {
        assert!(
            !protocol.contains(&io.to_string()),
            "protocol depends on {io}"
        );
    }
    let client = dependencies(&services.join("client/Cargo.toml"));
    assert!(client
        .iter()
        .all(|name| !name.starts_with("shoal-") || name == "shoal-protocol"));
    for service in ["worker", "projector", "registry", "supervisor", "dashboard"] {
        let used = dependencies(&services.join(service).join("Cargo.toml"));
        let shoal: Vec<_> = used
            .iter()
            .filter(|name| name.starts_with("shoal-"))
            .collect();
        // The job guard is no service: a small part of the worker, kept
        // apart so that its binary starts fast. Metrics and traces are
        // libraries every part reports through, like the client.
        let allowed = |name: &str| {
            name == "shoal-protocol"
                || name == "shoal-client"
                || name == "shoal-metrics"
                || name == "shoal-traces"
                || (service == "worker" && name == "shoal-guard")
        };
        assert!(
            shoal.iter().all(|name| allowed(name)),
            "{service} depends on {shoal:?}"
        );
    }
    let traces = dependencies(&services.join("traces/Cargo.toml"));
    assert!(
        traces
            .iter()
            .all(|name| !name.starts_with("shoal-") || name == "shoal-protocol"),
        "the traces library depends on the protocol alone: {traces:?}"
    );
    let metrics = dependencies(&services.join("metrics/Cargo.toml"));
    assert!(
        metrics.iter().all(|name| !name.starts_with("shoal-")),
        "the metrics library depends on no other part: {metrics:?}"
    );
    let guard = dependencies(&services.join("guard/Cargo.toml"));
    assert_eq!(guard, ["libc"], "the job guard depends on libc alone");
}

#[test]
fn the_cli_is_thin_and_no_source_file_is_over_600_lines() {
    let repo = repo_dir();
    let cli: usize = rust_files(&repo.join("services/cli/src"))
        .iter()
        .map(|file| lines_of(file))
        .sum();
    assert!(cli < 2_600, "the CLI holds {cli} lines");
    let mut files = rust_files(&repo.join("services"));
    files.extend(rust_files(&repo.join("tests")));
    files.extend(rust_files(&repo.join("fuzz/fuzz_targets")));
    let long: Vec<String> = files
        .iter()
        .filter(|file| lines_of(file) > 600)
        .map(|file| format!("{} ({})", file.display(), lines_of(file)))
        .collect();
    assert!(long.is_empty(), "over 600 lines: {long:?}");
}
