//! The floors Shoal's figures stand beside, measured in the same run on the
//! same server and machine: the bare JetStream round trip of a job (publish
//! → pull and ack → publish done → seen, at most 1,024 in flight, written
//! with async-nats alone) and the bare spawn rate of `/bin/true` with
//! tokio at a given concurrency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::bail;
use crate::error::{Context, Result};

/// Most messages in flight in the round trip, as the bench's submitter allows.
const IN_FLIGHT: usize = 1024;

/// Jobs per second of the bare round trip over `count` messages.
pub async fn round_trip_per_s(client: &async_nats::Client, count: usize) -> Result<f64> {
    let js = jetstream::new(client.clone());
    let run = nuid::next().to_string().to_lowercase();
    let name = format!("SHOAL_FLOOR_{}", run.to_uppercase());
    let jobs = format!("shoal-floor.{run}.jobs");
    let done = format!("shoal-floor.{run}.done");
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![jobs.clone()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .context("cannot make the round trip's stream")?;
    let measured = measure_round_trip(client, &js, &stream, (&jobs, &done), count).await;
    let _ = js.delete_stream(&name).await;
    measured
}

async fn measure_round_trip(
    client: &async_nats::Client,
    js: &jetstream::Context,
    stream: &stream::Stream,
    (jobs, done): (&str, &str),
    count: usize,
) -> Result<f64> {
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await
        .context("cannot make the round trip's consumer")?;
    let mut seen = client.subscribe(done.to_string()).await?;
    let taker = {
        let client = client.clone();
        let done = done.to_string();
        tokio::spawn(async move {
            let mut messages = consumer.messages().await?;
            let mut taken = 0;
            while taken < count {
                let Some(message) = messages.next().await else {
                    bail!("the round trip's consumer ended");
                };
                let message = message?;
                message.ack().await?;
                client
                    .publish(done.clone(), message.payload.clone())
                    .await?;
                taken += 1;
            }
            Ok::<_, crate::error::BoxError>(())
        })
    };
    let started = Instant::now();
    let publisher = {
        let js = js.clone();
        let jobs = jobs.to_string();
        tokio::spawn(async move {
            let mut pending = Vec::with_capacity(IN_FLIGHT);
            for index in 0..count {
                pending.push(js.publish(jobs.clone(), index.to_string().into()).await?);
                if pending.len() == IN_FLIGHT {
                    for ack in pending.drain(..) {
                        ack.await?;
                    }
                }
            }
            for ack in pending {
                ack.await?;
            }
            Ok::<_, crate::error::BoxError>(())
        })
    };
    for _ in 0..count {
        if seen.next().await.is_none() {
            bail!("the round trip's subscription ended");
        }
    }
    let elapsed = started.elapsed();
    publisher.await.context("the round trip's publisher")??;
    taker.await.context("the round trip's consumer")??;
    Ok(count as f64 / elapsed.as_secs_f64().max(f64::EPSILON))
}

/// Spawns of `/bin/true` per second, `concurrency` at once, over `count`.
pub async fn spawn_per_s(count: usize, concurrency: usize) -> Result<f64> {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..count {
        let slot = slots.clone().acquire_owned().await?;
        running.spawn(async move {
            let status = tokio::process::Command::new("/bin/true")
                .kill_on_drop(true)
                .status()
                .await;
            drop(slot);
            status
        });
    }
    while let Some(ended) = running.join_next().await {
        let status = ended.context("a spawn of /bin/true")??;
        if !status.success() {
            bail!("/bin/true failed: {status}");
        }
    }
    Ok(count as f64 / started.elapsed().as_secs_f64().max(f64::EPSILON))
}

/// How long a floor may take before the bench gives up on it.
pub const FLOOR_BOUND: Duration = Duration::from_secs(120);
