//! Submits a job to a Shoal installation and waits for it to end.
//!
//! ```sh
//! SHOAL_NATS_URL=nats://127.0.0.1:4222 cargo run -p shoal-client --example submit_and_wait -- acme
//! ```
//!
//! The first argument names the group (`default` when absent); the job is
//! the built-in `sleep` entrypoint every worker runs. It prints the job's id
//! and its end state, and exits 0 when the job succeeded.

use std::process::ExitCode;
use std::time::Duration;

use shoal_client::{Client, Target};
use shoal_protocol::{JobSpec, JobState};

#[tokio::main]
async fn main() -> ExitCode {
    match submit_and_wait().await {
        Ok(JobState::Succeeded) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {}", shoal_client::error_chain(&err));
            ExitCode::from(2)
        }
    }
}

async fn submit_and_wait() -> Result<JobState, shoal_client::ClientError> {
    let url = std::env::var("SHOAL_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let group = std::env::args().nth(1).unwrap_or_else(|| "default".into());
    let client = Client::connect_to(&url).await?;
    // Opens the streams, or creates them on a server no Shoal part has used yet.
    client.ensure().await?;
    let spec = JobSpec {
        entrypoint: Some("sleep".into()),
        args: vec!["10ms".into()],
        ..Default::default()
    };
    let submitted = client
        .submit(&Target::new(&group, "default")?, &spec)
        .await?;
    println!("submitted {}", submitted.key);
    let record = client.wait(&submitted.key, Duration::from_secs(60)).await?;
    let state = record.state.unwrap_or(JobState::Queued);
    println!("job {} {}", record.id, state.as_str());
    Ok(state)
}
