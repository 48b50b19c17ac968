//! `shoal-job-guard WORKER_PID PROGRAM [ARG...]` without a C library: the
//! same guard as `shoal_guard::main`, built by the guard crate's build
//! script and carried inside `shoal`.
//!
//! Every process job starts a guard, and a C library's start-up (the
//! dynamic loader, and probing the processor with `cpuid`, which traps to
//! the hypervisor on a virtual machine) costs more than many jobs' own
//! programs. This guard makes its system calls itself: what it costs is
//! the kernel's work of starting a small static program (about a sixth of
//! what `/bin/true` costs on such a machine). It becomes the subreaper of
//! everything below it, asks
//! for SIGUSR2 when the worker dies, and runs the program; when the
//! program ends, when the worker sends SIGUSR2, or when the worker dies,
//! it kills every process below it, then ends as the program ended.

#![no_std]
#![no_main]
#![no_builtins]
#![allow(clippy::missing_safety_doc)]

mod exec;
mod sys;
mod text;
mod tree;

use sys::{SIGCHLD, SIGINT, SIGKILL, SIGTERM, SIGUSR2};

core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

/// The signals the guard waits for; the program gets them unblocked.
const WATCHED: [i32; 4] = [SIGCHLD, SIGUSR2, SIGTERM, SIGINT];

/// Where the kernel's start-up stack is read: the count of arguments, the
/// arguments, then the environment.
unsafe extern "C" fn entry(stack: *const usize) -> ! {
    let argc = *stack;
    let argv = stack.add(1) as *const *const u8;
    let envp = argv.add(argc + 1);
    sys::exit(guard(argc, argv, envp))
}

unsafe fn guard(argc: usize, argv: *const *const u8, envp: *const *const u8) -> i32 {
    let worker = match argc {
        3.. => text::parse_pid(text::c_str(*argv.add(1))),
        _ => None,
    };
    let Some(worker) = worker else {
        sys::write_all(2, b"usage: shoal-job-guard WORKER_PID PROGRAM [ARG...]\n");
        return 127;
    };
    let watched = sys::sigset(&WATCHED);
    sys::block(watched);
    sys::prctl(sys::PR_SET_CHILD_SUBREAPER, 1);
    sys::prctl(sys::PR_SET_PDEATHSIG, SIGUSR2 as usize);
    // The worker may have died before the signal was asked for: the guard
    // was then handed to another process (init, or a subreaper).
    if sys::getppid() != worker {
        return 128 + SIGKILL;
    }
    let program = argv.add(2);
    let child = match sys::fork() {
        Ok(0) => {
            sys::unblock(watched);
            sys::prctl(sys::PR_SET_PDEATHSIG, SIGKILL as usize);
            exec::run(program, envp)
        }
        Ok(child) => child,
        Err(errno) => exec::cannot_start(text::c_str(*program), errno),
    };
    loop {
        match sys::wait_signal(watched) {
            SIGUSR2 => {
                tree::kill_all();
                return 128 + SIGKILL;
            }
            SIGCHLD => {
                if let Some(status) = reap(child) {
                    if has_children() {
                        tree::kill_all();
                    }
                    end_as(status, watched);
                }
            }
            // SIGTERM and SIGINT are for the program, which has them too.
            _ => {}
        }
    }
}

/// Reaps every child that ended; the status of `main` once it has.
pub(crate) fn reap(main: i32) -> Option<i32> {
    let mut ended = None;
    while let Ok(Some((pid, status))) = sys::reap_any() {
        if pid == main {
            ended = Some(status);
        }
    }
    ended
}

/// Whether any process is still below the guard: every orphan below it is
/// handed to it, so a guard without children has nothing below it at all.
pub(crate) fn has_children() -> bool {
    loop {
        match sys::reap_any() {
            Ok(None) => return true,
            Ok(Some(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Ends as the program ended: with its exit code, or killed by its signal.
fn end_as(status: i32, watched: sys::SigSet) -> ! {
    let signal = status & 0x7f;
    if signal == 0 {
        sys::exit((status >> 8) & 0xff);
    }
    let own = sys::sigset(&[signal]);
    if own & watched != 0 {
        sys::unblock(own);
    }
    sys::kill(sys::getpid(), signal);
    sys::exit(128 + signal)
}

#[panic_handler]
fn panicked(_: &core::panic::PanicInfo) -> ! {
    sys::write_all(2, b"shoal-job-guard: internal error\n");
    sys::exit(127)
}

/// The precompiled `core` names an unwinding personality; with panics
/// that abort, nothing ever unwinds, so it is never called.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

// Without a C library, the compiler's calls to these come here.

#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        *dest.add(i) = *src.add(i);
        i += 1;
    }
    dest
}

#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize) < (src as usize) {
        return memcpy(dest, src, n);
    }
    let mut i = n;
    while i > 0 {
        i -= 1;
        *dest.add(i) = *src.add(i);
    }
    dest
}

#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, byte: i32, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        *dest.add(i) = byte as u8;
        i += 1;
    }
    dest
}

#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        let (x, y) = (*a.add(i), *b.add(i));
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    memcmp(a, b, n)
}
