//! The typed values of the headers a PBX uses — Via, From/To/Contact/Route name-addrs, CSeq,
//! Max-Forwards, Content-Length — parsed from the kept text on access.
//!
//! Each grammar is written once, as a parser that returns slices of the text (`ViaRef`,
//! `NameAddrRef`, `UriRef`): checking a message allocates nothing. The owned values
//! ([`Via`], [`NameAddr`], [`CSeq`]) are built from those slices.

use std::fmt;

use super::headers::NameId;
use super::uri::{Host, HostRef, Uri, UriRef, parse_hostport_ref};
use super::{
    Headers, Limits, Message, ParseError, find_byte, is_token, split_commas, trim_blanks,
    trim_blanks_end, trim_blanks_start,
};

/// What transaction matching needs of the topmost Via, as slices of its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopVia<'a> {
    /// The sent-by host as written (an IPv6 reference with its brackets).
    pub host: &'a str,
    pub port: Option<u16>,
    pub branch: Option<&'a str>,
}

impl Headers {
    /// The sent-by and branch of the topmost Via, parsing that value only and without
    /// allocating; `None` without a Via.
    ///
    /// # Errors
    /// The topmost Via does not parse.
    pub fn top_via(&self) -> Result<Option<TopVia<'_>>, ParseError> {
        let Some(value) = self.values("Via").next() else {
            return Ok(None);
        };
        let via = ViaRef::parse(value)?;
        let mut branch = None;
        for param in ParamIter::new("Via", via.params) {
            if let (name, Some(value)) = param?
                && name.eq_ignore_ascii_case("branch")
            {
                branch = Some(value);
                break;
            }
        }
        Ok(Some(TopVia {
            host: via.host_text,
            port: via.port,
            branch,
        }))
    }

    /// The Content-Length: `None` when absent; an error when malformed or when several
    /// headers disagree (RFC 4475 §3.3.9).
    ///
    /// # Errors
    /// [`ParseError::BadContentLength`].
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        let mut found = None;
        for value in self.values("Content-Length") {
            let value = trim_blanks(value);
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
        if values.len() == 1 && trim_blanks(values[0]) == "*" {
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

/// The parameters `*( SEMI generic-param )` of `text` (which starts at the first `;` or is
/// empty), checked and returned one by one as slices.
struct ParamIter<'a> {
    header: &'static str,
    rest: &'a str,
}

impl<'a> ParamIter<'a> {
    fn new(header: &'static str, text: &'a str) -> ParamIter<'a> {
        ParamIter {
            header,
            rest: trim_blanks_start(text),
        }
    }

    fn bad(&self, reason: &str) -> ParseError {
        ParseError::BadHeader {
            header: self.header,
            reason: reason.to_owned(),
        }
    }
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Result<(&'a str, Option<&'a str>), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some(after_semi) = self.rest.strip_prefix(';') else {
            self.rest = "";
            return Some(Err(self.bad("expected ';' before a parameter")));
        };
        let rest = trim_blanks_start(after_semi);
        let name_end = rest
            .bytes()
            .position(|b| !super::is_token_char(b))
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if name.is_empty() {
            self.rest = "";
            return Some(Err(self.bad("empty parameter")));
        }
        let rest = trim_blanks_start(&rest[name_end..]);
        let value = if let Some(after) = rest.strip_prefix('=') {
            let Some((value, remaining)) = take_param_value(trim_blanks_start(after)) else {
                self.rest = "";
                return Some(Err(self.bad("malformed parameter value")));
            };
            self.rest = trim_blanks_start(remaining);
            Some(value)
        } else {
            self.rest = rest;
            None
        };
        Some(Ok((name, value)))
    }
}

/// Checks the parameters of `text` (see [`ParamIter`]).
fn check_params(header: &'static str, text: &str) -> Result<(), ParseError> {
    ParamIter::new(header, text).try_for_each(|p| p.map(drop))
}

/// The parameters of `text`, owned.
fn parse_params(header: &'static str, text: &str) -> Result<Params, ParseError> {
    ParamIter::new(header, text)
        .map(|p| p.map(|(n, v)| (n.to_owned(), v.map(str::to_owned))))
        .collect()
}

/// A parameter value: a quoted string, a bracketed IPv6 reference, or a token-like run.
fn take_param_value(text: &str) -> Option<(&str, &str)> {
    if text.starts_with('"') {
        let end = quoted_end(text)?;
        return Some((&text[..end], &text[end..]));
    }
    let end = text
        .bytes()
        .position(|b| matches!(b, b';' | b',' | b' ' | b'\t'))
        .unwrap_or(text.len());
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

/// A Via value as slices of its text.
struct ViaRef<'a> {
    transport: &'a str,
    /// The sent-by host as written.
    host_text: &'a str,
    host: HostRef<'a>,
    port: Option<u16>,
    /// The parameters, checked.
    params: &'a str,
}

impl<'a> ViaRef<'a> {
    fn parse(value: &'a str) -> Result<ViaRef<'a>, ParseError> {
        let bad = |reason: &str| ParseError::BadHeader {
            header: "Via",
            reason: reason.to_owned(),
        };
        let mut rest = trim_blanks(value);
        let mut protocol = [""; 3];
        for (i, part_slot) in protocol.iter_mut().enumerate() {
            let end = rest
                .bytes()
                .position(|b| matches!(b, b'/' | b' ' | b'\t'))
                .unwrap_or(rest.len());
            let part = &rest[..end];
            if !is_token(part) {
                return Err(bad("malformed sent-protocol"));
            }
            *part_slot = part;
            rest = trim_blanks_start(&rest[end..]);
            if i < 2 {
                rest = trim_blanks_start(
                    rest.strip_prefix('/')
                        .ok_or_else(|| bad("malformed sent-protocol"))?,
                );
            }
        }
        if !protocol[0].eq_ignore_ascii_case("SIP") || protocol[1] != "2.0" {
            return Err(bad("sent-protocol is not SIP/2.0"));
        }
        let end = rest
            .bytes()
            .position(|b| matches!(b, b';' | b' ' | b'\t'))
            .unwrap_or(rest.len());
        let hostport = &rest[..end];
        let (host, port) = parse_hostport_ref(hostport).map_err(bad)?;
        let host_text = match port {
            Some(_) => &hostport[..hostport.rfind(':').unwrap_or(hostport.len())],
            None => hostport,
        };
        let params = &rest[end..];
        check_params("Via", params)?;
        Ok(ViaRef {
            transport: protocol[2],
            host_text,
            host,
            port,
            params,
        })
    }
}

impl Via {
    /// # Errors
    /// The value is not a Via.
    pub fn parse(value: &str) -> Result<Via, ParseError> {
        let via = ViaRef::parse(value)?;
        Ok(Via {
            transport: via.transport.to_ascii_uppercase(),
            host: via.host.to_owned(),
            port: via.port,
            params: parse_params("Via", via.params)?,
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
        let (seq, method) = CSeq::parse_ref(value)?;
        Ok(CSeq {
            seq,
            method: method.to_owned(),
        })
    }

    /// The number and the method as a slice of `value`.
    fn parse_ref(value: &str) -> Result<(u32, &str), ParseError> {
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
        Ok((seq, method))
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

/// A display name as written.
#[derive(Clone, Copy)]
enum DisplayRef<'a> {
    /// A quoted string, quotes included.
    Quoted(&'a str),
    /// `*(token LWS)`, trimmed.
    Tokens(&'a str),
}

/// A name-addr or addr-spec as slices of its text.
struct NameAddrRef<'a> {
    display_name: Option<DisplayRef<'a>>,
    uri: UriRef<'a>,
    bracketed: bool,
    /// The header parameters, checked.
    params: &'a str,
}

impl<'a> NameAddrRef<'a> {
    /// One value of a single-valued header (From, To): a comma outside quotes and `<>` is
    /// an error here, not a separator.
    fn parse_single(header: &'static str, value: &'a str) -> Result<NameAddrRef<'a>, ParseError> {
        let mut parts = split_commas(value);
        let first = parts.next().unwrap_or_default();
        if parts.next().is_some() {
            return Err(ParseError::BadHeader {
                header,
                reason: "more than one value (unquoted comma)".into(),
            });
        }
        NameAddrRef::parse(header, first)
    }

    fn parse(header: &'static str, value: &'a str) -> Result<NameAddrRef<'a>, ParseError> {
        let bad = |reason: &str| ParseError::BadHeader {
            header,
            reason: reason.to_owned(),
        };
        let value = trim_blanks(value);
        let (display_name, after_display) = if value.starts_with('"') {
            let end = quoted_end(value).ok_or_else(|| bad("unterminated quoted display name"))?;
            (
                Some(DisplayRef::Quoted(&value[..end])),
                trim_blanks_start(&value[end..]),
            )
        } else if let Some(lt) = find_byte(value, b'<') {
            let words = trim_blanks(&value[..lt]);
            if !words.split_ascii_whitespace().all(is_token) {
                return Err(bad("display name must be tokens or a quoted string"));
            }
            (
                (!words.is_empty()).then_some(DisplayRef::Tokens(words)),
                &value[lt..],
            )
        } else {
            (None, value)
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            let end = find_byte(inner, b'>').ok_or_else(|| bad("'<' without '>'"))?;
            let uri_text = &inner[..end];
            if uri_text.starts_with([' ', '\t']) || uri_text.ends_with([' ', '\t']) {
                return Err(bad("whitespace inside <>"));
            }
            let uri = UriRef::parse(uri_text)?;
            let params = &inner[end + 1..];
            check_params(header, params)?;
            return Ok(NameAddrRef {
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
        let end = find_byte(after_display, b';').unwrap_or(after_display.len());
        let uri_text = trim_blanks_end(&after_display[..end]);
        if uri_text.contains(['?', ',']) {
            return Err(bad("a URI with headers or commas must be enclosed in <>"));
        }
        let uri = UriRef::parse(uri_text)?;
        let params = &after_display[end..];
        check_params(header, params)?;
        Ok(NameAddrRef {
            display_name: None,
            uri,
            bracketed: false,
            params,
        })
    }

    fn to_owned(&self, header: &'static str) -> Result<NameAddr, ParseError> {
        Ok(NameAddr {
            display_name: self.display_name.map(|d| match d {
                DisplayRef::Quoted(q) => unquote(q),
                DisplayRef::Tokens(t) => t.to_owned(),
            }),
            uri: self.uri.to_owned(),
            bracketed: self.bracketed,
            params: parse_params(header, self.params)?,
        })
    }
}

impl NameAddr {
    /// Parses one value of a single-valued header (From, To): a comma outside quotes and
    /// `<>` is an error here, not a separator.
    ///
    /// # Errors
    /// The value is not a name-addr.
    pub fn parse_single(header: &'static str, value: &str) -> Result<NameAddr, ParseError> {
        NameAddrRef::parse_single(header, value)?.to_owned(header)
    }

    /// Parses one value (already split at commas).
    ///
    /// # Errors
    /// The value is not a name-addr or addr-spec.
    pub fn parse(header: &'static str, value: &str) -> Result<NameAddr, ParseError> {
        NameAddrRef::parse(header, value)?.to_owned(header)
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

/// The grammar checks of a whole message, in one pass over the fields and without
/// allocating: the headers a PBX relies on must parse, single headers must not hold several
/// values, and a request's CSeq method must be its method.
pub(super) fn validate(message: &Message, limits: &Limits) -> Result<(), ParseError> {
    let headers = message.headers();
    let mut vias = 0;
    let mut first_cseq_method = None;
    let mut contacts = 0;
    let mut contact_star = false;
    for h in headers.iter() {
        let value = h.value();
        match h.id() {
            NameId::VIA => {
                for v in split_commas(value) {
                    ViaRef::parse(v)?;
                    vias += 1;
                }
            }
            NameId::FROM => {
                NameAddrRef::parse_single("From", value)?;
            }
            NameId::TO => {
                NameAddrRef::parse_single("To", value)?;
            }
            NameId::CSEQ => {
                let (_, method) = CSeq::parse_ref(value)?;
                first_cseq_method.get_or_insert(method);
            }
            NameId::CONTACT => {
                for v in split_commas(value) {
                    contacts += 1;
                    if v == "*" {
                        contact_star = true;
                    } else {
                        NameAddrRef::parse("Contact", v)?;
                    }
                }
            }
            NameId::ROUTE => {
                for v in split_commas(value) {
                    NameAddrRef::parse("Route", v)?;
                }
            }
            NameId::RECORD_ROUTE => {
                for v in split_commas(value) {
                    NameAddrRef::parse("Record-Route", v)?;
                }
            }
            _ => {}
        }
    }
    if vias > limits.max_vias {
        return Err(ParseError::TooManyVias {
            limit: limits.max_vias,
        });
    }
    if contact_star && contacts > 1 {
        // `*` is only valid as the one Contact value.
        NameAddrRef::parse("Contact", "*")?;
    }
    headers.max_forwards()?;
    if let Message::Request(request) = message
        && let Some(method) = first_cseq_method
        && method != request.method.as_str()
    {
        return Err(ParseError::CSeqMethodMismatch {
            method: request.method.to_string(),
            cseq_method: method.to_owned(),
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
