//! Schema migrations from `migrations/`, embedded in the binary.

refinery::embed_migrations!("migrations");

/// Arbitrary, fixed key of the advisory lock that serialises concurrent `migrate` runs
/// (several replicas starting at once).
const MIGRATION_LOCK: i64 = 0x636f_6e74_6163_7473;

/// Applies the migrations that are not applied yet; returns how many it applied.
pub async fn run(database_url: &str) -> anyhow::Result<usize> {
    let mut client = super::connect::client(database_url).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let report = migrations::runner().run_async(&mut client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    Ok(report?.applied_migrations().len())
}
