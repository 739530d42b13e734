//! The SIP transaction layer (RFC 3261 §17, with the RFC 6026 corrections), sans-IO.
//!
//! One [`TransactionLayer`] owns every transaction, keyed by a `Copy` [`TsxId`]. The four
//! machines are enums whose variants are the RFC state names and carry that state's data;
//! each module draws its transition diagram:
//!
//! | machine            | states                                                  | module              |
//! |--------------------|---------------------------------------------------------|---------------------|
//! | INVITE client      | Calling, Proceeding, Completed, Accepted, Terminated    | `invite_client`     |
//! | non-INVITE client  | Trying, Proceeding, Completed, Terminated               | `non_invite_client` |
//! | INVITE server      | Proceeding, Completed, Confirmed, Accepted, Terminated  | `invite_server`     |
//! | non-INVITE server  | Trying, Proceeding, Completed, Terminated               | `non_invite_server` |
//!
//! Every timer (A–M) derives from one [`TimerTable`]; see [`timers`] for the table.
//!
//! Matching follows §17.1.3 for responses (top Via branch + CSeq method) and §17.2.3 for
//! requests (branch + sent-by + method, ACK matching its INVITE; without the `z9hG4bK`
//! cookie the RFC 2543 rules: Request-URI, To tag, From tag, Call-ID, CSeq number, top
//! Via). A CANCEL is its own non-INVITE server transaction; the layer tells the TU which
//! INVITE transaction it cancels ([`TsxEvent::CancelRequest`]).
//!
//! What this module does not do: open sockets or read a clock (time comes in as `now`),
//! choose where a response goes beyond "back to the request's source" (RFC 3261 §18.2.2 and
//! RFC 3581 `received`/`rport` are the transport's job, given the source [`Peer`]), build
//! requests or responses for the TU (it only builds the hop-by-hop ACK for non-2xx finals,
//! the optional 100 Trying and the 503 it answers when full), retransmit 2xx responses to
//! INVITE on the server side (the TU does, RFC 6026), or handle dialogs, PRACK or forking
//! decisions.

mod error;
mod invite_client;
mod invite_server;
mod key;
mod layer;
mod non_invite_client;
mod non_invite_server;
pub mod timers;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use crate::sip::message::{Message, Method, Request, Response};
use crate::sip::peer::Peer;

pub use error::{Misuse, TsxError};
pub use key::MAGIC_COOKIE;
pub use layer::{LayerConfig, TransactionLayer};
pub use timers::{Timer, TimerTable};

/// Identifies one transaction of a [`TransactionLayer`]. Ids are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TsxId(u64);

impl fmt::Display for TsxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tsx#{}", self.0)
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to: for a response, the source of the request (the transport applies RFC 3261
    /// §18.2.2 and RFC 3581 to it); for a request, the destination the TU chose.
    pub destination: Peer,
    pub message: Message,
    /// The transaction that sends it, for [`TransactionLayer::handle_transport_error`];
    /// `None` for stateless sends (ACK for 2xx, the 503 of a full layer).
    pub tsx: Option<TsxId>,
}

/// What the transaction layer tells its TU.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TsxEvent {
    /// A request that created a server transaction. The TU answers with
    /// [`TransactionLayer::respond`].
    NewRequest {
        tsx: TsxId,
        request: Request,
        source: Peer,
    },
    /// A CANCEL, which created its own non-INVITE server transaction `tsx`. `invite` is the
    /// INVITE server transaction it matches (RFC 3261 §9.2), if any: the TU answers the
    /// CANCEL (200, or 481 without a match) and, if that INVITE is still Proceeding, the
    /// INVITE with 487.
    CancelRequest {
        tsx: TsxId,
        invite: Option<TsxId>,
        request: Request,
        source: Peer,
    },
    /// An ACK that matched no transaction, or matched an INVITE server transaction in
    /// Accepted (RFC 6026): the ACK for a 2xx, end to end, for the dialog layer.
    AckFor2xx { request: Request, source: Peer },
    /// A response for client transaction `tsx`: provisional, final, and in Accepted every
    /// further 2xx (retransmission or fork) for the TU to ACK.
    Response { tsx: TsxId, response: Response },
    /// A response that matched no client transaction (RFC 3261 §18.1.2 passes it to the
    /// core): a UAC core drops it, except that a late 2xx may need an ACK and a BYE.
    StrayResponse { response: Response, source: Peer },
    /// A timer expired: B or F (client: the TU acts as if it received a 408), H (server:
    /// the ACK never came), C (client: the TU decides whether to CANCEL) or
    /// [`Timer::Cancel`] (client: no final response 64*T1 after the CANCEL).
    Timeout { tsx: TsxId, timer: Timer },
    /// The driver reported that sending for `tsx` failed, before the TU had a final
    /// response (client) or at any time (server).
    TransportError { tsx: TsxId },
    /// The transaction limit was reached: the request was answered 503 without creating a
    /// transaction.
    Overloaded { method: Method, source: Peer },
    /// The transaction is gone; its id is no longer valid.
    Terminated { tsx: TsxId },
}

/// The current state of a transaction, as the RFC names it (Terminated transactions no
/// longer exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsxState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

/// What a machine needs to act: its id, the time, the timers and where its output goes.
struct Ctx<'a> {
    id: TsxId,
    now: Instant,
    timers: &'a TimerTable,
    out: &'a mut Outbox,
}

impl Ctx<'_> {
    fn transmit(&mut self, destination: Peer, message: Message) {
        self.out.transmits.push_back(Transmit {
            destination,
            message,
            tsx: Some(self.id),
        });
    }

    fn event(&mut self, event: TsxEvent) {
        self.out.events.push_back(event);
    }
}

/// The layer's output queues, drained by `poll_transmit` and `poll_event`.
#[derive(Debug, Default)]
struct Outbox {
    transmits: VecDeque<Transmit>,
    events: VecDeque<TsxEvent>,
}
