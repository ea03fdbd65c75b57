//! The seed's namespaced XML `contactModRequest`, read with roxmltree (no DTD, so no
//! entity is ever expanded).

use super::*;

pub(super) fn read_xml(body: &[u8], limits: &Limits) -> Result<Request, Rejection> {
    let text = std::str::from_utf8(body)
        .map_err(|e| malformed(format!("the XML body is not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // The default options refuse any DTD, hence external entities and entity expansion.
    let document = roxmltree::Document::parse(text)
        .map_err(|e| malformed(format!("the body is not well-formed XML: {e}")))?;
    let root = document.root_element();
    if root.tag_name().name() != "contactModRequest" {
        return Err(malformed(format!(
            "the XML root element is <{}>, not <contactModRequest>",
            root.tag_name().name()
        )));
    }
    let single = |name: &str| {
        let mut found = elements(root).filter(|e| e.tag_name().name() == name);
        match (found.next(), found.next()) {
            (_, Some(_)) => Err(malformed(format!(
                "<contactModRequest> has more than one <{name}>"
            ))),
            (one, None) => Ok(one),
        }
    };
    let account_id = single("accountId")?
        .map(|node| element_text(node).map_err(malformed))
        .transpose()?
        .flatten();
    // The tree is bounded by the body's size; the entries built from it are not, so the
    // children of <contacts> (each one an entry) are counted first.
    let contacts = single("contacts")?.map(|list| {
        Contacts::counted(elements(list).count(), limits, || {
            elements(list).map(xml_contact).collect()
        })
    });
    Ok(Request {
        account_id,
        contacts,
    })
}

/// The element children of a node.
pub(super) fn elements<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> {
    node.children().filter(roxmltree::Node::is_element)
}

/// An element's text, trimmed; `None` when blank. An element holding elements is not text.
pub(super) fn element_text(node: roxmltree::Node<'_, '_>) -> Result<Option<String>, String> {
    if elements(node).next().is_some() {
        return Err(format!(
            "<{}> must hold text, not elements",
            node.tag_name().name()
        ));
    }
    let text: String = node.children().filter_map(|c| c.text()).collect();
    Ok(present(Some(&text)))
}

pub(super) fn xml_contact(node: roxmltree::Node<'_, '_>) -> Entry {
    let first_text = |name: &str| {
        elements(node)
            .find(|e| e.tag_name().name() == name)
            .and_then(|e| element_text(e).ok().flatten())
    };
    Entry {
        sent: Sent {
            contact_id: first_text("contactId"),
            name: first_text("name"),
        },
        fields: xml_fields(node).map_err(|detail| {
            ContactError::new(
                ErrorCode::InvalidContact,
                format!("not a DocuSign contact: {detail}"),
            )
        }),
    }
}

/// Sets a field from an element once; a second element of the same name is an error.
pub(super) fn set_once(
    slot: &mut Option<String>,
    node: roxmltree::Node<'_, '_>,
    seen: &mut Vec<String>,
) -> Result<(), String> {
    let name = node.tag_name().name();
    if seen.iter().any(|s| s == name) {
        return Err(format!("<{name}> appears more than once"));
    }
    seen.push(name.to_owned());
    *slot = element_text(node)?;
    Ok(())
}

pub(super) fn xml_fields(node: roxmltree::Node<'_, '_>) -> Result<Fields, String> {
    if node.tag_name().name() != "contact" {
        return Err(format!(
            "<contacts> holds <{}>, not <contact>",
            node.tag_name().name()
        ));
    }
    let mut fields = Fields::default();
    let mut seen = Vec::new();
    for child in elements(node) {
        match child.tag_name().name() {
            "contactId" => set_once(&mut fields.contact_id, child, &mut seen)?,
            "name" => set_once(&mut fields.name, child, &mut seen)?,
            "organization" => set_once(&mut fields.organization, child, &mut seen)?,
            "shared" => set_once(&mut fields.shared, child, &mut seen)?,
            "cloudProvider" => set_once(&mut fields.cloud_provider, child, &mut seen)?,
            "cloudProviderContainerId" => {
                set_once(&mut fields.cloud_provider_container_id, child, &mut seen)?
            }
            "signingGroup" => set_once(&mut fields.signing_group, child, &mut seen)?,
            "signingGroupName" => set_once(&mut fields.signing_group_name, child, &mut seen)?,
            // Blank emails are not entries; a list keeps its first entries up to the limit
            // and counts the rest, each still read (an unreadable one fails the contact).
            "emails" => {
                let emails =
                    list(child, "string", |e| element_text(e)).filter_map(Result::transpose);
                fields.emails = Some(emails.collect::<Result<_, _>>()?);
            }
            "contactPhoneNumbers" => {
                let phones = list(child, "contactPhoneNumber", xml_phone);
                fields.contact_phone_numbers = Some(phones.collect::<Result<_, _>>()?);
            }
            "signingGroupUsers" => {
                let users = list(child, "userInfo", xml_user);
                fields.signing_group_users = Some(users.collect::<Result<_, _>>()?);
            }
            // contactUri, isOwner, errorDetails: response-only; others: not DocuSign's.
            _ => {}
        }
    }
    Ok(fields)
}

/// A list element's items, read one by one, which must all be `<item>` elements.
pub(super) fn list<'a, 'input, T>(
    node: roxmltree::Node<'a, 'input>,
    item: &str,
    read: impl Fn(roxmltree::Node<'a, 'input>) -> Result<T, String>,
) -> impl Iterator<Item = Result<T, String>> {
    elements(node).map(move |child| {
        if child.tag_name().name() == item {
            read(child)
        } else {
            Err(format!(
                "<{}> holds <{}>, not <{item}>",
                node.tag_name().name(),
                child.tag_name().name()
            ))
        }
    })
}

pub(super) fn xml_phone(node: roxmltree::Node<'_, '_>) -> Result<Phone, String> {
    let mut phone = Phone::default();
    let mut seen = Vec::new();
    for child in elements(node) {
        match child.tag_name().name() {
            "phoneNumber" => set_once(&mut phone.phone_number, child, &mut seen)?,
            "phoneType" => set_once(&mut phone.phone_type, child, &mut seen)?,
            _ => {}
        }
    }
    Ok(phone)
}

pub(super) fn xml_user(node: roxmltree::Node<'_, '_>) -> Result<SigningGroupUser, String> {
    let mut user = SigningGroupUser::default();
    let mut seen = Vec::new();
    for child in elements(node) {
        let slot = match child.tag_name().name() {
            "userName" => &mut user.user_name,
            "userId" => &mut user.user_id,
            "email" => &mut user.email,
            "userType" => &mut user.user_type,
            "userStatus" => &mut user.user_status,
            "uri" => &mut user.uri,
            "loginStatus" => &mut user.login_status,
            "sendActivationEmail" => &mut user.send_activation_email,
            // activationAccessCode is a credential; errorDetails is response-only.
            _ => continue,
        };
        set_once(slot, child, &mut seen)?;
    }
    Ok(user)
}
