//! Errors in Airtable's shape: `{"error": {"type": "...", "message": "..."}}` with Airtable's
//! status codes, or the bare `{"error": "NOT_FOUND"}` Airtable answers for unknown records and
//! routes. Infrastructure failures are logged here and shown as a bare 500.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pyairtable_commands::CommandError;
use serde_json::json;

/// The message Airtable gives when a base, table or token does not reach what was asked.
pub const MODEL_NOT_FOUND_MESSAGE: &str = "Invalid permissions, or the requested model was not found. Check that both your user and your token have the required permissions, and that the model names and/or ids are correct.";

/// An error answer of the REST API.
#[derive(Debug)]
pub enum RestError {
    /// `{"error": {"type", "message"}}`.
    Typed {
        /// HTTP status.
        status: StatusCode,
        /// Airtable's error type, e.g. `INVALID_VALUE_FOR_COLUMN`.
        kind: Cow<'static, str>,
        /// What went wrong, safe to show.
        message: String,
    },
    /// `{"error": "<code>"}`, as Airtable answers unknown records and routes.
    Bare {
        /// HTTP status.
        status: StatusCode,
        /// The code, e.g. `NOT_FOUND`.
        code: &'static str,
    },
    /// 429 with `Retry-After`.
    RateLimited {
        /// Seconds until the base's window reopens.
        retry_after_secs: u64,
    },
    /// A bare 500; the cause was logged where it happened.
    Internal,
}

/// Shorthand for handler results.
pub type RestResult<T> = Result<T, RestError>;

impl RestError {
    /// A typed error.
    pub fn typed(
        status: StatusCode,
        kind: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self::Typed {
            status,
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// 422 with a given type.
    pub fn unprocessable(kind: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::typed(StatusCode::UNPROCESSABLE_ENTITY, kind, message)
    }

    /// 422 `INVALID_REQUEST_UNKNOWN`: a malformed request.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::unprocessable("INVALID_REQUEST_UNKNOWN", message)
    }

    /// 401 `AUTHENTICATION_REQUIRED`.
    #[must_use]
    pub fn authentication_required() -> Self {
        Self::typed(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_REQUIRED",
            "Authentication required",
        )
    }

    /// 403 `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`: the base does not exist or the caller
    /// (or its token) cannot reach it; the two are told apart to nobody (tenant isolation).
    #[must_use]
    pub fn model_not_found() -> Self {
        Self::typed(
            StatusCode::FORBIDDEN,
            "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
            MODEL_NOT_FOUND_MESSAGE,
        )
    }

    /// 403 `INVALID_PERMISSIONS`: a member whose role does not allow the operation.
    pub fn invalid_permissions(message: impl Into<String>) -> Self {
        Self::typed(StatusCode::FORBIDDEN, "INVALID_PERMISSIONS", message)
    }

    /// 404 `{"error": "NOT_FOUND"}`.
    #[must_use]
    pub fn not_found() -> Self {
        Self::Bare {
            status: StatusCode::NOT_FOUND,
            code: "NOT_FOUND",
        }
    }

    /// 404 `{"error": {"type": "NOT_FOUND", "message"}}`.
    pub fn not_found_typed(message: impl Into<String>) -> Self {
        Self::typed(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// Logs an infrastructure failure with its context and answers a bare 500.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, context, "REST request failed");
        Self::Internal
    }
}

impl From<CommandError> for RestError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Rejected { code, message } => {
                // Codes spelled like Airtable's (`INVALID_VALUE_FOR_COLUMN`) are passed through;
                // the domain's own lowercase codes are all "the request is invalid" to a client.
                let airtable_like =
                    !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
                let kind = if airtable_like {
                    code
                } else {
                    "INVALID_REQUEST_UNKNOWN"
                };
                Self::unprocessable(kind, message)
            }
            CommandError::Unauthorized { .. } => Self::authentication_required(),
            CommandError::Forbidden { message } => Self::invalid_permissions(message),
            CommandError::NotFound { kind, id } => match kind {
                "record" => Self::not_found_typed(format!("Could not find record {id}")),
                "table" => Self::not_found_typed(format!("Could not find table {id}")),
                "comment" => Self::not_found_typed(format!("Could not find comment {id}")),
                _ => Self::model_not_found(),
            },
            CommandError::Conflict { .. } => Self::typed(
                StatusCode::CONFLICT,
                "CONFLICT",
                "The records changed concurrently too many times; try again",
            ),
            CommandError::IdempotencyKeyReused { key } => Self::invalid_request(format!(
                "idempotency key {key:?} was already used for a different request"
            )),
            error @ CommandError::Infrastructure { .. } => {
                let chain = error_chain(&error);
                Self::internal("running a command", &chain)
            }
        }
    }
}

/// The error and its sources on one line, for the log.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl From<pyairtable_projections::ProjectionError> for RestError {
    fn from(error: pyairtable_projections::ProjectionError) -> Self {
        Self::internal("reading a read model", &error_chain(&error))
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        match self {
            Self::Typed {
                status,
                kind,
                message,
            } => (
                status,
                axum::Json(json!({"error": {"type": kind, "message": message}})),
            )
                .into_response(),
            Self::Bare { status, code } => {
                (status, axum::Json(json!({ "error": code }))).into_response()
            }
            Self::RateLimited { retry_after_secs } => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(json!({"error": {
                        "type": "TOO_MANY_REQUESTS",
                        "message": "You have made too many requests in a short period of time. Please retry your request later",
                    }})),
                )
                    .into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                );
                response
            }
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": {
                    "type": "SERVER_ERROR",
                    "message": "Try again. If the problem persists, contact support.",
                }})),
            )
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(error: RestError) -> (StatusCode, String) {
        match error {
            RestError::Typed { status, kind, .. } => (status, kind.into_owned()),
            RestError::Bare { status, code } => (status, format!("bare:{code}")),
            RestError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rl".into()),
            RestError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal".into()),
        }
    }

    #[test]
    fn airtable_codes_pass_through_and_domain_codes_become_invalid_request() {
        let e = CommandError::rejected("INVALID_VALUE_FOR_COLUMN", "bad");
        assert_eq!(
            parts(e.into()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_VALUE_FOR_COLUMN".into()
            )
        );
        let e = CommandError::rejected("base_deleted", "gone");
        assert_eq!(
            parts(e.into()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_REQUEST_UNKNOWN".into()
            )
        );
    }

    #[test]
    fn missing_bases_are_indistinguishable_from_forbidden_ones() {
        let e = CommandError::not_found("base", "appX");
        assert_eq!(
            parts(e.into()),
            (
                StatusCode::FORBIDDEN,
                "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND".into()
            )
        );
        let e = CommandError::infra("x", "db down");
        assert_eq!(parts(e.into()).1, "internal");
    }
}
