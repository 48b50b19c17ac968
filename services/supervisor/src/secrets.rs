//! A pool's secrets, resolved where the supervisor runs. Kubernetes secret
//! references cannot be read outside a cluster; a local supervisor takes
//! `env:NAME` (a variable of its own environment) and `file:PATH` (a file's
//! content, without its final newline), and refuses any other reference,
//! naming the secret. Values are handed to the replicas and never logged.

use shoal_protocol::resource::SecretRef;

use crate::SupervisorError;

/// The variables the replicas get for `secrets`, read with `lookup` (the environment).
pub fn resolve(
    secrets: &[SecretRef],
    files: SecretFiles,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, SupervisorError> {
    secrets
        .iter()
        .enumerate()
        .map(|(index, secret)| {
            let value = resolve_one(secret, files, &lookup).map_err(|reason| {
                let reason = shoal_client::error_chain(&reason);
                SupervisorError::Pool(format!("pool.secrets[{index}] ({}): {reason}", secret.name))
            })?;
            Ok((secret.name.clone(), value))
        })
        .collect()
}

/// Whether a pool's `file:` references may be read: only for a pool file
/// given by whoever runs the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFiles {
    /// The pool came from a file given on the command line.
    Allowed,
    /// The pool came from the bucket, written by a group's admin.
    Refused,
}

/// Why a secret reference cannot be read here.
#[derive(Debug, thiserror::Error)]
enum Unreadable {
    /// The supervisor's environment lacks the variable.
    #[error("`env:{0}`: the supervisor has no variable {0}")]
    NoVariable(String),
    /// A pool from the bucket asked for a file.
    #[error("`file:{0}`: a pool read from the shoal_pools bucket may not read this machine's files (use env:NAME, or run the pool from its file with -f)")]
    FileRefused(String),
    /// The file cannot be read.
    #[error("`file:{path}`: cannot read {path}")]
    File {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The reference is of a kind only Kubernetes reads.
    #[error("`{0}` cannot be read by a local supervisor (use env:NAME or file:PATH; k8s: references are for `shoal render k8s`)")]
    Elsewhere(String),
}

fn resolve_one(
    secret: &SecretRef,
    files: SecretFiles,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, Unreadable> {
    let reference = secret.reference.as_str();
    if let Some(variable) = reference.strip_prefix("env:") {
        return lookup(variable).ok_or_else(|| Unreadable::NoVariable(variable.to_string()));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        if files == SecretFiles::Refused {
            return Err(Unreadable::FileRefused(path.to_string()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| Unreadable::File {
            path: path.to_string(),
            source,
        })?;
        return Ok(text.strip_suffix('\n').unwrap_or(&text).to_string());
    }
    Err(Unreadable::Elsewhere(reference.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, reference: &str) -> SecretRef {
        SecretRef {
            name: name.into(),
            reference: reference.into(),
        }
    }

    #[test]
    fn env_references_are_read_from_the_supervisors_environment() {
        let lookup = |name: &str| (name == "VIDEO_TOKEN").then(|| "s3cr3t".to_string());
        let vars = resolve(
            &[secret("STORAGE_TOKEN", "env:VIDEO_TOKEN")],
            SecretFiles::Allowed,
            lookup,
        )
        .expect("ok");
        assert_eq!(vars, vec![("STORAGE_TOKEN".into(), "s3cr3t".into())]);
        let err = resolve(
            &[secret("STORAGE_TOKEN", "env:NOPE")],
            SecretFiles::Allowed,
            lookup,
        )
        .expect_err("missing");
        assert!(
            err.to_string()
                .starts_with("pool.secrets[0] (STORAGE_TOKEN): "),
            "{err}"
        );
    }

    #[test]
    fn a_pool_from_the_bucket_may_not_read_files() {
        let err = resolve(
            &[secret("KEY", "file:/etc/hostname")],
            SecretFiles::Refused,
            |_| None,
        )
        .expect_err("refused");
        assert!(err.to_string().contains("may not read"), "{err}");
        let read = resolve(
            &[secret("KEY", "file:/etc/hostname")],
            SecretFiles::Allowed,
            |_| None,
        );
        assert!(read.is_ok(), "{read:?}");
    }

    #[test]
    fn kubernetes_references_are_refused_naming_the_secret() {
        let err = resolve(
            &[secret("STORAGE_TOKEN", "k8s:acme/storage-token")],
            SecretFiles::Allowed,
            |_| None,
        )
        .expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("STORAGE_TOKEN"), "{text}");
        assert!(text.contains("k8s:acme/storage-token"), "{text}");
        assert!(!text.contains("s3cr3t"));
    }
}
