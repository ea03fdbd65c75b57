//! Child processes: signals, and the tail of their logs.

use anyhow::{Context, ensure};
use std::path::Path;
use tokio::process::{Child, Command};

/// Sends a signal (`TERM`, `KILL`, `INT`, …) to a child process.
pub async fn try_signal(child: &Child, name: &str) -> anyhow::Result<()> {
    let pid = child.id().context("the process has exited")?.to_string();
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .await
        .context("running kill")?;
    ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

/// As [`try_signal`], for tests: panics if the signal could not be sent.
pub async fn signal(child: &Child, name: &str) {
    try_signal(child, name)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
