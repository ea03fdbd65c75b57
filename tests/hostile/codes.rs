//! The error codes the contract documents, read from the two tables of
//! docs/reference/error-codes.md (written from the enums, and checked against them by
//! tests/reference.rs), so the properties check against the published contract.

use contact_import::rejection::RejectCode;
use std::collections::BTreeSet;
use std::sync::LazyLock;

const ERROR_CODES: &str = include_str!("../../docs/reference/error-codes.md");

/// `errorCode`s of the "Per contact" table.
pub static CONTACT_CODES: LazyLock<BTreeSet<String>> =
    LazyLock::new(|| table_codes("## Per contact"));

/// `error.code`s of the "Batch rejections" table.
pub static REJECT_CODES: LazyLock<BTreeSet<String>> =
    LazyLock::new(|| table_codes("## Batch rejections"));

/// The backquoted names in the first column of the table under the heading that starts
/// with `heading` (a cell may name several: `` `a` / `b` ``).
fn table_codes(heading: &str) -> BTreeSet<String> {
    let mut lines = ERROR_CODES
        .lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip(1)
        .skip_while(|l| !l.starts_with('|'));
    let mut codes = BTreeSet::new();
    // Header and separator rows first, then one row per code until the table ends.
    for line in lines.by_ref().skip(2).take_while(|l| l.starts_with('|')) {
        let first = line.split('|').nth(1).unwrap_or_default();
        codes.extend(first.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    assert!(
        !codes.is_empty(),
        "error-codes.md has no table under {heading:?}"
    );
    codes
}

#[test]
fn the_reference_documents_every_rejection_code_and_no_other() {
    let ours: BTreeSet<String> = RejectCode::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    assert_eq!(ours, *REJECT_CODES);
}

#[test]
fn the_reference_documents_the_per_contact_codes() {
    // A spot check that the table was found and read whole; every property checks each
    // code it meets against the full list.
    for code in ["invalid.contact", "invalid.email", "ambiguous.contact"] {
        assert!(CONTACT_CODES.contains(code), "{code}: {CONTACT_CODES:?}");
    }
}
