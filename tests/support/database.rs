//! PostgreSQL: connections, databases created beside the one of a server URL, migrated by
//! the real `contact-import migrate`, and [`FreshDatabase`], dropped when the test ends.

use anyhow::{Context, bail};
use std::path::Path;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// A connection whose driver runs in the background on the current runtime.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The URL of database `name` on the server of `url` (same credentials and parameters).
pub fn url_of(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    format!("{server}/{name}{query}")
}

pub async fn create_database(admin: &Client, name: &str) -> anyhow::Result<()> {
    admin
        .execute(&format!("CREATE DATABASE {name}"), &[])
        .await
        .with_context(|| format!("creating database {name}"))?;
    Ok(())
}

/// Drops `name`, ending the sessions still connected to it.
pub async fn drop_database(admin: &Client, name: &str) -> anyhow::Result<()> {
    admin
        .execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), &[])
        .await
        .with_context(|| format!("dropping database {name}"))?;
    Ok(())
}

/// Migrates the database of `url` with `<bin> migrate`, as an operator would.
pub async fn migrate(bin: &Path, url: &str) -> anyhow::Result<()> {
    let migrate = tokio::process::Command::new(bin)
        .arg("migrate")
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .with_context(|| format!("running {} migrate", bin.display()))?;
    if !migrate.status.success() {
        bail!(
            "contact-import migrate failed: {}",
            String::from_utf8_lossy(&migrate.stderr)
        );
    }
    Ok(())
}

/// A new database on the server of `server_url`, migrated, that is dropped (with whatever
/// is still connected to it) when this value is: at the end of the test, passing or not.
pub struct FreshDatabase {
    pub name: String,
    pub url: String,
    server_url: String,
}

impl FreshDatabase {
    /// Creates `name` beside the database of `server_url` and migrates it with `bin`.
    pub async fn create(bin: &Path, server_url: &str, name: &str) -> anyhow::Result<Self> {
        // Once it exists it is dropped, even if the migration fails.
        let database = Self::create_unmigrated(server_url, name).await?;
        migrate(bin, &database.url).await?;
        Ok(database)
    }

    /// Creates `name` beside the database of `server_url`, empty: as a worker finds a
    /// database nobody has run `migrate` on.
    pub async fn create_unmigrated(server_url: &str, name: &str) -> anyhow::Result<Self> {
        let admin = connect(server_url)
            .await
            .context("connecting to the database server")?;
        create_database(&admin, name).await?;
        Ok(Self {
            name: name.to_owned(),
            url: url_of(server_url, name),
            server_url: server_url.to_owned(),
        })
    }
}

impl Drop for FreshDatabase {
    /// `Drop` cannot await, and the test's runtime may be a single thread that is busy
    /// dropping us: the database is dropped from a thread of its own, on its own runtime,
    /// over a fresh connection.
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(30), async {
                    let admin = connect(&server_url).await?;
                    drop_database(&admin, &name).await
                })
                .await
                .context("timed out")?
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("dropping test database {}: {e:#}", self.name),
            Err(_) => eprintln!("dropping test database {} panicked", self.name),
        }
    }
}
