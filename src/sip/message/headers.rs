//! Header fields: the container that keeps them as received.
//!
//! A parsed header section is one owned copy of its text plus, per field, the name's id and
//! where its name and value are: no allocation per field. Folded values are unfolded once,
//! into the end of the same buffer. The typed values of the headers a PBX uses live in
//! `typed.rs`; this module knows names, values, order and the comma rule only.

use std::borrow::Cow;
use std::fmt;

use super::{Limits, ParseError, is_token_char, trim_blanks};

/// Known header names, with their compact forms (RFC 3261 §7.3.3 and extensions). The
/// headers of almost every message come first.
const CANONICAL: &[(&str, Option<u8>)] = &[
    ("Via", Some(b'v')),
    ("From", Some(b'f')),
    ("To", Some(b't')),
    ("Call-ID", Some(b'i')),
    ("CSeq", None),
    ("Contact", Some(b'm')),
    ("Max-Forwards", None),
    ("Content-Length", Some(b'l')),
    ("Content-Type", Some(b'c')),
    ("User-Agent", None),
    ("Expires", None),
    ("Authorization", None),
    ("Allow", None),
    ("Supported", Some(b'k')),
    ("Route", None),
    ("Record-Route", None),
    ("WWW-Authenticate", None),
    ("Accept", None),
    ("Accept-Contact", Some(b'a')),
    ("Allow-Events", Some(b'u')),
    ("Content-Encoding", Some(b'e')),
    ("Event", Some(b'o')),
    ("Identity", Some(b'y')),
    ("Min-Expires", None),
    ("Path", None),
    ("Proxy-Authenticate", None),
    ("Proxy-Authorization", None),
    ("Proxy-Require", None),
    ("RAck", None),
    ("Refer-To", Some(b'r')),
    ("Referred-By", Some(b'b')),
    ("Reject-Contact", Some(b'j')),
    ("Request-Disposition", Some(b'd')),
    ("Require", None),
    ("RSeq", None),
    ("Session-Expires", Some(b'x')),
    ("Subject", Some(b's')),
    ("Unsupported", None),
];

/// A header name: the index of a known name in `CANONICAL`, or [`UNKNOWN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameId(u8);

/// The ids of the names the stack looks at most, for matching without a lookup.
impl NameId {
    pub(crate) const VIA: NameId = NameId(0);
    pub(crate) const FROM: NameId = NameId(1);
    pub(crate) const TO: NameId = NameId(2);
    pub(crate) const CALL_ID: NameId = NameId(3);
    pub(crate) const CSEQ: NameId = NameId(4);
    pub(crate) const CONTACT: NameId = NameId(5);
    pub(crate) const ROUTE: NameId = NameId(14);
    pub(crate) const RECORD_ROUTE: NameId = NameId(15);
}

const UNKNOWN: NameId = NameId(u8::MAX);
/// The longest known name ("Request-Disposition").
const LONGEST_KNOWN: usize = 19;

/// The id of `name` (case-insensitive; a compact form is its long name's id).
fn name_id(name: &str) -> NameId {
    let bytes = name.as_bytes();
    if let [c] = bytes {
        let c = c.to_ascii_lowercase();
        return CANONICAL
            .iter()
            .position(|(_, compact)| *compact == Some(c))
            .map_or(UNKNOWN, |i| NameId(i as u8));
    }
    if bytes.len() > LONGEST_KNOWN {
        return UNKNOWN;
    }
    let id = NAME_HASH_TABLE[name_hash(bytes)];
    if id == UNKNOWN.0 {
        return UNKNOWN;
    }
    let lower = &LOWER[usize::from(id)];
    // Known names are letters and '-'. `b | 0x20` is the lower-case letter exactly when `b`
    // is that letter in either case; below 0x40 ('-') the bytes must be equal. The zero
    // padding of `lower` makes a longer name differ.
    let differ = bytes.iter().zip(lower).fold(0, |differ, (&b, &l)| {
        differ | ((b | 0x20) ^ l) | (u8::from(b < 0x40) & u8::from(b != l))
    });
    let same_length = bytes.len() == LONGEST_KNOWN || lower[bytes.len()] == 0;
    if differ == 0 && same_length {
        NameId(id)
    } else {
        UNKNOWN
    }
}

/// A hash of a name (at least two bytes) under which no two known names collide: length,
/// first and last byte, case-folded.
const fn name_hash(name: &[u8]) -> usize {
    let first = (name[0] | 0x20) as usize;
    let last = (name[name.len() - 1] | 0x20) as usize;
    (name.len() + 2 * first + 27 * last) & 127
}

/// The id of the known name with each hash, or `UNKNOWN`.
const NAME_HASH_TABLE: [u8; 128] = {
    let mut table = [UNKNOWN.0; 128];
    let mut id = 0;
    while id < CANONICAL.len() {
        let slot = name_hash(CANONICAL[id].0.as_bytes());
        assert!(
            table[slot] == UNKNOWN.0,
            "two known header names share a hash"
        );
        table[slot] = id as u8;
        id += 1;
    }
    table
};

/// The known names in lower case (padded with zeros), in `CANONICAL` order.
const LOWER: [[u8; LONGEST_KNOWN]; CANONICAL.len()] = {
    let mut table = [[0; LONGEST_KNOWN]; CANONICAL.len()];
    let mut id = 0;
    while id < CANONICAL.len() {
        let name = CANONICAL[id].0.as_bytes();
        let mut i = 0;
        while i < name.len() {
            assert!(name[i].is_ascii_alphabetic() || name[i] == b'-');
            table[id][i] = name[i].to_ascii_lowercase();
            i += 1;
        }
        id += 1;
    }
    table
};

/// What a query for `name` matches: a known id, or an unknown name compared by text.
#[derive(Clone, Copy)]
struct NameQuery<'a> {
    id: NameId,
    text: &'a str,
}

impl<'a> NameQuery<'a> {
    fn new(text: &'a str) -> NameQuery<'a> {
        NameQuery {
            id: name_id(text),
            text,
        }
    }

    fn matches(self, id: NameId, name: &str) -> bool {
        if self.id == UNKNOWN {
            id == UNKNOWN && name.eq_ignore_ascii_case(self.text)
        } else {
            id == self.id
        }
    }
}

/// A header field built by this stack, to be added to a [`Headers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    name: Cow<'static, str>,
    value: String,
}

impl Header {
    /// A header called `name` (printed as given) with `value`.
    pub fn new(name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The name as it will be printed.
    pub fn name_text(&self) -> &str {
        &self.name
    }

    /// Whether this header is `name` (case-insensitive; compact forms match their long name).
    pub fn is(&self, name: &str) -> bool {
        NameQuery::new(name).matches(name_id(&self.name), &self.name)
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

/// One header field of a [`Headers`]: its name as received and its value (unfolded).
#[derive(Debug, Clone, Copy)]
pub struct HeaderRef<'a> {
    id: NameId,
    name: &'a str,
    value: &'a str,
}

impl<'a> HeaderRef<'a> {
    /// The name as received (a compact form stays compact, odd capitalisation is kept).
    pub fn name_text(&self) -> &'a str {
        self.name
    }

    /// Whether this header is `name` (case-insensitive; compact forms match their long name).
    pub fn is(&self, name: &str) -> bool {
        NameQuery::new(name).matches(self.id, self.name)
    }

    pub fn value(&self) -> &'a str {
        self.value
    }

    /// The name's id, for matching against the `NameId` constants.
    pub(crate) fn id(&self) -> NameId {
        self.id
    }

    /// An owned copy.
    pub fn to_header(&self) -> Header {
        Header::new(self.name.to_owned(), self.value)
    }
}

impl PartialEq for HeaderRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.value == other.value
    }
}

/// Where a name or value is in [`Headers::text`].
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(start: usize, end: usize) -> Span {
        // Header sections are bounded far below 4 GiB (`Limits::max_message_bytes`).
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    fn len(self) -> usize {
        (self.end - self.start) as usize
    }
}

#[derive(Debug, Clone, Copy)]
struct Field {
    id: NameId,
    name: Span,
    value: Span,
}

/// The header fields of a message, in order.
#[derive(Clone, Default)]
pub struct Headers {
    /// The header section as received, then the text of unfolded values and of fields added
    /// or changed later.
    text: String,
    fields: Vec<Field>,
}

impl Headers {
    /// Parses the header section (the lines after the start line, without the empty line).
    ///
    /// # Errors
    /// A line that is not a header field, a control character outside quotes, or a limit.
    pub fn parse(section: &str, limits: &Limits) -> Result<Headers, ParseError> {
        let bad_line = |line: &str| ParseError::BadHeaderLine {
            line: line.chars().take(64).collect(),
        };
        let too_long = || ParseError::HeaderTooLong {
            limit: limits.max_header_bytes,
        };
        let mut text = String::with_capacity(section.len() + 64);
        text.push_str(section);
        let mut fields: Vec<Field> = Vec::with_capacity(20);
        let bytes = section.as_bytes();
        // Control characters are legal only inside quoted strings (RFC 4475 §3.1.1.2). One
        // pass counts them in the whole section; when there are more than the line ends
        // account for, the quote-aware check runs on each value.
        let controls: usize = bytes
            .chunks(128)
            .map(|chunk| {
                let in_chunk: u8 = chunk
                    .iter()
                    .map(|&b| u8::from(b < b' ' && b != b'\t'))
                    .sum();
                usize::from(in_chunk)
            })
            .sum();
        let mut line_end_controls = 0;
        let mut line_start = 0;
        while line_start < bytes.len() {
            let newline =
                memchr::memchr(b'\n', &bytes[line_start..]).map_or(bytes.len(), |i| line_start + i);
            let mut line_end = newline;
            line_end_controls += usize::from(newline < bytes.len());
            if line_end > line_start && bytes[line_end - 1] == b'\r' {
                line_end -= 1;
                line_end_controls += 1;
            }
            let line = &section[line_start..line_end];
            let start = line_start;
            line_start = newline + 1;
            if line.is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                // A continuation line: the value so far, a space and this line's text, at
                // the end of the buffer.
                let last = fields.last_mut().ok_or_else(|| bad_line(line))?;
                let continuation = line.trim_matches([' ', '\t']);
                if continuation.is_empty() {
                    continue;
                }
                if last.value.end as usize != text.len()
                    || (last.value.start as usize) < section.len()
                {
                    let value_start = text.len();
                    text.extend_from_within(last.value.start as usize..last.value.end as usize);
                    last.value = Span::of(value_start, text.len());
                }
                if last.value.len() > 0 {
                    text.push(' ');
                }
                text.push_str(continuation);
                last.value.end = text.len() as u32;
                if last.value.len() > limits.max_header_bytes {
                    return Err(too_long());
                }
                continue;
            }
            // The name: token characters, then optional blanks and the colon.
            let line_bytes = line.as_bytes();
            let name_len = line_bytes
                .iter()
                .position(|&b| !is_token_char(b))
                .unwrap_or(line.len());
            let colon = name_len
                + line_bytes[name_len..]
                    .iter()
                    .position(|&b| b != b' ' && b != b'\t')
                    .unwrap_or(line.len() - name_len);
            if name_len == 0 || line_bytes.get(colon) != Some(&b':') {
                return Err(bad_line(line));
            }
            let name = &line[..name_len];
            if fields.len() == limits.max_headers {
                return Err(ParseError::TooManyHeaders {
                    limit: limits.max_headers,
                });
            }
            if line.len() > limits.max_header_bytes {
                return Err(too_long());
            }
            // The value without the blanks around it.
            let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
            let mut value_start = colon + 1;
            let mut value_end = line_bytes.len();
            while value_start < value_end && is_blank(&line_bytes[value_start]) {
                value_start += 1;
            }
            while value_end > value_start && is_blank(&line_bytes[value_end - 1]) {
                value_end -= 1;
            }
            fields.push(Field {
                id: name_id(name),
                name: Span::of(start, start + name_len),
                value: Span::of(start + value_start, start + value_end),
            });
        }
        let headers = Headers { text, fields };
        if controls > line_end_controls
            && headers
                .iter()
                .any(|h| has_control(h.value) && !controls_only_in_quotes(h.value))
        {
            return Err(ParseError::BadEncoding);
        }
        Ok(headers)
    }

    fn slice(&self, span: Span) -> &str {
        &self.text[span.start as usize..span.end as usize]
    }

    fn field_ref(&self, field: &Field) -> HeaderRef<'_> {
        HeaderRef {
            id: field.id,
            name: self.slice(field.name),
            value: self.slice(field.value),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = HeaderRef<'_>> {
        self.fields.iter().map(|f| self.field_ref(f))
    }

    /// Every header called `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = HeaderRef<'a>> + 'a {
        let query = NameQuery::new(name);
        self.fields
            .iter()
            .filter(move |f| query.matches(f.id, self.slice(f.name)))
            .map(|f| self.field_ref(f))
    }

    /// The value of the first header called `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        let query = NameQuery::new(name);
        self.fields
            .iter()
            .find(|f| query.matches(f.id, self.slice(f.name)))
            .map(|f| self.slice(f.value))
    }

    /// Every comma-separated value of every header called `name`, in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.all(name).flat_map(|h| split_commas(h.value))
    }

    fn field_from_text(&mut self, name: &str, value: &str) -> Field {
        let name_start = self.text.len();
        self.text.push_str(name);
        let value_start = self.text.len();
        self.text.push_str(value);
        Field {
            id: name_id(name),
            name: Span::of(name_start, value_start),
            value: Span::of(value_start, self.text.len()),
        }
    }

    pub fn push(&mut self, header: Header) {
        self.push_field(&header.name, &header.value);
    }

    /// Appends a field `name: value`.
    pub fn push_field(&mut self, name: &str, value: &str) {
        let field = self.field_from_text(name, value);
        self.fields.push(field);
    }

    /// Inserts `header` before all others (e.g. a new top Via).
    pub fn push_front(&mut self, header: Header) {
        let field = self.field_from_text(&header.name, &header.value);
        self.fields.insert(0, field);
    }

    /// Removes every header called `name`.
    pub fn remove(&mut self, name: &str) {
        let query = NameQuery::new(name);
        let text = &self.text;
        self.fields
            .retain(|f| !query.matches(f.id, &text[f.name.start as usize..f.name.end as usize]));
    }

    /// Replaces the value of the first header called `name` with `f(old value)`.
    pub fn map_first(&mut self, name: &str, f: impl FnOnce(&str) -> String) {
        let query = NameQuery::new(name);
        let Some(index) = self
            .fields
            .iter()
            .position(|field| query.matches(field.id, self.slice(field.name)))
        else {
            return;
        };
        let new_value = f(self.slice(self.fields[index].value));
        let start = self.text.len();
        self.text.push_str(&new_value);
        self.fields[index].value = Span::of(start, self.text.len());
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Drops the text no field refers to any more (replaced values, removed fields) and all
    /// spare capacity: for headers kept a long time, such as a response held for
    /// retransmission.
    pub fn shrink(&mut self) {
        let live = self
            .fields
            .iter()
            .map(|f| f.name.len() + f.value.len())
            .sum();
        let mut text = String::with_capacity(live);
        for field in &mut self.fields {
            let name_start = text.len();
            text.push_str(&self.text[field.name.start as usize..field.name.end as usize]);
            let value_start = text.len();
            text.push_str(&self.text[field.value.start as usize..field.value.end as usize]);
            field.name = Span::of(name_start, value_start);
            field.value = Span::of(value_start, text.len());
        }
        self.text = text;
        self.fields.shrink_to_fit();
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl PartialEq for Headers {
    /// Same fields (names as written, values) in the same order.
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|h| (h.name, h.value)))
            .finish()
    }
}

fn has_control(text: &str) -> bool {
    text.bytes().any(|b| b < b' ' && b != b'\t')
}

fn controls_only_in_quotes(value: &str) -> bool {
    let mut in_quotes = false;
    let mut escaped = false;
    for b in value.bytes() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b if b < b' ' && b != b'\t' && !in_quotes => return false,
            _ => {}
        }
    }
    // A quote left open makes no quoted string: its control characters are bare (and a
    // trailing CR would not survive printing).
    !in_quotes
}

/// Splits a header value at commas that are outside quoted strings and `<…>`; each part is
/// trimmed. Allocation-free.
pub fn split_commas(value: &str) -> SplitCommas<'_> {
    SplitCommas {
        value,
        position: 0,
        done: false,
    }
}

/// The iterator of [`split_commas`].
#[derive(Debug, Clone)]
pub struct SplitCommas<'a> {
    value: &'a str,
    position: usize,
    done: bool,
}

impl<'a> Iterator for SplitCommas<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        let bytes = self.value.as_bytes();
        let start = self.position;
        if memchr::memchr(b',', &bytes[start..]).is_none() {
            self.done = true;
            return Some(trim_blanks(&self.value[start..]));
        }
        let (mut in_quotes, mut escaped, mut in_angle) = (false, false, false);
        for (offset, &b) in bytes[start..].iter().enumerate() {
            if escaped {
                escaped = false;
                continue;
            }
            match b {
                b'\\' if in_quotes => escaped = true,
                b'"' => in_quotes = !in_quotes,
                b'<' if !in_quotes => in_angle = true,
                b'>' if !in_quotes => in_angle = false,
                b',' if !in_quotes && !in_angle => {
                    let end = start + offset;
                    self.position = end + 1;
                    return Some(trim_blanks(&self.value[start..end]));
                }
                _ => {}
            }
        }
        self.done = true;
        Some(trim_blanks(&self.value[start..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_resolves_to_itself_in_any_case_and_compact_form() {
        for (index, (name, compact)) in CANONICAL.iter().enumerate() {
            assert!(name.len() <= LONGEST_KNOWN, "{name}");
            assert_eq!(name_id(name), NameId(index as u8), "{name}");
            assert_eq!(name_id(&name.to_ascii_uppercase()), NameId(index as u8));
            assert_eq!(name_id(&name.to_ascii_lowercase()), NameId(index as u8));
            if let Some(c) = compact {
                let c = char::from(*c);
                assert_eq!(name_id(&c.to_string()), NameId(index as u8), "{name}");
                assert_eq!(
                    name_id(&c.to_ascii_uppercase().to_string()),
                    NameId(index as u8)
                );
            }
        }
        for (id, name) in [
            (NameId::VIA, "Via"),
            (NameId::FROM, "From"),
            (NameId::TO, "To"),
            (NameId::CALL_ID, "Call-ID"),
            (NameId::CSEQ, "CSeq"),
            (NameId::CONTACT, "Contact"),
            (NameId::ROUTE, "Route"),
            (NameId::RECORD_ROUTE, "Record-Route"),
        ] {
            assert_eq!(CANONICAL[usize::from(id.0)].0, name);
        }
        assert_eq!(name_id("X-Custom"), UNKNOWN);
        assert_eq!(name_id("Call\rID"), UNKNOWN, "only '-' matches '-'");
        assert_eq!(name_id("VIA"), NameId::VIA);
        assert_eq!(name_id("Request-Dispositions"), UNKNOWN);
        assert_eq!(name_id("z"), UNKNOWN);
    }

    #[test]
    fn folded_values_are_joined_and_fields_keep_their_order_through_changes() {
        let section = "Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\nSubject: one\r\n  two\r\n\tthree\r\nX-Odd :  kept  as is\r\nv: SIP/2.0/UDP b;branch=z9hG4bK2\r\nl: 0";
        let mut headers = Headers::parse(section, &Limits::default()).expect("parses");
        let fields: Vec<(&str, &str)> =
            headers.iter().map(|h| (h.name_text(), h.value())).collect();
        assert_eq!(
            fields,
            [
                ("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"),
                ("Subject", "one two three"),
                ("X-Odd", "kept  as is"),
                ("v", "SIP/2.0/UDP b;branch=z9hG4bK2"),
                ("l", "0"),
            ]
        );
        assert_eq!(headers.values("VIA").count(), 2);
        assert_eq!(headers.first("x-odd"), Some("kept  as is"));
        assert_eq!(headers.first("Content-Length"), Some("0"));

        headers.map_first("Subject", |v| format!("{v} four"));
        headers.remove("via");
        headers.push_front(Header::new("Via", "SIP/2.0/TCP c"));
        headers.push(Header::new("X-New", "1"));
        let expected = Headers::parse(
            "Via: SIP/2.0/TCP c\r\nSubject: one two three four\r\nX-Odd: kept  as is\r\nl: 0\r\nX-New: 1",
            &Limits::default(),
        )
        .expect("parses");
        assert_eq!(
            headers, expected,
            "equal by fields, whatever the buffer holds"
        );
    }

    #[test]
    fn an_unfolded_value_over_the_limit_is_refused() {
        let limits = Limits {
            max_header_bytes: 32,
            ..Limits::default()
        };
        let section = "Subject: aaaaaaaaaaaaaaaaaaaa\r\n bbbbbbbbbbbbbbbbbbbb";
        assert_eq!(
            Headers::parse(section, &limits),
            Err(ParseError::HeaderTooLong { limit: 32 })
        );
    }
}
