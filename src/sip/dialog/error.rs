//! Errors of the dialog layer, split by who is at fault.

use crate::sip::message::Method;
use crate::sip::transaction::TsxId;

use super::DialogId;

/// Why the dialog layer refused an input or a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    /// A message from the network lacks what dialogs need (Call-ID, CSeq, Contact, a To
    /// tag on a 2xx). A request that would create a dialog deserves a 400; a response is
    /// dropped.
    #[error("malformed message: {reason}")]
    Malformed { reason: &'static str },
    /// The dialog limit is reached; no dialog was created. The TU answers 503 (UAS) or
    /// gives up the call (UAC).
    #[error("dialog limit of {limit} reached")]
    Capacity { limit: usize },
    /// The TU called the layer in a way the dialog rules do not allow: our bug.
    #[error("API misuse: {0}")]
    ApiMisuse(Misuse),
}

impl DialogError {
    /// The response status a request that failed this way deserves, when the TU answers it
    /// (5xx details are for the log, not for the peer).
    pub fn status(&self) -> u16 {
        match self {
            DialogError::Malformed { .. } => 400,
            DialogError::Capacity { .. } => 503,
            DialogError::ApiMisuse(_) => 500,
        }
    }
}

/// The ways a TU can misuse the dialog layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    #[error("{dialog} does not exist (never created, or already terminated)")]
    UnknownDialog { dialog: DialogId },
    #[error("{tsx} is not a transaction of the dialog layer (or already answered)")]
    UnknownTransaction { tsx: TsxId },
    #[error("{tsx} is already known to the dialog layer")]
    DuplicateTransaction { tsx: TsxId },
    #[error("the request has no To tag: it belongs to no dialog")]
    NotInDialog,
    #[error("the request names no existing dialog")]
    NoSuchDialog,
    #[error("the INVITE has a To tag: it is a re-INVITE, for `handle_request`")]
    AlreadyInDialog,
    #[error(
        "{method} is not for this call (ACK: `handle_ack`/`handle_ack_sent`; CANCEL: the transaction layer)"
    )]
    NotForDialogs { method: Method },
    #[error("expected an ACK, not a {method}")]
    NotAnAck { method: Method },
    #[error("only an initial INVITE starts a dialog, not a {method}")]
    NotAnInitialInvite { method: String },
    #[error("the request lacks {header}")]
    MissingHeader { header: &'static str },
    #[error(
        "{method} is not sent through this call (ACK: `ack`, PRACK: `prack`, CANCEL: the transaction layer)"
    )]
    DedicatedBuilder { method: Method },
    #[error("{method} can not be sent in the early {dialog}")]
    NotConfirmed { dialog: DialogId, method: Method },
    #[error("an INVITE transaction is in progress in {dialog} (RFC 3261 §14.1)")]
    InviteInProgress { dialog: DialogId },
    #[error("{dialog} has no 2xx waiting for an ACK")]
    NothingToAck { dialog: DialogId },
    #[error("{dialog} has no reliable provisional response waiting for a PRACK")]
    NothingToPrack { dialog: DialogId },
    #[error("the local CSeq of {dialog} is exhausted")]
    CSeqExhausted { dialog: DialogId },
    #[error("status {status} is not between 100 and 699")]
    InvalidStatus { status: u16 },
    #[error("a response that creates a dialog needs a Contact")]
    MissingContact,
    #[error("a reliable provisional response needs a peer that supports 100rel (RFC 3262 §3)")]
    PeerLacks100rel,
    #[error("a 100 Trying can not be sent reliably (RFC 3262 §3)")]
    Reliable100,
    #[error(
        "a 2xx can not follow an unacknowledged reliable provisional response with a body (RFC 3262 §3)"
    )]
    UnacknowledgedReliableBody,
}

impl From<Misuse> for DialogError {
    fn from(misuse: Misuse) -> Self {
        DialogError::ApiMisuse(misuse)
    }
}
