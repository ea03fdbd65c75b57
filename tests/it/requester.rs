//! What the requester (`reply_to`) receives: each seed API's own response in the request's
//! format, with the request's correlation id, while the results exchange gets the common
//! result.

use crate::common::{ORG, TestEnv, fixture};
use lapin::BasicProperties;
use serde_json::Value;

const DOCUSIGN: &str = "docusign.contacts.create";
const RESTAPI: &str = "http://www.docusign.com/restapi";

/// A DocuSign request for the test's org, answered to `reply_to`.
fn request(message_id: &str, content_type: &str, reply_to: &str) -> BasicProperties {
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "account-id".into(),
        lapin::types::AMQPValue::LongString(ORG.into()),
    );
    BasicProperties::default()
        .with_message_id(message_id.into())
        .with_correlation_id(format!("corr-{message_id}").into())
        .with_type(DOCUSIGN.into())
        .with_content_type(content_type.into())
        .with_reply_to(reply_to.into())
        .with_headers(headers)
}

/// A reply's content type and correlation id.
fn reply_properties(props: &BasicProperties) -> (Option<String>, Option<String>) {
    (
        props.content_type().as_ref().map(|c| c.to_string()),
        props.correlation_id().as_ref().map(|c| c.to_string()),
    )
}

/// The `errorCode` of each `<contact>` of a `contactUpdateResponse` document.
fn xml_error_codes(xml: &str) -> Vec<String> {
    let document = roxmltree::Document::parse(xml).expect("the reply is an XML document");
    let root = document.root_element();
    assert!(
        root.has_tag_name((RESTAPI, "contactUpdateResponse")),
        "{xml}"
    );
    root.descendants()
        .filter(|n| n.has_tag_name((RESTAPI, "contact")))
        .map(|contact| {
            contact
                .children()
                .find(|n| n.has_tag_name((RESTAPI, "errorDetails")))
                .and_then(|d| {
                    d.children()
                        .find(|n| n.has_tag_name((RESTAPI, "errorCode")))
                })
                .and_then(|c| c.text())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn env_with_replies() -> (TestEnv, String) {
    let env = TestEnv::new().await;
    let replies = format!("t{}.docusign-replies", env.id);
    env.declare_queue(&replies).await;
    (env, replies)
}

#[tokio::test]
async fn a_docusign_xml_request_is_answered_with_the_seeds_xml_contact_update_response() {
    let (env, replies) = env_with_replies().await;
    let _worker = env.spawn_worker(&[]).await;
    let xml = fixture("docusign-contacts.xml");
    env.publish(&xml, request("ds-xml", "application/xml", &replies))
        .await;

    let (props, body) = env.next_message(&replies).await;
    assert_eq!(
        reply_properties(&props),
        (Some("application/xml".into()), Some("corr-ds-xml".into()))
    );
    let reply = String::from_utf8(body).expect("UTF-8 XML");
    assert_eq!(
        xml_error_codes(&reply),
        ["SUCCESS", "SUCCESS", "INVALID_EMAIL"]
    );
    // The results exchange still gets the common JSON result, the document inside it.
    let (_, result_props, result) = env.next_result().await;
    assert_eq!(
        result_props.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    assert_eq!(result["status"], "partial");
    assert_eq!(
        result["contactUpdateResponse"].as_str(),
        Some(reply.as_str())
    );
}

#[tokio::test]
async fn a_docusign_csv_request_is_answered_in_xml_as_docusign_has_no_csv_response() {
    let (env, replies) = env_with_replies().await;
    let _worker = env.spawn_worker(&[]).await;
    env.publish(
        &fixture("docusign-contacts.csv"),
        request("ds-csv", "text/csv; charset=utf-8", &replies),
    )
    .await;
    let (props, body) = env.next_message(&replies).await;
    assert_eq!(
        reply_properties(&props),
        (Some("application/xml".into()), Some("corr-ds-csv".into()))
    );
    assert_eq!(
        xml_error_codes(&String::from_utf8(body).unwrap()),
        ["SUCCESS", "SUCCESS", "INVALID_EMAIL"]
    );
}

#[tokio::test]
async fn a_docusign_json_request_is_answered_with_the_contact_update_response_object() {
    let (env, replies) = env_with_replies().await;
    let _worker = env.spawn_worker(&[]).await;
    env.publish(
        &fixture("docusign-contacts.json"),
        request("ds-json", "application/json", &replies),
    )
    .await;
    let (props, body) = env.next_message(&replies).await;
    assert_eq!(
        reply_properties(&props),
        (Some("application/json".into()), Some("corr-ds-json".into()))
    );
    let reply: Value = serde_json::from_slice(&body).unwrap();
    let codes: Vec<&str> = reply["contacts"]
        .as_array()
        .expect("the seed's {\"contacts\": [...]}")
        .iter()
        .map(|c| c["errorDetails"]["errorCode"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["SUCCESS", "SUCCESS", "INVALID_EMAIL"]);
    assert_eq!(reply["contacts"][0]["name"], "Ada Lovelace");
    // Only the seed's response: none of the common result's fields.
    assert!(reply.get("batchId").is_none() && reply.get("failedContacts").is_none());
}

#[tokio::test]
async fn a_refused_docusign_xml_request_is_answered_with_the_error_details_document() {
    let (env, replies) = env_with_replies().await;
    let _worker = env.spawn_worker(&[]).await;
    // A DTD refuses the request as a whole.
    let dtd = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "a">]><contactModRequest xmlns="http://www.docusign.com/restapi"/>"#;
    env.publish(dtd, request("ds-dtd", "application/xml", &replies))
        .await;
    let (props, body) = env.next_message(&replies).await;
    assert_eq!(
        reply_properties(&props),
        (Some("application/xml".into()), Some("corr-ds-dtd".into()))
    );
    let xml = String::from_utf8(body).unwrap();
    let document = roxmltree::Document::parse(&xml).unwrap();
    let root = document.root_element();
    assert!(root.has_tag_name((RESTAPI, "errorDetails")), "{xml}");
    let code = root
        .children()
        .find(|n| n.has_tag_name((RESTAPI, "errorCode")))
        .and_then(|n| n.text());
    assert_eq!(code, Some("MALFORMED_BODY"));
}

#[tokio::test]
async fn a_refused_docusign_json_request_is_answered_with_the_error_details_object() {
    let (env, replies) = env_with_replies().await;
    let _worker = env.spawn_worker(&[]).await;
    // No contacts list refuses the request as a whole.
    env.publish(
        br#"{"accountId": "d23736ac-8055-433e-b85a-0fc55c96ead9"}"#,
        request("ds-empty", "application/json", &replies),
    )
    .await;
    let (props, body) = env.next_message(&replies).await;
    assert_eq!(
        reply_properties(&props),
        (
            Some("application/json".into()),
            Some("corr-ds-empty".into())
        )
    );
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["errorCode"], "MISSING_CONTACTS", "{reply}");
    assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
}
