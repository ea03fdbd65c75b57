//! The idempotency record: one row per applied batch, holding its result as published.

use crate::ids::{BatchId, OrgId};
use crate::result::BatchResult;
use deadpool_postgres::{GenericClient, Transaction};

/// A result as it was published: its status and its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult {
    pub status: String,
    pub body: Vec<u8>,
}

/// Whether this transaction owns the batch or the batch was applied before.
pub enum Claim {
    New,
    Done {
        body_sha256: String,
        result: StoredResult,
    },
}

/// Inserts the batch's row first, so that a second worker applying the same batch at the same
/// time waits on it and then finds the committed result instead of writing twice.
pub async fn claim(
    tx: &Transaction<'_>,
    org: &OrgId,
    batch: &BatchId,
    body_sha256: &str,
) -> Result<Claim, tokio_postgres::Error> {
    let inserted = tx
        .execute(
            "INSERT INTO import_batches \
                 (org_id, batch_id, body_sha256, status, received, created, updated, failed, result) \
             VALUES ($1, $2, $3, 'processing', 0, 0, 0, 0, '') \
             ON CONFLICT (org_id, batch_id) DO NOTHING",
            &[&org.as_str(), &batch.as_str(), &body_sha256],
        )
        .await?;
    if inserted == 1 {
        return Ok(Claim::New);
    }
    let row = tx
        .query_one(
            "SELECT body_sha256, status, result FROM import_batches \
             WHERE org_id = $1 AND batch_id = $2",
            &[&org.as_str(), &batch.as_str()],
        )
        .await?;
    Ok(Claim::Done {
        body_sha256: row.get(0),
        result: StoredResult {
            status: row.get(1),
            body: row.get(2),
        },
    })
}

/// Stores the batch's result, and `body`, the bytes to publish, in the row [`claim`] inserted.
pub async fn finish(
    tx: &Transaction<'_>,
    org: &OrgId,
    batch: &BatchId,
    result: &BatchResult,
    body: &[u8],
) -> Result<(), tokio_postgres::Error> {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    tx.execute(
        "UPDATE import_batches \
         SET status = $3, received = $4, created = $5, updated = $6, failed = $7, result = $8, processed_at = now() \
         WHERE org_id = $1 AND batch_id = $2",
        &[
            &org.as_str(),
            &batch.as_str(),
            &result.status.as_str(),
            &count(result.counts.received),
            &count(result.counts.created),
            &count(result.counts.updated),
            &count(result.counts.failed),
            &body,
        ],
    )
    .await?;
    Ok(())
}

/// The result stored for `batch` if it was applied with this body.
pub async fn stored_result(
    client: &impl GenericClient,
    org: &OrgId,
    batch: &BatchId,
    body_sha256: &str,
) -> Result<Option<StoredResult>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT status, result FROM import_batches \
             WHERE org_id = $1 AND batch_id = $2 AND body_sha256 = $3",
            &[&org.as_str(), &batch.as_str(), &body_sha256],
        )
        .await?;
    Ok(row.map(|row| StoredResult {
        status: row.get(0),
        body: row.get(1),
    }))
}
