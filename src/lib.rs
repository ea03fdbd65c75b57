//! `contact-import`: consumes bulk contact batches from RabbitMQ, validates every contact,
//! upserts each batch into PostgreSQL in one idempotent transaction and publishes one
//! result per batch.
//!
//! Data flows one way: [`broker`] → [`dialect`] → [`contact`] → [`store`] → [`result`] →
//! [`broker`]. [`worker`] runs that flow (its `pipeline` is the only place that knows the
//! order); [`commands`] are the operator's other subcommands. The two meet only through
//! `broker`, `store`, `dialect` and `contact`.

#![warn(missing_docs)]

// The long-running process and the operator's commands.
/// `migrate`, `accounts`, `batches`, `dlq` and `publish`, one module each.
pub mod commands;
/// The operators' web console.
pub mod console;
/// `contact-import worker`: the broker session, the gate, the pipeline, health and HTTP.
pub mod worker;

// The stages a batch passes through.
/// RabbitMQ: topology, consuming deliveries, publishing results and dead letters.
pub mod broker;
/// The canonical contact, its validation, its error codes and its credentials.
pub mod contact;
/// Wire formats of incoming batches, each mapped onto the canonical contact.
pub mod dialect;
/// Why a whole batch was refused.
pub mod rejection;
/// The result message published for every batch.
pub mod result;
/// Everything that talks SQL: connections, migrations, upsert, batches, accounts.
pub mod store;

// What every part shares.
/// Subcommands and their flags.
pub mod cli;
/// Typed settings: flags, environment fallbacks and defaults.
pub mod config;
/// Identifiers that travel through the pipeline: batch, org and contact ids.
pub mod ids;
/// Every metric name and label, in one place.
pub mod metrics;
/// The generated references (docs/reference/), the man page and the completions.
pub mod reference;
/// The shutdown signal as a type, handed to every long-running task.
pub mod shutdown;
/// Tracing set-up and the log format.
pub mod telemetry;
/// The TLS client configurations of the broker and database connections.
pub mod tls;
