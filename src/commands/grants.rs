//! `contact-import grants add|remove|list`: which broker users may import into which orgs,
//! when the worker runs with `CONTACT_IMPORT_AUTHORIZATION=grants`.

use crate::config::DatabaseConfig;
use crate::store::{connect, grants};
use anyhow::bail;
use chrono::SecondsFormat;
use clap::{Args, Subcommand};

/// `contact-import grants …`.
#[derive(Debug, Args)]
pub struct GrantsArgs {
    /// The database the grants live in.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// What to do.
    #[command(subcommand)]
    pub command: GrantsCommand,
}

/// What to do with a grant.
#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    /// Let a broker user import into an org (`--org '*'`: every org).
    Add {
        /// The RabbitMQ user the producer logs in as (its messages' `user_id`).
        #[arg(long)]
        user: String,
        /// The org, or `*`.
        #[arg(long)]
        org: String,
    },
    /// Take a grant back; takes effect on the next batch.
    Remove {
        /// The RabbitMQ user.
        #[arg(long)]
        user: String,
        /// The org, or `*`.
        #[arg(long)]
        org: String,
    },
    /// Print the grants, of one user and/or one org.
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// Only this org's (the `*` grants are listed with `--org '*'`).
        #[arg(long)]
        org: Option<String>,
    },
}

/// Runs the command.
pub async fn run(args: GrantsArgs) -> anyhow::Result<()> {
    let client = connect::client(&args.database.database_url).await?;
    match args.command {
        GrantsCommand::Add { user, org } => {
            if org.trim().is_empty() || user.trim().is_empty() {
                bail!("--user and --org must not be empty");
            }
            if grants::add(&client, &user, &org).await? {
                eprintln!("user {user} may import into org {org}");
            } else {
                eprintln!("user {user} could import into org {org} already");
            }
        }
        GrantsCommand::Remove { user, org } => {
            if !grants::remove(&client, &user, &org).await? {
                bail!("user {user} has no grant for org {org}");
            }
            eprintln!("user {user} may no longer import into org {org}");
        }
        GrantsCommand::List { user, org } => {
            let found = grants::list(&client, user.as_deref(), org.as_deref()).await?;
            println!("USER\tORG\tGRANTED AT");
            for grant in &found {
                println!(
                    "{}\t{}\t{}",
                    grant.user_id,
                    grant.org_id,
                    grant.granted_at.to_rfc3339_opts(SecondsFormat::Secs, true)
                );
            }
            eprintln!("{} grant(s)", found.len());
        }
    }
    Ok(())
}
