//! Identifiers in Airtable's shape: a three-letter prefix plus 14 characters from `[A-Za-z0-9]`.
//!
//! Airtable clients (pyairtable, airtable.js) check the prefix of the ids they are handed, so
//! PyAirtable keeps the same shape. The domain never generates randomness itself: the command
//! layer draws 14 random characters and builds an id with [`Id::from_suffix`].

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of characters after the prefix.
pub const SUFFIX_LEN: usize = 14;

/// The alphabet ids are drawn from (62 characters, case-sensitive like Airtable's).
pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A kind of entity that has an id with a fixed three-letter prefix.
pub trait IdKind: Copy + Clone + fmt::Debug + PartialEq + Eq + std::hash::Hash + Ord {
    /// The three-letter prefix, e.g. `rec`.
    const PREFIX: &'static str;
    /// Human name used in error messages, e.g. `record`.
    const NAME: &'static str;
}

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {kind} id {value:?}: expected `{prefix}` followed by {SUFFIX_LEN} letters or digits"
)]
pub struct InvalidId {
    /// The kind of id expected (`record`, `table`, ...).
    pub kind: &'static str,
    /// The prefix expected.
    pub prefix: &'static str,
    /// The rejected input (truncated to 64 characters).
    pub value: String,
}

/// A typed id: the prefix is checked once at the boundary, so the rest of the code cannot mix
/// a table id with a field id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id<K: IdKind> {
    value: String,
    kind: PhantomData<K>,
}

impl<K: IdKind> Id<K> {
    /// Parses an id, checking prefix, length and alphabet.
    ///
    /// # Errors
    /// [`InvalidId`] naming the expected kind and the rejected value.
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let ok = s.len() == K::PREFIX.len() + SUFFIX_LEN
            && s.starts_with(K::PREFIX)
            && s.as_bytes()[K::PREFIX.len()..]
                .iter()
                .all(u8::is_ascii_alphanumeric);
        if ok {
            Ok(Self {
                value: s.to_owned(),
                kind: PhantomData,
            })
        } else {
            Err(InvalidId {
                kind: K::NAME,
                prefix: K::PREFIX,
                value: s.chars().take(64).collect(),
            })
        }
    }

    /// Builds an id from 14 bytes of entropy, mapping each byte onto [`ALPHABET`].
    ///
    /// The modulo bias (256 is not a multiple of 62) is irrelevant for identifiers: 14 characters
    /// still carry more than 80 bits.
    #[must_use]
    pub fn from_suffix(entropy: [u8; SUFFIX_LEN]) -> Self {
        let mut value = String::with_capacity(K::PREFIX.len() + SUFFIX_LEN);
        value.push_str(K::PREFIX);
        for b in entropy {
            value.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
        }
        Self {
            value,
            kind: PhantomData,
        }
    }

    /// The id as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl<K: IdKind> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl<K: IdKind> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl<K: IdKind> std::str::FromStr for Id<K> {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<K: IdKind> Serialize for Id<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.value)
    }
}

impl<'de, K: IdKind> Deserialize<'de> for Id<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl<K: IdKind> schemars::JsonSchema for Id<K> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Id")
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": format!("A {} id: `{}` followed by {SUFFIX_LEN} letters or digits.", K::NAME, K::PREFIX),
            "pattern": format!("^{}[A-Za-z0-9]{{{SUFFIX_LEN}}}$", K::PREFIX),
        })
    }
}

macro_rules! id_kind {
    ($(#[$doc:meta])* $kind:ident, $alias:ident, $prefix:literal, $name:literal) => {
        $(#[$doc])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $kind;
        impl IdKind for $kind {
            const PREFIX: &'static str = $prefix;
            const NAME: &'static str = $name;
        }
        $(#[$doc])*
        pub type $alias = Id<$kind>;
    };
}

id_kind!(/// A user (`usr…`).
    UserKind, UserId, "usr", "user");
id_kind!(/// A workspace (`wsp…`).
    WorkspaceKind, WorkspaceId, "wsp", "workspace");
id_kind!(/// A base (`app…`).
    BaseKind, BaseId, "app", "base");
id_kind!(/// A table (`tbl…`).
    TableKind, TableId, "tbl", "table");
id_kind!(/// A field (`fld…`).
    FieldKind, FieldId, "fld", "field");
id_kind!(/// A record (`rec…`).
    RecordKind, RecordId, "rec", "record");
id_kind!(/// A view (`viw…`).
    ViewKind, ViewId, "viw", "view");
id_kind!(/// A record comment (`com…`).
    CommentKind, CommentId, "com", "comment");
id_kind!(/// An API token (`pat…`); the secret that goes with it is separate and never stored in clear.
    TokenKind, TokenId, "pat", "API token");
id_kind!(/// A select option (`sel…`).
    ChoiceKind, ChoiceId, "sel", "choice");
id_kind!(/// An attachment (`att…`).
    AttachmentKind, AttachmentId, "att", "attachment");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_checks_prefix_length_and_alphabet() {
        assert!(RecordId::parse("rec0123456789abcd").is_ok());
        assert!(RecordId::parse("tbl0123456789abcd").is_err());
        assert!(RecordId::parse("rec0123456789abc").is_err());
        assert!(RecordId::parse("rec0123456789ab-d").is_err());
        let err = TableId::parse("nope").unwrap_err();
        assert_eq!(err.kind, "table");
        assert!(err.to_string().contains("tbl"));
    }

    proptest! {
        #[test]
        fn from_suffix_round_trips(bytes in proptest::array::uniform14(any::<u8>())) {
            let id = FieldId::from_suffix(bytes);
            prop_assert_eq!(FieldId::parse(id.as_str()).unwrap(), id.clone());
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<FieldId>(&json).unwrap(), id);
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = BaseId::parse(&s);
        }
    }
}
