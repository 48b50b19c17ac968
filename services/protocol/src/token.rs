//! Validation of the tokens that build subjects and keys: groups, queues, ids.

use thiserror::Error;

/// A token that cannot be used in a subject or a key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {}", self.reason())]
pub struct InvalidToken {
    /// The name of the field that carried the token.
    pub field: String,
    /// The value that was refused.
    pub value: String,
}

impl InvalidToken {
    /// Why the value was refused, without the field's name.
    pub fn reason(&self) -> String {
        format!(
            "`{}` is not a valid token (use letters, digits, `_` and `-` only)",
            self.value
        )
    }
}

/// Longest token accepted, so that subjects and keys stay well below NATS limits.
pub const MAX_TOKEN_LEN: usize = 128;

/// Checks that `value` is a non-empty `[A-Za-z0-9_-]+` token of bounded length.
pub fn validate_token(field: &str, value: &str) -> Result<(), InvalidToken> {
    let valid = !value.is_empty()
        && value.len() <= MAX_TOKEN_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(InvalidToken {
            field: field.to_string(),
            value: value.chars().take(MAX_TOKEN_LEN).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_digits_underscore_and_dash_are_tokens() {
        assert!(validate_token("group", "prod_eu-1").is_ok());
    }

    #[test]
    fn dots_wildcards_spaces_and_empty_are_refused_with_the_field() {
        for bad in ["a.b", "*", ">", "a b", "", "é"] {
            let err = validate_token("queue", bad).expect_err(bad);
            assert!(err.to_string().starts_with("queue:"), "{err}");
        }
    }
}
