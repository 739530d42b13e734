//! URIs of SIP: `sip:`, `sips:` (RFC 3261 §19.1) and `tel:` (RFC 3966); anything else is kept
//! as an opaque absolute URI so an element can answer 416 or pass it on.
//!
//! Parsing keeps every component as written (escapes included), so printing gives back the
//! same text and escaped values are never unescaped twice (`value%41` stays distinct from
//! `valueA`). What this module does not do: URI comparison rules of §19.1.4 beyond
//! [`SipUri::user_unescaped`], or DNS resolution.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::ParseError;

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
        let bad = |reason: &'static str| ParseError::BadUri {
            uri: text.chars().take(128).collect(),
            reason,
        };
        if text.is_empty()
            || text
                .bytes()
                .any(|b| b <= b' ' || b == 0x7f || b == b'<' || b == b'>')
        {
            return Err(bad("empty, or holds whitespace, control characters or <>"));
        }
        let (scheme, rest) = text.split_once(':').ok_or_else(|| bad("no scheme"))?;
        if !is_scheme(scheme) {
            return Err(bad("invalid scheme"));
        }
        match scheme.to_ascii_lowercase().as_str() {
            "sip" => SipUri::parse_rest(rest, false).map(Uri::Sip).map_err(bad),
            "sips" => SipUri::parse_rest(rest, true).map(Uri::Sip).map_err(bad),
            "tel" => TelUri::parse_rest(rest).map(Uri::Tel).map_err(bad),
            _ => Ok(Uri::Other {
                scheme: scheme.to_owned(),
                rest: rest.to_owned(),
            }),
        }
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

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Every byte is allowed by `extra` or unreserved, and every `%` starts a valid escape.
fn valid_escaped(s: &str, extra: &[u8]) -> bool {
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
        if !(is_unreserved(b) || extra.contains(&b)) {
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

const USER_EXTRA: &[u8] = b"&=+$,;?/";
const PASSWORD_EXTRA: &[u8] = b"&=+$,";
const PARAM_EXTRA: &[u8] = b"[]/:&+$";
const HEADER_EXTRA: &[u8] = b"[]/?:+$=&";

impl SipUri {
    fn parse_rest(rest: &str, secure: bool) -> Result<SipUri, &'static str> {
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                if user.is_empty() || !valid_escaped(user, USER_EXTRA) {
                    return Err("invalid user part");
                }
                if let Some(p) = password
                    && !valid_escaped(p, PASSWORD_EXTRA)
                {
                    return Err("invalid password");
                }
                (Some(user.to_owned()), password.map(str::to_owned))
            }
        };
        let (before_headers, headers) = match hostpart.split_once('?') {
            Some((b, h)) => (b, Some(h)),
            None => (hostpart, None),
        };
        if let Some(h) = headers
            && (h.is_empty() || !valid_escaped(h, HEADER_EXTRA))
        {
            return Err("invalid URI headers");
        }
        let mut parts = before_headers.split(';');
        let hostport = parts.next().unwrap_or_default();
        let (host, port) = parse_hostport(hostport)?;
        let params = parse_uri_params(parts).ok_or("invalid URI parameter")?;
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers: headers.map(str::to_owned),
        })
    }

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

/// `;name[=value]` URI parameters (already split at `;`), as written; `None` if one is not
/// valid (empty name, characters outside `paramchar`, a bad escape).
fn parse_uri_params<'a>(
    parts: impl Iterator<Item = &'a str>,
) -> Option<Vec<(String, Option<String>)>> {
    parts
        .map(|p| {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            let valid = !name.is_empty()
                && valid_escaped(name, PARAM_EXTRA)
                && value.is_none_or(|v| valid_escaped(v, PARAM_EXTRA));
            valid.then(|| (name.to_owned(), value.map(str::to_owned)))
        })
        .collect()
}

/// `host[:port]` of a SIP URI or Via sent-by.
///
/// # Errors
/// A reason when the host or port is not valid.
pub fn parse_hostport(text: &str) -> Result<(Host, Option<u16>), &'static str> {
    let (host_text, port_text) = if let Some(inner) = text.strip_prefix('[') {
        let end = inner.find(']').ok_or("unterminated IPv6 reference")?;
        let after = &inner[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after IPv6 reference")?),
        };
        (&text[..end + 2], port)
    } else {
        match text.split_once(':') {
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

fn parse_host(text: &str) -> Result<Host, &'static str> {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        if let Ok(addr) = inner.parse::<Ipv6Addr>() {
            return Ok(Host::Ipv6(addr));
        }
        if inner.contains(':')
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Ok(Host::Ipv6Lenient(inner.to_owned()));
        }
        return Err("invalid IPv6 reference");
    }
    if text.is_empty() {
        return Err("empty host");
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && let Ok(addr) = text.parse::<Ipv4Addr>()
    {
        return Ok(Host::Ipv4(addr));
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.split('.').all(valid_label) {
        Ok(Host::Domain(text.to_owned()))
    } else {
        Err("invalid host name")
    }
}

impl TelUri {
    fn parse_rest(rest: &str) -> Result<TelUri, &'static str> {
        let mut parts = rest.split(';');
        let number = parts.next().unwrap_or_default();
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
        let params = parse_uri_params(parts).ok_or("invalid tel parameter")?;
        Ok(TelUri {
            number: number.to_owned(),
            params,
        })
    }
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
