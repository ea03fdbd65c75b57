//! Hostile input, tried by a machine: property tests (proptest) of every decoder and of
//! `publish`'s detection and splitting. Arbitrary bytes and arbitrary mutations of the seed
//! examples must never panic, never make a decoder hold far more memory than the message
//! is long, and always end in a batch whose every failed contact has a code from docs/reference/error-codes.md's
//! per-contact table, or in a rejection with a code from its batch rejection table.
//!
//! `cargo test --test hostile` runs each property with [`cases`] cases (256);
//! `PROPTEST_CASES=5000 cargo test --release --test hostile` tries more. A failure is
//! shrunk to a small input and saved under `tests/proptest-regressions/`, which is
//! committed: every later run tries the saved cases first.

mod codes;
mod decoders;
mod meter;
mod mutate;
mod publish;
mod seeds;

/// Every allocation of this test binary goes through the meter, so a property can measure
/// what a decode holds at its peak.
#[global_allocator]
static ALLOCATOR: meter::Counting = meter::Counting;

/// Cases per property: `PROPTEST_CASES`, else 256 (the whole target then runs in seconds).
pub fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

/// proptest's defaults with [`cases`] cases.
pub fn config() -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: cases(),
        ..proptest::test_runner::Config::default()
    }
}
