//! `contact-import accounts add|remove`: the accounts whose credentials Save User Contacts
//! batches carry. The password is read from stdin, hashed here and never stored, logged or
//! echoed.

use crate::config::DatabaseConfig;
use crate::contact::credentials;
use crate::store::{accounts, connect};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tokio::io::{AsyncBufReadExt, BufReader};

/// `contact-import accounts …`.
#[derive(Debug, Args)]
pub struct AccountsArgs {
    /// Where the `accounts` table is.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// What to do.
    #[command(subcommand)]
    pub command: AccountsCommand,
}

/// What to do with an account.
#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account, or set a new password for it. The password is read from the first
    /// line of stdin, never from the command line (which `ps` and shell history show).
    Add {
        /// The org the account belongs to (the batches' `orgId`).
        #[arg(long)]
        org: String,
        /// The account's user name (a Save User Contacts request's `userName`).
        #[arg(long)]
        user: String,
    },
    /// Delete an account.
    Remove {
        /// The org the account belongs to.
        #[arg(long)]
        org: String,
        /// The account's user name.
        #[arg(long)]
        user: String,
    },
}

/// Runs the command.
pub async fn run(args: AccountsArgs) -> anyhow::Result<()> {
    let client = connect::client(&args.database.database_url).await?;
    match args.command {
        AccountsCommand::Add { org, user } => {
            let password = read_password().await?;
            // argon2id takes tens of milliseconds of CPU by design: off the async threads.
            let hash = tokio::task::spawn_blocking(move || credentials::hash(&password))
                .await
                .context("hashing the password")??;
            accounts::save(&client, &org, &user, &hash).await?;
            eprintln!("account {user} of org {org} saved");
        }
        AccountsCommand::Remove { org, user } => {
            if !accounts::remove(&client, &org, &user).await? {
                bail!("no account {user} in org {org}");
            }
            eprintln!("account {user} of org {org} removed");
        }
    }
    Ok(())
}

/// The first line of stdin, without its line ending.
pub(crate) async fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("no password on stdin");
    }
    Ok(password.to_owned())
}
