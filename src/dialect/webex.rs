//! The Webex "Bulk Create or Update Contacts" shape (seed 002):
//! `{"schemas", "orgId", "contacts": [...]}`.

use super::{
    Answer, DecodedBatch, Dialect, IncomingMessage, Limits, check_count, require_json, resolve_org,
};
use crate::contact::model::{CONTACT_SCHEMA, MethodDraft};
use crate::contact::{Address, BoundedList, ContactDraft, ContactError, ErrorCode};
use crate::rejection::{RejectCode, Rejection};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The AMQP `type` of this shape; also assumed when a message has no `type`.
pub const MESSAGE_TYPE: &str = "webex.contacts.bulk";

/// This dialect in the registry.
pub const TYPE: super::MessageType = super::MessageType(&Webex);

/// The Webex Bulk Create or Update Contacts dialect (seed `002`), whose shape is the canonical one.
pub struct Webex;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    schemas: Option<String>,
    org_id: Option<String>,
    #[serde(borrow)]
    contacts: Option<Vec<&'a RawValue>>,
}

/// One contact as Webex sends it. Unknown fields (`schemas`, `meta`, `isMigration`, …,
/// which the seed's own responses carry) are ignored rather than failing the contact; lists
/// keep their first entries up to the limit and count the rest.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebexContact {
    contact_id: Option<String>,
    display_name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    company_name: Option<String>,
    title: Option<String>,
    address: Option<serde_json::Value>,
    #[serde(rename = "avatarURL")]
    avatar_url: Option<String>,
    primary_contact_method: Option<String>,
    source: Option<String>,
    emails: Option<BoundedList<MethodDraft>>,
    phone_numbers: Option<BoundedList<MethodDraft>>,
    sip_addresses: Option<BoundedList<MethodDraft>>,
    ims: Option<BoundedList<MethodDraft>>,
    groups: Option<BoundedList<String>>,
}

impl Dialect for Webex {
    fn message_type(&self) -> &'static str {
        MESSAGE_TYPE
    }

    fn decode(
        &self,
        message: &IncomingMessage<'_>,
        limits: &Limits,
    ) -> Result<DecodedBatch, Rejection> {
        require_json(message.content_type)?;
        let envelope: Envelope<'_> = serde_json::from_slice(message.body).map_err(|e| {
            Rejection::new(
                RejectCode::MalformedBody,
                format!("the body is not a Webex bulk contacts object: {e}"),
            )
        })?;
        let org_id = resolve_org(envelope.org_id.as_deref(), message.org_id_header);
        let known_org = org_id.as_ref().ok().cloned();
        let org_id = org_id?;
        if let Some(schemas) = envelope.schemas.as_deref().filter(|s| *s != CONTACT_SCHEMA) {
            return Err(Rejection::new(
                RejectCode::InvalidSchemas,
                format!("schemas '{schemas}' is not {CONTACT_SCHEMA}"),
            )
            .with_org(known_org));
        }
        let Some(raw_contacts) = envelope.contacts else {
            return Err(Rejection::new(
                RejectCode::MissingContacts,
                "the body has no contacts array",
            )
            .with_org(known_org));
        };
        check_count(raw_contacts.len(), limits, &known_org)?;
        let contacts = raw_contacts.into_iter().map(contact).collect();
        Ok(DecodedBatch {
            org_id,
            contacts,
            answer: Answer::Common,
        })
    }
}

fn contact(raw: &RawValue) -> Result<ContactDraft, ContactError> {
    let c: WebexContact = serde_json::from_str(raw.get()).map_err(|e| {
        ContactError::new(
            ErrorCode::InvalidContact,
            format!("not a Webex contact: {e}"),
        )
    })?;
    Ok(ContactDraft {
        contact_id: c.contact_id,
        display_name: c.display_name,
        first_name: c.first_name,
        last_name: c.last_name,
        company_name: c.company_name,
        title: c.title,
        address: c.address.map(address).transpose()?.flatten(),
        avatar_url: c.avatar_url,
        primary_contact_method: c.primary_contact_method,
        source: c.source,
        emails: c.emails,
        phone_numbers: c.phone_numbers,
        sip_addresses: c.sip_addresses,
        ims: c.ims,
        groups: c.groups,
        ..ContactDraft::default()
    })
}

/// The address is an object, or (as in the seed's example) that object JSON-encoded in a
/// string, sometimes with its quotes escaped once more.
fn address(value: serde_json::Value) -> Result<Option<Address>, ContactError> {
    let invalid =
        |detail: String| ContactError::new(ErrorCode::InvalidAddress, format!("address {detail}"));
    let object = match value {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::Object(_) => value,
        serde_json::Value::String(text) if text.trim().is_empty() => return Ok(None),
        serde_json::Value::String(text) => serde_json::from_str(&text)
            .or_else(|_| serde_json::from_str(&text.replace("\\\"", "\"")))
            .map_err(|_| invalid("is a string but not a JSON-encoded address object".into()))?,
        other => return Err(invalid(format!("must be an object, not {other}"))),
    };
    serde_json::from_value(object)
        .map(Some)
        .map_err(|e| invalid(format!("is not valid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::decode;

    const LIMITS: Limits = Limits {
        max_message_bytes: 1 << 20,
        max_contacts: 3,
    };

    fn message(body: &str) -> IncomingMessage<'_> {
        IncomingMessage {
            kind: None,
            content_type: Some("application/json"),
            org_id_header: None,
            account_id_header: None,
            body: body.as_bytes(),
        }
    }

    fn rejected(message: IncomingMessage<'_>) -> RejectCode {
        decode(&message, &LIMITS).unwrap_err().code
    }

    #[test]
    fn reads_the_seed_example_including_its_escaped_address() {
        let seed = r#"{ "schemas": "urn:cisco:codev:identity:contact:core:1.0", "orgId": "o1", "contacts": [ { "contactId": "6847ee0f-5e9c-4403-9f0e-0aa8552f7828", "displayName": "John Andersen", "firstName": "John", "lastName": "Andersen", "companyName": "Cisco Systems", "title": "GM", "address": "{\\\"city\\\" : \\\"Milpitas\\\", \\\"country\\\" : \\\"US\\\", \\\"street\\\" : \\\"1099 Bird Ave.\\\", \\\"zipCode\\\" : \\\"99212\\\"}", "avatarURL": "https://avatar-prod-us-east-2.webexcontent.com/default_avatar~1600", "primaryContactMethod": "SIPADDRESS", "source": "Webex4Broadworks", "emails": [ { "value": "user1@example.home.com", "type": "home", "primary": false } ], "phoneNumbers": [ { "value": "400 123 1234", "type": "work", "primary": true } ], "sipAddresses": [ { "value": "sipAddress value1", "type": "enterprise", "primary": true } ], "ims": [ { "value": "aim_account_ID", "type": "aim", "primary": true } ] } ] }"#;
        let batch = decode(&message(seed), &LIMITS).unwrap();
        assert_eq!(batch.org_id.as_str(), "o1");
        let contact = batch.contacts[0].as_ref().unwrap();
        let address = contact.address.as_ref().unwrap();
        assert_eq!(address.city.as_deref(), Some("Milpitas"));
        assert_eq!(address.zip_code.as_deref(), Some("99212"));
        assert_eq!(
            contact.ims.as_ref().unwrap().kept()[0].value.as_deref(),
            Some("aim_account_ID")
        );
    }

    #[test]
    fn a_contact_of_the_wrong_shape_fails_alone() {
        let batch = decode(
            &message(r#"{"orgId":"o","contacts":[{"firstName":1},{"firstName":"A"},"x",{"address":"nope"}]}"#),
            &Limits {
                max_contacts: 10,
                ..LIMITS
            },
        )
        .unwrap();
        let codes = crate::dialect::error_codes(&batch);
        assert_eq!(
            codes,
            [
                Some(ErrorCode::InvalidContact),
                None,
                Some(ErrorCode::InvalidContact),
                Some(ErrorCode::InvalidAddress)
            ]
        );
    }

    #[test]
    fn unreadable_batches_are_rejected_with_their_reason() {
        assert_eq!(rejected(message("not json")), RejectCode::MalformedBody);
        assert_eq!(
            rejected(message(r#"{"contacts":[]}"#)),
            RejectCode::MissingOrgId
        );
        assert_eq!(
            rejected(message(r#"{"orgId":"o"}"#)),
            RejectCode::MissingContacts
        );
        assert_eq!(
            rejected(message(r#"{"orgId":"o","contacts":{}}"#)),
            RejectCode::MalformedBody
        );
        assert_eq!(
            rejected(message(r#"{"orgId":"o","schemas":"urn:x","contacts":[]}"#)),
            RejectCode::InvalidSchemas
        );
        assert_eq!(
            rejected(message(r#"{"orgId":"o","contacts":[{},{},{},{}]}"#)),
            RejectCode::TooLarge
        );
        let xml = IncomingMessage {
            content_type: Some("application/xml"),
            ..message("<a/>")
        };
        assert_eq!(rejected(xml), RejectCode::UnsupportedContentType);
        let other = IncomingMessage {
            kind: Some("contacts.unknown"),
            ..message("{}")
        };
        assert_eq!(rejected(other), RejectCode::UnsupportedType);
    }

    #[test]
    fn the_org_may_come_from_the_header() {
        let with_header = IncomingMessage {
            org_id_header: Some("o2"),
            ..message(r#"{"contacts":[]}"#)
        };
        assert_eq!(decode(&with_header, &LIMITS).unwrap().org_id.as_str(), "o2");
        let disagreeing = IncomingMessage {
            org_id_header: Some("o2"),
            ..message(r#"{"orgId":"o1","contacts":[]}"#)
        };
        assert_eq!(rejected(disagreeing), RejectCode::OrgIdMismatch);
    }
}
