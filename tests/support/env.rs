//! What the harness takes from its environment: the services (`AMQP_URL`, `DATABASE_URL`,
//! as `scripts/services up` writes them to `.local/services.env`) and the binary under test;
//! and the environment through which a `contact-import` process reads its broker names.

use anyhow::Context;
use contact_import::config::BrokerConfig;
use std::path::PathBuf;

/// A variable the harness cannot do without.
pub fn required(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| {
        format!(
            "{name} is not set: run the tests with scripts/test, the benchmark with scripts/bench \
             (or `source .local/services.env` after scripts/services up)"
        )
    })
}

/// As [`required`], for tests: panics with the reason.
pub fn expect(name: &str) -> String {
    required(name).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The RabbitMQ the tests and the benchmark share.
pub fn amqp_url() -> String {
    expect("AMQP_URL")
}

/// The PostgreSQL server the tests and the benchmark share (its URL names a database that
/// exists; fresh databases are created beside it).
pub fn database_url() -> String {
    expect("DATABASE_URL")
}

/// The `contact-import` binary cargo built for this test target. Cargo tells integration
/// tests where it is; an example (the benchmark) is told on its command line instead.
pub fn bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_contact-import") {
        Some(bin) => bin.into(),
        None => panic!("cargo names the contact-import binary only to integration tests"),
    }
}

/// Cargo's scratch folder for this test target (`target/tmp`).
pub fn target_tmpdir() -> PathBuf {
    match option_env!("CARGO_TARGET_TMPDIR") {
        Some(dir) => dir.into(),
        None => panic!("cargo sets CARGO_TARGET_TMPDIR for integration tests"),
    }
}

/// The variables a `contact-import` process reads `cfg` from (docs/reference/configuration.md).
pub fn broker_env(cfg: &BrokerConfig) -> [(&'static str, String); 8] {
    [
        ("AMQP_URL", cfg.amqp_url.clone()),
        ("CONTACT_IMPORT_EXCHANGE", cfg.import_exchange.clone()),
        ("CONTACT_IMPORT_QUEUE", cfg.import_queue.clone()),
        ("CONTACT_IMPORT_ROUTING_KEY", cfg.import_routing_key.clone()),
        (
            "CONTACT_IMPORT_DEAD_LETTER_EXCHANGE",
            cfg.dead_letter_exchange.clone(),
        ),
        (
            "CONTACT_IMPORT_DEAD_LETTER_QUEUE",
            cfg.dead_letter_queue.clone(),
        ),
        (
            "CONTACT_IMPORT_RESULTS_EXCHANGE",
            cfg.results_exchange.clone(),
        ),
        (
            "CONTACT_IMPORT_DELIVERY_LIMIT",
            cfg.delivery_limit.to_string(),
        ),
    ]
}
