//! The import history the console shows: processed batches (`import_batches`) and batches
//! rejected as a whole (`dead_letters`), newest first, filtered and paged by keyset, within
//! the orgs a console user may see. Also the recent throughput, and pruning old history.

use super::dead_letters::{self, DeadLetter};
use super::scope::Scope;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio_postgres::{GenericClient, Row};

/// What the history is filtered on; every field is optional, as in the page's URL.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only this org.
    pub org: Option<String>,
    /// `succeeded`, `partial`, `failed`, or `rejected` (dead-lettered as a whole).
    pub status: Option<String>,
    /// Only this batch id.
    pub batch_id: Option<String>,
    /// A per-contact `errorCode`, or a rejection's reason.
    pub error_code: Option<String>,
    /// Processed (or dead-lettered) at or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
}

/// Where a page of the history ends: the next page starts after it. The history is ordered
/// by time, then batch id, then org (`""` for none), so that lines that share a time (dead
/// letters are stamped to the second) are neither skipped nor repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// When it was processed, or dead-lettered.
    pub at: DateTime<Utc>,
    /// The batch id.
    pub batch_id: String,
    /// The org, `""` for none.
    pub org: String,
}

/// One line of the history.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The org; `None` for a letter rejected before its org was read.
    pub org_id: Option<String>,
    /// The batch id.
    pub batch_id: String,
    /// The result's status, or `rejected` for a dead letter.
    pub status: String,
    /// `counts.received` (none for a dead letter).
    pub received: Option<i32>,
    /// `counts.failed` (none for a dead letter).
    pub failed: Option<i32>,
    /// When it was processed, or dead-lettered.
    pub at: DateTime<Utc>,
    /// A dead letter's reason.
    pub reason: Option<String>,
    /// A dead letter's stream offset (its id in the console).
    pub letter: Option<i64>,
}

/// A page of the history, `limit` lines at most, after `after`.
pub async fn page(
    client: &impl GenericClient,
    scope: &Scope,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<Entry>, tokio_postgres::Error> {
    let batches = filter.status.as_deref() != Some("rejected");
    let letters = filter.status.as_deref().is_none_or(|s| s == "rejected");
    // Each half is ordered and limited by its own index; the union is cut to the page. Each
    // statement is prepared for this one query, so PostgreSQL plans it for the values bound
    // (a custom plan): a filter left empty (`$n IS NULL`) costs nothing.
    let sql = format!(
        "SELECT * FROM ( \
           (SELECT org_id, batch_id, status, received, failed, processed_at AS at, \
                   NULL::text AS reason, NULL::bigint AS letter \
            FROM import_batches \
            WHERE {batches} AND status <> 'processing' \
              AND ($1::text[] IS NULL OR org_id = ANY($1)) \
              AND ($2::text IS NULL OR org_id = $2) \
              AND ($3::text IS NULL OR status = $3) \
              AND ($4::text IS NULL OR batch_id = $4) \
              AND ($5::text IS NULL OR error_codes @> ARRAY[$5]) \
              AND ($6::timestamptz IS NULL OR processed_at >= $6) \
              AND ($7::timestamptz IS NULL OR processed_at < $7) \
              AND ($8::timestamptz IS NULL OR (processed_at, batch_id, org_id) < ($8, $9, $11)) \
            ORDER BY processed_at DESC, batch_id DESC, org_id DESC LIMIT $10) \
           UNION ALL \
           (SELECT org_id, batch_id, 'rejected', NULL, NULL, dead_at, reason, stream_offset \
            FROM dead_letters \
            WHERE {letters} \
              AND ($1::text[] IS NULL OR org_id = ANY($1)) \
              AND ($2::text IS NULL OR org_id = $2) \
              AND ($4::text IS NULL OR batch_id = $4) \
              AND ($5::text IS NULL OR reason = $5) \
              AND ($6::timestamptz IS NULL OR dead_at >= $6) \
              AND ($7::timestamptz IS NULL OR dead_at < $7) \
              AND ($8::timestamptz IS NULL \
                   OR (dead_at, batch_id, coalesce(org_id, '')) < ($8, $9, $11)) \
            ORDER BY dead_at DESC, batch_id DESC, coalesce(org_id, '') DESC LIMIT $10) \
         ) history ORDER BY at DESC, batch_id DESC, coalesce(org_id, '') DESC LIMIT $10"
    );
    let status = filter.status.as_deref().filter(|s| *s != "rejected");
    let rows = client
        .query(
            &sql,
            &[
                &scope.as_param(),
                &filter.org,
                &status,
                &filter.batch_id,
                &filter.error_code,
                &filter.from,
                &filter.to,
                &after.map(|c| c.at),
                &after.map(|c| c.batch_id.as_str()),
                &limit,
                &after.map(|c| c.org.as_str()),
            ],
        )
        .await?;
    Ok(rows.iter().map(entry).collect())
}

fn entry(row: &Row) -> Entry {
    Entry {
        org_id: row.get(0),
        batch_id: row.get(1),
        status: row.get(2),
        received: row.get(3),
        failed: row.get(4),
        at: row.get(5),
        reason: row.get(6),
        letter: row.get(7),
    }
}

/// A processed batch, whole.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The org.
    pub org_id: String,
    /// The batch id.
    pub batch_id: String,
    /// `succeeded`, `partial` or `failed`.
    pub status: String,
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
    /// Time spent in its transaction (recorded since migration 9).
    pub apply_ms: Option<i32>,
    /// Its AMQP `type` (dialect), recorded since migration 9.
    pub message_type: Option<String>,
    /// The broker user that published it, recorded since migration 9.
    pub publisher: Option<String>,
    /// The `x-send-id` of the message that applied it.
    pub send_id: Option<String>,
    /// The stored result: the bytes published (and replayed) as the batch's result.
    pub result: Vec<u8>,
}

/// The processed batch `batch_id` of `org`, if it exists and is in `scope`.
pub async fn batch(
    client: &impl GenericClient,
    scope: &Scope,
    org: &str,
    batch_id: &str,
) -> Result<Option<Batch>, tokio_postgres::Error> {
    if !scope.allows(Some(org)) {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT org_id, batch_id, status, received, created, updated, failed, processed_at, \
                    apply_ms, message_type, publisher, send_id, result \
             FROM import_batches \
             WHERE org_id = $1 AND batch_id = $2 AND status <> 'processing'",
            &[&org, &batch_id],
        )
        .await?;
    Ok(row.map(|row| Batch {
        org_id: row.get(0),
        batch_id: row.get(1),
        status: row.get(2),
        received: row.get(3),
        created: row.get(4),
        updated: row.get(5),
        failed: row.get(6),
        processed_at: row.get(7),
        apply_ms: row.get(8),
        message_type: row.get(9),
        publisher: row.get(10),
        send_id: row.get(11),
        result: row.get(12),
    }))
}

/// The dead letters of an org's batch, newest first: the batch's earlier lives.
pub async fn letters_of(
    client: &impl GenericClient,
    org: &str,
    batch_id: &str,
) -> Result<Vec<DeadLetter>, tokio_postgres::Error> {
    dead_letters::of_batch(client, org, batch_id).await
}

/// One minute of throughput.
#[derive(Debug, Clone)]
pub struct Minute {
    /// When it was processed, or dead-lettered.
    pub at: DateTime<Utc>,
    /// Batches processed.
    pub batches: i64,
    /// Contacts received in them.
    pub contacts: i64,
    /// Contacts that failed.
    pub failed: i64,
}

/// Batches and contacts processed per minute over the last `window`, oldest first.
pub async fn throughput(
    client: &impl GenericClient,
    scope: &Scope,
    window: Duration,
) -> Result<Vec<Minute>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT date_trunc('minute', processed_at) AS minute, count(*), \
                    coalesce(sum(received), 0)::bigint, coalesce(sum(failed), 0)::bigint \
             FROM import_batches \
             WHERE processed_at > now() - make_interval(secs => $2) AND status <> 'processing' \
               AND ($1::text[] IS NULL OR org_id = ANY($1)) \
             GROUP BY minute ORDER BY minute",
            &[&scope.as_param(), &window.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Minute {
            at: row.get(0),
            batches: row.get(1),
            contacts: row.get(2),
            failed: row.get(3),
        })
        .collect())
}

/// Batches and contacts processed in the last `window` (a rolling window, unlike the
/// minutes of [`throughput`]).
pub async fn recent_totals(
    client: &impl GenericClient,
    scope: &Scope,
    window: Duration,
) -> Result<(i64, i64), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*), coalesce(sum(received), 0)::bigint FROM import_batches \
             WHERE processed_at > now() - make_interval(secs => $2) AND status <> 'processing' \
               AND ($1::text[] IS NULL OR org_id = ANY($1))",
            &[&scope.as_param(), &window.as_secs_f64()],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// The least age `prune` takes: younger batches may still be redelivered or resent, and
/// their records are what makes that harmless.
pub const PRUNE_AT_LEAST: Duration = Duration::from_secs(24 * 3600);

/// Deletes processed batches and dead-letter records older than `older_than` (at least
/// [`PRUNE_AT_LEAST`]), in chunks (so that no statement holds many locks or a long
/// transaction); returns how many rows of each. A pruned batch id is forgotten: a
/// redelivery of it would be applied again.
pub async fn prune(
    client: &impl GenericClient,
    older_than: Duration,
) -> Result<(u64, u64), tokio_postgres::Error> {
    let older_than = older_than.max(PRUNE_AT_LEAST);
    const CHUNK: i64 = 10_000;
    let secs = older_than.as_secs_f64();
    let mut batches = 0;
    loop {
        let n = client
            .execute(
                "DELETE FROM import_batches WHERE ctid = ANY(ARRAY( \
                     SELECT ctid FROM import_batches \
                     WHERE processed_at < now() - make_interval(secs => $1) \
                       AND status <> 'processing' \
                     LIMIT $2 FOR UPDATE SKIP LOCKED))",
                &[&secs, &CHUNK],
            )
            .await?;
        batches += n;
        if n < CHUNK as u64 {
            break;
        }
    }
    let letters = dead_letters::prune(client, older_than).await?;
    Ok((batches, letters))
}
