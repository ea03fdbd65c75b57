//! The worker under test: the real `contact-import worker` binary as a child process,
//! configured only through its environment (README, "Configuration"), with its log in a file
//! whose tail is printed when a test fails.

use crate::cluster::{free_port_run, signal, tail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

pub const BIN: &str = env!("CARGO_BIN_EXE_contact-import");

/// Settings of one worker process; the defaults are the production ones except the
/// heartbeat (2 s, so that a silent network is noticed in seconds).
#[derive(Clone)]
pub struct WorkerSettings {
    pub amqp_url: String,
    pub database_url: String,
    pub concurrency: u16,
    pub shutdown_grace_secs: u64,
    pub heartbeat_secs: u16,
}

impl WorkerSettings {
    pub fn new(amqp_url: String, database_url: String) -> Self {
        Self {
            amqp_url,
            database_url,
            concurrency: 4,
            shutdown_grace_secs: 30,
            heartbeat_secs: 2,
        }
    }
}

pub struct Worker {
    pub name: String,
    child: Child,
    pub pid: u32,
    http: SocketAddr,
    pub log: PathBuf,
}

impl Worker {
    /// Starts a worker and waits until `/readyz` answers 200. Its log goes to
    /// `<log_dir>/<name>.log`.
    pub async fn spawn(name: &str, settings: &WorkerSettings, log_dir: &Path) -> Self {
        // The HTTP port is free when picked but may be taken before the worker binds it:
        // then the worker exits, and we try another.
        for attempt in 0..3 {
            let mut worker = Self::start(name, settings, log_dir, attempt);
            if worker.wait_ready(Duration::from_secs(60)).await {
                return worker;
            }
        }
        panic!("worker {name} did not start three times");
    }

    fn start(name: &str, settings: &WorkerSettings, log_dir: &Path, attempt: u32) -> Self {
        let http: SocketAddr = ([127, 0, 0, 1], free_port_run(1)).into();
        let log = log_dir.join(if attempt == 0 {
            format!("{name}.log")
        } else {
            format!("{name}-{attempt}.log")
        });
        let separator = if settings.amqp_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let child = Command::new(BIN)
            .arg("worker")
            .env(
                "AMQP_URL",
                format!(
                    "{}{separator}heartbeat={}",
                    settings.amqp_url, settings.heartbeat_secs
                ),
            )
            .env("DATABASE_URL", &settings.database_url)
            .env("CONTACT_IMPORT_HTTP_ADDR", http.to_string())
            .env(
                "CONTACT_IMPORT_CONCURRENCY",
                settings.concurrency.to_string(),
            )
            .env(
                "CONTACT_IMPORT_SHUTDOWN_GRACE_SECS",
                settings.shutdown_grace_secs.to_string(),
            )
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("start the worker");
        Self {
            name: name.to_owned(),
            pid: child.id().unwrap(),
            child,
            http,
            log,
        }
    }

    /// `false` if the process exited before it was ready.
    pub async fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.readyz().await == Some(200) {
                return true;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                eprintln!(
                    "worker {} exited with {status} before it was ready; log:\n{}",
                    self.name,
                    tail(&self.log, 30)
                );
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "worker {} not ready within {within:?}; log:\n{}",
                self.name,
                tail(&self.log, 30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Status of `/readyz`, `None` if it does not answer.
    pub async fn readyz(&self) -> Option<u16> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let response = client
            .get(format!("http://{}/readyz", self.http))
            .send()
            .await
            .ok()?;
        Some(response.status().as_u16())
    }

    /// The value of one series from `/metrics`, e.g.
    /// `contact_import_broker_reconnects_total`; `None` if absent or unreachable.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let text = client
            .get(format!("http://{}/metrics", self.http))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines().find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Asserts the process is still running: faults must be survived in-process.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "worker {} exited ({status}) instead of riding out the fault; log:\n{}",
                self.name,
                tail(&self.log, 40)
            );
        }
    }

    /// Memory of the process from `/proc/<pid>/status`: (VmRSS, VmHWM) in KiB.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// SIGKILL, as the OOM killer or a lost host would: nothing is drained.
    pub async fn kill(mut self) {
        signal(&self.child, "KILL").await;
        let _ = self.child.wait().await;
    }

    /// Sends SIGTERM and returns without waiting.
    pub async fn terminate(&self) {
        signal(&self.child, "TERM").await;
    }

    /// Waits for the process to exit, at most `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "worker {} did not exit within {within:?}; log:\n{}",
                    self.name,
                    tail(&self.log, 30)
                )
            })
            .unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- last lines of worker {} ({}) ----\n{}\n----",
                self.name,
                self.log.display(),
                tail(&self.log, 40)
            );
        }
    }
}
