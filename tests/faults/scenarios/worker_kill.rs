//! Workers die without warning (SIGKILL: the OOM killer, a lost node): their unacked
//! deliveries return to the queue, some of them already committed.

use crate::harness::Scenario;
use crate::stream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_worker_restarted_applies_every_batch_exactly_once() {
    let mut s = Scenario::start("worker_kill").await;
    let worker = s.spawn_worker("first", &s.worker_settings()).await;
    s.publish(stream::batches(0, 300, 30)).await;
    s.wait_for_results(60).await;

    s.fault_began();
    worker.kill().await;
    s.fault_ended();
    let mut second = s.spawn_worker("second", &s.worker_settings()).await;
    s.publish(stream::batches(300, 100, 30)).await;

    let summary = s.settle_and_check(&[]).await;
    second.assert_running();
    summary.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_workers_sigkilled_the_other_finishes_the_stream() {
    let mut s = Scenario::start("two_workers_one_killed").await;
    let victim = s.spawn_worker("victim", &s.worker_settings()).await;
    let mut survivor = s.spawn_worker("survivor", &s.worker_settings()).await;
    s.publish(stream::batches(0, 300, 30)).await;
    s.wait_for_results(60).await;

    let victim_done = victim
        .try_metric("contact_import_batches_total{status=\"partial\"}")
        .await
        .unwrap_or(0.0);
    s.fault_began();
    victim.kill().await;
    s.fault_ended();
    s.publish(stream::batches(300, 100, 30)).await;

    let mut summary = s.settle_and_check(&[]).await;
    survivor.assert_running();
    summary.expect(
        victim_done >= 1.0,
        "the killed worker had not processed any batch: the kill proved nothing",
    );
    summary.finish();
}
