//! Errors of the transaction layer, split by who is at fault.

use super::TsxId;

/// Why the transaction layer refused an input or a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsxError {
    /// A message from the network lacks what transaction matching needs. The driver drops
    /// it (a request without a usable Via can not be answered).
    #[error("malformed message: {reason}")]
    Malformed { reason: &'static str },
    /// The transaction limit is reached; no new client transaction is created.
    #[error("transaction limit of {limit} reached")]
    Capacity { limit: usize },
    /// The TU called the layer in a way the state machines do not allow: our bug.
    #[error("API misuse: {0}")]
    ApiMisuse(Misuse),
}

/// The ways a TU can misuse the transaction layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    #[error("{tsx} does not exist (never created, or already terminated)")]
    UnknownTransaction { tsx: TsxId },
    #[error("{tsx} is a client transaction; only server transactions take responses")]
    NotAServerTransaction { tsx: TsxId },
    #[error("{tsx} already sent a final response; status {status} can not follow it")]
    AfterFinalResponse { tsx: TsxId, status: u16 },
    #[error("status {status} is not between 100 and 699")]
    InvalidStatus { status: u16 },
    #[error("the request has no Via header; the sent-by must be in place before sending")]
    NoVia,
    #[error("the top Via branch {branch:?} lacks the z9hG4bK magic cookie")]
    BranchWithoutCookie { branch: String },
    #[error("a client transaction with branch {branch:?} and method {method} already exists")]
    DuplicateTransaction { branch: String, method: String },
    #[error("the request has no CSeq header")]
    NoCSeq,
    #[error("ACK has no client transaction; send it with send_ack")]
    AckHasNoTransaction,
    #[error("send_ack takes an ACK, not a {method}")]
    NotAnAck { method: String },
}

impl From<Misuse> for TsxError {
    fn from(misuse: Misuse) -> Self {
        TsxError::ApiMisuse(misuse)
    }
}
