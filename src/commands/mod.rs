//! The operator's subcommands beside `worker`, one file each. They reach the broker and the
//! database only through [`crate::broker`] and [`crate::store`], never through the worker.

pub mod accounts;
pub mod batches;
pub mod console_users;
pub mod dlq;
pub mod grants;
pub mod migrate;
pub mod publish;

/// The command did its work and some of it did not succeed: a contact failed or a batch was
/// rejected. Exit status 1, told apart from a command that could not do its work (usage,
/// connection, a timeout: 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAllStored(pub String);

/// The exit status of a command that failed with `error`: 1 for [`NotAllStored`], else 2.
pub fn exit_status(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<NotAllStored>() {
        Some(_) => 1,
        None => 2,
    }
}
