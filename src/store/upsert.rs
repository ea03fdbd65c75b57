//! The set-based contact upsert: one statement per batch, whatever its size.

use crate::contact::validate::{is_named, merge_primary, missing_name};
use crate::contact::{
    ContactError, ContactFields, ContactMethod, ErrorCode, Planned, StoredContact, Target,
    ValidatedBatch,
};
use crate::ids::{ContactId, OrgId};
use crate::result::ContactOutcome;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use tokio_postgres::Row;
use tokio_postgres::types::{Json, ToSql};
use uuid::Uuid;

/// The contact's stored fields, the one list every statement here is written from: calls
/// `$then!` with `extra` columns first, then the fields.
macro_rules! with_stored_fields {
    ($then:ident $(, $extra:ident)*) => {
        // Braces: the call may stand for an item (`Returned`) or an expression.
        $then! {
            $($extra,)*
            display_name,
            first_name,
            last_name,
            company_name,
            title,
            address,
            avatar_url,
            primary_contact_method,
            source,
            emails,
            phone_numbers,
            sip_addresses,
            ims,
            groups,
            middle_name,
            birth_date,
            wedding_date,
            anniversary_date,
            custom_fields,
            shared,
            cloud_provider,
            cloud_provider_container_id,
            signing_group,
            signing_group_name,
            signing_group_users
        }
    };
}

/// `c.a, c.b, …`: columns of the stored row.
macro_rules! qualified {
    ($first:ident $(, $rest:ident)*) => {
        concat!("c.", stringify!($first), $(", c.", stringify!($rest),)*)
    };
}

/// How a written row meets a stored one: fields absent from the write (NULL) keep their
/// stored value, and a row the write would leave as it is is not written at all. A daily
/// re-sync sends mostly unchanged contacts; rewriting each would add a row version, its
/// index entries and its WAL for nothing (and move `updated_at`).
macro_rules! merge_clause {
    ($($column:ident),*) => {
        concat!(
            "ON CONFLICT (org_id, contact_id) DO UPDATE SET\n",
            $("    ", stringify!($column), " = COALESCE(EXCLUDED.", stringify!($column),
              ", c.", stringify!($column), "),\n",)*
            "    updated_at = now()\n",
            // org_id, the conflict key, equal on both sides, opens each list.
            "WHERE (c.org_id", $(", c.", stringify!($column),)* ")\n",
            "    IS DISTINCT FROM (EXCLUDED.org_id",
            $(", COALESCE(EXCLUDED.", stringify!($column), ", c.", stringify!($column), ")",)*
            ")\n"
        )
    };
}

/// What every statement that writes contacts returns of them besides id, `inserted` and
/// the timestamps (see [`Returned`]).
macro_rules! returned_fields {
    () => {
        with_stored_fields!(qualified)
    };
}

/// [`merge_clause!`] and the written row returned. Shared by [`UPSERT`] and the benchmark's
/// naive baseline, so both apply the same rule.
macro_rules! merge_and_return {
    () => {
        concat!(
            // The lookup keys are merged too, but never returned.
            with_stored_fields!(merge_clause, email_keys, im_keys),
            "RETURNING c.contact_id, (c.xmax = 0) AS inserted, c.created_at, c.updated_at,\n    ",
            returned_fields!(),
            "\n"
        )
    };
}

/// `merge_and_return!` as a constant, for statements built at run time.
pub const MERGE_AND_RETURN: &str = merge_and_return!();

/// New contacts are inserted; updates (`is_update`) only touch a row that the batch's org
/// already has, so an update of an unknown id writes nothing and is reported as 404. Rows are
/// written in contact_id order so that concurrent batches lock shared rows in the same
/// order. Fields absent from an update (NULL here) keep their stored value. A contact sent
/// as it is stored is not written again (`merge_clause!`) and comes back from `unchanged`
/// as stored, locked like a written one.
pub const UPSERT: &str = concat!(
    "
WITH input AS (
    SELECT * FROM unnest(
        $2::uuid[], $3::bool[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::jsonb[], $10::text[], $11::text[], $12::text[], $13::jsonb[], $14::jsonb[],
        $15::jsonb[], $16::jsonb[], $17::jsonb[], $18::text[], $19::date[], $20::date[],
        $21::date[], $22::jsonb[], $23::bool[], $24::text[], $25::text[], $26::text[],
        $27::text[], $28::jsonb[], $29::text[], $30::text[]
    ) AS t(contact_id, is_update, display_name, first_name, last_name, company_name, title,
           address, avatar_url, primary_contact_method, source, emails, phone_numbers,
           sip_addresses, ims, groups, middle_name, birth_date, wedding_date, anniversary_date,
           custom_fields, shared, cloud_provider, cloud_provider_container_id, signing_group,
           signing_group_name, signing_group_users, email_keys, im_keys)
),
written AS (
INSERT INTO contacts AS c (
    org_id, contact_id, display_name, first_name, last_name, company_name, title, address,
    avatar_url, primary_contact_method, source, emails, phone_numbers, sip_addresses, ims, groups,
    middle_name, birth_date, wedding_date, anniversary_date, custom_fields, shared,
    cloud_provider, cloud_provider_container_id, signing_group, signing_group_name,
    signing_group_users, email_keys, im_keys)
SELECT $1, i.contact_id, i.display_name, i.first_name, i.last_name, i.company_name, i.title,
       i.address, i.avatar_url, i.primary_contact_method, i.source, i.emails, i.phone_numbers,
       i.sip_addresses, i.ims, i.groups, i.middle_name, i.birth_date, i.wedding_date,
       i.anniversary_date, i.custom_fields, i.shared, i.cloud_provider,
       i.cloud_provider_container_id, i.signing_group, i.signing_group_name,
       i.signing_group_users, string_to_array(i.email_keys, E'\x1f'),
       string_to_array(i.im_keys, E'\x1f')
FROM input i
-- A probe of the primary key per update only. As `NOT is_update OR EXISTS (…)` the planner
-- hashed every contact id of the org for each batch (a scan of the org: 12 of 32 ms of this
-- statement at 25,000 contacts); CASE fixes the order and OFFSET 0 keeps the probe a probe.
WHERE CASE WHEN i.is_update
           THEN EXISTS (SELECT 1 FROM contacts e
                        WHERE e.org_id = $1 AND e.contact_id = i.contact_id OFFSET 0)
           ELSE true END
ORDER BY i.contact_id
",
    merge_and_return!(),
    "),
unchanged AS (
SELECT c.contact_id, false AS inserted, c.created_at, c.updated_at,
    ",
    returned_fields!(),
    "
FROM input i JOIN contacts c ON c.org_id = $1 AND c.contact_id = i.contact_id
WHERE NOT EXISTS (SELECT 1 FROM written w WHERE w.contact_id = i.contact_id)
-- The row as the lock ON CONFLICT took sees it, not as this statement's snapshot does.
FOR SHARE OF c
)
SELECT * FROM written UNION ALL SELECT * FROM unchanged
"
);

/// Stored contacts by id, shaped as [`UPSERT`] returns them (the benchmark's naive baseline
/// reads its unchanged contacts with it too).
pub const STORED: &str = concat!(
    "SELECT c.contact_id, false AS inserted, c.created_at, c.updated_at,\n    ",
    returned_fields!(),
    "\nFROM contacts c WHERE c.org_id = $1 AND c.contact_id = ANY($2)"
);

/// One column of the statement's input, a value per written contact.
type Column<T> = Vec<Option<T>>;

/// One entry of a batch as the statement sees it: a row to write, or the contact's failure.
/// Borrowed from the batch; only what the transaction settles differently is owned, so a
/// batch is never copied whole (it is applied again on every retry).
#[derive(Debug)]
pub enum Step<'a> {
    /// A row to write.
    Write(ContactWrite<'a>),
    /// Not written: failed in validation, or in the transaction before the write.
    Failed(Cow<'a, ContactError>),
}

/// A row to write.
#[derive(Debug)]
pub struct ContactWrite<'a> {
    /// The row's `contact_id`; for a target still pending, settled in the transaction.
    pub id: ContactId,
    /// The contact must exist already (an update); else it may be inserted.
    pub is_update: bool,
    /// What to write.
    pub fields: Fields<'a>,
    /// What is left to settle in the transaction before the row can be written.
    pending: Option<&'a Target>,
}

/// A row's fields: the validated ones, or (Update User Contact) the stored lists merged in.
#[derive(Debug)]
pub enum Fields<'a> {
    /// As validated, borrowed from the batch.
    Validated(&'a ContactFields),
    /// Merged with the stored lists, owned.
    Merged(Box<ContactFields>),
}

impl Fields<'_> {
    /// The fields, to change: the validated ones are copied first.
    fn to_mut(&mut self) -> &mut ContactFields {
        if let Fields::Validated(fields) = self {
            *self = Fields::Merged(Box::new((*fields).clone()));
        }
        match self {
            Fields::Merged(fields) => fields,
            Fields::Validated(_) => unreachable!("replaced above"),
        }
    }
}

impl AsRef<ContactFields> for Fields<'_> {
    fn as_ref(&self) -> &ContactFields {
        match self {
            Fields::Validated(fields) => fields,
            Fields::Merged(fields) => fields,
        }
    }
}

/// The batch's entries as steps, in request order, before anything is settled.
pub fn steps(batch: &ValidatedBatch) -> Vec<Step<'_>> {
    batch
        .entries()
        .iter()
        .map(|entry| match entry {
            Planned::Write { id, contact } => Step::Write(ContactWrite {
                id: *id,
                is_update: contact.target().is_update(),
                fields: Fields::Validated(contact.fields()),
                pending: matches!(contact.target(), Target::Lookup(_) | Target::External(_))
                    .then_some(contact.target()),
            }),
            Planned::Failed(error) => Step::Failed(Cow::Borrowed(error)),
        })
        .collect()
}

/// [`UPSERT`]'s parameters for a batch's writes, `$1` … `$30` in order (the benchmark's
/// profile binds them too).
pub struct UpsertInput<'a> {
    columns: Vec<Box<dyn ToSql + Send + Sync + 'a>>,
    /// How many contacts are written.
    pub rows: usize,
}

impl<'a> UpsertInput<'a> {
    /// The parameters for the writes among `steps`, all of `org`.
    pub fn of(org: &'a OrgId, steps: &'a [Step<'a>]) -> Self {
        let writes: Vec<(ContactId, bool, &ContactFields)> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Write(w) => Some((w.id, w.is_update, w.fields.as_ref())),
                Step::Failed(_) => None,
            })
            .collect();
        fn column<'a, T: ToSql + Send + Sync + 'a>(
            writes: &[(ContactId, bool, &'a ContactFields)],
            get: impl Fn(&'a ContactFields) -> Option<T>,
        ) -> Box<dyn ToSql + Send + Sync + 'a> {
            Box::new(writes.iter().map(|(_, _, f)| get(f)).collect::<Column<T>>())
        }
        let w = writes.as_slice();
        let columns: Vec<Box<dyn ToSql + Send + Sync + 'a>> = vec![
            Box::new(org.as_str()),
            Box::new(
                w.iter()
                    .map(|(id, _, _)| id.as_uuid())
                    .collect::<Vec<Uuid>>(),
            ),
            Box::new(
                w.iter()
                    .map(|(_, update, _)| *update)
                    .collect::<Vec<bool>>(),
            ),
            column(w, |f| f.display_name.as_deref()),
            column(w, |f| f.first_name.as_deref()),
            column(w, |f| f.last_name.as_deref()),
            column(w, |f| f.company_name.as_deref()),
            column(w, |f| f.title.as_deref()),
            column(w, |f| f.address.as_ref().map(Json)),
            column(w, |f| f.avatar_url.as_deref()),
            column(w, |f| f.primary_contact_method.as_deref()),
            column(w, |f| f.source.as_deref()),
            column(w, |f| f.emails.as_ref().map(Json)),
            column(w, |f| f.phone_numbers.as_ref().map(Json)),
            column(w, |f| f.sip_addresses.as_ref().map(Json)),
            column(w, |f| f.ims.as_ref().map(Json)),
            column(w, |f| f.groups.as_ref().map(Json)),
            column(w, |f| f.middle_name.as_deref()),
            column(w, |f| f.birth_date),
            column(w, |f| f.wedding_date),
            column(w, |f| f.anniversary_date),
            column(w, |f| f.custom_fields.as_ref().map(Json)),
            column(w, |f| f.shared),
            column(w, |f| f.cloud_provider.as_deref()),
            column(w, |f| f.cloud_provider_container_id.as_deref()),
            column(w, |f| f.signing_group.as_deref()),
            column(w, |f| f.signing_group_name.as_deref()),
            column(w, |f| f.signing_group_users.as_ref().map(Json)),
            column(w, |f| lookup_keys(&f.emails)),
            column(w, |f| lookup_keys(&f.ims)),
        ];
        Self {
            columns,
            rows: writes.len(),
        }
    }

    /// The parameters to bind, in [`UPSERT`]'s order.
    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.columns
            .iter()
            .map(|c| c.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// Writes the batch's valid contacts and returns every contact's outcome in request order.
pub async fn write_contacts(
    tx: &Transaction<'_>,
    batch: &ValidatedBatch,
) -> Result<Vec<ContactOutcome>, tokio_postgres::Error> {
    let mut steps = steps(batch);
    if steps
        .iter()
        .any(|s| matches!(s, Step::Write(w) if w.pending.is_some()))
    {
        resolve_targets(tx, batch.org_id(), &mut steps).await?;
    }
    let input = UpsertInput::of(batch.org_id(), &steps);
    let mut stored: HashMap<Uuid, (bool, StoredContact)> = HashMap::with_capacity(input.rows);
    if input.rows > 0 {
        let statement = tx.prepare_cached(UPSERT).await?;
        let rows = tx.query(&statement, &input.params()).await?;
        let at = Returned::of(statement.columns());
        for row in rows {
            let id: Uuid = row.try_get(at.contact_id)?;
            let contact = stored_contact(batch, &row, &at)?;
            stored.insert(id, (row.try_get(at.inserted)?, contact));
        }
        // An insert is either written or meets a row; one that met a row committed after
        // the statement's snapshot, and left it unchanged, is neither written nor seen by
        // `unchanged`. Rare (two batches creating the same contact at once): read it now.
        let unseen: Vec<Uuid> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Write(w) if !w.is_update && !stored.contains_key(&w.id.as_uuid()) => {
                    Some(w.id.as_uuid())
                }
                _ => None,
            })
            .collect();
        if !unseen.is_empty() {
            let statement = tx.prepare_cached(STORED).await?;
            let rows = tx
                .query(&statement, &[&batch.org_id().as_str(), &unseen])
                .await?;
            let at = Returned::of(statement.columns());
            for row in rows {
                let contact = stored_contact(batch, &row, &at)?;
                stored.insert(row.try_get(at.contact_id)?, (false, contact));
            }
        }
        record_groups(tx, batch, &stored).await?;
    }

    drop(input);
    Ok(steps
        .into_iter()
        .map(|step| match step {
            Step::Failed(error) => ContactOutcome::Failed(error.into_owned()),
            Step::Write(ContactWrite { id, .. }) => match stored.remove(&id.as_uuid()) {
                Some((true, contact)) => ContactOutcome::Created(contact),
                Some((false, contact)) => ContactOutcome::Updated(contact),
                None => ContactOutcome::Failed(ContactError::new(
                    ErrorCode::ContactNotFound,
                    format!("contactId {id} does not exist in org {}", batch.org_id()),
                )),
            },
        })
        .collect())
}

/// Creates, on first use, the org's groups that the written contacts joined. In name order,
/// so that concurrent batches creating the same groups wait on each other, never deadlock.
async fn record_groups(
    tx: &Transaction<'_>,
    batch: &ValidatedBatch,
    stored: &HashMap<Uuid, (bool, StoredContact)>,
) -> Result<(), tokio_postgres::Error> {
    let names: BTreeSet<&str> = stored
        .values()
        .flat_map(|(_, c)| c.fields.groups.iter().flatten())
        .map(String::as_str)
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = names.into_iter().collect();
    let statement = tx
        .prepare_cached(
            "INSERT INTO contact_groups (org_id, name) \
             SELECT $1, name FROM unnest($2::text[]) AS name ORDER BY name \
             ON CONFLICT (org_id, name) DO NOTHING",
        )
        .await?;
    tx.execute(&statement, &[&batch.org_id().as_str(), &names])
        .await?;
    Ok(())
}

/// A list's values as the lookup finds them (see [`lookup_key`]), joined by the unit
/// separator: PostgreSQL has no arrays of arrays, so the statement splits each contact's
/// string with `string_to_array`. Validation refuses control characters in every value, so
/// the separator never occurs in one. `None` for an absent list, whose stored keys stay.
pub fn lookup_keys(list: &Option<Vec<ContactMethod>>) -> Option<String> {
    list.as_ref().map(|list| {
        // Built in one string: this runs for every written contact.
        let mut keys = String::new();
        for (i, method) in list.iter().enumerate() {
            if i > 0 {
                keys.push('\u{1f}');
            }
            keys.push_str(&lookup_key(&method.value));
        }
        keys
    })
}

/// How an email address or chat id is matched: ignoring ASCII case, the same here and in
/// the migration that filled the keys of older rows.
pub fn lookup_key(value: &str) -> String {
    value.to_ascii_lowercase()
}

/// The org's contacts whose email address or IM id is the user's id (the expression is the
/// one `contacts_user_keys` indexes). No lock and no LIMIT: locking every match could
/// deadlock with a batch locking the same rows in id order, and with a LIMIT the planner
/// expects an early match and may scan the table instead of the index.
const FIND_BY_USER: &str = "
SELECT contact_id FROM contacts
WHERE org_id = $1 AND (email_keys || im_keys) @> ARRAY[$2::text]";

/// The one match, locked for the update, if it still matches.
const LOCK_FOUND_USER: &str = "
SELECT emails, phone_numbers FROM contacts
WHERE org_id = $1 AND contact_id = $2 AND (email_keys || im_keys) @> ARRAY[$3::text]
FOR UPDATE";

/// Which of these ids the org's contacts have.
const EXISTING: &str = "SELECT contact_id FROM contacts WHERE org_id = $1 AND contact_id = ANY($2)";

/// Settles the targets only the database can settle, so that every entry left is a plain
/// insert or update: a [`Target::Lookup`] becomes an update of the one contact it names
/// (the request's email address and phone number merged in as the primary ones), a
/// [`Target::External`] an update of the contact it names or the insert of a new one. An
/// entry that names no contact, several, or one another entry of the batch writes, fails.
async fn resolve_targets(
    tx: &Transaction<'_>,
    org: &OrgId,
    steps: &mut [Step<'_>],
) -> Result<(), tokio_postgres::Error> {
    let org = org.as_str();
    let mut written: HashSet<ContactId> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Write(w) if w.pending.is_none() => Some(w.id),
            _ => None,
        })
        .collect();
    // Every id an external id may name, in one round trip: itself if it is a UUID, and
    // the id it was imported under.
    let candidates: Vec<Uuid> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Write(ContactWrite {
                id,
                pending: Some(Target::External(external)),
                ..
            }) => Some([Some(id.as_uuid()), Uuid::parse_str(external).ok()]),
            _ => None,
        })
        .flatten()
        .flatten()
        .collect();
    let existing: HashSet<Uuid> = if candidates.is_empty() {
        HashSet::new()
    } else {
        tx.query(EXISTING, &[&org, &candidates])
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?
    };

    for step in steps.iter_mut() {
        let Step::Write(write) = step else {
            continue;
        };
        let Some(pending) = write.pending.take() else {
            continue;
        };
        let settled = match pending {
            Target::External(external) => {
                match Uuid::parse_str(external)
                    .ok()
                    .filter(|u| existing.contains(u))
                {
                    Some(ours) => Ok(Some(ContactId::from_uuid(ours))),
                    None if existing.contains(&write.id.as_uuid()) => Ok(Some(write.id)),
                    None if is_named(write.fields.as_ref()) => Ok(None),
                    None => Err(missing_name()),
                }
            }
            Target::Lookup(user) => lookup(tx, org, user, write.fields.to_mut())
                .await?
                .map(Some),
            Target::New | Target::Update(_) => continue,
        };
        let failure = match settled {
            Err(failure) => failure,
            Ok(update_of) => {
                let to = update_of.unwrap_or(write.id);
                if written.insert(to) {
                    write.id = to;
                    write.is_update = update_of.is_some();
                    continue;
                }
                ContactError::new(
                    ErrorCode::DuplicateInBatch,
                    format!("contact {to} is already written by another contact of this batch"),
                )
            }
        };
        *step = Step::Failed(Cow::Owned(failure));
    }
    Ok(())
}

/// The contact an Update User Contact request names, with the request's email address and
/// phone number merged into its lists.
async fn lookup(
    tx: &Transaction<'_>,
    org: &str,
    user: &str,
    fields: &mut ContactFields,
) -> Result<Result<ContactId, ContactError>, tokio_postgres::Error> {
    let key = lookup_key(user);
    let found = tx.query(FIND_BY_USER, &[&org, &key]).await?;
    let id: Uuid = match found.as_slice() {
        [row] => row.try_get(0)?,
        [] => {
            return Ok(Err(ContactError::new(
                ErrorCode::ContactNotFound,
                format!("no contact of org {org} has the email address or chat id '{user}'"),
            )));
        }
        _ => {
            return Ok(Err(ContactError::new(
                ErrorCode::AmbiguousContact,
                format!(
                    "more than one contact of org {org} has the email address or chat id '{user}'"
                ),
            )));
        }
    };
    let Some(row) = tx.query_opt(LOCK_FOUND_USER, &[&org, &id, &key]).await? else {
        // Changed or deleted between the two statements.
        return Ok(Err(ContactError::new(
            ErrorCode::ContactNotFound,
            format!("no contact of org {org} has the email address or chat id '{user}'"),
        )));
    };
    let stored = |column| -> Result<Vec<ContactMethod>, tokio_postgres::Error> {
        Ok(row
            .try_get::<_, Option<Json<Vec<ContactMethod>>>>(column)?
            .map(|Json(list)| list)
            .unwrap_or_default())
    };
    let emails = merge_primary("emails", fields.emails.take(), stored("emails")?, true);
    let phones = merge_primary(
        "phoneNumbers",
        fields.phone_numbers.take(),
        stored("phone_numbers")?,
        false,
    );
    Ok(match (emails, phones) {
        (Ok(emails), Ok(phones)) => {
            fields.emails = emails;
            fields.phone_numbers = phones;
            Ok(ContactId::from_uuid(id))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    })
}

/// Where each column a statement returns is, looked up by name once per statement: a lookup
/// by name for every value scans the columns each time (30 columns, 30 values per row).
macro_rules! returned_columns {
    ($($column:ident),* $(,)?) => {
        /// The positions of the columns that [`stored_contact`] reads.
        pub struct Returned {
            $(
                #[doc = concat!("Index of the `", stringify!($column), "` column in the row.")]
                pub $column: usize,
            )*
        }

        impl Returned {
            /// Positions in `columns`; every statement that returns contacts returns these
            /// (`MERGE_AND_RETURN`'s list), so a missing one is a bug in this file.
            pub fn of(columns: &[tokio_postgres::Column]) -> Self {
                let at = |name: &str| {
                    columns
                        .iter()
                        .position(|c| c.name() == name)
                        .unwrap_or_else(|| panic!("the statement returns no column {name}"))
                };
                Self { $($column: at(stringify!($column)),)* }
            }
        }
    };
}

with_stored_fields!(
    returned_columns,
    contact_id,
    inserted,
    created_at,
    updated_at
);

/// Reads a returned row (the benchmark's naive baseline reads its rows with it too).
/// `try_get` rather than `get`: a row another writer left in a shape this worker cannot read
/// fails the batch (and is reported) instead of panicking.
pub fn stored_contact(
    batch: &ValidatedBatch,
    row: &Row,
    at: &Returned,
) -> Result<StoredContact, tokio_postgres::Error> {
    fn json<T: serde::de::DeserializeOwned>(
        row: &Row,
        column: usize,
    ) -> Result<Option<T>, tokio_postgres::Error> {
        Ok(row
            .try_get::<_, Option<Json<T>>>(column)?
            .map(|Json(value)| value))
    }
    let created: DateTime<Utc> = row.try_get(at.created_at)?;
    let updated: DateTime<Utc> = row.try_get(at.updated_at)?;
    Ok(StoredContact::new(
        batch.org_id(),
        ContactId::from_uuid(row.try_get(at.contact_id)?),
        created,
        updated,
        ContactFields {
            display_name: row.try_get(at.display_name)?,
            first_name: row.try_get(at.first_name)?,
            last_name: row.try_get(at.last_name)?,
            company_name: row.try_get(at.company_name)?,
            title: row.try_get(at.title)?,
            address: json(row, at.address)?,
            avatar_url: row.try_get(at.avatar_url)?,
            primary_contact_method: row.try_get(at.primary_contact_method)?,
            source: row.try_get(at.source)?,
            emails: json(row, at.emails)?,
            phone_numbers: json(row, at.phone_numbers)?,
            sip_addresses: json(row, at.sip_addresses)?,
            ims: json(row, at.ims)?,
            groups: json(row, at.groups)?,
            middle_name: row.try_get(at.middle_name)?,
            birth_date: row.try_get(at.birth_date)?,
            wedding_date: row.try_get(at.wedding_date)?,
            anniversary_date: row.try_get(at.anniversary_date)?,
            custom_fields: json(row, at.custom_fields)?,
            shared: row.try_get(at.shared)?,
            cloud_provider: row.try_get(at.cloud_provider)?,
            cloud_provider_container_id: row.try_get(at.cloud_provider_container_id)?,
            signing_group: row.try_get(at.signing_group)?,
            signing_group_name: row.try_get(at.signing_group_name)?,
            signing_group_users: json(row, at.signing_group_users)?,
        },
    ))
}
