//! The replicas of a pool as processes: started (`shoal worker run`, each
//! with its own name), reaped, restarted with exponential backoff when they
//! end unasked, drained with SIGTERM when the pool scales down (the newest
//! first), and killed if a drain outlasts its bound.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use shoal_protocol::supervisor::{ReplicaState, ReplicaStatus};
use shoal_protocol::Timestamp;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::sys;

/// A replica that ran this long before it ended starts again after the initial backoff.
const STEADY_RUN: Duration = Duration::from_secs(60);

/// How replica processes are started and looked after.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `shoal` binary.
    pub program: PathBuf,
    /// Its arguments: `worker run`.
    pub args: Vec<String>,
    /// Variables of every replica, on top of the supervisor's own environment.
    pub env: Vec<(String, String)>,
    /// Replica names are `<prefix>-<n>`.
    pub name_prefix: String,
    /// First delay before a restart; it doubles with each quick failure.
    pub backoff: Duration,
    /// Longest delay before a restart.
    pub backoff_max: Duration,
    /// Longest a replica may take to drain before it is killed.
    pub drain_timeout: Duration,
}

/// A replica process that ended.
#[derive(Debug, Clone)]
pub struct Exit {
    /// The replica it belonged to.
    pub slot: u64,
    /// Its process id.
    pub pid: u32,
    /// How it ended, e.g. `exited with code 1` or `killed by signal 9`.
    pub how: String,
}

/// A replica that ended unasked and will start again.
#[derive(Debug, Clone)]
pub struct Restart {
    /// Its name.
    pub name: String,
    /// The process that ended.
    pub pid: u32,
    /// Its worker id, if it had registered.
    pub worker_id: Option<String>,
    /// How it ended.
    pub how: String,
    /// Restarts of this replica so far.
    pub restarts: u64,
    /// The delay before it starts again.
    pub backoff: Duration,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    name: String,
    status: ReplicaStatus,
    pid: Option<u32>,
    worker_id: Option<String>,
    started: Option<(Instant, Timestamp)>,
    restarts: u64,
    next_backoff: Duration,
    restart_at: Option<Instant>,
    kill_at: Option<Instant>,
}

/// The replicas of one pool.
#[derive(Debug)]
pub struct Replicas {
    launch: Launch,
    slots: Vec<Slot>,
    next_id: u64,
    restarts: u64,
    exits: mpsc::UnboundedSender<Exit>,
}

/// Says how a process ended.
pub fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "ended".to_string(),
        },
        Err(err) => format!("could not be waited for: {err}"),
    }
}

impl Replicas {
    /// No replicas yet; the exits of those started arrive on the receiver.
    pub fn new(launch: Launch) -> (Self, mpsc::UnboundedReceiver<Exit>) {
        let (exits, receiver) = mpsc::unbounded_channel();
        let replicas = Self {
            launch,
            slots: Vec::new(),
            next_id: 0,
            restarts: 0,
            exits,
        };
        (replicas, receiver)
    }

    /// Replicas that run or will run again (not draining).
    pub fn active(&self) -> u32 {
        let active = self
            .slots
            .iter()
            .filter(|slot| slot.status != ReplicaStatus::Draining)
            .count();
        u32::try_from(active).unwrap_or(u32::MAX)
    }

    /// Whether no process is left, draining ones included.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Restarts of every replica so far.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Process ids of the replicas that run and are not draining.
    pub fn running_pids(&self) -> Vec<u32> {
        self.slots
            .iter()
            .filter(|slot| slot.status == ReplicaStatus::Running)
            .filter_map(|slot| slot.pid)
            .collect()
    }

    /// The replicas as the state record shows them.
    pub fn states(&self) -> Vec<ReplicaState> {
        self.slots
            .iter()
            .map(|slot| ReplicaState {
                name: slot.name.clone(),
                status: slot.status,
                pid: slot.pid,
                worker_id: slot.worker_id.clone(),
                started_at: slot.started.map(|(_, at)| at),
                restarts: slot.restarts,
            })
            .collect()
    }

    /// Starts or drains replicas until `count` are active.
    pub fn scale_to(&mut self, count: u32) {
        while self.active() < count {
            self.add();
        }
        while self.active() > count {
            self.retire_one();
        }
    }

    fn add(&mut self) {
        self.next_id += 1;
        let mut slot = Slot {
            id: self.next_id,
            name: format!("{}-{}", self.launch.name_prefix, self.next_id),
            status: ReplicaStatus::Restarting,
            pid: None,
            worker_id: None,
            started: None,
            restarts: 0,
            next_backoff: self.launch.backoff,
            restart_at: Some(Instant::now()),
            kill_at: None,
        };
        self.start(&mut slot);
        self.slots.push(slot);
    }

    /// Drains one replica: one waiting to restart if any, else the newest running.
    fn retire_one(&mut self) {
        if let Some(index) = self
            .slots
            .iter()
            .position(|slot| slot.status == ReplicaStatus::Restarting)
        {
            let slot = self.slots.remove(index);
            info!(replica = %slot.name, "replica waiting to restart is no longer needed");
            return;
        }
        let newest = self
            .slots
            .iter_mut()
            .filter(|slot| slot.status == ReplicaStatus::Running)
            .max_by_key(|slot| (slot.started.map(|(at, _)| at), slot.id));
        if let Some(slot) = newest {
            drain(slot, self.launch.drain_timeout);
        }
    }

    /// Drains every replica (on shutdown).
    pub fn drain_all(&mut self) {
        self.scale_to(0);
    }

    /// Starts the process of `slot`; a failure to start counts as a quick failure.
    fn start(&mut self, slot: &mut Slot) {
        match self.spawn(slot) {
            Ok(pid) => {
                info!(replica = %slot.name, pid, "replica started");
                slot.status = ReplicaStatus::Running;
                slot.pid = Some(pid);
                slot.worker_id = None;
                slot.started = Some((Instant::now(), Timestamp::now()));
                slot.restart_at = None;
            }
            Err(err) => {
                let delay = slot.next_backoff;
                slot.next_backoff = (delay * 2).min(self.launch.backoff_max);
                slot.restart_at = Some(Instant::now() + delay);
                warn!(replica = %slot.name, error = %err, retry_in = ?delay, "replica could not start");
            }
        }
    }

    fn spawn(&self, slot: &Slot) -> std::io::Result<u32> {
        let mut command = tokio::process::Command::new(&self.launch.program);
        // The replica's login is the one in `launch.env`, never one left in
        // the supervisor's own environment.
        for name in inherited_logins() {
            command.env_remove(name);
        }
        command
            .args(&self.launch.args)
            .env_remove("SHOAL_WORKER_ID")
            // The supervisor's metrics address is its own: replicas would
            // all fight for it.
            .env_remove("SHOAL_METRICS_LISTEN")
            .envs(self.launch.env.iter().map(|(name, value)| (name, value)))
            .env("SHOAL_WORKER_NAME", &slot.name)
            .stdin(Stdio::null())
            // Its own process group: a Ctrl-C at the terminal reaches the
            // supervisor only, which drains the replicas itself.
            .process_group(0);
        sys::drain_when_parent_dies(&mut command);
        let mut child = command.spawn()?;
        let pid = child.id().unwrap_or(0);
        let exits = self.exits.clone();
        let slot = slot.id;
        tokio::spawn(async move {
            let how = describe(child.wait().await);
            let _ = exits.send(Exit { slot, pid, how });
        });
        Ok(pid)
    }

    /// Takes note of an ended process: a drained replica is gone, any other
    /// is restarted after its backoff (returned, for the event).
    pub fn on_exit(&mut self, exit: &Exit) -> Option<Restart> {
        let index = self
            .slots
            .iter()
            .position(|slot| slot.id == exit.slot && slot.pid == Some(exit.pid))?;
        if self.slots[index].status == ReplicaStatus::Draining {
            let slot = self.slots.remove(index);
            info!(replica = %slot.name, pid = exit.pid, how = %exit.how, "replica drained");
            return None;
        }
        self.restarts += 1;
        let backoff_max = self.launch.backoff_max;
        let initial = self.launch.backoff;
        let slot = &mut self.slots[index];
        let steady = slot
            .started
            .is_some_and(|(at, _)| at.elapsed() >= STEADY_RUN);
        let delay = if steady { initial } else { slot.next_backoff };
        slot.next_backoff = (delay * 2).min(backoff_max);
        slot.restarts += 1;
        slot.status = ReplicaStatus::Restarting;
        slot.pid = None;
        slot.restart_at = Some(Instant::now() + delay);
        warn!(replica = %slot.name, pid = exit.pid, how = %exit.how, restart_in = ?delay, restarts = slot.restarts, "replica ended unexpectedly");
        Some(Restart {
            name: slot.name.clone(),
            pid: exit.pid,
            worker_id: slot.worker_id.take(),
            how: exit.how.clone(),
            restarts: slot.restarts,
            backoff: delay,
        })
    }

    /// When the next restart is due, if one is waiting.
    pub fn next_restart(&self) -> Option<Instant> {
        self.slots.iter().filter_map(|slot| slot.restart_at).min()
    }

    /// Starts the replicas whose restart is due.
    pub fn restart_due(&mut self, now: Instant) {
        let mut slots = std::mem::take(&mut self.slots);
        for slot in &mut slots {
            if slot.status == ReplicaStatus::Restarting
                && slot.restart_at.is_some_and(|at| at <= now)
            {
                self.start(slot);
            }
        }
        self.slots = slots;
    }

    /// Kills the replicas whose drain outlasted its bound.
    pub fn kill_overdue(&mut self, now: Instant) {
        for slot in &mut self.slots {
            if slot.kill_at.is_some_and(|at| at <= now) {
                slot.kill_at = None;
                if let Some(pid) = slot.pid {
                    warn!(replica = %slot.name, pid, "replica did not drain in time; killing it");
                    sys::signal(pid, sys::SIGKILL);
                }
            }
        }
    }

    /// Records the worker id of the replica with this pid and name; whether there is one.
    pub fn registered(&mut self, pid: u32, name: &str, worker_id: &str) -> bool {
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|slot| slot.pid == Some(pid) && slot.name == name)
        else {
            return false;
        };
        info!(replica = %slot.name, pid, worker_id, "replica registered");
        slot.worker_id = Some(worker_id.to_string());
        true
    }
}

/// Asks a replica to drain (SIGTERM) and bounds the wait for it.
fn drain(slot: &mut Slot, timeout: Duration) {
    slot.status = ReplicaStatus::Draining;
    slot.kill_at = Some(Instant::now() + timeout);
    if let Some(pid) = slot.pid {
        info!(replica = %slot.name, pid, "draining replica");
        if !sys::signal(pid, sys::SIGTERM) {
            warn!(replica = %slot.name, pid, "replica was already gone");
        }
    }
}

/// The variables of the supervisor's environment that hold a login or the
/// supervisor's own settings (its replicas' login among them).
const LOGIN: [&str; 6] = [
    "SHOAL_USER",
    "SHOAL_PASSWORD",
    "SHOAL_TOKEN",
    "SHOAL_NKEY",
    "SHOAL_CREDENTIALS",
    "SHOAL_INBOX_PREFIX",
];

/// Whether a variable named `name` holds a login or a supervisor setting:
/// a replica gets none of them, and the supervisor blanks them once read.
pub fn is_login_variable(name: &[u8]) -> bool {
    LOGIN.iter().any(|login| login.as_bytes() == name) || name.starts_with(b"SHOAL_SUPERVISOR_")
}

fn inherited_logins() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| is_login_variable(name.as_encoded_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(program: &str, args: &[&str]) -> Launch {
        Launch {
            program: PathBuf::from(program),
            args: args.iter().map(|arg| arg.to_string()).collect(),
            env: Vec::new(),
            name_prefix: "test".into(),
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
            drain_timeout: Duration::from_secs(5),
        }
    }

    async fn next_exit(exits: &mut mpsc::UnboundedReceiver<Exit>) -> Exit {
        tokio::time::timeout(Duration::from_secs(10), exits.recv())
            .await
            .expect("an exit within 10s")
            .expect("the channel is open")
    }

    #[tokio::test]
    async fn a_replica_that_keeps_failing_is_restarted_with_a_doubling_backoff() {
        let (mut replicas, mut exits) = Replicas::new(launch("/bin/sh", &["-c", "exit 3"]));
        replicas.scale_to(1);
        let mut delays = Vec::new();
        for round in 1..=4 {
            let exit = next_exit(&mut exits).await;
            let restart = replicas.on_exit(&exit).expect("an unexpected exit");
            assert_eq!(restart.how, "exited with code 3");
            assert_eq!(restart.restarts, round);
            delays.push(restart.backoff.as_millis());
            assert_eq!(replicas.running_pids(), Vec::<u32>::new());
            let due = replicas.next_restart().expect("a restart is due");
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            replicas.restart_due(Instant::now());
        }
        assert_eq!(delays, [100, 200, 300, 300]);
        assert_eq!(replicas.restarts(), 4);
        assert_eq!(replicas.active(), 1);
        replicas.scale_to(0);
        assert!(replicas.is_empty() || replicas.active() == 0);
    }

    #[tokio::test]
    async fn scaling_down_drains_the_newest_and_a_drained_replica_is_no_restart() {
        let (mut replicas, mut exits) = Replicas::new(launch("/bin/sleep", &["30"]));
        replicas.scale_to(2);
        let pids = replicas.running_pids();
        assert_eq!(pids.len(), 2);
        replicas.scale_to(1);
        assert_eq!(replicas.active(), 1);
        assert_eq!(replicas.running_pids(), vec![pids[0]], "the newest drains");
        let exit = next_exit(&mut exits).await;
        assert_eq!(exit.pid, pids[1]);
        assert_eq!(exit.how, "killed by signal 15");
        assert!(
            replicas.on_exit(&exit).is_none(),
            "a drained replica is gone"
        );
        assert_eq!(replicas.restarts(), 0);
        assert_eq!(replicas.states().len(), 1);
        replicas.drain_all();
        let exit = next_exit(&mut exits).await;
        assert!(replicas.on_exit(&exit).is_none());
        assert!(replicas.is_empty());
    }
}
