//! Realistic Webex bulk batches, generated from a seed so every mode of a run (end to end,
//! ceiling, naive) and every later run sees the same rows.
//!
//! Each batch has exactly `invalid` × size invalid contacts (a spread of the validation
//! errors a real export produces, plus updates of ids the org does not have), `updates` ×
//! size updates of contacts that were seeded into the database beforehand (each seeded
//! contact is updated once, so batches do not contend for rows), and new contacts for the
//! rest, in shuffled positions. Every field of the Webex shape is filled the way a CRM or
//! directory export fills it.

use contact_import::contact::{ValidatedBatch, validate_batch};
use contact_import::dialect::{self, IncomingMessage, Limits};
use contact_import::ids::{self, BatchId, ContactId, OrgId};
use serde_json::{Value, json};

/// The org every generated batch belongs to.
pub const ORG: &str = "d23736ac-8055-433e-b85a-0fc55c96ead9";
/// The worker's default limits, which the bench keeps.
pub const LIMITS: Limits = Limits {
    max_message_bytes: 16 * 1024 * 1024,
    max_contacts: 10_000,
};

/// What a run's batches look like.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub contacts: usize,
    pub batch_size: usize,
    pub invalid: f64,
    pub updates: f64,
    pub seed: u64,
}

impl Shape {
    pub fn batches(&self) -> usize {
        self.contacts.div_ceil(self.batch_size)
    }

    fn size_of(&self, batch: usize) -> usize {
        (self.contacts - batch * self.batch_size).min(self.batch_size)
    }

    fn invalid_in(&self, batch: usize) -> usize {
        (self.size_of(batch) as f64 * self.invalid).round() as usize
    }

    fn updates_in(&self, batch: usize) -> usize {
        let size = self.size_of(batch);
        ((size as f64 * self.updates).round() as usize).min(size - self.invalid_in(batch))
    }

    /// Contacts that must exist before the run: one per update.
    pub fn seeded(&self) -> usize {
        (0..self.batches()).map(|b| self.updates_in(b)).sum()
    }

    /// What the whole run must report and leave in the database.
    pub fn expected(&self) -> Expected {
        let mut e = Expected::default();
        for b in 0..self.batches() {
            let (size, invalid, updates) =
                (self.size_of(b), self.invalid_in(b), self.updates_in(b));
            e.received += size;
            e.failed += invalid;
            e.updated += updates;
            e.created += size - invalid - updates;
        }
        e
    }
}

/// Contact counts a run must produce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expected {
    pub received: usize,
    pub created: usize,
    pub updated: usize,
    pub failed: usize,
}

/// One batch as published: its id, its JSON body and the body's hash.
pub struct Batch {
    pub id: String,
    pub body: Vec<u8>,
    pub sha256: String,
    pub contacts: usize,
}

impl Batch {
    /// The batch as the worker sees it after decoding and validation, for the modes that
    /// skip the broker and JSON.
    pub fn validated(&self) -> ValidatedBatch {
        let message = IncomingMessage {
            kind: Some(dialect::webex::MESSAGE_TYPE),
            content_type: Some("application/json"),
            org_id_header: None,
            account_id_header: None,
            body: &self.body,
        };
        let decoded = dialect::decode(&message, &LIMITS).expect("generated batches decode");
        validate_batch(
            BatchId::for_message(Some(&self.id), &self.sha256),
            decoded.org_id,
            decoded.contacts,
        )
    }
}

/// The batches that create the contacts the run's updates target.
pub fn seed_batches(shape: &Shape) -> Vec<Batch> {
    let mut rng = fastrand::Rng::with_seed(shape.seed ^ 0x5eed);
    let total = shape.seeded();
    (0..total.div_ceil(shape.batch_size))
        .map(|b| {
            let n = (total - b * shape.batch_size).min(shape.batch_size);
            let contacts = (0..n).map(|_| person(&mut rng).contact(None)).collect();
            batch(seed_batch_id(b), contacts)
        })
        .collect()
}

/// The id a seeded contact got: the one the worker derives for a new contact.
fn seeded_id(index: usize, batch_size: usize) -> ContactId {
    let org = OrgId::parse(ORG).expect("a valid org");
    let batch = BatchId::for_message(Some(&seed_batch_id(index / batch_size)), "");
    ContactId::for_new(&org, &batch, index % batch_size)
}

fn seed_batch_id(b: usize) -> String {
    format!("seed-{b:06}")
}

/// Batch `b` of the run (deterministic: the same shape gives the same bytes).
pub fn measured_batch(shape: &Shape, prefix: &str, b: usize) -> Batch {
    let mut rng = fastrand::Rng::with_seed(shape.seed.wrapping_mul(1_000_003) ^ b as u64);
    let size = shape.size_of(b);
    let (invalid_n, updates) = (shape.invalid_in(b), shape.updates_in(b));
    let first_update: usize = (0..b).map(|x| shape.updates_in(x)).sum();
    let mut kinds: Vec<Kind> = (0..size)
        .map(|i| match i {
            i if i < invalid_n => Kind::Invalid(i),
            i if i < invalid_n + updates => Kind::Update(first_update + i - invalid_n),
            _ => Kind::New,
        })
        .collect();
    rng.shuffle(&mut kinds);
    let contacts = kinds
        .into_iter()
        .map(|kind| match kind {
            Kind::New => person(&mut rng).contact(None),
            Kind::Update(seeded) => {
                let id = seeded_id(seeded, shape.batch_size).to_string();
                person(&mut rng).contact(Some(&id))
            }
            Kind::Invalid(i) => invalid(&mut rng, i),
        })
        .collect();
    batch(format!("{prefix}-{b:07}"), contacts)
}

enum Kind {
    New,
    /// Updates the seeded contact with this index.
    Update(usize),
    /// The n-th invalid contact of its batch; n picks the kind of error.
    Invalid(usize),
}

fn batch(id: String, contacts: Vec<Value>) -> Batch {
    let contacts_len = contacts.len();
    let body = serde_json::to_vec(&json!({
        "schemas": "urn:cisco:codev:identity:contact:core:1.0",
        "orgId": ORG,
        "contacts": contacts,
    }))
    .expect("JSON");
    let sha256 = ids::body_sha256(&body);
    Batch {
        id,
        body,
        sha256,
        contacts: contacts_len,
    }
}

/// One of the usual mistakes of an export, in rotation; the last one passes validation and
/// fails in the database (an update of an id the org does not have, 404).
fn invalid(rng: &mut fastrand::Rng, n: usize) -> Value {
    let p = person(rng);
    let mut c = p.contact(None);
    let o = c.as_object_mut().expect("an object");
    match n % 10 {
        0 => o["emails"][0]["value"] = json!(format!("{}.{}@", p.first, p.last).to_lowercase()),
        1 => o["phoneNumbers"][0]["value"] = json!("ext. 12a"),
        2 => {
            o.remove("displayName");
            o.remove("firstName");
            o.remove("lastName");
        }
        3 => o["primaryContactMethod"] = json!("FAX"),
        4 => o["avatarURL"] = json!("ftp://files.example.com/avatar.png"),
        5 => o["emails"][0]["type"] = json!("business"),
        6 => {
            o["emails"] = json!([
                {"value": p.work_email(), "type": "work", "primary": true},
                {"value": p.home_email(), "type": "home", "primary": true},
            ])
        }
        7 => o["address"] = json!({"street": p.street, "city": p.city.0, "province": p.city.1}),
        8 => o["title"] = json!("Senior ".repeat(40)),
        _ => {
            o.insert(
                "contactId".into(),
                json!(uuid::Uuid::from_u128(rng.u128(..)).to_string()),
            );
        }
    }
    c
}

/// A made-up person, consistent across fields (the email matches the name and company).
pub struct Person {
    pub first: &'static str,
    pub last: &'static str,
    pub middle: Option<char>,
    pub company: &'static str,
    pub domain: String,
    pub title: &'static str,
    pub street: String,
    pub city: (&'static str, &'static str, &'static str, &'static str),
    pub zip: String,
    pub phones: Vec<(String, &'static str)>,
    pub primary_method: &'static str,
    pub source: &'static str,
    pub avatar: String,
    pub groups: Vec<&'static str>,
    pub im: Option<&'static str>,
    pub address_as_string: bool,
    pub home_email: bool,
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}

pub fn person(rng: &mut fastrand::Rng) -> Person {
    let company = pick(rng, COMPANIES);
    let domain = format!(
        "{}.com",
        company
            .split_whitespace()
            .next()
            .unwrap_or("example")
            .to_lowercase()
            .replace(['.', ',', '&'], "")
    );
    let city = pick(rng, CITIES);
    let phones = (0..rng.usize(1..=3))
        .map(|i| (phone(rng, city.3), ["work", "mobile", "home"][i]))
        .collect();
    Person {
        first: pick(rng, FIRST_NAMES),
        last: pick(rng, LAST_NAMES),
        middle: rng.bool().then(|| rng.uppercase()),
        company,
        domain,
        title: pick(rng, TITLES),
        street: format!(
            "{} {} {}",
            rng.u32(1..9999),
            pick(rng, STREETS),
            pick(rng, &["St.", "Ave.", "Blvd.", "Road", "Way", "Drive"])
        ),
        city,
        zip: format!("{:05}", rng.u32(1000..99999)),
        phones,
        primary_method: pick(rng, &["EMAIL", "PHONE", "SIPADDRESS", "IMS"]),
        source: pick(
            rng,
            &[
                "Webex4Broadworks",
                "CSV",
                "Salesforce",
                "Okta SCIM",
                "Azure AD",
            ],
        ),
        avatar: format!(
            "https://avatar-prod-us-east-2.webexcontent.com/Avtr~V1~{}/V1~{:016x}~1600",
            uuid::Uuid::from_u128(rng.u128(..)),
            rng.u64(..)
        ),
        groups: (0..rng.usize(0..=3)).map(|_| pick(rng, GROUPS)).collect(),
        im: rng
            .bool()
            .then(|| pick(rng, &["xmpp", "aim", "skype", "jabber"])),
        address_as_string: rng.u8(..10) == 0,
        home_email: rng.u8(..3) == 0,
    }
}

/// A phone number in one of the spellings exports use.
fn phone(rng: &mut fastrand::Rng, country_code: &str) -> String {
    let (a, b, c) = (rng.u32(200..999), rng.u32(200..999), rng.u32(0..9999));
    match rng.u8(..4) {
        0 => format!("+{country_code} ({a}) {b}-{c:04}"),
        1 => format!("{a}.{b}.{c:04}"),
        2 => format!("+{country_code} {a} {b} {c:04}"),
        _ => format!("{a} {b} {c:04}"),
    }
}

impl Person {
    /// `first.last`, folded to ASCII as mail systems do.
    pub fn local_part(&self) -> String {
        format!("{}.{}", self.first, self.last)
            .to_lowercase()
            .chars()
            .map(|c| match c {
                'é' => 'e',
                'ø' => 'o',
                'ü' => 'u',
                c => c,
            })
            .collect()
    }

    pub fn work_email(&self) -> String {
        format!("{}@{}", self.local_part(), self.domain)
    }

    fn home_email(&self) -> String {
        format!("{}{}@gmail.com", self.local_part(), &self.zip[3..])
    }

    /// `First M. Last`, or `First Last`.
    pub fn display_name(&self) -> String {
        match self.middle {
            Some(m) => format!("{} {m}. {}", self.first, self.last),
            None => format!("{} {}", self.first, self.last),
        }
    }

    /// The SIP address a Webex calling domain gives the person.
    pub fn sip_address(&self) -> String {
        format!(
            "{}@{}.calls.webex.com",
            self.local_part(),
            self.domain.trim_end_matches(".com")
        )
    }

    fn contact(&self, contact_id: Option<&str>) -> Value {
        let display = self.display_name();
        let address = json!({
            "street": self.street, "city": self.city.0, "state": self.city.1,
            "country": self.city.2, "zipCode": self.zip,
        });
        let address = if self.address_as_string {
            Value::String(address.to_string())
        } else {
            address
        };
        let mut emails = vec![json!({"value": self.work_email(), "type": "work", "primary": true})];
        if self.home_email {
            emails.push(json!({"value": self.home_email(), "type": "home", "primary": false}));
        }
        let phones: Vec<Value> = self
            .phones
            .iter()
            .enumerate()
            .map(|(i, (value, kind))| json!({"value": value, "type": kind, "primary": i == 0}))
            .collect();
        let ims: Vec<Value> = self
            .im
            .map(|kind| json!({"value": self.work_email(), "type": kind, "primary": true}))
            .into_iter()
            .collect();
        let mut c = json!({
            "displayName": display,
            "firstName": self.first,
            "lastName": self.last,
            "companyName": self.company,
            "title": self.title,
            "address": address,
            "avatarURL": self.avatar,
            "primaryContactMethod": self.primary_method,
            "source": self.source,
            "emails": emails,
            "phoneNumbers": phones,
            "sipAddresses": [{"value": self.sip_address(), "type": "enterprise", "primary": true}],
            "ims": ims,
            "groups": self.groups,
        });
        if let Some(id) = contact_id {
            c["contactId"] = json!(id);
        }
        c
    }
}

const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Priya",
    "Wei",
    "Aisha",
    "Mateo",
    "Sofia",
    "Lukas",
    "Emma",
    "Hiroshi",
    "Yuki",
    "Olga",
    "Ahmed",
    "Fatima",
    "Carlos",
    "Ana",
    "Pierre",
    "Chloé",
    "Søren",
    "Ingrid",
    "Rajesh",
    "Mei",
];
const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Nakamura",
    "Müller",
    "Schmidt",
    "Kowalski",
    "Andersen",
    "Dubois",
    "Rossi",
    "Chen",
    "Patel",
    "O'Brien",
];
const COMPANIES: &[&str] = &[
    "Cisco Systems",
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Industries",
    "Soylent Foods",
    "Northwind Traders",
    "Contoso Ltd.",
    "Fabrikam",
    "Tailspin Toys",
    "Wide World Importers",
    "Blue Yonder Airlines",
];
const TITLES: &[&str] = &[
    "GM",
    "Account Executive",
    "Software Engineer",
    "Senior Software Engineer",
    "Director of Sales",
    "Customer Success Manager",
    "VP Engineering",
    "Office Manager",
    "Network Administrator",
    "Chief Financial Officer",
    "Support Engineer",
    "Product Manager",
    "Recruiter",
    "Solutions Architect",
    "Nurse Practitioner",
    "Operations Lead",
];
const STREETS: &[&str] = &[
    "Bird",
    "Main",
    "Oak",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Tasman",
    "Sunset",
    "River",
    "Highland",
    "Church",
    "Mill",
];
/// City, state, country, phone country code.
const CITIES: &[(&str, &str, &str, &str)] = &[
    ("Milpitas", "CA", "US", "1"),
    ("San Jose", "CA", "US", "1"),
    ("Austin", "TX", "US", "1"),
    ("Raleigh", "NC", "US", "1"),
    ("New York", "NY", "US", "1"),
    ("Toronto", "ON", "CA", "1"),
    ("London", "England", "GB", "44"),
    ("Berlin", "Berlin", "DE", "49"),
    ("Paris", "Île-de-France", "FR", "33"),
    ("Bangalore", "Karnataka", "IN", "91"),
    ("Tokyo", "Tokyo", "JP", "81"),
    ("Sydney", "NSW", "AU", "61"),
];
const GROUPS: &[&str] = &[
    "Sales",
    "Engineering",
    "Support",
    "Partners",
    "VIP",
    "Customers",
    "Vendors",
    "Board",
    "e6f2e6b4-52f6-4a1c-9d2d-6f3c2d7a8b91",
    "3b0f7a52-1c3e-4e0a-8f5d-2a9b7c6d5e4f",
];

#[cfg(test)]
mod tests {
    use super::*;
    use contact_import::contact::Planned;

    #[test]
    fn batches_have_the_configured_mix_and_decode() {
        let shape = Shape {
            contacts: 2_500,
            batch_size: 1_000,
            invalid: 0.1,
            updates: 0.2,
            seed: 7,
        };
        assert_eq!(shape.batches(), 3);
        assert_eq!(shape.seeded(), 500);
        let expected = shape.expected();
        assert_eq!(
            expected,
            Expected {
                received: 2_500,
                created: 1_750,
                updated: 500,
                failed: 250
            }
        );
        let batch = measured_batch(&shape, "t", 0);
        let validated = batch.validated();
        let failed = validated
            .entries()
            .iter()
            .filter(|e| matches!(e, Planned::Failed(_)))
            .count();
        // One in ten invalid contacts is an update of an unknown id, which only the
        // database can tell.
        assert_eq!(failed, 90);
        assert_eq!(measured_batch(&shape, "t", 0).body, batch.body);
    }
}
