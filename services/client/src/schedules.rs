//! Delayed and recurring jobs: schedules in `SHOAL_SCHEDULES` that the
//! server turns into submissions (`Nats-Schedule`), listed and removed.

use async_nats::HeaderMap;
use futures_util::StreamExt;
use shoal_protocol::key::Key;
use shoal_protocol::token::validate_token;
use shoal_protocol::{JobSpec, Priority, Timestamp};
use time::format_description::well_known::Rfc3339;

use crate::client::{Client, Target};
use crate::error::ClientError;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// Once, at this moment (whole seconds; rounded up, never early).
    At(Timestamp),
    /// Every so many whole seconds, one at least.
    Every(std::time::Duration),
    /// On a 6-field cron expression: seconds minutes hours day-of-month month day-of-week.
    Cron(String),
}

/// The label every run of a recurring schedule carries: the schedule's id.
pub const SCHEDULE_LABEL: &str = "schedule";

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Schedule {
    /// Its id.
    pub id: String,
    /// Its group.
    pub group: String,
    /// Its queue.
    pub queue: String,
    /// Its `Nats-Schedule` header: `@at <time>`, `@every <n>s` or a cron expression.
    pub when: String,
    /// The job it submits.
    pub spec: Option<JobSpec>,
}

impl When {
    /// The `Nats-Schedule` header that says it; a value that cannot be one
    /// is refused, naming its field.
    fn header(&self) -> Result<String, ClientError> {
        match self {
            Self::At(moment) => {
                let whole = moment
                    .0
                    .replace_nanosecond(0)
                    .map_err(|err| ClientError::field("at", err.to_string()))?;
                let text = whole
                    .format(&Rfc3339)
                    .map_err(|err| ClientError::field("at", err.to_string()))?;
                Ok(format!("@at {text}"))
            }
            Self::Every(interval) => {
                if interval.as_secs() < 1 || interval.subsec_nanos() != 0 {
                    return Err(ClientError::field(
                        "every",
                        format!(
                            "`{}` must be whole seconds, 1s or more",
                            shoal_protocol::Duration(*interval)
                        ),
                    ));
                }
                Ok(format!("@every {}s", interval.as_secs()))
            }
            Self::Cron(expression) => {
                if expression.split_whitespace().count() != 6 {
                    return Err(ClientError::field(
                        "cron",
                        format!("`{expression}` needs 6 fields: seconds minutes hours day-of-month month day-of-week"),
                    ));
                }
                Ok(expression.clone())
            }
        }
    }

    fn once(&self) -> bool {
        matches!(self, Self::At(_))
    }
}

impl Client {
    /// Submits `spec` to `target` at `moment`; gives the job's key.
    pub async fn submit_at(
        &self,
        target: &Target,
        spec: &JobSpec,
        moment: Timestamp,
    ) -> Result<Key, ClientError> {
        // A schedule fires on whole seconds: rounded up, it never runs early.
        let nanos = moment.0.nanosecond();
        let moment = match nanos {
            0 => moment,
            _ => moment
                .checked_add(std::time::Duration::from_nanos(u64::from(
                    1_000_000_000 - nanos,
                )))
                .ok_or_else(|| ClientError::field("at", "too far ahead"))?,
        };
        let id = self.schedule(target, spec, &When::At(moment)).await?;
        Ok(Key::new(&target.group, id))
    }

    /// Submits `spec` to `target` every `interval`; gives the schedule's id.
    pub async fn submit_every(
        &self,
        target: &Target,
        spec: &JobSpec,
        interval: std::time::Duration,
    ) -> Result<String, ClientError> {
        self.schedule(target, spec, &When::Every(interval)).await
    }

    /// Submits `spec` to `target` on a 6-field cron expression; gives the schedule's id.
    pub async fn submit_cron(
        &self,
        target: &Target,
        spec: &JobSpec,
        expression: &str,
    ) -> Result<String, ClientError> {
        self.schedule(target, spec, &When::Cron(expression.to_string()))
            .await
    }

    /// Stores a schedule the server turns into submissions of `spec`; gives
    /// its id (a delayed job's own id; each run of a recurring one gets its own).
    pub async fn schedule(
        &self,
        target: &Target,
        spec: &JobSpec,
        when: &When,
    ) -> Result<String, ClientError> {
        spec.validate()?;
        let header = when.header()?;
        let mut spec = spec.clone();
        let schedule_id = spec
            .id
            .clone()
            .unwrap_or_else(|| nuid::next().to_string().to_lowercase());
        spec.id = when.once().then(|| schedule_id.clone());
        if !when.once() {
            // Each run is `<schedule>-<sequence>`, labelled with its schedule.
            spec.schedule = Some(schedule_id.clone());
            spec.labels
                .insert(SCHEDULE_LABEL.to_string(), schedule_id.clone());
            spec.validate()?;
        }
        let subjects = &self.layout().subjects;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Schedule", header.as_str());
        headers.insert(
            "Nats-Schedule-Target",
            subjects
                .due(&target.group, &target.queue, Priority::Normal)
                .as_str(),
        );
        let body = crate::submit::body_of(&spec)?;
        let subject = subjects.schedule(&target.group, &target.queue, &schedule_id);
        let stored = |err| ClientError::nats("the schedule was not stored", err);
        self.jetstream()
            .publish_with_headers(subject, headers, body)
            .await
            .map_err(stored)?
            .await
            .map_err(stored)?;
        Ok(schedule_id)
    }

    /// The schedules of `group`, or of every group.
    pub async fn schedules(&self, group: Option<&str>) -> Result<Vec<Schedule>, ClientError> {
        let stream = self.schedules_stream().await?;
        let subjects = &self.layout().subjects;
        let filter = format!("{}.sched.{}.*.*", subjects.prefix(), group.unwrap_or("*"));
        let mut schedules = Vec::new();
        for subject in schedule_subjects(&stream, filter).await? {
            let Some((group, queue, id)) = subjects.parse_schedule(&subject) else {
                continue;
            };
            let Ok(message) = stream.direct_get_last_for_subject(&subject).await else {
                continue;
            };
            let when = message
                .headers
                .get("Nats-Schedule")
                .map(|value| value.to_string())
                .unwrap_or_default();
            let spec = serde_json::from_slice::<JobSpec>(&message.payload).ok();
            schedules.push(Schedule {
                id,
                group,
                queue,
                when,
                spec,
            });
        }
        Ok(schedules)
    }

    /// Removes the schedule `id` (of `group` when given).
    pub async fn remove_schedule(&self, id: &str, group: Option<&str>) -> Result<(), ClientError> {
        validate_token("id", id)?;
        if let Some(group) = group {
            validate_token("group", group)?;
        }
        let stream = self.schedules_stream().await?;
        let filter = format!(
            "{}.sched.{}.*.{id}",
            self.layout().subjects.prefix(),
            group.unwrap_or("*")
        );
        let subjects = schedule_subjects(&stream, filter).await?;
        let [subject] = subjects.as_slice() else {
            return Err(ClientError::field(
                "id",
                match subjects.is_empty() {
                    true => format!("no schedule {id}"),
                    false => {
                        format!("schedule {id} exists in several groups or queues; name the group")
                    }
                },
            ));
        };
        stream
            .purge()
            .filter(subject.as_str())
            .await
            .map_err(|err| ClientError::nats("cannot remove the schedule", err))?;
        Ok(())
    }

    async fn schedules_stream(&self) -> Result<async_nats::jetstream::stream::Stream, ClientError> {
        self.jetstream()
            .get_stream(self.layout().schedules_stream())
            .await
            .map_err(|err| ClientError::nats("no schedules stream", err))
    }
}

/// The subjects of the schedules matching `filter`, in order.
async fn schedule_subjects(
    stream: &async_nats::jetstream::stream::Stream,
    filter: String,
) -> Result<Vec<String>, ClientError> {
    let listing = |err| ClientError::nats("cannot list the schedules", err);
    let mut found = stream.info_with_subjects(filter).await.map_err(listing)?;
    let mut subjects = Vec::new();
    while let Some(entry) = found.next().await {
        subjects.push(entry.map_err(listing)?.0);
    }
    subjects.sort();
    Ok(subjects)
}
