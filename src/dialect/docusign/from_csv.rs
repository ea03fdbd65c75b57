//! One contact per row after a header row (columns in the module documentation).

use super::*;

/// The CSV columns (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
    ContactId,
    Name,
    Emails,
    Organization,
    Shared,
    /// A phone number of this `phoneType`.
    Phone(&'static str),
    CloudProvider,
    CloudProviderContainerId,
    SigningGroup,
    SigningGroupName,
    AccountId,
}

pub(super) const CSV_COLUMNS: &[(&str, Column)] = &[
    ("contactId", Column::ContactId),
    ("name", Column::Name),
    ("emails", Column::Emails),
    ("organization", Column::Organization),
    ("shared", Column::Shared),
    ("homePhone", Column::Phone("home")),
    ("mobilePhone", Column::Phone("mobile")),
    ("workPhone", Column::Phone("work")),
    ("otherPhone", Column::Phone("other")),
    ("faxPhone", Column::Phone("fax")),
    ("cloudProvider", Column::CloudProvider),
    ("cloudProviderContainerId", Column::CloudProviderContainerId),
    ("signingGroup", Column::SigningGroup),
    ("signingGroupName", Column::SigningGroupName),
    ("accountId", Column::AccountId),
];

pub(super) fn read_csv(body: &[u8], limits: &Limits) -> Result<Request, Rejection> {
    let mut reader = csv::ReaderBuilder::new().from_reader(body);
    let header = reader
        .headers()
        .map_err(|e| malformed(format!("the CSV header row is not readable: {e}")))?
        .clone();
    if header.iter().all(|name| name.trim().is_empty()) {
        return Err(malformed("the CSV body has no header row"));
    }
    let mut columns: Vec<Column> = Vec::with_capacity(header.len());
    for (i, raw) in header.iter().enumerate() {
        // A UTF-8 byte order mark sticks to the first header name.
        let name = if i == 0 {
            raw.trim_start_matches('\u{feff}')
        } else {
            raw
        }
        .trim();
        let Some((canonical, column)) = CSV_COLUMNS
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
        else {
            let known: Vec<&str> = CSV_COLUMNS.iter().map(|(c, _)| *c).collect();
            return Err(malformed(format!(
                "unknown CSV column '{name}' (known: {})",
                known.join(", ")
            )));
        };
        if columns.contains(column) {
            return Err(malformed(format!("CSV column '{canonical}' appears twice")));
        }
        columns.push(*column);
    }

    let mut account_id: Option<String> = None;
    let mut contacts = Vec::new();
    for (index, row) in reader.records().enumerate() {
        if index == limits.max_contacts {
            // One row over the limit: the rest is neither read nor counted.
            return Ok(Request {
                account_id,
                contacts: Some(Contacts {
                    count: index + 1,
                    counted_all: false,
                    entries: Vec::new(),
                }),
            });
        }
        // Row 1 is the header, as a spreadsheet numbers them.
        let number = index + 2;
        let row = row.map_err(|e| malformed(format!("CSV row {number} is not readable: {e}")))?;
        let mut fields = Fields::default();
        for (column, cell) in columns.iter().zip(row.iter()) {
            let Some(cell) = present(Some(cell)) else {
                continue;
            };
            match column {
                Column::ContactId => fields.contact_id = Some(cell),
                Column::Name => fields.name = Some(cell),
                Column::Emails => {
                    fields.emails =
                        Some(cell.split(';').filter_map(|e| present(Some(e))).collect());
                }
                Column::Organization => fields.organization = Some(cell),
                Column::Shared => fields.shared = Some(cell),
                Column::Phone(kind) => {
                    fields
                        .contact_phone_numbers
                        .get_or_insert_with(BoundedList::default)
                        .push(Phone {
                            phone_number: Some(cell),
                            phone_type: Some((*kind).to_owned()),
                        });
                }
                Column::CloudProvider => fields.cloud_provider = Some(cell),
                Column::CloudProviderContainerId => {
                    fields.cloud_provider_container_id = Some(cell);
                }
                Column::SigningGroup => fields.signing_group = Some(cell),
                Column::SigningGroupName => fields.signing_group_name = Some(cell),
                Column::AccountId => match &account_id {
                    Some(earlier) if *earlier != cell => {
                        return Err(Rejection::new(
                            RejectCode::OrgIdMismatch,
                            format!(
                                "CSV row {number} has accountId '{cell}', an earlier row '{earlier}'"
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => account_id = Some(cell),
                },
            }
        }
        contacts.push(Entry {
            sent: fields.sent(),
            fields: Ok(fields),
        });
    }
    Ok(Request {
        account_id,
        contacts: Some(Contacts {
            count: contacts.len(),
            counted_all: true,
            entries: contacts,
        }),
    })
}
