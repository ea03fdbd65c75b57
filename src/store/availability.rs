//! Whether PostgreSQL is reachable. A batch that meets an outage reports it; the consume loop
//! then takes no new deliveries (each would fail and spend one of its limited deliveries)
//! and `/readyz` says why, until a probe gets an answer again.

use super::StoreError;
use crate::metrics;
use backon::BackoffBuilder;
use deadpool_postgres::{Pool, PoolError, TimeoutType};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

pub struct Availability {
    pool: Pool,
    up: watch::Sender<bool>,
}

impl Availability {
    pub fn new(pool: Pool) -> Self {
        metrics::database_up(true);
        Self {
            pool,
            up: watch::Sender::new(true),
        }
    }

    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// A database call failed in a way that means the database is away.
    pub fn report_outage(&self, error: &dyn std::fmt::Display) {
        if self.up.send_replace(false) {
            metrics::database_up(false);
            warn!(%error, "database unavailable; taking no new batches until it answers");
        }
    }

    /// A transaction committed: the database is back, whoever noticed first.
    pub fn report_up(&self) {
        if !self.up.send_replace(true) {
            metrics::database_up(true);
            info!("database available again; taking batches");
        }
    }

    /// Returns once the database answers, probing it with backoff while it does not.
    pub async fn wait_up(&self) {
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times()
            .with_jitter()
            .build();
        let mut changed = self.up.subscribe();
        while !*changed.borrow_and_update() {
            match self.probe().await {
                Ok(()) => self.report_up(),
                Err(e) => {
                    debug!(error = %e, "database probe failed");
                    let wait = delays.next().unwrap_or(Duration::from_secs(5));
                    // Another task's commit may bring the news sooner than our next probe.
                    let _ = tokio::time::timeout(wait, changed.changed()).await;
                }
            }
        }
    }

    /// One round trip to the database; an outage it meets is reported.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let answered = async {
            let client = tokio::time::timeout(Duration::from_secs(2), self.pool.get())
                .await
                .map_err(|_| StoreError::Pool(PoolError::Timeout(TimeoutType::Wait)))??;
            client.simple_query("SELECT 1").await?;
            Ok::<(), StoreError>(())
        }
        .await;
        if let Err(e) = &answered
            && e.is_outage()
        {
            self.report_outage(e);
        }
        answered
    }
}
