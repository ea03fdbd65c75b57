//! Tracing set-up: level from `RUST_LOG` (default `info`), text or JSON lines on stderr
//! (JSON unless stderr is a terminal, with `--log-format auto`).

use clap::ValueEnum;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (a container, systemd, a log collector), text for a
    /// person at a terminal.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber; call once, first thing.
pub fn init(format: LogFormat) {
    let to_terminal = std::io::stderr().is_terminal();
    let format = match format {
        LogFormat::Auto if to_terminal => LogFormat::Text,
        LogFormat::Auto => LogFormat::Json,
        chosen => chosen,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files and log collectors.
        .with_ansi(to_terminal);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text | LogFormat::Auto => builder.init(),
    }
}
