//! Keeping a process's login away from the processes below it.
//!
//! A job runs as its worker's user (and a worker as its supervisor's), so it
//! may read what that user may read of the processes above it:
//! `/proc/<pid>/environ` holds the environment a process was started with
//! (`SHOAL_PASSWORD`, `SHOAL_TOKEN`, ...) for as long as it lives, whatever
//! it later does with its variables, and `/proc/<pid>/mem` the login it
//! keeps to reconnect. So once a worker or supervisor has read its settings,
//! it blanks the values of the variables that hold logins where the kernel
//! shows them, and marks itself not dumpable, which keeps processes of the
//! same user (not root) out of its `/proc` files and from tracing it.

use std::ffi::CStr;

/// Prefix of the variables a worker blanks: all of its settings, since a
/// job inherits none of them.
pub const WORKER_VARIABLES: &[u8] = b"SHOAL_";

extern "C" {
    /// The process's environment, as the C library keeps it.
    static mut environ: *const *mut libc::c_char;
}

/// Blanks the values of the variables whose names `is_secret` picks and
/// makes the process not dumpable. Call once the settings have been read,
/// and before starting anything that must not see them.
pub fn hide_from_children(is_secret: impl Fn(&[u8]) -> bool) {
    set_not_dumpable();
    blank_variables(is_secret);
}

#[allow(unsafe_code)]
fn set_not_dumpable() {
    // SAFETY: prctl(2) with PR_SET_DUMPABLE takes plain integers and changes
    // only the calling process's dumpable flag.
    let done = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if done == -1 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot mark the process not dumpable");
    }
}

/// Overwrites, in place, the value of every variable whose name
/// `is_secret` picks: the kernel shows the memory the environment was first
/// laid in, so removing a variable would leave its text there.
#[allow(unsafe_code)]
fn blank_variables(is_secret: impl Fn(&[u8]) -> bool) {
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
            let equals = bytes.iter().position(|byte| *byte == b'=');
            if let Some(equals) = equals.filter(|equals| is_secret(&bytes[..*equals])) {
                let value = text.add(equals + 1);
                std::ptr::write_bytes(value, 0, bytes.len() - equals - 1);
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
        blank_variables(|name| name.starts_with(b"SHOAL_TEST_SANDBOX_"));
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
