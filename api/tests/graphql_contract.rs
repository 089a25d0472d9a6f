//! The checked-in contracts match the code: `schemas/schema.graphql` is the GraphQL schema's
//! SDL, and `schemas/events/<EventType>.json` is the JSON Schema of each domain event.
//!
//! When a change is intended, regenerate both with
//! `UPDATE_SCHEMAS=1 cargo nextest run -p pyairtable-api graphql_contract`
//! (or `UPDATE_SCHEMAS=1 cargo test -p pyairtable-api --test graphql_contract`) and commit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pyairtable_domain::base::BaseEvent;
use pyairtable_domain::record::RecordEvent;
use pyairtable_domain::token::TokenEvent;
use pyairtable_domain::user::UserEvent;
use pyairtable_domain::workspace::WorkspaceEvent;
use serde_json::{Value, json};

const HOW: &str =
    "regenerate with `UPDATE_SCHEMAS=1 cargo nextest run -p pyairtable-api graphql_contract`";

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn updating() -> bool {
    std::env::var("UPDATE_SCHEMAS").is_ok_and(|v| v == "1")
}

#[test]
fn graphql_schema_matches_the_checked_in_sdl() {
    let path = schemas_dir().join("schema.graphql");
    let sdl = pyairtable_api::graphql::sdl();
    if updating() {
        std::fs::write(&path, &sdl).expect("write schema.graphql");
        return;
    }
    let stored = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing; {HOW}", path.display()));
    assert!(
        stored == sdl,
        "schemas/schema.graphql differs from the code's schema; {HOW}"
    );
}

/// One JSON Schema per event type, split out of the aggregate's tagged enum.
fn event_schemas() -> BTreeMap<String, Value> {
    let enums = [
        (
            "user",
            serde_json::to_value(schemars::schema_for!(UserEvent)),
        ),
        (
            "workspace",
            serde_json::to_value(schemars::schema_for!(WorkspaceEvent)),
        ),
        (
            "token",
            serde_json::to_value(schemars::schema_for!(TokenEvent)),
        ),
        (
            "base",
            serde_json::to_value(schemars::schema_for!(BaseEvent)),
        ),
        (
            "record",
            serde_json::to_value(schemars::schema_for!(RecordEvent)),
        ),
    ];
    let mut out = BTreeMap::new();
    for (aggregate, schema) in enums {
        let schema = schema.expect("serialise schema");
        let defs = schema.get("$defs").cloned();
        let variants = schema["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{aggregate} events: expected oneOf variants"));
        for variant in variants {
            let name = variant["properties"]["type"]["const"]
                .as_str()
                .unwrap_or_else(|| {
                    panic!("{aggregate} event variant without a type tag: {variant}")
                })
                .to_owned();
            let mut doc = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": name,
                "x-aggregate": aggregate,
            });
            if let (Value::Object(doc), Value::Object(body)) = (&mut doc, variant) {
                for (k, v) in body {
                    doc.insert(k.clone(), v.clone());
                }
                if let Some(defs) = &defs {
                    doc.insert("$defs".to_owned(), defs.clone());
                }
            }
            assert!(
                out.insert(name.clone(), doc).is_none(),
                "event type {name} twice"
            );
        }
    }
    out
}

#[test]
fn event_json_schemas_match_the_checked_in_files() {
    let dir = schemas_dir().join("events");
    let generated = event_schemas();
    assert!(generated.len() >= 30, "every event type is covered");
    let rendered: BTreeMap<String, String> = generated
        .iter()
        .map(|(name, schema)| {
            let mut text = serde_json::to_string_pretty(schema).expect("render");
            text.push('\n');
            (format!("{name}.json"), text)
        })
        .collect();
    let existing: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    if updating() {
        std::fs::create_dir_all(&dir).expect("create schemas/events");
        for stale in existing.iter().filter(|n| !rendered.contains_key(*n)) {
            std::fs::remove_file(dir.join(stale)).expect("remove a stale schema");
        }
        for (file, text) in &rendered {
            std::fs::write(dir.join(file), text).expect("write an event schema");
        }
        return;
    }
    let stale: Vec<&String> = existing
        .iter()
        .filter(|n| !rendered.contains_key(*n))
        .collect();
    assert!(
        stale.is_empty(),
        "schemas/events/{stale:?} name no event type any more; {HOW}"
    );
    for (file, text) in &rendered {
        let stored = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|_| panic!("schemas/events/{file} is missing; {HOW}"));
        assert!(
            stored == *text,
            "schemas/events/{file} differs from the code; {HOW}"
        );
    }
}

#[test]
fn a_stored_event_validates_against_its_schema_shape() {
    // The generated schema describes what the domain actually writes: every required property
    // of RecordUpdated is present in a serialised event.
    let schemas = event_schemas();
    let schema = &schemas["RecordUpdated"];
    let event = RecordEvent::RecordUpdated {
        changes: Vec::new(),
        by: pyairtable_domain::ids::UserId::from_suffix([1; 14]),
        at: chrono::Utc::now(),
    };
    let value = serde_json::to_value(&event).expect("serialise");
    for required in schema["required"].as_array().expect("required list") {
        let key = required.as_str().expect("name");
        assert!(value.get(key).is_some(), "{key} missing from {value}");
    }
    assert_eq!(schema["properties"]["type"]["const"], "RecordUpdated");
}
