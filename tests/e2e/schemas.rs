//! `schemas/` is generated from the code; a drift fails here.

use crate::support::server::{repo_dir, TempDir};
use crate::support::shoal;

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn the_checked_in_schemas_are_the_ones_the_code_generates() {
    let generated = TempDir::new("schemas");
    let output = shoal(
        None,
        &[
            "schema",
            "generate",
            "--out-dir",
            generated.path().to_str().expect("utf-8 path"),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let checked_in = repo_dir().join("schemas");
    assert_eq!(
        files(generated.path()),
        files(&checked_in),
        "schemas/ has other files than the code generates"
    );
    for name in files(&checked_in) {
        let want = std::fs::read_to_string(generated.path().join(&name)).expect("generated");
        let have = std::fs::read_to_string(checked_in.join(&name)).expect("checked in");
        assert_eq!(
            have, want,
            "schemas/{name} differs from the code: run `shoal schema generate`"
        );
    }
}

#[test]
fn one_schema_prints_on_demand() {
    let output = shoal(None, &["schema", "generate", "-t", "job"]);
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON schema");
    assert_eq!(schema["title"], "Job");
    assert!(schema["properties"]["entrypoint"].is_object());
}

#[test]
fn the_named_resource_job_and_event_schemas_print_and_an_unknown_version_is_refused() {
    for (kind, title) in [
        ("worker", "Resource"),
        ("pool", "Resource"),
        ("job", "Job"),
        ("event", "Event"),
    ] {
        let output = shoal(None, &["schema", "generate", "-t", kind, "-v", "v1"]);
        assert!(
            output.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let schema: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("JSON schema");
        assert_eq!(schema["title"], title, "{kind}");
    }
    let refused = shoal(None, &["schema", "generate", "-t", "job", "-v", "v9"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("version: `v9`"));
}
