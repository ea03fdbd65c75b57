//! SIGTERM under load (a deploy): the worker stops taking batches, finishes the ones it
//! started, exits 0 within its grace period, and leaves the rest in the queue for the next.

use crate::harness::{Scenario, eventually};
use crate::stream;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_started_batches_and_leaves_the_rest_queued() {
    let mut s = Scenario::start("sigterm_drain").await;
    // Slow enough (300 ms a batch) that batches are always in flight when SIGTERM comes.
    s.slow_down_batches(0.3).await;
    let mut settings = s.worker_settings();
    settings.shutdown_grace_secs = 20;
    let mut first = s.spawn_worker("first", &settings).await;
    s.publish(stream::batches(0, 300, 30)).await;
    s.wait_for_results(20).await;

    let in_flight = first
        .try_metric("contact_import_batches_in_flight")
        .await
        .unwrap_or(0.0);
    s.fault_began();
    let term = Instant::now();
    first.sigterm().await;
    let status = first
        .wait_exit(Duration::from_secs(settings.shutdown_grace_secs + 10))
        .await;
    let drained_in = term.elapsed();

    // Everything it started is committed and answered; everything else is back in the queue.
    let db = s.db().await;
    let applied: i64 = db
        .query_one("SELECT count(*) FROM import_batches", &[])
        .await
        .unwrap()
        .get(0);
    eventually(
        Duration::from_secs(10),
        "every batch the stopped worker applied has its result",
        || async { s.batches_with_results() as i64 >= applied },
    )
    .await;
    let url = s.cluster.rabbit().url();
    let published = s.published.len() as i64;
    let mut queued = 0;
    let back_in_queue = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            queued = i64::from(stream::ready_in_broker(&url).await);
            if queued + applied == published {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok();

    db.batch_execute("DROP TRIGGER slow ON import_batches")
        .await
        .unwrap();
    s.fault_ended();
    let mut second = s.spawn_worker("second", &settings).await;
    s.publish(stream::batches(300, 100, 30)).await;

    let mut summary = s.settle_and_check(&[]).await;
    second.assert_running();
    eprintln!(
        "sigterm_drain: {in_flight} in flight at SIGTERM; exited {status} after {:.2} s; \
         {applied} applied, {queued} left in the queue",
        drained_in.as_secs_f64()
    );
    summary.expect(
        in_flight >= 1.0,
        "no batch was in flight at SIGTERM: the drain was not exercised",
    );
    summary.expect(
        status.success(),
        format!("the worker exited with {status} after SIGTERM, expected 0"),
    );
    summary.expect(
        drained_in < Duration::from_secs(settings.shutdown_grace_secs),
        format!("the drain took {drained_in:?}, beyond the grace period"),
    );
    summary.expect(
        back_in_queue,
        format!(
            "after the drain {applied} batches were applied and {queued} queued, of {published} published"
        ),
    );
    summary.finish();
}
