//! The command line: `worker`, `migrate`, `publish`, `dlq`, `batches`, `accounts`, `grants`,
//! `console`, `console-users`, `man`, `completions`.

use crate::commands::accounts::AccountsArgs;
use crate::commands::batches::BatchesArgs;
use crate::commands::console_users::ConsoleUsersArgs;
use crate::commands::dlq::DlqArgs;
use crate::commands::grants::GrantsArgs;
use crate::commands::publish::PublishArgs;
use crate::config::{DatabaseConfig, WorkerConfig};
use crate::console::ConsoleConfig;
use crate::telemetry::LogFormat;
use clap::{Parser, Subcommand};

/// `contact-import`'s arguments.
#[derive(Debug, Parser)]
#[command(
    name = "contact-import",
    version,
    about = "Imports bulk contact batches from RabbitMQ into PostgreSQL"
)]
pub struct Cli {
    /// Log line format: `auto` writes JSON lines when stderr is not a terminal (a container,
    /// systemd, a log collector) and text for a person at a terminal.
    #[arg(
        long,
        global = true,
        env = "CONTACT_IMPORT_LOG_FORMAT",
        default_value = "auto"
    )]
    pub log_format: LogFormat,
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume batches until SIGTERM/SIGINT.
    Worker(Box<WorkerConfig>),
    /// Apply the database migrations that are not applied yet.
    Migrate(DatabaseConfig),
    /// Publish files of contacts (any dialect, detected per file or set by --type), confirmed;
    /// with --wait, collect every result.
    Publish(Box<PublishArgs>),
    /// Inspect, replay and purge the dead-letter queue.
    Dlq(Box<DlqArgs>),
    /// Show stored results of processed batches.
    Batches(BatchesArgs),
    /// Manage the accounts whose credentials Save User Contacts batches carry.
    Accounts(AccountsArgs),
    /// Manage which broker users may import into which orgs (CONTACT_IMPORT_AUTHORIZATION=grants).
    Grants(GrantsArgs),
    /// Serve the operators' web console (import history, failed contacts, dead letters).
    Console(Box<ConsoleConfig>),
    /// Manage who may sign in to the console, with which role and orgs.
    ConsoleUsers(ConsoleUsersArgs),
    /// Print the man page (roff): `contact-import man | man -l -`.
    Man,
    /// Print a shell completion script, e.g. `contact-import completions bash >
    /// /etc/bash_completion.d/contact-import`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Reads the `*_FILE` secrets of the command's settings (before anything connects).
    pub fn read_secret_files(&mut self) -> Result<(), crate::config::SecretFileError> {
        match self {
            Command::Worker(cfg) => {
                cfg.broker.read_secret_file()?;
                cfg.database.read_secret_file()
            }
            Command::Migrate(db) => db.read_secret_file(),
            Command::Publish(args) => args.broker.read_secret_file(),
            Command::Dlq(args) => args.broker.read_secret_file(),
            Command::Batches(args) => args.database.read_secret_file(),
            Command::Accounts(args) => args.database.read_secret_file(),
            Command::Grants(args) => args.database.read_secret_file(),
            Command::Console(cfg) => {
                cfg.broker.read_secret_file()?;
                cfg.database.read_secret_file()
            }
            Command::ConsoleUsers(args) => args.database.read_secret_file(),
            Command::Man | Command::Completions { .. } => Ok(()),
        }
    }
}
