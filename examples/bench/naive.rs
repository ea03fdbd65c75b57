//! The naive baseline: what the worker would do with one `INSERT … ON CONFLICT` per contact.
//! Everything else is the project's: the transaction per batch, the idempotency claim, the
//! same columns and `COALESCE` update rule, the stored result. Only the round trips differ.

use crate::dataset::Expected;
use chrono::Utc;
use contact_import::contact::{ContactError, ErrorCode, Planned, ValidatedBatch};
use contact_import::result::{BatchResult, ContactOutcome};
use contact_import::store::batches::{self, Claim};
use contact_import::store::upsert;
use deadpool_postgres::Pool;
use tokio_postgres::types::Json;

/// One contact; an update (`$3`) only touches a row the org already has.
const UPSERT_ONE: &str = "
INSERT INTO contacts AS c (
    org_id, contact_id, display_name, first_name, last_name, company_name, title, address,
    avatar_url, primary_contact_method, source, emails, phone_numbers, sip_addresses, ims, groups)
SELECT $1::text, $2::uuid, $4::text, $5::text, $6::text, $7::text, $8::text, $9::jsonb,
       $10::text, $11::text, $12::text, $13::jsonb, $14::jsonb, $15::jsonb, $16::jsonb, $17::jsonb
WHERE NOT $3::bool
   OR EXISTS (SELECT 1 FROM contacts e WHERE e.org_id = $1 AND e.contact_id = $2)
ON CONFLICT (org_id, contact_id) DO UPDATE SET
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
";

pub async fn apply(pool: &Pool, batch: &ValidatedBatch, sha: &str) -> anyhow::Result<Expected> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let Claim::New = batches::claim(&tx, &batch.org_id, &batch.batch_id, sha).await? else {
        anyhow::bail!("batch {} was applied before", batch.batch_id);
    };
    let statement = tx.prepare_cached(UPSERT_ONE).await?;
    let mut outcomes = Vec::with_capacity(batch.entries.len());
    for entry in &batch.entries {
        let (id, contact) = match entry {
            Planned::Failed(error) => {
                outcomes.push(ContactOutcome::Failed(error.clone()));
                continue;
            }
            Planned::Write { id, contact } => (id, contact),
        };
        let f = &contact.fields;
        let row = tx
            .query_opt(
                &statement,
                &[
                    &batch.org_id.as_str(),
                    &id.0,
                    &contact.update_of.is_some(),
                    &f.display_name,
                    &f.first_name,
                    &f.last_name,
                    &f.company_name,
                    &f.title,
                    &f.address.as_ref().map(Json),
                    &f.avatar_url,
                    &f.primary_contact_method,
                    &f.source,
                    &f.emails.as_ref().map(Json),
                    &f.phone_numbers.as_ref().map(Json),
                    &f.sip_addresses.as_ref().map(Json),
                    &f.ims.as_ref().map(Json),
                    &f.groups.as_ref().map(Json),
                ],
            )
            .await?;
        outcomes.push(match row {
            Some(row) => {
                let stored = upsert::stored_contact(batch, &row)?;
                if row.try_get("inserted")? {
                    ContactOutcome::Created(stored)
                } else {
                    ContactOutcome::Updated(stored)
                }
            }
            None => ContactOutcome::Failed(ContactError::new(
                ErrorCode::ContactNotFound,
                format!("contactId {id} does not exist in org {}", batch.org_id),
            )),
        });
    }
    let result = BatchResult::applied(&batch.batch_id, &batch.org_id, outcomes, Utc::now());
    batches::finish(
        &tx,
        &batch.org_id,
        &batch.batch_id,
        &result,
        &result.to_json(),
    )
    .await?;
    tx.commit().await?;
    Ok(Expected {
        received: result.counts.received,
        created: result.counts.created,
        updated: result.counts.updated,
        failed: result.counts.failed,
    })
}
