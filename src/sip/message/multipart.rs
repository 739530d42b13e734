//! Multipart bodies (RFC 2046 §5.1 as used by SIP, RFC 5621): split a body into its parts by
//! the boundary of its Content-Type, binary-safe (a part may hold NUL and bare CR/LF octets,
//! RFC 4475 §3.1.1.11). Nested multiparts are parts like any other; call again on them.

use super::{Headers, Limits, ParseError};

/// One body part: its header fields and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Part {
    /// The part's media type, lower case, without parameters (`text/plain` when absent).
    pub fn content_type(&self) -> String {
        self.headers.first("Content-Type").map_or_else(
            || "text/plain".to_owned(),
            |t| {
                t.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            },
        )
    }
}

fn bad(reason: &str) -> ParseError {
    ParseError::BadHeader {
        header: "Content-Type",
        reason: reason.to_owned(),
    }
}

/// The boundary parameter of a `multipart/*` Content-Type value.
///
/// # Errors
/// Not multipart, or no usable boundary.
pub fn boundary(content_type: &str) -> Result<String, ParseError> {
    let mut params = content_type.split(';');
    let media = params
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !media.starts_with("multipart/") {
        return Err(bad("not a multipart body"));
    }
    let value = params
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .ok_or_else(|| bad("multipart without a boundary"))?;
    if value.is_empty() || value.len() > 70 {
        return Err(bad("boundary must be 1 to 70 characters"));
    }
    Ok(value)
}

/// Splits `body` into its parts.
///
/// # Errors
/// No boundary, no opening or closing delimiter, or a part whose headers do not parse.
pub fn parse_multipart(
    content_type: &str,
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<Part>, ParseError> {
    let boundary = boundary(content_type)?;
    let delimiter = format!("--{boundary}").into_bytes();
    let mut positions = Vec::new();
    let mut i = 0;
    while let Some(off) = find(&body[i..], &delimiter) {
        let at = i + off;
        let at_line_start = at == 0 || body[..at].ends_with(b"\n");
        if at_line_start {
            positions.push(at);
        }
        i = at + delimiter.len();
    }
    if positions.is_empty() {
        return Err(bad("no multipart delimiter in the body"));
    }
    let mut parts = Vec::new();
    for window in positions.windows(2) {
        let (start, end) = (window[0], window[1]);
        let mut content = &body[start + delimiter.len()..end];
        if content.starts_with(b"--") {
            break; // a closing delimiter before the last position: stop
        }
        // Skip the rest of the delimiter line, drop the CRLF that belongs to the next one.
        let line_end = content
            .iter()
            .position(|&b| b == b'\n')
            .map_or(content.len(), |p| p + 1);
        content = &content[line_end..];
        content = content
            .strip_suffix(b"\r\n")
            .or_else(|| content.strip_suffix(b"\n"))
            .unwrap_or(content);
        parts.push(parse_part(content, limits)?);
    }
    let last = &body[positions[positions.len() - 1] + delimiter.len()..];
    if !last.starts_with(b"--") {
        return Err(bad("multipart body without a closing delimiter"));
    }
    Ok(parts)
}

fn parse_part(content: &[u8], limits: &Limits) -> Result<Part, ParseError> {
    // A part with no headers starts with the empty line.
    if let Some(body) = content
        .strip_prefix(b"\r\n")
        .or_else(|| content.strip_prefix(b"\n"))
    {
        return Ok(Part {
            headers: Headers::default(),
            body: body.to_vec(),
        });
    }
    let split = find(content, b"\r\n\r\n")
        .map(|p| (p, p + 4))
        .or_else(|| find(content, b"\n\n").map(|p| (p, p + 2)));
    let (head_end, body_start) =
        split.ok_or_else(|| bad("part without an empty line after its headers"))?;
    let head = std::str::from_utf8(&content[..head_end]).map_err(|_| ParseError::BadEncoding)?;
    Ok(Part {
        headers: Headers::parse(head, limits)?,
        body: content[body_start..].to_vec(),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::parse_datagram;

    #[test]
    fn rfc4475_mpart01_splits_into_its_binary_safe_parts() {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/rfc4475/mpart01.dat"
        ))
        .unwrap();
        let message = parse_datagram(&raw, &Limits::default()).unwrap();
        let content_type = message.headers().first("Content-Type").unwrap().to_owned();
        let parts = parse_multipart(&content_type, message.body(), &Limits::default()).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type(), "text/plain");
        assert_eq!(parts[1].content_type(), "application/octet-stream");
        assert!(
            parts[1].body.contains(&0),
            "binary content with NUL octets is kept"
        );
    }

    #[test]
    fn sdp_and_isup_parts() {
        let body = b"--unique\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--unique\r\nContent-Type: application/isup;version=itu-t92+\r\nContent-Disposition: signal;handling=optional\r\n\r\n\x01\x00\x49\r\n--unique--\r\n";
        let parts =
            parse_multipart("multipart/mixed;boundary=unique", body, &Limits::default()).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body, b"v=0\r\n");
        assert_eq!(parts[1].body, b"\x01\x00\x49");
        assert_eq!(
            parts[1].headers.first("Content-Disposition"),
            Some("signal;handling=optional")
        );
    }

    #[test]
    fn malformed_multiparts_are_refused() {
        let limits = Limits::default();
        assert!(parse_multipart("application/sdp", b"", &limits).is_err());
        assert!(parse_multipart("multipart/mixed", b"--x\r\n\r\nbody\r\n--x--", &limits).is_err());
        assert!(parse_multipart("multipart/mixed;boundary=x", b"no delimiter", &limits).is_err());
        assert!(
            parse_multipart(
                "multipart/mixed;boundary=x",
                b"--x\r\nContent-Type: a/b\r\n\r\nbody",
                &limits
            )
            .is_err(),
            "no closing delimiter"
        );
    }
}
