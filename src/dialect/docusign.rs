//! DocuSign eSignature "Contacts: create" (seed 001): a `contactModRequest` in JSON, XML or
//! CSV; the result carries `contactUpdateResponse` in the request's format.

use super::{DecodedBatch, Dialect, IncomingMessage, Limits};
use crate::rejection::{RejectCode, Rejection};
use crate::result::BatchResult;

/// The AMQP `type` of this shape.
pub const MESSAGE_TYPE: &str = "docusign.contacts.create";

pub struct DocuSign;

/// What the answer repeats of the request: its format, and per contact what it sent.
#[derive(Debug, Clone, Default)]
pub struct Echo {}

impl Echo {
    /// The seed's `contactUpdateResponse` for this batch's result.
    pub fn contact_update_response(&self, _result: &BatchResult) -> serde_json::Value {
        serde_json::Value::Null
    }
}

impl Dialect for DocuSign {
    fn decode(
        &self,
        _message: &IncomingMessage<'_>,
        _limits: &Limits,
    ) -> Result<DecodedBatch, Rejection> {
        Err(Rejection::new(
            RejectCode::UnsupportedType,
            "not implemented yet",
        ))
    }
}
