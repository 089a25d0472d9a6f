//! Records under `/v0/{baseId}/{tableIdOrName}`: list (GET and `POST .../listRecords`), get,
//! create, update (PATCH merges, PUT replaces), upsert, delete.
//!
//! Reads come from the records read model. A listing scans it with a keyset cursor
//! ([`super::scan`]): in creation order, or in its sort order where SQL orders exactly as
//! [`compare_rows`] does, evaluating the filter formula on each row read and stopping after the
//! page; other sorts are done in memory. The SQL pre-filter of [`super::pushdown`] only narrows
//! the rows read. Writes go through [`pyairtable_commands::Platform`] (an upsert's creates and
//! updates in one atomic write) and wait until the read model shows them before answering
//! (read-your-writes).

use std::cmp::Ordering;
use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::Method;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use pyairtable_commands::service::{RecordUpdate, RecordView, RecordsWritten};
use pyairtable_domain::base::{SortDirection, TableSchema};
use pyairtable_domain::fields::{FieldDef, FieldType};
use pyairtable_domain::formula::{self, Expr, Value as FValue};
use pyairtable_domain::ids::{FieldId, RecordId};
use pyairtable_domain::permissions::Action;
use pyairtable_eventstore::Position;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::access::{OpenBase, RestCaller, open_base};
use super::body::{JsonBody, parse};
use super::cells::{Locale, Render, Row};
use super::computed::Computed;
use super::error::{RestError, RestResult};
use super::limits::check_rate;
use super::params::{CellFormat, Cursor, ListParams, Offset, fingerprint, query_pairs};
use super::{pushdown, scan};
use crate::state::AppState;

/// The projection REST reads records from.
const RECORDS_PROJECTION: &str = "records";

/// Opens a base for `actions` and counts the request against the base's rate limit.
pub(crate) async fn open_limited(
    state: &AppState,
    caller: &RestCaller,
    base_id: &str,
    actions: &[Action],
) -> RestResult<OpenBase> {
    let open = open_base(state, caller, base_id, actions).await?;
    check_rate(state, open.id.as_str()).await?;
    Ok(open)
}

/// Waits until the records read model shows a write at `position`. A write that was applied is
/// answered as applied even if the read model lags past the wait: an error would make the
/// client retry a write that already happened.
pub(crate) async fn settle(state: &AppState, projection: &str, position: &str) {
    let position = match position.parse::<Position>() {
        Ok(p) => p,
        Err(error) => {
            tracing::error!(%error, position, "a write returned an unreadable position");
            return;
        }
    };
    if let Err(error) = state
        .projections
        .wait_for(projection, &position, state.rest.write_wait)
        .await
    {
        tracing::warn!(%error, projection, "answering a write before the read model shows it");
    }
}

/// One record from the read model, if it is a live record of `table`.
async fn fetch_row(
    state: &AppState,
    table: &TableSchema,
    record_id: &str,
) -> RestResult<Option<Row>> {
    let mut rows = scan::by_ids(state, table.id.as_str(), &[record_id.to_owned()]).await?;
    Ok(rows.pop())
}

/// The field `key` names: exactly by name, or by id.
fn field_named<'t>(table: &'t TableSchema, key: &str) -> Option<&'t FieldDef> {
    table
        .fields
        .iter()
        .find(|f| f.name == key)
        .or_else(|| table.fields.iter().find(|f| f.id.as_str() == key))
}

fn unknown_field(key: &str) -> RestError {
    RestError::unprocessable(
        "UNKNOWN_FIELD_NAME",
        format!("Unknown field name: \"{key}\""),
    )
}

/// The `userLocale` asked for; American English when none is given (JSON cells ignore it).
fn parse_locale(raw: Option<&str>) -> RestResult<Locale> {
    match raw {
        None => Ok(Locale::EnUs),
        Some(tag) => Locale::parse(tag).ok_or_else(|| {
            RestError::invalid_request(format!(
                "userLocale {tag:?} is not supported; use one of {}",
                Locale::ACCEPTED.join(", ")
            ))
        }),
    }
}

fn parse_tz(raw: Option<&str>) -> RestResult<Tz> {
    match raw {
        None => Ok(chrono_tz::UTC),
        Some(name) => name.parse::<Tz>().map_err(|_| {
            RestError::invalid_request(format!("timeZone {name:?} is not a known IANA time zone"))
        }),
    }
}

/// A listing's query, resolved against the table.
struct Plan<'t> {
    filter: Option<Expr>,
    sorts: Vec<(&'t FieldDef, SortDirection)>,
    render: Render<'t>,
    page_size: usize,
    max_records: Option<usize>,
    fingerprint: u64,
    tz: Tz,
}

fn plan<'t>(table: &'t TableSchema, p: &ListParams) -> RestResult<Plan<'t>> {
    let page_size = p.page_size()?;
    let tz = parse_tz(p.time_zone.as_deref())?;
    if p.cell_format == CellFormat::String && (p.time_zone.is_none() || p.user_locale.is_none()) {
        return Err(RestError::invalid_request(
            "The cellFormat string requires the timeZone and userLocale parameters",
        ));
    }
    let locale = parse_locale(p.user_locale.as_deref())?;
    let view = match &p.view {
        None => None,
        Some(key) => Some(
            table
                .views
                .iter()
                .find(|v| v.name == *key)
                .or_else(|| table.views.iter().find(|v| v.id.as_str() == key))
                .ok_or_else(|| {
                    RestError::unprocessable(
                        "VIEW_NAME_NOT_FOUND",
                        format!("Could not find view {key:?} in table {}", table.name),
                    )
                })?,
        ),
    };
    let only = match &p.fields {
        None => None,
        Some(keys) => Some(
            keys.iter()
                .map(|k| {
                    field_named(table, k)
                        .map(|f| f.id.clone())
                        .ok_or_else(|| unknown_field(k))
                })
                .collect::<RestResult<Vec<FieldId>>>()?,
        ),
    };
    let mut formulas: Vec<&str> = Vec::new();
    if let Some(f) = view.and_then(|v| v.filter_formula.as_deref()) {
        formulas.push(f);
    }
    if let Some(f) = p
        .filter_by_formula
        .as_deref()
        .filter(|f| !f.trim().is_empty())
    {
        formulas.push(f);
    }
    let filter = match formulas.as_slice() {
        [] => None,
        [one] => Some(parse_filter(table, one)?),
        [view_filter, param] => Some(Expr::Call {
            function: formula::Function::And,
            args: vec![
                parse_filter(table, view_filter)?,
                parse_filter(table, param)?,
            ],
        }),
        _ => None,
    };
    let sorts = if p.sort.is_empty() {
        view.map(|v| {
            v.sorts
                .iter()
                .filter_map(|s| table.field(&s.field_id).map(|f| (f, s.direction)))
                .collect()
        })
        .unwrap_or_default()
    } else {
        p.sort
            .iter()
            .map(|s| {
                let field = field_named(table, &s.field).ok_or_else(|| unknown_field(&s.field))?;
                let direction = match s.direction.as_deref() {
                    None | Some("asc") => SortDirection::Asc,
                    Some("desc") => SortDirection::Desc,
                    Some(other) => {
                        return Err(RestError::invalid_request(format!(
                            "sort direction must be asc or desc, got {other:?}"
                        )));
                    }
                };
                Ok((field, direction))
            })
            .collect::<RestResult<Vec<_>>>()?
    };
    let sort_ids: Vec<(&str, SortDirection)> =
        sorts.iter().map(|(f, d)| (f.id.as_str(), *d)).collect();
    let fingerprint = list_fingerprint(
        table.id.as_str(),
        &formulas,
        &sort_ids,
        p.view.as_deref(),
        p.time_zone.as_deref(),
    );
    Ok(Plan {
        filter,
        sorts,
        render: Render {
            table,
            only,
            by_id: p.return_fields_by_field_id,
            format: p.cell_format,
            tz,
            locale,
        },
        page_size,
        max_records: p.max_records,
        fingerprint,
        tz,
    })
}

/// The fingerprint an offset token of a listing carries: the table, its filter formulas (the
/// view's, then `filterByFormula`), its sort keys by field id, the view asked for and the time
/// zone (which `TODAY()` and `NOW()` comparisons depend on). A token is only accepted by a
/// listing with the same fingerprint.
#[must_use]
pub fn list_fingerprint(
    table_id: &str,
    formulas: &[&str],
    sorts: &[(&str, SortDirection)],
    view: Option<&str>,
    time_zone: Option<&str>,
) -> u64 {
    let sort_text: Vec<String> = sorts.iter().map(|(id, d)| format!("{id}:{d:?}")).collect();
    fingerprint(&[
        table_id,
        &formulas.join("\u{1}"),
        &sort_text.join(","),
        view.unwrap_or(""),
        time_zone.unwrap_or(""),
    ])
}

fn parse_filter(table: &TableSchema, src: &str) -> RestResult<Expr> {
    formula::parse_for_table(src, &table.fields).map_err(|e| {
        RestError::unprocessable(
            "INVALID_FILTER_BY_FORMULA",
            format!(
                "The formula for filtering records is invalid: {}",
                e.message()
            ),
        )
    })
}

/// Orders two rows by the plan's sort keys; blanks sort first ascending, as in Airtable.
fn compare_rows(sorts: &[(&FieldDef, SortDirection)], a: &Row, b: &Row) -> Ordering {
    for (field, direction) in sorts {
        let read = |row: &Row| {
            FValue::from_cell(
                &field.field_type,
                row.cells.get(&field.id).unwrap_or(&Value::Null),
            )
        };
        let (va, vb) = (read(a), read(b));
        let ordering = match (va.is_empty(), vb.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => match formula::compare(&va, &vb) {
                Ok(Some(o)) => o,
                _ => va
                    .display_string()
                    .to_lowercase()
                    .cmp(&vb.display_string().to_lowercase()),
            },
        };
        let ordering = match direction {
            SortDirection::Asc => ordering,
            SortDirection::Desc => ordering.reverse(),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

fn invalid_offset() -> RestError {
    RestError::unprocessable("INVALID_OFFSET_VALUE", "The offset is invalid")
}

/// Longest offset token a sorted keyset cursor may make; past it (a long text sort key) the
/// listing goes on with an index cursor over the in-memory order, which is the same order.
const MAX_SORTED_TOKEN: usize = 2_048;

/// One page of a listing with computed cells filled in, and where the next one starts.
///
/// Without an index cursor, rows are scanned in the listing's order in chunks ([`scan`]):
/// creation order, or the sort keys when SQL orders them exactly as [`compare_rows`] does. The
/// filter is evaluated on each row read and the scan stops at the first row past the page.
/// Otherwise (a sort that SQL cannot order, an index cursor, a cell of an unexpected type) every
/// candidate is read, filtered and sorted in memory: the reference the scans must agree with.
#[allow(clippy::too_many_arguments)] // the parts of one listing
async fn page(
    state: &AppState,
    table: &TableSchema,
    plan: &Plan<'_>,
    predicate: Option<&pushdown::Sql>,
    cursor: Option<Cursor>,
    returned: usize,
    take: usize,
    computed: &Computed<'_>,
    now: DateTime<Utc>,
) -> RestResult<(Vec<Row>, Option<Cursor>)> {
    let order = if plan.sorts.is_empty() {
        Some(scan::Order::creation())
    } else {
        scan::Order::of_sorts(&plan.sorts)
    };
    let keyset = |created_us: i64, id: String, keys: Vec<(i32, String)>| {
        Ok::<_, RestError>(scan::After {
            keys,
            created_at: DateTime::from_timestamp_micros(created_us).ok_or_else(invalid_offset)?,
            id,
        })
    };
    let after = match (&order, cursor) {
        (_, Some(Cursor::Index { skip })) => {
            return in_memory(state, table, plan, predicate, skip, take, computed, now).await;
        }
        (None, None) => {
            return in_memory(state, table, plan, predicate, 0, take, computed, now).await;
        }
        (None, Some(_)) => return Err(invalid_offset()),
        (Some(_), None) => None,
        (Some(order), Some(Cursor::Keyset { created_us, id })) if order.is_empty() => {
            Some(keyset(created_us, id, Vec::new())?)
        }
        (
            Some(order),
            Some(Cursor::Sorted {
                keys,
                created_us,
                id,
            }),
        ) if !order.is_empty() && keys.len() == order.len() => Some(keyset(created_us, id, keys)?),
        (Some(_), Some(_)) => return Err(invalid_offset()),
    };
    let Some(order) = order else {
        return Err(invalid_offset());
    };
    let scanned = scan::scan(
        state,
        table.id.as_str(),
        &order,
        predicate,
        after,
        take,
        plan.filter.is_some(),
        computed,
        |row| {
            plan.filter
                .as_ref()
                .is_none_or(|f| formula::eval(f, &row.context(table, now, plan.tz)).is_truthy())
        },
    )
    .await?;
    match scanned {
        scan::Scanned::Page(rows, next) => {
            let next = next.map(|at| {
                let created_us = at.created_at.timestamp_micros();
                if order.is_empty() {
                    return Cursor::Keyset {
                        created_us,
                        id: at.id,
                    };
                }
                let sorted = Cursor::Sorted {
                    keys: at.keys,
                    created_us,
                    id: at.id,
                };
                let token_len = Offset {
                    query: plan.fingerprint,
                    cursor: sorted.clone(),
                    returned,
                }
                .encode()
                .len();
                if token_len > MAX_SORTED_TOKEN {
                    Cursor::Index {
                        skip: returned + rows.len(),
                    }
                } else {
                    sorted
                }
            });
            Ok((rows, next))
        }
        // The in-memory order is the reference; going on from the records already sent keeps
        // the listing consistent with its earlier pages.
        scan::Scanned::Mismatch => {
            in_memory(state, table, plan, predicate, returned, take, computed, now).await
        }
    }
}

/// The in-memory path: every candidate row read, computed, filtered, stably sorted (ties keep
/// creation order), and `take` rows after the first `skip` returned.
#[allow(clippy::too_many_arguments)] // the parts of one listing
async fn in_memory(
    state: &AppState,
    table: &TableSchema,
    plan: &Plan<'_>,
    predicate: Option<&pushdown::Sql>,
    skip: usize,
    take: usize,
    computed: &Computed<'_>,
    now: DateTime<Utc>,
) -> RestResult<(Vec<Row>, Option<Cursor>)> {
    let mut rows = scan::rows(state, table.id.as_str(), predicate, None, None).await?;
    computed.fill(state, &mut rows).await?;
    if let Some(filter) = &plan.filter {
        rows.retain(|row| formula::eval(filter, &row.context(table, now, plan.tz)).is_truthy());
    }
    rows.sort_by(|a, b| compare_rows(&plan.sorts, a, b));
    let total = rows.len();
    let page: Vec<Row> = rows.into_iter().skip(skip).take(take).collect();
    let end = skip + page.len();
    let next = (end < total).then_some(Cursor::Index { skip: end });
    Ok((page, next))
}

/// Runs a listing and builds its page.
async fn list(
    state: &AppState,
    open: &OpenBase,
    table_key: &str,
    params: &ListParams,
) -> RestResult<Value> {
    let table = open.table(table_key)?;
    let plan = plan(table, params)?;
    let offset = params
        .offset
        .as_deref()
        .filter(|o| !o.is_empty())
        .map(|o| Offset::decode(o, plan.fingerprint))
        .transpose()?;
    let returned = offset.as_ref().map_or(0, |o| o.returned);
    let remaining = plan.max_records.map(|m| m.saturating_sub(returned));
    let take = remaining.map_or(plan.page_size, |r| r.min(plan.page_size));
    let now = Utc::now();
    let predicate = plan
        .filter
        .as_ref()
        .and_then(|f| pushdown::translate(f, table, 1));
    let (rows, next) = if take == 0 {
        (Vec::new(), None)
    } else {
        let computed = Computed::of(&open.base.tables, table, now, plan.tz);
        page(
            state,
            table,
            &plan,
            predicate.as_ref(),
            offset.map(|o| o.cursor),
            returned,
            take,
            &computed,
            now,
        )
        .await?
    };
    let sent = returned + rows.len();
    let records: Vec<Value> = rows.iter().map(|row| plan.render.record(row)).collect();
    let mut out = json!({ "records": records });
    if let Some(cursor) = next
        && plan.max_records.is_none_or(|m| sent < m)
    {
        out["offset"] = json!(
            Offset {
                query: plan.fingerprint,
                cursor,
                returned: sent,
            }
            .encode()
        );
    }
    Ok(out)
}

/// `GET /v0/{baseId}/{tableIdOrName}`.
pub async fn list_get(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base_id, table)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> RestResult<Json<Value>> {
    let params = ListParams::from_query(&query_pairs(query.as_deref()))?;
    let open = open_limited(&state, &caller, &base_id, &[Action::ReadRecords]).await?;
    Ok(Json(list(&state, &open, &table, &params).await?))
}

/// `POST /v0/{baseId}/{tableIdOrName}/listRecords`.
pub async fn list_post(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base_id, table)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> RestResult<Json<Value>> {
    let params = ListParams::from_body(&body)?;
    let open = open_limited(&state, &caller, &base_id, &[Action::ReadRecords]).await?;
    Ok(Json(list(&state, &open, &table, &params).await?))
}

/// `GET /v0/{baseId}/{tableIdOrName}/{recordId}`.
pub async fn get_one(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base_id, table, record_id)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> RestResult<Json<Value>> {
    let mut params = ListParams::from_query(&query_pairs(query.as_deref()))?;
    // Options that only make sense for a listing do not change a single record.
    params.filter_by_formula = None;
    params.sort.clear();
    params.view = None;
    params.fields = None;
    let open = open_limited(&state, &caller, &base_id, &[Action::ReadRecords]).await?;
    let table = open.table(&table)?;
    let plan = plan(table, &params)?;
    let row = fetch_row(&state, table, &record_id)
        .await?
        .ok_or_else(RestError::not_found)?;
    let mut rows = [row];
    Computed::of(&open.base.tables, table, Utc::now(), plan.tz)
        .fill(&state, &mut rows)
        .await?;
    Ok(Json(plan.render.record(&rows[0])))
}

/// A record of a write's result as a row, for rendering.
fn written_row(view: &RecordView, now: DateTime<Utc>) -> Row {
    Row {
        id: view.id.as_str().to_owned(),
        cells: view
            .cells
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        created_at: view.created_at.unwrap_or(now),
        updated_at: now,
        number: None,
    }
}

async fn render_written(
    state: &AppState,
    tables: &[TableSchema],
    table: &TableSchema,
    written: &RecordsWritten,
    by_id: bool,
    now: DateTime<Utc>,
) -> RestResult<Vec<Value>> {
    let mut rows: Vec<Row> = written
        .records
        .iter()
        .map(|view| written_row(view, now))
        .collect();
    if table
        .fields
        .iter()
        .any(|f| matches!(f.field_type, FieldType::AutoNumber))
    {
        // Numbers are handed out by the projection (ADR 0009), which the write waited for.
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let numbers: HashMap<String, Option<i64>> = scan::by_ids(state, table.id.as_str(), &ids)
            .await?
            .into_iter()
            .map(|r| (r.id, r.number))
            .collect();
        for row in &mut rows {
            row.number = numbers.get(&row.id).copied().flatten();
        }
    }
    Computed::of(tables, table, now, chrono_tz::UTC)
        .fill(state, &mut rows)
        .await?;
    let render = Render::json(table, by_id);
    Ok(rows.iter().map(|row| render.record(row)).collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewRecord {
    #[serde(default)]
    fields: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    records: Option<Vec<NewRecord>>,
    fields: Option<Map<String, Value>>,
    #[serde(default)]
    typecast: bool,
    #[serde(default)]
    return_fields_by_field_id: bool,
}

/// `POST /v0/{baseId}/{tableIdOrName}`: `{records: [{fields}]}` (up to 10) or `{fields}`.
pub async fn create(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base_id, table)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> RestResult<Json<Value>> {
    let body: CreateBody = parse(body)?;
    let (inputs, single) = match (body.records, body.fields) {
        (Some(records), None) => (records.into_iter().map(|r| r.fields).collect(), false),
        (None, Some(fields)) => (vec![fields], true),
        _ => {
            return Err(RestError::invalid_request(
                "Invalid request: give either records or fields",
            ));
        }
    };
    let open = open_limited(&state, &caller, &base_id, &[Action::CreateRecord]).await?;
    let table = open.table(&table)?;
    let ctx = caller.context();
    let written = state
        .platform
        .create_records(&ctx, &open.id, table.id.as_str(), inputs, body.typecast)
        .await?;
    settle(&state, RECORDS_PROJECTION, &written.position).await;
    let mut records = render_written(
        &state,
        &open.base.tables,
        table,
        &written,
        body.return_fields_by_field_id,
        ctx.now,
    )
    .await?;
    if single {
        return Ok(Json(records.pop().unwrap_or(Value::Null)));
    }
    Ok(Json(json!({ "records": records })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateRecord {
    id: Option<String>,
    #[serde(default)]
    fields: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Upsert {
    fields_to_merge_on: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    records: Vec<UpdateRecord>,
    #[serde(default)]
    typecast: bool,
    #[serde(default)]
    return_fields_by_field_id: bool,
    perform_upsert: Option<Upsert>,
}

fn record_id(raw: &str) -> RestResult<RecordId> {
    RecordId::parse(raw)
        .map_err(|_| RestError::not_found_typed(format!("Could not find record {raw}")))
}

/// `PATCH` (merge) or `PUT` (replace) `/v0/{baseId}/{tableIdOrName}`, with optional
/// `performUpsert`.
pub async fn update_many(
    State(state): State<AppState>,
    method: Method,
    caller: RestCaller,
    Path((base_id, table)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> RestResult<Json<Value>> {
    let body: UpdateBody = parse(body)?;
    let replace = method == Method::PUT;
    let open = open_limited(&state, &caller, &base_id, &[Action::UpdateRecord]).await?;
    let table = open.table(&table)?;
    let ctx = caller.context();
    if let Some(upsert) = body.perform_upsert {
        return upsert_records(
            &state,
            &open,
            table,
            &caller,
            upsert,
            body.records,
            body.typecast,
            replace,
            body.return_fields_by_field_id,
        )
        .await;
    }
    let updates = body
        .records
        .into_iter()
        .map(|r| {
            let id = r.id.ok_or_else(|| {
                RestError::invalid_request("Invalid request: every record needs an id")
            })?;
            Ok(RecordUpdate {
                id: record_id(&id)?,
                fields: r.fields,
            })
        })
        .collect::<RestResult<Vec<_>>>()?;
    let written = state
        .platform
        .update_records(
            &ctx,
            &open.id,
            table.id.as_str(),
            updates,
            replace,
            body.typecast,
        )
        .await?;
    settle(&state, RECORDS_PROJECTION, &written.position).await;
    let records = render_written(
        &state,
        &open.base.tables,
        table,
        &written,
        body.return_fields_by_field_id,
        ctx.now,
    )
    .await?;
    Ok(Json(json!({ "records": records })))
}

/// Whether stored cell `stored` matches the request's `given` value of a merge field.
fn same_value(field: &FieldDef, stored: Option<&Value>, given: &Value) -> bool {
    let stored = stored.unwrap_or(&Value::Null);
    if stored == given {
        return true;
    }
    let a = FValue::from_cell(&field.field_type, stored);
    let b = FValue::from_cell(&field.field_type, given);
    matches!(formula::compare(&a, &b), Ok(Some(Ordering::Equal)))
}

/// A SQL pre-filter keeping every record an upsert can match, so matching reads those records
/// (through the cells' GIN index) rather than the table: the records whose first text merge
/// field holds exactly one of the texts given for it. Text cells compare byte for byte in the
/// formula engine ([`same_value`]), so no match is lost. `None` (read the table) when no merge
/// field is text with a non-empty text given by every record to match.
fn upsert_candidates(
    merge_fields: &[&FieldDef],
    records: &[UpdateRecord],
) -> Option<pushdown::Sql> {
    merge_fields.iter().find_map(|field| {
        if !(field.field_type.is_text() || matches!(field.field_type, FieldType::SingleSelect(_))) {
            return None;
        }
        let mut args = Vec::new();
        for record in records.iter().filter(|r| r.id.is_none()) {
            let given = record
                .fields
                .get(&field.name)
                .or_else(|| record.fields.get(field.id.as_str()))?;
            match given {
                Value::String(text) if !text.is_empty() => {
                    args.push(pushdown::Arg::Json(json!({ field.id.as_str(): text })));
                }
                _ => return None,
            }
        }
        if args.is_empty() {
            return None;
        }
        let text = (1..=args.len())
            .map(|i| format!("cells @> ${i}::jsonb"))
            .collect::<Vec<_>>()
            .join(" OR ");
        Some(pushdown::Sql { text, args })
    })
}

#[allow(clippy::too_many_arguments)] // the parts of one upsert request
async fn upsert_records(
    state: &AppState,
    open: &OpenBase,
    table: &TableSchema,
    caller: &RestCaller,
    upsert: Upsert,
    records: Vec<UpdateRecord>,
    typecast: bool,
    replace: bool,
    by_id: bool,
) -> RestResult<Json<Value>> {
    // Creating is part of an upsert, so the caller needs that right too.
    super::access::open_base(state, caller, open.id.as_str(), &[Action::CreateRecord]).await?;
    if upsert.fields_to_merge_on.is_empty() || upsert.fields_to_merge_on.len() > 3 {
        return Err(RestError::invalid_request(
            "performUpsert.fieldsToMergeOn must name 1 to 3 fields",
        ));
    }
    let merge_fields = upsert
        .fields_to_merge_on
        .iter()
        .map(|k| field_named(table, k).ok_or_else(|| unknown_field(k)))
        .collect::<RestResult<Vec<&FieldDef>>>()?;
    let rows = if records.iter().all(|r| r.id.is_some()) {
        Vec::new()
    } else {
        let candidates = upsert_candidates(&merge_fields, &records);
        scan::rows(state, table.id.as_str(), candidates.as_ref(), None, None).await?
    };
    // Each request record in order: `Some(id)` to update, `None` to create.
    let mut items: Vec<(Option<RecordId>, Map<String, Value>)> = Vec::with_capacity(records.len());
    for (index, record) in records.into_iter().enumerate() {
        if let Some(id) = record.id {
            // A record with an id is updated as such; only records without one are matched.
            items.push((Some(record_id(&id)?), record.fields));
            continue;
        }
        let mut key = Vec::with_capacity(merge_fields.len());
        for field in &merge_fields {
            let given = record
                .fields
                .get(&field.name)
                .or_else(|| record.fields.get(field.id.as_str()))
                .ok_or_else(|| {
                    RestError::invalid_request(format!(
                        "Invalid request: every record of an upsert needs a value for {:?}",
                        field.name
                    ))
                })?;
            key.push((*field, given.clone()));
        }
        let matches: Vec<&Row> = rows
            .iter()
            .filter(|row| {
                key.iter()
                    .all(|(f, v)| same_value(f, row.cells.get(&f.id), v))
            })
            .collect();
        match matches.as_slice() {
            [] => items.push((None, record.fields)),
            [one] => items.push((Some(record_id(&one.id)?), record.fields)),
            _ => {
                return Err(RestError::unprocessable(
                    "INVALID_VALUE_FOR_COLUMN",
                    format!(
                        "Upsert failed: {} records match the fieldsToMergeOn values of record {index}",
                        matches.len()
                    ),
                ));
            }
        }
    }
    let created: Vec<bool> = items.iter().map(|(id, _)| id.is_none()).collect();
    let ctx = caller.context();
    // One atomic write: a failing update leaves no created record behind.
    let written = state
        .platform
        .upsert_records(&ctx, &open.id, table.id.as_str(), items, replace, typecast)
        .await?;
    settle(state, RECORDS_PROJECTION, &written.position).await;
    let records = render_written(state, &open.base.tables, table, &written, by_id, ctx.now).await?;
    let ids_where = |want: bool| -> Vec<Value> {
        records
            .iter()
            .zip(&created)
            .filter(|(_, c)| **c == want)
            .map(|(r, _)| r["id"].clone())
            .collect()
    };
    Ok(Json(json!({
        "createdRecords": ids_where(true),
        "updatedRecords": ids_where(false),
        "records": records,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateOneBody {
    #[serde(default)]
    fields: Map<String, Value>,
    #[serde(default)]
    typecast: bool,
    #[serde(default)]
    return_fields_by_field_id: bool,
}

/// `PATCH` / `PUT /v0/{baseId}/{tableIdOrName}/{recordId}`.
pub async fn update_one(
    State(state): State<AppState>,
    method: Method,
    caller: RestCaller,
    Path((base_id, table, record)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> RestResult<Json<Value>> {
    let body: UpdateOneBody = parse(body)?;
    let open = open_limited(&state, &caller, &base_id, &[Action::UpdateRecord]).await?;
    let table = open.table(&table)?;
    let ctx = caller.context();
    let update = RecordUpdate {
        id: record_id(&record)?,
        fields: body.fields,
    };
    let written = state
        .platform
        .update_records(
            &ctx,
            &open.id,
            table.id.as_str(),
            vec![update],
            method == Method::PUT,
            body.typecast,
        )
        .await?;
    settle(&state, RECORDS_PROJECTION, &written.position).await;
    let mut records = render_written(
        &state,
        &open.base.tables,
        table,
        &written,
        body.return_fields_by_field_id,
        ctx.now,
    )
    .await?;
    Ok(Json(records.pop().unwrap_or(Value::Null)))
}

/// `DELETE /v0/{baseId}/{tableIdOrName}/{recordId}`.
pub async fn delete_one(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base_id, table, record)): Path<(String, String, String)>,
) -> RestResult<Json<Value>> {
    let open = open_limited(&state, &caller, &base_id, &[Action::DeleteRecord]).await?;
    let table = open.table(&table)?;
    let id = RecordId::parse(&record).map_err(|_| RestError::not_found())?;
    let ctx = caller.context();
    let written = state
        .platform
        .delete_records(&ctx, &open.id, table.id.as_str(), vec![id.clone()])
        .await?;
    settle(&state, RECORDS_PROJECTION, &written.position).await;
    Ok(Json(json!({"id": id, "deleted": true})))
}

/// `DELETE /v0/{baseId}/{tableIdOrName}?records[]=rec…&records[]=rec…` (up to 10).
pub async fn delete_many(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base_id, table)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> RestResult<Json<Value>> {
    let ids = query_pairs(query.as_deref())
        .into_iter()
        .filter(|(k, _)| k == "records[]" || k == "records")
        .map(|(_, v)| record_id(&v))
        .collect::<RestResult<Vec<_>>>()?;
    let open = open_limited(&state, &caller, &base_id, &[Action::DeleteRecord]).await?;
    let table = open.table(&table)?;
    let ctx = caller.context();
    let written = state
        .platform
        .delete_records(&ctx, &open.id, table.id.as_str(), ids.clone())
        .await?;
    settle(&state, RECORDS_PROJECTION, &written.position).await;
    let records: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "deleted": true}))
        .collect();
    Ok(Json(json!({ "records": records })))
}
