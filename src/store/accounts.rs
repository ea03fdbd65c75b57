//! The `accounts` table: argon2id hashes of the credentials Save User Contacts batches carry.
//! Only hashes pass through here; hashing and verifying live in [`crate::contact::credentials`].

use std::collections::HashMap;
use tokio_postgres::GenericClient;

/// The stored hashes of those of `users` that are accounts of `org`.
pub async fn password_hashes(
    client: &impl GenericClient,
    org: &str,
    users: &[&str],
) -> Result<HashMap<String, String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT user_name, password_hash FROM accounts \
             WHERE org_id = $1 AND user_name = ANY($2)",
            &[&org, &users],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// The stored hash of `user` of `org`, if that account exists.
pub async fn password_hash(
    client: &impl GenericClient,
    org: &str,
    user: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT password_hash FROM accounts WHERE org_id = $1 AND user_name = $2",
            &[&org, &user],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// Creates the account, or replaces its hash.
pub async fn save(
    client: &impl GenericClient,
    org: &str,
    user: &str,
    password_hash: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO accounts (org_id, user_name, password_hash) VALUES ($1, $2, $3) \
             ON CONFLICT (org_id, user_name) \
             DO UPDATE SET password_hash = EXCLUDED.password_hash, updated_at = now()",
            &[&org, &user, &password_hash],
        )
        .await?;
    Ok(())
}

/// Deletes the account; `false` when there was none.
pub async fn remove(
    client: &impl GenericClient,
    org: &str,
    user: &str,
) -> Result<bool, tokio_postgres::Error> {
    let removed = client
        .execute(
            "DELETE FROM accounts WHERE org_id = $1 AND user_name = $2",
            &[&org, &user],
        )
        .await?;
    Ok(removed > 0)
}
