//! A `contactModRequest` in JSON: `{"contacts": [...]}` and an optional `accountId`.

use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JsonEnvelope<'a> {
    account_id: Option<AccountId>,
    #[serde(borrow)]
    contacts: Option<Vec<&'a RawValue>>,
}

/// DocuSign's accountId is an account number or a GUID; a number is taken as written.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum AccountId {
    Text(String),
    Number(serde_json::Number),
}

pub(super) fn read_json(body: &[u8], limits: &Limits) -> Result<Request, Rejection> {
    let envelope: JsonEnvelope<'_> = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("the body is not a DocuSign contactModRequest: {e}")))?;
    Ok(Request {
        account_id: envelope.account_id.map(|id| match id {
            AccountId::Text(text) => text,
            AccountId::Number(number) => number.to_string(),
        }),
        // Each contact stays a borrowed slice of the body until the list is counted.
        contacts: envelope.contacts.map(|raw| {
            Contacts::counted(raw.len(), limits, || {
                raw.into_iter().map(json_contact).collect()
            })
        }),
    })
}

pub(super) fn json_contact(raw: &RawValue) -> Entry {
    match serde_json::from_str::<Fields>(raw.get()) {
        Ok(fields) => Entry {
            sent: fields.sent(),
            fields: Ok(fields),
        },
        Err(e) => {
            // Still echo what can be read, so the failed entry of the answer is recognisable.
            let value: serde_json::Value = serde_json::from_str(raw.get()).unwrap_or_default();
            let text = |key: &str| present(value.get(key).and_then(|v| v.as_str()));
            Entry {
                sent: Sent {
                    contact_id: text("contactId"),
                    name: text("name"),
                },
                fields: Err(ContactError::new(
                    ErrorCode::InvalidContact,
                    format!("not a DocuSign contact: {e}"),
                )),
            }
        }
    }
}
