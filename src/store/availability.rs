//! Whether PostgreSQL can take batches. A batch that meets an outage reports it; the consume
//! loop then takes no new deliveries (each would fail and spend one of its limited
//! deliveries) and `/readyz` says why, until a probe gets an answer again. Commits that wait
//! for the synchronous standby ([`Commits`]) stop new deliveries the same way.

use super::StoreError;
use super::commits::Commits;
use crate::metrics;
use backon::BackoffBuilder;
use deadpool_postgres::Pool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// A probe that takes longer than this counts as the database not answering.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The database's availability, shared by every batch and `/readyz`; one waiter probes at a time.
pub struct Availability {
    pool: Pool,
    up: watch::Sender<bool>,
    /// Why the database was last found unavailable, for `/readyz` and the logs.
    last_error: Mutex<String>,
    /// Held by the one waiter that probes; the others wait for its news.
    prober: tokio::sync::Mutex<()>,
    /// The commits in flight, and whether commits wait for the synchronous standby.
    commits: Arc<Commits>,
}

impl Availability {
    /// Starts out available, and says so in [`metrics::DATABASE_UP`].
    pub fn new(pool: Pool) -> Self {
        metrics::database_up(true);
        Self {
            pool,
            up: watch::Sender::new(true),
            last_error: Mutex::new(String::new()),
            prober: tokio::sync::Mutex::new(()),
            commits: Arc::default(),
        }
    }

    /// The commits in flight; see [`Commits::watch`] for what keeps their stall current.
    pub fn commits(&self) -> &Arc<Commits> {
        &self.commits
    }

    /// Follows the availability: `true` while batches can be stored.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// Whether batches can be stored now, as far as is known.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// What the last outage was, if the database is unavailable now.
    pub fn outage(&self) -> Option<String> {
        (!self.is_up()).then(|| self.last_error.lock().expect("availability lock").clone())
    }

    /// A database call failed in a way that means no batch can be stored now.
    pub fn report_outage(&self, error: &StoreError) {
        *self.last_error.lock().expect("availability lock") = error.to_string();
        // Only a change notifies: waiters must not wake for news they already have.
        let changed = self.up.send_if_modified(|up| {
            let was_up = std::mem::replace(up, false);
            if was_up {
                metrics::database_up(false);
            }
            was_up
        });
        if changed {
            warn!(%error, "database unavailable; taking no new batches until it answers");
        }
    }

    /// A call succeeded: the database is back, whoever noticed first.
    pub fn report_up(&self) {
        let changed = self.up.send_if_modified(|up| {
            let was_down = !std::mem::replace(up, true);
            if was_down {
                metrics::database_up(true);
            }
            was_down
        });
        if changed {
            info!("database available again; taking batches");
        }
    }

    /// Returns once the database is available. While it is not, one waiter probes it with
    /// backoff and the others wait for the news (a probe or another task's commit).
    pub async fn wait_up(&self) {
        let mut up = self.up.subscribe();
        if *up.borrow_and_update() {
            return;
        }
        let probing = async {
            let _only_me = self.prober.lock().await;
            let mut delays = backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .without_max_times()
                .with_jitter()
                .build();
            while !self.is_up() {
                if let Err(e) = self.probe().await {
                    let wait = delays.next().unwrap_or(Duration::from_secs(5));
                    debug!(error = %e, retry_in_ms = wait.as_millis() as u64, "database probe failed");
                    tokio::time::sleep(wait).await;
                }
            }
        };
        tokio::select! {
            _ = up.wait_for(|up| *up) => {}
            _ = probing => {}
        }
    }

    /// One round trip to the database, reporting what it finds: whether it answers, and
    /// whether its schema has this binary's migrations (a worker started before `migrate`
    /// would otherwise fail and dead-letter every batch). Waiting for a free pooled
    /// connection is bounded by the pool's own timeouts, which tell a busy pool (not an
    /// outage) from a database that cannot be connected to (one).
    pub async fn probe(&self) -> Result<(), StoreError> {
        let answered = async {
            let client = self.pool.get().await?;
            tokio::time::timeout(PROBE_TIMEOUT, super::migrate::check_schema(&client))
                .await
                .map_err(|_| StoreError::NoAnswer(PROBE_TIMEOUT))?
        }
        .await;
        match &answered {
            Ok(()) => self.report_up(),
            Err(e) if e.is_outage() => self.report_outage(e),
            Err(_) => {}
        }
        answered
    }
}
