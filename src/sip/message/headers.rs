//! Header fields: the container that keeps them as received, and the typed values of the
//! headers a PBX uses (Via, From/To/Contact/Route name-addrs, CSeq, Max-Forwards,
//! Content-Length), parsed from the kept text on access.

use std::fmt;

use super::uri::{Host, Uri, parse_hostport};
use super::{Limits, Message, ParseError, is_token};

/// Known header names, with their compact forms (RFC 3261 §7.3.3 and extensions).
const CANONICAL: &[(&str, Option<char>)] = &[
    // The headers of almost every message first: the lookup is a linear search.
    ("Via", Some('v')),
    ("From", Some('f')),
    ("To", Some('t')),
    ("Call-ID", Some('i')),
    ("CSeq", None),
    ("Contact", Some('m')),
    ("Max-Forwards", None),
    ("Content-Length", Some('l')),
    ("Content-Type", Some('c')),
    ("User-Agent", None),
    ("Expires", None),
    ("Authorization", None),
    ("Allow", None),
    ("Supported", Some('k')),
    ("Route", None),
    ("Record-Route", None),
    ("WWW-Authenticate", None),
    ("Accept", None),
    ("Accept-Contact", Some('a')),
    ("Allow-Events", Some('u')),
    ("Content-Encoding", Some('e')),
    ("Event", Some('o')),
    ("Identity", Some('y')),
    ("Min-Expires", None),
    ("Path", None),
    ("Proxy-Authenticate", None),
    ("Proxy-Authorization", None),
    ("Proxy-Require", None),
    ("RAck", None),
    ("Refer-To", Some('r')),
    ("Referred-By", Some('b')),
    ("Reject-Contact", Some('j')),
    ("Request-Disposition", Some('d')),
    ("Require", None),
    ("RSeq", None),
    ("Session-Expires", Some('x')),
    ("Subject", Some('s')),
    ("Unsupported", None),
];

/// The canonical name of a header (compact forms expanded, known names in their usual case),
/// or the name as received for unknown headers.
fn canonical_name(name: &str) -> Option<&'static str> {
    if name.len() == 1 {
        let c = name.chars().next()?.to_ascii_lowercase();
        return CANONICAL
            .iter()
            .find(|(_, compact)| *compact == Some(c))
            .map(|(n, _)| *n);
    }
    CANONICAL
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, _)| *n)
}

/// One header field as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name as it appeared when it differs from the canonical spelling (a compact form
    /// stays compact, odd capitalisation is kept); `None` when it is the canonical one.
    raw_name: Option<String>,
    /// The canonical name for known headers.
    canonical: Option<&'static str>,
    /// The value with continuation lines joined by a single space, otherwise as received.
    value: String,
}

impl Header {
    /// A header built by this stack (the name is used as given).
    pub fn new(name: &str, value: impl Into<String>) -> Header {
        let canonical = canonical_name(name);
        Header {
            raw_name: (canonical != Some(name)).then(|| name.to_owned()),
            canonical,
            value: value.into(),
        }
    }

    /// The name as it will be printed.
    pub fn name_text(&self) -> &str {
        match (&self.raw_name, self.canonical) {
            (Some(raw), _) => raw,
            (None, Some(canonical)) => canonical,
            (None, None) => "",
        }
    }

    /// Whether this header is `name` (case-insensitive; compact forms match their long name).
    pub fn is(&self, name: &str) -> bool {
        match self.canonical {
            // A known header: the long name in any case, or its compact form.
            Some(canonical) => {
                canonical.eq_ignore_ascii_case(name)
                    || (name.len() == 1 && canonical_name(name) == Some(canonical))
            }
            // An unknown header can only be asked for by its own name.
            None => self.name_text().eq_ignore_ascii_case(name),
        }
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

/// The header fields of a message, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// Parses the header section (the lines after the start line, without the empty line).
    ///
    /// # Errors
    /// A line that is not a header field, a control character outside quotes, or a limit.
    pub fn parse(text: &str, limits: &Limits) -> Result<Headers, ParseError> {
        let bad_line = |line: &str| ParseError::BadHeaderLine {
            line: line.chars().take(64).collect(),
        };
        let mut headers: Vec<Header> = Vec::with_capacity(16);
        // Control characters are legal only inside quoted strings (RFC 4475 §3.1.1.2); the
        // quote-aware check runs only for the rare value that has one.
        let mut has_controls = false;
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().ok_or_else(|| bad_line(line))?;
                let continuation = line.trim_matches([' ', '\t']);
                if !continuation.is_empty() {
                    if !last.value.is_empty() {
                        last.value.push(' ');
                    }
                    last.value.push_str(continuation);
                }
                if last.value.len() > limits.max_header_bytes {
                    return Err(ParseError::HeaderTooLong {
                        limit: limits.max_header_bytes,
                    });
                }
                has_controls |= has_control(continuation);
                continue;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| bad_line(line))?;
            let name = name.trim_end_matches([' ', '\t']);
            if !is_token(name) {
                return Err(bad_line(line));
            }
            if headers.len() == limits.max_headers {
                return Err(ParseError::TooManyHeaders {
                    limit: limits.max_headers,
                });
            }
            if line.len() > limits.max_header_bytes {
                return Err(ParseError::HeaderTooLong {
                    limit: limits.max_header_bytes,
                });
            }
            let value = value.trim_matches([' ', '\t']);
            has_controls |= has_control(value);
            let canonical = canonical_name(name);
            headers.push(Header {
                raw_name: (canonical != Some(name)).then(|| name.to_owned()),
                canonical,
                value: value.to_owned(),
            });
        }
        if has_controls
            && headers
                .iter()
                .any(|h| has_control(&h.value) && !controls_only_in_quotes(&h.value))
        {
            return Err(ParseError::BadEncoding);
        }
        Ok(Headers(headers))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// Every header called `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Header> + 'a {
        self.0.iter().filter(move |h| h.is(name))
    }

    /// The value of the first header called `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|h| h.is(name)).map(Header::value)
    }

    /// Every comma-separated value of every header called `name`, in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.all(name).flat_map(|h| split_commas(h.value()))
    }

    pub fn push(&mut self, header: Header) {
        self.0.push(header);
    }

    /// Inserts `header` before all others (e.g. a new top Via).
    pub fn push_front(&mut self, header: Header) {
        self.0.insert(0, header);
    }

    /// Removes every header called `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|h| !h.is(name));
    }

    /// Replaces the value of the first header called `name` with `f(old value)`.
    pub fn map_first(&mut self, name: &str, f: impl FnOnce(&str) -> String) {
        if let Some(h) = self.0.iter_mut().find(|h| h.is(name)) {
            h.value = f(&h.value);
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The Content-Length: `None` when absent; an error when malformed or when several
    /// headers disagree (RFC 4475 §3.3.9).
    ///
    /// # Errors
    /// [`ParseError::BadContentLength`].
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        let mut found = None;
        for value in self.values("Content-Length") {
            let value = value.trim();
            if value.is_empty() || value.len() > 9 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::BadContentLength);
            }
            let n: usize = value.parse().map_err(|_| ParseError::BadContentLength)?;
            match found {
                Some(previous) if previous != n => return Err(ParseError::BadContentLength),
                _ => found = Some(n),
            }
        }
        Ok(found)
    }

    /// The Via values, topmost first.
    ///
    /// # Errors
    /// A Via value does not parse.
    pub fn via(&self) -> Result<Vec<Via>, ParseError> {
        self.values("Via").map(Via::parse).collect()
    }

    /// The CSeq, if present.
    ///
    /// # Errors
    /// The CSeq does not parse.
    pub fn cseq(&self) -> Result<Option<CSeq>, ParseError> {
        self.first("CSeq").map(CSeq::parse).transpose()
    }

    pub fn call_id(&self) -> Option<&str> {
        self.first("Call-ID")
    }

    /// From, if present.
    ///
    /// # Errors
    /// The header does not parse.
    pub fn from(&self) -> Result<Option<NameAddr>, ParseError> {
        self.first("From")
            .map(|v| NameAddr::parse_single("From", v))
            .transpose()
    }

    /// To, if present.
    ///
    /// # Errors
    /// The header does not parse.
    pub fn to(&self) -> Result<Option<NameAddr>, ParseError> {
        self.first("To")
            .map(|v| NameAddr::parse_single("To", v))
            .transpose()
    }

    /// Max-Forwards, if present. Values above 255 count as 255.
    ///
    /// # Errors
    /// The value is not a number.
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        let Some(v) = self.first("Max-Forwards") else {
            return Ok(None);
        };
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadHeader {
                header: "Max-Forwards",
                reason: "not a number".into(),
            });
        }
        let n = v.trim_start_matches('0');
        Ok(Some(if n.len() > 3 {
            255
        } else {
            n.parse::<u16>().unwrap_or(0).min(255) as u8
        }))
    }

    /// The Contact values: `None` for `Contact: *`.
    ///
    /// # Errors
    /// A value does not parse.
    pub fn contacts(&self) -> Result<Option<Vec<NameAddr>>, ParseError> {
        let values: Vec<&str> = self.values("Contact").collect();
        if values.len() == 1 && values[0].trim() == "*" {
            return Ok(None);
        }
        values
            .into_iter()
            .map(|v| NameAddr::parse("Contact", v))
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// The name-addr values of a list header such as Route, Record-Route or Path.
    ///
    /// # Errors
    /// A value does not parse.
    pub fn name_addrs(&self, header: &'static str) -> Result<Vec<NameAddr>, ParseError> {
        self.values(header)
            .map(|v| NameAddr::parse(header, v))
            .collect()
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
        let (mut in_quotes, mut escaped, mut in_angle) = (false, false, false);
        let start = self.position;
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
                    return Some(self.value[start..end].trim());
                }
                _ => {}
            }
        }
        self.done = true;
        Some(self.value[start..].trim())
    }
}

/// `;name[=value]` parameters of a header value, in order; values as written (quoted strings
/// keep their quotes).
pub type Params = Vec<(String, Option<String>)>;

/// The value of parameter `name` (compared case-insensitively) in `params`: `Some(None)` for a
/// parameter without a value, `None` when absent.
pub fn find_param<'a>(
    params: &'a [(String, Option<String>)],
    name: &str,
) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref())
}

/// Parses `*( SEMI generic-param )` from `text`, which starts at the first `;` (or is empty).
fn parse_params(header: &'static str, text: &str) -> Result<Params, ParseError> {
    let bad = |reason: &str| ParseError::BadHeader {
        header,
        reason: reason.to_owned(),
    };
    let mut params = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        rest = rest
            .strip_prefix(';')
            .ok_or_else(|| bad("expected ';' before a parameter"))?
            .trim_start();
        let name_end = rest
            .find(|c: char| !c.is_ascii() || !super::is_token_char(c as u8))
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if name.is_empty() {
            return Err(bad("empty parameter"));
        }
        rest = rest[name_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, remaining) =
                take_param_value(after).ok_or_else(|| bad("malformed parameter value"))?;
            rest = remaining.trim_start();
            Some(value.to_owned())
        } else {
            None
        };
        params.push((name.to_owned(), value));
    }
    Ok(params)
}

/// A parameter value: a quoted string, a bracketed IPv6 reference, or a token-like run.
fn take_param_value(text: &str) -> Option<(&str, &str)> {
    if text.starts_with('"') {
        let end = quoted_end(text)?;
        return Some((&text[..end], &text[end..]));
    }
    let end = text.find([';', ',', ' ', '\t']).unwrap_or(text.len());
    let value = &text[..end];
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~[]:".contains(&b) || b >= 0x80);
    ok.then_some((value, &text[end..]))
}

/// The index just past the closing quote of the quoted string at the start of `text`.
fn quoted_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `UDP`, `TCP`, `TLS`, `WS`, `WSS`, `SCTP` or another token, upper-cased.
    pub transport: String,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    /// # Errors
    /// The value is not a Via.
    pub fn parse(value: &str) -> Result<Via, ParseError> {
        let bad = |reason: &str| ParseError::BadHeader {
            header: "Via",
            reason: reason.to_owned(),
        };
        let mut rest = value.trim();
        let mut protocol = Vec::with_capacity(3);
        for i in 0..3 {
            let end = rest.find(['/', ' ', '\t']).unwrap_or(rest.len());
            let part = &rest[..end];
            if !is_token(part) {
                return Err(bad("malformed sent-protocol"));
            }
            protocol.push(part);
            rest = rest[end..].trim_start();
            if i < 2 {
                rest = rest
                    .strip_prefix('/')
                    .ok_or_else(|| bad("malformed sent-protocol"))?
                    .trim_start();
            }
        }
        if !protocol[0].eq_ignore_ascii_case("SIP") || protocol[1] != "2.0" {
            return Err(bad("sent-protocol is not SIP/2.0"));
        }
        let end = rest.find([';', ' ', '\t']).unwrap_or(rest.len());
        let (host, port) = parse_hostport(&rest[..end]).map_err(bad)?;
        let params = parse_params("Via", &rest[end..])?;
        Ok(Via {
            transport: protocol[2].to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    /// A parameter's value (`Some(None)` for a flag such as a bare `rport`).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The branch parameter, if present.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write_params(f, &self.params)
    }
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &Params) -> fmt::Result {
    for (name, value) in params {
        match value {
            Some(v) => write!(f, ";{name}={v}")?,
            None => write!(f, ";{name}")?,
        }
    }
    Ok(())
}

/// A CSeq: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: String,
}

impl CSeq {
    /// # Errors
    /// Not `NUMBER METHOD`, or the number exceeds 2^32-1.
    pub fn parse(value: &str) -> Result<CSeq, ParseError> {
        let bad = |reason: &str| ParseError::BadHeader {
            header: "CSeq",
            reason: reason.to_owned(),
        };
        let mut parts = value.split_ascii_whitespace();
        let (Some(number), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected a number and a method"));
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) || !is_token(method) {
            return Err(bad("expected a number and a method"));
        }
        let digits = number.trim_start_matches('0');
        let seq = if digits.is_empty() {
            0
        } else {
            digits
                .parse::<u32>()
                .map_err(|_| bad("sequence number larger than 2^32-1"))?
        };
        Ok(CSeq {
            seq,
            method: method.to_owned(),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// A name-addr or addr-spec with header parameters: From, To, Contact, Route, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name: unquoted and unescaped if it was a quoted string.
    pub display_name: Option<String>,
    pub uri: Uri,
    /// Whether the URI was enclosed in `<>`.
    pub bracketed: bool,
    pub params: Params,
}

impl NameAddr {
    /// Parses one value of a single-valued header (From, To): a comma outside quotes and
    /// `<>` is an error here, not a separator.
    ///
    /// # Errors
    /// The value is not a name-addr.
    pub fn parse_single(header: &'static str, value: &str) -> Result<NameAddr, ParseError> {
        let mut parts = split_commas(value);
        let first = parts.next().unwrap_or_default();
        if parts.next().is_some() {
            return Err(ParseError::BadHeader {
                header,
                reason: "more than one value (unquoted comma)".into(),
            });
        }
        NameAddr::parse(header, first)
    }

    /// Parses one value (already split at commas).
    ///
    /// # Errors
    /// The value is not a name-addr or addr-spec.
    pub fn parse(header: &'static str, value: &str) -> Result<NameAddr, ParseError> {
        let bad = |reason: &str| ParseError::BadHeader {
            header,
            reason: reason.to_owned(),
        };
        let value = value.trim();
        let (display_name, after_display) = if value.starts_with('"') {
            let end = quoted_end(value).ok_or_else(|| bad("unterminated quoted display name"))?;
            (Some(unquote(&value[..end])), value[end..].trim_start())
        } else if let Some(lt) = value.find('<') {
            let words = value[..lt].trim();
            if !words.split_ascii_whitespace().all(is_token) {
                return Err(bad("display name must be tokens or a quoted string"));
            }
            ((!words.is_empty()).then(|| words.to_owned()), &value[lt..])
        } else {
            (None, value)
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            let end = inner.find('>').ok_or_else(|| bad("'<' without '>'"))?;
            let uri_text = &inner[..end];
            if uri_text.starts_with([' ', '\t']) || uri_text.ends_with([' ', '\t']) {
                return Err(bad("whitespace inside <>"));
            }
            let uri = Uri::parse(uri_text)?;
            let params = parse_params(header, &inner[end + 1..])?;
            return Ok(NameAddr {
                display_name,
                uri,
                bracketed: true,
                params,
            });
        }
        if display_name.is_some() {
            return Err(bad("a display name needs the URI in <>"));
        }
        // addr-spec without <>: the URI ends at the first ';' (what follows are header
        // parameters, RFC 3261 §20.10), and may not contain '?' headers or ','.
        let end = after_display.find(';').unwrap_or(after_display.len());
        let uri_text = after_display[..end].trim_end();
        if uri_text.contains('?') || uri_text.contains(',') {
            return Err(bad("a URI with headers or commas must be enclosed in <>"));
        }
        let uri = Uri::parse(uri_text)?;
        let params = parse_params(header, &after_display[end..])?;
        Ok(NameAddr {
            display_name: None,
            uri,
            bracketed: false,
            params,
        })
    }

    /// A header parameter's value (`Some(None)` for a flag).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The `tag` parameter, if present.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }
}

impl fmt::Display for NameAddr {
    /// The display name is always written as a quoted string (escaping `"` and `\`), so any
    /// name prints in a form that parses back to itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            f.write_str("\"")?;
            for c in name.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\" ")?;
        }
        if self.bracketed || self.display_name.is_some() {
            write!(f, "<{}>", self.uri)?;
        } else {
            write!(f, "{}", self.uri)?;
        }
        write_params(f, &self.params)
    }
}

fn unquote(quoted: &str) -> String {
    let inner = &quoted[1..quoted.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The grammar checks of a whole message: the headers a PBX relies on must parse, single
/// headers must not be repeated with conflicting values, and a request's CSeq method must be
/// its method.
pub(super) fn validate(message: &Message, limits: &Limits) -> Result<(), ParseError> {
    let headers = message.headers();
    let vias = headers.via()?;
    if vias.len() > limits.max_vias {
        return Err(ParseError::TooManyVias {
            limit: limits.max_vias,
        });
    }
    for h in headers.all("From") {
        NameAddr::parse_single("From", h.value())?;
    }
    for h in headers.all("To") {
        NameAddr::parse_single("To", h.value())?;
    }
    for h in headers.all("CSeq") {
        CSeq::parse(h.value())?;
    }
    headers.max_forwards()?;
    headers.contacts()?;
    headers.name_addrs("Route")?;
    headers.name_addrs("Record-Route")?;
    if let Message::Request(request) = message
        && let Some(cseq) = headers.cseq()?
        && cseq.method != request.method.as_str()
    {
        return Err(ParseError::CSeqMethodMismatch {
            method: request.method.to_string(),
            cseq_method: cseq.method,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::SipUri;

    /// A small seeded generator (xorshift), so failures reproduce.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len() as u64) as usize]
        }
        fn token(&mut self) -> String {
            let chars = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~";
            (0..1 + self.below(12))
                .map(|_| chars[self.below(chars.len() as u64) as usize] as char)
                .collect()
        }
        /// A URI parameter value: unreserved characters and valid escapes only.
        fn uri_value(&mut self) -> String {
            let chars = b"abcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()";
            let mut v: String = (0..1 + self.below(8))
                .map(|_| chars[self.below(chars.len() as u64) as usize] as char)
                .collect();
            if self.below(4) == 0 {
                v.push_str("%2F");
            }
            v
        }
        fn host(&mut self) -> Host {
            match self.below(4) {
                0 => Host::Domain(format!(
                    "{}.example.com",
                    self.pick(&["a", "pbx", "x-1", "sip"])
                )),
                1 => Host::Ipv4(std::net::Ipv4Addr::from(self.next() as u32)),
                2 => Host::Ipv6(std::net::Ipv6Addr::from(
                    u128::from(self.next()) << 64 | u128::from(self.next()),
                )),
                _ => Host::Domain("localhost".into()),
            }
        }
        fn params(&mut self) -> Params {
            (0..self.below(4))
                .map(|_| {
                    let name = self.token();
                    let value = match self.below(3) {
                        0 => None,
                        1 => Some(self.token()),
                        _ => Some(format!("\"{} {}\"", self.token(), self.token())),
                    };
                    (name, value)
                })
                .collect()
        }
        fn uri(&mut self) -> Uri {
            Uri::Sip(SipUri {
                secure: self.below(4) == 0,
                user: (self.below(3) > 0).then(|| {
                    self.pick(&["1000", "alice", "user%20x", "+8613800000000"])
                        .to_owned()
                }),
                password: None,
                host: self.host(),
                port: (self.below(2) == 0).then(|| self.below(65_535) as u16 + 1),
                params: (0..self.below(3))
                    .map(|_| {
                        (
                            self.pick(&["lr", "transport", "maddr", "x"]).to_owned(),
                            (self.below(2) == 0).then(|| self.uri_value()),
                        )
                    })
                    .collect(),
                headers: None,
            })
        }
    }

    #[test]
    fn via_prints_and_parses_back_to_itself() {
        let mut g = Gen(0x5eed_0001);
        for _ in 0..2_000 {
            let via = Via {
                transport: g
                    .pick(&["UDP", "TCP", "TLS", "WS", "WSS", "SCTP"])
                    .to_owned(),
                host: g.host(),
                port: (g.below(2) == 0).then(|| g.below(65_535) as u16 + 1),
                params: g.params(),
            };
            let text = via.to_string();
            assert_eq!(Via::parse(&text).as_ref(), Ok(&via), "{text}");
        }
    }

    #[test]
    fn name_addr_prints_and_parses_back_to_itself() {
        let mut g = Gen(0x5eed_0002);
        for _ in 0..2_000 {
            let display_name = match g.below(3) {
                0 => None,
                1 => Some(format!("{} {}", g.token(), g.token())),
                _ => Some(
                    g.pick(&["张三", "a \"quoted\" name", "back\\slash", "李四, 王五"])
                        .to_owned(),
                ),
            };
            let bracketed = display_name.is_some() || g.below(2) == 0;
            let addr = NameAddr {
                display_name,
                uri: g.uri(),
                bracketed,
                params: g.params(),
            };
            // An addr-spec without <> can not carry URI parameters (they would read as header
            // parameters): such values are always printed bracketed by their builders.
            let addr =
                if !addr.bracketed && matches!(&addr.uri, Uri::Sip(u) if !u.params.is_empty()) {
                    NameAddr {
                        bracketed: true,
                        ..addr
                    }
                } else {
                    addr
                };
            let text = addr.to_string();
            assert_eq!(NameAddr::parse("To", &text).as_ref(), Ok(&addr), "{text}");
        }
    }

    #[test]
    fn cseq_prints_and_parses_back_to_itself() {
        let mut g = Gen(0x5eed_0003);
        for _ in 0..500 {
            let cseq = CSeq {
                seq: g.next() as u32,
                method: g.pick(&["INVITE", "ACK", "REGISTER", "FOO-BAR"]).to_owned(),
            };
            assert_eq!(CSeq::parse(&cseq.to_string()), Ok(cseq));
        }
    }
}
