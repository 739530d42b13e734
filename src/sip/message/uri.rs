//! URIs of SIP: `sip:`, `sips:` (RFC 3261 §19.1) and `tel:` (RFC 3966); anything else is kept
//! as an opaque absolute URI so an element can answer 416 or pass it on.
//!
//! Parsing keeps every component as written (escapes included), so printing gives back the
//! same text and escaped values are never unescaped twice (`value%41` stays distinct from
//! `valueA`). What this module does not do: URI comparison rules of §19.1.4 beyond
//! [`SipUri::user_unescaped`], or DNS resolution.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{ParseError, find_byte, split_once_byte};

/// A URI as it appears in a Request-URI or a name-addr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    Tel(TelUri),
    /// Another scheme (e.g. `http:`, `urn:`), kept verbatim.
    Other {
        scheme: String,
        rest: String,
    },
}

/// `sip:` or `sips:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub secure: bool,
    /// The user part as written (may hold escapes and `;`), if any.
    pub user: Option<String>,
    /// The password as written, if any (deprecated, but legal).
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    /// `;name[=value]` in order, as written.
    pub params: Vec<(String, Option<String>)>,
    /// `?name=value&…` as written, without the `?`.
    pub headers: Option<String>,
}

/// The host of a SIP URI or Via.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Domain(String),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    /// A bracketed reference that RFC 3261's ABNF accepts but RFC 4291 does not (e.g. three
    /// colons, RFC 5118 §4.10); kept as written, without brackets.
    Ipv6Lenient(String),
}

/// `tel:` (RFC 3966): the number and its parameters, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    pub number: String,
    pub params: Vec<(String, Option<String>)>,
}

impl Uri {
    /// Parses a URI; `text` must not contain whitespace.
    ///
    /// # Errors
    /// [`ParseError::BadUri`] when the text is not a URI of its scheme.
    pub fn parse(text: &str) -> Result<Uri, ParseError> {
        UriRef::parse(text).map(|u| u.to_owned())
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// Whether this is a `sip:` or `sips:` URI.
    pub fn is_sip(&self) -> bool {
        matches!(self, Uri::Sip(_))
    }
}

/// A URI as slices of the text it was parsed from: the grammar check without allocating.
/// [`Uri::parse`] is this plus [`UriRef::to_owned`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UriRef<'a> {
    Sip(SipUriRef<'a>),
    Tel {
        number: &'a str,
        /// `;name[=value]…`, validated, possibly empty.
        params: &'a str,
    },
    Other {
        scheme: &'a str,
        rest: &'a str,
    },
}

/// The parts of a `sip:` or `sips:` URI as slices of its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SipUriRef<'a> {
    pub secure: bool,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub host: HostRef<'a>,
    pub port: Option<u16>,
    /// `;name[=value]…`, validated, possibly empty.
    pub params: &'a str,
    pub headers: Option<&'a str>,
}

/// A host as a slice of the text it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostRef<'a> {
    Domain(&'a str),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Ipv6Lenient(&'a str),
}

impl HostRef<'_> {
    pub(crate) fn to_owned(self) -> Host {
        match self {
            HostRef::Domain(d) => Host::Domain(d.to_owned()),
            HostRef::Ipv4(a) => Host::Ipv4(a),
            HostRef::Ipv6(a) => Host::Ipv6(a),
            HostRef::Ipv6Lenient(t) => Host::Ipv6Lenient(t.to_owned()),
        }
    }
}

impl<'a> UriRef<'a> {
    /// Checks `text` against the grammar of its scheme; `text` must not contain whitespace.
    ///
    /// # Errors
    /// [`ParseError::BadUri`] when the text is not a URI of its scheme.
    pub(crate) fn parse(text: &'a str) -> Result<UriRef<'a>, ParseError> {
        let bad = |reason: &'static str| ParseError::BadUri {
            uri: text.chars().take(128).collect(),
            reason,
        };
        // No early exit: the loop is vectorised.
        let forbidden = text.bytes().fold(0u8, |found, b| {
            found | u8::from(b <= b' ') | u8::from(b == 0x7f) | u8::from(b == b'<' || b == b'>')
        });
        if text.is_empty() || forbidden != 0 {
            return Err(bad("empty, or holds whitespace, control characters or <>"));
        }
        let (scheme, rest) = split_once_byte(text, b':').ok_or_else(|| bad("no scheme"))?;
        if !is_scheme(scheme) {
            return Err(bad("invalid scheme"));
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUriRef::parse_rest(rest, false)
                .map(UriRef::Sip)
                .map_err(bad)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUriRef::parse_rest(rest, true)
                .map(UriRef::Sip)
                .map_err(bad)
        } else if scheme.eq_ignore_ascii_case("tel") {
            parse_tel_rest(rest).map_err(bad)
        } else {
            Ok(UriRef::Other { scheme, rest })
        }
    }

    /// The owned form.
    pub(crate) fn to_owned(self) -> Uri {
        match self {
            UriRef::Sip(u) => Uri::Sip(SipUri {
                secure: u.secure,
                user: u.user.map(str::to_owned),
                password: u.password.map(str::to_owned),
                host: u.host.to_owned(),
                port: u.port,
                params: owned_uri_params(u.params),
                headers: u.headers.map(str::to_owned),
            }),
            UriRef::Tel { number, params } => Uri::Tel(TelUri {
                number: number.to_owned(),
                params: owned_uri_params(params),
            }),
            UriRef::Other { scheme, rest } => Uri::Other {
                scheme: scheme.to_owned(),
                rest: rest.to_owned(),
            },
        }
    }
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// A set of characters allowed unescaped in one URI component: the unreserved characters
/// of RFC 3261 §25.1 plus the component's own (see [`CHAR_CLASSES`]).
#[derive(Clone, Copy)]
struct CharClass(u8);

const USER: CharClass = CharClass(1);
const PASSWORD: CharClass = CharClass(2);
const PARAM: CharClass = CharClass(4);
const HEADER: CharClass = CharClass(8);

/// For each byte, the classes that allow it unescaped.
const CHAR_CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let unreserved = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            );
        let mut classes = 0;
        if unreserved || matches!(c, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
            classes |= USER.0;
        }
        if unreserved || matches!(c, b'&' | b'=' | b'+' | b'$' | b',') {
            classes |= PASSWORD.0;
        }
        if unreserved || matches!(c, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            classes |= PARAM.0;
        }
        if unreserved
            || matches!(
                c,
                b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'=' | b'&'
            )
        {
            classes |= HEADER.0;
        }
        table[b] = classes;
        b += 1;
    }
    table
};

/// Every byte is allowed by `class`, and every `%` starts a valid escape.
fn valid_escaped(s: &str, class: CharClass) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
            continue;
        }
        if CHAR_CLASSES[usize::from(b)] & class.0 == 0 {
            return false;
        }
        i += 1;
    }
    true
}

/// `%HH` decoded to bytes; other bytes copied.
pub fn unescape(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|d| d as u8)
}

impl<'a> SipUriRef<'a> {
    fn parse_rest(rest: &'a str, secure: bool) -> Result<SipUriRef<'a>, &'static str> {
        let (userinfo, hostpart) = match memchr::memrchr(b'@', rest.as_bytes()) {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match split_once_byte(info, b':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                if user.is_empty() || !valid_escaped(user, USER) {
                    return Err("invalid user part");
                }
                if let Some(p) = password
                    && !valid_escaped(p, PASSWORD)
                {
                    return Err("invalid password");
                }
                (Some(user), password)
            }
        };
        let (before_headers, headers) = match split_once_byte(hostpart, b'?') {
            Some((b, h)) => (b, Some(h)),
            None => (hostpart, None),
        };
        if let Some(h) = headers
            && (h.is_empty() || !valid_escaped(h, HEADER))
        {
            return Err("invalid URI headers");
        }
        let params_start = find_byte(before_headers, b';').unwrap_or(before_headers.len());
        let (host, port) = parse_hostport_ref(&before_headers[..params_start])?;
        let params = &before_headers[params_start..];
        if !valid_uri_params(params) {
            return Err("invalid URI parameter");
        }
        Ok(SipUriRef {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }
}

impl SipUri {
    /// The user part with escapes decoded (`%00` stays a distinct byte, RFC 4475 §3.1.1.4).
    pub fn user_unescaped(&self) -> Option<Vec<u8>> {
        self.user.as_deref().map(unescape)
    }

    /// The value of a URI parameter (name compared case-insensitively); `Some(None)` for a
    /// parameter without a value, such as `lr`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        super::find_param(&self.params, name)
    }
}

/// The `;name[=value]` URI parameters of `raw` (empty, or starting with `;`), as written.
fn uri_params(raw: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    SplitSemicolons(raw.strip_prefix(';')).map(|p| match split_once_byte(p, b'=') {
        Some((n, v)) => (n, Some(v)),
        None => (p, None),
    })
}

/// The parts of a text between semicolons (the text starting after the first one).
struct SplitSemicolons<'a>(Option<&'a str>);

impl<'a> Iterator for SplitSemicolons<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0?;
        match rest.bytes().position(|b| b == b';') {
            Some(i) => {
                self.0 = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => {
                self.0 = None;
                Some(rest)
            }
        }
    }
}

/// Whether every URI parameter of `raw` is valid (a name, characters of `paramchar`, good
/// escapes).
fn valid_uri_params(raw: &str) -> bool {
    (raw.is_empty() || raw.starts_with(';'))
        && uri_params(raw).all(|(name, value)| {
            !name.is_empty()
                && valid_escaped(name, PARAM)
                && value.is_none_or(|v| valid_escaped(v, PARAM))
        })
}

fn owned_uri_params(raw: &str) -> Vec<(String, Option<String>)> {
    uri_params(raw)
        .map(|(n, v)| (n.to_owned(), v.map(str::to_owned)))
        .collect()
}

/// `host[:port]` of a SIP URI or Via sent-by.
///
/// # Errors
/// A reason when the host or port is not valid.
pub fn parse_hostport(text: &str) -> Result<(Host, Option<u16>), &'static str> {
    parse_hostport_ref(text).map(|(host, port)| (host.to_owned(), port))
}

/// [`parse_hostport`] without allocating.
pub(crate) fn parse_hostport_ref(text: &str) -> Result<(HostRef<'_>, Option<u16>), &'static str> {
    let (host_text, port_text) = if let Some(inner) = text.strip_prefix('[') {
        let end = find_byte(inner, b']').ok_or("unterminated IPv6 reference")?;
        let after = &inner[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after IPv6 reference")?),
        };
        (&text[..end + 2], port)
    } else {
        match split_once_byte(text, b':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = match port_text {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| "port out of range")?)
        }
        Some(_) => return Err("invalid port"),
    };
    Ok((parse_host(host_text)?, port))
}

fn parse_host(text: &str) -> Result<HostRef<'_>, &'static str> {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        if let Ok(addr) = inner.parse::<Ipv6Addr>() {
            return Ok(HostRef::Ipv6(addr));
        }
        if inner.contains(':')
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Ok(HostRef::Ipv6Lenient(inner));
        }
        return Err("invalid IPv6 reference");
    }
    if text.is_empty() {
        return Err("empty host");
    }
    if let Some(addr) = parse_ipv4(text) {
        return Ok(HostRef::Ipv4(addr));
    }
    if valid_domain(text.strip_suffix('.').unwrap_or(text)) {
        Ok(HostRef::Domain(text))
    } else {
        Err("invalid host name")
    }
}

/// Dot-separated labels of alphanumerics and inner hyphens (RFC 3261 §25.1 `hostname`,
/// read leniently as to the top label), in one pass.
fn valid_domain(name: &str) -> bool {
    let mut label_len = 0;
    let mut previous = b'.';
    for &b in name.as_bytes() {
        match b {
            b'.' if label_len > 0 && previous != b'-' => label_len = 0,
            b'-' if label_len > 0 => label_len += 1,
            b if b.is_ascii_alphanumeric() => label_len += 1,
            _ => return false,
        }
        previous = b;
    }
    label_len > 0 && previous != b'-'
}

/// A dotted-quad IPv4 address: four decimal octets up to 255, without leading zeros (as
/// the standard library reads them, without its general-purpose parser's cost).
fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    let bytes = text.as_bytes();
    if bytes.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut parts = bytes.split(|&b| b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty()
            || part.len() > 3
            || (part.len() > 1 && part[0] == b'0')
            || !part.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let value = part.iter().fold(0u16, |v, &d| v * 10 + u16::from(d - b'0'));
        *octet = u8::try_from(value).ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

/// The part of a `tel:` URI after the scheme (RFC 3966).
fn parse_tel_rest(rest: &str) -> Result<UriRef<'_>, &'static str> {
    let params_start = find_byte(rest, b';').unwrap_or(rest.len());
    let (number, params) = rest.split_at(params_start);
    let global = number.strip_prefix('+');
    let digits = global.unwrap_or(number);
    let allowed = |b: u8| {
        b.is_ascii_digit()
            || b"-.()".contains(&b)
            || (global.is_none() && b"*#ABCDabcd".contains(&b))
    };
    if digits.is_empty()
        || !digits.bytes().all(allowed)
        || !digits
            .bytes()
            .any(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#')
    {
        return Err("invalid telephone number");
    }
    if !valid_uri_params(params) {
        return Err("invalid tel parameter");
    }
    Ok(UriRef::Tel { number, params })
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
            Host::Ipv6Lenient(t) => write!(f, "[{t}]"),
        }
    }
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &[(String, Option<String>)]) -> fmt::Result {
    for (name, value) in params {
        match value {
            Some(v) => write!(f, ";{name}={v}")?,
            None => write!(f, ";{name}")?,
        }
    }
    Ok(())
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write_params(f, &self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tel:{}", self.number)?;
        write_params(f, &self.params)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => write!(f, "{u}"),
            Uri::Tel(u) => write!(f, "{u}"),
            Uri::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(text: &str) -> SipUri {
        match Uri::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")) {
            Uri::Sip(u) => u,
            other => panic!("{text}: not sip: {other:?}"),
        }
    }

    #[test]
    fn parses_and_prints_the_parts() {
        for text in [
            "sip:alice@example.com",
            "sips:alice:secret@example.com:5061;transport=tcp;lr?subject=hi&priority=urgent",
            "sip:[2001:db8::10]:5070",
            "sip:192.0.2.1;maddr=239.255.255.1;ttl=15",
            "sip:user;par=u%40example.net@example.com",
            "tel:+1-201-555-0123;phone-context=example.com",
        ] {
            assert_eq!(Uri::parse(text).unwrap().to_string(), text);
        }
        let u = sip("sips:alice:secret@example.com:5061;transport=tcp;lr");
        assert!(u.secure);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.host, Host::Domain("example.com".into()));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.param("TRANSPORT"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
    }

    #[test]
    fn ipv4_addresses_are_read_as_the_standard_library_reads_them() {
        for text in [
            "0.0.0.0",
            "192.0.2.1",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            "1.2.3.4.",
            "",
            "1.2.3.999",
            "00.0.0.0",
            "1.2.3.0",
            "1234.1.1.1",
            "a.b.c.d",
            "1.2.3.-4",
        ] {
            assert_eq!(parse_ipv4(text), text.parse::<Ipv4Addr>().ok(), "{text:?}");
        }
    }

    #[test]
    fn host_names_are_labels_of_alphanumerics_and_inner_hyphens() {
        for good in ["a", "example.com", "a-b.c-d.e", "x1.2y", "a--b.com"] {
            assert!(valid_domain(good), "{good}");
        }
        for bad in [
            "", ".", "a..b", "-a.com", "a-.com", "a.-b", "a.b-", "a_b.com", "a.b.", ".a",
        ] {
            assert!(!valid_domain(bad), "{bad}");
        }
    }

    #[test]
    fn ipv6_references_follow_rfc_5118() {
        assert!(
            Uri::parse("sip:2001:db8::10").is_err(),
            "unbracketed IPv6 is refused"
        );
        let u = sip("sip:[2001:db8::10:5070]");
        assert_eq!(u.port, None, "5070 is part of the address");
        assert_eq!(sip("sip:[2001:db8::10]:5070").port, Some(5070));
        assert!(matches!(
            sip("sip:[2001:db8:::192.0.2.1]").host,
            Host::Ipv6Lenient(_)
        ));
        assert!(matches!(
            sip("sip:[2001:db8::192.0.2.1]").host,
            Host::Ipv6(_)
        ));
        assert!(matches!(sip("sip:[::ffff:192.0.2.10]").host, Host::Ipv6(_)));
    }

    #[test]
    fn escapes_are_kept_and_never_unescaped_twice() {
        let a = sip("sip:%00@example.com");
        let b = sip("sip:%00%00@example.com");
        assert_eq!(a.user_unescaped(), Some(vec![0]));
        assert_eq!(b.user_unescaped(), Some(vec![0, 0]));
        assert_eq!(unescape("value%2541"), b"value%41");
        assert!(
            Uri::parse("sip:a%4@example.com").is_err(),
            "truncated escape"
        );
        assert!(Uri::parse("sip:a%zz@example.com").is_err());
    }

    #[test]
    fn other_schemes_are_opaque_and_bad_uris_refused() {
        assert!(matches!(
            Uri::parse("isbn:2983792873").unwrap(),
            Uri::Other { .. }
        ));
        for bad in [
            "",
            "sip:",
            "sip:user@",
            "sip:a b@example.com",
            "<sip:a@b>",
            "sip:host:99999",
            "sip:host:x",
            "tel:",
            "1sip:x",
            "sip:bad_host!",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
