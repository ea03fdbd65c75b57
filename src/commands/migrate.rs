//! `contact-import migrate`: applies the migrations that are not applied yet, safely from
//! several replicas at once.

use crate::config::DatabaseConfig;
use crate::store;

/// Runs the command, logging how many migrations it applied.
pub async fn run(db: DatabaseConfig) -> anyhow::Result<()> {
    let applied = store::migrate::run(&db.database_url).await?;
    tracing::info!(applied, "migrations up to date");
    Ok(())
}
