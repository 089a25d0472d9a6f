//! Recomputing hash chains from the stored rows: [`EventStore::verify_stream`] and
//! [`EventStore::verify_all`].

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use futures::{Stream, TryStreamExt};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::StoreError;
use crate::hash::{ChainVerifier, EventContent, StoredLink, VerifyReport};
use crate::ids::StreamId;
use crate::store::EventStore;

/// Rows fetched per page while verifying.
const VERIFY_PAGE: i64 = 1_000;

macro_rules! link_columns {
    () => {
        "e.stream_id, e.version, e.recorded_at, e.event_id, e.event_type, e.schema_version, \
         e.payload::text AS payload, e.metadata::text AS metadata, e.prev_hash, e.hash"
    };
}

impl EventStore {
    /// Recomputes a stream's hash chain from its stored rows and reports the first link that
    /// does not hold: a row altered, inserted or removed behind the store's back.
    /// A stream without events verifies as intact with 0 events checked.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn verify_stream(&self, stream: &StreamId) -> Result<VerifyReport, StoreError> {
        let mut verifier = ChainVerifier::new(stream.to_string());
        let mut after: i64 = 0;
        loop {
            let rows = sqlx::query(concat!(
                "SELECT ",
                link_columns!(),
                " FROM events AS e WHERE e.stream_id = $1 AND e.version > $2",
                " ORDER BY e.version LIMIT $3"
            ))
            .bind(stream.as_str())
            .bind(after)
            .bind(VERIFY_PAGE)
            .fetch_all(self.pool())
            .await?;
            for row in &rows {
                after = row.try_get("version")?;
                push_row(&mut verifier, row)?;
            }
            if rows.len() < usize::try_from(VERIFY_PAGE).unwrap_or(usize::MAX) {
                return Ok(verifier.finish());
            }
        }
    }

    /// Verifies every stream in one ordered pass over the events, yielding one report per
    /// stream (in stream id order) as soon as it is complete. An `Err` ends the stream.
    pub fn verify_all_stream(
        &self,
    ) -> impl Stream<Item = Result<VerifyReport, StoreError>> + Send + 'static {
        let state = VerifyAll {
            store: self.clone(),
            after: (String::new(), 0),
            current: None,
            ready: VecDeque::new(),
            exhausted: false,
        };
        futures::stream::try_unfold(state, |mut state| async move {
            let report = state.next_report().await?;
            Ok(report.map(|report| (report, state)))
        })
    }

    /// Verifies every stream; see [`EventStore::verify_all_stream`].
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn verify_all(&self) -> Result<Vec<VerifyReport>, StoreError> {
        self.verify_all_stream().try_collect().await
    }
}

struct VerifyAll {
    store: EventStore,
    /// Keyset cursor: the last (stream, version) read.
    after: (String, i64),
    current: Option<ChainVerifier>,
    ready: VecDeque<VerifyReport>,
    exhausted: bool,
}

impl VerifyAll {
    async fn next_report(&mut self) -> Result<Option<VerifyReport>, StoreError> {
        loop {
            if let Some(report) = self.ready.pop_front() {
                return Ok(Some(report));
            }
            if self.exhausted {
                return Ok(self.current.take().map(ChainVerifier::finish));
            }
            // Every stream id is non-empty, so ('', 0) sorts before all rows.
            let rows = sqlx::query(concat!(
                "SELECT ",
                link_columns!(),
                " FROM events AS e WHERE (e.stream_id, e.version) > ($1, $2)",
                " ORDER BY e.stream_id, e.version LIMIT $3"
            ))
            .bind(&self.after.0)
            .bind(self.after.1)
            .bind(VERIFY_PAGE)
            .fetch_all(self.store.pool())
            .await?;
            self.exhausted = rows.len() < usize::try_from(VERIFY_PAGE).unwrap_or(usize::MAX);
            for row in &rows {
                let stream: String = row.try_get("stream_id")?;
                let version: i64 = row.try_get("version")?;
                if self.current.as_ref().is_none_or(|c| c.stream() != stream) {
                    if let Some(done) = self.current.take() {
                        self.ready.push_back(done.finish());
                    }
                    self.current = Some(ChainVerifier::new(stream.clone()));
                }
                if let Some(verifier) = self.current.as_mut() {
                    push_row(verifier, row)?;
                }
                self.after = (stream, version);
            }
        }
    }
}

fn push_row(verifier: &mut ChainVerifier, row: &PgRow) -> Result<(), StoreError> {
    let recorded_at: DateTime<Utc> = row.try_get("recorded_at")?;
    let stream_id: &str = row.try_get("stream_id")?;
    let event_type: &str = row.try_get("event_type")?;
    let payload: &str = row.try_get("payload")?;
    let metadata: &str = row.try_get("metadata")?;
    verifier.push(&StoredLink {
        version: row.try_get("version")?,
        recorded_at_micros: recorded_at.timestamp_micros(),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        content: EventContent {
            stream_id,
            event_id: row.try_get("event_id")?,
            event_type,
            schema_version: row.try_get("schema_version")?,
            payload_json: payload,
            metadata_json: metadata,
        },
    });
    Ok(())
}
