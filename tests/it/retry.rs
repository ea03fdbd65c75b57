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
    assert_eq!(worker.metric("contact_import_db_retries_total").await, 2.0);
    let attempts: i64 = env
        .db
        .query_one("SELECT last_value FROM injected_faults", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 3, "two failed attempts, then one that committed");
}

#[tokio::test]
async fn a_batch_that_always_fails_is_dead_lettered_after_the_delivery_limit() {
    let env = TestEnv::new().await;
    // A permanent error (check_violation): not retried in-process, requeued until the
    // queue's delivery limit (3 in tests) dead-letters it.
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
    let (properties, _) = env.next_dead_letter().await;
    assert_eq!(
        properties.message_id().as_ref().map(|m| m.as_str()),
        Some("poison")
    );
    assert_eq!(
        header(&properties, "x-first-death-reason").as_deref(),
        Some("delivery_limit")
    );
    assert_eq!(env.contact_count().await, 0);
    assert!(
        worker
            .metric(r#"contact_import_batches_requeued_total{reason="database"}"#)
            .await
            >= 3.0
    );
    assert_eq!(env.queue_depth(&env.broker.import_queue).await, 0);
}
