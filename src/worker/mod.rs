//! `contact-import worker`: connects, declares the topology, consumes with bounded
//! concurrency, reconnects when the broker goes away, and on shutdown stops consuming, lets
//! in-flight batches finish and exits.
//!
//! Reconnection is this loop rather than lapin's `enable_auto_recover`: that recovery is young
//! (its maintainer does not yet call it production-ready), and a whole new `session` per
//! loss keeps the rules simple: delivery tags of a lost channel are never acked, the topology
//! is declared again, and a consumer cancelled by the broker means subscribe again.

mod dispatch;
mod gate;
mod health;
mod http;
mod pipeline;
mod router;
pub use router::ROUTING_PREFETCH;
mod session;
mod shares;

use crate::config::{Authorization, WorkerConfig};
use crate::contact::credentials;
use crate::dialect::Limits;
use crate::metrics;
use crate::shutdown::Shutdown;
use crate::store::availability::Availability;
use crate::store::{Store, connect};
use anyhow::Context;
use backon::BackoffBuilder;
use health::Readiness;
use pipeline::{BatchPolicy, Pipeline};
use session::{Session, SessionEnd};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{info, warn};

/// Longest wait between reconnection attempts: it bounds how long the worker stays idle
/// after the broker is back; jitter keeps many workers from reconnecting in step.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Runs the worker until `shutdown` fires (returns `Ok`) or the topology is refused (`Err`).
pub async fn run(cfg: WorkerConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    if cfg.authorization == Authorization::Open {
        warn!(
            "CONTACT_IMPORT_AUTHORIZATION=open: every producer that can publish to {} may \
             write into every org; set it to grants for a multi-tenant deployment",
            cfg.broker.import_exchange
        );
    }
    let metrics_handle = metrics::install()?;
    tokio::spawn(metrics::run_upkeep(metrics_handle.clone()));
    let (pool, tls) = connect::pool(&cfg.database.database_url, cfg.db_pool_size())?;
    let availability = Arc::new(Availability::new(pool.clone()));
    let commit_watch = tokio::spawn({
        let availability = availability.clone();
        let pool = pool.clone();
        async move { availability.commits().watch(pool).await }
    });
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
                metrics::oldest_in_flight(readiness.commits().oldest_wait());
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

    // Before the first batch: a database that does not answer, or whose schema lacks this
    // binary's migrations, is an outage (logged by the probe), so the worker does not
    // consume until it is fixed.
    tokio::select! {
        _ = shutdown.wait() => {}
        _ = async {
            let _ = availability.probe().await;
            availability.commits().refresh(&pool).await;
        } => {}
    }

    let reconnect_policy = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(MAX_RECONNECT_DELAY)
        .without_max_times()
        .with_jitter();
    let mut delays = reconnect_policy.build();
    let outcome = loop {
        let store = Store::new(pool.clone(), tls.clone(), availability.commits().clone());
        match consume(&cfg, store, &availability, &readiness, &shutdown).await {
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
    commit_watch.abort();
    metrics::ready(false);
    let _ = stop_http.send(());
    let _ = http.await;
    info!("worker stopped");
    outcome
}

/// One session: open it, hand every delivery to the pipeline until shutdown or a loss, then
/// drain and close. Readiness is true only while it consumes.
async fn consume(
    cfg: &WorkerConfig,
    store: Store,
    availability: &Arc<Availability>,
    readiness: &Readiness,
    shutdown: &Shutdown,
) -> SessionEnd {
    let mut session = match Session::open(cfg, availability, shutdown).await {
        Ok(session) => session,
        Err(end) => return end,
    };
    readiness.set_session(session.broker_view());
    let pipeline = Arc::new(Pipeline::new(
        store,
        availability.clone(),
        session.publisher(),
        batch_policy(cfg),
    ));
    let end = loop {
        match session.next_delivery(shutdown).await {
            Ok(next) => session.spawn_batch(&pipeline, next),
            Err(end) => break end,
        }
    };
    readiness.clear_session();
    session.close(cfg.shutdown_grace()).await;
    end
}

/// What a batch may hold, from the worker's settings (the pipeline's and the router's).
fn limits(cfg: &WorkerConfig) -> Limits {
    Limits {
        max_message_bytes: cfg.max_message_bytes,
        max_contacts: cfg.max_batch_contacts,
    }
}

/// How hard the pipeline tries, from the worker's settings.
fn batch_policy(cfg: &WorkerConfig) -> BatchPolicy {
    BatchPolicy {
        limits: limits(cfg),
        retry: backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(cfg.db_retry_min_ms))
            .with_max_delay(Duration::from_millis(cfg.db_retry_max_ms))
            .with_max_times(cfg.db_max_retries)
            .with_jitter(),
        batch_timeout: Duration::from_secs(cfg.batch_timeout_secs),
        delivery_limit: cfg.broker.delivery_limit,
        authorization: cfg.authorization,
        result_detail: cfg.result_detail,
        lanes_exchange: cfg
            .lanes
            .enabled
            .then(|| crate::broker::lanes::Lanes::new(&cfg.broker, &cfg.lanes).exchange),
        login_throttle: (cfg.login_max_failures > 0).then_some(credentials::Throttle {
            max_failures: cfg.login_max_failures,
            window: cfg.login_failure_window,
        }),
    }
}
