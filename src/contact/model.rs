use crate::ids::{ContactId, OrgId};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

/// The `schemas` URN of the Webex contact core schema, echoed on every stored contact.
pub const CONTACT_SCHEMA: &str = "urn:cisco:codev:identity:contact:core:1.0";

/// A contact as a dialect read it, in canonical field names, not yet validated.
/// `None` means the field was absent (on an update: keep the stored value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactDraft {
    pub contact_id: Option<String>,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company_name: Option<String>,
    pub title: Option<String>,
    pub address: Option<Address>,
    pub avatar_url: Option<String>,
    pub primary_contact_method: Option<String>,
    pub source: Option<String>,
    pub emails: Option<Vec<MethodDraft>>,
    pub phone_numbers: Option<Vec<MethodDraft>>,
    pub sip_addresses: Option<Vec<MethodDraft>>,
    pub ims: Option<Vec<MethodDraft>>,
    pub groups: Option<Vec<String>>,
}

/// One entry of a multi-valued field (email, phone, SIP address, IM) before validation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MethodDraft {
    pub value: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub primary: Option<bool>,
}

/// A contact that passed validation: values trimmed and normalised, enums canonical.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidContact {
    /// `Some` when the request named an existing contact to update.
    pub update_of: Option<ContactId>,
    pub fields: ContactFields,
}

/// The stored fields of a contact, in the seed's JSON names. Absent fields are omitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(rename = "avatarURL", skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_contact_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<ContactMethod>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_numbers: Option<Vec<ContactMethod>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_addresses: Option<Vec<ContactMethod>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ims: Option<Vec<ContactMethod>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

/// A validated email, phone number, SIP address or IM account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactMethod {
    pub value: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub primary: bool,
}

/// A postal address; the Webex shape sends it as an object or as a JSON-encoded string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip_code: Option<String>,
}

/// A contact as stored, in the shape of the seed's response (`schemas`, `meta`, ids, fields).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredContact {
    pub schemas: &'static str,
    pub meta: Meta,
    pub contact_id: ContactId,
    pub org_id: String,
    #[serde(flatten)]
    pub fields: ContactFields,
}

impl StoredContact {
    pub fn new(
        org: &OrgId,
        id: ContactId,
        created: DateTime<Utc>,
        last_modified: DateTime<Utc>,
        fields: ContactFields,
    ) -> Self {
        Self {
            schemas: CONTACT_SCHEMA,
            meta: Meta {
                created,
                last_modified,
            },
            contact_id: id,
            org_id: org.as_str().to_owned(),
            fields,
        }
    }
}

/// `meta.created` / `meta.lastModified`, as RFC 3339 with milliseconds like the seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(serialize_with = "millis")]
    pub created: DateTime<Utc>,
    #[serde(serialize_with = "millis")]
    pub last_modified: DateTime<Utc>,
}

fn millis<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}
