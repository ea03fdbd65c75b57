//! Splitting a file of another dialect than Webex into messages of at most `--batch-size`
//! contacts, each a valid body of the same dialect and format:
//!
//! - Save User Contacts JSON: an array becomes arrays; an `{"orgId", "contacts": [...]}`
//!   envelope becomes envelopes with the same other members; a single contact stays whole.
//! - DocuSign JSON: `{"contacts": [...]}` becomes the same envelope (every other member, such
//!   as `accountId`, kept) with fewer contacts.
//! - DocuSign CSV: the header row and the next records (read and re-written with `csv`, so a
//!   quoted cell spanning lines is never cut; a byte order mark is dropped).
//! - DocuSign XML: the text before the first child of `<contacts>`, the chunk's children as
//!   written, and the text after the last child: the root, its namespaces and everything
//!   outside `<contacts>` are kept verbatim. Every element child of `<contacts>` counts as a
//!   contact, as the worker counts them.
//! - Update User Contact: never split (one user).
//!
//! A file with at most `--batch-size` contacts, or one this cannot read (the worker then
//! refuses it with its reason, as before), is not split: it is sent unchanged.
//! Contacts are copied as written (JSON values, XML elements), never re-encoded.

use crate::dialect::{self, MessageType, SplitShape};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// One message of a split file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The message body, in the file's own dialect and format.
    pub body: Vec<u8>,
    /// The position in the file of the chunk's first contact, from 0.
    pub first: usize,
    /// How many contacts the chunk holds.
    pub count: usize,
}

/// The chunks `body` (of `kind`, sent as `content_type`) is sent as, or `None` when it is
/// sent as it is: at most `size` contacts, a single contact or user, or not readable here.
pub fn split(
    kind: MessageType,
    content_type: &str,
    body: &[u8],
    size: usize,
) -> Option<Vec<Chunk>> {
    let size = size.max(1);
    let media = dialect::media_type(Some(content_type));
    match kind.dialect().split_shape(media.as_deref())? {
        SplitShape::JsonContacts => split_save(body, size),
        SplitShape::JsonEnvelope => split_envelope(body, size),
        SplitShape::XmlContacts => split_xml(body, size),
        SplitShape::CsvRows => split_csv(body, size),
    }
}

/// A JSON object's members in order, each value as written.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for MembersVisitor<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor(std::marker::PhantomData))
    }
}

/// Save: an array, an envelope with `contacts`, or a single contact (not split).
fn split_save(body: &[u8], size: usize) -> Option<Vec<Chunk>> {
    let whole: &RawValue = serde_json::from_slice(body).ok()?;
    if whole.get().starts_with('[') {
        let contacts: Vec<&RawValue> = serde_json::from_str(whole.get()).ok()?;
        if contacts.len() <= size {
            return None;
        }
        let chunks = contacts
            .chunks(size)
            .enumerate()
            .map(|(i, part)| Chunk {
                body: json_array(part).into_bytes(),
                first: i * size,
                count: part.len(),
            })
            .collect();
        return Some(chunks);
    }
    split_envelope(body, size)
}

/// `{..., "contacts": [...], ...}`: the same members, `contacts` holding at most `size`.
fn split_envelope(body: &[u8], size: usize) -> Option<Vec<Chunk>> {
    let members: Members<'_> = serde_json::from_slice(body).ok()?;
    let members = members.0;
    let mut list = members.iter().filter(|(key, _)| key == "contacts");
    let (Some((_, raw)), None) = (list.next(), list.next()) else {
        return None; // no contacts (a single Save contact), or a duplicate member
    };
    if !raw.get().starts_with('[') {
        return None;
    }
    let contacts: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
    if contacts.len() <= size {
        return None;
    }
    let chunks = contacts
        .chunks(size)
        .enumerate()
        .map(|(i, part)| {
            let mut text = String::from("{");
            for (n, (key, value)) in members.iter().enumerate() {
                if n > 0 {
                    text.push(',');
                }
                text.push_str(&serde_json::to_string(key).expect("a string serialises"));
                text.push(':');
                if key == "contacts" {
                    text.push_str(&json_array(part));
                } else {
                    text.push_str(value.get());
                }
            }
            text.push('}');
            Chunk {
                body: text.into_bytes(),
                first: i * size,
                count: part.len(),
            }
        })
        .collect();
    Some(chunks)
}

fn json_array(values: &[&RawValue]) -> String {
    let mut text = String::from("[");
    for (n, value) in values.iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        text.push_str(value.get());
    }
    text.push(']');
    text
}

/// DocuSign CSV: the header row, then at most `size` records per chunk.
fn split_csv(body: &[u8], size: usize) -> Option<Vec<Chunk>> {
    let mut reader = csv::ReaderBuilder::new().from_reader(body);
    let header = reader.byte_headers().ok()?.clone();
    let mut records = Vec::new();
    for record in reader.byte_records() {
        records.push(record.ok()?);
    }
    if records.len() <= size {
        return None;
    }
    let mut chunks = Vec::new();
    for (i, part) in records.chunks(size).enumerate() {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        writer.write_byte_record(&header).ok()?;
        for record in part {
            writer.write_byte_record(record).ok()?;
        }
        chunks.push(Chunk {
            body: writer.into_inner().ok()?,
            first: i * size,
            count: part.len(),
        });
    }
    Some(chunks)
}

/// DocuSign XML: the text around the element children of the root's one `<contacts>`, with
/// each chunk's children in between, all as written.
fn split_xml(body: &[u8], size: usize) -> Option<Vec<Chunk>> {
    let text = std::str::from_utf8(body).ok()?;
    // Ranges are into the text after the byte order mark, which stays in the prefix.
    let bom = if text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let text = &text[bom..];
    // The default options refuse any DTD, hence entities.
    let document = roxmltree::Document::parse(text).ok()?;
    let root = document.root_element();
    if root.tag_name().name() != "contactModRequest" {
        return None;
    }
    let mut lists = root
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "contacts");
    let (Some(list), None) = (lists.next(), lists.next()) else {
        return None;
    };
    let ranges: Vec<std::ops::Range<usize>> = list
        .children()
        .filter(roxmltree::Node::is_element)
        .map(|n| n.range())
        .collect();
    if ranges.len() <= size {
        return None;
    }
    let before = &body[..bom + ranges[0].start];
    let after = &text.as_bytes()[ranges[ranges.len() - 1].end..];
    let chunks = ranges
        .chunks(size)
        .enumerate()
        .map(|(i, part)| {
            let inner = &text.as_bytes()[part[0].start..part[part.len() - 1].end];
            Chunk {
                body: [before, inner, after].concat(),
                first: i * size,
                count: part.len(),
            }
        })
        .collect();
    Some(chunks)
}

#[cfg(test)]
mod tests {
    use super::super::detect;
    use super::*;
    use crate::dialect::{DecodedBatch, IncomingMessage, Limits};
    use crate::dialect::{docusign, save, update};

    const ORG: &str = "d23736ac-8055-433e-b85a-0fc55c96ead9";

    fn decode(kind: MessageType, content_type: &str, body: &[u8]) -> DecodedBatch {
        let message = IncomingMessage {
            kind: Some(kind.as_str()),
            content_type: Some(content_type),
            org_id_header: Some(ORG),
            account_id_header: None,
            body,
        };
        let limits = Limits {
            max_message_bytes: 16 * 1024 * 1024,
            max_contacts: 10_000,
        };
        crate::dialect::decode(&message, &limits)
            .unwrap_or_else(|r| panic!("{r:?}: {}", String::from_utf8_lossy(body)))
    }

    /// Splits, checks every chunk decodes with the worker's decoder, and returns the chunks'
    /// contacts in order, by `name` (DocuSign: display name; Save: first name).
    fn names(kind: MessageType, content_type: &str, body: &[u8], size: usize) -> Vec<Vec<String>> {
        let chunks = split(kind, content_type, body, size).expect("split");
        let mut next = 0;
        chunks
            .iter()
            .map(|chunk| {
                assert_eq!(chunk.first, next);
                next += chunk.count;
                assert!(chunk.count <= size);
                let batch = decode(kind, content_type, &chunk.body);
                assert_eq!(batch.contacts.len(), chunk.count);
                batch
                    .contacts
                    .iter()
                    .map(|c| {
                        let c = c.as_ref().expect("a valid contact");
                        c.display_name
                            .clone()
                            .or_else(|| c.first_name.clone())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect()
    }

    fn strings(groups: &[&[&str]]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| g.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    fn save_contact(i: usize) -> String {
        format!(
            r#"{{"userName": "u", "password": "p", "firstName": "P{i}", "lastName": "L", "mobileNumber": "+1555000{i:04}"}}"#
        )
    }

    #[test]
    fn a_save_array_becomes_arrays() {
        let body = format!(
            "[{}]",
            (0..5).map(save_contact).collect::<Vec<_>>().join(",\n ")
        );
        let got = names(save::TYPE, detect::JSON, body.as_bytes(), 2);
        assert_eq!(got, strings(&[&["P0", "P1"], &["P2", "P3"], &["P4"]]));
        let small = split(save::TYPE, detect::JSON, body.as_bytes(), 5);
        assert_eq!(small, None, "at most --batch-size: sent unchanged");
    }

    #[test]
    fn a_save_envelope_keeps_its_other_members_and_a_single_contact_is_not_split() {
        let body = format!(
            r#"{{"orgId": "{ORG}", "contacts": [{}], "note": {{"x": [1, 2.50]}}}}"#,
            (0..3).map(save_contact).collect::<Vec<_>>().join(",")
        );
        let chunks = split(save::TYPE, detect::JSON, body.as_bytes(), 2).unwrap();
        let first: serde_json::Value = serde_json::from_slice(&chunks[0].body).unwrap();
        assert_eq!(first["orgId"], ORG);
        let text = String::from_utf8(chunks[1].body.clone()).unwrap();
        assert!(text.ends_with(r#""note":{"x": [1, 2.50]}}"#), "{text}");
        assert_eq!(
            names(save::TYPE, "application/json", body.as_bytes(), 2),
            strings(&[&["P0", "P1"], &["P2"]])
        );
        let single = save_contact(1);
        assert_eq!(split(save::TYPE, detect::JSON, single.as_bytes(), 1), None);
    }

    #[test]
    fn a_docusign_json_envelope_keeps_its_account() {
        let contacts: Vec<String> = (0..5)
            .map(|i| format!(r#"{{"name": "N{i}", "emails": ["n{i}@example.com"]}}"#))
            .collect();
        let body = format!(
            r#"{{"accountId": "{ORG}", "contacts": [{}]}}"#,
            contacts.join(", ")
        );
        let got = names(docusign::TYPE, detect::JSON, body.as_bytes(), 3);
        assert_eq!(got, strings(&[&["N0", "N1", "N2"], &["N3", "N4"]]));
        let chunks = split(docusign::TYPE, detect::JSON, body.as_bytes(), 3).unwrap();
        for chunk in chunks {
            let value: serde_json::Value = serde_json::from_slice(&chunk.body).unwrap();
            assert_eq!(value["accountId"], ORG);
        }
        assert_eq!(
            split(docusign::TYPE, detect::JSON, body.as_bytes(), 5),
            None
        );
    }

    #[test]
    fn a_docusign_csv_keeps_its_header_and_never_cuts_a_quoted_cell() {
        let body = "\u{feff}name,emails,organization\n\
                    N0,n0@example.com,\"Acme,\nInc\"\n\
                    N1,n1@example.com,\n\
                    \"N\n2\",n2@example.com,x\n\
                    N3,n3@example.com,\n\
                    N4,n4@example.com,\n";
        let got = names(docusign::TYPE, detect::CSV, body.as_bytes(), 2);
        assert_eq!(got, strings(&[&["N0", "N1"], &["N\n2", "N3"], &["N4"]]));
        let chunks = split(
            docusign::TYPE,
            "text/csv; charset=utf-8",
            body.as_bytes(),
            2,
        )
        .unwrap();
        let first = String::from_utf8(chunks[0].body.clone()).unwrap();
        assert_eq!(
            first,
            "name,emails,organization\nN0,n0@example.com,\"Acme,\nInc\"\nN1,n1@example.com,\n"
        );
        let batch = decode(docusign::TYPE, detect::CSV, &chunks[0].body);
        let acme = batch.contacts[0].as_ref().unwrap();
        assert_eq!(acme.company_name.as_deref(), Some("Acme,\nInc"));
        assert_eq!(split(docusign::TYPE, detect::CSV, body.as_bytes(), 5), None);
    }

    #[test]
    fn a_docusign_xml_keeps_its_namespaces_and_everything_around_the_contacts() {
        let contacts: String = (0..5)
            .map(|i| {
                format!(
                    "\n    <ds:contact><ds:name>N{i}</ds:name><ds:emails><ds:string>n{i}@example.com</ds:string></ds:emails></ds:contact>"
                )
            })
            .collect();
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <ds:contactModRequest xmlns:ds=\"http://www.docusign.com/restapi\">\n  \
             <ds:accountId>{ORG}</ds:accountId>\n  <ds:contacts>{contacts}\n  </ds:contacts>\n\
             </ds:contactModRequest>\n"
        );
        let got = names(docusign::TYPE, detect::XML, body.as_bytes(), 2);
        assert_eq!(got, strings(&[&["N0", "N1"], &["N2", "N3"], &["N4"]]));
        let chunks = split(docusign::TYPE, "text/xml", body.as_bytes(), 2).unwrap();
        let last = String::from_utf8(chunks[2].body.clone()).unwrap();
        assert_eq!(
            last,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                 <ds:contactModRequest xmlns:ds=\"http://www.docusign.com/restapi\">\n  \
                 <ds:accountId>{ORG}</ds:accountId>\n  <ds:contacts>\n    \
                 <ds:contact><ds:name>N4</ds:name><ds:emails><ds:string>n4@example.com</ds:string></ds:emails></ds:contact>\n  \
                 </ds:contacts>\n</ds:contactModRequest>\n"
            )
        );
        assert_eq!(split(docusign::TYPE, detect::XML, body.as_bytes(), 5), None);
    }

    #[test]
    fn every_example_splits_into_one_contact_messages_the_worker_reads() {
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        for (file, kind, content_type) in [
            ("user-contacts-save.json", save::TYPE, detect::JSON),
            ("docusign-contacts.xml", docusign::TYPE, detect::XML),
            ("docusign-contacts.csv", docusign::TYPE, detect::CSV),
        ] {
            let body = std::fs::read(examples.join(file)).unwrap();
            let whole = decode(kind, content_type, &body).contacts;
            let chunks = split(kind, content_type, &body, 1).expect(file);
            assert_eq!(chunks.len(), whole.len(), "{file}");
            for (i, chunk) in chunks.iter().enumerate() {
                let got = decode(kind, content_type, &chunk.body).contacts;
                assert_eq!(
                    format!("{got:?}"),
                    format!("{:?}", [&whole[i]]),
                    "{file} #{i}"
                );
            }
        }
    }

    #[test]
    fn an_update_or_an_unreadable_body_is_never_split() {
        let update = br#"{"conversationRequest": {"contacts": [1, 2, 3]}}"#;
        assert_eq!(split(update::TYPE, detect::JSON, update, 1), None);
        assert_eq!(split(docusign::TYPE, detect::XML, b"<not xml", 1), None);
        assert_eq!(split(docusign::TYPE, detect::JSON, b"[1, 2, 3]", 1), None);
    }
}
