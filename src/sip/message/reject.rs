//! Answering requests that do not parse: a stateless error response built from whatever
//! header lines can still be read (RFC 3261 §8.2.6, §16.3 for the header copy rules).
//!
//! Only requests get an answer; an unparseable response is dropped. Without a Via there is
//! nowhere to send an answer, so there is none.

use super::{Method, ParseError, reason_phrase};

/// The wire bytes of an error response to the unparseable `datagram`, or `None` when it must
/// be dropped (a response, or no usable Via).
pub fn error_response(datagram: &[u8], error: &ParseError) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(datagram);
    let text = text.trim_start_matches(['\r', '\n']);
    let head = text.split("\r\n\r\n").next().unwrap_or(text);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next()?;
    if start_line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        return None;
    }
    let method = Method::from_token(start_line.split(' ').next().unwrap_or_default());
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let wanted = |name: &str| -> Option<&'static str> {
        match name.to_ascii_lowercase().as_str() {
            "via" | "v" => Some("Via"),
            "from" | "f" => Some("From"),
            "to" | "t" => Some("To"),
            "call-id" | "i" => Some("Call-ID"),
            "cseq" => Some("CSeq"),
            _ => None,
        }
    };
    let copied: Vec<(&'static str, &str)> = fields
        .iter()
        .filter_map(|(n, v)| wanted(n).map(|canonical| (canonical, v.as_str())))
        .filter(|(_, v)| !v.bytes().any(|b| b < b' ' && b != b'\t'))
        .collect();
    if !copied.iter().any(|(n, _)| *n == "Via") {
        return None;
    }
    let status = error.status(method.is_known());
    let reason = match error {
        ParseError::BadHeader { header, .. } => format!("Bad {header} Header"),
        _ => reason_phrase(status).to_owned(),
    };
    let mut out = format!("SIP/2.0 {status} {reason}\r\n");
    for (name, value) in copied {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        if name == "To" && !value.to_ascii_lowercase().contains(";tag=") && value.ends_with('>') {
            out.push_str(";tag=rsw-");
            out.push_str(&format!("{:x}", stable_hash(value)));
        }
        out.push_str("\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// FNV-1a, for a To tag that is the same for retransmissions of the same request.
fn stable_hash(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Limits, Message, parse_datagram};

    #[test]
    fn bad_request_copies_the_dialog_headers() {
        let raw = b"OPTIONS  sip:a@example.com SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nt: <sip:a@example.com>\r\nf: <sip:b@example.com>;tag=1\r\ni: abc\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let err = parse_datagram(raw, &Limits::default()).unwrap_err();
        let answer = error_response(raw, &err).expect("a request with a Via gets an answer");
        let Message::Response(r) = parse_datagram(&answer, &Limits::default()).unwrap() else {
            panic!("response")
        };
        assert_eq!(r.status, 400);
        assert_eq!(r.headers.via().unwrap()[0].branch(), Some("z9hG4bKx"));
        assert!(
            r.headers.to().unwrap().unwrap().tag().is_some(),
            "a To tag is added"
        );
        assert_eq!(r.headers.call_id(), Some("abc"));
    }

    #[test]
    fn responses_and_requests_without_via_get_no_answer() {
        let err = ParseError::BadStartLine { reason: "x" };
        assert!(error_response(b"SIP/2.0 999 Huge\r\nVia: SIP/2.0/UDP h\r\n\r\n", &err).is_none());
        assert!(
            error_response(b"OPTIONS sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\n\r\n", &err).is_none()
        );
        assert!(error_response(b"", &err).is_none());
    }

    #[test]
    fn version_error_is_505() {
        let raw = b"OPTIONS sip:a@b SIP/7.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let err = parse_datagram(raw, &Limits::default()).unwrap_err();
        let answer = String::from_utf8(error_response(raw, &err).unwrap()).unwrap();
        assert!(
            answer.starts_with("SIP/2.0 505 Version Not Supported\r\n"),
            "{answer}"
        );
    }
}
