//! The Linux system calls the guard makes, on x86_64, without a C library:
//! each returns what the kernel answered, or the error number.

use core::arch::asm;

pub const SIGINT: i32 = 2;
pub const SIGKILL: i32 = 9;
pub const SIGUSR2: i32 = 12;
pub const SIGTERM: i32 = 15;
pub const SIGCHLD: i32 = 17;

pub const ENOENT: i32 = 2;
pub const EINTR: i32 = 4;
pub const ENOEXEC: i32 = 8;
pub const EACCES: i32 = 13;
pub const ENODEV: i32 = 19;
pub const ENOTDIR: i32 = 20;
pub const ETIMEDOUT: i32 = 110;
pub const ESTALE: i32 = 116;

const READ: usize = 0;
const WRITE: usize = 1;
const CLOSE: usize = 3;
const RT_SIGPROCMASK: usize = 14;
const NANOSLEEP: usize = 35;
const GETPID: usize = 39;
const FORK: usize = 57;
const EXECVE: usize = 59;
const WAIT4: usize = 61;
const KILL: usize = 62;
const GETPPID: usize = 110;
const RT_SIGTIMEDWAIT: usize = 128;
const PRCTL: usize = 157;
const GETDENTS64: usize = 217;
const EXIT_GROUP: usize = 231;
const OPENAT: usize = 257;

const AT_FDCWD: isize = -100;
const O_DIRECTORY: usize = 0o200_000;
const O_CLOEXEC: usize = 0o2_000_000;
const SIG_BLOCK: usize = 0;
const SIG_UNBLOCK: usize = 1;
const WNOHANG: usize = 1;
pub const PR_SET_PDEATHSIG: usize = 1;
pub const PR_SET_CHILD_SUBREAPER: usize = 36;

/// A set of signals, as the kernel takes it.
pub type SigSet = u64;

/// The set holding `signals`.
pub fn sigset(signals: &[i32]) -> SigSet {
    signals
        .iter()
        .fold(0, |set, signal| set | 1 << (signal - 1))
}

#[inline(always)]
unsafe fn call(n: usize, a: [usize; 5]) -> isize {
    let ret: isize;
    // SAFETY (for callers): the kernel reads and writes only what the
    // arguments point at, as each system call documents.
    asm!(
        "syscall",
        inlateout("rax") n as isize => ret,
        in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3], in("r8") a[4],
        lateout("rcx") _, lateout("r11") _,
        options(nostack),
    );
    ret
}

fn answer(ret: isize) -> Result<usize, i32> {
    if ret < 0 {
        Err(-ret as i32)
    } else {
        Ok(ret as usize)
    }
}

/// Ends the process with `code`.
pub fn exit(code: i32) -> ! {
    unsafe { call(EXIT_GROUP, [code as usize, 0, 0, 0, 0]) };
    // exit_group does not return.
    loop {
        core::hint::spin_loop();
    }
}

/// Writes all of `bytes` to `fd`, as far as it takes them.
pub fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match answer(unsafe {
            call(
                WRITE,
                [fd as usize, bytes.as_ptr() as usize, bytes.len(), 0, 0],
            )
        }) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(EINTR) => {}
            Err(_) => return,
        }
    }
}

/// Reads into `buf`; how many bytes came.
pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, i32> {
    answer(unsafe {
        call(
            READ,
            [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0],
        )
    })
}

/// Opens the NUL-terminated `path` for reading (a folder with `directory`).
pub fn open(path: &[u8], directory: bool) -> Result<i32, i32> {
    let flags = O_CLOEXEC | if directory { O_DIRECTORY } else { 0 };
    answer(unsafe {
        call(
            OPENAT,
            [AT_FDCWD as usize, path.as_ptr() as usize, flags, 0, 0],
        )
    })
    .map(|fd| fd as i32)
}

/// Closes `fd`.
pub fn close(fd: i32) {
    unsafe { call(CLOSE, [fd as usize, 0, 0, 0, 0]) };
}

/// Reads the next entries of the folder `fd` into `buf`.
pub fn getdents(fd: i32, buf: &mut [u8]) -> Result<usize, i32> {
    answer(unsafe {
        call(
            GETDENTS64,
            [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0],
        )
    })
}

/// This process's id.
pub fn getpid() -> i32 {
    unsafe { call(GETPID, [0; 5]) as i32 }
}

/// The parent's process id.
pub fn getppid() -> i32 {
    unsafe { call(GETPPID, [0; 5]) as i32 }
}

/// `prctl(option, value)`.
pub fn prctl(option: usize, value: usize) {
    unsafe { call(PRCTL, [option, value, 0, 0, 0]) };
}

/// Blocks the signals of `set`.
pub fn block(set: SigSet) {
    unsafe {
        call(
            RT_SIGPROCMASK,
            [SIG_BLOCK, &set as *const SigSet as usize, 0, 8, 0],
        )
    };
}

/// Unblocks the signals of `set`.
pub fn unblock(set: SigSet) {
    unsafe {
        call(
            RT_SIGPROCMASK,
            [SIG_UNBLOCK, &set as *const SigSet as usize, 0, 8, 0],
        )
    };
}

/// Waits for one of the blocked signals of `set`; its number.
pub fn wait_signal(set: SigSet) -> i32 {
    let mut info = [0u64; 16];
    loop {
        let ret = unsafe {
            call(
                RT_SIGTIMEDWAIT,
                [
                    &set as *const SigSet as usize,
                    info.as_mut_ptr() as usize,
                    0,
                    8,
                    0,
                ],
            )
        };
        if let Ok(signal) = answer(ret) {
            return signal as i32;
        }
    }
}

/// Forks: 0 in the child, the child's id in the parent.
pub fn fork() -> Result<i32, i32> {
    answer(unsafe { call(FORK, [0; 5]) }).map(|pid| pid as i32)
}

/// Runs the NUL-terminated `path`; returns only the error.
pub fn execve(path: *const u8, argv: *const *const u8, envp: *const *const u8) -> i32 {
    let ret = unsafe { call(EXECVE, [path as usize, argv as usize, envp as usize, 0, 0]) };
    -(ret as i32)
}

/// Reaps a child that ended, without waiting: `Ok(Some((pid, status)))`,
/// `Ok(None)` while children live on, or the error (`ECHILD`: none left).
pub fn reap_any() -> Result<Option<(i32, i32)>, i32> {
    let mut status: i32 = 0;
    let ret = unsafe {
        call(
            WAIT4,
            [
                -1isize as usize,
                &mut status as *mut i32 as usize,
                WNOHANG,
                0,
                0,
            ],
        )
    };
    answer(ret).map(|pid| (pid != 0).then_some((pid as i32, status)))
}

/// Sends `signal` to `pid`.
pub fn kill(pid: i32, signal: i32) {
    unsafe { call(KILL, [pid as isize as usize, signal as usize, 0, 0, 0]) };
}

/// Sleeps for `millis` milliseconds.
pub fn sleep_ms(millis: u64) {
    let time = [0u64, millis * 1_000_000];
    unsafe { call(NANOSLEEP, [time.as_ptr() as usize, 0, 0, 0, 0]) };
}
