//! Points in time on the wire: RFC 3339 text in UTC.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A point in time, written as RFC 3339 (`2026-11-24T05:31:10.123456789Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub OffsetDateTime);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc())
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(self) -> i128 {
        self.0.unix_timestamp_nanos()
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(value: OffsetDateTime) -> Self {
        Self(value.to_offset(time::UtcOffset::UTC))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(text) => f.write_str(&text),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.0.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

/// A time that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTimestamp {
    /// Not RFC 3339 at all.
    #[error("`{text}` is not an RFC 3339 time: {reason}")]
    Format {
        /// The text given.
        text: String,
        /// Why it is no time.
        reason: String,
    },
    /// Outside the years Shoal takes.
    #[error("`{0}` is outside the years 1970 to 9000")]
    OutOfRange(String),
}

/// The first and last years a time on the wire may fall in: far enough from
/// the ends of what the time library holds that adding any duration Shoal
/// takes (ten years at most) cannot overflow.
const YEARS: std::ops::RangeInclusive<i32> = 1970..=9000;

impl std::str::FromStr for Timestamp {
    type Err = InvalidTimestamp;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parsed =
            OffsetDateTime::parse(text, &Rfc3339).map_err(|err| InvalidTimestamp::Format {
                text: text.to_string(),
                reason: err.to_string(),
            })?;
        let utc = parsed
            .checked_to_offset(time::UtcOffset::UTC)
            .filter(|utc| YEARS.contains(&utc.year()))
            .ok_or_else(|| InvalidTimestamp::OutOfRange(text.to_string()))?;
        Ok(Self(utc))
    }
}

impl Timestamp {
    /// This time plus `delay`, or `None` past what a timestamp holds.
    pub fn checked_add(self, delay: std::time::Duration) -> Option<Self> {
        let delay = time::Duration::try_from(delay).ok()?;
        self.0
            .checked_add(delay)
            .filter(|sum| YEARS.contains(&sum.year()))
            .map(Self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_past_the_years_taken_is_refused_without_panicking() {
        for text in [
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:59:59Z",
            "0000-01-01T00:00:00+01:00",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(
                matches!(
                    text.parse::<Timestamp>(),
                    Err(InvalidTimestamp::OutOfRange(_))
                ),
                "{text}"
            );
        }
        let ok: Timestamp = "2026-12-01T10:00:00+02:00".parse().expect("valid");
        assert_eq!(ok.to_string(), "2026-12-01T08:00:00Z");
    }

    #[test]
    fn adding_a_delay_past_the_years_taken_gives_none() {
        let late: Timestamp = "8999-12-31T00:00:00Z".parse().expect("valid");
        assert!(late
            .checked_add(std::time::Duration::from_secs(3650 * 86_400))
            .is_none());
        assert!(late
            .checked_add(std::time::Duration::from_secs(60))
            .is_some());
    }
}
