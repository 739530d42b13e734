//! Transaction matching keys: RFC 3261 §17.1.3 for responses to client transactions,
//! §17.2.3 for requests to server transactions, including the RFC 2543 fallback for
//! requests whose branch lacks the magic cookie.

use crate::sip::message::{Request, Response};

use super::TsxError;

/// Every branch this layer generates or accepts from its TU starts with it (RFC 3261
/// §8.1.1.7); a received branch without it comes from an RFC 2543 element.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Matches a response to its client transaction: the top Via branch and the CSeq method
/// (the method tells an INVITE from the CANCEL that shares its branch).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ClientKey {
    branch: String,
    method: String,
}

impl ClientKey {
    pub(super) fn new(branch: &str, method: &str) -> ClientKey {
        ClientKey {
            // Parameter values are case-insensitive (RFC 3261 §7.3.1).
            branch: branch.to_ascii_lowercase(),
            method: method.to_owned(),
        }
    }

    /// The key of a received response, if it has a top Via branch and a CSeq.
    pub(super) fn of_response(response: &Response) -> Result<ClientKey, TsxError> {
        let vias = response.headers.via().map_err(|_| TsxError::Malformed {
            reason: "unparsable Via",
        })?;
        let top = vias
            .first()
            .ok_or(TsxError::Malformed { reason: "no Via" })?;
        let branch = top.branch().ok_or(TsxError::Malformed {
            reason: "no branch in the top Via",
        })?;
        let cseq = response
            .headers
            .cseq()
            .ok()
            .flatten()
            .ok_or(TsxError::Malformed { reason: "no CSeq" })?;
        Ok(ClientKey::new(branch, &cseq.method))
    }
}

/// Matches a request to its server transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum ServerKey {
    /// RFC 3261: branch, sent-by and method (INVITE for an ACK).
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: String,
    },
    /// RFC 2543 fallback (boxed: rare, and large).
    Rfc2543(Box<LegacyServerKey>),
}

/// RFC 2543 matching: Request-URI, To tag, From tag, Call-ID, CSeq number, top Via and
/// method (INVITE for an ACK; the ACK's To tag is checked against the response's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct LegacyServerKey {
    method: String,
    request_uri: String,
    to_tag: Option<String>,
    from_tag: Option<String>,
    call_id: String,
    cseq: u32,
    top_via: String,
}

/// What identifies the transaction a request belongs to, method aside.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    Rfc3261 {
        branch: String,
        sent_by: String,
    },
    Rfc2543 {
        request_uri: String,
        to_tag: Option<String>,
        from_tag: Option<String>,
        call_id: String,
        cseq: u32,
        top_via: String,
    },
}

impl Origin {
    /// # Errors
    /// [`TsxError::Malformed`] when the request has no usable top Via or CSeq.
    pub(super) fn of(request: &Request) -> Result<Origin, TsxError> {
        let top = request
            .headers
            .top_via()
            .map_err(|_| TsxError::Malformed {
                reason: "unparsable Via",
            })?
            .ok_or(TsxError::Malformed { reason: "no Via" })?;
        let cseq = request
            .headers
            .cseq()
            .ok()
            .flatten()
            .ok_or(TsxError::Malformed { reason: "no CSeq" })?;
        if let Some(branch) = top.branch.filter(|b| b.starts_with(MAGIC_COOKIE)) {
            let mut sent_by = top.host.to_ascii_lowercase();
            sent_by.push(':');
            if let Some(port) = top.port {
                sent_by.push_str(&port.to_string());
            }
            return Ok(Origin::Rfc3261 {
                branch: branch.to_ascii_lowercase(),
                sent_by,
            });
        }
        let tag = |name_addr: Option<crate::sip::message::NameAddr>| {
            name_addr.and_then(|n| n.tag().map(str::to_owned))
        };
        Ok(Origin::Rfc2543 {
            request_uri: request.uri.to_string(),
            to_tag: tag(request.headers.to().ok().flatten()),
            from_tag: tag(request.headers.from().ok().flatten()),
            call_id: request.headers.call_id().unwrap_or_default().to_owned(),
            cseq: cseq.seq,
            top_via: request
                .headers
                .values("Via")
                .next()
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// The key of the transaction with `method`, using the request's own To tag.
    pub(super) fn key(&self, method: &str) -> ServerKey {
        match self {
            Origin::Rfc2543 { to_tag, .. } => self.key_with_to_tag(method, to_tag.as_deref()),
            Origin::Rfc3261 { .. } => self.key_with_to_tag(method, None),
        }
    }

    /// The key of the transaction with `method`, with `to_tag` in place of the request's To
    /// tag in the RFC 2543 case (an ACK carries the response's tag, not the INVITE's).
    pub(super) fn key_with_to_tag(&self, method: &str, to_tag: Option<&str>) -> ServerKey {
        match self {
            Origin::Rfc3261 { branch, sent_by } => ServerKey::Rfc3261 {
                branch: branch.clone(),
                sent_by: sent_by.clone(),
                method: method.to_owned(),
            },
            Origin::Rfc2543 {
                request_uri,
                from_tag,
                call_id,
                cseq,
                top_via,
                ..
            } => ServerKey::Rfc2543(Box::new(LegacyServerKey {
                method: method.to_owned(),
                request_uri: request_uri.clone(),
                to_tag: to_tag.map(str::to_owned),
                from_tag: from_tag.clone(),
                call_id: call_id.clone(),
                cseq: *cseq,
                top_via: top_via.clone(),
            })),
        }
    }

    /// The request's To tag when matching falls back to RFC 2543 rules.
    pub(super) fn legacy_to_tag(&self) -> Option<Option<&str>> {
        match self {
            Origin::Rfc3261 { .. } => None,
            Origin::Rfc2543 { to_tag, .. } => Some(to_tag.as_deref()),
        }
    }
}

/// The To tag of a message's To header, if any.
pub(super) fn to_tag(headers: &crate::sip::message::Headers) -> Option<String> {
    headers
        .to()
        .ok()
        .flatten()
        .and_then(|n| n.tag().map(str::to_owned))
}
