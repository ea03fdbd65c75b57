//! The seed APIs other than Webex, each through the real broker and database, from the
//! fixtures in tests/fixtures/ (taken from the seed documents' own examples).

use crate::common::{ORG, TestEnv, batch, failures, org_header};
use contact_import::contact::credentials;
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
            &[&ORG, &user, &credentials::hash(password).unwrap()],
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

    // Without a message_id the batch id is a hash of the body without its passwords: the
    // result shows it, and a fast hash of the password would be guessable.
    let unnamed = BasicProperties::default()
        .with_type(SAVE.into())
        .with_content_type("application/json".into())
        .with_headers(org_header(ORG));
    env.publish(&seed, unnamed.clone()).await;
    let (_, _, result) = env.next_result().await;
    let without = contact_import::dialect::save::without_passwords(&seed).unwrap();
    assert_eq!(
        result["batchId"],
        format!("sha256:{}", contact_import::ids::body_sha256(&without))
    );
    // The same body with another password is another batch under the same id.
    let other = String::from_utf8(seed.clone())
        .unwrap()
        .replace("examplePass", "otherPass");
    env.publish(other.as_bytes(), unnamed).await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["error"]["code"], "batch.id.conflict", "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs a new message_id")
    );
    // The dead letter keeps the body as sent, so it can be replayed; `dlq show` hides it.
    let batch_id = result["batchId"].as_str().unwrap();
    let (ok, shown, said) = env.cli(&["dlq", "show", batch_id]).await;
    assert!(ok, "{said}");
    assert!(shown.contains(r#""password": "<hidden>""#), "{shown}");
    assert!(!shown.contains("otherPass"), "{shown}");
    let (_, letter) = env.next_dead_letter().await;
    assert_eq!(letter, other.as_bytes());

    let log_path = worker.log.clone();
    assert!(worker.terminate().await.success());
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(!log.contains("examplePass") && !log.contains("wrongPass"));
    assert!(!log.contains("otherPass"));
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

const DOCUSIGN: &str = "docusign.contacts.create";

/// A DocuSign message whose account (org) is in the `account-id` header.
fn docusign_props(message_id: &str, content_type: &str) -> BasicProperties {
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "account-id".into(),
        lapin::types::AMQPValue::LongString(ORG.into()),
    );
    BasicProperties::default()
        .with_message_id(message_id.into())
        .with_type(DOCUSIGN.into())
        .with_content_type(content_type.into())
        .with_headers(headers)
}

/// The `errorDetails` codes of an XML `contactUpdateResponse`, in contact order.
fn xml_error_codes(xml: &str) -> Vec<String> {
    let document = roxmltree::Document::parse(xml).unwrap();
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "contactUpdateResponse");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.docusign.com/restapi")
    );
    root.descendants()
        .filter(|n| n.has_tag_name(("http://www.docusign.com/restapi", "contact")))
        .map(|contact| {
            contact
                .children()
                .find(|n| n.has_tag_name(("http://www.docusign.com/restapi", "errorDetails")))
                .and_then(|d| d.children().find(|n| n.tag_name().name() == "errorCode"))
                .and_then(|c| c.text())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn docusign_json_xml_and_csv_store_the_same_contacts_and_answer_in_their_format() {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    let mut stored_by_format = Vec::new();
    for (file, content_type) in [
        ("docusign-contacts.json", "application/json"),
        ("docusign-contacts.xml", "application/xml"),
        ("docusign-contacts.csv", "text/csv; charset=utf-8"),
    ] {
        env.publish(&fixture(file), docusign_props(file, content_type))
            .await;
        let (routing_key, _, result) = env.next_result().await;
        assert_eq!(routing_key, ORG);
        assert_eq!(result["status"], "partial", "{file}: {result}");
        assert_eq!(
            failures(&result),
            [("2".into(), "invalid.email".into(), 400)],
            "{file}"
        );
        let answer = &result["contactUpdateResponse"];
        let codes = match content_type {
            "application/json" => answer["contacts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["errorDetails"]["errorCode"].as_str().unwrap().to_owned())
                .collect(),
            _ => xml_error_codes(answer.as_str().expect("an XML document")),
        };
        assert_eq!(codes, ["SUCCESS", "SUCCESS", "INVALID_EMAIL"], "{file}");
        if content_type == "application/json" {
            let ada = &answer["contacts"][0];
            assert_eq!(ada["name"], "Ada Lovelace");
            assert_eq!(ada["contactId"], result["contacts"][0]["contactId"]);
            assert_eq!(ada["errorDetails"]["message"], "");
            assert_eq!(answer["contacts"][2]["name"], "Charles Babbage");
            // Failures name DocuSign's fields, in both lists.
            let message = "emails[0] 'not-an-email' is not a valid email address";
            assert_eq!(answer["contacts"][2]["errorDetails"]["message"], message);
            assert_eq!(result["failedContacts"][0]["errorMessage"], message);
        }
        let mut rows = Vec::new();
        for stored in result["contacts"].as_array().unwrap().iter().take(2) {
            rows.push(canonical(&env, stored["contactId"].as_str().unwrap()).await);
        }
        stored_by_format.push(rows);
    }
    assert_eq!(stored_by_format[0], stored_by_format[1], "JSON and XML");
    assert_eq!(stored_by_format[0], stored_by_format[2], "JSON and CSV");
    let grace = &stored_by_format[0][1];
    assert_eq!(grace["display_name"], "Grace Hopper");
    assert_eq!(grace["company_name"], "Remington Rand, UNIVAC Division");
    assert_eq!(grace["shared"], false);
    assert_eq!(grace["cloud_provider"], "rooms");
    assert_eq!(grace["signing_group_name"], "Compiler Review");
    assert_eq!(
        grace["phone_numbers"],
        json!([{"value": "+12125550199", "type": "work", "primary": false}])
    );
    assert_eq!(env.contact_count().await, 6);
    worker
        .expect_metric(
            r#"contact_import_messages_total{type="docusign.contacts.create"}"#,
            3.0,
        )
        .await;
}

#[tokio::test]
async fn docusign_seed_examples_fail_per_contact_and_a_docusign_contact_matches_its_webex_twin() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    // The seed's own examples carry "sample string" values: every contact fails alone, and
    // the answer says why in DocuSign's shape.
    for (file, content_type) in [
        ("docusign-seed-example.json", "application/json"),
        ("docusign-seed-example.xml", "text/xml"),
    ] {
        env.publish(&fixture(file), docusign_props(file, content_type))
            .await;
        let (_, _, result) = env.next_result().await;
        assert_eq!(result["status"], "failed", "{file}: {result}");
        assert_eq!(
            failures(&result),
            [("0".into(), "invalid.value".into(), 400)],
            "{file}"
        );
        let answer = &result["contactUpdateResponse"];
        let codes = match answer.as_str() {
            Some(xml) => xml_error_codes(xml),
            None => vec![
                answer["contacts"][0]["errorDetails"]["errorCode"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ],
        };
        assert_eq!(codes, ["INVALID_VALUE"], "{file}");
    }
    assert_eq!(env.contact_count().await, 0);

    let docusign = json!({"contacts": [{
        "name": "Ada Lovelace", "emails": ["ada@example.com"], "organization": "Analytical Engines",
        "contactPhoneNumbers": [{"phoneNumber": "+1 415 555 0100", "phoneType": "mobile"}]
    }]});
    env.publish(
        &serde_json::to_vec(&docusign).unwrap(),
        docusign_props("twin-docusign", "application/json"),
    )
    .await;
    let (_, _, from_docusign) = env.next_result().await;
    let webex = json!({
        "displayName": "Ada Lovelace", "companyName": "Analytical Engines",
        "emails": [{"value": "ada@example.com"}],
        "phoneNumbers": [{"value": "+14155550100", "type": "mobile"}]
    });
    env.publish_json("twin-webex", &batch(ORG, json!([webex])))
        .await;
    let (_, _, from_webex) = env.next_result().await;
    let ids = [&from_docusign, &from_webex]
        .map(|r| r["contacts"][0]["contactId"].as_str().unwrap().to_owned());
    assert_eq!(
        canonical(&env, &ids[0]).await,
        canonical(&env, &ids[1]).await
    );
}

#[tokio::test]
async fn docusign_without_content_type_or_with_a_dtd_is_rejected_and_dead_lettered() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    let no_content_type = BasicProperties::default()
        .with_message_id("no-ct".into())
        .with_type(DOCUSIGN.into())
        .with_headers(org_header(ORG));
    env.publish(&fixture("docusign-contacts.json"), no_content_type)
        .await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["status"], "rejected");
    assert_eq!(result["error"]["code"], "unsupported.content.type");
    assert_eq!(result["error"]["statusCode"], 415);
    // And in DocuSign's own shape.
    assert_eq!(
        result["errorDetails"]["errorCode"],
        "UNSUPPORTED_CONTENT_TYPE"
    );
    assert_eq!(
        result["errorDetails"]["message"],
        result["error"]["message"]
    );
    let (letter, _) = env.next_dead_letter().await;
    assert_eq!(
        crate::common::header(&letter, "x-contact-import-reason").as_deref(),
        Some("unsupported.content.type")
    );

    let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE contactModRequest [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<contactModRequest xmlns="http://www.docusign.com/restapi"><contacts><contact>
<name>&lol3;</name></contact></contacts></contactModRequest>"#;
    env.publish(bomb.as_bytes(), docusign_props("bomb", "application/xml"))
        .await;
    let (_, _, result) = env.next_result().await;
    assert_eq!(result["error"]["code"], "malformed.body", "{result}");
    let details = result["errorDetails"]
        .as_str()
        .expect("XML for an XML request");
    let document = roxmltree::Document::parse(details).unwrap();
    assert_eq!(document.root_element().tag_name().name(), "errorDetails");
    assert!(
        details.contains("<errorCode>MALFORMED_BODY</errorCode>"),
        "{details}"
    );
    let (letter, body) = env.next_dead_letter().await;
    assert_eq!(
        crate::common::header(&letter, "x-contact-import-reason").as_deref(),
        Some("malformed.body")
    );
    assert_eq!(
        body,
        bomb.as_bytes(),
        "the dead letter keeps the original body"
    );
    assert_eq!(env.contact_count().await, 0);
}

#[tokio::test]
async fn a_docusign_contact_id_imports_once_and_updates_afterwards() {
    let env = TestEnv::new().await;
    let _worker = env.spawn_worker(&[]).await;
    let send = |message_id: &'static str, contacts: Value| {
        let env = &env;
        async move {
            let body = serde_json::to_vec(&json!({ "contacts": contacts })).unwrap();
            env.publish(&body, docusign_props(message_id, "application/json"))
                .await;
            env.next_result().await.2
        }
    };

    // DocuSign's own id: a new contact, answered with that id.
    let first = send(
        "ds-1",
        json!([{"contactId": "ds-123", "name": "Ada Lovelace", "organization": "Analytical Engines"}]),
    )
    .await;
    assert_eq!(first["counts"]["created"], 1, "{first}");
    let ours = first["contacts"][0]["contactId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        first["contactUpdateResponse"]["contacts"][0]["contactId"],
        "ds-123"
    );

    // Imported again under the same id: the same contact, updated, absent fields kept.
    let again = send(
        "ds-2",
        json!([{"contactId": "ds-123", "emails": ["ada@example.com"]}]),
    )
    .await;
    assert_eq!(again["counts"]["updated"], 1, "{again}");
    assert_eq!(again["contacts"][0]["contactId"], ours.as_str());
    let row = canonical(&env, &ours).await;
    assert_eq!(row["display_name"], "Ada Lovelace");
    assert_eq!(row["company_name"], "Analytical Engines");
    assert_eq!(row["emails"][0]["value"], "ada@example.com");

    // Our own id, as a previous answer gave it, updates that contact too.
    let by_ours = send("ds-3", json!([{"contactId": ours, "shared": "true"}])).await;
    assert_eq!(by_ours["counts"]["updated"], 1, "{by_ours}");
    assert_eq!(canonical(&env, &ours).await["shared"], true);
    assert_eq!(env.contact_count().await, 1);

    // A new id without a name is a new contact without a name; the same id twice in one
    // batch would write one contact twice.
    let refused = send(
        "ds-4",
        json!([
            {"contactId": "ds-999", "emails": ["x@example.com"]},
            {"contactId": "ds-7", "name": "Grace"},
            {"contactId": "ds-7", "name": "Grace Hopper"},
            {"contactId": "ds-123", "name": "Ada"},
            {"contactId": ours, "name": "Ada L."}
        ]),
    )
    .await;
    assert_eq!(
        failures(&refused),
        [
            ("0".into(), "missing.name".into(), 400),
            ("2".into(), "duplicate.in.batch".into(), 409),
            ("4".into(), "duplicate.in.batch".into(), 409),
        ]
    );
    assert_eq!(refused["counts"]["created"], 1);
    assert_eq!(refused["counts"]["updated"], 1);
    assert_eq!(env.contact_count().await, 2);
}
