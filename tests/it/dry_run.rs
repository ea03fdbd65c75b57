use crate::common::{ORG, TestEnv, batch};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::json;

#[tokio::test]
async fn a_dry_run_answers_the_full_result_and_writes_nothing() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    env.publish_json(
        "seed",
        &batch(ORG, json!([{"displayName": "Existing", "title": "Before"}])),
    )
    .await;
    let (_, _, seeded) = env.next_result().await;
    let existing = seeded["contacts"][0]["contactId"]
        .as_str()
        .unwrap()
        .to_owned();

    let trial = batch(
        ORG,
        json!([
            {"displayName": "New Person"},
            {"displayName": "Bad Mail", "emails": [{"value": "not-an-email", "type": "work"}]},
            {"contactId": existing, "title": "After"},
            {"contactId": "6847ee0f-5e9c-4403-9f0e-0aa8552f7828", "title": "Nobody"}
        ]),
    );
    let body = serde_json::to_vec(&trial).unwrap();
    let mut dry = FieldTable::default();
    dry.insert("x-dry-run".into(), AMQPValue::Boolean(true));
    let replies = format!("{}replies", env.id);
    env.declare_queue(&replies).await;
    env.publish(
        &body,
        env.props("trial")
            .with_headers(dry)
            .with_reply_to(replies.as_str().into()),
    )
    .await;

    // Answered to the requester only: the org's subscribers never see a dry run.
    let (_, answer) = env.next_message(&replies).await;
    let result: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(result["batchId"], "trial");
    assert_eq!(result["dryRun"], true);
    assert_eq!(result["status"], "partial");
    assert_eq!(
        result["counts"],
        json!({"received": 4, "created": 1, "updated": 1, "failed": 2})
    );
    assert_eq!(
        crate::common::failures(&result),
        [
            ("1".to_owned(), "invalid.email".to_owned(), 400),
            ("3".to_owned(), "contact.not.found".to_owned(), 404)
        ]
    );
    assert_eq!(result["contacts"][2]["title"], "After");

    // Nothing was written, and the batch id is still free.
    assert_eq!(env.contact_count().await, 1);
    let title: String = env
        .db
        .query_one("SELECT title FROM contacts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(title, "Before");
    let stored: i64 = env
        .db
        .query_one(
            "SELECT count(*) FROM import_batches WHERE batch_id = 'trial'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    worker
        .expect_metric("contact_import_dry_runs_total", 1.0)
        .await;

    // The same batch for real applies it; it is the first result the subscribers see.
    env.publish(&body, env.props("trial")).await;
    let (_, _, applied) = env.next_result().await;
    assert!(applied.get("dryRun").is_none(), "{applied}");
    assert_eq!(applied["counts"], result["counts"]);
    assert_eq!(env.contact_count().await, 2);
}
