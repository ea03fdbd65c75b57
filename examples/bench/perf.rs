//! `perf record` of the whole machine during one measured run (with `--perf`), summarised as
//! the share of CPU samples per process and the hottest functions of the worker and of
//! PostgreSQL. Release builds keep their symbol names, so a flat profile needs no rebuild.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Recording {
    child: Child,
    path: PathBuf,
}

/// Starts sampling every CPU at 499 Hz; `None` (with a note) when perf is not usable.
pub fn start(path: &Path) -> Option<Recording> {
    let child = Command::new("perf")
        .args(["record", "-F", "499", "-a", "-q", "-o"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(child) => {
            // perf needs a moment before it samples.
            std::thread::sleep(std::time::Duration::from_millis(300));
            Some(Recording {
                child,
                path: path.to_owned(),
            })
        }
        Err(e) => {
            eprintln!("bench: perf not available ({e}); install linux-perf for --perf");
            None
        }
    }
}

impl Recording {
    /// Stops with SIGINT (perf then writes its file) and waits.
    pub fn stop(mut self) -> anyhow::Result<PathBuf> {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(self.path)
    }
}

/// What the recording says, as text blocks for the report.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub label: String,
    pub by_process: String,
    pub worker: String,
    pub postgres: String,
}

pub fn summarize(path: &Path, label: &str, worker_pids: &[u32]) -> anyhow::Result<Summary> {
    let report = |extra: &[&str], limit: usize| -> anyhow::Result<String> {
        let out = Command::new("perf")
            .args(["report", "--stdio", "--no-children", "-q", "-i"])
            .arg(path)
            .args(extra)
            .output()
            .context("perf report")?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(limit)
            .map(|l| l.trim_end().trim_end_matches(['-', ' ']).to_owned())
            .collect::<Vec<_>>()
            .join("\n"))
    };
    let pids = worker_pids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    Ok(Summary {
        label: label.to_owned(),
        by_process: report(&["--sort", "comm", "--percent-limit", "1"], 12)?,
        worker: if pids.is_empty() {
            String::new()
        } else {
            report(&["--pid", &pids, "--sort", "dso,symbol"], 25)?
        },
        postgres: report(&["--comm", "postgres", "--sort", "dso,symbol"], 20)?,
    })
}
