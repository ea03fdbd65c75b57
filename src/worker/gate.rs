//! The gate in front of the consumer: closed while the database is away (each batch taken
//! would fail and spend one of its limited deliveries), while commits wait for its
//! synchronous standby (a batch taken would wait behind them, perhaps on a row a waiting
//! commit holds, past its time), or while the broker blocks our publishing (results would
//! pile up unconfirmed during a memory or disk alarm). All are `watch` channels, so the
//! consume loop wakes when one changes, never by polling.

use crate::metrics;
use crate::store::availability::Availability;
use futures_lite::StreamExt;
use lapin::{Connection, Event};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Whether new batches may be taken now.
pub struct Gate {
    availability: Arc<Availability>,
    database_up: watch::Receiver<bool>,
    /// `Some` while commits wait for the synchronous standby.
    commits_stalled: watch::Receiver<Option<Duration>>,
    broker_blocked: watch::Receiver<bool>,
    /// Follows the publishing connection's blocked/unblocked events; ends with the gate.
    watcher: JoinHandle<()>,
}

impl Gate {
    /// A gate over the database's availability and the blocking of `publishing`.
    pub fn new(availability: Arc<Availability>, publishing: &Connection) -> Self {
        // Listening first, then reading the status: a block between the two is not missed.
        let mut events = publishing.events_listener();
        let (blocked_tx, broker_blocked) = watch::channel(publishing.status().blocked());
        metrics::broker_blocked(publishing.status().blocked());
        let watcher = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Event::ConnectionBlocked(reason) => {
                        metrics::broker_blocked(true);
                        warn!(%reason, "the broker blocks publishing; taking no new batches");
                        blocked_tx.send_replace(true);
                    }
                    Event::ConnectionUnblocked => {
                        metrics::broker_blocked(false);
                        info!("the broker unblocked publishing; taking batches again");
                        blocked_tx.send_replace(false);
                    }
                    _ => {}
                }
            }
        });
        Self {
            database_up: availability.subscribe(),
            commits_stalled: availability.commits().subscribe(),
            availability,
            broker_blocked,
            watcher,
        }
    }

    /// Returns once the gate is open. While the database is away this also probes it (see
    /// [`Availability::wait_up`]).
    pub async fn opened(&mut self) {
        loop {
            self.availability.wait_up().await;
            // The sender lives in the availability, which outlives the gate.
            let _ = self.commits_stalled.wait_for(Option::is_none).await;
            if self
                .broker_blocked
                .wait_for(|blocked| !blocked)
                .await
                .is_err()
            {
                // The connection is gone and the session notices that itself; stay closed.
                std::future::pending::<()>().await;
            }
            if self.is_open() {
                return;
            }
        }
    }

    /// Resolves as soon as the gate closes.
    pub async fn closed(&mut self) {
        tokio::select! {
            _ = self.database_up.wait_for(|up| !up) => {}
            Ok(_) = self.commits_stalled.wait_for(Option::is_some) => {}
            Ok(_) = self.broker_blocked.wait_for(|blocked| *blocked) => {}
        }
    }

    fn is_open(&self) -> bool {
        *self.database_up.borrow()
            && self.commits_stalled.borrow().is_none()
            && !*self.broker_blocked.borrow()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.watcher.abort();
        metrics::broker_blocked(false);
    }
}
