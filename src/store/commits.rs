//! Commits that wait. On a primary with a synchronous standby a COMMIT returns only once the
//! standby has the transaction, and while the standby is away it waits for as long as that
//! takes. The worker never cancels one: a cancelled wait leaves the transaction committed on
//! the primary and perhaps nowhere else (see [`super::connect`], which turns such a commit
//! into an unknown outcome). This module keeps the waits visible instead: how many commits
//! wait, the oldest, and whether commits wait for the synchronous standby, which closes the
//! worker's gate and its `/readyz`.

use crate::metrics::{self, Started};
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// A commit waiting this long for the synchronous standby means the standby is away, not slow:
/// a healthy one answers in milliseconds.
pub const STALL_AFTER: Duration = Duration::from_secs(2);

/// How often [`Commits::watch`] asks the database whether commits wait for the standby.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Why no new batches are taken while commits wait, for `/readyz` and the log.
pub const STALLED_ON_STANDBY: &str = "commits are waiting for the database's synchronous standby";

/// The commits in flight in this worker, and what the database says of every commit waiting
/// for its synchronous standby (this worker's, another worker's, or one left behind by a
/// worker that was killed while it waited).
pub struct Commits {
    /// When each commit in flight was sent.
    sent: Started,
    /// `Some(oldest wait)` while commits wait for the synchronous standby longer than
    /// [`STALL_AFTER`].
    stalled: watch::Sender<Option<Duration>>,
    /// The oldest wait for the standby the database showed last, however short.
    standby_wait: std::sync::Mutex<Option<Duration>>,
}

impl Default for Commits {
    fn default() -> Self {
        Self {
            sent: Started::new(),
            stalled: watch::Sender::new(None),
            standby_wait: std::sync::Mutex::new(None),
        }
    }
}

impl Commits {
    /// Marks a COMMIT sent; it counts as waiting until the returned guard is dropped.
    pub fn sent(&self) -> CommitInFlight<'_> {
        metrics::committing(1.0);
        CommitInFlight {
            commits: self,
            id: self.sent.enter(),
        }
    }

    /// How long the oldest commit has waited: this worker's own, or any of the database's
    /// waiting for the synchronous standby (as last read), so that a worker restarted during
    /// an outage still shows the commits its predecessor left waiting.
    pub fn oldest_wait(&self) -> Option<Duration> {
        let standby = *self.standby_wait.lock().expect("standby wait lock");
        self.sent.oldest().max(standby)
    }

    /// `Some(oldest wait)` while commits wait for the synchronous standby.
    pub fn stalled(&self) -> Option<Duration> {
        *self.stalled.borrow()
    }

    /// Follows [`Commits::stalled`].
    pub fn subscribe(&self) -> watch::Receiver<Option<Duration>> {
        self.stalled.subscribe()
    }

    /// Asks the database every second whether commits wait for its synchronous standby, and
    /// keeps [`Commits::stalled`] up to date; runs until dropped.
    pub async fn watch(&self, pool: Pool) {
        let mut every = tokio::time::interval(WATCH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.refresh(&pool).await;
        }
    }

    /// Asks the database once whether commits wait for its synchronous standby. The
    /// database's view, not only this worker's, so that a worker restarted during an outage
    /// sees the commits its predecessor left waiting before it takes a batch: their rows
    /// stay locked, and a batch taken now would wait on them past its time.
    pub async fn refresh(&self, pool: &Pool) {
        match tokio::time::timeout(WATCH_EVERY * 2, waiting_for_standby(pool)).await {
            Ok(Ok(oldest)) => {
                *self.standby_wait.lock().expect("standby wait lock") = oldest;
                self.report(oldest.filter(|wait| *wait >= STALL_AFTER));
            }
            // The database being away is the availability's business; what was last seen
            // stands until it answers again.
            Ok(Err(e)) => debug!(error = %e, "could not read the commits waiting for the standby"),
            Err(_) => debug!("reading the commits waiting for the standby took too long"),
        }
    }

    fn report(&self, oldest: Option<Duration>) {
        let was = self.stalled.send_replace(oldest);
        match (was, oldest) {
            (None, Some(wait)) => warn!(
                oldest_wait_ms = wait.as_millis() as u64,
                "{STALLED_ON_STANDBY}; taking no new batches, and answering none until its commit is replicated"
            ),
            (Some(_), None) => info!("commits are replicated again; taking batches"),
            _ => {}
        }
    }
}

/// A COMMIT in flight, counted in [`metrics::COMMITTING`] until dropped.
pub struct CommitInFlight<'a> {
    commits: &'a Commits,
    id: u64,
}

impl Drop for CommitInFlight<'_> {
    fn drop(&mut self) {
        self.commits.sent.leave(self.id);
        metrics::committing(-1.0);
    }
}

/// How long the oldest commit of this database and role waiting for a synchronous standby
/// has waited, if one waits. `pg_stat_activity` shows the wait events of the role's own
/// sessions, so every worker of a deployment, which share one role, sees the others' waits;
/// other roles' sessions (visible to a superuser) are left out. `query_start` is when the
/// COMMIT was sent: the worker sends it as a statement of its own.
async fn waiting_for_standby(pool: &Pool) -> Result<Option<Duration>, super::StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT extract(epoch FROM clock_timestamp() - min(query_start))::float8 \
             FROM pg_stat_activity \
             WHERE wait_event = 'SyncRep' AND datname = current_database() \
               AND usename = current_user",
            &[],
        )
        .await?;
    let seconds: Option<f64> = row.get(0);
    Ok(seconds.map(|s| Duration::from_secs_f64(s.max(0.0))))
}
