//! Turning typed domain events into the store's `(event_type, schema_version, payload)` envelope
//! and back.
//!
//! The domain decides how an event serialises (its enums are internally tagged, so the payload
//! carries its own `type`); the codec only insists that the stored type name is the one the event
//! reports, and accepts externally tagged payloads too so a change of serde representation in the
//! domain does not make old events unreadable.

use pyairtable_domain::DomainEvent;
use serde_json::Value;

use crate::error::CommandError;

/// An event ready for the store, still remembering its typed form.
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    pub event_type: &'static str,
    pub schema_version: i32,
    pub payload: Value,
}

/// Serialises one event.
pub(crate) fn encode<E: DomainEvent>(event: &E) -> Result<Encoded, CommandError> {
    let payload = serde_json::to_value(event)
        .map_err(|e| CommandError::infra(format!("serialising {}", event.event_type()), e))?;
    Ok(Encoded {
        event_type: event.event_type(),
        schema_version: event.event_version(),
        payload,
    })
}

/// Deserialises one stored event of an aggregate's event type.
pub(crate) fn decode<E: DomainEvent>(
    stream: &str,
    version: u64,
    event_type: &str,
    payload: &Value,
) -> Result<E, CommandError> {
    let direct = serde_json::from_value::<E>(payload.clone());
    let event = match direct {
        Ok(event) => event,
        Err(first) => {
            // An externally tagged layout stores the variant name outside the payload.
            let wrapped = Value::Object(serde_json::Map::from_iter([(
                event_type.to_owned(),
                payload.clone(),
            )]));
            serde_json::from_value::<E>(wrapped).map_err(|_| {
                CommandError::infra(
                    format!("decoding event {event_type} at {stream}@{version}"),
                    first,
                )
            })?
        }
    };
    if event.event_type() != event_type {
        return Err(CommandError::infra(
            format!("decoding event at {stream}@{version}"),
            format!(
                "stored type {event_type} decodes as {}, the store is inconsistent",
                event.event_type()
            ),
        ));
    }
    Ok(event)
}
