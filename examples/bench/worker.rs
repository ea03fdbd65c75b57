//! The real `contact-import worker` process, configured through its environment as an
//! operator would, on its own queues, database and HTTP port.

use anyhow::{Context, bail};
use contact_import::config::BrokerConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// How to start a worker.
pub struct Spec<'a> {
    pub bin: &'a Path,
    pub broker: &'a BrokerConfig,
    pub database_url: &'a str,
    pub concurrency: u16,
    pub prefetch: Option<u16>,
    pub log: PathBuf,
}

pub struct Worker {
    child: Child,
    pub pid: u32,
    http: SocketAddr,
    pub log: PathBuf,
}

impl Worker {
    /// Starts a worker and waits until `/readyz` answers 200. The HTTP port is free when
    /// picked but may be taken before the worker binds it: then it exits and we try again.
    pub async fn start(spec: &Spec<'_>) -> anyhow::Result<Self> {
        for _ in 0..3 {
            let mut worker = Self::spawn(spec)?;
            if worker.wait_ready().await? {
                return Ok(worker);
            }
        }
        bail!(
            "the worker did not start three times; see {}",
            spec.log.display()
        )
    }

    fn spawn(spec: &Spec<'_>) -> anyhow::Result<Self> {
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let b = spec.broker;
        let mut command = Command::new(spec.bin);
        command
            .arg("worker")
            .env("AMQP_URL", &b.amqp_url)
            .env("DATABASE_URL", spec.database_url)
            .env("CONTACT_IMPORT_EXCHANGE", &b.import_exchange)
            .env("CONTACT_IMPORT_QUEUE", &b.import_queue)
            .env("CONTACT_IMPORT_ROUTING_KEY", &b.import_routing_key)
            .env(
                "CONTACT_IMPORT_DEAD_LETTER_EXCHANGE",
                &b.dead_letter_exchange,
            )
            .env("CONTACT_IMPORT_DEAD_LETTER_QUEUE", &b.dead_letter_queue)
            .env("CONTACT_IMPORT_RESULTS_EXCHANGE", &b.results_exchange)
            .env(
                "CONTACT_IMPORT_DELIVERY_LIMIT",
                b.delivery_limit.to_string(),
            )
            .env("CONTACT_IMPORT_CONCURRENCY", spec.concurrency.to_string())
            .env("CONTACT_IMPORT_HTTP_ADDR", http.to_string())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&spec.log).context("creating the worker log")?)
            .kill_on_drop(true);
        if let Some(prefetch) = spec.prefetch {
            command.env("CONTACT_IMPORT_PREFETCH", prefetch.to_string());
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", spec.bin.display()))?;
        let pid = child.id().context("the worker has no pid")?;
        Ok(Self {
            child,
            pid,
            http,
            log: spec.log.clone(),
        })
    }

    /// `false` if the process exited before it was ready.
    async fn wait_ready(&mut self) -> anyhow::Result<bool> {
        let url = format!("http://{}/readyz", self.http);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = reqwest::get(&url).await
                && response.status().is_success()
            {
                return Ok(true);
            }
            if let Some(status) = self.child.try_wait()? {
                eprintln!("bench: worker exited with {status} before it was ready");
                return Ok(false);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("worker not ready within 60 s; see {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The sum of every series of a metric in `/metrics` (all label values).
    pub async fn metric_sum(&self, name: &str) -> anyhow::Result<f64> {
        let text = reqwest::get(format!("http://{}/metrics", self.http))
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// SIGTERM, then wait for the graceful exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let kill = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await?;
        if !kill.success() {
            bail!("kill -TERM {} failed", self.pid);
        }
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("the worker did not exit within 60 s of SIGTERM")??;
        if !status.success() {
            bail!(
                "the worker exited with {status}; see {}",
                self.log.display()
            );
        }
        Ok(())
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
