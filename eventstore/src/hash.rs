//! The per-stream hash chain and its verification.
//!
//! ```text
//! digest  = sha256("pyairtable.event.v1" 0x00
//!                  || lp(stream_id) || event_id (16 bytes) || lp(event_type)
//!                  || schema_version (i32 BE) || lp(payload JSON text) || lp(metadata JSON text))
//! hash    = sha256(prev_hash (32 bytes) || version (i64 BE) || recorded_at (µs since 1970, i64 BE)
//!                  || digest)
//! lp(x)   = byte length of x (u64 BE) || x
//! ```
//!
//! Every field is length-prefixed or fixed-width, so no two different events share canonical
//! bytes. The JSON texts are exactly the stored `json` column text (Postgres `json` keeps its
//! input verbatim), so verification hashes the stored bytes and depends on no normalisation.
//! The client computes `digest`. The chain step is done by the client too when it knows the
//! stream's head (ADR 0010; the statement checks that head), and by the append statement
//! otherwise. Verification recomputes both here.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;
use uuid::Uuid;

/// The previous hash of a stream's first event.
pub const GENESIS: [u8; 32] = [0; 32];

const DOMAIN: &[u8] = b"pyairtable.event.v1\0";

/// The content of one event, as stored, that its hash covers.
pub(crate) struct EventContent<'a> {
    pub stream_id: &'a str,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: i32,
    pub payload_json: &'a str,
    pub metadata_json: &'a str,
}

fn length_prefixed(hasher: &mut Sha256, bytes: &[u8]) {
    // usize always fits in u64 on supported targets.
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// The content digest of an event.
pub(crate) fn content_digest(content: &EventContent<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    length_prefixed(&mut hasher, content.stream_id.as_bytes());
    hasher.update(content.event_id.as_bytes());
    length_prefixed(&mut hasher, content.event_type.as_bytes());
    hasher.update(content.schema_version.to_be_bytes());
    length_prefixed(&mut hasher, content.payload_json.as_bytes());
    length_prefixed(&mut hasher, content.metadata_json.as_bytes());
    hasher.finalize().into()
}

/// One chain step: the hash of an event given its predecessor's hash.
pub(crate) fn chain(
    prev_hash: &[u8; 32],
    version: i64,
    recorded_at_micros: i64,
    digest: &[u8; 32],
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(version.to_be_bytes());
    hasher.update(recorded_at_micros.to_be_bytes());
    hasher.update(digest);
    hasher.finalize().into()
}

/// The result of verifying one stream's hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The stream.
    pub stream: String,
    /// How many stored events were read.
    pub events_checked: u64,
    /// The first link that does not hold, if any.
    pub first_broken: Option<BrokenLink>,
}

impl VerifyReport {
    /// True when the whole chain holds.
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// A link of a hash chain that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// The version at which the chain breaks (for a gap: the version found).
    pub version: u64,
    /// Why.
    pub reason: BreakReason,
}

/// Why a link is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreakReason {
    /// The event's content or recorded time does not hash to its stored hash: the row was
    /// altered after it was written.
    HashMismatch,
    /// The stored previous hash is not the hash of the event before: a row was altered,
    /// removed or inserted before this one.
    PrevHashMismatch,
    /// Versions are not contiguous from 1: events are missing.
    VersionGap {
        /// The version that should have come next.
        expected: u64,
    },
    /// A stored hash is not 32 bytes.
    MalformedHash,
}

impl fmt::Display for BreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HashMismatch => f.write_str("content does not match its hash"),
            Self::PrevHashMismatch => {
                f.write_str("previous hash does not match the hash of the event before")
            }
            Self::VersionGap { expected } => write!(f, "version gap: expected version {expected}"),
            Self::MalformedHash => f.write_str("stored hash is not 32 bytes"),
        }
    }
}

/// One stored row, as verification reads it.
pub(crate) struct StoredLink<'a> {
    pub version: i64,
    pub recorded_at_micros: i64,
    pub prev_hash: &'a [u8],
    pub hash: &'a [u8],
    pub content: EventContent<'a>,
}

/// Walks one stream's rows in version order and remembers the first broken link.
pub(crate) struct ChainVerifier {
    stream: String,
    checked: u64,
    next_version: u64,
    prev: [u8; 32],
    broken: Option<BrokenLink>,
}

impl ChainVerifier {
    pub(crate) fn new(stream: String) -> Self {
        Self {
            stream,
            checked: 0,
            next_version: 1,
            prev: GENESIS,
            broken: None,
        }
    }

    pub(crate) fn stream(&self) -> &str {
        &self.stream
    }

    pub(crate) fn push(&mut self, row: &StoredLink<'_>) {
        self.checked += 1;
        if self.broken.is_some() {
            return;
        }
        let version = u64::try_from(row.version).unwrap_or(0);
        match self.check(version, row) {
            Ok(hash) => {
                self.prev = hash;
                self.next_version += 1;
            }
            Err(reason) => self.broken = Some(BrokenLink { version, reason }),
        }
    }

    fn check(&self, version: u64, row: &StoredLink<'_>) -> Result<[u8; 32], BreakReason> {
        if version != self.next_version {
            return Err(BreakReason::VersionGap {
                expected: self.next_version,
            });
        }
        let (Ok(stored_prev), Ok(stored_hash)) = (
            <[u8; 32]>::try_from(row.prev_hash),
            <[u8; 32]>::try_from(row.hash),
        ) else {
            return Err(BreakReason::MalformedHash);
        };
        if stored_prev != self.prev {
            return Err(BreakReason::PrevHashMismatch);
        }
        let digest = content_digest(&row.content);
        if chain(&self.prev, row.version, row.recorded_at_micros, &digest) != stored_hash {
            return Err(BreakReason::HashMismatch);
        }
        Ok(stored_hash)
    }

    pub(crate) fn finish(self) -> VerifyReport {
        VerifyReport {
            stream: self.stream,
            events_checked: self.checked,
            first_broken: self.broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content<'a>(payload: &'a str, event_type: &'a str) -> EventContent<'a> {
        EventContent {
            stream_id: "s-1",
            event_id: Uuid::nil(),
            event_type,
            schema_version: 1,
            payload_json: payload,
            metadata_json: "{}",
        }
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        // Moving a byte from one field to the next must change the digest.
        let a = content("{\"a\":1}", "Ab");
        let b = EventContent {
            event_type: "A",
            payload_json: "b{\"a\":1}",
            ..content("", "")
        };
        assert_ne!(content_digest(&a), content_digest(&b));
    }

    #[test]
    fn verifier_reports_the_first_broken_link() {
        let d1 = content_digest(&content("{}", "T"));
        let h1 = chain(&GENESIS, 1, 10, &d1);
        let d2 = content_digest(&content("{\"x\":2}", "T"));
        let h2 = chain(&h1, 2, 10, &d2);

        let mut ok = ChainVerifier::new("s-1".into());
        ok.push(&StoredLink {
            version: 1,
            recorded_at_micros: 10,
            prev_hash: &GENESIS,
            hash: &h1,
            content: content("{}", "T"),
        });
        ok.push(&StoredLink {
            version: 2,
            recorded_at_micros: 10,
            prev_hash: &h1,
            hash: &h2,
            content: content("{\"x\":2}", "T"),
        });
        assert!(ok.finish().is_intact());

        let mut bad = ChainVerifier::new("s-1".into());
        bad.push(&StoredLink {
            version: 1,
            recorded_at_micros: 10,
            prev_hash: &GENESIS,
            hash: &h1,
            content: content("{}", "T"),
        });
        bad.push(&StoredLink {
            version: 2,
            recorded_at_micros: 10,
            prev_hash: &h1,
            hash: &h2,
            content: content("{\"x\":3}", "T"),
        });
        let report = bad.finish();
        assert_eq!(report.events_checked, 2);
        assert_eq!(
            report.first_broken,
            Some(BrokenLink {
                version: 2,
                reason: BreakReason::HashMismatch
            })
        );
    }
}
