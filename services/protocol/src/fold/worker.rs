//! The fold of worker records: the status of the latest event or heartbeat,
//! the identity of the latest `created`, `updated` or `registered`, and
//! counters as maxima.

use crate::{Heartbeat, Timestamp, WorkerEvent, WorkerEventType, WorkerRecord, WorkerStatus};

/// Something that changes a worker record.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerInput {
    /// A lifecycle event of the worker.
    Event(Box<WorkerEvent>),
    /// A heartbeat of the worker.
    Heartbeat(Heartbeat),
}

/// Breaks ties between statuses set at the same instant.
fn worker_rank(status: WorkerStatus) -> u8 {
    match status {
        WorkerStatus::Online => 1,
        WorkerStatus::Draining => 2,
        WorkerStatus::Lost => 3,
        WorkerStatus::Offline => 4,
        WorkerStatus::Deleted => 5,
    }
}

/// The status an input sets, if any.
fn status_of(input: &WorkerInput) -> Option<WorkerStatus> {
    match input {
        WorkerInput::Heartbeat(_) => Some(WorkerStatus::Online),
        WorkerInput::Event(event) => match event.kind {
            WorkerEventType::Registered => Some(WorkerStatus::Online),
            WorkerEventType::Draining => Some(WorkerStatus::Draining),
            WorkerEventType::Deregistered | WorkerEventType::Created => Some(WorkerStatus::Offline),
            WorkerEventType::Lost => Some(WorkerStatus::Lost),
            WorkerEventType::Deleted => Some(WorkerStatus::Deleted),
            WorkerEventType::Updated => None,
        },
    }
}

/// Applies one input to a worker record (or to nothing, for a new worker).
///
/// The status is the one of the latest input (by its time; a deleted worker
/// stays deleted), so that a lost worker that sends heartbeats again is
/// online again; identity fields follow the latest of `created`, `updated`
/// and `registered`; counters are maxima.
pub fn fold_worker(record: Option<WorkerRecord>, input: &WorkerInput) -> WorkerRecord {
    let mut record = record.unwrap_or_default();
    let (worker_id, group, at) = match input {
        WorkerInput::Heartbeat(beat) => (&beat.worker_id, &beat.group, beat.at),
        WorkerInput::Event(event) => (&event.worker_id, &event.group, event.at),
    };
    record.id.clone_from(worker_id);
    record.group.clone_from(group);
    if let Some(status) = status_of(input) {
        let current = record
            .status
            .map(|status| (record.status_at, worker_rank(status)));
        let deleted = record.status == Some(WorkerStatus::Deleted);
        if !deleted
            && (status == WorkerStatus::Deleted
                || current.is_none_or(|current| (Some(at), worker_rank(status)) > current))
        {
            record.status = Some(status);
            record.status_at = Some(at);
        }
    }
    match input {
        WorkerInput::Heartbeat(beat) => {
            record.heartbeat_interval = Some(beat.interval);
            note_activity(
                &mut record,
                at,
                Some(beat.running.clone()),
                beat.jobs_run,
                beat.jobs_failed,
            );
        }
        WorkerInput::Event(event) => fold_worker_event(&mut record, event),
    }
    record
}

/// Applies what a worker's event says besides its status.
fn fold_worker_event(record: &mut WorkerRecord, event: &WorkerEvent) {
    let at = event.at;
    let identity_is_newer = record
        .identity_at
        .is_none_or(|identity_at| at >= identity_at);
    match event.kind {
        WorkerEventType::Registered => {
            if let Some(info) = event.info.as_ref().filter(|_| {
                record
                    .registered_at
                    .is_none_or(|registered| at >= registered)
            }) {
                record.registered_at = Some(at);
                record.queues.clone_from(&info.queues);
                record.tags.clone_from(&info.tags);
                record.concurrency = info.concurrency;
                record.host.clone_from(&info.host);
                record.pid = info.pid;
                record.version.clone_from(&info.version);
                record.heartbeat_interval = Some(info.heartbeat_interval);
                if identity_is_newer {
                    record.identity_at = Some(at);
                    record.name.clone_from(&info.name);
                    record.labels.clone_from(&info.labels);
                    record.system = info.system;
                }
            }
            note_activity(
                record,
                at,
                Some(Vec::new()),
                event.jobs_run,
                event.jobs_failed,
            );
        }
        WorkerEventType::Deregistered => {
            if record
                .deregistered_at
                .is_none_or(|deregistered| at > deregistered)
            {
                record.deregistered_at = Some(at);
            }
            note_activity(
                record,
                at,
                Some(Vec::new()),
                event.jobs_run,
                event.jobs_failed,
            );
        }
        WorkerEventType::Draining => {
            note_activity(record, at, None, event.jobs_run, event.jobs_failed)
        }
        WorkerEventType::Created | WorkerEventType::Updated => {
            if event.kind == WorkerEventType::Created {
                record.created_at = Some(record.created_at.map_or(at, |created| created.min(at)));
            }
            if let Some(identity) = event.identity.as_ref().filter(|_| identity_is_newer) {
                record.identity_at = Some(at);
                if let Some(name) = &identity.name {
                    record.name.clone_from(name);
                }
                if let Some(labels) = &identity.labels {
                    record.labels.clone_from(labels);
                }
                if let Some(system) = identity.system {
                    record.system = system;
                }
                if identity.user.is_some() {
                    record.user.clone_from(&identity.user);
                }
                if identity.resource.is_some() {
                    record.resource.clone_from(&identity.resource);
                }
            }
        }
        WorkerEventType::Deleted | WorkerEventType::Lost => {}
    }
}

/// Moves `last_seen` forward; the running jobs and counters follow the latest report.
fn note_activity(
    record: &mut WorkerRecord,
    at: Timestamp,
    running: Option<Vec<String>>,
    jobs_run: u64,
    jobs_failed: u64,
) {
    if record.last_seen.is_none_or(|seen| at > seen) {
        record.last_seen = Some(at);
        if let Some(running) = running {
            record.running = running;
        }
    }
    record.jobs_run = record.jobs_run.max(jobs_run);
    record.jobs_failed = record.jobs_failed.max(jobs_failed);
}
