//! What a job may ask of the machine beyond its command: the variables it
//! sets and the folder it runs in. Both are checked against the worker's
//! config before anything starts.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::refusal::Refusal;

/// The names of the worker's own `SHOAL_*` variables (its login, its
/// settings): a job does not inherit them, so no job can read the worker's
/// password, token or key file.
pub fn worker_own_variables() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name.to_string_lossy().starts_with("SHOAL_"))
        .collect()
}

/// The job's env, refused when it sets a variable the worker protects.
pub fn checked_env(
    env: &BTreeMap<String, String>,
    protected: &[String],
    allow_protected: bool,
) -> Result<BTreeMap<String, String>, Refusal> {
    if !allow_protected {
        if let Some(name) = env.keys().find(|name| protected.contains(name)) {
            return Err(Refusal::ProtectedEnv(name.clone()));
        }
    }
    Ok(env.clone())
}

/// The folder a job runs in: its own under the output dir by default; a
/// folder the job names, relative to its own or absolute, must stay under
/// `confined_to` (its group's folder of the output dir) unless the worker
/// allows any. The folder is made here, then checked where it really is.
pub fn working_dir(
    asked: Option<&str>,
    job_dir: &Path,
    confined_to: &Path,
    allow_any: bool,
) -> Result<PathBuf, Refusal> {
    let output_dir = confined_to;
    let Some(asked) = asked else {
        return Ok(job_dir.join("work"));
    };
    let path = job_dir.join(asked);
    if allow_any {
        return Ok(path);
    }
    let escapes = |how: &'static str| Refusal::OutsideGroupFolder {
        asked: asked.to_string(),
        how,
        folder: output_dir.display().to_string(),
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
    // A symbolic link inside the folder may still lead out of it: what
    // exists of the path is resolved before anything is made, and the
    // whole path again once it is made.
    let cannot = |what: &Path, source: std::io::Error| Refusal::WorkingDir {
        path: what.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(output_dir).map_err(|err| cannot(output_dir, err))?;
    let root = output_dir
        .canonicalize()
        .map_err(|err| cannot(output_dir, err))?;
    let inside = |what: &Path| -> Result<bool, Refusal> {
        let real = what.canonicalize().map_err(|err| cannot(what, err))?;
        Ok(real.starts_with(&root))
    };
    let existing = path.ancestors().find(|ancestor| ancestor.exists());
    if let Some(existing) = existing {
        if !inside(existing)? {
            return Err(escapes("leads through a link out of"));
        }
    }
    std::fs::create_dir_all(&path).map_err(|err| cannot(&path, err))?;
    if !inside(&path)? {
        return Err(escapes("leads through a link out of"));
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
        let refused = checked_env(&env, &protected(), false)
            .expect_err("refused")
            .to_string();
        assert!(refused.contains("LD_PRELOAD"), "{refused}");
        assert_eq!(checked_env(&env, &protected(), true).expect("allowed"), env);
        let harmless = BTreeMap::from([("COLOR".to_string(), "blue".to_string())]);
        assert_eq!(
            checked_env(&harmless, &protected(), false).expect("allowed"),
            harmless
        );
    }

    #[test]
    fn working_dirs_stay_under_the_folder_of_the_jobs_group_unless_allowed() {
        let root = std::env::temp_dir().join(format!("shoal-policy-{}", nuid::next()));
        let output = root.join("acme");
        let job = output.join("7");
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
            .to_string()
            .starts_with("working_dir: /etc is outside"));
        let other_group = root.join("globex").join("8");
        let other = other_group.display().to_string();
        assert!(working_dir(Some(&other), &job, &output, false)
            .expect_err("refused")
            .to_string()
            .contains("is outside"));
        assert!(working_dir(Some("../../../etc"), &job, &output, false)
            .expect_err("refused")
            .to_string()
            .contains("climbs out of"));
        std::os::unix::fs::symlink("/etc", job.join("link")).expect("allowed");
        assert!(working_dir(Some("link/x"), &job, &output, false)
            .expect_err("refused")
            .to_string()
            .contains("link"));
        assert_eq!(
            working_dir(Some("/etc"), &job, &output, true).expect("allowed"),
            PathBuf::from("/etc")
        );
        assert!(
            !Path::new("/etc/x").exists(),
            "nothing was made through the link"
        );
        std::fs::remove_dir_all(&root).expect("allowed");
    }
}
