//! Zero-downtime rebuilds: replay the event store (never JetStream, whose retention may be
//! shorter) into a shadow generation, catch up to live, then switch atomically while queries
//! keep reading the old generation until the switch.
//!
//! SQL: the shadow is a new set of tables `<table>_g<n+1>`; the switch is one transaction that
//! takes the projection's generation row `FOR UPDATE` (live workers wait at the start of their
//! next batch), applies the last events, re-points the views with `rm_publish` and records the
//! new generation. Redis: the shadow is a new key prefix `g<n+1>`; the switch is a script that
//! moves the pointer only if the live generation's checkpoint is still the one the shadow has
//! caught up with, so no event applied live is missing from the shadow.

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use pyairtable_eventstore::{Position, RecordedEvent};
use sqlx::{AssertSqlSafe, PgConnection};
use tracing::info;

use crate::error::{ProjectionError, Result};
use crate::names::aggregate_kind;
use crate::records_batch::{self, BulkRecords};
use crate::redis_models::{self, Applied, REDIS_PROJECTION};
use crate::relay::parse_position;
use crate::runtime::{
    Backend, FailurePolicy, Projections, apply_sql_in_tx, backend_of, redis_ops_until_failure,
    write_checkpoint,
};

const SWITCH_SCRIPT: &str = r"
local cur = redis.call('GET', ARGV[1])
if (cur or '') ~= ARGV[2] then return 0 end
if ARGV[2] ~= '' then
  local ck = redis.call('GET', ARGV[3])
  if (ck or '') ~= ARGV[4] then return 0 end
end
redis.call('SET', ARGV[1], ARGV[5])
return 1
";

/// Which step a rebuild is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RebuildPhase {
    /// Replaying the event store into the shadow generation.
    Replaying,
    /// Catching up the last events and switching.
    Switching,
    /// Switched: queries read the new generation.
    Done,
    /// Stopped with an error; the live generation is untouched (the process that ran it logs
    /// why).
    Failed,
}

/// Progress of a rebuild, reported after every batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebuildProgress {
    /// The projection.
    pub projection: String,
    /// The generation being filled.
    pub generation: i64,
    /// The step.
    pub phase: RebuildPhase,
    /// Events replayed so far.
    pub done: u64,
    /// Events in the store when the rebuild started (the replay may pass it: writes go on).
    pub total: u64,
    /// Events per second so far.
    pub rate: f64,
    /// Time left at the current rate, once there is a rate.
    pub eta: Option<Duration>,
}

/// What a finished rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    /// The projection.
    pub projection: String,
    /// The generation queries read now.
    pub generation: i64,
    /// Events replayed.
    pub events: u64,
    /// Events parked during the replay.
    pub parked: u64,
    /// Where the time went (SQL projections; zero for Redis).
    pub timings: RebuildTimings,
    /// How long it took.
    pub elapsed: Duration,
}

/// Where a rebuild's time went, for tuning and for the operator.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RebuildTimings {
    /// Waiting for the next batch from the event store (reads overlap the apply; this is
    /// only the part they did not hide).
    pub reading: Duration,
    /// Folding batches and writing them to the shadow.
    pub applying: Duration,
    /// Writing out the records held in memory and building the deferred indexes.
    pub indexing: Duration,
    /// The switch: the last events under the lock, and re-pointing the views.
    pub switching: Duration,
}

/// Sends progress reports to the publishing task of [`Projections::announcer`].
struct Announcer {
    tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl Announcer {
    fn send(&self, progress: &RebuildProgress) {
        if let Ok(body) = serde_json::to_vec(progress) {
            let _ = self.tx.send(body);
        }
    }

    /// Lets the last reports out (briefly: a NATS outage must not hold the rebuild's answer).
    async fn finish(self) {
        drop(self.tx);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

struct Meter {
    projection: String,
    generation: i64,
    total: u64,
    done: u64,
    started: Instant,
}

impl Meter {
    fn report(&self, phase: RebuildPhase) -> RebuildProgress {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        };
        let eta = (rate > 0.0)
            .then(|| Duration::from_secs_f64(self.total.saturating_sub(self.done) as f64 / rate));
        RebuildProgress {
            projection: self.projection.clone(),
            generation: self.generation,
            phase,
            done: self.done,
            total: self.total,
            rate,
            eta,
        }
    }
}

impl Projections {
    /// Rebuilds a projection from the event store into a new generation and switches to it,
    /// calling `progress` after every batch. Queries keep reading the old generation until the
    /// switch; live workers keep running.
    ///
    /// # Errors
    /// [`ProjectionError::UnknownProjection`]; [`ProjectionError::RebuildRunning`] when
    /// another rebuild of it runs; [`ProjectionError::Halted`] when an event fails under
    /// [`FailurePolicy::Halt`] (the shadow is dropped, the live generation untouched); and
    /// failures of the store, Postgres or Redis.
    pub async fn rebuild(
        &self,
        name: &str,
        mut progress: impl FnMut(&RebuildProgress),
    ) -> Result<RebuildReport> {
        let backend = backend_of(name)?;
        let mut lock = self.rebuild_lock(name).await?;
        // Every report also goes out on NATS, so `watch_rebuild` in any process (the API's
        // `projectionProgress`, say) follows a rebuild started anywhere, the CLI included.
        let announcer = self.announcer(name);
        let mut last = None;
        let mut report = |p: &RebuildProgress| {
            announcer.send(p);
            last = Some(p.clone());
            progress(p);
        };
        let result = match backend {
            Backend::Sql => self.rebuild_sql(name, &mut report).await,
            Backend::Redis => self.rebuild_redis(&mut report).await,
        };
        if result.is_err() {
            let failed = RebuildProgress {
                phase: RebuildPhase::Failed,
                eta: None,
                ..last.unwrap_or_else(|| RebuildProgress {
                    projection: name.to_owned(),
                    generation: 0,
                    phase: RebuildPhase::Failed,
                    done: 0,
                    total: 0,
                    rate: 0.0,
                    eta: None,
                })
            };
            announcer.send(&failed);
        }
        announcer.finish().await;
        let _ = sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(&mut lock)
            .await;
        if result.is_err() {
            let _ = sqlx::query(
                "UPDATE projection_generations SET rebuilding_generation = NULL WHERE projection = $1",
            )
            .bind(name)
            .execute(self.inner.store.pool())
            .await;
        }
        result
    }

    /// Follows the rebuilds of projection `name` started by any process of this namespace:
    /// every progress report from subscription on, through `Done` or `Failed`. Reports are
    /// best effort (core NATS): one may be missed, never invented.
    ///
    /// # Errors
    /// [`ProjectionError::UnknownProjection`]; [`ProjectionError::Nats`] when the
    /// subscription cannot be made.
    pub async fn watch_rebuild(
        &self,
        name: &str,
    ) -> Result<impl Stream<Item = RebuildProgress> + Send + 'static + use<>> {
        backend_of(name)?;
        let subscriber = self
            .inner
            .jetstream
            .client()
            .subscribe(self.inner.names.progress_subject(name))
            .await
            .map_err(ProjectionError::nats("following a rebuild"))?;
        Ok(subscriber.filter_map(|m| async move { serde_json::from_slice(&m.payload).ok() }))
    }

    /// Publishes a rebuild's progress reports for `watch_rebuild`, in order, from a task of
    /// its own: progress must never slow or fail the rebuild.
    fn announcer(&self, name: &str) -> Announcer {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let client = self.inner.jetstream.client();
        let subject = self.inner.names.progress_subject(name);
        let task = tokio::spawn(async move {
            while let Some(body) = rx.recv().await {
                if client.publish(subject.clone(), body.into()).await.is_err() {
                    break;
                }
            }
            let _ = client.flush().await;
        });
        Announcer { tx, task }
    }

    /// One rebuild per projection at a time: an advisory lock on a dedicated connection.
    async fn rebuild_lock(&self, name: &str) -> Result<PgConnection> {
        let mut conn = self
            .inner
            .store
            .pool()
            .acquire()
            .await
            .map_err(ProjectionError::pg(
                "taking a connection for the rebuild lock",
            ))?
            .detach();
        let key = format!("pyairtable:{}:rebuild:{name}", self.inner.names.namespace());
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .map_err(ProjectionError::pg("trying the rebuild lock"))?;
        if got {
            Ok(conn)
        } else {
            Err(ProjectionError::RebuildRunning(name.to_owned()))
        }
    }

    async fn total_events(&self) -> Result<u64> {
        Ok(self.lag_after(Position::START).await?.0)
    }

    async fn rebuild_sql(
        &self,
        name: &str,
        progress: &mut impl FnMut(&RebuildProgress),
    ) -> Result<RebuildReport> {
        self.install().await?;
        let pool = self.inner.store.pool();
        let schema = self.inner.names.rm_schema();
        let generation: i32 = sqlx::query_scalar(
            "UPDATE projection_generations
                SET rebuilding_generation = greatest(generation, coalesce(rebuilding_generation, 0)) + 1
              WHERE projection = $1 RETURNING rebuilding_generation",
        )
        .bind(name)
        .fetch_one(pool)
        .await
        .map_err(ProjectionError::pg("choosing the shadow generation"))?;
        sqlx::query("SELECT rm_create_generation($1, $2, $3)")
            .bind(&schema)
            .bind(name)
            .bind(generation)
            .execute(pool)
            .await
            .map_err(ProjectionError::pg("creating the shadow tables"))?;
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection, generation, position) VALUES ($1, $2, $3)
             ON CONFLICT (projection, generation) DO UPDATE
                SET position = EXCLUDED.position, events = 0, updated_at = now()",
        )
        .bind(name)
        .bind(generation)
        .bind(Position::START.to_token())
        .execute(pool)
        .await
        .map_err(ProjectionError::pg("creating the shadow checkpoint"))?;
        // Indexes are built once at the end rather than maintained row by row. The revisions
        // table is only appended to, so even its primary key can wait; `records` keeps its
        // key, which the bulk fold's spills and the live path's upserts name.
        let deferred: i32 = sqlx::query_scalar("SELECT rm_defer_indexes($1, $2, $3, $4)")
            .bind(&schema)
            .bind(name)
            .bind(generation)
            .bind(["record_revisions"])
            .fetch_one(pool)
            .await
            .map_err(ProjectionError::pg("deferring the shadow's indexes"))?;
        let mut bulk = (name == "records" && self.inner.config.bulk_rebuild).then(|| {
            BulkRecords::new(
                pool,
                &self.inner.names,
                generation,
                self.inner.config.rebuild_cache_rows,
            )
        });
        info!(
            projection = name,
            generation,
            deferred,
            bulk = bulk.is_some(),
            "rebuild starts"
        );

        let mut meter = Meter {
            projection: name.to_owned(),
            generation: i64::from(generation),
            total: self.total_events().await?,
            done: 0,
            started: Instant::now(),
        };
        progress(&meter.report(RebuildPhase::Replaying));
        let mut checkpoint = Position::START;
        let mut parked = 0;
        let mut indexed = deferred == 0;
        // The next batch is read (and decoded, on another worker thread) while this one is
        // applied: the store read and the apply each take a similar share of the time.
        let mut next = self.prefetch(checkpoint);
        let mut timings = RebuildTimings::default();
        loop {
            let waited = Instant::now();
            let batch = next
                .await
                .map_err(|e| ProjectionError::Malformed(format!("rebuild read task: {e}")))??;
            timings.reading += waited.elapsed();
            if batch.events.is_empty() {
                if indexed {
                    break;
                }
                let indexing = Instant::now();
                // The log is replayed: write out what the bulk fold holds, build the indexes,
                // then replay what was written meanwhile through the live path (it needs them).
                self.restore_indexes(name, generation, bulk.take()).await?;
                timings.indexing = indexing.elapsed();
                indexed = true;
                next = self.prefetch(checkpoint);
                continue;
            }
            next = self.prefetch(batch.next);
            let applying = Instant::now();
            let mut tx = pool
                .begin()
                .await
                .map_err(ProjectionError::pg("starting a rebuild batch"))?;
            // Nobody reads the shadow yet and its checkpoint commits with it: a batch lost to a
            // server crash is lost with its checkpoint, so waiting for the WAL flush buys
            // nothing. The switch below commits synchronously.
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await
                .map_err(ProjectionError::pg("setting up a rebuild batch"))?;
            let (reached, p) = match bulk.as_mut() {
                Some(b) => {
                    self.apply_bulk(&mut tx, b, name, generation, &batch.events)
                        .await?
                }
                None => {
                    self.apply_replay(&mut tx, name, generation, checkpoint, &batch.events)
                        .await?
                }
            };
            tx.commit()
                .await
                .map_err(ProjectionError::pg("committing a rebuild batch"))?;
            timings.applying += applying.elapsed();
            parked += p;
            meter.done += batch.events.len() as u64;
            if reached != batch.next {
                // Cannot happen (a replay either applies or parks every event), but the
                // prefetched read would then start at the wrong place.
                next = self.prefetch(reached);
            }
            checkpoint = reached;
            progress(&meter.report(RebuildPhase::Replaying));
        }

        // The switch: live workers wait on the row lock, the last events go in, the views move.
        progress(&meter.report(RebuildPhase::Switching));
        let switching = Instant::now();
        let mut tx = pool
            .begin()
            .await
            .map_err(ProjectionError::pg("starting the switch"))?;
        let old: i32 = sqlx::query_scalar(
            "SELECT generation FROM projection_generations WHERE projection = $1 FOR UPDATE",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(ProjectionError::pg("locking the projection generation"))?;
        loop {
            let batch = self
                .inner
                .store
                .read_all(&checkpoint, self.inner.config.rebuild_batch.max(1))
                .await?;
            if batch.events.is_empty() {
                break;
            }
            let (reached, p) = self
                .apply_replay(&mut tx, name, generation, checkpoint, &batch.events)
                .await?;
            parked += p;
            meter.done += batch.events.len() as u64;
            checkpoint = reached;
        }
        sqlx::query("SELECT rm_publish($1, $2, $3)")
            .bind(&schema)
            .bind(name)
            .bind(generation)
            .execute(&mut *tx)
            .await
            .map_err(ProjectionError::pg("switching the views"))?;
        sqlx::query(
            "UPDATE projection_generations
                SET generation = $2, rebuilding_generation = NULL, state = 'running',
                    halted_reason = NULL, switched_at = now()
              WHERE projection = $1",
        )
        .bind(name)
        .bind(generation)
        .execute(&mut *tx)
        .await
        .map_err(ProjectionError::pg("recording the switch"))?;
        tx.commit()
            .await
            .map_err(ProjectionError::pg("committing the switch"))?;
        timings.switching = switching.elapsed();
        self.inner.progress.notify_waiters();

        if old != generation {
            sqlx::query("SELECT rm_drop_generation($1, $2, $3)")
                .bind(&schema)
                .bind(name)
                .bind(old)
                .execute(pool)
                .await
                .map_err(ProjectionError::pg("dropping the old generation"))?;
            sqlx::query(
                "DELETE FROM projection_checkpoints WHERE projection = $1 AND generation = $2",
            )
            .bind(name)
            .bind(old)
            .execute(pool)
            .await
            .map_err(ProjectionError::pg("dropping the old checkpoint"))?;
        }
        progress(&meter.report(RebuildPhase::Done));
        info!(
            projection = name,
            generation,
            events = meter.done,
            "rebuild switched"
        );
        Ok(RebuildReport {
            projection: name.to_owned(),
            generation: i64::from(generation),
            events: meter.done,
            parked,
            timings,
            elapsed: meter.started.elapsed(),
        })
    }

    /// Applies a replayed batch to the bulk fold of `records`, parking the events it cannot
    /// read per the policy, and moves the shadow's checkpoint. Returns the position reached
    /// and the number parked.
    async fn apply_bulk(
        &self,
        tx: &mut PgConnection,
        bulk: &mut BulkRecords,
        name: &str,
        generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(Position, u64)> {
        let mut parsed = Vec::with_capacity(events.len());
        let mut parked = 0;
        for event in events
            .iter()
            .filter(|e| aggregate_kind(&e.stream_id) == "record")
        {
            match records_batch::parse(event) {
                Ok(p) => parsed.push(p),
                Err(error) => {
                    self.park_during_rebuild(tx, name, event, &error).await?;
                    parked += 1;
                }
            }
        }
        bulk.apply(tx, &parsed).await?;
        let Some(last) = events.last() else {
            return Ok((Position::START, parked));
        };
        write_checkpoint(
            tx,
            name,
            generation,
            last.position,
            events.len(),
            Some(last.recorded_at),
        )
        .await?;
        Ok((last.position, parked))
    }

    /// Builds the indexes `rm_defer_indexes` dropped from a shadow generation, two at a time
    /// (one per core here; PostgreSQL builds a b-tree with parallel workers of its own).
    ///
    /// With a bulk fold, its records are written out at the same time: statements on the
    /// revisions (complete once the replay is) start at once, the others once the records
    /// have landed, so the index builds overlap the last copy.
    async fn restore_indexes(
        &self,
        name: &str,
        generation: i32,
        bulk: Option<BulkRecords>,
    ) -> Result<()> {
        let pool = self.inner.store.pool();
        let started = Instant::now();
        let ddl: Vec<String> = sqlx::query_scalar(
            "SELECT ddl FROM rm_deferred_indexes WHERE projection = $1 AND generation = $2
              ORDER BY ord",
        )
        .bind(name)
        .bind(generation)
        .fetch_all(pool)
        .await
        .map_err(ProjectionError::pg("reading the deferred indexes"))?;
        // Fresh statistics, so the first queries after the switch plan well: of the columns
        // queries filter, join and sort on. JSON documents (cells, payloads, changes) took most
        // of an ANALYZE's time (over a second per 300,000 events) and their statistics only
        // refine the estimates of cell filters; autovacuum's analyze, which the bulk of new
        // rows triggers, adds them shortly after the switch. The ANALYZEs share the index
        // builds' two connections.
        let mut work = ddl.clone();
        for table in crate::queries::RM_TABLES
            .iter()
            .filter(|(p, _)| *p == name)
            .flat_map(|(_, tables)| tables.iter())
        {
            let qualified = self.inner.names.rm_table(table, generation);
            let columns: Option<String> = sqlx::query_scalar(
                "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
                   FROM pg_attribute
                  WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
                    AND atttypid NOT IN ('json'::regtype, 'jsonb'::regtype)",
            )
            .bind(&qualified)
            .fetch_one(pool)
            .await
            .map_err(ProjectionError::pg("listing the shadow's columns"))?;
            work.push(match columns {
                Some(columns) => format!("ANALYZE {qualified} ({columns})"),
                None => format!("ANALYZE {qualified}"),
            });
        }
        // Only the revisions are complete before the fold is written out.
        let revisions = format!("record_revisions_g{generation}");
        let (early, late): (Vec<&String>, Vec<&String>) = work.iter().partition(|statement| {
            bulk.is_none()
                || statement.match_indices(&revisions).any(|(at, _)| {
                    !statement[at + revisions.len()..]
                        .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                })
        });
        let early = std::sync::Mutex::new(early.into_iter());
        let late = std::sync::Mutex::new(late.into_iter());
        let (spilled, spill_done) = tokio::sync::watch::channel(false);
        let spill = async move {
            if let Some(mut b) = bulk {
                b.spill().await?;
            }
            // No receiver left only means the builds failed; their error is the one returned.
            let _ = spilled.send(true);
            Ok::<(), ProjectionError>(())
        };
        let build = || async {
            // Detached: the session setting below must not leak into the pool, whatever happens.
            let mut conn = pool
                .acquire()
                .await
                .map_err(ProjectionError::pg("taking a connection to build indexes"))?
                .detach();
            sqlx::query("SET maintenance_work_mem = '256MB'")
                .execute(&mut conn)
                .await
                .map_err(ProjectionError::pg("sizing the index build"))?;
            let mut ready = spill_done.clone();
            loop {
                let mut next = early.lock().map_or(None, |mut q| q.next());
                if next.is_none() {
                    // A failed spill drops the sender: stop here, its error is returned.
                    if ready.wait_for(|done| *done).await.is_err() {
                        break;
                    }
                    next = late.lock().map_or(None, |mut q| q.next());
                }
                let Some(statement) = next else { break };
                sqlx::query(AssertSqlSafe(statement.clone()))
                    .execute(&mut conn)
                    .await
                    .map_err(ProjectionError::pg("building a deferred index"))?;
            }
            Ok::<(), ProjectionError>(())
        };
        futures::future::try_join3(spill, build(), build()).await?;
        sqlx::query("DELETE FROM rm_deferred_indexes WHERE projection = $1 AND generation = $2")
            .bind(name)
            .bind(generation)
            .execute(pool)
            .await
            .map_err(ProjectionError::pg("forgetting the deferred indexes"))?;
        info!(
            projection = name,
            generation,
            indexes = ddl.len(),
            secs = started.elapsed().as_secs_f64(),
            "shadow indexes built"
        );
        Ok(())
    }

    /// Starts reading the batch of the feed after `from` in a task of its own.
    fn prefetch(
        &self,
        from: Position,
    ) -> tokio::task::JoinHandle<
        std::result::Result<pyairtable_eventstore::FeedBatch, pyairtable_eventstore::StoreError>,
    > {
        let store = self.inner.store.clone();
        // Large batches let the set-based handlers write thousands of rows per statement.
        let size = self.inner.config.rebuild_batch.max(1);
        tokio::spawn(async move { store.read_all(&from, size).await })
    }

    /// Applies a replayed batch to the shadow, parking failures per the policy. Returns the
    /// position reached and the number parked.
    async fn apply_replay(
        &self,
        tx: &mut PgConnection,
        name: &str,
        generation: i32,
        checkpoint: Position,
        events: &[RecordedEvent],
    ) -> Result<(Position, u64)> {
        let mut at = checkpoint;
        let mut rest: &[RecordedEvent] = events;
        let mut parked = 0;
        loop {
            let outcome =
                apply_sql_in_tx(tx, &self.inner.names, name, generation, at, rest).await?;
            at = outcome.reached;
            let Some((failed, error)) = outcome.failed else {
                return Ok((at, parked));
            };
            self.park_during_rebuild(tx, name, &failed, &error).await?;
            parked += 1;
            sqlx::query(AssertSqlSafe(
                "UPDATE projection_checkpoints SET position = $3 WHERE projection = $1 AND generation = $2"
                    .to_owned(),
            ))
            .bind(name)
            .bind(generation)
            .bind(failed.position.to_token())
            .execute(&mut *tx)
            .await
            .map_err(ProjectionError::pg("skipping a parked event"))?;
            at = failed.position;
            rest = &rest[rest
                .iter()
                .position(|e| e.position > at)
                .unwrap_or(rest.len())..];
        }
    }

    /// Records an event the replay could not apply; under [`FailurePolicy::Halt`] the rebuild
    /// stops instead.
    async fn park_during_rebuild(
        &self,
        tx: &mut PgConnection,
        name: &str,
        event: &RecordedEvent,
        error: &ProjectionError,
    ) -> Result<()> {
        if self.policy(name) == FailurePolicy::Halt {
            return Err(ProjectionError::Halted {
                name: name.to_owned(),
                reason: format!("rebuild stopped at event {}: {error}", event.event_id),
            });
        }
        let json = serde_json::to_value(event)
            .map_err(|e| ProjectionError::Malformed(format!("serialising a parked event: {e}")))?;
        sqlx::query(
            "INSERT INTO parked_events (projection, position, event_id, stream_id, version,
                                        event_type, error, attempts, event)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)
             ON CONFLICT (projection, event_id) DO UPDATE
                SET error = EXCLUDED.error, parked_at = now(), resolved_at = NULL",
        )
        .bind(name)
        .bind(event.position.to_token())
        .bind(event.event_id)
        .bind(&event.stream_id)
        .bind(i64::try_from(event.version).unwrap_or(i64::MAX))
        .bind(&event.event_type)
        .bind(error.to_string())
        .bind(json)
        .execute(&mut *tx)
        .await
        .map_err(ProjectionError::pg("parking an event"))?;
        Ok(())
    }

    async fn rebuild_redis(
        &self,
        progress: &mut impl FnMut(&RebuildProgress),
    ) -> Result<RebuildReport> {
        let names = &self.inner.names;
        let mut con = self.inner.redis.clone();
        let pool = self.inner.store.pool();
        sqlx::query(
            "INSERT INTO projection_generations (projection, generation) VALUES ($1, 1)
             ON CONFLICT (projection) DO NOTHING",
        )
        .bind(REDIS_PROJECTION)
        .execute(pool)
        .await
        .map_err(ProjectionError::pg("registering the Redis projection"))?;
        let live = redis_models::current_generation(&mut con, names).await?;
        let counter = format!("{}rm:{}:gencounter", names.redis_prefix(), REDIS_PROJECTION);
        let mut generation: i64;
        loop {
            generation = redis::cmd("INCR")
                .arg(&counter)
                .query_async(&mut con)
                .await
                .map_err(ProjectionError::redis("choosing the shadow generation"))?;
            if live.is_none_or(|l| generation > l) {
                break;
            }
        }
        redis_models::drop_generation(&mut con, names, generation).await?;
        sqlx::query(
            "UPDATE projection_generations SET rebuilding_generation = $2 WHERE projection = $1",
        )
        .bind(REDIS_PROJECTION)
        .bind(i32::try_from(generation).unwrap_or(i32::MAX))
        .execute(pool)
        .await
        .map_err(ProjectionError::pg("recording the shadow generation"))?;
        info!(generation, "Redis rebuild starts");

        let mut meter = Meter {
            projection: REDIS_PROJECTION.to_owned(),
            generation,
            total: self.total_events().await?,
            done: 0,
            started: Instant::now(),
        };
        progress(&meter.report(RebuildPhase::Replaying));
        let mut checkpoint: Option<Position> = None;
        let mut parked = 0;
        loop {
            // Catch up with the feed.
            loop {
                let from = checkpoint.unwrap_or(Position::START);
                let batch = self
                    .inner
                    .store
                    .read_all(&from, self.inner.config.rebuild_batch.max(1))
                    .await?;
                if batch.events.is_empty() && checkpoint.is_some() {
                    break;
                }
                let (reached, p) = self
                    .replay_redis(generation, checkpoint, &batch.events)
                    .await?;
                parked += p;
                meter.done += batch.events.len() as u64;
                checkpoint = Some(reached);
                progress(&meter.report(RebuildPhase::Replaying));
            }
            let shadow = checkpoint.unwrap_or(Position::START);
            // Switch only if the live generation has not applied anything the shadow lacks.
            progress(&meter.report(RebuildPhase::Switching));
            let live = redis_models::current_generation(&mut con, names).await?;
            let live_token = match live {
                Some(g) => redis_models::generation_checkpoint(&mut con, names, g).await?,
                None => None,
            };
            if let Some(t) = &live_token
                && parse_position(t)? > shadow
            {
                continue;
            }
            let switched: i64 = redis::Script::new(SWITCH_SCRIPT)
                .arg(names.redis_pointer(REDIS_PROJECTION))
                .arg(live.map(|g| g.to_string()).unwrap_or_default())
                .arg(
                    live.map(|g| {
                        format!("{}checkpoint", names.redis_generation(REDIS_PROJECTION, g))
                    })
                    .unwrap_or_default(),
                )
                .arg(live_token.clone().unwrap_or_default())
                .arg(generation)
                .invoke_async(&mut con)
                .await
                .map_err(ProjectionError::redis("switching the Redis generation"))?;
            if switched != 1 {
                continue;
            }
            self.mirror_redis_checkpoint(generation, shadow).await;
            if let Some(old) = live {
                redis_models::drop_generation(&mut con, names, old).await?;
            }
            break;
        }
        sqlx::query(
            "UPDATE projection_generations
                SET generation = $2, rebuilding_generation = NULL, state = 'running',
                    halted_reason = NULL, switched_at = now()
              WHERE projection = $1",
        )
        .bind(REDIS_PROJECTION)
        .bind(i32::try_from(generation).unwrap_or(i32::MAX))
        .execute(pool)
        .await
        .map_err(ProjectionError::pg("recording the switch"))?;
        self.inner.progress.notify_waiters();
        progress(&meter.report(RebuildPhase::Done));
        info!(generation, events = meter.done, "Redis rebuild switched");
        Ok(RebuildReport {
            projection: REDIS_PROJECTION.to_owned(),
            generation,
            events: meter.done,
            parked,
            timings: RebuildTimings::default(),
            elapsed: meter.started.elapsed(),
        })
    }

    /// Applies replayed events to a Redis shadow generation (the first call, with no
    /// checkpoint yet, writes one even for an empty store).
    async fn replay_redis(
        &self,
        generation: i64,
        checkpoint: Option<Position>,
        events: &[RecordedEvent],
    ) -> Result<(Position, u64)> {
        let mut con = self.inner.redis.clone();
        let mut expected = checkpoint.map(|p| p.to_token());
        let mut at = checkpoint.unwrap_or(Position::START);
        let mut rest = events;
        let mut parked = 0;
        loop {
            let (ops, reached, failed) = redis_ops_until_failure(at, rest);
            let new = match &failed {
                // The failing event is skipped (parked) in the same write.
                Some((e, _)) => e.position,
                None => reached,
            };
            if let Some((e, err)) = &failed {
                let mut conn = self
                    .inner
                    .store
                    .pool()
                    .acquire()
                    .await
                    .map_err(ProjectionError::pg("parking during a rebuild"))?;
                self.park_during_rebuild(&mut conn, REDIS_PROJECTION, e, err)
                    .await?;
                parked += 1;
            }
            let applied = redis_models::apply_ops(
                &mut con,
                &self.inner.names,
                generation,
                false,
                expected.as_deref(),
                &new.to_token(),
                &ops,
                rest.len(),
            )
            .await?;
            if applied != Applied::Done {
                return Err(ProjectionError::RebuildRunning(REDIS_PROJECTION.to_owned()));
            }
            expected = Some(new.to_token());
            at = new;
            match failed {
                None => return Ok((at, parked)),
                Some(_) => {
                    rest = &rest[rest
                        .iter()
                        .position(|e| e.position > at)
                        .unwrap_or(rest.len())..];
                    if rest.is_empty() {
                        return Ok((at, parked));
                    }
                }
            }
        }
    }
}
