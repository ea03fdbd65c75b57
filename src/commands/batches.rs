//! `contact-import batches`: what the worker stored for processed batches, read from
//! `import_batches` (the same result a redelivery would replay), and pruning that history.

use crate::config::DatabaseConfig;
use crate::store::{batches, connect, history};
use anyhow::bail;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use std::time::Duration;

/// `contact-import batches …`.
#[derive(Debug, Args)]
pub struct BatchesArgs {
    /// Where `import_batches` is.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// What to show.
    #[command(subcommand)]
    pub command: BatchesCommand,
}

/// What to show.
#[derive(Debug, Subcommand)]
pub enum BatchesCommand {
    /// Print the stored result of one batch.
    Show {
        /// The batch id (the message's `message_id`, or `sha256:…`).
        id: String,
        /// The org, when the same batch id was used by several orgs.
        #[arg(long)]
        org: Option<String>,
    },
    /// List an org's batches processed recently, newest first.
    List {
        /// The org whose batches to list.
        #[arg(long)]
        org: String,
        /// How far back, e.g. `24h`, `7d`.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
        since: Duration,
        /// Most batches to list.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Delete the history older than DURATION (e.g. `30d`): processed batches and the
    /// console's dead-letter records. A pruned batch id is forgotten: a redelivery of that
    /// batch would be applied again, so keep more than any batch can take to come back.
    Prune {
        /// Least age of the rows deleted.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Duration,
    },
}

/// Runs the command: results on stdout, messages on stderr.
pub async fn run(args: BatchesArgs) -> anyhow::Result<()> {
    let client = connect::client(&args.database.database_url).await?;
    match args.command {
        BatchesCommand::Show { id, org } => {
            let found = batches::find(&client, &id, org.as_deref()).await?;
            match found.as_slice() {
                [] => bail!("no processed batch {id}"),
                [batch] => {
                    eprintln!(
                        "batch {id} of org {}: {}, processed {}",
                        batch.org_id,
                        batch.status.as_str(),
                        stamp(batch.processed_at)
                    );
                    match serde_json::from_slice::<serde_json::Value>(&batch.result) {
                        Ok(json) => println!("{}", serde_json::to_string_pretty(&json)?),
                        Err(_) => println!("{}", String::from_utf8_lossy(&batch.result)),
                    }
                }
                several => {
                    let orgs: Vec<&str> = several.iter().map(|b| b.org_id.as_str()).collect();
                    bail!(
                        "batch id {id} was used by several orgs ({}); pass --org",
                        orgs.join(", ")
                    )
                }
            }
        }
        BatchesCommand::List { org, since, limit } => {
            let since = Utc::now() - chrono::Duration::from_std(since)?;
            let found = batches::recent(&client, &org, since, limit).await?;
            println!("BATCH ID\tSTATUS\tRECEIVED\tCREATED\tUPDATED\tFAILED\tPROCESSED AT");
            for b in &found {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    b.batch_id,
                    b.status.as_str(),
                    b.received,
                    b.created,
                    b.updated,
                    b.failed,
                    stamp(b.processed_at)
                );
            }
            eprintln!("{} batch(es)", found.len());
        }
        BatchesCommand::Prune { older_than } => {
            if older_than < history::PRUNE_AT_LEAST {
                bail!(
                    "--older-than {} is less than a day: batches that young may still come back, and their records keep them from being applied twice",
                    humantime::format_duration(older_than)
                );
            }
            let (batches, letters) = history::prune(&client, older_than).await?;
            eprintln!(
                "pruned {batches} batch(es) and {letters} dead-letter record(s) older than {}",
                humantime::format_duration(older_than)
            );
        }
    }
    Ok(())
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
