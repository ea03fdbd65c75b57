//! DocuSign eSignature "Contacts: create" (seed 001): a `contactModRequest` in JSON, XML or
//! CSV; the result carries `contactUpdateResponse` in the request's format.
//!
//! The format comes from the content type, never from the body: `application/json`,
//! `application/xml` or `text/xml`, `text/csv`.
//!
//! - JSON: the seed's `{"contacts": [...]}`, plus an optional top-level `accountId`.
//! - XML: the seed's `<contactModRequest>` (namespace `http://www.docusign.com/restapi`),
//!   `contacts/contact`, plus an optional `accountId` child of the root. Elements are matched
//!   by local name, whatever their prefix. A document with a DTD is refused: no external
//!   entities, no entity expansion bombs.
//! - CSV: one contact per row, after a required header row. Column names are matched
//!   case-insensitively, in any order; any subset may be given; an empty cell is an absent
//!   field. A column name outside this table refuses the batch, so a typo never silently
//!   drops data:
//!
//! | Column                     | Contact field                                        |
//! |----------------------------|------------------------------------------------------|
//! | `contactId`                | `contactId` (an update of that contact)              |
//! | `name`                     | `name`                                               |
//! | `emails`                   | `emails`; several separated by `;`                   |
//! | `organization`             | `organization`                                       |
//! | `shared`                   | `shared`: `true` or `false`                          |
//! | `homePhone`                | a `contactPhoneNumbers` entry of `phoneType` home    |
//! | `mobilePhone`              | … of `phoneType` mobile                              |
//! | `workPhone`                | … of `phoneType` work                                |
//! | `otherPhone`               | … of `phoneType` other                               |
//! | `faxPhone`                 | … of `phoneType` fax                                 |
//! | `cloudProvider`            | `cloudProvider`: `rooms` or `docusignCore`           |
//! | `cloudProviderContainerId` | `cloudProviderContainerId`                           |
//! | `signingGroup`             | `signingGroup` (the signing group's id)              |
//! | `signingGroupName`         | `signingGroupName`                                   |
//! | `accountId`                | the account (org); every row that has one must agree |
//!
//! Phone numbers keep the order of their columns in the header row. CSV has no column for
//! `signingGroupUsers`.
//!
//! The account is the org: `accountId` in the body, or the `account-id` or `org-id` header.
//! Body and header must agree, and so must the two headers when both are given.
//!
//! `activationAccessCode` of a signing group user is a credential and is dropped on reading;
//! the response-only fields (`contactUri`, `isOwner`, `errorDetails`) are ignored.
//! `shared` is the string `true` or `false` (any case; a JSON boolean is taken too), and
//! `phoneType` one of DocuSign's home, mobile, work, other, fax; another value fails the
//! contact (`invalid.value`).
//!
//! The answer, `contactUpdateResponse` ([`Echo`]), has one entry per request contact with its
//! `errorDetails`: JSON for a JSON request, the seed's XML for an XML or CSV one.

mod from_csv;
mod from_json;
mod from_xml;
mod response;
#[cfg(test)]
mod tests;

use from_csv::read_csv;
use from_json::read_json;
use from_xml::read_xml;
use response::{ErrorDetails, ResponseContact, error_details_xml, response_xml};

use super::{
    Answer, CSV, DecodedBatch, Dialect, FieldNames, IncomingMessage, JSON, Limits, RequesterReply,
    Sample, SplitShape, XML, check_count, has_any, media_type, resolve_org,
    unsupported_content_type,
};
use crate::contact::model::MethodDraft;
use crate::contact::{
    BoundedList, ContactDraft, ContactError, ErrorCode, SigningGroupUser, StoredContact,
};
use crate::ids::OrgId;
use crate::rejection::{RejectCode, Rejection};
use crate::result::BatchResult;
use quick_xml::Writer;
use quick_xml::escape::partial_escape;
use quick_xml::events::BytesText;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::io;

/// Validation names canonical fields; a DocuSign client knows its own.
pub const FIELD_NAMES: FieldNames = FieldNames(&[
    ("displayName", "name"),
    ("companyName", "organization"),
    ("emails[].value", "emails[]"),
    ("phoneNumbers[].value", "contactPhoneNumbers[].phoneNumber"),
    ("phoneNumbers[].type", "contactPhoneNumbers[].phoneType"),
    ("phoneNumbers", "contactPhoneNumbers"),
    (
        "a new contact needs at least one of displayName, firstName, lastName",
        "a new contact needs a name",
    ),
]);

/// The AMQP `type` of this shape.
pub const MESSAGE_TYPE: &str = "docusign.contacts.create";

/// This dialect in the registry.
pub const TYPE: super::MessageType = super::MessageType(&DocuSign);

const TEXT_XML: &str = "text/xml";
/// Every content type this dialect reads.
const ACCEPTED: &[&str] = &[JSON, XML, TEXT_XML, CSV];

/// DocuSign's `phoneType` values (a subset of the canonical phone types).
const PHONE_TYPES: &[&str] = &["home", "mobile", "work", "other", "fax"];

/// The default namespace of DocuSign's XML documents.
const DOCUSIGN_NS: &str = "http://www.docusign.com/restapi";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The namespace of a phone number's children (prefix `d4p1` in the seed).
const PHONE_NS: &str = "http://schemas.datacontract.org/2004/07/API_REST.Models.v2";

/// The DocuSign Contacts create dialect (seed `001`): JSON, XML or CSV, answered with `contactUpdateResponse`.
pub struct DocuSign;

/// The format a `contactUpdateResponse` is written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Reply {
    #[default]
    Json,
    /// For XML requests, and for CSV ones (DocuSign has no CSV response).
    Xml,
}

/// What a contact sent that its answer repeats when it failed (a stored contact is answered
/// from what was stored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Sent {
    contact_id: Option<String>,
    name: Option<String>,
}

/// What the answer repeats of the request: its format, and per contact what it sent.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    reply: Reply,
    contacts: Vec<Sent>,
}

impl Echo {
    /// The seed's `contactUpdateResponse` for this batch's result: one entry per request
    /// contact, in order, each with its `errorDetails`. A JSON object for a JSON request, an
    /// XML document (as a JSON string) for an XML or CSV one.
    pub fn contact_update_response(&self, result: &BatchResult) -> serde_json::Value {
        let contacts: Vec<ResponseContact> = result
            .contacts
            .iter()
            .enumerate()
            .map(|(index, stored)| match stored {
                Some(stored) => {
                    let mut answer = ResponseContact::stored(stored);
                    // A contact sent with DocuSign's id is answered with that id, which is
                    // how its sender knows it; our own id otherwise.
                    if let Some(sent) = self.contacts.get(index).and_then(|s| s.contact_id.clone())
                    {
                        answer.contact_id = Some(sent);
                    }
                    answer
                }
                None => self.failed(index, result),
            })
            .collect();
        match self.reply {
            Reply::Json => serde_json::json!({ "contacts": contacts }),
            Reply::Xml => serde_json::Value::String(response_xml(&contacts)),
        }
    }

    fn failed(&self, index: usize, result: &BatchResult) -> ResponseContact {
        let sent = self.contacts.get(index).cloned().unwrap_or_default();
        let id = index.to_string();
        // Every `None` of an applied result has its failure; the fallback only keeps the
        // answer one entry per contact should a result ever lack it.
        let error_details = result
            .failed_contacts
            .iter()
            .find(|f| f.id == id)
            .map(|f| ErrorDetails {
                error_code: error_code(f.error_code),
                message: f.error_message.clone(),
            })
            .unwrap_or_else(|| ErrorDetails {
                error_code: "UNKNOWN_ERROR".into(),
                message: "the contact was not stored".into(),
            });
        ResponseContact {
            contact_id: sent.contact_id,
            name: sent.name,
            error_details,
            ..ResponseContact::default()
        }
    }
}

/// DocuSign spells error codes in capitals: `invalid.email` → `INVALID_EMAIL`.
fn error_code(code: &str) -> String {
    code.to_ascii_uppercase().replace('.', "_")
}

/// The seed's answer to a request refused as a whole (its 400 `errorDetails`): the object
/// `{errorCode, message}` for a JSON request (or one whose format could not be told), the
/// `<errorDetails>` document for XML and CSV.
fn rejected_answer(content_type: Option<&str>, code: &str, message: &str) -> serde_json::Value {
    let details = ErrorDetails {
        error_code: error_code(code),
        message: message.to_owned(),
    };
    match media_type(content_type).as_deref() {
        Some(XML | TEXT_XML | CSV) => serde_json::Value::String(error_details_xml(&details)),
        _ => serde_json::json!(details),
    }
}

/// The part of a common result the requester is answered with.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultAnswer {
    contact_update_response: Option<serde_json::Value>,
    error_details: Option<serde_json::Value>,
}

/// Keys that mark a DocuSign contact in JSON…
const JSON_KEYS: &[&str] = &["contactPhoneNumbers", "name"];
/// …unless the contact also has one of these, which DocuSign does not know (Webex's).
const NOT_JSON_KEYS: &[&str] = &[
    "firstName",
    "lastName",
    "middleName",
    "displayName",
    "companyName",
    "title",
    "phoneNumbers",
    "sipAddresses",
    "ims",
    "avatarURL",
    "primaryContactMethod",
    "groups",
];

impl Dialect for DocuSign {
    fn message_type(&self) -> &'static str {
        MESSAGE_TYPE
    }

    /// The seed's own answer, taken from the common result (so a replay answers alike):
    /// `contactUpdateResponse`, or `errorDetails` for a request refused as a whole, as the
    /// XML document for an XML or CSV request and as a JSON object for a JSON one.
    fn requester_reply(&self, result_body: &[u8]) -> Option<RequesterReply> {
        let answer: ResultAnswer = serde_json::from_slice(result_body).ok()?;
        let answer = answer.contact_update_response.or(answer.error_details)?;
        Some(match answer {
            serde_json::Value::String(xml) => RequesterReply {
                body: xml.into_bytes(),
                content_type: XML,
            },
            json => RequesterReply {
                body: serde_json::to_vec(&json).expect("a JSON value serialises"),
                content_type: JSON,
            },
        })
    }

    fn refusal_details(
        &self,
        content_type: Option<&str>,
        rejection: &Rejection,
    ) -> Option<serde_json::Value> {
        Some(rejected_answer(
            content_type,
            rejection.code.as_str(),
            &rejection.message,
        ))
    }

    /// Any XML document; a CSV whose header names DocuSign columns only, one of them other
    /// than `contactId` (which Webex's CSV has too); JSON contacts with `name` or
    /// `contactPhoneNumbers` and none of Webex's fields, outside a Webex `schemas` envelope.
    fn recognises(&self, sample: &Sample<'_>) -> Option<&'static str> {
        let known = |column: &str| {
            from_csv::CSV_COLUMNS
                .iter()
                .any(|(c, _)| c.eq_ignore_ascii_case(column))
        };
        let docusign = match sample {
            Sample::Xml => return Some(XML),
            Sample::Csv { columns } => {
                columns.iter().all(|c| known(c))
                    && columns.iter().any(|c| !c.eq_ignore_ascii_case("contactId"))
            }
            Sample::Json(value) => {
                let contacts = sample.json_contacts();
                let webex_envelope = value.as_object().is_some_and(|o| o.contains_key("schemas"));
                !webex_envelope
                    && contacts.iter().any(|c| has_any(c, JSON_KEYS))
                    && !contacts.iter().any(|c| has_any(c, NOT_JSON_KEYS))
            }
        };
        docusign.then_some(match sample {
            Sample::Csv { .. } => CSV,
            _ => JSON,
        })
    }

    fn org_headers(&self) -> &'static [&'static str] {
        &[super::ACCOUNT_ID_HEADER]
    }

    fn split_shape(&self, media_type: Option<&str>) -> Option<SplitShape> {
        match media_type {
            Some(JSON) => Some(SplitShape::JsonEnvelope),
            Some(XML | TEXT_XML) => Some(SplitShape::XmlContacts),
            Some(CSV) => Some(SplitShape::CsvRows),
            _ => None,
        }
    }

    fn decode(
        &self,
        message: &IncomingMessage<'_>,
        limits: &Limits,
    ) -> Result<DecodedBatch, Rejection> {
        // A refused body still reaches the org's subscribers when a header names the org.
        let header_org = message
            .account_id_header
            .or(message.org_id_header)
            .and_then(|id| OrgId::parse(id).ok());
        let media = media_type(message.content_type);
        let (request, reply) = match media.as_deref() {
            Some(JSON) => (read_json(message.body, limits), Reply::Json),
            Some(XML | TEXT_XML) => (read_xml(message.body, limits), Reply::Xml),
            Some(CSV) => (read_csv(message.body, limits), Reply::Xml),
            other => {
                return Err(unsupported_content_type(other, ACCEPTED).with_org(header_org));
            }
        };
        let request = request.map_err(|r| r.with_org(header_org))?;
        let org_id = org(request.account_id.as_deref(), message)?;
        let known_org = Some(org_id.clone());
        let Some(list) = request.contacts else {
            return Err(Rejection::new(
                RejectCode::MissingContacts,
                "the body has no contacts list",
            )
            .with_org(known_org));
        };
        check_count(list.count, limits, &known_org).map_err(|rejection| {
            if list.counted_all {
                rejection
            } else {
                Rejection {
                    message: format!(
                        "the batch has more than {max} contacts, at most {max} are accepted",
                        max = limits.max_contacts
                    ),
                    ..rejection
                }
            }
        })?;
        let (sent, contacts) = list
            .entries
            .into_iter()
            .map(|entry| (entry.sent, entry.fields.and_then(Fields::into_draft)))
            .unzip();
        Ok(DecodedBatch {
            org_id,
            contacts,
            answer: Answer::DocuSign(Echo {
                reply,
                contacts: sent,
            }),
        })
    }
}

/// The org from the body's accountId and the `account-id` / `org-id` headers.
fn org(body: Option<&str>, message: &IncomingMessage<'_>) -> Result<OrgId, Rejection> {
    let header = match (message.account_id_header, message.org_id_header) {
        (Some(account), Some(org)) if account.trim() != org.trim() => {
            return Err(Rejection::new(
                RejectCode::OrgIdMismatch,
                format!("account-id header '{account}' differs from org-id header '{org}'"),
            ));
        }
        (account, org) => account.or(org),
    };
    if body.is_none() && header.is_none() {
        return Err(Rejection::new(
            RejectCode::MissingOrgId,
            "the batch names no account: set accountId in the body or the account-id header",
        ));
    }
    resolve_org(body, header).map_err(|rejection| match rejection.code {
        RejectCode::OrgIdMismatch => Rejection::new(
            RejectCode::OrgIdMismatch,
            format!(
                "accountId '{}' in the body differs from the header's '{}'",
                body.unwrap_or_default().trim(),
                header.unwrap_or_default().trim()
            ),
        ),
        _ => rejection,
    })
}

/// A request as read from any of the three formats, before the org is resolved.
struct Request {
    account_id: Option<String>,
    /// `None`: the body has no contacts list at all.
    contacts: Option<Contacts>,
}

/// A request's contacts, counted before any is read: a batch over the limit is refused
/// without building an entry per contact (a 16 MiB body of `{}` is millions of them).
struct Contacts {
    /// How many contacts the body has, or, when not `counted_all`, how many were counted
    /// before reading stopped (one over the limit).
    count: usize,
    counted_all: bool,
    /// Every contact in order; empty, and not read, when `count` is over the limit.
    entries: Vec<Entry>,
}

impl Contacts {
    /// `count` contacts, read by `read` only when the limit allows that many.
    fn counted(count: usize, limits: &Limits, read: impl FnOnce() -> Vec<Entry>) -> Self {
        Self {
            count,
            counted_all: true,
            entries: if count <= limits.max_contacts {
                read()
            } else {
                Vec::new()
            },
        }
    }
}

/// One request contact: what the answer echoes, and its fields or why it is unreadable.
struct Entry {
    sent: Sent,
    fields: Result<Fields, ContactError>,
}

/// One contact in DocuSign's field names, whichever format it came in. Lists keep their
/// first entries up to the limit and count the rest.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    contact_id: Option<String>,
    name: Option<String>,
    emails: Option<BoundedList<String>>,
    organization: Option<String>,
    #[serde(default, deserialize_with = "shared_text")]
    shared: Option<String>,
    contact_phone_numbers: Option<BoundedList<Phone>>,
    cloud_provider: Option<String>,
    cloud_provider_container_id: Option<String>,
    signing_group: Option<String>,
    signing_group_name: Option<String>,
    /// Unknown fields of a user (`activationAccessCode`, `errorDetails`) are not read.
    signing_group_users: Option<BoundedList<SigningGroupUser>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Phone {
    phone_number: Option<String>,
    phone_type: Option<String>,
}

/// The seed sends `shared` as a string; a JSON boolean means the same and is taken too.
fn shared_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shared {
        Text(String),
        Flag(bool),
    }
    Ok(
        Option::<Shared>::deserialize(d)?.map(|shared| match shared {
            Shared::Text(text) => text,
            Shared::Flag(flag) => flag.to_string(),
        }),
    )
}

impl Fields {
    fn sent(&self) -> Sent {
        Sent {
            contact_id: present(self.contact_id.as_deref()),
            name: present(self.name.as_deref()),
        }
    }

    /// The canonical draft; values DocuSign restricts more than validation does
    /// (`shared`, `phoneType`) are checked here.
    fn into_draft(self) -> Result<ContactDraft, ContactError> {
        let shared = match self.shared.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) if text.eq_ignore_ascii_case("true") => Some(true),
            Some(text) if text.eq_ignore_ascii_case("false") => Some(false),
            Some(text) => {
                return Err(ContactError::new(
                    ErrorCode::InvalidValue,
                    format!("shared '{text}' is not true or false"),
                ));
            }
        };
        let phone_numbers = self
            .contact_phone_numbers
            .map(|phones| {
                phones.try_map(|i, phone| {
                    Ok(MethodDraft {
                        value: phone.phone_number,
                        kind: phone_type(i, phone.phone_type)?,
                        primary: None,
                    })
                })
            })
            .transpose()?;
        let emails = self.emails.map(|emails| {
            emails.map(|value| MethodDraft {
                value: Some(value),
                kind: None,
                primary: None,
            })
        });
        Ok(ContactDraft {
            // DocuSign's id of the contact, not necessarily ours: see `Target::External`.
            external_id: self.contact_id,
            display_name: self.name,
            company_name: self.organization,
            emails,
            phone_numbers,
            shared,
            cloud_provider: self.cloud_provider,
            cloud_provider_container_id: self.cloud_provider_container_id,
            signing_group: self.signing_group,
            signing_group_name: self.signing_group_name,
            signing_group_users: self.signing_group_users,
            ..ContactDraft::default()
        })
    }
}

/// A phone number's `phoneType`, lowercased; absent is allowed.
fn phone_type(index: usize, kind: Option<String>) -> Result<Option<String>, ContactError> {
    let Some(kind) = kind.as_deref().map(str::trim).filter(|k| !k.is_empty()) else {
        return Ok(None);
    };
    match PHONE_TYPES.iter().find(|t| t.eq_ignore_ascii_case(kind)) {
        Some(canonical) => Ok(Some((*canonical).to_owned())),
        None => Err(ContactError::new(
            ErrorCode::InvalidValue,
            format!(
                "contactPhoneNumbers[{index}].phoneType '{kind}' is not one of {}",
                PHONE_TYPES.join(", ")
            ),
        )),
    }
}

/// The trimmed value, `None` when absent or blank.
fn present(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn malformed(detail: impl std::fmt::Display) -> Rejection {
    Rejection::new(RejectCode::MalformedBody, detail.to_string())
}
