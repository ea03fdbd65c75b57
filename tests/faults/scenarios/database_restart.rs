//! PostgreSQL restarts (fast shutdown: sessions killed, open transactions rolled back) while
//! the worker is storing batches.

use crate::harness::Scenario;
use crate::stream;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restart_mid_stream_is_ridden_out_by_the_same_worker() {
    let mut s = Scenario::start("database_restart").await;
    let mut worker = s.spawn_worker("worker", &s.worker_settings()).await;
    s.publish(stream::batches(0, 200, 30)).await;
    s.wait_for_results(40).await;

    s.fault_began();
    s.cluster.postgres.stop().await;
    // While the database is down the worker must say it is not ready.
    let down = Instant::now();
    let mut saw_not_ready = false;
    let mut saw_paused = false;
    while down.elapsed() < Duration::from_secs(4) {
        if worker.readyz().await == Some(503) {
            saw_not_ready = true;
        }
        if worker.try_metric("contact_import_database_up").await == Some(0.0)
            && worker.try_metric("contact_import_ready").await == Some(0.0)
        {
            saw_paused = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.cluster.postgres.start_again().await;
    s.fault_ended();
    s.publish(stream::batches(200, 100, 30)).await;

    let mut summary = s.settle_and_check(&[]).await;
    worker.assert_running();
    summary.expect(
        saw_not_ready,
        "/readyz never answered 503 during the 4 s the database was down",
    );
    summary.expect(
        saw_paused,
        "contact_import_database_up and contact_import_ready never read 0 while the database was down",
    );
    summary.expect_no_database_requeues(&worker, "outage").await;
    let retries = worker
        .try_metric("contact_import_db_retries_total")
        .await
        .unwrap_or(0.0);
    eprintln!("database_restart: contact_import_db_retries_total = {retries}");
    summary.finish();
}
