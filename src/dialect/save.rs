//! The "Save User Contacts" shape (seed 000): flat contacts carrying the saving account's
//! userName/password. The body is one contact, an array of them, or
//! `{"orgId", "contacts": [...]}`.

use super::{
    Answer, DecodedBatch, Dialect, FieldNames, IncomingMessage, JSON, Limits, Sample, SplitShape,
    check_count, has_any, require_json, resolve_org,
};
use crate::contact::model::MethodDraft;
use crate::contact::{Address, BoundedList, ContactDraft, ContactError, Credentials, ErrorCode};
use crate::rejection::{RejectCode, Rejection};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// The AMQP `type` of this shape.
pub const MESSAGE_TYPE: &str = "user-contacts.save";

/// This dialect in the registry.
pub const TYPE: super::MessageType = super::MessageType(&SaveUserContacts);

/// The Save User Contacts dialect (seed `000`): contacts saved by an account whose credentials they carry.
pub struct SaveUserContacts;

/// Validation names canonical fields; a Save client knows its own.
const FIELD_NAMES: FieldNames = FieldNames(&[
    ("phoneNumbers[0].value", "mobileNumber"),
    ("phoneNumbers[0]", "mobileNumber"),
    ("emails[0].value", "emailId"),
    ("emails[0]", "emailId"),
    ("groups[0]", "groupName"),
    ("address.street", "address"),
    ("address.city", "city"),
    ("address.state", "state"),
    ("address.country", "country"),
    ("address.zipCode", "zipCode"),
]);

/// An object body: the envelope when it has `contacts`, else a single contact (whose own
/// `orgId`, if any, is the org).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    org_id: Option<String>,
    #[serde(borrow)]
    contacts: Option<Vec<&'a RawValue>>,
}

/// One contact as the seed sends it. No `Debug`: it holds a password.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SaveContact {
    user_name: Option<String>,
    first_name: Option<String>,
    middle_name: Option<String>,
    last_name: Option<String>,
    mobile_number: Option<String>,
    email_id: Option<String>,
    birth_date: Option<String>,
    wedding_date: Option<String>,
    anniversary_date: Option<String>,
    address: Option<String>,
    city: Option<String>,
    state: Option<String>,
    country: Option<String>,
    zip_code: Option<String>,
    column1: Option<String>,
    column2: Option<String>,
    column3: Option<String>,
    column4: Option<String>,
    column5: Option<String>,
    group_name: Option<String>,
}

impl Dialect for SaveUserContacts {
    fn message_type(&self) -> &'static str {
        MESSAGE_TYPE
    }

    fn carries_credentials(&self) -> bool {
        true
    }

    /// Contacts with `userName`, `password` or `mobileNumber`, which only this seed has.
    fn recognises(&self, sample: &Sample<'_>) -> Option<&'static str> {
        const SAVE_KEYS: &[&str] = &["userName", "password", "mobileNumber"];
        let contacts = sample.json_contacts();
        contacts
            .iter()
            .any(|c| has_any(c, SAVE_KEYS))
            .then_some(JSON)
    }

    fn split_shape(&self, media_type: Option<&str>) -> Option<SplitShape> {
        matches!(media_type, None | Some(JSON)).then_some(SplitShape::JsonContacts)
    }

    fn decode(
        &self,
        message: &IncomingMessage<'_>,
        limits: &Limits,
    ) -> Result<DecodedBatch, Rejection> {
        require_json(message.content_type)?;
        let malformed = |e: serde_json::Error| {
            Rejection::new(
                RejectCode::MalformedBody,
                format!(
                    "the body is not a Save User Contacts contact, array of contacts or \
                     {{\"orgId\", \"contacts\"}} object: {e}"
                ),
            )
        };
        let body: &RawValue = serde_json::from_slice(message.body).map_err(malformed)?;
        let (org_in_body, raw_contacts) = if body.get().starts_with('[') {
            (None, serde_json::from_str(body.get()).map_err(malformed)?)
        } else {
            let envelope: Envelope<'_> = serde_json::from_str(body.get()).map_err(malformed)?;
            match envelope.contacts {
                Some(contacts) => (envelope.org_id, contacts),
                None => (envelope.org_id, vec![body]),
            }
        };
        let org_id = resolve_org(org_in_body.as_deref(), message.org_id_header)?;
        check_count(raw_contacts.len(), limits, &Some(org_id.clone()))?;
        Ok(DecodedBatch {
            org_id,
            contacts: raw_contacts.into_iter().map(contact).collect(),
            answer: Answer::Renamed(FIELD_NAMES),
        })
    }
}

/// The body with every `password` member removed, at any depth and whatever the envelope,
/// re-serialised (key order kept); `None` when it is not JSON.
pub fn without_passwords(body: &[u8]) -> Option<Vec<u8>> {
    let mut body: serde_json::Value = serde_json::from_slice(body).ok()?;
    hide_passwords(&mut body, None);
    serde_json::to_vec(&body).ok()
}

/// Removes every `password` member of a JSON value (at any depth), or with `mask` replaces
/// its value, for showing a message to people.
pub fn hide_passwords(value: &mut serde_json::Value, mask: Option<&str>) {
    match value {
        serde_json::Value::Object(fields) => {
            match mask {
                None => {
                    fields.shift_remove("password");
                }
                Some(mask) => {
                    if let Some(password) = fields.get_mut("password") {
                        *password = serde_json::Value::String(mask.to_owned());
                    }
                }
            }
            fields.values_mut().for_each(|v| hide_passwords(v, mask));
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().for_each(|v| hide_passwords(v, mask));
        }
        _ => {}
    }
}

fn contact(raw: &RawValue) -> Result<ContactDraft, ContactError> {
    let invalid = |why: String| {
        ContactError::new(
            ErrorCode::InvalidContact,
            format!("not a Save User Contacts contact: {why}"),
        )
    };
    let mut fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(raw.get()).map_err(|e| invalid(e.to_string()))?;
    // Taken out first: serde's messages quote the value of a field of the wrong type, and
    // this one must never reach a result.
    let password = match fields.remove("password") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(password)) => Some(password),
        Some(_) => return Err(invalid("password must be a string".into())),
    };
    let c: SaveContact = serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|e| invalid(e.to_string()))?;
    let present = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
    let missing: Vec<&str> = [
        ("userName", &c.user_name),
        ("password", &password),
        ("firstName", &c.first_name),
        ("lastName", &c.last_name),
        ("mobileNumber", &c.mobile_number),
    ]
    .into_iter()
    .filter(|(_, value)| !present(value))
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        return Err(ContactError::new(
            ErrorCode::MissingField,
            format!("required field(s) missing or empty: {}", missing.join(", ")),
        ));
    }
    let custom_fields: BTreeMap<String, String> = [
        ("column1", c.column1),
        ("column2", c.column2),
        ("column3", c.column3),
        ("column4", c.column4),
        ("column5", c.column5),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_owned(), value?)))
    .collect();
    let address = Address {
        street: c.address,
        city: c.city,
        state: c.state,
        country: c.country,
        zip_code: c.zip_code,
    };
    // The seed sends "" for an email it does not have.
    let email = c.email_id.filter(|e| !e.trim().is_empty());
    Ok(ContactDraft {
        first_name: c.first_name,
        middle_name: c.middle_name,
        last_name: c.last_name,
        phone_numbers: Some(BoundedList::from(vec![MethodDraft {
            value: c.mobile_number,
            kind: Some("mobile".into()),
            primary: Some(true),
        }])),
        emails: email.map(|value| {
            BoundedList::from(vec![MethodDraft {
                value: Some(value),
                kind: None,
                primary: Some(true),
            }])
        }),
        birth_date: c.birth_date,
        wedding_date: c.wedding_date,
        anniversary_date: c.anniversary_date,
        address: (address != Address::default()).then_some(address),
        custom_fields: (!custom_fields.is_empty()).then_some(custom_fields),
        // The seed sends "" for an optional field it does not have.
        groups: c
            .group_name
            .filter(|g| !g.trim().is_empty())
            .map(|g| BoundedList::from(vec![g])),
        credentials: Some(Credentials {
            user_name: c.user_name.unwrap_or_default().trim().to_owned(),
            password: password.unwrap_or_default(),
        }),
        ..ContactDraft::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_body(body: &str) -> Result<DecodedBatch, Rejection> {
        crate::dialect::decode_json(MESSAGE_TYPE, body)
    }

    /// The seed's example request, as JSON.
    const SEED: &str = r#"{"userName": "exampleUser", "password": "examplePass",
        "firstName": "John", "lastName": "Doe", "mobileNumber": "1234567890", "emailId": "",
        "birthDate": "1990-01-01", "address": "1234 Main St", "city": "Anytown",
        "state": "Anystate", "country": "USA", "zipCode": "12345"}"#;

    #[test]
    fn reads_the_seed_example_as_one_contact() {
        let batch = decode_body(SEED).unwrap();
        assert_eq!(batch.org_id.as_str(), "o1");
        let [Ok(contact)] = batch.contacts.as_slice() else {
            panic!("{:?}", batch.contacts)
        };
        assert_eq!(contact.first_name.as_deref(), Some("John"));
        assert_eq!(contact.birth_date.as_deref(), Some("1990-01-01"));
        assert_eq!(contact.emails, None, "an empty emailId is no email");
        let phone = &contact.phone_numbers.as_ref().unwrap().kept()[0];
        assert_eq!(phone.value.as_deref(), Some("1234567890"));
        assert_eq!(phone.kind.as_deref(), Some("mobile"));
        let address = contact.address.as_ref().unwrap();
        assert_eq!(address.street.as_deref(), Some("1234 Main St"));
        assert_eq!(address.zip_code.as_deref(), Some("12345"));
        let credentials = contact.credentials.as_ref().unwrap();
        assert_eq!(credentials.user_name, "exampleUser");
        assert!(!format!("{contact:?}").contains("examplePass"));
    }

    #[test]
    fn accepts_an_array_and_an_envelope() {
        let array = format!("[{SEED}, {SEED}]");
        assert_eq!(decode_body(&array).unwrap().contacts.len(), 2);
        let envelope = format!(r#"{{"orgId": "o1", "contacts": [{SEED}]}}"#);
        assert_eq!(decode_body(&envelope).unwrap().contacts.len(), 1);
        let other_org = format!(r#"{{"orgId": "o2", "contacts": [{SEED}]}}"#);
        assert_eq!(
            decode_body(&other_org).unwrap_err().code,
            RejectCode::OrgIdMismatch
        );
        assert_eq!(
            decode_body("nope").unwrap_err().code,
            RejectCode::MalformedBody
        );
    }

    #[test]
    fn a_password_of_the_wrong_type_is_not_quoted() {
        let batch = decode_body(
            r#"[{"userName": "u", "password": 12345678, "firstName": "A", "lastName": "B",
                 "mobileNumber": "123", "groupName": ""}]"#,
        )
        .unwrap();
        let error = batch.contacts[0].as_ref().unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidContact);
        assert!(!error.message.contains("12345678"), "{}", error.message);
        let blank_group = decode_body(&format!(
            r#"[{}]"#,
            SEED.replace("\"zipCode\"", "\"groupName\": \"\", \"zipCode\"")
        ))
        .unwrap();
        assert_eq!(blank_group.contacts[0].as_ref().unwrap().groups, None);
    }

    #[test]
    fn the_id_digest_of_a_save_body_ignores_its_passwords() {
        use crate::dialect::id_digest;
        let digest = |kind: &str, body: &str| id_digest(Some(kind), body.as_bytes());
        let one = digest(MESSAGE_TYPE, SEED);
        let other_password = SEED.replace("examplePass", "otherPass");
        assert_eq!(one, digest(MESSAGE_TYPE, &other_password));
        assert_ne!(one, digest(MESSAGE_TYPE, &SEED.replace("John", "Jon")));
        // Whatever the envelope, and under a type no dialect reads.
        for body in [
            format!(r#"{{"orgId": "o1", "contacts": [{SEED}]}}"#),
            format!(r#"{{"contacts": null, "x": [{{"y": {SEED}}}]}}"#),
        ] {
            let stripped = String::from_utf8(without_passwords(body.as_bytes()).unwrap()).unwrap();
            assert!(!stripped.contains("examplePass"), "{stripped}");
            assert_eq!(
                digest("User-Contacts.Save", &body),
                digest("User-Contacts.Save", &body.replace("examplePass", "x"))
            );
        }
        // Unreadable and mentioning a password: no id derived from it at all.
        assert_eq!(digest(MESSAGE_TYPE, r#"{"password": "examplePass","#), None);
        assert!(digest(MESSAGE_TYPE, "not json, no secrets").is_some());
        // Bodies of the other dialects keep their plain hash.
        assert_eq!(
            digest("webex.contacts.bulk", SEED),
            Some(crate::ids::body_sha256(SEED.as_bytes()))
        );
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let batch =
            decode_body(r#"[{"userName": "u", "firstName": "A", "lastName": " "}]"#).unwrap();
        let error = batch.contacts[0].as_ref().unwrap_err();
        assert_eq!(error.code, ErrorCode::MissingField);
        assert_eq!(
            error.message,
            "required field(s) missing or empty: password, lastName, mobileNumber"
        );
    }
}
