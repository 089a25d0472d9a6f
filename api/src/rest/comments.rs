//! Record comments: `GET` / `POST /v0/{baseId}/{tableIdOrName}/{recordId}/comments` and
//! `PATCH` / `DELETE .../comments/{commentId}`, read from the record's own stream (comments
//! live in the record aggregate), newest first as Airtable lists them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use pyairtable_domain::base::TableSchema;
use pyairtable_domain::ids::{CommentId, RecordId, UserId};
use pyairtable_domain::permissions::Action;
use pyairtable_domain::record::{Comment, Record};
use pyairtable_domain::user::User;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::access::RestCaller;
use super::body::{JsonBody, parse};
use super::cells::iso;
use super::error::{RestError, RestResult};
use super::params::{Cursor, MAX_PAGE_SIZE, Offset, fingerprint, query_pairs};
use super::records::{open_limited, settle};
use crate::state::AppState;

/// Loads a live record of `table`, or 404.
async fn load_record(
    state: &AppState,
    table: &TableSchema,
    raw_id: &str,
) -> RestResult<(RecordId, Record)> {
    let id = RecordId::parse(raw_id).map_err(|_| RestError::not_found())?;
    let loaded = state.platform.runner().load::<Record>(id.as_str()).await?;
    let state = loaded.state;
    if state.deleted || state.table_id.as_ref() != Some(&table.id) {
        return Err(RestError::not_found());
    }
    Ok((id, state))
}

/// Users by id as Airtable's collaborator objects (`{id, email, name}`).
async fn collaborators(state: &AppState, ids: Vec<UserId>) -> RestResult<BTreeMap<UserId, Value>> {
    let mut out = BTreeMap::new();
    for id in ids {
        if out.contains_key(&id) {
            continue;
        }
        let user = state.platform.runner().load::<User>(id.as_str()).await?;
        let value = match user.state.account() {
            Some(a) => json!({"id": id, "email": a.email.as_str(), "name": a.display_name}),
            None => json!({"id": id}),
        };
        out.insert(id, value);
    }
    Ok(out)
}

fn comment_json(comment: &Comment, users: &BTreeMap<UserId, Value>) -> Value {
    let author = users
        .get(&comment.author)
        .cloned()
        .unwrap_or_else(|| json!({"id": comment.author}));
    let mut out = json!({
        "id": comment.id,
        "author": author,
        "text": comment.text,
        "createdTime": iso(comment.created_at),
        "lastUpdatedTime": comment.last_updated_at.map(iso),
    });
    if !comment.mentions.is_empty() {
        let mentioned: Map<String, Value> = comment
            .mentions
            .iter()
            .map(|id| {
                let user = users.get(id);
                (
                    id.as_str().to_owned(),
                    json!({
                        "type": "user",
                        "id": id,
                        "displayName": user.and_then(|u| u.get("name")).cloned().unwrap_or(Value::Null),
                        "email": user.and_then(|u| u.get("email")).cloned().unwrap_or(Value::Null),
                    }),
                )
            })
            .collect();
        out["mentioned"] = Value::Object(mentioned);
    }
    out
}

async fn render(state: &AppState, comments: &[&Comment]) -> RestResult<Vec<Value>> {
    let mut ids = Vec::new();
    for comment in comments {
        ids.push(comment.author.clone());
        ids.extend(comment.mentions.iter().cloned());
    }
    let users = collaborators(state, ids).await?;
    Ok(comments.iter().map(|c| comment_json(c, &users)).collect())
}

/// `GET .../{recordId}/comments?pageSize=&offset=`.
pub async fn list(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base_id, table, record)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> RestResult<Json<Value>> {
    let open = open_limited(&state, &caller, &base_id, &[Action::ReadComments]).await?;
    let table = open.table(&table)?;
    let (id, record) = load_record(&state, table, &record).await?;
    let query_fp = fingerprint(&["comments", id.as_str()]);
    let mut page_size = MAX_PAGE_SIZE;
    let mut skip = 0usize;
    for (key, value) in query_pairs(query.as_deref()) {
        match key.as_str() {
            "pageSize" => {
                page_size = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                    .ok_or_else(|| {
                        RestError::invalid_request(format!(
                            "pageSize must be between 1 and {MAX_PAGE_SIZE}"
                        ))
                    })?;
            }
            "offset" if !value.is_empty() => match Offset::decode(&value, query_fp)?.cursor {
                Cursor::Index { skip: s } => skip = s,
                Cursor::Keyset { .. } | Cursor::Sorted { .. } => {
                    return Err(RestError::unprocessable(
                        "INVALID_OFFSET_VALUE",
                        "The offset is invalid",
                    ));
                }
            },
            _ => {}
        }
    }
    let newest_first: Vec<&Comment> = record.comments.iter().rev().collect();
    let page: Vec<&Comment> = newest_first
        .iter()
        .skip(skip)
        .take(page_size)
        .copied()
        .collect();
    let end = skip + page.len();
    let offset = (end < newest_first.len()).then(|| {
        Offset {
            query: query_fp,
            cursor: Cursor::Index { skip: end },
            returned: end,
        }
        .encode()
    });
    Ok(Json(json!({
        "comments": render(&state, &page).await?,
        "offset": offset,
    })))
}

#[derive(Deserialize)]
struct TextBody {
    text: String,
}

/// Reads the comment back from the record's stream after a write.
async fn written_comment(
    state: &AppState,
    record_id: &RecordId,
    comment_id: &CommentId,
) -> RestResult<Value> {
    let record = state
        .platform
        .runner()
        .load::<Record>(record_id.as_str())
        .await?;
    let comment = record
        .state
        .comments
        .iter()
        .find(|c| &c.id == comment_id)
        .ok_or_else(|| {
            RestError::internal("reading a comment back", &"comment missing after write")
        })?;
    Ok(render(state, &[comment])
        .await?
        .pop()
        .unwrap_or(Value::Null))
}

/// `POST .../{recordId}/comments` with `{text}`.
pub async fn create(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base_id, table, record)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> RestResult<Json<Value>> {
    let body: TextBody = parse(body)?;
    let open = open_limited(&state, &caller, &base_id, &[Action::AddComment]).await?;
    let table = open.table(&table)?;
    let (id, _) = load_record(&state, table, &record).await?;
    let written = state
        .platform
        .add_comment(&caller.context(), &open.id, &id, &body.text)
        .await?;
    settle(&state, "records", &written.record.position).await;
    Ok(Json(
        written_comment(&state, &id, &written.comment_id).await?,
    ))
}

fn comment_id(raw: &str) -> RestResult<CommentId> {
    CommentId::parse(raw).map_err(|_| RestError::not_found())
}

/// `PATCH .../{recordId}/comments/{commentId}` with `{text}`.
pub async fn update(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base_id, table, record, comment)): Path<(String, String, String, String)>,
    JsonBody(body): JsonBody,
) -> RestResult<Json<Value>> {
    let body: TextBody = parse(body)?;
    let open = open_limited(&state, &caller, &base_id, &[Action::EditOwnComment]).await?;
    let table = open.table(&table)?;
    let (id, record) = load_record(&state, table, &record).await?;
    let comment_id = comment_id(&comment)?;
    check_author(&record, &comment_id, &caller)?;
    let written = state
        .platform
        .edit_comment(&caller.context(), &open.id, &id, &comment_id, &body.text)
        .await?;
    settle(&state, "records", &written.record.position).await;
    Ok(Json(written_comment(&state, &id, &comment_id).await?))
}

/// Airtable answers 404 for an unknown comment and 403 for someone else's.
fn check_author(record: &Record, comment_id: &CommentId, caller: &RestCaller) -> RestResult<()> {
    let comment = record
        .comments
        .iter()
        .find(|c| &c.id == comment_id)
        .ok_or_else(RestError::not_found)?;
    if comment.author != caller.user.user_id {
        return Err(RestError::invalid_permissions(
            "You can only change your own comments",
        ));
    }
    Ok(())
}

/// `DELETE .../{recordId}/comments/{commentId}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base_id, table, record, comment)): Path<(String, String, String, String)>,
) -> RestResult<Json<Value>> {
    let open = open_limited(&state, &caller, &base_id, &[Action::DeleteOwnComment]).await?;
    let table = open.table(&table)?;
    let (id, record) = load_record(&state, table, &record).await?;
    let comment_id = comment_id(&comment)?;
    // Moderators may delete others' comments: the command layer decides who may.
    if !record.comments.iter().any(|c| c.id == comment_id) {
        return Err(RestError::not_found());
    }
    let written = state
        .platform
        .delete_comment(&caller.context(), &open.id, &id, &comment_id)
        .await?;
    settle(&state, "records", &written.record.position).await;
    Ok(Json(json!({"id": comment_id, "deleted": true})))
}
