//! [`Dialog`]: the state of one dialog (RFC 3261 §12) with its INVITE usage, and how
//! requests inside it are built (§12.2.1.1).

use std::collections::VecDeque;
use std::time::Instant;

use crate::sip::message::{Header, Headers, Method, NameAddr, Request, Response, Uri};
use crate::sip::peer::Peer;
use crate::sip::transaction::TsxId;

use super::timer::Backoff;
use super::{DialogId, DialogIdentity, DialogState, Outgoing, RAck, Role, Tag};

/// One dialog. Read it through [`super::DialogLayer::dialog`]; it changes only through the
/// layer.
#[derive(Debug)]
pub struct Dialog {
    pub(super) id: DialogId,
    pub(super) identity: DialogIdentity,
    pub(super) role: Role,
    pub(super) state: DialogState,
    /// From of our requests: the local URI with the local tag.
    pub(super) local: NameAddr,
    /// To of our requests: the remote URI with the remote tag.
    pub(super) remote: NameAddr,
    /// The Contact value of our target refresh requests (our local target).
    pub(super) local_contact: Option<String>,
    pub(super) remote_target: Uri,
    pub(super) route_set: Vec<NameAddr>,
    pub(super) local_seq: Option<u32>,
    pub(super) remote_seq: Option<u32>,
    /// Our requests in the dialog without a final response yet.
    pub(super) client_pending: Vec<(TsxId, Method)>,
    /// The peer's requests the TU has not answered yet.
    pub(super) server_pending: Vec<(TsxId, Method)>,
    /// UAC: the CSeq number of the INVITE whose 2xx still needs the TU's ACK.
    pub(super) ack_due: Option<u32>,
    /// UAC: the ACK sent for the latest 2xx, re-sent for each retransmission of that 2xx.
    pub(super) last_ack: Option<SentAck>,
    /// UAC: the INVITE CSeq and the RSeq of the last reliable provisional response taken.
    pub(super) last_rseq: Option<(u32, u32)>,
    /// UAC: what the next PRACK acknowledges.
    pub(super) prack_due: Option<RAck>,
    /// UAS: our 2xx responses to INVITE, retransmitted until their ACK.
    pub(super) unacked_2xx: Vec<Unacked2xx>,
    /// UAS: the RSeq of the next reliable provisional response.
    pub(super) next_rseq: u32,
    /// UAS: the reliable provisional response waiting for its PRACK.
    pub(super) reliable: Option<ReliableOut>,
    /// UAS: reliable provisional responses the TU sent while one was unacknowledged; each
    /// goes out when the previous one is PRACKed.
    pub(super) reliable_queue: VecDeque<QueuedReliable>,
}

/// A reliable provisional response waiting for its turn.
#[derive(Debug, Clone)]
pub(super) struct QueuedReliable {
    pub(super) tsx: TsxId,
    /// The CSeq number of the INVITE it answers.
    pub(super) cseq: u32,
    pub(super) response: Response,
}

/// An ACK as the TU sent it.
#[derive(Debug, Clone)]
pub(super) struct SentAck {
    pub(super) cseq: u32,
    pub(super) request: Request,
    pub(super) destination: Peer,
}

/// A 2xx to INVITE waiting for its ACK (RFC 3261 §13.3.1.4).
#[derive(Debug, Clone)]
pub(super) struct Unacked2xx {
    pub(super) cseq: u32,
    pub(super) tsx: TsxId,
    pub(super) response: Response,
    pub(super) backoff: Backoff,
}

/// A reliable provisional response waiting for its PRACK (RFC 3262 §3).
#[derive(Debug, Clone)]
pub(super) struct ReliableOut {
    pub(super) rseq: u32,
    /// The CSeq number of the INVITE it answers.
    pub(super) cseq: u32,
    pub(super) tsx: TsxId,
    pub(super) response: Response,
    pub(super) backoff: Backoff,
}

impl Dialog {
    pub(super) fn new(
        id: DialogId,
        identity: DialogIdentity,
        role: Role,
        local: NameAddr,
        remote: NameAddr,
        remote_target: Uri,
    ) -> Dialog {
        Dialog {
            id,
            identity,
            role,
            state: DialogState::Early,
            local,
            remote,
            local_contact: None,
            remote_target,
            route_set: Vec::new(),
            local_seq: None,
            remote_seq: None,
            client_pending: Vec::new(),
            server_pending: Vec::new(),
            ack_due: None,
            last_ack: None,
            last_rseq: None,
            prack_due: None,
            unacked_2xx: Vec::new(),
            next_rseq: 1,
            reliable: None,
            reliable_queue: VecDeque::new(),
        }
    }

    pub fn id(&self) -> DialogId {
        self.id
    }

    pub fn identity(&self) -> &DialogIdentity {
        &self.identity
    }

    pub fn call_id(&self) -> &str {
        &self.identity.call_id
    }

    pub fn local_tag(&self) -> &Tag {
        &self.identity.local_tag
    }

    pub fn remote_tag(&self) -> &Tag {
        &self.identity.remote_tag
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn state(&self) -> DialogState {
        self.state
    }

    /// The local URI and tag (From of our requests).
    pub fn local_uri(&self) -> &NameAddr {
        &self.local
    }

    /// The remote URI and tag (To of our requests).
    pub fn remote_uri(&self) -> &NameAddr {
        &self.remote
    }

    /// Where our requests go when the route set is empty: the peer's Contact.
    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }

    /// The proxies our requests pass, in the order they are visited.
    pub fn route_set(&self) -> &[NameAddr] {
        &self.route_set
    }

    /// The CSeq number of our last request in the dialog (`None` before the first).
    pub fn local_seq(&self) -> Option<u32> {
        self.local_seq
    }

    /// The CSeq number of the peer's last request in the dialog (`None` before the first).
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// Whether an INVITE transaction is in progress in either direction (RFC 3261 §14.1):
    /// ours without a final response or without our ACK, or the peer's unanswered or
    /// without its ACK.
    pub fn invite_in_progress(&self) -> bool {
        self.ack_due.is_some()
            || !self.unacked_2xx.is_empty()
            || has_method(&self.client_pending, &Method::Invite)
            || has_method(&self.server_pending, &Method::Invite)
    }

    /// The next local CSeq number (RFC 3261 §12.2.1.1: one more than the last; 1 for the
    /// first request of a UAS).
    pub(super) fn next_local_seq(&mut self) -> Option<u32> {
        let next = match self.local_seq {
            None => 1,
            Some(seq) => seq.checked_add(1)?,
        };
        self.local_seq = Some(next);
        Some(next)
    }

    /// The earliest retransmission or give-up instant of this dialog.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let retransmits = self.unacked_2xx.iter().map(|job| job.backoff.deadline());
        let reliable = self.reliable.iter().map(|job| job.backoff.deadline());
        retransmits.chain(reliable).min()
    }

    /// A request in the dialog with CSeq `cseq` (RFC 3261 §12.2.1.1): Request-URI and Route
    /// from the remote target and the route set (loose or strict routing), From, To, Call-ID,
    /// CSeq, Max-Forwards, our Contact on target refresh requests, and no body.
    pub(super) fn build(&self, method: Method, cseq: u32, max_forwards: u8) -> Outgoing {
        let (uri, routes, next_hop) = self.request_target();
        let mut headers = Headers::default();
        headers.push(Header::new("Max-Forwards", max_forwards.to_string()));
        for route in routes {
            headers.push(Header::new("Route", route));
        }
        headers.push(Header::new("From", bracketed(&self.local).to_string()));
        headers.push(Header::new("To", bracketed(&self.remote).to_string()));
        headers.push(Header::new("Call-ID", self.identity.call_id.clone()));
        headers.push(Header::new("CSeq", format!("{cseq} {method}")));
        if is_target_refresh(&method)
            && let Some(contact) = &self.local_contact
        {
            headers.push(Header::new("Contact", contact.clone()));
        }
        headers.push(Header::new("Content-Length", "0"));
        Outgoing {
            request: Request {
                method,
                uri,
                headers,
                body: Vec::new(),
            },
            next_hop,
        }
    }

    /// The Request-URI, the Route values and the next hop.
    fn request_target(&self) -> (Uri, Vec<String>, Uri) {
        let Some(first) = self.route_set.first() else {
            return (
                request_uri(&self.remote_target),
                Vec::new(),
                self.remote_target.clone(),
            );
        };
        let values = |routes: &[NameAddr]| -> Vec<String> {
            routes
                .iter()
                .map(|route| bracketed(route).to_string())
                .collect()
        };
        if is_loose(first) {
            return (
                request_uri(&self.remote_target),
                values(&self.route_set),
                first.uri.clone(),
            );
        }
        // A strict router (RFC 2543) expects itself in the Request-URI; the remote target
        // travels as the last Route value.
        let mut routes = values(&self.route_set[1..]);
        routes.push(format!("<{}>", self.remote_target));
        (request_uri(&first.uri), routes, first.uri.clone())
    }
}

/// Whether `method` refreshes the remote target (RFC 3261 §12.2; RFC 3311 for UPDATE,
/// RFC 6665 for SUBSCRIBE and NOTIFY, RFC 3515 for REFER).
pub(super) fn is_target_refresh(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    )
}

pub(super) fn has_method(pending: &[(TsxId, Method)], method: &Method) -> bool {
    pending.iter().any(|(_, m)| m == method)
}

/// A route whose URI carries `lr` (RFC 3261 §16.12); anything else is a strict router.
fn is_loose(route: &NameAddr) -> bool {
    route
        .uri
        .as_sip()
        .is_some_and(|uri| uri.param("lr").is_some())
}

/// `uri` as a Request-URI: without the header part and the `method` parameter, which a
/// Request-URI can not carry (RFC 3261 §19.1.1, Table 1).
fn request_uri(uri: &Uri) -> Uri {
    let mut uri = uri.clone();
    if let Uri::Sip(sip) = &mut uri {
        sip.headers = None;
        sip.params
            .retain(|(name, _)| !name.eq_ignore_ascii_case("method"));
    }
    uri
}

/// The name-addr printed with `<>`, so that URI parameters stay inside the URI.
fn bracketed(addr: &NameAddr) -> NameAddr {
    NameAddr {
        bracketed: true,
        ..addr.clone()
    }
}
