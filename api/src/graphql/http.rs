//! `/graphql` over HTTP and WebSocket: credentials, the rate limit, and errors in one shape
//! (`{"errors": [{"message", "extensions": {"code"}}]}`) whatever stage refused the request.

use std::net::{IpAddr, SocketAddr};

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{Data, ErrorExtensionValues, ServerError};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLWebSocket};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use pyairtable_commands::Authenticated;
use serde_json::json;

use super::context::{ApiTokenCredential, Viewer};
use super::error::ApiError;
use super::ratelimit::{self, Verdict};
use crate::state::AppState;

/// An error response in GraphQL's shape.
fn error_response(status: StatusCode, error: &ApiError) -> Response {
    let mut extensions = json!({ "code": error.code() });
    if let ApiError::RateLimited { retry_after } = error {
        extensions["retryAfter"] = json!(retry_after);
    }
    if let ApiError::Validation {
        reason: Some(reason),
        ..
    } = error
    {
        extensions["reason"] = json!(reason);
    }
    let body = json!({ "errors": [{ "message": error.message(), "extensions": extensions }] });
    let mut response = (status, axum::Json(body)).into_response();
    if let ApiError::RateLimited { retry_after } = error
        && let Ok(value) = HeaderValue::from_str(&retry_after.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The token of a `Bearer <token>` credential.
fn bearer(credential: &str) -> Result<&str, ApiError> {
    credential
        .strip_prefix("Bearer ")
        .or_else(|| credential.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::Unauthenticated(
                "the Authorization header must be `Bearer <token>`".to_owned(),
            )
        })
}

/// Whether a bearer token is an API token rather than a session access token.
fn is_api_token(token: &str) -> bool {
    token.starts_with("pat")
}

/// Resolves a bearer credential: an API token (`pat…`) or a session access token.
async fn authenticate(state: &AppState, credential: &str) -> Result<Authenticated, ApiError> {
    let token = bearer(credential)?;
    let auth = state.platform.auth();
    let user = if is_api_token(token) {
        auth.verify_api_token(token).await?
    } else {
        auth.verify_access_token(token, Utc::now())?
    };
    Ok(user)
}

/// The rate-limit key of a caller.
fn limit_key(user: Option<&Authenticated>, ip: Option<IpAddr>) -> String {
    match user {
        Some(Authenticated {
            token: Some(token), ..
        }) => token.token_id.to_string(),
        Some(user) => user.user_id.to_string(),
        None => format!(
            "ip:{}",
            ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
        ),
    }
}

async fn limit(
    state: &AppState,
    user: Option<&Authenticated>,
    ip: Option<IpAddr>,
) -> Result<(), ApiError> {
    let config = &state.graphql_config;
    match ratelimit::check(
        &state.redis,
        state.namespace.as_str(),
        &limit_key(user, ip),
        config.rate_limit,
        config.rate_limit_window,
    )
    .await
    {
        Verdict::Allowed => Ok(()),
        Verdict::Limited { retry_after } => Err(ApiError::RateLimited { retry_after }),
    }
}

/// Gives every error a code: async-graphql's own (syntax, unknown fields, wrong argument
/// types, depth and complexity limits) carry none, and they are all the client's mistake.
fn ensure_codes(errors: &mut [ServerError]) {
    for error in errors {
        let extensions = error
            .extensions
            .get_or_insert_with(ErrorExtensionValues::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "VALIDATION");
        }
    }
}

/// `POST /graphql`.
pub async fn graphql_post(State(state): State<AppState>, request: Request) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let user = match request.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let credential = value.to_str().unwrap_or_default().to_owned();
            match authenticate(&state, &credential).await {
                Ok(user) => Some(user),
                Err(error) => return error_response(StatusCode::UNAUTHORIZED, &error),
            }
        }
    };
    if let Err(error) = limit(&state, user.as_ref(), ip).await {
        return error_response(StatusCode::TOO_MANY_REQUESTS, &error);
    }
    let graphql_request =
        match GraphQLRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(
            request,
            &(),
        )
        .await
        {
            Ok(r) => r.into_inner(),
            Err(rejection) => {
                let message = match rejection.0 {
                    async_graphql::ParseRequestError::PayloadTooLarge => {
                        return error_response(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            &ApiError::validation("the request body is too large"),
                        );
                    }
                    other => format!("the request is not a GraphQL request: {other}"),
                };
                return error_response(StatusCode::BAD_REQUEST, &ApiError::validation(message));
            }
        };
    let mut response = state
        .schema
        .execute(graphql_request.data(Viewer(user)))
        .await;
    ensure_codes(&mut response.errors);
    async_graphql_axum::GraphQLResponse::from(response).into_response()
}

/// `GET /graphql`: a `graphql-transport-ws` (or legacy `graphql-ws`) WebSocket when the
/// request upgrades, the GraphiQL page otherwise.
pub async fn graphql_get(State(state): State<AppState>, request: Request) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (mut parts, _body) = request.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state).await;
    let protocol = GraphQLProtocol::from_request_parts(&mut parts, &state).await;
    let (Ok(upgrade), Ok(protocol)) = (upgrade, protocol) else {
        return super::graphiql::page();
    };
    let headers: HeaderMap = parts.headers.clone();
    let schema = state.schema.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| connection_init(state, headers, ip, payload))
                .serve()
                .await;
        })
}

/// Authenticates a WebSocket from its `connection_init` payload
/// (`{"Authorization": "Bearer …"}`), falling back to the upgrade request's header.
async fn connection_init(
    state: AppState,
    headers: HeaderMap,
    ip: Option<IpAddr>,
    payload: serde_json::Value,
) -> async_graphql::Result<Data> {
    let from_payload = ["Authorization", "authorization"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(|v| v.as_str()).map(str::to_owned));
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let credential = from_payload.or(from_header);
    let user = match &credential {
        Some(credential) => Some(authenticate(&state, credential).await?),
        None => None,
    };
    limit(&state, user.as_ref(), ip).await?;
    let mut data = Data::default();
    data.insert(Viewer(user));
    // Subscriptions check an API token again while they run, so they need the token itself.
    if let Some(token) = credential.as_deref().and_then(|c| bearer(c).ok())
        && is_api_token(token)
    {
        data.insert(ApiTokenCredential(token.to_owned()));
    }
    Ok(data)
}
