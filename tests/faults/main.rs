//! Fault injection: each scenario starts its own RabbitMQ and PostgreSQL (free ports, a
//! temporary folder), runs the real `contact-import worker` against them, publishes a known
//! stream of batches, injects one fault mid-stream, and then proves from the database and
//! the result queue that nothing was lost and nothing applied twice (see `check`).
//!
//! Each scenario writes its row of the reliability table to `target/reliability/`;
//! `scripts/reliability` runs them all and prints the table (docs/reliability.md).

mod check;
mod cluster;
mod harness;
mod proxy;
mod scenarios;
mod stream;
#[path = "../support/mod.rs"]
mod support;
