//! The non-INVITE server transaction (RFC 3261 §17.2.2).
//!
//! ```text
//!                         request received: NewRequest (or CancelRequest) to TU
//!                                   |
//!                                   v
//!     request retrans-     +-----------------+  transport error: TransportError to TU
//!     mitted: absorbed +-->|     Trying      |------------------------------------------+
//!                      +---+-----------------+                                          |
//!                            |            |                                             |
//!                 TU 1xx: sent            | TU 200-699: sent                            |
//!                            v            |                                             |
//!     request retrans- +-----------------+|  transport error: TransportError to TU      |
//!     mitted: 1xx   +->|   Proceeding    |--------------------------------------------->|
//!     resent;       +--+-----------------+|                                             |
//!     TU 1xx: sent           |            |                                             |
//!                TU 200-699: sent         |                                             |
//!                            v            v                                             |
//!     request retrans- +-----------------+   transport error: TransportError to TU      |
//!     mitted: final +->|    Completed    |--------------------------------------------->|
//!     resent        +--+-----------------+                                              |
//!                            | Timer J (0 when reliable)                                |
//!                            v                                                          |
//!                      +-----------------+                                              |
//!                      |   Terminated    |<---------------------------------------------+
//!                      +-----------------+
//! ```

use std::time::Instant;

use crate::sip::message::{Message, Response};
use crate::sip::peer::Peer;

use super::Ctx;
use super::error::Misuse;

/// A non-INVITE server transaction.
#[derive(Debug)]
pub(super) struct NonInviteServer {
    /// Where the request came from; responses go back there.
    source: Peer,
    state: NonInviteServerState,
}

/// The states of RFC 3261 Figure 8.
#[derive(Debug)]
pub(super) enum NonInviteServerState {
    Trying,
    Proceeding {
        /// The last provisional response, resent for each retransmission of the request.
        provisional: Box<Response>,
    },
    Completed {
        /// The final response, resent for each retransmission of the request.
        response: Box<Response>,
        /// Timer J.
        terminate_at: Instant,
    },
    Terminated,
}

impl NonInviteServer {
    pub(super) fn start(source: Peer) -> NonInviteServer {
        NonInviteServer {
            source,
            state: NonInviteServerState::Trying,
        }
    }

    pub(super) fn state(&self) -> &NonInviteServerState {
        &self.state
    }

    pub(super) fn is_terminated(&self) -> bool {
        matches!(self.state, NonInviteServerState::Terminated)
    }

    pub(super) fn terminate(&mut self) {
        self.state = NonInviteServerState::Terminated;
    }

    /// A retransmission of the request.
    pub(super) fn on_request(&mut self, ctx: &mut Ctx<'_>) {
        match &self.state {
            NonInviteServerState::Proceeding {
                provisional: response,
            }
            | NonInviteServerState::Completed { response, .. } => {
                ctx.transmit(self.source, Message::Response((**response).clone()));
            }
            NonInviteServerState::Trying | NonInviteServerState::Terminated => {
                tracing::debug!(tsx = %ctx.id, "non-INVITE server transaction absorbs a retransmission");
            }
        }
    }

    /// A response from the TU.
    pub(super) fn respond(&mut self, ctx: &mut Ctx<'_>, response: Response) -> Result<(), Misuse> {
        let status = response.status;
        if matches!(
            self.state,
            NonInviteServerState::Completed { .. } | NonInviteServerState::Terminated
        ) {
            return Err(Misuse::AfterFinalResponse {
                tsx: ctx.id,
                status,
            });
        }
        ctx.transmit(self.source, Message::Response(response.clone()));
        if status < 200 {
            self.state = NonInviteServerState::Proceeding {
                provisional: Box::new(response),
            };
            return Ok(());
        }
        let wait = ctx.timers.j(self.source.transport.is_reliable());
        self.state = if wait.is_zero() {
            NonInviteServerState::Terminated
        } else {
            // Kept up to 32 s (Timer J) only to be resent: as small as it can be.
            let mut response = response;
            response.headers.shrink();
            response.reason.shrink_to_fit();
            NonInviteServerState::Completed {
                response: Box::new(response),
                terminate_at: ctx.now + wait,
            }
        };
        Ok(())
    }

    pub(super) fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        if let NonInviteServerState::Completed { terminate_at, .. } = self.state
            && ctx.now >= terminate_at
        {
            self.state = NonInviteServerState::Terminated;
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        match &self.state {
            NonInviteServerState::Completed { terminate_at, .. } => Some(*terminate_at),
            _ => None,
        }
    }
}
