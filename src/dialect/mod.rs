//! Wire formats. A dialect reads a message (body and properties) into a [`DecodedBatch`]:
//! the org and one canonical [`ContactDraft`] (or per-contact error) per contact. Which
//! dialect reads a message comes from its AMQP `type`; nothing is guessed.

pub mod webex;

use crate::contact::{ContactDraft, ContactError};
use crate::ids::OrgId;
use crate::rejection::{RejectCode, Rejection};

/// What a dialect sees of an AMQP message, free of the client library's types.
#[derive(Debug, Clone, Copy)]
pub struct IncomingMessage<'a> {
    /// The AMQP `type` property.
    pub kind: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// The `org-id` header, for publishers that keep the org out of the body.
    pub org_id_header: Option<&'a str>,
    pub body: &'a [u8],
}

/// A readable batch: its org and its contacts in request order.
#[derive(Debug, Clone)]
pub struct DecodedBatch {
    pub org_id: OrgId,
    pub contacts: Vec<Result<ContactDraft, ContactError>>,
}

/// Bounds on one batch, so one message cannot exhaust the worker's memory or a transaction.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_contacts: usize,
}

/// One wire format.
pub trait Dialect: Sync {
    /// Reads the message, or refuses it as a whole with a reason.
    fn decode(
        &self,
        message: &IncomingMessage<'_>,
        limits: &Limits,
    ) -> Result<DecodedBatch, Rejection>;
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
    dialect_for(message.kind)?.decode(message, limits)
}

fn dialect_for(kind: Option<&str>) -> Result<&'static dyn Dialect, Rejection> {
    match kind.map(str::trim).filter(|k| !k.is_empty()) {
        None | Some(webex::MESSAGE_TYPE) => Ok(&webex::Webex),
        Some(other) => Err(Rejection::new(
            RejectCode::UnsupportedType,
            format!(
                "message type '{other}' is not one this worker reads (known: {})",
                webex::MESSAGE_TYPE
            ),
        )),
    }
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
