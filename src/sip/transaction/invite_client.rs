//! The INVITE client transaction (RFC 3261 §17.1.1, with the Accepted state of RFC 6026 §7.2).
//!
//! ```text
//!                     send_request: INVITE sent, Timer A (unreliable only), Timer B
//!                                   |
//!     Timer A: INVITE resent,       v
//!     A doubles           +------------------+   Timer B / transport error:
//!                   +---->|     Calling      |-------- Timeout / TransportError to TU --+
//!                   +-----+------------------+                                          |
//!                           |      |      |  2xx: to TU                                 |
//!                 1xx: to TU|      |      +------------------------+                    |
//!                           v      |                               v                    |
//!     1xx: to TU,  +------------+  |   2xx: to TU         +--------------+              |
//!     C re-armed+->| Proceeding |--|--------------------->|   Accepted   |<-+           |
//!               +--+------------+  |                      +--------------+  | 2xx       |
//!                   |     |        |                         |        |     | (retrans- |
//!     Timer C: to TU|     |300-699 |300-699: ACK sent, to TU |        +-----+ mission   |
//!     (stays)       |     |        |                         |          or fork): to TU |
//!                   |     v        v                         |                          |
//!     300-699:     +------------------+                      |                          |
//!     ACK resent+->|    Completed     |                      | Timer M                  |
//!               +--+------------------+                      |                          |
//!                          | Timer D (0 when reliable)       |                          |
//!                          v                                 v                          |
//!                  +------------------------------------------------+                   |
//!                  |                   Terminated                   |<------------------+
//!                  +------------------------------------------------+
//!                          ^
//!                          | CANCEL guard (64*T1 after the TU's CANCEL, RFC 3261 §9.1):
//!                          | Timeout to TU, from Proceeding
//! ```
//!
//! The transaction builds and sends the ACK for a non-2xx final response itself (hop by hop,
//! §17.1.1.3). A 2xx goes to the TU, which sends its own ACK end to end; every further 2xx
//! (retransmissions, other forks) also goes to the TU until Timer M ends the transaction.

use std::time::{Duration, Instant};

use crate::sip::message::{Header, Headers, Message, Method, Request, Response};
use crate::sip::peer::Peer;

use super::timers::Timer;
use super::{Ctx, TsxEvent};

/// An INVITE client transaction: what it sent, where, and its state.
#[derive(Debug)]
pub(super) struct InviteClient {
    request: Request,
    destination: Peer,
    /// When the TU sent a CANCEL for this INVITE, if it did.
    cancelled_at: Option<Instant>,
    state: InviteClientState,
}

/// The states of RFC 3261 Figure 5 as amended by RFC 6026 Figure 3.
#[derive(Debug)]
pub(super) enum InviteClientState {
    Calling {
        /// Timer A; `None` on reliable transports.
        retransmit_at: Option<Instant>,
        interval: Duration,
        /// Timer B.
        timeout_at: Instant,
    },
    Proceeding {
        /// Timer C, if configured.
        timer_c: Option<Instant>,
        /// 64*T1 after the TU's CANCEL.
        cancel_deadline: Option<Instant>,
    },
    Completed {
        /// The ACK for the final response, resent for each retransmission of it.
        ack: Box<Request>,
        /// Timer D.
        terminate_at: Instant,
    },
    Accepted {
        /// Timer M.
        terminate_at: Instant,
    },
    Terminated,
}

impl InviteClient {
    /// Sends the INVITE and enters Calling.
    pub(super) fn start(ctx: &mut Ctx<'_>, request: Request, destination: Peer) -> InviteClient {
        ctx.transmit(destination, Message::Request(request.clone()));
        let reliable = destination.transport.is_reliable();
        let interval = ctx.timers.a();
        InviteClient {
            request,
            destination,
            cancelled_at: None,
            state: InviteClientState::Calling {
                retransmit_at: (!reliable).then(|| ctx.now + interval),
                interval,
                timeout_at: ctx.now + ctx.timers.b(),
            },
        }
    }

    pub(super) fn state(&self) -> &InviteClientState {
        &self.state
    }

    pub(super) fn is_terminated(&self) -> bool {
        matches!(self.state, InviteClientState::Terminated)
    }

    /// Whether the TU has been given a final response.
    pub(super) fn has_final(&self) -> bool {
        matches!(
            self.state,
            InviteClientState::Completed { .. } | InviteClientState::Accepted { .. }
        )
    }

    pub(super) fn terminate(&mut self) {
        self.state = InviteClientState::Terminated;
    }

    /// The TU sent a CANCEL for this INVITE: arm the §9.1 guard.
    pub(super) fn note_cancel(&mut self, ctx: &Ctx<'_>) {
        let cancelled_at = *self.cancelled_at.get_or_insert(ctx.now);
        if let InviteClientState::Proceeding {
            cancel_deadline, ..
        } = &mut self.state
        {
            *cancel_deadline = Some(cancelled_at + ctx.timers.cancel());
        }
    }

    pub(super) fn on_response(&mut self, ctx: &mut Ctx<'_>, response: Response) {
        let status = response.status;
        match &mut self.state {
            InviteClientState::Calling { .. } | InviteClientState::Proceeding { .. } => {
                match status {
                    100..=199 => {
                        let cancel_deadline = self.cancelled_at.map(|at| at + ctx.timers.cancel());
                        self.state = InviteClientState::Proceeding {
                            timer_c: ctx.timers.c.map(|c| ctx.now + c),
                            cancel_deadline,
                        };
                        ctx.event(TsxEvent::Response {
                            tsx: ctx.id,
                            response,
                        });
                    }
                    200..=299 => {
                        self.state = InviteClientState::Accepted {
                            terminate_at: ctx.now + ctx.timers.m(),
                        };
                        ctx.event(TsxEvent::Response {
                            tsx: ctx.id,
                            response,
                        });
                    }
                    _ => {
                        let ack = ack_for(&self.request, &response);
                        ctx.transmit(self.destination, Message::Request(ack.clone()));
                        let wait = ctx.timers.d(self.destination.transport.is_reliable());
                        self.state = if wait.is_zero() {
                            InviteClientState::Terminated
                        } else {
                            InviteClientState::Completed {
                                ack: Box::new(ack),
                                terminate_at: ctx.now + wait,
                            }
                        };
                        ctx.event(TsxEvent::Response {
                            tsx: ctx.id,
                            response,
                        });
                    }
                }
            }
            InviteClientState::Completed { ack, .. } if status >= 300 => {
                ctx.transmit(self.destination, Message::Request((**ack).clone()));
            }
            InviteClientState::Accepted { .. } if (200..=299).contains(&status) => {
                ctx.event(TsxEvent::Response {
                    tsx: ctx.id,
                    response,
                });
            }
            _ => {
                tracing::debug!(tsx = %ctx.id, status, "INVITE client transaction absorbs a response")
            }
        }
    }

    pub(super) fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        match &mut self.state {
            InviteClientState::Calling {
                retransmit_at,
                interval,
                timeout_at,
            } => {
                if now >= *timeout_at {
                    self.state = InviteClientState::Terminated;
                    ctx.event(TsxEvent::Timeout {
                        tsx: ctx.id,
                        timer: Timer::B,
                    });
                } else if retransmit_at.is_some_and(|at| now >= at) {
                    *interval = ctx.timers.doubled(*interval, false);
                    *retransmit_at = Some(now + *interval);
                    ctx.transmit(self.destination, Message::Request(self.request.clone()));
                }
            }
            InviteClientState::Proceeding {
                timer_c,
                cancel_deadline,
            } => {
                if cancel_deadline.is_some_and(|at| now >= at) {
                    self.state = InviteClientState::Terminated;
                    ctx.event(TsxEvent::Timeout {
                        tsx: ctx.id,
                        timer: Timer::Cancel,
                    });
                } else if timer_c.is_some_and(|at| now >= at) {
                    *timer_c = None;
                    ctx.event(TsxEvent::Timeout {
                        tsx: ctx.id,
                        timer: Timer::C,
                    });
                }
            }
            InviteClientState::Completed { terminate_at, .. }
            | InviteClientState::Accepted { terminate_at } => {
                if now >= *terminate_at {
                    self.state = InviteClientState::Terminated;
                }
            }
            InviteClientState::Terminated => {}
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            InviteClientState::Calling {
                retransmit_at,
                timeout_at,
                ..
            } => Some(retransmit_at.map_or(*timeout_at, |at| at.min(*timeout_at))),
            InviteClientState::Proceeding {
                timer_c,
                cancel_deadline,
            } => match (timer_c, cancel_deadline) {
                (Some(c), Some(g)) => Some((*c).min(*g)),
                (c, g) => c.or(*g),
            },
            InviteClientState::Completed { terminate_at, .. }
            | InviteClientState::Accepted { terminate_at } => Some(*terminate_at),
            InviteClientState::Terminated => None,
        }
    }
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): the INVITE's Request-URI,
/// Call-ID, From, CSeq number and top Via, the response's To, and the INVITE's Route headers.
pub(super) fn ack_for(invite: &Request, response: &Response) -> Request {
    let mut headers = Headers::default();
    if let Some(via) = invite.headers.values("Via").next() {
        headers.push(Header::new("Via", via));
    }
    headers.push(Header::new("Max-Forwards", "70"));
    for route in invite.headers.all("Route") {
        headers.push_field(route.name_text(), route.value());
    }
    if let Some(from) = invite.headers.all("From").next() {
        headers.push_field(from.name_text(), from.value());
    }
    if let Some(to) = response.headers.all("To").next() {
        headers.push_field(to.name_text(), to.value());
    }
    if let Some(call_id) = invite.headers.all("Call-ID").next() {
        headers.push_field(call_id.name_text(), call_id.value());
    }
    let seq = invite.headers.cseq().ok().flatten().map_or(0, |c| c.seq);
    headers.push(Header::new("CSeq", format!("{seq} ACK")));
    headers.push(Header::new("Content-Length", "0"));
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        headers,
        body: Vec::new(),
    }
}
