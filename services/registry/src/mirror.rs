//! Buckets kept in memory from their change feed. The registry's periodic
//! work (liveness, the live tag sets, parked jobs, the reconciler) reads
//! what it needs here, so that a tick costs nothing per record: the bucket
//! is read whole once when the registry starts (and again after the feed
//! broke), then only what changes comes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::kv;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// What a mirror keeps of a record: `None` leaves the key out.
pub(crate) type Keep<R, T> = fn(R) -> Option<T>;

/// Which changed records a mirror notes the keys of.
pub(crate) type Notice<R> = fn(&R) -> bool;

/// Which kept entries a mirror counts, for [`Mirror::counted`].
pub(crate) type Count<T> = fn(&T) -> bool;

/// Most keys noted between two reads of them; past it, the reader is told
/// it missed some.
const MAX_NOTED: usize = 100_000;

/// The keys noted since the last read, or that some were missed.
#[derive(Debug, Default)]
pub(crate) struct Noted {
    /// The keys.
    pub(crate) keys: std::collections::HashSet<String>,
    /// Whether more changed than were kept.
    pub(crate) overflowed: bool,
}

/// The kept part of each record of one bucket, by key.
pub(crate) struct Mirror<T> {
    bucket: String,
    entries: RwLock<HashMap<String, T>>,
    ready: tokio::sync::watch::Sender<bool>,
    noted: std::sync::Mutex<Noted>,
    changed: tokio::sync::Notify,
    counts: Count<T>,
    counted: AtomicUsize,
}

impl<T: Clone + Send + Sync + 'static> Mirror<T> {
    /// Starts following `store`, keeping what `keep` takes of each record
    /// of type `R`, until `shutdown`.
    pub(crate) fn follow<R: DeserializeOwned + 'static>(
        store: kv::Store,
        keep: Keep<R, T>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Self::follow_noting(store, keep, |_| false, |_| false, tasks, shutdown)
    }

    /// [`Mirror::follow`], also noting the key of each record that `notice`
    /// picks as it changes (after the first whole read), for
    /// [`Mirror::take_noted`], and counting the kept entries that `counts`
    /// picks, for [`Mirror::counted`].
    pub(crate) fn follow_noting<R: DeserializeOwned + 'static>(
        store: kv::Store,
        keep: Keep<R, T>,
        notice: Notice<R>,
        counts: Count<T>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let mirror = Arc::new(Self {
            bucket: store.name.clone(),
            entries: RwLock::new(HashMap::new()),
            ready: tokio::sync::watch::channel(false).0,
            noted: Default::default(),
            changed: tokio::sync::Notify::new(),
            counts,
            counted: AtomicUsize::new(0),
        });
        let following = mirror.clone();
        tasks.spawn(async move {
            while !shutdown.is_cancelled() {
                let err = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    ended = following.follow_once(&store, keep, notice) => ended,
                };
                warn!(bucket = %following.bucket, error = %err, "the bucket's change feed broke; reading it again");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        mirror
    }

    /// Every kept entry, once the bucket was read whole; `None` before.
    pub(crate) fn values(&self) -> Option<Vec<T>> {
        if !*self.ready.borrow() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        Some(entries.values().cloned().collect())
    }

    /// The kept entries `wanted` picks, once the bucket was read whole;
    /// `None` before. Only those are copied.
    pub(crate) fn matching(&self, wanted: impl Fn(&T) -> bool) -> Option<Vec<T>> {
        if !*self.ready.borrow() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        Some(
            entries
                .values()
                .filter(|entry| wanted(entry))
                .cloned()
                .collect(),
        )
    }

    /// What `look` makes of every kept entry, read in place, once the bucket
    /// was read whole; `None` before.
    pub(crate) fn read<R>(&self, look: impl FnOnce(&HashMap<String, T>) -> R) -> Option<R> {
        if !*self.ready.borrow() {
            return None;
        }
        let entries = self.entries.read().ok()?;
        Some(look(&entries))
    }

    /// Returns once an entry changed since the last call (at once if one did).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The keys noted since the last call.
    pub(crate) fn take_noted(&self) -> Noted {
        self.noted
            .lock()
            .map(|mut noted| std::mem::take(&mut *noted))
            .unwrap_or(Noted {
                keys: Default::default(),
                overflowed: true,
            })
    }

    fn note(&self, key: &str) {
        if let Ok(mut noted) = self.noted.lock() {
            if noted.keys.len() >= MAX_NOTED {
                noted.overflowed = true;
            } else {
                noted.keys.insert(key.to_string());
            }
        }
    }

    /// Whether the bucket was read whole (before, the mirror knows nothing).
    pub(crate) fn is_read(&self) -> bool {
        *self.ready.borrow()
    }

    /// How many kept entries `counts` picks, without looking at them.
    pub(crate) fn counted(&self) -> usize {
        self.counted.load(Ordering::Relaxed)
    }

    /// The kept entry under `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<T> {
        self.entries.read().ok()?.get(key).cloned()
    }

    /// Reads the bucket whole into a fresh map, puts it in place, then
    /// applies each change as it comes; returns why it stopped.
    async fn follow_once<R: DeserializeOwned>(
        &self,
        store: &kv::Store,
        keep: Keep<R, T>,
        notice: Notice<R>,
    ) -> String {
        let config = OrderedConfig {
            filter_subject: format!("{}>", store.prefix),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..Default::default()
        };
        let mut consumer = match store.stream.create_consumer(config).await {
            Ok(consumer) => consumer,
            Err(err) => return err.to_string(),
        };
        let mut behind = match consumer.info().await {
            Ok(info) => info.num_pending,
            Err(err) => return err.to_string(),
        };
        let mut fresh = Some(HashMap::new());
        if behind == 0 {
            self.put_in_place(fresh.take());
        }
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(err) => return err.to_string(),
        };
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(err) => return err.to_string(),
            };
            let Some(key) = message.subject.strip_prefix(store.prefix.as_str()) else {
                continue;
            };
            let (kept, noticed) = Self::kept(&message, keep, notice);
            match fresh.as_mut() {
                Some(fresh) => {
                    apply(fresh, key, kept);
                }
                None => {
                    if noticed {
                        self.note(key);
                    }
                    match self.entries.write() {
                        Ok(mut entries) => {
                            let counted = kept.as_ref().is_some_and(self.counts);
                            let was_counted = apply(&mut entries, key, kept)
                                .as_ref()
                                .is_some_and(self.counts);
                            if counted && !was_counted {
                                self.counted.fetch_add(1, Ordering::Relaxed);
                            } else if was_counted && !counted {
                                self.counted.fetch_sub(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) => return "the mirror's lock was poisoned".to_string(),
                    }
                    self.changed.notify_one();
                }
            }
            if fresh.is_some() {
                behind = message.info().map(|info| info.pending).unwrap_or(behind);
                if behind == 0 {
                    self.put_in_place(fresh.take());
                }
            }
        }
        "the feed ended".to_string()
    }

    /// What is kept of a change, and whether `notice` picks it.
    fn kept<R: DeserializeOwned>(
        message: &async_nats::jetstream::Message,
        keep: Keep<R, T>,
        notice: Notice<R>,
    ) -> (Option<T>, bool) {
        // A delete, a purge or an expiry marker says so in a header.
        let removed = message
            .headers
            .as_ref()
            .is_some_and(|headers| headers.get("KV-Operation").is_some());
        if removed {
            return (None, false);
        }
        match serde_json::from_slice::<R>(&message.payload) {
            Ok(record) => {
                let noticed = notice(&record);
                (keep(record), noticed)
            }
            Err(_) => (None, false),
        }
    }

    fn put_in_place(&self, fresh: Option<HashMap<String, T>>) {
        let Some(fresh) = fresh else { return };
        debug!(bucket = %self.bucket, entries = fresh.len(), "bucket read whole; following its changes");
        if let Ok(mut entries) = self.entries.write() {
            let counted = fresh.values().filter(|entry| (self.counts)(entry)).count();
            self.counted.store(counted, Ordering::Relaxed);
            *entries = fresh;
        }
        // Changes of a whole read are not noted one by one: the reader is
        // told it missed some.
        if let Ok(mut noted) = self.noted.lock() {
            noted.overflowed = true;
        }
        self.ready.send_replace(true);
        self.changed.notify_one();
    }
}

/// Puts `kept` under `key`, or removes the key; what was there.
fn apply<T>(entries: &mut HashMap<String, T>, key: &str, kept: Option<T>) -> Option<T> {
    match kept {
        Some(value) => entries.insert(key.to_string(), value),
        None => entries.remove(key),
    }
}
