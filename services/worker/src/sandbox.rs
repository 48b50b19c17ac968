//! Keeping a worker's login away from the jobs it runs.
//!
//! A job runs as the worker's user, so it may read what that user may read
//! of the worker itself: `/proc/<worker pid>/environ` holds the environment
//! the worker was started with (`SHOAL_PASSWORD`, `SHOAL_TOKEN`, ...) for
//! as long as it lives, whatever the worker later does with its variables,
//! and `/proc/<worker pid>/mem` the login it keeps to reconnect. So once the
//! worker has read its settings, it blanks the values of its `SHOAL_*`
//! variables where the kernel shows them, and marks itself not dumpable,
//! which keeps processes of the same user (not root) out of its `/proc`
//! files and from tracing it.

use std::ffi::CStr;

/// Prefix of the variables whose values are blanked.
const PREFIX: &[u8] = b"SHOAL_";

extern "C" {
    /// The process's environment, as the C library keeps it.
    static mut environ: *const *mut libc::c_char;
}

/// Blanks the values of the worker's `SHOAL_*` variables and makes the
/// worker not dumpable. Call once the settings have been read.
pub fn hide_login_from_jobs() {
    set_not_dumpable();
    blank_variables(PREFIX);
}

#[allow(unsafe_code)]
fn set_not_dumpable() {
    // SAFETY: prctl(2) with PR_SET_DUMPABLE takes plain integers and changes
    // only the calling process's dumpable flag.
    let done = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if done == -1 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot mark the worker not dumpable");
    }
}

/// Overwrites, in place, the value of every variable whose name starts
/// with `prefix`: the kernel shows the memory the environment was first
/// laid in, so removing a variable would leave its text there.
#[allow(unsafe_code)]
fn blank_variables(prefix: &[u8]) {
    // SAFETY: `environ` is the C library's NUL-terminated array of pointers
    // to NUL-terminated `NAME=value` strings, laid in writable memory at the
    // start of the process. Each string is only written within its own
    // length (its terminating NUL is left in place), so every pointer and
    // every string stays valid; a reader at the same time sees a shorter or
    // empty value, never memory out of bounds.
    unsafe {
        let mut entry = environ;
        if entry.is_null() {
            return;
        }
        while !(*entry).is_null() {
            let text = *entry;
            let bytes = CStr::from_ptr(text).to_bytes();
            if bytes.starts_with(prefix) {
                if let Some(equals) = bytes.iter().position(|byte| *byte == b'=') {
                    let value = text.add(equals + 1);
                    std::ptr::write_bytes(value, 0, bytes.len() - equals - 1);
                }
            }
            entry = entry.add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blanked_variable_reads_empty_and_others_keep_their_values() {
        std::env::set_var("SHOAL_TEST_SANDBOX_SECRET", "secret-marker-3f1c");
        std::env::set_var("OTHER_TEST_SANDBOX_VALUE", "kept");
        blank_variables(b"SHOAL_TEST_SANDBOX_");
        assert_eq!(
            std::env::var("SHOAL_TEST_SANDBOX_SECRET").unwrap_or_default(),
            ""
        );
        assert_eq!(
            std::env::var("OTHER_TEST_SANDBOX_VALUE").unwrap_or_default(),
            "kept"
        );
    }
}
