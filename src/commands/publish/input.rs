//! Reading a producer's inputs into contacts, each remembering where it came from (file,
//! line or row, index) so a failure can be traced back to it.

use anyhow::{Context, bail};
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// From the file extension: .json, .ndjson/.jsonl, .csv, .xml (stdin: ndjson).
    Auto,
    /// A Webex batch object (`{"orgId", "contacts": [...]}`) or an array of contacts, or
    /// another dialect's JSON document.
    Json,
    /// One contact object per line.
    Ndjson,
    /// One contact per row, with a header row (see `CSV_COLUMNS`), or a DocuSign CSV.
    Csv,
    /// A DocuSign `contactModRequest` document, always published as one message.
    Xml,
}

/// CSV header names and the Webex contact field each fills. Multi-valued fields take one
/// value per cell; `groups` takes several separated by `;`.
pub const CSV_COLUMNS: &[(&str, &str)] = &[
    ("contactId", "contactId"),
    ("displayName", "displayName"),
    ("firstName", "firstName"),
    ("lastName", "lastName"),
    ("companyName", "companyName"),
    ("title", "title"),
    ("email", "emails"),
    ("phoneNumber", "phoneNumbers"),
    ("sipAddress", "sipAddresses"),
    ("im", "ims"),
    ("street", "address"),
    ("city", "address"),
    ("state", "address"),
    ("country", "address"),
    ("zipCode", "address"),
    ("avatarURL", "avatarURL"),
    ("primaryContactMethod", "primaryContactMethod"),
    ("source", "source"),
    ("groups", "groups"),
];

/// Where a contact came from.
#[derive(Debug, Clone)]
pub struct Origin {
    pub file: String,
    /// Its line or row, for the formats that have them.
    pub position: Option<Position>,
    /// Position among the file's contacts, from 0.
    pub index: usize,
}

/// A contact's place in its file, numbered from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// NDJSON: the line of the file.
    Line(u64),
    /// CSV: the record, the header being row 1, as a spreadsheet numbers them (a quoted cell
    /// may span several lines of the file, so this is not a line number).
    Row(u64),
}

pub struct Record {
    pub origin: Origin,
    pub contact: Value,
}

/// A file's contacts, read as they are needed.
pub type Records = Box<dyn Iterator<Item = anyhow::Result<Record>>>;

/// One input: a file, or `-` for stdin.
pub struct Input {
    pub name: String,
    pub path: Option<PathBuf>,
    pub format: Format,
}

/// Expands the command line's inputs: directories become their files (sorted, known
/// extensions only).
pub fn expand(paths: &[PathBuf], format: Format) -> anyhow::Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let format = if format == Format::Auto {
                Format::Ndjson
            } else {
                format
            };
            inputs.push(Input {
                name: "-".into(),
                path: None,
                format,
            });
        } else if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && format_of(p).is_some())
                .collect();
            files.sort();
            for file in files {
                inputs.push(file_input(&file, format)?);
            }
        } else {
            inputs.push(file_input(path, format)?);
        }
    }
    Ok(inputs)
}

fn file_input(path: &Path, format: Format) -> anyhow::Result<Input> {
    let format = match format {
        Format::Auto => format_of(path).with_context(|| {
            format!(
                "{}: unknown extension; pass --format json|ndjson|csv|xml",
                path.display()
            )
        })?,
        chosen => chosen,
    };
    Ok(Input {
        name: path.display().to_string(),
        path: Some(path.to_owned()),
        format,
    })
}

/// The syntax a file's extension names, if any.
pub fn format_of(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "json" => Some(Format::Json),
        "ndjson" | "jsonl" => Some(Format::Ndjson),
        "csv" => Some(Format::Csv),
        "xml" => Some(Format::Xml),
        _ => None,
    }
}

impl Input {
    fn open(&self) -> anyhow::Result<Box<dyn Read>> {
        Ok(match &self.path {
            Some(path) => Box::new(
                std::fs::File::open(path).with_context(|| format!("opening {}", self.name))?,
            ),
            None => Box::new(std::io::stdin()),
        })
    }

    /// The whole input, as it is published when it is sent as one message.
    pub fn read_all(&self) -> anyhow::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open()?
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", self.name))?;
        Ok(bytes)
    }

    /// At most `limit` bytes from the start of a file, enough to tell its dialect.
    pub fn read_start(&self, limit: u64) -> anyhow::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open()?
            .take(limit)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", self.name))?;
        Ok(bytes)
    }

    /// The file's contacts in order, and the org its body names (JSON batches only).
    pub fn records(&self) -> anyhow::Result<(Records, Option<String>)> {
        let reader = self.open()?;
        let name = self.name.clone();
        let origin = move |position, index| Origin {
            file: name.clone(),
            position,
            index,
        };
        match self.format {
            Format::Json | Format::Auto => {
                let value: Value = serde_json::from_reader(BufReader::new(reader))
                    .with_context(|| format!("{}: not JSON", self.name))?;
                let (org, contacts) = match value {
                    Value::Array(contacts) => (None, contacts),
                    Value::Object(mut batch) => {
                        let org = batch
                            .get("orgId")
                            .and_then(Value::as_str)
                            .map(str::to_owned);
                        match batch.remove("contacts") {
                            Some(Value::Array(contacts)) => (org, contacts),
                            _ => bail!("{}: no \"contacts\" array", self.name),
                        }
                    }
                    _ => bail!(
                        "{}: neither a batch object nor an array of contacts",
                        self.name
                    ),
                };
                let records = contacts
                    .into_iter()
                    .enumerate()
                    .map(move |(index, contact)| {
                        Ok(Record {
                            origin: origin(None, index),
                            contact,
                        })
                    });
                Ok((Box::new(records), org))
            }
            Format::Ndjson => {
                let name = self.name.clone();
                let lines = BufReader::new(reader)
                    .lines()
                    .enumerate()
                    .filter(|(_, line)| line.as_ref().map_or(true, |l| !l.trim().is_empty()));
                let records = lines.enumerate().map(move |(index, (number, line))| {
                    let line_number = number as u64 + 1;
                    let line = line.with_context(|| format!("reading {name}"))?;
                    let contact = serde_json::from_str(&line)
                        .with_context(|| format!("{name}:{line_number}: not a JSON contact"))?;
                    Ok(Record {
                        origin: origin(Some(Position::Line(line_number)), index),
                        contact,
                    })
                });
                Ok((Box::new(records), None))
            }
            Format::Xml => bail!(
                "{}: XML is a DocuSign contactModRequest, published as one message; \
                 it cannot be split into Webex batches",
                self.name
            ),
            Format::Csv => {
                let mut csv = csv::ReaderBuilder::new().from_reader(reader);
                let headers = csv
                    .headers()
                    .with_context(|| format!("{}: no header row", self.name))?
                    .clone();
                // A UTF-8 byte order mark sticks to the first header name.
                let headers: Vec<String> = headers
                    .iter()
                    .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
                    .collect();
                if let Some(unknown) = headers
                    .iter()
                    .find(|h| !CSV_COLUMNS.iter().any(|(column, _)| column == h))
                {
                    bail!(
                        "{}: unknown column {unknown:?} (known: {})",
                        self.name,
                        CSV_COLUMNS
                            .iter()
                            .map(|(c, _)| *c)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                let name = self.name.clone();
                let records = csv.into_records().enumerate().map(move |(index, row)| {
                    let number = index as u64 + 2;
                    let row =
                        row.with_context(|| format!("{name}: row {number} is not valid CSV"))?;
                    Ok(Record {
                        origin: origin(Some(Position::Row(number)), index),
                        contact: csv_contact(&headers, &row),
                    })
                });
                Ok((Box::new(records), None))
            }
        }
    }
}

/// One CSV row as a Webex contact; empty cells are absent fields.
fn csv_contact(headers: &[String], row: &csv::StringRecord) -> Value {
    let mut contact = Map::new();
    let mut address = Map::new();
    for (header, cell) in headers.iter().zip(row.iter()) {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        let cell = Value::String(cell.to_owned());
        match header.as_str() {
            "email" | "phoneNumber" | "sipAddress" | "im" => {
                let field = CSV_COLUMNS
                    .iter()
                    .find(|(c, _)| c == header)
                    .map(|(_, f)| *f)
                    .expect("checked against CSV_COLUMNS");
                contact.insert(field.into(), json_method(cell));
            }
            "street" | "city" | "state" | "country" | "zipCode" => {
                address.insert(header.clone(), cell);
            }
            "groups" => {
                let groups = cell
                    .as_str()
                    .unwrap_or_default()
                    .split(';')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(|g| Value::String(g.to_owned()))
                    .collect();
                contact.insert("groups".into(), Value::Array(groups));
            }
            other => {
                contact.insert(other.into(), cell);
            }
        }
    }
    if !address.is_empty() {
        contact.insert("address".into(), Value::Object(address));
    }
    Value::Object(contact)
}

fn json_method(value: Value) -> Value {
    serde_json::json!([{"value": value, "type": "work", "primary": true}])
}

/// `publish`'s reader of Webex files, on hostile files: whatever a file holds, it is read
/// into contacts one by one, or refused, with errors that name the file; nothing panics.
/// The decoders, detection and splitting have their properties in `tests/hostile/`.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Files of each syntax the reader takes, mutated byte by byte.
    const SAMPLES: &[&[u8]] = &[
        include_bytes!("../../../examples/webex-bulk-create.json"),
        include_bytes!("../../../examples/webex-bulk-mixed.json"),
        include_bytes!("../../../examples/not-a-batch.json"),
        b"contactId,displayName,email,phoneNumber,groups,street,city\n\
          ,Ada,ada@example.com,+1 400 123 1234,a; b,\"1 Main\nSt\",Paris\n\
          \"\",\"B \"\"Bo\"\"\",,,,,\n",
        b"{\"displayName\":\"Ada\"}\n\n{\"emails\":[{\"value\":\"b@example.com\"}]}\n[1]\n",
    ];

    #[derive(Debug, Clone)]
    enum Edit {
        Flip(Index, u8),
        Insert(Index, Vec<u8>),
        Delete(Index, usize),
        Truncate(Index),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let token = prop::sample::select(vec![
            b"\"".to_vec(),
            b",".to_vec(),
            b"\n".to_vec(),
            b"\r".to_vec(),
            b"{".to_vec(),
            b"[".to_vec(),
            b"\xef\xbb\xbf".to_vec(),
            b"\xff".to_vec(),
            b"[".repeat(200),
        ]);
        prop_oneof![
            (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
            (
                any::<Index>(),
                prop_oneof![token, prop::collection::vec(any::<u8>(), 1..8)]
            )
                .prop_map(|(i, bytes)| Edit::Insert(i, bytes)),
            (any::<Index>(), 1usize..32).prop_map(|(i, n)| Edit::Delete(i, n)),
            any::<Index>().prop_map(Edit::Truncate),
        ]
    }

    fn contents() -> impl Strategy<Value = Vec<u8>> {
        let mutated = (
            prop::sample::select(SAMPLES),
            prop::collection::vec(edit(), 0..4),
        )
            .prop_map(|(sample, edits)| {
                let mut bytes = sample.to_vec();
                for edit in edits {
                    let at = |i: &Index| i.index(bytes.len() + 1);
                    match edit {
                        Edit::Flip(i, bit) if !bytes.is_empty() => {
                            let n = i.index(bytes.len());
                            bytes[n] ^= 1 << bit;
                        }
                        Edit::Flip(..) => {}
                        Edit::Insert(i, new) => {
                            let n = at(&i);
                            bytes.splice(n..n, new);
                        }
                        Edit::Delete(i, len) => {
                            let n = at(&i);
                            bytes.drain(n..(n + len).min(bytes.len()));
                        }
                        Edit::Truncate(i) => bytes.truncate(at(&i)),
                    }
                }
                bytes
            });
        prop_oneof![3 => mutated, 1 => prop::collection::vec(any::<u8>(), 0..1024)]
    }

    fn format() -> impl Strategy<Value = Format> {
        prop::sample::select(vec![
            Format::Auto,
            Format::Json,
            Format::Ndjson,
            Format::Csv,
            Format::Xml,
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256),
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_file_is_read_into_contacts_or_refused_naming_it(
            bytes in contents(),
            format in format(),
        ) {
            static FILES: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "contact-import-input-{}-{}",
                std::process::id(),
                FILES.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, &bytes).expect("a temporary file");
            let input = Input { name: path.display().to_string(), path: Some(path.clone()), format };
            let names_the_file = |e: &anyhow::Error| format!("{e:#}").contains(&input.name);
            let outcome = input.records().map(|(records, _)| records.collect::<Vec<_>>());
            std::fs::remove_file(&path).expect("the temporary file");
            match outcome {
                Ok(records) => {
                    for (n, record) in records.iter().enumerate() {
                        match record {
                            Ok(record) => prop_assert_eq!(record.origin.index, n),
                            Err(e) => prop_assert!(names_the_file(e), "{:#}", e),
                        }
                    }
                }
                Err(e) => prop_assert!(names_the_file(&e), "{:#}", e),
            }
        }
    }
}
