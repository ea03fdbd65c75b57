//! Behaviour of the worker against a real RabbitMQ and PostgreSQL (see `common`).

mod common;
mod contention;
mod import;
mod prometheus;
mod reconnect;
mod rejection;
mod retry;
mod shutdown;
