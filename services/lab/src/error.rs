//! Errors of the lab's commands: any error, kept with its sources, under
//! the sentence that says what was being done.

use std::fmt;

/// Any error, kept as the source of another.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the lab's commands give back.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// An error under the sentence that says what was being done.
#[derive(Debug)]
pub struct Doing {
    what: String,
    source: Option<BoxError>,
}

impl fmt::Display for Doing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for Doing {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// A failure that is its own sentence.
pub fn failure(what: impl fmt::Display) -> BoxError {
    Box::new(Doing {
        what: what.to_string(),
        source: None,
    })
}

/// Says what was being done when a result failed or an option was empty.
pub trait Context<T> {
    /// The failure under `what`.
    fn context(self, what: impl fmt::Display) -> Result<T>;
    /// The failure under what `what` makes, made only on failure.
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<BoxError>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|source| {
            Box::new(Doing {
                what: what.to_string(),
                source: Some(source.into()),
            }) as BoxError
        })
    }

    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|source| {
            Box::new(Doing {
                what: what().to_string(),
                source: Some(source.into()),
            }) as BoxError
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.ok_or_else(|| failure(what))
    }

    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| failure(what()))
    }
}

/// Returns a failure that is its own sentence, formatted.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::failure(format!($($arg)*)))
    };
}
