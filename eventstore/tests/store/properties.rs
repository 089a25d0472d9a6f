//! Property tests: envelopes and position tokens round-trip; garbage never panics.

use proptest::prelude::*;
use pyairtable_eventstore::testkit::TestStore;
use pyairtable_eventstore::{
    Actor, Direction, ExpectedVersion, Metadata, NewEvent, Position, StoreError, StreamId,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::support::stream;

fn text() -> impl Strategy<Value = String> {
    // Any Unicode except NUL, which the store rejects on purpose.
    "[^\u{0}]{0,24}"
}

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        text().prop_map(|id| Actor::User { id }),
        (text(), text()).prop_map(|(id, user_id)| Actor::ApiToken { id, user_id }),
        text().prop_map(|name| Actor::System { name }),
        text().prop_map(|id| Actor::Automation { id }),
        text().prop_map(|id| Actor::Agent { id }),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn metadata() -> impl Strategy<Value = Metadata> {
    (
        actor(),
        uuid(),
        prop::option::of(uuid()),
        prop::option::of(text()),
        prop::collection::btree_map(text(), json(), 0..4),
    )
        .prop_map(
            |(actor, correlation_id, causation_id, workspace_id, extra)| Metadata {
                actor,
                correlation_id,
                causation_id,
                workspace_id,
                extra: extra.into_iter().collect(),
            },
        )
}

proptest! {
    #[test]
    fn metadata_json_round_trips(m in metadata()) {
        let json = serde_json::to_string(&m).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Metadata = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, m);
    }

    #[test]
    fn actor_json_round_trips_and_is_tagged(a in actor()) {
        let value = serde_json::to_value(&a).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(value.get("type").and_then(Value::as_str).is_some());
        let back: Actor = serde_json::from_value(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, a);
    }

    #[test]
    fn position_tokens_round_trip_and_keep_order(
        a in (any::<u64>(), any::<u64>(), any::<u64>()),
        b in (any::<u64>(), any::<u64>(), any::<u64>()),
    ) {
        let pa = Position { epoch: a.0, xid: a.1, pos: a.2 };
        let pb = Position { epoch: b.0, xid: b.1, pos: b.2 };
        let ta = pa.to_string();
        prop_assert!(ta.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        prop_assert_eq!(ta.parse::<Position>().ok(), Some(pa));
        prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
    }

    #[test]
    fn garbage_tokens_are_typed_errors(token in ".{0,64}") {
        match token.parse::<Position>() {
            Ok(p) => prop_assert_eq!(p.to_string(), token),
            Err(err) => {
                let typed = matches!(err, StoreError::InvalidPosition { .. });
                prop_assert!(typed, "{:?}", err);
            }
        }
    }

    #[test]
    fn mangled_tokens_are_typed_errors(
        p in (any::<u64>(), any::<u64>(), any::<u64>()),
        at in 0_usize..34,
        with in any::<char>(),
    ) {
        let token = Position { epoch: p.0, xid: p.1, pos: p.2 }.to_string();
        let mut chars: Vec<char> = token.chars().collect();
        chars[at] = with;
        let mangled: String = chars.into_iter().collect();
        match mangled.parse::<Position>() {
            Ok(back) => prop_assert_eq!(back.to_string(), mangled),
            Err(err) => {
                let typed = matches!(err, StoreError::InvalidPosition { .. });
                prop_assert!(typed, "{:?}", err);
            }
        }
    }

    #[test]
    fn stream_ids_parse_exactly_the_pattern(id in "[A-Za-z0-9_.:/ -]{0,210}") {
        let valid = !id.is_empty()
            && id.len() <= 200
            && id.as_bytes()[0].is_ascii_alphanumeric()
            && id.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.:-".contains(&c));
        match StreamId::parse(&id) {
            Ok(s) => { prop_assert!(valid); prop_assert_eq!(s.as_str(), id.as_str()); }
            Err(err) => {
                prop_assert!(!valid);
                let typed = matches!(err, StoreError::InvalidStreamId { .. });
                prop_assert!(typed, "{:?}", err);
            }
        }
    }
}

/// Arbitrary payloads and metadata survive the store byte for byte, and their hash chain
/// verifies (the stored JSON text is exactly the hashed text).
#[test]
fn envelopes_round_trip_through_the_store() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let test = runtime.block_on(TestStore::new());
    let s = stream("rec-proptest");
    let version = std::cell::Cell::new(0_u64);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let outcome = runner.run(
        &(
            metadata(),
            prop::collection::vec(json(), 1..4),
            any::<i32>(),
        ),
        |(m, payloads, schema_version)| {
            let events: Vec<NewEvent> = payloads
                .iter()
                .map(|payload| NewEvent {
                    event_id: Uuid::new_v4(),
                    event_type: "Prop.Event".into(),
                    schema_version,
                    payload: payload.clone(),
                })
                .collect();
            let read = runtime.block_on(async {
                let r = test
                    .append(
                        &s,
                        ExpectedVersion::Exact(version.get()),
                        events.clone(),
                        &m,
                    )
                    .await?;
                test.read_stream(&s, r.first_version, Direction::Forward, events.len())
                    .await
            });
            let read = read.map_err(|e| TestCaseError::fail(e.to_string()))?;
            version.set(version.get() + events.len() as u64);
            prop_assert_eq!(read.len(), events.len());
            for (stored, sent) in read.iter().zip(&events) {
                prop_assert_eq!(&stored.payload, &sent.payload);
                prop_assert_eq!(&stored.metadata, &m);
                prop_assert_eq!(stored.schema_version, schema_version);
                prop_assert_eq!(stored.event_id, sent.event_id);
            }
            Ok(())
        },
    );
    if let Err(err) = outcome {
        anyhow::bail!("{err}");
    }
    let report = runtime.block_on(test.verify_stream(&s))?;
    anyhow::ensure!(report.is_intact(), "{report:?}");
    anyhow::ensure!(report.events_checked == version.get());
    runtime.block_on(test.cleanup())?;
    Ok(())
}
