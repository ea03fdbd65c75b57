//! `contact-import console-users add|remove|list`: who may sign in to the console, with
//! which role and for which orgs. The password is read from stdin and only its argon2id
//! hash is stored.

use super::accounts::read_password;
use crate::config::DatabaseConfig;
use crate::contact::credentials;
use crate::store::{connect, console_users};
use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

/// `contact-import console-users …`.
#[derive(Debug, Args)]
pub struct ConsoleUsersArgs {
    /// Where the console's users are.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// What to do.
    #[command(subcommand)]
    pub command: ConsoleUsersCommand,
}

/// A console user's role.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Reads every page.
    Viewer,
    /// Also downloads failed contacts and results, and replays dead letters.
    Operator,
    /// Also purges dead letters and sees the users.
    Admin,
}

/// What to do with a console user.
#[derive(Debug, Subcommand)]
pub enum ConsoleUsersCommand {
    /// Create a user, or replace their password, role and orgs (which ends their sessions).
    /// The password is the first line of stdin, never an argument (which `ps` and shell
    /// history show).
    Add {
        /// The name they sign in with (or that the proxy sends, with `--auth proxy`).
        name: String,
        /// What they may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The orgs they may see, comma-separated; `*` for every org.
        #[arg(long, value_delimiter = ',', default_value = "*")]
        orgs: Vec<String>,
    },
    /// Delete a user and end their sessions.
    Remove {
        /// The user's name.
        name: String,
    },
    /// List the users, their roles and orgs.
    List,
}

/// Runs the command.
pub async fn run(args: ConsoleUsersArgs) -> anyhow::Result<()> {
    let client = connect::client(&args.database.database_url).await?;
    match args.command {
        ConsoleUsersCommand::Add { name, role, orgs } => {
            let orgs: Vec<String> = orgs
                .into_iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect();
            if orgs.is_empty() {
                bail!("--orgs names no org: give org ids, or * for every org");
            }
            let password = read_password().await?;
            let hash = tokio::task::spawn_blocking(move || credentials::hash(&password))
                .await
                .context("hashing the password")??;
            let role = role.to_possible_value().expect("a named role");
            console_users::save(&client, &name, &hash, role.get_name(), &orgs).await?;
            eprintln!(
                "console user {name} saved: {}, orgs {}",
                role.get_name(),
                orgs.join(",")
            );
        }
        ConsoleUsersCommand::Remove { name } => {
            if !console_users::remove(&client, &name).await? {
                bail!("no console user {name}");
            }
            eprintln!("console user {name} removed");
        }
        ConsoleUsersCommand::List => {
            println!("NAME\tROLE\tORGS\tLOCKED OUT");
            for user in console_users::all(&client).await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    user.name,
                    user.role,
                    user.orgs.join(","),
                    if user.locked { "yes" } else { "no" }
                );
            }
        }
    }
    Ok(())
}
