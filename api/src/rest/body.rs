//! A JSON body extractor whose rejections are Airtable-shaped: 413 for an oversized body, 422
//! `INVALID_REQUEST_UNKNOWN` for anything that is not JSON.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::Value;

use super::error::RestError;

/// The request body as JSON (`{}` when empty, as clients send no body on some writes).
#[derive(Debug, Clone)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = RestError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                RestError::typed(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "REQUEST_TOO_LARGE",
                    "Request body is too large",
                )
            } else {
                RestError::invalid_request("Could not read the request body")
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Value::Object(serde_json::Map::new())));
        }
        serde_json::from_slice(&bytes).map(Self).map_err(|e| {
            RestError::invalid_request(format!("Invalid request: the body is not valid JSON ({e})"))
        })
    }
}

/// Deserialises a part of a body, answering 422 with serde's reason.
///
/// # Errors
/// 422 `INVALID_REQUEST_UNKNOWN`.
pub fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, RestError> {
    serde_json::from_value(value)
        .map_err(|e| RestError::invalid_request(format!("Invalid request: {e}")))
}
