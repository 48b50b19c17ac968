//! Durations as people write them (`90s`, `5m`, `1h30m`, `7d`, `250ms`).

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// A duration written as a number and a unit, several of them in a row if needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

/// The longest duration any field takes: ten years. Longer ones are refused
/// where they are read, so no time arithmetic on them can overflow.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(3650 * 86_400);

/// A duration that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{0}` is not a duration (write e.g. 250ms, 90s, 5m, 1h30m or 7d, at most 3650d)")]
pub struct InvalidDuration(pub String);

impl Duration {
    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// A duration of whole milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }

    /// The standard library duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }
}

impl FromStr for Duration {
    type Err = InvalidDuration;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidDuration(text.to_string());
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(invalid());
        }
        let mut total = std::time::Duration::ZERO;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(invalid());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit_millis: u64 = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(invalid()),
            };
            rest = &rest[unit_len..];
            let millis = number.checked_mul(unit_millis).ok_or_else(invalid)?;
            total = total
                .checked_add(std::time::Duration::from_millis(millis))
                .ok_or_else(invalid)?;
        }
        if total > MAX_DURATION {
            return Err(invalid());
        }
        Ok(Self(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis == 0 {
            return write!(f, "0s");
        }
        let units = [
            ("d", 86_400_000u128),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ];
        let mut rest = millis;
        for (unit, size) in units {
            if rest >= size {
                write!(f, "{}{}", rest / size, unit)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: numbers with units ms, s, m, h, d, e.g. `90s` or `1h30m`.",
            "pattern": "^([0-9]+(ms|s|m|h|d))+$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_longer_than_ten_years_is_refused() {
        assert!("3650d".parse::<Duration>().is_ok());
        assert!("3651d".parse::<Duration>().is_err());
        assert!("3000000d".parse::<Duration>().is_err());
        assert!("18446744073709551615ms".parse::<Duration>().is_err());
    }

    fn parse(text: &str) -> std::time::Duration {
        text.parse::<Duration>().expect(text).get()
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse("250ms").as_millis(), 250);
        assert_eq!(parse("90s").as_secs(), 90);
        assert_eq!(parse("1h30m").as_secs(), 5_400);
        assert_eq!(parse("7d").as_secs(), 604_800);
    }

    #[test]
    fn durations_print_back_to_what_they_read() {
        for text in ["250ms", "1m30s", "1h30m", "7d", "1m1s500ms"] {
            assert_eq!(text.parse::<Duration>().expect(text).to_string(), text);
        }
    }

    #[test]
    fn nonsense_is_not_a_duration() {
        for bad in [
            "",
            "10",
            "s",
            "5 minutes",
            "1y",
            "-1s",
            "99999999999999999999d",
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
    }
}
