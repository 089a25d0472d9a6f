//! The Airtable-compatible REST API under `/v0`: records, comments and the metadata API, with
//! Airtable's error shapes, bearer API tokens with their scopes and base restriction, and a
//! per-base rate limit. Existing Airtable clients (pyairtable, airtable.js) work against it
//! by changing only their endpoint URL. See docs/rest.md.

pub mod access;
pub mod body;
pub mod cells;
pub mod comments;
pub mod computed;
pub mod error;
pub mod limits;
pub mod meta;
pub mod params;
pub mod pushdown;
pub mod records;
pub mod scan;

use axum::Router;
use axum::routing::{get, patch, post};

pub use limits::RestConfig;

use crate::state::AppState;

/// The `/v0` routes, to be nested under `/v0`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/meta/whoami", get(meta::whoami))
        .route("/meta/bases", get(meta::list_bases).post(meta::create_base))
        .route(
            "/meta/bases/{base}/tables",
            get(meta::base_schema).post(meta::create_table),
        )
        .route(
            "/meta/bases/{base}/tables/{table}",
            patch(meta::update_table),
        )
        .route(
            "/meta/bases/{base}/tables/{table}/fields",
            post(meta::create_field),
        )
        .route(
            "/meta/bases/{base}/tables/{table}/fields/{field}",
            patch(meta::update_field),
        )
        .route(
            "/{base}/{table}",
            get(records::list_get)
                .post(records::create)
                .patch(records::update_many)
                .put(records::update_many)
                .delete(records::delete_many),
        )
        // airtable.js writes to `/{base}/{table}/` with a trailing slash.
        .route(
            "/{base}/{table}/",
            get(records::list_get)
                .post(records::create)
                .patch(records::update_many)
                .put(records::update_many)
                .delete(records::delete_many),
        )
        .route("/{base}/{table}/listRecords", post(records::list_post))
        .route(
            "/{base}/{table}/{record}",
            get(records::get_one)
                .patch(records::update_one)
                .put(records::update_one)
                .delete(records::delete_one),
        )
        .route(
            "/{base}/{table}/{record}/comments",
            get(comments::list).post(comments::create),
        )
        .route(
            "/{base}/{table}/{record}/comments/{comment}",
            patch(comments::update).delete(comments::delete),
        )
        .fallback(not_found)
}

async fn not_found() -> error::RestError {
    error::RestError::not_found()
}
