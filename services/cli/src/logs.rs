//! `shoal job logs [-f]`: a job's output from the `SHOAL_LOGS` stream, as
//! raw bytes (long lines and binary output pass through untouched).

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use async_nats::jetstream::consumer::pull::OrderedConfig;
use futures_util::StreamExt;
use shoal_protocol::JobRecord;

use crate::connection::ConnectionArgs;
use crate::job::{job_key, open_jobs, JobRef};

/// Header of the empty message that ends an attempt's output.
const END_HEADER: &str = "Shoal-End";

/// How long to wait for more output before checking whether the job ended.
const POLL: Duration = Duration::from_millis(500);

/// Prints the output of a job; with `follow`, until the job has ended.
pub async fn run(connection: ConnectionArgs, job: JobRef, follow: bool) -> anyhow::Result<()> {
    let (js, layout, jobs) = open_jobs(&connection).await?;
    let Some(key) = job_key(&js, &layout, &job).await? else {
        bail!("no job {} found", job.id);
    };
    let group = key.split('.').next().unwrap_or_default();
    let stream = js
        .get_stream(layout.logs_stream())
        .await
        .context("no logs stream")?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            // Named, so the job's subject is in the subject of the request
            // and permissions can limit a reader to its group.
            name: Some(crate::output::ephemeral_name("logs")),
            filter_subject: layout.subjects.logs(group, &job.id),
            ..Default::default()
        })
        .await
        .context("cannot read the logs")?;
    let mut messages = consumer.messages().await.context("cannot read the logs")?;
    let mut out = std::io::stdout().lock();
    let job_done = || async {
        let value = jobs.get(&key).await.ok().flatten();
        value
            .and_then(|value| serde_json::from_slice::<JobRecord>(&value).ok())
            .is_some_and(|record| record.done)
    };
    loop {
        let next = tokio::time::timeout(POLL, messages.next()).await;
        let caught_up = match next {
            Ok(Some(message)) => {
                let message = message.context("reading the logs failed")?;
                let is_end = message
                    .headers
                    .as_ref()
                    .is_some_and(|headers| headers.get(END_HEADER).is_some());
                if !is_end {
                    out.write_all(&message.payload)
                        .context("cannot write the output")?;
                }
                message
                    .info()
                    .map(|info| info.pending == 0)
                    .unwrap_or(false)
            }
            Ok(None) => bail!("the logs stream ended"),
            Err(_) => true,
        };
        if caught_up && (!follow || job_done().await) {
            out.flush().context("cannot write the output")?;
            return Ok(());
        }
    }
}
