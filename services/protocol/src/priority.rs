//! Job priorities: a job of a higher priority starts before the waiting
//! jobs of lower ones in the same queue. Each priority of a queue has its
//! own subject and consumer; workers take from the highest that has jobs.

use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How urgent a job is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Before everything else: `shoal.jobs.<group>.<queue>.high`.
    High,
    /// The default: `shoal.jobs.<group>.<queue>`.
    #[default]
    Normal,
    /// When nothing else waits: `shoal.jobs.<group>.<queue>.low`.
    Low,
}

impl Priority {
    /// Highest first: the order in which workers look for jobs.
    pub const ORDER: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// The last subject token of the priority, if it has one.
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            Self::High => Some("high"),
            Self::Normal => None,
            Self::Low => Some("low"),
        }
    }

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        self.suffix().unwrap_or("normal")
    }
}

impl FromStr for Priority {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "high" => Ok(Self::High),
            "normal" => Ok(Self::Normal),
            "low" => Ok(Self::Low),
            other => Err(format!("priority: `{other}` is not high, normal or low")),
        }
    }
}
