//! `shoal-job-guard WORKER_PID PROGRAM [ARG...]`: the job guard on its own,
//! a small binary that starts far faster than `shoal __job-guard` (every
//! process job pays for starting its guard).

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    shoal_guard::main(&args);
}
