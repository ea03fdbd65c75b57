//! Wire formats. A dialect reads a message (body and properties) into a [`DecodedBatch`](crate::dialect::DecodedBatch):
//! the org and one canonical [`ContactDraft`](crate::contact::ContactDraft) (or per-contact error) per contact. Which
//! dialect reads a message comes from its AMQP `type` ([`MessageType`](crate::dialect::MessageType)), which format from
//! its content type; nothing is guessed.

pub mod docusign;
pub mod save;
pub mod update;
pub mod webex;

use crate::contact::{ContactDraft, ContactError};
use crate::ids::OrgId;
use crate::rejection::{RejectCode, Rejection};
use crate::result::BatchResult;

/// Every dialect this worker reads, in the order `publish`'s detection tries them
/// ([`Dialect::recognises`]). Adding a dialect is a new module and one line here.
const REGISTRY: &[MessageType] = &[update::TYPE, save::TYPE, docusign::TYPE, webex::TYPE];

/// The dialect of a message without `type`, and of a file nothing else recognises.
const DEFAULT: MessageType = webex::TYPE;

/// A dialect by its AMQP `type` name. Upstream systems are configured with the names.
#[derive(Clone, Copy)]
pub struct MessageType(&'static dyn Dialect);

impl MessageType {
    /// Every dialect, in registry order.
    pub fn all() -> impl Iterator<Item = MessageType> {
        REGISTRY.iter().copied()
    }

    /// The dialect called `name` exactly.
    pub fn named(name: &str) -> Option<Self> {
        Self::all().find(|t| t.as_str() == name)
    }

    /// Webex's, the dialect of messages without `type`.
    pub fn default_type() -> Self {
        DEFAULT
    }

    /// The dialect a file `publish` reads is written in, and its content type: the first in
    /// registry order that recognises it, else Webex.
    pub fn recognise(sample: &Sample<'_>) -> (Self, Option<&'static str>) {
        Self::all()
            .find_map(|t| Some((t, Some(t.0.recognises(sample)?))))
            .unwrap_or((DEFAULT, None))
    }

    /// The AMQP `type` name.
    pub fn as_str(self) -> &'static str {
        self.0.message_type()
    }

    /// The dialect of a message's `type`, named exactly; an absent or empty `type` is
    /// Webex's.
    pub fn of(kind: Option<&str>) -> Result<Self, Rejection> {
        let Some(kind) = kind.filter(|k| !k.is_empty()) else {
            return Ok(DEFAULT);
        };
        Self::named(kind).ok_or_else(|| {
            let known: Vec<_> = Self::all().map(|t| t.as_str()).collect();
            Rejection::new(
                RejectCode::UnsupportedType,
                format!(
                    "message type '{kind}' is not one this worker reads (known: {})",
                    known.join(", ")
                ),
            )
        })
    }

    /// The dialect itself.
    pub fn dialect(self) -> &'static dyn Dialect {
        self.0
    }
}

impl PartialEq for MessageType {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for MessageType {}

impl std::fmt::Debug for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hex SHA-256 a message's body is known by when it has no `message_id`: its batch id
/// is `sha256:` and this, and results and dead letters show it. A fast hash of a body whose
/// other fields the result repeats would be a fast hash of its password, so a body that may
/// carry passwords ([`Dialect::carries_credentials`], or a `type` no dialect reads) is
/// hashed without them; `None` when such a body mentions a password but cannot be read to
/// remove it.
pub fn id_digest(kind: Option<&str>, body: &[u8]) -> Option<String> {
    let may_carry_passwords =
        MessageType::of(kind).map_or(true, |t| t.dialect().carries_credentials());
    if !may_carry_passwords {
        return Some(crate::ids::body_sha256(body));
    }
    match save::without_passwords(body) {
        Some(stripped) => Some(crate::ids::body_sha256(&stripped)),
        None if !mentions_password(body) => Some(crate::ids::body_sha256(body)),
        None => None,
    }
}

/// Whether a body has the word "password" anywhere, in any case.
pub fn mentions_password(body: &[u8]) -> bool {
    body.windows(8).any(|w| w.eq_ignore_ascii_case(b"password"))
}

/// What a dialect's clients expect in the result beside the common fields.
#[derive(Debug, Clone, Default)]
pub enum Answer {
    /// Nothing beside the common fields; failures name the canonical fields.
    #[default]
    Common,
    /// Failure messages name the dialect's fields rather than the canonical ones.
    Renamed(FieldNames),
    /// DocuSign: its field names, and `contactUpdateResponse` in the request's own format.
    DocuSign(docusign::Echo),
}

impl Answer {
    /// Adds the dialect's part to a result of this batch.
    pub fn complete(&self, result: &mut BatchResult) {
        let names = match self {
            Self::Common => return,
            Self::Renamed(names) => names,
            Self::DocuSign(_) => &docusign::FIELD_NAMES,
        };
        for failed in &mut result.failed_contacts {
            failed.error_message = names.rename(&failed.error_message);
        }
        if let Self::DocuSign(echo) = self {
            result.contact_update_response = Some(echo.contact_update_response(result));
        }
    }
}

/// How a dialect calls the canonical fields that validation messages name, as pairs of
/// canonical and dialect name. `[]` stands for any list index, kept as it was.
#[derive(Debug, Clone, Copy, Default)]
pub struct FieldNames(pub &'static [(&'static str, &'static str)]);

impl FieldNames {
    /// The message with its leading field name in the dialect's words.
    pub fn rename(&self, message: &str) -> String {
        for (canonical, own) in self.0 {
            if let Some((index, rest)) = leading_field(message, canonical) {
                return format!("{}{rest}", own.replace("[]", &index));
            }
        }
        message.to_owned()
    }
}

/// If `message` starts with the field `pattern` (whose `[]` matches `[<digits>]`), the
/// matched index (`[2]`, or empty) and the rest of the message.
fn leading_field<'m>(message: &'m str, pattern: &str) -> Option<(String, &'m str)> {
    let (rest, index) = match pattern.split_once("[]") {
        None => (message.strip_prefix(pattern)?, String::new()),
        Some((before, after)) => {
            let rest = message.strip_prefix(before)?.strip_prefix('[')?;
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .filter(|&n| n > 0)?;
            let index = format!("[{}]", &rest[..digits]);
            (
                rest[digits..].strip_prefix(']')?.strip_prefix(after)?,
                index,
            )
        }
    };
    // A whole field name: `emails` must not match `emailsX`.
    let boundary = rest
        .chars()
        .next()
        .is_none_or(|c| !c.is_alphanumeric() && c != '_');
    boundary.then_some((index, rest))
}

/// What a dialect sees of an AMQP message, free of the client library's types.
#[derive(Debug, Clone, Copy)]
pub struct IncomingMessage<'a> {
    /// The AMQP `type` property.
    pub kind: Option<&'a str>,
    /// The AMQP `content_type` property, parameters included.
    pub content_type: Option<&'a str>,
    /// The `org-id` header, for publishers that keep the org out of the body.
    pub org_id_header: Option<&'a str>,
    /// The `account-id` header: DocuSign's accountId, which is the org.
    pub account_id_header: Option<&'a str>,
    /// The body, as received.
    pub body: &'a [u8],
}

/// A readable batch: its org and its contacts in request order.
#[derive(Debug, Clone)]
pub struct DecodedBatch {
    /// From the body, the `org-id` header or (DocuSign) `account-id`; they agree.
    pub org_id: OrgId,
    /// One entry per request contact, in order: a draft, or why it could not be read.
    pub contacts: Vec<Result<ContactDraft, ContactError>>,
    /// What the result carries for this dialect's clients.
    pub answer: Answer,
}

/// Bounds on one batch, so one message cannot exhaust the worker's memory or a transaction.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body accepted, in bytes (`CONTACT_IMPORT_MAX_MESSAGE_BYTES`); beyond it `batch.too.large`.
    pub max_message_bytes: usize,
    /// Most contacts in one batch (`CONTACT_IMPORT_MAX_BATCH_CONTACTS`); beyond it `batch.too.large`.
    pub max_contacts: usize,
}

/// One wire format: how its messages are read, how its requesters are answered, and how
/// `publish` recognises and splits its files.
pub trait Dialect: Sync {
    /// The AMQP `type` that names it.
    fn message_type(&self) -> &'static str;

    /// Reads the message, or refuses it as a whole with a reason.
    fn decode(
        &self,
        message: &IncomingMessage<'_>,
        limits: &Limits,
    ) -> Result<DecodedBatch, Rejection>;

    /// Whether a person waits on every request of this dialect (a chat-bot user), so that
    /// it goes to the interactive lane whatever its size.
    fn interactive(&self) -> bool {
        false
    }

    /// Whether a body may carry account passwords: its id digest is then taken without
    /// them, and a reused batch id is explained by them.
    fn carries_credentials(&self) -> bool {
        false
    }

    /// What the requester (`reply_to`) receives for a result body, fresh or replayed: the
    /// seed API's own response in the request's format; `None` for the common result.
    fn requester_reply(&self, _result_body: &[u8]) -> Option<RequesterReply> {
        None
    }

    /// The seed's answer to a request refused as a whole, added to the `rejected` result as
    /// `errorDetails` (and so given to the requester by [`Dialect::requester_reply`]).
    fn refusal_details(
        &self,
        _content_type: Option<&str>,
        _rejection: &Rejection,
    ) -> Option<serde_json::Value> {
        None
    }

    /// Whether a file `publish` reads looks like this dialect, and in which content type it
    /// is sent. Dialects are asked in registry order; Webex takes what no other claims.
    fn recognises(&self, _sample: &Sample<'_>) -> Option<&'static str> {
        None
    }

    /// The headers besides `org-id` that a publisher of this dialect names the org in
    /// (DocuSign: `account-id`); `publish` sets them all.
    fn org_headers(&self) -> &'static [&'static str] {
        &[]
    }

    /// How `publish` may split a file of this dialect in `media_type` into messages of
    /// fewer contacts; `None`: it is sent whole.
    fn split_shape(&self, _media_type: Option<&str>) -> Option<SplitShape> {
        None
    }
}

/// A body for the requester in its own format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequesterReply {
    /// The response, in the request's format.
    pub body: Vec<u8>,
    /// Its content type, e.g. `application/xml`.
    pub content_type: &'static str,
}

/// What `publish` knows of a file when it asks which dialect wrote it.
#[derive(Debug)]
pub enum Sample<'a> {
    /// An XML document.
    Xml,
    /// A CSV file's header row, trimmed, byte order mark removed.
    Csv {
        /// The column names, in header order.
        columns: &'a [&'a str],
    },
    /// One JSON document.
    Json(&'a serde_json::Value),
}

impl Sample<'_> {
    /// The objects that are contacts in a JSON sample: an array's items, an envelope's
    /// `contacts`, or the object itself.
    pub fn json_contacts(&self) -> Vec<&serde_json::Map<String, serde_json::Value>> {
        use serde_json::Value;
        match self {
            Sample::Json(Value::Array(items)) => {
                items.iter().filter_map(Value::as_object).collect()
            }
            Sample::Json(Value::Object(object)) => match object.get("contacts") {
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).collect(),
                _ => vec![object],
            },
            _ => Vec::new(),
        }
    }
}

/// Whether `object` has one of `keys`.
pub fn has_any(object: &serde_json::Map<String, serde_json::Value>, keys: &[&str]) -> bool {
    keys.iter().any(|k| object.contains_key(*k))
}

/// How a file of many contacts is cut into messages of the same dialect and format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitShape {
    /// A JSON array of contacts, or an object with a `contacts` array, cut into the same.
    JsonContacts,
    /// An object with a `contacts` array (its other members kept), cut into the same.
    JsonEnvelope,
    /// A document whose `<contacts>` children are cut, the rest kept verbatim.
    XmlContacts,
    /// The header row and the next rows.
    CsvRows,
}

/// Picks the dialect from the message's `type` and decodes the message with it.
pub fn decode(message: &IncomingMessage<'_>, limits: &Limits) -> Result<DecodedBatch, Rejection> {
    if message.body.len() > limits.max_message_bytes {
        return Err(Rejection::new(
            RejectCode::TooLarge,
            format!(
                "the message body has {} bytes, at most {} are accepted",
                message.body.len(),
                limits.max_message_bytes
            ),
        ));
    }
    MessageType::of(message.kind)?
        .dialect()
        .decode(message, limits)
}

/// Refuses a batch of more contacts than the limit allows.
pub fn check_count(count: usize, limits: &Limits, org: &Option<OrgId>) -> Result<(), Rejection> {
    if count <= limits.max_contacts {
        return Ok(());
    }
    Err(Rejection::new(
        RejectCode::TooLarge,
        format!(
            "the batch has {count} contacts, at most {} are accepted",
            limits.max_contacts
        ),
    )
    .with_org(org.clone()))
}

/// Accepts JSON, or no content type (JSON is then assumed, as publishers of the JSON-only
/// dialects have always been allowed to omit it).
pub fn require_json(content_type: Option<&str>) -> Result<(), Rejection> {
    match media_type(content_type).as_deref() {
        None | Some(JSON) => Ok(()),
        other => Err(unsupported_content_type(other, &[JSON])),
    }
}

/// Refuses a content type the dialect does not read, naming the ones it does.
pub fn unsupported_content_type(media_type: Option<&str>, accepted: &[&str]) -> Rejection {
    Rejection::new(
        RejectCode::UnsupportedContentType,
        match media_type {
            Some(other) => format!(
                "content type '{other}' is not one this message type accepts ({})",
                accepted.join(", ")
            ),
            None => format!(
                "the message has no content type; this message type needs one of {}",
                accepted.join(", ")
            ),
        },
    )
}

/// The media type of a `content_type` property, without parameters, lowercased.
pub fn media_type(content_type: Option<&str>) -> Option<String> {
    content_type
        .and_then(|ct| ct.split(';').next())
        .map(|ct| ct.trim().to_ascii_lowercase())
        .filter(|ct| !ct.is_empty())
}

/// The org of a batch from its body and its `org-id` header; both may be given if they agree.
pub fn resolve_org(body: Option<&str>, header: Option<&str>) -> Result<OrgId, Rejection> {
    let parse =
        |raw: &str| OrgId::parse(raw).map_err(|e| Rejection::new(RejectCode::InvalidOrgId, e));
    match (body, header) {
        (None, None) => Err(Rejection::new(
            RejectCode::MissingOrgId,
            "the batch names no org: set orgId in the body or the org-id header",
        )),
        (Some(one), None) | (None, Some(one)) => parse(one),
        (Some(body), Some(header)) => {
            let (body, header) = (parse(body)?, parse(header)?);
            if body == header {
                Ok(body)
            } else {
                Err(Rejection::new(
                    RejectCode::OrgIdMismatch,
                    format!("orgId '{body}' in the body differs from org-id header '{header}'"),
                ))
            }
        }
    }
}

/// The header naming a batch's org, for publishers that keep it out of the body.
pub const ORG_ID_HEADER: &str = "org-id";
/// DocuSign's accountId, which is the org.
pub const ACCOUNT_ID_HEADER: &str = "account-id";

/// The JSON media type; every dialect reads JSON.
pub const JSON: &str = "application/json";
/// The XML media type DocuSign answers in.
pub const XML: &str = "application/xml";
/// The CSV media type.
pub const CSV: &str = "text/csv";

/// Decodes a JSON body of `kind` for the org `o1`, as a test of a dialect would.
#[cfg(test)]
pub(crate) fn decode_json(kind: &str, body: &str) -> Result<DecodedBatch, Rejection> {
    decode(
        &IncomingMessage {
            kind: Some(kind),
            content_type: Some(JSON),
            org_id_header: Some("o1"),
            account_id_header: None,
            body: body.as_bytes(),
        },
        &Limits {
            max_message_bytes: 1 << 20,
            max_contacts: 10,
        },
    )
}

/// Each contact's error code, `None` where it was read.
#[cfg(test)]
pub(crate) fn error_codes(batch: &DecodedBatch) -> Vec<Option<crate::contact::ErrorCode>> {
    batch
        .contacts
        .iter()
        .map(|c| c.as_ref().err().map(|e| e.code))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_rename_the_leading_field_keeping_its_index() {
        let names = FieldNames(&[
            ("emails[].value", "emails[]"),
            ("phoneNumbers[0].value", "mobileNumber"),
            ("displayName", "name"),
        ]);
        assert_eq!(
            names.rename("emails[12].value 'x' is not a valid email address"),
            "emails[12] 'x' is not a valid email address"
        );
        assert_eq!(
            names.rename("phoneNumbers[0].value 'y' is not a phone number"),
            "mobileNumber 'y' is not a phone number"
        );
        assert_eq!(
            names.rename("phoneNumbers[1].value 'y' is not a phone number"),
            "phoneNumbers[1].value 'y' is not a phone number"
        );
        assert_eq!(
            names.rename("displayName is longer than 256 characters"),
            "name is longer than 256 characters"
        );
        assert_eq!(names.rename("displayNameX is odd"), "displayNameX is odd");
        assert_eq!(names.rename("emails[].value"), "emails[].value");
    }
}
