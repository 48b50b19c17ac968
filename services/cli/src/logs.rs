//! `shoal job logs [-f]`: a job's output, as raw bytes (long lines and
//! binary output pass through untouched), read through the registry's
//! `job.logs.<group>.<job_id>` so that a user of one group needs no
//! consumer of its own.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use shoal_protocol::registry::{LOGS_MORE_HEADER, LOGS_SEQUENCE_HEADER};
use shoal_protocol::JobRecord;

use crate::api::request_raw;
use crate::connection::ConnectionArgs;
use crate::job::{job_key, open_jobs, JobRef};

/// How long to wait for more output before asking again.
const POLL: Duration = Duration::from_millis(500);

/// Prints the output of a job; with `follow`, until the job has ended.
pub async fn run(connection: ConnectionArgs, job: JobRef, follow: bool) -> anyhow::Result<()> {
    let (js, layout, jobs) = open_jobs(&connection).await?;
    let Some(key) = job_key(&js, &layout, &job).await? else {
        bail!("no job {} found", job.id);
    };
    let group = key.split('.').next().unwrap_or_default();
    let subject = format!("{}.api.job.logs.{group}.{}", connection.prefix, job.id);
    let client = js.client();
    let mut out = std::io::stdout().lock();
    let mut after = 0u64;
    // Output is sent beside the outcome: once the job has ended, one more
    // read takes what arrived with it.
    let mut last_read = false;
    loop {
        let answer = request_raw(&client, &subject, &serde_json::json!({ "after": after })).await?;
        out.write_all(&answer.payload)
            .context("cannot write the output")?;
        let header = |name: &str| {
            answer
                .headers
                .as_ref()
                .and_then(|headers| headers.get(name))
                .map(|value| value.to_string())
        };
        after = header(LOGS_SEQUENCE_HEADER)
            .and_then(|sequence| sequence.parse().ok())
            .context("the registry's answer names no sequence")?;
        if header(LOGS_MORE_HEADER).as_deref() == Some("true") {
            continue;
        }
        if !follow || last_read {
            out.flush().context("cannot write the output")?;
            return Ok(());
        }
        let record = jobs.get(&key).await.ok().flatten();
        last_read = record
            .and_then(|value| serde_json::from_slice::<JobRecord>(&value).ok())
            .is_some_and(|record| record.done);
        if !last_read {
            out.flush().context("cannot write the output")?;
            tokio::time::sleep(POLL).await;
        }
    }
}
