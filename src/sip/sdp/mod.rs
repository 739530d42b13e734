//! SDP: session descriptions (RFC 8866) parsed and printed, and the offer/answer engine
//! (RFC 3264) in [`negotiate`].
//!
//! Parsing is strict about structure and lenient about what it does not use: `v=0` first, an
//! origin, a session name, `m=` lines with a port, a protocol and formats; every other line is
//! kept in order as written, so printing gives the description back with CRLF line ends. Typed
//! access covers what a PBX negotiates: connection addresses, `rtpmap`, `fmtp`, `ptime`,
//! `maxptime`, the direction attributes, `rtcp` and `rtcp-mux`. Bounded: at most
//! [`MAX_MEDIA`] media sections and [`MAX_LINES`] lines.
//!
//! What this module does not do: ICE, DTLS fingerprints or crypto attributes beyond keeping
//! them; bandwidth arithmetic; SDP for anything but the body of a SIP message.

pub mod negotiate;

use std::fmt;
use std::net::IpAddr;

/// The most media sections one description may have.
pub const MAX_MEDIA: usize = 32;
/// The most lines one description may have.
pub const MAX_LINES: usize = 1024;

/// Why a session description was refused. Each variant is the peer's fault; the SIP answer is
/// 488 (or 400 for a body that is not SDP at all) with the reason in a Warning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    #[error("SDP is not UTF-8 text")]
    NotText,
    #[error("SDP does not start with v=0")]
    NoVersion,
    #[error("line {line}: {reason}")]
    BadLine { line: usize, reason: &'static str },
    #[error("SDP has no {field} line")]
    Missing { field: &'static str },
    #[error("more than {limit} {what}")]
    TooMany { what: &'static str, limit: usize },
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Origin,
    /// `s=`; a single space when the peer had nothing to say.
    pub session_name: String,
    /// Session-level `c=`, if any.
    pub connection: Option<Connection>,
    /// Session-level lines other than v, o, s, c and a, in order (`t=`, `b=`, `i=`, …), each
    /// as (type letter, value).
    pub other_lines: Vec<(char, String)>,
    /// Session-level attributes, in order.
    pub attributes: Vec<Attribute>,
    pub media: Vec<MediaDescription>,
}

/// `o=`: who made the description and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: String,
    pub session_version: u64,
    /// `IN IP4 192.0.2.1` — network type, address type and address as written.
    pub net_type: String,
    pub addr_type: String,
    pub address: String,
}

/// `c=`: where media goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub net_type: String,
    pub addr_type: String,
    /// As written (a multicast address may carry `/ttl`).
    pub address: String,
}

impl Connection {
    /// The address when it is a plain IP address.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// `c=IN IP4 addr` or `IN IP6 addr` for `ip`.
    pub fn for_ip(ip: IpAddr) -> Connection {
        Connection {
            net_type: "IN".to_owned(),
            addr_type: if ip.is_ipv4() { "IP4" } else { "IP6" }.to_owned(),
            address: ip.to_string(),
        }
    }
}

/// `a=name[:value]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

impl Attribute {
    pub fn flag(name: &str) -> Attribute {
        Attribute {
            name: name.to_owned(),
            value: None,
        }
    }

    pub fn with_value(name: &str, value: impl Into<String>) -> Attribute {
        Attribute {
            name: name.to_owned(),
            value: Some(value.into()),
        }
    }
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `application`, …
    pub media: String,
    /// 0 means the stream is rejected or disabled.
    pub port: u16,
    /// `port/count`, rarely used.
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, …
    pub protocol: String,
    /// Payload type numbers for RTP; other tokens for other protocols.
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    /// Lines other than c and a (`b=`, `i=`, `k=`), in order.
    pub other_lines: Vec<(char, String)>,
    pub attributes: Vec<Attribute>,
}

/// Which way media flows, from the describing side's point of view (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The direction an answer gives to an offer with this one (RFC 3264 §6.1), when the
    /// answerer is willing to send and receive.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// Whether the describing side sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the describing side receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// `a=rtpmap:PT NAME/RATE[/CHANNELS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

impl SessionDescription {
    /// Parses an SDP body. Lines end with CRLF or LF; a final line without an end is accepted.
    ///
    /// # Errors
    /// [`SdpError`] saying what is wrong and where.
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotText)?;
        let mut lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, "v=0")) => {}
            _ => return Err(SdpError::NoVersion),
        }
        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut other_lines = Vec::new();
        let mut attributes = Vec::new();
        let mut media: Vec<MediaDescription> = Vec::new();
        for (count, (number, line)) in lines.enumerate() {
            if count + 1 >= MAX_LINES {
                return Err(SdpError::TooMany {
                    what: "lines",
                    limit: MAX_LINES,
                });
            }
            let bad = |reason| SdpError::BadLine {
                line: number,
                reason,
            };
            let (kind, value) = split_line(line).ok_or(bad("not type=value"))?;
            if kind == 'm' {
                if media.len() == MAX_MEDIA {
                    return Err(SdpError::TooMany {
                        what: "media sections",
                        limit: MAX_MEDIA,
                    });
                }
                media.push(parse_media(value).ok_or(bad("malformed m= line"))?);
                continue;
            }
            match (kind, media.last_mut()) {
                ('v', _) => return Err(bad("a second v= line")),
                ('o', None) if origin.is_none() => {
                    origin = Some(parse_origin(value).ok_or(bad("malformed o= line"))?);
                }
                ('s', None) if session_name.is_none() => session_name = Some(value.to_owned()),
                ('o' | 's', _) => return Err(bad("o= and s= belong once to the session")),
                ('c', None) => {
                    connection = Some(parse_connection(value).ok_or(bad("malformed c= line"))?)
                }
                ('c', Some(m)) => {
                    m.connection = Some(parse_connection(value).ok_or(bad("malformed c= line"))?)
                }
                ('a', None) => attributes.push(parse_attribute(value).ok_or(bad("empty a="))?),
                ('a', Some(m)) => m
                    .attributes
                    .push(parse_attribute(value).ok_or(bad("empty a="))?),
                (kind, None) => other_lines.push((kind, value.to_owned())),
                (kind, Some(m)) => m.other_lines.push((kind, value.to_owned())),
            }
        }
        let description = SessionDescription {
            origin: origin.ok_or(SdpError::Missing { field: "o=" })?,
            session_name: session_name.ok_or(SdpError::Missing { field: "s=" })?,
            connection,
            other_lines,
            attributes,
            media,
        };
        description.check_rtp()?;
        Ok(description)
    }

    /// RTP sections need numeric payload types and a connection address somewhere.
    fn check_rtp(&self) -> Result<(), SdpError> {
        for m in &self.media {
            if !m.is_rtp() || m.port == 0 {
                continue;
            }
            if m.formats
                .iter()
                .any(|f| f.parse::<u8>().map_or(true, |pt| pt > 127))
            {
                return Err(SdpError::BadLine {
                    line: 0,
                    reason: "an RTP payload type is not a number from 0 to 127",
                });
            }
            if m.connection.is_none() && self.connection.is_none() {
                return Err(SdpError::Missing { field: "c=" });
            }
        }
        Ok(())
    }

    /// The description in wire form, CRLF line ends.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// The connection that applies to media section `index` (its own, else the session's).
    pub fn connection_for(&self, index: usize) -> Option<&Connection> {
        self.media
            .get(index)
            .and_then(|m| m.connection.as_ref())
            .or(self.connection.as_ref())
    }

    /// The direction of media section `index`: its own attribute, else the session's, else
    /// sendrecv (RFC 3264 §5.1).
    pub fn direction_of(&self, index: usize) -> Direction {
        let of = |attributes: &[Attribute]| {
            attributes
                .iter()
                .find_map(|a| Direction::from_attribute(&a.name))
        };
        self.media
            .get(index)
            .and_then(|m| of(&m.attributes))
            .or_else(|| of(&self.attributes))
            .unwrap_or(Direction::SendRecv)
    }

    /// Whether the description puts every stream on hold (RFC 3264 §8.4: sendonly or
    /// inactive, or the RFC 2543 way, a connection address of 0.0.0.0).
    pub fn is_hold(&self) -> bool {
        let live: Vec<usize> = (0..self.media.len())
            .filter(|&i| self.media[i].port != 0)
            .collect();
        !live.is_empty()
            && live.iter().all(|&i| {
                !self.direction_of(i).receives()
                    || self
                        .connection_for(i)
                        .is_some_and(|c| c.address == "0.0.0.0")
            })
    }
}

impl MediaDescription {
    /// Whether the protocol is RTP-based (`RTP/AVP`, `RTP/SAVP`, `RTP/AVPF`, `UDP/TLS/RTP/…`).
    pub fn is_rtp(&self) -> bool {
        self.protocol.split('/').any(|p| p == "RTP")
    }

    /// The values of attribute `name`, in order.
    pub fn attribute_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes
            .iter()
            .filter(move |a| a.name == name)
            .filter_map(|a| a.value.as_deref())
    }

    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes.iter().any(|a| a.name == name)
    }

    /// The payload types offered, in order (formats that are not numbers are skipped).
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse().ok())
    }

    /// The `rtpmap` of payload type `pt`, or the static assignment of RFC 3551 for the
    /// payload types below 96 that a PBX meets.
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        self.attribute_values("rtpmap")
            .filter_map(parse_rtpmap)
            .find(|m| m.payload_type == pt)
            .or_else(|| static_rtpmap(pt))
    }

    /// The `fmtp` parameters of payload type `pt`, as written.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attribute_values("fmtp").find_map(|v| {
            let (number, params) = v.split_once(' ').unwrap_or((v, ""));
            (number.parse() == Ok(pt)).then(|| params.trim())
        })
    }

    /// `a=ptime`, milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attribute_values("ptime")
            .find_map(|v| v.trim().parse().ok())
    }

    /// `a=rtcp:PORT …` (RFC 3605).
    pub fn rtcp_port(&self) -> Option<u16> {
        self.attribute_values("rtcp").find_map(|v| {
            v.split_ascii_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
        })
    }
}

/// The static payload types of RFC 3551 a PBX meets.
pub fn static_rtpmap(pt: u8) -> Option<RtpMap> {
    let (encoding, clock_rate) = match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        18 => ("G729", 8000),
        _ => return None,
    };
    Some(RtpMap {
        payload_type: pt,
        encoding: encoding.to_owned(),
        clock_rate,
        channels: None,
    })
}

fn split_line(line: &str) -> Option<(char, &str)> {
    let mut chars = line.chars();
    let kind = chars.next()?;
    if !kind.is_ascii_lowercase() || chars.next() != Some('=') {
        return None;
    }
    Some((kind, &line[2..]))
}

fn parse_origin(value: &str) -> Option<Origin> {
    let mut parts = value.split_ascii_whitespace();
    let origin = Origin {
        username: parts.next()?.to_owned(),
        session_id: parts.next()?.to_owned(),
        // Some phones send versions beyond u64 or with junk; the number matters only to
        // compare our own re-offers, so an unreadable one counts as 0.
        session_version: parts.next()?.parse().unwrap_or(0),
        net_type: parts.next()?.to_owned(),
        addr_type: parts.next()?.to_owned(),
        address: parts.next()?.to_owned(),
    };
    parts.next().is_none().then_some(origin)
}

fn parse_connection(value: &str) -> Option<Connection> {
    let mut parts = value.split_ascii_whitespace();
    let connection = Connection {
        net_type: parts.next()?.to_owned(),
        addr_type: parts.next()?.to_owned(),
        address: parts.next()?.to_owned(),
    };
    parts.next().is_none().then_some(connection)
}

fn parse_attribute(value: &str) -> Option<Attribute> {
    let (name, value) = match value.split_once(':') {
        Some((n, v)) => (n, Some(v.to_owned())),
        None => (value, None),
    };
    (!name.is_empty()).then(|| Attribute {
        name: name.to_owned(),
        value,
    })
}

fn parse_media(value: &str) -> Option<MediaDescription> {
    let mut parts = value.split_ascii_whitespace();
    let media = parts.next()?.to_owned();
    let port_text = parts.next()?;
    let (port, port_count) = match port_text.split_once('/') {
        Some((p, n)) => (p.parse().ok()?, Some(n.parse().ok()?)),
        None => (port_text.parse().ok()?, None),
    };
    let protocol = parts.next()?.to_owned();
    let formats: Vec<String> = parts.map(str::to_owned).collect();
    if formats.is_empty() {
        return None;
    }
    Some(MediaDescription {
        media,
        port,
        port_count,
        protocol,
        formats,
        connection: None,
        other_lines: Vec::new(),
        attributes: Vec::new(),
    })
}

/// `PT NAME/RATE[/CHANNELS]`.
pub fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, rest) = value.trim().split_once(' ')?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.to_owned();
    let clock_rate = parts.next()?.parse().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse().ok()?),
        None => None,
    };
    Some(RtpMap {
        payload_type: pt.parse().ok().filter(|pt| *pt < 128)?,
        encoding,
        clock_rate,
        channels,
    })
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(
            f,
            "v=0\r\no={} {} {} {} {} {}\r\ns={}\r\n",
            o.username,
            o.session_id,
            o.session_version,
            o.net_type,
            o.addr_type,
            o.address,
            self.session_name
        )?;
        // RFC 8866 order: i u e p, c, b, t r, z, a; we keep the others in received order
        // around c=, which is what phones send.
        let (before_c, after_c): (Vec<_>, Vec<_>) = self
            .other_lines
            .iter()
            .partition(|(kind, _)| matches!(kind, 'i' | 'u' | 'e' | 'p'));
        for (kind, value) in before_c {
            write!(f, "{kind}={value}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for (kind, value) in after_c {
            write!(f, "{kind}={value}\r\n")?;
        }
        if !self.other_lines.iter().any(|(kind, _)| *kind == 't') {
            f.write_str("t=0 0\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "{a}\r\n")?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "a={}:{v}", self.name),
            None => write!(f, "a={}", self.name),
        }
    }
}

impl fmt::Display for MediaDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.media, self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.protocol)?;
        for format in &self.formats {
            write!(f, " {format}")?;
        }
        f.write_str("\r\n")?;
        let (before_c, after_c): (Vec<_>, Vec<_>) =
            self.other_lines.iter().partition(|(kind, _)| *kind == 'i');
        for (kind, value) in before_c {
            write!(f, "{kind}={value}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for (kind, value) in after_c {
            write!(f, "{kind}={value}\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "{a}\r\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
