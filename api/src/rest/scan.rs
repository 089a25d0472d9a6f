//! Keyset scans of the records read model for listings.
//!
//! A listing reads rows in a fixed order (its sort keys, then creation order) in chunks of a
//! few hundred rows, each chunk starting after the last row read, so a page costs about the
//! rows up to its end instead of the whole table. The order is pushed down to SQL only for
//! field types whose SQL ordering is provably the one [`super::records`] uses in memory
//! (`compare_rows`):
//!
//! - numbers (`number`, `currency`, `percent`, `rating`, `duration`): stored as JSON numbers,
//!   compared as `float8` (the same IEEE doubles Rust compares; `-0 = 0` in both);
//! - text (`singleLineText`, `multilineText`, `richText`, `email`, `url`, `phoneNumber`,
//!   `singleSelect`): compared `COLLATE "C"`, i.e. by UTF-8 bytes, which is Rust's `str` order
//!   (case-sensitive, code-point order); `""` is blank, as the formula engine's `is_empty`;
//! - `date`: stored as `YYYY-MM-DD`, whose byte order is date order; `""` is blank;
//! - `checkbox`: unchecked (`false` or absent) before checked, never blank.
//!
//! Blanks sort first ascending and last descending; ties keep creation order in both
//! directions, as the in-memory stable sort does. Each key is a pair (group, value): the
//! group puts blanks before or after values, and a cell whose JSON does not have the field's
//! type (which validation and field conversion never store) gets group 0, before everything
//! whatever the direction. The scan reports such a row ([`Scanned::Mismatch`]) and the listing
//! falls back to the in-memory path, so odd data can never be ordered differently by the two
//! paths. Other types (formulas, lookups, dates with time, links, …) are sorted in memory.

use chrono::{DateTime, Utc};
use pyairtable_domain::base::SortDirection;
use pyairtable_domain::fields::{FieldDef, FieldType};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Row as _};

use super::cells::Row;
use super::computed::Computed;
use super::error::{RestError, RestResult};
use super::pushdown;
use crate::state::AppState;

/// Smallest chunk a filtered scan reads.
const MIN_CHUNK: usize = 32;
/// Largest chunk a scan reads at once.
const MAX_CHUNK: usize = 5_000;

/// How the value of a pushed-down sort key is typed in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Number,
    Text,
    Date,
    Checkbox,
}

impl KeyType {
    fn of(field: &FieldDef) -> Option<Self> {
        Some(match &field.field_type {
            FieldType::Number(_)
            | FieldType::Currency(_)
            | FieldType::Percent(_)
            | FieldType::Rating(_)
            | FieldType::Duration(_) => Self::Number,
            FieldType::SingleSelect(_) => Self::Text,
            t if t.is_text() => Self::Text,
            FieldType::Date(_) => Self::Date,
            FieldType::Checkbox(_) => Self::Checkbox,
            _ => return None,
        })
    }

    /// The SQL type a cursor's value text is cast to.
    fn cast(self) -> &'static str {
        match self {
            Self::Number => "float8",
            Self::Text | Self::Date => "text",
            Self::Checkbox => "boolean",
        }
    }
}

/// One pushed-down sort key.
#[derive(Debug, Clone)]
struct Key {
    /// Field id (validated `fld…`, safe inside SQL text).
    field: String,
    kind: KeyType,
    desc: bool,
}

impl Key {
    /// `(group, value)` SQL expressions over `cells`.
    fn exprs(&self) -> (String, String) {
        let id = &self.field;
        let c = format!("cells->'{id}'");
        let blank_null = format!("({c} IS NULL OR jsonb_typeof({c}) = 'null')");
        let blank_text = format!("({blank_null} OR {c} = '\"\"'::jsonb)");
        let (blank, conforming, value, default) = match self.kind {
            KeyType::Number => (
                blank_null,
                format!("jsonb_typeof({c}) = 'number'"),
                format!("(cells->>'{id}')::float8"),
                "0::float8",
            ),
            KeyType::Text => (
                blank_text,
                format!("jsonb_typeof({c}) = 'string'"),
                format!("(cells->>'{id}')"),
                "''",
            ),
            KeyType::Date => (
                blank_text,
                format!(
                    "(jsonb_typeof({c}) = 'string' \
                      AND cells->>'{id}' ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$')"
                ),
                format!("(cells->>'{id}')"),
                "''",
            ),
            // An absent checkbox is unchecked, not blank: it never takes the blank group.
            KeyType::Checkbox => (
                "false".to_owned(),
                format!("({blank_null} OR jsonb_typeof({c}) = 'boolean')"),
                format!("COALESCE({c} = 'true'::jsonb, false)"),
                "false",
            ),
        };
        // Blanks before values ascending, after them descending; 0 for a mismatched cell.
        let (blank_group, value_group) = if self.desc { (2, 1) } else { (1, 2) };
        let group = format!(
            "(CASE WHEN {blank} THEN {blank_group} WHEN {conforming} THEN {value_group} ELSE 0 END)"
        );
        let collate = if matches!(self.kind, KeyType::Text | KeyType::Date) {
            " COLLATE \"C\""
        } else {
            ""
        };
        let value = format!(
            "(CASE WHEN {conforming} AND NOT {blank} THEN {value} ELSE {default} END){collate}"
        );
        (group, value)
    }
}

/// The order a scan reads rows in: its pushed-down sort keys, then creation order.
#[derive(Debug, Clone, Default)]
pub struct Order {
    keys: Vec<Key>,
}

impl Order {
    /// Creation order (`created_at`, then `record_id`).
    #[must_use]
    pub fn creation() -> Self {
        Self::default()
    }

    /// The order of `sorts` in SQL, when every key's SQL ordering equals the in-memory one.
    #[must_use]
    pub fn of_sorts(sorts: &[(&FieldDef, SortDirection)]) -> Option<Self> {
        let keys = sorts
            .iter()
            .map(|(field, direction)| {
                KeyType::of(field).map(|kind| Key {
                    field: field.id.as_str().to_owned(),
                    kind,
                    desc: *direction == SortDirection::Desc,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self { keys })
    }

    /// How many sort keys precede creation order.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether this is plain creation order.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A position in a scan: the keys of the row it is after (group and value text of each sort
/// key, as SQL printed them), its creation time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    /// `(group, value)` per sort key.
    pub keys: Vec<(i32, String)>,
    /// Creation time of the row.
    pub created_at: DateTime<Utc>,
    /// Its id.
    pub id: String,
}

/// A row read by a scan, with its position.
struct ScannedRow {
    row: Row,
    at: After,
}

/// Reads up to `limit` rows of `table_id` in `order` after `after`, narrowed by `predicate`
/// (placeholders numbered from 1). `limit: None` reads all.
async fn fetch(
    state: &AppState,
    table_id: &str,
    order: &Order,
    predicate: Option<&pushdown::Sql>,
    after: Option<&After>,
    limit: Option<usize>,
) -> RestResult<Vec<ScannedRow>> {
    let view = state.projections.names().rm_view("records");
    let mut next = predicate.map_or(1, |p| p.args.len() + 1);
    let mut placeholder = || {
        let p = format!("${next}");
        next += 1;
        p
    };
    let exprs: Vec<(String, String)> = order.keys.iter().map(Key::exprs).collect();
    let mut inner = String::from("SELECT record_id, cells, created_at, updated_at, autonumber");
    for (i, (group, value)) in exprs.iter().enumerate() {
        inner.push_str(&format!(", {group} AS g{i}, {value} AS v{i}"));
    }
    let table_param = placeholder();
    inner.push_str(&format!(
        " FROM {view} WHERE table_id = {table_param} AND NOT deleted"
    ));
    if let Some(p) = predicate {
        inner.push_str(" AND (");
        inner.push_str(&p.text);
        inner.push(')');
    }
    let mut outer = String::from("SELECT record_id, cells, created_at, updated_at, autonumber");
    for i in 0..exprs.len() {
        // Named apart from v{i}: ORDER BY prefers output names and must sort the typed value.
        outer.push_str(&format!(", g{i}, v{i}::text AS t{i}"));
    }
    outer.push_str(&format!(" FROM ({inner}) s"));
    if after.is_some() {
        // After the cursor in the order (g0 ASC, v0 ASC|DESC, …, created_at, record_id): the
        // first differing component decides.
        let mut equal_so_far: Vec<String> = Vec::new();
        let mut branches: Vec<String> = Vec::new();
        for (i, key) in order.keys.iter().enumerate() {
            let g = placeholder();
            let v = format!("{}::{}", placeholder(), key.kind.cast());
            let v_cmp = if key.desc { "<" } else { ">" };
            let prefix = |extra: String, eq: &[String]| {
                eq.iter()
                    .cloned()
                    .chain(std::iter::once(extra))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            };
            branches.push(prefix(format!("g{i} > {g}::int4"), &equal_so_far));
            equal_so_far.push(format!("g{i} = {g}::int4"));
            branches.push(prefix(format!("v{i} {v_cmp} {v}"), &equal_so_far));
            equal_so_far.push(format!("v{i} = {v}"));
        }
        let (created, id) = (placeholder(), placeholder());
        equal_so_far.push(format!("(created_at, record_id) > ({created}, {id})"));
        branches.push(equal_so_far.join(" AND "));
        outer.push_str(" WHERE (");
        outer.push_str(
            &branches
                .iter()
                .map(|b| format!("({b})"))
                .collect::<Vec<_>>()
                .join(" OR "),
        );
        outer.push(')');
    }
    outer.push_str(" ORDER BY ");
    for (i, key) in order.keys.iter().enumerate() {
        let dir = if key.desc { "DESC" } else { "ASC" };
        outer.push_str(&format!("g{i} ASC, v{i} {dir}, "));
    }
    outer.push_str("created_at, record_id");
    if limit.is_some() {
        outer.push_str(&format!(" LIMIT {}", placeholder()));
    }

    let mut query = sqlx::query(AssertSqlSafe(outer));
    if let Some(p) = predicate {
        for arg in &p.args {
            query = match arg {
                pushdown::Arg::Text(s) => query.bind(s.clone()),
                pushdown::Arg::Number(n) => query.bind(*n),
                pushdown::Arg::Json(v) => query.bind(v.clone()),
            };
        }
    }
    query = query.bind(table_id.to_owned());
    if let Some(after) = after {
        for (group, value) in &after.keys {
            query = query.bind(*group).bind(value.clone());
        }
        query = query.bind(after.created_at).bind(after.id.clone());
    }
    if let Some(limit) = limit {
        query = query.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    }
    let rows = query
        .fetch_all(state.store.pool())
        .await
        .map_err(|e| RestError::internal("listing records", &e))?;
    let decode = |r: &sqlx::postgres::PgRow| -> Result<ScannedRow, sqlx::Error> {
        let id: String = r.try_get(0)?;
        let cells: Value = r.try_get(1)?;
        let created_at: DateTime<Utc> = r.try_get(2)?;
        let updated_at: DateTime<Utc> = r.try_get(3)?;
        let number: i64 = r.try_get(4)?;
        let mut keys = Vec::with_capacity(order.keys.len());
        for i in 0..order.keys.len() {
            keys.push((r.try_get::<i32, _>(5 + 2 * i)?, r.try_get(6 + 2 * i)?));
        }
        Ok(ScannedRow {
            at: After {
                keys,
                created_at,
                id: id.clone(),
            },
            row: Row::from_json_cells(id, &cells, created_at, updated_at).with_number(Some(number)),
        })
    };
    rows.iter()
        .map(decode)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RestError::internal("decoding listed records", &e))
}

/// Every row of `table_id` in creation order after `after`, narrowed by `predicate`, at most
/// `limit`.
///
/// # Errors
/// A bare 500 when the read model cannot be read.
pub async fn rows(
    state: &AppState,
    table_id: &str,
    predicate: Option<&pushdown::Sql>,
    after: Option<&After>,
    limit: Option<usize>,
) -> RestResult<Vec<Row>> {
    let scanned = fetch(state, table_id, &Order::creation(), predicate, after, limit).await?;
    Ok(scanned.into_iter().map(|s| s.row).collect())
}

/// The live rows of `table_id` among `ids` ([`super::computed::read_rows`] on this state).
///
/// # Errors
/// A bare 500 when the read model cannot be read.
pub async fn by_ids(state: &AppState, table_id: &str, ids: &[String]) -> RestResult<Vec<Row>> {
    let view = state.projections.names().rm_view("records");
    super::computed::read_rows(state.store.pool(), &view, table_id, ids)
        .await
        .map_err(|e| RestError::internal("reading records", &e))
}

/// What a scan found.
pub enum Scanned {
    /// Up to `take` matching rows and, when more match, the position after the last of them.
    Page(Vec<Row>, Option<After>),
    /// A row whose sort-key cell has not its field's JSON type: the in-memory path must order
    /// this listing.
    Mismatch,
}

/// Reads rows in `order` after `after`, fills their computed cells (`computed`), keeps those
/// `keep` accepts, and stops once `take + 1` are found or the table ends.
///
/// # Errors
/// A bare 500 when the read model cannot be read.
#[allow(clippy::too_many_arguments)] // the parts of one scan
pub async fn scan(
    state: &AppState,
    table_id: &str,
    order: &Order,
    predicate: Option<&pushdown::Sql>,
    after: Option<After>,
    take: usize,
    filtered: bool,
    computed: &Computed<'_>,
    keep: impl Fn(&Row) -> bool,
) -> RestResult<Scanned> {
    // Unfiltered, every row is kept: one chunk of take + 1 answers. Filtered, start with
    // twice that (half the rows matching is common) and grow, so a selective filter over a
    // large table costs a few queries rather than one per few hundred rows.
    let mut chunk = if filtered {
        ((take + 1) * 2).clamp(MIN_CHUNK, MAX_CHUNK)
    } else {
        take + 1
    };
    let mut position = after;
    let mut found: Vec<(Row, After)> = Vec::new();
    loop {
        let rows = fetch(
            state,
            table_id,
            order,
            predicate,
            position.as_ref(),
            Some(chunk),
        )
        .await?;
        let exhausted = rows.len() < chunk;
        if rows
            .iter()
            .any(|r| r.at.keys.iter().any(|(group, _)| *group == 0))
        {
            return Ok(Scanned::Mismatch);
        }
        let (mut chunk_rows, positions): (Vec<Row>, Vec<After>) =
            rows.into_iter().map(|s| (s.row, s.at)).unzip();
        if !computed.is_empty() {
            computed.fill(state, &mut chunk_rows).await?;
        }
        for (row, at) in chunk_rows.into_iter().zip(positions) {
            position = Some(at.clone());
            if keep(&row) {
                found.push((row, at));
                if found.len() > take {
                    found.truncate(take);
                    let next = found.last().map(|(_, at)| at.clone());
                    return Ok(Scanned::Page(
                        found.into_iter().map(|(row, _)| row).collect(),
                        next,
                    ));
                }
            }
        }
        if exhausted {
            return Ok(Scanned::Page(
                found.into_iter().map(|(row, _)| row).collect(),
                None,
            ));
        }
        chunk = (chunk * 4).min(MAX_CHUNK);
    }
}
