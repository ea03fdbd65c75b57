use serde::Serialize;
use std::fmt;

/// Why one contact of a batch was not stored. The string forms are a contract: upstream
/// systems match on them, so they never change once released (see README).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorCode {
    /// The contact is not an object, or a field has the wrong JSON type.
    InvalidContact,
    /// None of displayName, firstName, lastName on a new contact.
    MissingName,
    InvalidEmail,
    InvalidPhone,
    /// A `type` of an email or phone number outside the allowed values.
    InvalidType,
    InvalidPrimaryContactMethod,
    /// More than one entry of a list marked primary.
    MultiplePrimary,
    /// A list entry without a value (SIP address, IM, group).
    MissingValue,
    TooLong,
    /// NUL or another control character (tab and line breaks are allowed).
    InvalidCharacters,
    TooManyValues,
    InvalidContactId,
    InvalidAddress,
    InvalidUrl,
    /// The same contactId appears earlier in the same batch.
    DuplicateInBatch,
    /// An update names a contactId that the org does not have, or (Update User Contact) no
    /// contact of the org has the user's email address or IM id.
    ContactNotFound,
    /// A field the dialect requires is absent or empty (Save User Contacts).
    MissingField,
    /// A date that is not a real `YYYY-MM-DD` calendar date.
    InvalidDate,
    /// A value outside the field's allowed values or type (DocuSign `shared`, `cloudProvider`,
    /// `phoneType`).
    InvalidValue,
    /// The userName/password pair is not an account of the org (Save User Contacts).
    InvalidCredentials,
    /// Update User Contact: the user's id matches more than one contact of the org.
    AmbiguousContact,
}

impl ErrorCode {
    /// The stable `errorCode` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidContact => "invalid.contact",
            Self::MissingName => "missing.name",
            Self::InvalidEmail => "invalid.email",
            Self::InvalidPhone => "invalid.phone",
            Self::InvalidType => "invalid.type",
            Self::InvalidPrimaryContactMethod => "invalid.primary.contact.method",
            Self::MultiplePrimary => "multiple.primary",
            Self::MissingValue => "missing.value",
            Self::TooLong => "value.too.long",
            Self::InvalidCharacters => "invalid.characters",
            Self::TooManyValues => "too.many.values",
            Self::InvalidContactId => "invalid.contact.id",
            Self::InvalidAddress => "invalid.address",
            Self::InvalidUrl => "invalid.url",
            Self::DuplicateInBatch => "duplicate.in.batch",
            Self::ContactNotFound => "contact.not.found",
            Self::MissingField => "missing.field",
            Self::InvalidDate => "invalid.date",
            Self::InvalidValue => "invalid.value",
            Self::InvalidCredentials => "invalid.credentials",
            Self::AmbiguousContact => "ambiguous.contact",
        }
    }

    /// The HTTP-style `statusCode` the seed APIs use for this failure.
    pub fn status_code(self) -> u16 {
        match self {
            Self::DuplicateInBatch | Self::AmbiguousContact => 409,
            Self::ContactNotFound => 404,
            Self::InvalidCredentials => 401,
            _ => 400,
        }
    }

    /// Whether sending the same contact again could succeed without changing it. Every
    /// per-contact failure today is a property of the contact or of the stored data;
    /// transient causes (database down, 429/500/503) fail the whole delivery instead,
    /// which is retried and then requeued rather than reported per contact.
    pub fn retryable(self) -> bool {
        matches!(self.status_code(), 429 | 500 | 502 | 503 | 504)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One contact's failure: a stable code and a message naming the field and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactError {
    pub code: ErrorCode,
    pub message: String,
}

impl ContactError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
