use serde::Serialize;
use std::fmt;

/// Why one contact of a batch was not stored. The string forms are a contract: upstream
/// systems match on them, so they never change once released (docs/reference/error-codes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorCode {
    /// The contact is not an object, or a field has the wrong JSON type.
    InvalidContact,
    /// None of displayName, firstName, lastName on a new contact.
    MissingName,
    /// `invalid.email`: an email value missing or not an address (RFC 5322, at most 254 characters).
    InvalidEmail,
    /// `invalid.phone`: a phone number missing, or not 3–15 digits with an optional leading `+`.
    InvalidPhone,
    /// A `type` of an email or phone number outside the allowed values.
    InvalidType,
    /// `invalid.primary.contact.method`: outside `EMAIL PHONE SIPADDRESS IMS`.
    InvalidPrimaryContactMethod,
    /// More than one entry of a list marked primary.
    MultiplePrimary,
    /// A list entry without a value (SIP address, IM, group).
    MissingValue,
    /// `value.too.long`: a text field over 256 characters, `avatarURL` over 2048.
    TooLong,
    /// NUL or another control character (tab and line breaks are allowed).
    InvalidCharacters,
    /// `too.many.values`: a list with more than 50 entries.
    TooManyValues,
    /// `invalid.contact.id`: a `contactId` that is not a UUID.
    InvalidContactId,
    /// `invalid.address`: neither an object nor a JSON-encoded one, or with unknown keys.
    InvalidAddress,
    /// `invalid.url`: an `avatarURL` that is not an http(s) URL.
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
    /// Save User Contacts: the userName had too many failed verifications lately, so its
    /// pairs are not verified (account or not) until the throttle's window passes.
    TooManyAttempts,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 22] = [
        Self::InvalidContact,
        Self::MissingName,
        Self::InvalidEmail,
        Self::InvalidPhone,
        Self::InvalidType,
        Self::InvalidPrimaryContactMethod,
        Self::MultiplePrimary,
        Self::MissingValue,
        Self::TooLong,
        Self::InvalidCharacters,
        Self::TooManyValues,
        Self::InvalidContactId,
        Self::InvalidAddress,
        Self::InvalidUrl,
        Self::DuplicateInBatch,
        Self::ContactNotFound,
        Self::MissingField,
        Self::InvalidDate,
        Self::InvalidValue,
        Self::InvalidCredentials,
        Self::AmbiguousContact,
        Self::TooManyAttempts,
    ];

    /// What the code means, for people (docs/reference/error-codes.md).
    pub fn meaning(self) -> &'static str {
        match self {
            Self::InvalidContact => {
                "The contact is not an object, or a field has the wrong JSON type."
            }
            Self::MissingName => "A new contact has none of displayName, firstName, lastName.",
            Self::InvalidEmail => {
                "An email value is missing or not an address (RFC 5322 syntax, ≤ 254 characters)."
            }
            Self::InvalidPhone => {
                "A phone number is missing, or not digits with an optional leading `+` and separators (space `-` `.` `(` `)`), 3–15 digits. Stored normalised: `\"+1 (400) 123-1234\"` → `\"+14001231234\"`."
            }
            Self::InvalidType => {
                "An email type outside `work home room other`, or a phone type outside `work home mobile fax pager other` (case-insensitive, stored lowercase)."
            }
            Self::InvalidPrimaryContactMethod => {
                "Outside `EMAIL PHONE SIPADDRESS IMS` (case-insensitive, stored uppercase)."
            }
            Self::MultiplePrimary => "More than one entry of a list marked primary.",
            Self::MissingValue => "A SIP address, IM or group without a value.",
            Self::TooLong => "A text field over 256 characters, avatarURL over 2048.",
            Self::InvalidCharacters => {
                "A text value with NUL or another control character (tab and line breaks are allowed)."
            }
            Self::TooManyValues => "A list with more than 50 entries.",
            Self::InvalidContactId => "`contactId` is not a UUID.",
            Self::InvalidAddress => {
                "`address` is neither an object nor a JSON-encoded object, or has keys other than street, city, state, country, zipCode."
            }
            Self::InvalidUrl => "`avatarURL` is not an http(s) URL.",
            Self::DuplicateInBatch => {
                "A contactId already updated by an earlier contact of the same batch."
            }
            Self::ContactNotFound => {
                "An update of a contactId the org does not have; Update User Contact: no contact of the org has the user's email address or chat id."
            }
            Self::MissingField => {
                "A field the dialect requires is absent or empty (Save User Contacts: userName, password, firstName, lastName, mobileNumber; Update User Contact: the user's id, a phoneNumber or emailId); the message names them."
            }
            Self::InvalidDate => {
                "`birthDate`, `weddingDate` or anniversaryDate is not a real calendar date written `YYYY-MM-DD`."
            }
            Self::InvalidValue => {
                "A value outside its field's allowed values: DocuSign `shared` (true/false), `phoneType` (home mobile work other fax), `cloudProvider` (rooms docusignCore); an Update User Contact naming two different users."
            }
            Self::InvalidCredentials => {
                "Save User Contacts: the userName/password pair is not an account of the org (unknown user and wrong password read the same)."
            }
            Self::AmbiguousContact => {
                "Update User Contact: the user's id matches more than one contact of the org."
            }
            Self::TooManyAttempts => {
                "Save User Contacts: the userName had `CONTACT_IMPORT_LOGIN_MAX_FAILURES` failed verifications within `CONTACT_IMPORT_LOGIN_FAILURE_WINDOW`, so its pairs are not verified until the window passes (account or not, the same message); `retryable: true`."
            }
        }
    }

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
            Self::TooManyAttempts => "too.many.attempts",
        }
    }

    /// The HTTP-style `statusCode` the seed APIs use for this failure.
    pub fn status_code(self) -> u16 {
        match self {
            Self::DuplicateInBatch | Self::AmbiguousContact => 409,
            Self::ContactNotFound => 404,
            Self::InvalidCredentials => 401,
            Self::TooManyAttempts => 429,
            _ => 400,
        }
    }

    /// Whether sending the same contact again could succeed without changing it: only
    /// `too.many.attempts` (429), once the throttle's window has passed. Every other
    /// per-contact failure is a property of the contact or of the stored data; transient
    /// causes (database down, 500/503) fail the whole delivery instead, which is retried and
    /// then requeued rather than reported per contact.
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
    /// `errorCode`.
    pub code: ErrorCode,
    /// `errorMessage`, naming the field as the request's dialect calls it.
    pub message: String,
}

impl ContactError {
    /// A failure with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
