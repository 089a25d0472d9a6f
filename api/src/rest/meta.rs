//! Airtable's metadata API: who-am-I, bases (list, create), a base's schema (tables with fields
//! and views), and creating and updating tables and fields. Schemas are read from the base's
//! own stream, so they are exact as of the request.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use pyairtable_commands::service::{FieldChange, NewField, NewTable};
use pyairtable_domain::base::TableSchema;
use pyairtable_domain::fields::{FieldDef, FieldType};
use pyairtable_domain::formula;
use pyairtable_domain::ids::{BaseId, ChoiceId, FieldId, WorkspaceId};
use pyairtable_domain::permissions::Action;
use pyairtable_domain::roles::{Role, Scope};
use pyairtable_domain::user::User;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;

use super::access::{OpenBase, RestCaller, open_base, permission_level};
use super::body::{JsonBody, parse};
use super::error::{RestError, RestResult};
use super::params::{Cursor, Offset, fingerprint, query_pairs};
use super::records::{open_limited, settle};
use crate::state::AppState;

/// Bases per page of `GET /v0/meta/bases`, as Airtable pages them.
const BASES_PAGE: usize = 1000;

fn has_scope(caller: &RestCaller, scope: Scope) -> bool {
    caller
        .user
        .token
        .as_ref()
        .is_none_or(|t| t.grant.scopes.contains(&scope))
}

/// `GET /v0/meta/whoami`: the user id, the token's scopes, and the email when the token may
/// read it.
pub async fn whoami(State(state): State<AppState>, caller: RestCaller) -> RestResult<Json<Value>> {
    let mut out = json!({ "id": caller.user.user_id });
    if let Some(token) = &caller.user.token {
        out["scopes"] = json!(
            token
                .grant
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
        );
    }
    if has_scope(&caller, Scope::UserEmailRead) {
        let user = state
            .platform
            .runner()
            .load::<User>(caller.user.user_id.as_str())
            .await?;
        if let Some(account) = user.state.account() {
            out["email"] = json!(account.email.as_str());
        }
    }
    Ok(Json(out))
}

/// `GET /v0/meta/bases`: the bases of every workspace the caller belongs to (narrowed to the
/// token's bases), `{bases: [{id, name, permissionLevel}], offset?}`.
pub async fn list_bases(
    State(state): State<AppState>,
    caller: RestCaller,
    RawQuery(query): RawQuery,
) -> RestResult<Json<Value>> {
    if !has_scope(&caller, Scope::SchemaRead) {
        return Err(RestError::model_not_found());
    }
    let names = state.projections.names();
    let sql = format!(
        "SELECT b.base_id, b.name, m.role
           FROM {bases} b
           JOIN {members} m ON m.workspace_id = b.workspace_id
           JOIN {workspaces} w ON w.workspace_id = b.workspace_id
          WHERE m.user_id = $1 AND NOT b.deleted AND NOT w.archived
          ORDER BY b.base_id",
        bases = names.rm_view("bases"),
        members = names.rm_view("members"),
        workspaces = names.rm_view("workspaces"),
    );
    let rows: Vec<(String, String, String)> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(caller.user.user_id.as_str())
        .fetch_all(state.store.pool())
        .await
        .map_err(|e| RestError::internal("listing bases", &e))?;
    let allowed = caller
        .user
        .token
        .as_ref()
        .and_then(|t| t.grant.base_ids.clone());
    let visible: Vec<Value> = rows
        .into_iter()
        .filter(|(id, _, _)| {
            allowed
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|b| b.as_str() == id))
        })
        .filter_map(|(id, name, role)| {
            let role = Role::parse(&role).ok()?;
            Some(json!({"id": id, "name": name, "permissionLevel": permission_level(role)}))
        })
        .collect();
    let query_fp = fingerprint(&["bases", caller.user.user_id.as_str()]);
    let mut skip = 0;
    for (key, value) in query_pairs(query.as_deref()) {
        if key == "offset" && !value.is_empty() {
            match Offset::decode(&value, query_fp)?.cursor {
                Cursor::Index { skip: s } => skip = s,
                Cursor::Keyset { .. } | Cursor::Sorted { .. } => {
                    return Err(RestError::unprocessable(
                        "INVALID_OFFSET_VALUE",
                        "The offset is invalid",
                    ));
                }
            }
        }
    }
    let total = visible.len();
    let page: Vec<Value> = visible.into_iter().skip(skip).take(BASES_PAGE).collect();
    let end = skip + page.len();
    let mut out = json!({ "bases": page });
    if end < total {
        out["offset"] = json!(
            Offset {
                query: query_fp,
                cursor: Cursor::Index { skip: end },
                returned: end,
            }
            .encode()
        );
    }
    Ok(Json(out))
}

/// A table in the metadata API's shape.
#[must_use]
pub fn table_json(table: &TableSchema) -> Value {
    let mut out = json!({
        "id": table.id,
        "name": table.name,
        "primaryFieldId": table.primary_field_id,
        "fields": table.fields.iter().map(|f| field_json(table, f)).collect::<Vec<_>>(),
        "views": table.views.iter().map(|v| json!({"id": v.id, "name": v.name, "type": "grid"})).collect::<Vec<_>>(),
    });
    if let Some(d) = &table.description {
        out["description"] = json!(d);
    }
    out
}

/// A field in the metadata API's shape (`{id, name, type, options?, description?}`), with the
/// read-only options Airtable adds to computed and link fields (`isValid`,
/// `referencedFieldIds`, `isReversed`), which clients' schema models expect.
#[must_use]
pub fn field_json(table: &TableSchema, field: &FieldDef) -> Value {
    let mut out =
        serde_json::to_value(field).unwrap_or_else(|_| json!({"id": field.id, "name": field.name}));
    let extra = match &field.field_type {
        FieldType::Formula(options) => {
            let parsed = formula::parse_for_table(&options.formula, &table.fields);
            let referenced: Vec<&str> = parsed
                .as_ref()
                .map(|expr| {
                    expr.referenced_fields()
                        .iter()
                        .filter_map(|name| formula::resolve_field(&table.fields, name))
                        .map(|f| f.id.as_str())
                        .collect()
                })
                .unwrap_or_default();
            json!({"isValid": parsed.is_ok(), "referencedFieldIds": referenced})
        }
        FieldType::Count(_)
        | FieldType::Rollup(_)
        | FieldType::MultipleLookupValues(_)
        | FieldType::LastModifiedTime => json!({"isValid": true}),
        FieldType::MultipleRecordLinks(_) | FieldType::MultipleAttachments => {
            json!({"isReversed": false})
        }
        _ => return out,
    };
    if let (Some(obj), Some(extra)) = (out.as_object_mut(), extra.as_object()) {
        let options = obj
            .entry("options")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(options) = options.as_object_mut() {
            for (k, v) in extra {
                options.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    out
}

/// `GET /v0/meta/bases/{baseId}/tables`.
pub async fn base_schema(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(base_id): Path<String>,
) -> RestResult<Json<Value>> {
    let open = open_limited(&state, &caller, &base_id, &[Action::ReadSchema]).await?;
    Ok(Json(json!({
        "tables": open.base.tables.iter().map(table_json).collect::<Vec<_>>(),
    })))
}

/// Field specs as Airtable clients send them sometimes carry `"options": {}` or `null` for
/// types without options; the domain's shape has no `options` key for those.
fn field_spec(mut spec: Value) -> RestResult<NewField> {
    // Clients name new select choices without ids; the domain wants every choice to have one.
    if let Some(choices) = spec
        .get_mut("options")
        .and_then(|o| o.get_mut("choices"))
        .and_then(Value::as_array_mut)
    {
        for choice in choices.iter_mut().filter_map(Value::as_object_mut) {
            if !choice.contains_key("id") {
                let id: ChoiceId = pyairtable_commands::auth::new_id();
                choice.insert("id".to_owned(), json!(id));
            }
        }
    }
    let empty_options = spec
        .get("options")
        .is_some_and(|o| o.is_null() || o.as_object().is_some_and(serde_json::Map::is_empty));
    match serde_json::from_value::<NewField>(spec.clone()) {
        Ok(field) => Ok(field),
        Err(_) if empty_options => {
            if let Some(o) = spec.as_object_mut() {
                o.remove("options");
            }
            parse(spec)
        }
        Err(e) => Err(RestError::unprocessable(
            "INVALID_FIELD_TYPE",
            format!("Invalid field: {e}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TableSpec {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    fields: Vec<Value>,
}

fn new_table(spec: TableSpec) -> RestResult<NewTable> {
    Ok(NewTable {
        name: spec.name,
        description: spec.description,
        fields: spec
            .fields
            .into_iter()
            .map(field_spec)
            .collect::<RestResult<Vec<_>>>()?,
        primary_field_id: None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BaseSpec {
    name: String,
    workspace_id: String,
    #[serde(default)]
    tables: Vec<TableSpec>,
}

/// `POST /v0/meta/bases`: `{name, workspaceId, tables}` → `{id, tables}`.
pub async fn create_base(
    State(state): State<AppState>,
    caller: RestCaller,
    JsonBody(body): JsonBody,
) -> RestResult<Json<Value>> {
    let spec: BaseSpec = parse(body)?;
    if spec.tables.is_empty() {
        return Err(RestError::invalid_request(
            "Invalid request: a base needs at least one table",
        ));
    }
    let tables = spec
        .tables
        .into_iter()
        .map(new_table)
        .collect::<RestResult<Vec<_>>>()?;
    let workspace_id =
        WorkspaceId::parse(&spec.workspace_id).map_err(|_| RestError::model_not_found())?;
    let ctx = caller.context();
    let base = state
        .platform
        .create_base(&ctx, &workspace_id, &spec.name)
        .await?;
    let mut created = Vec::with_capacity(tables.len());
    let mut position = base.position.clone();
    for table in tables {
        let table = state.platform.create_table(&ctx, &base.id, table).await?;
        position = table.written.position.clone();
        created.push(table_json(&table.table));
    }
    settle(&state, "directory", &position).await;
    Ok(Json(json!({"id": base.id, "tables": created})))
}

/// `POST /v0/meta/bases/{baseId}/tables`.
pub async fn create_table(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(base_id): Path<String>,
    JsonBody(body): JsonBody,
) -> RestResult<Json<Value>> {
    let spec: TableSpec = parse(body)?;
    let table = new_table(spec)?;
    let open = open_limited(&state, &caller, &base_id, &[Action::CreateTable]).await?;
    let created = state
        .platform
        .create_table(&caller.context(), &open.id, table)
        .await?;
    settle(&state, "directory", &created.written.position).await;
    Ok(Json(table_json(&created.table)))
}

/// The table of a base after a schema write, read back from the base's stream.
async fn reload_table(
    state: &AppState,
    caller: &RestCaller,
    base_id: &BaseId,
    key: &str,
) -> RestResult<Value> {
    let open = open_base(state, caller, base_id.as_str(), &[Action::ReadSchema]).await?;
    Ok(table_json(open.table(key)?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TableChange {
    name: Option<String>,
    #[serde(default, with = "double_option")]
    description: Option<Option<String>>,
}

/// `Some(None)` for an explicit `null`, `None` for an absent key.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

fn table_of<'o>(open: &'o OpenBase, key: &str) -> RestResult<&'o TableSchema> {
    open.table(key)
}

/// `PATCH /v0/meta/bases/{baseId}/tables/{tableIdOrName}` with `{name?, description?}`.
pub async fn update_table(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base_id, table)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> RestResult<Json<Value>> {
    let change: TableChange = parse(body)?;
    let open = open_limited(&state, &caller, &base_id, &[Action::RenameTable]).await?;
    let table_id = table_of(&open, &table)?.id.clone();
    let written = state
        .platform
        .update_table(
            &caller.context(),
            &open.id,
            &table_id,
            change.name.as_deref(),
            change.description.as_ref().map(|d| d.as_deref()),
        )
        .await?;
    settle(&state, "directory", &written.position).await;
    Ok(Json(
        reload_table(&state, &caller, &open.id, table_id.as_str()).await?,
    ))
}

/// `POST /v0/meta/bases/{baseId}/tables/{tableId}/fields`.
pub async fn create_field(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base_id, table)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> RestResult<Json<Value>> {
    let field = field_spec(body)?;
    let open = open_limited(&state, &caller, &base_id, &[Action::AddField]).await?;
    let table_id = table_of(&open, &table)?.id.clone();
    let written = state
        .platform
        .add_field(&caller.context(), &open.id, &table_id, field)
        .await?;
    settle(&state, "directory", &written.position).await;
    field_after_write(&state, &caller, &open.id, table_id.as_str(), &written.id).await
}

async fn field_after_write(
    state: &AppState,
    caller: &RestCaller,
    base_id: &BaseId,
    table_key: &str,
    field_id: &FieldId,
) -> RestResult<Json<Value>> {
    let open = open_base(state, caller, base_id.as_str(), &[Action::ReadSchema]).await?;
    let field = open
        .table(table_key)?
        .field(field_id)
        .ok_or_else(|| RestError::not_found_typed(format!("Could not find field {field_id}")))?;
    Ok(Json(field_json(open.table(table_key)?, field)))
}

/// `PATCH /v0/meta/bases/{baseId}/tables/{tableId}/fields/{fieldId}` with
/// `{name?, description?}`.
pub async fn update_field(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base_id, table, field)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> RestResult<Json<Value>> {
    let change: TableChange = parse(body)?;
    let open = open_limited(&state, &caller, &base_id, &[Action::UpdateField]).await?;
    let table = table_of(&open, &table)?;
    let field_id = table
        .fields
        .iter()
        .find(|f| f.id.as_str() == field || f.name == field)
        .map(|f| f.id.clone())
        .ok_or_else(|| RestError::not_found_typed(format!("Could not find field {field}")))?;
    let table_id = table.id.clone();
    let written = state
        .platform
        .update_field(
            &caller.context(),
            &open.id,
            &table_id,
            &field_id,
            FieldChange {
                name: change.name,
                description: change.description,
                field_type: None,
                allow_lossy: false,
            },
        )
        .await?;
    settle(&state, "directory", &written.position).await;
    field_after_write(&state, &caller, &open.id, table_id.as_str(), &field_id).await
}
