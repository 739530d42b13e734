//! The non-INVITE client transaction (RFC 3261 §17.1.2).
//!
//! ```text
//!                      send_request: request sent, Timer E (unreliable only), Timer F
//!                                   |
//!     Timer E: request resent,      v
//!     E doubles up to T2   +-----------------+   Timer F / transport error:
//!                    +---->|     Trying      |------ Timeout / TransportError to TU -----+
//!                    +-----+-----------------+                                           |
//!                            |            |                                              |
//!                  1xx: to TU|            | 200-699: to TU                               |
//!                            v            |                                              |
//!     Timer E: request +-----------------+|    Timer F / transport error:                |
//!     resent, E = T2 ->|   Proceeding    |------ Timeout / TransportError to TU -------->|
//!     1xx: to TU    +--+-----------------+|                                              |
//!                            |            |                                              |
//!                200-699: to TU           |                                              |
//!                            v            v                                              |
//!                       +-----------------+                                              |
//!     responses absorbed|    Completed    |                                              |
//!                       +-----------------+                                              |
//!                            | Timer K (0 when reliable)                                 |
//!                            v                                                           |
//!                       +-----------------+                                              |
//!                       |   Terminated    |<---------------------------------------------+
//!                       +-----------------+
//! ```

use std::time::{Duration, Instant};

use crate::sip::message::{Message, Request, Response};
use crate::sip::peer::Peer;

use super::timers::Timer;
use super::{Ctx, TsxEvent};

/// A non-INVITE client transaction.
#[derive(Debug)]
pub(super) struct NonInviteClient {
    request: Request,
    destination: Peer,
    state: NonInviteClientState,
}

/// The states of RFC 3261 Figure 6.
#[derive(Debug)]
pub(super) enum NonInviteClientState {
    Trying {
        /// Timer E; `None` on reliable transports.
        retransmit_at: Option<Instant>,
        interval: Duration,
        /// Timer F.
        timeout_at: Instant,
    },
    Proceeding {
        /// Timer E, now firing every T2; `None` on reliable transports.
        retransmit_at: Option<Instant>,
        /// Timer F.
        timeout_at: Instant,
    },
    Completed {
        /// Timer K.
        terminate_at: Instant,
    },
    Terminated,
}

impl NonInviteClient {
    /// Sends the request and enters Trying.
    pub(super) fn start(ctx: &mut Ctx<'_>, request: Request, destination: Peer) -> NonInviteClient {
        ctx.transmit(destination, Message::Request(request.clone()));
        let reliable = destination.transport.is_reliable();
        let interval = ctx.timers.e();
        NonInviteClient {
            request,
            destination,
            state: NonInviteClientState::Trying {
                retransmit_at: (!reliable).then(|| ctx.now + interval),
                interval,
                timeout_at: ctx.now + ctx.timers.f(),
            },
        }
    }

    pub(super) fn state(&self) -> &NonInviteClientState {
        &self.state
    }

    pub(super) fn is_terminated(&self) -> bool {
        matches!(self.state, NonInviteClientState::Terminated)
    }

    /// Whether the TU has been given a final response.
    pub(super) fn has_final(&self) -> bool {
        matches!(self.state, NonInviteClientState::Completed { .. })
    }

    pub(super) fn terminate(&mut self) {
        self.state = NonInviteClientState::Terminated;
    }

    pub(super) fn on_response(&mut self, ctx: &mut Ctx<'_>, response: Response) {
        let (retransmit_at, timeout_at) = match &self.state {
            NonInviteClientState::Trying {
                retransmit_at,
                timeout_at,
                ..
            }
            | NonInviteClientState::Proceeding {
                retransmit_at,
                timeout_at,
            } => (*retransmit_at, *timeout_at),
            NonInviteClientState::Completed { .. } | NonInviteClientState::Terminated => {
                tracing::debug!(tsx = %ctx.id, status = response.status, "non-INVITE client transaction absorbs a response");
                return;
            }
        };
        if response.status < 200 {
            // Timer E keeps running; from now on it fires every T2.
            self.state = NonInviteClientState::Proceeding {
                retransmit_at,
                timeout_at,
            };
        } else {
            let wait = ctx.timers.k(self.destination.transport.is_reliable());
            self.state = if wait.is_zero() {
                NonInviteClientState::Terminated
            } else {
                NonInviteClientState::Completed {
                    terminate_at: ctx.now + wait,
                }
            };
        }
        ctx.event(TsxEvent::Response {
            tsx: ctx.id,
            response,
        });
    }

    pub(super) fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        match &mut self.state {
            NonInviteClientState::Trying { timeout_at, .. }
            | NonInviteClientState::Proceeding { timeout_at, .. }
                if now >= *timeout_at =>
            {
                self.state = NonInviteClientState::Terminated;
                ctx.event(TsxEvent::Timeout {
                    tsx: ctx.id,
                    timer: Timer::F,
                });
            }
            NonInviteClientState::Trying {
                retransmit_at: Some(at),
                interval,
                ..
            } if now >= *at => {
                *interval = ctx.timers.doubled(*interval, true);
                *at = now + *interval;
                ctx.transmit(self.destination, Message::Request(self.request.clone()));
            }
            NonInviteClientState::Proceeding {
                retransmit_at: Some(at),
                ..
            } if now >= *at => {
                *at = now + ctx.timers.t2;
                ctx.transmit(self.destination, Message::Request(self.request.clone()));
            }
            NonInviteClientState::Completed { terminate_at } if now >= *terminate_at => {
                self.state = NonInviteClientState::Terminated;
            }
            _ => {}
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            NonInviteClientState::Trying {
                retransmit_at,
                timeout_at,
                ..
            }
            | NonInviteClientState::Proceeding {
                retransmit_at,
                timeout_at,
            } => Some(retransmit_at.map_or(*timeout_at, |at| at.min(*timeout_at))),
            NonInviteClientState::Completed { terminate_at } => Some(*terminate_at),
            NonInviteClientState::Terminated => None,
        }
    }
}
