//! The result published once per batch (and again, unchanged, for a redelivery).

use crate::contact::{ContactError, StoredContact};
use crate::ids::{BatchId, OrgId};
use crate::rejection::Rejection;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// What happened to one contact of an applied batch.
#[derive(Debug, Clone)]
pub enum ContactOutcome {
    Created(StoredContact),
    Updated(StoredContact),
    Failed(ContactError),
}

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

/// The result message. `contacts` keeps request order, with `null` where a contact failed,
/// as the seed's response does; `failedContacts[].id` is that contact's index.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    pub batch_id: String,
    pub org_id: Option<String>,
    pub status: BatchStatus,
    pub contacts: Vec<Option<StoredContact>>,
    pub failed_contacts: Vec<FailedContact>,
    pub counts: Counts,
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
    pub processed_at: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedContact {
    pub id: String,
    pub error_code: &'static str,
    pub error_message: String,
    pub status_code: u16,
    pub retryable: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub received: usize,
    pub created: usize,
    pub updated: usize,
    pub failed: usize,
}

/// Why a `rejected` batch was refused.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchError {
    pub code: &'static str,
    pub message: String,
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
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a result always serialises")
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
