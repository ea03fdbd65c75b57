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

use super::{
    Answer, DecodedBatch, Dialect, FieldNames, IncomingMessage, JSON, Limits, check_count,
    media_type, resolve_org, unsupported_content_type,
};
use crate::contact::model::MethodDraft;
use crate::contact::{ContactDraft, ContactError, ErrorCode, SigningGroupUser, StoredContact};
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

const XML: &str = "application/xml";
const TEXT_XML: &str = "text/xml";
const CSV: &str = "text/csv";
/// Every content type this dialect reads.
const ACCEPTED: &[&str] = &[JSON, XML, TEXT_XML, CSV];

/// DocuSign's `phoneType` values (a subset of the canonical phone types).
const PHONE_TYPES: &[&str] = &["home", "mobile", "work", "other", "fax"];

/// The default namespace of DocuSign's XML documents.
const DOCUSIGN_NS: &str = "http://www.docusign.com/restapi";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The namespace of a phone number's children (prefix `d4p1` in the seed).
const PHONE_NS: &str = "http://schemas.datacontract.org/2004/07/API_REST.Models.v2";

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
                error_code: f.error_code.to_ascii_uppercase().replace('.', "_"),
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

impl Dialect for DocuSign {
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

/// One contact in DocuSign's field names, whichever format it came in.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    contact_id: Option<String>,
    name: Option<String>,
    emails: Option<Vec<String>>,
    organization: Option<String>,
    #[serde(default, deserialize_with = "shared_text")]
    shared: Option<String>,
    contact_phone_numbers: Option<Vec<Phone>>,
    cloud_provider: Option<String>,
    cloud_provider_container_id: Option<String>,
    signing_group: Option<String>,
    signing_group_name: Option<String>,
    /// Unknown fields of a user (`activationAccessCode`, `errorDetails`) are not read.
    signing_group_users: Option<Vec<SigningGroupUser>>,
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
                phones
                    .into_iter()
                    .enumerate()
                    .map(|(i, phone)| {
                        Ok(MethodDraft {
                            value: phone.phone_number,
                            kind: phone_type(i, phone.phone_type)?,
                            primary: None,
                        })
                    })
                    .collect::<Result<Vec<_>, ContactError>>()
            })
            .transpose()?;
        let emails = self.emails.map(|emails| {
            emails
                .into_iter()
                .map(|value| MethodDraft {
                    value: Some(value),
                    kind: None,
                    primary: None,
                })
                .collect()
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

// ---------------------------------------------------------------------------------------
// JSON

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEnvelope<'a> {
    account_id: Option<AccountId>,
    #[serde(borrow)]
    contacts: Option<Vec<&'a RawValue>>,
}

/// DocuSign's accountId is an account number or a GUID; a number is taken as written.
#[derive(Deserialize)]
#[serde(untagged)]
enum AccountId {
    Text(String),
    Number(serde_json::Number),
}

fn read_json(body: &[u8], limits: &Limits) -> Result<Request, Rejection> {
    let envelope: JsonEnvelope<'_> = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("the body is not a DocuSign contactModRequest: {e}")))?;
    Ok(Request {
        account_id: envelope.account_id.map(|id| match id {
            AccountId::Text(text) => text,
            AccountId::Number(number) => number.to_string(),
        }),
        // Each contact stays a borrowed slice of the body until the list is counted.
        contacts: envelope.contacts.map(|raw| {
            Contacts::counted(raw.len(), limits, || {
                raw.into_iter().map(json_contact).collect()
            })
        }),
    })
}

fn json_contact(raw: &RawValue) -> Entry {
    match serde_json::from_str::<Fields>(raw.get()) {
        Ok(fields) => Entry {
            sent: fields.sent(),
            fields: Ok(fields),
        },
        Err(e) => {
            // Still echo what can be read, so the failed entry of the answer is recognisable.
            let value: serde_json::Value = serde_json::from_str(raw.get()).unwrap_or_default();
            let text = |key: &str| present(value.get(key).and_then(|v| v.as_str()));
            Entry {
                sent: Sent {
                    contact_id: text("contactId"),
                    name: text("name"),
                },
                fields: Err(ContactError::new(
                    ErrorCode::InvalidContact,
                    format!("not a DocuSign contact: {e}"),
                )),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// XML

fn read_xml(body: &[u8], limits: &Limits) -> Result<Request, Rejection> {
    let text = std::str::from_utf8(body)
        .map_err(|e| malformed(format!("the XML body is not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // The default options refuse any DTD, hence external entities and entity expansion.
    let document = roxmltree::Document::parse(text)
        .map_err(|e| malformed(format!("the body is not well-formed XML: {e}")))?;
    let root = document.root_element();
    if root.tag_name().name() != "contactModRequest" {
        return Err(malformed(format!(
            "the XML root element is <{}>, not <contactModRequest>",
            root.tag_name().name()
        )));
    }
    let single = |name: &str| {
        let mut found = elements(root).filter(|e| e.tag_name().name() == name);
        match (found.next(), found.next()) {
            (_, Some(_)) => Err(malformed(format!(
                "<contactModRequest> has more than one <{name}>"
            ))),
            (one, None) => Ok(one),
        }
    };
    let account_id = single("accountId")?
        .map(|node| element_text(node).map_err(malformed))
        .transpose()?
        .flatten();
    // The tree is bounded by the body's size; the entries built from it are not, so the
    // children of <contacts> (each one an entry) are counted first.
    let contacts = single("contacts")?.map(|list| {
        Contacts::counted(elements(list).count(), limits, || {
            elements(list).map(xml_contact).collect()
        })
    });
    Ok(Request {
        account_id,
        contacts,
    })
}

/// The element children of a node.
fn elements<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> {
    node.children().filter(roxmltree::Node::is_element)
}

/// An element's text, trimmed; `None` when blank. An element holding elements is not text.
fn element_text(node: roxmltree::Node<'_, '_>) -> Result<Option<String>, String> {
    if elements(node).next().is_some() {
        return Err(format!(
            "<{}> must hold text, not elements",
            node.tag_name().name()
        ));
    }
    let text: String = node.children().filter_map(|c| c.text()).collect();
    Ok(present(Some(&text)))
}

fn xml_contact(node: roxmltree::Node<'_, '_>) -> Entry {
    let first_text = |name: &str| {
        elements(node)
            .find(|e| e.tag_name().name() == name)
            .and_then(|e| element_text(e).ok().flatten())
    };
    Entry {
        sent: Sent {
            contact_id: first_text("contactId"),
            name: first_text("name"),
        },
        fields: xml_fields(node).map_err(|detail| {
            ContactError::new(
                ErrorCode::InvalidContact,
                format!("not a DocuSign contact: {detail}"),
            )
        }),
    }
}

/// Sets a field from an element once; a second element of the same name is an error.
fn set_once(
    slot: &mut Option<String>,
    node: roxmltree::Node<'_, '_>,
    seen: &mut Vec<String>,
) -> Result<(), String> {
    let name = node.tag_name().name();
    if seen.iter().any(|s| s == name) {
        return Err(format!("<{name}> appears more than once"));
    }
    seen.push(name.to_owned());
    *slot = element_text(node)?;
    Ok(())
}

fn xml_fields(node: roxmltree::Node<'_, '_>) -> Result<Fields, String> {
    if node.tag_name().name() != "contact" {
        return Err(format!(
            "<contacts> holds <{}>, not <contact>",
            node.tag_name().name()
        ));
    }
    let mut fields = Fields::default();
    let mut seen = Vec::new();
    for child in elements(node) {
        match child.tag_name().name() {
            "contactId" => set_once(&mut fields.contact_id, child, &mut seen)?,
            "name" => set_once(&mut fields.name, child, &mut seen)?,
            "organization" => set_once(&mut fields.organization, child, &mut seen)?,
            "shared" => set_once(&mut fields.shared, child, &mut seen)?,
            "cloudProvider" => set_once(&mut fields.cloud_provider, child, &mut seen)?,
            "cloudProviderContainerId" => {
                set_once(&mut fields.cloud_provider_container_id, child, &mut seen)?
            }
            "signingGroup" => set_once(&mut fields.signing_group, child, &mut seen)?,
            "signingGroupName" => set_once(&mut fields.signing_group_name, child, &mut seen)?,
            "emails" => {
                let emails = list(child, "string", |e| element_text(e))?;
                fields.emails = Some(emails.into_iter().flatten().collect());
            }
            "contactPhoneNumbers" => {
                fields.contact_phone_numbers = Some(list(child, "contactPhoneNumber", xml_phone)?);
            }
            "signingGroupUsers" => {
                fields.signing_group_users = Some(list(child, "userInfo", xml_user)?);
            }
            // contactUri, isOwner, errorDetails: response-only; others: not DocuSign's.
            _ => {}
        }
    }
    Ok(fields)
}

/// A list element's items, which must all be `<item>` elements.
fn list<'a, 'input, T>(
    node: roxmltree::Node<'a, 'input>,
    item: &str,
    read: impl Fn(roxmltree::Node<'a, 'input>) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    elements(node)
        .map(|child| {
            if child.tag_name().name() == item {
                read(child)
            } else {
                Err(format!(
                    "<{}> holds <{}>, not <{item}>",
                    node.tag_name().name(),
                    child.tag_name().name()
                ))
            }
        })
        .collect()
}

fn xml_phone(node: roxmltree::Node<'_, '_>) -> Result<Phone, String> {
    let mut phone = Phone::default();
    let mut seen = Vec::new();
    for child in elements(node) {
        match child.tag_name().name() {
            "phoneNumber" => set_once(&mut phone.phone_number, child, &mut seen)?,
            "phoneType" => set_once(&mut phone.phone_type, child, &mut seen)?,
            _ => {}
        }
    }
    Ok(phone)
}

fn xml_user(node: roxmltree::Node<'_, '_>) -> Result<SigningGroupUser, String> {
    let mut user = SigningGroupUser::default();
    let mut seen = Vec::new();
    for child in elements(node) {
        let slot = match child.tag_name().name() {
            "userName" => &mut user.user_name,
            "userId" => &mut user.user_id,
            "email" => &mut user.email,
            "userType" => &mut user.user_type,
            "userStatus" => &mut user.user_status,
            "uri" => &mut user.uri,
            "loginStatus" => &mut user.login_status,
            "sendActivationEmail" => &mut user.send_activation_email,
            // activationAccessCode is a credential; errorDetails is response-only.
            _ => continue,
        };
        set_once(slot, child, &mut seen)?;
    }
    Ok(user)
}

// ---------------------------------------------------------------------------------------
// CSV

/// The CSV columns (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    ContactId,
    Name,
    Emails,
    Organization,
    Shared,
    /// A phone number of this `phoneType`.
    Phone(&'static str),
    CloudProvider,
    CloudProviderContainerId,
    SigningGroup,
    SigningGroupName,
    AccountId,
}

const CSV_COLUMNS: &[(&str, Column)] = &[
    ("contactId", Column::ContactId),
    ("name", Column::Name),
    ("emails", Column::Emails),
    ("organization", Column::Organization),
    ("shared", Column::Shared),
    ("homePhone", Column::Phone("home")),
    ("mobilePhone", Column::Phone("mobile")),
    ("workPhone", Column::Phone("work")),
    ("otherPhone", Column::Phone("other")),
    ("faxPhone", Column::Phone("fax")),
    ("cloudProvider", Column::CloudProvider),
    ("cloudProviderContainerId", Column::CloudProviderContainerId),
    ("signingGroup", Column::SigningGroup),
    ("signingGroupName", Column::SigningGroupName),
    ("accountId", Column::AccountId),
];

fn read_csv(body: &[u8], limits: &Limits) -> Result<Request, Rejection> {
    let mut reader = csv::ReaderBuilder::new().from_reader(body);
    let header = reader
        .headers()
        .map_err(|e| malformed(format!("the CSV header row is not readable: {e}")))?
        .clone();
    if header.iter().all(|name| name.trim().is_empty()) {
        return Err(malformed("the CSV body has no header row"));
    }
    let mut columns: Vec<Column> = Vec::with_capacity(header.len());
    for (i, raw) in header.iter().enumerate() {
        // A UTF-8 byte order mark sticks to the first header name.
        let name = if i == 0 {
            raw.trim_start_matches('\u{feff}')
        } else {
            raw
        }
        .trim();
        let Some((canonical, column)) = CSV_COLUMNS
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
        else {
            let known: Vec<&str> = CSV_COLUMNS.iter().map(|(c, _)| *c).collect();
            return Err(malformed(format!(
                "unknown CSV column '{name}' (known: {})",
                known.join(", ")
            )));
        };
        if columns.contains(column) {
            return Err(malformed(format!("CSV column '{canonical}' appears twice")));
        }
        columns.push(*column);
    }

    let mut account_id: Option<String> = None;
    let mut contacts = Vec::new();
    for (index, row) in reader.records().enumerate() {
        if index == limits.max_contacts {
            // One row over the limit: the rest is neither read nor counted.
            return Ok(Request {
                account_id,
                contacts: Some(Contacts {
                    count: index + 1,
                    counted_all: false,
                    entries: Vec::new(),
                }),
            });
        }
        // Row 1 is the header, as a spreadsheet numbers them.
        let number = index + 2;
        let row = row.map_err(|e| malformed(format!("CSV row {number} is not readable: {e}")))?;
        let mut fields = Fields::default();
        for (column, cell) in columns.iter().zip(row.iter()) {
            let Some(cell) = present(Some(cell)) else {
                continue;
            };
            match column {
                Column::ContactId => fields.contact_id = Some(cell),
                Column::Name => fields.name = Some(cell),
                Column::Emails => {
                    fields.emails =
                        Some(cell.split(';').filter_map(|e| present(Some(e))).collect());
                }
                Column::Organization => fields.organization = Some(cell),
                Column::Shared => fields.shared = Some(cell),
                Column::Phone(kind) => {
                    fields
                        .contact_phone_numbers
                        .get_or_insert_with(Vec::new)
                        .push(Phone {
                            phone_number: Some(cell),
                            phone_type: Some((*kind).to_owned()),
                        });
                }
                Column::CloudProvider => fields.cloud_provider = Some(cell),
                Column::CloudProviderContainerId => {
                    fields.cloud_provider_container_id = Some(cell);
                }
                Column::SigningGroup => fields.signing_group = Some(cell),
                Column::SigningGroupName => fields.signing_group_name = Some(cell),
                Column::AccountId => match &account_id {
                    Some(earlier) if *earlier != cell => {
                        return Err(Rejection::new(
                            RejectCode::OrgIdMismatch,
                            format!(
                                "CSV row {number} has accountId '{cell}', an earlier row '{earlier}'"
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => account_id = Some(cell),
                },
            }
        }
        contacts.push(Entry {
            sent: fields.sent(),
            fields: Ok(fields),
        });
    }
    Ok(Request {
        account_id,
        contacts: Some(Contacts {
            count: contacts.len(),
            counted_all: true,
            entries: contacts,
        }),
    })
}

// ---------------------------------------------------------------------------------------
// contactUpdateResponse

/// One entry of `contactUpdateResponse`, in DocuSign's names. The field order is the seed's
/// JSON response; the XML writer uses the seed's XML order (alphabetical) instead.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseContact {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    signing_group_users: Vec<ResponseUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    emails: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    organization: Option<String>,
    /// DocuSign's `shared` is a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    shared: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_group_name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    contact_phone_numbers: Vec<ResponsePhone>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud_provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud_provider_container_id: Option<String>,
    error_details: ErrorDetails,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseUser {
    #[serde(flatten)]
    user: SigningGroupUser,
    error_details: ErrorDetails,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponsePhone {
    phone_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_type: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDetails {
    error_code: String,
    message: String,
}

impl Default for ErrorDetails {
    fn default() -> Self {
        Self {
            error_code: "SUCCESS".into(),
            message: String::new(),
        }
    }
}

impl ResponseContact {
    /// A stored contact, from its stored (canonical) fields.
    fn stored(stored: &StoredContact) -> Self {
        let fields = &stored.fields;
        Self {
            signing_group_users: fields
                .signing_group_users
                .iter()
                .flatten()
                .map(|user| ResponseUser {
                    user: user.clone(),
                    error_details: ErrorDetails::default(),
                })
                .collect(),
            contact_id: Some(stored.contact_id.to_string()),
            name: fields.display_name.clone(),
            emails: fields
                .emails
                .iter()
                .flatten()
                .map(|e| e.value.clone())
                .collect(),
            organization: fields.company_name.clone(),
            shared: fields.shared.map(|s| if s { "true" } else { "false" }),
            signing_group: fields.signing_group.clone(),
            signing_group_name: fields.signing_group_name.clone(),
            contact_phone_numbers: fields
                .phone_numbers
                .iter()
                .flatten()
                .map(|p| ResponsePhone {
                    phone_number: p.value.clone(),
                    phone_type: p.kind.clone(),
                })
                .collect(),
            cloud_provider: fields.cloud_provider.clone(),
            cloud_provider_container_id: fields.cloud_provider_container_id.clone(),
            error_details: ErrorDetails::default(),
        }
    }
}

/// The seed's XML `contactUpdateResponse`, indented like the seed.
fn response_xml(contacts: &[ResponseContact]) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    write_response(&mut writer, contacts).expect("writing XML into a Vec cannot fail");
    String::from_utf8(writer.into_inner()).expect("quick-xml writes the UTF-8 text it is given")
}

fn write_response(w: &mut Writer<Vec<u8>>, contacts: &[ResponseContact]) -> io::Result<()> {
    w.create_element("contactUpdateResponse")
        .with_attribute(("xmlns:i", XSI_NS))
        .with_attribute(("xmlns", DOCUSIGN_NS))
        .write_inner_content(|w| {
            w.create_element("contacts")
                .write_inner_content(|w| contacts.iter().try_for_each(|c| write_contact(w, c)))?;
            Ok(())
        })?;
    Ok(())
}

/// One `<contact>`, its elements in the seed's (alphabetical) order.
fn write_contact(w: &mut Writer<Vec<u8>>, c: &ResponseContact) -> io::Result<()> {
    w.create_element("contact").write_inner_content(|w| {
        leaf(w, "cloudProvider", c.cloud_provider.as_deref())?;
        leaf(
            w,
            "cloudProviderContainerId",
            c.cloud_provider_container_id.as_deref(),
        )?;
        leaf(w, "contactId", c.contact_id.as_deref())?;
        if !c.contact_phone_numbers.is_empty() {
            w.create_element("contactPhoneNumbers")
                .with_attribute(("xmlns:d4p1", PHONE_NS))
                .write_inner_content(|w| {
                    for phone in &c.contact_phone_numbers {
                        w.create_element("d4p1:contactPhoneNumber")
                            .write_inner_content(|w| {
                                leaf(w, "d4p1:phoneNumber", Some(&phone.phone_number))?;
                                leaf(w, "d4p1:phoneType", phone.phone_type.as_deref())
                            })?;
                    }
                    Ok(())
                })?;
        }
        if !c.emails.is_empty() {
            w.create_element("emails").write_inner_content(|w| {
                c.emails
                    .iter()
                    .try_for_each(|email| leaf(w, "string", Some(email)))
            })?;
        }
        write_error_details(w, &c.error_details)?;
        leaf(w, "name", c.name.as_deref())?;
        leaf(w, "organization", c.organization.as_deref())?;
        leaf(w, "shared", c.shared)?;
        leaf(w, "signingGroup", c.signing_group.as_deref())?;
        leaf(w, "signingGroupName", c.signing_group_name.as_deref())?;
        if !c.signing_group_users.is_empty() {
            w.create_element("signingGroupUsers")
                .write_inner_content(|w| {
                    c.signing_group_users
                        .iter()
                        .try_for_each(|u| write_user(w, u))
                })?;
        }
        Ok(())
    })?;
    Ok(())
}

fn write_user(w: &mut Writer<Vec<u8>>, u: &ResponseUser) -> io::Result<()> {
    let user = &u.user;
    w.create_element("userInfo").write_inner_content(|w| {
        leaf(w, "email", user.email.as_deref())?;
        write_error_details(w, &u.error_details)?;
        leaf(w, "loginStatus", user.login_status.as_deref())?;
        leaf(
            w,
            "sendActivationEmail",
            user.send_activation_email.as_deref(),
        )?;
        leaf(w, "uri", user.uri.as_deref())?;
        leaf(w, "userId", user.user_id.as_deref())?;
        leaf(w, "userName", user.user_name.as_deref())?;
        leaf(w, "userStatus", user.user_status.as_deref())?;
        leaf(w, "userType", user.user_type.as_deref())
    })?;
    Ok(())
}

fn write_error_details(w: &mut Writer<Vec<u8>>, details: &ErrorDetails) -> io::Result<()> {
    w.create_element("errorDetails").write_inner_content(|w| {
        leaf(w, "errorCode", Some(&details.error_code))?;
        // The seed writes an empty message as `<message></message>`, so it is never omitted.
        w.create_element("message")
            .write_text_content(text_event(&details.message))?;
        Ok(())
    })?;
    Ok(())
}

/// A text element, omitted when the value is absent or empty.
fn leaf(w: &mut Writer<Vec<u8>>, name: &str, value: Option<&str>) -> io::Result<()> {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        w.create_element(name)
            .write_text_content(text_event(value))?;
    }
    Ok(())
}

/// Element text, escaped by quick-xml. Only `<`, `>` and `&` need escaping in text, so
/// quotes stay readable.
fn text_event(value: &str) -> BytesText<'static> {
    BytesText::from_escaped(partial_escape(xml_chars(value).into_owned()).into_owned())
}

/// The text without the characters XML 1.0 cannot carry even escaped (most C0 controls).
/// Stored values never hold them, but an echoed value of a failed contact may.
fn xml_chars(text: &str) -> Cow<'_, str> {
    let allowed = |c: char| !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    if text.chars().all(allowed) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().filter(|c| allowed(*c)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::model::ContactMethod;
    use crate::contact::{ContactFields, validate};
    use crate::dialect::decode;
    use crate::ids::{BatchId, ContactId};
    use crate::result::ContactOutcome;
    use chrono::{TimeZone, Utc};

    const LIMITS: Limits = Limits {
        max_message_bytes: 1 << 20,
        max_contacts: 10,
    };

    const SEED_JSON: &str = include_str!("../../tests/fixtures/docusign-seed-example.json");
    const SEED_XML: &str = include_str!("../../tests/fixtures/docusign-seed-example.xml");
    const CONTACTS_JSON: &str = include_str!("../../tests/fixtures/docusign-contacts.json");
    const CONTACTS_XML: &str = include_str!("../../tests/fixtures/docusign-contacts.xml");
    const CONTACTS_CSV: &str = include_str!("../../tests/fixtures/docusign-contacts.csv");

    fn message<'a>(content_type: &'a str, body: &'a str) -> IncomingMessage<'a> {
        IncomingMessage {
            kind: Some(MESSAGE_TYPE),
            content_type: Some(content_type),
            org_id_header: None,
            account_id_header: Some("acct-1"),
            body: body.as_bytes(),
        }
    }

    fn decoded(content_type: &str, body: &str) -> DecodedBatch {
        decode(&message(content_type, body), &LIMITS).unwrap()
    }

    fn rejected(message: IncomingMessage<'_>) -> Rejection {
        decode(&message, &LIMITS).unwrap_err()
    }

    fn drafts(batch: &DecodedBatch) -> Vec<Result<ContactDraft, ContactError>> {
        batch.contacts.clone()
    }

    fn echo(batch: &DecodedBatch) -> &Echo {
        match &batch.answer {
            Answer::DocuSign(echo) => echo,
            _ => panic!("a DocuSign batch answers with an Echo"),
        }
    }

    #[test]
    fn the_three_formats_of_the_same_contacts_read_identically() {
        let json = decoded("application/json", CONTACTS_JSON);
        let xml = decoded("application/xml; charset=utf-8", CONTACTS_XML);
        let csv = decoded("text/csv", CONTACTS_CSV);
        assert_eq!(json.org_id.as_str(), "acct-1");
        assert_eq!(drafts(&json), drafts(&xml));
        assert_eq!(drafts(&json), drafts(&csv));
        assert_eq!(echo(&json).reply, Reply::Json);
        assert_eq!(echo(&xml).reply, Reply::Xml);
        assert_eq!(echo(&csv).reply, Reply::Xml, "CSV is answered in XML");
        assert_eq!(echo(&csv).contacts, echo(&json).contacts);

        let ada = json.contacts[0].as_ref().unwrap();
        assert_eq!(ada.display_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(ada.company_name.as_deref(), Some("Analytical Engines"));
        assert_eq!(ada.shared, Some(true));
        let phones = ada.phone_numbers.as_ref().unwrap();
        assert_eq!(phones[0].value.as_deref(), Some("+1 415 555 0100"));
        assert_eq!(phones[0].kind.as_deref(), Some("mobile"));
        assert_eq!(phones[1].kind.as_deref(), Some("work"));
        let grace = json.contacts[1].as_ref().unwrap();
        assert_eq!(grace.emails.as_ref().unwrap().len(), 2);
        assert_eq!(grace.signing_group_name.as_deref(), Some("Compiler Review"));
        assert_eq!(grace.cloud_provider.as_deref(), Some("rooms"));
        assert_eq!(grace.shared, Some(false));

        // Validation takes the first two and fails the third on its email.
        let validated: Vec<_> = json
            .contacts
            .into_iter()
            .map(|c| c.and_then(validate::validate))
            .collect();
        assert!(
            validated[0].is_ok() && validated[1].is_ok(),
            "{validated:?}"
        );
        assert_eq!(
            validated[2].as_ref().unwrap_err().code,
            ErrorCode::InvalidEmail
        );
        let ada = validated[0].as_ref().unwrap();
        assert_eq!(
            ada.fields.phone_numbers.as_ref().unwrap()[0].value,
            "+14155550100"
        );
    }

    #[test]
    fn the_seed_examples_read_alike_and_fail_on_their_sample_values() {
        let json = decoded("application/json", SEED_JSON);
        let xml = decoded("text/xml", SEED_XML);
        assert_eq!(drafts(&json), drafts(&xml));
        assert_eq!(json.contacts.len(), 1);
        // "sample string 4" is not a `shared` value.
        let error = json.contacts[0].as_ref().unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidValue);
        assert!(
            error.message.contains("sample string 4"),
            "{}",
            error.message
        );
        assert_eq!(
            echo(&json).contacts,
            [Sent {
                contact_id: Some("sample string 1".into()),
                name: Some("sample string 2".into()),
            }]
        );
        assert_eq!(echo(&xml).contacts, echo(&json).contacts);

        // With a valid `shared`, the rest of the seed's shape is read in full.
        let fixed = SEED_JSON.replace("sample string 4", "true");
        let contact = decoded("application/json", &fixed).contacts[0].clone();
        let error = contact.unwrap_err();
        assert_eq!(
            error.code,
            ErrorCode::InvalidValue,
            "phoneType 'sample string 2'"
        );
        let fixed = fixed.replace(
            r#""phoneType": "sample string 2""#,
            r#""phoneType": "Work""#,
        );
        let json = decoded("application/json", &fixed);
        let xml = decoded(
            "application/xml",
            &SEED_XML.replace("sample string 4", "true").replace(
                ">sample string 2</d4p1:phoneType>",
                ">Work</d4p1:phoneType>",
            ),
        );
        assert_eq!(drafts(&json), drafts(&xml));
        let contact = json.contacts[0].as_ref().unwrap();
        assert_eq!(contact.external_id.as_deref(), Some("sample string 1"));
        assert_eq!(contact.display_name.as_deref(), Some("sample string 2"));
        assert_eq!(contact.company_name.as_deref(), Some("sample string 3"));
        assert_eq!(contact.signing_group.as_deref(), Some("sample string 6"));
        assert_eq!(
            contact.signing_group_name.as_deref(),
            Some("sample string 7")
        );
        let phone = &contact.phone_numbers.as_ref().unwrap()[0];
        assert_eq!(phone.value.as_deref(), Some("sample string 1"));
        assert_eq!(phone.kind.as_deref(), Some("work"));
        let user = &contact.signing_group_users.as_ref().unwrap()[0];
        assert_eq!(user.user_name.as_deref(), Some("sample string 1"));
        assert_eq!(
            user.send_activation_email.as_deref(),
            Some("sample string 8")
        );
        assert!(
            !format!("{contact:?}").contains("sample string 9"),
            "no activationAccessCode"
        );
    }

    #[test]
    fn the_content_type_picks_the_format_and_nothing_is_guessed() {
        let no_type = IncomingMessage {
            content_type: None,
            ..message("application/json", CONTACTS_JSON)
        };
        assert_eq!(rejected(no_type).code, RejectCode::UnsupportedContentType);
        for other in ["text/plain", "application/x-www-form-urlencoded"] {
            let rejection = rejected(message(other, CONTACTS_JSON));
            assert_eq!(rejection.code, RejectCode::UnsupportedContentType);
            assert!(
                rejection.message.contains("text/csv"),
                "{}",
                rejection.message
            );
        }
        // JSON sent as XML is not read as JSON.
        let mislabelled = rejected(message("application/xml", CONTACTS_JSON));
        assert_eq!(mislabelled.code, RejectCode::MalformedBody);
        assert_eq!(
            decoded("Text/CSV; charset=utf-8", CONTACTS_CSV)
                .contacts
                .len(),
            3
        );
    }

    #[test]
    fn a_dtd_is_refused_so_no_entity_is_ever_expanded() {
        let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE contactModRequest [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<contactModRequest xmlns="http://www.docusign.com/restapi">
  <contacts><contact><name>&lol3;</name></contact></contacts>
</contactModRequest>"#;
        let external = r#"<?xml version="1.0"?>
<!DOCTYPE contactModRequest [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<contactModRequest xmlns="http://www.docusign.com/restapi">
  <contacts><contact><name>&xxe;</name></contact></contacts>
</contactModRequest>"#;
        for body in [laughs, external] {
            let rejection = rejected(message("application/xml", body));
            assert_eq!(rejection.code, RejectCode::MalformedBody);
            assert!(rejection.message.contains("DTD"), "{}", rejection.message);
        }
    }

    #[test]
    fn xml_is_matched_by_local_name_whatever_the_prefixes() {
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<ds:contactModRequest xmlns:ds="http://www.docusign.com/restapi">
  <ds:accountId> acct-1 </ds:accountId>
  <ds:contacts>
    <ds:contact>
      <ds:name><![CDATA[Ada & Co]]></ds:name>
      <ds:contactPhoneNumbers xmlns:p="http://schemas.datacontract.org/2004/07/API_REST.Models.v2">
        <p:contactPhoneNumber><p:phoneNumber>+1 415 555 0100</p:phoneNumber></p:contactPhoneNumber>
      </ds:contactPhoneNumbers>
      <ds:isOwner>true</ds:isOwner>
    </ds:contact>
    <ds:contact><ds:name>A</ds:name><ds:name>B</ds:name></ds:contact>
    <ds:person/>
    <ds:contact><ds:emails><ds:email>x@example.com</ds:email></ds:emails></ds:contact>
  </ds:contacts>
</ds:contactModRequest>"#;
        let batch = decoded("application/xml", body);
        assert_eq!(batch.org_id.as_str(), "acct-1");
        let first = batch.contacts[0].as_ref().unwrap();
        assert_eq!(first.display_name.as_deref(), Some("Ada & Co"));
        let phone = &first.phone_numbers.as_ref().unwrap()[0];
        assert_eq!(
            (phone.value.as_deref(), phone.kind.as_deref()),
            (Some("+1 415 555 0100"), None)
        );
        for failed in &batch.contacts[1..] {
            assert_eq!(failed.as_ref().unwrap_err().code, ErrorCode::InvalidContact);
        }
        assert_eq!(echo(&batch).contacts[1].name.as_deref(), Some("A"));

        let wrong_root = rejected(message("application/xml", "<contacts/>"));
        assert_eq!(wrong_root.code, RejectCode::MalformedBody);
        let no_list = rejected(message(
            "application/xml",
            r#"<contactModRequest xmlns="http://www.docusign.com/restapi"/>"#,
        ));
        assert_eq!(no_list.code, RejectCode::MissingContacts);
    }

    #[test]
    fn a_json_contact_of_the_wrong_shape_fails_alone() {
        let body = r#"{"contacts": [
            {"name": "Ada", "emails": "ada@example.com", "contactId": "c-1"},
            {"name": "Grace", "shared": true},
            "x",
            {"name": "Bad", "shared": "yes"},
            {"name": "Fax", "contactPhoneNumbers": [{"phoneNumber": "1234", "phoneType": "pager"}]},
            {"name": "Uri", "contactUri": "/contacts/1", "isOwner": true,
             "errorDetails": {"errorCode": "X", "message": "y"}}
        ]}"#;
        let batch = decoded("application/json", body);
        let codes: Vec<_> = batch
            .contacts
            .iter()
            .map(|c| c.as_ref().err().map(|e| e.code))
            .collect();
        assert_eq!(
            codes,
            [
                Some(ErrorCode::InvalidContact),
                None,
                Some(ErrorCode::InvalidContact),
                Some(ErrorCode::InvalidValue),
                Some(ErrorCode::InvalidValue),
                None,
            ]
        );
        assert_eq!(batch.contacts[1].as_ref().unwrap().shared, Some(true));
        assert_eq!(
            echo(&batch).contacts[0],
            Sent {
                contact_id: Some("c-1".into()),
                name: Some("Ada".into())
            }
        );
    }

    /// `n` contacts in the given format; the body names account `acct-1` (CSV: on its first row).
    fn contacts_body(content_type: &str, n: usize) -> String {
        match content_type {
            "application/json" => format!(
                r#"{{"accountId": "acct-1", "contacts": [{}]}}"#,
                vec![r#"{"name": "A"}"#; n].join(",")
            ),
            "application/xml" => format!(
                "<contactModRequest><accountId>acct-1</accountId><contacts>{}</contacts>\
                 </contactModRequest>",
                "<contact><name>A</name></contact>".repeat(n)
            ),
            _ => format!(
                "name,accountId\nA,acct-1\n{}",
                "A,\n".repeat(n.saturating_sub(1))
            ),
        }
    }

    #[test]
    fn a_batch_over_the_contact_limit_is_refused_in_every_format_with_its_org() {
        for content_type in ["application/json", "application/xml", "text/csv"] {
            let at_limit = contacts_body(content_type, LIMITS.max_contacts);
            let batch = decoded(content_type, &at_limit);
            assert_eq!(batch.contacts.len(), LIMITS.max_contacts, "{content_type}");
            assert!(batch.contacts.iter().all(Result::is_ok), "{content_type}");

            let over = contacts_body(content_type, LIMITS.max_contacts + 1);
            let rejection = rejected(message(content_type, &over));
            assert_eq!(rejection.code, RejectCode::TooLarge, "{content_type}");
            assert_eq!(
                rejection.org_id.as_ref().map(OrgId::as_str),
                Some("acct-1"),
                "{content_type}: the org's subscribers hear of the rejection"
            );
            let expected = if content_type == "text/csv" {
                "the batch has more than 10 contacts, at most 10 are accepted"
            } else {
                "the batch has 11 contacts, at most 10 are accepted"
            };
            assert_eq!(rejection.message, expected, "{content_type}");

            // The org named only in the body is attached too.
            let body_org = IncomingMessage {
                account_id_header: None,
                ..message(content_type, &over)
            };
            let rejection = decode(&body_org, &LIMITS).unwrap_err();
            assert_eq!(rejection.code, RejectCode::TooLarge, "{content_type}");
            assert_eq!(
                rejection.org_id.as_ref().map(OrgId::as_str),
                Some("acct-1"),
                "{content_type}"
            );
        }
    }

    #[test]
    fn a_huge_batch_is_counted_and_refused_without_building_its_entries() {
        const HUGE: usize = 200_000;
        let limits = Limits {
            max_message_bytes: 16 << 20,
            ..LIMITS
        };
        let json = format!(r#"{{"contacts": [{}]}}"#, vec!["{}"; HUGE].join(","));
        let xml = format!(
            "<contactModRequest><contacts>{}</contacts></contactModRequest>",
            "<contact/>".repeat(HUGE)
        );
        let csv = format!("name\n{}", "a\n".repeat(HUGE));

        let count = |request: Result<Request, Rejection>| {
            let list = request.unwrap().contacts.unwrap();
            assert!(list.entries.is_empty(), "no entry is built over the limit");
            (list.count, list.counted_all)
        };
        assert_eq!(count(read_json(json.as_bytes(), &limits)), (HUGE, true));
        assert_eq!(count(read_xml(xml.as_bytes(), &limits)), (HUGE, true));
        // CSV stops reading one row over the limit.
        assert_eq!(
            count(read_csv(csv.as_bytes(), &limits)),
            (limits.max_contacts + 1, false)
        );

        for (content_type, body) in [
            ("application/json", &json),
            ("application/xml", &xml),
            ("text/csv", &csv),
        ] {
            let rejection = decode(&message(content_type, body), &limits).unwrap_err();
            assert_eq!(rejection.code, RejectCode::TooLarge, "{content_type}");
            assert_eq!(
                rejection.org_id.as_ref().map(OrgId::as_str),
                Some("acct-1"),
                "{content_type}"
            );
        }
        assert!(
            decode(&message("application/json", &json), &limits)
                .unwrap_err()
                .message
                .starts_with("the batch has 200000 contacts"),
        );
    }

    #[test]
    fn unreadable_batches_are_rejected_with_their_reason() {
        let json = |body| rejected(message("application/json", body)).code;
        assert_eq!(json("nope"), RejectCode::MalformedBody);
        let malformed = rejected(message("text/csv", "name,emial\n"));
        assert_eq!(
            malformed.org_id.as_ref().map(OrgId::as_str),
            Some("acct-1"),
            "the header's org still hears of the rejection"
        );
        assert_eq!(json(r#"{"contacts": {}}"#), RejectCode::MalformedBody);
        assert_eq!(
            json(r#"{"accountId": "acct-1"}"#),
            RejectCode::MissingContacts
        );
        let eleven = format!(r#"{{"contacts": [{}]}}"#, ["{}"; 11].join(","));
        assert_eq!(json(&eleven), RejectCode::TooLarge);
        assert_eq!(
            rejected(message("application/xml", "<contactModRequest><contacts>")).code,
            RejectCode::MalformedBody
        );
    }

    #[test]
    fn the_account_comes_from_the_body_or_either_header_and_must_agree() {
        let body = r#"{"accountId": "acct-1", "contacts": []}"#;
        let only_body = IncomingMessage {
            account_id_header: None,
            ..message("application/json", body)
        };
        assert_eq!(
            decode(&only_body, &LIMITS).unwrap().org_id.as_str(),
            "acct-1"
        );
        let numeric = IncomingMessage {
            account_id_header: None,
            ..message(
                "application/json",
                r#"{"accountId": 18118, "contacts": []}"#,
            )
        };
        assert_eq!(decode(&numeric, &LIMITS).unwrap().org_id.as_str(), "18118");
        let org_header = IncomingMessage {
            account_id_header: None,
            org_id_header: Some("acct-2"),
            ..message("application/json", r#"{"contacts": []}"#)
        };
        assert_eq!(
            decode(&org_header, &LIMITS).unwrap().org_id.as_str(),
            "acct-2"
        );
        let nothing = IncomingMessage {
            account_id_header: None,
            ..message("application/json", r#"{"contacts": []}"#)
        };
        assert_eq!(rejected(nothing).code, RejectCode::MissingOrgId);
        let body_differs = IncomingMessage {
            account_id_header: Some("acct-2"),
            ..message("application/json", body)
        };
        assert_eq!(rejected(body_differs).code, RejectCode::OrgIdMismatch);
        let headers_differ = IncomingMessage {
            org_id_header: Some("acct-2"),
            ..message("application/json", r#"{"contacts": []}"#)
        };
        assert_eq!(rejected(headers_differ).code, RejectCode::OrgIdMismatch);
        let headers_agree = IncomingMessage {
            org_id_header: Some("acct-1"),
            ..message("application/json", r#"{"contacts": []}"#)
        };
        assert_eq!(
            decode(&headers_agree, &LIMITS).unwrap().org_id.as_str(),
            "acct-1"
        );

        let xml = r#"<contactModRequest xmlns="http://www.docusign.com/restapi"><accountId>acct-3</accountId><contacts/></contactModRequest>"#;
        assert_eq!(
            rejected(message("text/xml", xml)).code,
            RejectCode::OrgIdMismatch
        );
        let csv = "name,accountId\nAda,acct-1\nGrace,\nAlan,acct-1\n";
        assert_eq!(decoded("text/csv", csv).contacts.len(), 3);
        let csv = "name,accountId\nAda,acct-1\nGrace,acct-9\n";
        assert_eq!(
            rejected(message("text/csv", csv)).code,
            RejectCode::OrgIdMismatch
        );
    }

    #[test]
    fn csv_columns_are_case_insensitive_and_an_unknown_one_refuses_the_batch() {
        let csv = "NAME,WorkPhone,homephone,Emails\nAda,+1 415 555 0101,+1 415 555 0102, a@example.com ; b@example.com ;\n";
        let batch = decoded("text/csv", csv);
        let ada = batch.contacts[0].as_ref().unwrap();
        assert_eq!(ada.display_name.as_deref(), Some("Ada"));
        let kinds: Vec<_> = ada
            .phone_numbers
            .iter()
            .flatten()
            .map(|p| p.kind.as_deref().unwrap())
            .collect();
        assert_eq!(kinds, ["work", "home"], "in the header's order");
        let emails: Vec<_> = ada
            .emails
            .iter()
            .flatten()
            .map(|e| e.value.as_deref().unwrap())
            .collect();
        assert_eq!(emails, ["a@example.com", "b@example.com"]);

        let typo = rejected(message("text/csv", "name,emial\nAda,a@example.com\n"));
        assert_eq!(typo.code, RejectCode::MalformedBody);
        assert!(typo.message.contains("'emial'"), "{}", typo.message);
        let twice = rejected(message("text/csv", "name,Name\nA,B\n"));
        assert_eq!(twice.code, RejectCode::MalformedBody);
        assert_eq!(
            rejected(message("text/csv", "")).code,
            RejectCode::MalformedBody
        );
        let ragged = rejected(message("text/csv", "name,organization\nAda\n"));
        assert_eq!(ragged.code, RejectCode::MalformedBody);
        assert!(ragged.message.contains("row 2"), "{}", ragged.message);
    }

    #[test]
    fn csv_reads_quotes_embedded_newlines_and_a_byte_order_mark() {
        let csv = "\u{feff}name,organization,shared\n\"Lovelace, Ada\",\"The \"\"Analytical\"\"\nEngine\",TRUE\n,,\n";
        let batch = decoded("text/csv", csv);
        assert_eq!(batch.contacts.len(), 2);
        let ada = batch.contacts[0].as_ref().unwrap();
        assert_eq!(ada.display_name.as_deref(), Some("Lovelace, Ada"));
        assert_eq!(
            ada.company_name.as_deref(),
            Some("The \"Analytical\"\nEngine")
        );
        assert_eq!(ada.shared, Some(true));
        assert_eq!(
            batch.contacts[1].as_ref().unwrap(),
            &ContactDraft::default(),
            "empty cells are absent fields"
        );
    }

    fn stored_grace() -> StoredContact {
        let org = OrgId::parse("acct-1").unwrap();
        let at = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        StoredContact::new(
            &org,
            ContactId(uuid::Uuid::from_u128(
                0x5e0c_0de5_0000_4000_8000_0000_0000_0001,
            )),
            at,
            at,
            ContactFields {
                display_name: Some("Grace <Hopper> & Co".into()),
                company_name: Some("Remington Rand".into()),
                emails: Some(vec![ContactMethod {
                    value: "grace@example.com".into(),
                    kind: None,
                    primary: false,
                }]),
                phone_numbers: Some(vec![ContactMethod {
                    value: "+12125550199".into(),
                    kind: Some("work".into()),
                    primary: false,
                }]),
                shared: Some(false),
                cloud_provider: Some("rooms".into()),
                signing_group: Some("20546".into()),
                signing_group_users: Some(vec![SigningGroupUser {
                    user_name: Some("Grace Hopper".into()),
                    email: Some("grace@example.com".into()),
                    ..SigningGroupUser::default()
                }]),
                ..ContactFields::default()
            },
        )
    }

    /// A stored contact and a failed one, answered for a request in `content_type`.
    fn answer(content_type: &str, body: &str) -> serde_json::Value {
        let batch = decoded(content_type, body);
        let result = BatchResult::applied(
            &BatchId::for_message(Some("b-1"), "0"),
            &batch.org_id,
            vec![
                ContactOutcome::Created(stored_grace()),
                ContactOutcome::Failed(ContactError::new(
                    ErrorCode::InvalidEmail,
                    "emails[0].value 'not-an-email' is not a valid email address",
                )),
            ],
            Utc::now(),
        );
        echo(&batch).contact_update_response(&result)
    }

    const TWO: &str = r#"{"contacts": [{"name": "Grace"}, {"contactId": "c-2", "name": "Charles", "emails": ["not-an-email"]}]}"#;

    #[test]
    fn a_json_request_is_answered_in_json() {
        let answer = answer("application/json", TWO);
        assert_eq!(
            answer,
            serde_json::json!({"contacts": [
                {
                    "signingGroupUsers": [{
                        "userName": "Grace Hopper",
                        "email": "grace@example.com",
                        "errorDetails": {"errorCode": "SUCCESS", "message": ""}
                    }],
                    "contactId": "5e0c0de5-0000-4000-8000-000000000001",
                    "name": "Grace <Hopper> & Co",
                    "emails": ["grace@example.com"],
                    "organization": "Remington Rand",
                    "shared": "false",
                    "signingGroup": "20546",
                    "contactPhoneNumbers": [{"phoneNumber": "+12125550199", "phoneType": "work"}],
                    "cloudProvider": "rooms",
                    "errorDetails": {"errorCode": "SUCCESS", "message": ""}
                },
                {
                    "contactId": "c-2",
                    "name": "Charles",
                    "errorDetails": {
                        "errorCode": "INVALID_EMAIL",
                        "message": "emails[0].value 'not-an-email' is not a valid email address"
                    }
                }
            ]})
        );
    }

    #[test]
    fn xml_and_csv_requests_are_answered_in_the_seeds_xml() {
        let xml_request = r#"<contactModRequest xmlns="http://www.docusign.com/restapi"><contacts>
            <contact><name>Grace</name></contact>
            <contact><contactId>c-2</contactId><name>Charles</name></contact>
        </contacts></contactModRequest>"#;
        let csv_request = "contactId,name\n,Grace\nc-2,Charles\n";
        let from_xml = answer("application/xml", xml_request);
        let from_csv = answer("text/csv", csv_request);
        assert_eq!(from_xml, from_csv);
        let serde_json::Value::String(xml) = from_xml else {
            panic!("an XML answer is a string: {from_xml}")
        };
        assert_eq!(
            xml,
            answer("application/xml", xml_request).as_str().unwrap(),
            "deterministic"
        );

        let document = roxmltree::Document::parse(&xml).unwrap();
        let root = document.root_element();
        assert_eq!(root.tag_name().name(), "contactUpdateResponse");
        assert_eq!(root.tag_name().namespace(), Some(DOCUSIGN_NS));
        assert_eq!(root.lookup_namespace_uri(Some("i")), Some(XSI_NS));
        let contacts: Vec<_> = elements(elements(root).next().unwrap()).collect();
        assert_eq!(contacts.len(), 2);
        let names = |node: roxmltree::Node<'_, '_>| -> Vec<String> {
            elements(node)
                .map(|e| e.tag_name().name().to_owned())
                .collect()
        };
        assert_eq!(
            names(contacts[0]),
            [
                "cloudProvider",
                "contactId",
                "contactPhoneNumbers",
                "emails",
                "errorDetails",
                "name",
                "organization",
                "shared",
                "signingGroup",
                "signingGroupUsers"
            ]
        );
        assert_eq!(text(contacts[0], "name"), "Grace <Hopper> & Co");
        assert_eq!(text(contacts[0], "shared"), "false");
        let phones = child(contacts[0], "contactPhoneNumbers");
        let phone = elements(phones).next().unwrap();
        assert_eq!(phone.tag_name().namespace(), Some(PHONE_NS));
        assert!(xml.contains("<d4p1:contactPhoneNumber>"), "{xml}");
        assert_eq!(text(phone, "phoneNumber"), "+12125550199");
        assert_eq!(text(phone, "phoneType"), "work");
        assert_eq!(
            text(child(contacts[0], "emails"), "string"),
            "grace@example.com"
        );
        let details = child(contacts[0], "errorDetails");
        assert_eq!(text(details, "errorCode"), "SUCCESS");
        assert_eq!(text(details, "message"), "");
        let user = child(child(contacts[0], "signingGroupUsers"), "userInfo");
        assert_eq!(names(user), ["email", "errorDetails", "userName"],);

        assert_eq!(names(contacts[1]), ["contactId", "errorDetails", "name"]);
        assert_eq!(text(contacts[1], "contactId"), "c-2");
        let details = child(contacts[1], "errorDetails");
        assert_eq!(text(details, "errorCode"), "INVALID_EMAIL");
        assert!(text(details, "message").contains("not-an-email"));
    }

    fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> roxmltree::Node<'a, 'i> {
        elements(node)
            .find(|e| e.tag_name().name() == name)
            .unwrap_or_else(|| panic!("no <{name}>"))
    }

    fn text(node: roxmltree::Node<'_, '_>, name: &str) -> String {
        child(node, name).text().unwrap_or_default().to_owned()
    }

    #[test]
    fn an_echoed_value_never_breaks_the_xml_answer() {
        assert_eq!(xml_chars("a\u{1}b\tc"), "ab\tc");
        let answer = response_xml(&[ResponseContact {
            name: Some("<x>\u{0}&".into()),
            ..ResponseContact::default()
        }]);
        let document = roxmltree::Document::parse(&answer).unwrap();
        let name = document
            .descendants()
            .find(|n| n.tag_name().name() == "name")
            .unwrap();
        assert_eq!(name.text(), Some("<x>&"));
    }
}
