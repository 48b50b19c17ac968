//! Keys of the buckets, `<group>.<id>`: a job id, a worker id, a pool or a
//! worker name within its group. Typed once, formatted and parsed here.

use std::fmt;

use crate::token::{validate_token, InvalidToken};

/// The key of a record of one group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    group: String,
    id: String,
}

impl Key {
    /// The key of `id` in `group` (both tokens, checked where they were read).
    pub fn new(group: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            id: id.into(),
        }
    }

    /// Reads `<group>.<id>`, both valid tokens.
    pub fn parse(text: &str) -> Result<Self, InvalidToken> {
        let (group, id) = text.split_once('.').unwrap_or((text, ""));
        validate_token("group", group)?;
        validate_token("id", id)?;
        Ok(Self::new(group, id))
    }

    /// Its group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Its id within the group.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.group, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_its_group_and_id_joined_by_a_dot_and_reads_back() {
        let key = Key::new("acme", "resize-42");
        assert_eq!(key.to_string(), "acme.resize-42");
        assert_eq!(Key::parse("acme.resize-42"), Ok(key));
    }

    #[test]
    fn a_key_without_two_valid_tokens_is_refused_naming_the_part() {
        assert_eq!(
            Key::parse("acme").map_err(|err| err.field),
            Err("id".into())
        );
        assert_eq!(
            Key::parse("a.b.c").map_err(|err| err.field),
            Err("id".into())
        );
        assert_eq!(
            Key::parse(".x").map_err(|err| err.field),
            Err("group".into())
        );
    }
}
