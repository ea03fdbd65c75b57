//! `publish`'s readers of another dialect's files: detection (`type` and content type from
//! the file name and contents) and splitting into messages. Whatever a file holds, detection
//! names a dialect and a content type, and a split file becomes messages that the worker
//! reads as the same contacts, in order; a file that cannot be split is sent whole, and the
//! worker's refusal then says why. (Webex files go through `publish`'s record reader, whose
//! property is a unit test beside it, `src/commands/publish/input.rs`.)

use crate::mutate::mutated;
use crate::seeds::SEEDS;
use contact_import::commands::publish::{chunk, detect};
use contact_import::dialect::{self, CSV, IncomingMessage, JSON, Limits, XML};
use proptest::prelude::*;
use std::path::Path;

/// A file for `publish`: its name and contents.
#[derive(Debug, Clone)]
struct File {
    name: String,
    bytes: Vec<u8>,
}

fn file() -> impl Strategy<Value = File> {
    let seed = prop::sample::select(SEEDS).prop_flat_map(|seed| {
        let name = seed.file.rsplit('/').next().unwrap_or(seed.file).to_owned();
        prop_oneof![Just(seed.body.to_vec()), mutated(seed.body)].prop_map(move |bytes| File {
            name: name.clone(),
            bytes,
        })
    });
    let names = vec![
        "f.json", "f.ndjson", "f.jsonl", "f.csv", "f.xml", "f.XML", "f", "f.txt",
    ];
    let bytes = (
        prop::sample::select(names),
        prop::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(|(name, bytes)| File {
            name: name.into(),
            bytes,
        });
    prop_oneof![4 => seed, 1 => bytes]
}

/// What the worker makes of a body: its contacts' count, or `None` when refused.
fn contacts_read(kind: &str, content_type: &str, body: &[u8]) -> Option<usize> {
    let message = IncomingMessage {
        kind: Some(kind),
        content_type: Some(content_type),
        org_id_header: Some("d23736ac-8055-433e-b85a-0fc55c96ead9"),
        account_id_header: None,
        body,
    };
    let limits = Limits {
        max_message_bytes: usize::MAX,
        max_contacts: usize::MAX,
    };
    dialect::decode(&message, &limits)
        .ok()
        .map(|b| b.contacts.len())
}

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn a_file_is_detected_and_sent_whole_or_split_into_the_same_contacts(
        file in file(),
        size in 1usize..5,
    ) {
        let detected = detect::detect(Path::new(&file.name), &file.bytes);
        prop_assert!([JSON, XML, CSV].contains(&detected.content_type));
        let kind = detected.kind.as_str();
        let Some(chunks) = chunk::split(detected.kind, detected.content_type, &file.bytes, size)
        else {
            return Ok(()); // sent whole: the worker reads or refuses it as it is
        };
        prop_assert!(!chunks.is_empty());
        let mut next = 0;
        for c in &chunks {
            prop_assert_eq!(c.first, next, "chunks follow each other");
            prop_assert!((1..=size).contains(&c.count), "{} contacts in a chunk of {}", c.count, size);
            next += c.count;
        }
        prop_assert!(next > size, "a file of {} contacts is split by {}", next, size);
        if let Some(whole) = contacts_read(kind, detected.content_type, &file.bytes) {
            prop_assert_eq!(whole, next, "the chunks hold the file's contacts");
            for c in &chunks {
                prop_assert_eq!(
                    contacts_read(kind, detected.content_type, &c.body),
                    Some(c.count),
                    "a chunk of a readable file is read as its contacts: {}",
                    String::from_utf8_lossy(&c.body)
                );
            }
        }
    }
}
