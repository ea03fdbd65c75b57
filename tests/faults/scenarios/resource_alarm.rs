//! The broker raises a memory alarm and blocks publishing connections mid-stream. The worker
//! must stop taking batches (its results could not be published) and say so, keep the backlog
//! in the broker, and carry on by itself once the alarm clears.

use crate::harness::{Scenario, eventually};
use crate::stream;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_alarm_pauses_the_worker_until_the_broker_unblocks_it() {
    let mut s = Scenario::start("resource_alarm").await;
    // Slow enough (about 20 batches/s) that the stream is still running, and results still
    // being published, when the alarm goes up: the broker blocks a connection when it
    // publishes.
    s.slow_down_batches(0.2).await;
    let settings = s.worker_settings();
    let concurrency = usize::from(settings.concurrency);
    let mut worker = s.spawn_worker("worker", &settings).await;
    s.publish(stream::batches(0, 200, 30)).await;
    s.wait_for_results(20).await;

    s.fault_began();
    s.cluster.rabbit().memory_alarm(true).await;
    eventually(
        Duration::from_secs(30),
        "the worker never reported the broker blocking it",
        || async {
            worker.try_metric("contact_import_broker_blocked").await == Some(1.0)
                && worker.readyz().await == Some(503)
        },
    )
    .await;
    // Blocked: at most the batches already in hand finish; nothing more is taken.
    let answered = s.batches_with_results();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answered_while_blocked = s.batches_with_results() - answered;
    let in_flight = worker
        .try_metric("contact_import_batches_in_flight")
        .await
        .unwrap_or(f64::NAN);
    let backlog = stream::ready_in_broker(&s.cluster.rabbit().url()).await;

    s.cluster.rabbit().memory_alarm(false).await;
    s.fault_ended();
    eventually(
        Duration::from_secs(30),
        "the worker did not resume after the alarm cleared",
        || async {
            worker.try_metric("contact_import_broker_blocked").await == Some(0.0)
                && worker.readyz().await == Some(200)
        },
    )
    .await;
    s.publish(stream::batches(200, 50, 30)).await;

    let mut summary = s.settle_and_check(&[]).await;
    worker.assert_running();
    summary.expect(
        answered_while_blocked <= concurrency,
        format!("{answered_while_blocked} batches were answered during 3 s of alarm"),
    );
    summary.expect(
        in_flight <= concurrency as f64,
        format!("{in_flight} batches in flight while blocked (concurrency {concurrency})"),
    );
    summary.expect(
        backlog > 0,
        "the backlog left the broker while the worker was blocked",
    );
    summary.finish();
}
