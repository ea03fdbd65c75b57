//! The `dead_letters` table: a copy of every dead letter, made by the console's recorder
//! from the dead-letter exchange's stream, so that listing and filtering them is a query
//! instead of a pass over the dead-letter queue (which would rewrite it).

use super::scope::Scope;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio_postgres::{GenericClient, Row};

/// A dead letter as recorded.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its offset in the stream: its id in the console.
    pub offset: i64,
    /// The batch id (message id) the letter carries.
    pub batch_id: String,
    /// The org, when the letter names one.
    pub org_id: Option<String>,
    /// The rejection code, or the broker's reason (`delivery_limit`).
    pub reason: String,
    /// The worker's explanation.
    pub error: Option<String>,
    /// Deliveries before it was dead-lettered.
    pub attempts: Option<i32>,
    /// Its AMQP `type` (dialect).
    pub message_type: Option<String>,
    /// The broker user that published it.
    pub publisher: Option<String>,
    /// When it was dead-lettered.
    pub dead_at: DateTime<Utc>,
    /// Its AMQP headers, as JSON (values readable, as `dlq show` prints them).
    pub headers: serde_json::Value,
    /// `replayed` or `purged` by the console, with who and when.
    pub settled: Option<String>,
    /// The console user who settled it.
    pub settled_by: Option<String>,
    /// When.
    pub settled_at: Option<DateTime<Utc>>,
}

/// A letter to record, as read from the stream.
#[derive(Debug, Clone)]
pub struct NewLetter {
    /// Its offset in the stream.
    pub offset: i64,
    /// The batch id.
    pub batch_id: String,
    /// The org, if named.
    pub org_id: Option<String>,
    /// The reason code.
    pub reason: String,
    /// The worker's explanation.
    pub error: Option<String>,
    /// Deliveries before it was dead-lettered.
    pub attempts: Option<i32>,
    /// Its AMQP `type`.
    pub message_type: Option<String>,
    /// The broker user that published it.
    pub publisher: Option<String>,
    /// When it was dead-lettered.
    pub dead_at: DateTime<Utc>,
    /// Its headers, values readable.
    pub headers: serde_json::Value,
    /// The message body, to show (passwords already hidden; replays read the queue).
    pub body: Vec<u8>,
}

/// Records a letter (one already recorded, same offset, is left as it is) and that the
/// stream `stream` goes on after it.
pub async fn record(
    client: &impl GenericClient,
    stream: &str,
    letter: &NewLetter,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO dead_letters (stream_offset, batch_id, org_id, reason, error, attempts, \
                 message_type, publisher, dead_at, headers, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (stream_offset) DO NOTHING",
            &[
                &letter.offset,
                &letter.batch_id,
                &letter.org_id,
                &letter.reason,
                &letter.error,
                &letter.attempts,
                &letter.message_type,
                &letter.publisher,
                &letter.dead_at,
                &letter.headers,
                &letter.body,
            ],
        )
        .await?;
    // After the row: a failure in between records the letter again, never skips it.
    skip(client, stream, letter.offset).await
}

/// Records that the stream goes on after `offset` (a letter that cannot be recorded is
/// skipped this way).
pub async fn skip(
    client: &impl GenericClient,
    stream: &str,
    offset: i64,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO dead_letter_stream (stream, next_offset) VALUES ($1, $2::bigint + 1) \
             ON CONFLICT (stream) DO UPDATE \
             SET next_offset = greatest(dead_letter_stream.next_offset, EXCLUDED.next_offset)",
            &[&stream, &offset],
        )
        .await?;
    Ok(())
}

/// Where the recorder goes on in `stream`; `None` before its first letter.
pub async fn next_offset(
    client: &impl GenericClient,
    stream: &str,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT next_offset FROM dead_letter_stream WHERE stream = $1",
            &[&stream],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Which letters a list or a bulk action takes.
#[derive(Debug, Default, Clone)]
pub struct LetterFilter {
    /// Only this org.
    pub org: Option<String>,
    /// Only this reason.
    pub reason: Option<String>,
    /// Dead for at least this long.
    pub older_than: Option<Duration>,
    /// Include letters the console already replayed or purged.
    pub settled: bool,
}

const COLUMNS: &str = "stream_offset, batch_id, org_id, reason, error, attempts, message_type, \
                       publisher, dead_at, headers, settled, settled_by, settled_at";

const MATCHES: &str = "($1::text[] IS NULL OR org_id = ANY($1)) \
                       AND ($2::text IS NULL OR org_id = $2) \
                       AND ($3::text IS NULL OR reason = $3) \
                       AND ($4::float8 IS NULL OR dead_at <= now() - make_interval(secs => $4)) \
                       AND ($5 OR settled IS NULL)";

/// A page of letters matching `filter` within `scope`, newest first, after the offset `after`.
pub async fn page(
    client: &impl GenericClient,
    scope: &Scope,
    filter: &LetterFilter,
    after: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> Result<Vec<DeadLetter>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE {MATCHES} \
           AND ($6::timestamptz IS NULL OR (dead_at, stream_offset) < ($6, $7)) \
         ORDER BY dead_at DESC, stream_offset DESC LIMIT $8"
    );
    let older = filter.older_than.map(|d| d.as_secs_f64());
    let rows = client
        .query(
            &sql,
            &[
                &scope.as_param(),
                &filter.org,
                &filter.reason,
                &older,
                &filter.settled,
                &after.map(|a| a.0),
                &after.map(|a| a.1),
                &limit,
            ],
        )
        .await?;
    Ok(rows.iter().map(letter).collect())
}

/// A letter a replay or purge takes: its offset, batch id and org.
pub type Target = (i64, String, Option<String>);

/// Every unsettled letter matching `filter` within `scope`: what a bulk replay or purge
/// takes (the count shown before it is their number).
pub async fn matching(
    client: &impl GenericClient,
    scope: &Scope,
    filter: &LetterFilter,
) -> Result<Vec<Target>, tokio_postgres::Error> {
    let sql = format!("SELECT stream_offset, batch_id, org_id FROM dead_letters WHERE {MATCHES}");
    let older = filter.older_than.map(|d| d.as_secs_f64());
    let rows = client
        .query(
            &sql,
            &[
                &scope.as_param(),
                &filter.org,
                &filter.reason,
                &older,
                &false,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// One letter with its body, if it is in `scope`.
pub async fn one(
    client: &impl GenericClient,
    scope: &Scope,
    offset: i64,
) -> Result<Option<(DeadLetter, Vec<u8>)>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS}, body FROM dead_letters WHERE stream_offset = $1"),
            &[&offset],
        )
        .await?;
    Ok(row
        .map(|row| (letter(&row), row.get::<_, Vec<u8>>(13)))
        .filter(|(l, _)| scope.allows(l.org_id.as_deref())))
}

/// Every letter recorded for `batch_id`, newest first.
pub async fn of_batch(
    client: &impl GenericClient,
    org: &str,
    batch_id: &str,
) -> Result<Vec<DeadLetter>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM dead_letters WHERE batch_id = $1 AND org_id = $2 \
                 ORDER BY dead_at DESC LIMIT 100"
            ),
            &[&batch_id, &org],
        )
        .await?;
    Ok(rows.iter().map(letter).collect())
}

/// Marks as replayed or purged by `by` those of the letters at `offsets` (the ones the user
/// confirmed) whose (batch id, org) the queue pass took (`-` stands for a letter that names
/// no org). A letter recorded since, such as a replay that failed again, stays unsettled.
pub async fn settle(
    client: &impl GenericClient,
    offsets: &[i64],
    letters: &[(String, String)],
    how: &str,
    by: &str,
) -> Result<u64, tokio_postgres::Error> {
    let (batches, orgs): (Vec<&str>, Vec<&str>) = letters
        .iter()
        .map(|(b, o)| (b.as_str(), o.as_str()))
        .unzip();
    client
        .execute(
            "UPDATE dead_letters SET settled = $3, settled_by = $4, settled_at = now() \
             WHERE settled IS NULL AND stream_offset = ANY($5) \
               AND (batch_id, coalesce(org_id, '-')) IN \
                 (SELECT * FROM unnest($1::text[], $2::text[]))",
            &[&batches, &orgs, &how, &by, &offsets],
        )
        .await
}

/// Unsettled letters, and the oldest one's time, within `scope`.
pub async fn waiting(
    client: &impl GenericClient,
    scope: &Scope,
) -> Result<(i64, Option<DateTime<Utc>>), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*), min(dead_at) FROM dead_letters \
             WHERE settled IS NULL AND ($1::text[] IS NULL OR org_id = ANY($1))",
            &[&scope.as_param()],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Deletes records of letters dead longer than `older_than`, in chunks.
pub async fn prune(
    client: &impl GenericClient,
    older_than: Duration,
) -> Result<u64, tokio_postgres::Error> {
    const CHUNK: i64 = 10_000;
    let mut deleted = 0;
    loop {
        let n = client
            .execute(
                "DELETE FROM dead_letters WHERE stream_offset IN ( \
                     SELECT stream_offset FROM dead_letters \
                     WHERE dead_at < now() - make_interval(secs => $1) LIMIT $2)",
                &[&older_than.as_secs_f64(), &CHUNK],
            )
            .await?;
        deleted += n;
        if n < CHUNK as u64 {
            return Ok(deleted);
        }
    }
}

fn letter(row: &Row) -> DeadLetter {
    DeadLetter {
        offset: row.get(0),
        batch_id: row.get(1),
        org_id: row.get(2),
        reason: row.get(3),
        error: row.get(4),
        attempts: row.get(5),
        message_type: row.get(6),
        publisher: row.get(7),
        dead_at: row.get(8),
        headers: row.get(9),
        settled: row.get(10),
        settled_by: row.get(11),
        settled_at: row.get(12),
    }
}
