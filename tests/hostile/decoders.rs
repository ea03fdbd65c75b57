//! Every decoder, through the worker's own entry point: `dialect::decode` with a `type`, a
//! content type and the org headers, then `validate_batch`.

use crate::codes::{CONTACT_CODES, REJECT_CODES};
use crate::meter;
use crate::mutate::mutated;
use crate::seeds::{SEEDS, Seed};
use contact_import::contact::{Planned, ValidatedBatch, validate_batch};
use contact_import::dialect::{
    self, IncomingMessage, Limits, MessageType, docusign, save, update, webex,
};
use contact_import::ids::{BatchId, body_sha256};
use contact_import::rejection::Rejection;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The org the headers name when they name one (the examples' own).
const ORG: &str = "d23736ac-8055-433e-b85a-0fc55c96ead9";

/// Most bytes a decode and validation may hold at once, per byte of body. A list keeps at
/// most 50 entries and counts the rest, so the densest body per byte is a batch of contacts
/// each with a full list of empty objects, each a struct of optional strings (DocuSign's
/// `{"signingGroupUsers":[{},{},…50]}`: 192 bytes per 3 body bytes), measured at up to 51
/// beyond the per-contact allowance (`the_densest_bodies_stay_within_the_bound`).
pub const ALLOC_PER_BYTE: usize = 56;
/// Most bytes per contact of the batch (its draft and its validated entry, each in a `Vec`
/// that may have doubled), measured at up to 1,450. A batch holds at most `max_contacts`
/// (10,000 by default, so at most ~20 MB); a rejected one may have read as many before it
/// was refused, at most one per body byte.
pub const ALLOC_PER_CONTACT: usize = 2048;
/// Bytes any decode may hold, whatever the body's size (parsers' buffers: the CSV reader's
/// is 8 KiB).
pub const ALLOC_SLACK: usize = 64 << 10;

/// The bound on what a decode of `len` bytes into `contacts` contacts holds at its peak.
pub fn alloc_bound(len: usize, contacts: usize) -> usize {
    ALLOC_PER_BYTE * len + ALLOC_PER_CONTACT * contacts + ALLOC_SLACK
}

/// One message as the worker receives it.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: Option<String>,
    pub content_type: Option<String>,
    pub org_id_header: Option<String>,
    pub account_id_header: Option<String>,
    pub body: Vec<u8>,
    pub max_message_bytes: usize,
    pub max_contacts: usize,
}

impl Message {
    /// `body` as its publisher sends it, for the examples' org, under the default limits.
    fn plain(kind: &str, content_type: &str, body: Vec<u8>) -> Self {
        Message {
            kind: Some(kind.to_owned()),
            content_type: Some(content_type.to_owned()),
            org_id_header: Some(ORG.to_owned()),
            account_id_header: None,
            body,
            max_message_bytes: 16 << 20,
            max_contacts: 10_000,
        }
    }
}

fn header() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(Some(ORG.to_owned())),
        2 => Just(None),
        1 => Just(Some(String::new())),
        1 => ".{0,300}".prop_map(Some),
    ]
}

/// Mostly the seed's own `type` and content type (the decoder under test), sometimes another
/// dialect's, an unknown one or none; content types with parameters and in other cases.
fn properties(seed: Seed) -> impl Strategy<Value = (Option<String>, Option<String>)> {
    let kinds: Vec<Option<String>> = MessageType::all()
        .map(|t| Some(t.as_str().to_owned()))
        .chain([
            None,
            Some(String::new()),
            Some("webex.contacts.bulk ".into()),
        ])
        .collect();
    let kind = prop_oneof![
        6 => Just(Some(seed.kind.to_owned())),
        1 => prop::sample::select(kinds),
    ];
    let content_types = vec![
        None,
        Some("application/json".to_owned()),
        Some("application/xml".to_owned()),
        Some("text/xml".to_owned()),
        Some("text/csv".to_owned()),
        Some("TEXT/CSV; charset=utf-8".to_owned()),
        Some(" application/json ; charset=latin1".to_owned()),
        Some(";".to_owned()),
        Some("application/octet-stream".to_owned()),
    ];
    let content_type = prop_oneof![
        6 => Just(Some(seed.content_type.to_owned())),
        1 => prop::sample::select(content_types),
    ];
    (kind, content_type)
}

fn limits() -> impl Strategy<Value = (usize, usize)> {
    let bytes = prop_oneof![8 => Just(16usize << 20), 1 => 0usize..2048];
    let contacts = prop_oneof![4 => Just(10_000usize), 1 => 0usize..4];
    (bytes, contacts)
}

/// A message built on `seed` whose body `body` makes.
fn message(seed: Seed, body: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Message> {
    (properties(seed), header(), header(), body, limits()).prop_map(
        |((kind, content_type), org_id_header, account_id_header, body, (bytes, contacts))| {
            Message {
                kind,
                content_type,
                org_id_header,
                account_id_header,
                body,
                max_message_bytes: bytes,
                max_contacts: contacts,
            }
        },
    )
}

/// The seeds one decoder reads: of this `type`, with a content type that names this format.
fn seeds_of(kind: &str, content_type: &str) -> Vec<Seed> {
    let seeds: Vec<Seed> = SEEDS
        .iter()
        .copied()
        .filter(|s| s.kind == kind && s.content_type.contains(content_type))
        .collect();
    assert!(!seeds.is_empty(), "no seed for {kind} {content_type}");
    seeds
}

/// A message of one of `seeds`, its body mutated.
fn mutated_seed(seeds: Vec<Seed>) -> impl Strategy<Value = Message> {
    prop::sample::select(seeds).prop_flat_map(|seed| message(seed, mutated(seed.body)))
}

/// Arbitrary bytes, sent as one of `seeds` is.
fn arbitrary_bytes(seeds: Vec<Seed>) -> impl Strategy<Value = Message> {
    prop::sample::select(seeds)
        .prop_flat_map(|seed| message(seed, prop::collection::vec(any::<u8>(), 0..4096)))
}

/// What the worker makes of a message before the database: a validated batch, or the
/// rejection (whose answer in the dialect, DocuSign's `errorDetails`, is made and measured too).
fn decode_and_validate(message: &Message) -> Result<ValidatedBatch, Rejection> {
    let incoming = IncomingMessage {
        kind: message.kind.as_deref(),
        content_type: message.content_type.as_deref(),
        org_id_header: message.org_id_header.as_deref(),
        account_id_header: message.account_id_header.as_deref(),
        body: &message.body,
    };
    let limits = Limits {
        max_message_bytes: message.max_message_bytes,
        max_contacts: message.max_contacts,
    };
    let batch_id = BatchId::for_message(None, &body_sha256(&message.body));
    match dialect::decode(&incoming, &limits) {
        Ok(decoded) => Ok(validate_batch(batch_id, decoded.org_id, decoded.contacts)),
        Err(rejection) => {
            let details = MessageType::of(incoming.kind).ok().and_then(|t| {
                t.dialect()
                    .refusal_details(incoming.content_type, &rejection)
            });
            std::hint::black_box(details);
            Err(rejection)
        }
    }
}

/// The property: a documented outcome, within the allocation bound.
pub fn documented_outcome(message: &Message) -> Result<(), TestCaseError> {
    let (outcome, peak) = meter::peak(|| decode_and_validate(message));
    let len = message.body.len();
    let contacts = match &outcome {
        Ok(batch) => batch.entries().len(),
        Err(_) => len.min(message.max_contacts),
    };
    prop_assert!(
        peak <= alloc_bound(len, contacts),
        "a decode of {} bytes into {} contacts held {} bytes at its peak (bound {})",
        len,
        contacts,
        peak,
        alloc_bound(len, contacts)
    );
    match outcome {
        Ok(batch) => {
            prop_assert!(batch.entries().len() <= message.max_contacts);
            for entry in batch.entries() {
                if let Planned::Failed(error) = entry {
                    prop_assert!(
                        CONTACT_CODES.contains(error.code.as_str()),
                        "undocumented per-contact code {}",
                        error.code
                    );
                    prop_assert!(!error.message.is_empty());
                }
            }
        }
        Err(rejection) => {
            prop_assert!(
                REJECT_CODES.contains(rejection.code.as_str()),
                "undocumented rejection code {}",
                rejection.code
            );
            prop_assert!(!rejection.message.is_empty());
        }
    }
    Ok(())
}

/// Two properties per decoder, each with its own cases: arbitrary bytes, and mutated seeds.
macro_rules! decoder_properties {
    ($($name:ident: $kind:expr, $content_type:expr;)*) => {
        $(mod $name {
            use super::*;

            proptest! {
                #![proptest_config(crate::config())]

                #[test]
                fn arbitrary_bytes_end_in_a_documented_outcome(
                    message in arbitrary_bytes(seeds_of($kind, $content_type)),
                ) {
                    documented_outcome(&message)?;
                }

                #[test]
                fn mutated_seeds_end_in_a_documented_outcome(
                    message in mutated_seed(seeds_of($kind, $content_type)),
                ) {
                    documented_outcome(&message)?;
                }
            }
        })*
    };
}

decoder_properties! {
    webex_json: webex::MESSAGE_TYPE, "json";
    save_json: save::MESSAGE_TYPE, "json";
    docusign_json: docusign::MESSAGE_TYPE, "json";
    docusign_xml: docusign::MESSAGE_TYPE, "xml";
    docusign_csv: docusign::MESSAGE_TYPE, "csv";
    update_json: update::MESSAGE_TYPE, "json";
}

#[test]
fn every_seed_unchanged_decodes_to_a_documented_outcome() {
    for seed in SEEDS {
        let message = Message::plain(seed.kind, seed.content_type, seed.body.to_vec());
        documented_outcome(&message).unwrap_or_else(|e| panic!("{}: {e}", seed.file));
    }
}

/// The densest bodies known: the most contacts (or values) per byte in each decoder, the
/// shapes that set [`ALLOC_PER_BYTE`].
fn densest_bodies(n: usize) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    use contact_import::dialect::{CSV, JSON, XML, docusign, save, update, webex};
    let list = |item: &str| vec![item; n].join(",");
    let full_users = format!(r#"{{"signingGroupUsers":[{}]}}"#, vec!["{}"; 50].join(","));
    vec![
        (docusign::MESSAGE_TYPE, JSON, format!(r#"{{"contacts":[{}]}}"#, vec![full_users.as_str(); n].join(",")).into_bytes()),
        (webex::MESSAGE_TYPE, JSON, format!(r#"{{"contacts":[{}]}}"#, list("{}")).into_bytes()),
        (webex::MESSAGE_TYPE, JSON, format!(r#"{{"contacts":[{}]}}"#, list("0")).into_bytes()),
        (webex::MESSAGE_TYPE, JSON, format!(r#"{{"contacts":[{{"emails":[{}]}}]}}"#, list("{}")).into_bytes()),
        (webex::MESSAGE_TYPE, JSON, format!(r#"{{"contacts":[{{"groups":[{}]}}]}}"#, list(r#""""#)).into_bytes()),
        (webex::MESSAGE_TYPE, JSON, format!(r#"{{"contacts":[{{"address":{{{}}}}}]}}"#, (0..n).map(|i| format!(r#""{i}":0"#)).collect::<Vec<_>>().join(",")).into_bytes()),
        (save::MESSAGE_TYPE, JSON, format!("[{}]", list("{}")).into_bytes()),
        (save::MESSAGE_TYPE, JSON, format!("[{}]", list("0")).into_bytes()),
        (docusign::MESSAGE_TYPE, JSON, format!(r#"{{"contacts":[{}]}}"#, list("{}")).into_bytes()),
        (docusign::MESSAGE_TYPE, JSON, format!(r#"{{"contacts":[{}]}}"#, list("0")).into_bytes()),
        (docusign::MESSAGE_TYPE, JSON, format!(r#"{{"contacts":[{{"emails":[{}]}}]}}"#, list(r#""""#)).into_bytes()),
        (docusign::MESSAGE_TYPE, JSON, format!(r#"{{"contacts":[{{"contactPhoneNumbers":[{}]}}]}}"#, list("{}")).into_bytes()),
        (docusign::MESSAGE_TYPE, JSON, format!(r#"{{"contacts":[{{"signingGroupUsers":[{}]}}]}}"#, list("{}")).into_bytes()),
        (docusign::MESSAGE_TYPE, XML, format!("<contactModRequest><contacts><contact><signingGroupUsers>{}</signingGroupUsers></contact></contacts></contactModRequest>", "<userInfo/>".repeat(n)).into_bytes()),
        (webex::MESSAGE_TYPE, JSON, format!(r#"{{"contacts":[{{"ims":[{}]}}]}}"#, list("{}")).into_bytes()),
        (docusign::MESSAGE_TYPE, XML, format!("<contactModRequest><contacts>{}</contacts></contactModRequest>", "<c/>".repeat(n)).into_bytes()),
        (docusign::MESSAGE_TYPE, XML, format!("<contactModRequest><contacts>{}</contacts></contactModRequest>", "<contact/>".repeat(n)).into_bytes()),
        (docusign::MESSAGE_TYPE, XML, format!("<contactModRequest><contacts><contact><emails>{}</emails></contact></contacts></contactModRequest>", "<string>a</string>".repeat(n)).into_bytes()),
        (docusign::MESSAGE_TYPE, XML, format!("<contactModRequest><contacts><contact><contactPhoneNumbers>{}</contactPhoneNumbers></contact></contacts></contactModRequest>", "<contactPhoneNumber/>".repeat(n)).into_bytes()),
        (docusign::MESSAGE_TYPE, XML, format!("<contactModRequest>{}</contactModRequest>", "<a/>".repeat(n)).into_bytes()),
        (docusign::MESSAGE_TYPE, XML, format!("<contactModRequest a=\"\"{}/>", (0..n).map(|i| format!(" a{i}=\"\"")).collect::<String>()).into_bytes()),
        (docusign::MESSAGE_TYPE, CSV, format!("name\n{}", "a\n".repeat(n)).into_bytes()),
        (docusign::MESSAGE_TYPE, CSV, format!("emails,name\n{}", ";;;;;;;;a,\n".repeat(n)).into_bytes()),
        (docusign::MESSAGE_TYPE, CSV, format!("emails\n{}\n", "a;".repeat(n)).into_bytes()),
        (docusign::MESSAGE_TYPE, CSV, format!("homePhone,mobilePhone,workPhone,otherPhone,faxPhone\n{}", "1,1,1,1,1\n".repeat(n)).into_bytes()),
        (update::MESSAGE_TYPE, JSON, format!(r#"{{"uuid":"a","x":[{}]}}"#, list("0")).into_bytes()),
    ]
}

#[test]
fn the_densest_bodies_stay_within_the_bound() {
    for n in [1_000, 9_000] {
        for (kind, content_type, body) in densest_bodies(n) {
            let message = Message::plain(kind, content_type, body);
            documented_outcome(&message).unwrap_or_else(|e| panic!("{kind} {content_type}: {e}"));
        }
    }
}

/// A list far over the limit (200,000 entries in one contact) is counted, not kept: the
/// decode holds a small multiple of the body (XML: its tree), and the contact fails with
/// `too.many.values` and the true count.
#[test]
fn a_list_of_200k_entries_is_counted_not_kept() {
    use contact_import::dialect::{CSV, JSON, XML};
    const N: usize = 200_000;
    let list = |item: &str| vec![item; N].join(",");
    let cases = [
        (
            webex::MESSAGE_TYPE,
            JSON,
            format!(r#"{{"contacts":[{{"emails":[{}]}}]}}"#, list("{}")),
            "emails",
            1,
        ),
        (
            webex::MESSAGE_TYPE,
            JSON,
            format!(r#"{{"contacts":[{{"groups":[{}]}}]}}"#, list(r#""a""#)),
            "groups",
            1,
        ),
        (
            docusign::MESSAGE_TYPE,
            JSON,
            format!(
                r#"{{"contacts":[{{"signingGroupUsers":[{}]}}]}}"#,
                list("{}")
            ),
            "signingGroupUsers",
            1,
        ),
        (
            docusign::MESSAGE_TYPE,
            JSON,
            format!(
                r#"{{"contacts":[{{"contactPhoneNumbers":[{}]}}]}}"#,
                list("{}")
            ),
            "phoneNumbers",
            1,
        ),
        (
            docusign::MESSAGE_TYPE,
            XML,
            format!(
                "<contactModRequest><contacts><contact><signingGroupUsers>{}</signingGroupUsers></contact></contacts></contactModRequest>",
                "<userInfo/>".repeat(N)
            ),
            "signingGroupUsers",
            8,
        ),
        (
            docusign::MESSAGE_TYPE,
            CSV,
            format!("emails\n{}\n", "a;".repeat(N)),
            "emails",
            4,
        ),
    ];
    for (kind, content_type, body, field, per_byte) in cases {
        let message = Message::plain(kind, content_type, body.into_bytes());
        let (outcome, peak) = meter::peak(|| decode_and_validate(&message));
        let len = message.body.len();
        assert!(
            peak <= per_byte * len,
            "{kind} {content_type} {field}: {len} bytes held {peak} at the peak (bound {per_byte} per byte)"
        );
        let batch = outcome.unwrap_or_else(|r| panic!("{kind} {content_type}: rejected: {r:?}"));
        let [Planned::Failed(error)] = batch.entries() else {
            panic!(
                "{kind} {content_type}: not one failed contact: {:?}",
                batch.entries()
            );
        };
        assert_eq!(
            error.code.as_str(),
            "too.many.values",
            "{kind} {content_type}"
        );
        assert_eq!(
            error.message,
            format!("{field} has {N} entries, at most 50 are allowed"),
            "{kind} {content_type}"
        );
    }
}

/// Found by `update_json`: an Update User Contact request (always one contact) was read
/// whatever `CONTACT_IMPORT_MAX_BATCH_CONTACTS` said, 0 included.
#[test]
fn an_update_request_over_the_contact_limit_is_too_large() {
    let seed = seeds_of(update::MESSAGE_TYPE, "json")[0];
    let message = Message {
        max_contacts: 0,
        ..Message::plain(seed.kind, seed.content_type, seed.body.to_vec())
    };
    let Err(rejection) = decode_and_validate(&message) else {
        panic!("a request of one contact read under a limit of none");
    };
    assert_eq!(rejection.code.as_str(), "batch.too.large");
}
