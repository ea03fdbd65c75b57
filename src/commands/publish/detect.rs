//! Which dialect a file is written in, so `publish` can set the AMQP `type` and content type
//! the worker reads it by. Detection looks at the file's syntax (its extension or `--format`)
//! and, for CSV and JSON, at the header row or the JSON document; each dialect says what it
//! recognises ([`crate::dialect::Dialect::recognises`]), and whatever none claims is Webex,
//! as every file was before the other dialects existed. `--type` overrides it.

use super::input::{Format, format_of};
use crate::dialect::{MessageType, Sample};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use std::path::Path;

pub use crate::dialect::{CSV, JSON, XML};

/// How a file is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    /// The AMQP `type`.
    pub kind: MessageType,
    /// The AMQP content type.
    pub content_type: &'static str,
}

/// The dialect and content type of a file, from its extension and content. An unknown
/// extension is read as JSON.
pub fn detect(path: &Path, bytes: &[u8]) -> Detected {
    detect_format(format_of(path).unwrap_or(Format::Json), bytes)
}

/// The dialect and content type of a body of the given syntax. Anything ambiguous or unknown
/// is Webex.
pub fn detect_format(format: Format, bytes: &[u8]) -> Detected {
    let (kind, content_type) = match format {
        Format::Xml => MessageType::recognise(&Sample::Xml),
        Format::Csv => match csv_header(bytes) {
            Some(header) => {
                let columns: Vec<&str> = header.iter().map(String::as_str).collect();
                MessageType::recognise(&Sample::Csv { columns: &columns })
            }
            None => (MessageType::default_type(), None),
        },
        Format::Json | Format::Ndjson | Format::Auto => match serde_json::from_slice(bytes) {
            Ok(value) => MessageType::recognise(&Sample::Json(&value)),
            // Not one JSON document (NDJSON lines, or not JSON): Webex's reader says why.
            Err(_) => (MessageType::default_type(), None),
        },
    };
    Detected {
        kind,
        content_type: content_type.unwrap_or_else(|| content_type_of(format)),
    }
}

/// The content type of a body of this syntax.
pub fn content_type_of(format: Format) -> &'static str {
    match format {
        Format::Xml => XML,
        Format::Csv => CSV,
        Format::Json | Format::Ndjson | Format::Auto => JSON,
    }
}

/// A CSV's header row, each name trimmed and without a byte order mark.
fn csv_header(bytes: &[u8]) -> Option<Vec<String>> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let header = csv.records().next()?.ok()?;
    Some(
        header
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
            .collect(),
    )
}

/// Parses `--type`: exactly one of the worker's [`MessageType`] names.
pub fn message_type_parser() -> impl TypedValueParser<Value = MessageType> {
    let names: Vec<&'static str> = MessageType::all().map(MessageType::as_str).collect();
    PossibleValuesParser::new(names)
        .map(|name| MessageType::named(&name).expect("one of the registry's names"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{docusign, save, update, webex};

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
                kind: docusign::TYPE,
                content_type: XML
            }
        );
    }

    #[test]
    fn a_csv_of_docusign_columns_is_docusign_and_any_other_is_webex() {
        let docusign = Detected {
            kind: docusign::TYPE,
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
            kind: webex::TYPE,
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
            update::TYPE
        );
        assert_eq!(
            json(r#"{"queryInfo": {"interestType": "update-address"}}"#),
            update::TYPE
        );
    }

    #[test]
    fn json_with_user_name_password_or_mobile_number_is_save_user_contacts() {
        let one = r#"{"userName": "u", "password": "p", "firstName": "John", "lastName": "Doe"}"#;
        assert_eq!(json(one), save::TYPE);
        assert_eq!(json(&format!("[{one}, {one}]")), save::TYPE);
        assert_eq!(
            json(r#"{"orgId": "o", "contacts": [{"firstName": "J", "mobileNumber": "1"}]}"#),
            save::TYPE
        );
    }

    #[test]
    fn json_with_docusign_contacts_is_docusign() {
        assert_eq!(
            json(r#"{"contacts": [{"name": "Ada", "emails": ["ada@example.com"]}]}"#),
            docusign::TYPE
        );
        assert_eq!(
            json(
                r#"{"contacts": [{"contactPhoneNumbers": [{"phoneNumber": "+1", "phoneType": "work"}]}]}"#
            ),
            docusign::TYPE
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
            assert_eq!(json(body), webex::TYPE, "{body}");
        }
        // NDJSON: several documents are Webex contacts, one per line.
        let lines = "{\"userName\": \"u\"}\n{\"userName\": \"v\"}\n";
        assert_eq!(
            detect(Path::new("in.ndjson"), lines.as_bytes()).kind,
            webex::TYPE
        );
        // One document in an .ndjson file is read like a .json file.
        assert_eq!(
            detect(Path::new("in.jsonl"), b"{\"queryInfo\": {}}\n").kind,
            update::TYPE
        );
    }

    /// Every sample in `examples/` is detected as the dialect its name says: the samples and
    /// the detection cannot drift apart.
    #[test]
    fn every_example_file_is_detected_as_its_dialect() {
        let expected = [
            ("webex-bulk-create.json", webex::TYPE, JSON),
            ("webex-bulk-mixed.json", webex::TYPE, JSON),
            ("not-a-batch.json", webex::TYPE, JSON),
            ("user-contacts-save.json", save::TYPE, JSON),
            ("docusign-contacts.xml", docusign::TYPE, XML),
            ("docusign-contacts.csv", docusign::TYPE, CSV),
            ("user-contact-update.json", update::TYPE, JSON),
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
        for kind in MessageType::all() {
            let cli = Cli::try_parse_from(["x", "--type", kind.as_str()]).unwrap();
            assert_eq!(cli.kind, kind);
        }
        assert!(Cli::try_parse_from(["x", "--type", "webex"]).is_err());
    }
}
