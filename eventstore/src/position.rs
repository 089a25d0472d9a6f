//! [`Position`]: a point in the global feed, and its opaque token form.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::{StoreError, shorten};

/// A point in the global feed: `(epoch, xid, pos)` of an event, compared in that order.
///
/// `xid` is the writing transaction's id (`pg_current_xact_id()`), `pos` a sequence number, and
/// `epoch` is bumped when the data moves to another cluster (see
/// `docs/adr/0002-gap-free-global-feed.md`). Outside the store treat it as opaque: its
/// [`Display`](fmt::Display) form is a URL-safe token that [`FromStr`] parses back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Restore epoch, compared first.
    pub epoch: u64,
    /// Transaction id (xid8) of the writing transaction.
    pub xid: u64,
    /// Sequence number of the event.
    pub pos: u64,
}

/// Token layout version, so the encoding can change without misreading old tokens.
const TOKEN_VERSION: u8 = 1;
const TOKEN_BYTES: usize = 1 + 3 * 8;
/// Length of a token: 25 bytes in unpadded base64.
const TOKEN_LEN: usize = 34;

impl Position {
    /// Before the first event: reading after it starts at the beginning of the feed.
    pub const START: Position = Position {
        epoch: 0,
        xid: 0,
        pos: 0,
    };

    /// The opaque token form (same as `to_string()`).
    pub fn to_token(&self) -> String {
        let mut bytes = [0_u8; TOKEN_BYTES];
        bytes[0] = TOKEN_VERSION;
        bytes[1..9].copy_from_slice(&self.epoch.to_be_bytes());
        bytes[9..17].copy_from_slice(&self.xid.to_be_bytes());
        bytes[17..25].copy_from_slice(&self.pos.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Parses a token made by [`Position::to_token`].
    ///
    /// # Errors
    /// [`StoreError::InvalidPosition`] for anything that is not such a token.
    pub fn parse(token: &str) -> Result<Self, StoreError> {
        let invalid = |reason| StoreError::InvalidPosition {
            token: shorten(token),
            reason,
        };
        if token.len() != TOKEN_LEN {
            return Err(invalid("a position token is 34 characters long"));
        }
        let mut bytes = [0_u8; TOKEN_BYTES];
        let decoded = URL_SAFE_NO_PAD
            .decode_slice(token, &mut bytes)
            .map_err(|_| invalid("not URL-safe base64"))?;
        if decoded != TOKEN_BYTES {
            return Err(invalid("wrong decoded length"));
        }
        if bytes[0] != TOKEN_VERSION {
            return Err(invalid("unknown token version"));
        }
        let word = |at: usize| {
            let mut w = [0_u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(w)
        };
        Ok(Self {
            epoch: word(1),
            xid: word(9),
            pos: word(17),
        })
    }

    /// The fields as the signed integers Postgres stores, saturating values no real
    /// position can reach (they still compare after every stored position).
    pub(crate) fn to_sql(self) -> (i64, i64, i64) {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        (clamp(self.epoch), clamp(self.xid), clamp(self.pos))
    }

    /// Builds a position from stored columns.
    pub(crate) fn from_sql(epoch: i64, xid: i64, pos: i64) -> Result<Self, StoreError> {
        let field = |name: &str, v: i64| {
            u64::try_from(v).map_err(|_| {
                StoreError::Corrupt(format!("negative {name} {v} in a stored position"))
            })
        };
        Ok(Self {
            epoch: field("epoch", epoch)?,
            xid: field("xid", xid)?,
            pos: field("pos", pos)?,
        })
    }
}

impl Default for Position {
    fn default() -> Self {
        Self::START
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_token())
    }
}

impl FromStr for Position {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_token())
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let token = String::deserialize(deserializer)?;
        Self::parse(&token).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_round_trips_and_is_smallest() {
        let token = Position::START.to_string();
        assert_eq!(token.len(), TOKEN_LEN);
        assert_eq!(token.parse::<Position>().ok(), Some(Position::START));
        assert!(
            Position::START
                < Position {
                    epoch: 0,
                    xid: 0,
                    pos: 1
                }
        );
    }

    #[test]
    fn epoch_orders_before_xid_and_xid_before_pos() {
        let a = Position {
            epoch: 1,
            xid: 900,
            pos: 5,
        };
        let b = Position {
            epoch: 2,
            xid: 3,
            pos: 1,
        };
        let c = Position {
            epoch: 2,
            xid: 3,
            pos: 2,
        };
        assert!(a < b && b < c);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let wrong_version = {
            let mut t = Position::START.to_token().into_bytes();
            t[0] = b'B';
            String::from_utf8(t).unwrap_or_default()
        };
        for bad in [
            "",
            "abc",
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            wrong_version.as_str(),
            "ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ",
        ] {
            assert!(
                matches!(
                    Position::parse(bad),
                    Err(StoreError::InvalidPosition { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn serde_uses_the_token() {
        let p = Position {
            epoch: 1,
            xid: 77,
            pos: 9,
        };
        let json = serde_json::to_string(&p).unwrap_or_default();
        assert_eq!(json, format!("\"{p}\""));
        assert_eq!(serde_json::from_str::<Position>(&json).ok(), Some(p));
    }
}
