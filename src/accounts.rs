//! Account credentials for the Save User Contacts dialect: argon2id hashes in `accounts`,
//! and `contact-import accounts add|remove` to manage them. A password is hashed on the way
//! in and never stored, logged or echoed.

use crate::config::DatabaseConfig;
use crate::contact::{ContactDraft, ContactError, Credentials, ErrorCode};
use crate::ids::OrgId;
use anyhow::{Context, bail};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use clap::{Args, Subcommand};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::BufRead;
use tokio_postgres::{GenericClient, NoTls};

/// An argon2id PHC string (`$argon2id$v=19$…`) with a fresh random salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// Whether `password` matches the stored PHC string. A malformed hash matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

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

/// The user names whose credentials the contacts carry, each once.
pub fn claimed_users(drafts: &[Result<ContactDraft, ContactError>]) -> Vec<&str> {
    let users: BTreeSet<&str> = drafts
        .iter()
        .filter_map(|d| d.as_ref().ok()?.credentials.as_ref())
        .map(|c| c.user_name.as_str())
        .collect();
    users.into_iter().collect()
}

/// Fails (401) every contact whose userName/password pair is not an account of the org, and
/// drops the credentials of the others, so no password goes further. Each distinct pair is
/// verified once (argon2id costs tens of milliseconds by design), off the async threads.
pub async fn authenticate(
    org: &OrgId,
    drafts: &mut [Result<ContactDraft, ContactError>],
    hashes: HashMap<String, String>,
) {
    let pairs: BTreeSet<Credentials> = drafts
        .iter()
        .filter_map(|d| d.as_ref().ok()?.credentials.clone())
        .collect();
    if pairs.is_empty() {
        return;
    }
    let valid: HashSet<Credentials> = tokio::task::spawn_blocking(move || {
        pairs
            .into_iter()
            .filter(|c| {
                hashes
                    .get(&c.user_name)
                    .is_some_and(|phc| verify(&c.password, phc))
            })
            .collect()
    })
    .await
    .unwrap_or_default();
    for draft in drafts.iter_mut() {
        let Ok(contact) = draft else { continue };
        let Some(credentials) = contact.credentials.take() else {
            continue;
        };
        if !valid.contains(&credentials) {
            // One message for an unknown user and a wrong password: a result must not tell
            // which user names exist.
            *draft = Err(ContactError::new(
                ErrorCode::InvalidCredentials,
                format!(
                    "userName '{}' with this password is not an account of org {org}",
                    credentials.user_name
                ),
            ));
        }
    }
}

/// Whether `user` of `org` exists and `password` is theirs.
pub async fn check(
    client: &impl GenericClient,
    org: &str,
    user: &str,
    password: &str,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT password_hash FROM accounts WHERE org_id = $1 AND user_name = $2",
            &[&org, &user],
        )
        .await?;
    Ok(row.is_some_and(|row| verify(password, row.get(0))))
}

#[derive(Debug, Args)]
pub struct AccountsArgs {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(subcommand)]
    pub command: AccountsCommand,
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account, or set a new password for it. The password is read from the first
    /// line of stdin, never from the command line (which `ps` and shell history show).
    Add {
        #[arg(long)]
        org: String,
        #[arg(long)]
        user: String,
    },
    /// Delete an account.
    Remove {
        #[arg(long)]
        org: String,
        #[arg(long)]
        user: String,
    },
}

pub async fn run(args: AccountsArgs) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(&args.database.database_url, NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    match args.command {
        AccountsCommand::Add { org, user } => {
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!("no password on stdin");
            }
            let hash = hash(password)?;
            client
                .execute(
                    "INSERT INTO accounts (org_id, user_name, password_hash) VALUES ($1, $2, $3) \
                     ON CONFLICT (org_id, user_name) \
                     DO UPDATE SET password_hash = EXCLUDED.password_hash, updated_at = now()",
                    &[&org, &user, &hash],
                )
                .await?;
            eprintln!("account {user} of org {org} saved");
        }
        AccountsCommand::Remove { org, user } => {
            let removed = client
                .execute(
                    "DELETE FROM accounts WHERE org_id = $1 AND user_name = $2",
                    &[&org, &user],
                )
                .await?;
            if removed == 0 {
                bail!("no account {user} in org {org}");
            }
            eprintln!("account {user} of org {org} removed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_salted_and_verifies_only_its_password() {
        let first = hash("examplePass").unwrap();
        let second = hash("examplePass").unwrap();
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert_ne!(first, second, "each hash has its own salt");
        assert!(!first.contains("examplePass"));
        assert!(verify("examplePass", &first));
        assert!(!verify("examplepass", &first));
        assert!(!verify("examplePass", "not a hash"));
    }
}
