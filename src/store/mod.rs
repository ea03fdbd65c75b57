//! Everything that talks SQL. One batch is one transaction: claim the batch id, upsert its
//! contacts in one statement, store its result, commit.

pub mod availability;
pub mod batches;
pub mod migrate;
pub mod pool;
pub mod upsert;

use crate::contact::ValidatedBatch;
use crate::result::BatchResult;
use batches::Claim;
use chrono::Utc;
use deadpool_postgres::{Object, Pool};
use tokio::time::Instant;
use tokio_postgres::NoTls;
use tracing::warn;

/// Why a database call failed. Callers act on [`StoreError::is_transient`]: transient errors
/// are retried, others fail the delivery.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    /// The batch ran out of time; its transaction was abandoned uncommitted.
    #[error("the batch did not finish within its time limit; nothing was committed")]
    DeadlineExceeded,
}

impl StoreError {
    /// Connection loss, serialization failures (40001), deadlocks (40P01), connection
    /// exceptions (08xxx), insufficient resources (53xxx) and operator intervention such as
    /// a restart (57P0x) pass with time; anything else is a property of the batch or a bug.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Pool(deadpool_postgres::PoolError::Backend(e)) | Self::Db(e) => {
                is_transient_db(e)
            }
            Self::Pool(deadpool_postgres::PoolError::Closed) | Self::DeadlineExceeded => false,
            Self::Pool(_) => true,
        }
    }

    /// The database itself is away (down, restarting, unreachable), as opposed to this
    /// transaction losing a race: waiting for it beats spending the batch's deliveries.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Pool(deadpool_postgres::PoolError::Backend(e)) => is_transient_db(e),
            Self::Pool(deadpool_postgres::PoolError::Timeout(t)) => {
                !matches!(t, deadpool_postgres::TimeoutType::Wait)
            }
            Self::Db(e) => match e.code() {
                Some(code) => {
                    let code = code.code();
                    matches!(code, "57P01" | "57P02" | "57P03") || code.starts_with("08")
                }
                None => is_transient_db(e),
            },
            Self::Pool(_) | Self::DeadlineExceeded => false,
        }
    }
}

/// tokio-postgres says only "db error"; the server's message and SQLSTATE are in its source.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

fn is_transient_db(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            let code = code.code();
            matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
                || code.starts_with("08")
                || code.starts_with("53")
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
    Fresh(BatchResult),
    /// Applied before (a redelivery): the result stored then, to publish again.
    Replayed(serde_json::Value),
    /// The batch id was used before for a different body; nothing written.
    IdConflict,
}

/// The worker's handle on PostgreSQL.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Applies a batch exactly once: the batch row, the contacts and the result commit
    /// together or not at all. Safe to call again after any error.
    ///
    /// Past `deadline` the transaction is abandoned: its statement is cancelled and its
    /// connection closed rather than returned to the pool with the transaction still open.
    pub async fn apply_batch(
        &self,
        batch: &ValidatedBatch,
        body_sha256: &str,
        deadline: Instant,
    ) -> Result<Applied, StoreError> {
        let mut client = tokio::time::timeout_at(deadline, self.pool.get())
            .await
            .map_err(|_| StoreError::DeadlineExceeded)??;
        match tokio::time::timeout_at(deadline, apply(&mut client, batch, body_sha256)).await {
            Ok(applied) => applied,
            Err(_) => {
                let cancel = client.cancel_token();
                drop(Object::take(client));
                tokio::spawn(async move {
                    if let Err(e) = cancel.cancel_query(NoTls).await {
                        warn!(error = %e, "cancelling an abandoned statement failed");
                    }
                });
                Err(StoreError::DeadlineExceeded)
            }
        }
    }
}

async fn apply(
    client: &mut Object,
    batch: &ValidatedBatch,
    body_sha256: &str,
) -> Result<Applied, StoreError> {
    let tx = client.transaction().await?;
    match batches::claim(&tx, &batch.org_id, &batch.batch_id, body_sha256).await? {
        Claim::New => {}
        Claim::Done {
            body_sha256: stored,
            result,
        } if stored == body_sha256 => return Ok(Applied::Replayed(result)),
        Claim::Done { .. } => return Ok(Applied::IdConflict),
    }
    let outcomes = upsert::write_contacts(&tx, batch).await?;
    let result = BatchResult::applied(&batch.batch_id, &batch.org_id, outcomes, Utc::now());
    batches::finish(&tx, &batch.org_id, &batch.batch_id, &result).await?;
    tx.commit().await?;
    Ok(Applied::Fresh(result))
}
