//! Why a whole batch was refused before anything was written.

use crate::ids::OrgId;
use std::fmt;

/// A stable reason for refusing a batch. Its string form goes into the `rejected` result's
/// `error.code` and into the dead letter's `x-contact-import-reason` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectCode {
    /// `unsupported.type` (400): an AMQP `type` no dialect reads.
    UnsupportedType,
    /// `unsupported.content.type` (415): a content type the dialect does not read.
    UnsupportedContentType,
    /// `malformed.body` (400): the body cannot be read in its dialect and format.
    MalformedBody,
    /// `invalid.schemas` (400): `schemas` is not the contact core URN.
    InvalidSchemas,
    /// `missing.org.id` (400): neither the body nor a header names the org.
    MissingOrgId,
    /// `invalid.org.id` (400): the org is blank or over-long.
    InvalidOrgId,
    /// `org.id.mismatch` (400): body and header name different orgs.
    OrgIdMismatch,
    /// `missing.contacts` (400): no `contacts` array.
    MissingContacts,
    /// `batch.too.large` (413): over the message size or contact count limit.
    TooLarge,
    /// The `message_id` holds control characters.
    InvalidBatchId,
    /// The batch id was already used for a batch with a different body.
    BatchIdConflict,
    /// Every allowed delivery failed (e.g. the database refuses the batch each time): the
    /// batch is dead-lettered with its last error, to be replayed once the cause is fixed.
    AttemptsExhausted,
    /// `CONTACT_IMPORT_AUTHORIZATION=grants` and the message has no `user_id`.
    MissingUserId,
    /// `CONTACT_IMPORT_AUTHORIZATION=grants` and the `user_id` has no grant for the org.
    OrgForbidden,
    /// `CONTACT_IMPORT_AUTHORIZATION=grants` and `reply_to` is a queue, not RabbitMQ's direct
    /// reply-to: any producer could otherwise have results written into another's queue.
    ReplyToForbidden,
}

impl RejectCode {
    /// Every code, in declaration order (metrics create a series for each).
    pub const ALL: [RejectCode; 15] = [
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
        Self::MissingUserId,
        Self::OrgForbidden,
        Self::ReplyToForbidden,
    ];

    /// The code as written in results and headers, e.g. `malformed.body`.
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
            Self::MissingUserId => "missing.user.id",
            Self::OrgForbidden => "org.forbidden",
            Self::ReplyToForbidden => "reply.to.forbidden",
        }
    }

    /// What the code means, for people (docs/reference/error-codes.md).
    pub fn meaning(self) -> &'static str {
        match self {
            Self::UnsupportedType => "An AMQP `type` no dialect reads.",
            Self::UnsupportedContentType => "A content type the dialect does not read.",
            Self::MalformedBody => "Not JSON, not an object, or `contacts` is not an array.",
            Self::InvalidSchemas => "`schemas` is not the contact core URN.",
            Self::MissingOrgId => "Neither the body nor a header names the org.",
            Self::InvalidOrgId => {
                "The org is blank, over-long, or holds whitespace or control characters."
            }
            Self::OrgIdMismatch => {
                "The body and the `org-id` (or DocuSign `account-id`) header name different orgs."
            }
            Self::MissingContacts => "No `contacts` array.",
            Self::TooLarge => "Over the message size or contact count limit.",
            Self::InvalidBatchId => "The `message_id` contains control characters.",
            Self::BatchIdConflict => "The batch id was already applied with a different body.",
            Self::AttemptsExhausted => {
                "Every allowed delivery failed (e.g. the database refuses the batch each time); `error.message` has the last error."
            }
            Self::MissingUserId => {
                "`CONTACT_IMPORT_AUTHORIZATION=grants` and the message has no `user_id`."
            }
            Self::OrgForbidden => {
                "`CONTACT_IMPORT_AUTHORIZATION=grants` and the `user_id` has no grant for the batch's org."
            }
            Self::ReplyToForbidden => {
                "`CONTACT_IMPORT_AUTHORIZATION=grants` and `reply_to` names a queue rather than direct reply-to; the refusal is dead-lettered and answered nowhere (not even it is written to that queue; a dry run is only logged and counted)."
            }
        }
    }

    /// Whether replaying the dead letter unchanged can succeed once the cause is fixed: only
    /// `attempts.exhausted`, whose cause was outside the batch (the database refused it every
    /// time). Every other refusal is the body's or its sender's.
    pub fn replayable(self) -> bool {
        self == Self::AttemptsExhausted
    }

    /// The `statusCode` of the `rejected` result's `error`.
    pub fn status_code(self) -> u16 {
        match self {
            Self::UnsupportedContentType => 415,
            Self::TooLarge => 413,
            Self::BatchIdConflict => 409,
            Self::AttemptsExhausted => 500,
            Self::MissingUserId => 401,
            Self::OrgForbidden | Self::ReplyToForbidden => 403,
            _ => 400,
        }
    }

    /// Whether the refusal goes to the requester only: a batch the org did not send (as far
    /// as anyone can tell) must not reach the org's subscribers on the results exchange.
    pub fn requester_only(self) -> bool {
        matches!(
            self,
            Self::MissingUserId | Self::OrgForbidden | Self::ReplyToForbidden
        )
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
    /// `error.code`; also the dead letter's `x-contact-import-reason`.
    pub code: RejectCode,
    /// `error.message`; also the dead letter's `x-contact-import-error`.
    pub message: String,
    /// The batch's org, if it could be read: where the `rejected` result is routed.
    pub org_id: Option<OrgId>,
}

impl Rejection {
    /// A rejection whose org is not known (see [`Rejection::with_org`]).
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            org_id: None,
        }
    }

    /// Sets the org the `rejected` result is routed to.
    pub fn with_org(mut self, org_id: Option<OrgId>) -> Self {
        self.org_id = org_id;
        self
    }
}
