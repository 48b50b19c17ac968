//! The job guard: a small process between a worker and a job's program, so
//! that every process of the job dies with the worker, however it dies.
//!
//! A worker killed with SIGKILL cannot clean up after itself, and the
//! kernel's parent-death signal reaches only a direct child: a job's
//! background processes, and any that left its process group, would run
//! on. So the worker starts `shoal-job-guard WORKER_PID PROGRAM ARGS...`
//! (the guard without a C library that `shoal` carries, see [`carried`];
//! where it cannot run, `shoal __job-guard ...`) instead of the program.
//! The guard becomes the subreaper of everything below it
//! (orphans are handed to it, not to init), asks for SIGUSR2 when its
//! parent dies, and runs the program. When the program ends, when the
//! worker sends SIGUSR2, or when the worker dies, the guard kills every
//! process below it, then ends as the program ended.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

mod carried;

/// The first argument that makes `shoal` run as a job guard.
pub const GUARD_ARG: &str = "__job-guard";

/// How a worker starts a job's program under a guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The binary that runs as the guard.
    pub program: PathBuf,
    /// The arguments before the worker's pid.
    pub leading_args: Vec<OsString>,
}

impl Guard {
    /// The guard `exe` runs as, with [`GUARD_ARG`].
    pub fn within(exe: &Path) -> Self {
        Self {
            program: exe.to_path_buf(),
            leading_args: vec![GUARD_ARG.into()],
        }
    }

    /// The guard for the running binary: the one it carries, else itself
    /// run as a guard (which starts far slower), if its path can be known.
    pub fn of_current_exe() -> Option<Self> {
        if let Some(program) = carried::path() {
            return Some(Self {
                program,
                leading_args: Vec::new(),
            });
        }
        std::env::current_exe().ok().map(|exe| Self::within(&exe))
    }
}

/// The signal that tells the guard to kill the whole job now (sent by the
/// kernel when the worker dies, or by the worker when it stops the job).
pub const KILL_TREE_SIGNAL: libc::c_int = libc::SIGUSR2;

/// Rounds of looking for processes left below the guard before it gives up.
const KILL_ROUNDS: usize = 50;

/// Runs the guard for `argv` (the worker's pid, then the program and its
/// arguments); never returns.
pub fn main(argv: &[OsString]) -> ! {
    let worker = argv
        .first()
        .and_then(|pid| pid.to_str())
        .and_then(|pid| pid.parse::<libc::pid_t>().ok());
    let (Some(worker), Some((program, args))) =
        (worker, argv.get(1..).and_then(<[_]>::split_first))
    else {
        eprintln!("shoal {GUARD_ARG}: usage: shoal {GUARD_ARG} WORKER_PID PROGRAM [ARG...]");
        std::process::exit(127);
    };
    let signals = [libc::SIGCHLD, KILL_TREE_SIGNAL, libc::SIGTERM, libc::SIGINT];
    block(&signals);
    become_subreaper_that_hears_its_parent_die(worker);
    let mut command = std::process::Command::new(program);
    command.args(args);
    unblock_in_child(&mut command, &signals);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            eprintln!("cannot start `{}`: {err}", program.to_string_lossy());
            std::process::exit(127);
        }
    };
    let child = libc::pid_t::try_from(child.id()).unwrap_or(libc::pid_t::MAX);
    loop {
        match wait_signal(&signals) {
            signal if signal == KILL_TREE_SIGNAL => {
                kill_tree();
                std::process::exit(128 + libc::SIGKILL);
            }
            libc::SIGCHLD => {
                if let Some(status) = reap(child) {
                    if has_children() {
                        kill_tree();
                    }
                    end_as(status, &signals);
                }
            }
            // SIGTERM and SIGINT are for the program, which has them too.
            _ => {}
        }
    }
}

#[allow(unsafe_code)]
fn block(signals: &[libc::c_int]) {
    // SAFETY: sigset_t is plain data filled by sigemptyset/sigaddset, and
    // sigprocmask changes only this thread's mask (the guard has one thread).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in signals {
            libc::sigaddset(&mut set, *signal);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

#[allow(unsafe_code)]
fn become_subreaper_that_hears_its_parent_die(worker: libc::pid_t) {
    // SAFETY: prctl(2) with these options takes plain integers and changes
    // only this process's settings.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, KILL_TREE_SIGNAL, 0, 0, 0);
        // The worker may have died before the signal was asked for: the
        // guard was then handed to another process (init, or a subreaper).
        if libc::getppid() != worker {
            std::process::exit(128 + libc::SIGKILL);
        }
    }
}

#[allow(unsafe_code)]
fn unblock_in_child(command: &mut std::process::Command, signals: &[libc::c_int]) {
    let signals = signals.to_vec();
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only async-signal-safe functions (sigemptyset, sigaddset, sigprocmask,
    // prctl) on a set on its stack; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in &signals {
                libc::sigaddset(&mut set, *signal);
            }
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            Ok(())
        });
    }
}

#[allow(unsafe_code)]
fn wait_signal(signals: &[libc::c_int]) -> libc::c_int {
    // SAFETY: as in `block`; sigwaitinfo writes only into `info`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in signals {
            libc::sigaddset(&mut set, *signal);
        }
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::sigwaitinfo(&set, &mut info)
    }
}

/// Reaps every child that ended; the status of `main` once it has.
#[allow(unsafe_code)]
fn reap(main: libc::pid_t) -> Option<libc::c_int> {
    let mut ended = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only into `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return ended;
        }
        if pid == main {
            ended = Some(status);
        }
    }
}

/// Whether any process is still below the guard. Every orphan below it is
/// handed to it (it is their subreaper), so a guard without children has
/// nothing below it at all, and need not look through `/proc`.
#[allow(unsafe_code)]
fn has_children() -> bool {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only into `status`; with WNOHANG it answers
        // 0 while children live, a pid for one that just ended, and -1
        // (ECHILD) once there are none.
        match unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } {
            0 => return true,
            pid if pid < 0 => return false,
            _ => continue,
        }
    }
}

/// Kills every process below the guard, and reaps them, in rounds: a
/// process forked meanwhile, or handed to the guard when its parent was
/// killed, is found in the next round.
#[allow(unsafe_code)]
fn kill_tree() {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    for _ in 0..KILL_ROUNDS {
        let below = descendants(me);
        if below.is_empty() {
            return;
        }
        for pid in below {
            // SAFETY: kill(2) only sends a signal; a process already gone gives ESRCH.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        reap(0);
        std::thread::sleep(std::time::Duration::from_millis(10));
        reap(0);
    }
}

/// The processes below `root`, from each process's parent in `/proc`.
fn descendants(root: libc::pid_t) -> Vec<libc::pid_t> {
    let mut children: BTreeMap<libc::pid_t, Vec<libc::pid_t>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        if let Some(parent) = parent_of(pid) {
            children.entry(parent).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut next = vec![root];
    while let Some(pid) = next.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            found.push(*child);
            next.push(*child);
        }
    }
    found
}

/// The parent of `pid`, read from `/proc/<pid>/stat` (after the command
/// name, which may hold spaces and parentheses, come the state and the parent).
fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Ends the guard as the program ended: with its exit code, or killed by
/// the same signal.
#[allow(unsafe_code)]
fn end_as(status: libc::c_int, blocked: &[libc::c_int]) -> ! {
    if libc::WIFEXITED(status) {
        std::process::exit(libc::WEXITSTATUS(status));
    }
    let signal = libc::WTERMSIG(status);
    // SAFETY: signal(2) and sigprocmask(2) change only this process's own
    // handling of `signal`; raise(3) then delivers it with the default action.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        if blocked.contains(&signal) {
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
        libc::raise(signal);
    }
    std::process::exit(128 + signal);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_parent_is_read_past_a_name_with_spaces_and_parentheses() {
        let me = i32::try_from(std::process::id()).unwrap_or_default();
        let parent = parent_of(me).unwrap_or_default();
        assert!(parent > 0);
        assert!(descendants(parent).contains(&me));
    }
}
