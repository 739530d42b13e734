//! The checks every request passes before a UAS acts on it (RFC 3261 §8.2): mandatory and
//! single-valued headers, method, Request-URI scheme, Require, Content-Type and Accept.
//! A request that fails gets the response this module builds; one that passes goes on to the
//! method's handler.
//!
//! Pure. What this module does not do: authentication, dialogs, or any method's semantics.

use crate::sip::message::{Header, Method, Request, Response, Uri, reason_phrase};

/// What this UAS supports, for the checks and for the Allow/Accept/Supported headers.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Methods with a handler; a known method not listed gets 405.
    pub allowed: Vec<Method>,
    /// Option tags understood in Require (RFC 3261 §8.2.2.3).
    pub supported: Vec<&'static str>,
    /// Body types accepted (RFC 3261 §8.2.3).
    pub accepted: Vec<&'static str>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            allowed: vec![
                Method::Invite,
                Method::Ack,
                Method::Cancel,
                Method::Bye,
                Method::Register,
                Method::Options,
                Method::Prack,
                Method::Update,
                Method::Info,
                Method::Refer,
            ],
            supported: vec!["path", "outbound", "100rel", "timer", "replaces"],
            accepted: vec!["application/sdp"],
        }
    }
}

impl Capabilities {
    pub fn allow_header(&self) -> Header {
        let methods: Vec<&str> = self.allowed.iter().map(Method::as_str).collect();
        Header::new("Allow", methods.join(", "))
    }

    pub fn accept_header(&self) -> Header {
        Header::new("Accept", self.accepted.join(", "))
    }

    pub fn supported_header(&self) -> Header {
        Header::new("Supported", self.supported.join(", "))
    }

    /// The error response `request` deserves, or `None` if it may be processed.
    pub fn check(&self, request: &Request) -> Option<Response> {
        let reject =
            |status: u16, reason: &str| Some(Response::for_request(request, status, reason));
        let h = &request.headers;
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            if h.first(name).is_none() {
                return reject(400, &format!("Missing {name} Header"));
            }
        }
        for name in ["From", "To", "Call-ID", "CSeq", "Max-Forwards"] {
            if h.all(name).count() > 1 {
                return reject(400, &format!("Multiple {name} Headers"));
            }
        }
        if !request.method.is_known() {
            let mut r = Response::for_request(request, 501, reason_phrase(501));
            r.headers.push(self.allow_header());
            return Some(r);
        }
        let method_allowed = self.allowed.contains(&request.method)
            || matches!(request.method, Method::Ack | Method::Cancel);
        if !method_allowed {
            let mut r = Response::for_request(request, 405, reason_phrase(405));
            r.headers.push(self.allow_header());
            return Some(r);
        }
        if !matches!(request.uri, Uri::Sip(_) | Uri::Tel(_)) {
            return reject(416, reason_phrase(416));
        }
        if request.method == Method::Register
            && !h.to().ok().flatten().is_some_and(|to| to.uri.is_sip())
        {
            return reject(400, "To Must Be a SIP or SIPS URI");
        }
        if !matches!(request.method, Method::Ack | Method::Cancel) {
            let unsupported: Vec<&str> = h
                .values("Require")
                .filter(|tag| {
                    !tag.is_empty() && !self.supported.iter().any(|s| s.eq_ignore_ascii_case(tag))
                })
                .collect();
            if !unsupported.is_empty() {
                let mut r = Response::for_request(request, 420, reason_phrase(420));
                r.headers
                    .push(Header::new("Unsupported", unsupported.join(", ")));
                return Some(r);
            }
        }
        if !request.body.is_empty() {
            let content_type = h.first("Content-Type").map(media_type).unwrap_or_default();
            if !self
                .accepted
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&content_type))
            {
                let mut r = Response::for_request(request, 415, reason_phrase(415));
                r.headers.push(self.accept_header());
                return Some(r);
            }
        }
        if request.method == Method::Invite && h.first("Accept").is_some() {
            let acceptable = h.values("Accept").map(media_type).any(|t| {
                t == "*/*"
                    || t == "application/*"
                    || self.accepted.iter().any(|a| a.eq_ignore_ascii_case(&t))
            });
            if !acceptable {
                let mut r = Response::for_request(request, 406, reason_phrase(406));
                r.headers.push(Header::new(
                    "Warning",
                    "399 rswitch \"only application/sdp bodies can be sent\"",
                ));
                return Some(r);
            }
        }
        None
    }
}

/// `type/subtype` of a media type, lower case, without parameters.
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Limits, Message, parse_datagram};

    fn request(text: &str) -> Request {
        let raw = text.replace('\n', "\r\n");
        match parse_datagram(raw.as_bytes(), &Limits::default()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!("tests build requests"),
        }
    }

    const HEAD: &str = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@h>;tag=1\nTo: <sip:b@h>\nCall-ID: c\nMax-Forwards: 70\n";

    fn status(text: &str) -> Option<u16> {
        Capabilities::default()
            .check(&request(text))
            .map(|r| r.status)
    }

    #[test]
    fn well_formed_options_passes() {
        assert_eq!(
            status(&format!(
                "OPTIONS sip:b@h SIP/2.0\n{HEAD}CSeq: 1 OPTIONS\nContent-Length: 0\n\n"
            )),
            None
        );
    }

    #[test]
    fn each_check_gives_its_status() {
        assert_eq!(
            status(
                "OPTIONS sip:b@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nCSeq: 1 OPTIONS\n\n"
            ),
            Some(400)
        );
        assert_eq!(
            status(&format!("FOO sip:b@h SIP/2.0\n{HEAD}CSeq: 1 FOO\n\n")),
            Some(501)
        );
        assert_eq!(
            status(&format!(
                "MESSAGE sip:b@h SIP/2.0\n{HEAD}CSeq: 1 MESSAGE\n\n"
            )),
            Some(405)
        );
        assert_eq!(
            status(&format!(
                "OPTIONS urn:x:y SIP/2.0\n{HEAD}CSeq: 1 OPTIONS\n\n"
            )),
            Some(416)
        );
        assert_eq!(
            status(&format!(
                "OPTIONS sip:b@h SIP/2.0\n{HEAD}CSeq: 1 OPTIONS\nRequire: foo, path\n\n"
            )),
            Some(420)
        );
        assert_eq!(
            status(&format!(
                "OPTIONS sip:b@h SIP/2.0\n{HEAD}CSeq: 1 OPTIONS\nContent-Type: text/plain\nContent-Length: 2\n\nhi"
            )),
            Some(415)
        );
        assert_eq!(
            status(&format!(
                "OPTIONS sip:b@h SIP/2.0\n{HEAD}CSeq: 1 OPTIONS\nTo: <sip:c@h>\n\n"
            )),
            Some(400)
        );
        let register_to_isbn = "REGISTER sip:h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@h>;tag=1\nTo: isbn:2983792873\nCall-ID: c\nCSeq: 1 REGISTER\n\n";
        assert_eq!(
            status(register_to_isbn),
            Some(400),
            "a registrar needs a SIP AOR"
        );
    }

    #[test]
    fn unsupported_lists_only_the_unknown_tags() {
        let r = Capabilities::default()
            .check(&request(&format!(
                "OPTIONS sip:b@h SIP/2.0\n{HEAD}CSeq: 1 OPTIONS\nRequire: path, x1,x2\n\n"
            )))
            .unwrap();
        assert_eq!(r.headers.first("Unsupported"), Some("x1, x2"));
    }
}
