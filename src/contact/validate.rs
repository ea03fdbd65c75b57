//! Turns drafts into valid contacts or per-contact errors, once; code downstream never
//! re-checks a [`ValidContact`].

use super::error::{ContactError, ErrorCode};
use super::list::BoundedList;
pub use super::list::MAX_LIST_ENTRIES;
use super::model::{
    Address, ContactDraft, ContactFields, ContactMethod, MethodDraft, SigningGroupUser, Target,
    ValidContact,
};
use crate::ids::{BatchId, ContactId, OrgId};
use chrono::NaiveDate;
use email_address::EmailAddress;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Longest name, title, company, source or address line, in characters.
pub const MAX_TEXT_CHARS: usize = 256;
/// Longest avatar URL, in characters.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest email address (RFC 5321 path limit).
const MAX_EMAIL_CHARS: usize = 254;
/// E.164 caps a number at 15 digits; 3 admits short internal extensions.
const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 3..=15;

/// Allowed email `type`s, as stored (lowercase).
pub const EMAIL_TYPES: &[&str] = &["work", "home", "room", "other"];
/// Allowed phone number `type`s, as stored (lowercase).
pub const PHONE_TYPES: &[&str] = &["work", "home", "mobile", "fax", "pager", "other"];
/// Allowed `primaryContactMethod`s, as stored (uppercase).
pub const PRIMARY_CONTACT_METHODS: &[&str] = &["EMAIL", "PHONE", "SIPADDRESS", "IMS"];
/// DocuSign's `cloudProvider` values.
pub const CLOUD_PROVIDERS: &[&str] = &["rooms", "docusignCore"];
/// Most custom fields on one contact (Save User Contacts has column1..column5).
const MAX_CUSTOM_FIELDS: usize = 5;

/// What happens to one contact of a batch, in request order.
// Unboxed on purpose: most entries are writes, and the Vec holding them is allocated once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// Write this contact under this id (derived for a new contact, given for an update).
    Write {
        /// The contact's id, or (Lookup) a placeholder the transaction resolves. A new one is
        /// derived from (org, batch id, index), so applying the batch again creates no twins.
        id: ContactId,
        /// The contact to write.
        contact: ValidContact,
    },
    /// Not written; reported in `failedContacts`.
    Failed(ContactError),
}

/// A readable batch after validation: every contact either planned for writing or failed.
/// Only [`validate_batch`] makes one.
#[derive(Debug, Clone)]
pub struct ValidatedBatch {
    batch_id: BatchId,
    org_id: OrgId,
    entries: Vec<Planned>,
}

impl ValidatedBatch {
    /// The batch's id.
    pub fn batch_id(&self) -> &BatchId {
        &self.batch_id
    }

    /// The org every contact belongs to.
    pub fn org_id(&self) -> &OrgId {
        &self.org_id
    }

    /// One entry per request contact, in request order.
    pub fn entries(&self) -> &[Planned] {
        &self.entries
    }
}

/// Validates each contact, gives new contacts their derived ids and fails the later of two
/// contacts that update the same contactId (409), so one statement never touches a row twice.
pub fn validate_batch(
    batch_id: BatchId,
    org_id: OrgId,
    drafts: Vec<Result<ContactDraft, ContactError>>,
) -> ValidatedBatch {
    let mut first_use: HashMap<ContactId, usize> = HashMap::new();
    let entries = drafts
        .into_iter()
        .enumerate()
        .map(|(index, draft)| {
            let contact = match draft.and_then(validate) {
                Ok(contact) => contact,
                Err(error) => return Planned::Failed(error),
            };
            let id = match contact.target() {
                Target::New => ContactId::for_new(&org_id, &batch_id, index),
                // Resolved in the transaction that writes it; until then the id names the
                // request, which no stored contact has.
                Target::Lookup(_) => ContactId::for_new(&org_id, &batch_id, index),
                Target::External(external) => {
                    let id = ContactId::for_external(&org_id, external);
                    if let Some(earlier) = first_use.insert(id, index) {
                        return Planned::Failed(ContactError::new(
                            ErrorCode::DuplicateInBatch,
                            format!("contactId {external} is already written by contact {earlier} of this batch"),
                        ));
                    }
                    id
                }
                Target::Update(id) => match first_use.get(id) {
                    Some(earlier) => {
                        return Planned::Failed(ContactError::new(
                            ErrorCode::DuplicateInBatch,
                            format!("contactId {id} is already updated by contact {earlier} of this batch"),
                        ));
                    }
                    None => {
                        first_use.insert(*id, index);
                        *id
                    }
                },
            };
            Planned::Write { id, contact }
        })
        .collect();
    ValidatedBatch {
        batch_id,
        org_id,
        entries,
    }
}

/// Validates one contact. A new contact needs a name; an update may carry only the fields
/// it changes.
pub fn validate(draft: ContactDraft) -> Result<ValidContact, ContactError> {
    let update_of = draft
        .contact_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| {
            Uuid::parse_str(id).map(ContactId::from_uuid).map_err(|_| {
                ContactError::new(
                    ErrorCode::InvalidContactId,
                    format!("contactId '{id}' is not a UUID"),
                )
            })
        })
        .transpose()?;

    let fields = ContactFields {
        display_name: text("displayName", draft.display_name)?,
        first_name: text("firstName", draft.first_name)?,
        last_name: text("lastName", draft.last_name)?,
        company_name: text("companyName", draft.company_name)?,
        title: text("title", draft.title)?,
        address: draft.address.map(address).transpose()?.flatten(),
        avatar_url: avatar_url(draft.avatar_url)?,
        primary_contact_method: primary_contact_method(draft.primary_contact_method)?,
        source: text("source", draft.source)?,
        emails: methods("emails", draft.emails, email)?,
        phone_numbers: methods("phoneNumbers", draft.phone_numbers, phone)?,
        sip_addresses: methods("sipAddresses", draft.sip_addresses, free_text)?,
        ims: methods("ims", draft.ims, free_text)?,
        groups: groups(draft.groups)?,
        middle_name: text("middleName", draft.middle_name)?,
        birth_date: date("birthDate", draft.birth_date)?,
        wedding_date: date("weddingDate", draft.wedding_date)?,
        anniversary_date: date("anniversaryDate", draft.anniversary_date)?,
        custom_fields: custom_fields(draft.custom_fields)?,
        shared: draft.shared,
        cloud_provider: cloud_provider(draft.cloud_provider)?,
        cloud_provider_container_id: text(
            "cloudProviderContainerId",
            draft.cloud_provider_container_id,
        )?,
        signing_group: text("signingGroup", draft.signing_group)?,
        signing_group_name: text("signingGroupName", draft.signing_group_name)?,
        signing_group_users: signing_group_users(draft.signing_group_users)?,
    };

    let external_id = text("contactId", draft.external_id)?;
    let target = match (update_of, draft.lookup, external_id) {
        (Some(id), _, _) => Target::Update(id),
        (None, Some(user), _) => Target::Lookup(lookup(user)?),
        (None, None, Some(external)) => Target::External(external),
        (None, None, None) => Target::New,
    };
    if target == Target::New && !is_named(&fields) {
        return Err(missing_name());
    }
    Ok(ValidContact::new(target, fields))
}

/// A new contact needs a name; [`Target::External`] is found to be new only in the
/// transaction, which then fails it with this.
pub fn missing_name() -> ContactError {
    ContactError::new(
        ErrorCode::MissingName,
        "a new contact needs at least one of displayName, firstName, lastName",
    )
}

/// Whether a contact names itself (see [`missing_name`]).
pub fn is_named(fields: &ContactFields) -> bool {
    fields.display_name.is_some() || fields.first_name.is_some() || fields.last_name.is_some()
}

/// An update that merges lists (Update User Contact): the request's entries first and primary, then the stored ones that differ from them, no
/// longer primary. `None` (nothing requested) leaves the stored list untouched. A list that
/// would grow past the limit fails rather than lose a stored entry.
pub fn merge_primary(
    field: &str,
    requested: Option<Vec<ContactMethod>>,
    stored: Vec<ContactMethod>,
    ignore_case: bool,
) -> Result<Option<Vec<ContactMethod>>, ContactError> {
    let Some(requested) = requested else {
        return Ok(None);
    };
    let same = |a: &str, b: &str| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let mut merged: Vec<ContactMethod> = requested
        .into_iter()
        .map(|mut entry| {
            if entry.kind.is_none() {
                // The stored entry's type survives a request that names none.
                entry.kind = stored
                    .iter()
                    .find(|s| same(&s.value, &entry.value))
                    .and_then(|s| s.kind.clone());
            }
            entry
        })
        .collect();
    for mut entry in stored {
        if !merged.iter().any(|m| same(&m.value, &entry.value)) {
            entry.primary = false;
            merged.push(entry);
        }
    }
    if merged.len() > MAX_LIST_ENTRIES {
        return Err(ContactError::new(
            ErrorCode::TooManyValues,
            format!(
                "{field} would have {} entries, at most {MAX_LIST_ENTRIES} are allowed",
                merged.len()
            ),
        ));
    }
    Ok(Some(merged))
}

/// The user id an Update User Contact request addresses: an email address or a chat id.
fn lookup(user: String) -> Result<String, ContactError> {
    text("uid", Some(user))?.ok_or_else(|| {
        ContactError::new(
            ErrorCode::MissingField,
            "uid (the user's email address or chat id) is empty",
        )
    })
}

/// A real calendar date written `YYYY-MM-DD`.
fn date(field: &str, value: Option<String>) -> Result<Option<NaiveDate>, ContactError> {
    let Some(value) = text(field, value)? else {
        return Ok(None);
    };
    // chrono alone would also take "1990-1-1"; the seed's format has fixed widths.
    let shaped = value.len() == 10
        && value.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    match NaiveDate::parse_from_str(&value, "%Y-%m-%d") {
        Ok(date) if shaped => Ok(Some(date)),
        _ => Err(ContactError::new(
            ErrorCode::InvalidDate,
            format!("{field} '{value}' is not a calendar date in YYYY-MM-DD format"),
        )),
    }
}

fn custom_fields(
    fields: Option<BTreeMap<String, String>>,
) -> Result<Option<BTreeMap<String, String>>, ContactError> {
    let Some(fields) = fields else {
        return Ok(None);
    };
    if fields.len() > MAX_CUSTOM_FIELDS {
        return Err(ContactError::new(
            ErrorCode::TooManyValues,
            format!("at most {MAX_CUSTOM_FIELDS} custom fields are allowed"),
        ));
    }
    let mut kept = BTreeMap::new();
    for (name, value) in fields {
        if let Some(value) = text(&name, Some(value))? {
            kept.insert(name, value);
        }
    }
    Ok((!kept.is_empty()).then_some(kept))
}

fn cloud_provider(value: Option<String>) -> Result<Option<String>, ContactError> {
    let Some(value) = text("cloudProvider", value)? else {
        return Ok(None);
    };
    match CLOUD_PROVIDERS
        .iter()
        .find(|p| p.eq_ignore_ascii_case(&value))
    {
        Some(canonical) => Ok(Some((*canonical).to_owned())),
        None => Err(ContactError::new(
            ErrorCode::InvalidValue,
            format!(
                "cloudProvider '{value}' is not one of {}",
                CLOUD_PROVIDERS.join(", ")
            ),
        )),
    }
}

fn signing_group_users(
    users: Option<BoundedList<SigningGroupUser>>,
) -> Result<Option<Vec<SigningGroupUser>>, ContactError> {
    let Some(users) = users else { return Ok(None) };
    entries("signingGroupUsers", users)?
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            let field = |name: &str| format!("signingGroupUsers[{i}].{name}");
            Ok(SigningGroupUser {
                user_name: text(&field("userName"), u.user_name)?,
                user_id: text(&field("userId"), u.user_id)?,
                email: text(&field("email"), u.email)?,
                user_type: text(&field("userType"), u.user_type)?,
                user_status: text(&field("userStatus"), u.user_status)?,
                uri: text(&field("uri"), u.uri)?,
                login_status: text(&field("loginStatus"), u.login_status)?,
                send_activation_email: text(
                    &field("sendActivationEmail"),
                    u.send_activation_email,
                )?,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Trims; an empty string counts as absent.
fn text(field: &str, value: Option<String>) -> Result<Option<String>, ContactError> {
    bounded(field, value, MAX_TEXT_CHARS)
}

fn bounded(
    field: &str,
    value: Option<String>,
    max_chars: usize,
) -> Result<Option<String>, ContactError> {
    let Some(value) = value else { return Ok(None) };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    // PostgreSQL cannot store NUL, and other control characters are garbage in a contact.
    if trimmed
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(ContactError::new(
            ErrorCode::InvalidCharacters,
            format!("{field} contains control characters"),
        ));
    }
    if trimmed.chars().count() > max_chars {
        return Err(ContactError::new(
            ErrorCode::TooLong,
            format!("{field} is longer than {max_chars} characters"),
        ));
    }
    Ok(Some(if trimmed.len() == value.len() {
        value
    } else {
        trimmed.to_owned()
    }))
}

fn address(raw: Address) -> Result<Option<Address>, ContactError> {
    let address = Address {
        street: text("address.street", raw.street)?,
        city: text("address.city", raw.city)?,
        state: text("address.state", raw.state)?,
        country: text("address.country", raw.country)?,
        zip_code: text("address.zipCode", raw.zip_code)?,
    };
    Ok((address != Address::default()).then_some(address))
}

fn avatar_url(value: Option<String>) -> Result<Option<String>, ContactError> {
    let Some(value) = bounded("avatarURL", value, MAX_URL_CHARS)? else {
        return Ok(None);
    };
    match url::Url::parse(&value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(Some(value)),
        _ => Err(ContactError::new(
            ErrorCode::InvalidUrl,
            format!("avatarURL '{value}' is not an http(s) URL"),
        )),
    }
}

fn primary_contact_method(value: Option<String>) -> Result<Option<String>, ContactError> {
    let Some(value) = text("primaryContactMethod", value)? else {
        return Ok(None);
    };
    let canonical = value.to_ascii_uppercase();
    if PRIMARY_CONTACT_METHODS.contains(&canonical.as_str()) {
        Ok(Some(canonical))
    } else {
        Err(ContactError::new(
            ErrorCode::InvalidPrimaryContactMethod,
            format!(
                "primaryContactMethod '{value}' is not one of {}",
                PRIMARY_CONTACT_METHODS.join(", ")
            ),
        ))
    }
}

/// Checks one entry's value and type; returns the normalised entry.
type EntryCheck = fn(&str, MethodDraft) -> Result<ContactMethod, ContactError>;

/// A list's entries, or `too.many.values` with its true count when it has too many.
fn entries<T>(field: &str, list: BoundedList<T>) -> Result<Vec<T>, ContactError> {
    list.within_limit().map_err(|total| {
        ContactError::new(
            ErrorCode::TooManyValues,
            format!("{field} has {total} entries, at most {MAX_LIST_ENTRIES} are allowed"),
        )
    })
}

fn methods(
    field: &str,
    list: Option<BoundedList<MethodDraft>>,
    check: EntryCheck,
) -> Result<Option<Vec<ContactMethod>>, ContactError> {
    let Some(list) = list else { return Ok(None) };
    let entries = entries(field, list)?
        .into_iter()
        .enumerate()
        .map(|(i, entry)| check(&format!("{field}[{i}]"), entry))
        .collect::<Result<Vec<_>, _>>()?;
    if entries.iter().filter(|e| e.primary).count() > 1 {
        return Err(ContactError::new(
            ErrorCode::MultiplePrimary,
            format!("{field} has more than one entry marked primary"),
        ));
    }
    Ok(Some(entries))
}

fn required_value(
    field: &str,
    entry: &MethodDraft,
    code: ErrorCode,
) -> Result<String, ContactError> {
    match entry.value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(ContactError::new(code, format!("{field}.value is missing"))),
    }
}

fn enum_type(
    field: &str,
    kind: Option<String>,
    allowed: &[&str],
) -> Result<Option<String>, ContactError> {
    let Some(kind) = kind.map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()) else {
        return Ok(None);
    };
    let canonical = kind.to_ascii_lowercase();
    if allowed.contains(&canonical.as_str()) {
        Ok(Some(canonical))
    } else {
        Err(ContactError::new(
            ErrorCode::InvalidType,
            format!("{field}.type '{kind}' is not one of {}", allowed.join(", ")),
        ))
    }
}

fn email(field: &str, entry: MethodDraft) -> Result<ContactMethod, ContactError> {
    let value = required_value(field, &entry, ErrorCode::InvalidEmail)?;
    if value.chars().count() > MAX_EMAIL_CHARS || !EmailAddress::is_valid(&value) {
        return Err(ContactError::new(
            ErrorCode::InvalidEmail,
            format!("{field}.value '{value}' is not a valid email address"),
        ));
    }
    Ok(ContactMethod {
        value,
        kind: enum_type(field, entry.kind, EMAIL_TYPES)?,
        primary: entry.primary.unwrap_or(false),
    })
}

fn phone(field: &str, entry: MethodDraft) -> Result<ContactMethod, ContactError> {
    let raw = required_value(field, &entry, ErrorCode::InvalidPhone)?;
    let value = normalize_phone(&raw).ok_or_else(|| {
        ContactError::new(
            ErrorCode::InvalidPhone,
            format!(
                "{field}.value '{raw}' is not a phone number (digits with an optional leading +, \
                 spaces, dots, dashes or parentheses; {} to {} digits)",
                PHONE_DIGITS.start(),
                PHONE_DIGITS.end()
            ),
        )
    })?;
    Ok(ContactMethod {
        value,
        kind: enum_type(field, entry.kind, PHONE_TYPES)?,
        primary: entry.primary.unwrap_or(false),
    })
}

/// `"+1 (400) 123-1234"` → `"+14001231234"`; `None` when it cannot be a phone number.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (plus, rest) = match raw.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", raw),
    };
    let mut digits = String::with_capacity(rest.len() + 1);
    digits.push_str(plus);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    PHONE_DIGITS
        .contains(&(digits.len() - plus.len()))
        .then_some(digits)
}

/// SIP addresses and IM accounts: any non-empty value; the type is free text.
fn free_text(field: &str, entry: MethodDraft) -> Result<ContactMethod, ContactError> {
    let value = required_value(field, &entry, ErrorCode::MissingValue)?;
    let value = text(&format!("{field}.value"), Some(value))?.unwrap_or_default();
    Ok(ContactMethod {
        value,
        kind: text(&format!("{field}.type"), entry.kind)?,
        primary: entry.primary.unwrap_or(false),
    })
}

fn groups(list: Option<BoundedList<String>>) -> Result<Option<Vec<String>>, ContactError> {
    let Some(list) = list else { return Ok(None) };
    let list = entries("groups", list)?;
    let mut groups = Vec::with_capacity(list.len());
    for (i, group) in list.into_iter().enumerate() {
        let field = format!("groups[{i}]");
        match text(&field, Some(group))? {
            Some(group) if !groups.contains(&group) => groups.push(group),
            Some(_) => {}
            None => {
                return Err(ContactError::new(
                    ErrorCode::MissingValue,
                    format!("{field} is empty"),
                ));
            }
        }
    }
    Ok(Some(groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named() -> ContactDraft {
        ContactDraft {
            first_name: Some("Ada".into()),
            ..Default::default()
        }
    }

    fn entry(value: &str, kind: Option<&str>, primary: bool) -> MethodDraft {
        MethodDraft {
            value: Some(value.into()),
            kind: kind.map(Into::into),
            primary: Some(primary),
        }
    }

    fn code(draft: ContactDraft) -> ErrorCode {
        validate(draft).unwrap_err().code
    }

    #[test]
    fn a_new_contact_needs_a_name_but_an_update_does_not() {
        assert_eq!(code(ContactDraft::default()), ErrorCode::MissingName);
        assert_eq!(
            code(ContactDraft {
                display_name: Some("   ".into()),
                ..Default::default()
            }),
            ErrorCode::MissingName
        );
        let update = ContactDraft {
            contact_id: Some("6847ee0f-5e9c-4403-9f0e-0aa8552f7828".into()),
            title: Some("GM".into()),
            ..Default::default()
        };
        assert!(validate(update).unwrap().target().is_update());
    }

    #[test]
    fn phone_numbers_are_normalised() {
        assert_eq!(
            normalize_phone("400 123 1234").as_deref(),
            Some("4001231234")
        );
        assert_eq!(
            normalize_phone("+1 (400) 123-1234").as_deref(),
            Some("+14001231234")
        );
        assert_eq!(normalize_phone("12"), None);
        assert_eq!(normalize_phone("call me"), None);
        assert_eq!(normalize_phone("1234567890123456"), None);
        assert_eq!(normalize_phone("+"), None);
    }

    #[test]
    fn each_rule_has_its_code() {
        let cases = [
            (
                ContactDraft {
                    contact_id: Some("42".into()),
                    ..named()
                },
                ErrorCode::InvalidContactId,
            ),
            (
                ContactDraft {
                    emails: Some(vec![entry("not-an-email", None, false)].into()),
                    ..named()
                },
                ErrorCode::InvalidEmail,
            ),
            (
                ContactDraft {
                    emails: Some(vec![entry("a@example.com", Some("pigeon"), false)].into()),
                    ..named()
                },
                ErrorCode::InvalidType,
            ),
            (
                ContactDraft {
                    phone_numbers: Some(vec![entry("12ab", None, false)].into()),
                    ..named()
                },
                ErrorCode::InvalidPhone,
            ),
            (
                ContactDraft {
                    phone_numbers: Some(vec![entry("123456", Some("yacht"), false)].into()),
                    ..named()
                },
                ErrorCode::InvalidType,
            ),
            (
                ContactDraft {
                    phone_numbers: Some(
                        vec![entry("123456", None, true), entry("654321", None, true)].into(),
                    ),
                    ..named()
                },
                ErrorCode::MultiplePrimary,
            ),
            (
                ContactDraft {
                    sip_addresses: Some(vec![entry(" ", None, false)].into()),
                    ..named()
                },
                ErrorCode::MissingValue,
            ),
            (
                ContactDraft {
                    primary_contact_method: Some("FAX".into()),
                    ..named()
                },
                ErrorCode::InvalidPrimaryContactMethod,
            ),
            (
                ContactDraft {
                    title: Some("x".repeat(MAX_TEXT_CHARS + 1)),
                    ..named()
                },
                ErrorCode::TooLong,
            ),
            (
                ContactDraft {
                    avatar_url: Some("ftp://x/a.png".into()),
                    ..named()
                },
                ErrorCode::InvalidUrl,
            ),
            (
                ContactDraft {
                    groups: Some(vec!["g".into(); MAX_LIST_ENTRIES + 1].into()),
                    ..named()
                },
                ErrorCode::TooManyValues,
            ),
        ];
        for (draft, expected) in cases {
            assert_eq!(code(draft.clone()), expected, "{draft:?}");
        }
    }

    #[test]
    fn enums_are_canonicalised() {
        let contact = validate(ContactDraft {
            primary_contact_method: Some("sipaddress".into()),
            emails: Some(vec![entry(" a@example.com ", Some("WORK"), true)].into()),
            ..named()
        })
        .unwrap();
        assert_eq!(
            contact.fields().primary_contact_method.as_deref(),
            Some("SIPADDRESS")
        );
        let email = &contact.fields().emails.as_ref().unwrap()[0];
        assert_eq!(
            (email.value.as_str(), email.kind.as_deref()),
            ("a@example.com", Some("work"))
        );
    }

    #[test]
    fn the_later_of_two_updates_of_one_contact_fails_with_409() {
        let update = ContactDraft {
            contact_id: Some("6847ee0f-5e9c-4403-9f0e-0aa8552f7828".into()),
            ..Default::default()
        };
        let batch = validate_batch(
            BatchId::for_message(Some("b"), ""),
            OrgId::parse("o").unwrap(),
            vec![Ok(update.clone()), Ok(named()), Ok(update)],
        );
        assert!(matches!(batch.entries()[0], Planned::Write { .. }));
        assert!(matches!(batch.entries()[1], Planned::Write { .. }));
        match &batch.entries()[2] {
            Planned::Failed(e) => assert_eq!(
                (e.code, e.code.status_code()),
                (ErrorCode::DuplicateInBatch, 409)
            ),
            other => panic!("expected a 409, got {other:?}"),
        }
    }
}
