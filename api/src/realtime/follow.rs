//! One subscription: store catch-up and live broadcast, switched without gap or duplicate.
//!
//! The follower keeps `last`, the position of the last feed event it has dealt with (delivered,
//! or skipped by its filter). Store reads continue after `last`; a broadcast event is taken only
//! when it follows on from `last` (its `prev` equals `last`). Anything at or before `last` is a
//! duplicate and dropped; anything further ahead means a gap, which sends the follower back to
//! the store. Since the receiver is always created before the store read that precedes its use,
//! the store and the broadcast overlap, and the switch loses nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::Stream;
use pyairtable_eventstore::{Position, RecordedEvent};
use tokio::sync::broadcast::{self, error::RecvError};
use tracing::debug;

use crate::realtime::{EventFilter, Inner, LiveEvent, RealtimeError};

/// Pause before reading the store again after a failed read.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);

pub(crate) struct Follower {
    hub: Arc<Inner>,
    filter: EventFilter,
    rx: Option<broadcast::Receiver<Arc<LiveEvent>>>,
    last: Position,
    catching_up: bool,
    pending: VecDeque<RecordedEvent>,
    failed: bool,
    done: bool,
}

impl Follower {
    pub(crate) fn new(
        hub: Arc<Inner>,
        filter: EventFilter,
        rx: Option<broadcast::Receiver<Arc<LiveEvent>>>,
        last: Position,
        catching_up: bool,
    ) -> Self {
        Self {
            hub,
            filter,
            rx,
            last,
            catching_up,
            pending: VecDeque::new(),
            failed: false,
            done: false,
        }
    }

    pub(crate) fn into_stream(
        self,
    ) -> impl Stream<Item = Result<RecordedEvent, RealtimeError>> + Send + 'static {
        futures::stream::unfold(self, |mut follower| async move {
            let item = follower.next().await?;
            Some((item, follower))
        })
    }

    async fn next(&mut self) -> Option<Result<RecordedEvent, RealtimeError>> {
        if self.done {
            return None;
        }
        loop {
            while let Some(event) = self.pending.pop_front() {
                if event.position <= self.last {
                    continue;
                }
                self.last = event.position;
                if self.filter.matches(&event) {
                    return Some(Ok(event));
                }
            }
            if self.catching_up {
                if let Err(error) = self.read_store().await {
                    return Some(Err(error));
                }
                continue;
            }
            let Some(rx) = self.rx.as_mut() else {
                self.done = true;
                return Some(Err(RealtimeError::Closed));
            };
            match rx.recv().await {
                Ok(item) => {
                    if item.event.position <= self.last {
                        continue;
                    }
                    if item.prev != self.last {
                        // Something between `last` and this event is missing here: the
                        // store has it.
                        self.catching_up = true;
                        continue;
                    }
                    self.last = item.event.position;
                    if self.filter.matches(&item.event) {
                        return Some(Ok(item.event.clone()));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    self.hub
                        .shared
                        .lag_recoveries
                        .fetch_add(1, Ordering::Relaxed);
                    debug!(missed, last = %self.last, "subscriber lagged the broadcast; reading the store");
                    // A fresh receiver at the tail (created before the store read, as at the
                    // start) beats draining a backlog that the store read makes redundant.
                    let (rx, _) = self.hub.shared.subscribe();
                    self.rx = rx;
                    self.catching_up = true;
                }
                Err(RecvError::Closed) => {
                    self.done = true;
                    return Some(Err(RealtimeError::Closed));
                }
            }
        }
    }

    /// Reads one batch after `last`; a short batch means the store is caught up, so the
    /// follower switches to the broadcast.
    async fn read_store(&mut self) -> Result<(), RealtimeError> {
        if self.failed {
            self.failed = false;
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
        let batch = self.hub.config.read_batch.max(1);
        match self.hub.store.read_all(&self.last, batch).await {
            Ok(read) => {
                if read.events.len() < batch {
                    self.catching_up = false;
                }
                self.pending.extend(read.events);
                Ok(())
            }
            Err(error) => {
                self.failed = true;
                Err(error.into())
            }
        }
    }
}
