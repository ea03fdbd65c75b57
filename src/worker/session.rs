//! One broker session: a consume connection and a publish connection (the broker blocks
//! publishing connections during a resource alarm, and that must not stall the consumer's
//! acks), the consumer, the confirm-mode publisher and the batches in flight.
//!
//! A session ends on shutdown or on any loss; the worker then opens a new one. Delivery tags
//! of a lost channel are never acked, and the topology is declared again each time.

use super::dispatch::{Dispatch, Taken};
use super::gate::Gate;
use super::health::BrokerSession;
use super::pipeline::{Pipeline, REQUEUE};
use super::router;
use crate::broker::lanes::Lanes;
use crate::broker::publish::Publisher;
use crate::broker::{self, topology};
use crate::config::WorkerConfig;
use crate::shutdown::Shutdown;
use crate::store::availability::Availability;
use futures_lite::FutureExt;
use lapin::message::Delivery;
use lapin::options::BasicCancelOptions;
use lapin::{Channel, Connection};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// How a broker session ended.
pub enum SessionEnd {
    /// Shutdown was requested.
    Shutdown,
    /// The connection, a channel or the consumer was lost; connect again.
    Lost { reason: String, was_consuming: bool },
    /// The broker refused the topology (e.g. a queue exists with other arguments): retrying
    /// cannot help, an operator must act.
    Fatal(anyhow::Error),
}

impl SessionEnd {
    fn lost(reason: String) -> Self {
        Self::Lost {
            reason,
            was_consuming: false,
        }
    }
}

/// A delivery and the concurrency slot it may use (and the slot of its lane's kind).
pub struct Next {
    delivery: Delivery,
    permit: OwnedSemaphorePermit,
    lane_slot: OwnedSemaphorePermit,
}

/// A session that consumes.
pub struct Session {
    consume: Connection,
    publish: Connection,
    /// The consume channel, the publisher's and, with lanes, the router's: all must stay open.
    channels: Vec<Channel>,
    /// The consumers, and which delivery runs next.
    dispatch: Dispatch,
    /// The router, with lanes.
    router: Option<router::Router>,
    publisher: Publisher,
    gate: Gate,
    permits: Arc<Semaphore>,
    in_flight: JoinSet<()>,
}

impl Session {
    /// Connects, declares the topology, opens the publisher, waits for the database and
    /// subscribes to the import queue with the configured prefetch.
    pub async fn open(
        cfg: &WorkerConfig,
        availability: &Arc<Availability>,
        shutdown: &Shutdown,
    ) -> Result<Self, SessionEnd> {
        let url = &cfg.broker.amqp_url;
        let connect = |name| async move {
            broker::connect(url, name)
                .await
                .map_err(|e| SessionEnd::lost(format!("connecting to RabbitMQ: {e}")))
        };
        let consume = connect("contact-import consume").await?;
        let publish = match connect("contact-import publish").await {
            Ok(publish) => publish,
            Err(end) => {
                close(&[consume]).await;
                return Err(end);
            }
        };
        let channel = match consume.create_channel().await {
            Ok(channel) => channel,
            Err(e) => {
                close(&[consume, publish]).await;
                return Err(SessionEnd::lost(format!("opening a channel: {e}")));
            }
        };
        let lanes = cfg
            .lanes
            .enabled
            .then(|| Arc::new(Lanes::new(&cfg.broker, &cfg.lanes)));
        let declared = async {
            topology::declare(&consume, &cfg.broker).await?;
            match &lanes {
                Some(lanes) => lanes.declare(&channel, &cfg.broker).await,
                None => Ok(()),
            }
        };
        if let Err(e) = declared.await {
            // A refusal closes only the channel; a lost connection is worth another try, and so
            // is a name that went away meanwhile (an operator removing the intake exchange).
            let refused = consume.status().connected() && !broker::not_found(&e);
            close(&[consume, publish]).await;
            if !refused {
                return Err(SessionEnd::lost(format!("declaring the topology: {e}")));
            }
            return Err(SessionEnd::Fatal(
                anyhow::Error::new(e).context("declaring the broker topology"),
            ));
        }
        let publisher = match Publisher::open(&publish, cfg.broker.clone()).await {
            Ok(publisher) => publisher,
            Err(e) => {
                close(&[consume, publish]).await;
                return Err(SessionEnd::lost(format!(
                    "opening the publish channel: {e}"
                )));
            }
        };
        // Deliveries taken while the database is away would only fail and spend their attempts.
        tokio::select! {
            biased;
            _ = shutdown.wait() => {
                close(&[consume, publish]).await;
                return Err(SessionEnd::Shutdown);
            }
            _ = availability.wait_up() => {}
        }
        let queue = &cfg.broker.import_queue;
        let intake = match topology::present_intake_queues(&consume, &cfg.broker).await {
            Ok(intake) => intake,
            Err(e) => {
                close(&[consume, publish]).await;
                return Err(SessionEnd::lost(format!("listing the intake queues: {e}")));
            }
        };
        let mut channels = vec![channel.clone(), publisher.channel().clone()];
        let mut started_router = None;
        let subscribed = async {
            let Some(lanes) = &lanes else {
                // The prefetch is the worker's, shared by the intake queues.
                let prefetch = cfg.prefetch().div_ceil(intake.len() as u16).max(1);
                return Dispatch::subscribe(
                    &channel,
                    &intake,
                    None,
                    cfg.concurrency,
                    prefetch,
                    prefetch,
                )
                .await;
            };
            let dispatch = Dispatch::subscribe(
                &channel,
                &intake,
                Some(lanes),
                cfg.concurrency,
                cfg.lane_prefetch(),
                cfg.heavy_prefetch(),
            )
            .await?;
            let router = router::start(
                &consume,
                &publish,
                &cfg.broker,
                &intake,
                lanes.clone(),
                super::limits(cfg),
            )
            .await?;
            channels.extend(router.channels.iter().cloned());
            started_router = Some(router);
            Ok(dispatch)
        };
        let dispatch = match subscribed.await {
            Ok(dispatch) => dispatch,
            Err(reason) => {
                started_router.iter().for_each(router::Router::abort);
                close(&[consume, publish]).await;
                return Err(SessionEnd::lost(reason));
            }
        };
        let gate = Gate::new(availability.clone(), &publish);
        info!(
            queue = %queue,
            lanes = cfg.lanes.enabled,
            concurrency = cfg.concurrency,
            prefetch = cfg.prefetch(),
            "consuming"
        );
        Ok(Self {
            channels,
            consume,
            publish,
            dispatch,
            router: started_router,
            publisher,
            gate,
            permits: Arc::new(Semaphore::new(usize::from(cfg.slots()))),
            in_flight: JoinSet::new(),
        })
    }

    /// What `/readyz` watches of this session.
    pub fn broker_view(&self) -> BrokerSession {
        BrokerSession {
            channels: self.channels.clone(),
            publishing: self.publish.status().clone(),
        }
    }

    /// The session's confirm-mode publisher.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// The next delivery, taken only when a concurrency slot is free (so the prefetch buffer,
    /// not our memory, holds the rest) and the gate is open; or why the session ends.
    pub async fn next_delivery(&mut self, shutdown: &Shutdown) -> Result<Next, SessionEnd> {
        loop {
            while self.in_flight.try_join_next().is_some() {}
            let permit = or_end(
                shutdown,
                &self.channels,
                self.permits.clone().acquire_owned(),
            )
            .await?
            .expect("the semaphore is never closed");
            or_end(shutdown, &self.channels, self.gate.opened()).await?;
            let next = or_end(shutdown, &self.channels, async {
                tokio::select! {
                    biased;
                    // Stop waiting for a delivery as soon as the gate closes.
                    _ = self.gate.closed() => None,
                    next = self.dispatch.next() => Some(next),
                }
            })
            .await?;
            let lost = |reason| SessionEnd::Lost {
                reason,
                was_consuming: true,
            };
            match next {
                None => continue,
                Some(Ok(Taken {
                    delivery,
                    lane_slot,
                })) => {
                    return Ok(Next {
                        delivery,
                        permit,
                        lane_slot,
                    });
                }
                Some(Err(reason)) => return Err(lost(reason)),
            }
        }
    }

    /// Runs the batch in the background; its slot is freed when it settles.
    pub fn spawn_batch(&mut self, pipeline: &Arc<Pipeline>, next: Next) {
        let pipeline = pipeline.clone();
        self.in_flight.spawn(async move {
            let Next {
                delivery,
                permit,
                lane_slot,
            } = next;
            // A panic must not leave the delivery unacked until the channel closes: requeue
            // it, and the delivery limit dead-letters it if it keeps panicking.
            let acker = delivery.acker.clone();
            if AssertUnwindSafe(pipeline.handle(delivery))
                .catch_unwind()
                .await
                .is_err()
            {
                error!("processing the batch panicked; requeueing it");
                let _ = acker.nack(REQUEUE).await;
            }
            drop((permit, lane_slot));
        });
    }

    /// Stops consuming, gives the batches in flight up to `grace` to finish, and closes.
    /// Batches of a lost session still finish (or fail to publish and are redelivered): none
    /// is half-applied, because each commits or rolls back as a whole.
    pub async fn close(mut self, grace: Duration) {
        let consume_channel = &self.channels[0];
        // No new deliveries; prefetched ones not started return to the queue when the channel
        // closes. The router stops at the same time, finishing what it is routing (what it
        // holds unrouted returns to the import queue): its wait is within the grace, so the
        // supervisors' time before SIGKILL still covers the whole stop.
        let router = self.router.take();
        let stop_router = async {
            if let Some(router) = router {
                router.stop().await;
            }
        };
        let in_flight = &mut self.in_flight;
        let consumers = &self.dispatch.consumers;
        let stop_batches = async {
            for (tag, queue) in consumers {
                if consume_channel.status().connected()
                    && let Err(e) = consume_channel
                        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                        .await
                {
                    warn!(error = %e, queue, "cancelling the consumer failed");
                }
            }
            drain(in_flight, grace).await;
        };
        tokio::join!(stop_router, stop_batches);
        drop(self.gate);
        close(&[self.consume, self.publish]).await;
    }
}

/// `work`, unless shutdown fires or a channel closes first.
async fn or_end<T>(
    shutdown: &Shutdown,
    channels: &[Channel],
    work: impl Future<Output = T>,
) -> Result<T, SessionEnd> {
    tokio::select! {
        biased;
        _ = shutdown.wait() => Err(SessionEnd::Shutdown),
        reason = channel_lost(channels) => Err(SessionEnd::Lost { reason, was_consuming: true }),
        value = work => Ok(value),
    }
}

/// Resolves when one of the channels is no longer open. The consumer stream ends when the
/// consume channel dies, but nothing else notices a dead publish channel: every batch would
/// then commit, fail to publish and be requeued. lapin has no event for a closed channel.
async fn channel_lost(channels: &[Channel]) -> String {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        if let Some(channel) = channels.iter().find(|c| !c.status().connected()) {
            return format!("broker channel {} closed", channel.id());
        }
    }
}

/// Closes connections. Bounded: a blocked connection never sends the close.
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

/// Waits for in-flight batches up to `grace`; the ones still running after it are abandoned
/// and their deliveries return to the queue: rolled back, or, if their COMMIT was already
/// sent, left to the database to finish (never cancelled), then replayed on redelivery.
async fn drain(in_flight: &mut JoinSet<()>, grace: Duration) {
    // The set still holds batches that finished while the session waited for a delivery
    // (they are reaped only when the next one arrives): not in flight, not waited for.
    while in_flight.try_join_next().is_some() {}
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
            "grace period over; abandoning the remaining batches (a COMMIT already sent is left to finish)"
        );
        in_flight.abort_all();
        while in_flight.join_next().await.is_some() {}
    }
}
