//! The heads of streams this process appended to last, so the next append to such a stream can
//! chain its hashes here and send a plain insert (see ADR 0010).
//!
//! An entry is only a claim: the known-head statement inserts only if the stream's row at the
//! claimed version still has the claimed hash, and the `(stream_id, version)` key refuses it if
//! anyone wrote past that version. A stale or wrong entry therefore costs one refused statement,
//! never a wrong chain.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Heads kept per generation (see [`HeadCache`]). A head is 60-odd bytes plus its stream id, so
/// the two generations stay within a few MiB.
const MAX_HEADS: usize = 50_000;

/// A stream's last event as this process stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub version: u64,
    pub hash: [u8; 32],
    /// The event's `recorded_at`, in microseconds since 1970.
    pub recorded_at_micros: i64,
}

impl Head {
    /// The head at `version`, with its chain hash and `recorded_at`.
    pub(crate) fn new(version: u64, hash: [u8; 32], recorded_at: DateTime<Utc>) -> Self {
        Self {
            version,
            hash,
            recorded_at_micros: recorded_at.timestamp_micros(),
        }
    }
}

/// Known stream heads, shared by the clones of one store.
///
/// Bounded in two generations: new heads go into the current one; when it is full it becomes
/// the previous one and the one before is dropped. A head read from the previous generation
/// moves back into the current one, so streams in use stay known (an approximation of least
/// recently used, without a list to maintain).
#[derive(Debug, Default)]
pub(crate) struct HeadCache {
    generations: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<String, Head>,
    previous: HashMap<String, Head>,
}

impl Generations {
    fn insert(&mut self, stream: String, head: Head) {
        if self.current.len() >= MAX_HEADS {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(stream, head);
    }
}

impl HeadCache {
    /// The head this process last stored for `stream`, if it still remembers it.
    pub(crate) fn get(&self, stream: &str) -> Option<Head> {
        let mut g = self.generations.lock().ok()?;
        if let Some(head) = g.current.get(stream) {
            return Some(*head);
        }
        let (stream, head) = g.previous.remove_entry(stream)?;
        g.insert(stream, head);
        Some(head)
    }

    /// Remembers `head` for `stream`, unless a later version is known already (two appends to
    /// one stream can finish in either order). The same version replaces what is known: the
    /// newer sighting wins over one from a transaction that may have rolled back.
    pub(crate) fn put(&self, stream: &str, head: Head) {
        let Ok(mut g) = self.generations.lock() else {
            return;
        };
        if let Some(known) = g.current.get_mut(stream) {
            if known.version <= head.version {
                *known = head;
            }
            return;
        }
        let head = match g.previous.remove(stream) {
            Some(known) if known.version > head.version => known,
            _ => head,
        };
        g.insert(stream.to_owned(), head);
    }

    /// Forgets `stream`'s head: an append found it stale.
    pub(crate) fn forget(&self, stream: &str) {
        if let Ok(mut g) = self.generations.lock() {
            g.current.remove(stream);
            g.previous.remove(stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(version: u64) -> Head {
        Head {
            version,
            hash: [u8::try_from(version % 256).unwrap_or(0); 32],
            recorded_at_micros: i64::try_from(version).unwrap_or(0),
        }
    }

    #[test]
    fn keeps_the_latest_head_and_forgets_on_request() {
        let cache = HeadCache::default();
        assert_eq!(cache.get("s"), None);
        cache.put("s", head(3));
        cache.put("s", head(2));
        assert_eq!(cache.get("s"), Some(head(3)));
        cache.put("s", head(5));
        assert_eq!(cache.get("s"), Some(head(5)));
        let again = Head {
            hash: [9; 32],
            ..head(5)
        };
        cache.put("s", again);
        assert_eq!(cache.get("s"), Some(again));
        cache.forget("s");
        assert_eq!(cache.get("s"), None);
    }

    #[test]
    fn stays_bounded_and_keeps_the_streams_in_use() {
        let cache = HeadCache::default();
        cache.put("hot", head(1));
        for i in 0..MAX_HEADS * 3 {
            cache.put(&format!("s{i}"), head(1));
            // A stream read now and then survives any number of others.
            if i % (MAX_HEADS / 2) == 0 {
                assert_eq!(cache.get("hot"), Some(head(1)), "after {i} others");
            }
        }
        let (current, previous) = cache
            .generations
            .lock()
            .map(|g| (g.current.len(), g.previous.len()))
            .unwrap_or((usize::MAX, usize::MAX));
        assert!(
            current <= MAX_HEADS && previous <= MAX_HEADS,
            "{current} + {previous} heads kept"
        );
        assert_eq!(cache.get("hot"), Some(head(1)));
        assert_eq!(cache.get("s0"), None, "the oldest are dropped");
        assert_eq!(cache.get(&format!("s{}", MAX_HEADS * 3 - 1)), Some(head(1)));
    }

    #[test]
    fn a_head_in_the_previous_generation_is_not_replaced_by_an_older_one() {
        let cache = HeadCache::default();
        cache.put("s", head(5));
        for i in 0..MAX_HEADS {
            cache.put(&format!("x{i}"), head(1));
        }
        cache.put("s", head(4));
        assert_eq!(cache.get("s"), Some(head(5)));
        cache.forget("s");
        assert_eq!(cache.get("s"), None);
    }
}
