//! What a delivered job waits for before it may run: its parents' success,
//! a slot of its concurrency key, a start within its rate. A job that must
//! wait is held (a `held` event says for what, then its message is acked:
//! it takes no slot while it waits) and the registry lets it go again when
//! what it waits for may have come; a job whose parent failed is skipped.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use shoal_client::limits::Limits;
use shoal_protocol::hold::{HoldKind, ParentFailure};
use shoal_protocol::key::Key;
use shoal_protocol::limits::{Full, Holder};
use shoal_protocol::{JobEventType, JobRecord, JobResult, JobSpec, JobState, Timestamp};
use tracing::{debug, info, warn};

use crate::delivery::Delivery;
use crate::Worker;

/// The parents' results a child reads from `$SHOAL_PARENT_RESULTS`, by job id.
pub(crate) type ParentResults = BTreeMap<String, Option<JobResult>>;

/// A concurrency slot a running job holds under a lease.
pub(crate) struct Slot {
    limits: Limits,
    group: String,
    key: String,
    job_id: String,
    lease: Duration,
}

impl Slot {
    /// Moves the lease on: the job is still running.
    pub(crate) async fn renew(&self) {
        let until = lease_end(self.lease);
        match self
            .limits
            .renew(&self.group, &self.key, &self.job_id, until)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                warn!(key = %self.key, "the job's concurrency slot was taken back (its lease ran out)")
            }
            Err(err) => {
                debug!(error = %shoal_client::error_chain(&err), "cannot renew the concurrency slot's lease")
            }
        }
    }

    /// Gives the slot back: the attempt is over.
    pub(crate) async fn release(self) {
        if let Err(err) = self
            .limits
            .release(&self.group, &self.key, &self.job_id)
            .await
        {
            warn!(error = %shoal_client::error_chain(&err), key = %self.key, "cannot give the concurrency slot back; its lease frees it");
        }
    }
}

/// What a job may do now.
pub(crate) struct Admitted {
    /// The concurrency slot it holds, if it has a key.
    pub(crate) slot: Option<Slot>,
    /// Its parents' results, if it has parents.
    pub(crate) parents: Option<ParentResults>,
}

/// Why a job does not run now.
enum Verdict {
    Run(Box<Admitted>),
    Hold {
        by: HoldKind,
        reason: String,
        until: Option<Timestamp>,
        parents: Vec<String>,
    },
    Skip(String),
}

/// Decides whether the delivered job runs now; when it does not, holds or
/// skips it and settles its message, and gives `None`.
pub(crate) async fn admit(
    worker: &Worker,
    message: &Message,
    spec: &JobSpec,
    delivery: &Delivery,
    lease: Duration,
) -> Option<Admitted> {
    let verdict = match verdict(worker, spec, delivery, lease).await {
        Ok(verdict) => verdict,
        Err(err) => {
            warn!(error = %err, "cannot tell whether the job may run; it comes again");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return None;
        }
    };
    let mut event = worker.job_event(JobEventType::Held, delivery, Timestamp::now());
    let reason = match verdict {
        Verdict::Run(admitted) => return Some(*admitted),
        Verdict::Hold {
            by,
            reason,
            until,
            parents,
        } => {
            event.held_by = Some(by);
            event.until = until;
            event.waiting_on = parents;
            reason
        }
        Verdict::Skip(reason) => {
            event.kind = JobEventType::Skipped;
            event.worker_id = Some(worker.id.clone());
            reason
        }
    };
    let kind = event.kind;
    event.error_text = Some(reason.clone());
    let stored = match worker.publish_job_event(&event).await {
        Ok(ack) => ack.await.map_err(|err| err.to_string()),
        Err(err) => Err(err.to_string()),
    };
    match stored {
        Ok(_) => {
            info!(waiting_for = %reason, ?kind, "job not run now");
            if kind == JobEventType::Held {
                worker
                    .held_back
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let _ = message.ack().await;
        }
        Err(err) => {
            warn!(error = %err, "cannot record why the job waits; it comes again");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
    None
}

async fn verdict(
    worker: &Worker,
    spec: &JobSpec,
    delivery: &Delivery,
    lease: Duration,
) -> Result<Verdict, String> {
    let mut parents = None;
    if !spec.depends_on.is_empty() {
        match parents_verdict(worker, spec, delivery).await? {
            Ok(results) => parents = Some(results),
            Err(verdict) => return Ok(verdict),
        }
    }
    let mut slot = None;
    if let Some(concurrency) = &spec.concurrency {
        let holder = Holder {
            job_id: delivery.job_id.clone(),
            attempt: delivery.attempt,
            worker_id: worker.id.clone(),
            until: lease_end(lease),
        };
        let taken = worker
            .limits
            .acquire(&delivery.group, &concurrency.key, holder, concurrency.limit)
            .await
            .map_err(|err| shoal_client::error_chain(&err))?;
        if let Err(Full::Running { running, limit }) = taken {
            let reason = format!(
                "concurrency key {} ({running} of {limit} running)",
                concurrency.key
            );
            return Ok(Verdict::Hold {
                by: HoldKind::Concurrency,
                reason,
                until: None,
                parents: Vec::new(),
            });
        }
        slot = Some(Slot {
            limits: worker.limits.clone(),
            group: delivery.group.clone(),
            key: concurrency.key.clone(),
            job_id: delivery.job_id.clone(),
            lease,
        });
    }
    if let Some(rate) = &spec.rate {
        let started = worker
            .limits
            .start(
                &delivery.group,
                &rate.key,
                &delivery.job_id,
                (rate.limit, rate.per.get()),
            )
            .await;
        let refused = match started {
            Ok(Ok(())) => None,
            Ok(Err(Full::Rate { until })) => Some(Ok(Verdict::Hold {
                by: HoldKind::Rate,
                parents: Vec::new(),
                reason: format!(
                    "rate limit {} ({} per {}) until {}",
                    rate.key, rate.limit, rate.per, until
                ),
                until: Some(until),
            })),
            Ok(Err(full)) => Some(Err(format!(
                "unexpected answer of the rate limit: {full:?}"
            ))),
            Err(err) => Some(Err(shoal_client::error_chain(&err))),
        };
        if let Some(refused) = refused {
            // A slot taken for a job that does not start goes back at once.
            if let Some(slot) = slot {
                slot.release().await;
            }
            return refused;
        }
    }
    Ok(Verdict::Run(Box::new(Admitted { slot, parents })))
}

/// The parents' results when every parent succeeded (or, with
/// `on_parent_failure: run`, ended); else whether the job waits or is skipped.
async fn parents_verdict(
    worker: &Worker,
    spec: &JobSpec,
    delivery: &Delivery,
) -> Result<Result<ParentResults, Verdict>, String> {
    let run_anyway = spec.on_parent_failure == Some(ParentFailure::Run);
    let mut results = ParentResults::new();
    let mut pending = Vec::new();
    for parent in &spec.depends_on {
        let key = Key::new(&delivery.group, parent).to_string();
        let record = match worker.jobs_bucket.get(key).await {
            Ok(Some(value)) => serde_json::from_slice::<JobRecord>(&value).ok(),
            Ok(None) => None,
            Err(err) => return Err(format!("cannot read parent {parent}: {err}")),
        };
        match record {
            Some(record) if record.state == Some(JobState::Succeeded) => {
                results.insert(parent.clone(), record.result);
            }
            Some(record) if record.done => {
                let state = record.state.map_or("ended", JobState::as_str);
                if !run_anyway {
                    return Ok(Err(Verdict::Skip(format!("parent {parent} {state}"))));
                }
                results.insert(parent.clone(), record.result);
            }
            _ => pending.push(parent.clone()),
        }
    }
    if pending.is_empty() {
        return Ok(Ok(results));
    }
    Ok(Err(Verdict::Hold {
        by: HoldKind::Parents,
        reason: shoal_protocol::fold::parents_text(&pending),
        until: None,
        parents: pending,
    }))
}

/// Writes the parents' results where `$SHOAL_PARENT_RESULTS` names them.
pub(crate) fn write_parent_results(
    dir: &std::path::Path,
    attempt: u32,
    results: &ParentResults,
) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("attempt-{attempt}.parents.json"));
    let body = serde_json::to_vec(results).map_err(std::io::Error::other)?;
    std::fs::write(&path, body)?;
    Ok(path)
}

fn lease_end(lease: Duration) -> Timestamp {
    Timestamp::now()
        .checked_add(lease)
        .unwrap_or_else(Timestamp::now)
}
