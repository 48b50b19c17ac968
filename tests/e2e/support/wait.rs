//! Waiting on a condition with a deadline, never for a guessed time: every
//! test that waits for something to become true waits with [`eventually`].

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// The pause between two looks at a condition. A look that took longer is
/// followed by a pause as long as it took, so that slow looks (reading a
/// thousand records, starting a process) fill at most half of the wait.
const POLL: Duration = Duration::from_millis(100);

/// What one look at a condition found: it holds, with what it gives, or it
/// does not hold yet, with what was seen instead when there is something to say.
pub trait Outcome {
    /// What the wait returns once the condition holds.
    type Value;
    /// The value, or what was seen instead (if anything).
    fn settled(self) -> Result<Self::Value, Option<String>>;
}

/// `true` once the condition holds.
impl Outcome for bool {
    type Value = ();

    fn settled(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

/// `Some(value)` once the condition holds.
impl<T> Outcome for Option<T> {
    type Value = T;

    fn settled(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Ok(value)` once the condition holds; `Err` says what was seen instead,
/// and the last one is in the failure.
impl<T, E: Display> Outcome for Result<T, E> {
    type Value = T;

    fn settled(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// Looks at `check` until it holds (`true`, `Some(value)` or `Ok(value)`)
/// and returns what it gave, pausing [`POLL`] between looks. Once `within`
/// has passed without it, panics with "{what} within {within:?}", followed
/// by what the last look saw when it said (an `Err`).
pub async fn eventually<F, Fut>(
    within: Duration,
    what: &str,
    mut check: F,
) -> <Fut::Output as Outcome>::Value
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Outcome,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let look = tokio::time::Instant::now();
        let seen = match check().await.settled() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() >= deadline {
            match seen {
                Some(seen) => panic!("{what} within {within:?}: {seen}"),
                None => panic!("{what} within {within:?}"),
            }
        }
        tokio::time::sleep(POLL.max(look.elapsed())).await;
    }
}

#[tokio::test]
async fn a_wait_returns_what_the_check_gave_once_it_holds() {
    let mut looks = 0;
    let mut look = || {
        looks += 1;
        let seen = looks;
        async move { (seen == 3).then_some(seen) }
    };
    assert_eq!(
        eventually(Duration::from_secs(5), "3 looks", &mut look).await,
        3
    );
    eventually(Duration::from_secs(5), "true", || async { true }).await;
}

#[tokio::test]
#[should_panic(expected = "the answer within 300ms: still 41")]
async fn a_wait_past_its_deadline_fails_with_what_the_last_look_saw() {
    eventually(Duration::from_millis(300), "the answer", || async {
        Err::<(), _>("still 41")
    })
    .await;
}
