//! Test support shared by the integration tests (`tests/it`), the fault scenarios
//! (`tests/faults`) and the benchmark (`examples/bench`): the services from the environment,
//! fresh migrated databases, the broker helpers, free ports, private RabbitMQ and PostgreSQL
//! servers (plain or TLS) with certificates made for them, and the one harness that runs the
//! real `contact-import worker` binary.
//!
//! Each target includes this folder with `#[path = "…/support/mod.rs"] mod support;`.
// Every target uses only a subset of these helpers; the rest would warn as dead code there.
#![allow(dead_code)]

pub mod broker;
pub mod certs;
pub mod database;
pub mod env;
pub mod ports;
pub mod process;
pub mod servers;
pub mod strict_json;
pub mod worker;
