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

/// The latest migration this binary carries: the schema version its statements need.
pub fn latest() -> i64 {
    migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// Checks that the schema `client` sees has every migration this binary carries. A newer
/// schema is fine: migrations are additive, so workers one release behind keep running
/// during a rolling upgrade.
pub async fn check_schema(client: &tokio_postgres::Client) -> Result<(), super::StoreError> {
    let needed = latest();
    let found = match client
        .query_one(
            "SELECT max(version)::bigint FROM refinery_schema_history",
            &[],
        )
        .await
    {
        Ok(row) => row.get::<_, Option<i64>>(0),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => None,
        Err(e) => {
            let e = super::StoreError::from(e);
            if e.is_outage() {
                return Err(e);
            }
            // Unreadable (a role without SELECT on the history, say): the batches' own
            // statements will tell; holding every batch back for it would be worse.
            tracing::warn!(error = %e, "cannot read the schema history; not checking the schema");
            return Ok(());
        }
    };
    match found {
        Some(found) if found >= needed => Ok(()),
        found => Err(super::StoreError::SchemaBehind { found, needed }),
    }
}
