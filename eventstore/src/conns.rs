//! Connections reserved for appends.
//!
//! sqlx's pool pings every connection when it is returned (a round trip and a spawned task per
//! query). For appends, the hot path, that doubled the round trips, so appends lease plain
//! connections from this small set instead. A connection goes back only when its last use
//! finished cleanly; one whose future was dropped mid-query, or that failed below the SQL
//! level, is closed.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::StoreError;

pub(crate) struct AppendConnections {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    permits: Semaphore,
    acquire_timeout: Duration,
}

/// A connection on loan. [`Lease::release`] returns it; dropped any other way (say, the
/// append future was cancelled mid-query) it is closed.
pub(crate) struct Lease<'a> {
    owner: &'a AppendConnections,
    conn: PgConnection,
    _permit: SemaphorePermit<'a>,
}

impl AppendConnections {
    pub(crate) fn new(options: PgConnectOptions, size: u32, acquire_timeout: Duration) -> Self {
        Self {
            options,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(usize::try_from(size.max(1)).unwrap_or(1)),
            acquire_timeout,
        }
    }

    /// Waits (up to the acquire timeout) for a free slot, then reuses an idle connection or
    /// opens a new one.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>, StoreError> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.options.connect().await?,
        };
        Ok(Lease {
            owner: self,
            conn,
            _permit: permit,
        })
    }
}

impl AppendConnections {
    /// Refuses new leases and closes the idle connections (leased ones close when dropped).
    pub(crate) async fn close(&self) {
        self.permits.close();
        let idle = self
            .idle
            .lock()
            .map(|mut idle| std::mem::take(&mut *idle))
            .unwrap_or_default();
        for conn in idle {
            let _ = conn.close().await;
        }
    }
}

impl Lease<'_> {
    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Returns the connection for reuse when `intact` (see [`intact`]); closes it otherwise.
    pub(crate) fn release(self, intact: bool) {
        if intact && let Ok(mut idle) = self.owner.idle.lock() {
            idle.push(self.conn);
        }
    }
}

/// Whether a connection's protocol state is intact after a use that returned `result`: after
/// success or an error the server reported, yes; after an I/O or protocol failure, no.
pub(crate) fn intact<T>(result: &Result<T, sqlx::Error>) -> bool {
    matches!(result, Ok(_) | Err(sqlx::Error::Database(_)))
}
