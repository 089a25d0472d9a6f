//! Checks an append before any I/O and turns it into the append function's arguments.

use std::collections::HashSet;

use serde_json::Value;
use uuid::Uuid;

use crate::config::StoreConfig;
use crate::envelope::{ExpectedVersion, Metadata, StreamWrite};
use crate::error::{StoreError, shorten};
use crate::hash::{EventContent, content_digest};

/// Deepest JSON nesting accepted (serde_json's own parser stops at 128 too).
pub(crate) const MAX_JSON_DEPTH: usize = 128;

/// Longest event type, in bytes.
const MAX_EVENT_TYPE_LEN: usize = 200;

/// An append, validated and serialised: the arguments of `append_events`.
#[derive(Debug)]
pub(crate) struct PreparedAppend {
    pub streams: Vec<String>,
    pub expected: Vec<ExpectedVersion>,
    pub expected_sql: Vec<Option<i64>>,
    pub counts: Vec<i32>,
    /// Index of each write's first event in the flat event arrays.
    pub offsets: Vec<i32>,
    pub event_ids: Vec<Uuid>,
    pub types: Vec<String>,
    pub schema_versions: Vec<i32>,
    pub payloads: Vec<String>,
    pub metadata: String,
    pub digests: Vec<[u8; 32]>,
}

impl PreparedAppend {
    /// Validates `writes` and serialises them.
    ///
    /// Rejects, before anything is sent: an empty batch or write, a stream twice, an event id
    /// twice, an invalid event type, JSON Postgres cannot store (NUL characters, nesting over
    /// 128), an event over `max_event_bytes` and a batch over `max_batch_bytes`.
    pub(crate) fn new(
        writes: Vec<StreamWrite>,
        metadata: &Metadata,
        config: &StoreConfig,
    ) -> Result<Self, StoreError> {
        if writes.is_empty() || writes.iter().any(|w| w.events.is_empty()) {
            return Err(StoreError::EmptyBatch);
        }
        let metadata_value =
            serde_json::to_value(metadata).map_err(|_| StoreError::InvalidJson {
                event_id: None,
                field: "metadata",
                reason: "cannot be serialised",
            })?;
        let metadata_json = json_text(&metadata_value, None, "metadata")?;

        let total: usize = writes.iter().map(|w| w.events.len()).sum();
        let mut prepared = Self {
            streams: Vec::with_capacity(writes.len()),
            expected: Vec::with_capacity(writes.len()),
            expected_sql: Vec::with_capacity(writes.len()),
            counts: Vec::with_capacity(writes.len()),
            offsets: Vec::with_capacity(writes.len()),
            event_ids: Vec::with_capacity(total),
            types: Vec::with_capacity(total),
            schema_versions: Vec::with_capacity(total),
            payloads: Vec::with_capacity(total),
            metadata: String::new(),
            digests: Vec::with_capacity(total),
        };
        let mut seen_streams = HashSet::with_capacity(writes.len());
        let mut seen_ids = HashSet::with_capacity(total);
        let mut batch_bytes = 0_usize;

        for write in writes {
            let stream = String::from(write.stream);
            if !seen_streams.insert(stream.clone()) {
                return Err(StoreError::DuplicateStreamInBatch { stream });
            }
            let too_many = |_| StoreError::BatchTooLarge {
                size: total,
                limit: i32::MAX as usize,
            };
            let count = i32::try_from(write.events.len()).map_err(too_many)?;
            let offset = i32::try_from(prepared.event_ids.len()).map_err(too_many)?;
            for event in write.events {
                if !seen_ids.insert(event.event_id) {
                    return Err(StoreError::DuplicateEventInBatch {
                        event_id: event.event_id,
                    });
                }
                check_event_type(&event.event_type).map_err(|reason| {
                    StoreError::InvalidEventType {
                        event_id: event.event_id,
                        value: shorten(&event.event_type),
                        reason,
                    }
                })?;
                let payload = json_text(&event.payload, Some(event.event_id), "payload")?;
                let size = payload.len() + metadata_json.len() + event.event_type.len();
                if size > config.max_event_bytes {
                    return Err(StoreError::EventTooLarge {
                        event_id: event.event_id,
                        size,
                        limit: config.max_event_bytes,
                    });
                }
                batch_bytes += size;
                if batch_bytes > config.max_batch_bytes {
                    return Err(StoreError::BatchTooLarge {
                        size: batch_bytes,
                        limit: config.max_batch_bytes,
                    });
                }
                prepared.digests.push(content_digest(&EventContent {
                    stream_id: &stream,
                    event_id: event.event_id,
                    event_type: &event.event_type,
                    schema_version: event.schema_version,
                    payload_json: &payload,
                    metadata_json: &metadata_json,
                }));
                prepared.event_ids.push(event.event_id);
                prepared.types.push(event.event_type);
                prepared.schema_versions.push(event.schema_version);
                prepared.payloads.push(payload);
            }
            prepared.streams.push(stream);
            prepared.expected.push(write.expected);
            prepared.expected_sql.push(write.expected.to_sql());
            prepared.counts.push(count);
            prepared.offsets.push(offset);
        }
        prepared.metadata = metadata_json;
        Ok(prepared)
    }
}

/// The compact text of `field` (of event `event_id`, if any), once [`check_json`] accepts it.
/// `serde_json::to_string` writes into a byte buffer directly, where `Display`
/// (`Value::to_string`) goes through the formatting machinery.
fn json_text(
    value: &Value,
    event_id: Option<Uuid>,
    field: &'static str,
) -> Result<String, StoreError> {
    let invalid = |reason| StoreError::InvalidJson {
        event_id,
        field,
        reason,
    };
    check_json(value).map_err(invalid)?;
    serde_json::to_string(value).map_err(|_| invalid("cannot be serialised"))
}

/// An event type: 1 to 200 visible ASCII characters.
fn check_event_type(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("must not be empty");
    }
    if value.len() > MAX_EVENT_TYPE_LEN {
        return Err("must be at most 200 characters");
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("may hold only visible ASCII characters (no spaces)");
    }
    Ok(())
}

/// Rejects JSON that Postgres or the read side cannot hold: NUL characters in strings or keys
/// (jsonb and text refuse them) and nesting deeper than [`MAX_JSON_DEPTH`].
pub(crate) fn check_json(value: &Value) -> Result<(), &'static str> {
    // Iterative, so a deeply nested document cannot overflow the stack here.
    let mut stack = vec![(value, 1_usize)];
    while let Some((value, depth)) = stack.pop() {
        match value {
            Value::String(s) if s.contains('\0') => {
                return Err("strings must not contain NUL characters");
            }
            Value::Array(items) => {
                if depth > MAX_JSON_DEPTH {
                    return Err("nested deeper than 128 levels");
                }
                stack.extend(items.iter().map(|v| (v, depth + 1)));
            }
            Value::Object(map) => {
                if depth > MAX_JSON_DEPTH {
                    return Err("nested deeper than 128 levels");
                }
                for (key, v) in map {
                    if key.contains('\0') {
                        return Err("keys must not contain NUL characters");
                    }
                    stack.push((v, depth + 1));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_checks() {
        assert!(check_json(&json!({"a": [1, "x", {"b": null}]})).is_ok());
        assert!(check_json(&json!({"a": "x\u{0}y"})).is_err());
        assert!(check_json(&json!({"a\u{0}": 1})).is_err());
        let mut deep = json!(1);
        for _ in 0..MAX_JSON_DEPTH {
            deep = json!([deep]);
        }
        assert!(check_json(&deep).is_ok());
        deep = json!([deep]);
        assert!(check_json(&deep).is_err());
    }

    #[test]
    fn event_type_checks() {
        assert!(check_event_type("RecordCreated").is_ok());
        assert!(check_event_type("record.created/v2").is_ok());
        assert!(check_event_type("").is_err());
        assert!(check_event_type("has space").is_err());
        assert!(check_event_type("naïve").is_err());
        assert!(check_event_type(&"x".repeat(201)).is_err());
    }
}
