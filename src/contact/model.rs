use super::list::BoundedList;
use crate::ids::{ContactId, OrgId};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// The `schemas` URN of the Webex contact core schema, echoed on every stored contact.
pub const CONTACT_SCHEMA: &str = "urn:cisco:codev:identity:contact:core:1.0";

/// A contact as a dialect read it, in canonical field names, not yet validated.
/// `None` means the field was absent (on an update: keep the stored value). Lists keep at
/// most [`super::list::MAX_LIST_ENTRIES`] entries and count the rest ([`BoundedList`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactDraft {
    /// `contactId`: the id of the org's contact to update (must be a UUID); absent for a new contact.
    pub contact_id: Option<String>,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `firstName`.
    pub first_name: Option<String>,
    /// `lastName`.
    pub last_name: Option<String>,
    /// `companyName` (DocuSign's `organization`).
    pub company_name: Option<String>,
    /// `title`.
    pub title: Option<String>,
    /// `address`, already parsed when the Webex shape sent it as a JSON-encoded string.
    pub address: Option<Address>,
    /// `avatarURL`; validation requires an http(s) URL.
    pub avatar_url: Option<String>,
    /// `primaryContactMethod`, any case until validation makes it one of `EMAIL PHONE SIPADDRESS IMS`.
    pub primary_contact_method: Option<String>,
    /// `source`.
    pub source: Option<String>,
    /// `emails`.
    pub emails: Option<BoundedList<MethodDraft>>,
    /// `phoneNumbers` (Save's `mobileNumber`, DocuSign's `contactPhoneNumbers`).
    pub phone_numbers: Option<BoundedList<MethodDraft>>,
    /// `sipAddresses`.
    pub sip_addresses: Option<BoundedList<MethodDraft>>,
    /// `ims`.
    pub ims: Option<BoundedList<MethodDraft>>,
    /// `groups`, by name (Save's `groupName`).
    pub groups: Option<BoundedList<String>>,
    /// `middleName`.
    pub middle_name: Option<String>,
    /// `YYYY-MM-DD`, checked by validation.
    pub birth_date: Option<String>,
    /// `weddingDate`, `YYYY-MM-DD`, checked by validation.
    pub wedding_date: Option<String>,
    /// `anniversaryDate`, `YYYY-MM-DD`, checked by validation.
    pub anniversary_date: Option<String>,
    /// Save User Contacts' `column1`..`column5`.
    pub custom_fields: Option<BTreeMap<String, String>>,
    /// DocuSign's `shared`.
    pub shared: Option<bool>,
    /// DocuSign's `cloudProvider`, any case until validation makes it one of `rooms docusignCore`.
    pub cloud_provider: Option<String>,
    /// DocuSign's `cloudProviderContainerId`.
    pub cloud_provider_container_id: Option<String>,
    /// DocuSign's `signingGroup`.
    pub signing_group: Option<String>,
    /// DocuSign's `signingGroupName`.
    pub signing_group_name: Option<String>,
    /// DocuSign's `signingGroupUsers`, without their `activationAccessCode`.
    pub signing_group_users: Option<BoundedList<SigningGroupUser>>,
    /// An id the sending system gives the contact (DocuSign's contactId); see
    /// [`Target::External`].
    pub external_id: Option<String>,
    /// Update User Contact: the contact is the org's one with this email address or IM id,
    /// and the draft's emails/phone numbers become its primary ones (see [`Target::Lookup`]).
    pub lookup: Option<String>,
    /// Save User Contacts: the account that saves the contact. Checked, then dropped before
    /// validation; never stored.
    pub credentials: Option<Credentials>,
}

/// An account's user name and password as a request carried them. `Debug` never shows the
/// password, so a draft can be logged.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Credentials {
    /// `userName`.
    pub user_name: String,
    /// `password`; never stored, logged or echoed.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user_name", &self.user_name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A member of a DocuSign signing group, as the contact carries it. `activationAccessCode`
/// is a credential and is not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningGroupUser {
    /// `userName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// `userId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `userType`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// `userStatus`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_status: Option<String>,
    /// `uri`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// `loginStatus`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_status: Option<String>,
    /// `sendActivationEmail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_activation_email: Option<String>,
}

/// One entry of a multi-valued field (email, phone, SIP address, IM) before validation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MethodDraft {
    /// `value`: the address, number or account id, as sent.
    pub value: Option<String>,
    /// `type` (`work`, `home`, …), any case until validation.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `primary`; absent reads as `false`.
    pub primary: Option<bool>,
}

/// A contact that passed validation: values trimmed and normalised, enums canonical. Only
/// [`super::validate::validate`] makes one, so code downstream never checks again.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidContact {
    target: Target,
    fields: ContactFields,
}

impl ValidContact {
    /// Made by validation only.
    pub(super) fn new(target: Target, fields: ContactFields) -> Self {
        Self { target, fields }
    }

    /// Which stored contact it writes.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Its validated fields.
    pub fn fields(&self) -> &ContactFields {
        &self.fields
    }
}

/// Which stored contact a valid contact writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A new contact.
    New,
    /// The org's contact with this id; fields absent from the request keep their value.
    Update(ContactId),
    /// The org's one contact with this email address or IM id (Update User Contact). Its
    /// emails and phone numbers are merged: the request's become the primary ones, the stored
    /// ones stay, no longer primary.
    Lookup(String),
    /// An id the sending system gives the contact (DocuSign's contactId): the org's contact
    /// with that id if it is one of ours (a UUID this worker gave out), else the contact
    /// imported before under that id, else a new one, which later imports under the same id
    /// update instead of duplicating.
    External(String),
}

impl Target {
    /// Whether the contact must already exist. [`Target::External`] and
    /// [`Target::Lookup`] are settled in the transaction before anything is written.
    pub fn is_update(&self) -> bool {
        matches!(self, Self::Update(_) | Self::Lookup(_))
    }
}

/// The stored fields of a contact, in the seed's JSON names. Absent fields are omitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactFields {
    /// `displayName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `firstName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// `lastName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// `companyName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// `title`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `address`, always an object once stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// `avatarURL`, an http(s) URL.
    #[serde(rename = "avatarURL", skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// `primaryContactMethod`: `EMAIL`, `PHONE`, `SIPADDRESS` or `IMS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_contact_method: Option<String>,
    /// `source`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `emails`, at most one primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<ContactMethod>>,
    /// `phoneNumbers`, normalised to digits with an optional leading `+`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_numbers: Option<Vec<ContactMethod>>,
    /// `sipAddresses`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_addresses: Option<Vec<ContactMethod>>,
    /// `ims`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ims: Option<Vec<ContactMethod>>,
    /// `groups`, by name, without duplicates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// `middleName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// `birthDate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<NaiveDate>,
    /// `weddingDate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wedding_date: Option<NaiveDate>,
    /// `anniversaryDate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anniversary_date: Option<NaiveDate>,
    /// `customFields`: Save User Contacts' `column1`..`column5`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<BTreeMap<String, String>>,
    /// DocuSign's `shared`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
    /// DocuSign's `cloudProvider`: `rooms` or `docusignCore`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_provider: Option<String>,
    /// DocuSign's `cloudProviderContainerId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_provider_container_id: Option<String>,
    /// DocuSign's `signingGroup`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_group: Option<String>,
    /// DocuSign's `signingGroupName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_group_name: Option<String>,
    /// DocuSign's `signingGroupUsers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_group_users: Option<Vec<SigningGroupUser>>,
}

/// A validated email, phone number, SIP address or IM account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactMethod {
    /// `value`, trimmed; a phone number normalised.
    pub value: String,
    /// `type`, lowercase; one of the allowed types for emails and phone numbers.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `primary`.
    pub primary: bool,
}

/// A postal address; the Webex shape sends it as an object or as a JSON-encoded string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Address {
    /// `street`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    /// `city`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// `state`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// `country`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// `zipCode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip_code: Option<String>,
}

/// A contact as stored, in the shape of the seed's response (`schemas`, `meta`, ids, fields).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredContact {
    /// `schemas`: always [`CONTACT_SCHEMA`].
    pub schemas: &'static str,
    /// `meta`.
    pub meta: Meta,
    /// `contactId`.
    pub contact_id: ContactId,
    /// `orgId`.
    pub org_id: String,
    /// The stored fields, flattened beside the ids.
    #[serde(flatten)]
    pub fields: ContactFields,
}

impl StoredContact {
    /// A stored contact of `org`, with the seed's `schemas` and `meta`.
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
    /// `meta.created`: when the contact was first stored.
    #[serde(serialize_with = "millis")]
    pub created: DateTime<Utc>,
    /// `meta.lastModified`: when it was last written.
    #[serde(serialize_with = "millis")]
    pub last_modified: DateTime<Utc>,
}

fn millis<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}
