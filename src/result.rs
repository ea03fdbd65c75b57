//! The result published once per batch (and again, unchanged, for a redelivery).

use crate::contact::{ContactError, StoredContact};
use crate::ids::{BatchId, ContactId, OrgId};
use crate::rejection::Rejection;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// What happened to one contact of an applied batch.
#[derive(Debug, Clone)]
pub enum ContactOutcome {
    /// Inserted now; stored as shown.
    Created(StoredContact),
    /// An existing contact written now; stored as shown.
    Updated(StoredContact),
    /// Not stored; listed in `failedContacts`.
    Failed(ContactError),
}

/// `status`: how much of a batch was stored. Also the `status` header and the stored batch's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    /// Every contact stored.
    Succeeded,
    /// Some stored, some in `failedContacts`.
    Partial,
    /// No contact stored.
    Failed,
    /// The batch could not be read at all; nothing was written.
    Rejected,
}

impl BatchStatus {
    /// Every status, in the order a batch can reach them.
    pub const ALL: [BatchStatus; 4] =
        [Self::Succeeded, Self::Partial, Self::Failed, Self::Rejected];

    /// The status named `text` exactly, as [`BatchStatus::as_str`] writes it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The name in results, the `status` header and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Partial => "partial",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
        }
    }
}

/// How much of the stored contacts a result carries. Chosen per batch (`x-result-detail`) or
/// by the worker's default; fixed when the result is first published, so a replay of the
/// stored bytes answers alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ResultDetail {
    /// `contacts`: every stored contact as stored, in request order.
    #[default]
    Full,
    /// `contactIds` instead of `contacts`: each request contact's stored id, `null` where it
    /// failed; a fraction of the size when contacts are large.
    Summary,
}

impl ResultDetail {
    /// `full` or `summary`, in any ASCII case.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Full, Self::Summary]
            .into_iter()
            .find(|d| text.trim().eq_ignore_ascii_case(d.as_str()))
    }

    /// The name in the header and in `CONTACT_IMPORT_RESULT_DETAIL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Summary => "summary",
        }
    }
}

/// The result message. `contacts` keeps request order, with `null` where a contact failed,
/// as the seed's response does; `failedContacts[].id` is that contact's index.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    /// `batchId`: the message id, or the `sha256:` one derived from the body.
    pub batch_id: String,
    /// `orgId`; `None` only for a batch rejected before its org could be read.
    pub org_id: Option<String>,
    /// `status`.
    pub status: BatchStatus,
    /// `contacts`: in request order, each as stored, `null` where that contact failed.
    pub contacts: Vec<Option<StoredContact>>,
    /// `failedContacts`, in request order.
    pub failed_contacts: Vec<FailedContact>,
    /// `counts`.
    pub counts: Counts,
    /// `error`: set on a `rejected` result only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<BatchError>,
    /// DocuSign batches: the seed's `contactUpdateResponse`, one entry per contact with its
    /// `errorDetails`; a JSON object for a JSON request, an XML document (a string) for an
    /// XML or CSV one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_update_response: Option<serde_json::Value>,
    /// DocuSign batches refused as a whole: the seed's 400 answer, `errorDetails`
    /// (`{errorCode, message}`, or its XML document as a string for an XML or CSV request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_details: Option<serde_json::Value>,
    /// Set on the answer to a dry run (`x-dry-run: true`): validated and checked against the
    /// database, nothing written.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// `processedAt`: RFC 3339 with milliseconds, UTC.
    pub processed_at: String,
    /// Whether [`BatchResult::to_json`] lists the contacts or only their ids.
    #[serde(skip)]
    pub detail: ResultDetail,
}

/// A summary result: the full one with `contactIds` in place of `contacts`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    batch_id: &'a str,
    org_id: Option<&'a str>,
    status: BatchStatus,
    contact_ids: Vec<Option<ContactId>>,
    failed_contacts: &'a [FailedContact],
    counts: Counts,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a BatchError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_update_response: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_details: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dry_run: bool,
    processed_at: &'a str,
}

/// One entry of `failedContacts`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedContact {
    /// `id`: the contact's index in the request, as a string.
    pub id: String,
    /// `errorCode`, e.g. `invalid.email`.
    pub error_code: &'static str,
    /// `errorMessage`, naming the field as the request's dialect calls it.
    pub error_message: String,
    /// `statusCode`: the HTTP-like status of the failure (400, 401, 404, 409, 429).
    pub status_code: u16,
    /// `retryable`: whether sending the same contact again could succeed unchanged.
    pub retryable: bool,
}

/// `counts`: `received` = `created` + `updated` + `failed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Contacts in the request.
    pub received: usize,
    /// Contacts inserted.
    pub created: usize,
    /// Existing contacts written.
    pub updated: usize,
    /// Contacts not stored.
    pub failed: usize,
}

/// Why a `rejected` batch was refused.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchError {
    /// `code`: the rejection code, e.g. `malformed.body`.
    pub code: &'static str,
    /// `message`: what was wrong, for a person.
    pub message: String,
    /// `statusCode`: 400, 409, 413, 415 or 500.
    pub status_code: u16,
}

impl BatchResult {
    /// The result of a batch whose contacts were validated and written.
    pub fn applied(
        batch_id: &BatchId,
        org_id: &OrgId,
        outcomes: Vec<ContactOutcome>,
        at: DateTime<Utc>,
    ) -> Self {
        let mut counts = Counts {
            received: outcomes.len(),
            ..Counts::default()
        };
        let mut failed_contacts = Vec::new();
        let contacts = outcomes
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| match outcome {
                ContactOutcome::Created(contact) => {
                    counts.created += 1;
                    Some(contact)
                }
                ContactOutcome::Updated(contact) => {
                    counts.updated += 1;
                    Some(contact)
                }
                ContactOutcome::Failed(error) => {
                    counts.failed += 1;
                    failed_contacts.push(FailedContact {
                        id: index.to_string(),
                        error_code: error.code.as_str(),
                        error_message: error.message,
                        status_code: error.code.status_code(),
                        retryable: error.code.retryable(),
                    });
                    None
                }
            })
            .collect();
        let status = match (counts.failed, counts.received) {
            (0, _) => BatchStatus::Succeeded,
            (failed, received) if failed == received => BatchStatus::Failed,
            _ => BatchStatus::Partial,
        };
        Self {
            batch_id: batch_id.to_string(),
            org_id: Some(org_id.to_string()),
            status,
            contacts,
            failed_contacts,
            counts,
            error: None,
            contact_update_response: None,
            error_details: None,
            dry_run: false,
            processed_at: timestamp(at),
            detail: ResultDetail::Full,
        }
    }

    /// The result of a batch refused as a whole.
    pub fn rejected(batch_id: &BatchId, rejection: &Rejection, at: DateTime<Utc>) -> Self {
        Self {
            batch_id: batch_id.to_string(),
            org_id: rejection.org_id.as_ref().map(ToString::to_string),
            status: BatchStatus::Rejected,
            contacts: Vec::new(),
            failed_contacts: Vec::new(),
            counts: Counts::default(),
            error: Some(BatchError {
                code: rejection.code.as_str(),
                message: rejection.message.clone(),
                status_code: rejection.code.status_code(),
            }),
            contact_update_response: None,
            error_details: None,
            dry_run: false,
            processed_at: timestamp(at),
            detail: ResultDetail::Full,
        }
    }

    /// The JSON body, as published and stored, with the contacts or only their ids as
    /// [`BatchResult::detail`] says.
    pub fn to_json(&self) -> Vec<u8> {
        let written = match self.detail {
            ResultDetail::Full => serde_json::to_vec(self),
            ResultDetail::Summary => serde_json::to_vec(&Summary {
                batch_id: &self.batch_id,
                org_id: self.org_id.as_deref(),
                status: self.status,
                contact_ids: self
                    .contacts
                    .iter()
                    .map(|c| c.as_ref().map(|c| c.contact_id))
                    .collect(),
                failed_contacts: &self.failed_contacts,
                counts: self.counts,
                error: self.error.as_ref(),
                contact_update_response: self.contact_update_response.as_ref(),
                error_details: self.error_details.as_ref(),
                dry_run: self.dry_run,
                processed_at: &self.processed_at,
            }),
        };
        written.expect("a result always serialises")
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
