//! `contact-import worker`: connects, declares the topology, consumes with bounded
//! concurrency, and on shutdown stops consuming, lets in-flight batches finish and exits.

use crate::broker::publish::Publisher;
use crate::broker::{self, consume, topology};
use crate::config::WorkerConfig;
use crate::health::Readiness;
use crate::pipeline::{Pipeline, REQUEUE};
use crate::shutdown::Shutdown;
use crate::store::{self, Store};
use crate::{http, metrics};
use anyhow::{Context, anyhow};
use futures_lite::{FutureExt, StreamExt};
use lapin::options::BasicCancelOptions;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// Runs the worker until `shutdown` fires (returns `Ok`) or the broker ends the consumer
/// (returns `Err`, so a supervisor restarts the process).
pub async fn run(cfg: WorkerConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let metrics_handle = metrics::install()?;
    tokio::spawn(metrics::run_upkeep(metrics_handle.clone()));
    let pool = store::pool::build(&cfg.database.database_url, cfg.db_pool_size())?;
    let readiness = Arc::new(Readiness::new(pool.clone()));

    let listener = tokio::net::TcpListener::bind(cfg.http_addr)
        .await
        .with_context(|| format!("binding the HTTP address {}", cfg.http_addr))?;
    let (stop_http, http_stopped) = oneshot::channel::<()>();
    let http = tokio::spawn(http::serve(
        listener,
        metrics_handle,
        readiness.clone(),
        async {
            let _ = http_stopped.await;
        },
    ));

    let amqp_url = &cfg.broker.amqp_url;
    let consume_connection = broker::connect(amqp_url, "contact-import consume")
        .await
        .context("connecting to RabbitMQ")?;
    let publish_connection = broker::connect(amqp_url, "contact-import publish")
        .await
        .context("connecting to RabbitMQ")?;
    let channel = consume_connection.create_channel().await?;
    topology::declare(&channel, &cfg.broker)
        .await
        .context("declaring the broker topology")?;
    let publisher = Publisher::open(&publish_connection, cfg.broker.clone()).await?;
    let tag = format!(
        "contact-import-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let mut consumer =
        consume::subscribe(&channel, &cfg.broker.import_queue, &tag, cfg.prefetch()).await?;
    let watched = vec![channel.clone(), publisher.channel().clone()];
    readiness.set_channels(watched.clone());
    info!(
        queue = %cfg.broker.import_queue,
        concurrency = cfg.concurrency,
        prefetch = cfg.prefetch(),
        "consuming"
    );

    let pipeline = Arc::new(Pipeline::new(
        Store::new(pool),
        publisher,
        cfg.limits(),
        cfg.retry_policy(),
    ));
    let permits = Arc::new(Semaphore::new(usize::from(cfg.concurrency)));
    let mut in_flight = JoinSet::new();
    let outcome = loop {
        // Take a delivery only when a slot is free, so the prefetch buffer, not our memory,
        // holds the rest.
        let permit = tokio::select! {
            biased;
            _ = shutdown.wait() => break Ok(()),
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let next = tokio::select! {
            biased;
            _ = shutdown.wait() => break Ok(()),
            lost = channel_lost(&watched) => break Err(anyhow!("{lost}")),
            next = consumer.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                let pipeline = pipeline.clone();
                in_flight.spawn(async move {
                    // A panic must not leave the delivery unacked until the channel closes:
                    // requeue it, and the delivery limit dead-letters it if it keeps panicking.
                    let acker = delivery.acker.clone();
                    if AssertUnwindSafe(pipeline.handle(delivery))
                        .catch_unwind()
                        .await
                        .is_err()
                    {
                        error!("processing the batch panicked; requeueing it");
                        let _ = acker.nack(REQUEUE).await;
                    }
                    drop(permit);
                });
            }
            Some(Err(e)) => break Err(anyhow!(e).context("the consumer failed")),
            None => {
                break Err(anyhow!(
                    "the broker cancelled the consumer of {}",
                    cfg.broker.import_queue
                ));
            }
        }
        while in_flight.try_join_next().is_some() {}
    };

    readiness.clear_channels();
    // No new deliveries; prefetched ones not started return to the queue when the channel closes.
    if let Err(e) = channel
        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
        .await
    {
        warn!(error = %e, "cancelling the consumer failed");
    }
    drain(&mut in_flight, cfg.shutdown_grace()).await;
    let _ = channel.close(200, "worker stopping".into()).await;
    let _ = consume_connection
        .close(200, "worker stopping".into())
        .await;
    let _ = publish_connection
        .close(200, "worker stopping".into())
        .await;
    let _ = stop_http.send(());
    let _ = http.await;
    info!("worker stopped");
    outcome
}

/// Resolves when one of the channels is no longer open. The consumer stream ends when the
/// consume channel dies, but nothing else notices a dead publish channel: every batch would
/// then commit, fail to publish and be requeued.
async fn channel_lost(channels: &[lapin::Channel]) -> String {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        if let Some(channel) = channels.iter().find(|c| !c.status().connected()) {
            return format!("broker channel {} closed", channel.id());
        }
    }
}

/// Waits for in-flight batches up to `grace`; the ones still running after it are abandoned
/// uncommitted and their deliveries return to the queue.
async fn drain(in_flight: &mut JoinSet<()>, grace: Duration) {
    if in_flight.is_empty() {
        return;
    }
    info!(
        batches = in_flight.len(),
        grace_secs = grace.as_secs(),
        "waiting for in-flight batches"
    );
    let finished = tokio::time::timeout(grace, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        warn!(
            batches = in_flight.len(),
            "grace period over; abandoning the remaining batches uncommitted"
        );
        in_flight.abort_all();
        while in_flight.join_next().await.is_some() {}
    }
}
