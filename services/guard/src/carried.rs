//! The guard without a C library that `shoal` carries (built from `bare/`
//! by the build script), run from a sealed in-memory file: it needs no file
//! beside `shoal`, and no folder that allows running programs.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The carried guard's bytes, on targets it is built for.
#[cfg(bare_guard)]
const BARE_GUARD: Option<&[u8]> = Some(include_bytes!(env!("SHOAL_BARE_GUARD")));
#[cfg(not(bare_guard))]
const BARE_GUARD: Option<&[u8]> = None;

/// The read-only descriptor the guard is run through, kept open for the
/// life of the process, and its path.
static LOADED: OnceLock<Option<(File, PathBuf)>> = OnceLock::new();

/// The path to run the carried guard by, once it is loaded; `None` on a
/// target without one, or where in-memory files cannot be run.
pub(crate) fn path() -> Option<PathBuf> {
    LOADED
        .get_or_init(|| load(BARE_GUARD?).ok())
        .as_ref()
        .map(|(_, path)| path.clone())
}

/// Writes `bytes` to a sealed in-memory file and opens it again read-only:
/// a program still open for writing cannot be run.
fn load(bytes: &[u8]) -> std::io::Result<(File, PathBuf)> {
    let mut writable = memfd()?;
    writable.write_all(bytes)?;
    seal(&writable)?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", writable.as_raw_fd()));
    let readable = File::open(&path)?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", readable.as_raw_fd()));
    drop(writable);
    runs(&path)?;
    Ok((readable, path))
}

/// Whether the guard at `path` runs here: the kernel may refuse to run
/// in-memory files. Without its arguments it says how to call it and ends 127.
fn runs(path: &std::path::Path) -> std::io::Result<()> {
    let status = std::process::Command::new(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    match status.code() {
        Some(127) => Ok(()),
        _ => Err(std::io::Error::other(format!(
            "the carried job guard ended {status} when asked how to call it"
        ))),
    }
}

/// A new in-memory file, closed in every program the process runs; with
/// `MFD_EXEC` where the kernel knows it (it may refuse to run one without).
#[allow(unsafe_code)]
fn memfd() -> std::io::Result<File> {
    const MFD_EXEC: libc::c_uint = 0x10;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    let name = c"shoal-job-guard";
    // SAFETY: memfd_create takes a NUL-terminated name and flags, and
    // returns a new descriptor that nothing else owns.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
    if fd < 0 {
        // SAFETY: as above; kernels before 6.3 refuse the flag they do not know.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Seals `file` against any change.
#[allow(unsafe_code)]
fn seal(file: &File) -> std::io::Result<()> {
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl(F_ADD_SEALS) on a descriptor this process owns only
    // forbids later changes to the file.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The carried guard, called by this process; `None` on a target
    /// without one (where it must not have been built either).
    fn guarding() -> Option<std::process::Command> {
        let Some(guard) = path() else {
            assert!(BARE_GUARD.is_none(), "the carried guard did not load");
            return None;
        };
        let mut command = std::process::Command::new(guard);
        command.arg(std::process::id().to_string());
        Some(command)
    }

    #[test]
    fn the_carried_guard_runs_a_program_and_ends_as_it_ended() {
        let Some(mut guard) = guarding() else {
            return;
        };
        let status = guard
            .args(["sh", "-c", "exit 7"])
            .status()
            .expect("the guard runs");
        assert_eq!(status.code(), Some(7));
    }

    #[test]
    fn the_carried_guard_kills_what_the_program_left_behind_even_in_another_session() {
        let Some(mut guard) = guarding() else {
            return;
        };
        let output = guard
            .args([
                "sh",
                "-c",
                "sleep 300 >/dev/null & echo $!; setsid sleep 300 >/dev/null & echo $!; exit 3",
            ])
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("the guard runs");
        assert_eq!(output.status.code(), Some(3));
        let left: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        for pid in left {
            // Killed and reaped by the guard before it ended: no such process.
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "process {pid} outlived its guard"
            );
        }
    }
}
