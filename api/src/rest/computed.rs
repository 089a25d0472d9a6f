//! Computed cells, filled in on read: created and last-modified time, count, lookups and
//! rollups over linked records, and formulas.
//!
//! Lookups and rollups read the records a link cell points to. [`Computed::fill`] reads them for
//! a whole set of rows at once (one query per linked table and level, in chunks), fills the
//! linked records' own computed cells first (so a lookup of a formula, or of another lookup,
//! shows its value), then this table's, in the order Airtable's dependencies need: system
//! fields, then lookups and rollups, then formulas (which may read any of those).
//!
//! Chains of lookups are followed [`MAX_LINK_DEPTH`] links deep; past that (a lookup of a lookup
//! of a lookup of a lookup) the cell is left empty rather than reading without bound. Cycles
//! (a table looking up its own lookups through a self link) end the same way.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use pyairtable_domain::base::TableSchema;
use pyairtable_domain::fields::{FieldType, LookupOptions};
use pyairtable_domain::formula::{self, Expr, FormulaContext, ROLLUP_VALUES};
use pyairtable_domain::ids::{FieldId, TableId};
use serde_json::{Value, json};

use super::cells::{Row, iso};
use sqlx::{AssertSqlSafe, PgPool};

use super::error::{RestError, RestResult};
use crate::state::AppState;

/// How many links a chain of lookups is followed through.
pub const MAX_LINK_DEPTH: usize = 3;

/// Linked records read for one fill, by table and record id, their computed cells filled.
type LinkedRows = HashMap<TableId, HashMap<String, Row>>;

/// The computed fields of a table, with their formulas parsed once per request.
pub struct Computed<'a> {
    tables: &'a [TableSchema],
    table: &'a TableSchema,
    now: DateTime<Utc>,
    tz: Tz,
    depth: usize,
    formulas: Vec<(FieldId, Option<Expr>)>,
    system: Vec<(FieldId, SystemField)>,
    linked: Vec<LinkedField<'a>>,
    /// Link fields whose cells drop records deleted since they were linked: those of the
    /// records asked for (the top level), not of linked records read for lookups.
    links: Vec<(FieldId, &'a TableSchema)>,
}

enum SystemField {
    Created,
    Modified,
    Count(FieldId),
    AutoNumber,
}

/// A lookup or rollup: the values of `target` in the records `link` points to.
struct LinkedField<'a> {
    id: FieldId,
    link: FieldId,
    table: &'a TableSchema,
    target: FieldId,
    /// How the values reach the formula engine (a lookup's type).
    values_type: FieldType,
    /// `None` for a lookup; for a rollup, its aggregation (`None` inside when it no longer
    /// parses, which shows `#ERROR!`).
    rollup: Option<Option<Expr>>,
}

impl<'a> Computed<'a> {
    /// Prepares the computed fields of `table`, one of `tables` (its base's tables, which its
    /// links point into), as of `now` in zone `tz`. A formula that no longer parses, or a
    /// lookup whose link or target field was deleted, yields `#ERROR!` or an empty cell rather
    /// than failing the request.
    #[must_use]
    pub fn of(
        tables: &'a [TableSchema],
        table: &'a TableSchema,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> Self {
        Self::with_depth(tables, table, now, tz, MAX_LINK_DEPTH, &[])
    }

    /// `looked_up`: the fields of `table` an outer level's lookups read. Those that are links
    /// leave out deleted records too, as the link cells of the top level do.
    fn with_depth(
        tables: &'a [TableSchema],
        table: &'a TableSchema,
        now: DateTime<Utc>,
        tz: Tz,
        depth: usize,
        looked_up: &[&FieldId],
    ) -> Self {
        let mut formulas = Vec::new();
        let mut system = Vec::new();
        let mut linked = Vec::new();
        let mut links = Vec::new();
        for field in &table.fields {
            match &field.field_type {
                FieldType::Formula(options) => {
                    formulas.push((field.id.clone(), formula::parse(&options.formula).ok()));
                }
                FieldType::CreatedTime => system.push((field.id.clone(), SystemField::Created)),
                FieldType::AutoNumber => system.push((field.id.clone(), SystemField::AutoNumber)),
                FieldType::LastModifiedTime => {
                    system.push((field.id.clone(), SystemField::Modified));
                }
                FieldType::Count(options) => system.push((
                    field.id.clone(),
                    SystemField::Count(options.record_link_field_id.clone()),
                )),
                FieldType::MultipleLookupValues(o) => linked.extend(LinkedField::new(
                    tables,
                    table,
                    field.id.clone(),
                    o.clone(),
                    None,
                )),
                FieldType::Rollup(o) => linked.extend(LinkedField::new(
                    tables,
                    table,
                    field.id.clone(),
                    LookupOptions {
                        record_link_field_id: o.record_link_field_id.clone(),
                        field_id_in_linked_table: o.field_id_in_linked_table.clone(),
                    },
                    Some(formula::parse_rollup(&o.formula).ok()),
                )),
                FieldType::MultipleRecordLinks(o)
                    if depth == MAX_LINK_DEPTH || looked_up.contains(&&field.id) =>
                {
                    if let Some(t) = tables.iter().find(|t| t.id == o.linked_table_id) {
                        links.push((field.id.clone(), t));
                    }
                }
                _ => {}
            }
        }
        Self {
            tables,
            table,
            now,
            tz,
            depth,
            formulas,
            system,
            linked,
            links,
        }
    }

    /// Whether the table has nothing to compute.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.formulas.is_empty()
            && self.system.is_empty()
            && self.linked.is_empty()
            && self.links.is_empty()
    }

    /// Fills the computed cells of `rows`, reading the records their lookups and rollups need
    /// from the REST state's records read model.
    ///
    /// # Errors
    /// A bare 500 when the read model cannot be read.
    pub async fn fill(&self, state: &AppState, rows: &mut [Row]) -> RestResult<()> {
        let view = state.projections.names().rm_view("records");
        self.fill_from(state.store.pool(), &view, rows)
            .await
            .map_err(|e| RestError::internal("reading linked records", &e))
    }

    /// Fills the computed cells of `rows`, reading linked records from the records view
    /// `view` (schema-qualified) through `pool`.
    ///
    /// # Errors
    /// The database's error when the view cannot be read.
    pub async fn fill_from(
        &self,
        pool: &PgPool,
        view: &str,
        rows: &mut [Row],
    ) -> Result<(), sqlx::Error> {
        let linked = self.read_linked(pool, view, rows).await?;
        for row in rows.iter_mut() {
            self.fill_row(row, &linked);
        }
        Ok(())
    }

    /// Reads, per linked table, the records `rows` link to through a lookup or rollup, with
    /// their own computed cells one level shallower.
    async fn read_linked(
        &self,
        pool: &PgPool,
        view: &str,
        rows: &[Row],
    ) -> Result<LinkedRows, sqlx::Error> {
        let mut out = LinkedRows::new();
        // Past the last level lookups stay empty, but link cells still drop deleted records.
        let looked: &[LinkedField<'_>] = if self.depth == 0 { &[] } else { &self.linked };
        if looked.is_empty() && self.links.is_empty() {
            return Ok(out);
        }
        // Per linked table: the ids to read, and whether a lookup reads their cells (then
        // their own computed cells are filled) or only a link cell their existence.
        let mut wanted: HashMap<&TableId, (&TableSchema, BTreeSet<String>, bool)> = HashMap::new();
        let lookups = looked.iter().map(|f| (&f.link, f.table, true));
        let links = self.links.iter().map(|(id, t)| (id, *t, false));
        for (link, table, looked_up) in lookups.chain(links) {
            let (_, ids, fill) = wanted
                .entry(&table.id)
                .or_insert_with(|| (table, BTreeSet::new(), false));
            *fill |= looked_up;
            for row in rows {
                ids.extend(link_ids(row, link).map(str::to_owned));
            }
        }
        for (table_id, (table, ids, fill)) in wanted {
            if ids.is_empty() {
                continue;
            }
            let ids: Vec<String> = ids.into_iter().collect();
            let mut found = read_rows(pool, view, table_id.as_str(), &ids).await?;
            if fill {
                // Only lookups set `fill`, and they are read above the last level only.
                let looked_up: Vec<&FieldId> = looked
                    .iter()
                    .filter(|f| f.table.id == *table_id)
                    .map(|f| &f.target)
                    .collect();
                let inner = Self::with_depth(
                    self.tables,
                    table,
                    self.now,
                    self.tz,
                    self.depth - 1,
                    &looked_up,
                );
                if !inner.is_empty() {
                    // Boxed: the fill of linked rows is this same function one level down.
                    Box::pin(inner.fill_from(pool, view, &mut found)).await?;
                }
            }
            out.insert(
                table_id.clone(),
                found.into_iter().map(|r| (r.id.clone(), r)).collect(),
            );
        }
        Ok(out)
    }

    /// Fills one row's computed cells from the linked records already read.
    pub(super) fn fill_row(&self, row: &mut Row, linked: &LinkedRows) {
        // A deleted record stays in the cells that linked it, so that restoring it is exact;
        // like Airtable, a reader does not see it there (nor counts it).
        for (id, table) in &self.links {
            if let Some(live) = linked.get(&table.id) {
                drop_dead_links(row, id, live);
            }
        }
        for (id, kind) in &self.system {
            let value = match kind {
                SystemField::Created => json!(iso(row.created_at)),
                SystemField::Modified => json!(iso(row.updated_at)),
                SystemField::Count(link) => json!(link_ids(row, link).count()),
                SystemField::AutoNumber => row.number.map_or(Value::Null, |n| json!(n)),
            };
            set(row, id, value);
        }
        for field in &self.linked {
            let value = field.value(row, linked.get(&field.table.id), self.now, self.tz);
            set(row, &field.id, value);
        }
        // Formulas may read other formulas; a second pass settles one level of such chains
        // whatever the fields' order.
        let passes = if self.formulas.len() > 1 { 2 } else { 1 };
        for _ in 0..passes {
            for (id, expr) in &self.formulas {
                let value = match expr {
                    Some(expr) => formula::eval(expr, &row.context(self.table, self.now, self.tz))
                        .to_cell_json(),
                    None => json!({"error": "#ERROR!"}),
                };
                set(row, id, value);
            }
        }
    }
}

impl<'a> LinkedField<'a> {
    /// The lookup of `options` in `table`, or `None` when its link field is gone or no longer
    /// a link into this base (the cell then stays empty).
    fn new(
        tables: &'a [TableSchema],
        table: &TableSchema,
        id: FieldId,
        options: LookupOptions,
        rollup: Option<Option<Expr>>,
    ) -> Option<Self> {
        let link = table
            .field(&options.record_link_field_id)?
            .field_type
            .link()?;
        let linked = tables.iter().find(|t| t.id == link.linked_table_id)?;
        Some(Self {
            id,
            link: options.record_link_field_id.clone(),
            table: linked,
            target: options.field_id_in_linked_table.clone(),
            values_type: FieldType::MultipleLookupValues(options),
            rollup,
        })
    }

    /// The cell: the target's non-empty values in the linked records, in link order (arrays
    /// flattened, as Airtable's lookups do), or the rollup's aggregation of them.
    fn value(
        &self,
        row: &Row,
        linked: Option<&HashMap<String, Row>>,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> Value {
        let mut values = Vec::new();
        if let Some(linked) = linked {
            for id in link_ids(row, &self.link) {
                match linked.get(id).and_then(|r| r.cells.get(&self.target)) {
                    Some(Value::Array(items)) => values.extend(items.iter().cloned()),
                    Some(Value::Null) | None => {}
                    Some(Value::String(s)) if s.is_empty() => {}
                    Some(v) => values.push(v.clone()),
                }
            }
        }
        let values = Value::Array(values);
        match &self.rollup {
            None => values,
            Some(None) => json!({"error": "#ERROR!"}),
            Some(Some(expr)) => formula::eval(
                expr,
                &Values {
                    values_type: &self.values_type,
                    values: &values,
                    record_id: &row.id,
                    created: row.created_at,
                    modified: row.updated_at,
                    now,
                    tz,
                },
            )
            .to_cell_json(),
        }
    }
}

/// A rollup formula's view: `values`, and the record the rollup belongs to.
struct Values<'v> {
    values_type: &'v FieldType,
    values: &'v Value,
    record_id: &'v str,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
    now: DateTime<Utc>,
    tz: Tz,
}

impl FormulaContext for Values<'_> {
    fn field(&self, name: &str) -> Option<(&FieldType, &Value)> {
        (name == ROLLUP_VALUES).then_some((self.values_type, self.values))
    }
    fn record_id(&self) -> &str {
        self.record_id
    }
    fn created_time(&self) -> DateTime<Utc> {
        self.created
    }
    fn last_modified_time(&self) -> DateTime<Utc> {
        self.modified
    }
    fn now(&self) -> DateTime<Utc> {
        self.now
    }
    fn time_zone(&self) -> Tz {
        self.tz
    }
}

/// Leaves out of `row`'s link cell `link` the ids not in `live` (records deleted since they
/// were linked); an emptied cell is removed.
fn drop_dead_links(row: &mut Row, link: &FieldId, live: &HashMap<String, Row>) {
    if let Some(Value::Array(items)) = row.cells.get_mut(link) {
        items.retain(|v| v.as_str().is_some_and(|rec| live.contains_key(rec)));
        if items.is_empty() {
            row.cells.remove(link);
        }
    }
}

/// The record ids in `row`'s link cell `link`, in order.
fn link_ids<'r>(row: &'r Row, link: &FieldId) -> impl Iterator<Item = &'r str> {
    row.cells
        .get(link)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// The live rows of `table_id` among `ids` in the records view `view` (in no particular order;
/// unknown and deleted ids are left out), read in chunks so a long list stays one bounded
/// query each.
///
/// # Errors
/// The database's error.
pub async fn read_rows(
    pool: &PgPool,
    view: &str,
    table_id: &str,
    ids: &[String],
) -> Result<Vec<Row>, sqlx::Error> {
    const CHUNK: usize = 5_000;
    let sql = format!(
        "SELECT record_id, cells, created_at, updated_at, autonumber FROM {view}
          WHERE table_id = $1 AND record_id = ANY($2) AND NOT deleted"
    );
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let rows = sqlx::query_as::<_, (String, Value, DateTime<Utc>, DateTime<Utc>, i64)>(
            AssertSqlSafe(sql.clone()),
        )
        .bind(table_id)
        .bind(chunk)
        .fetch_all(pool)
        .await?;
        out.extend(rows.into_iter().map(|(id, cells, c, u, n)| {
            Row::from_json_cells(id, &cells, c, u).with_number(Some(n))
        }));
    }
    Ok(out)
}

/// Sets a computed cell, or removes it when the value is empty.
fn set(row: &mut Row, id: &FieldId, value: Value) {
    if value.is_null() {
        row.cells.remove(id);
    } else {
        row.cells.insert(id.clone(), value);
    }
}
