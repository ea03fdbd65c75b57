//! The references in `docs/reference/`, written from the code itself: the command line and
//! the environment from clap's definitions, the metrics from their table in
//! [`crate::metrics`], the error codes from their enums. `tests/reference.rs` fails when a
//! checked-in reference differs from what this writes (`scripts/reference` rewrites them);
//! `contact-import man` and `contact-import completions` come from the same definitions.

use crate::cli::Cli;
use crate::contact::ErrorCode;
use crate::metrics::METRICS;
use crate::rejection::RejectCode;
use clap::{Arg, Command, CommandFactory};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The reference files: name under `docs/reference/`, and contents.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("cli.md", cli()),
        ("configuration.md", configuration()),
        ("metrics.md", metrics()),
        ("error-codes.md", error_codes()),
    ]
}

const GENERATED: &str = "<!-- Generated from the code by scripts/reference; CI fails when it is stale. Do not edit. -->\n\n";

/// `contact-import`'s man page (roff), from clap.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    Ok(out)
}

/// A completion script for `shell`, from clap.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "contact-import", &mut out);
    if shell != clap_complete::Shell::Bash {
        return out;
    }
    // clap_complete 4.6 spells a hyphenated binary's state two ways in bash
    // (`contact__import__subcmd__x` in the loop, `contact__subcmd__import__subcmd__x` in the
    // arms), so no subcommand's flags complete (clap-rs/clap#6421, open). One spelling, until
    // the fix is released; tests/reference.rs completes a subcommand's flag.
    String::from_utf8(out)
        .expect("clap writes UTF-8")
        .replace("contact__subcmd__import", "contact__import")
        .into_bytes()
}

/// One line of help, for a table cell.
fn cell(text: impl std::fmt::Display) -> String {
    text.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn flag(arg: &Arg) -> String {
    if arg.is_positional() {
        let name = arg
            .get_value_names()
            .and_then(|v| v.first().map(|n| n.to_string()))
            .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
        return format!("`{name}`");
    }
    let long = arg.get_long().map(|l| format!("--{l}"));
    let short = arg.get_short().map(|s| format!("-{s}"));
    let names: Vec<String> = short.into_iter().chain(long).collect();
    format!("`{}`", names.join(", "))
}

fn default(arg: &Arg) -> String {
    let values: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if values.is_empty() {
        String::new()
    } else {
        format!("`{}`", values.join(","))
    }
}

fn env(arg: &Arg) -> Option<String> {
    arg.get_env().map(|e| e.to_string_lossy().into_owned())
}

/// A command's own arguments: not help or version, nor the global ones (listed once, at
/// the top), which clap copies into every subcommand.
fn visible_args(command: &Command) -> impl Iterator<Item = &Arg> {
    command.get_arguments().filter(|a| {
        !a.is_hide_set() && !a.is_global_set() && a.get_id() != "help" && a.get_id() != "version"
    })
}

fn global_args(command: &Command) -> impl Iterator<Item = &Arg> {
    command.get_arguments().filter(|a| a.is_global_set())
}

/// Every subcommand with its path, depth first.
fn commands(command: &Command, path: String, out: &mut Vec<(String, Command)>) {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let path = format!("{path} {}", sub.get_name());
        out.push((path.clone(), sub.clone()));
        commands(sub, path, out);
    }
}

fn all_commands() -> Vec<(String, Command)> {
    let mut top = Cli::command();
    top.build();
    let mut out = Vec::new();
    commands(&top, "contact-import".into(), &mut out);
    out
}

/// Every subcommand and its flags.
pub fn cli() -> String {
    let mut out = format!(
        "# Command line\n\n{GENERATED}Every subcommand of `contact-import` and its arguments, as `contact-import \
         help` prints them. A flag with an environment variable reads it when the flag is \
         absent ([configuration.md](configuration.md) lists them all). `contact-import man` \
         prints this as a man page; `contact-import completions bash|zsh|fish` prints a \
         completion script.\n"
    );
    let top = Cli::command();
    let _ = writeln!(
        out,
        "\n## contact-import\n\n{}; these options go with every subcommand.\n",
        cell(top.get_about().map(|a| a.to_string()).unwrap_or_default())
    );
    table(&mut out, global_args(&top));
    for (path, command) in all_commands() {
        let _ = writeln!(out, "\n## {path}\n");
        if let Some(about) = command.get_long_about().or(command.get_about()) {
            let _ = writeln!(out, "{}\n", about.to_string().trim());
        }
        if visible_args(&command).next().is_some() {
            table(&mut out, visible_args(&command));
        }
    }
    out
}

fn table<'a>(out: &mut String, args: impl Iterator<Item = &'a Arg>) {
    out.push_str("| argument | environment | default | meaning |\n| --- | --- | --- | --- |\n");
    for arg in args {
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect();
        let mut help = cell(arg.get_help().map(|h| h.to_string()).unwrap_or_default());
        // clap drops the help's last period; a bool's values say nothing its help does not.
        let boolean = possible.iter().all(|v| v == "`true`" || v == "`false`");
        if !possible.is_empty() && !boolean {
            let _ = write!(help, ". One of {}", possible.join(", "));
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            flag(arg),
            env(arg).map(|e| format!("`{e}`")).unwrap_or_default(),
            default(arg),
            help
        );
    }
}

/// Every environment variable, with its flag, default, meaning and the commands that read it.
pub fn configuration() -> String {
    struct Setting {
        flag: String,
        default: String,
        help: String,
        commands: Vec<String>,
    }
    let mut settings: BTreeMap<String, Setting> = BTreeMap::new();
    let mut top = Cli::command();
    top.build();
    let mut visit = |path: &str, args: Vec<&Arg>| {
        for arg in args {
            let Some(name) = env(arg) else { continue };
            let entry = settings.entry(name).or_insert_with(|| Setting {
                flag: flag(arg),
                default: default(arg),
                help: cell(arg.get_help().map(|h| h.to_string()).unwrap_or_default()),
                commands: Vec::new(),
            });
            let short = path.trim_start_matches("contact-import").trim().to_owned();
            let short = if short.is_empty() {
                "all".to_owned()
            } else {
                short
            };
            if !entry.commands.contains(&short) {
                entry.commands.push(short);
            }
        }
    };
    visit("contact-import", global_args(&top).collect());
    for (path, command) in all_commands() {
        visit(&path, visible_args(&command).collect());
    }
    let mut out = format!(
        "# Configuration\n\n{GENERATED}Every environment variable `contact-import` reads, from its flags' \
         definitions. A flag on the command line wins over its variable. `*_FILE` variables \
         name a file that holds the secret (a mounted Kubernetes secret, say) and exclude the \
         variable they replace. `RUST_LOG` sets the log filter (`info` by default).\n\n\
         | variable | flag | default | commands | meaning |\n| --- | --- | --- | --- | --- |\n"
    );
    for (name, s) in settings {
        let _ = writeln!(
            out,
            "| `{name}` | {} | {} | {} | {} |",
            s.flag,
            s.default,
            s.commands.join(", "),
            s.help
        );
    }
    out
}

/// Every metric the worker exports: name, type, labels and help, from [`METRICS`].
pub fn metrics() -> String {
    let mut out = format!(
        "# Metrics\n\n{GENERATED}What a worker's `/metrics` serves (Prometheus text), from the table \
         that registers them (`src/metrics.rs`). Counters end in `_total`; histograms are in \
         seconds. tests/deploy.rs checks that every metric the alerts and the dashboard use is \
         one of these.\n\n| metric | type | labels | help |\n| --- | --- | --- | --- |\n"
    );
    for m in METRICS {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            m.name,
            m.kind.as_str(),
            m.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", "),
            cell(m.help)
        );
    }
    out
}

/// Every per-contact error code and batch rejection code, with its status code and whether
/// sending the same thing again could succeed.
pub fn error_codes() -> String {
    let mut out = format!(
        "# Error codes\n\n{GENERATED}The codes are a contract: upstream systems match on them, and \
         they never change once released.\n\n## Per contact (`failedContacts[].errorCode`)\n\n\
         An invalid contact is reported here; the valid contacts around it are stored. \
         `retryable` (also in each failure) says whether sending the same contact again, \
         unchanged, could succeed.\n\n\
         | errorCode | statusCode | retryable | meaning |\n| --- | ---: | --- | --- |\n"
    );
    for code in ErrorCode::ALL {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            code.as_str(),
            code.status_code(),
            if code.retryable() { "yes" } else { "no" },
            cell(code.meaning())
        );
    }
    out.push_str(
        "\n## Batch rejections (`error.code` of a `rejected` result, and the dead letter's \
         `x-contact-import-reason`)\n\nNothing of a rejected batch was written. It is \
         dead-lettered with its reason (a dry run's refusal is only answered). `replay` says \
         whether replaying the dead letter unchanged can succeed once the cause is fixed.\n\n\
         | code | statusCode | replay | answered to | meaning |\n| --- | ---: | --- | --- | --- |\n",
    );
    for code in RejectCode::ALL {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            code.as_str(),
            code.status_code(),
            if code.replayable() { "yes" } else { "no" },
            match code {
                // Its reply_to is not direct reply-to: answering there is what it is refused for.
                RejectCode::ReplyToForbidden => "nobody (dead-lettered only)",
                c if c.requester_only() => "the requester only",
                _ => "the requester and the org's subscribers",
            },
            cell(code.meaning())
        );
    }
    out
}
