//! The broker stops (gracefully, as in a rolling upgrade) while the worker consumes, and
//! comes back a few seconds later with its queues.

use crate::harness::Scenario;
use crate::stream;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_is_ridden_out_by_the_same_worker() {
    let mut s = Scenario::start("broker_restart").await;
    let mut worker = s.spawn_worker("worker", &s.worker_settings()).await;
    s.publish(stream::batches(0, 200, 30)).await;
    s.wait_for_results(40).await;

    s.fault_began();
    s.cluster.rabbit_mut().stop().await;
    // The outage itself: the worker is left without a broker for a few seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.cluster.rabbit_mut().start_again().await;
    s.fault_ended();
    s.publish(stream::batches(200, 100, 30)).await;

    let mut summary = s.settle_and_check(&[]).await;
    worker.assert_running();
    summary.expect_reconnected(&worker).await;
    summary.finish();
}
