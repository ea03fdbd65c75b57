//! How every part of the program reaches PostgreSQL: the worker's pool and the commands'
//! single connections are made here, from one `DATABASE_URL`, so they connect alike.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// Why the database could not be reached at start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `DATABASE_URL` does not parse.
    #[error("invalid DATABASE_URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// The first connection failed.
    #[error("connecting to PostgreSQL: {}", super::describe(.0))]
    Connect(#[source] tokio_postgres::Error),
    /// The pool could not be built from the URL's settings.
    #[error("building the connection pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
}

/// Builds the worker's connection pool; connections are opened on first use. They are
/// verified with a round trip before reuse (`RecyclingMethod::Verified`), so a connection
/// that died in a database restart is dropped instead of failing the next batch.
pub fn pool(database_url: &str, max_size: usize) -> Result<Pool, ConnectError> {
    let config: tokio_postgres::Config = database_url.parse().map_err(ConnectError::Url)?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()?)
}

/// One connection, for a command: it lives until the returned client is dropped.
pub async fn client(database_url: &str) -> Result<Client, ConnectError> {
    let config: tokio_postgres::Config = database_url.parse().map_err(ConnectError::Url)?;
    let (client, connection) = config.connect(NoTls).await.map_err(ConnectError::Connect)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %super::describe(&e), "the database connection failed");
        }
    });
    Ok(client)
}
