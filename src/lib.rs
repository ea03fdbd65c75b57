//! `contact-import`: consumes bulk contact batches from RabbitMQ, validates every contact,
//! upserts each batch into PostgreSQL in one idempotent transaction and publishes one
//! result per batch.
//!
//! Data flows one way: [`broker`] → [`dialect`] → [`contact`] → [`store`] → [`result`] →
//! [`broker`], and [`pipeline`] is the only place that knows that order.

/// Account credentials (argon2id) for the Save User Contacts dialect, and their command.
pub mod accounts;
/// `contact-import batches`: the stored results of processed batches.
pub mod batches_cmd;
/// RabbitMQ: topology, consuming deliveries, publishing results and dead letters.
pub mod broker;
/// Subcommands and their flags.
pub mod cli;
/// Typed settings: flags, environment fallbacks and defaults.
pub mod config;
/// The canonical contact, its validation and its error codes.
pub mod contact;
/// Wire formats of incoming batches, each mapped onto the canonical contact.
pub mod dialect;
/// `contact-import dlq`: list, show, replay and purge dead letters.
pub mod dlq_cmd;
/// What `/readyz` checks.
pub mod health;
/// `/metrics`, `/healthz` and `/readyz`.
pub mod http;
/// Identifiers that travel through the pipeline: batch, org and contact ids.
pub mod ids;
/// Every metric name and label, in one place.
pub mod metrics;
/// One batch from delivery to ack.
pub mod pipeline;
/// `contact-import publish`: files split into batches, published, results collected.
pub mod producer;
/// Why a whole batch was refused.
pub mod rejection;
/// The result message published for every batch.
pub mod result;
/// The shutdown signal as a type, handed to every long-running task.
pub mod shutdown;
/// Everything that talks SQL: pool, migrations, contact upsert, batch idempotency.
pub mod store;
/// Tracing set-up.
pub mod telemetry;
/// The consume loop: concurrency, readiness and graceful drain.
pub mod worker;
