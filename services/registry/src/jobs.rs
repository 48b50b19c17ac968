//! Jobs seen from the admin side: a job's record on request, pages of
//! jobs and the queues' figures for logins that may not read them
//! themselves, and cancel, wherever the job is.

use shoal_protocol::fold::{fold_job, JobInput};
use shoal_protocol::key::Key;
use shoal_protocol::registry::{
    CancelResult, JobPage, ListJobs, QueueFigures, RevisedJob, MAX_JOBS_PER_PAGE,
};
use shoal_protocol::token::validate_token;
use shoal_protocol::{JobEvent, JobEventType, JobRecord, JobState, Timestamp};
use tracing::info;

use crate::{ApiError, Registry};

fn checked(field: &str, value: &str) -> Result<(), ApiError> {
    validate_token(field, value).map_err(|err| ApiError::bad_request(err.to_string()))
}

impl Registry {
    /// `job.get.<group>.<job_id>`: the job's record.
    pub(crate) async fn get_job(&self, group: &str, job_id: &str) -> Result<JobRecord, ApiError> {
        checked("group", group)?;
        checked("job_id", job_id)?;
        let key = Key::new(group, job_id).to_string();
        self.jobs
            .get(&key)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no job {job_id} in group {group}")))
    }

    /// `shoal.ctl.<group>.job.<job_id>.cancel`: a queued job never starts; a
    /// running one is stopped by its worker; a finished one stays as it is.
    pub(crate) async fn cancel_job(
        &self,
        group: &str,
        job_id: &str,
    ) -> Result<CancelResult, ApiError> {
        let record = self.get_job(group, job_id).await?;
        let was = record.state.unwrap_or(JobState::Queued);
        let answer = |cancelled: bool, message: String| CancelResult {
            job_id: job_id.to_string(),
            group: group.to_string(),
            cancelled,
            was,
            message,
        };
        if record.done {
            return Ok(answer(
                false,
                format!("job {job_id} already {}: nothing to cancel", was.as_str()),
            ));
        }
        let mut event = JobEvent::new(
            JobEventType::Cancelled,
            group,
            &record.queue,
            job_id,
            record.attempt,
            Timestamp::now(),
        );
        event.worker_id.clone_from(&record.worker_id);
        event.error_text = Some("cancelled".to_string());
        let subjects = &self.config.layout.subjects;
        let body = serde_json::to_vec(&event).map_err(ApiError::internal)?;
        self.publish(
            subjects.job_event(group, job_id),
            Some(format!("cancel-{group}-{job_id}")),
            body,
        )
        .await?;
        let input = JobInput::Event(event);
        let key = Key::new(group, job_id).to_string();
        let now = self
            .jobs
            .update(&key, |current| fold_job(current, &input), |_, _| true)
            .await
            .map_err(ApiError::internal)?;
        if now.state != Some(JobState::Cancelled) {
            let state = now.state.map_or("unknown", JobState::as_str);
            return Ok(answer(
                false,
                format!("job {job_id} ended {state} meanwhile: nothing to cancel"),
            ));
        }
        // The worker running it, if any, stops its processes.
        self.client
            .publish(subjects.stop_job(group, job_id), "".into())
            .await
            .map_err(ApiError::internal)?;
        info!(job_id, group, was = was.as_str(), "job cancelled");
        Ok(answer(
            true,
            format!("job {job_id} cancelled (it was {})", was.as_str()),
        ))
    }

    /// A page of jobs, the one changed last first (one group's, or all).
    pub(crate) async fn list_jobs(&self, request: ListJobs) -> Result<JobPage, ApiError> {
        let filter = match &request.group {
            Some(group) => {
                checked("group", group)?;
                format!("{group}.*")
            }
            None => ">".to_string(),
        };
        let limit = request.limit.unwrap_or(50).clamp(1, MAX_JOBS_PER_PAGE);
        let page = self
            .jobs
            .newest(&filter, limit, request.before)
            .await
            .map_err(ApiError::internal)?;
        Ok(JobPage {
            jobs: page
                .records
                .into_iter()
                .map(|(revision, record)| RevisedJob { revision, record })
                .collect(),
            next_before: page.next_before,
        })
    }

    /// The figures of the queues (one group's, or all).
    pub(crate) async fn list_queues(
        &self,
        group: Option<&str>,
    ) -> Result<Vec<QueueFigures>, ApiError> {
        if let Some(group) = group {
            checked("group", group)?;
        }
        let client = shoal_client::Client::over(self.client.clone(), self.config.layout.clone());
        client
            .queue_figures_of(group)
            .await
            .map_err(ApiError::internal)
    }
}
