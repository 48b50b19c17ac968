//! Cancels reach the worker running the job: the registry records the
//! cancel, then publishes `shoal.ctl.<group>.job.<job_id>.stop`; the worker
//! that runs that job stops its processes.

use std::sync::Arc;

use futures_util::StreamExt;
use tracing::{info, warn};

use crate::Worker;

/// Listens for stop requests for the jobs of `groups` (those the worker
/// serves: its user may listen to no other), until the worker has finished
/// draining (the caller aborts it then).
pub(crate) async fn listen(worker: Arc<Worker>, groups: Vec<String>) {
    let subjects = &worker.config.subjects;
    let mut subscriptions = Vec::new();
    for group in groups {
        match worker
            .client
            .subscribe(subjects.stop_job(&group, "*"))
            .await
        {
            Ok(subscription) => subscriptions.push(subscription),
            Err(err) => warn!(error = %err, group, "cannot listen for cancels"),
        }
    }
    let mut requests = futures_util::stream::select_all(subscriptions);
    while let Some(request) = requests.next().await {
        // `<prefix>.ctl.<group>.job.<job_id>.stop`
        let Some(job_id) = request
            .subject
            .as_str()
            .rsplit('.')
            .nth(1)
            .map(str::to_string)
        else {
            continue;
        };
        let stop = worker.running_jobs(|running| running.get(&job_id).cloned());
        if let Some(stop) = stop {
            info!(job_id, "cancel received: stopping the job");
            stop.cancel();
        }
    }
}
