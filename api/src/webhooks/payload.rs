//! Webhook payloads in Airtable's `v0` shape, assembled from the changes of one transaction.
//!
//! The worker first turns the events of a transaction into [`Change`]s that no longer depend
//! on any webhook (see `resolve.rs`); [`assemble`] then keeps what one webhook's specification
//! asks for and lays it out as Airtable does. It is pure, so the shapes are unit-tested here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pyairtable_domain::base::TableSchema;
use pyairtable_domain::fields::{FieldDef, FieldType};
use serde_json::{Map, Value, json};

use super::spec::{ChangeType, DataType, Source, Specification};
use crate::rest::cells::iso;

/// One change of a transaction, resolved to its base and table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A record was created (or restored).
    RecordCreated {
        /// `app…`.
        base: String,
        /// `tbl…`.
        table: String,
        /// `rec…`.
        record: String,
        /// When the record was created.
        created_time: DateTime<Utc>,
        /// Its non-empty cells by field id.
        cells: BTreeMap<String, Value>,
    },
    /// Cells of a record changed.
    RecordUpdated {
        /// `app…`.
        base: String,
        /// `tbl…`.
        table: String,
        /// `rec…`.
        record: String,
        /// `(field id, before, after)`; `null` is an empty cell.
        cells: Vec<(String, Value, Value)>,
        /// The record's cells after the change, when some webhook of the base asked for
        /// unchanged values.
        after: Option<BTreeMap<String, Value>>,
    },
    /// A record was deleted.
    RecordDestroyed {
        /// `app…`.
        base: String,
        /// `tbl…`.
        table: String,
        /// `rec…`.
        record: String,
    },
    /// A table was created.
    TableCreated {
        /// `app…`.
        base: String,
        /// The table as created.
        table: TableSchema,
    },
    /// A table's name or description changed.
    TableUpdated {
        /// `app…`.
        base: String,
        /// `tbl…`.
        table: String,
        /// `(name, description)` now.
        current: (String, Option<String>),
        /// `(name, description)` before.
        previous: (String, Option<String>),
    },
    /// A table was deleted.
    TableDestroyed {
        /// `app…`.
        base: String,
        /// `tbl…`.
        table: String,
    },
    /// A field was created.
    FieldCreated {
        /// `app…`.
        base: String,
        /// `tbl…`.
        table: String,
        /// The field.
        field: FieldDef,
    },
    /// A field changed.
    FieldUpdated {
        /// `app…`.
        base: String,
        /// `tbl…`.
        table: String,
        /// The field now.
        current: FieldDef,
        /// The field before, when known.
        previous: Option<FieldDef>,
    },
    /// A field was deleted.
    FieldDestroyed {
        /// `app…`.
        base: String,
        /// `tbl…`.
        table: String,
        /// `fld…`.
        field: String,
    },
}

impl Change {
    /// The base the change belongs to.
    #[must_use]
    pub fn base(&self) -> &str {
        match self {
            Self::RecordCreated { base, .. }
            | Self::RecordUpdated { base, .. }
            | Self::RecordDestroyed { base, .. }
            | Self::TableCreated { base, .. }
            | Self::TableUpdated { base, .. }
            | Self::TableDestroyed { base, .. }
            | Self::FieldCreated { base, .. }
            | Self::FieldUpdated { base, .. }
            | Self::FieldDestroyed { base, .. } => base,
        }
    }
}

/// The changes of one transaction (one append), with who made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// When the store recorded it.
    pub timestamp: DateTime<Utc>,
    /// A number that grows with every transaction (the feed sequence of its last event).
    pub number: u64,
    /// Where it came from.
    pub source: Source,
    /// `{id, email, name, permissionLevel}` of the user behind it, when there is one.
    pub user: Option<Value>,
    /// Its changes, in feed order.
    pub changes: Vec<Change>,
}

/// Airtable's name of a field's type (`singleLineText`, `number`, ...).
#[must_use]
pub fn type_name(field_type: &FieldType) -> String {
    serde_json::to_value(field_type)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn field_info(field: &FieldDef) -> Value {
    json!({"name": field.name, "type": type_name(&field.field_type)})
}

fn table_info((name, description): &(String, Option<String>)) -> Value {
    json!({"name": name, "description": description})
}

#[derive(Default)]
struct ChangedRecord {
    current: Map<String, Value>,
    previous: Map<String, Value>,
    unchanged: Map<String, Value>,
}

#[derive(Default)]
struct TableAcc {
    created_records: BTreeMap<String, (DateTime<Utc>, BTreeMap<String, Value>)>,
    changed_records: BTreeMap<String, ChangedRecord>,
    destroyed_records: Vec<String>,
    created_fields: Map<String, Value>,
    changed_fields: BTreeMap<String, (Value, Option<Value>)>,
    destroyed_fields: Vec<String>,
    changed_metadata: Option<(Value, Value)>,
}

impl TableAcc {
    fn into_json(self, spec: &Specification) -> Option<Value> {
        let includes = &spec.options.includes;
        let mut out = Map::new();
        if !self.created_records.is_empty() {
            let records: Map<String, Value> = self
                .created_records
                .into_iter()
                .map(|(id, (created, cells))| {
                    let cells: Map<String, Value> = cells.into_iter().collect();
                    (
                        id,
                        json!({"createdTime": iso(created), "cellValuesByFieldId": cells}),
                    )
                })
                .collect();
            out.insert("createdRecordsById".into(), Value::Object(records));
        }
        if !self.changed_records.is_empty() {
            let records: Map<String, Value> = self
                .changed_records
                .into_iter()
                .map(|(id, r)| {
                    let mut entry = Map::new();
                    entry.insert("current".into(), json!({"cellValuesByFieldId": r.current}));
                    if includes.include_previous_cell_values {
                        entry.insert(
                            "previous".into(),
                            json!({"cellValuesByFieldId": r.previous}),
                        );
                    }
                    if !r.unchanged.is_empty() {
                        entry.insert(
                            "unchanged".into(),
                            json!({"cellValuesByFieldId": r.unchanged}),
                        );
                    }
                    (id, Value::Object(entry))
                })
                .collect();
            out.insert("changedRecordsById".into(), Value::Object(records));
        }
        if !self.destroyed_records.is_empty() {
            out.insert("destroyedRecordIds".into(), json!(self.destroyed_records));
        }
        if !self.created_fields.is_empty() {
            out.insert(
                "createdFieldsById".into(),
                Value::Object(self.created_fields),
            );
        }
        if !self.changed_fields.is_empty() {
            let fields: Map<String, Value> = self
                .changed_fields
                .into_iter()
                .map(|(id, (current, previous))| {
                    let mut entry = Map::new();
                    entry.insert("current".into(), current);
                    if includes.include_previous_field_definitions
                        && let Some(previous) = previous
                    {
                        entry.insert("previous".into(), previous);
                    }
                    (id, Value::Object(entry))
                })
                .collect();
            out.insert("changedFieldsById".into(), Value::Object(fields));
        }
        if !self.destroyed_fields.is_empty() {
            out.insert("destroyedFieldIds".into(), json!(self.destroyed_fields));
        }
        if let Some((current, previous)) = self.changed_metadata {
            out.insert(
                "changedMetadata".into(),
                json!({"current": current, "previous": previous}),
            );
        }
        (!out.is_empty()).then_some(Value::Object(out))
    }
}

/// Whether any of the changed fields is watched (an empty watch list watches all).
fn touches_watched(spec: &Specification, cells: &[(String, Value, Value)]) -> bool {
    let watched = &spec.options.filters.watch_data_in_field_ids;
    watched.is_empty() || cells.iter().any(|(f, _, _)| watched.contains(f))
}

/// The payload of `tx` for a webhook of base `base` with `spec`, or `None` when nothing in the
/// transaction is for it. Changes of other bases are never looked at (tenant isolation).
#[must_use]
pub fn assemble(spec: &Specification, base: &str, tx: &Transaction) -> Option<Value> {
    let mut tables: BTreeMap<String, TableAcc> = BTreeMap::new();
    let mut created_tables: Map<String, Value> = Map::new();
    let mut destroyed_tables: Vec<String> = Vec::new();
    let source = tx.source;
    let includes = &spec.options.includes;
    for change in tx.changes.iter().filter(|c| c.base() == base) {
        match change {
            Change::RecordCreated {
                table,
                record,
                created_time,
                cells,
                ..
            } => {
                if spec.in_scope(table) && spec.wants(DataType::TableData, ChangeType::Add, source)
                {
                    let acc = tables.entry(table.clone()).or_default();
                    acc.created_records
                        .insert(record.clone(), (*created_time, cells.clone()));
                }
            }
            Change::RecordUpdated {
                table,
                record,
                cells,
                after,
                ..
            } => {
                if !spec.in_scope(table) {
                    continue;
                }
                let acc = tables.entry(table.clone()).or_default();
                // A record created earlier in the same transaction is reported as created
                // with its final cells, as one change.
                if let Some((_, created)) = acc.created_records.get_mut(record) {
                    for (field, _, new) in cells {
                        if new.is_null() {
                            created.remove(field);
                        } else {
                            created.insert(field.clone(), new.clone());
                        }
                    }
                    continue;
                }
                if !spec.wants(DataType::TableData, ChangeType::Update, source)
                    || !touches_watched(spec, cells)
                {
                    continue;
                }
                let entry = acc.changed_records.entry(record.clone()).or_default();
                for (field, old, new) in cells {
                    entry.current.insert(field.clone(), new.clone());
                    // The first change of a cell in the transaction holds its value before it.
                    entry
                        .previous
                        .entry(field.clone())
                        .or_insert_with(|| old.clone());
                    entry.unchanged.remove(field);
                }
                if let (Some(wanted), Some(after)) =
                    (&includes.include_cell_values_in_field_ids, after)
                {
                    for (field, value) in after {
                        if wanted.wants(field) && !entry.current.contains_key(field) {
                            entry.unchanged.insert(field.clone(), value.clone());
                        }
                    }
                }
            }
            Change::RecordDestroyed { table, record, .. } => {
                if !spec.in_scope(table) {
                    continue;
                }
                let acc = tables.entry(table.clone()).or_default();
                if acc.created_records.remove(record).is_some() {
                    // Created and deleted in one transaction: nothing to report.
                    continue;
                }
                acc.changed_records.remove(record);
                if spec.wants(DataType::TableData, ChangeType::Remove, source) {
                    acc.destroyed_records.push(record.clone());
                }
            }
            Change::TableCreated { table, .. } => {
                if spec.is_scoped() || !spec.wants(DataType::TableMetadata, ChangeType::Add, source)
                {
                    continue;
                }
                let mut entry = Map::new();
                entry.insert(
                    "metadata".into(),
                    table_info(&(table.name.clone(), table.description.clone())),
                );
                if spec
                    .options
                    .filters
                    .data_types
                    .contains(&DataType::TableFields)
                {
                    let fields: Map<String, Value> = table
                        .fields
                        .iter()
                        .map(|f| (f.id.to_string(), field_info(f)))
                        .collect();
                    entry.insert("fieldsById".into(), Value::Object(fields));
                }
                created_tables.insert(table.id.to_string(), Value::Object(entry));
            }
            Change::TableUpdated {
                table,
                current,
                previous,
                ..
            } => {
                if spec.in_scope(table)
                    && spec.wants(DataType::TableMetadata, ChangeType::Update, source)
                {
                    let acc = tables.entry(table.clone()).or_default();
                    let before = acc
                        .changed_metadata
                        .take()
                        .map_or_else(|| table_info(previous), |(_, p)| p);
                    acc.changed_metadata = Some((table_info(current), before));
                }
            }
            Change::TableDestroyed { table, .. } => {
                tables.remove(table);
                if created_tables.remove(table).is_some() {
                    continue;
                }
                if spec.in_scope(table)
                    && spec.wants(DataType::TableMetadata, ChangeType::Remove, source)
                {
                    destroyed_tables.push(table.clone());
                }
            }
            Change::FieldCreated { table, field, .. } => {
                if spec.in_scope(table)
                    && spec.wants(DataType::TableFields, ChangeType::Add, source)
                    && watches_schema(spec, field.id.as_str())
                {
                    let acc = tables.entry(table.clone()).or_default();
                    acc.created_fields
                        .insert(field.id.to_string(), field_info(field));
                }
            }
            Change::FieldUpdated {
                table,
                current,
                previous,
                ..
            } => {
                let id = current.id.to_string();
                if !spec.in_scope(table) || !watches_schema(spec, &id) {
                    continue;
                }
                let acc = tables.entry(table.clone()).or_default();
                if acc.created_fields.contains_key(&id) {
                    acc.created_fields.insert(id, field_info(current));
                    continue;
                }
                if spec.wants(DataType::TableFields, ChangeType::Update, source) {
                    let before = acc
                        .changed_fields
                        .remove(&id)
                        .and_then(|(_, p)| p)
                        .or_else(|| previous.as_ref().map(field_info));
                    acc.changed_fields.insert(id, (field_info(current), before));
                }
            }
            Change::FieldDestroyed { table, field, .. } => {
                if !spec.in_scope(table) || !watches_schema(spec, field) {
                    continue;
                }
                let acc = tables.entry(table.clone()).or_default();
                if acc.created_fields.remove(field).is_some() {
                    continue;
                }
                acc.changed_fields.remove(field);
                if spec.wants(DataType::TableFields, ChangeType::Remove, source) {
                    acc.destroyed_fields.push(field.clone());
                }
            }
        }
    }
    let changed: Map<String, Value> = tables
        .into_iter()
        .filter_map(|(id, acc)| acc.into_json(spec).map(|v| (id, v)))
        .collect();
    if changed.is_empty() && created_tables.is_empty() && destroyed_tables.is_empty() {
        return None;
    }
    let mut source_metadata = Map::new();
    if let Some(user) = &tx.user {
        source_metadata.insert("user".into(), user.clone());
    }
    let mut payload = Map::new();
    payload.insert("timestamp".into(), json!(iso(tx.timestamp)));
    payload.insert("baseTransactionNumber".into(), json!(tx.number));
    payload.insert(
        "actionMetadata".into(),
        json!({"source": tx.source.as_str(), "sourceMetadata": source_metadata}),
    );
    payload.insert("payloadFormat".into(), json!("v0"));
    if !changed.is_empty() {
        payload.insert("changedTablesById".into(), Value::Object(changed));
    }
    if !created_tables.is_empty() {
        payload.insert("createdTablesById".into(), Value::Object(created_tables));
    }
    if !destroyed_tables.is_empty() {
        payload.insert("destroyedTableIds".into(), json!(destroyed_tables));
    }
    Some(Value::Object(payload))
}

fn watches_schema(spec: &Specification, field: &str) -> bool {
    let watched = &spec.options.filters.watch_schemas_of_field_ids;
    watched.is_empty() || watched.iter().any(|f| f == field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const BASE: &str = "appAAAAAAAAAAAAAA";
    const OTHER: &str = "appBBBBBBBBBBBBBB";
    const TBL: &str = "tblAAAAAAAAAAAAAA";
    const TBL2: &str = "tblBBBBBBBBBBBBBB";
    const F1: &str = "fldAAAAAAAAAAAAAA";
    const F2: &str = "fldBBBBBBBBBBBBBB";

    fn spec(value: Value) -> Specification {
        serde_json::from_value(value).expect("spec")
    }

    fn tx(changes: Vec<Change>) -> Transaction {
        Transaction {
            timestamp: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            number: 42,
            source: Source::PublicApi,
            user: Some(json!({"id": "usrAAAAAAAAAAAAAA", "email": "a@example.com"})),
            changes,
        }
    }

    fn created(base: &str, table: &str, record: &str) -> Change {
        Change::RecordCreated {
            base: base.into(),
            table: table.into(),
            record: record.into(),
            created_time: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            cells: BTreeMap::from([(F1.to_owned(), json!("hello"))]),
        }
    }

    fn updated(record: &str, old: Value, new: Value) -> Change {
        Change::RecordUpdated {
            base: BASE.into(),
            table: TBL.into(),
            record: record.into(),
            cells: vec![(F1.to_owned(), old, new.clone())],
            after: Some(BTreeMap::from([
                (F1.to_owned(), new),
                (F2.to_owned(), json!(7)),
            ])),
        }
    }

    #[test]
    fn records_in_airtable_shape_and_other_bases_left_out() {
        let s = spec(json!({"options": {"filters": {"dataTypes": ["tableData"]}}}));
        let t = tx(vec![
            created(BASE, TBL, "recAAAAAAAAAAAAAA"),
            created(OTHER, TBL2, "recBBBBBBBBBBBBBB"),
        ]);
        let p = assemble(&s, BASE, &t).expect("payload");
        assert_eq!(p["payloadFormat"], "v0");
        assert_eq!(p["baseTransactionNumber"], 42);
        assert_eq!(p["timestamp"], "2026-01-02T03:04:05.000Z");
        assert_eq!(p["actionMetadata"]["source"], "publicApi");
        assert_eq!(
            p["actionMetadata"]["sourceMetadata"]["user"]["email"],
            "a@example.com"
        );
        let rec = &p["changedTablesById"][TBL]["createdRecordsById"]["recAAAAAAAAAAAAAA"];
        assert_eq!(rec["cellValuesByFieldId"][F1], "hello");
        assert_eq!(rec["createdTime"], "2026-01-02T03:04:05.000Z");
        assert!(p["changedTablesById"].get(TBL2).is_none());
        assert!(assemble(&s, "appCCCCCCCCCCCCCC", &t).is_none());
    }

    #[test]
    fn previous_and_unchanged_values_only_when_asked() {
        let change = updated("recAAAAAAAAAAAAAA", json!("a"), json!("b"));
        let plain = spec(json!({"options": {"filters": {"dataTypes": ["tableData"]}}}));
        let p = assemble(&plain, BASE, &tx(vec![change.clone()])).expect("payload");
        let rec = &p["changedTablesById"][TBL]["changedRecordsById"]["recAAAAAAAAAAAAAA"];
        assert_eq!(rec["current"]["cellValuesByFieldId"][F1], "b");
        assert!(rec.get("previous").is_none());
        assert!(rec.get("unchanged").is_none());

        let rich = spec(json!({"options": {
            "filters": {"dataTypes": ["tableData"]},
            "includes": {"includePreviousCellValues": true, "includeCellValuesInFieldIds": [F2]}
        }}));
        let p = assemble(&rich, BASE, &tx(vec![change])).expect("payload");
        let rec = &p["changedTablesById"][TBL]["changedRecordsById"]["recAAAAAAAAAAAAAA"];
        assert_eq!(rec["previous"]["cellValuesByFieldId"][F1], "a");
        assert_eq!(rec["unchanged"]["cellValuesByFieldId"][F2], 7);
        assert!(rec["unchanged"]["cellValuesByFieldId"].get(F1).is_none());
    }

    #[test]
    fn filters_by_scope_change_type_source_and_watched_fields() {
        let t = tx(vec![
            created(BASE, TBL2, "recBBBBBBBBBBBBBB"),
            updated("recAAAAAAAAAAAAAA", json!(1), json!(2)),
            Change::RecordDestroyed {
                base: BASE.into(),
                table: TBL.into(),
                record: "recCCCCCCCCCCCCCC".into(),
            },
        ]);
        let scoped = spec(json!({"options": {"filters": {"dataTypes": ["tableData"],
            "recordChangeScope": TBL, "changeTypes": ["remove"]}}}));
        let p = assemble(&scoped, BASE, &t).expect("payload");
        assert_eq!(
            p["changedTablesById"],
            json!({TBL: {"destroyedRecordIds": ["recCCCCCCCCCCCCCC"]}})
        );
        let clients_only = spec(json!({"options": {"filters": {"dataTypes": ["tableData"],
            "fromSources": ["client"]}}}));
        assert!(assemble(&clients_only, BASE, &t).is_none());
        let fields_only = spec(json!({"options": {"filters": {"dataTypes": ["tableFields"]}}}));
        assert!(assemble(&fields_only, BASE, &t).is_none());
        let watch_f2 = spec(json!({"options": {"filters": {"dataTypes": ["tableData"],
            "changeTypes": ["update"], "watchDataInFieldIds": [F2]}}}));
        assert!(assemble(&watch_f2, BASE, &t).is_none());
    }

    #[test]
    fn a_record_created_then_changed_in_one_transaction_is_one_creation() {
        let s = spec(json!({"options": {"filters": {"dataTypes": ["tableData"]}}}));
        let t = tx(vec![
            created(BASE, TBL, "recAAAAAAAAAAAAAA"),
            updated("recAAAAAAAAAAAAAA", json!("hello"), json!("bye")),
        ]);
        let p = assemble(&s, BASE, &t).expect("payload");
        let table = &p["changedTablesById"][TBL];
        assert_eq!(
            table["createdRecordsById"]["recAAAAAAAAAAAAAA"]["cellValuesByFieldId"][F1],
            "bye"
        );
        assert!(table.get("changedRecordsById").is_none());
    }

    #[test]
    fn schema_changes() {
        let field = |name: &str| -> FieldDef {
            serde_json::from_value(json!({"id": F1, "name": name, "type": "singleLineText"}))
                .expect("field")
        };
        let t = tx(vec![
            Change::FieldUpdated {
                base: BASE.into(),
                table: TBL.into(),
                current: field("New"),
                previous: Some(field("Old")),
            },
            Change::TableUpdated {
                base: BASE.into(),
                table: TBL.into(),
                current: ("Tasks 2".into(), None),
                previous: ("Tasks".into(), Some("d".into())),
            },
            Change::TableDestroyed {
                base: BASE.into(),
                table: TBL2.into(),
            },
        ]);
        let s = spec(
            json!({"options": {"filters": {"dataTypes": ["tableFields", "tableMetadata"]},
            "includes": {"includePreviousFieldDefinitions": true}}}),
        );
        let p = assemble(&s, BASE, &t).expect("payload");
        let table = &p["changedTablesById"][TBL];
        assert_eq!(
            table["changedFieldsById"][F1],
            json!({"current": {"name": "New", "type": "singleLineText"},
                   "previous": {"name": "Old", "type": "singleLineText"}})
        );
        assert_eq!(table["changedMetadata"]["previous"]["name"], "Tasks");
        assert_eq!(table["changedMetadata"]["current"]["name"], "Tasks 2");
        assert_eq!(p["destroyedTableIds"], json!([TBL2]));
        let data_only = spec(json!({"options": {"filters": {"dataTypes": ["tableData"]}}}));
        assert!(assemble(&data_only, BASE, &t).is_none());
    }
}
