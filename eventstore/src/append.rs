//! Appending: one SQL statement per attempt, typed conflicts, idempotent retries.
//!
//! An append is one prepared statement. When this process knows every stream's head (it wrote
//! or read it last, see `heads`), it chains the hashes itself and sends a plain insert that the
//! database checks against those heads (ADR 0010), in one of three shapes: one event, one
//! write, several writes (ADR 0011). Otherwise the statement looks up each
//! stream's head, checks every expected version, chains the hashes and inserts, or inserts
//! nothing and returns the first failing write. One event to one stream takes a leaner
//! INSERT ... SELECT for that.
//! Statements rather than a PL/pgSQL function because they cost the server markedly less per
//! append (measured: ~255 µs general, ~185 µs single event, ~300 µs as a function, against
//! ~100 µs for a bare insert into a plain table). The slow paths (a conflict, an event id
//! already stored) call `replay_append` to tell a retried append from a real conflict.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, Row};
use tracing::instrument;
use uuid::Uuid;

use crate::conns;
use crate::envelope::{
    AppendResult, AppendedEvent, ExpectedVersion, Metadata, NewEvent, StreamWrite,
};
use crate::error::StoreError;
use crate::hash::{GENESIS, chain};
use crate::heads::{Head, HeadCache};
use crate::ids::{Namespace, StreamId};
use crate::position::Position;
use crate::prepare::PreparedAppend;
use crate::store::EventStore;

/// Attempts of an append that keeps losing races (unique violations, deadlocks).
const MAX_APPEND_ATTEMPTS: u32 = 10;

/// The insert that begins every append statement (`"NS"` is the namespace, see
/// `AppendStatements`).
macro_rules! insert_events {
    () => {
        r#"
INSERT INTO "NS".events AS e (epoch, xid, pos, version, recorded_at, schema_version, event_id,
                              stream_id, event_type, payload, metadata, prev_hash, hash)"#
    };
}

/// The known-head statements' rows from their subquery `v` of unnested arrays: the epoch and
/// the transaction id once per statement, a position per row.
macro_rules! known_select {
    () => {
        r#"
SELECT (SELECT s.epoch FROM "NS".store_epoch AS s), (SELECT pg_current_xact_id()::text::bigint),
       nextval('"NS".events_pos_seq'), v.version, $9::timestamptz, v.schema_version,
       v.event_id, v.stream, v.event_type, v.payload::json, (SELECT $10::text::json), v.prev,
       v.hash"#
    };
}

/// The known-head statements' clock check: the caller's `recorded_at` (`$9`) within a second
/// of the database's.
macro_rules! known_clock_check {
    () => {
        r#"
 WHERE $9::timestamptz BETWEEN now() - interval '1 second' AND now() + interval '1 second'"#
    };
}

/// What the known-head statements return per row, in insert order: the caller knows the rest.
macro_rules! known_returning {
    () => {
        "
RETURNING e.pos, e.version, e.xid, e.epoch
"
    };
}

/// The append statement. `"NS"` is replaced by the quoted namespace, so the statement works
/// on any connection to the database whatever its search_path.
///
/// Parameters: per write `$1` stream, `$2` expected version (NULL any, 0 none, n exact), `$3`
/// event count, `$4` offset of its first event; per event `$5` id, `$6` type, `$7` schema
/// version, `$8` payload JSON text, `$9` content digest; `$10` the metadata JSON text.
///
/// `ORDER BY stream, version` (bytewise, the order the known-head statements send their rows
/// in) makes concurrent multi-stream appends meet in the same order (no deadlock), and
/// Postgres evaluates `nextval` after that sort, so a stream's events get increasing positions. Stream heads are read in the statement's snapshot; a writer that
/// commits the same version first makes this insert fail on `events_stream_version_key`,
/// which the caller retries.
///
/// The feed is ordered by transaction id, so a stream's versions must never go down in xid:
/// a write whose stream head was written by a younger transaction is refused as a conflict.
/// That cannot happen to a statement on its own (its xid is taken after its snapshot, so it
/// is younger than every transaction whose head it sees); it guards appends made inside a
/// caller's transaction that took its xid earlier (`append_many_in`).
const APPEND_SQL: &str = concat!(
    r#"
WITH RECURSIVE
me AS MATERIALIZED (
    SELECT (SELECT s.epoch FROM "NS".store_epoch AS s) AS epoch,
           pg_current_xact_id()::text::bigint AS xid
),
heads AS MATERIALIZED (
    SELECT w.idx, w.stream, w.expected, w.cnt, w.off,
           coalesce(h.version, 0) AS head,
           coalesce(h.hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea) AS head_hash,
           h.epoch AS head_epoch, h.xid AS head_xid,
           greatest(now(), h.recorded_at) AS rec
      FROM unnest($1::text[], $2::bigint[], $3::integer[], $4::integer[])
           WITH ORDINALITY AS w(stream, expected, cnt, off, idx)
      LEFT JOIN LATERAL (
            SELECT e.version, e.hash, e.epoch, e.xid, e.recorded_at FROM "NS".events AS e
             WHERE e.stream_id = w.stream
             ORDER BY e.version DESC
             LIMIT 1) AS h ON true
),
conflict AS (
    SELECT hd.idx, hd.head FROM heads AS hd, me
     WHERE (hd.expected IS NOT NULL AND hd.expected <> hd.head)
        OR (hd.head_epoch, hd.head_xid) > (me.epoch, me.xid)
     ORDER BY hd.idx
     LIMIT 1
),
chain AS (
    SELECT hd.stream, hd.off, hd.cnt, hd.rec, 1 AS k, hd.head + 1 AS version, hd.head_hash AS prev,
           sha256(hd.head_hash || int8send(hd.head + 1)
                  || int8send((extract(epoch FROM hd.rec) * 1000000)::bigint)
                  || ($9::bytea[])[hd.off + 1]) AS hash
      FROM heads AS hd
     WHERE NOT EXISTS (SELECT FROM conflict)
    UNION ALL
    SELECT ch.stream, ch.off, ch.cnt, ch.rec, ch.k + 1, ch.version + 1, ch.hash,
           sha256(ch.hash || int8send(ch.version + 1)
                  || int8send((extract(epoch FROM ch.rec) * 1000000)::bigint)
                  || ($9::bytea[])[ch.off + ch.k + 1])
      FROM chain AS ch
     WHERE ch.k < ch.cnt
),
inserted AS ("#,
    insert_events!(),
    r#"
    SELECT me.epoch, me.xid, nextval('"NS".events_pos_seq'), ch.version, ch.rec, ($7::integer[])[ch.off + ch.k],
           ($5::uuid[])[ch.off + ch.k], ch.stream, ($6::text[])[ch.off + ch.k],
           ($8::text[])[ch.off + ch.k]::json, (SELECT $10::text::json), ch.prev, ch.hash
      FROM chain AS ch, me
     ORDER BY ch.stream COLLATE "C", ch.version
    RETURNING e.event_id, e.stream_id, e.version, e.epoch, e.xid, e.pos, e.recorded_at, e.hash
)
SELECT i.event_id, i.stream_id, i.version, i.epoch, i.xid, i.pos, i.recorded_at, i.hash,
       NULL::integer AS conflict_write, NULL::bigint AS conflict_actual
  FROM inserted AS i
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, c.idx::integer, c.head
  FROM conflict AS c
"#
);

/// The fast path for the commonest append, one event to one stream: a plain INSERT ... SELECT,
/// which costs the server markedly less than the general statement's CTEs (measured ~185 µs
/// against ~255 µs). It inserts only when the expected version and the feed-order guard hold
/// and returns no row otherwise; the general statement then reports why.
///
/// Parameters: `$1` stream, `$2` expected version (as in `APPEND_SQL`), `$3` event id, `$4`
/// type, `$5` schema version, `$6` payload JSON text, `$7` content digest, `$8` metadata JSON.
const SINGLE_SQL: &str = concat!(
    insert_events!(),
    r#"
SELECT s.epoch, pg_current_xact_id()::text::bigint, nextval('"NS".events_pos_seq'),
       coalesce(h.version, 0) + 1, greatest(now(), h.recorded_at), $5::integer, $3::uuid,
       $1::text, $4::text, $6::text::json, $8::text::json,
       coalesce(h.hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea),
       sha256(coalesce(h.hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
              || int8send(coalesce(h.version, 0) + 1)
              || int8send((extract(epoch FROM greatest(now(), h.recorded_at)) * 1000000)::bigint)
              || $7::bytea)
  FROM "NS".store_epoch AS s
  LEFT JOIN LATERAL (
        SELECT x.version, x.hash, x.epoch, x.xid, x.recorded_at FROM "NS".events AS x
         WHERE x.stream_id = $1::text
         ORDER BY x.version DESC
         LIMIT 1) AS h ON true
 WHERE ($2::bigint IS NULL OR coalesce(h.version, 0) = $2::bigint)
   AND NOT coalesce((h.epoch, h.xid) > (s.epoch, pg_current_xact_id()::text::bigint), false)
RETURNING e.event_id, e.stream_id, e.version, e.epoch, e.xid, e.pos, e.recorded_at, e.hash,
          NULL::integer AS conflict_write, NULL::bigint AS conflict_actual
"#
);

/// The append whose stream heads this process knows (see `heads`): the versions, the hash
/// chain and `recorded_at` are computed by the caller, so this is a plain insert, the cheapest
/// statement the server can run for it (ADR 0010).
///
/// It inserts only when, for every write that claims a head, the stream's row at that version
/// still has that hash (one index probe per write), and when the caller's clock agrees with
/// the server's within a second. Otherwise it inserts nothing and returns no row; a stream
/// written past its claimed head fails on `events_stream_version_key`. Either way the caller
/// goes on with the statements above, which read the heads themselves.
///
/// Parameters, per event in insert order: `$1` stream, `$2` version, `$3` id, `$4` type, `$5`
/// schema version, `$6` payload JSON text, `$7` previous hash, `$8` hash; `$9` recorded_at,
/// `$10` metadata JSON text; per claimed head: `$11` stream, `$12` version, `$13` hash.
///
/// The caller sends the events sorted by stream and version, the order that keeps concurrent
/// multi-stream appends from deadlocking, so the statement needs no sort; `nextval` follows
/// that order, so a stream's events get increasing positions. The arrays are unnested in a
/// select list rather than in `FROM`, which would first copy each into a tuplestore. Rows come
/// back in insert order with just what the caller does not know (ADR 0011).
///
/// The head check is written as nested `NOT EXISTS` so that it stays a probe of the
/// `(stream_id, version)` index under the generic plan the append connections use (a join
/// there was planned as a hash join over the whole table). The feed-order guard of the
/// statements above is not needed: the statement runs on its own, and a head this process saw
/// committed holds an older transaction id than the statement's.
const KNOWN_SQL: &str = concat!(
    insert_events!(),
    known_select!(),
    r#"
  FROM (SELECT unnest($1::text[]) AS stream, unnest($2::bigint[]) AS version,
               unnest($3::uuid[]) AS event_id, unnest($4::text[]) AS event_type,
               unnest($5::integer[]) AS schema_version, unnest($6::text[]) AS payload,
               unnest($7::bytea[]) AS prev, unnest($8::bytea[]) AS hash) AS v"#,
    known_clock_check!(),
    r#"
   AND NOT EXISTS (
        SELECT FROM unnest($11::text[], $12::bigint[], $13::bytea[]) AS h(stream, version, hash)
         WHERE NOT EXISTS (
               SELECT FROM "NS".events AS x
                WHERE x.stream_id = h.stream AND x.version = h.version AND x.hash = h.hash))"#,
    known_returning!(),
);

/// `KNOWN_SQL` for one write of several events (the commonest append: a command on one
/// aggregate), with the stream and its claimed head as scalars: `$1` stream, `$11` claimed
/// version (0 for a new stream, which claims none), `$12` claimed hash; `$2` to `$10` as
/// there. No stream array to receive and unnest, and the head check is one index probe.
const KNOWN_WRITE_SQL: &str = concat!(
    insert_events!(),
    known_select!(),
    r#"
  FROM (SELECT $1::text AS stream, unnest($2::bigint[]) AS version,
               unnest($3::uuid[]) AS event_id, unnest($4::text[]) AS event_type,
               unnest($5::integer[]) AS schema_version, unnest($6::text[]) AS payload,
               unnest($7::bytea[]) AS prev, unnest($8::bytea[]) AS hash) AS v"#,
    known_clock_check!(),
    r#"
   AND ($11::bigint = 0 OR EXISTS (
        SELECT FROM "NS".events AS x
         WHERE x.stream_id = $1::text AND x.version = $11::bigint AND x.hash = $12::bytea))"#,
    known_returning!(),
);

/// `KNOWN_SQL` for one event, with scalar parameters: `$1` to `$10` as there. The claimed head
/// is the event's predecessor, version `$2 - 1` with hash `$7`; a new stream (version 1)
/// claims none, and the version key refuses it if the stream exists.
const KNOWN_ONE_SQL: &str = concat!(
    insert_events!(),
    r#"
SELECT s.epoch, pg_current_xact_id()::text::bigint, nextval('"NS".events_pos_seq'),
       $2::bigint, $9::timestamptz, $5::integer, $3::uuid, $1::text, $4::text, $6::text::json,
       $10::text::json, $7::bytea, $8::bytea
  FROM "NS".store_epoch AS s"#,
    known_clock_check!(),
    r#"
   AND ($2::bigint = 1 OR EXISTS (
        SELECT FROM "NS".events AS x
         WHERE x.stream_id = $1::text AND x.version = $2::bigint - 1 AND x.hash = $7::bytea))"#,
    known_returning!(),
);

/// Rows of an append that was already made, or nothing (see `replay_append` in the migration).
const REPLAY_SQL: &str = r#"
SELECT r.out_event_id AS event_id, r.out_stream_id AS stream_id, r.out_version AS version,
       r.out_epoch AS epoch, r.out_xid AS xid, r.out_pos AS pos, r.out_recorded_at AS recorded_at,
       NULL::bytea AS hash
  FROM "NS".replay_append($1, $2, $3) AS r
"#;

/// The checks `append_many_in` makes before it writes, in one round trip: whether the caller's
/// transaction has no id yet (`fresh`), and, when it has none, the rows of an identical earlier
/// append (none when its ids are not stored). The replay runs only for a fresh transaction.
const FRESH_REPLAY_SQL: &str = r#"
SELECT f.fresh, r.out_event_id AS event_id, r.out_stream_id AS stream_id, r.out_version AS version,
       r.out_epoch AS epoch, r.out_xid AS xid, r.out_pos AS pos, r.out_recorded_at AS recorded_at,
       NULL::bytea AS hash
  FROM (SELECT pg_current_xact_id_if_assigned() IS NULL AS fresh) AS f
  LEFT JOIN LATERAL (SELECT * FROM "NS".replay_append($1, $2, $3) WHERE f.fresh) AS r ON true
"#;

/// The namespace's append and replay statements.
pub(crate) struct AppendStatements {
    append: Arc<str>,
    single: Arc<str>,
    known: Arc<str>,
    known_one: Arc<str>,
    known_write: Arc<str>,
    replay: Arc<str>,
    fresh_replay: Arc<str>,
}

impl AppendStatements {
    pub(crate) fn new(namespace: &Namespace) -> Self {
        // A namespace is [a-z][a-z0-9_]*: quoting it needs no escaping.
        let quoted = format!("\"{namespace}\"");
        Self {
            append: Arc::from(APPEND_SQL.replace("\"NS\"", &quoted)),
            single: Arc::from(SINGLE_SQL.replace("\"NS\"", &quoted)),
            known: Arc::from(KNOWN_SQL.replace("\"NS\"", &quoted)),
            known_one: Arc::from(KNOWN_ONE_SQL.replace("\"NS\"", &quoted)),
            known_write: Arc::from(KNOWN_WRITE_SQL.replace("\"NS\"", &quoted)),
            replay: Arc::from(REPLAY_SQL.replace("\"NS\"", &quoted)),
            fresh_replay: Arc::from(FRESH_REPLAY_SQL.replace("\"NS\"", &quoted)),
        }
    }
}

/// One event row as the append or replay statement returns it.
struct StoredRow {
    event_id: Uuid,
    stream_id: String,
    version: u64,
    position: Position,
    recorded_at: DateTime<Utc>,
    /// The event's chain hash; the replay statement does not return it.
    hash: Option<Vec<u8>>,
}

/// Which statement an append attempt runs, cheapest first.
#[allow(
    clippy::large_enum_variant,
    reason = "one per append, on the stack; boxing the plan would add an allocation"
)]
enum Path<'a> {
    /// Every stream's head is known here: a plain insert.
    Known(KnownPlan<'a>),
    /// One event to one stream.
    Single,
    /// Anything.
    General,
}

/// The arguments of the known-head statement: every event's version and hashes, chained here,
/// with the events in insert order (writes sorted by stream).
struct KnownPlan<'a> {
    streams: Vec<&'a str>,
    versions: Vec<i64>,
    event_ids: Vec<Uuid>,
    types: Vec<&'a str>,
    schema_versions: Vec<i32>,
    payloads: Vec<&'a str>,
    prevs: Vec<[u8; 32]>,
    hashes: Vec<[u8; 32]>,
    recorded_at: DateTime<Utc>,
    metadata: &'a str,
    /// Per write, in the caller's order: where its events start in the arrays above.
    starts: Vec<usize>,
    /// The writes that claim an existing head: stream, version, hash.
    head_streams: Vec<&'a str>,
    head_versions: Vec<i64>,
    head_hashes: Vec<[u8; 32]>,
}

impl<'a> KnownPlan<'a> {
    /// The plan when every write's head is known: a new stream for `NoStream` and `Exact(0)`
    /// (the version key refuses it if the stream exists), the remembered head otherwise.
    /// `None` when any write's head is unknown, or known not to be what the write expects.
    fn new(prepared: &'a PreparedAppend, heads: &HeadCache) -> Option<Self> {
        let mut claims = Vec::with_capacity(prepared.streams.len());
        for (stream, expected) in prepared.streams.iter().zip(&prepared.expected) {
            let known = heads.get(stream);
            let claim = match (expected, known) {
                (ExpectedVersion::NoStream | ExpectedVersion::Exact(0), None) => None,
                (ExpectedVersion::Exact(n), Some(head)) if head.version == *n => Some(head),
                (ExpectedVersion::Any, Some(head)) => Some(head),
                _ => return None,
            };
            claims.push(claim);
        }
        // The caller's clock, never before a head it chains onto: a stream's events must not
        // go back in time (`asOf` reads stop at the first event after the moment asked for).
        let now = Utc::now().timestamp_micros();
        let micros = claims
            .iter()
            .flatten()
            .map(|h| h.recorded_at_micros)
            .fold(now, i64::max);
        let recorded_at = DateTime::from_timestamp_micros(micros)?;
        let total = prepared.event_ids.len();
        let mut plan = Self {
            streams: Vec::with_capacity(total),
            versions: Vec::with_capacity(total),
            event_ids: Vec::with_capacity(total),
            types: Vec::with_capacity(total),
            schema_versions: Vec::with_capacity(total),
            payloads: Vec::with_capacity(total),
            prevs: Vec::with_capacity(total),
            hashes: Vec::with_capacity(total),
            recorded_at,
            metadata: &prepared.metadata,
            starts: vec![0; prepared.streams.len()],
            head_streams: Vec::new(),
            head_versions: Vec::new(),
            head_hashes: Vec::new(),
        };
        // Streams in byte order: every writer on this path locks version keys in one order.
        let mut order: Vec<usize> = (0..prepared.streams.len()).collect();
        order.sort_unstable_by_key(|&w| prepared.streams[w].as_str());
        for w in order {
            let stream = prepared.streams[w].as_str();
            let (mut version, mut prev) = match claims[w] {
                Some(head) => {
                    let version = i64::try_from(head.version).ok()?;
                    plan.head_streams.push(stream);
                    plan.head_versions.push(version);
                    plan.head_hashes.push(head.hash);
                    (version, head.hash)
                }
                None => (0, GENESIS),
            };
            plan.starts[w] = plan.versions.len();
            let offset = usize::try_from(prepared.offsets[w]).ok()?;
            let count = usize::try_from(prepared.counts[w]).ok()?;
            for i in offset..offset + count {
                version += 1;
                let hash = chain(&prev, version, micros, prepared.digests.get(i)?);
                plan.streams.push(stream);
                plan.versions.push(version);
                plan.event_ids.push(*prepared.event_ids.get(i)?);
                plan.types.push(prepared.types.get(i)?);
                plan.schema_versions.push(*prepared.schema_versions.get(i)?);
                plan.payloads.push(prepared.payloads.get(i)?);
                plan.prevs.push(prev);
                plan.hashes.push(hash);
                prev = hash;
            }
        }
        Some(plan)
    }

    /// The statement: `KNOWN_ONE_SQL` for one event, `KNOWN_WRITE_SQL` for one write,
    /// `KNOWN_SQL` otherwise.
    fn query(&self, statements: &AppendStatements) -> Query<'_, Postgres, PgArguments> {
        if let (
            [stream],
            [version],
            [event_id],
            [event_type],
            [schema_version],
            [payload],
            [prev],
            [hash],
        ) = (
            self.streams.as_slice(),
            self.versions.as_slice(),
            self.event_ids.as_slice(),
            self.types.as_slice(),
            self.schema_versions.as_slice(),
            self.payloads.as_slice(),
            self.prevs.as_slice(),
            self.hashes.as_slice(),
        ) {
            return sqlx::query(AssertSqlSafe(Arc::clone(&statements.known_one)))
                .bind(*stream)
                .bind(*version)
                .bind(*event_id)
                .bind(*event_type)
                .bind(*schema_version)
                .bind(*payload)
                .bind(prev.as_slice())
                .bind(hash.as_slice())
                .bind(self.recorded_at)
                .bind(self.metadata);
        }
        if let ([_], Some(stream)) = (self.starts.as_slice(), self.streams.first()) {
            let query = sqlx::query(AssertSqlSafe(Arc::clone(&statements.known_write)));
            return self
                .bind_events(query.bind(*stream))
                .bind(self.head_versions.first().copied().unwrap_or(0))
                .bind(self.head_hashes.first().map_or(&GENESIS[..], |h| &h[..]));
        }
        let query = sqlx::query(AssertSqlSafe(Arc::clone(&statements.known)));
        self.bind_events(query.bind(&self.streams))
            .bind(&self.head_streams)
            .bind(&self.head_versions)
            .bind(&self.head_hashes)
    }

    /// Binds `$2` to `$10` of the array statements (the events, their time and metadata).
    fn bind_events<'q>(
        &'q self,
        query: Query<'q, Postgres, PgArguments>,
    ) -> Query<'q, Postgres, PgArguments> {
        query
            .bind(&self.versions)
            .bind(&self.event_ids)
            .bind(&self.types)
            .bind(&self.schema_versions)
            .bind(&self.payloads)
            .bind(&self.prevs)
            .bind(&self.hashes)
            .bind(self.recorded_at)
            .bind(self.metadata)
    }

    /// The results of the statement's rows (position and version of each event, in insert
    /// order), remembering each write's new head.
    fn appended(
        &self,
        prepared: &PreparedAppend,
        rows: &[PgRow],
        heads: &HeadCache,
    ) -> Result<Vec<AppendResult>, StoreError> {
        if rows.len() != self.versions.len() {
            return Err(StoreError::Corrupt(format!(
                "the append returned {} rows for {} events",
                rows.len(),
                self.versions.len()
            )));
        }
        let mut positions = Vec::with_capacity(rows.len());
        for (row, version) in rows.iter().zip(&self.versions) {
            let stored: i64 = row.try_get(1)?;
            if stored != *version {
                return Err(StoreError::Corrupt(format!(
                    "the append returned version {stored} where {version} was inserted"
                )));
            }
            positions.push(Position::from_sql(
                row.try_get(3)?,
                row.try_get(2)?,
                row.try_get(0)?,
            )?);
        }
        let mut results = Vec::with_capacity(self.starts.len());
        for ((stream, count), start) in prepared
            .streams
            .iter()
            .zip(&prepared.counts)
            .zip(&self.starts)
        {
            let range = *start..*start + usize::try_from(*count).unwrap_or(0);
            let events: Vec<AppendedEvent> = range
                .clone()
                .map(|i| AppendedEvent {
                    event_id: self.event_ids[i],
                    version: self.versions[i].unsigned_abs(),
                    position: positions[i],
                })
                .collect();
            let (Some(first), Some(last)) = (events.first(), events.last()) else {
                return Err(StoreError::Corrupt(format!(
                    "the known-head plan has no events for stream {stream}"
                )));
            };
            heads.put(
                stream,
                Head::new(last.version, self.hashes[range.end - 1], self.recorded_at),
            );
            results.push(AppendResult {
                stream_id: stream.clone(),
                first_version: first.version,
                last_version: last.version,
                position: last.position,
                recorded_at: self.recorded_at,
                deduplicated: false,
                events,
            });
        }
        Ok(results)
    }

    /// Forgets the heads this plan relied on: a refusal means at least one of them is stale.
    fn forget(&self, heads: &HeadCache) {
        for stream in &self.head_streams {
            heads.forget(stream);
        }
    }
}

/// What one execution of the append statement did.
enum Attempt {
    Appended(Vec<StoredRow>),
    /// Nothing written: write `index` (0-based) expected another version; `actual` is 0
    /// when the stream does not exist.
    Conflict {
        index: usize,
        actual: i64,
    },
}

/// What to do after the append statement failed.
enum AfterError {
    Fail(StoreError),
    /// An event id is stored already: maybe by an earlier try of this very append.
    IdStored,
    /// Another writer took a stream version first, or a deadlock: try again.
    Retry,
}

#[derive(Deserialize)]
struct DuplicateDetail {
    event_id: Uuid,
    stream_id: String,
    version: i64,
}

#[derive(Deserialize)]
struct PartialDetail {
    stored: usize,
    total: usize,
    missing: Uuid,
}

impl EventStore {
    /// Appends events to one stream in one transaction. Same as [`EventStore::append_many`]
    /// with one write.
    ///
    /// # Errors
    /// See [`EventStore::append_many`].
    pub async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        metadata: &Metadata,
    ) -> Result<AppendResult, StoreError> {
        let write = StreamWrite {
            stream: stream.clone(),
            expected,
            events,
        };
        let mut results = self.append_many(vec![write], metadata).await?;
        results
            .pop()
            .ok_or_else(|| StoreError::Corrupt("append returned no result".into()))
    }

    /// Appends to several streams atomically, in one statement (one transaction, one round
    /// trip).
    ///
    /// Every write's expected version is checked first; if one fails, nothing is written and
    /// the error is the [`StoreError::Conflict`] of the first failing write (in the order
    /// given), with that stream's actual version. Writers racing for the same stream version
    /// never see a unique violation or deadlock: the loser is retried and then gets its
    /// `Conflict` (or, with [`ExpectedVersion::Any`], simply appends after the winner).
    ///
    /// Idempotent: when every event id of the batch is already stored by an identical earlier
    /// append (same streams, same order), the earlier append's results come back with
    /// `deduplicated = true` and nothing is written, whatever the expected versions say now.
    ///
    /// Results are in the order of `writes`.
    ///
    /// # Errors
    /// Rejected before anything is sent: [`StoreError::EmptyBatch`],
    /// [`StoreError::DuplicateStreamInBatch`], [`StoreError::DuplicateEventInBatch`],
    /// [`StoreError::InvalidEventType`], [`StoreError::InvalidJson`],
    /// [`StoreError::EventTooLarge`], [`StoreError::BatchTooLarge`]. From the database:
    /// [`StoreError::Conflict`], [`StoreError::DuplicateEventId`] (an id stored elsewhere),
    /// [`StoreError::PartialDuplicate`] (only some ids stored), [`StoreError::Database`].
    #[instrument(skip_all, fields(namespace = %self.namespace(), writes = writes.len()), err)]
    pub async fn append_many(
        &self,
        writes: Vec<StreamWrite>,
        metadata: &Metadata,
    ) -> Result<Vec<AppendResult>, StoreError> {
        let prepared = PreparedAppend::new(writes, metadata, &self.inner.config)?;
        let mut lease = self.inner.appenders.lease().await?;
        let mut intact = true;
        let results = self
            .append_attempts(lease.conn(), &prepared, &mut intact)
            .await;
        lease.release(intact);
        let results = results?;
        if results.iter().any(|r| !r.deduplicated) {
            self.notify_appended();
        }
        Ok(results)
    }

    /// Runs the append statement on `conn` until it appends, conflicts or fails for good;
    /// `intact` ends false if the connection must not be reused.
    async fn append_attempts(
        &self,
        conn: &mut PgConnection,
        prepared: &PreparedAppend,
        intact: &mut bool,
    ) -> Result<Vec<AppendResult>, StoreError> {
        let heads = &self.inner.heads;
        let mut path = match KnownPlan::new(prepared, heads) {
            Some(plan) => Path::Known(plan),
            None => slower(prepared, heads, None),
        };
        for attempt in 1..=MAX_APPEND_ATTEMPTS {
            let outcome = match &path {
                Path::Known(plan) => plan
                    .query(&self.inner.statements)
                    .fetch_all(&mut *conn)
                    .await
                    .map(|rows| Some(rows).filter(|r| !r.is_empty())),
                Path::Single => match self.single_query(prepared) {
                    Some(query) => query
                        .fetch_optional(&mut *conn)
                        .await
                        .map(|row| row.map(|r| vec![r])),
                    None => Ok(None),
                },
                Path::General => self
                    .append_query(prepared)
                    .fetch_all(&mut *conn)
                    .await
                    .map(Some),
            };
            *intact = conns::intact(&outcome);
            let outcome = match outcome {
                // A cheaper statement refused: a known head was stale, or the fast path's
                // guard failed. The next statement reads the heads itself and tells why (or
                // appends, if the stream moved on meanwhile to where the caller expected).
                Ok(None) => {
                    path = slower(prepared, heads, Some(path));
                    continue;
                }
                Ok(Some(rows)) => match &path {
                    Path::Known(plan) => return plan.appended(prepared, &rows, heads),
                    _ => decode_attempt(&rows)?,
                },
                Err(err) => match after_error(err) {
                    AfterError::Fail(err) => return Err(err),
                    AfterError::IdStored => {
                        if let Some(results) = self.replay(conn, prepared, intact).await? {
                            return Ok(results);
                        }
                        // The id was stored by a writer that then rolled back: go again.
                        continue;
                    }
                    AfterError::Retry => {
                        if let Path::Known(_) = path {
                            // Someone wrote past a head this process knew: read it instead.
                            path = slower(prepared, heads, Some(path));
                        } else if attempt > 2 {
                            tokio::time::sleep(backoff(attempt)).await;
                        }
                        continue;
                    }
                },
            };
            return match outcome {
                Attempt::Appended(rows) => {
                    remember(heads, &rows);
                    group_results(prepared, rows, false)
                }
                Attempt::Conflict { index, actual } => {
                    match self.replay(conn, prepared, intact).await? {
                        Some(results) => Ok(results),
                        None => Err(conflict(prepared, index, actual)),
                    }
                }
            };
        }
        Err(self.conflict_after_lost_race(prepared).await)
    }

    /// Appends inside the caller's transaction on `conn`, for callers that must write other
    /// rows atomically with the events. `conn` may be any connection to the store's database.
    /// The append must be the transaction's first write, and its only append: write the other
    /// rows after it ([`StoreError::AppendAfterOtherWrites`] otherwise).
    ///
    /// Unlike [`EventStore::append_many`] it cannot retry: a lost race aborts the caller's
    /// transaction and is reported as [`StoreError::Conflict`]. So is an append to a stream
    /// whose head a younger transaction wrote after this transaction took its id (the feed is
    /// in transaction id order, and a stream must not go back in it): retry in a new
    /// transaction. Nobody is woken until the caller commits and calls
    /// [`EventStore::notify_appended`] (subscribers still find the events on their fallback
    /// poll). Keep the transaction short: while it is open it holds the global feed back for
    /// every reader.
    ///
    /// # Errors
    /// As [`EventStore::append_many`].
    pub async fn append_many_in(
        &self,
        conn: &mut PgConnection,
        writes: Vec<StreamWrite>,
        metadata: &Metadata,
    ) -> Result<Vec<AppendResult>, StoreError> {
        let prepared = PreparedAppend::new(writes, metadata, &self.inner.config)?;
        // Two checks, one round trip. The feed's horizon only waits for transactions that
        // hold the events table's write lock, which an INSERT takes before it gives its
        // transaction an id; a transaction that got its id from an earlier write could commit
        // events the feed has moved past. And an identical earlier append is answered up
        // front: a unique violation would abort the caller's transaction.
        let rows = sqlx::query(AssertSqlSafe(Arc::clone(
            &self.inner.statements.fresh_replay,
        )))
        .bind(&prepared.streams)
        .bind(&prepared.counts)
        .bind(&prepared.event_ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(replay_error)?;
        let fresh = match rows.first() {
            Some(row) => row.try_get::<bool, _>("fresh")?,
            None => false,
        };
        if !fresh {
            return Err(StoreError::AppendAfterOtherWrites);
        }
        if let Some(results) = replayed(&prepared, &rows)? {
            return Ok(results);
        }
        let heads = &self.inner.heads;
        // The known-head statement is safe here too: a head it finds is visible to it, so it
        // committed before this transaction took its id (it has none yet, checked above).
        // A refusal returns no row and leaves the transaction usable for the general one.
        if let Some(plan) = KnownPlan::new(&prepared, heads) {
            let rows = plan
                .query(&self.inner.statements)
                .fetch_all(&mut *conn)
                .await;
            match rows {
                Ok(rows) if !rows.is_empty() => return plan.appended(&prepared, &rows, heads),
                Ok(_) => plan.forget(heads),
                Err(err) => {
                    plan.forget(heads);
                    return Err(match after_error(err) {
                        AfterError::Fail(err) => err,
                        AfterError::IdStored | AfterError::Retry => {
                            self.conflict_after_lost_race(&prepared).await
                        }
                    });
                }
            }
        }
        match self.append_query(&prepared).fetch_all(&mut *conn).await {
            Ok(rows) => match decode_attempt(&rows)? {
                Attempt::Appended(rows) => {
                    // Remembered before the caller commits: if it rolls back, the next
                    // known-head append finds no such row and takes the general statement.
                    remember(heads, &rows);
                    group_results(&prepared, rows, false)
                }
                Attempt::Conflict { index, actual } => Err(conflict(&prepared, index, actual)),
            },
            Err(err) => match after_error(err) {
                AfterError::Fail(err) => Err(err),
                // A concurrent writer committed first (the same ids or the same versions): the
                // caller's transaction is aborted; report what changed underneath it.
                AfterError::IdStored | AfterError::Retry => {
                    Err(self.conflict_after_lost_race(&prepared).await)
                }
            },
        }
    }

    /// Wakes feed subscribers, here and (through NOTIFY) in other processes. Appends made
    /// with [`EventStore::append`] and [`EventStore::append_many`] do this themselves.
    pub fn notify_appended(&self) {
        self.inner
            .feed_signal
            .send_modify(|n| *n = n.wrapping_add(1));
        self.inner.notifier.notify_one();
    }

    fn append_query<'q>(&self, prepared: &'q PreparedAppend) -> Query<'q, Postgres, PgArguments> {
        sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.statements.append)))
            .bind(&prepared.streams)
            .bind(&prepared.expected_sql)
            .bind(&prepared.counts)
            .bind(&prepared.offsets)
            .bind(&prepared.event_ids)
            .bind(&prepared.types)
            .bind(&prepared.schema_versions)
            .bind(&prepared.payloads)
            .bind(&prepared.digests)
            .bind(&prepared.metadata)
    }

    /// The fast-path statement, when the append is one event to one stream.
    fn single_query<'q>(
        &self,
        prepared: &'q PreparedAppend,
    ) -> Option<Query<'q, Postgres, PgArguments>> {
        let ([stream], [expected], [event_id], [event_type], [schema_version], [payload], [digest]) = (
            prepared.streams.as_slice(),
            prepared.expected_sql.as_slice(),
            prepared.event_ids.as_slice(),
            prepared.types.as_slice(),
            prepared.schema_versions.as_slice(),
            prepared.payloads.as_slice(),
            prepared.digests.as_slice(),
        ) else {
            return None;
        };
        Some(
            sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.statements.single)))
                .bind(stream)
                .bind(*expected)
                .bind(*event_id)
                .bind(event_type)
                .bind(*schema_version)
                .bind(payload)
                .bind(digest)
                .bind(&prepared.metadata),
        )
    }

    /// The results of an identical earlier append when every id is stored as it; `None` when
    /// no id is stored.
    async fn replay(
        &self,
        conn: &mut PgConnection,
        prepared: &PreparedAppend,
        intact: &mut bool,
    ) -> Result<Option<Vec<AppendResult>>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.statements.replay)))
            .bind(&prepared.streams)
            .bind(&prepared.counts)
            .bind(&prepared.event_ids)
            .fetch_all(&mut *conn)
            .await;
        *intact = conns::intact(&rows);
        match rows {
            Ok(rows) => replayed(prepared, &rows),
            Err(err) => Err(replay_error(err)),
        }
    }

    /// The conflict to report when an append kept losing races: the first write whose
    /// expectation does not hold now, or else the first write (an `Any` write that kept losing).
    async fn conflict_after_lost_race(&self, prepared: &PreparedAppend) -> StoreError {
        let mut first = None;
        for (index, stream) in prepared.streams.iter().enumerate() {
            let actual = match self.version_of(stream).await {
                Ok(actual) => actual,
                Err(err) => return err,
            };
            let expected = prepared.expected[index];
            let holds = match expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => actual.is_none(),
                ExpectedVersion::Exact(n) => actual == Some(n),
            };
            let error = StoreError::Conflict {
                stream: stream.clone(),
                expected,
                actual,
            };
            if !holds {
                return error;
            }
            first.get_or_insert(error);
        }
        first.unwrap_or(StoreError::EmptyBatch)
    }
}

/// The results of an identical earlier append from the replay statements' rows (rows without
/// an event are the fresh check's alone); `None` when no id is stored.
fn replayed(
    prepared: &PreparedAppend,
    rows: &[PgRow],
) -> Result<Option<Vec<AppendResult>>, StoreError> {
    let mut stored = Vec::with_capacity(rows.len());
    for row in rows {
        if row.try_get::<Option<Uuid>, _>("event_id")?.is_some() {
            stored.push(decode_row(row)?);
        }
    }
    if stored.is_empty() {
        return Ok(None);
    }
    group_results(prepared, stored, true).map(Some)
}

/// The statement to try after `refused` (or first, when no head is known): the single-event one
/// where it applies, else the general one. Heads a refused known-head statement relied on are
/// forgotten, as at least one of them is stale.
fn slower<'a>(prepared: &PreparedAppend, heads: &HeadCache, refused: Option<Path<'a>>) -> Path<'a> {
    if let Some(Path::Known(plan)) = &refused {
        plan.forget(heads);
    }
    match refused {
        None | Some(Path::Known(_)) if is_single(prepared) => Path::Single,
        _ => Path::General,
    }
}

fn is_single(prepared: &PreparedAppend) -> bool {
    prepared.streams.len() == 1 && prepared.event_ids.len() == 1
}

/// Remembers the head each write of a successful append left its stream at: its last row.
fn remember(heads: &HeadCache, rows: &[StoredRow]) {
    let mut last: HashMap<&str, &StoredRow> = HashMap::with_capacity(rows.len().min(16));
    for row in rows {
        let entry = last.entry(row.stream_id.as_str()).or_insert(row);
        if entry.version < row.version {
            *entry = row;
        }
    }
    for (stream, row) in last {
        if let Some(hash) = row
            .hash
            .as_deref()
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
        {
            heads.put(stream, Head::new(row.version, hash, row.recorded_at));
        }
    }
}

fn conflict(prepared: &PreparedAppend, index: usize, actual: i64) -> StoreError {
    match (prepared.streams.get(index), prepared.expected.get(index)) {
        (Some(stream), Some(expected)) => StoreError::Conflict {
            stream: stream.clone(),
            expected: *expected,
            actual: u64::try_from(actual).ok().filter(|v| *v > 0),
        },
        _ => StoreError::Corrupt(format!(
            "the append statement named write {index}, which does not exist"
        )),
    }
}

fn decode_row(row: &PgRow) -> Result<StoredRow, StoreError> {
    let version: i64 = row.try_get("version")?;
    Ok(StoredRow {
        event_id: row.try_get("event_id")?,
        stream_id: row.try_get("stream_id")?,
        version: u64::try_from(version)
            .map_err(|_| StoreError::Corrupt(format!("stored version {version}")))?,
        position: Position::from_sql(
            row.try_get("epoch")?,
            row.try_get("xid")?,
            row.try_get("pos")?,
        )?,
        recorded_at: row.try_get("recorded_at")?,
        hash: row.try_get("hash")?,
    })
}

fn decode_attempt(rows: &[PgRow]) -> Result<Attempt, StoreError> {
    if let Some(row) = rows.first() {
        let write: Option<i32> = row.try_get("conflict_write")?;
        if let Some(write) = write {
            let actual: Option<i64> = row.try_get("conflict_actual")?;
            return Ok(Attempt::Conflict {
                // The statement counts writes from 1.
                index: usize::try_from(write).unwrap_or(0).saturating_sub(1),
                actual: actual.unwrap_or(0),
            });
        }
    }
    rows.iter()
        .map(decode_row)
        .collect::<Result<Vec<_>, _>>()
        .map(Attempt::Appended)
}

/// Groups stored rows into one result per write, in the caller's order, checking that each
/// write got exactly its events.
fn group_results(
    prepared: &PreparedAppend,
    rows: Vec<StoredRow>,
    deduplicated: bool,
) -> Result<Vec<AppendResult>, StoreError> {
    let mut by_stream: HashMap<String, Vec<StoredRow>> =
        HashMap::with_capacity(prepared.streams.len());
    for row in rows {
        by_stream
            .entry(row.stream_id.clone())
            .or_default()
            .push(row);
    }
    let mut results = Vec::with_capacity(prepared.streams.len());
    for ((stream, count), offset) in prepared
        .streams
        .iter()
        .zip(&prepared.counts)
        .zip(&prepared.offsets)
    {
        let (count, offset) = (
            usize::try_from(*count).unwrap_or(0),
            usize::try_from(*offset).unwrap_or(0),
        );
        let ids = prepared
            .event_ids
            .get(offset..offset + count)
            .unwrap_or_default();
        let mut rows = by_stream.remove(stream).unwrap_or_default();
        rows.sort_by_key(|r| r.version);
        let matches = rows.len() == count && rows.iter().zip(ids).all(|(r, id)| r.event_id == *id);
        let (Some(first), Some(last), true) = (rows.first(), rows.last(), matches) else {
            return Err(StoreError::Corrupt(format!(
                "the append returned {} rows for stream {stream}, expected {count}",
                rows.len()
            )));
        };
        results.push(AppendResult {
            stream_id: stream.clone(),
            first_version: first.version,
            last_version: last.version,
            position: last.position,
            recorded_at: first.recorded_at,
            deduplicated,
            events: rows
                .iter()
                .map(|r| AppendedEvent {
                    event_id: r.event_id,
                    version: r.version,
                    position: r.position,
                })
                .collect(),
        });
    }
    Ok(results)
}

/// Maps a failed append statement to a typed error or what to try next.
fn after_error(err: sqlx::Error) -> AfterError {
    let Some(db) = err.as_database_error() else {
        return AfterError::Fail(err.into());
    };
    match db.code().as_deref() {
        // unique_violation: on (stream_id, version) another writer took the version first;
        // on event_id the ids were stored meanwhile (perhaps by a retry of this append).
        Some("23505") => match db.constraint() {
            Some("events_stream_version_key") => AfterError::Retry,
            Some("events_event_id_key") => AfterError::IdStored,
            _ => AfterError::Fail(err.into()),
        },
        // deadlock_detected, serialization_failure: writers of overlapping batches.
        Some("40P01" | "40001") => AfterError::Retry,
        _ => AfterError::Fail(err.into()),
    }
}

/// Maps the errors `replay_append` raises to typed ones.
fn replay_error(err: sqlx::Error) -> StoreError {
    let Some(db) = err.as_database_error() else {
        return err.into();
    };
    let detail = db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .and_then(|e| e.detail())
        .unwrap_or_default();
    match db.code().as_deref() {
        Some("PAD01") => match serde_json::from_str::<DuplicateDetail>(detail) {
            Ok(d) => StoreError::DuplicateEventId {
                event_id: d.event_id,
                stored_stream: d.stream_id,
                stored_version: u64::try_from(d.version).unwrap_or(0),
            },
            Err(_) => err.into(),
        },
        Some("PAD02") => match serde_json::from_str::<PartialDetail>(detail) {
            Ok(d) => StoreError::PartialDuplicate {
                stored: d.stored,
                total: d.total,
                missing: d.missing,
            },
            Err(_) => err.into(),
        },
        _ => err.into(),
    }
}

fn backoff(attempt: u32) -> Duration {
    // Jitter from a random uuid: no extra dependency, and spread is all that matters.
    let jitter = u64::try_from(Uuid::new_v4().as_u128() % 1000).unwrap_or(0);
    let base = 1_u64 << attempt.min(6);
    Duration::from_micros(base * 500 + jitter * u64::from(attempt))
}
