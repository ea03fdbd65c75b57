//! The COPY write path: a batch's rows are streamed with binary `COPY` into a per-connection
//! staging table, then merged into `contacts` by one `INSERT … SELECT` with the same rule and
//! the same returned rows as [`super::upsert::UPSERT`].

use super::upsert::{ContactWrite, Step, lookup_key, merge_and_return};
use crate::contact::{ContactFields, ContactMethod};
use crate::ids::OrgId;
use deadpool_postgres::Transaction;
use std::pin::pin;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, ToSql, Type};
use tokio_postgres::{Client, Row, Statement, ToStatement};

/// The staging table, made once per connection (the pool's `post_create` hook, see
/// [`super::connect::pool_for`]): a temporary table per batch would write the catalog for
/// every batch. `ON COMMIT DELETE ROWS` empties it at each commit that used it, without the
/// new file (and the plan invalidation) a `TRUNCATE` would cost. Rows of a rolled-back
/// attempt are invisible to the next one.
pub const CREATE_STAGING: &str = "
CREATE TEMP TABLE IF NOT EXISTS contact_staging (
    contact_id uuid NOT NULL, is_update boolean NOT NULL,
    display_name text, first_name text, last_name text, company_name text, title text,
    address jsonb, avatar_url text, primary_contact_method text, source text,
    emails jsonb, phone_numbers jsonb, sip_addresses jsonb, ims jsonb, groups jsonb,
    middle_name text, birth_date date, wedding_date date, anniversary_date date,
    custom_fields jsonb, shared boolean, cloud_provider text, cloud_provider_container_id text,
    signing_group text, signing_group_name text, signing_group_users jsonb,
    email_keys text[], im_keys text[]
) ON COMMIT DELETE ROWS";

/// The stored fields of a contact, in the order [`copy_rows`] writes them.
macro_rules! field_columns {
    () => {
        "display_name, first_name, last_name, company_name, title, address, avatar_url, \
         primary_contact_method, source, emails, phone_numbers, sip_addresses, ims, groups, \
         middle_name, birth_date, wedding_date, anniversary_date, custom_fields, shared, \
         cloud_provider, cloud_provider_container_id, signing_group, signing_group_name, \
         signing_group_users, email_keys, im_keys"
    };
}

/// Fills the staging table.
const COPY_STAGING: &str = concat!(
    "COPY contact_staging (contact_id, is_update, ",
    field_columns!(),
    ") FROM STDIN (FORMAT binary)"
);

/// [`super::upsert::UPSERT`] with the staging table as its input: same probe per update,
/// same order, same merge and `RETURNING`.
pub const MERGE_STAGED: &str = concat!(
    "
INSERT INTO contacts AS c (org_id, contact_id, ",
    field_columns!(),
    ")
SELECT $1, i.contact_id, i.display_name, i.first_name, i.last_name, i.company_name, i.title,
       i.address, i.avatar_url, i.primary_contact_method, i.source, i.emails, i.phone_numbers,
       i.sip_addresses, i.ims, i.groups, i.middle_name, i.birth_date, i.wedding_date,
       i.anniversary_date, i.custom_fields, i.shared, i.cloud_provider,
       i.cloud_provider_container_id, i.signing_group, i.signing_group_name,
       i.signing_group_users, i.email_keys, i.im_keys
FROM contact_staging i
WHERE CASE WHEN i.is_update
           THEN EXISTS (SELECT 1 FROM contacts e
                        WHERE e.org_id = $1 AND e.contact_id = i.contact_id OFFSET 0)
           ELSE true END
ORDER BY i.contact_id
",
    merge_and_return!()
);

/// A binary `COPY` of whole contact rows (`org_id` first) into `table`, a table shaped like
/// `contacts`: the benchmark's measure of what PostgreSQL absorbs without any merge.
pub fn copy_into_table(table: &str) -> String {
    format!(
        concat!(
            "COPY {} (org_id, contact_id, ",
            field_columns!(),
            ") FROM STDIN (FORMAT binary)"
        ),
        table
    )
}

/// What a copied row starts with: the staging table's id and update flag, or a full
/// `contacts` row's org and id.
#[derive(Debug, Clone, Copy)]
pub enum Lead<'a> {
    /// `contact_id, is_update` (the staging table).
    Staging,
    /// `org_id, contact_id` (a table like `contacts`).
    Org(&'a OrgId),
}

const FIELD_TYPES: [Type; 27] = [
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::TEXT,
    Type::DATE,
    Type::DATE,
    Type::DATE,
    Type::JSONB,
    Type::BOOL,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::TEXT_ARRAY,
    Type::TEXT_ARRAY,
];

/// Streams the writes among `steps` through `copy` (a `COPY … FROM STDIN (FORMAT binary)`
/// with [`Lead`]'s two columns and then the fields), returning the rows copied.
pub async fn copy_rows<T: ?Sized + ToStatement>(
    client: &Client,
    copy: &T,
    lead: Lead<'_>,
    steps: &[Step<'_>],
) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in(copy).await?;
    let mut types = match lead {
        Lead::Staging => vec![Type::UUID, Type::BOOL],
        Lead::Org(_) => vec![Type::TEXT, Type::UUID],
    };
    types.extend(FIELD_TYPES);
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
    for step in steps {
        let Step::Write(ContactWrite {
            id,
            is_update,
            fields,
            ..
        }) = step
        else {
            continue;
        };
        let f: &ContactFields = fields.as_ref();
        let id = id.as_uuid();
        let (address, emails, phones, sips, ims, groups, custom, signers) = (
            f.address.as_ref().map(Json),
            f.emails.as_ref().map(Json),
            f.phone_numbers.as_ref().map(Json),
            f.sip_addresses.as_ref().map(Json),
            f.ims.as_ref().map(Json),
            f.groups.as_ref().map(Json),
            f.custom_fields.as_ref().map(Json),
            f.signing_group_users.as_ref().map(Json),
        );
        let (email_keys, im_keys) = (keys(&f.emails), keys(&f.ims));
        let org = match lead {
            Lead::Org(org) => Some(org.as_str()),
            Lead::Staging => None,
        };
        let first: [&(dyn ToSql + Sync); 2] = match &org {
            Some(org) => [org, &id],
            None => [&id, is_update],
        };
        let values: [&(dyn ToSql + Sync); 29] = [
            first[0],
            first[1],
            &f.display_name,
            &f.first_name,
            &f.last_name,
            &f.company_name,
            &f.title,
            &address,
            &f.avatar_url,
            &f.primary_contact_method,
            &f.source,
            &emails,
            &phones,
            &sips,
            &ims,
            &groups,
            &f.middle_name,
            &f.birth_date,
            &f.wedding_date,
            &f.anniversary_date,
            &custom,
            &f.shared,
            &f.cloud_provider,
            &f.cloud_provider_container_id,
            &f.signing_group,
            &f.signing_group_name,
            &signers,
            &email_keys,
            &im_keys,
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.as_mut().finish().await
}

/// A list's lookup keys as the unnest path stores them (`string_to_array` of the joined
/// keys): `None` keeps the stored keys, an empty list stores `{}`.
fn keys(list: &Option<Vec<ContactMethod>>) -> Option<Vec<String>> {
    list.as_ref()
        .map(|list| list.iter().map(|m| lookup_key(&m.value)).collect())
}

/// Copies the writes among `steps` into the staging table and merges them into `contacts`:
/// the merged statement and the rows it returned.
pub async fn write(
    tx: &Transaction<'_>,
    org: &OrgId,
    steps: &[Step<'_>],
) -> Result<(Statement, Vec<Row>), tokio_postgres::Error> {
    let copy = tx.prepare_cached(COPY_STAGING).await?;
    copy_rows(tx.client(), &copy, Lead::Staging, steps).await?;
    let merge = tx.prepare_cached(MERGE_STAGED).await?;
    let rows = tx.query(&merge, &[&org.as_str()]).await?;
    Ok((merge, rows))
}
