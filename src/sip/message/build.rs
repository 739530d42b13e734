//! Building messages: responses to requests (RFC 3261 §8.2.6) and header helpers.

use super::headers::NameId;
use super::{Header, Headers, Request, Response};

impl Response {
    /// A response to `request` with `status` and `reason`: Via (all values, in order), From,
    /// To, Call-ID and CSeq copied from the request (§8.2.6.2), no body, Content-Length 0.
    /// The caller adds a To tag where one is needed ([`Response::set_to_tag`]).
    pub fn for_request(request: &Request, status: u16, reason: &str) -> Response {
        let mut headers = Headers::default();
        for h in request.headers.iter() {
            if matches!(
                h.id(),
                NameId::VIA | NameId::FROM | NameId::TO | NameId::CALL_ID | NameId::CSEQ
            ) {
                headers.push_field(h.name_text(), h.value());
            }
        }
        headers.push(Header::new("Content-Length", "0"));
        Response {
            status,
            reason: reason.to_owned(),
            headers,
            body: Vec::new(),
        }
    }

    /// Adds `;tag=TAG` to the To header unless it already has a tag.
    pub fn set_to_tag(&mut self, tag: &str) {
        self.headers.map_first("To", |value| {
            let has_tag = super::NameAddr::parse("To", value)
                .ok()
                .is_some_and(|n| n.tag().is_some());
            if has_tag {
                value.to_owned()
            } else {
                format!("{value};tag={tag}")
            }
        });
    }

    /// Sets the body and its Content-Type, replacing Content-Length.
    pub fn set_body(&mut self, content_type: &str, body: Vec<u8>) {
        self.headers.remove("Content-Type");
        self.headers.remove("Content-Length");
        self.headers.push(Header::new("Content-Type", content_type));
        self.headers
            .push(Header::new("Content-Length", body.len().to_string()));
        self.body = body;
    }
}

/// The standard reason phrase of a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    }
}
