//! Which dialect a file is written in, so `publish` can set the AMQP `type` and content type
//! the worker reads it by. Detection looks at the file's syntax (its extension or `--format`)
//! and, for CSV and JSON, at the header row or the JSON's keys; whatever it cannot place is
//! Webex, as every file was before the other dialects existed. `--type` overrides it.

use super::input::{Format, format_of};
use crate::dialect::MessageType;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use serde_json::{Map, Value};
use std::path::Path;

/// The content type of a DocuSign XML `contactModRequest`.
pub const XML: &str = "application/xml";
/// The content type of a CSV file.
pub const CSV: &str = "text/csv";
/// The content type of a JSON body.
pub const JSON: &str = crate::dialect::JSON;

/// How a file is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub kind: MessageType,
    pub content_type: &'static str,
}

/// The CSV columns DocuSign's `contactModRequest` import reads (seed 001), as they are
/// spelled there; matched case-insensitively.
pub const DOCUSIGN_CSV_COLUMNS: &[&str] = &[
    "contactId",
    "name",
    "emails",
    "organization",
    "shared",
    "homePhone",
    "mobilePhone",
    "workPhone",
    "otherPhone",
    "faxPhone",
    "cloudProvider",
    "cloudProviderContainerId",
    "signingGroup",
    "signingGroupName",
    "accountId",
];

/// Keys only a Save User Contacts contact has (seed 000).
const SAVE_KEYS: &[&str] = &["userName", "password", "mobileNumber"];
/// Keys only an Update User Contact request has at its top (seed 003).
const UPDATE_KEYS: &[&str] = &["conversationRequest", "queryInfo"];
/// Keys that mark a DocuSign contact (seed 001)…
const DOCUSIGN_KEYS: &[&str] = &["contactPhoneNumbers", "name"];
/// …unless the contact also has one of these, which DocuSign does not know.
const NOT_DOCUSIGN_KEYS: &[&str] = &[
    "firstName",
    "lastName",
    "middleName",
    "displayName",
    "companyName",
    "title",
    "phoneNumbers",
    "sipAddresses",
    "ims",
    "avatarURL",
    "primaryContactMethod",
    "groups",
];

/// The dialect and content type of a file, from its extension and content. An unknown
/// extension is read as JSON.
pub fn detect(path: &Path, bytes: &[u8]) -> Detected {
    detect_format(format_of(path).unwrap_or(Format::Json), bytes)
}

/// The dialect and content type of a body of the given syntax. Anything ambiguous or unknown
/// is Webex.
pub fn detect_format(format: Format, bytes: &[u8]) -> Detected {
    let content_type = content_type_of(format);
    let kind = match format {
        Format::Xml => MessageType::DocuSign,
        Format::Csv if is_docusign_header(bytes) => MessageType::DocuSign,
        Format::Csv => MessageType::Webex,
        Format::Json | Format::Ndjson | Format::Auto => match serde_json::from_slice(bytes) {
            Ok(value) => json_kind(&value),
            // Not one JSON document (NDJSON lines, or not JSON): Webex's reader says why.
            Err(_) => MessageType::Webex,
        },
    };
    Detected { kind, content_type }
}

/// The content type of a body of this syntax.
pub fn content_type_of(format: Format) -> &'static str {
    match format {
        Format::Xml => XML,
        Format::Csv => CSV,
        Format::Json | Format::Ndjson | Format::Auto => JSON,
    }
}

/// Whether a CSV's header row names DocuSign columns only, one of them DocuSign's own (all
/// but `contactId`, which Webex's CSV has too).
fn is_docusign_header(bytes: &[u8]) -> bool {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let Some(Ok(header)) = csv.records().next() else {
        return false;
    };
    let columns: Vec<&str> = header
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim())
        .collect();
    let known = |column: &str| {
        DOCUSIGN_CSV_COLUMNS
            .iter()
            .any(|c| c.eq_ignore_ascii_case(column))
    };
    columns.iter().all(|c| known(c)) && columns.iter().any(|c| !c.eq_ignore_ascii_case("contactId"))
}

fn json_kind(value: &Value) -> MessageType {
    let has =
        |object: &Map<String, Value>, keys: &[&str]| keys.iter().any(|k| object.contains_key(*k));
    if let Value::Object(object) = value
        && has(object, UPDATE_KEYS)
    {
        return MessageType::UpdateUserContact;
    }
    // The contacts: an array's items, an envelope's `contacts`, or a single flat contact.
    let contacts: Vec<&Map<String, Value>> = match value {
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        Value::Object(object) => match object.get("contacts") {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).collect(),
            _ => vec![object],
        },
        _ => return MessageType::Webex,
    };
    if contacts.iter().any(|c| has(c, SAVE_KEYS)) {
        return MessageType::SaveUserContacts;
    }
    let webex_envelope = value.as_object().is_some_and(|o| o.contains_key("schemas"));
    if !webex_envelope
        && contacts.iter().any(|c| has(c, DOCUSIGN_KEYS))
        && !contacts.iter().any(|c| has(c, NOT_DOCUSIGN_KEYS))
    {
        return MessageType::DocuSign;
    }
    MessageType::Webex
}

/// Parses `--type`: exactly one of the worker's [`MessageType`] names.
pub fn message_type_parser() -> impl TypedValueParser<Value = MessageType> {
    PossibleValuesParser::new(MessageType::ALL.map(MessageType::as_str))
        .map(|name| MessageType::of(Some(&name)).expect("one of MessageType::ALL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> MessageType {
        let detected = detect(Path::new("in.json"), body.as_bytes());
        assert_eq!(detected.content_type, JSON);
        detected.kind
    }

    fn csv(body: &str) -> Detected {
        detect(Path::new("in.csv"), body.as_bytes())
    }

    #[test]
    fn xml_is_a_docusign_contact_mod_request() {
        let detected = detect(Path::new("CONTACTS.XML"), b"<contactModRequest/>");
        assert_eq!(
            detected,
            Detected {
                kind: MessageType::DocuSign,
                content_type: XML
            }
        );
    }

    #[test]
    fn a_csv_of_docusign_columns_is_docusign_and_any_other_is_webex() {
        let docusign = Detected {
            kind: MessageType::DocuSign,
            content_type: CSV,
        };
        assert_eq!(
            csv("name,emails,workPhone\nAda,ada@example.com,+1\n"),
            docusign
        );
        // Case-insensitive, a byte order mark and spaces tolerated.
        assert_eq!(csv("\u{feff}Name, EMAILS ,organization\n"), docusign);
        assert_eq!(csv("contactId,name,signingGroupName,accountId\n"), docusign);

        let webex = Detected {
            kind: MessageType::Webex,
            content_type: CSV,
        };
        assert_eq!(
            csv("displayName,email,phoneNumber\nAda,ada@example.com,+1\n"),
            webex
        );
        // contactId alone is both dialects' column: Webex, as before.
        assert_eq!(csv("contactId\nc1\n"), webex);
        // One column DocuSign does not know: not DocuSign.
        assert_eq!(csv("name,email\n"), webex);
        assert_eq!(csv(""), webex);
    }

    #[test]
    fn json_with_conversation_request_or_query_info_is_update_user_contact() {
        assert_eq!(
            json(r#"{"conversationRequest": {"userInfo": {"uid": "a@b.co"}}}"#),
            MessageType::UpdateUserContact
        );
        assert_eq!(
            json(r#"{"queryInfo": {"interestType": "update-address"}}"#),
            MessageType::UpdateUserContact
        );
    }

    #[test]
    fn json_with_user_name_password_or_mobile_number_is_save_user_contacts() {
        let one = r#"{"userName": "u", "password": "p", "firstName": "John", "lastName": "Doe"}"#;
        assert_eq!(json(one), MessageType::SaveUserContacts);
        assert_eq!(
            json(&format!("[{one}, {one}]")),
            MessageType::SaveUserContacts
        );
        assert_eq!(
            json(r#"{"orgId": "o", "contacts": [{"firstName": "J", "mobileNumber": "1"}]}"#),
            MessageType::SaveUserContacts
        );
    }

    #[test]
    fn json_with_docusign_contacts_is_docusign() {
        assert_eq!(
            json(r#"{"contacts": [{"name": "Ada", "emails": ["ada@example.com"]}]}"#),
            MessageType::DocuSign
        );
        assert_eq!(
            json(
                r#"{"contacts": [{"contactPhoneNumbers": [{"phoneNumber": "+1", "phoneType": "work"}]}]}"#
            ),
            MessageType::DocuSign
        );
    }

    #[test]
    fn ambiguous_or_unknown_json_is_webex_as_before() {
        for body in [
            // Webex batches and contacts.
            r#"{"schemas": "urn:cisco:codev:identity:contact:core:1.0", "contacts": [{"displayName": "Ada"}]}"#,
            r#"[{"firstName": "Ada", "emails": [{"value": "ada@example.com"}]}]"#,
            // A name beside Webex-only fields, or a Webex envelope around DocuSign-looking contacts.
            r#"{"contacts": [{"name": "Ada", "firstName": "Ada"}]}"#,
            r#"{"contacts": [{"name": "Ada"}, {"displayName": "Grace"}]}"#,
            r#"{"schemas": "x", "contacts": [{"name": "Ada"}]}"#,
            // Unknown shapes and non-JSON.
            r#"{"hello": "this is not a contact batch"}"#,
            r#""a string""#,
            "[]",
            "not json",
        ] {
            assert_eq!(json(body), MessageType::Webex, "{body}");
        }
        // NDJSON: several documents are Webex contacts, one per line.
        let lines = "{\"userName\": \"u\"}\n{\"userName\": \"v\"}\n";
        assert_eq!(
            detect(Path::new("in.ndjson"), lines.as_bytes()).kind,
            MessageType::Webex
        );
        // One document in an .ndjson file is read like a .json file.
        assert_eq!(
            detect(Path::new("in.jsonl"), b"{\"queryInfo\": {}}\n").kind,
            MessageType::UpdateUserContact
        );
    }

    /// Every sample in `examples/` is detected as the dialect its name says: the samples and
    /// the detection cannot drift apart.
    #[test]
    fn every_example_file_is_detected_as_its_dialect() {
        let expected = [
            ("webex-bulk-create.json", MessageType::Webex, JSON),
            ("webex-bulk-mixed.json", MessageType::Webex, JSON),
            ("not-a-batch.json", MessageType::Webex, JSON),
            (
                "user-contacts-save.json",
                MessageType::SaveUserContacts,
                JSON,
            ),
            ("docusign-contacts.xml", MessageType::DocuSign, XML),
            ("docusign-contacts.csv", MessageType::DocuSign, CSV),
            (
                "user-contact-update.json",
                MessageType::UpdateUserContact,
                JSON,
            ),
        ];
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.is_file() {
                continue;
            }
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let (_, kind, content_type) = expected
                .iter()
                .find(|(file, _, _)| *file == name)
                .unwrap_or_else(|| panic!("examples/{name}: add it to this test's table"));
            let detected = detect(&path, &std::fs::read(&path).unwrap());
            assert_eq!(
                detected,
                Detected {
                    kind: *kind,
                    content_type
                },
                "examples/{name}"
            );
            seen.push(name);
        }
        for (file, _, _) in expected {
            assert!(seen.iter().any(|s| s == file), "examples/{file} is missing");
        }
    }

    /// The samples of the dialects the worker reads already decode without a contact error.
    #[test]
    fn the_save_and_update_examples_decode_cleanly() {
        use crate::dialect::{IncomingMessage, Limits, decode};
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        for (file, contacts) in [
            ("user-contacts-save.json", 2),
            ("user-contact-update.json", 1),
        ] {
            let body = std::fs::read(dir.join(file)).unwrap();
            let detected = detect(Path::new(file), &body);
            let batch = decode(
                &IncomingMessage {
                    kind: Some(detected.kind.as_str()),
                    content_type: Some(detected.content_type),
                    org_id_header: Some("d23736ac-8055-433e-b85a-0fc55c96ead9"),
                    account_id_header: None,
                    body: &body,
                },
                &Limits {
                    max_message_bytes: 1 << 20,
                    max_contacts: 10,
                },
            )
            .unwrap_or_else(|r| panic!("examples/{file}: {}", r.message));
            assert_eq!(batch.contacts.len(), contacts, "examples/{file}");
            for contact in &batch.contacts {
                assert!(
                    contact.is_ok(),
                    "examples/{file}: {:?}",
                    contact.as_ref().err()
                );
            }
        }
    }

    #[test]
    fn the_type_flag_takes_exactly_the_worker_names() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[arg(long = "type", value_parser = message_type_parser())]
            kind: MessageType,
        }
        for kind in MessageType::ALL {
            let cli = Cli::try_parse_from(["x", "--type", kind.as_str()]).unwrap();
            assert_eq!(cli.kind, kind);
        }
        assert!(Cli::try_parse_from(["x", "--type", "webex"]).is_err());
    }
}
