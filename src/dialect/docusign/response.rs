//! `contactUpdateResponse`: one entry per request contact with its `errorDetails`, as JSON
//! or as the seed's XML.

use super::*;

/// One entry of `contactUpdateResponse`, in DocuSign's names. The field order is the seed's
/// JSON response; the XML writer uses the seed's XML order (alphabetical) instead.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResponseContact {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) signing_group_users: Vec<ResponseUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) contact_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) emails: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) organization: Option<String>,
    /// DocuSign's `shared` is a string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) shared: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) signing_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) signing_group_name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) contact_phone_numbers: Vec<ResponsePhone>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cloud_provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cloud_provider_container_id: Option<String>,
    pub(super) error_details: ErrorDetails,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResponseUser {
    #[serde(flatten)]
    pub(super) user: SigningGroupUser,
    pub(super) error_details: ErrorDetails,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResponsePhone {
    pub(super) phone_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) phone_type: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErrorDetails {
    pub(super) error_code: String,
    pub(super) message: String,
}

impl Default for ErrorDetails {
    fn default() -> Self {
        Self {
            error_code: "SUCCESS".into(),
            message: String::new(),
        }
    }
}

impl ResponseContact {
    /// A stored contact, from its stored (canonical) fields.
    pub(super) fn stored(stored: &StoredContact) -> Self {
        let fields = &stored.fields;
        Self {
            signing_group_users: fields
                .signing_group_users
                .iter()
                .flatten()
                .map(|user| ResponseUser {
                    user: user.clone(),
                    error_details: ErrorDetails::default(),
                })
                .collect(),
            contact_id: Some(stored.contact_id.to_string()),
            name: fields.display_name.clone(),
            emails: fields
                .emails
                .iter()
                .flatten()
                .map(|e| e.value.clone())
                .collect(),
            organization: fields.company_name.clone(),
            shared: fields.shared.map(|s| if s { "true" } else { "false" }),
            signing_group: fields.signing_group.clone(),
            signing_group_name: fields.signing_group_name.clone(),
            contact_phone_numbers: fields
                .phone_numbers
                .iter()
                .flatten()
                .map(|p| ResponsePhone {
                    phone_number: p.value.clone(),
                    phone_type: p.kind.clone(),
                })
                .collect(),
            cloud_provider: fields.cloud_provider.clone(),
            cloud_provider_container_id: fields.cloud_provider_container_id.clone(),
            error_details: ErrorDetails::default(),
        }
    }
}

/// The seed's XML `contactUpdateResponse`, indented like the seed.
pub(super) fn response_xml(contacts: &[ResponseContact]) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    write_response(&mut writer, contacts).expect("writing XML into a Vec cannot fail");
    String::from_utf8(writer.into_inner()).expect("quick-xml writes the UTF-8 text it is given")
}

/// The seed's 400 answer, `errorDetails`, for a batch refused as a whole.
pub(super) fn error_details_xml(details: &ErrorDetails) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.create_element("errorDetails")
        .with_attribute(("xmlns:i", XSI_NS))
        .with_attribute(("xmlns", DOCUSIGN_NS))
        .write_inner_content(|w| {
            leaf(w, "errorCode", Some(&details.error_code))?;
            w.create_element("message")
                .write_text_content(text_event(&details.message))?;
            Ok(())
        })
        .expect("writing XML into a Vec cannot fail");
    String::from_utf8(w.into_inner()).expect("quick-xml writes the UTF-8 text it is given")
}

pub(super) fn write_response(
    w: &mut Writer<Vec<u8>>,
    contacts: &[ResponseContact],
) -> io::Result<()> {
    w.create_element("contactUpdateResponse")
        .with_attribute(("xmlns:i", XSI_NS))
        .with_attribute(("xmlns", DOCUSIGN_NS))
        .write_inner_content(|w| {
            w.create_element("contacts")
                .write_inner_content(|w| contacts.iter().try_for_each(|c| write_contact(w, c)))?;
            Ok(())
        })?;
    Ok(())
}

/// One `<contact>`, its elements in the seed's (alphabetical) order.
pub(super) fn write_contact(w: &mut Writer<Vec<u8>>, c: &ResponseContact) -> io::Result<()> {
    w.create_element("contact").write_inner_content(|w| {
        leaf(w, "cloudProvider", c.cloud_provider.as_deref())?;
        leaf(
            w,
            "cloudProviderContainerId",
            c.cloud_provider_container_id.as_deref(),
        )?;
        leaf(w, "contactId", c.contact_id.as_deref())?;
        if !c.contact_phone_numbers.is_empty() {
            w.create_element("contactPhoneNumbers")
                .with_attribute(("xmlns:d4p1", PHONE_NS))
                .write_inner_content(|w| {
                    for phone in &c.contact_phone_numbers {
                        w.create_element("d4p1:contactPhoneNumber")
                            .write_inner_content(|w| {
                                leaf(w, "d4p1:phoneNumber", Some(&phone.phone_number))?;
                                leaf(w, "d4p1:phoneType", phone.phone_type.as_deref())
                            })?;
                    }
                    Ok(())
                })?;
        }
        if !c.emails.is_empty() {
            w.create_element("emails").write_inner_content(|w| {
                c.emails
                    .iter()
                    .try_for_each(|email| leaf(w, "string", Some(email)))
            })?;
        }
        write_error_details(w, &c.error_details)?;
        leaf(w, "name", c.name.as_deref())?;
        leaf(w, "organization", c.organization.as_deref())?;
        leaf(w, "shared", c.shared)?;
        leaf(w, "signingGroup", c.signing_group.as_deref())?;
        leaf(w, "signingGroupName", c.signing_group_name.as_deref())?;
        if !c.signing_group_users.is_empty() {
            w.create_element("signingGroupUsers")
                .write_inner_content(|w| {
                    c.signing_group_users
                        .iter()
                        .try_for_each(|u| write_user(w, u))
                })?;
        }
        Ok(())
    })?;
    Ok(())
}

pub(super) fn write_user(w: &mut Writer<Vec<u8>>, u: &ResponseUser) -> io::Result<()> {
    let user = &u.user;
    w.create_element("userInfo").write_inner_content(|w| {
        leaf(w, "email", user.email.as_deref())?;
        write_error_details(w, &u.error_details)?;
        leaf(w, "loginStatus", user.login_status.as_deref())?;
        leaf(
            w,
            "sendActivationEmail",
            user.send_activation_email.as_deref(),
        )?;
        leaf(w, "uri", user.uri.as_deref())?;
        leaf(w, "userId", user.user_id.as_deref())?;
        leaf(w, "userName", user.user_name.as_deref())?;
        leaf(w, "userStatus", user.user_status.as_deref())?;
        leaf(w, "userType", user.user_type.as_deref())
    })?;
    Ok(())
}

pub(super) fn write_error_details(
    w: &mut Writer<Vec<u8>>,
    details: &ErrorDetails,
) -> io::Result<()> {
    w.create_element("errorDetails").write_inner_content(|w| {
        leaf(w, "errorCode", Some(&details.error_code))?;
        // The seed writes an empty message as `<message></message>`, so it is never omitted.
        w.create_element("message")
            .write_text_content(text_event(&details.message))?;
        Ok(())
    })?;
    Ok(())
}

/// A text element, omitted when the value is absent or empty.
pub(super) fn leaf(w: &mut Writer<Vec<u8>>, name: &str, value: Option<&str>) -> io::Result<()> {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        w.create_element(name)
            .write_text_content(text_event(value))?;
    }
    Ok(())
}

/// Element text, escaped by quick-xml. Only `<`, `>` and `&` need escaping in text, so
/// quotes stay readable.
pub(super) fn text_event(value: &str) -> BytesText<'static> {
    BytesText::from_escaped(partial_escape(xml_chars(value).into_owned()).into_owned())
}

/// The text without the characters XML 1.0 cannot carry even escaped (most C0 controls).
/// Stored values never hold them, but an echoed value of a failed contact may.
pub(super) fn xml_chars(text: &str) -> Cow<'_, str> {
    let allowed = |c: char| !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    if text.chars().all(allowed) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().filter(|c| allowed(*c)).collect())
    }
}
