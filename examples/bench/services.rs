//! The RabbitMQ and PostgreSQL the benchmark runs against (the tests' ones: `AMQP_URL` and
//! `DATABASE_URL`), fresh databases for each mode, and the servers' CPU time.

use crate::support::database::{self, create_database, migrate};
use crate::support::env::required;
use anyhow::Context;
use std::path::Path;
use tokio_postgres::Client;

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

fn is_local(host: &str) -> bool {
    matches!(host, "localhost" | "::1") || host.starts_with("127.")
}

impl Services {
    pub async fn connect() -> anyhow::Result<Self> {
        let amqp_url = required("AMQP_URL")?;
        let base_url = required("DATABASE_URL")?;
        let admin = database::connect(&base_url)
            .await
            .context("connecting to DATABASE_URL")?;
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
        database::url_of(&self.base_url, name)
    }

    /// Creates an empty database and migrates it with the real `contact-import migrate`.
    pub async fn create_migrated(&self, name: &str, worker_bin: &Path) -> anyhow::Result<String> {
        create_database(&self.admin, name).await?;
        let url = self.url_of(name);
        migrate(worker_bin, &url).await?;
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

    /// Flushes dirty pages, so a run does not pay for what was written before it.
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        self.admin.execute("CHECKPOINT", &[]).await?;
        Ok(())
    }

    pub async fn drop_database(&self, name: &str) {
        if let Err(e) = database::drop_database(&self.admin, name).await {
            eprintln!("bench: {e:#}");
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
