//! A spinner on stderr while a command waits on a job: the job's state and
//! progress, read again from its record four times a second. Nothing at
//! all when stderr is no terminal (piped, redirected, in a script).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use shoal_client::Client;
use shoal_protocol::key::Key;
use shoal_protocol::JobRecord;

/// Time between two reads of the record.
const REFRESH: Duration = Duration::from_millis(250);

/// A spinner following one job; cleared when dropped.
pub struct JobSpinner {
    bar: ProgressBar,
    reader: tokio::task::JoinHandle<()>,
}

impl JobSpinner {
    /// A spinner for the job at `key`, if stderr is a terminal.
    pub fn start(client: &Client, key: &Key) -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(format!("job {}", key.id()));
        bar.enable_steady_tick(Duration::from_millis(100));
        let reader = tokio::spawn(show_record(client.clone(), key.clone(), bar.clone()));
        Some(Self { bar, reader })
    }

    /// Runs `write` with the spinner out of the way (output to the same terminal).
    pub fn suspend<T>(spinner: Option<&Self>, write: impl FnOnce() -> T) -> T {
        match spinner {
            Some(spinner) => spinner.bar.suspend(write),
            None => write(),
        }
    }
}

impl Drop for JobSpinner {
    fn drop(&mut self) {
        self.reader.abort();
        self.bar.finish_and_clear();
    }
}

async fn show_record(client: Client, key: Key, bar: ProgressBar) {
    loop {
        if let Ok(Some(record)) = client.get(&key).await {
            bar.set_message(describe(&record));
        }
        tokio::time::sleep(REFRESH).await;
    }
}

/// `job ID running 40% copying (attempt 2)`.
fn describe(record: &JobRecord) -> String {
    let mut text = format!("job {}", record.id);
    if let Some(state) = record.state {
        text.push(' ');
        text.push_str(state.as_str());
    }
    if let Some(progress) = &record.progress {
        text.push_str(&format!(" {}% {}", progress.percent, progress.message));
    }
    if record.attempts > 1 {
        text.push_str(&format!(" (attempt {})", record.attempts));
    }
    text
}
