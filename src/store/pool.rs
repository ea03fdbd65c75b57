use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::NoTls;

/// Builds the connection pool. Connections are verified with a round trip before reuse
/// (`RecyclingMethod::Verified`), so a connection that died in a database restart is
/// dropped instead of failing the next batch.
pub fn build(database_url: &str, max_size: usize) -> anyhow::Result<Pool> {
    let config: tokio_postgres::Config = database_url.parse()?;
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
