//! The idempotency record: one row per applied batch, holding its result as published.

use crate::ids::{BatchId, OrgId};
use crate::result::{BatchResult, BatchStatus};
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
// The commands hold a plain client, the worker a pooled one.
use tokio_postgres::GenericClient as PlainClient;
use tokio_postgres::types::{FromSql, Type};

/// A result as it was published: its status and its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult {
    /// The result's `status`.
    pub status: BatchStatus,
    /// The result's JSON, byte for byte as first published.
    pub body: Vec<u8>,
    /// The `x-send-id` of the message that applied the batch, if it had one.
    pub send_id: Option<String>,
}

/// The `status` column. A committed row holds a final status; anything else is an error
/// here rather than a status guessed for a result about to be published again.
struct StatusColumn(BatchStatus);

impl<'a> FromSql<'a> for StatusColumn {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = <&str as FromSql>::from_sql(ty, raw)?;
        BatchStatus::parse(text)
            .map(StatusColumn)
            .ok_or_else(|| format!("import_batches.status '{text}' is not a final status").into())
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

fn status(row: &Row, index: usize) -> Result<BatchStatus, tokio_postgres::Error> {
    row.try_get::<_, StatusColumn>(index).map(|s| s.0)
}

/// Whether this transaction owns the batch or the batch was applied before.
pub enum Claim {
    /// The row is ours: apply the batch.
    New,
    /// The batch was committed before (by this or another worker); its row is locked
    /// `FOR SHARE`, so that the transaction's commit confirms it replicated.
    Done {
        /// Digest of the body it was applied with; another digest means `batch.id.conflict`.
        body_sha256: String,
        /// The result stored then, to publish again.
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
    send_id: Option<&str>,
) -> Result<Claim, tokio_postgres::Error> {
    let inserted = tx
        .execute(
            "INSERT INTO import_batches \
                 (org_id, batch_id, body_sha256, status, received, created, updated, failed, result, send_id) \
             VALUES ($1, $2, $3, 'processing', 0, 0, 0, 0, '', $4) \
             ON CONFLICT (org_id, batch_id) DO NOTHING",
            &[&org.as_str(), &batch.as_str(), &body_sha256, &send_id],
        )
        .await?;
    if inserted == 1 {
        return Ok(Claim::New);
    }
    // FOR SHARE writes a lock record to the WAL, so this transaction's COMMIT waits for
    // the synchronous standby like any write (a transaction that wrote no WAL commits
    // without waiting, an xid or not): once it returns, the row answered from, committed
    // earlier in the WAL, is on the standby too.
    let row = tx
        .query_one(
            "SELECT body_sha256, status, result, send_id FROM import_batches \
             WHERE org_id = $1 AND batch_id = $2 FOR SHARE",
            &[&org.as_str(), &batch.as_str()],
        )
        .await?;
    Ok(Claim::Done {
        body_sha256: row.get(0),
        result: StoredResult {
            status: status(&row, 1)?,
            body: row.get(2),
            send_id: row.get(3),
        },
    })
}

/// Who sent a batch, as its history shows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sender<'a> {
    /// The AMQP `type`: the dialect, from which the requester's answer is made again.
    pub message_type: Option<&'a str>,
    /// The broker user that published it.
    pub publisher: Option<&'a str>,
}

/// Stores the batch's result, and `body`, the bytes to publish, in the row [`claim`] inserted,
/// with what the console's history filters on (its error codes) and shows.
pub async fn finish(
    tx: &Transaction<'_>,
    org: &OrgId,
    batch: &BatchId,
    result: &BatchResult,
    body: &[u8],
    sender: Sender<'_>,
) -> Result<(), tokio_postgres::Error> {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let mut error_codes: Vec<&str> = result
        .failed_contacts
        .iter()
        .map(|f| f.error_code)
        .collect();
    error_codes.sort_unstable();
    error_codes.dedup();
    // NULL, not `{}`, for a batch without failures: the error-code index skips it.
    let error_codes = (!error_codes.is_empty()).then_some(error_codes);
    // now() is the transaction's start, the claim's time: the difference is the apply time.
    tx.execute(
        "UPDATE import_batches \
         SET status = $3, received = $4, created = $5, updated = $6, failed = $7, result = $8, \
             processed_at = now(), message_type = $9, publisher = $10, error_codes = $11, \
             apply_ms = (extract(epoch FROM clock_timestamp() - now()) * 1000)::integer \
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
            &sender.message_type,
            &sender.publisher,
            &error_codes,
        ],
    )
    .await?;
    Ok(())
}

/// A processed batch as `contact-import batches show` prints it.
#[derive(Debug)]
pub struct ProcessedBatch {
    /// The org that sent the batch.
    pub org_id: String,
    /// The result's `status`.
    pub status: BatchStatus,
    /// When its transaction stored the result.
    pub processed_at: DateTime<Utc>,
    /// The result as it was published.
    pub result: Vec<u8>,
}

/// Every processed batch with this id, of `org` or of any org.
pub async fn find(
    client: &impl PlainClient,
    batch: &str,
    org: Option<&str>,
) -> Result<Vec<ProcessedBatch>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT org_id, status, processed_at, result FROM import_batches \
             WHERE batch_id = $1 AND ($2::text IS NULL OR org_id = $2)",
            &[&batch, &org],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ProcessedBatch {
                org_id: row.get(0),
                status: status(row, 1)?,
                processed_at: row.get(2),
                result: row.get(3),
            })
        })
        .collect()
}

/// One line of `contact-import batches list`.
#[derive(Debug)]
pub struct BatchSummary {
    /// The batch id.
    pub batch_id: String,
    /// The result's `status`.
    pub status: BatchStatus,
    /// `counts.received`.
    pub received: i32,
    /// `counts.created`.
    pub created: i32,
    /// `counts.updated`.
    pub updated: i32,
    /// `counts.failed`.
    pub failed: i32,
    /// When its transaction stored the result.
    pub processed_at: DateTime<Utc>,
}

/// An org's batches processed since `since`, newest first, at most `limit`.
pub async fn recent(
    client: &impl PlainClient,
    org: &str,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<BatchSummary>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT batch_id, status, received, created, updated, failed, processed_at \
             FROM import_batches WHERE org_id = $1 AND processed_at >= $2 \
             ORDER BY processed_at DESC LIMIT $3",
            &[&org, &since, &limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(BatchSummary {
                batch_id: row.get(0),
                status: status(row, 1)?,
                received: row.get(2),
                created: row.get(3),
                updated: row.get(4),
                failed: row.get(5),
                processed_at: row.get(6),
            })
        })
        .collect()
}
