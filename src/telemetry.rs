//! Tracing set-up: level from `RUST_LOG` (default `info`), text or JSON lines on stderr
//! (JSON unless stderr is a terminal, with `--log-format auto`).
//!
//! Contact data is never logged, by any target: the dependencies that would print message
//! bodies or query parameters are capped whatever `RUST_LOG` says ([`BODY_PRINTING_TARGETS`]).

use clap::ValueEnum;
use std::io::IsTerminal;
use tracing::level_filters::LevelFilter;
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
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files and log collectors.
        .with_ansi(to_terminal);
    match format {
        // The current span (batch_id, org_id, …) once per line, not again in a span list.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text | LogFormat::Auto => builder.init(),
    }
}

/// Targets of dependencies that print whole messages or statement parameters (contact
/// data) at some level, each with the most it may log here:
/// - lapin writes every returned (unroutable) message at WARN with its body, and frames with
///   their payloads at TRACE; the worker counts and logs returned results itself;
/// - amq-protocol's frame codec, at TRACE;
/// - tokio-postgres writes each statement's parameters at DEBUG.
pub const BODY_PRINTING_TARGETS: &[(&str, &str)] = &[
    ("lapin::returned_messages", "off"),
    ("lapin", "info"),
    ("amq_protocol", "info"),
    ("amq_protocol_tcp", "info"),
    ("tokio_postgres", "info"),
    ("postgres_protocol", "info"),
];

/// The filter for `rust_log` (`RUST_LOG`; `info` when unset or unreadable), with
/// [`BODY_PRINTING_TARGETS`] capped: a directive for one of those targets, or below it, in
/// `rust_log` is dropped, and each logs at the lower of its cap and the default level, so
/// even `RUST_LOG=trace` or `lapin=trace` cannot print a body.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let capped = |directive: &str| {
        // A span filter (`[batch]=debug`, `target[span]=…`) outranks the caps below inside
        // that span, which is where the batch's statements run: such directives are dropped.
        if directive.contains('[') {
            return true;
        }
        let target = directive.split('=').next().unwrap_or_default().trim();
        BODY_PRINTING_TARGETS.iter().any(|(capped, _)| {
            let root = capped.split("::").next().unwrap_or(capped);
            target == root || target.starts_with(&format!("{root}::"))
        })
    };
    let kept: Vec<&str> = rust_log
        .unwrap_or("info")
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !capped(d))
        .collect();
    let (mut filter, default) = match EnvFilter::try_new(kept.join(",")) {
        Ok(filter) => {
            let default = kept
                .iter()
                .rev()
                .find_map(|d| d.parse::<LevelFilter>().ok())
                .unwrap_or(LevelFilter::ERROR);
            (filter, default)
        }
        Err(_) => (EnvFilter::new("info"), LevelFilter::INFO),
    };
    for (target, cap) in BODY_PRINTING_TARGETS {
        let cap: LevelFilter = cap.parse().expect("the caps are levels");
        filter = filter.add_directive(
            format!("{target}={}", cap.min(default))
                .parse()
                .expect("the capped targets are valid directives"),
        );
    }
    filter
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    /// What `RUST_LOG=rust_log` lets through: lapin's returned message (WARN), lapin's
    /// frames (TRACE), tokio-postgres' parameters (DEBUG), our DEBUG, lapin's INFO.
    fn passes(rust_log: &str) -> [bool; 5] {
        let subscriber = tracing_subscriber::registry().with(filter(Some(rust_log)));
        tracing::subscriber::with_default(subscriber, || {
            [
                tracing::enabled!(target: "lapin::returned_messages", Level::WARN),
                tracing::enabled!(target: "lapin::frames", Level::TRACE),
                tracing::enabled!(target: "tokio_postgres::query", Level::DEBUG),
                tracing::enabled!(target: "contact_import::worker", Level::DEBUG),
                tracing::enabled!(target: "lapin::channel", Level::INFO),
            ]
        })
    }

    #[test]
    fn no_rust_log_lets_a_dependency_print_a_body() {
        for rust_log in [
            "info",
            "trace",
            "debug,lapin=trace",
            "lapin::returned_messages=warn,tokio_postgres=trace",
            "[batch]=trace",
            "info,[batch{batch_id=x}]=debug,tokio_postgres[batch]=trace",
        ] {
            let [returned, frames, parameters, _, _] = passes(rust_log);
            assert!(!returned && !frames && !parameters, "RUST_LOG={rust_log}");
        }
    }

    #[test]
    fn the_rest_of_rust_log_still_applies() {
        assert_eq!(passes("debug")[3..], [true, true]);
        assert_eq!(passes("info")[3..], [false, true]);
        assert_eq!(passes("warn")[3..], [false, false]);
        assert_eq!(passes("contact_import=debug")[3..], [true, false]);
    }
}
