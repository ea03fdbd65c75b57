//! `contact-import worker`: connects, declares the topology, consumes with bounded
//! concurrency, reconnects when the broker goes away, and on shutdown stops consuming, lets
//! in-flight batches finish and exits.
//!
//! Reconnection is this loop rather than lapin's `enable_auto_recover`: that recovery is young
//! (its maintainer does not yet call it production-ready), and a whole new session per loss
//! keeps the rules simple: delivery tags of a lost channel are never acked, the topology is
//! declared again, and a consumer cancelled by the broker means subscribe again.

use crate::broker::publish::Publisher;
use crate::broker::{self, consume, topology};
use crate::config::WorkerConfig;
use crate::health::{BrokerSession, Readiness};
use crate::pipeline::{Pipeline, REQUEUE};
use crate::shutdown::Shutdown;
use crate::store::availability::Availability;
use crate::store::{self, Store};
use crate::{http, metrics};
use anyhow::Context;
use backon::BackoffBuilder;
use deadpool_postgres::Pool;
use futures_lite::{FutureExt, StreamExt};
use lapin::options::BasicCancelOptions;
use lapin::{Channel, Connection, ConnectionStatus, Event};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// Longest wait between reconnection attempts: it bounds how long the worker stays idle
/// after the broker is back; jitter keeps many workers from reconnecting in step.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// How a broker session ended.
enum SessionEnd {
    /// Shutdown was requested.
    Shutdown,
    /// The connection, a channel or the consumer was lost; connect again.
    Lost { reason: String, was_consuming: bool },
    /// The broker refused the topology (e.g. a queue exists with other arguments): retrying
    /// cannot help, an operator must act.
    Fatal(anyhow::Error),
}

/// Runs the worker until `shutdown` fires (returns `Ok`) or the topology is refused (`Err`).
pub async fn run(cfg: WorkerConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let metrics_handle = metrics::install()?;
    tokio::spawn(metrics::run_upkeep(metrics_handle.clone()));
    let pool = store::pool::build(&cfg.database.database_url, cfg.db_pool_size())?;
    let availability = Arc::new(Availability::new(pool.clone()));
    let readiness = Arc::new(Readiness::new(availability.clone()));

    let listener = tokio::net::TcpListener::bind(cfg.http_addr)
        .await
        .with_context(|| format!("binding the HTTP address {}", cfg.http_addr))?;
    let ready_gauge = tokio::spawn({
        let readiness = readiness.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                metrics::ready(readiness.known_state().is_ok());
            }
        }
    });
    let (stop_http, http_stopped) = oneshot::channel::<()>();
    let http = tokio::spawn(http::serve(
        listener,
        metrics_handle,
        readiness.clone(),
        async {
            let _ = http_stopped.await;
        },
    ));

    let reconnect_policy = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(MAX_RECONNECT_DELAY)
        .without_max_times()
        .with_jitter();
    let mut delays = reconnect_policy.build();
    let outcome = loop {
        match session(&cfg, &pool, &availability, &readiness, &shutdown).await {
            SessionEnd::Shutdown => break Ok(()),
            SessionEnd::Fatal(e) => break Err(e),
            SessionEnd::Lost {
                reason,
                was_consuming,
            } => {
                metrics::broker_reconnect();
                if was_consuming {
                    delays = reconnect_policy.build();
                }
                let wait = delays.next().unwrap_or(MAX_RECONNECT_DELAY);
                warn!(%reason, retry_in_ms = wait.as_millis() as u64, "broker session lost; reconnecting");
                tokio::select! {
                    _ = shutdown.wait() => break Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    };

    ready_gauge.abort();
    metrics::ready(false);
    let _ = stop_http.send(());
    let _ = http.await;
    info!("worker stopped");
    outcome
}

/// One broker session: connect, declare, consume until shutdown or a loss, then drain the
/// batches in flight and close. Readiness is true only while it consumes.
async fn session(
    cfg: &WorkerConfig,
    pool: &Pool,
    availability: &Arc<Availability>,
    readiness: &Readiness,
    shutdown: &Shutdown,
) -> SessionEnd {
    let lost = |reason: String| SessionEnd::Lost {
        reason,
        was_consuming: false,
    };
    let amqp_url = &cfg.broker.amqp_url;
    let consume_connection = match broker::connect(amqp_url, "contact-import consume").await {
        Ok(connection) => connection,
        Err(e) => return lost(format!("connecting to RabbitMQ: {e}")),
    };
    let publish_connection = match broker::connect(amqp_url, "contact-import publish").await {
        Ok(connection) => connection,
        Err(e) => return lost(format!("connecting to RabbitMQ: {e}")),
    };
    let connections = [consume_connection, publish_connection];
    let channel = match connections[0].create_channel().await {
        Ok(channel) => channel,
        Err(e) => return lost(format!("opening a channel: {e}")),
    };
    if let Err(e) = topology::declare(&channel, &cfg.broker).await {
        // A refusal closes only the channel; a lost connection is worth another try.
        let refused = connections[0].status().connected();
        close(&connections).await;
        if !refused {
            return lost(format!("declaring the topology: {e}"));
        }
        return SessionEnd::Fatal(anyhow::Error::new(e).context("declaring the broker topology"));
    }
    let publisher = match Publisher::open(&connections[1], cfg.broker.clone()).await {
        Ok(publisher) => publisher,
        Err(e) => return lost(format!("opening the publish channel: {e}")),
    };
    // Deliveries taken while the database is away would only fail and spend their attempts.
    tokio::select! {
        biased;
        _ = shutdown.wait() => {
            close(&connections).await;
            return SessionEnd::Shutdown;
        }
        _ = availability.wait_up() => {}
    }
    let tag = format!(
        "contact-import-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let mut consumer =
        match consume::subscribe(&channel, &cfg.broker.import_queue, &tag, cfg.prefetch()).await {
            Ok(consumer) => consumer,
            Err(e) => return lost(format!("subscribing to {}: {e}", cfg.broker.import_queue)),
        };
    let blocking_watch = watch_blocking(&connections[1]);
    let watched = vec![channel.clone(), publisher.channel().clone()];
    readiness.set_session(BrokerSession {
        channels: watched.clone(),
        publishing: connections[1].status().clone(),
    });
    info!(
        queue = %cfg.broker.import_queue,
        concurrency = cfg.concurrency,
        prefetch = cfg.prefetch(),
        "consuming"
    );

    let pipeline = Arc::new(Pipeline::new(
        Store::new(pool.clone()),
        availability.clone(),
        publisher,
        cfg.batch_policy(),
    ));
    let permits = Arc::new(Semaphore::new(usize::from(cfg.concurrency)));
    let mut in_flight = JoinSet::new();
    let end = loop {
        // Take a delivery only when a slot is free, so the prefetch buffer, not our memory,
        // holds the rest.
        let permit = tokio::select! {
            biased;
            _ = shutdown.wait() => break SessionEnd::Shutdown,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        // Take nothing while the database is away or the broker would not take our results;
        // and stop waiting for a delivery as soon as either happens.
        let publishing = connections[1].status();
        tokio::select! {
            biased;
            _ = shutdown.wait() => break SessionEnd::Shutdown,
            reason = channel_lost(&watched) => break SessionEnd::Lost { reason, was_consuming: true },
            _ = can_take(availability, publishing) => {}
        }
        let next = tokio::select! {
            biased;
            _ = shutdown.wait() => break SessionEnd::Shutdown,
            reason = channel_lost(&watched) => break SessionEnd::Lost { reason, was_consuming: true },
            _ = must_pause(availability, publishing) => continue,
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
            Some(Err(e)) => {
                break SessionEnd::Lost {
                    reason: format!("the consumer failed: {e}"),
                    was_consuming: true,
                };
            }
            None => {
                break SessionEnd::Lost {
                    reason: format!(
                        "the broker cancelled the consumer of {}",
                        cfg.broker.import_queue
                    ),
                    was_consuming: true,
                };
            }
        }
        while in_flight.try_join_next().is_some() {}
    };

    readiness.clear_session();
    blocking_watch.abort();
    metrics::broker_blocked(false);
    // No new deliveries; prefetched ones not started return to the queue when the channel closes.
    if channel.status().connected()
        && let Err(e) = channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await
    {
        warn!(error = %e, "cancelling the consumer failed");
    }
    // Batches of a lost session still finish (or fail to publish and are redelivered): none is
    // half-applied, because each commits or rolls back as a whole.
    drain(&mut in_flight, cfg.shutdown_grace()).await;
    close(&connections).await;
    end
}

/// Closes the session's connections. Bounded: a blocked connection never sends the close.
async fn close(connections: &[Connection]) {
    for connection in connections {
        if connection.status().connected() {
            let closing = connection.close(200, "worker stopping".into());
            if tokio::time::timeout(Duration::from_secs(5), closing)
                .await
                .is_err()
            {
                warn!("the broker did not confirm closing the connection within 5s");
            }
        }
    }
}

/// Resolves when one of the channels is no longer open. The consumer stream ends when the
/// consume channel dies, but nothing else notices a dead publish channel: every batch would
/// then commit, fail to publish and be requeued.
async fn channel_lost(channels: &[Channel]) -> String {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        if let Some(channel) = channels.iter().find(|c| !c.status().connected()) {
            return format!("broker channel {} closed", channel.id());
        }
    }
}

/// Returns once a new batch may be taken: the database is available and the broker does not
/// block our publishing (during a memory or disk alarm results would pile up unconfirmed).
async fn can_take(availability: &Availability, publishing: &ConnectionStatus) {
    availability.wait_up().await;
    while publishing.blocked() {
        tokio::time::sleep(PAUSE_POLL).await;
    }
}

/// Resolves as soon as new batches must not be taken.
async fn must_pause(availability: &Availability, publishing: &ConnectionStatus) {
    while availability.is_up() && !publishing.blocked() {
        tokio::time::sleep(PAUSE_POLL).await;
    }
}

const PAUSE_POLL: Duration = Duration::from_millis(250);

/// Reports the broker blocking and unblocking `connection` (gauge and log) for as long as the
/// connection lives, whatever the consume loop is doing at the time.
fn watch_blocking(connection: &Connection) -> tokio::task::JoinHandle<()> {
    let mut events = connection.events_listener();
    metrics::broker_blocked(connection.status().blocked());
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Event::ConnectionBlocked(reason) => {
                    metrics::broker_blocked(true);
                    warn!(%reason, "the broker blocks publishing; taking no new batches");
                }
                Event::ConnectionUnblocked => {
                    metrics::broker_blocked(false);
                    info!("the broker unblocked publishing; taking batches again");
                }
                _ => {}
            }
        }
    })
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
