use super::from_xml::elements;
use super::response::xml_chars;
use super::*;
use crate::contact::model::ContactMethod;
use crate::contact::{ContactFields, validate};
use crate::dialect::decode;
use crate::ids::{BatchId, ContactId};
use crate::result::ContactOutcome;
use chrono::{TimeZone, Utc};

const LIMITS: Limits = Limits {
    max_message_bytes: 1 << 20,
    max_contacts: 10,
};

const SEED_JSON: &str = include_str!("../../../tests/fixtures/docusign-seed-example.json");
const SEED_XML: &str = include_str!("../../../tests/fixtures/docusign-seed-example.xml");
const CONTACTS_JSON: &str = include_str!("../../../tests/fixtures/docusign-contacts.json");
const CONTACTS_XML: &str = include_str!("../../../tests/fixtures/docusign-contacts.xml");
const CONTACTS_CSV: &str = include_str!("../../../tests/fixtures/docusign-contacts.csv");

fn message<'a>(content_type: &'a str, body: &'a str) -> IncomingMessage<'a> {
    IncomingMessage {
        kind: Some(MESSAGE_TYPE),
        content_type: Some(content_type),
        org_id_header: None,
        account_id_header: Some("acct-1"),
        body: body.as_bytes(),
    }
}

fn decoded(content_type: &str, body: &str) -> DecodedBatch {
    decode(&message(content_type, body), &LIMITS).unwrap()
}

fn rejected(message: IncomingMessage<'_>) -> Rejection {
    decode(&message, &LIMITS).unwrap_err()
}

fn drafts(batch: &DecodedBatch) -> Vec<Result<ContactDraft, ContactError>> {
    batch.contacts.clone()
}

fn echo(batch: &DecodedBatch) -> &Echo {
    match &batch.answer {
        Answer::DocuSign(echo) => echo,
        _ => panic!("a DocuSign batch answers with an Echo"),
    }
}

#[test]
fn the_three_formats_of_the_same_contacts_read_identically() {
    let json = decoded("application/json", CONTACTS_JSON);
    let xml = decoded("application/xml; charset=utf-8", CONTACTS_XML);
    let csv = decoded("text/csv", CONTACTS_CSV);
    assert_eq!(json.org_id.as_str(), "acct-1");
    assert_eq!(drafts(&json), drafts(&xml));
    assert_eq!(drafts(&json), drafts(&csv));
    assert_eq!(echo(&json).reply, Reply::Json);
    assert_eq!(echo(&xml).reply, Reply::Xml);
    assert_eq!(echo(&csv).reply, Reply::Xml, "CSV is answered in XML");
    assert_eq!(echo(&csv).contacts, echo(&json).contacts);

    let ada = json.contacts[0].as_ref().unwrap();
    assert_eq!(ada.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(ada.company_name.as_deref(), Some("Analytical Engines"));
    assert_eq!(ada.shared, Some(true));
    let phones = ada.phone_numbers.as_ref().unwrap().kept();
    assert_eq!(phones[0].value.as_deref(), Some("+1 415 555 0100"));
    assert_eq!(phones[0].kind.as_deref(), Some("mobile"));
    assert_eq!(phones[1].kind.as_deref(), Some("work"));
    let grace = json.contacts[1].as_ref().unwrap();
    assert_eq!(grace.emails.as_ref().unwrap().total(), 2);
    assert_eq!(grace.signing_group_name.as_deref(), Some("Compiler Review"));
    assert_eq!(grace.cloud_provider.as_deref(), Some("rooms"));
    assert_eq!(grace.shared, Some(false));

    // Validation takes the first two and fails the third on its email.
    let validated: Vec<_> = json
        .contacts
        .into_iter()
        .map(|c| c.and_then(validate::validate))
        .collect();
    assert!(
        validated[0].is_ok() && validated[1].is_ok(),
        "{validated:?}"
    );
    assert_eq!(
        validated[2].as_ref().unwrap_err().code,
        ErrorCode::InvalidEmail
    );
    let ada = validated[0].as_ref().unwrap();
    assert_eq!(
        ada.fields().phone_numbers.as_ref().unwrap()[0].value,
        "+14155550100"
    );
}

#[test]
fn the_seed_examples_read_alike_and_fail_on_their_sample_values() {
    let json = decoded("application/json", SEED_JSON);
    let xml = decoded("text/xml", SEED_XML);
    assert_eq!(drafts(&json), drafts(&xml));
    assert_eq!(json.contacts.len(), 1);
    // "sample string 4" is not a `shared` value.
    let error = json.contacts[0].as_ref().unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidValue);
    assert!(
        error.message.contains("sample string 4"),
        "{}",
        error.message
    );
    assert_eq!(
        echo(&json).contacts,
        [Sent {
            contact_id: Some("sample string 1".into()),
            name: Some("sample string 2".into()),
        }]
    );
    assert_eq!(echo(&xml).contacts, echo(&json).contacts);

    // With a valid `shared`, the rest of the seed's shape is read in full.
    let fixed = SEED_JSON.replace("sample string 4", "true");
    let contact = decoded("application/json", &fixed).contacts[0].clone();
    let error = contact.unwrap_err();
    assert_eq!(
        error.code,
        ErrorCode::InvalidValue,
        "phoneType 'sample string 2'"
    );
    let fixed = fixed.replace(
        r#""phoneType": "sample string 2""#,
        r#""phoneType": "Work""#,
    );
    let json = decoded("application/json", &fixed);
    let xml = decoded(
        "application/xml",
        &SEED_XML.replace("sample string 4", "true").replace(
            ">sample string 2</d4p1:phoneType>",
            ">Work</d4p1:phoneType>",
        ),
    );
    assert_eq!(drafts(&json), drafts(&xml));
    let contact = json.contacts[0].as_ref().unwrap();
    assert_eq!(contact.external_id.as_deref(), Some("sample string 1"));
    assert_eq!(contact.display_name.as_deref(), Some("sample string 2"));
    assert_eq!(contact.company_name.as_deref(), Some("sample string 3"));
    assert_eq!(contact.signing_group.as_deref(), Some("sample string 6"));
    assert_eq!(
        contact.signing_group_name.as_deref(),
        Some("sample string 7")
    );
    let phone = &contact.phone_numbers.as_ref().unwrap().kept()[0];
    assert_eq!(phone.value.as_deref(), Some("sample string 1"));
    assert_eq!(phone.kind.as_deref(), Some("work"));
    let user = &contact.signing_group_users.as_ref().unwrap().kept()[0];
    assert_eq!(user.user_name.as_deref(), Some("sample string 1"));
    assert_eq!(
        user.send_activation_email.as_deref(),
        Some("sample string 8")
    );
    assert!(
        !format!("{contact:?}").contains("sample string 9"),
        "no activationAccessCode"
    );
}

#[test]
fn the_content_type_picks_the_format_and_nothing_is_guessed() {
    let no_type = IncomingMessage {
        content_type: None,
        ..message("application/json", CONTACTS_JSON)
    };
    assert_eq!(rejected(no_type).code, RejectCode::UnsupportedContentType);
    for other in ["text/plain", "application/x-www-form-urlencoded"] {
        let rejection = rejected(message(other, CONTACTS_JSON));
        assert_eq!(rejection.code, RejectCode::UnsupportedContentType);
        assert!(
            rejection.message.contains("text/csv"),
            "{}",
            rejection.message
        );
    }
    // JSON sent as XML is not read as JSON.
    let mislabelled = rejected(message("application/xml", CONTACTS_JSON));
    assert_eq!(mislabelled.code, RejectCode::MalformedBody);
    assert_eq!(
        decoded("Text/CSV; charset=utf-8", CONTACTS_CSV)
            .contacts
            .len(),
        3
    );
}

#[test]
fn a_dtd_is_refused_so_no_entity_is_ever_expanded() {
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE contactModRequest [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<contactModRequest xmlns="http://www.docusign.com/restapi">
  <contacts><contact><name>&lol3;</name></contact></contacts>
</contactModRequest>"#;
    let external = r#"<?xml version="1.0"?>
<!DOCTYPE contactModRequest [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<contactModRequest xmlns="http://www.docusign.com/restapi">
  <contacts><contact><name>&xxe;</name></contact></contacts>
</contactModRequest>"#;
    for body in [laughs, external] {
        let rejection = rejected(message("application/xml", body));
        assert_eq!(rejection.code, RejectCode::MalformedBody);
        assert!(rejection.message.contains("DTD"), "{}", rejection.message);
    }
}

#[test]
fn xml_is_matched_by_local_name_whatever_the_prefixes() {
    let body = r#"<?xml version="1.0" encoding="utf-8"?>
<ds:contactModRequest xmlns:ds="http://www.docusign.com/restapi">
  <ds:accountId> acct-1 </ds:accountId>
  <ds:contacts>
<ds:contact>
  <ds:name><![CDATA[Ada & Co]]></ds:name>
  <ds:contactPhoneNumbers xmlns:p="http://schemas.datacontract.org/2004/07/API_REST.Models.v2">
    <p:contactPhoneNumber><p:phoneNumber>+1 415 555 0100</p:phoneNumber></p:contactPhoneNumber>
  </ds:contactPhoneNumbers>
  <ds:isOwner>true</ds:isOwner>
</ds:contact>
<ds:contact><ds:name>A</ds:name><ds:name>B</ds:name></ds:contact>
<ds:person/>
<ds:contact><ds:emails><ds:email>x@example.com</ds:email></ds:emails></ds:contact>
  </ds:contacts>
</ds:contactModRequest>"#;
    let batch = decoded("application/xml", body);
    assert_eq!(batch.org_id.as_str(), "acct-1");
    let first = batch.contacts[0].as_ref().unwrap();
    assert_eq!(first.display_name.as_deref(), Some("Ada & Co"));
    let phone = &first.phone_numbers.as_ref().unwrap().kept()[0];
    assert_eq!(
        (phone.value.as_deref(), phone.kind.as_deref()),
        (Some("+1 415 555 0100"), None)
    );
    for failed in &batch.contacts[1..] {
        assert_eq!(failed.as_ref().unwrap_err().code, ErrorCode::InvalidContact);
    }
    assert_eq!(echo(&batch).contacts[1].name.as_deref(), Some("A"));

    let wrong_root = rejected(message("application/xml", "<contacts/>"));
    assert_eq!(wrong_root.code, RejectCode::MalformedBody);
    let no_list = rejected(message(
        "application/xml",
        r#"<contactModRequest xmlns="http://www.docusign.com/restapi"/>"#,
    ));
    assert_eq!(no_list.code, RejectCode::MissingContacts);
}

#[test]
fn a_json_contact_of_the_wrong_shape_fails_alone() {
    let body = r#"{"contacts": [
        {"name": "Ada", "emails": "ada@example.com", "contactId": "c-1"},
        {"name": "Grace", "shared": true},
        "x",
        {"name": "Bad", "shared": "yes"},
        {"name": "Fax", "contactPhoneNumbers": [{"phoneNumber": "1234", "phoneType": "pager"}]},
        {"name": "Uri", "contactUri": "/contacts/1", "isOwner": true,
         "errorDetails": {"errorCode": "X", "message": "y"}}
    ]}"#;
    let batch = decoded("application/json", body);
    let codes = crate::dialect::error_codes(&batch);
    assert_eq!(
        codes,
        [
            Some(ErrorCode::InvalidContact),
            None,
            Some(ErrorCode::InvalidContact),
            Some(ErrorCode::InvalidValue),
            Some(ErrorCode::InvalidValue),
            None,
        ]
    );
    assert_eq!(batch.contacts[1].as_ref().unwrap().shared, Some(true));
    assert_eq!(
        echo(&batch).contacts[0],
        Sent {
            contact_id: Some("c-1".into()),
            name: Some("Ada".into())
        }
    );
}

/// `n` contacts in the given format; the body names account `acct-1` (CSV: on its first row).
fn contacts_body(content_type: &str, n: usize) -> String {
    match content_type {
        "application/json" => format!(
            r#"{{"accountId": "acct-1", "contacts": [{}]}}"#,
            vec![r#"{"name": "A"}"#; n].join(",")
        ),
        "application/xml" => format!(
            "<contactModRequest><accountId>acct-1</accountId><contacts>{}</contacts>\
             </contactModRequest>",
            "<contact><name>A</name></contact>".repeat(n)
        ),
        _ => format!(
            "name,accountId\nA,acct-1\n{}",
            "A,\n".repeat(n.saturating_sub(1))
        ),
    }
}

#[test]
fn a_batch_over_the_contact_limit_is_refused_in_every_format_with_its_org() {
    for content_type in ["application/json", "application/xml", "text/csv"] {
        let at_limit = contacts_body(content_type, LIMITS.max_contacts);
        let batch = decoded(content_type, &at_limit);
        assert_eq!(batch.contacts.len(), LIMITS.max_contacts, "{content_type}");
        assert!(batch.contacts.iter().all(Result::is_ok), "{content_type}");

        let over = contacts_body(content_type, LIMITS.max_contacts + 1);
        let rejection = rejected(message(content_type, &over));
        assert_eq!(rejection.code, RejectCode::TooLarge, "{content_type}");
        assert_eq!(
            rejection.org_id.as_ref().map(OrgId::as_str),
            Some("acct-1"),
            "{content_type}: the org's subscribers hear of the rejection"
        );
        let expected = if content_type == "text/csv" {
            "the batch has more than 10 contacts, at most 10 are accepted"
        } else {
            "the batch has 11 contacts, at most 10 are accepted"
        };
        assert_eq!(rejection.message, expected, "{content_type}");

        // The org named only in the body is attached too.
        let body_org = IncomingMessage {
            account_id_header: None,
            ..message(content_type, &over)
        };
        let rejection = decode(&body_org, &LIMITS).unwrap_err();
        assert_eq!(rejection.code, RejectCode::TooLarge, "{content_type}");
        assert_eq!(
            rejection.org_id.as_ref().map(OrgId::as_str),
            Some("acct-1"),
            "{content_type}"
        );
    }
}

#[test]
fn a_huge_batch_is_counted_and_refused_without_building_its_entries() {
    const HUGE: usize = 200_000;
    let limits = Limits {
        max_message_bytes: 16 << 20,
        ..LIMITS
    };
    let json = format!(r#"{{"contacts": [{}]}}"#, vec!["{}"; HUGE].join(","));
    let xml = format!(
        "<contactModRequest><contacts>{}</contacts></contactModRequest>",
        "<contact/>".repeat(HUGE)
    );
    let csv = format!("name\n{}", "a\n".repeat(HUGE));

    let count = |request: Result<Request, Rejection>| {
        let list = request.unwrap().contacts.unwrap();
        assert!(list.entries.is_empty(), "no entry is built over the limit");
        (list.count, list.counted_all)
    };
    assert_eq!(count(read_json(json.as_bytes(), &limits)), (HUGE, true));
    assert_eq!(count(read_xml(xml.as_bytes(), &limits)), (HUGE, true));
    // CSV stops reading one row over the limit.
    assert_eq!(
        count(read_csv(csv.as_bytes(), &limits)),
        (limits.max_contacts + 1, false)
    );

    for (content_type, body) in [
        ("application/json", &json),
        ("application/xml", &xml),
        ("text/csv", &csv),
    ] {
        let rejection = decode(&message(content_type, body), &limits).unwrap_err();
        assert_eq!(rejection.code, RejectCode::TooLarge, "{content_type}");
        assert_eq!(
            rejection.org_id.as_ref().map(OrgId::as_str),
            Some("acct-1"),
            "{content_type}"
        );
    }
    assert!(
        decode(&message("application/json", &json), &limits)
            .unwrap_err()
            .message
            .starts_with("the batch has 200000 contacts"),
    );
}

#[test]
fn unreadable_batches_are_rejected_with_their_reason() {
    let json = |body| rejected(message("application/json", body)).code;
    assert_eq!(json("nope"), RejectCode::MalformedBody);
    let malformed = rejected(message("text/csv", "name,emial\n"));
    assert_eq!(
        malformed.org_id.as_ref().map(OrgId::as_str),
        Some("acct-1"),
        "the header's org still hears of the rejection"
    );
    assert_eq!(json(r#"{"contacts": {}}"#), RejectCode::MalformedBody);
    assert_eq!(
        json(r#"{"accountId": "acct-1"}"#),
        RejectCode::MissingContacts
    );
    let eleven = format!(r#"{{"contacts": [{}]}}"#, ["{}"; 11].join(","));
    assert_eq!(json(&eleven), RejectCode::TooLarge);
    assert_eq!(
        rejected(message("application/xml", "<contactModRequest><contacts>")).code,
        RejectCode::MalformedBody
    );
}

#[test]
fn the_account_comes_from_the_body_or_either_header_and_must_agree() {
    let body = r#"{"accountId": "acct-1", "contacts": []}"#;
    let only_body = IncomingMessage {
        account_id_header: None,
        ..message("application/json", body)
    };
    assert_eq!(
        decode(&only_body, &LIMITS).unwrap().org_id.as_str(),
        "acct-1"
    );
    let numeric = IncomingMessage {
        account_id_header: None,
        ..message(
            "application/json",
            r#"{"accountId": 18118, "contacts": []}"#,
        )
    };
    assert_eq!(decode(&numeric, &LIMITS).unwrap().org_id.as_str(), "18118");
    let org_header = IncomingMessage {
        account_id_header: None,
        org_id_header: Some("acct-2"),
        ..message("application/json", r#"{"contacts": []}"#)
    };
    assert_eq!(
        decode(&org_header, &LIMITS).unwrap().org_id.as_str(),
        "acct-2"
    );
    let nothing = IncomingMessage {
        account_id_header: None,
        ..message("application/json", r#"{"contacts": []}"#)
    };
    assert_eq!(rejected(nothing).code, RejectCode::MissingOrgId);
    let body_differs = IncomingMessage {
        account_id_header: Some("acct-2"),
        ..message("application/json", body)
    };
    assert_eq!(rejected(body_differs).code, RejectCode::OrgIdMismatch);
    let headers_differ = IncomingMessage {
        org_id_header: Some("acct-2"),
        ..message("application/json", r#"{"contacts": []}"#)
    };
    assert_eq!(rejected(headers_differ).code, RejectCode::OrgIdMismatch);
    let headers_agree = IncomingMessage {
        org_id_header: Some("acct-1"),
        ..message("application/json", r#"{"contacts": []}"#)
    };
    assert_eq!(
        decode(&headers_agree, &LIMITS).unwrap().org_id.as_str(),
        "acct-1"
    );

    let xml = r#"<contactModRequest xmlns="http://www.docusign.com/restapi"><accountId>acct-3</accountId><contacts/></contactModRequest>"#;
    assert_eq!(
        rejected(message("text/xml", xml)).code,
        RejectCode::OrgIdMismatch
    );
    let csv = "name,accountId\nAda,acct-1\nGrace,\nAlan,acct-1\n";
    assert_eq!(decoded("text/csv", csv).contacts.len(), 3);
    let csv = "name,accountId\nAda,acct-1\nGrace,acct-9\n";
    assert_eq!(
        rejected(message("text/csv", csv)).code,
        RejectCode::OrgIdMismatch
    );
}

#[test]
fn csv_columns_are_case_insensitive_and_an_unknown_one_refuses_the_batch() {
    let csv = "NAME,WorkPhone,homephone,Emails\nAda,+1 415 555 0101,+1 415 555 0102, a@example.com ; b@example.com ;\n";
    let batch = decoded("text/csv", csv);
    let ada = batch.contacts[0].as_ref().unwrap();
    assert_eq!(ada.display_name.as_deref(), Some("Ada"));
    let kinds: Vec<_> = ada
        .phone_numbers
        .iter()
        .flat_map(BoundedList::kept)
        .map(|p| p.kind.as_deref().unwrap())
        .collect();
    assert_eq!(kinds, ["work", "home"], "in the header's order");
    let emails: Vec<_> = ada
        .emails
        .iter()
        .flat_map(BoundedList::kept)
        .map(|e| e.value.as_deref().unwrap())
        .collect();
    assert_eq!(emails, ["a@example.com", "b@example.com"]);

    let typo = rejected(message("text/csv", "name,emial\nAda,a@example.com\n"));
    assert_eq!(typo.code, RejectCode::MalformedBody);
    assert!(typo.message.contains("'emial'"), "{}", typo.message);
    let twice = rejected(message("text/csv", "name,Name\nA,B\n"));
    assert_eq!(twice.code, RejectCode::MalformedBody);
    assert_eq!(
        rejected(message("text/csv", "")).code,
        RejectCode::MalformedBody
    );
    let ragged = rejected(message("text/csv", "name,organization\nAda\n"));
    assert_eq!(ragged.code, RejectCode::MalformedBody);
    assert!(ragged.message.contains("row 2"), "{}", ragged.message);
}

#[test]
fn csv_reads_quotes_embedded_newlines_and_a_byte_order_mark() {
    let csv = "\u{feff}name,organization,shared\n\"Lovelace, Ada\",\"The \"\"Analytical\"\"\nEngine\",TRUE\n,,\n";
    let batch = decoded("text/csv", csv);
    assert_eq!(batch.contacts.len(), 2);
    let ada = batch.contacts[0].as_ref().unwrap();
    assert_eq!(ada.display_name.as_deref(), Some("Lovelace, Ada"));
    assert_eq!(
        ada.company_name.as_deref(),
        Some("The \"Analytical\"\nEngine")
    );
    assert_eq!(ada.shared, Some(true));
    assert_eq!(
        batch.contacts[1].as_ref().unwrap(),
        &ContactDraft::default(),
        "empty cells are absent fields"
    );
}

fn stored_grace() -> StoredContact {
    let org = OrgId::parse("acct-1").unwrap();
    let at = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
    StoredContact::new(
        &org,
        ContactId::from_uuid(uuid::Uuid::from_u128(
            0x5e0c_0de5_0000_4000_8000_0000_0000_0001,
        )),
        at,
        at,
        ContactFields {
            display_name: Some("Grace <Hopper> & Co".into()),
            company_name: Some("Remington Rand".into()),
            emails: Some(vec![ContactMethod {
                value: "grace@example.com".into(),
                kind: None,
                primary: false,
            }]),
            phone_numbers: Some(vec![ContactMethod {
                value: "+12125550199".into(),
                kind: Some("work".into()),
                primary: false,
            }]),
            shared: Some(false),
            cloud_provider: Some("rooms".into()),
            signing_group: Some("20546".into()),
            signing_group_users: Some(vec![SigningGroupUser {
                user_name: Some("Grace Hopper".into()),
                email: Some("grace@example.com".into()),
                ..SigningGroupUser::default()
            }]),
            ..ContactFields::default()
        },
    )
}

/// A stored contact and a failed one, answered for a request in `content_type`.
fn answer(content_type: &str, body: &str) -> serde_json::Value {
    let batch = decoded(content_type, body);
    let result = BatchResult::applied(
        &BatchId::for_message(Some("b-1"), "0"),
        &batch.org_id,
        vec![
            ContactOutcome::Created(stored_grace()),
            ContactOutcome::Failed(ContactError::new(
                ErrorCode::InvalidEmail,
                "emails[0].value 'not-an-email' is not a valid email address",
            )),
        ],
        Utc::now(),
    );
    echo(&batch).contact_update_response(&result)
}

const TWO: &str = r#"{"contacts": [{"name": "Grace"}, {"contactId": "c-2", "name": "Charles", "emails": ["not-an-email"]}]}"#;

#[test]
fn a_json_request_is_answered_in_json() {
    let answer = answer("application/json", TWO);
    assert_eq!(
        answer,
        serde_json::json!({"contacts": [
            {
                "signingGroupUsers": [{
                    "userName": "Grace Hopper",
                    "email": "grace@example.com",
                    "errorDetails": {"errorCode": "SUCCESS", "message": ""}
                }],
                "contactId": "5e0c0de5-0000-4000-8000-000000000001",
                "name": "Grace <Hopper> & Co",
                "emails": ["grace@example.com"],
                "organization": "Remington Rand",
                "shared": "false",
                "signingGroup": "20546",
                "contactPhoneNumbers": [{"phoneNumber": "+12125550199", "phoneType": "work"}],
                "cloudProvider": "rooms",
                "errorDetails": {"errorCode": "SUCCESS", "message": ""}
            },
            {
                "contactId": "c-2",
                "name": "Charles",
                "errorDetails": {
                    "errorCode": "INVALID_EMAIL",
                    "message": "emails[0].value 'not-an-email' is not a valid email address"
                }
            }
        ]})
    );
}

#[test]
fn xml_and_csv_requests_are_answered_in_the_seeds_xml() {
    let xml_request = r#"<contactModRequest xmlns="http://www.docusign.com/restapi"><contacts>
        <contact><name>Grace</name></contact>
        <contact><contactId>c-2</contactId><name>Charles</name></contact>
    </contacts></contactModRequest>"#;
    let csv_request = "contactId,name\n,Grace\nc-2,Charles\n";
    let from_xml = answer("application/xml", xml_request);
    let from_csv = answer("text/csv", csv_request);
    assert_eq!(from_xml, from_csv);
    let serde_json::Value::String(xml) = from_xml else {
        panic!("an XML answer is a string: {from_xml}")
    };
    assert_eq!(
        xml,
        answer("application/xml", xml_request).as_str().unwrap(),
        "deterministic"
    );

    let document = roxmltree::Document::parse(&xml).unwrap();
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "contactUpdateResponse");
    assert_eq!(root.tag_name().namespace(), Some(DOCUSIGN_NS));
    assert_eq!(root.lookup_namespace_uri(Some("i")), Some(XSI_NS));
    let contacts: Vec<_> = elements(elements(root).next().unwrap()).collect();
    assert_eq!(contacts.len(), 2);
    let names = |node: roxmltree::Node<'_, '_>| -> Vec<String> {
        elements(node)
            .map(|e| e.tag_name().name().to_owned())
            .collect()
    };
    assert_eq!(
        names(contacts[0]),
        [
            "cloudProvider",
            "contactId",
            "contactPhoneNumbers",
            "emails",
            "errorDetails",
            "name",
            "organization",
            "shared",
            "signingGroup",
            "signingGroupUsers"
        ]
    );
    assert_eq!(text(contacts[0], "name"), "Grace <Hopper> & Co");
    assert_eq!(text(contacts[0], "shared"), "false");
    let phones = child(contacts[0], "contactPhoneNumbers");
    let phone = elements(phones).next().unwrap();
    assert_eq!(phone.tag_name().namespace(), Some(PHONE_NS));
    assert!(xml.contains("<d4p1:contactPhoneNumber>"), "{xml}");
    assert_eq!(text(phone, "phoneNumber"), "+12125550199");
    assert_eq!(text(phone, "phoneType"), "work");
    assert_eq!(
        text(child(contacts[0], "emails"), "string"),
        "grace@example.com"
    );
    let details = child(contacts[0], "errorDetails");
    assert_eq!(text(details, "errorCode"), "SUCCESS");
    assert_eq!(text(details, "message"), "");
    let user = child(child(contacts[0], "signingGroupUsers"), "userInfo");
    assert_eq!(names(user), ["email", "errorDetails", "userName"],);

    assert_eq!(names(contacts[1]), ["contactId", "errorDetails", "name"]);
    assert_eq!(text(contacts[1], "contactId"), "c-2");
    let details = child(contacts[1], "errorDetails");
    assert_eq!(text(details, "errorCode"), "INVALID_EMAIL");
    assert!(text(details, "message").contains("not-an-email"));
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> roxmltree::Node<'a, 'i> {
    elements(node)
        .find(|e| e.tag_name().name() == name)
        .unwrap_or_else(|| panic!("no <{name}>"))
}

fn text(node: roxmltree::Node<'_, '_>, name: &str) -> String {
    child(node, name).text().unwrap_or_default().to_owned()
}

#[test]
fn an_echoed_value_never_breaks_the_xml_answer() {
    assert_eq!(xml_chars("a\u{1}b\tc"), "ab\tc");
    let answer = response_xml(&[ResponseContact {
        name: Some("<x>\u{0}&".into()),
        ..ResponseContact::default()
    }]);
    let document = roxmltree::Document::parse(&answer).unwrap();
    let name = document
        .descendants()
        .find(|n| n.tag_name().name() == "name")
        .unwrap();
    assert_eq!(name.text(), Some("<x>&"));
}
