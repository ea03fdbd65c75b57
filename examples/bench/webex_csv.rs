//! A Webex CSV file as a user exports one (the columns `publish` reads, one contact per row), on
//! disk, from a seed; about one row in ten is bad in a way the worker rejects per contact,
//! and the generator keeps those rows' numbers so the producer's `--report` can be checked.

use crate::dataset::{Person, person};
use anyhow::Context;
use std::io::BufWriter;
use std::path::Path;

/// The header row: `contact-import`'s CSV columns, in the producer guide's order.
pub const COLUMNS: [&str; 19] = [
    "contactId",
    "displayName",
    "firstName",
    "lastName",
    "companyName",
    "title",
    "email",
    "phoneNumber",
    "sipAddress",
    "im",
    "street",
    "city",
    "state",
    "country",
    "zipCode",
    "avatarURL",
    "primaryContactMethod",
    "source",
    "groups",
];

/// What was written.
pub struct CsvFile {
    pub rows: usize,
    /// The bad rows, numbered as `--report` numbers them (the header is row 1), ascending.
    pub bad_rows: Vec<u64>,
    pub bytes: u64,
}

impl CsvFile {
    pub fn good_rows(&self) -> usize {
        self.rows - self.bad_rows.len()
    }
}

/// Writes `rows` contacts to `path`. In every run of ten rows one, at a random position, is
/// bad (so exactly 10% of a multiple of ten), its mistake taken in rotation from [`bad`].
pub fn write(path: &Path, rows: usize, seed: u64) -> anyhow::Result<CsvFile> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
    out.write_record(COLUMNS)?;
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xc5f);
    let mut bad_rows = Vec::with_capacity(rows / 10 + 1);
    let mut bad_at = 0;
    for index in 0..rows {
        if index % 10 == 0 {
            bad_at = index + rng.usize(..10);
        }
        let p = person(&mut rng);
        let mut cells = cells(&p);
        if index == bad_at {
            bad(&mut rng, &p, &mut cells, bad_rows.len());
            bad_rows.push(index as u64 + 2);
        }
        out.write_record(&cells)?;
    }
    out.flush()?;
    drop(out);
    Ok(CsvFile {
        rows,
        bad_rows,
        bytes: std::fs::metadata(path)?.len(),
    })
}

/// A good row: every column filled the way a directory export fills it (one email, phone,
/// SIP address and IM per contact, as the CSV has one cell each).
fn cells(p: &Person) -> Vec<String> {
    let (city, state, country, _) = p.city;
    vec![
        String::new(),
        p.display_name(),
        p.first.into(),
        p.last.into(),
        p.company.into(),
        p.title.into(),
        p.work_email(),
        p.phones[0].0.clone(),
        p.sip_address(),
        p.im.map(|_| p.work_email()).unwrap_or_default(),
        p.street.clone(),
        city.into(),
        state.into(),
        country.into(),
        p.zip.clone(),
        p.avatar.clone(),
        p.primary_method.into(),
        p.source.into(),
        p.groups.join(";"),
    ]
}

fn set(cells: &mut [String], column: &str, value: impl Into<String>) {
    let i = COLUMNS.iter().position(|c| *c == column).expect("a column");
    cells[i] = value.into();
}

/// The `n`-th bad row's mistake, in rotation: what a hand-edited or badly exported sheet
/// holds. All fail one contact, not the batch; the last only in the database (an update of
/// an id the org does not have: 404).
fn bad(rng: &mut fastrand::Rng, p: &Person, cells: &mut [String], n: usize) {
    match n % 10 {
        0 => set(cells, "email", format!("{}@", p.local_part())),
        1 => set(cells, "phoneNumber", "ext. 12a"),
        2 => {
            for column in ["displayName", "firstName", "lastName"] {
                set(cells, column, "");
            }
        }
        3 => set(cells, "primaryContactMethod", "FAX"),
        4 => set(cells, "avatarURL", "ftp://files.example.com/avatar.png"),
        5 => set(cells, "title", "Senior ".repeat(40)),
        6 => set(cells, "phoneNumber", "12"),
        7 => set(
            cells,
            "contactId",
            format!("CRM-{:06}", rng.u32(..1_000_000)),
        ),
        8 => set(cells, "email", format!("{}.{}", p.local_part(), p.domain)),
        _ => set(
            cells,
            "contactId",
            uuid::Uuid::from_u128(rng.u128(..)).to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_in_ten_is_bad_and_the_file_reads_back() {
        let path = std::env::temp_dir().join(format!("bench-webex-{}.csv", std::process::id()));
        let file = write(&path, 95, 3).unwrap();
        // Nine full runs of ten, and the last run's bad row only if it falls within 5.
        assert!(file.bad_rows.len() == 9 || file.bad_rows.len() == 10);
        assert!(file.bad_rows.windows(2).all(|w| w[0] < w[1]));
        let mut reader = csv::Reader::from_path(&path).unwrap();
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            COLUMNS
        );
        assert_eq!(reader.records().count(), 95);
        assert_eq!(write(&path, 95, 3).unwrap().bad_rows, file.bad_rows);
        std::fs::remove_file(&path).unwrap();
    }
}
