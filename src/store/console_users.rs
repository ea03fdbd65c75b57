//! The console's users and their sessions (`console_users`, `console_sessions`). Only
//! argon2id hashes of passwords and SHA-256 digests of session tokens are stored. Every
//! time is the database's clock, so that console replicas agree on expiry and lockouts.

use std::time::Duration;
use tokio_postgres::GenericClient;

/// A user as stored.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    /// The name they sign in with.
    pub name: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// The orgs they may see; `*` is every org.
    pub orgs: Vec<String>,
    /// Whether failed logins lock the user out now.
    pub locked: bool,
}

fn user(row: &tokio_postgres::Row) -> ConsoleUser {
    ConsoleUser {
        name: row.get(0),
        password_hash: row.get(1),
        role: row.get(2),
        orgs: row.get(3),
        locked: row.get(4),
    }
}

const COLUMNS: &str = "name, password_hash, role, orgs, coalesce(locked_until > now(), false)";

/// The user called `name`.
pub async fn find(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<ConsoleUser>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM console_users WHERE name = $1"),
            &[&name],
        )
        .await?;
    Ok(row.as_ref().map(user))
}

/// Every user, by name.
pub async fn all(client: &impl GenericClient) -> Result<Vec<ConsoleUser>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM console_users ORDER BY name"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(user).collect())
}

/// Creates the user, or replaces their hash, role and orgs (and lifts a lockout).
pub async fn save(
    client: &impl GenericClient,
    name: &str,
    password_hash: &str,
    role: &str,
    orgs: &[String],
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO console_users (name, password_hash, role, orgs) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET password_hash = EXCLUDED.password_hash, \
                 role = EXCLUDED.role, orgs = EXCLUDED.orgs, failed_logins = 0, locked_until = NULL",
            &[&name, &password_hash, &role, &orgs],
        )
        .await?;
    // A new password ends the sessions made with the old one.
    client
        .execute(
            "DELETE FROM console_sessions WHERE user_name = $1",
            &[&name],
        )
        .await?;
    Ok(())
}

/// Deletes the user and their sessions; `false` when there was none.
pub async fn remove(
    client: &impl GenericClient,
    name: &str,
) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .execute("DELETE FROM console_users WHERE name = $1", &[&name])
        .await?
        == 1)
}

/// How many users exist (the console refuses to start without one, unless a proxy signs
/// users in).
pub async fn count(client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT count(*) FROM console_users", &[])
        .await?
        .get(0))
}

/// Counts a sign-in attempt of `name`, unless the user is locked out: `false` then. At
/// `limit` attempts in a row the user is locked out for `lockout`; a successful sign-in
/// ([`start_session`]) clears the count. Counted before the password is checked, in one
/// statement, so that parallel guesses cannot all pass before the lockout.
pub async fn count_attempt(
    client: &impl GenericClient,
    name: &str,
    limit: i32,
    lockout: Duration,
) -> Result<bool, tokio_postgres::Error> {
    let counted = client
        .execute(
            "UPDATE console_users SET \
                 failed_logins = CASE WHEN locked_until <= now() THEN 1 ELSE failed_logins + 1 END, \
                 locked_until = CASE \
                     WHEN (CASE WHEN locked_until <= now() THEN 1 ELSE failed_logins + 1 END) >= $2 \
                     THEN now() + make_interval(secs => $3) ELSE NULL END \
             WHERE name = $1 AND (locked_until IS NULL OR locked_until <= now())",
            &[&name, &limit, &lockout.as_secs_f64()],
        )
        .await?;
    Ok(counted == 1)
}

/// Starts a session for `name` under the token digest `token_sha256`, valid for `ttl`, and
/// clears the failed-login count.
pub async fn start_session(
    client: &impl GenericClient,
    name: &str,
    token_sha256: &str,
    ttl: Duration,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE console_users SET failed_logins = 0, locked_until = NULL WHERE name = $1",
            &[&name],
        )
        .await?;
    client
        .execute(
            "INSERT INTO console_sessions (token_sha256, user_name, expires_at) \
             VALUES ($1, $2, now() + make_interval(secs => $3))",
            &[&token_sha256, &name, &ttl.as_secs_f64()],
        )
        .await?;
    // Expired sessions go with every sign-in, a few at a time.
    client
        .execute(
            "DELETE FROM console_sessions WHERE token_sha256 IN ( \
                 SELECT token_sha256 FROM console_sessions WHERE expires_at < now() LIMIT 100)",
            &[],
        )
        .await?;
    Ok(())
}

/// The user of an unexpired session.
pub async fn session_user(
    client: &impl GenericClient,
    token_sha256: &str,
) -> Result<Option<ConsoleUser>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT u.name, u.password_hash, u.role, u.orgs, \
                    coalesce(u.locked_until > now(), false) \
             FROM console_sessions s JOIN console_users u ON u.name = s.user_name \
             WHERE s.token_sha256 = $1 AND s.expires_at > now()",
            &[&token_sha256],
        )
        .await?;
    Ok(row.as_ref().map(user))
}

/// Ends a session.
pub async fn end_session(
    client: &impl GenericClient,
    token_sha256: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM console_sessions WHERE token_sha256 = $1",
            &[&token_sha256],
        )
        .await?;
    Ok(())
}
