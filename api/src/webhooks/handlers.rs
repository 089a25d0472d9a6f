//! The webhook endpoints under `/v0/bases/{baseId}/webhooks`, answering as Airtable does.
//!
//! Authentication, the base lookup, the permission matrix, the token's scopes and base
//! restriction and the per-base rate limit are the REST API's own (`crate::rest::access`,
//! `crate::rest::limits`), so a webhook call is authorised exactly like any other base call.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{Duration, Utc};
use pyairtable_domain::ids::{ALPHABET, SUFFIX_LEN};
use pyairtable_domain::permissions::Action;
use pyairtable_domain::roles::Scope;
use rand::Rng as _;
use serde_json::{Value, json};

use super::repo::{self, NewWebhook};
use super::spec::{DataType, Specification};
use super::target::check_notification_url;
use crate::rest::access::{OpenBase, RestCaller, open_base};
use crate::rest::body::JsonBody;
use crate::rest::cells::iso;
use crate::rest::error::{RestError, RestResult};
use crate::rest::limits::check_rate;
use crate::state::AppState;

/// How long a webhook lives without a refresh (or a payloads listing).
pub const LIFETIME_DAYS: i64 = 7;
/// Most payloads one listing returns (Airtable's maximum).
pub const MAX_PAYLOADS_PER_PAGE: i64 = 50;
/// Bytes of a MAC secret.
const SECRET_BYTES: usize = 32;

fn database(error: &sqlx::Error) -> RestError {
    RestError::internal("webhook storage", error)
}

fn new_webhook_id() -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..SUFFIX_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("ach{suffix}")
}

/// The extra actions Airtable asks of a webhook's data types: reading records for
/// `tableData`, reading the schema for `tableFields` and `tableMetadata`.
fn read_actions(spec: &Specification) -> Vec<Action> {
    let types = &spec.options.filters.data_types;
    let mut actions = Vec::new();
    if types.contains(&DataType::TableData) {
        actions.push(Action::ReadRecords);
    }
    if types.contains(&DataType::TableFields) || types.contains(&DataType::TableMetadata) {
        actions.push(Action::ReadSchema);
    }
    actions
}

/// Opens the base for a webhook management call (creator role, `webhook:manage`).
async fn open_for_management(
    state: &AppState,
    caller: &RestCaller,
    base: &str,
) -> RestResult<OpenBase> {
    check_rate(state, base).await?;
    open_base(state, caller, base, &[Action::ManageWebhooks]).await
}

fn webhook_not_found() -> RestError {
    RestError::not_found()
}

/// `POST /v0/bases/{baseId}/webhooks`: registers a webhook and shows its MAC secret once.
///
/// # Errors
/// 401/403 as every base call; 422 `INVALID_REQUEST_UNKNOWN` for a bad specification or a
/// notification URL that is not http(s) or points to a non-public address (see
/// [`super::target`]);
/// 422 `TOO_MANY_WEBHOOKS` beyond the per-base limit.
pub async fn create(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(base): Path<String>,
    JsonBody(body): JsonBody,
) -> RestResult<Json<Value>> {
    let open = open_for_management(&state, &caller, &base).await?;
    let url = match body.get("notificationUrl") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) => Some(
            check_notification_url(url, &state.webhooks.config.allow_private)
                .await
                .map_err(|e| RestError::invalid_request(format!("Invalid request: {e}")))?
                .to_string(),
        ),
        Some(_) => {
            return Err(RestError::invalid_request(
                "Invalid request: notificationUrl must be a string",
            ));
        }
    };
    let raw_spec = body
        .get("specification")
        .ok_or_else(|| RestError::invalid_request("Invalid request: specification is missing"))?;
    let spec = Specification::parse(raw_spec, &open.base).map_err(RestError::invalid_request)?;
    // Airtable also asks for the read scopes matching the data the webhook will expose.
    open_base(&state, &caller, &base, &read_actions(&spec)).await?;
    let workspace_id = open
        .base
        .workspace_id
        .as_ref()
        .map(ToString::to_string)
        .ok_or_else(RestError::model_not_found)?;
    let head = state
        .store
        .head()
        .await
        .map_err(|e| RestError::internal("reading the feed head", &e))?;
    let id = new_webhook_id();
    let mut secret = [0_u8; SECRET_BYTES];
    rand::rng().fill(&mut secret[..]);
    let expires_at = Utc::now() + Duration::days(LIFETIME_DAYS);
    let created_by = caller.user.user_id.to_string();
    let inserted = repo::insert(
        state.store.pool(),
        &NewWebhook {
            id: &id,
            base_id: open.id.as_str(),
            workspace_id: &workspace_id,
            created_by: &created_by,
            notification_url: url.as_deref(),
            specification: raw_spec,
            mac_secret: &secret,
            position: &head.to_token(),
            expires_at,
        },
        state.webhooks.config.max_per_base,
    )
    .await
    .map_err(|e| database(&e))?;
    if !inserted {
        return Err(RestError::unprocessable(
            "TOO_MANY_WEBHOOKS",
            format!(
                "A base can have at most {} webhooks; delete one first",
                state.webhooks.config.max_per_base
            ),
        ));
    }
    tracing::info!(
        target: "pyairtable::webhooks",
        action = "created",
        webhook_id = %id,
        base_id = %open.id,
        user_id = %created_by,
        notification_url = url.as_deref().unwrap_or(""),
        "webhook created"
    );
    Ok(Json(json!({
        "id": id,
        "macSecretBase64": STANDARD.encode(secret),
        "expirationTime": iso(expires_at),
    })))
}

/// `GET /v0/bases/{baseId}/webhooks`.
///
/// # Errors
/// 401/403 as every base call.
pub async fn list(
    State(state): State<AppState>,
    caller: RestCaller,
    Path(base): Path<String>,
) -> RestResult<Json<Value>> {
    let open = open_for_management(&state, &caller, &base).await?;
    let rows = repo::list(state.store.pool(), open.id.as_str())
        .await
        .map_err(|e| database(&e))?;
    let now = Utc::now();
    let webhooks: Vec<Value> = rows.iter().map(|w| w.to_json(now)).collect();
    Ok(Json(json!({ "webhooks": webhooks })))
}

/// `DELETE /v0/bases/{baseId}/webhooks/{webhookId}`: answers an empty 200.
///
/// # Errors
/// 404 for a webhook that is not this base's.
pub async fn delete(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base, webhook)): Path<(String, String)>,
) -> RestResult<Response> {
    let open = open_for_management(&state, &caller, &base).await?;
    let deleted = repo::delete(state.store.pool(), open.id.as_str(), &webhook)
        .await
        .map_err(|e| database(&e))?;
    if !deleted {
        return Err(webhook_not_found());
    }
    tracing::info!(
        target: "pyairtable::webhooks",
        action = "deleted",
        webhook_id = %webhook,
        base_id = %open.id,
        user_id = %caller.user.user_id,
        "webhook deleted"
    );
    Ok(StatusCode::OK.into_response())
}

/// `POST /v0/bases/{baseId}/webhooks/{webhookId}/refresh` → `{"expirationTime"}`.
///
/// # Errors
/// 404 for a webhook that is not this base's; 422 `CANNOT_REFRESH_DISABLED_WEBHOOK` once it
/// has expired.
pub async fn refresh(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base, webhook)): Path<(String, String)>,
) -> RestResult<Json<Value>> {
    let open = open_for_management(&state, &caller, &base).await?;
    let pool = state.store.pool();
    let expires_at = Utc::now() + Duration::days(LIFETIME_DAYS);
    let refreshed = repo::refresh(pool, open.id.as_str(), &webhook, expires_at)
        .await
        .map_err(|e| database(&e))?;
    let Some(expires_at) = refreshed else {
        let exists = repo::get(pool, open.id.as_str(), &webhook)
            .await
            .map_err(|e| database(&e))?
            .is_some();
        return Err(if exists {
            RestError::unprocessable(
                "CANNOT_REFRESH_DISABLED_WEBHOOK",
                "This webhook has expired and can no longer be refreshed; create a new one",
            )
        } else {
            webhook_not_found()
        });
    };
    tracing::info!(
        target: "pyairtable::webhooks",
        action = "refreshed",
        webhook_id = %webhook,
        base_id = %open.id,
        user_id = %caller.user.user_id,
        expires_at = %iso(expires_at),
        "webhook refreshed"
    );
    Ok(Json(json!({ "expirationTime": iso(expires_at) })))
}

/// `POST /v0/bases/{baseId}/webhooks/{webhookId}/enableNotifications` with `{"enable": bool}`:
/// answers an empty 200.
///
/// # Errors
/// 404 for a webhook that is not this base's; 422 when `enable` is not a boolean.
pub async fn enable_notifications(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base, webhook)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> RestResult<Response> {
    let open = open_for_management(&state, &caller, &base).await?;
    let enable = body.get("enable").and_then(Value::as_bool).ok_or_else(|| {
        RestError::invalid_request("Invalid request: enable must be true or false")
    })?;
    let found = repo::enable_notifications(state.store.pool(), open.id.as_str(), &webhook, enable)
        .await
        .map_err(|e| database(&e))?;
    if !found {
        return Err(webhook_not_found());
    }
    tracing::info!(
        target: "pyairtable::webhooks",
        action = if enable { "notifications_enabled" } else { "notifications_disabled" },
        webhook_id = %webhook,
        base_id = %open.id,
        user_id = %caller.user.user_id,
        "webhook notifications changed"
    );
    state.webhooks.wake_pinger();
    Ok(StatusCode::OK.into_response())
}

fn positive_param(params: &HashMap<String, String>, name: &str) -> RestResult<Option<i64>> {
    match params.get(name) {
        None => Ok(None),
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(RestError::invalid_request(format!(
                "Invalid request: {name} must be a positive whole number"
            ))),
        },
    }
}

/// `GET /v0/bases/{baseId}/webhooks/{webhookId}/payloads?cursor=&limit=`. As at Airtable, a
/// read-only member may list payloads (with `webhook:manage` and the read scopes of the
/// webhook's data types), and listing extends the webhook's life by seven days.
///
/// # Errors
/// 404 for a webhook that is not this base's; 422 for a bad cursor or limit, or once the
/// webhook has expired.
pub async fn payloads(
    State(state): State<AppState>,
    caller: RestCaller,
    Path((base, webhook)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> RestResult<Json<Value>> {
    check_rate(&state, &base).await?;
    let open = open_base(&state, &caller, &base, &[]).await?;
    if let Some(token) = &caller.user.token
        && !token.grant.scopes.contains(&Scope::WebhookManage)
    {
        return Err(RestError::typed(
            StatusCode::FORBIDDEN,
            "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
            format!(
                "{} (the token lacks the webhook:manage scope)",
                crate::rest::error::MODEL_NOT_FOUND_MESSAGE
            ),
        ));
    }
    let pool = state.store.pool();
    let row = repo::get(pool, open.id.as_str(), &webhook)
        .await
        .map_err(|e| database(&e))?
        .ok_or_else(webhook_not_found)?;
    // The read scopes of the watched data, which also check the token's base restriction.
    let actions = serde_json::from_value::<Specification>(row.specification.clone())
        .map_or_else(|_| vec![Action::ReadRecords], |spec| read_actions(&spec));
    open_base(&state, &caller, &base, &actions).await?;
    let now = Utc::now();
    if !row.is_enabled(now) {
        return Err(RestError::unprocessable(
            "CANNOT_LIST_PAYLOADS_FOR_EXPIRED_WEBHOOK",
            "This webhook has expired; its payloads are no longer available",
        ));
    }
    let cursor = positive_param(&params, "cursor")?.unwrap_or(1);
    let limit = positive_param(&params, "limit")?
        .unwrap_or(MAX_PAYLOADS_PER_PAGE)
        .min(MAX_PAYLOADS_PER_PAGE);
    let (page, more) = repo::payloads(pool, &row.id, cursor, limit)
        .await
        .map_err(|e| database(&e))?;
    let next = page.last().map_or(cursor, |(n, _)| n + 1);
    // Reading payloads keeps an active webhook alive, as Airtable does.
    repo::refresh(
        pool,
        open.id.as_str(),
        &row.id,
        now + Duration::days(LIFETIME_DAYS),
    )
    .await
    .map_err(|e| database(&e))?;
    let payloads: Vec<Value> = page.into_iter().map(|(_, p)| p).collect();
    Ok(Json(json!({
        "payloads": payloads,
        "cursor": next,
        "mightHaveMore": more,
        "payloadFormat": "v0",
    })))
}
