//! Everything that talks SQL. One batch is one transaction: claim the batch id, upsert its
//! contacts in one statement, store its result, commit. The batch's time limit bounds the
//! work up to COMMIT; the COMMIT itself is never cancelled (see [`commits`](crate::store::commits)).

pub mod accounts;
pub mod availability;
pub mod batches;
pub mod commits;
pub mod connect;
pub mod console_users;
pub mod dead_letters;
pub mod grants;
pub mod history;
pub mod login_failures;
pub(crate) mod migrate;
pub mod scope;
pub mod upsert;

use crate::contact::ValidatedBatch;
use crate::contact::credentials::Known;
use crate::dialect::Answer;
use crate::ids::OrgId;
use crate::result::{BatchResult, ResultDetail};
use batches::{Claim, StoredResult};
use chrono::Utc;
use commits::Commits;
use deadpool_postgres::{Object, Pool, PoolError, TimeoutType, Transaction};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tracing::warn;

/// Why a database call failed. Callers act on [`StoreError::is_outage`] (wait for the
/// database) and [`StoreError::is_transient`] (retry the transaction); anything else is a
/// property of the batch or a bug, and fails the delivery.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection from the pool: backend error or timeout.
    #[error("no database connection: {}", describe_pool(.0))]
    Pool(#[from] PoolError),
    /// A statement or the connection failed; the message has the server's SQLSTATE.
    #[error("database error: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    /// A statement got no answer within this time.
    #[error("the database did not answer within {0:?}")]
    NoAnswer(Duration),
    /// The database's schema is older than this binary's migrations (or has none): its
    /// statements would fail on every batch.
    #[error("{}", describe_schema(*.found, *.needed))]
    SchemaBehind {
        /// The latest migration applied, `None` without a schema history.
        found: Option<i64>,
        /// The latest migration this binary carries.
        needed: i64,
    },
    /// The COMMIT got no definite answer: the connection closed under it, or its wait for the
    /// synchronous standby was cancelled (see [`connect`]). The transaction may have
    /// committed, on the primary alone; only reading the batch back tells.
    #[error("the commit's outcome is unknown: {}", describe(.0))]
    CommitOutcomeUnknown(tokio_postgres::Error),
    /// The batch ran out of time and its transaction was abandoned.
    #[error("the batch did not finish within its time limit{}", last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default())]
    DeadlineExceeded {
        /// The error of the last attempt, if one failed before time ran out.
        last_error: Option<String>,
    },
}

impl StoreError {
    /// No batch can be stored now, whatever its content: the database is down, restarting,
    /// unreachable, read-only after a failover, out of resources, or refusing our
    /// credentials or database name. Waiting for it beats spending every batch's deliveries.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Pool(PoolError::Backend(e)) | Self::Db(e) => is_outage_db(e),
            Self::Pool(PoolError::Timeout(kind)) => !matches!(kind, TimeoutType::Wait),
            Self::NoAnswer(_) | Self::SchemaBehind { .. } => true,
            Self::Pool(_) | Self::DeadlineExceeded { .. } | Self::CommitOutcomeUnknown(_) => false,
        }
    }

    /// The server refused to write: a standby, or a primary turned read-only
    /// (SQLSTATE 25006, `read_only_sql_transaction`).
    pub fn is_read_only(&self) -> bool {
        match self {
            Self::Db(e) => {
                e.code() == Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
            }
            _ => false,
        }
    }

    /// Worth retrying the transaction at once: an outage, or losing a race to another
    /// transaction (serialization failure 40001, deadlock 40P01), or a busy pool.
    pub fn is_transient(&self) -> bool {
        self.is_outage()
            || match self {
                Self::Pool(PoolError::Backend(e)) | Self::Db(e) => e
                    .code()
                    .is_some_and(|c| matches!(c.code(), "40001" | "40P01")),
                Self::Pool(PoolError::Timeout(TimeoutType::Wait)) => true,
                _ => false,
            }
    }
}

/// tokio-postgres says only "db error"; the server's message and SQLSTATE are in its source,
/// and a refused certificate deep in it.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(problem) = crate::tls::describe_certificate_error(e) {
        return problem;
    }
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// deadpool's message leaves out why a connection could not be made (a refused
/// certificate, a refused password): that is in the backend error.
fn describe_pool(e: &PoolError) -> String {
    match e {
        PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

fn describe_schema(found: Option<i64>, needed: i64) -> String {
    match found {
        Some(found) => format!(
            "the database schema is at migration V{found} and this worker needs V{needed}: \
             run `contact-import migrate`"
        ),
        None => format!(
            "the database has no schema history (refinery_schema_history) and this worker \
             needs migration V{needed}: run `contact-import migrate`"
        ),
    }
}

fn is_outage_db(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            let code = code.code();
            ["08", "53", "28"]
                .iter()
                .any(|class| code.starts_with(class))
                || matches!(code, "57P01" | "57P02" | "57P03" | "25006" | "3D000")
        }
        // No SQLSTATE: the connection broke or was closed under the query.
        None => {
            e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        }
    }
}

/// What applying a batch did.
#[derive(Debug)]
pub enum Applied {
    /// Applied now; this result was stored with the contacts.
    Fresh {
        /// The result, as stored.
        result: BatchResult,
        /// `result` as published and stored.
        body: Vec<u8>,
    },
    /// A dry run: what applying would do, rolled back; no batch id was stored.
    DryRun {
        /// The full result, `dryRun` set.
        result: BatchResult,
        /// `result` as published to the requester; never stored.
        body: Vec<u8>,
    },
    /// Applied before (a redelivery, a resend, a commit whose outcome was unknown): the
    /// result stored then, to publish again, confirmed replicated.
    Replayed(StoredResult),
    /// The batch id was used before for a different body; nothing written.
    IdConflict,
}

/// The worker's handle on PostgreSQL.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// How the pool's connections are made, for cancelling a statement alike.
    tls: connect::Tls,
    /// The commits in flight, shared with the worker's gauges, gate and `/readyz`.
    commits: Arc<Commits>,
}

impl Store {
    /// A store on this pool, whose connections are made with `tls`, counting its commits in
    /// `commits`.
    pub fn new(pool: Pool, tls: connect::Tls, commits: Arc<Commits>) -> Self {
        Self { pool, tls, commits }
    }

    /// Applies a batch exactly once: the batch row, the contacts and the result commit
    /// together or not at all. Safe to call again after any error.
    ///
    /// Past `deadline` the transaction is abandoned (see `Abandonable`), but only before its
    /// COMMIT is sent: a COMMIT waits for as long as the database takes (with a synchronous
    /// standby away, until it is back) and ends in a definite answer or in
    /// [`StoreError::CommitOutcomeUnknown`]. A batch found applied before is answered from its
    /// stored result only once that result is known to be replicated: its transaction,
    /// having read the row `FOR SHARE` ([`batches::claim`]), commits too.
    pub async fn apply_batch(
        &self,
        batch: &ValidatedBatch,
        body_sha256: &str,
        answer: &Answer,
        how: Apply<'_>,
        deadline: Instant,
    ) -> Result<Applied, StoreError> {
        let timed_out = || StoreError::DeadlineExceeded { last_error: None };
        if Instant::now() >= deadline {
            return Err(timed_out());
        }
        let connection = tokio::time::timeout_at(deadline, self.pool.get())
            .await
            .map_err(|_| timed_out())??;
        let mut client = Abandonable::new(connection, self.tls.clone());
        let applied = match how.mode {
            Mode::Apply => {
                let commit = Commit {
                    commits: &self.commits,
                    sent: client.commit_sent.clone(),
                };
                apply(
                    client.get(),
                    batch,
                    body_sha256,
                    answer,
                    how,
                    deadline,
                    commit,
                )
                .await
            }
            Mode::DryRun => {
                tokio::time::timeout_at(deadline, dry_run(client.get(), batch, answer, how.detail))
                    .await
                    .unwrap_or_else(|_| Err(timed_out()))
            }
        };
        match &applied {
            // The server went read-only under a pooled connection (demoted, or made a reader
            // by a managed failover that keeps connections open): this connection will never
            // write again, so the next attempt must make a new one, which
            // `target_session_attrs=read-write` steers to the primary.
            Err(e) if e.is_read_only() => client.discard(),
            // Out of time before COMMIT: the dropped transaction and connection are
            // abandoned, the statement they ran cancelled.
            Err(StoreError::DeadlineExceeded { .. }) => drop(client),
            // Committed, or rolled back by the dropped transaction: safe to pool again.
            _ => client.release(),
        }
        applied
    }

    /// What the store knows of the accounts `users` of `org` claim, on one connection: the
    /// hashes of those that are accounts and, given the throttle's window, each one's failed
    /// verifications within it (see [`login_failures`]).
    pub async fn claimed_accounts(
        &self,
        org: &OrgId,
        users: &[&str],
        failure_window: Option<Duration>,
    ) -> Result<Known, StoreError> {
        let client = self.pool.get().await?;
        let hashes = accounts::password_hashes(&**client, org.as_str(), users).await?;
        let recent_failures = match failure_window {
            Some(window) => login_failures::recent(&**client, org.as_str(), users, window).await?,
            None => HashMap::new(),
        };
        Ok(Known {
            hashes,
            recent_failures,
        })
    }

    /// Records failed verifications of `org`'s users (a name per failed pair) outside any
    /// batch's transaction, and prunes failures older than `window`.
    pub async fn record_login_failures(
        &self,
        org: &OrgId,
        failed: &[&str],
        window: Duration,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        Ok(login_failures::record(&**client, org.as_str(), failed, window).await?)
    }

    /// Whether broker user `user` may import into `org` (see [`grants`]).
    pub async fn is_granted(&self, user: &str, org: &OrgId) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        Ok(grants::is_granted(&**client, user, org.as_str()).await?)
    }
}

/// How [`Store::apply_batch`] applies a batch and shapes its result.
#[derive(Debug, Clone, Copy)]
pub struct Apply<'a> {
    /// Applied, or only tried.
    pub mode: Mode,
    /// The result's contacts in full, or their ids.
    pub detail: ResultDetail,
    /// The message's `x-send-id`, stored with the batch (see [`batches::claim`]).
    pub send_id: Option<&'a str>,
    /// Who sent it and in which dialect, stored with the batch for its history.
    pub sender: batches::Sender<'a>,
}

/// Whether a batch is applied or only tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Commit the batch, its contacts and its result.
    Apply,
    /// The same statements in a transaction that is rolled back: updates of unknown contacts
    /// are found as in a real run, nothing is written and the batch id stays unused.
    DryRun,
}

/// A pooled connection in the middle of a transaction. Dropped before [`Abandonable::release`]
/// (the batch's deadline passed, the worker aborted it at shutdown, a panic), it is not
/// returned to the pool with the transaction open and a statement perhaps still holding row
/// locks: the connection is closed, and its statement cancelled unless it is the COMMIT.
/// A COMMIT is never cancelled: a cancelled wait for the synchronous standby would leave
/// the transaction committed on the primary alone. Its server finishes it on its own.
struct Abandonable {
    client: Option<Object>,
    tls: connect::Tls,
    /// Set once the COMMIT is sent.
    commit_sent: Arc<AtomicBool>,
}

impl Abandonable {
    fn new(client: Object, tls: connect::Tls) -> Self {
        Self {
            client: Some(client),
            tls,
            commit_sent: Arc::default(),
        }
    }

    fn get(&mut self) -> &mut Object {
        self.client.as_mut().expect("present until released")
    }

    fn release(mut self) {
        drop(self.client.take());
    }

    /// Closes the connection instead of pooling it again (no statement is running).
    fn discard(mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}

impl Drop for Abandonable {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let cancel = client.cancel_token();
        drop(Object::take(client));
        if self.commit_sent.load(Ordering::SeqCst) {
            return;
        }
        let tls = self.tls.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = tls.cancel(&cancel).await {
                    warn!(error = %e, "cancelling an abandoned statement failed");
                }
            });
        }
    }
}

/// Sends a transaction's COMMIT and waits for its answer, however long: marked sent first,
/// so that nothing cancels it, and counted in [`Commits`] while it waits.
struct Commit<'a> {
    commits: &'a Commits,
    sent: Arc<AtomicBool>,
}

impl Commit<'_> {
    async fn commit(self, tx: Transaction<'_>) -> Result<(), StoreError> {
        self.sent.store(true, Ordering::SeqCst);
        let _waiting = self.commits.sent();
        match tx.commit().await {
            Ok(()) => Ok(()),
            // An error the server sent (a deferred constraint, a serialization failure):
            // the transaction rolled back.
            Err(e) if e.as_db_error().is_some() => Err(StoreError::Db(e)),
            // No answer: the connection closed under the COMMIT, or was closed because its
            // wait for the standby was cancelled.
            Err(e) => {
                crate::metrics::commit_outcome_unknown();
                warn!(error = %describe(&e), "the batch's COMMIT got no answer; its outcome is unknown until it is read back");
                Err(StoreError::CommitOutcomeUnknown(e))
            }
        }
    }
}

async fn dry_run(
    client: &mut Object,
    batch: &ValidatedBatch,
    answer: &Answer,
    detail: ResultDetail,
) -> Result<Applied, StoreError> {
    let tx = client.transaction().await?;
    let outcomes = upsert::write_contacts(&tx, batch).await?;
    tx.rollback().await?;
    let mut result = BatchResult::applied(batch.batch_id(), batch.org_id(), outcomes, Utc::now());
    answer.complete(&mut result);
    result.dry_run = true;
    result.detail = detail;
    let body = result.to_json();
    Ok(Applied::DryRun { result, body })
}

/// Claims and writes the batch within `deadline`, then commits however long that takes. A
/// batch applied before is not written again; its transaction still commits, having locked
/// the batch's row (see [`batches::claim`]), so that the commit waits for the synchronous
/// standby like any write: WAL is replicated in order, so once it returns the stored result,
/// committed earlier, is replicated too. On a server without synchronous standbys that
/// commit waits for nothing.
async fn apply(
    client: &mut Object,
    batch: &ValidatedBatch,
    body_sha256: &str,
    answer: &Answer,
    how: Apply<'_>,
    deadline: Instant,
    commit: Commit<'_>,
) -> Result<Applied, StoreError> {
    let timed_out = || StoreError::DeadlineExceeded { last_error: None };
    let tx = tokio::time::timeout_at(deadline, async {
        let tx = client.transaction().await?;
        // The warning that a COMMIT's wait for the standby was cancelled must reach the
        // connection (see `connect`), whatever the role or database sets.
        tx.batch_execute("SET LOCAL client_min_messages = warning")
            .await?;
        Ok::<_, StoreError>(tx)
    })
    .await
    .map_err(|_| timed_out())??;
    let claim = batches::claim(
        &tx,
        batch.org_id(),
        batch.batch_id(),
        body_sha256,
        how.send_id,
    );
    let claim = past_deadline_while_stalled(deadline, commit.commits, claim).await?;
    let staged = async {
        let applied = match claim {
            Claim::New => {
                let outcomes = upsert::write_contacts(&tx, batch).await?;
                let mut result =
                    BatchResult::applied(batch.batch_id(), batch.org_id(), outcomes, Utc::now());
                answer.complete(&mut result);
                result.detail = how.detail;
                let body = result.to_json();
                batches::finish(
                    &tx,
                    batch.org_id(),
                    batch.batch_id(),
                    &result,
                    &body,
                    how.sender,
                )
                .await?;
                Applied::Fresh { result, body }
            }
            Claim::Done {
                body_sha256: stored,
                result,
            } => {
                if stored == body_sha256 {
                    Applied::Replayed(result)
                } else {
                    Applied::IdConflict
                }
            }
        };
        Ok::<_, StoreError>(applied)
    };
    let applied = tokio::time::timeout_at(deadline, staged)
        .await
        .map_err(|_| timed_out())??;
    commit.commit(tx).await?;
    Ok(applied)
}

/// How long a claim may still wait once commits no longer wait for the standby: the commit
/// that held its row returns at once then.
const CLAIM_GRACE_AFTER_STALL: Duration = Duration::from_secs(10);

/// Runs a batch's claim within `deadline`, and past it for as long as commits wait for the
/// synchronous standby. The claim waits only on a transaction holding the same batch's row;
/// during a stall that is most likely a COMMIT waiting for the standby (a worker's that was
/// killed, or this one's whose connection was lost), whose outcome decides this batch.
/// Giving up would requeue the batch and spend a delivery for every batch timeout of the
/// outage, and the last one dead-letters a batch that is stored.
async fn past_deadline_while_stalled<T>(
    deadline: Instant,
    commits: &Commits,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StoreError> {
    let timed_out = || StoreError::DeadlineExceeded { last_error: None };
    let mut work = std::pin::pin!(work);
    if let Ok(done) = tokio::time::timeout_at(deadline, &mut work).await {
        return Ok(done?);
    }
    let mut stalled = commits.subscribe();
    if stalled.borrow_and_update().is_none() {
        return Err(timed_out());
    }
    tokio::select! {
        done = &mut work => return Ok(done?),
        _ = stalled.wait_for(Option::is_none) => {}
    }
    tokio::time::timeout(CLAIM_GRACE_AFTER_STALL, work)
        .await
        .map_err(|_| timed_out())?
        .map_err(StoreError::from)
}
