use crate::common::{ORG, TestEnv, batch};
use serde_json::{Value, json};

fn seed_contact() -> Value {
    json!({
        "displayName": "John Andersen",
        "firstName": "John",
        "lastName": "Andersen",
        "companyName": "Cisco Systems",
        "title": "GM",
        "address": "{\"city\" : \"Milpitas\", \"country\" : \"US\", \"street\" : \"1099 Bird Ave.\", \"zipCode\" : \"99212\"}",
        "avatarURL": "https://avatar-prod-us-east-2.webexcontent.com/default_avatar~1600",
        "primaryContactMethod": "SIPADDRESS",
        "source": "Webex4Broadworks",
        "emails": [{ "value": "user1@example.home.com", "type": "home", "primary": false }],
        "phoneNumbers": [{ "value": "400 123 1234", "type": "work", "primary": true }],
        "sipAddresses": [{ "value": "sipAddress value1", "type": "enterprise", "primary": true }],
        "ims": [{ "value": "aim_account_ID", "type": "aim", "primary": true }],
        "groups": ["sales"]
    })
}

#[tokio::test]
async fn a_valid_batch_is_stored_and_reported() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    env.publish_json(
        "valid-1",
        &batch(ORG, json!([seed_contact(), {"firstName": "Ada"}])),
    )
    .await;

    let (routing_key, properties, result) = env.next_result().await;
    assert_eq!(routing_key, ORG);
    assert_eq!(
        properties.correlation_id().as_ref().map(|c| c.as_str()),
        Some("valid-1")
    );
    assert_eq!(result["batchId"], "valid-1");
    assert_eq!(result["orgId"], ORG);
    assert_eq!(result["status"], "succeeded");
    assert_eq!(
        result["counts"],
        json!({"received": 2, "created": 2, "updated": 0, "failed": 0})
    );
    assert_eq!(result["failedContacts"], json!([]));
    let stored = &result["contacts"][0];
    assert_eq!(
        stored["schemas"],
        "urn:cisco:codev:identity:contact:core:1.0"
    );
    assert_eq!(stored["orgId"], ORG);
    assert_eq!(stored["address"]["city"], "Milpitas");
    assert_eq!(stored["phoneNumbers"][0]["value"], "4001231234");
    assert!(stored["meta"]["created"].is_string() && stored["meta"]["lastModified"].is_string());

    let id: uuid::Uuid = stored["contactId"].as_str().unwrap().parse().unwrap();
    let row = env
        .db
        .query_one(
            "SELECT org_id, display_name, company_name, phone_numbers->0->>'value', address->>'zipCode' \
             FROM contacts WHERE contact_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), ORG);
    assert_eq!(row.get::<_, String>(1), "John Andersen");
    assert_eq!(row.get::<_, String>(2), "Cisco Systems");
    assert_eq!(row.get::<_, String>(3), "4001231234");
    assert_eq!(row.get::<_, String>(4), "99212");
    assert_eq!(env.contact_count().await, 2);

    worker
        .expect_metric(r#"contact_import_batches_total{status="succeeded"}"#, 1.0)
        .await;
    worker
        .expect_metric(r#"contact_import_contacts_total{outcome="created"}"#, 2.0)
        .await;
    worker
        .expect_metric("contact_import_batch_duration_seconds_count", 1.0)
        .await;
}

#[tokio::test]
async fn a_mixed_batch_reports_each_invalid_contact_and_stores_the_rest() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    let contacts = json!([
        {"displayName": "Valid One"},
        {"displayName": "Bad Email", "emails": [{"value": "not-an-email"}]},
        {"title": "nameless"},
        {"displayName": "Bad Phone", "phoneNumbers": [{"value": "12ab34"}]},
        {"displayName": "Two Primaries", "emails": [
            {"value": "a@example.com", "primary": true}, {"value": "b@example.com", "primary": true}]},
        {"displayName": "Bad Type", "phoneNumbers": [{"value": "12345", "type": "yacht"}]},
        {"displayName": "Bad Id", "contactId": "not-a-uuid"},
        {"firstName": 42},
        {"lastName": "Valid Two", "primaryContactMethod": "email"},
        {"displayName": "Nul\u{0}Byte"}
    ]);
    env.publish_json("mixed-1", &batch(ORG, contacts)).await;

    let (_, _, result) = env.next_result().await;
    assert_eq!(result["status"], "partial");
    assert_eq!(
        result["counts"],
        json!({"received": 10, "created": 2, "updated": 0, "failed": 8})
    );
    let failed: Vec<(String, String, u64, bool)> = result["failedContacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["errorCode"].as_str().unwrap().to_owned(),
                f["statusCode"].as_u64().unwrap(),
                f["retryable"].as_bool().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("1", "invalid.email"),
        ("2", "missing.name"),
        ("3", "invalid.phone"),
        ("4", "multiple.primary"),
        ("5", "invalid.type"),
        ("6", "invalid.contact.id"),
        ("7", "invalid.contact"),
        ("9", "invalid.characters"),
    ]
    .map(|(id, code)| (id.to_owned(), code.to_owned(), 400, false));
    assert_eq!(failed, expected);
    for message in result["failedContacts"].as_array().unwrap() {
        assert!(!message["errorMessage"].as_str().unwrap().is_empty());
    }
    let nulls: Vec<bool> = result["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::is_null)
        .collect();
    assert_eq!(
        nulls,
        [false, true, true, true, true, true, true, true, false, true]
    );
    assert_eq!(result["contacts"][8]["primaryContactMethod"], "EMAIL");

    let names: Vec<String> = env
        .db
        .query(
            "SELECT coalesce(display_name, last_name) FROM contacts ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["Valid One", "Valid Two"]);
}

#[tokio::test]
async fn an_update_changes_the_given_fields_and_keeps_the_rest() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    env.publish_json("create", &batch(ORG, json!([seed_contact()])))
        .await;
    let (_, _, created) = env.next_result().await;
    let contact = &created["contacts"][0];
    let id = contact["contactId"].as_str().unwrap().to_owned();

    let update = json!([{
        "contactId": id,
        "title": "CEO",
        "emails": [{"value": "john@example.com", "type": "work", "primary": true}]
    }]);
    env.publish_json("update", &batch(ORG, update)).await;
    let (_, _, updated) = env.next_result().await;
    assert_eq!(updated["status"], "succeeded");
    assert_eq!(
        updated["counts"],
        json!({"received": 1, "created": 0, "updated": 1, "failed": 0})
    );
    let after = &updated["contacts"][0];
    assert_eq!(after["contactId"], id.as_str());
    assert_eq!(after["title"], "CEO");
    assert_eq!(
        after["displayName"], "John Andersen",
        "fields absent from the update are kept"
    );
    assert_eq!(
        after["emails"],
        json!([{"value": "john@example.com", "type": "work", "primary": true}])
    );
    assert_eq!(after["meta"]["created"], contact["meta"]["created"]);
    assert!(after["meta"]["lastModified"].as_str() > contact["meta"]["lastModified"].as_str());

    let uuid: uuid::Uuid = id.parse().unwrap();
    let row = env
        .db
        .query_one(
            "SELECT title, display_name, emails->0->>'value' FROM contacts WHERE contact_id = $1",
            &[&uuid],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2)
        ),
        (
            "CEO".into(),
            "John Andersen".into(),
            "john@example.com".into()
        )
    );
    assert_eq!(env.contact_count().await, 1);
    worker
        .expect_metric(r#"contact_import_contacts_total{outcome="updated"}"#, 1.0)
        .await;
}

#[tokio::test]
async fn a_contact_sent_again_unchanged_is_counted_updated_and_not_rewritten() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    let other = json!({"displayName": "Grace Hopper", "title": "Rear Admiral"});
    env.publish_json("sync-1", &batch(ORG, json!([seed_contact(), other])))
        .await;
    let (_, _, first) = env.next_result().await;
    let ids: Vec<String> = (0..2)
        .map(|i| {
            first["contacts"][i]["contactId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // The row's version: a rewrite makes a new one (xmin) even with equal values.
    let version = |id: String| {
        let db = &env.db;
        async move {
            let uuid: uuid::Uuid = id.parse().unwrap();
            db.query_one(
                "SELECT xmin::text, updated_at, title FROM contacts WHERE contact_id = $1",
                &[&uuid],
            )
            .await
            .map(|row| {
                (
                    row.get::<_, String>(0),
                    row.get::<_, chrono::DateTime<chrono::Utc>>(1),
                    row.get::<_, String>(2),
                )
            })
            .unwrap()
        }
    };
    let before = (version(ids[0].clone()).await, version(ids[1].clone()).await);

    // The next day's re-sync: the same two contacts by id, the second with a new title.
    let mut same = seed_contact();
    same["contactId"] = json!(ids[0]);
    let changed = json!({"contactId": ids[1], "displayName": "Grace Hopper", "title": "Admiral"});
    env.publish_json("sync-2", &batch(ORG, json!([same, changed])))
        .await;
    let (_, _, second) = env.next_result().await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(
        second["counts"],
        json!({"received": 2, "created": 0, "updated": 2, "failed": 0})
    );
    assert_eq!(second["contacts"][0]["contactId"], ids[0].as_str());
    assert_eq!(
        second["contacts"][0]["meta"], first["contacts"][0]["meta"],
        "an unchanged contact keeps its lastModified"
    );
    assert_eq!(second["contacts"][0]["displayName"], "John Andersen");
    assert_eq!(second["contacts"][1]["title"], "Admiral");

    let after = (version(ids[0].clone()).await, version(ids[1].clone()).await);
    assert_eq!(after.0, before.0, "the unchanged row was rewritten");
    assert_ne!(after.1.0, before.1.0, "the changed row was not written");
    assert_eq!(after.1.2, "Admiral");
    assert!(after.1.1 > before.1.1);
}

#[tokio::test]
async fn an_update_of_an_unknown_contact_or_of_another_orgs_contact_is_404() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    env.publish_json(
        "other-org",
        &batch("other-org", json!([{"displayName": "Theirs"}])),
    )
    .await;
    let (routing_key, _, theirs) = env.next_result().await;
    assert_eq!(routing_key, "other-org");
    let their_id = theirs["contacts"][0]["contactId"]
        .as_str()
        .unwrap()
        .to_owned();

    let updates = json!([
        {"contactId": "6847ee0f-5e9c-4403-9f0e-0aa8552f7828", "title": "nobody"},
        {"contactId": their_id, "displayName": "Hijacked"}
    ]);
    env.publish_json("unknown", &batch(ORG, updates)).await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["status"], "failed");
    let failed = result["failedContacts"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    for (index, failure) in failed.iter().enumerate() {
        assert_eq!(failure["id"], index.to_string());
        assert_eq!(failure["errorCode"], "contact.not.found");
        assert_eq!(failure["statusCode"], 404);
    }
    let rows = env
        .db
        .query("SELECT org_id, display_name FROM contacts", &[])
        .await
        .unwrap();
    let rows: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows, [("other-org".to_owned(), "Theirs".to_owned())]);
}

#[tokio::test]
async fn the_later_of_two_updates_of_one_contact_in_a_batch_is_409() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    env.publish_json("create", &batch(ORG, json!([{"displayName": "Once"}])))
        .await;
    let (_, _, created) = env.next_result().await;
    let id = created["contacts"][0]["contactId"].clone();

    env.publish_json(
        "dup",
        &batch(
            ORG,
            json!([{"contactId": id, "title": "first"}, {"contactId": id, "title": "second"}]),
        ),
    )
    .await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["status"], "partial");
    assert_eq!(result["contacts"][0]["title"], "first");
    assert_eq!(result["failedContacts"][0]["id"], "1");
    assert_eq!(
        result["failedContacts"][0]["errorCode"],
        "duplicate.in.batch"
    );
    assert_eq!(result["failedContacts"][0]["statusCode"], 409);
    let title: String = env
        .db
        .query_one("SELECT title FROM contacts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(title, "first");
}

#[tokio::test]
async fn a_redelivered_batch_is_not_applied_twice() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    let body = batch(
        ORG,
        json!([{"displayName": "A"}, {"displayName": "B"}, {"title": "no name"}]),
    );
    env.publish_json("same-id", &body).await;
    let (_, _, first) = env.next_result().await;
    env.publish_json("same-id", &body).await;
    let (_, _, second) = env.next_result().await;
    assert_eq!(first, second, "the redelivery gets the stored result");
    assert_eq!(env.contact_count().await, 2);

    // Without a message_id the batch id is the body's hash, so a republished body is a
    // redelivery too.
    let unnamed = serde_json::to_vec(&batch(ORG, json!([{"displayName": "C"}]))).unwrap();
    let props = lapin::BasicProperties::default().with_content_type("application/json".into());
    env.publish(&unnamed, props.clone()).await;
    let (_, _, first) = env.next_result().await;
    env.publish(&unnamed, props).await;
    let (_, _, second) = env.next_result().await;
    assert!(first["batchId"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(first, second);
    assert_eq!(env.contact_count().await, 3);
    worker
        .expect_metric("contact_import_batches_replayed_total", 2.0)
        .await;
    let batches: i64 = env
        .db
        .query_one("SELECT count(*) FROM import_batches", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(batches, 2);
}

#[tokio::test]
async fn the_org_may_come_from_the_org_id_header_and_results_go_to_reply_to() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    let body = serde_json::to_vec(&json!({"contacts": [{"displayName": "Header Org"}]})).unwrap();
    // The reply_to queue is the results queue itself, bound through the default exchange.
    let reply_queue = format!("t{}.replies", env.id);
    env.declare_queue(&reply_queue).await;
    let props = env
        .props("hdr-1")
        .with_headers(crate::common::org_header("org-from-header"))
        .with_reply_to(reply_queue.as_str().into())
        .with_correlation_id("corr-7".into());
    env.publish(&body, props).await;
    let (routing_key, properties, result) = env.next_result().await;
    assert_eq!(routing_key, "org-from-header");
    assert_eq!(
        properties.correlation_id().as_ref().map(|c| c.as_str()),
        Some("corr-7")
    );
    assert_eq!(result["orgId"], "org-from-header");
    let (reply_props, reply) = env.next_message(&reply_queue).await;
    assert_eq!(
        reply_props.correlation_id().as_ref().map(|c| c.as_str()),
        Some("corr-7")
    );
    assert_eq!(serde_json::from_slice::<Value>(&reply).unwrap(), result);
}
