//! Tracing set-up: level from `RUST_LOG` (default `info`), text or JSON lines on stderr
//! (JSON unless stderr is a terminal, with `--log-format auto`).
//!
//! Contact data is never logged, by any target: the dependencies that would print message
//! bodies or query parameters are capped whatever `RUST_LOG` says (`BODY_PRINTING_TARGETS`).
//!
//! A JSON line holds each key once (`JsonLines`), so that a log pipeline that keeps one of
//! two equal keys loses nothing.

use clap::ValueEnum;
use serde_json::{Map, Value};
use std::fmt;
use std::io::IsTerminal;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

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
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in files and log collectors.
        .with_ansi(to_terminal);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        // The current span (batch_id, org_id, …) once per line, not again in a span list.
        LogFormat::Json => registry
            .with(layer.json().event_format(JsonLines).with_filter(NoNotFound))
            .init(),
        LogFormat::Text | LogFormat::Auto => registry.with(layer.with_filter(NoNotFound)).init(),
    }
}

/// Drops lapin's ERROR "Channel closed" for a NOT_FOUND (404) close. The topology asks the
/// broker whether the intake exchange and queues exist with passive declares, which the
/// broker answers by closing the channel with 404 when they do not: expected at every start,
/// not an error. Where a 404 is one (a publish to a missing exchange), the worker reports it
/// itself.
struct NoNotFound;

impl<S> tracing_subscriber::layer::Filter<S> for NoNotFound {
    fn enabled(
        &self,
        _: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        true
    }

    fn event_enabled(
        &self,
        event: &Event<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        #[derive(Default)]
        struct NotFound(bool);
        impl Visit for NotFound {
            fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
                if field.name() == "method" && format!("{value:?}").contains("reply_code: 404") {
                    self.0 = true;
                }
            }
        }
        if event.metadata().target() != "lapin::channel" {
            return true;
        }
        let mut not_found = NotFound::default();
        event.record(&mut not_found);
        !not_found.0
    }
}

/// One JSON object per event: `timestamp`, `level`, `message`, the event's fields, `target`
/// and the current span's fields under `span` (with its `name`), the keys
/// tracing-subscriber's flattened JSON writes, with two differences:
/// - a key is never written twice. A field whose name is taken (lapin's
///   `warn!(?message, "Server returned us a message")` has two `message`s; a field named
///   `level` or `target`) is written as `field.<name>`;
/// - an event forwarded from the `log` crate (refinery's migration lines) carries its origin
///   as `log.target`, `log.module_path`, `log.file` and `log.line` fields, paths into the
///   cargo registry: `log.target` becomes the line's `target`, the rest is dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), metadata.level().as_str().into());
        let mut fields = EventFields::default();
        event.record(&mut fields);
        if let Some(message) = fields.message {
            line.insert("message".into(), message);
        }
        for (name, value) in fields.rest {
            insert_once(&mut line, name, value);
        }
        let target = fields
            .log_target
            .unwrap_or_else(|| metadata.target().into());
        insert_once(&mut line, "target".into(), target.into());
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            let mut span_fields = span
                .extensions()
                .get::<FormattedFields<N>>()
                .and_then(|formatted| serde_json::from_str::<Map<String, Value>>(formatted).ok())
                .unwrap_or_default();
            span_fields.insert("name".into(), span.name().into());
            insert_once(&mut line, "span".into(), Value::Object(span_fields));
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Inserts `name`, or `field.name` (then `field.name.2`, …) when `name` is taken.
fn insert_once(line: &mut Map<String, Value>, name: String, value: Value) {
    if !line.contains_key(&name) {
        line.insert(name, value);
        return;
    }
    let renamed = format!("field.{name}");
    let free = std::iter::once(renamed.clone())
        .chain((2..).map(|n| format!("{renamed}.{n}")))
        .find(|candidate| !line.contains_key(candidate))
        .expect("an unbounded sequence of names has a free one");
    line.insert(free, value);
}

/// An event's fields in order: the first `message` is the event's text; `log.*` fields
/// (set by tracing-log for the `log` crate's records) are kept apart.
#[derive(Default)]
struct EventFields {
    message: Option<Value>,
    log_target: Option<String>,
    rest: Vec<(String, Value)>,
}

impl EventFields {
    fn record(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "message" && self.message.is_none() {
            self.message = Some(value);
        } else if name == "log.target" {
            self.log_target = value.as_str().map(str::to_owned);
        } else if !name.starts_with("log.") {
            self.rest.push((name.to_owned(), value));
        }
    }
}

impl Visit for EventFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record(field, value.to_string().into());
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

    /// The lines [`JsonLines`] writes for events emitted inside `emit`.
    fn json_lines(emit: impl FnOnce()) -> Vec<String> {
        use std::sync::{Arc, Mutex};
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .event_format(JsonLines)
            .with_writer(move || BufferWriter(writer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    struct BufferWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for BufferWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_field_named_like_a_key_of_the_line_is_written_under_its_own_name() {
        let lines = json_lines(|| {
            let span = tracing::info_span!("batch", batch_id = "b-1");
            let _entered = span.enter();
            // As lapin logs a returned message: a field named `message` beside the text.
            let message = "the returned body";
            tracing::warn!(?message, level = 3, "Server returned us a message");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(
            lines[0].matches("\"message\":").count(),
            1,
            "one message key: {}",
            lines[0]
        );
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["message"], "Server returned us a message");
        assert_eq!(line["field.message"], "\"the returned body\"");
        assert_eq!(
            (&line["level"], &line["field.level"]),
            (&"WARN".into(), &3.into())
        );
        assert_eq!(line["span"]["batch_id"], "b-1");
        assert_eq!(line["span"]["name"], "batch");
        assert_eq!(line["target"], module_path!());
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
