//! `records(tableId, filter, sort, first, after)`: typed filters and sorts on any field,
//! translated to SQL over the JSONB cells of the records read model, with keyset cursors.
//!
//! Every value a client gives travels as a bind parameter; the only text spliced into the SQL
//! is the read-model view's name and fixed operator fragments chosen by this code.
//! Missing cells are compared as JSON `null`, which sorts before every other JSON value, so
//! the order is total and a keyset cursor over `(sort keys…, created_at, record_id)` is exact.

use std::collections::HashMap;

use async_graphql::{Enum, InputObject, Json, SimpleObject};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use pyairtable_domain::base::Base;
use pyairtable_domain::ids::TableId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};

use super::access::Location;
use super::context::Services;
use super::error::{ApiError, ApiResult};
use super::types::{FieldNode, RecordNode};
use crate::rest::cells::Row;
use crate::rest::computed::Computed;

/// Default page size.
pub const DEFAULT_PAGE: usize = 25;
/// Largest page a client may ask for.
pub const MAX_PAGE: usize = 100;
/// Deepest nesting of `and`/`or`/`not` in a filter.
const MAX_FILTER_DEPTH: usize = 5;
/// Most sort keys.
const MAX_SORTS: usize = 8;

/// Checks `first` against the page-size limit.
///
/// # Errors
/// `VALIDATION` for a negative size or one above [`MAX_PAGE`].
pub fn page_size(first: Option<i32>) -> ApiResult<usize> {
    match first {
        None => Ok(DEFAULT_PAGE),
        Some(n) if n < 0 => Err(ApiError::validation("first must not be negative")),
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > MAX_PAGE {
                Err(ApiError::Validation {
                    message: format!("first must be at most {MAX_PAGE}, got {n}"),
                    reason: Some("PAGE_TOO_LARGE".to_owned()),
                })
            } else {
                Ok(n)
            }
        }
    }
}

/// A condition on records. Set `field` with one or more operators (all must hold), and/or
/// combine sub-filters with `and`, `or` and `not`.
#[derive(InputObject, Clone, Debug, Default)]
pub struct RecordFilter {
    /// The field the operators apply to: its name or its id.
    pub field: Option<String>,
    /// Equal to the value (for lists: exactly this list).
    pub eq: Option<Json<Value>>,
    /// Not equal to the value (empty cells included).
    pub neq: Option<Json<Value>>,
    /// Less than (numbers, dates and text).
    pub lt: Option<Json<Value>>,
    /// Less than or equal.
    pub lte: Option<Json<Value>>,
    /// Greater than.
    pub gt: Option<Json<Value>>,
    /// Greater than or equal.
    pub gte: Option<Json<Value>>,
    /// Text contains this (case-insensitive); a list contains this element.
    pub contains: Option<String>,
    /// The cell is empty (`true`) or not (`false`).
    pub is_empty: Option<bool>,
    /// Equal to one of the values (for lists: shares an element with them).
    #[graphql(name = "in")]
    pub in_: Option<Vec<Json<Value>>>,
    /// All of these hold.
    pub and: Option<Vec<RecordFilter>>,
    /// At least one of these holds.
    pub or: Option<Vec<RecordFilter>>,
    /// This does not hold.
    pub not: Option<Box<RecordFilter>>,
}

/// Sort direction.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortDirection {
    /// Smallest first (empty cells first).
    Asc,
    /// Largest first (empty cells last).
    Desc,
}

/// One sort key.
#[derive(InputObject, Clone, Debug)]
pub struct RecordSort {
    /// A field name or id.
    pub field: String,
    /// Direction (default ascending).
    #[graphql(default_with = "SortDirection::Asc")]
    pub direction: SortDirection,
}

/// A page of records.
#[derive(SimpleObject, Clone, Debug)]
pub struct RecordConnection {
    /// The records with their cursors.
    pub edges: Vec<RecordEdge>,
    /// The records alone.
    pub nodes: Vec<RecordNode>,
    /// Where the page ends.
    pub page_info: PageInfo,
    /// Records matching the filter (computed only when asked for).
    pub total_count: Option<i64>,
}

/// A record and its cursor.
#[derive(SimpleObject, Clone, Debug)]
pub struct RecordEdge {
    /// Pass it as `after` to continue after this record.
    pub cursor: String,
    /// The record.
    pub node: RecordNode,
}

/// Paging state.
#[derive(SimpleObject, Clone, Debug)]
pub struct PageInfo {
    /// Whether more records follow.
    pub has_next_page: bool,
    /// Cursor of the last record of the page.
    pub end_cursor: Option<String>,
}

/// How a field's cells compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Bool,
    Date,
    List,
    Other,
}

fn kind_of(field_type: &str) -> Kind {
    match field_type {
        "singleLineText" | "multilineText" | "richText" | "email" | "url" | "phoneNumber"
        | "singleSelect" => Kind::Text,
        "number" | "currency" | "percent" | "rating" | "duration" | "autoNumber" | "count" => {
            Kind::Number
        }
        "checkbox" => Kind::Bool,
        "date" | "dateTime" | "createdTime" | "lastModifiedTime" => Kind::Date,
        "multipleSelects"
        | "multipleRecordLinks"
        | "multipleAttachments"
        | "multipleLookupValues" => Kind::List,
        _ => Kind::Other,
    }
}

/// Field types whose cells are computed on read from other cells or records, so the stored
/// cells a filter or sort reads do not hold them (see [`RowColumn`] for those that can be read).
fn is_computed(field_type: &str) -> bool {
    matches!(
        field_type,
        "formula" | "multipleLookupValues" | "rollup" | "count"
    )
}

/// Cells a query that filters or sorts on them reads as the APIs show them rather than as
/// stored: computed fields whose value is a column of the row, and link cells, which leave out
/// the records deleted since they were linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowColumn {
    Created,
    Modified,
    Number,
    LiveLinks,
}

impl RowColumn {
    fn of(field_type: &str) -> Option<Self> {
        match field_type {
            "createdTime" => Some(Self::Created),
            "lastModifiedTime" => Some(Self::Modified),
            "autoNumber" => Some(Self::Number),
            "multipleRecordLinks" => Some(Self::LiveLinks),
            _ => None,
        }
    }

    /// The cell of field `id` as jsonb, from the records view `view` aliased `v`: times as the
    /// APIs print them (UTC, milliseconds, `Z`), so they compare as text like date cells do;
    /// links in their order, live ones only (JSON null when none is left).
    fn sql(self, id: &str, view: &str) -> String {
        let iso = |column: &str| {
            format!(
                r#"to_jsonb(to_char(v.{column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))"#
            )
        };
        match self {
            Self::Created => iso("created_at"),
            Self::Modified => iso("updated_at"),
            Self::Number => "to_jsonb(v.autonumber)".to_owned(),
            Self::LiveLinks => format!(
                "(SELECT jsonb_agg(e.value ORDER BY e.n) \
                    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(v.cells -> '{id}') = 'array' \
                                                   THEN v.cells -> '{id}' ELSE '[]'::jsonb END) \
                         WITH ORDINALITY AS e(value, n) \
                   WHERE EXISTS (SELECT 1 FROM {view} x \
                                  WHERE x.record_id = e.value #>> '{{}}' AND NOT x.deleted))"
            ),
        }
    }
}

/// A filter or sort key resolved: the field's id, how its cells compare, its name, whether it
/// is computed, and the row column it is read from, if it is one.
#[derive(Clone)]
struct FieldKey {
    id: String,
    kind: Kind,
    name: String,
    computed: bool,
    column: Option<RowColumn>,
}

/// The table's fields by name and by id, for resolving filter and sort keys.
struct Fields {
    by_key: HashMap<String, FieldKey>,
    by_lower_name: HashMap<String, FieldKey>,
}

impl Fields {
    fn new(fields: &[FieldNode]) -> Self {
        let mut by_key = HashMap::new();
        let mut by_lower_name = HashMap::new();
        for f in fields {
            let entry = FieldKey {
                id: f.id.to_string(),
                kind: kind_of(&f.field_type),
                name: f.name.clone(),
                computed: is_computed(&f.field_type),
                column: RowColumn::of(&f.field_type),
            };
            by_key.insert(f.id.to_string(), entry.clone());
            by_lower_name.insert(f.name.to_lowercase(), entry.clone());
            by_key.insert(f.name.clone(), entry);
        }
        Self {
            by_key,
            by_lower_name,
        }
    }

    fn get(&self, key: &str) -> Option<&FieldKey> {
        self.by_key
            .get(key)
            .or_else(|| self.by_lower_name.get(&key.to_lowercase()))
    }

    /// The cells read otherwise than as stored ([`RowColumn`]) that the filter and sort keys
    /// name, with their field ids, each once.
    fn columns_used(
        &self,
        filter: Option<&RecordFilter>,
        sort: &[RecordSort],
    ) -> Vec<(String, RowColumn)> {
        let mut keys: Vec<&str> = sort.iter().map(|s| s.field.as_str()).collect();
        let mut pending: Vec<&RecordFilter> = filter.into_iter().collect();
        // Depth is checked when the filter is built; this walk is iterative either way.
        while let Some(f) = pending.pop() {
            keys.extend(f.field.as_deref());
            pending.extend(f.and.iter().flatten());
            pending.extend(f.or.iter().flatten());
            pending.extend(f.not.as_deref());
        }
        let mut used: Vec<(String, RowColumn)> = Vec::new();
        for key in keys {
            if let Some(FieldKey {
                id,
                column: Some(column),
                ..
            }) = self.get(key)
                && !used.iter().any(|(u, _)| u == id)
            {
                used.push((id.clone(), *column));
            }
        }
        used
    }

    /// The field `key` names, by id or name; refused when unknown or computed from other cells
    /// (filters and sorts run in the database, on the stored cells, where such a field has
    /// none).
    fn resolve(&self, key: &str) -> ApiResult<(String, Kind)> {
        let field = self.get(key).ok_or_else(|| ApiError::Validation {
            message: format!("unknown field {key:?} in this table"),
            reason: Some("UNKNOWN_FIELD_NAME".to_owned()),
        })?;
        if field.computed {
            return Err(ApiError::Validation {
                message: format!(
                    "field {:?} is computed on read: GraphQL filters and sorts apply to stored \
                     cells only (the REST API's filterByFormula and sort evaluate computed \
                     fields)",
                    field.name
                ),
                reason: Some("COMPUTED_FIELD".to_owned()),
            });
        }
        Ok((field.id.clone(), field.kind))
    }
}

/// The cursor: the sort keys' values, the tie-breakers, and a fingerprint of the sort so a
/// cursor cannot be replayed against another order.
#[derive(Serialize, Deserialize)]
struct Cursor {
    s: String,
    k: Vec<Value>,
    c: DateTime<Utc>,
    r: String,
}

fn sort_fingerprint(sort: &[(String, SortDirection)]) -> String {
    let mut out = String::new();
    for (field, dir) in sort {
        out.push_str(field);
        out.push(if *dir == SortDirection::Asc { '+' } else { '-' });
    }
    out
}

fn encode_cursor(cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

fn decode_cursor(text: &str, fingerprint: &str, keys: usize) -> ApiResult<Cursor> {
    let invalid = || ApiError::Validation {
        message: "after is not a cursor of this query (filter and sort must stay the same)"
            .to_owned(),
        reason: Some("INVALID_CURSOR".to_owned()),
    };
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if cursor.s != fingerprint || cursor.k.len() != keys {
        return Err(invalid());
    }
    Ok(cursor)
}

/// The JSON value of a field's cell, with missing cells as JSON null.
fn push_cell(q: &mut QueryBuilder<Postgres>, field_id: &str) {
    q.push("coalesce(r.cells -> ");
    q.push_bind(field_id.to_owned());
    q.push(", 'null'::jsonb)");
}

fn push_raw_cell(q: &mut QueryBuilder<Postgres>, field_id: &str) {
    q.push("(r.cells -> ");
    q.push_bind(field_id.to_owned());
    q.push(")");
}

fn check_scalar(kind: Kind, op: &str, value: &Value) -> ApiResult<()> {
    let ok = match kind {
        Kind::Number => value.is_number(),
        Kind::Bool => value.is_boolean(),
        Kind::Text | Kind::Date => value.is_string(),
        Kind::List => value.is_array() || value.is_string(),
        Kind::Other => true,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::Validation {
            message: format!("{op}: {value} does not fit a {kind:?} field").to_lowercase(),
            reason: Some("INVALID_FILTER_VALUE".to_owned()),
        })
    }
}

fn push_compare(
    q: &mut QueryBuilder<Postgres>,
    field_id: &str,
    kind: Kind,
    op: &str,
    sql_op: &str,
    value: &Value,
) -> ApiResult<()> {
    match kind {
        Kind::Number => {
            check_scalar(kind, op, value)?;
            q.push("(jsonb_typeof(r.cells -> ");
            q.push_bind(field_id.to_owned());
            q.push(") = 'number' AND ");
            push_raw_cell(q, field_id);
            q.push(format!(" {sql_op} "));
            q.push_bind(value.clone());
            q.push("::jsonb)");
        }
        Kind::Text | Kind::Date => {
            check_scalar(kind, op, value)?;
            if kind == Kind::Date {
                let text = value.as_str().unwrap_or_default();
                let parses = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
                    || DateTime::parse_from_rfc3339(text).is_ok();
                if !parses {
                    return Err(ApiError::Validation {
                        message: format!(
                            "{op}: {text:?} is not a date (YYYY-MM-DD) or an RFC 3339 instant"
                        ),
                        reason: Some("INVALID_FILTER_VALUE".to_owned()),
                    });
                }
            }
            // ISO dates and instants in one format compare correctly as text.
            q.push("(r.cells ->> ");
            q.push_bind(field_id.to_owned());
            q.push(format!(") {sql_op} "));
            q.push_bind(value.as_str().unwrap_or_default().to_owned());
        }
        Kind::Bool | Kind::List | Kind::Other => {
            return Err(ApiError::Validation {
                message: format!("{op} does not apply to this field's type"),
                reason: Some("INVALID_FILTER_OPERATOR".to_owned()),
            });
        }
    }
    Ok(())
}

fn empty_values() -> &'static str {
    "('null'::jsonb, '\"\"'::jsonb, '[]'::jsonb, 'false'::jsonb)"
}

fn push_filter(
    q: &mut QueryBuilder<Postgres>,
    fields: &Fields,
    filter: &RecordFilter,
    depth: usize,
) -> ApiResult<()> {
    if depth > MAX_FILTER_DEPTH {
        return Err(ApiError::validation(format!(
            "filters nest at most {MAX_FILTER_DEPTH} levels deep"
        )));
    }
    q.push("(TRUE");
    let has_op = filter.eq.is_some()
        || filter.neq.is_some()
        || filter.lt.is_some()
        || filter.lte.is_some()
        || filter.gt.is_some()
        || filter.gte.is_some()
        || filter.contains.is_some()
        || filter.is_empty.is_some()
        || filter.in_.is_some();
    match (&filter.field, has_op) {
        (None, true) => {
            return Err(ApiError::validation(
                "a filter with an operator needs `field`",
            ));
        }
        (Some(_), false) => {
            return Err(ApiError::validation(
                "a filter with `field` needs an operator (eq, neq, lt, lte, gt, gte, contains, isEmpty, in)",
            ));
        }
        _ => {}
    }
    if let Some(key) = &filter.field {
        let (id, kind) = fields.resolve(key)?;
        if let Some(Json(value)) = &filter.eq {
            q.push(" AND ");
            if value.is_null() {
                q.push("(coalesce(r.cells -> ");
                q.push_bind(id.clone());
                q.push(format!(", 'null'::jsonb) IN {})", empty_values()));
            } else if kind == Kind::Bool {
                check_scalar(kind, "eq", value)?;
                q.push("(coalesce(r.cells -> ");
                q.push_bind(id.clone());
                q.push(", 'false'::jsonb) = ");
                q.push_bind(value.clone());
                q.push("::jsonb)");
            } else {
                check_scalar(kind, "eq", value)?;
                push_cell(q, &id);
                q.push(" = ");
                q.push_bind(value.clone());
                q.push("::jsonb");
            }
        }
        if let Some(Json(value)) = &filter.neq {
            q.push(" AND NOT (");
            if kind == Kind::Bool {
                check_scalar(kind, "neq", value)?;
                q.push("coalesce(r.cells -> ");
                q.push_bind(id.clone());
                q.push(", 'false'::jsonb)");
            } else {
                if !value.is_null() {
                    check_scalar(kind, "neq", value)?;
                }
                push_cell(q, &id);
            }
            q.push(" = ");
            q.push_bind(value.clone());
            q.push("::jsonb)");
        }
        for (op, sql_op, value) in [
            ("lt", "<", &filter.lt),
            ("lte", "<=", &filter.lte),
            ("gt", ">", &filter.gt),
            ("gte", ">=", &filter.gte),
        ] {
            if let Some(Json(value)) = value {
                q.push(" AND ");
                push_compare(q, &id, kind, op, sql_op, value)?;
            }
        }
        if let Some(needle) = &filter.contains {
            q.push(" AND ");
            match kind {
                Kind::List => {
                    push_cell(q, &id);
                    q.push(" @> jsonb_build_array(");
                    q.push_bind(needle.clone());
                    q.push("::text)");
                }
                _ => {
                    q.push("strpos(lower(r.cells ->> ");
                    q.push_bind(id.clone());
                    q.push("), lower(");
                    q.push_bind(needle.clone());
                    q.push(")) > 0");
                }
            }
        }
        if let Some(empty) = filter.is_empty {
            q.push(if empty { " AND " } else { " AND NOT " });
            q.push("(coalesce(r.cells -> ");
            q.push_bind(id.clone());
            q.push(format!(", 'null'::jsonb) IN {})", empty_values()));
        }
        if let Some(values) = &filter.in_ {
            if values.len() > 1000 {
                return Err(ApiError::validation("in takes at most 1000 values"));
            }
            let values: Vec<Value> = values.iter().map(|v| v.0.clone()).collect();
            for v in &values {
                check_scalar(kind, "in", v)?;
            }
            q.push(" AND ");
            if kind == Kind::List {
                q.push("EXISTS (SELECT 1 FROM jsonb_array_elements(");
                push_cell(q, &id);
                q.push(" || '[]'::jsonb) AS e(v) WHERE e.v IN (SELECT jsonb_array_elements(");
                q.push_bind(Value::Array(values));
                q.push("::jsonb)))");
            } else {
                push_cell(q, &id);
                q.push(" IN (SELECT jsonb_array_elements(");
                q.push_bind(Value::Array(values));
                q.push("::jsonb))");
            }
        }
    }
    if let Some(all) = &filter.and {
        for sub in all {
            q.push(" AND ");
            push_filter(q, fields, sub, depth + 1)?;
        }
    }
    if let Some(any) = &filter.or {
        q.push(" AND (FALSE");
        for sub in any {
            q.push(" OR ");
            push_filter(q, fields, sub, depth + 1)?;
        }
        q.push(")");
    }
    if let Some(not) = &filter.not {
        q.push(" AND NOT ");
        push_filter(q, fields, not, depth + 1)?;
    }
    q.push(")");
    Ok(())
}

/// The keyset condition "after this cursor" for keys with mixed directions:
/// `k1 > v1 OR (k1 = v1 AND k2 > v2) OR ...`, ending with the tie-breakers.
fn push_after(q: &mut QueryBuilder<Postgres>, sort: &[(String, SortDirection)], cursor: &Cursor) {
    let n = sort.len();
    q.push(" AND (FALSE");
    for i in 0..=n + 1 {
        q.push(" OR (TRUE");
        for (j, (field_id, _)) in sort.iter().enumerate().take(i.min(n)) {
            q.push(" AND ");
            push_cell(q, field_id);
            q.push(" = ");
            q.push_bind(cursor.k[j].clone());
            q.push("::jsonb");
        }
        if i > n {
            q.push(" AND r.created_at = ");
            q.push_bind(cursor.c);
        }
        q.push(" AND ");
        if i < n {
            let (field_id, dir) = &sort[i];
            push_cell(q, field_id);
            q.push(if *dir == SortDirection::Asc {
                " > "
            } else {
                " < "
            });
            q.push_bind(cursor.k[i].clone());
            q.push("::jsonb");
        } else if i == n {
            q.push("r.created_at > ");
            q.push_bind(cursor.c);
        } else {
            q.push("r.record_id > ");
            q.push_bind(cursor.r.clone());
        }
        q.push(")");
    }
    q.push(")");
}

type RecordRow = (
    String,
    Option<String>,
    Value,
    i64,
    bool,
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
    Value,
);

/// The rows a records query reads, aliased `r`: the records view, with `stored_cells` the
/// stored cells, and `cells` those with the cells the query filters or sorts on that read
/// otherwise ([`RowColumn`]), under their field ids. Field ids are `fld` and 14 letters or digits (checked when a field is
/// made), so they are written into the statement as literals.
fn row_source(view: &str, columns: &[(String, RowColumn)]) -> String {
    if columns.is_empty() {
        return format!("(SELECT v.*, v.cells AS stored_cells FROM {view} v) r");
    }
    let mut added = String::new();
    for (i, (id, column)) in columns.iter().enumerate() {
        if i > 0 {
            added.push_str(", ");
        }
        let literal: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
        added.push_str(&format!("'{literal}', {}", column.sql(&literal, view)));
    }
    format!(
        "(SELECT v.record_id, v.table_id, v.version, v.deleted, v.created_at, v.updated_at, \
                 v.autonumber, v.cells AS stored_cells, \
                 v.cells || jsonb_build_object({added}) AS cells \
            FROM {view} v) r"
    )
}

/// Runs a records query on the read model.
///
/// # Errors
/// `VALIDATION` for unknown fields, wrong value types, bad cursors; `INTERNAL` for database
/// failures.
#[allow(clippy::too_many_arguments)]
pub async fn query_records(
    svc: &Services,
    at: &Location,
    table_id: &TableId,
    filter: Option<&RecordFilter>,
    sort: &[RecordSort],
    first: usize,
    after: Option<&str>,
    want_total: bool,
) -> ApiResult<RecordConnection> {
    if sort.len() > MAX_SORTS {
        return Err(ApiError::validation(format!(
            "at most {MAX_SORTS} sort keys"
        )));
    }
    let needs_fields = filter.is_some() || !sort.is_empty();
    let fields = if needs_fields {
        Fields::new(&FieldNode::of_table(svc, table_id.as_str()).await?)
    } else {
        Fields::new(&[])
    };
    let mut keys = Vec::with_capacity(sort.len());
    for s in sort {
        keys.push((fields.resolve(&s.field)?.0, s.direction));
    }
    let fingerprint = sort_fingerprint(&keys);
    let cursor = after
        .map(|a| decode_cursor(a, &fingerprint, keys.len()))
        .transpose()?;

    let view = svc.view("records");
    let source = row_source(&view, &fields.columns_used(filter, sort));
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT r.record_id, r.table_id, r.stored_cells, r.version, r.deleted, r.created_at, r.updated_at, r.autonumber, jsonb_build_array(",
    );
    for (i, (field_id, _)) in keys.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        push_cell(&mut q, field_id);
    }
    q.push(format!(") FROM {source} WHERE r.table_id = "));
    q.push_bind(table_id.to_string());
    q.push(" AND NOT r.deleted");
    let mut where_start = None;
    if let Some(filter) = filter {
        q.push(" AND ");
        where_start = Some(());
        push_filter(&mut q, &fields, filter, 0)?;
    }
    let total = if want_total {
        // Same predicate, counted separately (built again: a builder's binds are consumed).
        let mut c = QueryBuilder::<Postgres>::new(format!(
            "SELECT count(*) FROM {source} WHERE r.table_id = "
        ));
        c.push_bind(table_id.to_string());
        c.push(" AND NOT r.deleted");
        if let (Some(filter), Some(())) = (filter, where_start) {
            c.push(" AND ");
            push_filter(&mut c, &fields, filter, 0)?;
        }
        let n: i64 = c.build_query_scalar().fetch_one(&svc.pool).await?;
        Some(n)
    } else {
        None
    };
    if let Some(cursor) = &cursor {
        push_after(&mut q, &keys, cursor);
    }
    q.push(" ORDER BY ");
    for (field_id, dir) in &keys {
        push_cell(&mut q, field_id);
        q.push(if *dir == SortDirection::Asc {
            " ASC, "
        } else {
            " DESC, "
        });
    }
    q.push("r.created_at ASC, r.record_id ASC LIMIT ");
    q.push_bind(i64::try_from(first + 1).unwrap_or(i64::MAX));
    let mut rows: Vec<RecordRow> = q.build_query_as().fetch_all(&svc.pool).await?;
    let has_next_page = rows.len() > first;
    rows.truncate(first);
    let mut edges: Vec<RecordEdge> = rows
        .into_iter()
        .map(
            |(
                id,
                table,
                cells,
                version,
                deleted,
                created_at,
                updated_at,
                autonumber,
                sort_values,
            )| {
                let cursor = encode_cursor(&Cursor {
                    s: fingerprint.clone(),
                    k: sort_values.as_array().cloned().unwrap_or_default(),
                    c: created_at,
                    r: id.clone(),
                });
                RecordEdge {
                    cursor,
                    node: RecordNode {
                        id: async_graphql::ID(id),
                        table_id: table.map(async_graphql::ID),
                        cells: Json(cells),
                        version,
                        deleted,
                        created_at: Some(created_at),
                        updated_at: Some(updated_at),
                        workspace_id: Some(at.workspace_id.clone()),
                        base_id: at.base_id.clone(),
                        autonumber: Some(autonumber),
                    },
                }
            },
        )
        .collect();
    let mut nodes: Vec<&mut RecordNode> = edges.iter_mut().map(|e| &mut e.node).collect();
    fill_computed(svc, &mut nodes).await?;
    Ok(connection(edges, has_next_page, total))
}

/// Fills the computed cells of records of one table (formulas, lookups, rollups, counts,
/// created and modified times), as the REST API shows them: the read model stores only the
/// cells written. Formulas see UTC. Records of another table than the first's are left as
/// they are.
///
/// # Errors
/// `INTERNAL` when the base or the linked records cannot be read.
pub async fn fill_computed(svc: &Services, nodes: &mut [&mut RecordNode]) -> ApiResult<()> {
    let Some(first) = nodes.first() else {
        return Ok(());
    };
    let (Some(base_id), Some(table_id)) = (first.base_id.clone(), first.table_id.clone()) else {
        return Ok(());
    };
    let base = svc.platform.runner().load::<Base>(base_id.as_str()).await?;
    let Some(table) = base
        .state
        .tables
        .iter()
        .find(|t| t.id.as_str() == table_id.as_str())
    else {
        return Ok(());
    };
    let computed = Computed::of(&base.state.tables, table, Utc::now(), chrono_tz::UTC);
    if computed.is_empty() {
        return Ok(());
    }
    let mine = |n: &RecordNode| n.table_id.as_ref() == Some(&table_id);
    let mut rows: Vec<Row> = nodes
        .iter()
        .filter(|n| mine(n))
        .map(|n| {
            let created = n.created_at.unwrap_or(DateTime::UNIX_EPOCH);
            Row::from_json_cells(
                n.id.to_string(),
                &n.cells.0,
                created,
                n.updated_at.unwrap_or(created),
            )
            .with_number(n.autonumber)
        })
        .collect();
    computed
        .fill_from(&svc.pool, &svc.view("records"), &mut rows)
        .await?;
    for (node, row) in nodes.iter_mut().filter(|n| mine(n)).zip(rows) {
        node.cells = Json(Value::Object(
            row.cells
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect(),
        ));
    }
    Ok(())
}

/// Assembles a connection from its edges.
pub fn connection(
    edges: Vec<RecordEdge>,
    has_next_page: bool,
    total: Option<i64>,
) -> RecordConnection {
    RecordConnection {
        nodes: edges.iter().map(|e| e.node.clone()).collect(),
        page_info: PageInfo {
            has_next_page,
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        },
        edges,
        total_count: total,
    }
}
