//! The database gets very slow (every batch waits 200 ms in a trigger). The worker must push
//! back: no more batches in flight than its concurrency, no more unacked than its prefetch,
//! the backlog left in the broker, its memory bounded; and it catches up once the database
//! is fast again.

use crate::harness::Scenario;
use crate::stream;
use std::time::Duration;
use tokio::time::Instant;

/// Resident memory the worker may reach while a 30 MB backlog waits in the broker.
const MEMORY_LIMIT_KIB: u64 = 150 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_database_backpressure_keeps_the_backlog_in_the_broker() {
    let mut s = Scenario::start("slow_database").await;
    s.slow_down_batches(0.2).await;
    let settings = s.worker_settings();
    // What the worker may hold unacked with lanes at concurrency 4 (config.rs,
    // `lane_prefetch` and `heavy_prefetch`): 2 on the interactive lane and on each of the 4
    // bulk shards, 4 on each of the 4 heavy shards, plus what its router holds while it
    // moves messages from the import queue.
    let prefetch = 2 + 4 * 2 + 4 * 4 + u32::from(contact_import::worker::ROUTING_PREFETCH);
    let mut worker = s.spawn_worker("worker", &settings).await;
    // Big batches (about 75 kB each, 30 MB in all) so that pulling the backlog into the
    // worker would show in its memory.
    let backlog = stream::big_batches(0, 400, 50);
    s.publish(backlog).await;

    s.fault_began();
    let watching = Instant::now();
    let (mut max_in_flight, mut max_rss) = (0.0f64, 0u64);
    let (mut max_held, mut min_ready) = (0u32, u32::MAX);
    let mut samples = 0;
    while watching.elapsed() < Duration::from_secs(6) {
        let in_flight = worker
            .try_metric("contact_import_batches_in_flight")
            .await
            .unwrap_or(0.0);
        max_in_flight = max_in_flight.max(in_flight);
        if let Some((rss, _)) = worker.memory_kib() {
            max_rss = max_rss.max(rss);
        }
        // Ready messages first, answered batches second: both only move one way, so the
        // difference can only underestimate what the worker holds, never raise a false alarm.
        let ready = stream::ready_in_broker(&s.cluster.rabbit().url()).await;
        let done = s.batches_with_results() as u32;
        // What the broker no longer holds as ready is answered or unacked in the worker.
        max_held = max_held.max((s.published.len() as u32).saturating_sub(ready + done));
        min_ready = min_ready.min(ready);
        samples += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done_while_slow = s.batches_with_results();
    let hwm = worker.memory_kib().map(|(_, hwm)| hwm).unwrap_or(0);

    s.end_slowness().await;
    s.fault_ended();

    let mut summary = s.settle_and_check(&[]).await;
    worker.assert_running();
    eprintln!(
        "slow_database: {samples} samples; {done_while_slow} batches done while slow; \
         max in flight {max_in_flight}; at most {max_held} held by the worker, at least {min_ready} ready in the queue; \
         max RSS {max_rss} KiB, high-water mark {hwm} KiB"
    );
    summary.expect(
        max_in_flight <= f64::from(settings.concurrency),
        format!(
            "{max_in_flight} batches in flight, concurrency is {}",
            settings.concurrency
        ),
    );
    summary.expect(
        max_in_flight >= 1.0,
        "no batch was ever seen in flight: the scenario did not load the worker",
    );
    summary.expect(
        max_held <= prefetch + 2,
        format!("the worker held {max_held} unanswered batches, its prefetch is {prefetch}"),
    );
    summary.expect(
        min_ready as usize + done_while_slow + prefetch as usize + 2 >= 400,
        format!("the backlog left the broker: only {min_ready} ready while slow"),
    );
    summary.expect(
        hwm < MEMORY_LIMIT_KIB,
        format!("worker memory high-water mark {hwm} KiB ≥ {MEMORY_LIMIT_KIB} KiB"),
    );
    summary.finish();
}
