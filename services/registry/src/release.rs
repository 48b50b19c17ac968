//! Letting held jobs go: a job a worker held back (for its parents, a
//! concurrency slot or its rate) is sent to the workers again as a routed
//! copy of its submission when what it waits for may have come: a parent it
//! waits for ended, a slot of its key is free, its rate's window has room.
//! The worker that takes the copy decides again, so a job let go too early
//! is only held again. The copy's deduplication id names the hold, so two
//! registries (or two ticks) let one hold go once.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use shoal_protocol::hold::{HoldKind, ATTEMPTS_BEFORE_HEADER};
use shoal_protocol::key::Key;
use shoal_protocol::limits::{LimitKind, LimitRecord};
use shoal_protocol::rejection::SEQUENCE_HEADER;
use shoal_protocol::tags::{choose_tag_set, tag_set_key, UNTAGGED_KEY};
use shoal_protocol::trace::TRACEPARENT;
use shoal_protocol::{JobEvent, JobEventType, JobSpec, Timestamp};
use tracing::{debug, info};

use crate::dispatch::Directory;
use crate::waiting::{Held, WaitingJob};
use crate::{ApiError, Registry};

/// Most holds remembered as looked at or let go.
const MAX_REMEMBERED: usize = 100_000;

/// Every how many ticks the parents of every held job are read again, in
/// case the end of one was not noted.
const FULL_LOOK_EVERY: u64 = 30;

/// A limit a job counts in: its group, the kind and the key.
type Place = (String, HoldKind, String);

/// What a tick remembers of the holds it saw: the time of each hold whose
/// parents it read, and of each it let go.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    checked: HashMap<String, Option<Timestamp>>,
    let_go: HashMap<String, Option<Timestamp>>,
    ticks: u64,
}

impl Holds {
    fn remember(
        map: &mut HashMap<String, Option<Timestamp>>,
        key: String,
        since: Option<Timestamp>,
    ) {
        if map.len() >= MAX_REMEMBERED {
            map.clear();
        }
        map.insert(key, since);
    }
}

impl Registry {
    /// Lets go every held job whose wait may be over.
    pub(crate) async fn release_held(
        &self,
        directory: &RwLock<Directory>,
        holds: &mut Holds,
    ) -> Result<(), ApiError> {
        // Only jobs let go or held matter here; a plain backlog is not copied.
        let Some(waiting) = self
            .waiting
            .matching(|job| job.released || job.held.is_some())
        else {
            return Ok(());
        };
        let mut ended = self.waiting.take_noted();
        holds.ticks += 1;
        ended.overflowed |= holds.ticks.is_multiple_of(FULL_LOOK_EVERY);
        let now = Timestamp::now();
        let mut chosen: Vec<WaitingJob> = Vec::new();
        let mut by_key: BTreeMap<Place, Vec<WaitingJob>> = BTreeMap::new();
        let mut in_flight: HashMap<Place, u32> = HashMap::new();
        for job in waiting {
            if job.released {
                for place in places(&job) {
                    *in_flight.entry(place).or_default() += 1;
                }
            }
            let Some(held) = job.held.clone() else {
                continue;
            };
            let key = job.key();
            if holds.let_go.get(&key) == Some(&held.since) {
                continue;
            }
            match held.by {
                HoldKind::Parents => {
                    let looked_at = holds.checked.get(&key) == Some(&held.since);
                    let parent_ended = held.waiting_on.iter().any(|parent| {
                        ended.overflowed
                            || ended
                                .keys
                                .contains(&Key::new(&job.group, parent).to_string())
                    });
                    if !looked_at || parent_ended {
                        Holds::remember(&mut holds.checked, key, held.since);
                        if self.a_parent_ended(&job, &held).await? {
                            chosen.push(job);
                        }
                    }
                }
                by => {
                    if let Some(place) = places(&job).into_iter().find(|place| place.1 == by) {
                        by_key.entry(place).or_default().push(job);
                    }
                }
            }
        }
        chosen.extend(self.with_room(by_key, &in_flight, now));
        for job in chosen {
            let since = job.held.as_ref().and_then(|held| held.since);
            if self.let_go(directory, &job).await? {
                Holds::remember(&mut holds.let_go, job.key(), since);
            }
        }
        Ok(())
    }

    /// The held jobs of each key that its record leaves room for now,
    /// oldest first, less the jobs let go and not taken yet.
    fn with_room(
        &self,
        by_key: BTreeMap<Place, Vec<WaitingJob>>,
        in_flight: &HashMap<Place, u32>,
        now: Timestamp,
    ) -> Vec<WaitingJob> {
        let mut chosen = Vec::new();
        for (place, mut jobs) in by_key {
            jobs.sort_by_key(|job| job.sequence);
            let (group, kind, key) = &place;
            let record = self
                .limit_records
                .get(&limit_kind(*kind).record_key(group, key))
                .unwrap_or_default();
            let kind = *kind;
            let room = room(&record, kind, &jobs, now)
                .saturating_sub(in_flight.get(&place).copied().unwrap_or(0));
            let due = jobs.into_iter().filter(|job| {
                kind != HoldKind::Rate
                    || job
                        .held
                        .as_ref()
                        .and_then(|held| held.until)
                        .is_none_or(|until| until <= now)
            });
            chosen.extend(due.take(room as usize));
        }
        chosen
    }

    /// Whether a parent the job waits for has ended (read from its record).
    async fn a_parent_ended(&self, job: &WaitingJob, held: &Held) -> Result<bool, ApiError> {
        for parent in &held.waiting_on {
            let key = Key::new(&job.group, parent).to_string();
            let record = self.jobs.get(&key).await.map_err(ApiError::internal)?;
            if record.is_some_and(|record| record.done) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Sends a held job to the workers again: a routed copy of its
    /// submission that counts on from its attempts, and a `released` event.
    /// `false` when no live worker may take it yet.
    pub(crate) async fn let_go(
        &self,
        directory: &RwLock<Directory>,
        job: &WaitingJob,
    ) -> Result<bool, ApiError> {
        let chosen = {
            let directory = directory
                .read()
                .map_err(|_| ApiError::internal("the directory of tag sets was poisoned"))?;
            match directory.get(&(job.group.clone(), job.queue.clone())) {
                // No live worker serves the queue: the untagged ones that come will.
                None => Some(UNTAGGED_KEY.to_string()),
                Some(sets) => choose_tag_set(sets, &job.tags).map(|tags| tag_set_key(tags)),
            }
        };
        let Some(tag_key) = chosen else {
            return Ok(false);
        };
        let stream = self
            .js
            .get_stream(self.config.layout.jobs_stream())
            .await
            .map_err(ApiError::internal)?;
        let Ok(message) = stream.get_raw_message(job.sequence).await else {
            debug!(job_id = %job.id, "a held job's submission is gone; the reconciler raises it");
            return Ok(false);
        };
        let mut spec = JobSpec::from_slice(&message.payload).map_err(ApiError::internal)?;
        spec.id = Some(job.id.clone());
        let since = job
            .held
            .as_ref()
            .and_then(|held| held.since)
            .map_or(0, |since| since.unix_nanos());
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(SEQUENCE_HEADER, job.sequence.to_string().as_str());
        let before = job.attempt.saturating_sub(1).to_string();
        headers.insert(ATTEMPTS_BEFORE_HEADER, before.as_str());
        if let Some(trace) = message.headers.get(TRACEPARENT) {
            headers.insert(TRACEPARENT, trace.as_str());
        }
        let body = serde_json::to_vec(&spec).map_err(ApiError::internal)?;
        let subjects = &self.config.layout.subjects;
        // Stamped before the copy goes: a worker that takes the copy and
        // holds it again holds it later than this release, whatever the
        // order the two events are folded in.
        let released_at = Timestamp::now();
        self.publish_with_headers(
            subjects.route(&job.group, &job.queue, &tag_key),
            Some(format!("release-{}-{}-{since}", job.group, job.id)),
            headers,
            body,
        )
        .await?;
        let event = JobEvent::new(
            JobEventType::Released,
            &job.group,
            &job.queue,
            &job.id,
            job.attempt,
            released_at,
        );
        let body = serde_json::to_vec(&event).map_err(ApiError::internal)?;
        self.publish(
            subjects.job_event(&job.group, &job.id),
            Some(format!("released-{}-{}-{since}", job.group, job.id)),
            body,
        )
        .await?;
        info!(job_id = %job.id, group = %job.group, "held job let go to the workers");
        Ok(true)
    }
}

/// How many of a key's held jobs may go now.
fn room(record: &LimitRecord, kind: HoldKind, jobs: &[WaitingJob], now: Timestamp) -> u32 {
    match kind {
        HoldKind::Concurrency => {
            let own = jobs
                .iter()
                .find_map(|job| job.concurrency.as_ref().map(|limit| limit.limit))
                .unwrap_or(1);
            record.free_slots(own, now)
        }
        HoldKind::Rate => jobs
            .iter()
            .find_map(|job| job.rate.as_ref())
            .map_or(0, |rate| {
                record.free_starts(rate.limit, rate.per.get(), now)
            }),
        HoldKind::Parents => 0,
    }
}

/// The limits a job counts in: its concurrency key's and its rate's.
fn places(job: &WaitingJob) -> Vec<Place> {
    let concurrency = job
        .concurrency
        .as_ref()
        .map(|limit| (job.group.clone(), HoldKind::Concurrency, limit.key.clone()));
    let rate = job
        .rate
        .as_ref()
        .map(|limit| (job.group.clone(), HoldKind::Rate, limit.key.clone()));
    concurrency.into_iter().chain(rate).collect()
}

fn limit_kind(kind: HoldKind) -> LimitKind {
    match kind {
        HoldKind::Rate => LimitKind::Rate,
        _ => LimitKind::Concurrency,
    }
}
