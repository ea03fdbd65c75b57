use crate::common::{ORG, TestEnv, batch, header};
use serde_json::json;

#[tokio::test]
async fn an_unreadable_message_is_rejected_and_dead_lettered_with_its_reason() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    env.publish(b"this is not json", env.props("garbage-1"))
        .await;

    let (routing_key, _, result) = env.next_result().await;
    assert_eq!(routing_key, "unknown");
    assert_eq!(result["batchId"], "garbage-1");
    assert_eq!(result["status"], "rejected");
    assert_eq!(result["error"]["code"], "malformed.body");
    assert_eq!(result["error"]["statusCode"], 400);
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a Webex bulk contacts object")
    );

    let (properties, body) = env.next_dead_letter().await;
    assert_eq!(body, b"this is not json", "the original message is kept");
    assert_eq!(
        properties.message_id().as_ref().map(|m| m.as_str()),
        Some("garbage-1")
    );
    assert_eq!(
        header(&properties, "x-contact-import-reason").as_deref(),
        Some("malformed.body")
    );
    assert!(
        header(&properties, "x-contact-import-error")
            .unwrap()
            .contains("not a Webex bulk contacts object")
    );

    assert_eq!(env.contact_count().await, 0);
    assert_eq!(
        env.queue_depth(&env.broker.import_queue).await,
        0,
        "acked, not requeued"
    );
    worker
        .expect_metric(
            r#"contact_import_dead_lettered_total{reason="malformed.body"}"#,
            1.0,
        )
        .await;
    worker
        .expect_metric(r#"contact_import_batches_total{status="rejected"}"#, 1.0)
        .await;
}

#[tokio::test]
async fn batches_without_org_of_unknown_type_or_content_type_are_rejected() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    let no_org = serde_json::to_vec(&json!({"contacts": [{"displayName": "X"}]})).unwrap();
    env.publish(&no_org, env.props("no-org")).await;
    let valid = serde_json::to_vec(&batch(ORG, json!([{"displayName": "X"}]))).unwrap();
    env.publish(
        &valid,
        env.props("wrong-type").with_type("fax.contacts".into()),
    )
    .await;
    env.publish(
        &valid,
        env.props("wrong-ct").with_content_type("text/csv".into()),
    )
    .await;

    let mut codes = Vec::new();
    for _ in 0..3 {
        let (_, _, result) = env.next_result().await;
        assert_eq!(result["status"], "rejected");
        codes.push((
            result["batchId"].as_str().unwrap().to_owned(),
            result["error"]["code"].as_str().unwrap().to_owned(),
        ));
        let (properties, _) = env.next_dead_letter().await;
        assert!(header(&properties, "x-contact-import-reason").is_some());
    }
    codes.sort();
    assert_eq!(
        codes,
        [
            ("no-org".to_owned(), "missing.org.id".to_owned()),
            ("wrong-ct".to_owned(), "unsupported.content.type".to_owned()),
            ("wrong-type".to_owned(), "unsupported.type".to_owned()),
        ]
    );
    assert_eq!(env.contact_count().await, 0);
}

#[tokio::test]
async fn a_batch_id_reused_for_a_different_body_is_rejected() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    env.publish_json("reused", &batch(ORG, json!([{"displayName": "First"}])))
        .await;
    assert_eq!(env.next_result().await.2["status"], "succeeded");
    env.publish_json("reused", &batch(ORG, json!([{"displayName": "Second"}])))
        .await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["status"], "rejected");
    assert_eq!(result["error"]["code"], "batch.id.conflict");
    assert_eq!(result["error"]["statusCode"], 409);
    let (properties, _) = env.next_dead_letter().await;
    assert_eq!(
        header(&properties, "x-contact-import-reason").as_deref(),
        Some("batch.id.conflict")
    );
    let names: Vec<String> = env
        .db
        .query("SELECT display_name FROM contacts", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["First"]);
}
