//! Following the global feed: catch-up subscriptions, waiting for a commit, and the
//! LISTEN/NOTIFY plumbing that wakes them.
//!
//! A NOTIFY inside the append transaction would take Postgres' global notify lock at every
//! commit and serialise commits (measured: it cost pgbench a quarter to two thirds of its
//! single-row insert rate, see `docs/benchmarks.md`). Instead each append, after it commits, pokes a background task that
//! sends one NOTIFY for however many commits happened meanwhile (at most one per
//! [`crate::StoreConfig::notify_interval`]), on its own connection with
//! `synchronous_commit = off`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::envelope::RecordedEvent;
use crate::error::StoreError;
use crate::position::Position;
use crate::store::EventStore;

/// Events fetched per read by a subscription.
const SUBSCRIPTION_BATCH: usize = 500;
/// Pause after a failed read before a subscription tries again.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);
/// Pause after the NOTIFY or LISTEN connection failed.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);

impl EventStore {
    /// Follows the global feed after `after`: first everything already committed, then new
    /// events as they commit, in feed order, each exactly once.
    ///
    /// Waits on this process's own appends and on the namespace's NOTIFY channel (so appends
    /// from other processes wake it at once), with a fallback poll every
    /// [`crate::StoreConfig::poll_interval`], and a fast poll every
    /// [`crate::StoreConfig::held_back_poll_interval`] while an open transaction holds
    /// committed events back. A failed read is yielded as an `Err`; the subscription then
    /// carries on from the last event it delivered. Dropping the stream ends it.
    pub fn subscribe_all(
        &self,
        after: Position,
    ) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + 'static {
        let state = Subscription {
            store: self.clone(),
            next: after,
            buffer: VecDeque::new(),
            wake: self.inner.feed_signal.subscribe(),
            failed: false,
        };
        futures::stream::unfold(state, |mut sub| async move {
            let item = sub.next_event().await;
            Some((item, sub))
        })
    }

    /// Waits until the feed has passed `after` (every event up to it is readable), for at most
    /// `timeout`. Returns whether it did. Use it with the position an append returned to wait
    /// for one's own write.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn wait_for_commit(
        &self,
        after: &Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        self.ensure_listener();
        let deadline = Instant::now() + timeout;
        let mut wake = self.inner.feed_signal.subscribe();
        loop {
            wake.borrow_and_update();
            if self.feed_passed(after).await? {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            // Something older is still running; poll quickly as well as waiting for a wake-up.
            let pause = (deadline - now).min(self.inner.config.held_back_poll_interval);
            wait_or_wake(&mut wake, pause).await;
        }
    }

    /// Starts the LISTEN task once per store.
    pub(crate) fn ensure_listener(&self) {
        let Ok(mut task) = self.inner.listener_task.lock() else {
            return;
        };
        if task.is_none() {
            *task = Some(tokio::spawn(listen_for_commits(
                self.inner.pool.clone(),
                self.namespace().notify_channel(),
                Arc::clone(&self.inner.feed_signal),
            )));
        }
    }
}

struct Subscription {
    store: EventStore,
    next: Position,
    buffer: VecDeque<RecordedEvent>,
    wake: watch::Receiver<u64>,
    failed: bool,
}

impl Subscription {
    async fn next_event(&mut self) -> Result<RecordedEvent, StoreError> {
        self.store.ensure_listener();
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.next = event.position;
                return Ok(event);
            }
            if self.failed {
                self.failed = false;
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
            // Mark wake-ups seen before reading, so a commit landing during the read is not
            // slept through.
            self.wake.borrow_and_update();
            let batch = match self.store.read_all(&self.next, SUBSCRIPTION_BATCH).await {
                Ok(batch) => batch,
                Err(err) => {
                    self.failed = true;
                    return Err(err);
                }
            };
            if !batch.events.is_empty() {
                self.buffer.extend(batch.events);
                continue;
            }
            let held_back = match self.store.feed_held_back().await {
                Ok(held_back) => held_back,
                Err(err) => {
                    self.failed = true;
                    return Err(err);
                }
            };
            let config = &self.store.inner.config;
            let pause = if held_back {
                config.held_back_poll_interval
            } else {
                config.poll_interval
            };
            wait_or_wake(&mut self.wake, pause).await;
        }
    }
}

async fn wait_or_wake(wake: &mut watch::Receiver<u64>, pause: Duration) {
    tokio::select! {
        changed = wake.changed() => {
            if changed.is_err() {
                // The sender lives as long as the store, so this is shutdown; just pause.
                tokio::time::sleep(pause).await;
            }
        }
        () = tokio::time::sleep(pause) => {}
    }
}

/// Sends one NOTIFY per burst of local commits, at most one per `interval`, until the store is
/// dropped (the task is aborted then) or its pool is closed.
pub(crate) async fn notify_commits(
    pool: PgPool,
    channel: String,
    poke: Arc<Notify>,
    interval: Duration,
) {
    let options: PgConnectOptions = (*pool.connect_options()).clone();
    let mut conn: Option<PgConnection> = None;
    loop {
        poke.notified().await;
        if pool.is_closed() {
            return;
        }
        if conn.is_none() {
            match open_notify_connection(&options).await {
                Ok(c) => conn = Some(c),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot open the NOTIFY connection");
                    poke.notify_one();
                    tokio::time::sleep(RECONNECT_BACKOFF).await;
                    continue;
                }
            }
        }
        if let Some(c) = conn.as_mut() {
            let sent = sqlx::query("SELECT pg_notify($1, '')")
                .bind(&channel)
                .execute(&mut *c)
                .await;
            if let Err(err) = sent {
                tracing::warn!(error = %err, "NOTIFY failed; reconnecting");
                conn = None;
                poke.notify_one();
                tokio::time::sleep(RECONNECT_BACKOFF).await;
            } else {
                // Pokes arriving meanwhile collapse into the one stored permit.
                tokio::time::sleep(interval).await;
            }
        }
    }
}

async fn open_notify_connection(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    let mut conn = options.connect().await?;
    // A NOTIFY assigns a transaction id and commits; the wake-up need not wait for the WAL
    // flush, and not waiting keeps these commits out of the appends' group commit.
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    conn.ping().await?;
    Ok(conn)
}

/// LISTENs on the namespace's channel and bumps `signal` on every notification, and after
/// every reconnect (notifications may have been missed meanwhile).
async fn listen_for_commits(pool: PgPool, channel: String, signal: Arc<watch::Sender<u64>>) {
    let bump = || signal.send_modify(|n| *n = n.wrapping_add(1));
    while !pool.is_closed() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "cannot open the LISTEN connection");
                tokio::time::sleep(RECONNECT_BACKOFF).await;
                continue;
            }
        };
        if let Err(err) = listener.listen(&channel).await {
            tracing::warn!(error = %err, "LISTEN failed");
            tokio::time::sleep(RECONNECT_BACKOFF).await;
            continue;
        }
        bump();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => bump(),
                // Connection lost and re-established: catch up on whatever was missed.
                Ok(None) => bump(),
                Err(err) => {
                    if !pool.is_closed() {
                        tracing::warn!(error = %err, "LISTEN connection failed");
                        tokio::time::sleep(RECONNECT_BACKOFF).await;
                    }
                    bump();
                    break;
                }
            }
        }
    }
}
