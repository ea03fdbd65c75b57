use clap::Parser;
use contact_import::cli::{Cli, Command};
use contact_import::{
    accounts, batches_cmd, dlq_cmd, producer, shutdown, store, telemetry, worker,
};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let outcome = match cli.command {
        Command::Worker(cfg) => {
            let (trigger, shutdown) = shutdown::channel();
            tokio::spawn(shutdown::fire_on_signal(trigger));
            worker::run(*cfg, shutdown).await
        }
        Command::Migrate(db) => store::migrate::run(&db.database_url).await.map(|applied| {
            tracing::info!(applied, "migrations up to date");
        }),
        Command::Publish(args) => producer::run(*args).await,
        Command::Dlq(args) => dlq_cmd::run(*args).await,
        Command::Batches(args) => batches_cmd::run(args).await,
        Command::Accounts(args) => accounts::run(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
