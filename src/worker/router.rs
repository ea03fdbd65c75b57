//! The router: moves every message from the import queue, where producers publish, to its
//! lane (see [`crate::broker::lanes`]). A message is acked on the import queue only after
//! its copy on the lane was confirmed, so a crash in between leaves it on the import queue,
//! to be routed again: its batch may then be on a lane twice, which its claim in the
//! database makes harmless (the second copy replays the first's result).
//!
//! Bulk batches of an org with more than its share of the recent bulk traffic go to the heavy
//! shards ([`Shares`]). Each worker takes, on a channel of its own, up to
//! [`ROUTING_PREFETCH`] messages at a time and publishes them on [`ROUTING_CHANNELS`] confirm
//! channels, one message in flight on each; the lane depths are sampled here too.

use super::shares::Shares;
use crate::broker::consume::{self, Turns};
use crate::broker::lanes::{self, Class, Lane, Lanes};
use crate::broker::publish::{PublishError, Publisher};
use crate::config::BrokerConfig;
use crate::dialect::Limits;
use crate::metrics;
use deadpool::unmanaged::{Object, Pool};
use lapin::options::{BasicAckOptions, BasicCancelOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

/// Messages a worker routes at once: enough to keep the confirms in flight, few enough
/// that several workers share a burst. Shared by the intake queues, each taking at least
/// `MIN_PREFETCH`.
pub const ROUTING_PREFETCH: u16 = 32;
const MIN_PREFETCH: u16 = 2;

/// Confirm channels a router publishes on, each with one message in flight at a time.
/// lapin hands a message the broker returns (no lane queue bound) to whichever confirm of
/// its channel completes next: with several routings in flight on one channel, the returned
/// one could be acked as routed, and lost, while another is routed twice. 16 rather than 8:
/// with a backlog published to a running worker, 8 let the import queue fall behind and a
/// probe wait 1.0 s, 16 kept every probe within 0.47 s (docs/benchmarks.md, sixth run).
const ROUTING_CHANNELS: usize = 16;

/// How often the depth of the import queue and of every lane is read.
const DEPTH_EVERY: Duration = Duration::from_secs(5);

/// First and longest pause before a failed routing is tried again. The message is held, not
/// returned: a quorum queue counts every return against its delivery limit, so returning it
/// on every failure would dead-letter it within seconds while a lane is unavailable.
const ROUTE_RETRY_MIN: Duration = Duration::from_millis(500);
const ROUTE_RETRY_MAX: Duration = Duration::from_secs(30);

/// How long a stopping router waits for the messages it is routing to reach their lane.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// A router at work: its channel on the consume connection, its confirm channels on the
/// publish connection, and its tasks (routing, and sampling the depths).
pub struct Router {
    channel: Channel,
    /// Its channels, consume and publish: the session watches them all.
    pub channels: Vec<Channel>,
    routing: JoinHandle<()>,
    sampling: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl Router {
    /// Stops taking messages and lets the ones under way reach their lane and be acked, for
    /// up to [`STOP_WAIT`]; then closes the router's channel, so what it holds unrouted
    /// returns to the import queue. Aborting instead could leave a message both on its lane
    /// and back on the import queue, to be routed and answered twice.
    pub async fn stop(self) {
        self.sampling.abort();
        let _ = self.stop.send(());
        let mut routing = self.routing;
        if tokio::time::timeout(STOP_WAIT + Duration::from_secs(1), &mut routing)
            .await
            .is_err()
        {
            routing.abort();
            // The task did not get to close the channel: close it here, so that what it held
            // returns to the import queue now rather than when the session's connection closes.
            let closing = self.channel.close(200, "router stopped".into());
            let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
        }
    }

    /// Stops at once: for a session that could not open, which has routed nothing yet worth
    /// waiting for.
    pub fn abort(&self) {
        self.sampling.abort();
        self.routing.abort();
    }
}

/// Starts routing `intake` (the import queue, and the intake shards if any) to `lanes`,
/// consuming on a channel of its own on `consume` and publishing on [`ROUTING_CHANNELS`]
/// confirm channels of its own on `publish`, and sampling the depth of every queue. When
/// routing stops, its channel is closed, which ends the session; the next one routes again.
pub async fn start(
    consume: &Connection,
    publish: &Connection,
    broker: &BrokerConfig,
    intake: &[String],
    lanes: Arc<Lanes>,
    limits: Limits,
) -> Result<Router, String> {
    let channel = consume
        .create_channel()
        .await
        .map_err(|e| format!("opening the router's channel: {e}"))?;
    // Not the session's publisher: lapin hands a returned message to whichever confirm of
    // its channel comes next, so results that nobody subscribes to (each returned) must not
    // share a channel with routings, which would take them for their own.
    let mut publishers = Vec::with_capacity(ROUTING_CHANNELS);
    for _ in 0..ROUTING_CHANNELS {
        let publisher = Publisher::open(publish, broker.clone())
            .await
            .map_err(|e| format!("opening the router's publish channels: {e}"))?;
        publishers.push(publisher);
    }
    let channels = std::iter::once(channel.clone())
        .chain(publishers.iter().map(|p| p.channel().clone()))
        .collect();
    // At most ROUTING_PREFETCH messages in flight whatever the number of intake queues (at
    // most 16).
    let prefetch = (ROUTING_PREFETCH / intake.len().max(1) as u16).max(MIN_PREFETCH);
    let mut consumers = Vec::new();
    for queue in intake {
        let tag = format!("contact-import-router-{}", uuid::Uuid::new_v4().simple());
        let consumer = consume::subscribe(&channel, queue, &tag, prefetch)
            .await
            .map_err(|e| format!("subscribing the router to {queue}: {e}"))?;
        consumers.push((consumer, tag));
    }
    let mut sampled = intake.to_vec();
    sampled.extend(lanes.queues().map(str::to_owned));
    let (stop, stopped) = oneshot::channel();
    let routing = tokio::spawn({
        let channel = channel.clone();
        async move {
            let intake = Intake {
                consumers: Turns::new(consumers),
                channel: channel.clone(),
            };
            let publishers = Pool::from(publishers);
            if let Err(why) = run(intake, publishers, lanes, limits, stopped).await {
                warn!(reason = %why, "the router stopped; the session ends");
            }
            let _ = channel.close(200, "router stopped".into()).await;
        }
    });
    let sampling = tokio::spawn(sample_depths(channel.clone(), sampled));
    Ok(Router {
        channel,
        channels,
        routing,
        sampling,
        stop,
    })
}

/// The router's consumers of the intake queues, labelled with their tags, taken from in turn.
struct Intake {
    consumers: Turns<String>,
    channel: Channel,
}

impl Intake {
    /// Cancels every consumer: no more deliveries; the ones buffered and not started return
    /// to their queue when the channel closes.
    async fn cancel(&self) {
        for tag in self.consumers.labels() {
            if let Err(e) = self
                .channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await
            {
                debug!(error = %e, "cancelling a router's consumer failed");
            }
        }
    }
}

/// Routes the deliveries of `intake` until `stop` fires (`Ok`), or its consumer ends or a
/// routing task panics (`Err`, why). A routing that fails is retried, holding its message,
/// until it succeeds or its publish channel closes, which ends the session.
async fn run(
    intake: Intake,
    publishers: Pool<Publisher>,
    lanes: Arc<Lanes>,
    limits: Limits,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), String> {
    let mut intake = intake;
    let mut routing = JoinSet::new();
    let shares = Arc::new(Mutex::new(Shares::default()));
    let mut heavy_count = tokio::time::interval(DEPTH_EVERY);
    loop {
        let next = tokio::select! {
            _ = &mut stop => {
                intake.cancel().await;
                settle(&mut routing).await;
                return Ok(());
            }
            _ = heavy_count.tick() => {
                let mut shares = shares.lock().expect("shares lock");
                metrics::heavy_orgs(shares.heavy_orgs(Instant::now()));
                continue;
            }
            Some(done) = routing.join_next(), if !routing.is_empty() => {
                if let Err(e) = done {
                    settle(&mut routing).await;
                    return Err(format!("routing a message panicked: {e}"));
                }
                continue;
            }
            (_, next) = std::future::poll_fn(|cx| intake.consumers.poll_turn(cx)) => next,
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(e)) => {
                settle(&mut routing).await;
                return Err(format!("the router's consumer failed: {e}"));
            }
            None => {
                settle(&mut routing).await;
                return Err("the broker cancelled the router's consumer".into());
            }
        };
        let (publishers, lanes, limits) = (publishers.clone(), lanes.clone(), limits);
        let shares = shares.clone();
        routing.spawn(async move {
            let lane = match lanes.classify(&delivery, &limits) {
                Class::Interactive => Lane::Interactive,
                Class::Bulk { org } => {
                    let mut shares = shares.lock().expect("shares lock");
                    let heavy = shares.record(&org, Instant::now());
                    metrics::heavy_orgs(shares.heavy_orgs(Instant::now()));
                    // The same shard number on either tier: an org keeps its order within
                    // a tier, and heavy orgs on different heavy shards take turns.
                    let shard = lanes.shard_of(&org);
                    if heavy {
                        Lane::Heavy(shard)
                    } else {
                        Lane::Bulk(shard)
                    }
                }
            };
            let routed_at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let properties = lanes::routed_properties(&delivery.properties, routed_at);
            let queue = lanes.queue(lane);
            let mut pause = ROUTE_RETRY_MIN;
            loop {
                // Taken for one publish, not across the pause before a retry: a lane that
                // refuses must not hold up the others.
                let Ok(publisher) = publishers.get().await else {
                    return; // The pool is never closed.
                };
                let routed = publisher
                    .route(&lanes.exchange, queue, &delivery.data, properties.clone())
                    .await;
                match routed {
                    Ok(()) => {
                        drop(publisher);
                        metrics::routed(lane.label());
                        debug!(queue, "routed");
                        if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                            // Redelivered and routed again: the claim makes the copy harmless.
                            warn!(error = %e, "acking a routed message failed");
                        }
                        return;
                    }
                    // The channel is gone, or going (a missed confirm closes it in the
                    // background, its publish perhaps still in flight): out of the pool, so
                    // that no routing publishes on it again. The session watches it and ends;
                    // the delivery returns when the router's consume channel closes.
                    Err(e)
                        if !publisher.channel().status().connected()
                            || matches!(e, PublishError::NoConfirm(_)) =>
                    {
                        let _out_of_the_pool = Object::take(publisher);
                        warn!(error = %e, queue, "routing a message failed and its publish channel is closing");
                        return;
                    }
                    Err(e) => {
                        drop(publisher);
                        warn!(error = %e, queue, retry_in_ms = pause.as_millis() as u64, "routing a message to its lane failed; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(ROUTE_RETRY_MAX);
                    }
                }
            }
        });
    }
}

/// Waits up to [`STOP_WAIT`] for the routings under way to be confirmed and acked (or to fail,
/// as they do at once when the publish channel is gone): one dropped between its publish and
/// its ack would leave its message on its lane and back on the import queue.
async fn settle(routing: &mut JoinSet<()>) {
    let settled = tokio::time::timeout(STOP_WAIT, async {
        while routing.join_next().await.is_some() {}
    })
    .await;
    if settled.is_err() {
        warn!(
            messages = routing.len(),
            "messages still being routed when the router stopped return to the import queue"
        );
    }
}

/// Reads the depth of `queues` every few seconds into the lane depth gauge, until dropped.
async fn sample_depths(channel: Channel, queues: Vec<String>) {
    let mut every = tokio::time::interval(DEPTH_EVERY);
    loop {
        every.tick().await;
        for queue in &queues {
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            match channel
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await
            {
                Ok(declared) => metrics::queue_ready(queue, declared.message_count()),
                Err(e) => {
                    debug!(error = %e, queue, "reading the queue's depth failed");
                    return;
                }
            }
        }
    }
}
