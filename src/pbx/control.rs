//! Call control from outside the SIP service: what the API asks of calls in progress
//! (spec §4.3) and how the answer comes back.
//!
//! The API holds a [`ControlHandle`]; each [`ControlRequest`] travels on a bounded queue to
//! the SIP service's task, which owns the calls, acts on it between two SIP messages and
//! answers on a one-shot channel. A call is found by a *phone* (spec §4.1.4): the newest
//! call in which that number is a party — its leg is the one the request acts on.
//!
//! What this module does not do: the acting itself (`calls::control` does, inside the
//! service) or HTTP (the `api` module turns requests and errors into responses).

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// What the API can ask of the calls.
#[derive(Debug, Clone)]
pub enum ControlRequest {
    /// The UUID of the phone's leg in its newest call.
    PhoneUuid { phone: String },
    /// The registration of each extension and the leg it has in a call, if any, in order.
    Extensions { extensions: Vec<String> },
    /// Ends the phone's call (NORMAL_CLEARING); the other party gets BYE too.
    Hangup { phone: String },
    /// Puts the phone's leg on hold (a re-INVITE with `a=sendonly` to it); the other party
    /// hears music on hold.
    Hold { phone: String },
    /// Takes the phone's leg off hold.
    Unhold { phone: String },
    /// Answers the phone's unanswered incoming call from the platform (200 OK to it).
    Answer { phone: String },
    /// Gives the phone's unanswered incoming call early media (183 with SDP).
    Preanswer { phone: String },
    /// Plays mono audio at `rate` to the phone's leg (looping until `Break` or the end of
    /// the call when `looping`).
    Playback {
        phone: String,
        samples: std::sync::Arc<[i16]>,
        rate: u32,
        looping: bool,
    },
    /// Stops what is played to the phone's leg; it hears its party again.
    Break { phone: String },
    /// Starts recording the phone's call into `path`; a recording shorter than `min_length`
    /// is deleted when it ends.
    RecordStart {
        phone: String,
        path: std::path::PathBuf,
        min_length: Duration,
    },
    /// Stops the recording of the phone's call.
    RecordStop { phone: String },
    /// Sends DTMF digits to the phone's leg (RFC 4733, or in-band as the leg negotiated).
    SendDtmf { phone: String, digits: String },
    /// Places a call (spec §4.3 #11).
    Originate(Originate),
    /// Rings extension `joiner`; when it answers, it joins the answered call of `monitored`
    /// as `mode` says (spec §4.3 #17–19: eavesdrop, whisper, three-way).
    Join {
        monitored: String,
        joiner: String,
        mode: JoinMode,
    },
    /// `phone` picks up a ringing call (spec §4.3 #15): the newest ringing at an extension
    /// of its group, else the newest ringing anywhere.
    Intercept { phone: String },
    /// The parties of the phone's answered call hear music on hold, no longer each other.
    Park { phone: String },
    /// Joins two answered legs (spec §4.3 #12–13): the two of a parked call again, or legs
    /// of two calls (their former partners are hung up).
    Bridge { a: LegName, b: LegName },
    /// Every call in progress.
    Calls,
    /// The call in progress of which `uuid` names a leg, with its RTP counters.
    Call { uuid: String },
    /// Every live registration binding.
    Registrations,
}

/// What `originate` asks: ring extension `a_number`, showing it `a_shows` (and `display` as
/// the name); when it answers, ring extension `b_number` showing it `b_shows`, and bridge
/// the two. The call's UUID (its first leg's) is `uuid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Originate {
    pub uuid: String,
    pub display: String,
    pub a_number: String,
    pub b_number: String,
    pub a_shows: String,
    pub b_shows: String,
}

/// A leg as the API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegName {
    Uuid(String),
    /// The leg of the phone's newest call.
    Phone(String),
}

impl std::fmt::Display for LegName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LegName::Uuid(uuid) => write!(f, "leg {uuid}"),
            LegName::Phone(phone) => f.write_str(phone),
        }
    }
}

/// How a third party takes part in a call it joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinMode {
    /// Hears both parties; nobody hears it (eavesdrop).
    Listen,
    /// Hears both parties; only the party named hears it (whisper: coaching an agent).
    Whisper,
    /// Hears and is heard by both (three-way).
    Talk,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlReply {
    /// The UUID of the leg acted on.
    Uuid(String),
    /// For [`ControlRequest::Extensions`], in the order asked.
    Extensions(Vec<ExtensionView>),
    /// A recording was started into this file.
    Recording(std::path::PathBuf),
    /// For [`ControlRequest::Calls`], oldest first.
    Calls(Vec<CallView>),
    /// For [`ControlRequest::Call`], with the legs' RTP counters.
    Call(Box<CallView>),
    /// For [`ControlRequest::Registrations`].
    Registrations(Vec<crate::store::Registration>),
}

/// A call in progress as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CallView {
    /// The calling leg's UUID (the call's, in CDRs and events).
    pub uuid: String,
    /// The called leg's UUID; empty until a callee is tried.
    pub bleg_uuid: String,
    pub caller: String,
    /// The number dialled.
    pub destination: String,
    /// The party rung or talking (an extension, or the number sent to a gateway).
    pub callee: String,
    /// `routing` (running the dial plan), `ringing`, `answered` or `ending`.
    pub state: String,
    pub start: chrono::DateTime<chrono::Utc>,
    pub answered_at: Option<chrono::DateTime<chrono::Utc>>,
    pub legs: Vec<LegView>,
    /// Whether the call is being recorded.
    pub recording: bool,
}

/// One leg of a call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LegView {
    /// `caller` or `callee`.
    pub side: String,
    pub uuid: String,
    /// The codec agreed with this party (`PCMU/8000`), empty before the offer/answer.
    pub codec: String,
    /// Where its media comes from (`address:port`), empty when not yet known.
    pub remote_media: String,
    /// Whether this party is on hold (its phone put the call on hold, or the API held it);
    /// the other party hears music meanwhile.
    pub held: bool,
    /// Its RTP counters so far; in the view of one call only (`/api/v1/calls/{uuid}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtp: Option<RtpView>,
}

/// A leg's RTP counters since its media started (on this leg's endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RtpView {
    /// RTP packets received from the party.
    pub packets_received: u64,
    /// RTP packets sent to the party (its partner's audio, prompts, music on hold; nothing
    /// while the platform holds it).
    pub packets_sent: u64,
    pub octets_sent: u64,
    /// Frames concealed for packets lost or late.
    pub concealed: u64,
    /// Packets from an address other than the party's (dropped).
    pub rejected_source: u64,
}

/// What the service knows of an extension at run time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtensionView {
    /// At least one binding that has not expired.
    pub registered: bool,
    /// The contact of the newest binding.
    pub contact: String,
    /// The extension's leg in its newest call; empty when it is in none.
    pub uuid: String,
}

/// Why a request was not done. The messages name what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No call (or extension) matches.
    #[error("{0}")]
    NotFound(String),
    /// The call is not in a state where this can be done (not answered, already held, …).
    #[error("{0}")]
    Conflict(String),
    /// The request is understood but asks for something impossible (a file that does not
    /// exist, digits that are not DTMF).
    #[error("{0}")]
    Invalid(String),
    /// The SIP service is not running (stopping) or did not answer in time.
    #[error("the call engine is not available: {0}")]
    Unavailable(&'static str),
}

/// A request with the channel its answer goes back on.
pub(crate) type ControlMessage = (
    ControlRequest,
    oneshot::Sender<Result<ControlReply, ControlError>>,
);

/// The API's side of the queue: cheap to clone.
#[derive(Debug, Clone)]
pub struct ControlHandle {
    sender: mpsc::Sender<ControlMessage>,
}

/// How many requests may wait for the service before callers are told it is busy.
const QUEUE: usize = 256;

/// How long a request may wait for its answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

impl ControlHandle {
    /// A handle and the receiving end the SIP service reads.
    pub fn new() -> (ControlHandle, mpsc::Receiver<ControlMessage>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        (ControlHandle { sender }, receiver)
    }

    /// Sends `request` and waits for its answer.
    ///
    /// # Errors
    /// The request was not done ([`ControlError`]); `Unavailable` when the service is gone,
    /// its queue is full or it did not answer within 5 s.
    pub async fn request(&self, request: ControlRequest) -> Result<ControlReply, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .try_send((request, reply))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => ControlError::Unavailable("too busy"),
                mpsc::error::TrySendError::Closed(_) => ControlError::Unavailable("stopped"),
            })?;
        match tokio::time::timeout(ANSWER_WITHIN, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ControlError::Unavailable("stopped")),
            Err(_) => Err(ControlError::Unavailable("no answer in time")),
        }
    }
}

/// UUIDs given out by `get_uuid`, kept for the `originate` that uses them as `Job_uuid`.
#[derive(Debug, Default)]
pub struct UuidReservations {
    reserved: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// How long a reserved UUID waits for its originate.
const RESERVATION_LIFETIME: Duration = Duration::from_secs(600);

/// Reservations kept at most (the oldest expire first when it is reached).
const MAX_RESERVATIONS: usize = 100_000;

impl UuidReservations {
    /// A fresh UUID, reserved.
    pub fn reserve(&self) -> String {
        #[allow(clippy::disallowed_methods)] // a driver's clock: reservations expire
        let now = std::time::Instant::now();
        let uuid = super::calls::new_uuid();
        let mut reserved = self.reserved.lock().expect("uuid reservations");
        if reserved.len() >= MAX_RESERVATIONS {
            reserved.retain(|_, at| now.duration_since(*at) < RESERVATION_LIFETIME);
            if reserved.len() >= MAX_RESERVATIONS
                && let Some(oldest) = reserved
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(u, _)| u.clone())
            {
                reserved.remove(&oldest);
            }
        }
        reserved.insert(uuid.clone(), now);
        uuid
    }

    /// Takes `uuid` if it was reserved and not yet used or expired.
    pub fn take(&self, uuid: &str) -> bool {
        #[allow(clippy::disallowed_methods)] // a driver's clock: reservations expire
        let now = std::time::Instant::now();
        self.reserved
            .lock()
            .expect("uuid reservations")
            .remove(uuid)
            .is_some_and(|at| now.duration_since(at) < RESERVATION_LIFETIME)
    }
}
