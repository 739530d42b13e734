//! The SIP dialog layer (RFC 3261 §12–14) with the INVITE usage, reliable provisional
//! responses (RFC 3262, 100rel/PRACK) and UPDATE (RFC 3311), sans-IO.
//!
//! It sits above the transaction layer as the TU's dialog half: for a B2BUA each leg of a
//! call is one dialog, on the UAC side (we sent the INVITE) or the UAS side (we received
//! it). One [`DialogLayer`] owns every dialog, keyed by a `Copy` [`DialogId`] and found by
//! its [`DialogIdentity`] (Call-ID, local tag, remote tag).
//!
//! ```text
//!  UAC: 101-199 with a new To tag received      UAS: 101-199 with a To tag sent
//!  (one early dialog per To tag: forks)         (reliable ones resent until PRACK)
//!                  |                                          |
//!                  v                                          v
//!        +--------------------------------------------------------+
//!        |                         Early                          |---+
//!        +--------------------------------------------------------+   |
//!                  | 2xx received (UAC) / sent (UAS): route set       | non-2xx final to
//!                  | and remote target recomputed                     | the INVITE, its
//!                  v                                                  | timeout, BYE,
//!        +--------------------------------------------------------+   | another fork
//!  2xx ->|                       Confirmed                        |   | chosen (at the
//!  with  |  2xx resent until ACK; re-INVITE, UPDATE refresh the   |   | INVITE's end),
//!  no    |  remote target; glare: 491 / 500                       |   | `terminate`
//!  early +--------------------------------------------------------+   |
//!  dialog          | BYE received and answered, our BYE answered,     |
//!                  | 481/408 or no response to our request,           |
//!                  | `terminate`                                      |
//!                  v                                                  |
//!        +--------------------------------------------------------+   |
//!        |     Terminated: DialogEvent::Terminated, then gone     |<--+
//!        +--------------------------------------------------------+
//! ```
//!
//! What it does:
//! - creates early and confirmed dialogs from the responses the TU sends (UAS) and receives
//!   (UAC); keeps several early dialogs for a forked INVITE, reports the others when one is
//!   confirmed ([`DialogEvent::ForkConfirmedElsewhere`]) and a 2xx of another fork after
//!   that ([`DialogEvent::LateForkConfirmed`]);
//! - keeps the route set (Record-Route, reversed on the UAC side), the remote target
//!   (Contact, refreshed by re-INVITE, UPDATE, SUBSCRIBE, NOTIFY and REFER) and the local
//!   and remote CSeq (RFC 3261 §12.2); builds in-dialog requests with loose or strict
//!   routing ([`Outgoing`]);
//! - matches in-dialog requests and ACKs by Call-ID and tags, and answers on its own what
//!   needs no TU: 481 (no such dialog, or a PRACK that matches nothing), 500 (CSeq out of
//!   order, or an INVITE/UPDATE while the peer's previous one is unanswered, with
//!   Retry-After) and 491 (glare with our own re-INVITE or UPDATE);
//! - retransmits a UAS 2xx to INVITE until its ACK (RFC 3261 §13.3.1.4; RFC 6026 leaves
//!   it to the TU) and reports a missing ACK after 64*T1; re-sends the UAC's ACK for each
//!   retransmitted 2xx;
//! - RFC 3262: adds RSeq to the reliable provisional responses the TU sends (those with
//!   `Require: 100rel`), retransmits them until their PRACK and reports a missing PRACK after
//!   64*T1; on the UAC side it passes on each new reliable provisional response once, for
//!   the TU to [`DialogLayer::prack`], and drops repeats.
//!
//! What it does not do: SDP or offer/answer (glare is judged by method: an INVITE or UPDATE
//! against one of the same method in progress), media, transactions (the TU hands every
//! message to [`crate::sip::transaction::TransactionLayer`]), the top Via of the requests it
//! builds (the TU adds it for the transport it picks), resolving a next-hop URI to an
//! address (RFC 3263), authentication, or subscription usages (NOTIFY and REFER are plain
//! in-dialog requests here).

mod error;
mod layer;
mod state;
mod timer;

#[cfg(test)]
mod tests;

use std::fmt;

use crate::sip::message::{Header, Method, Request, Response, Uri};
use crate::sip::peer::Peer;
use crate::sip::transaction::{TimerTable, TsxId};

pub use error::{DialogError, Misuse};
pub use layer::DialogLayer;
pub(crate) use layer::has_option_tag;
pub use state::Dialog;

/// Identifies one dialog of a [`DialogLayer`]. Ids are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId(u64);

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dialog#{}", self.0)
    }
}

/// A From or To tag. Compared as written (tags are tokens, RFC 3261 §19.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn new(tag: impl Into<String>) -> Tag {
        Tag(tag.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What identifies a dialog on the wire (RFC 3261 §12): the Call-ID and the two tags, seen
/// from our side. A peer without tags (RFC 2543) has the empty tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogIdentity {
    pub call_id: String,
    pub local_tag: Tag,
    pub remote_tag: Tag,
}

/// Which side of the INVITE that created the dialog we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the INVITE.
    Uac,
    /// We received it.
    Uas,
}

/// The state of a live dialog. A terminated dialog no longer exists: it is reported once
/// ([`DialogEvent::Terminated`]) and removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialogState {
    Early,
    Confirmed,
}

/// The RAck of a PRACK (RFC 3262 §7.2): the RSeq and CSeq of the provisional response it
/// acknowledges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RAck {
    pub rseq: u32,
    pub cseq: u32,
    pub method: Method,
}

impl RAck {
    /// Parses `RSEQ CSEQ METHOD`; `None` when the value is not one.
    pub fn parse(value: &str) -> Option<RAck> {
        let mut parts = value.split_ascii_whitespace();
        let (Some(rseq), Some(cseq), Some(method), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        Some(RAck {
            rseq: parse_u32(rseq)?,
            cseq: parse_u32(cseq)?,
            method: Method::from_token(method),
        })
    }
}

impl fmt::Display for RAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.rseq, self.cseq, self.method)
    }
}

/// How a [`DialogLayer`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogConfig {
    /// T1 and T2 pace the 2xx and reliable 1xx retransmissions; 64*T1 ends them. Use the
    /// transaction layer's table.
    pub timers: TimerTable,
    /// At most this many dialogs exist at once (early and confirmed, both roles); also the
    /// bound on initial INVITEs waiting for a dialog, per role.
    pub max_dialogs: usize,
    /// At most this many requests from the peer wait for the TU's answer in one dialog
    /// (beyond it the layer answers 500 with Retry-After), and at most this many reliable
    /// provisional responses wait behind an unacknowledged one (beyond it the oldest
    /// waiting one is dropped).
    pub max_pending_requests: usize,
    /// Max-Forwards of the requests the layer builds.
    pub max_forwards: u8,
    /// Mixed into generated tags, initial RSeq values and Retry-After values. The driver
    /// sets it from a random source at start-up.
    pub seed: u64,
}

impl Default for DialogConfig {
    fn default() -> Self {
        DialogConfig {
            timers: TimerTable::default(),
            max_dialogs: 10_000,
            max_pending_requests: 16,
            max_forwards: 70,
            seed: 0,
        }
    }
}

/// What the dialog layer tells its TU.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialogEvent {
    /// An early dialog exists: a 101-199 with a new To tag was received (UAC) or sent (UAS).
    Early { dialog: DialogId },
    /// The dialog is confirmed: the first 2xx of its INVITE was received (UAC) or sent
    /// (UAS).
    Confirmed { dialog: DialogId },
    /// UAC: another fork of the INVITE was confirmed. This early dialog will not be; it is
    /// terminated ([`TerminationReason::NotChosen`]) when the INVITE transaction ends, or
    /// earlier by [`DialogLayer::terminate`].
    ForkConfirmedElsewhere {
        dialog: DialogId,
        confirmed: DialogId,
    },
    /// UAC: a 2xx from another fork after `confirmed` was chosen. `dialog` is confirmed so
    /// that the TU can [`ack`](DialogLayer::ack) it and then end it with a BYE (RFC 3261
    /// §13.2.2.4).
    LateForkConfirmed {
        dialog: DialogId,
        confirmed: DialogId,
    },
    /// A request in `dialog` that the TU answers through [`DialogLayer::respond`].
    Request {
        dialog: DialogId,
        tsx: TsxId,
        request: Request,
        source: Peer,
    },
    /// A response to a request the TU sent: to the initial INVITE (`dialog` is the one it
    /// created or belongs to; `None` for a 100, a provisional response without a tag or a
    /// final failure) or in a dialog (`None` once the dialog is gone, or for a transaction
    /// the layer does not know).
    Response {
        dialog: Option<DialogId>,
        tsx: TsxId,
        response: Response,
    },
    /// A new reliable provisional response (RFC 3262): the TU answers it with
    /// [`DialogLayer::prack`]. Its retransmissions and any out of order are dropped.
    ReliableProvisional {
        dialog: DialogId,
        tsx: TsxId,
        response: Response,
    },
    /// The ACK for our 2xx arrived (it may carry the SDP answer); the 2xx is no longer
    /// retransmitted.
    AckReceived { dialog: DialogId, request: Request },
    /// Our 2xx was retransmitted for 64*T1 without an ACK (RFC 3261 §13.3.1.4). The dialog
    /// stays confirmed; the TU should end the session with a BYE.
    AckTimeout { dialog: DialogId },
    /// A reliable provisional response was retransmitted for 64*T1 without a PRACK (RFC
    /// 3262 §3). The TU should reject the INVITE `tsx` with a 5xx.
    PrackTimeout { dialog: DialogId, tsx: TsxId },
    /// The dialog is gone; its id is no longer valid.
    Terminated {
        dialog: DialogId,
        reason: TerminationReason,
    },
}

/// Why a dialog ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TerminationReason {
    /// The peer's BYE was answered with a 2xx.
    ByeReceived,
    /// Our BYE got a final response (any: RFC 3261 §15.1.1).
    ByeSent,
    /// The INVITE that created the early dialog got (UAC) or was given (UAS) this non-2xx
    /// final response.
    Rejected { status: u16 },
    /// Another early dialog of the same INVITE was confirmed.
    NotChosen,
    /// A request of ours in the dialog got 481 or 408 (RFC 3261 §12.2.1.2).
    PeerEnded { status: u16 },
    /// A transaction of the dialog timed out or could not be sent.
    NoResponse,
    /// The TU called [`DialogLayer::terminate`].
    Local,
}

/// What the dialog layer itself sends, through the transaction layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A response in server transaction `tsx`: the TU's own responses passed through
    /// [`DialogLayer::respond`], 2xx and reliable 1xx retransmissions, and the layer's
    /// 400/481/491/500. Hand it to `TransactionLayer::respond`.
    Response { tsx: TsxId, response: Response },
    /// The ACK for a retransmitted 2xx, as it was sent the first time. Hand it to
    /// `TransactionLayer::send_ack`.
    Ack {
        dialog: DialogId,
        request: Request,
        destination: Peer,
    },
}

/// An in-dialog request built by the layer, without a Via: the TU adds the top Via,
/// resolves `next_hop` (RFC 3263), sends the request (a client transaction, or
/// `send_ack` for an ACK) and reports it with [`DialogLayer::handle_request_sent`] or
/// [`DialogLayer::handle_ack_sent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub request: Request,
    /// Where the request goes first: the first route of the route set, or the remote
    /// target when the route set is empty (RFC 3261 §8.1.2, §12.2.1.1).
    pub next_hop: Uri,
}

impl Outgoing {
    /// Sets the body and its Content-Type, replacing Content-Length.
    pub fn set_body(&mut self, content_type: &str, body: Vec<u8>) {
        let headers = &mut self.request.headers;
        headers.remove("Content-Type");
        headers.remove("Content-Length");
        headers.push(Header::new("Content-Type", content_type));
        headers.push(Header::new("Content-Length", body.len().to_string()));
        self.request.body = body;
    }
}

/// A decimal `u32` without sign or spaces.
fn parse_u32(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
