//! The `org_grants` table: which broker users may import into which orgs. Read for every
//! batch (one primary-key probe), so a change takes effect at once, without a restart.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

/// The org a grant names to grant them all.
pub const EVERY_ORG: &str = "*";

/// Whether `user` may import into `org`.
pub async fn is_granted(
    client: &impl GenericClient,
    user: &str,
    org: &str,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM org_grants WHERE user_id = $1 AND org_id IN ($2, $3))",
            &[&user, &org, &EVERY_ORG],
        )
        .await?;
    row.try_get(0)
}

/// Grants `org` (or [`EVERY_ORG`]) to `user`; `false` when it was granted already.
pub async fn add(
    client: &impl GenericClient,
    user: &str,
    org: &str,
) -> Result<bool, tokio_postgres::Error> {
    let added = client
        .execute(
            "INSERT INTO org_grants (user_id, org_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&user, &org],
        )
        .await?;
    Ok(added > 0)
}

/// Takes the grant back; `false` when there was none.
pub async fn remove(
    client: &impl GenericClient,
    user: &str,
    org: &str,
) -> Result<bool, tokio_postgres::Error> {
    let removed = client
        .execute(
            "DELETE FROM org_grants WHERE user_id = $1 AND org_id = $2",
            &[&user, &org],
        )
        .await?;
    Ok(removed > 0)
}

/// One grant, as `contact-import grants list` prints it.
#[derive(Debug)]
pub struct Grant {
    /// The broker user.
    pub user_id: String,
    /// The org, or [`EVERY_ORG`].
    pub org_id: String,
    /// When it was granted.
    pub granted_at: DateTime<Utc>,
}

/// The grants of `user` and/or of `org` (every grant when both are `None`), by user and org.
pub async fn list(
    client: &impl GenericClient,
    user: Option<&str>,
    org: Option<&str>,
) -> Result<Vec<Grant>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT user_id, org_id, granted_at FROM org_grants \
             WHERE ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR org_id = $2) \
             ORDER BY user_id, org_id",
            &[&user, &org],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Grant {
                user_id: row.try_get(0)?,
                org_id: row.try_get(1)?,
                granted_at: row.try_get(2)?,
            })
        })
        .collect()
}
