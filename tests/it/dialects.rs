//! The seed APIs other than Webex, each through the real broker and database, from the
//! fixtures in tests/fixtures/ (taken from the seed documents' own examples).

use crate::common::{ORG, TestEnv, batch, org_header};
use contact_import::accounts;
use lapin::BasicProperties;
use serde_json::{Value, json};

const SAVE: &str = "user-contacts.save";
const UPDATE: &str = "user-contact.update";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A message of `kind` for the test's org (named in the `org-id` header).
fn props(message_id: &str, kind: &str, content_type: &str) -> BasicProperties {
    BasicProperties::default()
        .with_message_id(message_id.into())
        .with_type(kind.into())
        .with_content_type(content_type.into())
        .with_headers(org_header(ORG))
}

async fn add_account(env: &TestEnv, user: &str, password: &str) {
    env.db
        .execute(
            "INSERT INTO accounts (org_id, user_name, password_hash) VALUES ($1, $2, $3)",
            &[&ORG, &user, &accounts::hash(password).unwrap()],
        )
        .await
        .unwrap();
}

/// A stored contact's canonical fields: its row without ids, org and timestamps.
async fn canonical(env: &TestEnv, id: &str) -> Value {
    let id: uuid::Uuid = id.parse().unwrap();
    env.db
        .query_one(
            "SELECT to_jsonb(c) - 'contact_id' - 'org_id' - 'created_at' - 'updated_at' \
             FROM contacts c WHERE contact_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

fn failures(result: &Value) -> Vec<(String, String, u64)> {
    result["failedContacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["errorCode"].as_str().unwrap().to_owned(),
                f["statusCode"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn save_user_contacts_checks_the_account_and_stores_the_flat_fields() {
    let env = TestEnv::new().await;
    add_account(&env, "exampleUser", "examplePass").await;
    let worker = env.spawn_worker(&[]).await;

    // The seed's own example: one contact object.
    let seed = fixture("save-user-contacts-seed.json");
    env.publish(&seed, props("save-seed", SAVE, "application/json"))
        .await;
    let (routing_key, _, result) = env.next_result().await;
    assert_eq!(routing_key, ORG);
    assert_eq!(result["status"], "succeeded", "{result}");
    let stored = &result["contacts"][0];
    assert_eq!(stored["firstName"], "John");
    assert_eq!(stored["birthDate"], "1990-01-01");
    assert_eq!(
        stored["phoneNumbers"],
        json!([{"value": "1234567890", "type": "mobile", "primary": true}])
    );
    assert_eq!(stored["address"]["street"], "1234 Main St");
    assert_eq!(stored["address"]["zipCode"], "12345");
    assert!(
        stored.get("emails").is_none(),
        "an empty emailId is no email"
    );

    // A mixed batch: every failure in failedContacts, the valid neighbours stored.
    let mixed = fixture("save-user-contacts-mixed.json");
    env.publish(&mixed, props("save-mixed", SAVE, "application/json"))
        .await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["status"], "partial");
    assert_eq!(
        failures(&result),
        [
            ("1".into(), "invalid.credentials".into(), 401),
            ("2".into(), "invalid.credentials".into(), 401),
            ("3".into(), "missing.field".into(), 400),
            ("4".into(), "invalid.date".into(), 400),
        ]
    );
    let messages: Vec<&str> = result["failedContacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["errorMessage"].as_str().unwrap())
        .collect();
    assert!(
        messages[2].contains("lastName, mobileNumber"),
        "{messages:?}"
    );
    assert!(messages[3].contains("1990-02-30"), "{messages:?}");
    // An unknown user and a wrong password read the same.
    assert_eq!(
        messages[0].replace("exampleUser", "?"),
        messages[1].replace("nobody", "?")
    );

    let jane = &result["contacts"][0];
    let row = canonical(&env, jane["contactId"].as_str().unwrap()).await;
    assert_eq!(row["first_name"], "Jane");
    assert_eq!(row["middle_name"], "Q");
    assert_eq!(row["birth_date"], "1988-02-29");
    assert_eq!(row["wedding_date"], "2015-06-20");
    assert_eq!(row["anniversary_date"], "2016-06-20");
    assert_eq!(
        row["custom_fields"],
        json!({"column1": "gold customer", "column5": "referred by John"})
    );
    assert_eq!(row["groups"], json!(["Family"]));
    assert_eq!(
        row["emails"],
        json!([{"value": "jane.doe@example.com", "primary": true}])
    );
    assert_eq!(row["phone_numbers"][0]["value"], "+14155550101");
    assert_eq!(row["address"]["city"], "San Francisco");

    // Two contacts joined "Family": the group was created once, on first use.
    let groups: Vec<String> = env
        .db
        .query("SELECT name FROM contact_groups WHERE org_id = $1", &[&ORG])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(groups, ["Family"]);
    assert_eq!(env.contact_count().await, 3);

    // The password is neither stored with a contact, nor echoed, nor logged: only the
    // account's hash holds it.
    assert!(!result.to_string().contains("examplePass"));
    assert!(!result.to_string().contains("wrongPass"));
    let leaked: i64 = env
        .db
        .query_one(
            "SELECT count(*) FROM contacts c WHERE to_jsonb(c)::text LIKE '%examplePass%' \
                OR to_jsonb(c)::text LIKE '%wrongPass%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0);
    let stored_results: i64 = env
        .db
        .query_one(
            "SELECT count(*) FROM import_batches \
             WHERE position('examplePass'::bytea IN result) > 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored_results, 0);

    worker
        .expect_metric(r#"contact_import_contacts_total{outcome="failed"}"#, 4.0)
        .await;
    worker
        .expect_metric(
            r#"contact_import_messages_total{type="user-contacts.save"}"#,
            2.0,
        )
        .await;
    let log_path = worker.log.clone();
    assert!(worker.terminate().await.success());
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(!log.contains("examplePass") && !log.contains("wrongPass"));
}

#[tokio::test]
async fn update_user_contact_changes_only_phone_and_email_and_replies_in_the_seed_shape() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    let original = json!({
        "firstName": "Ram",
        "lastName": "Srini",
        "title": "Buyer",
        "emails": [{"value": "Ram123@Gmail.com", "type": "home", "primary": true}],
        "phoneNumbers": [{"value": "400 123 1234", "type": "work", "primary": true}],
        "ims": [{"value": "ram-chat-7", "type": "xmpp"}]
    });
    env.publish_json("create-ram", &batch(ORG, json!([original])))
        .await;
    let (_, _, created) = env.next_result().await;
    let id = created["contacts"][0]["contactId"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = canonical(&env, &id).await;
    let created_at: chrono::DateTime<chrono::Utc> = env
        .db
        .query_one("SELECT created_at FROM contacts", &[])
        .await
        .unwrap()
        .get(0);

    let replies = format!("t{}.chat-replies", env.id);
    env.declare_queue(&replies).await;
    let request = |message_id: &str, body: &[u8]| {
        let props = props(message_id, UPDATE, "application/json")
            .with_reply_to(replies.as_str().into())
            .with_correlation_id(format!("corr-{message_id}").into());
        (body.to_vec(), props)
    };

    // The fixture addresses the user by the email address (any case).
    let (body, p) = request("upd-1", &fixture("update-user-contact.json"));
    env.publish(&body, p).await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["counts"]["updated"], 1);
    let (reply_props, reply) = env.next_message(&replies).await;
    assert_eq!(
        reply_props.correlation_id().as_ref().map(|c| c.as_str()),
        Some("corr-upd-1")
    );
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(
        reply,
        json!({
            "responseType": "text",
            "responseId": "upd-1",
            "responseMessages": [{"simpleResponse": {
                "responseText": "User Contact details updated successfully "
            }}],
            "statusCode": 200
        })
    );

    let after = canonical(&env, &id).await;
    assert_eq!(
        after["emails"],
        json!([
            {"value": "ram.srini@example.in", "primary": true},
            {"value": "Ram123@Gmail.com", "type": "home", "primary": false}
        ])
    );
    assert_eq!(
        after["phone_numbers"],
        json!([
            {"value": "+919845012345", "primary": true},
            {"value": "4001231234", "type": "work", "primary": false}
        ])
    );
    for unchanged in ["first_name", "last_name", "title", "ims"] {
        assert_eq!(after[unchanged], before[unchanged], "{unchanged}");
    }
    let created_after: chrono::DateTime<chrono::Utc> = env
        .db
        .query_one("SELECT created_at FROM contacts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(created_after, created_at);

    // By chat id, with the seed's `uuid` name; only the email changes this time.
    let by_chat_id = json!({"uuid": "ram-chat-7", "queryInfo": {"parameters": {"params":
        {"accountInfo": {"userContact": {"emailId": "ram@work.example"}}}}}});
    let (body, p) = request("upd-2", &serde_json::to_vec(&by_chat_id).unwrap());
    env.publish(&body, p).await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["status"], "succeeded", "{result}");
    env.next_message(&replies).await;
    let after_chat = canonical(&env, &id).await;
    assert_eq!(after_chat["emails"][0]["value"], "ram@work.example");
    assert_eq!(after_chat["emails"].as_array().unwrap().len(), 3);
    assert_eq!(after_chat["phone_numbers"], after["phone_numbers"]);

    // An unknown user is a 404, said in the reply's text; nothing changes.
    let unknown = String::from_utf8(fixture("update-user-contact.json"))
        .unwrap()
        .replace("ram123@gmail.com", "nobody@example.com");
    let (body, p) = request("upd-3", unknown.as_bytes());
    env.publish(&body, p).await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(
        failures(&result),
        [("0".into(), "contact.not.found".into(), 404)]
    );
    let (_, reply) = env.next_message(&replies).await;
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["statusCode"], 404);
    let text = reply["responseMessages"][0]["simpleResponse"]["responseText"]
        .as_str()
        .unwrap();
    assert!(
        text.starts_with("User Contact details could not be updated")
            && text.contains("nobody@example.com"),
        "{text}"
    );

    // The seed's example verbatim still holds its template placeholders: "$emailId" is no
    // email address (nor "$phoneNumber" a phone number).
    let (body, p) = request("upd-seed", &fixture("update-user-contact-seed.json"));
    env.publish(&body, p).await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(
        failures(&result),
        [("0".into(), "invalid.email".into(), 400)]
    );
    env.next_message(&replies).await;
    assert_eq!(canonical(&env, &id).await, after_chat);

    // A redelivered request replays the same reply.
    let (body, p) = request("upd-1", &fixture("update-user-contact.json"));
    env.publish(&body, p).await;
    let (_, _, replayed) = env.next_result().await;
    assert_eq!(replayed["status"], "succeeded");
    let (_, reply) = env.next_message(&replies).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&reply).unwrap()["responseId"],
        "upd-1"
    );
    assert_eq!(canonical(&env, &id).await, after_chat, "not applied twice");
    worker
        .expect_metric("contact_import_batches_replayed_total", 1.0)
        .await;

    // Once two contacts share the chat id, it names nobody in particular: 409.
    let twin = json!({"displayName": "Twin", "ims": [{"value": "RAM-CHAT-7"}]});
    env.publish_json("create-twin", &batch(ORG, json!([twin])))
        .await;
    env.next_result().await;
    let (body, p) = request("upd-4", &serde_json::to_vec(&by_chat_id).unwrap());
    env.publish(&body, p).await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(
        failures(&result),
        [("0".into(), "ambiguous.contact".into(), 409)]
    );
    env.next_message(&replies).await;
    assert_eq!(canonical(&env, &id).await, after_chat);
}

#[tokio::test]
async fn the_same_person_is_the_same_canonical_contact_through_webex_and_save() {
    let env = TestEnv::new().await;
    add_account(&env, "exampleUser", "examplePass").await;
    let _worker = env.spawn_worker(&[]).await;
    let webex = json!({
        "firstName": "John", "lastName": "Doe",
        "phoneNumbers": [{"value": "123-456-7890", "type": "mobile", "primary": true}],
        "emails": [{"value": "john@example.com", "primary": true}],
        "address": {"street": "1234 Main St", "city": "Anytown", "state": "Anystate",
                    "country": "USA", "zipCode": "12345"}
    });
    env.publish_json("same-webex", &batch(ORG, json!([webex])))
        .await;
    let (_, _, from_webex) = env.next_result().await;
    let save = String::from_utf8(fixture("save-user-contacts-seed.json"))
        .unwrap()
        .replace(r#""emailId": """#, r#""emailId": "john@example.com""#)
        .replace(r#""birthDate": "1990-01-01","#, "");
    env.publish(
        save.as_bytes(),
        props("same-save", SAVE, "application/json"),
    )
    .await;
    let (_, _, from_save) = env.next_result().await;
    let ids = [&from_webex, &from_save]
        .map(|r| r["contacts"][0]["contactId"].as_str().unwrap().to_owned());
    assert_ne!(ids[0], ids[1]);
    let webex_row = canonical(&env, &ids[0]).await;
    assert_eq!(webex_row, canonical(&env, &ids[1]).await);
    assert_eq!(webex_row["phone_numbers"][0]["value"], "1234567890");
}
