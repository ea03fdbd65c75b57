//! Behaviour of the worker against a real RabbitMQ and PostgreSQL (see `common`).

mod accounts;
mod browser;
mod common;
mod console;
mod contention;
mod dialects;
mod dry_run;
mod exit_codes;
mod grants;
mod import;
mod intake;
mod lanes;
mod logs;
mod operator_cli;
mod producer;
mod prometheus;
mod reconnect;
mod rejection;
mod requester;
mod result_detail;
mod retry;
mod shutdown;
#[path = "../support/mod.rs"]
mod support;
mod throttle;
mod tls;
mod upgrade;
