//! A job's result: the small text it leaves in `$SHOAL_RESULT_FILE`, read
//! with care, since the job chooses what the path holds, and stored as the
//! JSON it is or as a string.

use shoal_protocol::event::MAX_RESULT_BYTES;
use shoal_protocol::JobResult;

use crate::process::{Ending, Outcome};

/// Takes the job's result from its result file: a successful attempt whose
/// result is too large, or whose result file is not a plain file, fails, so
/// that nothing is silently cut or read from elsewhere.
pub(crate) fn with_result(mut outcome: Outcome, result_file: &std::path::Path) -> Outcome {
    if outcome.ending != Ending::Succeeded {
        return outcome;
    }
    match read_result(result_file) {
        Ok(result) => outcome.result = result,
        Err(reason) => {
            outcome.ending = Ending::Failed;
            outcome.error_text = Some(format!("result: {reason}"));
        }
    }
    outcome
}

/// Reads at most [`MAX_RESULT_BYTES`] of a plain file, never through a
/// link (a job could point it at any file its worker may read) and never
/// blocking on a pipe; `None` when the job left no result.
fn read_result(path: &std::path::Path) -> Result<Option<JobResult>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            return Err("the result file is a link, which is not followed".into())
        }
        Err(err) => return Err(format!("cannot open the result file: {err}")),
    };
    let size = match file.metadata() {
        Ok(metadata) if metadata.is_file() => metadata.len(),
        _ => return Err("the result file is not a plain file".into()),
    };
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_RESULT_BYTES).unwrap_or(u64::MAX) + 1;
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read the result file: {err}"))?;
    if bytes.len() > MAX_RESULT_BYTES {
        return Err(format!(
            "{} bytes is more than the {MAX_RESULT_BYTES} a result may take",
            size.max(bytes.len() as u64)
        ));
    }
    Ok(Some(JobResult::from_text(&String::from_utf8_lossy(&bytes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_file_that_is_a_link_a_pipe_or_too_large_is_refused() {
        let dir = std::env::temp_dir().join(format!("shoal-result-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let plain = dir.join("plain");
        std::fs::write(&plain, "42").expect("write");
        assert_eq!(read_result(&plain), Ok(Some(JobResult::from_text("42"))));
        assert_eq!(read_result(&dir.join("absent")), Ok(None));
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/etc/hostname", &link).expect("link");
        assert!(read_result(&link).is_err_and(|reason| reason.contains("link")));
        let big = dir.join("big");
        std::fs::write(&big, vec![b'x'; MAX_RESULT_BYTES + 1]).expect("write");
        assert!(read_result(&big).is_err_and(|reason| reason.contains("bytes")));
        assert!(read_result(std::path::Path::new("/dev/zero"))
            .is_err_and(|reason| reason.contains("plain")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
