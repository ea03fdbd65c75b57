//! `contact-import batches`: what the worker stored for processed batches, read from
//! `import_batches` (the same result a redelivery would replay).

use crate::config::DatabaseConfig;
use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use std::time::Duration;
use tokio_postgres::NoTls;

#[derive(Debug, Args)]
pub struct BatchesArgs {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(subcommand)]
    pub command: BatchesCommand,
}

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
        #[arg(long)]
        org: String,
        /// How far back, e.g. `24h`, `7d`.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
        since: Duration,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

pub async fn run(args: BatchesArgs) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(&args.database.database_url, NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    match args.command {
        BatchesCommand::Show { id, org } => {
            let rows = client
                .query(
                    "SELECT org_id, status, processed_at, result FROM import_batches \
                     WHERE batch_id = $1 AND ($2::text IS NULL OR org_id = $2)",
                    &[&id, &org],
                )
                .await?;
            match rows.as_slice() {
                [] => bail!("no processed batch {id}"),
                [row] => {
                    let (org, status): (String, String) = (row.get(0), row.get(1));
                    let at: DateTime<Utc> = row.get(2);
                    eprintln!("batch {id} of org {org}: {status}, processed {}", stamp(at));
                    let result: Vec<u8> = row.get(3);
                    match serde_json::from_slice::<serde_json::Value>(&result) {
                        Ok(json) => println!("{}", serde_json::to_string_pretty(&json)?),
                        Err(_) => println!("{}", String::from_utf8_lossy(&result)),
                    }
                }
                several => {
                    let orgs: Vec<String> = several.iter().map(|r| r.get(0)).collect();
                    bail!(
                        "batch id {id} was used by several orgs ({}); pass --org",
                        orgs.join(", ")
                    )
                }
            }
        }
        BatchesCommand::List { org, since, limit } => {
            let since = Utc::now() - chrono::Duration::from_std(since)?;
            let rows = client
                .query(
                    "SELECT batch_id, status, received, created, updated, failed, processed_at \
                     FROM import_batches WHERE org_id = $1 AND processed_at >= $2 \
                     ORDER BY processed_at DESC LIMIT $3",
                    &[&org, &since, &limit],
                )
                .await?;
            println!("BATCH ID\tSTATUS\tRECEIVED\tCREATED\tUPDATED\tFAILED\tPROCESSED AT");
            for row in &rows {
                let at: DateTime<Utc> = row.get(6);
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    row.get::<_, String>(0),
                    row.get::<_, String>(1),
                    row.get::<_, i32>(2),
                    row.get::<_, i32>(3),
                    row.get::<_, i32>(4),
                    row.get::<_, i32>(5),
                    stamp(at)
                );
            }
            eprintln!("{} batch(es)", rows.len());
        }
    }
    Ok(())
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
