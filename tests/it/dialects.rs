//! The seed APIs other than Webex, each through the real broker and database, from the
//! fixtures in tests/fixtures/ (taken from the seed documents' own examples).

use crate::common::{ORG, TestEnv, batch, failures, fixture, header, org_header};
use crate::support::worker::Worker;
use lapin::BasicProperties;
use serde_json::{Value, json};

const SAVE: &str = "user-contacts.save";
const UPDATE: &str = "user-contact.update";

/// A message of `kind` for the test's org (named in the `org-id` header).
fn props(message_id: &str, kind: &str, content_type: &str) -> BasicProperties {
    BasicProperties::default()
        .with_message_id(message_id.into())
        .with_type(kind.into())
        .with_content_type(content_type.into())
        .with_headers(org_header(ORG))
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

/// A test's world and a worker for it.
async fn env_with_worker() -> (TestEnv, Worker) {
    let env = TestEnv::new().await;
    let worker = env.spawn_worker(&[]).await;
    (env, worker)
}

/// A test world for `user-contacts.save`: the seed's account, and a worker.
async fn save_env() -> (TestEnv, Worker) {
    let env = TestEnv::new().await;
    env.add_account("exampleUser", "examplePass").await;
    let worker = env.spawn_worker(&[]).await;
    (env, worker)
}

/// A `user-contacts.save` message without a message_id.
fn unnamed_save() -> BasicProperties {
    BasicProperties::default()
        .with_type(SAVE.into())
        .with_content_type("application/json".into())
        .with_headers(org_header(ORG))
}

/// Stops the worker (it must exit 0) and returns its log.
async fn log_after_stop(worker: Worker) -> String {
    let log_path = worker.log.clone();
    assert!(worker.terminate().await.success());
    std::fs::read_to_string(log_path).unwrap()
}

#[tokio::test]
async fn save_user_contacts_seed_example_stores_the_flat_fields() {
    let (env, _worker) = save_env().await;
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
}

#[tokio::test]
async fn save_user_contacts_report_every_failure_and_store_the_valid_neighbours() {
    let (env, worker) = save_env().await;
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
    assert_eq!(env.contact_count().await, 2);

    worker
        .expect_metric(r#"contact_import_contacts_total{outcome="failed"}"#, 4.0)
        .await;
    worker
        .expect_metric(
            r#"contact_import_messages_total{type="user-contacts.save"}"#,
            1.0,
        )
        .await;
}

#[tokio::test]
async fn save_user_contacts_passwords_are_neither_stored_nor_echoed_nor_logged() {
    let (env, worker) = save_env().await;
    let mut results = Vec::new();
    for (file, message_id) in [
        ("save-user-contacts-seed.json", "save-seed"),
        ("save-user-contacts-mixed.json", "save-mixed"),
    ] {
        env.publish(&fixture(file), props(message_id, SAVE, "application/json"))
            .await;
        results.push(env.next_result().await.2);
    }
    assert_eq!(env.contact_count().await, 3);

    // The password is neither stored with a contact, nor echoed, nor logged: only the
    // account's hash holds it.
    for result in &results {
        assert!(!result.to_string().contains("examplePass"));
        assert!(!result.to_string().contains("wrongPass"));
    }
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

    let log = log_after_stop(worker).await;
    assert!(!log.contains("examplePass") && !log.contains("wrongPass"));
}

#[tokio::test]
async fn a_save_batch_without_message_id_is_named_by_a_hash_of_its_body_without_passwords() {
    let (env, _worker) = save_env().await;
    // Without a message_id the batch id is a hash of the body without its passwords: the
    // result shows it, and a fast hash of the password would be guessable.
    let seed = fixture("save-user-contacts-seed.json");
    env.publish(&seed, unnamed_save()).await;
    let (_, _, result) = env.next_result().await;
    let without = contact_import::dialect::save::without_passwords(&seed).unwrap();
    assert_eq!(
        result["batchId"],
        format!("sha256:{}", contact_import::ids::body_sha256(&without))
    );
}

#[tokio::test]
async fn the_same_save_body_with_another_password_is_a_conflict_dead_lettered_as_sent() {
    let (env, worker) = save_env().await;
    let seed = fixture("save-user-contacts-seed.json");
    env.publish(&seed, unnamed_save()).await;
    env.next_result().await;
    // The same body with another password is another batch under the same id.
    let other = String::from_utf8(seed.clone())
        .unwrap()
        .replace("examplePass", "otherPass");
    env.publish(other.as_bytes(), unnamed_save()).await;
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

    let log = log_after_stop(worker).await;
    assert!(!log.contains("examplePass"));
    assert!(!log.contains("otherPass"));
}

/// A test world for `user-contact.update`: a worker, the contact "Ram" imported through
/// Webex, and a queue of the test's own for the replies.
struct UpdateEnv {
    env: TestEnv,
    worker: Worker,
    /// Ram's contact id.
    id: String,
    /// Ram's row before any update.
    before: Value,
    replies: String,
}

impl UpdateEnv {
    async fn new() -> Self {
        let (env, worker) = env_with_worker().await;
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
        let replies = format!("t{}.chat-replies", env.id);
        env.declare_queue(&replies).await;
        Self {
            env,
            worker,
            id,
            before,
            replies,
        }
    }

    /// Sends an update request that asks for a reply, and returns its result and the
    /// reply's properties and body.
    async fn update(&self, message_id: &str, body: &[u8]) -> (Value, BasicProperties, Value) {
        let props = props(message_id, UPDATE, "application/json")
            .with_reply_to(self.replies.as_str().into())
            .with_correlation_id(format!("corr-{message_id}").into());
        self.env.publish(body, props).await;
        let (_, _, result) = self.env.next_result().await;
        let (reply_props, reply) = self.env.next_message(&self.replies).await;
        let reply = serde_json::from_slice(&reply).unwrap();
        (result, reply_props, reply)
    }

    /// Ram's row now.
    async fn ram(&self) -> Value {
        canonical(&self.env, &self.id).await
    }

    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.env
            .db
            .query_one("SELECT created_at FROM contacts", &[])
            .await
            .unwrap()
            .get(0)
    }
}

/// Ram addressed by chat id (the seed's `uuid` name), with a new email.
fn update_by_chat_id() -> Vec<u8> {
    serde_json::to_vec(
        &json!({"uuid": "ram-chat-7", "queryInfo": {"parameters": {"params":
        {"accountInfo": {"userContact": {"emailId": "ram@work.example"}}}}}}),
    )
    .unwrap()
}

#[tokio::test]
async fn update_user_contact_changes_only_phone_and_email_and_replies_in_the_seed_shape() {
    let u = UpdateEnv::new().await;
    let created_at = u.created_at().await;
    // The fixture addresses the user by the email address (any case).
    let (result, reply_props, reply) = u
        .update("upd-1", &fixture("update-user-contact.json"))
        .await;
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["counts"]["updated"], 1);
    assert_eq!(
        reply_props.correlation_id().as_ref().map(|c| c.as_str()),
        Some("corr-upd-1")
    );
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

    let after = u.ram().await;
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
        assert_eq!(after[unchanged], u.before[unchanged], "{unchanged}");
    }
    assert_eq!(u.created_at().await, created_at);
}

#[tokio::test]
async fn update_user_contact_by_chat_id_changes_only_the_email() {
    let u = UpdateEnv::new().await;
    // By chat id, with the seed's `uuid` name; only the email changes this time.
    let (result, _, _) = u.update("upd-2", &update_by_chat_id()).await;
    assert_eq!(result["status"], "succeeded", "{result}");
    let after_chat = u.ram().await;
    assert_eq!(after_chat["emails"][0]["value"], "ram@work.example");
    assert_eq!(
        after_chat["emails"].as_array().unwrap().len(),
        u.before["emails"].as_array().unwrap().len() + 1
    );
    assert_eq!(after_chat["phone_numbers"], u.before["phone_numbers"]);
}

#[tokio::test]
async fn update_user_contact_of_an_unknown_user_is_a_404_said_in_the_reply() {
    let u = UpdateEnv::new().await;
    // An unknown user is a 404, said in the reply's text; nothing changes.
    let unknown = String::from_utf8(fixture("update-user-contact.json"))
        .unwrap()
        .replace("ram123@gmail.com", "nobody@example.com");
    let (result, _, reply) = u.update("upd-3", unknown.as_bytes()).await;
    assert_eq!(
        failures(&result),
        [("0".into(), "contact.not.found".into(), 404)]
    );
    assert_eq!(reply["statusCode"], 404);
    let text = reply["responseMessages"][0]["simpleResponse"]["responseText"]
        .as_str()
        .unwrap();
    assert!(
        text.starts_with("User Contact details could not be updated")
            && text.contains("nobody@example.com"),
        "{text}"
    );
    assert_eq!(u.ram().await, u.before);
}

#[tokio::test]
async fn update_user_contact_seed_example_with_its_placeholders_is_an_invalid_email() {
    let u = UpdateEnv::new().await;
    // The seed's example verbatim still holds its template placeholders: "$emailId" is no
    // email address (nor "$phoneNumber" a phone number).
    let (result, _, _) = u
        .update("upd-seed", &fixture("update-user-contact-seed.json"))
        .await;
    assert_eq!(
        failures(&result),
        [("0".into(), "invalid.email".into(), 400)]
    );
    assert_eq!(u.ram().await, u.before);
}

#[tokio::test]
async fn a_redelivered_update_replays_the_same_reply_without_applying_twice() {
    let u = UpdateEnv::new().await;
    let update = fixture("update-user-contact.json");
    u.update("upd-1", &update).await;
    let after = u.ram().await;
    // A redelivered request replays the same reply.
    let (replayed, _, reply) = u.update("upd-1", &update).await;
    assert_eq!(replayed["status"], "succeeded");
    assert_eq!(reply["responseId"], "upd-1");
    assert_eq!(u.ram().await, after, "not applied twice");
    u.worker
        .expect_metric("contact_import_batches_replayed_total", 1.0)
        .await;
}

#[tokio::test]
async fn update_user_contact_by_a_chat_id_two_contacts_share_is_a_409() {
    let u = UpdateEnv::new().await;
    // Once two contacts share the chat id, it names nobody in particular: 409.
    let twin = json!({"displayName": "Twin", "ims": [{"value": "RAM-CHAT-7"}]});
    u.env
        .publish_json("create-twin", &batch(ORG, json!([twin])))
        .await;
    u.env.next_result().await;
    let (result, _, _) = u.update("upd-4", &update_by_chat_id()).await;
    assert_eq!(
        failures(&result),
        [("0".into(), "ambiguous.contact".into(), 409)]
    );
    assert_eq!(u.ram().await, u.before);
}

#[tokio::test]
async fn the_same_person_is_the_same_canonical_contact_through_webex_and_save() {
    let (env, _worker) = save_env().await;
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

/// Imports the fixture `file` as a DocuSign message, checks what every format shares (one
/// invalid email among three contacts) and returns the result with the two stored rows.
async fn import_docusign_fixture(
    env: &TestEnv,
    file: &str,
    content_type: &str,
) -> (Value, Vec<Value>) {
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
    let mut rows = Vec::new();
    for stored in result["contacts"].as_array().unwrap().iter().take(2) {
        rows.push(canonical(env, stored["contactId"].as_str().unwrap()).await);
    }
    (result, rows)
}

#[tokio::test]
async fn docusign_json_is_answered_in_json_naming_docusign_fields() {
    let (env, _worker) = env_with_worker().await;
    let (result, _) =
        import_docusign_fixture(&env, "docusign-contacts.json", "application/json").await;
    let answer = &result["contactUpdateResponse"];
    let codes: Vec<String> = answer["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["errorDetails"]["errorCode"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes, ["SUCCESS", "SUCCESS", "INVALID_EMAIL"]);
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

#[tokio::test]
async fn docusign_xml_and_csv_are_answered_with_an_xml_contact_update_response() {
    let (env, _worker) = env_with_worker().await;
    for (file, content_type) in [
        ("docusign-contacts.xml", "application/xml"),
        ("docusign-contacts.csv", "text/csv; charset=utf-8"),
    ] {
        let (result, _) = import_docusign_fixture(&env, file, content_type).await;
        let answer = &result["contactUpdateResponse"];
        let codes = xml_error_codes(answer.as_str().expect("an XML document"));
        assert_eq!(codes, ["SUCCESS", "SUCCESS", "INVALID_EMAIL"], "{file}");
    }
}

#[tokio::test]
async fn docusign_xml_and_csv_store_the_same_contacts_as_json() {
    let (env, worker) = env_with_worker().await;
    let mut stored_by_format = Vec::new();
    for (file, content_type) in [
        ("docusign-contacts.json", "application/json"),
        ("docusign-contacts.xml", "application/xml"),
        ("docusign-contacts.csv", "text/csv; charset=utf-8"),
    ] {
        let (_, rows) = import_docusign_fixture(&env, file, content_type).await;
        stored_by_format.push(rows);
    }
    assert_eq!(stored_by_format[0], stored_by_format[1], "JSON and XML");
    assert_eq!(stored_by_format[0], stored_by_format[2], "JSON and CSV");
    assert_eq!(env.contact_count().await, 6);
    worker
        .expect_metric(
            r#"contact_import_messages_total{type="docusign.contacts.create"}"#,
            3.0,
        )
        .await;
}

#[tokio::test]
async fn docusign_fields_are_stored_on_the_canonical_contact() {
    let (env, _worker) = env_with_worker().await;
    let (_, rows) =
        import_docusign_fixture(&env, "docusign-contacts.json", "application/json").await;
    let grace = &rows[1];
    assert_eq!(grace["display_name"], "Grace Hopper");
    assert_eq!(grace["company_name"], "Remington Rand, UNIVAC Division");
    assert_eq!(grace["shared"], false);
    assert_eq!(grace["cloud_provider"], "rooms");
    assert_eq!(grace["signing_group_name"], "Compiler Review");
    assert_eq!(
        grace["phone_numbers"],
        json!([{"value": "+12125550199", "type": "work", "primary": false}])
    );
}

#[tokio::test]
async fn docusign_seed_examples_fail_per_contact_with_invalid_value() {
    let (env, _worker) = env_with_worker().await;
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
}

#[tokio::test]
async fn a_docusign_contact_is_the_same_canonical_contact_as_its_webex_twin() {
    let (env, _worker) = env_with_worker().await;
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
async fn docusign_without_content_type_is_rejected_and_dead_lettered() {
    let (env, _worker) = env_with_worker().await;
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
        header(&letter, "x-contact-import-reason").as_deref(),
        Some("unsupported.content.type")
    );
    assert_eq!(env.contact_count().await, 0);
}

#[tokio::test]
async fn docusign_xml_with_a_dtd_is_rejected_as_malformed_and_dead_lettered_as_sent() {
    let (env, _worker) = env_with_worker().await;
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
        header(&letter, "x-contact-import-reason").as_deref(),
        Some("malformed.body")
    );
    assert_eq!(
        body,
        bomb.as_bytes(),
        "the dead letter keeps the original body"
    );
    assert_eq!(env.contact_count().await, 0);
}

/// Sends a DocuSign JSON message with `contacts` and returns its result.
async fn send_docusign(env: &TestEnv, message_id: &str, contacts: Value) -> Value {
    let body = serde_json::to_vec(&json!({ "contacts": contacts })).unwrap();
    env.publish(&body, docusign_props(message_id, "application/json"))
        .await;
    env.next_result().await.2
}

/// Imports Ada under DocuSign's id `ds-123`; returns our id for her.
async fn import_ada(env: &TestEnv) -> String {
    let first = send_docusign(
        env,
        "ds-1",
        json!([{"contactId": "ds-123", "name": "Ada Lovelace", "organization": "Analytical Engines"}]),
    )
    .await;
    assert_eq!(first["counts"]["created"], 1, "{first}");
    assert_eq!(
        first["contactUpdateResponse"]["contacts"][0]["contactId"],
        "ds-123"
    );
    first["contacts"][0]["contactId"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_new_docusign_contact_id_imports_a_contact_answered_with_that_id() {
    let (env, _worker) = env_with_worker().await;
    // DocuSign's own id: a new contact, answered with that id (checked by import_ada).
    import_ada(&env).await;
    assert_eq!(env.contact_count().await, 1);
}

#[tokio::test]
async fn a_docusign_contact_imported_again_under_its_id_is_updated_keeping_absent_fields() {
    let (env, _worker) = env_with_worker().await;
    let ours = import_ada(&env).await;
    // Imported again under the same id: the same contact, updated, absent fields kept.
    let again = send_docusign(
        &env,
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
    assert_eq!(env.contact_count().await, 1);
}

#[tokio::test]
async fn our_contact_id_from_a_docusign_answer_updates_that_contact() {
    let (env, _worker) = env_with_worker().await;
    let ours = import_ada(&env).await;
    // Our own id, as a previous answer gave it, updates that contact too.
    let by_ours = send_docusign(&env, "ds-3", json!([{"contactId": ours, "shared": "true"}])).await;
    assert_eq!(by_ours["counts"]["updated"], 1, "{by_ours}");
    assert_eq!(canonical(&env, &ours).await["shared"], true);
    assert_eq!(env.contact_count().await, 1);
}

#[tokio::test]
async fn a_new_docusign_id_without_a_name_and_an_id_twice_in_one_batch_are_refused() {
    let (env, _worker) = env_with_worker().await;
    let ours = import_ada(&env).await;
    // A new id without a name is a new contact without a name; the same id twice in one
    // batch would write one contact twice.
    let refused = send_docusign(
        &env,
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
