//! End to end: batches published to RabbitMQ with publisher confirms, one or more real
//! worker processes, and every result read back from the results exchange.
//!
//! Latency of a batch is the time from just before its publish to the arrival of its result
//! at our consumer. Throughput is contacts over the time from the first publish to the last
//! result. Worker CPU is counted from the first publish to the last result (start-up
//! excluded); peak RSS is the process's VmHWM at the end.

use crate::dataset::{Batch, Expected};
use crate::services::Services;
use crate::stats::{CpuUse, Measurement};
use crate::support::broker::{
    confirm_channel, names, publish_batch, queue_depth, routed, subscribe_results, webex_properties,
};
use crate::support::worker::{Worker, WorkerSettings};
use crate::{procfs, workers_cpu};
use anyhow::{Context, bail, ensure};
use contact_import::broker::lanes::Lanes;
use contact_import::broker::topology;
use contact_import::config::{BrokerConfig, LaneConfig};
use contact_import::result::ResultDetail;
use futures_lite::StreamExt;
use lapin::Channel;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Unconfirmed publishes allowed at once.
const CONFIRM_WINDOW: usize = 16;
/// A run fails if no result arrives for this long.
const STALL: Duration = Duration::from_secs(120);

pub struct Config<'a> {
    pub bin: &'a Path,
    pub database_url: &'a str,
    pub workers: usize,
    pub concurrency: u16,
    pub prefetch: Option<u16>,
    /// Publish at this many contacts per second instead of flat out.
    pub pace: Option<f64>,
    pub tag: &'a str,
    pub log_dir: &'a Path,
    /// Record the machine with `perf` during the measured interval, to this file.
    pub perf: Option<PathBuf>,
    /// The workers' `CONTACT_IMPORT_RESULT_DETAIL`.
    pub result_detail: ResultDetail,
}

/// The parts of a result the bench checks; the contacts are skipped unread.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultSummary {
    batch_id: String,
    status: String,
    counts: Counts,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Counts {
    received: usize,
    created: usize,
    updated: usize,
    failed: usize,
}

pub async fn run(
    services: &Services,
    cfg: &Config<'_>,
    batches: &[Batch],
    expected: Expected,
) -> anyhow::Result<Measurement> {
    // Fresh names for every run, so runs never see each other's messages.
    let broker = names(&services.amqp_url, &format!("{}.", cfg.tag), 5);
    // As the worker connects: amqps:// with RabbitMQ's TLS parameters, node lists.
    let connection = contact_import::broker::connect(&services.amqp_url, "bench publish")
        .await
        .context("connecting to AMQP_URL")?;
    let results_connection =
        contact_import::broker::connect(&services.amqp_url, "bench results").await?;
    let channel = confirm_channel(&connection).await?;
    topology::declare(&connection, &broker).await?;
    let results_channel = results_connection.create_channel().await?;
    let results = subscribe_results(&results_channel, &broker).await?;

    let mut workers = Vec::new();
    let mut settings = WorkerSettings::new(
        cfg.bin.to_owned(),
        broker.clone(),
        cfg.database_url.to_owned(),
        cfg.log_dir.to_owned(),
    );
    settings.concurrency = cfg.concurrency;
    settings.prefetch = cfg.prefetch;
    settings = settings.env("CONTACT_IMPORT_RESULT_DETAIL", cfg.result_detail.as_str());
    for w in 0..cfg.workers {
        workers.push(Worker::spawn(&format!("{}-worker{w}", cfg.tag), &settings).await?);
    }
    let pids: Vec<u32> = workers.iter().map(|w| w.pid).collect();

    let depth = Arc::new(AtomicU32::new(0));
    let sampler = tokio::spawn(sample_queue_depth(
        connection.create_channel().await?,
        broker.import_queue.clone(),
        depth.clone(),
    ));

    let recording = cfg.perf.as_deref().and_then(crate::perf::start);
    let cpu_before = cpu_now(services, &pids);
    let started = Instant::now();
    let reader = tokio::spawn(read_results(results, batches.len()));
    let published = publish_all(&channel, &broker, batches, cfg.pace).await?;
    let (arrivals, summaries) = reader.await??;
    let wall = started.elapsed();
    let cpu_after = cpu_now(services, &pids);
    sampler.abort();
    let perf = match recording {
        Some(r) => Some(crate::perf::summarize(&r.stop()?, cfg.tag, &pids)?),
        None => None,
    };

    let mut m = Measurement {
        contacts: expected.received,
        batches: batches.len(),
        wall,
        max_queue_depth: depth.load(Ordering::Relaxed),
        paced_at: cfg.pace,
        perf,
        ..Default::default()
    };
    m.cpu = diff(&cpu_before, &cpu_after);
    for (worker, pid) in workers.iter().zip(&pids) {
        m.peak_rss_kib.push(procfs::peak_rss_kib(*pid).unwrap_or(0));
        m.batches_per_worker
            .push(worker.metric_sum("contact_import_batches_total").await? as u64);
        m.db_retries += worker.metric_sum("contact_import_db_retries_total").await? as u64;
    }
    m.latencies = published
        .iter()
        .zip(&arrivals)
        .map(|(sent, got)| got.saturating_duration_since(*sent))
        .collect();
    for worker in workers {
        worker.stop().await?;
    }
    check(&summaries, batches, expected)?;
    crate::support::broker::delete_topology(&connection, &broker).await;
    let _ = connection.close(200, "bench done".into()).await;
    let _ = results_connection.close(200, "bench done".into()).await;
    Ok(m)
}

/// Publishes every batch (confirmed, `mandatory`), flat out or paced; returns the instant
/// each publish started, by batch index.
pub async fn publish_all(
    channel: &Channel,
    broker: &BrokerConfig,
    batches: &[Batch],
    pace: Option<f64>,
) -> anyhow::Result<Vec<Instant>> {
    let start = tokio::time::Instant::now();
    let mut sent = Vec::with_capacity(batches.len());
    let mut confirms = JoinSet::new();
    let mut contacts_so_far = 0.0;
    for batch in batches {
        if let Some(rate) = pace {
            tokio::time::sleep_until(start + Duration::from_secs_f64(contacts_so_far / rate)).await;
        }
        contacts_so_far += batch.contacts as f64;
        while confirms.len() >= CONFIRM_WINDOW {
            confirms.join_next().await.expect("not empty")??;
        }
        sent.push(Instant::now());
        let properties = webex_properties(&batch.id).with_delivery_mode(2);
        let confirm = publish_batch(channel, broker, &batch.body, properties).await?;
        confirms.spawn(async move {
            let confirmation = confirm.await?;
            ensure!(
                routed(confirmation),
                "a batch was not accepted by the broker"
            );
            anyhow::Ok(())
        });
    }
    while let Some(done) = confirms.join_next().await {
        done??;
    }
    Ok(sent)
}

/// Reads results until every batch has one; returns arrival instants by batch index.
async fn read_results(
    mut results: lapin::Consumer,
    batches: usize,
) -> anyhow::Result<(Vec<Instant>, Vec<Option<(String, Counts)>>)> {
    let mut arrivals = vec![None; batches];
    let mut summaries: Vec<Option<(String, Counts)>> = vec![None; batches];
    let mut remaining = batches;
    while remaining > 0 {
        let delivery = tokio::time::timeout(STALL, results.next())
            .await
            .with_context(|| {
                format!(
                    "no result for {} s; {remaining} batches unanswered",
                    STALL.as_secs()
                )
            })?
            .context("the results consumer ended")??;
        let at = Instant::now();
        let summary: ResultSummary =
            serde_json::from_slice(&delivery.data).context("a result is not JSON")?;
        let index = summary
            .batch_id
            .rsplit('-')
            .next()
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i < batches)
            .with_context(|| format!("a result for an unknown batch {}", summary.batch_id))?;
        if arrivals[index].is_some() {
            bail!("batch {} got two results", summary.batch_id);
        }
        arrivals[index] = Some(at);
        summaries[index] = Some((summary.status, summary.counts));
        remaining -= 1;
    }
    Ok((
        arrivals.into_iter().map(Option::unwrap).collect(),
        summaries,
    ))
}

/// Every batch answered, none rejected, and the contact counts add up to what was generated.
fn check(
    summaries: &[Option<(String, Counts)>],
    batches: &[Batch],
    expected: Expected,
) -> anyhow::Result<()> {
    let mut total = Counts::default();
    for (summary, batch) in summaries.iter().zip(batches) {
        let (status, counts) = summary.as_ref().context("a batch has no result")?;
        ensure!(
            status == "partial" || status == "succeeded",
            "batch {} ended {status}",
            batch.id
        );
        total.received += counts.received;
        total.created += counts.created;
        total.updated += counts.updated;
        total.failed += counts.failed;
    }
    let got = Expected {
        received: total.received,
        created: total.created,
        updated: total.updated,
        failed: total.failed,
    };
    ensure!(
        got == expected,
        "results counted {got:?}, the dataset has {expected:?}"
    );
    Ok(())
}

/// Polls the import queue's depth and keeps the maximum.
async fn sample_queue_depth(channel: Channel, queue: String, max: Arc<AtomicU32>) {
    loop {
        if let Ok(depth) = queue_depth(&channel, &queue).await {
            max.fetch_max(depth, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn cpu_now(services: &Services, workers: &[u32]) -> CpuUse {
    CpuUse {
        worker: workers_cpu(workers),
        postgres: services.postgres_cpu(),
        broker: services.broker_cpu(),
        bench: procfs::own_cpu_seconds(),
        machine: procfs::machine_busy_seconds(),
    }
}

pub fn diff(before: &CpuUse, after: &CpuUse) -> CpuUse {
    fn d(a: Option<f64>, b: Option<f64>) -> Option<f64> {
        Some(b? - a?)
    }
    CpuUse {
        worker: d(before.worker, after.worker),
        postgres: d(before.postgres, after.postgres),
        broker: d(before.broker, after.broker),
        bench: after.bench - before.bench,
        machine: after.machine - before.machine,
    }
}

/// The lanes the workers declare for `broker` (their defaults).
pub fn lanes_of(broker: &BrokerConfig) -> Lanes {
    Lanes::new(broker, &LaneConfig::default())
}
