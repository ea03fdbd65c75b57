//! What a producer run adds up to: the tally of results, and the failed contacts traced back
//! to their source for `--report`.

use super::input::Origin;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Default)]
pub struct Tally {
    pub batches: usize,
    pub answered: usize,
    pub created: u64,
    pub updated: u64,
    pub failed: u64,
    pub rejected: usize,
    pub failures: Vec<FailedRow>,
}

/// A contact the worker did not store, and where it came from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedRow {
    pub file: String,
    pub line: Option<u64>,
    pub index: usize,
    pub batch_id: String,
    pub error_code: String,
    pub error_message: String,
    pub status_code: u64,
}

impl Tally {
    /// Counts one result; `origins` are the batch's contacts in order.
    pub fn add(&mut self, batch_id: &str, result: &Value, origins: &[Origin]) {
        self.answered += 1;
        let count = |name: &str| result["counts"][name].as_u64().unwrap_or(0);
        self.created += count("created");
        self.updated += count("updated");
        self.failed += count("failed");
        if result.is_null() {
            self.rejected += 1;
            let error = serde_json::json!({"code": "unreadable.result", "message": "the result was not JSON"});
            for origin in origins {
                self.failures
                    .push(row(origin, batch_id, &error, "code", "message"));
            }
            return;
        }
        if result["status"] == "rejected" {
            self.rejected += 1;
            let error = &result["error"];
            // The whole batch failed: every one of its contacts is reported.
            for origin in origins {
                self.failures
                    .push(row(origin, batch_id, error, "code", "message"));
            }
            return;
        }
        for failure in result["failedContacts"].as_array().into_iter().flatten() {
            let index: Option<usize> = failure["id"].as_str().and_then(|i| i.parse().ok());
            if let Some(origin) = index.and_then(|i| origins.get(i)) {
                self.failures
                    .push(row(origin, batch_id, failure, "errorCode", "errorMessage"));
            }
        }
    }

    /// Whether everything published was stored: what the exit code reports.
    pub fn all_stored(&self) -> bool {
        self.answered == self.batches && self.failed == 0 && self.rejected == 0
    }

    pub fn summary(&self) -> String {
        format!(
            "batches: {} published, {} answered, {} rejected (dead-lettered); contacts: {} created, {} updated, {} failed",
            self.batches, self.answered, self.rejected, self.created, self.updated, self.failed
        )
    }
}

fn row(origin: &Origin, batch_id: &str, error: &Value, code: &str, message: &str) -> FailedRow {
    FailedRow {
        file: origin.file.clone(),
        line: origin.line,
        index: origin.index,
        batch_id: batch_id.to_owned(),
        error_code: error[code].as_str().unwrap_or_default().to_owned(),
        error_message: error[message].as_str().unwrap_or_default().to_owned(),
        status_code: error["statusCode"].as_u64().unwrap_or(0),
    }
}

/// Writes the failed contacts as CSV (`.csv`) or JSON (anything else).
pub fn write(path: &Path, failures: &[FailedRow]) -> anyhow::Result<()> {
    let is_csv = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        let mut writer = csv::Writer::from_path(path)?;
        for failure in failures {
            writer.serialize(failure)?;
        }
        writer.flush()?;
    } else {
        std::fs::write(path, serde_json::to_vec_pretty(failures)?)?;
    }
    Ok(())
}
