//! The two references, run on the same batches as the end-to-end mode but straight against
//! PostgreSQL, with as many concurrent transactions as the worker's concurrency and its
//! pool size (concurrency + 1):
//!
//! - the ceiling: the project's own storage code (`Store::apply_batch`: claim, one set-based
//!   upsert, stored result, commit), without broker or JSON;
//! - the naive baseline: the same transaction, claim and stored result, but one
//!   `INSERT … ON CONFLICT` round trip per contact ([`crate::naive`]).
//!
//! Batches are decoded and validated before the clock starts, in waves (so a million
//! contacts never sit in memory as validated structs), and only the waves are timed.

use crate::dataset::{Batch, Expected};
use crate::e2e::diff;
use crate::procfs;
use crate::services::Services;
use crate::stats::{CpuUse, Measurement};
use anyhow::{Context, ensure};
use contact_import::contact::ValidatedBatch;
use contact_import::dialect::Answer;
use contact_import::result::ResultDetail;
use contact_import::store::{self, Applied, Mode, Store};
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Ceiling,
    Naive,
}

/// Batches validated ahead of the clock per wave, per unit of concurrency.
const WAVE_PER_TASK: usize = 32;

pub async fn run(
    services: &Services,
    database_url: &str,
    batches: &[Batch],
    expected: Expected,
    strategy: Strategy,
    concurrency: usize,
    perf: Option<&std::path::Path>,
) -> anyhow::Result<Measurement> {
    let recording = perf.and_then(crate::perf::start);
    let (pool, tls) = store::connect::pool(database_url, concurrency + 1)?;
    let store = Store::new(pool.clone(), tls, Default::default());
    let mut m = Measurement {
        contacts: expected.received,
        batches: batches.len(),
        ..Default::default()
    };
    let mut got = Expected::default();
    for wave in batches.chunks(WAVE_PER_TASK * concurrency) {
        let prepared: Arc<Vec<(ValidatedBatch, String)>> = Arc::new(
            wave.iter()
                .map(|b| (b.validated(), b.sha256.clone()))
                .collect(),
        );
        let next = Arc::new(AtomicUsize::new(0));
        let before = CpuUse {
            postgres: services.postgres_cpu(),
            bench: procfs::own_cpu_seconds(),
            machine: procfs::machine_busy_seconds(),
            ..Default::default()
        };
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (prepared, next, store, pool) =
                (prepared.clone(), next.clone(), store.clone(), pool.clone());
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                let mut counts = Expected::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((batch, sha)) = prepared.get(i) else {
                        return anyhow::Ok((latencies, counts));
                    };
                    let t = Instant::now();
                    let c = match strategy {
                        Strategy::Ceiling => ceiling(&store, batch, sha).await?,
                        Strategy::Naive => crate::naive::apply(&pool, batch, sha).await?,
                    };
                    latencies.push(t.elapsed());
                    counts.received += c.received;
                    counts.created += c.created;
                    counts.updated += c.updated;
                    counts.failed += c.failed;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (latencies, c) = done??;
            m.latencies.extend(latencies);
            got.received += c.received;
            got.created += c.created;
            got.updated += c.updated;
            got.failed += c.failed;
        }
        m.wall += started.elapsed();
        let after = CpuUse {
            postgres: services.postgres_cpu(),
            bench: procfs::own_cpu_seconds(),
            machine: procfs::machine_busy_seconds(),
            ..Default::default()
        };
        m.cpu.add(&diff(&before, &after));
    }
    if let Some(r) = recording {
        let label = format!("{strategy:?} (waves of validation in the bench process included)");
        m.perf = Some(crate::perf::summarize(
            &r.stop()?,
            &label,
            &[std::process::id()],
        )?);
    }
    ensure!(
        got == expected,
        "{strategy:?} counted {got:?}, the dataset has {expected:?}"
    );
    pool.close();
    Ok(m)
}

async fn ceiling(store: &Store, batch: &ValidatedBatch, sha: &str) -> anyhow::Result<Expected> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    match store
        .apply_batch(
            batch,
            sha,
            &Answer::Common,
            store::Apply {
                mode: Mode::Apply,
                detail: ResultDetail::Full,
                send_id: None,
                sender: store::batches::Sender::default(),
            },
            deadline,
        )
        .await?
    {
        Applied::Fresh { result, .. } => Ok(Expected {
            received: result.counts.received,
            created: result.counts.created,
            updated: result.counts.updated,
            failed: result.counts.failed,
        }),
        other => anyhow::bail!("batch {} was not fresh: {other:?}", batch.batch_id()),
    }
}

/// After a mode: the rows it left are the seeded contacts plus the created ones, and every
/// batch has its idempotency record.
pub async fn verify_rows(
    database_url: &str,
    seeded: usize,
    expected: Expected,
    batches: usize,
) -> anyhow::Result<()> {
    // As the worker connects: libpq's TLS keys in DATABASE_URL are honoured.
    let client = store::connect::client(database_url)
        .await
        .context("connecting to the run's database")?;
    let contacts: i64 = client
        .query_one("SELECT count(*) FROM contacts", &[])
        .await?
        .get(0);
    let recorded: i64 = client
        .query_one(
            "SELECT count(*) FROM import_batches WHERE batch_id NOT LIKE 'seed-%'",
            &[],
        )
        .await?
        .get(0);
    ensure!(
        contacts as usize == seeded + expected.created,
        "{contacts} contacts in the database, expected {} seeded + {} created",
        seeded,
        expected.created
    );
    ensure!(
        recorded as usize == batches,
        "{recorded} batches recorded, expected {batches}"
    );
    Ok(())
}

/// Applies the seed batches (through the storage code, so their ids are the ones the
/// updates name) and leaves the statistics fresh.
pub async fn seed(database_url: &str, seeds: &[Batch]) -> anyhow::Result<()> {
    let (pool, tls): (Pool, _) = store::connect::pool(database_url, 2)?;
    let store = Store::new(pool.clone(), tls, Default::default());
    for batch in seeds {
        ceiling(&store, &batch.validated(), &batch.sha256).await?;
    }
    let client = pool.get().await?;
    client.batch_execute("VACUUM ANALYZE").await?;
    drop(client);
    pool.close();
    Ok(())
}
