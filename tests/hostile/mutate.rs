//! Mutations of a seed: byte-level (flips, insertions, deletions, truncation, duplicated
//! slices) and structure-aware (a JSON value replaced by one of another type, a very long
//! string, deep nesting, a list repeated; XML elements nested deep or repeated).

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;

/// One change to a body.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Flips one bit of one byte.
    Flip(Index, u8),
    /// Inserts bytes (or a syntax token repeated) at a position.
    Insert(Index, Vec<u8>),
    /// Removes up to `len` bytes from a position.
    Delete(Index, usize),
    /// Keeps only the bytes before a position.
    Truncate(Index),
    /// Repeats the slice of up to `len` bytes at a position `times` more times.
    Duplicate(Index, usize, usize),
    /// Replaces one JSON value (the document's `n`th, in document order) by another; a
    /// body that is not JSON is left as it is.
    ReplaceJson(Index, Replacement),
    /// Wraps the `n`th XML element's content in `depth` elements, or repeats the element
    /// `depth` times; a body that is not XML-like is left as it is.
    Xml(Index, XmlChange),
    /// Changes one cell of one line split at commas (CSV): emptied, removed, doubled,
    /// quoted, or a long text; the header row is one of the lines.
    Csv(Index, Index, CsvChange),
}

/// A change to one CSV cell.
#[derive(Debug, Clone)]
pub enum CsvChange {
    /// Emptied.
    Empty,
    /// Removed, with its comma.
    Remove,
    /// Written twice, as two cells.
    Double,
    /// Quoted, with quotes and a line break inside.
    Quote,
    /// A text of this many characters.
    Long(usize),
}

/// What a JSON value is replaced by.
#[derive(Debug, Clone)]
pub enum Replacement {
    /// A value of any type.
    Value(Value),
    /// A string of `len` copies of a character.
    LongString(char, usize),
    /// The value nested `depth` arrays or objects deep.
    Nested(bool, usize),
    /// An array of the value repeated `times`.
    Repeated(usize),
}

/// A change to one XML element.
#[derive(Debug, Clone)]
pub enum XmlChange {
    /// Its content nested in this many elements.
    Nest(usize),
    /// The element repeated this many times.
    Repeat(usize),
    /// Its content replaced by a long text of this many characters.
    LongText(usize),
}

/// Bytes that mean something to one of the formats, to insert.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b",",
    b":",
    b"null",
    b"1e999",
    b"-0",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"<",
    b">",
    b"</",
    b"/>",
    b"<contact>",
    b"</contact>",
    b"<contacts>",
    b"&amp;",
    b"&#0;",
    b"&#x110000;",
    b"&foo;",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\">]>",
    b"<?xml version=\"1.0\"?>",
    b"xmlns:d4p1=\"x\"",
    b"\n",
    b"\r\n",
    b"\r",
    b"\t",
    b"\0",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xc3",
    b"\xf0\x9f\x98",
    b"\xf0\x9f\x98\x80",
    b";",
    b"\"\"",
    b",,,,",
    b"accountId",
    b"contacts",
    b"orgId",
    b"password",
    b"contactId",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(serde_json::from_str("123456789012345678901234567890").expect("a number")),
        ".{0,24}".prop_map(Value::String),
        Just(Value::String(String::new())),
        Just(Value::String("00000000-0000-0000-0000-000000000000".into())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((".{0,8}", inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

fn replacement() -> impl Strategy<Value = Replacement> {
    prop_oneof![
        4 => value().prop_map(Replacement::Value),
        1 => (prop::sample::select(vec!['a', 'é', '\0', '\n', '"', '😀']), 200usize..70_000)
            .prop_map(|(c, n)| Replacement::LongString(c, n)),
        1 => (any::<bool>(), 1usize..300).prop_map(|(array, depth)| Replacement::Nested(array, depth)),
        1 => (1usize..300).prop_map(Replacement::Repeated),
    ]
}

fn xml_change() -> impl Strategy<Value = XmlChange> {
    prop_oneof![
        (1usize..2000).prop_map(XmlChange::Nest),
        (1usize..300).prop_map(XmlChange::Repeat),
        (200usize..70_000).prop_map(XmlChange::LongText),
    ]
}

fn csv_change() -> impl Strategy<Value = CsvChange> {
    prop_oneof![
        Just(CsvChange::Empty),
        Just(CsvChange::Remove),
        Just(CsvChange::Double),
        Just(CsvChange::Quote),
        (200usize..70_000).prop_map(CsvChange::Long),
    ]
}

/// Any one mutation.
pub fn mutation() -> impl Strategy<Value = Mutation> {
    let insert = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..16),
        (prop::sample::select(TOKENS), 1usize..400).prop_map(|(t, n)| t.repeat(n)),
        prop::sample::select(TOKENS).prop_map(<[u8]>::to_vec),
    ];
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        3 => (any::<Index>(), insert).prop_map(|(i, bytes)| Mutation::Insert(i, bytes)),
        2 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<Index>(), 1usize..256, 1usize..64)
            .prop_map(|(i, n, t)| Mutation::Duplicate(i, n, t)),
        4 => (any::<Index>(), replacement()).prop_map(|(i, r)| Mutation::ReplaceJson(i, r)),
        2 => (any::<Index>(), xml_change()).prop_map(|(i, c)| Mutation::Xml(i, c)),
        2 => (any::<Index>(), any::<Index>(), csv_change())
            .prop_map(|(line, cell, c)| Mutation::Csv(line, cell, c)),
    ]
}

/// A seed after one to four mutations.
pub fn mutated(seed: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(mutation(), 1..5).prop_map(move |mutations| {
        let mut body = seed.to_vec();
        for m in &mutations {
            apply(&mut body, m);
        }
        body
    })
}

/// Applies one mutation in place.
pub fn apply(body: &mut Vec<u8>, mutation: &Mutation) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
    match mutation {
        Mutation::Flip(i, bit) if !body.is_empty() => {
            let n = i.index(body.len());
            body[n] ^= 1 << bit;
        }
        Mutation::Flip(..) => {}
        Mutation::Insert(i, bytes) => {
            let n = at(i, body.len());
            body.splice(n..n, bytes.iter().copied());
        }
        Mutation::Delete(i, len) => {
            let n = at(i, body.len());
            let end = (n + len).min(body.len());
            body.drain(n..end);
        }
        Mutation::Truncate(i) => body.truncate(at(i, body.len())),
        Mutation::Duplicate(i, len, times) => {
            let n = at(i, body.len());
            let end = (n + len).min(body.len());
            let slice = body[n..end].repeat(*times);
            body.splice(end..end, slice);
        }
        Mutation::ReplaceJson(i, with) => replace_json(body, i, with),
        Mutation::Xml(i, change) => change_xml(body, i, change),
        Mutation::Csv(line, cell, change) => change_csv(body, line, cell, change),
    }
}

fn change_csv(body: &mut Vec<u8>, line: &Index, cell: &Index, change: &CsvChange) {
    let mut lines: Vec<Vec<u8>> = body.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let n = line.index(lines.len());
    let mut cells: Vec<Vec<u8>> = lines[n].split(|&b| b == b',').map(<[u8]>::to_vec).collect();
    let c = cell.index(cells.len());
    match change {
        CsvChange::Empty => cells[c].clear(),
        CsvChange::Remove => {
            cells.remove(c);
        }
        CsvChange::Double => cells.insert(c, cells[c].clone()),
        CsvChange::Quote => cells[c] = [b"\"a\"\"\n".as_slice(), &cells[c], b"\""].concat(),
        CsvChange::Long(len) => cells[c] = vec![b'y'; *len],
    }
    lines[n] = cells.join(&b',');
    *body = lines.join(&b'\n');
}

fn replace_json(body: &mut Vec<u8>, i: &Index, with: &Replacement) {
    let Ok(mut document) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let mut pointers = Vec::new();
    pointers_of(&document, String::new(), &mut pointers);
    let pointer = &pointers[i.index(pointers.len())];
    let target = document
        .pointer_mut(pointer)
        .expect("a pointer just listed");
    *target = match with {
        Replacement::Value(v) => v.clone(),
        Replacement::LongString(c, n) => Value::String(std::iter::repeat_n(*c, *n).collect()),
        Replacement::Nested(array, depth) => {
            let mut v = target.take();
            for _ in 0..*depth {
                v = if *array {
                    Value::Array(vec![v])
                } else {
                    Value::Object([("contacts".to_owned(), v)].into_iter().collect())
                };
            }
            v
        }
        Replacement::Repeated(times) => Value::Array(vec![target.take(); *times]),
    };
    *body = serde_json::to_vec(&document).expect("a value serialises");
    // serde_json drops a value recursively, one stack frame per level.
    drop_deep(document);
}

/// Every JSON pointer in the document, the root's (`""`) first.
fn pointers_of(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Array(items) => {
            for (n, item) in items.iter().enumerate() {
                pointers_of(item, format!("{at}/{n}"), out);
            }
        }
        Value::Object(members) => {
            for (key, item) in members {
                let key = key.replace('~', "~0").replace('/', "~1");
                pointers_of(item, format!("{at}/{key}"), out);
            }
        }
        _ => {}
    }
}

/// Drops a value without recursing once per level.
fn drop_deep(value: Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(members) => stack.extend(members.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// Changes the element of the `n`th start tag in the body, if its end tag can be found.
fn change_xml(body: &mut Vec<u8>, i: &Index, change: &XmlChange) {
    let starts: Vec<usize> = body
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] == b'<' && w[1].is_ascii_alphabetic())
        .map(|(n, _)| n)
        .collect();
    if starts.is_empty() {
        return;
    }
    let start = starts[i.index(starts.len())];
    let Some(open_end) = body[start..]
        .iter()
        .position(|&b| b == b'>')
        .map(|p| start + p + 1)
    else {
        return;
    };
    let name: Vec<u8> = body[start + 1..open_end]
        .iter()
        .copied()
        .take_while(|b| !b.is_ascii_whitespace() && *b != b'>' && *b != b'/')
        .collect();
    let close = [b"</".as_slice(), &name, b">"].concat();
    let Some(close_at) = find(&body[open_end..], &close).map(|p| open_end + p) else {
        return;
    };
    match change {
        XmlChange::Nest(depth) => {
            body.splice(close_at..close_at, b"</n>".repeat(*depth));
            body.splice(open_end..open_end, b"<n>".repeat(*depth));
        }
        XmlChange::Repeat(times) => {
            let element = body[start..close_at + close.len()].repeat(*times);
            body.splice(start..start, element);
        }
        XmlChange::LongText(len) => {
            body.splice(open_end..close_at, std::iter::repeat_n(b'x', *len));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
