use clap::Parser;
use contact_import::cli::{Cli, Command};
use contact_import::commands::{accounts, batches, dlq, grants, migrate, publish};
use contact_import::{shutdown, telemetry, worker};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = Cli::parse();
    telemetry::init(cli.log_format);
    if let Err(e) = cli.command.read_secret_files() {
        tracing::error!("{e}");
        return ExitCode::FAILURE;
    }
    let outcome = match cli.command {
        Command::Worker(cfg) => {
            let (trigger, shutdown) = shutdown::channel();
            tokio::spawn(shutdown::fire_on_signal(trigger));
            worker::run(*cfg, shutdown).await
        }
        Command::Migrate(db) => migrate::run(db).await,
        Command::Publish(args) => publish::run(*args).await,
        Command::Dlq(args) => dlq::run(*args).await,
        Command::Batches(args) => batches::run(args).await,
        Command::Accounts(args) => accounts::run(args).await,
        Command::Grants(args) => grants::run(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
