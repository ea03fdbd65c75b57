use crate::common::{ORG, TestEnv, batch, header};
use serde_json::json;

/// Makes the contact upsert fail with `sqlstate` for its first `times` statements. A sequence
/// counts the attempts because, unlike a table, it is not rolled back with the failure.
async fn fail_upserts(env: &TestEnv, sqlstate: &str, times: i64) {
    env.db
        .batch_execute(&format!(
            "CREATE SEQUENCE injected_faults;
             CREATE FUNCTION inject_fault() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF nextval('injected_faults') <= {times} THEN
                     RAISE EXCEPTION 'injected fault' USING ERRCODE = '{sqlstate}';
                 END IF;
                 RETURN NULL;
             END $$;
             CREATE TRIGGER inject_fault BEFORE INSERT ON contacts
                 FOR EACH STATEMENT EXECUTE FUNCTION inject_fault();"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_transient_database_error_is_retried_and_then_succeeds() {
    let env = TestEnv::new().await;
    fail_upserts(&env, "40001", 2).await;
    let worker = env.spawn_worker(&[]).await;
    env.publish_json(
        "retried",
        &batch(ORG, json!([{"displayName": "Persistent"}])),
    )
    .await;

    let (_, _, result) = env.next_result().await;
    assert_eq!(result["status"], "succeeded");
    assert_eq!(env.contact_count().await, 1);
    worker
        .expect_metric("contact_import_db_retries_total", 2.0)
        .await;
    let attempts: i64 = env
        .db
        .query_one("SELECT last_value FROM injected_faults", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 3, "two failed attempts, then one that committed");
}

#[tokio::test]
async fn a_batch_that_always_fails_is_dead_lettered_with_its_last_error_after_the_delivery_limit() {
    let env = TestEnv::new().await;
    // A permanent error (check_violation): not retried in-process, requeued until its last
    // allowed delivery (the queue's delivery limit is 3 in tests, so 4 deliveries).
    fail_upserts(&env, "23514", 1_000).await;
    let worker = env.spawn_worker(&[]).await;
    env.publish_json("poison", &batch(ORG, json!([{"displayName": "Never"}])))
        .await;
    env.publish_json("fine", &batch("org-without-trouble", json!([])))
        .await;

    let (_, _, result) = env.next_result().await;
    assert_eq!(
        result["batchId"], "fine",
        "the poison batch does not block the next one"
    );
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["batchId"], "poison");
    assert_eq!(result["status"], "rejected");
    assert_eq!(result["error"]["code"], "attempts.exhausted");
    assert_eq!(result["error"]["statusCode"], 500);

    let (properties, _) = env.next_dead_letter().await;
    assert_eq!(
        properties.message_id().as_ref().map(|m| m.as_str()),
        Some("poison")
    );
    assert_eq!(
        header(&properties, "x-contact-import-reason").as_deref(),
        Some("attempts.exhausted")
    );
    let error = header(&properties, "x-contact-import-error").unwrap_or_default();
    assert!(error.contains("injected fault"), "last error: {error}");
    assert_eq!(
        header(&properties, "x-contact-import-attempts").as_deref(),
        Some("4")
    );
    assert_eq!(env.contact_count().await, 0);
    worker
        .expect_metric(
            r#"contact_import_batches_requeued_total{reason="database"}"#,
            3.0,
        )
        .await;
    worker
        .expect_metric(
            r#"contact_import_dead_lettered_total{reason="attempts.exhausted"}"#,
            1.0,
        )
        .await;
    assert_eq!(env.queue_depth(&env.broker.import_queue).await, 0);
}

#[tokio::test]
async fn a_batch_past_its_time_limit_is_abandoned_uncommitted_and_requeued() {
    let env = TestEnv::new().await;
    // The first two upserts hang far beyond the worker's 1 s batch limit.
    env.db
        .batch_execute(
            "CREATE SEQUENCE slow_upserts;
             CREATE FUNCTION slow_upsert() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF nextval('slow_upserts') <= 2 THEN PERFORM pg_sleep(30); END IF;
                 RETURN NULL;
             END $$;
             CREATE TRIGGER slow_upsert BEFORE INSERT ON contacts
                 FOR EACH STATEMENT EXECUTE FUNCTION slow_upsert();",
        )
        .await
        .unwrap();
    let worker = env.spawn_worker(&["--batch-timeout-secs", "1"]).await;
    env.publish_json("slow", &batch(ORG, json!([{"displayName": "Patient"}])))
        .await;

    let (_, _, result) = env.next_result().await;
    assert_eq!(result["status"], "succeeded");
    assert_eq!(env.contact_count().await, 1);
    worker
        .expect_metric(
            r#"contact_import_batches_requeued_total{reason="timeout"}"#,
            2.0,
        )
        .await;
    // The abandoned statements were cancelled, not left running or holding a transaction.
    let database: String = env
        .db
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    let lingering: i64 = env
        .db
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()
               AND (query LIKE '%contacts%' AND state = 'active' OR state LIKE 'idle in transaction%')",
            &[&database],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(lingering, 0, "abandoned transactions still open");
}
