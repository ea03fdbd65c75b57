//! The seed examples every property starts from: each sample in `examples/` and fixture in
//! `tests/fixtures/`, with the `type` and content type it is published with.

use contact_import::dialect::{CSV, JSON, XML, docusign, save, update, webex};

/// One example message.
#[derive(Debug, Clone, Copy)]
pub struct Seed {
    /// Its file, relative to the repository.
    pub file: &'static str,
    /// Its AMQP `type`.
    pub kind: &'static str,
    /// Its content type.
    pub content_type: &'static str,
    /// Its body.
    pub body: &'static [u8],
}

macro_rules! seed {
    ($file:literal, $kind:expr, $content_type:expr) => {
        Seed {
            file: $file,
            kind: $kind,
            content_type: $content_type,
            body: include_bytes!(concat!("../../", $file)),
        }
    };
}

/// Every seed, at least one per decoder (Webex, Save, DocuSign JSON, XML and CSV, Update).
pub const SEEDS: &[Seed] = &[
    seed!("examples/webex-bulk-create.json", webex::MESSAGE_TYPE, JSON),
    seed!("examples/webex-bulk-mixed.json", webex::MESSAGE_TYPE, JSON),
    seed!("examples/not-a-batch.json", webex::MESSAGE_TYPE, JSON),
    seed!("examples/user-contacts-save.json", save::MESSAGE_TYPE, JSON),
    seed!(
        "tests/fixtures/save-user-contacts-seed.json",
        save::MESSAGE_TYPE,
        JSON
    ),
    seed!(
        "tests/fixtures/save-user-contacts-mixed.json",
        save::MESSAGE_TYPE,
        JSON
    ),
    seed!(
        "tests/fixtures/docusign-contacts.json",
        docusign::MESSAGE_TYPE,
        JSON
    ),
    seed!(
        "tests/fixtures/docusign-seed-example.json",
        docusign::MESSAGE_TYPE,
        JSON
    ),
    seed!(
        "examples/docusign-contacts.xml",
        docusign::MESSAGE_TYPE,
        XML
    ),
    seed!(
        "tests/fixtures/docusign-contacts.xml",
        docusign::MESSAGE_TYPE,
        XML
    ),
    seed!(
        "tests/fixtures/docusign-seed-example.xml",
        docusign::MESSAGE_TYPE,
        "text/xml"
    ),
    seed!(
        "examples/docusign-contacts.csv",
        docusign::MESSAGE_TYPE,
        CSV
    ),
    seed!(
        "tests/fixtures/docusign-contacts.csv",
        docusign::MESSAGE_TYPE,
        CSV
    ),
    seed!(
        "examples/user-contact-update.json",
        update::MESSAGE_TYPE,
        JSON
    ),
    seed!(
        "tests/fixtures/update-user-contact-seed.json",
        update::MESSAGE_TYPE,
        JSON
    ),
    seed!(
        "tests/fixtures/update-user-contact.json",
        update::MESSAGE_TYPE,
        JSON
    ),
];
