//! The `login_failures` table: failed verifications of Save User Contacts credentials, per
//! org and userName, shared by every worker so that they throttle an account alike. Every
//! time is the database's `now()`: workers with skewed clocks agree on a window.

use std::collections::HashMap;
use std::time::Duration;
use tokio_postgres::GenericClient;

/// Most expired rows one recording deletes: the work stays bounded however large the
/// backlog (a window just shortened, say), and pruning still outpaces recording, which adds
/// at most a few dozen rows per batch.
const PRUNE_LIMIT: i64 = 1000;

/// How many failed verifications each of `users` of `org` had within the last `window`;
/// users without any are absent.
pub async fn recent(
    client: &impl GenericClient,
    org: &str,
    users: &[&str],
    window: Duration,
) -> Result<HashMap<String, u32>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT user_name, count(*) FROM login_failures \
             WHERE org_id = $1 AND user_name = ANY($2) \
               AND failed_at > now() - make_interval(secs => $3) \
             GROUP BY user_name",
            &[&org, &users, &window.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let failures: i64 = row.get(1);
            (row.get(0), u32::try_from(failures).unwrap_or(u32::MAX))
        })
        .collect())
}

/// Records failed verifications of `org`'s users (a name once per failure), and deletes up
/// to `PRUNE_LIMIT` (1,000) rows of any org that are older than `window`, in one statement of its
/// own: run outside a batch's transaction, the failures stay recorded when the batch rolls
/// back. Rows another worker is pruning at the same moment are skipped, not waited for.
pub async fn record(
    client: &impl GenericClient,
    org: &str,
    failures: &[&str],
    window: Duration,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "WITH pruned AS ( \
                 DELETE FROM login_failures WHERE id IN ( \
                     SELECT id FROM login_failures \
                     WHERE failed_at <= now() - make_interval(secs => $3) \
                     LIMIT $4 FOR UPDATE SKIP LOCKED)) \
             INSERT INTO login_failures (org_id, user_name) \
             SELECT $1, user_name FROM unnest($2::text[]) AS user_name",
            &[&org, &failures, &window.as_secs_f64(), &PRUNE_LIMIT],
        )
        .await?;
    Ok(())
}
