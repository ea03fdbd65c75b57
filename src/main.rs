use clap::Parser;
use contact_import::cli::{Cli, Command};
use contact_import::commands::{
    self, accounts, batches, console_users, dlq, grants, migrate, publish,
};
use contact_import::telemetry::{self, LogFormat};
use contact_import::{console, reference, shutdown, worker};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let is_worker = matches!(cli.command, Command::Worker(_) | Command::Console(_));
    // JSON lines are for the worker's log collector; an operator's command speaks to a
    // person, in text, unless told otherwise.
    telemetry::init(match cli.log_format {
        LogFormat::Auto if !is_worker => LogFormat::Text,
        chosen => chosen,
    });
    if let Err(e) = cli.command.read_secret_files() {
        return fail(is_worker, &e.into());
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
        Command::Console(cfg) => console::run(*cfg).await,
        Command::ConsoleUsers(args) => console_users::run(args).await,
        Command::Man => reference::man_page()
            .and_then(|page| std::io::Write::write_all(&mut std::io::stdout(), &page))
            .map_err(Into::into),
        Command::Completions { shell } => {
            std::io::Write::write_all(&mut std::io::stdout(), &reference::completions(shell))
                .map_err(Into::into)
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(is_worker, &e),
    }
}

/// Reports why the process failed and gives its exit status: the worker logs it (status 1),
/// a command says it in a sentence on stderr (status 1 or 2, see [`commands::exit_status`]).
fn fail(is_worker: bool, error: &anyhow::Error) -> ExitCode {
    if is_worker {
        tracing::error!("{error:#}");
        return ExitCode::FAILURE;
    }
    eprintln!("contact-import: {error:#}");
    ExitCode::from(commands::exit_status(error))
}
