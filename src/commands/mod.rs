//! The operator's subcommands beside `worker`, one file each. They reach the broker and the
//! database only through [`crate::broker`] and [`crate::store`], never through the worker.

pub mod accounts;
pub mod batches;
pub mod dlq;
pub mod grants;
pub mod migrate;
pub mod publish;
