use sha2::{Digest, Sha256};
use std::fmt;
use uuid::Uuid;

/// Longest org id accepted; org ids become routing keys, which AMQP caps at 255 bytes.
pub const MAX_ORG_ID_LEN: usize = 128;

/// Identifies one batch for idempotency: the AMQP `message_id`, or `sha256:<hex of the body>`
/// when the publisher sent none, so that a redelivery keeps its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchId(String);

impl BatchId {
    /// The batch id for a message: its `message_id` when present and non-empty, else
    /// `sha256:` and the body's hash (from [`body_sha256`]).
    pub fn for_message(message_id: Option<&str>, body_sha256: &str) -> Self {
        match message_id.map(str::trim).filter(|id| !id.is_empty()) {
            Some(id) => Self(id.to_owned()),
            None => Self(format!("sha256:{body_sha256}")),
        }
    }

    /// The id of a message without `message_id` whose body cannot be safely hashed (see
    /// `dialect::id_digest`): unique, so it only labels the rejection of that message.
    pub fn unreadable() -> Self {
        Self(format!("unreadable:{}", Uuid::new_v4()))
    }

    /// Whether the id can be stored: PostgreSQL text cannot hold NUL, and control
    /// characters in an id are a publisher bug.
    pub fn is_storable(&self) -> bool {
        !self.0.chars().any(char::is_control)
    }

    /// The id as sent or derived; the result's `batchId`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hex SHA-256 of a message body; stored with each batch to detect a reused batch id.
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The organisation a batch belongs to. Every row the batch touches carries it, so one org's
/// batch can never reach another org's contacts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgId(String);

impl OrgId {
    /// Accepts a non-empty id of printable, non-space characters, at most [`MAX_ORG_ID_LEN`] long.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let id = raw.trim();
        if id.is_empty() {
            return Err("orgId is empty".into());
        }
        if id.len() > MAX_ORG_ID_LEN {
            return Err(format!("orgId is longer than {MAX_ORG_ID_LEN} bytes"));
        }
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("orgId contains whitespace or control characters".into());
        }
        Ok(Self(id.to_owned()))
    }

    /// The org id, trimmed; the result's `orgId` and the results routing key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A contact's id within its org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ContactId(Uuid);

impl ContactId {
    /// The contact stored under this UUID (a row read back, a contactId a request names).
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID the database and the result carry.
    pub fn as_uuid(self) -> Uuid {
        self.0
    }
}

/// Namespace of the UUIDv5 ids given to new contacts.
const NEW_CONTACT_NAMESPACE: Uuid = Uuid::from_u128(0x6d1c_4a8e_9f0b_4c55_a1e2_3b7d_08c4_f9a6);

impl ContactId {
    /// The id of the new contact at `index` of a batch. Derived, not random, so that a batch
    /// applied again after a lost ack writes the same rows instead of twins.
    pub fn for_new(org: &OrgId, batch: &BatchId, index: usize) -> Self {
        let name = format!("{}\n{}\n{}", org.as_str(), batch.as_str(), index);
        Self(Uuid::new_v5(&NEW_CONTACT_NAMESPACE, name.as_bytes()))
    }
}

/// Namespace of the UUIDv5 ids given to contacts imported under an id of the sender's.
const EXTERNAL_CONTACT_NAMESPACE: Uuid = Uuid::from_u128(0x2f0e_8b1d_5c3a_4e7f_9d62_a4b8_17c5_e30d);

impl ContactId {
    /// The id of the org's contact that a sending system calls `external` (DocuSign's
    /// contactId), so that importing it again updates the same contact.
    pub fn for_external(org: &OrgId, external: &str) -> Self {
        let name = format!("{}\n{}", org.as_str(), external);
        Self(Uuid::new_v5(&EXTERNAL_CONTACT_NAMESPACE, name.as_bytes()))
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_id_falls_back_to_the_body_hash() {
        let id = BatchId::for_message(None, &body_sha256(b"{}"));
        assert_eq!(
            id.as_str(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(BatchId::for_message(Some("  "), &body_sha256(b"{}")), id);
        assert_eq!(BatchId::for_message(Some("b-1"), "").as_str(), "b-1");
    }

    #[test]
    fn new_contact_ids_are_stable_and_distinct() {
        let org = OrgId::parse("org-1").unwrap();
        let batch = BatchId::for_message(Some("b"), "");
        assert_eq!(
            ContactId::for_new(&org, &batch, 0),
            ContactId::for_new(&org, &batch, 0)
        );
        assert_ne!(
            ContactId::for_new(&org, &batch, 0),
            ContactId::for_new(&org, &batch, 1)
        );
        let other = OrgId::parse("org-2").unwrap();
        assert_ne!(
            ContactId::for_new(&org, &batch, 0),
            ContactId::for_new(&other, &batch, 0)
        );
    }

    #[test]
    fn org_ids_reject_blank_and_spaced_values() {
        assert!(OrgId::parse("").is_err());
        assert!(OrgId::parse("a b").is_err());
        assert!(OrgId::parse(&"x".repeat(129)).is_err());
        assert_eq!(OrgId::parse(" abc ").unwrap().as_str(), "abc");
    }
}
