//! The heads of streams this process appended to last, so the next append to such a stream can
//! chain its hashes here and send a plain insert (see ADR 0010).
//!
//! An entry is only a claim: the known-head statement inserts only if the stream's row at the
//! claimed version still has the claimed hash, and the `(stream_id, version)` key refuses it if
//! anyone wrote past that version. A stale or wrong entry therefore costs one refused statement,
//! never a wrong chain.

use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept before the cache starts over. A head is 60-odd bytes plus its stream id, so
/// this bounds the cache to a few MiB; streams written again after a reset take the general
/// statement once.
const MAX_HEADS: usize = 50_000;

/// A stream's last event as this process stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub version: u64,
    pub hash: [u8; 32],
    /// The event's `recorded_at`, in microseconds since 1970.
    pub recorded_at_micros: i64,
}

/// Known stream heads, shared by the clones of one store.
#[derive(Debug, Default)]
pub(crate) struct HeadCache {
    heads: Mutex<HashMap<String, Head>>,
}

impl HeadCache {
    /// The head this process last stored for `stream`, if it still remembers it.
    pub(crate) fn get(&self, stream: &str) -> Option<Head> {
        self.heads.lock().ok()?.get(stream).copied()
    }

    /// Remembers `head` for `stream`, unless a later version is known already (two appends to
    /// one stream can finish in either order). The same version replaces what is known: the
    /// newer sighting wins over one from a transaction that may have rolled back.
    pub(crate) fn put(&self, stream: &str, head: Head) {
        let Ok(mut heads) = self.heads.lock() else {
            return;
        };
        if let Some(known) = heads.get_mut(stream) {
            if known.version <= head.version {
                *known = head;
            }
            return;
        }
        if heads.len() >= MAX_HEADS {
            heads.clear();
        }
        heads.insert(stream.to_owned(), head);
    }

    /// Forgets `stream`'s head: an append found it stale.
    pub(crate) fn forget(&self, stream: &str) {
        if let Ok(mut heads) = self.heads.lock() {
            heads.remove(stream);
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
    fn stays_bounded() {
        let cache = HeadCache::default();
        for i in 0..=MAX_HEADS {
            cache.put(&format!("s{i}"), head(1));
        }
        let len = cache.heads.lock().map(|h| h.len()).unwrap_or(usize::MAX);
        assert!(len <= MAX_HEADS, "{len} heads kept");
        assert_eq!(cache.get(&format!("s{MAX_HEADS}")), Some(head(1)));
    }
}
