//! Everything that talks SQL. One batch is one transaction: claim the batch id, upsert its
//! contacts in one statement, store its result, commit.

pub mod batches;
pub mod migrate;
pub mod pool;
pub mod upsert;

use crate::contact::ValidatedBatch;
use crate::result::BatchResult;
use batches::Claim;
use chrono::Utc;
use deadpool_postgres::Pool;

/// Why a database call failed. Callers act on [`StoreError::is_transient`]: transient errors
/// are retried, others fail the delivery.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
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
            Self::Pool(deadpool_postgres::PoolError::Closed) => false,
            Self::Pool(_) => true,
        }
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
    pub async fn apply_batch(
        &self,
        batch: &ValidatedBatch,
        body_sha256: &str,
    ) -> Result<Applied, StoreError> {
        let mut client = self.pool.get().await?;
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
}
