//! The INVITE server transaction (RFC 3261 §17.2.1, with the Accepted state of RFC 6026 §7.1).
//!
//! ```text
//!                        INVITE received: NewRequest to TU (100 Trying sent if configured)
//!                                   |
//!     INVITE retransmitted:         v
//!     last 1xx resent      +-----------------+  transport error: TransportError to TU
//!     TU 1xx: sent   +---->|   Proceeding    |------------------------------------------+
//!                    +-----+-----------------+                                          |
//!                            |             |  TU 2xx: sent                              |
//!                 TU 300-699:|             +----------------------+                     |
//!                 sent, G, H v                                    v                     |
//!     INVITE retrans-  +-----------------+              +-----------------+             |
//!     mitted or G:  +->|    Completed    |      TU 2xx: |    Accepted     |<-+          |
//!     final resent  +--+-----------------+      sent +->|                 |  | ACK: to  |
//!     (G doubles up to T2) |      |                  +--+-----------------+  | TU;      |
//!                      ACK |      | Timer H: Timeout       |        |    +---+ INVITE   |
//!                          v      | to TU                  |        +--------+ absorbed |
//!     ACK or INVITE +-----------------+                    |                            |
//!     absorbed   +->|    Confirmed    |                    | Timer L                    |
//!                +--+-----------------+                    |                            |
//!                          | Timer I (0 when reliable)     |                            |
//!                          v      v                        v                            |
//!                  +-----------------------------------------------+                    |
//!                  |                  Terminated                   |<-------------------+
//!                  +-----------------------------------------------+
//! ```
//!
//! After a 2xx the transaction does not retransmit it (RFC 6026): the TU does, by passing
//! each retransmission to [`super::TransactionLayer::respond`] while the transaction is
//! Accepted, and the ACK for the 2xx goes to the TU.

use std::time::{Duration, Instant};

use crate::sip::message::{Message, Method, Request, Response};
use crate::sip::peer::Peer;

use super::error::Misuse;
use super::key::to_tag;
use super::timers::Timer;
use super::{Ctx, TsxEvent};

/// An INVITE server transaction.
#[derive(Debug)]
pub(super) struct InviteServer {
    /// Where the INVITE came from; responses go back there.
    source: Peer,
    /// The To tag of the final response, for RFC 2543 ACK matching.
    final_to_tag: Option<String>,
    state: InviteServerState,
}

/// The states of RFC 3261 Figure 7 as amended by RFC 6026 Figure 7.
#[derive(Debug)]
pub(super) enum InviteServerState {
    Proceeding {
        /// The last provisional response, resent for each retransmission of the INVITE.
        provisional: Option<Box<Response>>,
    },
    Completed {
        response: Box<Response>,
        /// Timer G; `None` on reliable transports.
        retransmit_at: Option<Instant>,
        interval: Duration,
        /// Timer H.
        ack_timeout_at: Instant,
    },
    Confirmed {
        /// Timer I.
        terminate_at: Instant,
    },
    Accepted {
        /// Timer L.
        terminate_at: Instant,
    },
    Terminated,
}

impl InviteServer {
    /// Enters Proceeding, sending 100 Trying when `send_trying` (RFC 3261 §17.2.1: unless the
    /// TU is known to respond within 200 ms).
    pub(super) fn start(
        ctx: &mut Ctx<'_>,
        request: &Request,
        source: Peer,
        send_trying: bool,
    ) -> InviteServer {
        let provisional = send_trying.then(|| {
            let mut trying = Response::for_request(request, 100, "Trying");
            // RFC 3261 §8.2.6.1: a 100 echoes the Timestamp.
            if let Some(timestamp) = request.headers.all("Timestamp").next() {
                trying
                    .headers
                    .push_field(timestamp.name_text(), timestamp.value());
            }
            ctx.transmit(source, Message::Response(trying.clone()));
            Box::new(trying)
        });
        InviteServer {
            source,
            final_to_tag: None,
            state: InviteServerState::Proceeding { provisional },
        }
    }

    pub(super) fn state(&self) -> &InviteServerState {
        &self.state
    }

    pub(super) fn is_terminated(&self) -> bool {
        matches!(self.state, InviteServerState::Terminated)
    }

    pub(super) fn terminate(&mut self) {
        self.state = InviteServerState::Terminated;
    }

    pub(super) fn final_to_tag(&self) -> Option<&str> {
        self.final_to_tag.as_deref()
    }

    /// A retransmission of the INVITE, or an ACK that matched this transaction.
    pub(super) fn on_request(&mut self, ctx: &mut Ctx<'_>, request: Request, source: Peer) {
        let is_ack = request.method == Method::Ack;
        match &mut self.state {
            InviteServerState::Proceeding {
                provisional: Some(provisional),
            } if !is_ack => ctx.transmit(self.source, Message::Response((**provisional).clone())),
            InviteServerState::Completed { response, .. } if !is_ack => {
                ctx.transmit(self.source, Message::Response((**response).clone()));
            }
            InviteServerState::Completed { .. } => {
                let wait = ctx.timers.i(self.source.transport.is_reliable());
                self.state = if wait.is_zero() {
                    InviteServerState::Terminated
                } else {
                    InviteServerState::Confirmed {
                        terminate_at: ctx.now + wait,
                    }
                };
            }
            // RFC 6026 §7.1: an ACK in Accepted is for the 2xx and goes to the TU.
            InviteServerState::Accepted { .. } if is_ack => {
                ctx.event(TsxEvent::AckFor2xx { request, source })
            }
            _ => {
                tracing::debug!(tsx = %ctx.id, method = %request.method, "INVITE server transaction absorbs a request")
            }
        }
    }

    /// A response from the TU.
    pub(super) fn respond(&mut self, ctx: &mut Ctx<'_>, response: Response) -> Result<(), Misuse> {
        let status = response.status;
        match &mut self.state {
            InviteServerState::Proceeding { provisional } => match status {
                100..=199 => {
                    ctx.transmit(self.source, Message::Response(response.clone()));
                    *provisional = Some(Box::new(response));
                }
                200..=299 => {
                    self.final_to_tag = to_tag(&response.headers);
                    ctx.transmit(self.source, Message::Response(response));
                    self.state = InviteServerState::Accepted {
                        terminate_at: ctx.now + ctx.timers.l(),
                    };
                }
                _ => {
                    self.final_to_tag = to_tag(&response.headers);
                    ctx.transmit(self.source, Message::Response(response.clone()));
                    let reliable = self.source.transport.is_reliable();
                    let interval = ctx.timers.g();
                    self.state = InviteServerState::Completed {
                        response: Box::new(response),
                        retransmit_at: (!reliable).then(|| ctx.now + interval),
                        interval,
                        ack_timeout_at: ctx.now + ctx.timers.h(),
                    };
                }
            },
            // RFC 6026 §7.1: the TU retransmits its 2xx through the transaction.
            InviteServerState::Accepted { .. } if (200..=299).contains(&status) => {
                ctx.transmit(self.source, Message::Response(response));
            }
            _ => {
                return Err(Misuse::AfterFinalResponse {
                    tsx: ctx.id,
                    status,
                });
            }
        }
        Ok(())
    }

    pub(super) fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        match &mut self.state {
            InviteServerState::Completed { ack_timeout_at, .. } if now >= *ack_timeout_at => {
                self.state = InviteServerState::Terminated;
                ctx.event(TsxEvent::Timeout {
                    tsx: ctx.id,
                    timer: Timer::H,
                });
            }
            InviteServerState::Completed {
                response,
                retransmit_at: Some(at),
                interval,
                ..
            } if now >= *at => {
                *interval = ctx.timers.doubled(*interval, true);
                *at = now + *interval;
                ctx.transmit(self.source, Message::Response((**response).clone()));
            }
            InviteServerState::Confirmed { terminate_at }
            | InviteServerState::Accepted { terminate_at }
                if now >= *terminate_at =>
            {
                self.state = InviteServerState::Terminated;
            }
            _ => {}
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            InviteServerState::Proceeding { .. } | InviteServerState::Terminated => None,
            InviteServerState::Completed {
                retransmit_at,
                ack_timeout_at,
                ..
            } => Some(retransmit_at.map_or(*ack_timeout_at, |at| at.min(*ack_timeout_at))),
            InviteServerState::Confirmed { terminate_at }
            | InviteServerState::Accepted { terminate_at } => Some(*terminate_at),
        }
    }
}
