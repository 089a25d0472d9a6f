//! Turning the events of one transaction into webhook-independent [`Change`]s: which base and
//! table each event belongs to, the schema before a schema change, a record's cells around a
//! change, and who made it. Everything comes from the event log (never from a read model), so
//! a payload is the same whenever it is computed.

use std::collections::{BTreeMap, HashMap, HashSet};

use pyairtable_commands::Platform;
use pyairtable_domain::Aggregate;
use pyairtable_domain::base::{Base, BaseEvent};
use pyairtable_domain::ids::UserId;
use pyairtable_domain::record::{Record, RecordEvent};
use pyairtable_domain::user::User;
use pyairtable_domain::workspace::Workspace;
use pyairtable_eventstore::{Actor, Direction, RecordedEvent, StreamId};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::payload::{Change, Transaction};
use super::spec::Source;
use crate::rest::access::permission_level;

/// Above this many remembered record → table pairs the memory is cleared (it refills from the
/// log on demand).
const MAX_REMEMBERED_RECORDS: usize = 200_000;

/// A failure to read the log; the worker retries the whole batch later.
pub type ResolveError = anyhow::Error;

/// Decodes a stored event whose payload is internally tagged, or externally tagged by its type
/// (the same leniency as the command layer's codec).
fn decode<E: DeserializeOwned>(event: &RecordedEvent) -> Option<E> {
    serde_json::from_value(event.payload.clone())
        .or_else(|_| {
            serde_json::from_value(json!({ event.event_type.as_str(): event.payload.clone() }))
        })
        .ok()
}

/// Caches kept across batches by the delivery worker.
pub struct Resolver {
    platform: Platform,
    /// Base id → (stream version, state after it).
    bases: HashMap<String, (u64, Base)>,
    /// Table id → base id, for every table ever seen in a watched base.
    table_base: HashMap<String, String>,
    /// Bases whose stream was scanned for tables since the watched set last changed.
    scanned: HashSet<String>,
    /// Record id → table id.
    record_table: HashMap<String, String>,
    /// User id → `(email, display name)`.
    users: HashMap<String, (String, String)>,
}

/// What the worker needs resolved for one batch.
pub struct Scope<'a> {
    /// Bases that have an active webhook: events of other bases are skipped.
    pub bases: &'a HashSet<String>,
    /// Bases where some webhook wants unchanged cell values (the record's state is loaded).
    pub want_cells: &'a HashSet<String>,
}

impl Resolver {
    /// An empty resolver.
    #[must_use]
    pub fn new(platform: Platform) -> Self {
        Self {
            platform,
            bases: HashMap::new(),
            table_base: HashMap::new(),
            scanned: HashSet::new(),
            record_table: HashMap::new(),
            users: HashMap::new(),
        }
    }

    /// Forgets which bases were scanned for tables (the set of watched bases changed).
    pub fn watched_bases_changed(&mut self) {
        self.scanned.clear();
    }

    /// Resolves one transaction's events (all with the same transaction id, in feed order).
    ///
    /// # Errors
    /// When the event store cannot be read.
    pub async fn transaction(
        &mut self,
        events: &[RecordedEvent],
        scope: &Scope<'_>,
    ) -> Result<Transaction, ResolveError> {
        let first = events
            .first()
            .ok_or_else(|| anyhow::anyhow!("empty transaction"))?;
        let last = events.last().unwrap_or(first);
        let mut changes = Vec::new();
        for event in events {
            let Some((kind, id)) = event.stream_id.split_once('-') else {
                continue;
            };
            match kind {
                Base::KIND if scope.bases.contains(id) => {
                    self.base_event(id, event, &mut changes).await?;
                }
                Record::KIND => self.record_event(id, event, scope, &mut changes).await?,
                _ => {}
            }
        }
        let (source, user_id) = match &first.metadata.actor {
            Actor::User { id } => (Source::Client, Some(id.clone())),
            Actor::ApiToken { user_id, .. } => (Source::PublicApi, Some(user_id.clone())),
            Actor::System { .. } => (Source::System, None),
            Actor::Automation { .. } => (Source::Automation, None),
            Actor::Agent { .. } => (Source::PublicApi, None),
        };
        let user = match (&user_id, changes.is_empty()) {
            (Some(id), false) => {
                self.user(id, first.metadata.workspace_id.as_deref())
                    .await?
            }
            _ => None,
        };
        Ok(Transaction {
            timestamp: first.recorded_at,
            number: last.position.pos,
            source,
            user,
            changes,
        })
    }

    /// `{id, email, name, permissionLevel}` of a user (as far as the log knows them).
    async fn user(
        &mut self,
        id: &str,
        workspace_id: Option<&str>,
    ) -> Result<Option<Value>, ResolveError> {
        let runner = self.platform.runner();
        if !self.users.contains_key(id) {
            let loaded = runner.load::<User>(id).await?;
            let Some(account) = loaded.state.account() else {
                return Ok(None);
            };
            self.users.insert(
                id.to_owned(),
                (account.email.to_string(), account.display_name.clone()),
            );
        }
        let Some((email, name)) = self.users.get(id).cloned() else {
            return Ok(None);
        };
        let mut user = json!({"id": id, "email": email, "name": name});
        if let (Some(ws), Ok(user_id)) = (workspace_id, UserId::parse(id)) {
            let workspace = runner.load::<Workspace>(ws).await?;
            if let Some(role) = workspace.state.role_of(&user_id) {
                user["permissionLevel"] = json!(permission_level(role));
            }
        }
        Ok(Some(user))
    }

    /// The base's state after `version` events of its stream.
    async fn base_at(&mut self, base_id: &str, version: u64) -> Result<Base, ResolveError> {
        let (mut at, mut state) = self
            .bases
            .remove(base_id)
            .filter(|(v, _)| *v <= version)
            .unwrap_or_default();
        if at < version {
            let stream = StreamId::parse(&format!("{}-{base_id}", Base::KIND))?;
            let store = self.platform.store().clone();
            while at < version {
                let want = usize::try_from(version - at)
                    .unwrap_or(usize::MAX)
                    .min(1000);
                let page = store
                    .read_stream(&stream, at + 1, Direction::Forward, want)
                    .await?;
                if page.is_empty() {
                    break;
                }
                for recorded in page.iter().filter(|e| e.version <= version) {
                    if let Some(event) = decode::<BaseEvent>(recorded) {
                        self.note_tables(base_id, &event);
                        state.apply(&event);
                    }
                    at = recorded.version;
                }
            }
        }
        self.bases.insert(base_id.to_owned(), (at, state.clone()));
        Ok(state)
    }

    fn note_tables(&mut self, base_id: &str, event: &BaseEvent) {
        if let BaseEvent::TableCreated { table, .. } = event {
            self.table_base
                .insert(table.id.to_string(), base_id.to_owned());
        }
    }

    async fn base_event(
        &mut self,
        base_id: &str,
        recorded: &RecordedEvent,
        changes: &mut Vec<Change>,
    ) -> Result<(), ResolveError> {
        let Some(event) = decode::<BaseEvent>(recorded) else {
            tracing::warn!(
                target: "pyairtable::webhooks",
                stream = %recorded.stream_id,
                version = recorded.version,
                "skipping an undecodable base event"
            );
            return Ok(());
        };
        let before = self
            .base_at(base_id, recorded.version.saturating_sub(1))
            .await?;
        let base = base_id.to_owned();
        let table_of = |id: &str| before.tables.iter().find(|t| t.id.as_str() == id);
        match &event {
            BaseEvent::TableCreated { table, .. } => changes.push(Change::TableCreated {
                base,
                table: table.clone(),
            }),
            BaseEvent::TableUpdated {
                table_id,
                name,
                description,
                ..
            } => {
                let previous = table_of(table_id.as_str())
                    .map(|t| (t.name.clone(), t.description.clone()))
                    .unwrap_or_default();
                changes.push(Change::TableUpdated {
                    base,
                    table: table_id.to_string(),
                    current: (name.clone(), description.clone()),
                    previous,
                });
            }
            BaseEvent::TableDeleted { table_id, .. } => changes.push(Change::TableDestroyed {
                base,
                table: table_id.to_string(),
            }),
            BaseEvent::FieldCreated {
                table_id, field, ..
            } => changes.push(Change::FieldCreated {
                base,
                table: table_id.to_string(),
                field: field.clone(),
            }),
            BaseEvent::FieldUpdated {
                table_id, field, ..
            } => {
                let previous = table_of(table_id.as_str())
                    .and_then(|t| t.fields.iter().find(|f| f.id == field.id))
                    .cloned();
                changes.push(Change::FieldUpdated {
                    base,
                    table: table_id.to_string(),
                    current: field.clone(),
                    previous,
                });
            }
            BaseEvent::FieldDeleted {
                table_id, field_id, ..
            } => changes.push(Change::FieldDestroyed {
                base,
                table: table_id.to_string(),
                field: field_id.to_string(),
            }),
            BaseEvent::ChoicesAdded {
                table_id, field_id, ..
            } => {
                // New select options change the field's definition (its options).
                let previous = table_of(table_id.as_str())
                    .and_then(|t| t.fields.iter().find(|f| &f.id == field_id))
                    .cloned();
                let mut after = before.clone();
                after.apply(&event);
                let current = after
                    .tables
                    .iter()
                    .find(|t| &t.id == table_id)
                    .and_then(|t| t.fields.iter().find(|f| &f.id == field_id))
                    .cloned();
                if let Some(current) = current {
                    changes.push(Change::FieldUpdated {
                        base,
                        table: table_id.to_string(),
                        current,
                        previous,
                    });
                }
            }
            _ => {}
        }
        self.note_tables(base_id, &event);
        let mut after = before;
        after.apply(&event);
        self.bases
            .insert(base_id.to_owned(), (recorded.version, after));
        Ok(())
    }

    /// The table of a record, from the record's first event.
    async fn table_of_record(&mut self, record_id: &str) -> Result<Option<String>, ResolveError> {
        if let Some(table) = self.record_table.get(record_id) {
            return Ok(Some(table.clone()));
        }
        let stream = StreamId::parse(&format!("{}-{record_id}", Record::KIND))?;
        let first = self
            .platform
            .store()
            .read_stream(&stream, 1, Direction::Forward, 1)
            .await?;
        let table = first
            .first()
            .and_then(decode::<RecordEvent>)
            .and_then(|e| match e {
                RecordEvent::RecordCreated { table_id, .. } => Some(table_id.to_string()),
                _ => None,
            });
        if let Some(table) = &table {
            self.remember_record(record_id, table);
        }
        Ok(table)
    }

    fn remember_record(&mut self, record_id: &str, table: &str) {
        if self.record_table.len() >= MAX_REMEMBERED_RECORDS {
            self.record_table.clear();
        }
        self.record_table
            .insert(record_id.to_owned(), table.to_owned());
    }

    /// The watched base a table belongs to, scanning watched bases' streams once on a miss.
    async fn base_of_table(
        &mut self,
        table: &str,
        scope: &Scope<'_>,
    ) -> Result<Option<String>, ResolveError> {
        if let Some(base) = self.table_base.get(table) {
            return Ok(Some(base.clone()));
        }
        let unscanned: Vec<String> = scope
            .bases
            .iter()
            .filter(|b| !self.scanned.contains(*b))
            .cloned()
            .collect();
        for base in unscanned {
            let history = self.platform.runner().history::<Base>(&base).await?;
            for (_, event) in &history {
                self.note_tables(&base, event);
            }
            self.scanned.insert(base);
        }
        Ok(self.table_base.get(table).cloned())
    }

    /// The record's cells after `version` events of its stream.
    async fn record_at(&self, record_id: &str, version: u64) -> Result<Record, ResolveError> {
        let history = self.platform.runner().history::<Record>(record_id).await?;
        Ok(Record::default().fold(
            history
                .iter()
                .filter(|(recorded, _)| recorded.version <= version)
                .map(|(_, event)| event),
        ))
    }

    async fn record_event(
        &mut self,
        record_id: &str,
        recorded: &RecordedEvent,
        scope: &Scope<'_>,
        changes: &mut Vec<Change>,
    ) -> Result<(), ResolveError> {
        let Some(event) = decode::<RecordEvent>(recorded) else {
            tracing::warn!(
                target: "pyairtable::webhooks",
                stream = %recorded.stream_id,
                version = recorded.version,
                "skipping an undecodable record event"
            );
            return Ok(());
        };
        if matches!(
            event,
            RecordEvent::CommentAdded { .. }
                | RecordEvent::CommentEdited { .. }
                | RecordEvent::CommentDeleted { .. }
        ) {
            return Ok(());
        }
        let table = match &event {
            RecordEvent::RecordCreated { table_id, .. } => {
                let table = table_id.to_string();
                self.remember_record(record_id, &table);
                table
            }
            _ => match self.table_of_record(record_id).await? {
                Some(table) => table,
                None => return Ok(()),
            },
        };
        let Some(base) = self.base_of_table(&table, scope).await? else {
            return Ok(());
        };
        if !scope.bases.contains(&base) {
            return Ok(());
        }
        let record = record_id.to_owned();
        let cells_of = |r: &Record| -> BTreeMap<String, Value> {
            r.cells
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        match event {
            RecordEvent::RecordCreated { cells, at, .. } => changes.push(Change::RecordCreated {
                base,
                table,
                record,
                created_time: at,
                cells: cells
                    .into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            }),
            RecordEvent::RecordUpdated { changes: cells, .. }
            | RecordEvent::RecordReverted { changes: cells, .. } => {
                let after = if scope.want_cells.contains(&base) {
                    Some(cells_of(
                        &self.record_at(record_id, recorded.version).await?,
                    ))
                } else {
                    None
                };
                changes.push(Change::RecordUpdated {
                    base,
                    table,
                    record,
                    cells: cells
                        .into_iter()
                        .map(|c| (c.field_id.to_string(), c.old, c.new))
                        .collect(),
                    after,
                });
            }
            links @ RecordEvent::LinksChanged { .. } => {
                let RecordEvent::LinksChanged { field_id, .. } = &links else {
                    return Ok(());
                };
                let field_id = field_id.clone();
                let before = self
                    .record_at(record_id, recorded.version.saturating_sub(1))
                    .await?;
                let mut after = before.clone();
                after.apply(&links);
                let old = before.cells.get(&field_id).cloned().unwrap_or(Value::Null);
                let new = after.cells.get(&field_id).cloned().unwrap_or(Value::Null);
                if old != new {
                    let after_cells = scope.want_cells.contains(&base).then(|| cells_of(&after));
                    changes.push(Change::RecordUpdated {
                        base,
                        table,
                        record,
                        cells: vec![(field_id.to_string(), old, new)],
                        after: after_cells,
                    });
                }
            }
            RecordEvent::RecordDeleted { .. } => changes.push(Change::RecordDestroyed {
                base,
                table,
                record,
            }),
            RecordEvent::RecordRestored { at, .. } => {
                let state = self.record_at(record_id, recorded.version).await?;
                changes.push(Change::RecordCreated {
                    base,
                    table,
                    record,
                    created_time: state.created_at.unwrap_or(at),
                    cells: cells_of(&state),
                });
            }
            _ => {}
        }
        Ok(())
    }
}
