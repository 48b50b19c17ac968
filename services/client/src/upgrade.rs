//! Bringing the streams an older version made to this version's settings,
//! where they keep groups apart and nothing lost: no rollups where users
//! publish, new messages refused rather than old ones dropped. Only an
//! operator may change a stream: the projector and the registry do it when
//! they start, before they set up what is missing.
//!
//! One change cannot be made in place: the jobs stream of versions before
//! `SHOAL_SCHEDULES` allowed message schedules, which the server never turns
//! off again, and with which any user who may publish to the stream can act
//! on another group's subjects. Such a store is refused with the steps that
//! replace the stream (README, "Upgrading").

use async_nats::jetstream::{self, stream};

use crate::streams::{Buckets, Layout, SetupError, SetupRetry, START_WINDOW};

impl Layout {
    /// What an operator's service does when it starts: upgrades the streams
    /// an older version made, then sets up what is missing; tried again
    /// within [`START_WINDOW`] while the servers cannot answer.
    pub async fn set_up_as_operator(&self, js: &jetstream::Context) -> Result<Buckets, SetupError> {
        let mut retry = SetupRetry::new(START_WINDOW);
        loop {
            let set_up = async {
                self.upgrade_streams(js).await?;
                self.upgrade_job_bucket(js).await?;
                self.ensure(js).await
            };
            match set_up.await {
                Ok(buckets) => return Ok(buckets),
                Err(err) => retry.after(err).await?,
            }
        }
    }

    /// [`Layout::ensure`], tried again within [`START_WINDOW`] while the
    /// servers cannot answer: what a worker or supervisor does when it starts.
    pub async fn set_up(&self, js: &jetstream::Context) -> Result<Buckets, SetupError> {
        let mut retry = SetupRetry::new(START_WINDOW);
        loop {
            match self.ensure(js).await {
                Ok(buckets) => return Ok(buckets),
                Err(err) => retry.after(err).await?,
            }
        }
    }

    /// Upgrades every existing stream whose guarded settings differ; refuses
    /// a jobs stream that allows message schedules.
    pub async fn upgrade_streams(&self, js: &jetstream::Context) -> Result<(), SetupError> {
        for wanted in self.stream_configs() {
            let name = wanted.name.clone();
            let Ok(mut existing) = js.get_stream(&name).await else {
                continue;
            };
            let current = existing
                .info()
                .await
                .map_err(|err| SetupError::new("stream", &name, err))?
                .config
                .clone();
            if current.allow_message_schedules && !wanted.allow_message_schedules {
                return Err(SetupError::new("stream", &name, OLDER_JOBS_STREAM));
            }
            if guarded_settings_differ(&current, &wanted) {
                js.update_stream(guarded_settings(current, &wanted))
                    .await
                    .map_err(|err| SetupError::new("stream", &name, err))?;
                tracing::info!(stream = %name, "updated the stream's guarded settings");
            }
        }
        Ok(())
    }
}

impl Layout {
    /// Lets the job bucket of an older version take records that expire
    /// (`Nats-TTL`), which the records of ended jobs are written with.
    pub async fn upgrade_job_bucket(&self, js: &jetstream::Context) -> Result<(), SetupError> {
        let name = format!("KV_{}", self.jobs_bucket());
        let Ok(mut existing) = js.get_stream(&name).await else {
            return Ok(());
        };
        let current = existing
            .info()
            .await
            .map_err(|err| SetupError::new("bucket", &self.jobs_bucket(), err))?
            .config
            .clone();
        if current.allow_message_ttl {
            return Ok(());
        }
        js.update_stream(stream::Config {
            allow_message_ttl: true,
            subject_delete_marker_ttl: Some(crate::streams::EXPIRY_MARKER_TTL),
            ..current
        })
        .await
        .map_err(|err| SetupError::new("bucket", &self.jobs_bucket(), err))?;
        tracing::info!(bucket = %self.jobs_bucket(), "the job bucket now takes records that expire");
        Ok(())
    }
}

/// Why a jobs stream made by an older version is refused, and what to do.
const OLDER_JOBS_STREAM: &str = "it was made by an older Shoal with message schedules on, which \
the server never turns off and which let any user of the stream act on another group's \
subjects; let its jobs finish, stop the workers, note its schedules (`nats stream subjects \
SHOAL_JOBS 'shoal.sched.>'`), delete it (`nats stream rm SHOAL_JOBS`) and start again \
(README, Upgrading)";

/// Whether a stream lacks one of the settings that keep groups apart and
/// nothing lost (rollups, schedules, discard policy, subjects, sources).
fn guarded_settings_differ(current: &stream::Config, wanted: &stream::Config) -> bool {
    let sources = |config: &stream::Config| {
        config
            .sources
            .iter()
            .flatten()
            .map(|source| source.name.clone())
            .collect::<Vec<_>>()
    };
    current.allow_rollup != wanted.allow_rollup
        || current.allow_message_schedules != wanted.allow_message_schedules
        || current.discard != wanted.discard
        || current.allow_atomic_publish != wanted.allow_atomic_publish
        || current.subjects != wanted.subjects
        || sources(current) != sources(wanted)
}

/// The current settings with the guarded ones of `wanted`.
fn guarded_settings(current: stream::Config, wanted: &stream::Config) -> stream::Config {
    stream::Config {
        allow_rollup: wanted.allow_rollup,
        allow_message_schedules: wanted.allow_message_schedules,
        discard: wanted.discard,
        allow_atomic_publish: wanted.allow_atomic_publish,
        subjects: wanted.subjects.clone(),
        sources: wanted.sources.clone(),
        ..current
    }
}
