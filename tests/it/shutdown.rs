use crate::common::{ORG, TestEnv, batch};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn sigterm_finishes_the_batch_in_flight_and_exits_zero() {
    let env = TestEnv::new().await;
    // Slow the upsert down so that the batch is still in flight when SIGTERM arrives.
    env.db
        .batch_execute(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$;
             CREATE TRIGGER slow BEFORE INSERT ON contacts FOR EACH STATEMENT EXECUTE FUNCTION slow();",
        )
        .await
        .unwrap();
    let worker = env.spawn_worker(&[]).await;
    env.publish_json(
        "in-flight",
        &batch(ORG, json!([{"displayName": "Drained"}])),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while worker.metric("contact_import_batches_in_flight").await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the batch never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let status = worker.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["status"], "succeeded");
    assert_eq!(env.contact_count().await, 1);
    assert_eq!(
        env.queue_depth(&env.broker.import_queue).await,
        0,
        "the batch was acked before exit"
    );
}

#[tokio::test]
async fn readiness_and_liveness_answer() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    assert_eq!(worker.get("/healthz").await.0, 200);
    assert_eq!(worker.get("/readyz").await, (200, "ready\n".to_owned()));
    let (status, metrics) = worker.get("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "contact_import_batches_total",
        "contact_import_contacts_total",
        "contact_import_db_retries_total",
        "contact_import_batches_in_flight",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}

/// A batch that finished is no longer in flight: an idle worker's gauge reads 0, and on
/// SIGTERM it waits for no batch (it used to count finished batches nobody had reaped yet).
#[tokio::test]
async fn an_idle_worker_counts_no_batch_in_flight_and_waits_for_none_on_sigterm() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    for id in ["first", "second"] {
        env.publish_json(id, &batch(ORG, json!([{ "displayName": id }])))
            .await;
        assert_eq!(env.next_result().await.2["status"], "succeeded");
    }
    env.expect_queue_depth(&env.broker.import_queue, 0, "both batches acked")
        .await;
    worker
        .expect_metric("contact_import_batches_in_flight", 0.0)
        .await;
    // Still 0 a moment later: nothing is left running.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(worker.metric("contact_import_batches_in_flight").await, 0.0);
    let log_path = worker.log.clone();
    assert!(worker.terminate().await.success());
    let log = std::fs::read_to_string(log_path).unwrap();
    let waiting: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("waiting for in-flight batches"))
        .collect();
    assert!(
        waiting.is_empty(),
        "an idle worker waited for batches: {waiting:?}"
    );
}
