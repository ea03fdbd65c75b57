//! A worker dies (SIGKILL) while it holds deliveries from several lanes: bulk shards of
//! several orgs and the interactive lane, some of them committed. They return to their lanes
//! and another worker applies each exactly once. (What the worker holds is read from the
//! broker's ready counts: `rabbitmqctl`'s unacked counts of quorum queues lag by seconds.)

use crate::harness::Scenario;
use crate::stream;
use std::time::Duration;

/// The lane queues that still have messages ready. A consumer whose queue has messages
/// ready holds its full prefetch, so the worker holds deliveries of each of these.
async fn lanes_with_ready(s: &Scenario) -> Vec<String> {
    let mut found = Vec::new();
    for queue in stream::all_queues().into_iter().skip(1) {
        if stream::ready_in(&s.cluster.rabbit().url(), &queue).await > 0 {
            found.push(queue);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_holding_several_lanes_loses_nothing_and_applies_nothing_twice() {
    let mut s = Scenario::start("lanes_worker_kill").await;
    // Slow batches, so that the worker holds deliveries of every lane when it dies.
    s.slow_down_batches(0.3).await;
    let first = s.spawn_worker("first", &s.worker_settings()).await;
    // Bulk batches (30 contacts) of every org of the stream, so of several shards, and small
    // ones (5 contacts), which go to the interactive lane.
    s.publish(stream::batches(0, 120, 30)).await;
    s.publish(stream::batches(120, 60, 5)).await;

    // The worker holds deliveries of the interactive lane and of two bulk shards.
    let holds_several_lanes = |held: &[String]| {
        let interactive = held.iter().any(|q| q.ends_with(".interactive"));
        let shards = held
            .iter()
            .filter(|q| q.contains(".bulk.") || q.contains(".heavy."))
            .count();
        interactive && shards >= 2
    };
    let mut held = lanes_with_ready(&s).await;
    let watching = tokio::time::Instant::now();
    while !holds_several_lanes(&held) && watching.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        held = lanes_with_ready(&s).await;
    }
    eprintln!(
        "lanes_worker_kill: lanes with a backlog (and so held) when the worker dies: {held:?}"
    );

    s.fault_began();
    first.kill().await;
    s.end_slowness().await;
    s.fault_ended();
    let mut second = s.spawn_worker("second", &s.worker_settings()).await;

    let mut summary = s.settle_and_check(&[]).await;
    second.assert_running();
    summary.expect(
        holds_several_lanes(&held),
        format!("the worker did not hold several lanes when it died: {held:?}"),
    );
    summary.finish();
}
