//! Validated names: the deployment [`Namespace`] and event [`StreamId`]s.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{StoreError, shorten};

/// A deployment's namespace: `^[a-z][a-z0-9_]{0,30}$`.
///
/// It prefixes everything the deployment owns: the Postgres schema its events live in, its
/// NOTIFY channel, and (in other crates) its NATS subjects and streams and its Redis keys, so
/// several deployments or parallel tests can share one Postgres, NATS and Redis.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Namespace(String);

impl Namespace {
    /// Parses a namespace.
    ///
    /// # Errors
    /// [`StoreError::InvalidNamespace`] when the value does not match the pattern, or is
    /// `public`, `information_schema` or starts with `pg_` (names Postgres keeps for itself).
    pub fn parse(value: &str) -> Result<Self, StoreError> {
        let invalid = |reason| StoreError::InvalidNamespace {
            value: shorten(value),
            reason,
        };
        let mut chars = value.chars();
        match chars.next() {
            None => return Err(invalid("must not be empty")),
            Some(c) if !c.is_ascii_lowercase() => {
                return Err(invalid("must start with a lowercase ASCII letter"));
            }
            Some(_) => {}
        }
        if value.len() > 31 {
            return Err(invalid("must be at most 31 characters"));
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(invalid(
                "may hold only lowercase ASCII letters, digits and underscores",
            ));
        }
        if value == "public" || value == "information_schema" || value.starts_with("pg_") {
            return Err(invalid("is reserved by PostgreSQL"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The namespace as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The LISTEN/NOTIFY channel on which the store announces new commits.
    pub fn notify_channel(&self) -> String {
        format!("{}_events", self.0)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Namespace {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Namespace {
    type Error = StoreError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Namespace> for String {
    fn from(value: Namespace) -> Self {
        value.0
    }
}

impl AsRef<str> for Namespace {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The id of an event stream: `^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$`,
/// for example `rec-recXXXXXXXXXXXXXX` or `base-appXXXXXXXXXXXXXX`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    /// The longest stream id accepted, in bytes (all characters are ASCII).
    pub const MAX_LEN: usize = 200;

    /// Parses a stream id.
    ///
    /// # Errors
    /// [`StoreError::InvalidStreamId`] when the value does not match the pattern.
    pub fn parse(value: &str) -> Result<Self, StoreError> {
        let invalid = |reason| StoreError::InvalidStreamId {
            value: shorten(value),
            reason,
        };
        let mut chars = value.chars();
        match chars.next() {
            None => return Err(invalid("must not be empty")),
            Some(c) if !c.is_ascii_alphanumeric() => {
                return Err(invalid("must start with an ASCII letter or digit"));
            }
            Some(_) => {}
        }
        if value.len() > Self::MAX_LEN {
            return Err(invalid("must be at most 200 characters"));
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')) {
            return Err(invalid(
                "may hold only ASCII letters, digits and the characters _ . : -",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for StreamId {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for StreamId {
    type Error = StoreError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<StreamId> for String {
    fn from(value: StreamId) -> Self {
        value.0
    }
}

impl AsRef<str> for StreamId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_accepts_the_pattern_and_rejects_the_rest() {
        for ok in [
            "a",
            "pyairtable",
            "t_0123456789abcdef",
            "a234567890123456789012345678901",
        ] {
            assert_eq!(
                Namespace::parse(ok).map(|n| n.to_string()).ok().as_deref(),
                Some(ok)
            );
        }
        for bad in [
            "",
            "A",
            "1abc",
            "_abc",
            "ab-c",
            "abc ",
            "a2345678901234567890123456789012",
            "public",
            "pg_x",
            "information_schema",
            "é",
        ] {
            assert!(
                matches!(
                    Namespace::parse(bad),
                    Err(StoreError::InvalidNamespace { .. })
                ),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn stream_id_accepts_the_pattern_and_rejects_the_rest() {
        let longest = "a".repeat(200);
        for ok in [
            "rec-recABCDEFGHIJKLMN",
            "base-app1",
            "0",
            "a_b.c:d-e",
            longest.as_str(),
        ] {
            assert_eq!(
                StreamId::parse(ok).map(|s| s.to_string()).ok().as_deref(),
                Some(ok)
            );
        }
        let too_long = "a".repeat(201);
        for bad in ["", "-a", ".a", "a b", "a/b", "a\0", "ä", too_long.as_str()] {
            assert!(
                matches!(
                    StreamId::parse(bad),
                    Err(StoreError::InvalidStreamId { .. })
                ),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<StreamId>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<StreamId>("\"not ok\"").is_err());
        assert!(serde_json::from_str::<Namespace>("\"Bad\"").is_err());
    }
}
