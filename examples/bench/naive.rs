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
const INSERT_ONE: &str = "
INSERT INTO contacts AS c (
    org_id, contact_id, display_name, first_name, last_name, company_name, title, address,
    avatar_url, primary_contact_method, source, emails, phone_numbers, sip_addresses, ims, groups,
    email_keys, im_keys)
SELECT $1::text, $2::uuid, $4::text, $5::text, $6::text, $7::text, $8::text, $9::jsonb,
       $10::text, $11::text, $12::text, $13::jsonb, $14::jsonb, $15::jsonb, $16::jsonb, $17::jsonb,
       string_to_array($18::text, E'\x1f'), string_to_array($19::text, E'\x1f')
WHERE NOT $3::bool
   OR EXISTS (SELECT 1 FROM contacts e WHERE e.org_id = $1 AND e.contact_id = $2)
";

/// The same merge rule and returned columns as the worker's statement.
static UPSERT_ONE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{INSERT_ONE}{}", upsert::MERGE_AND_RETURN));

pub async fn apply(pool: &Pool, batch: &ValidatedBatch, sha: &str) -> anyhow::Result<Expected> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let Claim::New = batches::claim(&tx, batch.org_id(), batch.batch_id(), sha, None).await? else {
        anyhow::bail!("batch {} was applied before", batch.batch_id());
    };
    let statement = tx.prepare_cached(&UPSERT_ONE).await?;
    let at = upsert::Returned::of(statement.columns());
    let mut outcomes = Vec::with_capacity(batch.entries().len());
    for entry in batch.entries() {
        let (id, contact) = match entry {
            Planned::Failed(error) => {
                outcomes.push(ContactOutcome::Failed(error.clone()));
                continue;
            }
            Planned::Write { id, contact } => (id, contact),
        };
        let f = contact.fields();
        let row = tx
            .query_opt(
                &statement,
                &[
                    &batch.org_id().as_str(),
                    &id.as_uuid(),
                    &contact.target().is_update(),
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
                    &upsert::lookup_keys(&f.emails),
                    &upsert::lookup_keys(&f.ims),
                ],
            )
            .await?;
        outcomes.push(match row {
            Some(row) => {
                let stored = upsert::stored_contact(batch, &row, &at)?;
                if row.try_get(at.inserted)? {
                    ContactOutcome::Created(stored)
                } else {
                    ContactOutcome::Updated(stored)
                }
            }
            // Not written: unknown (404), or sent as it is stored (the same rule as the
            // worker's: not rewritten, answered as stored).
            None => match tx
                .query_opt(
                    upsert::STORED,
                    &[&batch.org_id().as_str(), &vec![id.as_uuid()]],
                )
                .await?
            {
                Some(row) => {
                    let at = upsert::Returned::of(row.columns());
                    ContactOutcome::Updated(upsert::stored_contact(batch, &row, &at)?)
                }
                None => ContactOutcome::Failed(ContactError::new(
                    ErrorCode::ContactNotFound,
                    format!("contactId {id} does not exist in org {}", batch.org_id()),
                )),
            },
        });
    }
    let result = BatchResult::applied(batch.batch_id(), batch.org_id(), outcomes, Utc::now());
    batches::finish(
        &tx,
        batch.org_id(),
        batch.batch_id(),
        &result,
        &result.to_json(),
        batches::Sender::default(),
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
