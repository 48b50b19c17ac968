//! Job folders under `output_dir`: each job runs in `<group>/<job_id>` (its
//! output, its result file and, unless it names another, its working dir).
//! A folder of the output dir's groups that nothing touched for
//! `output_retention` is removed. A worker touches the folders its running
//! jobs use at each sweep and never removes them, so workers that share an
//! output dir (and its retention) never remove the folder of a running job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Longest time between two sweeps.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// The folders running jobs use, each with how many use it.
#[derive(Debug, Default)]
pub(crate) struct Folders {
    in_use: Mutex<BTreeMap<PathBuf, usize>>,
}

/// Folders held in use until dropped.
#[derive(Debug)]
pub(crate) struct Held {
    folders: Arc<Folders>,
    paths: Vec<PathBuf>,
}

impl Folders {
    /// Holds `paths` in use until the answer is dropped.
    pub(crate) fn hold(self: &Arc<Self>, paths: Vec<PathBuf>) -> Held {
        let mut in_use = self.lock();
        for path in &paths {
            *in_use.entry(path.clone()).or_default() += 1;
        }
        Held {
            folders: self.clone(),
            paths,
        }
    }

    fn held(&self) -> Vec<PathBuf> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, usize>> {
        self.in_use
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut in_use = self.folders.lock();
        for path in &self.paths {
            if let Some(count) = in_use.get_mut(path) {
                *count -= 1;
                if *count == 0 {
                    in_use.remove(path);
                }
            }
        }
    }
}

/// How often folders are swept for `retention`: a quarter of it, between
/// one second and ten minutes.
pub(crate) fn sweep_interval(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), MAX_SWEEP_INTERVAL)
}

/// Sweeps `output_dir` at each interval until `stop`.
pub(crate) async fn sweep_every(
    output_dir: PathBuf,
    retention: Duration,
    folders: Arc<Folders>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(sweep_interval(retention));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let (dir, held) = (output_dir.clone(), folders.held());
        match tokio::task::spawn_blocking(move || sweep(&dir, retention, &held)).await {
            Ok(0) => {}
            Ok(removed) => info!(removed, "job folders past their retention removed"),
            Err(err) => warn!(error = %err, "the sweep of job folders failed"),
        }
    }
}

/// Touches the `held` folders, then removes every `<group>/<folder>` of
/// `output_dir` untouched for `retention` that no held folder lies in or
/// under; returns how many it removed.
pub(crate) fn sweep(output_dir: &Path, retention: Duration, held: &[PathBuf]) -> usize {
    for path in held {
        touch(path);
    }
    let Some(oldest_kept) = SystemTime::now().checked_sub(retention) else {
        return 0;
    };
    let mut removed = 0;
    for group in folders_in(output_dir) {
        for folder in folders_in(&group) {
            let in_use = held
                .iter()
                .any(|path| path.starts_with(&folder) || folder.starts_with(path));
            if in_use || !untouched_since(&folder, oldest_kept) {
                continue;
            }
            match std::fs::remove_dir_all(&folder) {
                Ok(()) => removed += 1,
                Err(err) => {
                    warn!(folder = %folder.display(), error = %err, "cannot remove a job folder past its retention")
                }
            }
        }
    }
    removed
}

/// The folders right inside `dir`; links are no folders here.
fn folders_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.path())
        .collect()
}

fn untouched_since(folder: &Path, oldest_kept: SystemTime) -> bool {
    std::fs::symlink_metadata(folder)
        .and_then(|metadata| metadata.modified())
        .is_ok_and(|modified| modified < oldest_kept)
}

fn touch(path: &Path) {
    let touched = std::fs::File::open(path).and_then(|dir| dir.set_modified(SystemTime::now()));
    if let Err(err) = touched {
        debug!(folder = %path.display(), error = %err, "cannot touch a job folder in use");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Root(PathBuf);

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn root() -> Root {
        let root = std::env::temp_dir().join(format!("shoal-output-{}", nuid::next()));
        std::fs::create_dir_all(&root).expect("root");
        Root(root)
    }

    fn folder(root: &Path, path: &str, age: Duration) -> PathBuf {
        let folder = root.join(path);
        std::fs::create_dir_all(&folder).expect("folder");
        let when = SystemTime::now() - age;
        std::fs::File::open(&folder)
            .and_then(|dir| dir.set_modified(when))
            .expect("age the folder");
        folder
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn folders_untouched_for_the_retention_go_and_fresh_ones_stay() {
        let root = root();
        let old = folder(&root.0, "acme/old-job", 8 * DAY);
        let fresh = folder(&root.0, "acme/fresh-job", DAY);
        let other_group = folder(&root.0, "globex/old-job", 30 * DAY);
        std::fs::write(root.0.join("worker.log"), "kept").expect("log");
        assert_eq!(sweep(&root.0, 7 * DAY, &[]), 2);
        assert!(!old.exists() && !other_group.exists());
        assert!(fresh.exists());
        assert!(root.0.join("worker.log").exists());
        assert!(root.0.join("acme").exists(), "group folders stay");
    }

    #[test]
    fn a_folder_in_use_is_touched_and_never_removed() {
        let root = root();
        let running = folder(&root.0, "acme/running", 8 * DAY);
        let shared = folder(&root.0, "acme/shared", 8 * DAY);
        let work = shared.join("deep/work");
        std::fs::create_dir_all(&work).expect("work");
        assert_eq!(sweep(&root.0, 7 * DAY, &[running.clone(), work]), 0);
        assert!(running.exists() && shared.exists());
        assert!(
            !untouched_since(&running, SystemTime::now() - DAY),
            "touched"
        );
    }

    #[test]
    fn a_link_is_not_followed_out_of_the_output_dir() {
        let outside = root();
        let root = root();
        let kept = folder(&outside.0, "precious", 30 * DAY);
        std::fs::create_dir_all(root.0.join("acme")).expect("group");
        std::os::unix::fs::symlink(&kept, root.0.join("acme/link")).expect("link");
        assert_eq!(sweep(&root.0, 7 * DAY, &[]), 0);
        assert!(kept.exists());
    }

    #[test]
    fn holding_counts_each_user_of_a_folder() {
        let folders = Arc::new(Folders::default());
        let path = PathBuf::from("/o/acme/j1");
        let first = folders.hold(vec![path.clone()]);
        let second = folders.hold(vec![path.clone()]);
        drop(first);
        assert_eq!(folders.held(), vec![path]);
        drop(second);
        assert!(folders.held().is_empty());
    }

    #[test]
    fn sweeps_run_a_quarter_of_the_retention_apart_within_bounds() {
        assert_eq!(
            sweep_interval(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(60)),
            Duration::from_secs(15)
        );
        assert_eq!(sweep_interval(7 * DAY), MAX_SWEEP_INTERVAL);
    }
}
