//! The RabbitMQ and PostgreSQL the benchmark runs against (the tests' ones: `AMQP_URL` and
//! `DATABASE_URL`), fresh databases for each mode, and the servers' CPU time.

use anyhow::{Context, bail};
use std::path::Path;
use tokio_postgres::{Client, NoTls};

pub struct Services {
    pub amqp_url: String,
    base_url: String,
    admin: Client,
    /// The PostgreSQL server process (postmaster), when it runs on this machine.
    postmaster: Option<u32>,
    /// The RabbitMQ server process (beam.smp), when it runs on this machine.
    broker: Option<u32>,
    pub postgres_version: String,
    pub rabbitmq_version: String,
}

fn required_env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: run scripts/bench, or `scripts/services up && source .local/services.env`")
    })
}

fn is_local(host: &str) -> bool {
    matches!(host, "localhost" | "::1") || host.starts_with("127.")
}

impl Services {
    pub async fn connect() -> anyhow::Result<Self> {
        let amqp_url = required_env("AMQP_URL")?;
        let base_url = required_env("DATABASE_URL")?;
        let (admin, connection) = tokio_postgres::connect(&base_url, NoTls)
            .await
            .context("connecting to DATABASE_URL")?;
        tokio::spawn(connection);
        let postgres_version: String = admin.query_one("SHOW server_version", &[]).await?.get(0);

        let pg: tokio_postgres::Config = base_url.parse()?;
        let pg_local = pg.get_hosts().iter().all(|h| match h {
            tokio_postgres::config::Host::Tcp(host) => is_local(host),
            _ => true,
        });
        let postmaster = pg_local
            .then(|| pg.get_ports().first().copied().unwrap_or(5432))
            .and_then(crate::procfs::listener_pid);

        let amqp: lapin::uri::AMQPUri = amqp_url.parse().map_err(anyhow::Error::msg)?;
        let broker = is_local(&amqp.authority.host)
            .then_some(amqp.authority.port)
            .and_then(crate::procfs::listener_pid);
        Ok(Self {
            amqp_url,
            base_url,
            admin,
            postmaster,
            broker,
            postgres_version,
            rabbitmq_version: rabbitmq_version(),
        })
    }

    /// The URL of database `name` on the same server.
    pub fn url_of(&self, name: &str) -> String {
        let (base, query) = match self.base_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (self.base_url.as_str(), String::new()),
        };
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        format!("{server}/{name}{query}")
    }

    /// Creates an empty database and migrates it with the real `contact-import migrate`.
    pub async fn create_migrated(&self, name: &str, worker_bin: &Path) -> anyhow::Result<String> {
        self.admin
            .execute(&format!("CREATE DATABASE {name}"), &[])
            .await
            .with_context(|| format!("creating database {name}"))?;
        let url = self.url_of(name);
        let migrate = tokio::process::Command::new(worker_bin)
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .output()
            .await
            .context("running contact-import migrate")?;
        if !migrate.status.success() {
            bail!(
                "contact-import migrate failed: {}",
                String::from_utf8_lossy(&migrate.stderr)
            );
        }
        Ok(url)
    }

    /// A copy of `template` (already migrated and seeded), then a checkpoint so that the
    /// measured run does not pay for the copy's dirty pages.
    pub async fn copy_database(&self, template: &str, name: &str) -> anyhow::Result<String> {
        self.admin
            .execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"), &[])
            .await
            .with_context(|| format!("creating database {name} from {template}"))?;
        self.admin.execute("CHECKPOINT", &[]).await?;
        Ok(self.url_of(name))
    }

    pub async fn drop_database(&self, name: &str) {
        if let Err(e) = self
            .admin
            .execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), &[])
            .await
        {
            eprintln!("bench: dropping database {name} failed: {e}");
        }
    }

    /// CPU seconds of the PostgreSQL server (all its processes) so far.
    pub fn postgres_cpu(&self) -> Option<f64> {
        self.postmaster.and_then(crate::procfs::tree_cpu_seconds)
    }

    /// CPU seconds of the RabbitMQ node so far.
    pub fn broker_cpu(&self) -> Option<f64> {
        self.broker.and_then(crate::procfs::cpu_seconds)
    }
}

/// The version of the locally installed RabbitMQ (the AMQP client does not expose the
/// server's properties).
fn rabbitmq_version() -> String {
    std::fs::read_dir("/usr/lib/rabbitmq/lib")
        .ok()
        .and_then(|dir| {
            dir.flatten().find_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix("rabbitmq_server-")
                    .map(str::to_owned)
            })
        })
        .unwrap_or_else(|| "unknown".into())
}
