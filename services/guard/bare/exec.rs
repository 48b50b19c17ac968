//! Running the job's program in the forked child, looked for on `PATH` as
//! the C library's `execvp` does.

use crate::sys::{self, EACCES, ENODEV, ENOENT, ENOEXEC, ENOTDIR, ESTALE, ETIMEDOUT};
use crate::text::{c_str, Line};

/// Longest path tried.
const PATH_MAX: usize = 4096;

/// Where `PATH` is not set.
const DEFAULT_PATH: &[u8] = b"/bin:/usr/bin";

/// Most arguments a program without a `#!` line is given to `/bin/sh` with.
const MAX_SHELL_ARGS: usize = 4096;

/// The arguments a program without a `#!` line is run with by `/bin/sh`.
static mut SHELL_ARGS: [*const u8; MAX_SHELL_ARGS] = [core::ptr::null(); MAX_SHELL_ARGS];

/// Runs `argv[0]` with `argv` and `envp`; on failure says why and ends 127.
pub unsafe fn run(argv: *const *const u8, envp: *const *const u8) -> ! {
    let file = c_str(*argv);
    if file.is_empty() {
        cannot_start(file, ENOENT);
    }
    if file.contains(&b'/') {
        let errno = try_path(*argv, argv, envp);
        cannot_start(file, errno);
    }
    let search = variable(envp, b"PATH").unwrap_or(DEFAULT_PATH);
    let mut denied = false;
    for dir in search.split(|&byte| byte == b':') {
        let mut path: Line<PATH_MAX> = Line::new();
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        if !(path.push(dir) && path.push(b"/") && path.push(file) && path.push(b"\0")) {
            continue;
        }
        match try_path(path.as_bytes().as_ptr(), argv, envp) {
            EACCES => denied = true,
            ENOENT | ENOTDIR | ESTALE | ENODEV | ETIMEDOUT => {}
            errno => cannot_start(file, errno),
        }
    }
    cannot_start(file, if denied { EACCES } else { ENOENT })
}

/// Runs the program at `path`; a file that is not a program (no `#!`
/// line) is run by `/bin/sh`. Returns only the error.
unsafe fn try_path(path: *const u8, argv: *const *const u8, envp: *const *const u8) -> i32 {
    let errno = sys::execve(path, argv, envp);
    if errno != ENOEXEC {
        return errno;
    }
    let args = &mut *core::ptr::addr_of_mut!(SHELL_ARGS);
    args[0] = c"/bin/sh".as_ptr().cast();
    args[1] = path;
    let mut at = 1;
    while !(*argv.add(at)).is_null() {
        if at + 2 >= MAX_SHELL_ARGS {
            return ENOEXEC;
        }
        args[at + 1] = *argv.add(at);
        at += 1;
    }
    args[at + 1] = core::ptr::null();
    sys::execve(args[0], args.as_ptr(), envp);
    ENOEXEC
}

/// The value of the variable `name` in `envp`.
unsafe fn variable<'a>(envp: *const *const u8, name: &[u8]) -> Option<&'a [u8]> {
    let mut at = 0;
    while !(*envp.add(at)).is_null() {
        let entry = c_str(*envp.add(at));
        if entry.len() > name.len() && entry.starts_with(name) && entry[name.len()] == b'=' {
            return Some(&entry[name.len() + 1..]);
        }
        at += 1;
    }
    None
}

/// Says that `file` could not be started, and why, then ends 127.
pub fn cannot_start(file: &[u8], errno: i32) -> ! {
    let mut line: Line<1024> = Line::new();
    line.push(b"cannot start `");
    line.push(file);
    line.push(b"`: ");
    line.push(crate::text::describe(errno));
    line.push(b" (os error ");
    line.push_number(errno as u32);
    line.push(b")\n");
    sys::write_all(2, line.as_bytes());
    sys::exit(127)
}
