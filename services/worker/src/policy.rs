//! What a job may ask of the machine beyond its command: the variables it
//! sets and the folder it runs in. Both are checked against the worker's
//! config before anything starts.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The job's env, refused when it sets a variable the worker protects.
pub fn checked_env(
    env: &BTreeMap<String, String>,
    protected: &[String],
    allow_protected: bool,
) -> Result<BTreeMap<String, String>, String> {
    if !allow_protected {
        if let Some(name) = env.keys().find(|name| protected.contains(name)) {
            return Err(format!(
                "env: {name} is protected by this worker (protected_env); \
                 allow_protected_env = true lets jobs set it"
            ));
        }
    }
    Ok(env.clone())
}

/// The folder a job runs in: its own under the output dir by default; a
/// folder the job names, relative to its own or absolute, must stay under
/// the output dir unless the worker allows any.
pub fn working_dir(
    asked: Option<&str>,
    job_dir: &Path,
    output_dir: &Path,
    allow_any: bool,
) -> Result<PathBuf, String> {
    let Some(asked) = asked else {
        return Ok(job_dir.join("work"));
    };
    let path = job_dir.join(asked);
    if allow_any {
        return Ok(path);
    }
    let escapes = |reason: &str| {
        format!(
            "working_dir: {asked} {reason} the worker's output dir {} \
             (allow_any_working_dir = true lets jobs run elsewhere)",
            output_dir.display()
        )
    };
    if path
        .components()
        .any(|component| component == Component::ParentDir)
    {
        return Err(escapes("climbs out of"));
    }
    if !path.starts_with(output_dir) {
        return Err(escapes("is outside"));
    }
    // A symbolic link inside the output dir may still lead out of it.
    let existing = path.ancestors().find(|ancestor| ancestor.exists());
    if let (Some(existing), Ok(root)) = (existing, output_dir.canonicalize()) {
        let real = existing.canonicalize().map_err(|err| err.to_string())?;
        if !real.starts_with(&root) {
            return Err(escapes("leads through a link out of"));
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected() -> Vec<String> {
        vec!["PATH".into(), "LD_PRELOAD".into()]
    }

    #[test]
    fn a_job_cannot_set_a_protected_variable_unless_allowed() {
        let env = BTreeMap::from([("LD_PRELOAD".to_string(), "/tmp/evil.so".to_string())]);
        let refused = checked_env(&env, &protected(), false).expect_err("refused");
        assert!(refused.contains("LD_PRELOAD"), "{refused}");
        assert_eq!(checked_env(&env, &protected(), true).expect("allowed"), env);
        let harmless = BTreeMap::from([("COLOR".to_string(), "blue".to_string())]);
        assert_eq!(
            checked_env(&harmless, &protected(), false).expect("allowed"),
            harmless
        );
    }

    #[test]
    fn working_dirs_stay_under_the_output_dir_unless_allowed() {
        let output = std::env::temp_dir().join(format!("shoal-policy-{}", nuid::next()));
        let job = output.join("acme").join("7");
        std::fs::create_dir_all(&job).expect("allowed");
        assert_eq!(
            working_dir(None, &job, &output, false).expect("allowed"),
            job.join("work")
        );
        assert_eq!(
            working_dir(Some("sub/dir"), &job, &output, false).expect("allowed"),
            job.join("sub/dir")
        );
        assert!(working_dir(Some("/etc"), &job, &output, false)
            .expect_err("refused")
            .starts_with("working_dir: /etc is outside"));
        assert!(working_dir(Some("../../../etc"), &job, &output, false)
            .expect_err("refused")
            .contains("climbs out of"));
        std::os::unix::fs::symlink("/etc", job.join("link")).expect("allowed");
        assert!(working_dir(Some("link/x"), &job, &output, false)
            .expect_err("refused")
            .contains("link"));
        assert_eq!(
            working_dir(Some("/etc"), &job, &output, true).expect("allowed"),
            PathBuf::from("/etc")
        );
        std::fs::remove_dir_all(&output).expect("allowed");
    }
}
