//! Running one job's process: its own process group, its env and working
//! dir, output captured to a file and to bounded tails, stopped as a whole
//! group on timeout or when the worker hands the job back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use shoal_protocol::event::{tail_text, MAX_OUTPUT_TAIL_BYTES};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Time a stopped job's processes get between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It succeeded.
    Succeeded,
    /// It failed.
    Failed,
    /// It ran past its timeout.
    TimedOut,
    /// The worker stopped it to hand it back.
    HandedBack,
}

/// What an attempt left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// How it ended.
    pub ending: Ending,
    /// The process's exit code.
    pub exit_code: Option<i32>,
    /// Why it failed.
    pub error_text: Option<String>,
    /// The end of stdout.
    pub stdout_tail: Option<String>,
    /// The end of stderr.
    pub stderr_tail: Option<String>,
    /// The small result the job left.
    pub result: Option<shoal_protocol::JobResult>,
}

impl Outcome {
    /// An ending with nothing more to say.
    pub fn bare(ending: Ending) -> Self {
        Self {
            ending,
            exit_code: None,
            error_text: None,
            stdout_tail: None,
            stderr_tail: None,
            result: None,
        }
    }

    /// A failure with its reason.
    pub fn failed(error_text: impl Into<String>) -> Self {
        Self {
            error_text: Some(error_text.into()),
            ..Self::bare(Ending::Failed)
        }
    }
}

/// What a process runs with.
#[derive(Debug, Clone)]
pub struct ProcessSpec<'a> {
    /// Program and arguments.
    pub argv: &'a [String],
    /// Variables added to the worker's environment.
    pub env: &'a BTreeMap<String, String>,
    /// Working dir.
    pub working_dir: &'a Path,
    /// File that receives the whole output.
    pub output_file: PathBuf,
    /// Longest it may run.
    pub timeout: Option<Duration>,
    /// Where its output is streamed as it comes.
    pub logs: LogSink,
    /// Where `::shoal progress <percent> <message>` lines of its stdout go.
    pub progress: tokio::sync::mpsc::UnboundedSender<(u8, String)>,
    /// The guard the program runs under, if any.
    pub guard: Option<&'a shoal_guard::Guard>,
}

/// The line prefix by which a job reports progress on its stdout.
pub const PROGRESS_PREFIX: &str = "::shoal progress ";

/// Reads `::shoal progress 40 copying` as (40, "copying").
pub fn parse_progress(line: &[u8]) -> Option<(u8, String)> {
    let line = std::str::from_utf8(line)
        .ok()?
        .trim_end_matches(['\r', '\n']);
    let rest = line.strip_prefix(PROGRESS_PREFIX)?;
    let (percent, message) = rest.split_once(' ').unwrap_or((rest, ""));
    let percent: u8 = percent.parse().ok().filter(|percent| *percent <= 100)?;
    Some((percent, message.chars().take(256).collect()))
}

/// Finds progress lines in a pipe's chunks; other lines pass by untouched.
struct ProgressScanner {
    line: Vec<u8>,
    sender: Option<tokio::sync::mpsc::UnboundedSender<(u8, String)>>,
}

impl ProgressScanner {
    /// Lines longer than this are not progress lines and are not kept.
    const MAX_LINE: usize = 1024;

    fn feed(&mut self, chunk: &[u8]) {
        let Some(sender) = &self.sender else { return };
        for &byte in chunk {
            if byte == b'\n' {
                if let Some(progress) = parse_progress(&self.line) {
                    let _ = sender.send(progress);
                }
                self.line.clear();
            } else if self.line.len() < Self::MAX_LINE {
                self.line.push(byte);
            }
        }
    }
}

/// Streams output chunks to `shoal.logs.<group>.<job_id>` (stream `SHOAL_LOGS`),
/// at most [`crate::rate::LOG_BYTES_PER_SECOND`] a second once its burst is spent.
#[derive(Debug, Clone)]
pub struct LogSink {
    /// The connection to publish on.
    pub client: async_nats::Client,
    /// `shoal.logs.<group>.<job_id>`.
    pub subject: String,
    /// The attempt the output belongs to.
    pub attempt: u32,
    /// The attempt's trace context, sent with each chunk.
    pub traceparent: Option<String>,
    /// What the job may still stream, shared by its pipes.
    budget: Arc<std::sync::Mutex<(crate::rate::Bucket, bool)>>,
    /// Whether any output was streamed: only then is there an end to mark.
    streamed: Arc<std::sync::atomic::AtomicBool>,
}

/// The line streamed once when a job's output goes past its rate.
const OVER_RATE: &[u8] =
    b"\n[shoal: output beyond 1 MiB/s is kept in the job's output file, not streamed]\n";

/// What becomes of a chunk of output.
enum Admitted {
    /// It is streamed.
    Yes,
    /// It is not, and the notice that says so is streamed instead.
    Notice,
    /// It is not.
    No,
}

/// Header naming the pipe a chunk came from: `stdout` or `stderr`.
pub const STREAM_HEADER: &str = "Shoal-Stream";
/// Header with the attempt a chunk belongs to.
pub const ATTEMPT_HEADER: &str = "Shoal-Attempt";
/// Header of the empty message that ends an attempt's output.
pub const END_HEADER: &str = "Shoal-End";

impl LogSink {
    /// A sink for `attempt` of the job whose output goes to `subject`.
    pub fn new(
        client: async_nats::Client,
        subject: String,
        attempt: u32,
        traceparent: Option<String>,
    ) -> Self {
        let bucket = crate::rate::Bucket::new(
            crate::rate::LOG_BYTES_PER_SECOND,
            crate::rate::LOG_BURST_BYTES,
        );
        Self {
            client,
            subject,
            attempt,
            traceparent,
            budget: Arc::new(std::sync::Mutex::new((bucket, false))),
            streamed: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// Whether `chunk` may be streamed; past the rate, says so once instead.
    fn admit(&self, chunk: &[u8]) -> Admitted {
        let Ok(mut budget) = self.budget.lock() else {
            return Admitted::No;
        };
        let (bucket, warned) = &mut *budget;
        if bucket.take(chunk.len() as u64) {
            Admitted::Yes
        } else if !*warned {
            *warned = true;
            Admitted::Notice
        } else {
            Admitted::No
        }
    }

    async fn send(&self, pipe: &str, chunk: &[u8]) {
        match self.admit(chunk) {
            Admitted::Yes => self.publish(pipe, chunk).await,
            Admitted::Notice => self.publish("stderr", OVER_RATE).await,
            Admitted::No => {}
        }
    }

    async fn publish(&self, pipe: &str, chunk: &[u8]) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(STREAM_HEADER, pipe);
        headers.insert(ATTEMPT_HEADER, self.attempt.to_string().as_str());
        if let Some(trace) = &self.traceparent {
            headers.insert(shoal_protocol::trace::TRACEPARENT, trace.as_str());
        }
        self.streamed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // Core publish: the stream stores it; waiting for each ack would slow the job's output down.
        let _ = self
            .client
            .publish_with_headers(
                self.subject.clone(),
                headers,
                bytes::Bytes::copy_from_slice(chunk),
            )
            .await;
    }

    /// Marks the end of the attempt's output, so that followers stop; an
    /// attempt that streamed nothing has nothing to end (a follower stops
    /// on the job's record), and costs the logs stream no message.
    pub async fn end(&self) {
        if !self.streamed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(END_HEADER, "true");
        headers.insert(ATTEMPT_HEADER, self.attempt.to_string().as_str());
        if let Some(trace) = &self.traceparent {
            headers.insert(shoal_protocol::trace::TRACEPARENT, trace.as_str());
        }
        let _ = self
            .client
            .publish_with_headers(self.subject.clone(), headers, bytes::Bytes::new())
            .await;
    }
}

/// A job's process is killed when the worker dies, however it dies: a job
/// left running by a killed worker would run again elsewhere while it
/// still runs here.
#[allow(unsafe_code)]
fn die_with_the_worker(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl(2), which is async-signal-safe; it allocates nothing.
    // The signal follows the death of the thread that spawned the child:
    // tokio's worker threads live as long as the worker's runtime.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends `signal` to every process of the group led by `pid`.
#[allow(unsafe_code)]
fn signal_group(pid: u32, signal: libc::c_int) {
    // Pid 0 would be the worker's own group.
    let Ok(pid) =
        libc::pid_t::try_from(pid)
            .map_err(drop)
            .and_then(|pid| if pid > 0 { Ok(pid) } else { Err(()) })
    else {
        return;
    };
    // SAFETY: kill(2) with a negative pid only sends a signal to that process
    // group; it touches no memory of ours. An absent group gives ESRCH.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// Reads a pipe to its end, copying it to the output file and keeping its tail.
async fn capture(
    mut pipe: impl AsyncRead + Unpin,
    file: Arc<Mutex<tokio::fs::File>>,
    logs: LogSink,
    name: &'static str,
    progress: Option<tokio::sync::mpsc::UnboundedSender<(u8, String)>>,
) -> Vec<u8> {
    let mut scanner = ProgressScanner {
        line: Vec::new(),
        sender: progress,
    };
    let mut tail = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let chunk = &buffer[..read];
        let _ = file.lock().await.write_all(chunk).await;
        logs.send(name, chunk).await;
        scanner.feed(chunk);
        tail.extend_from_slice(chunk);
        if tail.len() > 2 * MAX_OUTPUT_TAIL_BYTES {
            tail.drain(..tail.len() - MAX_OUTPUT_TAIL_BYTES);
        }
    }
    tail
}

/// Creates the job's output and working folders and its output file, in
/// one trip to the blocking pool (a folder already there costs a look, not
/// a `mkdir`, which would wait for its parent's lock); the reason if not.
async fn prepare_files(output_file: &Path, working_dir: &Path) -> Result<std::fs::File, String> {
    let (output_file, working_dir) = (output_file.to_path_buf(), working_dir.to_path_buf());
    let prepared = tokio::task::spawn_blocking(move || {
        let output_dir = output_file.parent();
        if let Some(dir) = output_dir {
            ensure_dir(dir)
                .map_err(|err| format!("cannot create the output dir {}: {err}", dir.display()))?;
        }
        if output_dir != Some(working_dir.as_path()) {
            ensure_dir(&working_dir).map_err(|err| {
                format!(
                    "cannot create the working dir {}: {err}",
                    working_dir.display()
                )
            })?;
        }
        std::fs::File::create(&output_file).map_err(|err| {
            format!(
                "cannot create the output file {}: {err}",
                output_file.display()
            )
        })
    })
    .await;
    prepared.unwrap_or_else(|err| Err(format!("cannot prepare the job's files: {err}")))
}

fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
}

/// Runs a process to its end, its timeout, or `abort`.
pub async fn run(spec: ProcessSpec<'_>, abort: CancellationToken) -> Outcome {
    let Some((program, args)) = spec.argv.split_first() else {
        return Outcome::failed("the command names no program");
    };
    let file = match prepare_files(&spec.output_file, spec.working_dir).await {
        Ok(file) => Arc::new(Mutex::new(tokio::fs::File::from_std(file))),
        Err(reason) => return Outcome::failed(reason),
    };
    let mut command = match spec.guard {
        Some(guard) => {
            let mut command = Command::new(&guard.program);
            command
                .args(&guard.leading_args)
                .arg(std::process::id().to_string())
                .arg(program);
            command
        }
        None => Command::new(program),
    };
    for name in crate::policy::worker_own_variables() {
        command.env_remove(name);
    }
    command
        .args(args)
        .envs(spec.env)
        .current_dir(spec.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // A guard asks for its parent's death signal itself; leaving the
    // child without a pre-exec hook lets it be spawned without copying the
    // worker's memory map (posix_spawn instead of fork).
    if spec.guard.is_none() {
        die_with_the_worker(&mut command);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return Outcome::failed(format!("cannot start `{program}`: {err}")),
    };
    let pid = child.id().unwrap_or_default();
    let guarded = spec.guard.is_some();
    let stdout = child.stdout.take().map(|pipe| {
        tokio::spawn(capture(
            pipe,
            file.clone(),
            spec.logs.clone(),
            "stdout",
            Some(spec.progress.clone()),
        ))
    });
    let stderr = child.stderr.take().map(|pipe| {
        tokio::spawn(capture(
            pipe,
            file.clone(),
            spec.logs.clone(),
            "stderr",
            None,
        ))
    });
    let timeout = async {
        match spec.timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    let (status, ending) = tokio::select! {
        status = child.wait() => (status, None),
        _ = timeout => (stop_group(&mut child, pid, guarded).await, Some(Ending::TimedOut)),
        _ = abort.cancelled() => (stop_group(&mut child, pid, guarded).await, Some(Ending::HandedBack)),
    };
    // No process of the job outlives it, and none keeps its pipes open.
    signal_group(pid, libc::SIGKILL);
    let stdout_tail = output_of(stdout).await;
    let stderr_tail = output_of(stderr).await;
    let _ = file.lock().await.flush().await;
    let exit_code = status.as_ref().ok().and_then(|status| status.code());
    let (ending, error_text) = match (ending, &status) {
        (Some(Ending::TimedOut), _) => (
            Ending::TimedOut,
            Some(format!(
                "timed out after {}",
                shoal_protocol::Duration(spec.timeout.unwrap_or_default())
            )),
        ),
        (Some(ending), _) => (ending, None),
        (None, Ok(status)) if status.success() => (Ending::Succeeded, None),
        (None, Ok(status)) => (Ending::Failed, Some(describe_failure(status))),
        (None, Err(err)) => (
            Ending::Failed,
            Some(format!("lost track of the process: {err}")),
        ),
    };
    Outcome {
        ending,
        exit_code,
        error_text,
        stdout_tail: Some(tail_text(&stdout_tail, MAX_OUTPUT_TAIL_BYTES))
            .filter(|tail| !tail.is_empty()),
        stderr_tail: Some(tail_text(&stderr_tail, MAX_OUTPUT_TAIL_BYTES))
            .filter(|tail| !tail.is_empty()),
        result: None,
    }
}

/// What a pipe's reader kept, waiting at most [`KILL_GRACE`]: a process that
/// left the job's group (a daemon) may hold the pipe open for ever.
async fn output_of(reader: Option<tokio::task::JoinHandle<Vec<u8>>>) -> Vec<u8> {
    let Some(mut reader) = reader else {
        return Vec::new();
    };
    match tokio::time::timeout(KILL_GRACE, &mut reader).await {
        Ok(tail) => tail.unwrap_or_default(),
        Err(_) => {
            reader.abort();
            Vec::new()
        }
    }
}

fn describe_failure(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "ended without an exit code".to_string(),
    }
}

/// SIGTERM to the whole group, then SIGKILL after [`KILL_GRACE`].
async fn stop_group(
    child: &mut tokio::process::Child,
    pid: u32,
    guarded: bool,
) -> std::io::Result<std::process::ExitStatus> {
    signal_group(pid, libc::SIGTERM);
    match tokio::time::timeout(KILL_GRACE, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            // The guard kills every process of the job, even those that
            // left its group; the group's SIGKILL is for a guard that cannot.
            if guarded {
                signal_process(pid, shoal_guard::KILL_TREE_SIGNAL);
                if let Ok(status) = tokio::time::timeout(KILL_GRACE, child.wait()).await {
                    return status;
                }
            }
            signal_group(pid, libc::SIGKILL);
            child.wait().await
        }
    }
}

/// Sends `signal` to the process `pid` alone.
#[allow(unsafe_code)]
fn signal_process(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) with a positive pid only sends a signal to that process.
    unsafe {
        libc::kill(pid, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_gives_its_percent_and_message() {
        assert_eq!(
            parse_progress(b"::shoal progress 40 copying files\n"),
            Some((40, "copying files".to_string()))
        );
        assert_eq!(
            parse_progress(b"::shoal progress 100"),
            Some((100, String::new()))
        );
    }

    #[test]
    fn other_lines_and_bad_percentages_are_no_progress() {
        for line in [
            &b"progress 40"[..],
            b"::shoal progress 140 too much",
            b"::shoal progress x",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_progress(line), None);
        }
    }
}
