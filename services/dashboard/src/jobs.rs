//! The jobs: a list filtered by group, queue and state, newest first, a
//! page at a time; one job's record; its output as it comes; cancelling and
//! retrying it with the dashboard's login.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use shoal_client::newest::Page;
use shoal_client::{Client, ClientError};
use shoal_protocol::key::Key;
use shoal_protocol::token::validate_token;
use shoal_protocol::{JobRecord, JobState};

use crate::routes::{Refusal, Shared};
use crate::scope::Scope;

/// Most jobs on one page.
const MAX_LIMIT: usize = 500;

/// Jobs on a page when the page asks for no number.
const DEFAULT_LIMIT: usize = 50;

/// Most pages of the bucket read to fill one filtered page.
const MAX_PAGES_READ: usize = 20;

/// What a page of jobs asks for (the query string of `/api/jobs`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct JobsQuery {
    group: Option<String>,
    queue: Option<String>,
    state: Option<String>,
    before: Option<u64>,
    limit: Option<usize>,
}

/// A page of jobs, newest change first.
#[derive(Debug, Serialize)]
pub(crate) struct JobsPage {
    jobs: Vec<JobRow>,
    /// The `before` of the next page, if there is one.
    next_before: Option<u64>,
}

/// A job with the revision of its record.
#[derive(Debug, Serialize)]
pub(crate) struct JobRow {
    key: String,
    revision: u64,
    record: JobRecord,
}

/// The filters of a page, checked.
struct Filter {
    group: Option<String>,
    queue: Option<String>,
    state: Option<JobState>,
}

impl Filter {
    fn of(query: &JobsQuery, scope: &Scope) -> Result<Self, Refusal> {
        let token = |field: &'static str, value: &Option<String>| -> Result<_, Refusal> {
            let value = value.clone().filter(|value| !value.is_empty());
            if let Some(value) = &value {
                validate_token(field, value).map_err(|err| Refusal::bad(err.to_string()))?;
            }
            Ok(value)
        };
        let group = token("group", &query.group)?;
        if let Some(group) = &group {
            if !scope.shows(group) {
                return Err(Refusal::forbidden(format!(
                    "group: `{group}` is not shown by this dashboard (--group)"
                )));
            }
        }
        let state = match query.state.as_deref().filter(|state| !state.is_empty()) {
            None => None,
            Some(text) => Some(
                JobState::ALL
                    .into_iter()
                    .find(|state| state.as_str() == text)
                    .ok_or_else(|| Refusal::bad(format!("state: `{text}` is no job state")))?,
            ),
        };
        Ok(Self {
            group,
            queue: token("queue", &query.queue)?,
            state,
        })
    }

    /// The key filter the bucket is read with.
    fn key_filter(&self, scope: &Scope) -> String {
        match (&self.group, scope.named()) {
            (Some(group), _) => format!("{group}.*"),
            (None, [only]) => format!("{only}.*"),
            _ => ">".into(),
        }
    }

    fn keeps(&self, record: &JobRecord, scope: &Scope) -> bool {
        scope.shows(&record.group)
            && self
                .queue
                .as_ref()
                .is_none_or(|queue| *queue == record.queue)
            && self.state.is_none_or(|state| record.state == Some(state))
    }
}

/// The page of jobs `query` asks for.
pub(crate) async fn page(shared: &Shared, query: &JobsQuery) -> Result<JobsPage, Refusal> {
    let scope = &shared.live.scope;
    let filter = Filter::of(query, scope)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let key_filter = filter.key_filter(scope);
    let mut before = query.before;
    let mut jobs = Vec::new();
    for _ in 0..MAX_PAGES_READ {
        let page = newest(shared, &filter, &key_filter, limit, before).await?;
        for (revision, record) in page.records {
            if jobs.len() == limit {
                return Ok(JobsPage {
                    jobs,
                    next_before: Some(revision + 1),
                });
            }
            if filter.keeps(&record, scope) {
                jobs.push(JobRow {
                    key: Key::new(&record.group, &record.id).to_string(),
                    revision,
                    record,
                });
            }
        }
        before = page.next_before;
        if before.is_none() || jobs.len() == limit {
            break;
        }
    }
    // A filtered page may end short after its reads: the next one goes on from there.
    Ok(JobsPage {
        jobs,
        next_before: before,
    })
}

/// A page of the bucket, newest first: read from its stream, or through
/// the registry for a login that may not (one group at a time: the one
/// asked for, or the first shown).
async fn newest(
    shared: &Shared,
    filter: &Filter,
    key_filter: &str,
    limit: usize,
    before: Option<u64>,
) -> Result<Page<JobRecord>, Refusal> {
    if !shared.through_registry {
        return shared
            .client
            .newest(key_filter, limit, before)
            .await
            .map_err(Refusal::of);
    }
    let group = filter
        .group
        .as_deref()
        .or_else(|| shared.live.scope.named().first().map(String::as_str));
    let page = shared
        .client
        .job_page(group, limit, before)
        .await
        .map_err(Refusal::of)?;
    Ok(Page {
        records: page
            .jobs
            .into_iter()
            .map(|job| (job.revision, job.record))
            .collect(),
        next_before: page.next_before,
    })
}

/// The key of a job the page names, checked against the scope.
pub(crate) fn key_of(group: &str, id: &str, scope: &Scope) -> Result<Key, Refusal> {
    validate_token("group", group).map_err(|err| Refusal::bad(err.to_string()))?;
    validate_token("id", id).map_err(|err| Refusal::bad(err.to_string()))?;
    if !scope.shows(group) {
        return Err(Refusal::forbidden(format!(
            "group: `{group}` is not shown by this dashboard (--group)"
        )));
    }
    Ok(Key::new(group, id))
}

/// One job's record.
pub(crate) async fn job(client: &Client, key: &Key) -> Result<JobRow, Refusal> {
    match client.get_with_revision(key).await.map_err(Refusal::of)? {
        Some((revision, record)) => Ok(JobRow {
            key: key.to_string(),
            revision,
            record,
        }),
        None => Err(Refusal::not_found(format!(
            "no job {} in group {}",
            key.id(),
            key.group()
        ))),
    }
}

/// The job's output from its start, chunk by chunk while it runs (`chunk`:
/// the text as a JSON string), then `end` (or `failed` with the reason).
pub(crate) fn output(
    client: &Client,
    key: &Key,
    shutdown: tokio_util::sync::CancellationToken,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let chunks = client
        .logs(key, true)
        .filter(|chunk| std::future::ready(!chunk.as_ref().is_ok_and(|bytes| bytes.is_empty())))
        .map(|chunk| {
            Ok(match chunk {
                Ok(bytes) => Event::default()
                    .event("chunk")
                    .json_data(String::from_utf8_lossy(&bytes))
                    .unwrap_or_default(),
                Err(err) => Event::default()
                    .event("failed")
                    .json_data(shoal_client::error_chain(&err))
                    .unwrap_or_default(),
            })
        });
    let end = futures_util::stream::once(async { Ok(Event::default().event("end").data("")) });
    let chunks = chunks.chain(end).take_until(shutdown.cancelled_owned());
    Sse::new(chunks).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// What a button did, in one sentence.
#[derive(Debug, Serialize)]
pub(crate) struct Done {
    message: String,
}

/// Cancels the job through the registry.
pub(crate) async fn cancel(client: &Client, key: &Key) -> Result<Done, Refusal> {
    let result = client.cancel(key).await.map_err(Refusal::of)?;
    Ok(Done {
        message: result.message,
    })
}

/// Submits the ended job again under a new id.
pub(crate) async fn retry(client: &Client, key: &Key) -> Result<Done, Refusal> {
    let submitted = client.retry(key).await.map_err(Refusal::of)?;
    Ok(Done {
        message: format!("submitted again as {}", submitted.key.id()),
    })
}

impl Refusal {
    /// What the page is told when NATS, the registry or the login refused.
    pub(crate) fn of(err: ClientError) -> Self {
        let text = shoal_client::error_chain(&err);
        match &err {
            ClientError::NoSuchJob(_) | ClientError::NoSuchWorkflow { .. } => Self::not_found(text),
            ClientError::Refused { code: 403, .. } => Self::forbidden(text),
            ClientError::Refused { code, .. } if *code < 500 => Self::bad(text),
            ClientError::JobState { .. } | ClientError::Invalid(_) => Self::bad(text),
            _ if text.contains("ermission") => Self::forbidden(text),
            _ => Self::unavailable(text),
        }
    }
}
