//! What a producer run adds up to: the tally of results, and the failed contacts traced back
//! to their source for `--report`.

use super::input::{Origin, Position};
use crate::dialect::{MessageType, update};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

#[derive(Debug, Default)]
pub struct Tally {
    pub batches: usize,
    pub answered: usize,
    /// Contacts written by this run.
    pub created: u64,
    pub updated: u64,
    pub failed: u64,
    pub rejected: usize,
    /// Batches an earlier message had already applied (their stored results replayed).
    pub replayed: usize,
    /// What the replayed results say the earlier run did: created, updated, failed.
    pub earlier: (u64, u64, u64),
    /// Every batch was a dry run: nothing was written, the counts say what would be.
    pub dry_run: bool,
    /// The failed contacts of the results counted since the caller last took them (`publish`
    /// takes them after each result, to write them to `--report`).
    pub failures: Vec<FailedRow>,
    /// One per input, in the order they were sent: the lines of [`Tally::table`].
    pub files: Vec<FileTally>,
}

/// What one input's messages came to.
#[derive(Debug)]
pub struct FileTally {
    file: String,
    /// The AMQP `type` its messages were sent as.
    kind: MessageType,
    batches: usize,
    answered: usize,
    /// The statuses its answered messages had.
    statuses: BTreeSet<String>,
    /// Created, updated, failed, as its results say (for a replay, what the earlier message
    /// did).
    counts: (u64, u64, u64),
    replayed: usize,
    /// Each failure code, with how many contacts (or whole messages) failed with it.
    codes: BTreeMap<String, usize>,
    /// The contacts an Update User Contact message changed: the one contact its request names
    /// by email address or chat id, which its answer otherwise does not identify.
    changed: Vec<String>,
}

/// A contact the worker did not store, and where it came from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedRow {
    pub file: String,
    /// NDJSON: the contact's line.
    pub line: Option<u64>,
    /// CSV: the contact's record, the header being row 1 (not a line: a quoted cell may
    /// span several).
    pub row: Option<u64>,
    /// Position among the file's contacts, from 0; absent when a file sent as one message
    /// failed as a whole.
    pub index: Option<usize>,
    pub batch_id: String,
    pub error_code: String,
    pub error_message: String,
    pub status_code: u64,
    /// The failure was found by a dry run: nothing was written either way.
    pub dry_run: bool,
}

/// Where a published message's contacts came from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A Webex batch the producer built: its contacts' origins, in order.
    Contacts(Vec<Origin>),
    /// A file sent as one message (any dialect but Webex): the worker's contact ids are
    /// positions in it.
    File(String),
}

impl Source {
    fn origin(&self, index: usize) -> Option<Origin> {
        match self {
            Self::Contacts(origins) => origins.get(index).cloned(),
            Self::File(file) => Some(Origin {
                file: file.clone(),
                position: None,
                index,
            }),
        }
    }
}

impl Tally {
    /// Starts the line of an input whose messages are sent as `kind`; its index, for
    /// [`Tally::published`] and [`Tally::add`].
    pub fn start_file(&mut self, file: &str, kind: MessageType) -> usize {
        self.files.push(FileTally {
            file: file.to_owned(),
            kind,
            batches: 0,
            answered: 0,
            statuses: BTreeSet::new(),
            counts: (0, 0, 0),
            replayed: 0,
            codes: BTreeMap::new(),
            changed: Vec::new(),
        });
        self.files.len() - 1
    }

    /// One more message of input `file` was published and confirmed.
    pub fn published(&mut self, file: usize) {
        self.batches += 1;
        self.files[file].batches += 1;
    }

    /// Counts one result (or, for Update User Contact, the chat-bot reply made from it) of a
    /// message of input `file`; returns how many contacts it answered for.
    /// `replayed`: the result's `replayed` header, the batch applied by an earlier message.
    pub fn add(
        &mut self,
        file: usize,
        batch_id: &str,
        result: &Value,
        source: &Source,
        replayed: bool,
    ) -> usize {
        let first_failure = self.failures.len();
        let before = self.all_counts();
        let answered = self.count(batch_id, result, source, replayed);
        let after = self.all_counts();
        let dry_run = self.dry_run;
        for row in &mut self.failures[first_failure..] {
            row.dry_run = dry_run;
        }

        let line = &mut self.files[file];
        line.answered += 1;
        line.counts.0 += after.0 - before.0;
        line.counts.1 += after.1 - before.1;
        line.counts.2 += after.2 - before.2;
        line.replayed += usize::from(replayed);
        let status = match result["status"].as_str() {
            Some(status) => status.to_owned(),
            // The chat-bot reply has no status, only its HTTP-style code.
            None if after.1 > before.1 => "succeeded".to_owned(),
            None => "failed".to_owned(),
        };
        for row in &self.failures[first_failure..] {
            let code = match row.error_code.as_str() {
                "" => format!("status {}", row.status_code),
                code => code.to_owned(),
            };
            *line.codes.entry(code).or_default() += 1;
        }
        if line.kind == update::TYPE && status == "succeeded" {
            line.changed.extend(changed_contact(result));
        }
        line.statuses.insert(status);
        answered
    }

    /// Created, updated and failed, whether by this run or by the earlier run a replay
    /// reports.
    fn all_counts(&self) -> (u64, u64, u64) {
        (
            self.created + self.earlier.0,
            self.updated + self.earlier.1,
            self.failed + self.earlier.2,
        )
    }

    fn count(&mut self, batch_id: &str, result: &Value, source: &Source, replayed: bool) -> usize {
        self.answered += 1;
        if result.get("responseMessages").is_some() {
            return self.add_chat_bot_reply(batch_id, result, source);
        }
        let count = |name: &str| result["counts"][name].as_u64().unwrap_or(0);
        let (created, updated, failed) = (count("created"), count("updated"), count("failed"));
        if replayed {
            self.replayed += 1;
            self.earlier.0 += created;
            self.earlier.1 += updated;
            self.earlier.2 += failed;
        } else {
            self.created += created;
            self.updated += updated;
            self.failed += failed;
        }
        let rejection = if result.is_null() {
            Some(
                serde_json::json!({"code": "unreadable.result", "message": "the result was not JSON"}),
            )
        } else if result["status"] == "rejected" {
            Some(result["error"].clone())
        } else {
            None
        };
        if let Some(error) = rejection {
            self.rejected += 1;
            // The whole batch failed: every one of its contacts is reported.
            match source {
                Source::Contacts(origins) => {
                    for origin in origins {
                        self.failures.push(row(
                            origin,
                            Some(origin.index),
                            batch_id,
                            &error,
                            "code",
                            "message",
                        ));
                    }
                    return origins.len();
                }
                Source::File(file) => {
                    let whole = Origin {
                        file: file.clone(),
                        position: None,
                        index: 0,
                    };
                    self.failures
                        .push(row(&whole, None, batch_id, &error, "code", "message"));
                    return 0;
                }
            }
        }
        for failure in result["failedContacts"].as_array().into_iter().flatten() {
            let index: Option<usize> = failure["id"].as_str().and_then(|i| i.parse().ok());
            if let Some(origin) = index.and_then(|i| source.origin(i)) {
                self.failures.push(row(
                    &origin,
                    Some(origin.index),
                    batch_id,
                    failure,
                    "errorCode",
                    "errorMessage",
                ));
            }
        }
        match source {
            Source::Contacts(origins) => origins.len(),
            Source::File(_) => (created + updated + failed) as usize,
        }
    }

    /// The Update User Contact reply (`responseType`, `responseMessages`, `statusCode`): one
    /// contact, updated when `statusCode` is 2xx, else failed with the reply's text. `publish`
    /// asks for the common result (`x-reply-format: result`); a worker from before that
    /// header still answers with this reply during a rolling upgrade.
    fn add_chat_bot_reply(&mut self, batch_id: &str, reply: &Value, source: &Source) -> usize {
        let status = reply["statusCode"].as_u64().unwrap_or(0);
        if (200..300).contains(&status) {
            self.updated += 1;
            return 1;
        }
        self.failed += 1;
        let error = serde_json::json!({
            "message": reply["responseMessages"][0]["simpleResponse"]["responseText"],
            "statusCode": status,
        });
        if let Some(origin) = source.origin(0) {
            self.failures
                .push(row(&origin, Some(0), batch_id, &error, "code", "message"));
        }
        1
    }

    /// Whether everything published was stored: what the exit code reports.
    pub fn all_stored(&self) -> bool {
        self.answered == self.batches
            && self.failed == 0
            && self.earlier.2 == 0
            && self.rejected == 0
    }

    /// One line for a person: what this run did, what earlier runs had done for the batches
    /// it resent, and, for a dry run, that nothing was written.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "batches: {} published, {} answered, {} rejected{}; contacts: ",
            self.batches,
            self.answered,
            self.rejected,
            if self.dry_run { "" } else { " (dead-lettered)" },
        );
        if self.dry_run {
            line.insert_str(0, "dry run, nothing written: ");
            line.push_str(&format!(
                "{} would be created, {} would be updated, {} would fail",
                self.created, self.updated, self.failed
            ));
            return line;
        }
        line.push_str(&format!(
            "{} created, {} updated, {} failed",
            self.created, self.updated, self.failed
        ));
        if self.replayed > 0 {
            let (created, updated, failed) = self.earlier;
            line.push_str(&format!(
                "; {} batch(es) were already applied by an earlier message, nothing written for them now \
                 (their stored results: {created} created, {updated} updated, {failed} failed)",
                self.replayed
            ));
        }
        line
    }
}

impl Tally {
    /// One line per input, aligned for a terminal: what its messages came to, the codes
    /// its contacts failed with, and what the counts alone do not say (a replay, a dry run,
    /// the contact an update changed).
    pub fn table(&self) -> String {
        let mut table = tabwriter::TabWriter::new(Vec::new()).padding(2);
        let _ = writeln!(
            table,
            "FILE\tTYPE\tSTATUS\tCREATED\tUPDATED\tFAILED\tFAILURES\tNOTE"
        );
        for line in &self.files {
            let (created, updated, failed) = line.counts;
            let _ = writeln!(
                table,
                "{}\t{}\t{}\t{created}\t{updated}\t{failed}\t{}\t{}",
                line.file,
                line.kind.as_str(),
                line.status(),
                line.failure_codes(),
                line.note(self.dry_run),
            );
        }
        let bytes = table.into_inner().unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl FileTally {
    fn status(&self) -> &str {
        let stored_some = self
            .statuses
            .iter()
            .any(|s| s == "succeeded" || s == "partial");
        match (self.batches, self.answered, self.statuses.len()) {
            (0, _, _) => "empty",
            (_, 0, _) => "unanswered",
            // Some answered, the rest not (see the note).
            (batches, answered, _) if answered < batches => "incomplete",
            (_, _, 1) => self
                .statuses
                .first()
                .map(String::as_str)
                .unwrap_or_default(),
            // Its batches fared differently: some of its contacts were stored, or none.
            _ if stored_some => "partial",
            _ => "failed",
        }
    }

    fn failure_codes(&self) -> String {
        if self.codes.is_empty() {
            return "-".into();
        }
        let codes: Vec<String> = self
            .codes
            .iter()
            .map(|(code, n)| match n {
                1 => code.clone(),
                n => format!("{code} ({n})"),
            })
            .collect();
        codes.join(", ")
    }

    fn note(&self, dry_run: bool) -> String {
        let mut notes = Vec::new();
        if dry_run {
            notes.push("dry run, nothing written: the counts say what would be".to_owned());
        }
        if self.answered < self.batches {
            notes.push(format!(
                "{} of {} messages unanswered",
                self.batches - self.answered,
                self.batches
            ));
        }
        match self.replayed {
            0 => {}
            n if n == self.answered => {
                notes.push("already applied by an earlier message, nothing written now".into())
            }
            n => notes.push(format!(
                "{n} of {} messages already applied by an earlier message",
                self.answered
            )),
        }
        for contact in &self.changed {
            notes.push(format!("changed {contact}"));
        }
        match notes.is_empty() {
            true => "-".into(),
            false => notes.join("; "),
        }
    }
}

/// The contact an Update User Contact result says it stored: its id, and with a full
/// result the email address or name it is known by.
fn changed_contact(result: &Value) -> Option<String> {
    if let Some(id) = result["contactIds"][0].as_str() {
        return Some(format!("contact {id}"));
    }
    let contact = &result["contacts"][0];
    let id = contact["contactId"].as_str()?;
    let known_as = contact["emails"][0]["value"]
        .as_str()
        .or(contact["displayName"].as_str());
    Some(match known_as {
        Some(name) => format!("contact {id} ({name})"),
        None => format!("contact {id}"),
    })
}

fn row(
    origin: &Origin,
    index: Option<usize>,
    batch_id: &str,
    error: &Value,
    code: &str,
    message: &str,
) -> FailedRow {
    FailedRow {
        file: origin.file.clone(),
        line: match origin.position {
            Some(Position::Line(n)) => Some(n),
            _ => None,
        },
        row: match origin.position {
            Some(Position::Row(n)) => Some(n),
            _ => None,
        },
        index,
        batch_id: batch_id.to_owned(),
        error_code: error[code].as_str().unwrap_or_default().to_owned(),
        error_message: error[message].as_str().unwrap_or_default().to_owned(),
        status_code: error["statusCode"].as_u64().unwrap_or(0),
        dry_run: false,
    }
}

/// `--report` as it is written: each result's failed contacts are appended as the result is
/// counted, so a run holds no more of them than one result has (a million-row file with 10%
/// bad rows held 100,000 of them, ≈ 400 bytes each, until the end). CSV for `.csv`, else a
/// JSON array.
pub struct ReportFile {
    writer: ReportWriter,
    /// Rows written so far.
    pub rows: usize,
}

enum ReportWriter {
    Csv(Box<csv::Writer<std::fs::File>>),
    Json(std::io::BufWriter<std::fs::File>),
}

impl ReportFile {
    /// Creates (or truncates) the report at `path`.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let is_csv = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let file = std::fs::File::create(path)?;
        let writer = if is_csv {
            ReportWriter::Csv(Box::new(csv::Writer::from_writer(file)))
        } else {
            let mut out = std::io::BufWriter::new(file);
            out.write_all(b"[")?;
            ReportWriter::Json(out)
        };
        Ok(Self { writer, rows: 0 })
    }

    /// Appends `failures`.
    pub fn append(&mut self, failures: &[FailedRow]) -> anyhow::Result<()> {
        for failure in failures {
            match &mut self.writer {
                ReportWriter::Csv(writer) => writer.serialize(failure)?,
                ReportWriter::Json(out) => {
                    out.write_all(if self.rows == 0 { b"\n" } else { b",\n" })?;
                    serde_json::to_writer_pretty(&mut *out, failure)?;
                }
            }
            self.rows += 1;
        }
        Ok(())
    }

    /// Completes the file; how many rows it has.
    pub fn finish(self) -> anyhow::Result<usize> {
        match self.writer {
            ReportWriter::Csv(mut writer) => writer.flush()?,
            ReportWriter::Json(mut out) => {
                out.write_all(if self.rows == 0 { b"]\n" } else { b"\n]\n" })?;
                out.flush()?;
            }
        }
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn origins(file: &str, count: usize) -> Source {
        Source::Contacts(
            (0..count)
                .map(|index| Origin {
                    file: file.into(),
                    position: Some(Position::Row(index as u64 + 2)),
                    index,
                })
                .collect(),
        )
    }

    #[test]
    fn a_batch_result_counts_its_contacts_and_traces_failures_to_their_rows() {
        let mut tally = Tally {
            batches: 1,
            ..Tally::default()
        };
        tally.start_file("input", MessageType::default_type());
        let result = json!({"status": "partial", "counts": {"created": 1, "updated": 0, "failed": 1},
            "failedContacts": [{"id": "1", "errorCode": "invalid.email", "errorMessage": "bad", "statusCode": 400}]});
        assert_eq!(tally.add(0, "b1", &result, &origins("a.csv", 2), false), 2);
        assert_eq!((tally.created, tally.failed), (1, 1));
        let row = &tally.failures[0];
        assert_eq!((row.row, row.line, row.index), (Some(3), None, Some(1)));
        assert_eq!(row.error_code, "invalid.email");
        assert!(!tally.all_stored());
    }

    #[test]
    fn a_file_sent_whole_is_counted_by_its_result_and_its_failures_by_position() {
        let mut tally = Tally {
            batches: 2,
            ..Tally::default()
        };
        tally.start_file("input", MessageType::default_type());
        let source = Source::File("save.json".into());
        let result = json!({"status": "partial", "counts": {"created": 2, "updated": 0, "failed": 1},
            "failedContacts": [{"id": "2", "errorCode": "missing.field", "errorMessage": "no lastName", "statusCode": 400}]});
        assert_eq!(tally.add(0, "b1", &result, &source, false), 3);
        let row = &tally.failures[0];
        assert_eq!(
            (row.file.as_str(), row.line, row.index),
            ("save.json", None, Some(2))
        );

        let rejected = json!({"status": "rejected", "error": {"code": "missing.org.id", "message": "no org", "statusCode": 400}});
        assert_eq!(tally.add(0, "b2", &rejected, &source, false), 0);
        assert_eq!(tally.rejected, 1);
        let row = &tally.failures[1];
        assert_eq!(
            (row.index, row.error_code.as_str()),
            (None, "missing.org.id")
        );
    }

    #[test]
    fn an_update_user_contact_reply_counts_by_its_status_code() {
        let mut tally = Tally {
            batches: 2,
            ..Tally::default()
        };
        tally.start_file("input", MessageType::default_type());
        let source = Source::File("update.json".into());
        let reply = |text: &str, status: u64| {
            json!({"responseType": "text", "responseId": "b",
                "responseMessages": [{"simpleResponse": {"responseText": text}}], "statusCode": status})
        };
        tally.add(
            0,
            "b1",
            &reply("User Contact details updated successfully ", 200),
            &source,
            false,
        );
        assert_eq!((tally.updated, tally.failed), (1, 0));
        tally.add(
            0,
            "b2",
            &reply("User Contact details could not be updated: no contact", 404),
            &source,
            false,
        );
        assert_eq!((tally.updated, tally.failed, tally.rejected), (1, 1, 0));
        let row = &tally.failures[0];
        assert_eq!(row.status_code, 404);
        assert_eq!(
            row.error_message,
            "User Contact details could not be updated: no contact"
        );
        assert_eq!(tally.answered, 2);
        assert!(!tally.all_stored());
    }

    #[test]
    fn the_table_has_a_line_per_input_with_its_codes_a_replay_and_the_contact_an_update_changed() {
        let mut tally = Tally::default();
        let csv = tally.start_file("people.csv", MessageType::default_type());
        let update = tally.start_file("update.json", update::TYPE);
        for _ in 0..2 {
            tally.published(csv);
        }
        tally.published(update);
        let partial = json!({"status": "partial", "counts": {"created": 1, "updated": 0, "failed": 2},
            "failedContacts": [
                {"id": "1", "errorCode": "invalid.email", "errorMessage": "bad", "statusCode": 400},
                {"id": "2", "errorCode": "invalid.email", "errorMessage": "bad", "statusCode": 400}]});
        tally.add(csv, "b1", &partial, &origins("people.csv", 3), false);
        let stored =
            json!({"status": "succeeded", "counts": {"created": 0, "updated": 2, "failed": 0}});
        tally.add(csv, "b2", &stored, &origins("people.csv", 2), true);
        let changed = json!({"status": "succeeded", "counts": {"created": 0, "updated": 1, "failed": 0},
            "contactIds": ["9f0c"]});
        tally.add(
            update,
            "b3",
            &changed,
            &Source::File("update.json".into()),
            false,
        );

        let table = tally.table();
        let lines: Vec<Vec<&str>> = table
            .lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert_eq!(lines[0][..3], ["FILE", "TYPE", "STATUS"], "{table}");
        assert_eq!(
            lines[1],
            [
                "people.csv",
                "webex.contacts.bulk",
                "partial",
                "1",
                "2",
                "2",
                "invalid.email (2)",
                "1 of 2 messages already applied by an earlier message"
            ],
            "{table}"
        );
        assert_eq!(
            lines[2],
            [
                "update.json",
                "user-contact.update",
                "succeeded",
                "0",
                "1",
                "0",
                "-",
                "changed contact 9f0c"
            ],
            "{table}"
        );
    }

    #[test]
    fn a_report_written_row_by_row_is_one_json_array_or_one_csv() {
        let dir = std::env::temp_dir().join(format!("report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut tally = Tally::default();
        tally.start_file("a.csv", MessageType::default_type());
        let result = json!({"status": "partial", "counts": {"created": 0, "updated": 0, "failed": 2},
            "failedContacts": [
                {"id": "0", "errorCode": "invalid.email", "errorMessage": "bad", "statusCode": 400},
                {"id": "1", "errorCode": "missing.name", "errorMessage": "no name", "statusCode": 400}]});
        tally.add(0, "b1", &result, &origins("a.csv", 2), false);
        for (name, rows) in [("none.json", 0), ("two.json", 2), ("two.csv", 2)] {
            let path = dir.join(name);
            let mut report = ReportFile::create(&path).unwrap();
            // Appended in two steps, as two results would be.
            report.append(&tally.failures[..rows.min(1)]).unwrap();
            report.append(&tally.failures[rows.min(1)..rows]).unwrap();
            assert_eq!(report.finish().unwrap(), rows);
            let text = std::fs::read_to_string(&path).unwrap();
            if name.ends_with(".json") {
                let rows_read: Vec<Value> = serde_json::from_str(&text).unwrap();
                assert_eq!(rows_read.len(), rows, "{text}");
                if rows > 0 {
                    assert_eq!(rows_read[1]["errorCode"], "missing.name");
                }
            } else {
                let mut reader = csv::Reader::from_reader(text.as_bytes());
                assert_eq!(reader.records().count(), rows, "{text}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
