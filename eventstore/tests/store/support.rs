//! Shared helpers.

use pyairtable_eventstore::{Actor, EventStore, Metadata, NewEvent, StreamId};
use serde_json::{Value, json};
use uuid::Uuid;

pub fn stream(id: &str) -> StreamId {
    match StreamId::parse(id) {
        Ok(s) => s,
        Err(err) => panic!("test stream id {id:?}: {err}"),
    }
}

pub fn meta() -> Metadata {
    Metadata::new(
        Actor::User {
            id: "usrTest00000001".into(),
        },
        Uuid::new_v4(),
    )
    .with_workspace("wspTest00000001")
}

pub fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "ThingHappened".into(),
        schema_version: 1,
        payload: json!({ "n": n, "text": format!("event {n}") }),
    }
}

pub fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

pub async fn count_events(store: &EventStore) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(store.pool())
        .await?)
}

pub fn payload_n(payload: &Value) -> Option<u64> {
    payload.get("n").and_then(Value::as_u64)
}
