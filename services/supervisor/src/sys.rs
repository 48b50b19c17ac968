//! The few calls into the operating system that need `unsafe`: signals,
//! dying with the supervisor, and the kernel's clock tick.

#![allow(unsafe_code)]

use std::os::raw::c_int;

/// SIGTERM: asks a worker to drain.
pub const SIGTERM: c_int = libc::SIGTERM;

/// SIGKILL: ends a process that did not drain in time.
pub const SIGKILL: c_int = libc::SIGKILL;

/// Sends `signal` to the process `pid`; false when it is gone (or pid is 0).
pub fn signal(pid: u32, signal: c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) only sends a signal to one positive pid; it touches no memory of ours.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Makes the child get SIGTERM when the supervisor dies, however it dies,
/// so that no replica outlives it unattended: it drains and exits. The
/// kernel ties the signal to the thread that started the child; replicas
/// are started from the supervisor's task, on threads of the async runtime
/// that live as long as the process.
pub fn drain_when_parent_dies(command: &mut tokio::process::Command) {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl(2) and getppid(2), which are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor died before the signal was set: do not start.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the supervisor is gone"));
            }
            Ok(())
        });
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (100 on Linux).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf(3) reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks)
        .ok()
        .filter(|ticks| *ticks > 0)
        .unwrap_or(100)
}
