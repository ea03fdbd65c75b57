//! The network between the worker and the broker goes silent (a blackhole, not a refusal):
//! no error, no end of stream, only missing AMQP heartbeats tell the worker.

use crate::harness::Scenario;
use crate::proxy::Proxy;
use crate::stream;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut_is_detected_by_heartbeats_and_the_worker_reconnects() {
    let mut s = Scenario::start("network_cut").await;
    let proxy = Proxy::start(s.cluster.rabbit().addr()).await;
    let mut settings = s.worker_settings();
    settings.broker.amqp_url = format!("amqp://guest:guest@{}/%2f", proxy.addr);
    let mut worker = s.spawn_worker("worker", &settings).await;
    s.publish(stream::batches(0, 200, 30)).await;
    s.wait_for_results(40).await;

    s.fault_began();
    proxy.cut();
    let cut = Instant::now();
    // Heartbeat 2 s: the loss must be noticed well within the 10 s cut.
    let mut noticed_after = None;
    while cut.elapsed() < Duration::from_secs(10) {
        if noticed_after.is_none() && worker.readyz().await == Some(503) {
            noticed_after = Some(cut.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.restore();
    s.fault_ended();
    s.publish(stream::batches(200, 100, 30)).await;

    let mut summary = s.settle_and_check(&[]).await;
    worker.assert_running();
    eprintln!("network_cut: the worker turned not ready {noticed_after:?} after the cut");
    summary.expect(
        noticed_after.is_some_and(|d| d < Duration::from_secs(8)),
        format!("the worker did not notice the silent broker within 8 s (heartbeat 2 s): {noticed_after:?}"),
    );
    summary.expect_reconnected(&worker).await;
    summary.finish();
}
