//! The "Update User Contact" chat-bot shape (seed 003): one user, addressed by an email
//! address or chat id, whose phone number and email address change. The requester gets the
//! seed's reply (`responseType`, `responseId`, `responseMessages`).

use super::{
    Answer, DecodedBatch, Dialect, FieldNames, IncomingMessage, JSON, Limits, RequesterReply,
    Sample, check_count, has_any, require_json, resolve_org,
};
use crate::contact::model::MethodDraft;
use crate::contact::{BoundedList, ContactDraft, ContactError, ErrorCode};
use crate::rejection::{RejectCode, Rejection};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The AMQP `type` of this shape.
pub const MESSAGE_TYPE: &str = "user-contact.update";

/// This dialect in the registry.
pub const TYPE: super::MessageType = super::MessageType(&UpdateUserContact);

/// The seed's success text, verbatim (trailing space included): chat clients may match it.
pub const SUCCESS_TEXT: &str = "User Contact details updated successfully ";

/// The Update User Contact dialect (seed `003`): a user's primary phone and email, answered as the chat bot expects.
pub struct UpdateUserContact;

/// Validation names canonical fields; a chat-bot client knows its own.
const FIELD_NAMES: FieldNames = FieldNames(&[
    ("phoneNumbers[0].value", "phoneNumber"),
    ("emails[0].value", "emailId"),
]);

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Request {
    /// The seed's parameter table names the user's id `uuid`…
    uuid: Option<String>,
    org_id: Option<String>,
    conversation_request: Option<ConversationRequest>,
    query_info: Option<QueryInfo>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ConversationRequest {
    user_info: Option<UserInfo>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserInfo {
    /// …and its example request `conversationRequest.userInfo.uid`.
    uid: Option<String>,
    uuid: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct QueryInfo {
    parameters: Option<Parameters>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Parameters {
    params: Option<Params>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Params {
    account_info: Option<AccountInfo>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct AccountInfo {
    user_contact: Option<UserContact>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct UserContact {
    phone_number: Option<String>,
    email_id: Option<String>,
}

impl Dialect for UpdateUserContact {
    fn message_type(&self) -> &'static str {
        MESSAGE_TYPE
    }

    /// A chat-bot integration: a person typed the new number and waits for the reply.
    fn interactive(&self) -> bool {
        true
    }

    fn requester_reply(&self, result_body: &[u8]) -> Option<RequesterReply> {
        Some(RequesterReply {
            body: reply(result_body),
            content_type: JSON,
        })
    }

    /// An object with `conversationRequest` or `queryInfo` at its top.
    fn recognises(&self, sample: &Sample<'_>) -> Option<&'static str> {
        const UPDATE_KEYS: &[&str] = &["conversationRequest", "queryInfo"];
        match sample {
            Sample::Json(serde_json::Value::Object(top)) if has_any(top, UPDATE_KEYS) => Some(JSON),
            _ => None,
        }
    }

    fn decode(
        &self,
        message: &IncomingMessage<'_>,
        limits: &Limits,
    ) -> Result<DecodedBatch, Rejection> {
        require_json(message.content_type)?;
        let malformed = |why: String| {
            Rejection::new(
                RejectCode::MalformedBody,
                format!("the body is not an Update User Contact request: {why}"),
            )
        };
        let body: &RawValue =
            serde_json::from_slice(message.body).map_err(|e| malformed(e.to_string()))?;
        // serde would also read a struct from an array; the seed's request is an object.
        if !body.get().starts_with('{') {
            return Err(malformed("it is not a JSON object".into()));
        }
        let request: Request =
            serde_json::from_str(body.get()).map_err(|e| malformed(e.to_string()))?;
        let org_id = resolve_org(request.org_id.as_deref(), message.org_id_header)?;
        // One user, one contact: still over a limit of none.
        check_count(1, limits, &Some(org_id.clone()))?;
        Ok(DecodedBatch {
            org_id,
            contacts: vec![contact(request)],
            answer: Answer::Renamed(FIELD_NAMES),
        })
    }
}

fn contact(request: Request) -> Result<ContactDraft, ContactError> {
    let user_info = request
        .conversation_request
        .and_then(|c| c.user_info)
        .unwrap_or_default();
    let given = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let ids: Vec<String> = [request.uuid, user_info.uid, user_info.uuid]
        .into_iter()
        .filter_map(given)
        .collect();
    let Some(user) = ids.first().cloned() else {
        return Err(ContactError::new(
            ErrorCode::MissingField,
            "the user's id is missing: set conversationRequest.userInfo.uid (or uuid)",
        ));
    };
    if let Some(other) = ids.iter().find(|id| **id != user) {
        return Err(ContactError::new(
            ErrorCode::InvalidValue,
            format!("the request names two users, '{user}' and '{other}'"),
        ));
    }
    let user_contact = request
        .query_info
        .and_then(|q| q.parameters)
        .and_then(|p| p.params)
        .and_then(|p| p.account_info)
        .and_then(|a| a.user_contact)
        .unwrap_or_default();
    let (phone, email) = (
        given(user_contact.phone_number),
        given(user_contact.email_id),
    );
    if phone.is_none() && email.is_none() {
        return Err(ContactError::new(
            ErrorCode::MissingField,
            "queryInfo.parameters.params.accountInfo.userContact needs a phoneNumber or an emailId",
        ));
    }
    let primary = |value: Option<String>| {
        value.map(|value| {
            BoundedList::from(vec![MethodDraft {
                value: Some(value),
                kind: None,
                primary: Some(true),
            }])
        })
    };
    Ok(ContactDraft {
        lookup: Some(user),
        phone_numbers: primary(phone),
        emails: primary(email),
        ..ContactDraft::default()
    })
}

/// What the reply needs of a published result.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultSummary {
    batch_id: String,
    #[serde(default)]
    failed_contacts: Vec<FailureSummary>,
    error: Option<FailureSummary>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailureSummary {
    #[serde(alias = "message")]
    error_message: String,
    status_code: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Reply {
    response_type: &'static str,
    response_id: String,
    response_messages: [ResponseMessage; 1],
    /// Not in the seed: the HTTP-style status, for clients that act on more than the text.
    status_code: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseMessage {
    simple_response: SimpleResponse,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SimpleResponse {
    response_text: String,
}

/// The seed's reply made from a result body (a fresh one or a replayed one alike).
pub fn reply(result_body: &[u8]) -> Vec<u8> {
    let (response_id, text, status_code) =
        match serde_json::from_slice::<ResultSummary>(result_body) {
            Ok(result) => match result.error.or(result.failed_contacts.into_iter().next()) {
                Some(failure) => (
                    result.batch_id,
                    format!(
                        "User Contact details could not be updated: {}",
                        failure.error_message
                    ),
                    failure.status_code,
                ),
                None if result.dry_run => (
                    result.batch_id,
                    "User Contact details can be updated (dry run, nothing changed)".to_owned(),
                    200,
                ),
                None => (result.batch_id, SUCCESS_TEXT.to_owned(), 200),
            },
            // Never happens for a result this worker wrote; said plainly if it does.
            Err(_) => (
                String::new(),
                "User Contact details could not be updated: internal error".to_owned(),
                500,
            ),
        };
    let reply = Reply {
        response_type: "text",
        response_id,
        response_messages: [ResponseMessage {
            simple_response: SimpleResponse {
                response_text: text,
            },
        }],
        status_code,
    };
    serde_json::to_vec(&reply).expect("a reply always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_body(body: &str) -> Result<DecodedBatch, Rejection> {
        crate::dialect::decode_json(MESSAGE_TYPE, body)
    }

    fn request(user_info: &str, user_contact: &str) -> String {
        format!(
            r#"{{"response": {{}}, "conversationRequest": {{"userInfo": {user_info}, "channel": "web"}},
               "languageCode": "en-US", "queryInfo": {{"interestType": "update-address",
               "parameters": {{"params": {{"accountInfo": {{"userContact": {user_contact}}}}}}}}}}}"#
        )
    }

    #[test]
    fn reads_the_seed_shape_with_uid_or_uuid() {
        for user_info in [
            r#"{"uid": "ram123@gmail.com"}"#,
            r#"{"uuid": "ram123@gmail.com"}"#,
        ] {
            let body = request(
                user_info,
                r#"{"phoneNumber": "+1 400 123 1234", "emailId": ""}"#,
            );
            let batch = decode_body(&body).unwrap();
            let contact = batch.contacts[0].as_ref().unwrap();
            assert_eq!(contact.lookup.as_deref(), Some("ram123@gmail.com"));
            assert_eq!(contact.emails, None);
            let phone = &contact.phone_numbers.as_ref().unwrap().kept()[0];
            assert_eq!(phone.value.as_deref(), Some("+1 400 123 1234"));
            assert_eq!(phone.primary, Some(true));
        }
        let top_level = r#"{"uuid": "chat-42", "queryInfo": {"parameters": {"params": {"accountInfo": {"userContact": {"emailId": "a@b.co"}}}}}}"#;
        let batch = decode_body(top_level).unwrap();
        assert_eq!(
            batch.contacts[0].as_ref().unwrap().lookup.as_deref(),
            Some("chat-42")
        );
    }

    #[test]
    fn a_request_without_user_or_contact_fails_with_a_reason() {
        let no_user = request("{}", r#"{"emailId": "a@b.co"}"#);
        let error = decode_body(&no_user)
            .unwrap()
            .contacts
            .remove(0)
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::MissingField);
        let nothing = request(r#"{"uid": "u"}"#, "{}");
        let error = decode_body(&nothing)
            .unwrap()
            .contacts
            .remove(0)
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::MissingField);
        let two = request(r#"{"uid": "a", "uuid": "b"}"#, r#"{"emailId": "a@b.co"}"#);
        let error = decode_body(&two).unwrap().contacts.remove(0).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidValue);
        assert_eq!(
            decode_body("[]").unwrap_err().code,
            RejectCode::MalformedBody
        );
    }

    #[test]
    fn the_reply_has_the_seed_shape() {
        let ok: serde_json::Value = serde_json::from_slice(&reply(
            br#"{"batchId": "b1", "status": "succeeded", "failedContacts": []}"#,
        ))
        .unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"responseType": "text", "responseId": "b1",
                "responseMessages": [{"simpleResponse": {"responseText": SUCCESS_TEXT}}],
                "statusCode": 200})
        );
        let failed: serde_json::Value = serde_json::from_slice(&reply(
            br#"{"batchId": "b2", "failedContacts": [{"id": "0", "errorCode": "contact.not.found", "errorMessage": "no contact", "statusCode": 404}]}"#,
        ))
        .unwrap();
        assert_eq!(failed["statusCode"], 404);
        assert_eq!(
            failed["responseMessages"][0]["simpleResponse"]["responseText"],
            "User Contact details could not be updated: no contact"
        );
        let rejected: serde_json::Value = serde_json::from_slice(&reply(
            br#"{"batchId": "b3", "error": {"code": "missing.org.id", "message": "no org", "statusCode": 400}}"#,
        ))
        .unwrap();
        assert_eq!(rejected["statusCode"], 400);
    }
}
