//! Why a whole batch was refused before anything was written.

use crate::ids::OrgId;
use std::fmt;

/// A stable reason for refusing a batch. Its string form goes into the `rejected` result's
/// `error.code` and into the dead letter's `x-contact-import-reason` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectCode {
    UnsupportedType,
    UnsupportedContentType,
    MalformedBody,
    InvalidSchemas,
    MissingOrgId,
    InvalidOrgId,
    OrgIdMismatch,
    MissingContacts,
    TooLarge,
    /// The `message_id` holds control characters.
    InvalidBatchId,
    /// The batch id was already used for a batch with a different body.
    BatchIdConflict,
    /// Every allowed delivery failed (e.g. the database refuses the batch each time): the
    /// batch is dead-lettered with its last error, to be replayed once the cause is fixed.
    AttemptsExhausted,
}

impl RejectCode {
    pub const ALL: [RejectCode; 12] = [
        Self::UnsupportedType,
        Self::UnsupportedContentType,
        Self::MalformedBody,
        Self::InvalidSchemas,
        Self::MissingOrgId,
        Self::InvalidOrgId,
        Self::OrgIdMismatch,
        Self::MissingContacts,
        Self::TooLarge,
        Self::InvalidBatchId,
        Self::BatchIdConflict,
        Self::AttemptsExhausted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnsupportedType => "unsupported.type",
            Self::UnsupportedContentType => "unsupported.content.type",
            Self::MalformedBody => "malformed.body",
            Self::InvalidSchemas => "invalid.schemas",
            Self::MissingOrgId => "missing.org.id",
            Self::InvalidOrgId => "invalid.org.id",
            Self::OrgIdMismatch => "org.id.mismatch",
            Self::MissingContacts => "missing.contacts",
            Self::TooLarge => "batch.too.large",
            Self::InvalidBatchId => "invalid.batch.id",
            Self::BatchIdConflict => "batch.id.conflict",
            Self::AttemptsExhausted => "attempts.exhausted",
        }
    }

    pub fn status_code(self) -> u16 {
        match self {
            Self::UnsupportedContentType => 415,
            Self::TooLarge => 413,
            Self::BatchIdConflict => 409,
            Self::AttemptsExhausted => 500,
            _ => 400,
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused batch: the reason, a message for people, and the org when it could be read,
/// so the `rejected` result still reaches that org's subscribers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
    pub org_id: Option<OrgId>,
}

impl Rejection {
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            org_id: None,
        }
    }

    pub fn with_org(mut self, org_id: Option<OrgId>) -> Self {
        self.org_id = org_id;
        self
    }
}
