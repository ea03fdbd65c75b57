//! The set-based contact upsert: one statement per batch, whatever its size.

use crate::contact::{
    Address, ContactError, ContactFields, ContactMethod, ErrorCode, Planned, StoredContact,
    ValidatedBatch,
};
use crate::ids::ContactId;
use crate::result::ContactOutcome;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use std::collections::HashMap;
use tokio_postgres::Row;
use tokio_postgres::types::Json;
use uuid::Uuid;

/// How a written row meets a stored one, and what comes back: fields absent from an update
/// (NULL) keep their stored value. Shared by [`UPSERT`] and the benchmark's naive baseline,
/// so both apply the same rule.
macro_rules! merge_and_return {
    () => {
        "ON CONFLICT (org_id, contact_id) DO UPDATE SET
    display_name           = COALESCE(EXCLUDED.display_name, c.display_name),
    first_name             = COALESCE(EXCLUDED.first_name, c.first_name),
    last_name              = COALESCE(EXCLUDED.last_name, c.last_name),
    company_name           = COALESCE(EXCLUDED.company_name, c.company_name),
    title                  = COALESCE(EXCLUDED.title, c.title),
    address                = COALESCE(EXCLUDED.address, c.address),
    avatar_url             = COALESCE(EXCLUDED.avatar_url, c.avatar_url),
    primary_contact_method = COALESCE(EXCLUDED.primary_contact_method, c.primary_contact_method),
    source                 = COALESCE(EXCLUDED.source, c.source),
    emails                 = COALESCE(EXCLUDED.emails, c.emails),
    phone_numbers          = COALESCE(EXCLUDED.phone_numbers, c.phone_numbers),
    sip_addresses          = COALESCE(EXCLUDED.sip_addresses, c.sip_addresses),
    ims                    = COALESCE(EXCLUDED.ims, c.ims),
    groups                 = COALESCE(EXCLUDED.groups, c.groups),
    updated_at             = now()
RETURNING c.contact_id, (c.xmax = 0) AS inserted, c.created_at, c.updated_at,
    c.display_name, c.first_name, c.last_name, c.company_name, c.title, c.address, c.avatar_url,
    c.primary_contact_method, c.source, c.emails, c.phone_numbers, c.sip_addresses, c.ims, c.groups
"
    };
}

/// [`merge_and_return!`] as a constant, for statements built at run time.
pub const MERGE_AND_RETURN: &str = merge_and_return!();

/// New contacts are inserted; updates (`is_update`) only touch a row that the batch's org
/// already has, so an update of an unknown id writes nothing and is reported as 404. Rows are
/// written in contact_id order so that concurrent batches lock shared rows in the same
/// order. Fields absent from an update (NULL here) keep their stored value.
pub const UPSERT: &str = concat!(
    "
WITH input AS (
    SELECT * FROM unnest(
        $2::uuid[], $3::bool[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::jsonb[], $10::text[], $11::text[], $12::text[], $13::jsonb[], $14::jsonb[],
        $15::jsonb[], $16::jsonb[], $17::jsonb[]
    ) AS t(contact_id, is_update, display_name, first_name, last_name, company_name, title,
           address, avatar_url, primary_contact_method, source, emails, phone_numbers,
           sip_addresses, ims, groups)
)
INSERT INTO contacts AS c (
    org_id, contact_id, display_name, first_name, last_name, company_name, title, address,
    avatar_url, primary_contact_method, source, emails, phone_numbers, sip_addresses, ims, groups)
SELECT $1, i.contact_id, i.display_name, i.first_name, i.last_name, i.company_name, i.title,
       i.address, i.avatar_url, i.primary_contact_method, i.source, i.emails, i.phone_numbers,
       i.sip_addresses, i.ims, i.groups
FROM input i
WHERE NOT i.is_update
   OR EXISTS (SELECT 1 FROM contacts e WHERE e.org_id = $1 AND e.contact_id = i.contact_id)
ORDER BY i.contact_id
",
    merge_and_return!()
);

/// One column of the statement's input, a value per written contact.
type Column<T> = Vec<Option<T>>;

/// Writes the batch's valid contacts and returns every contact's outcome in request order.
pub async fn write_contacts(
    tx: &Transaction<'_>,
    batch: &ValidatedBatch,
) -> Result<Vec<ContactOutcome>, tokio_postgres::Error> {
    let writes: Vec<(ContactId, bool, &ContactFields)> = batch
        .entries
        .iter()
        .filter_map(|entry| match entry {
            Planned::Write { id, contact } => {
                Some((*id, contact.update_of.is_some(), &contact.fields))
            }
            Planned::Failed(_) => None,
        })
        .collect();

    let mut stored: HashMap<Uuid, (bool, StoredContact)> = HashMap::with_capacity(writes.len());
    if !writes.is_empty() {
        let ids: Vec<Uuid> = writes.iter().map(|(id, _, _)| id.0).collect();
        let is_update: Vec<bool> = writes.iter().map(|(_, update, _)| *update).collect();
        let text = |get: fn(&ContactFields) -> &Option<String>| -> Column<&str> {
            writes.iter().map(|(_, _, f)| get(f).as_deref()).collect()
        };
        let list = |get: fn(&ContactFields) -> &Option<Vec<ContactMethod>>| -> Column<Json<&Vec<ContactMethod>>> {
            writes.iter().map(|(_, _, f)| get(f).as_ref().map(Json)).collect()
        };
        let addresses: Column<Json<&Address>> = writes
            .iter()
            .map(|(_, _, f)| f.address.as_ref().map(Json))
            .collect();
        let groups: Column<Json<&Vec<String>>> = writes
            .iter()
            .map(|(_, _, f)| f.groups.as_ref().map(Json))
            .collect();

        let statement = tx.prepare_cached(UPSERT).await?;
        let rows = tx
            .query(
                &statement,
                &[
                    &batch.org_id.as_str(),
                    &ids,
                    &is_update,
                    &text(|f| &f.display_name),
                    &text(|f| &f.first_name),
                    &text(|f| &f.last_name),
                    &text(|f| &f.company_name),
                    &text(|f| &f.title),
                    &addresses,
                    &text(|f| &f.avatar_url),
                    &text(|f| &f.primary_contact_method),
                    &text(|f| &f.source),
                    &list(|f| &f.emails),
                    &list(|f| &f.phone_numbers),
                    &list(|f| &f.sip_addresses),
                    &list(|f| &f.ims),
                    &groups,
                ],
            )
            .await?;
        for row in rows {
            let id: Uuid = row.try_get("contact_id")?;
            stored.insert(id, (row.try_get("inserted")?, stored_contact(batch, &row)?));
        }
    }

    Ok(batch
        .entries
        .iter()
        .map(|entry| match entry {
            Planned::Failed(error) => ContactOutcome::Failed(error.clone()),
            Planned::Write { id, .. } => match stored.remove(&id.0) {
                Some((true, contact)) => ContactOutcome::Created(contact),
                Some((false, contact)) => ContactOutcome::Updated(contact),
                None => ContactOutcome::Failed(ContactError::new(
                    ErrorCode::ContactNotFound,
                    format!("contactId {id} does not exist in org {}", batch.org_id),
                )),
            },
        })
        .collect())
}

/// Reads a returned row (the benchmark's naive baseline reads its rows with it too).
/// `try_get` rather than `get`: a row another writer left in a shape this worker cannot read
/// fails the batch (and is reported) instead of panicking.
pub fn stored_contact(
    batch: &ValidatedBatch,
    row: &Row,
) -> Result<StoredContact, tokio_postgres::Error> {
    fn json<T: serde::de::DeserializeOwned>(
        row: &Row,
        column: &str,
    ) -> Result<Option<T>, tokio_postgres::Error> {
        Ok(row
            .try_get::<_, Option<Json<T>>>(column)?
            .map(|Json(value)| value))
    }
    let created: DateTime<Utc> = row.try_get("created_at")?;
    let updated: DateTime<Utc> = row.try_get("updated_at")?;
    Ok(StoredContact::new(
        &batch.org_id,
        ContactId(row.try_get("contact_id")?),
        created,
        updated,
        ContactFields {
            display_name: row.try_get("display_name")?,
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
            company_name: row.try_get("company_name")?,
            title: row.try_get("title")?,
            address: json(row, "address")?,
            avatar_url: row.try_get("avatar_url")?,
            primary_contact_method: row.try_get("primary_contact_method")?,
            source: row.try_get("source")?,
            emails: json(row, "emails")?,
            phone_numbers: json(row, "phone_numbers")?,
            sip_addresses: json(row, "sip_addresses")?,
            ims: json(row, "ims")?,
            groups: json(row, "groups")?,
        },
    ))
}
