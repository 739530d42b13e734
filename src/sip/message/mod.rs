//! SIP messages: parse and print (RFC 3261 §7, §20, §25).
//!
//! Parsing has two stages. [`parse_datagram`] frames one message out of a UDP datagram
//! (Content-Length decides where the body ends; trailing octets are ignored, RFC 3261 §18.3),
//! splits the start line and the header fields — unfolding continuation lines, accepting
//! compact names, keeping every value byte-exact — and then checks the header fields a PBX
//! relies on (Via, From, To, Call-ID, CSeq, Max-Forwards, Contact, Route, Content-Length)
//! against their grammar. Typed values of those headers are computed on access from the
//! kept text.
//!
//! Every size is bounded by [`Limits`]. No input makes it panic: a message that can not be
//! used is a [`ParseError`] saying what is wrong and which response it deserves
//! ([`ParseError::status`]).
//!
//! What this module does not do: stream framing state (the transport keeps it), transaction
//! matching, or deciding whether a well-formed request can be served (missing mandatory
//! headers, unsupported URI schemes and the like are the UAS core's checks).

mod build;
mod headers;
mod multipart;
mod reject;
mod typed;
mod uri;

use std::fmt;

pub use build::reason_phrase;
pub use headers::*;
pub use multipart::{Part, boundary, parse_multipart};
pub use reject::error_response;
pub use typed::*;
pub use uri::*;

/// Size limits applied while parsing. Beyond them the message is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole message, start line to end of body.
    pub max_message_bytes: usize,
    pub max_headers: usize,
    /// One header field, after unfolding.
    pub max_header_bytes: usize,
    pub max_vias: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 65_535,
            max_headers: 256,
            max_header_bytes: 8_192,
            max_vias: 70,
        }
    }
}

/// Why a message could not be parsed. Each variant is the peer's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("message is empty")]
    Empty,
    #[error("the header section does not end (no empty line)")]
    Truncated,
    #[error("message larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("header field longer than {limit} bytes")]
    HeaderTooLong { limit: usize },
    #[error("more than {limit} Via values")]
    TooManyVias { limit: usize },
    #[error("malformed start line: {reason}")]
    BadStartLine { reason: &'static str },
    #[error("SIP version {version:?} is not supported")]
    UnsupportedVersion { version: String },
    #[error("status code {code:?} is not between 100 and 699")]
    BadStatusCode { code: String },
    #[error("header field is not UTF-8 or holds a control character")]
    BadEncoding,
    #[error("header line without a name and colon: {line:?}")]
    BadHeaderLine { line: String },
    #[error("malformed {header} header: {reason}")]
    BadHeader {
        header: &'static str,
        reason: String,
    },
    #[error("invalid URI {uri:?}: {reason}")]
    BadUri { uri: String, reason: &'static str },
    #[error("Content-Length is missing, invalid or conflicting")]
    BadContentLength,
    #[error("Content-Length {declared} exceeds the {available} bytes that follow the headers")]
    BodyTruncated { declared: usize, available: usize },
    #[error("CSeq method {cseq_method:?} does not match the request method {method:?}")]
    CSeqMethodMismatch { method: String, cseq_method: String },
}

impl ParseError {
    /// The response a request that failed this way deserves (responses are dropped instead).
    pub fn status(&self, method_known: bool) -> u16 {
        match self {
            ParseError::UnsupportedVersion { .. } => 505,
            ParseError::TooLarge { .. } => 513,
            ParseError::CSeqMethodMismatch { .. } if !method_known => 501,
            _ => 400,
        }
    }
}

/// A SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// A request: method, Request-URI, headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A response: status code, reason phrase, headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A request method. Known methods are variants; others keep their text (methods are
/// case-sensitive, RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Prack,
    Update,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other(String),
}

impl Method {
    pub fn from_token(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }

    /// Whether the method is one this stack knows.
    pub fn is_known(&self) -> bool {
        !matches!(self, Method::Other(_))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Message {
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    pub fn body(&self) -> &[u8] {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    /// The message in wire form. Headers are printed as `Name: value` with their names and
    /// values as received (unknown headers byte-exact); Content-Length is whatever the
    /// headers say, so callers that change the body update it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body().len());
        match self {
            Message::Request(r) => {
                out.extend_from_slice(format!("{} {} SIP/2.0\r\n", r.method, r.uri).as_bytes())
            }
            Message::Response(r) => {
                // The status is 100..=699 (checked when parsed, set by this stack otherwise).
                let status = r.status.min(999);
                out.extend_from_slice(b"SIP/2.0 ");
                out.extend_from_slice(&[
                    b'0' + (status / 100) as u8,
                    b'0' + (status / 10 % 10) as u8,
                    b'0' + (status % 10) as u8,
                    b' ',
                ]);
                out.extend_from_slice(r.reason.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        for h in self.headers().iter() {
            out.extend_from_slice(h.name_text().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.body());
        out
    }
}

/// Parses the first SIP message of a UDP datagram. Octets after the body that Content-Length
/// declares are ignored; without Content-Length the body is the rest of the datagram.
///
/// # Errors
/// A [`ParseError`] saying what is wrong.
pub fn parse_datagram(datagram: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    let start = datagram
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or(ParseError::Empty)?;
    let data = &datagram[start..];
    let (head_len, body_start) = find_header_end(data).ok_or(ParseError::Truncated)?;
    if head_len > limits.max_message_bytes {
        return Err(ParseError::TooLarge {
            limit: limits.max_message_bytes,
        });
    }
    let head = std::str::from_utf8(&data[..head_len]).map_err(|_| ParseError::BadEncoding)?;
    let (start_line, header_text) = match head.find('\n') {
        Some(i) => (
            head[..i].strip_suffix('\r').unwrap_or(&head[..i]),
            &head[i + 1..],
        ),
        None => (head, ""),
    };
    let headers = Headers::parse(header_text, limits)?;
    let available = data.len() - body_start;
    let body_len = match headers.content_length()? {
        Some(declared) if declared > available => {
            return Err(ParseError::BodyTruncated {
                declared,
                available,
            });
        }
        Some(declared) => declared,
        None => available,
    };
    if body_start + body_len > limits.max_message_bytes {
        return Err(ParseError::TooLarge {
            limit: limits.max_message_bytes,
        });
    }
    let body = data[body_start..body_start + body_len].to_vec();
    let message = parse_start_line(start_line, headers, body)?;
    typed::validate(&message, limits)?;
    Ok(message)
}

/// The length of the header section (up to, not including, the empty line) and where the
/// body starts. Accepts CRLF and bare LF line ends (and a mix of the two): the empty line is
/// the first "\n\n" or "\n\r\n".
fn find_header_end(data: &[u8]) -> Option<(usize, usize)> {
    let head_end = |newline: usize| {
        if newline > 0 && data[newline - 1] == b'\r' {
            newline - 1
        } else {
            newline
        }
    };
    for newline in memchr::memchr_iter(b'\n', data) {
        match data.get(newline + 1) {
            Some(b'\n') => return Some((head_end(newline), newline + 2)),
            Some(b'\r') if data.get(newline + 2) == Some(&b'\n') => {
                return Some((head_end(newline), newline + 3));
            }
            _ => {}
        }
    }
    None
}

/// `s` without the blanks (SP, HTAB: linear white space once unfolded, RFC 3261 §25.1) at
/// either end.
pub(crate) fn trim_blanks(s: &str) -> &str {
    trim_blanks_end(trim_blanks_start(s))
}

/// `s` without the blanks at its start.
pub(crate) fn trim_blanks_start(s: &str) -> &str {
    let skip = s.bytes().take_while(|&b| b == b' ' || b == b'\t').count();
    &s[skip..]
}

/// `s` without the blanks at its end.
pub(crate) fn trim_blanks_end(s: &str) -> &str {
    let keep = s.len()
        - s.bytes()
            .rev()
            .take_while(|&b| b == b' ' || b == b'\t')
            .count();
    &s[..keep]
}

/// `s` split at the first `byte` (an ASCII byte, so both halves are valid text).
pub(crate) fn split_once_byte(s: &str, byte: u8) -> Option<(&str, &str)> {
    debug_assert!(byte.is_ascii());
    find_byte(s, byte).map(|i| (&s[..i], &s[i + 1..]))
}

/// The index of the first `byte` (ASCII) in `s`.
pub(crate) fn find_byte(s: &str, byte: u8) -> Option<usize> {
    memchr::memchr(byte, s.as_bytes())
}

pub(crate) fn is_token_char(b: u8) -> bool {
    TOKEN_CHARS[usize::from(b)]
}

/// `token` characters of RFC 3261 §25.1: alphanumerics and `-.!%*_+`'~`.
const TOKEN_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    table
};

/// Whether `s` is a non-empty RFC 3261 token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

fn parse_version(text: &str) -> Result<(), ParseError> {
    let rest = text
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .map(|_| &text[4..])
        .ok_or(ParseError::BadStartLine {
            reason: "expected SIP/2.0",
        })?;
    let (major, minor) = rest.split_once('.').ok_or(ParseError::BadStartLine {
        reason: "malformed SIP version",
    })?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return Err(ParseError::BadStartLine {
            reason: "malformed SIP version",
        });
    }
    if major.trim_start_matches('0') != "2" || !minor.trim_start_matches('0').is_empty() {
        return Err(ParseError::UnsupportedVersion {
            version: text.to_owned(),
        });
    }
    Ok(())
}

fn parse_start_line(line: &str, headers: Headers, body: Vec<u8>) -> Result<Message, ParseError> {
    if line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        parse_version(version)?;
        let code = parts.next().ok_or(ParseError::BadStartLine {
            reason: "no status code",
        })?;
        let reason = parts.next().ok_or(ParseError::BadStartLine {
            reason: "no space after the status code",
        })?;
        let status = match code {
            c if c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()) => {
                c.parse::<u16>().unwrap_or(0)
            }
            _ => 0,
        };
        if !(100..=699).contains(&status) {
            return Err(ParseError::BadStatusCode {
                code: code.chars().take(16).collect(),
            });
        }
        if reason.bytes().any(|b| b < b' ' && b != b'\t') {
            return Err(ParseError::BadStartLine {
                reason: "control character in the reason phrase",
            });
        }
        return Ok(Message::Response(Response {
            status,
            reason: reason.to_owned(),
            headers,
            body,
        }));
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadStartLine {
            reason: "expected METHOD SP Request-URI SP SIP/2.0 with single spaces",
        });
    };
    if !is_token(method) {
        return Err(ParseError::BadStartLine {
            reason: "method is not a token",
        });
    }
    parse_version(version)?;
    let uri = Uri::parse(uri)?;
    if let Uri::Sip(sip) = &uri
        && sip.headers.is_some()
    {
        return Err(ParseError::BadUri {
            uri: uri.to_string(),
            reason: "headers are not allowed in a Request-URI",
        });
    }
    Ok(Message::Request(Request {
        method: Method::from_token(method),
        uri,
        headers,
        body,
    }))
}
