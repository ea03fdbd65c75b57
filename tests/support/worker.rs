//! The worker under test: the real `contact-import worker` binary as a child process,
//! configured only through its environment (docs/reference/configuration.md), serving HTTP on a free
//! port, with its log (stderr) in a file that tests read back and whose tail is printed when
//! a test fails.

use super::env::broker_env;
use super::ports::free_port;
use super::process::{signal, tail, try_signal};
use anyhow::{Context, bail};
use contact_import::config::BrokerConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a worker may take to answer `/readyz` with 200.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long a worker may take to exit after SIGTERM in [`Worker::terminate`] and [`Worker::stop`].
const EXIT_WITHIN: Duration = Duration::from_secs(60);

/// How to start a worker. Every setting is passed as the environment variable an operator
/// would set; those left at `None` keep the worker's defaults.
#[derive(Clone)]
pub struct WorkerSettings {
    pub bin: PathBuf,
    /// The broker and every name of its topology.
    pub broker: BrokerConfig,
    pub database_url: String,
    /// `CONTACT_IMPORT_CONCURRENCY` (the worker's default is 4).
    pub concurrency: u16,
    pub prefetch: Option<u16>,
    /// `CONTACT_IMPORT_SHUTDOWN_GRACE_SECS` (the worker's default is 30).
    pub shutdown_grace_secs: u64,
    /// Added to `AMQP_URL` as `heartbeat=N` (the worker's default is 15 s).
    pub heartbeat_secs: Option<u16>,
    /// Further variables, e.g. `CONTACT_IMPORT_DB_RETRY_MIN_MS`.
    pub env: Vec<(String, String)>,
    /// Arguments after `worker`, e.g. `--concurrency 8`.
    pub args: Vec<String>,
    /// Where the worker's log is written: `<log_dir>/<name>.log`.
    pub log_dir: PathBuf,
}

impl WorkerSettings {
    pub fn new(bin: PathBuf, broker: BrokerConfig, database_url: String, log_dir: PathBuf) -> Self {
        Self {
            bin,
            broker,
            database_url,
            concurrency: 4,
            prefetch: None,
            shutdown_grace_secs: 30,
            heartbeat_secs: None,
            env: Vec::new(),
            args: Vec::new(),
            log_dir,
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, name: &str, value: impl ToString) -> Self {
        self.env.push((name.to_owned(), value.to_string()));
        self
    }

    /// `AMQP_URL` with the heartbeat added to each of its URLs (a list names several nodes,
    /// split where a URL starts, as the worker reads it).
    fn amqp_url(&self) -> String {
        let Some(secs) = self.heartbeat_secs else {
            return self.broker.amqp_url.clone();
        };
        let mut urls: Vec<String> = Vec::new();
        for piece in self.broker.amqp_url.split(',') {
            match urls.last_mut() {
                Some(url) if !piece.trim_start().starts_with("amqp") => {
                    url.push(',');
                    url.push_str(piece);
                }
                _ => urls.push(piece.to_owned()),
            }
        }
        urls.iter()
            .map(|url| {
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{}{separator}heartbeat={secs}", url.trim())
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

pub struct Worker {
    pub name: String,
    child: Child,
    pub pid: u32,
    http: SocketAddr,
    /// The worker's stderr: its log lines.
    pub log: PathBuf,
}

impl Worker {
    /// Starts a worker named `name` and waits until `/readyz` answers 200. Its log goes to
    /// `<log_dir>/<name>.log`.
    pub async fn spawn(name: &str, settings: &WorkerSettings) -> anyhow::Result<Self> {
        // The HTTP port is free when picked but may be taken before the worker binds it:
        // then the worker exits, and we try another.
        for attempt in 0..3 {
            let mut worker = Self::start(name, settings, attempt)?;
            if worker.wait_ready(READY_WITHIN).await? {
                return Ok(worker);
            }
        }
        bail!("worker {name} did not start three times")
    }

    /// Starts a worker named `name` without waiting for `/readyz`: for a worker that must not
    /// become ready. Its log goes to `<log_dir>/<name>.log`.
    pub fn spawn_unready(name: &str, settings: &WorkerSettings) -> anyhow::Result<Self> {
        Self::start(name, settings, 0)
    }

    fn start(name: &str, settings: &WorkerSettings, attempt: u32) -> anyhow::Result<Self> {
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = settings.log_dir.join(if attempt == 0 {
            format!("{name}.log")
        } else {
            format!("{name}-{attempt}.log")
        });
        let mut command = Command::new(&settings.bin);
        command
            .arg("worker")
            .args(&settings.args)
            .envs(broker_env(&settings.broker))
            .env("AMQP_URL", settings.amqp_url())
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
            .envs(settings.env.iter().map(|(k, v)| (k, v)));
        // A URL given as a file is given only so (the worker refuses both at once), also
        // when the test's own environment holds the URL.
        for (file, url) in [
            ("AMQP_URL_FILE", "AMQP_URL"),
            ("DATABASE_URL_FILE", "DATABASE_URL"),
        ] {
            if settings.env.iter().any(|(k, _)| k == file) {
                command.env_remove(url);
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(&log)
                    .with_context(|| format!("creating the worker log {}", log.display()))?,
            )
            .kill_on_drop(true);
        if let Some(prefetch) = settings.prefetch {
            command.env("CONTACT_IMPORT_PREFETCH", prefetch.to_string());
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", settings.bin.display()))?;
        Ok(Self {
            name: name.to_owned(),
            pid: child.id().context("the worker has no pid")?,
            child,
            http,
            log,
        })
    }

    /// `false` if the process exited before it was ready.
    async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<bool> {
        let deadline = Instant::now() + within;
        loop {
            if self.readyz().await == Some(200) {
                return Ok(true);
            }
            if let Some(status) = self.child.try_wait()? {
                eprintln!(
                    "worker {} exited with {status} before it was ready; log:\n{}",
                    self.name,
                    tail(&self.log, 30)
                );
                return Ok(false);
            }
            if Instant::now() >= deadline {
                bail!(
                    "worker {} not ready within {within:?}; log ({}):\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where the worker serves `/metrics`, `/healthz` and `/readyz`.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// `GET path` on the worker's HTTP port: `None` if it does not answer within 5 s.
    pub async fn try_get(&self, path: &str) -> Option<(u16, String)> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let response = client
            .get(format!("http://{}{path}", self.http))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// `GET path`: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        self.try_get(path)
            .await
            .unwrap_or_else(|| panic!("worker {} did not answer GET {path}", self.name))
    }

    /// Status of `/readyz`, `None` if it does not answer.
    pub async fn readyz(&self) -> Option<u16> {
        self.try_get("/readyz").await.map(|(status, _)| status)
    }

    /// The value of one series from `/metrics`, e.g.
    /// `contact_import_batches_total{status="succeeded"}`; `None` if absent or unreachable.
    pub async fn try_metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.try_get("/metrics").await?;
        series_value(&text, series)
    }

    /// As [`Worker::try_metric`], for a series that must be there.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        series_value(&text, series)
            .unwrap_or_else(|| panic!("no series {series} in /metrics:\n{text}"))
    }

    /// Asserts that `series` reaches `expected`. Settlement metrics move just after the
    /// result is published (the delivery is acked in between), so a test that has the result
    /// may read them a moment early.
    pub async fn expect_metric(&self, series: &str, expected: f64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let value = self.metric(series).await;
            if value == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{series} is {value}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The sum of every series of a metric in `/metrics` (all label values).
    pub async fn metric_sum(&self, name: &str) -> anyhow::Result<f64> {
        let (_, text) = self
            .try_get("/metrics")
            .await
            .with_context(|| format!("worker {} did not answer GET /metrics", self.name))?;
        Ok(text
            .lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
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

    /// Sends SIGTERM and returns without waiting (see [`Worker::wait_exit`]).
    pub async fn sigterm(&self) {
        signal(&self.child, "TERM").await;
    }

    /// Waits for the process to exit, at most `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        self.try_wait_exit(within)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    async fn try_wait_exit(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => bail!(
                "worker {} did not exit within {within:?}; log:\n{}",
                self.name,
                tail(&self.log, 30)
            ),
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn terminate(self) -> ExitStatus {
        self.try_terminate()
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    async fn try_terminate(mut self) -> anyhow::Result<ExitStatus> {
        try_signal(&self.child, "TERM").await?;
        self.try_wait_exit(EXIT_WITHIN).await
    }

    /// SIGTERM, then the graceful exit: an error if it does not come or is not a success.
    pub async fn stop(self) -> anyhow::Result<()> {
        let name = self.name.clone();
        let log = self.log.clone();
        let status = self.try_terminate().await?;
        if !status.success() {
            bail!("worker {name} exited with {status}; see {}", log.display());
        }
        Ok(())
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

/// The value of `series` (name and labels, as printed) in a Prometheus text exposition.
fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
