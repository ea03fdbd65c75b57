//! The canonical contact: every dialect maps its wire shape onto a [`ContactDraft`](crate::contact::ContactDraft), which
//! `validate` turns into a [`ValidContact`](crate::contact::ValidContact) or a [`ContactError`](crate::contact::ContactError), once.

pub mod credentials;
/// Per-contact error codes, a stable contract with upstream systems.
pub mod error;
pub mod list;
/// The canonical contact: drafts as read, valid contacts, and contacts as stored.
pub mod model;
pub mod validate;

pub use error::{ContactError, ErrorCode};
pub use list::BoundedList;
pub use model::{
    Address, ContactDraft, ContactFields, ContactMethod, Credentials, SigningGroupUser,
    StoredContact, Target, ValidContact,
};
pub use validate::{Planned, ValidatedBatch, validate_batch};
