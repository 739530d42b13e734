//! Calls between extensions: the B2BUA half of the SIP service.
//!
//! An INVITE from an extension is authenticated (digest, 407), checked against the blacklist,
//! routed by the dialplan ([`super::dialplan`]) and its details run: `set`, `answer`,
//! `sleep`, `hangup` and `bridge` to an extension. A bridge sends an INVITE to every binding
//! of the extension at once (the first 2xx wins, the others are cancelled), relays 180 and
//! 183 (with early media) to the caller, and when one answers, answers the caller, ACKs the
//! callee and joins the two media endpoints — pass-through when both legs agreed on the same
//! codec, transcoded otherwise. BYE from either side ends the other; the caller's CANCEL
//! cancels the callee; `call_timeout` (60 s unless the route `set`s it) ends the ringing with
//! `NO_ANSWER`. Every call leaves one CDR, written durably ([`super::cdr`]) before the final
//! BYE is answered.
//!
//! In a call: re-INVITE and UPDATE with an offer (hold, unhold, new address or codec) are
//! answered per leg with music on hold to the other side; a re-INVITE without SDP gets our
//! offer and the ACK's answer; 100rel both ways (callee reliable provisionals PRACKed, the
//! caller's sent reliably when it supports them); DTMF in INFO played to the other leg;
//! blind and attended transfer by either party (REFER, REFER with Replaces), the transferor
//! kept informed by NOTIFY; an INVITE with Replaces (RFC 3891) takes the place of the party
//! of the dialog it names. An initial INVITE without SDP (late offer) gets our offer in the
//! 200 and answers in its ACK. Each leg runs a session timer (RFC 4028, negotiated by
//! [`super::session_timer`]): we refresh it by UPDATE or re-INVITE, or end the call when the
//! party that should refresh does not.
//!
//! What this module does not do yet (each fails the detail with `SERVICE_NOT_IMPLEMENTED`
//! and a log line naming it, or refuses the request with a Warning, never pretending): the
//! other dialplan actions, gateways.
#![allow(clippy::disallowed_methods)] // part of the SIP service driver: reads clocks

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::agents::{AgentChange, CallState};
use super::causes::HangupCause;
use super::dialplan::{self, Execution, Next};
use super::session_timer::{
    LegTimer, Refresher, SessionExpires, UasDecision, negotiate_as_uac, negotiate_as_uas,
};
use super::sip_service::Service;
use crate::clock::now_utc;
use crate::events::{CallEvent, EventCode, LegDirection};
use crate::media::continuity::LatchPolicy;
use crate::media::io::{Endpoint, FeedSpec};
use crate::media::shard::{Codec, LegConfig};
use crate::media::tones::ToneSpec;
use crate::sip::dialog::{
    DialogError, DialogEvent, DialogId, Misuse, Outgoing, TerminationReason, has_option_tag,
};
use crate::sip::message::{Header, Method, NameAddr, Request, Response, Uri, reason_phrase};
use crate::sip::peer::{Peer, TransportKind};
use crate::sip::sdp::negotiate::{
    AgreedAudio, LocalMedia, OriginState, agreed_from_answer, answer, offer,
};
use crate::sip::sdp::{Direction, SessionDescription};
use crate::sip::transaction::TsxId;
use crate::store::{Action, CallDirection, Cdr};

mod control;
mod originate;
mod rearrange;

/// The methods a call leg accepts (the Allow of our INVITEs and answers).
pub(crate) const ALLOWED_IN_CALLS: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO, REFER, NOTIFY";

/// How long a bridge rings when the route does not `set call_timeout`.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Names a call in the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub u64);

/// One callee fork of a bridge.
#[derive(Clone)]
struct Fork {
    tsx: TsxId,
    invite: Request,
    destination: Peer,
    dialog: Option<DialogId>,
    /// Its final status, once it has one (487 once we cancel it).
    status: Option<u16>,
    /// Cancelled by us, and no final response from the phone yet.
    awaiting_final: bool,
}

/// One side of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    Callee,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }
}

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The platform rings the first party of a call it places (API originate, eavesdrop).
    Calling,
    /// Running details.
    Routing,
    /// A bridge is ringing.
    Ringing,
    /// The caller and callee talk.
    Bridged,
    /// Over: waiting only for the last messages.
    Ended,
}

/// Which sides of a call hold it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Holds {
    caller: bool,
    callee: bool,
}

impl Holds {
    fn by(self, side: Side) -> bool {
        match side {
            Side::Caller => self.caller,
            Side::Callee => self.callee,
        }
    }

    /// Sets whether `side` holds; returns whether it did.
    fn set(&mut self, side: Side, holds: bool) -> bool {
        let flag = match side {
            Side::Caller => &mut self.caller,
            Side::Callee => &mut self.callee,
        };
        std::mem::replace(flag, holds)
    }

    fn any(self) -> bool {
        self.caller || self.callee
    }
}

pub(crate) struct Call {
    uuid: String,
    bleg_uuid: String,
    caller: String,
    destination: String,
    /// The caller's INVITE and its server transaction.
    invite: Request,
    invite_tsx: TsxId,
    source: Peer,
    a_dialog: Option<DialogId>,
    a_offer: SessionDescription,
    a_endpoint: Option<Endpoint>,
    a_origin: OriginState,
    a_agreed: Option<AgreedAudio>,
    /// Provisional or final answer already sent to the caller with SDP.
    a_answered_sdp: bool,
    /// The caller's answer went in a reliable provisional response (the 200 carries none).
    a_answered_reliably: bool,
    /// A 180 already went to the caller (repeats are not relayed).
    a_ringing_sent: bool,
    /// The caller supports 100rel: our provisional responses go reliably (RFC 3262).
    a_reliable: bool,
    /// The caller's INVITE had no SDP: our 200 carries the offer, its ACK the answer.
    a_late_offer: bool,
    /// The caller's 200, held back until the PRACK of our reliable 183 with the answer.
    a_pending_final: Option<Response>,
    /// Our offer in a 2xx to an offerless re-INVITE, waiting for the answer in the ACK.
    pending_offer: Option<(Side, SessionDescription)>,
    answered: bool,
    execution: Execution,
    stage: Stage,
    /// The bridge in progress.
    forks: Vec<Fork>,
    b_dialog: Option<DialogId>,
    b_endpoint: Option<Endpoint>,
    b_offer: Option<SessionDescription>,
    b_agreed: Option<AgreedAudio>,
    /// Our `o=` line towards the callee (its version goes up with each new description).
    b_origin: OriginState,
    /// Where the answered callee is (its fork's address, or the leg a transfer brought in).
    b_destination: Option<Peer>,
    /// A blind transfer ringing its target.
    transfer: Option<Transfer>,
    /// Dialogs of legs that left the call (a transferor): their BYE is just answered.
    detached: Vec<DialogId>,
    /// The caller's endpoint whose prompt must end before the next detail.
    waiting_playback: Option<crate::media::io::EndpointId>,
    /// The `record` action's file.
    recording: Option<super::actions::ActiveRecording>,
    recording_path: String,
    /// The sides that hold the call: each that sent sendonly/inactive, or that we hold on
    /// the API's request. Both may hold at once.
    holding: Holds,
    /// The side we hold (API `hold`): our offers to it say sendonly until `unhold`.
    held_by_us: Option<Side>,
    /// The side an API playback plays to (its party is heard again when it ends).
    api_playback: Option<Side>,
    b_number: String,
    call_timeout: Duration,
    /// When the ringing or a `sleep` ends.
    deadline: Option<Instant>,
    start: DateTime<Utc>,
    answer_stamp: Option<DateTime<Utc>>,
    cause: Option<HangupCause>,
    sip_code: Option<u16>,
    /// The events already published per leg (bit `code`): ringing, answer and the like are
    /// published once per leg.
    a_published: u32,
    b_published: u32,
    /// What the caller's INVITE asked of session timers: its 200 answers with it.
    a_timer_answer: Option<UasDecision>,
    /// Each leg's session timer (RFC 4028) and how it is refreshed.
    a_session: LegSession,
    b_session: LegSession,
    /// Our offer in a refreshing re-INVITE, waiting for the answer in its 2xx.
    refresh_offer: Option<(Side, SessionDescription)>,
    /// Set when the platform placed the call (API originate, eavesdrop, whisper,
    /// three-way): it rang the caller side itself; nothing answers a caller's INVITE.
    origin: Option<Box<originate::Origin>>,
    /// The number the callee is shown, when not the caller's own (originate's
    /// `A_effective_caller_id_num`).
    presented: Option<String>,
    /// Calls whose party listens to or talks in this one (eavesdrop, whisper, three-way).
    joined: Vec<originate::Joined>,
    /// Parked by the API: both parties hear music on hold until `bridge` joins them again.
    parked: bool,
}

/// The session timer of one leg and how to refresh it.
#[derive(Debug, Clone, Copy, Default)]
struct LegSession {
    timer: Option<LegTimer>,
    /// The party allows UPDATE: refreshes go as UPDATE without SDP, else as re-INVITE.
    allows_update: bool,
}

/// Whether the Allow of `headers` lists UPDATE.
fn allows_update(headers: &crate::sip::message::Headers) -> bool {
    headers
        .values("Allow")
        .any(|method| method.eq_ignore_ascii_case("UPDATE"))
}

impl Call {
    /// A call of `caller` to `destination`, in its first stage (routing), nothing sent or
    /// agreed yet. `first` is the INVITE that began it, its transaction and where it came
    /// from (or went, for a call the platform places).
    fn new(
        uuid: String,
        caller: String,
        destination: String,
        first: (Request, TsxId, Peer),
        a_offer: SessionDescription,
        execution: Execution,
        start: DateTime<Utc>,
    ) -> Call {
        let (invite, invite_tsx, source) = first;
        Call {
            uuid,
            bleg_uuid: String::new(),
            caller,
            destination,
            invite,
            invite_tsx,
            source,
            a_dialog: None,
            a_offer,
            a_endpoint: None,
            a_origin: OriginState::new(rand::random::<u32>().into()),
            a_agreed: None,
            a_answered_sdp: false,
            a_answered_reliably: false,
            a_ringing_sent: false,
            a_reliable: false,
            a_late_offer: false,
            a_pending_final: None,
            pending_offer: None,
            answered: false,
            execution,
            stage: Stage::Routing,
            forks: Vec::new(),
            b_dialog: None,
            b_endpoint: None,
            b_offer: None,
            b_agreed: None,
            b_origin: OriginState::new(rand::random::<u32>().into()),
            holding: Holds::default(),
            held_by_us: None,
            api_playback: None,
            b_destination: None,
            transfer: None,
            detached: Vec::new(),
            waiting_playback: None,
            recording: None,
            recording_path: String::new(),
            b_number: String::new(),
            call_timeout: DEFAULT_CALL_TIMEOUT,
            deadline: None,
            start,
            answer_stamp: None,
            cause: None,
            sip_code: None,
            a_published: 0,
            b_published: 0,
            a_timer_answer: None,
            a_session: LegSession::default(),
            b_session: LegSession::default(),
            refresh_offer: None,
            origin: None,
            presented: None,
            joined: Vec::new(),
            parked: false,
        }
    }

    /// Which side `dialog` is (the caller's dialog, else a callee's).
    fn side_of(&self, dialog: DialogId) -> Side {
        if self.a_dialog == Some(dialog) {
            Side::Caller
        } else {
            Side::Callee
        }
    }

    fn endpoint(&self, side: Side) -> Option<Endpoint> {
        match side {
            Side::Caller => self.a_endpoint,
            Side::Callee => self.b_endpoint,
        }
    }

    /// The fork (of the bridge or of a transfer) whose dialog is `dialog`.
    fn fork_by_dialog(&self, dialog: DialogId) -> Option<&Fork> {
        let transfer_forks = self.transfer.iter().flat_map(|t| t.forks.iter());
        let origin_forks = self.origin.iter().flat_map(|o| o.forks().iter());
        self.forks
            .iter()
            .chain(transfer_forks)
            .chain(origin_forks)
            .find(|f| f.dialog == Some(dialog))
    }

    fn session_mut(&mut self, side: Side) -> &mut LegSession {
        match side {
            Side::Caller => &mut self.a_session,
            Side::Callee => &mut self.b_session,
        }
    }

    /// The earliest of the call's deadline and its legs' session timers.
    fn due_at(&self) -> Option<Instant> {
        [
            self.deadline,
            self.a_session.timer.map(|t| t.due),
            self.b_session.timer.map(|t| t.due),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The dialog of `side`'s leg and where its party is.
    fn leg_dialog(&self, side: Side) -> Option<(DialogId, Peer)> {
        match side {
            Side::Caller => Some((self.a_dialog?, self.source)),
            Side::Callee => Some((self.b_dialog?, self.b_destination?)),
        }
    }

    fn agreed(&self, side: Side) -> Option<&AgreedAudio> {
        match side {
            Side::Caller => self.a_agreed.as_ref(),
            Side::Callee => self.b_agreed.as_ref(),
        }
    }
}

/// The calls of the service and how messages find them.
#[derive(Default)]
pub(crate) struct Calls {
    next_key: u64,
    calls: HashMap<CallKey, Call>,
    by_invite: HashMap<TsxId, CallKey>,
    by_fork: HashMap<TsxId, CallKey>,
    by_dialog: HashMap<DialogId, CallKey>,
    /// Every call deadline set, earliest first (stale ones are skipped when due).
    deadlines: BinaryHeap<Reverse<(Instant, CallKey)>>,
    /// Callee INVITEs of ended calls still without a final response (cancelled): where they
    /// went and when the call ended. A 2xx that crosses the CANCEL is ACKed and BYEd.
    orphan_forks: HashMap<TsxId, Peer>,
    /// The orphaned forks in the order their calls ended, to forget them after
    /// [`ORPHAN_FORK_LIFETIME`] without scanning them all at each call's end.
    orphan_order: std::collections::VecDeque<(Instant, TsxId)>,
}

/// How long an orphaned fork may still answer (64 × T1, RFC 3261 Timer B).
const ORPHAN_FORK_LIFETIME: Duration = Duration::from_secs(32);

impl Calls {
    /// The earliest deadline set (one no longer in force only wakes the service early).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    pub(crate) fn owns_invite(&self, tsx: TsxId) -> Option<CallKey> {
        self.by_invite.get(&tsx).copied()
    }

    pub(crate) fn owns_fork(&self, tsx: TsxId) -> Option<CallKey> {
        self.by_fork.get(&tsx).copied()
    }
}

/// A random UUID (version 4 layout) for calls and legs.
pub(crate) fn new_uuid() -> String {
    let v: u128 = rand::random();
    let hex = format!("{v:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn uri_user(uri: &Uri) -> String {
    match uri {
        Uri::Sip(sip) => sip.user.clone().unwrap_or_default(),
        Uri::Tel(tel) => tel.number.clone(),
        _ => String::new(),
    }
}

fn leg_config(agreed: &AgreedAudio, ssrc: u32) -> LegConfig {
    LegConfig {
        codec: Codec {
            name: agreed.codec.encoding.clone(),
            payload_type: agreed.codec.payload_type,
            clock_rate: agreed.codec.clock_rate,
            fmtp: agreed.fmtp.clone(),
        },
        telephone_event: agreed.telephone_event,
        remote: agreed.remote,
        latch: LatchPolicy::Continue,
        send: matches!(agreed.direction, Direction::SendRecv | Direction::SendOnly),
        receive: matches!(agreed.direction, Direction::SendRecv | Direction::RecvOnly),
        ssrc,
        first_sequence: rand::random(),
        rtcp_mux: agreed.rtcp_mux,
        detect_inband_dtmf: false,
    }
}

impl Service {
    /// The live registrations of extension `number` (the phones to ring).
    fn bindings_of(&self, number: &str) -> Vec<crate::pbx::registrar::Binding> {
        self.registrar
            .lookup(number, now_utc())
            .into_iter()
            .cloned()
            .collect()
    }

    fn local_media(&self, endpoint: &Endpoint) -> LocalMedia {
        LocalMedia {
            address: self.media_ip,
            port: endpoint.port,
            codecs: super::codecs::local_codecs(),
            telephone_event: true,
            ptime: Some(20),
            rtcp_mux: false,
            direction: Direction::SendRecv,
        }
    }

    /// A new INVITE (no To tag) from `source`, its 100 already sent by the transaction layer.
    pub(crate) fn handle_new_invite(&mut self, tsx: TsxId, request: Request, source: Peer) {
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Digest authentication of the caller (RFC 3261 §22.3: 407 from a B2BUA/proxy).
        let credentials = request
            .headers
            .all("Proxy-Authorization")
            .filter_map(|h| crate::sip::auth::Credentials::parse(h.value()).ok())
            .find(|c| c.realm() == self.digest.realm());
        let Some(credentials) = credentials else {
            let mut r = Response::for_request(&request, 407, reason_phrase(407));
            for c in self.digest.challenges(unix_now, false) {
                r.headers
                    .push(Header::new("Proxy-Authenticate", c.to_string()));
            }
            self.respond(tsx, r);
            return;
        };
        let snapshot = self.live.current();
        let password = snapshot
            .extensions
            .get(credentials.username())
            .map(|e| e.password.expose().to_owned());
        let verified = match self.digest.verify(
            &credentials,
            "INVITE",
            &request.uri.to_string(),
            password.as_deref(),
            unix_now,
        ) {
            Ok(verified) => verified,
            Err(failure) => {
                tracing::debug!(user = credentials.username(), %failure, "INVITE authentication failed");
                let stale = matches!(
                    failure.action(),
                    crate::sip::auth::FailureAction::Challenge { stale: true }
                );
                let mut r = Response::for_request(&request, 407, reason_phrase(407));
                for c in self.digest.challenges(unix_now, stale) {
                    r.headers
                        .push(Header::new("Proxy-Authenticate", c.to_string()));
                }
                self.respond(tsx, r);
                return;
            }
        };
        let caller = verified.username.clone();
        let destination = uri_user(&request.uri);
        // Session timers (RFC 4028 §9): too short an interval is refused with our Min-SE.
        let timer_answer = negotiate_as_uas(&request.headers, &self.timers);
        if let UasDecision::TooSmall { min_se } = timer_answer {
            let mut r = Response::for_request(&request, 422, reason_phrase(422));
            r.headers.push(Header::new("Min-SE", min_se.to_string()));
            self.respond(tsx, r);
            return;
        }
        let a_allows_update = allows_update(&request.headers);
        // RFC 3891: an INVITE that replaces a dialog of ours joins that call.
        if let Some(value) = request.headers.first("Replaces") {
            match Replaces::parse_header(value) {
                Some(replaces) => {
                    self.handle_replacing_invite(tsx, request, source, caller, replaces);
                }
                None => {
                    let r = refusal(&request, 400, "the Replaces header does not parse");
                    self.respond(tsx, r);
                }
            }
            return;
        }
        if let Err(error) = self.dialogs.handle_incoming_invite(tsx, &request) {
            tracing::debug!(%error, "INVITE refused by the dialog layer");
            let status = if matches!(error, crate::sip::dialog::DialogError::Capacity { .. }) {
                503
            } else {
                400
            };
            self.respond(
                tsx,
                Response::for_request(&request, status, reason_phrase(status)),
            );
            return;
        }
        // No body: a late offer (RFC 3261 §13.2.1): we offer in the 200, the caller answers
        // in the ACK.
        let a_late_offer = request.body.is_empty();
        let offer = if a_late_offer {
            SessionDescription::parse(b"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n").ok()
        } else {
            SessionDescription::parse(&request.body).ok()
        };
        let Some(a_offer) = offer else {
            let r = refusal(&request, 488, "the SDP offer does not parse");
            self.respond_dialog(tsx, r);
            return;
        };
        let start = now_utc();
        self.calls.next_key += 1;
        let key = CallKey(self.calls.next_key);
        let now = Instant::now();
        let local_time = chrono::Local::now().time();
        let route = dialplan::select_route(&snapshot, &destination, local_time);
        let execution = match route {
            Some((route, captures)) => Execution::new(route, &captures),
            None => Execution::new(&empty_route(), &[]),
        };
        let a_reliable = has_option_tag(&request.headers, "Supported", "100rel")
            || has_option_tag(&request.headers, "Require", "100rel");
        let mut call = Call::new(
            new_uuid(),
            caller.clone(),
            destination.clone(),
            (request, tsx, source),
            a_offer,
            execution,
            start,
        );
        call.a_reliable = a_reliable;
        call.a_late_offer = a_late_offer;
        call.a_timer_answer = Some(timer_answer);
        call.a_session.allows_update = a_allows_update;
        tracing::info!(uuid = %call.uuid, %caller, %destination, "call in");
        self.calls.calls.insert(key, call);
        self.calls.by_invite.insert(tsx, key);
        self.publish(key, Side::Caller, EventCode::CallIn, "");
        let blocked =
            dialplan::blacklisted(&snapshot, &caller, dialplan::Direction::Inbound, start).or_else(
                || {
                    dialplan::blacklisted(
                        &snapshot,
                        &destination,
                        dialplan::Direction::Outbound,
                        start,
                    )
                },
            );
        if let Some(entry) = blocked {
            tracing::info!(number = %entry.number, "call refused by the blacklist");
            self.finish(key, HangupCause::CallRejected, now);
            return;
        }
        self.run_details(key, now);
    }

    /// Runs details until one waits (a bridge ringing, a sleep) or the call ends.
    fn run_details(&mut self, key: CallKey, now: Instant) {
        loop {
            let Some(call) = self.calls.calls.get_mut(&key) else {
                return;
            };
            if call.stage == Stage::Ended {
                return;
            }
            let step = match call.execution.next_step() {
                Next::Run(step) => step,
                Next::Finish(cause) => {
                    self.finish(key, cause, now);
                    return;
                }
            };
            if !step.is_supported() {
                tracing::warn!(
                    uuid = %call.uuid, action = %step.action, data = %step.data,
                    "dialplan action not available in this build; the detail fails"
                );
                call.execution.failed(HangupCause::ServiceNotImplemented);
                continue;
            }
            match step.action {
                Action::Set => {
                    let (name, value) = step.data.split_once('=').unwrap_or((&step.data, ""));
                    match name.trim() {
                        "call_timeout" => {
                            if let Ok(seconds) = value.trim().parse::<u64>() {
                                call.call_timeout = Duration::from_secs(seconds.clamp(1, 3600));
                            }
                        }
                        "continue_on_fail" => call
                            .execution
                            .set_continue_on_fail(value.trim().eq_ignore_ascii_case("true")),
                        _ => {}
                    }
                    call.execution.succeeded();
                }
                Action::Answer => {
                    if self.answer_caller(key, None).is_ok() {
                        if let Some(call) = self.calls.calls.get_mut(&key) {
                            call.execution.mark_answered();
                            call.execution.succeeded();
                        }
                    } else if let Some(call) = self.calls.calls.get_mut(&key) {
                        call.execution.failed(HangupCause::IncompatibleDestination);
                    }
                }
                Action::Sleep => {
                    let millis = step.data.trim().parse::<u64>().unwrap_or(1000).min(60_000);
                    let at = now + Duration::from_millis(millis);
                    call.deadline = Some(at);
                    self.calls.deadlines.push(Reverse((at, key)));
                    call.execution.succeeded();
                    return;
                }
                Action::Hangup => {
                    call.execution.end(HangupCause::NormalClearing);
                }
                Action::Bridge => {
                    if self.start_bridge(key, &step.data, now) {
                        return;
                    }
                }
                Action::Dtmf
                | Action::Playring
                | Action::Record
                | Action::Jobnum
                | Action::AgentLogin
                | Action::AgentLogout
                | Action::AgentIdle
                | Action::AgentBusy
                | Action::AgentReady => {
                    let outcome =
                        self.run_media_action(key, step.action, &step.data, step.rule.ring_id, now);
                    let Some(call) = self.calls.calls.get_mut(&key) else {
                        return;
                    };
                    match outcome {
                        super::actions::Outcome::Done => call.execution.succeeded(),
                        super::actions::Outcome::Wait(until) => {
                            call.execution.succeeded();
                            call.deadline = Some(until);
                            self.calls.deadlines.push(Reverse((until, key)));
                            return;
                        }
                        super::actions::Outcome::Failed(cause) => {
                            call.waiting_playback = None;
                            call.execution.failed(cause);
                        }
                    }
                }
                _ => {
                    call.execution.failed(HangupCause::ServiceNotImplemented);
                }
            }
        }
    }

    /// Starts ringing extension `number`; false when nothing rings (the detail failed).
    fn start_bridge(&mut self, key: CallKey, number: &str, now: Instant) -> bool {
        let snapshot = self.live.current();
        let fail = |service: &mut Service, cause: HangupCause| {
            if let Some(call) = service.calls.calls.get_mut(&key) {
                call.execution.failed(cause);
                call.sip_code = Some(cause.sip_status());
            }
            false
        };
        if !snapshot.extensions.contains_key(number) {
            return fail(self, HangupCause::UnallocatedNumber);
        }
        let bindings = self.bindings_of(number);
        if bindings.is_empty() {
            return fail(self, HangupCause::UserNotRegistered);
        }
        // The callee's media endpoint and our offer: the caller's codecs first, so that a
        // callee that shares one is bridged without transcoding.
        let endpoint = match self.calls.calls.get(&key).and_then(|c| c.b_endpoint) {
            Some(endpoint) => endpoint,
            None => match self.media.open(key.0) {
                Ok(endpoint) => endpoint,
                Err(error) => {
                    tracing::error!(%error, "no RTP port for the callee");
                    return fail(self, HangupCause::SwitchCongestion);
                }
            },
        };
        let mut local = self.local_media(&endpoint);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return false;
        };
        call.b_endpoint = Some(endpoint);
        if let Some(audio) = call.a_offer.media.iter().find(|m| m.media == "audio") {
            let offered: Vec<String> = audio
                .payload_types()
                .filter_map(|pt| audio.rtpmap(pt))
                .map(|m| m.encoding.to_ascii_lowercase())
                .collect();
            local.codecs.sort_by_key(|c| {
                offered
                    .iter()
                    .position(|o| o.eq_ignore_ascii_case(c.encoding))
                    .unwrap_or(usize::MAX)
            });
            // Codecs relayed only make sense when the caller has them.
            local.codecs.retain(|c| {
                c.transcodable || offered.iter().any(|o| o.eq_ignore_ascii_case(c.encoding))
            });
        }
        let b_offer = offer(&local, &mut call.b_origin);
        call.b_offer = Some(b_offer.clone());
        call.b_number = number.to_owned();
        call.bleg_uuid = new_uuid();
        call.stage = Stage::Ringing;
        let at = now + call.call_timeout;
        call.deadline = Some(at);
        self.calls.deadlines.push(Reverse((at, key)));
        let caller = call
            .presented
            .clone()
            .unwrap_or_else(|| call.caller.clone());
        let forks = self.send_forks(&caller, None, number, bindings, &b_offer, now);
        if forks.is_empty() {
            return fail(self, HangupCause::NormalTemporaryFailure);
        }
        for fork in &forks {
            self.calls.by_fork.insert(fork.tsx, key);
        }
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.forks = forks;
            tracing::info!(uuid = %call.uuid, callee = %number, forks = call.forks.len(), "ringing");
        }
        self.publish(key, Side::Callee, EventCode::CallOut, "");
        self.agents
            .apply(number, AgentChange::CallState(CallState::Ring));
        true
    }

    /// Sends an INVITE with `offer` to every binding of extension `number`, from `caller`
    /// (with the display name `display`, when given; one Call-ID, one fork per binding); the
    /// forks that could be sent.
    fn send_forks(
        &mut self,
        caller: &str,
        display: Option<&str>,
        number: &str,
        bindings: Vec<crate::pbx::registrar::Binding>,
        offer: &SessionDescription,
        now: Instant,
    ) -> Vec<Fork> {
        let call_id = format!("{}@rswitch", new_uuid());
        let local_sip = self.local_sip;
        let mut forks = Vec::new();
        for binding in bindings {
            let Ok(target) = Uri::parse(&binding.contact) else {
                continue;
            };
            let transport = match binding.source.transport {
                TransportKind::Udp => "UDP",
                TransportKind::Tcp => "TCP",
                TransportKind::Tls => "TLS",
                TransportKind::Ws => "WS",
                TransportKind::Wss => "WSS",
            };
            let tag = self.dialogs.new_tag();
            let mut headers = crate::sip::message::Headers::default();
            headers.push(Header::new(
                "Via",
                format!(
                    "SIP/2.0/{transport} {local_sip};rport;branch=z9hG4bK{:016x}",
                    rand::random::<u64>()
                ),
            ));
            headers.push(Header::new("Max-Forwards", "70"));
            let Some(from) = from_header(caller, display, local_sip.ip(), tag.as_str()) else {
                tracing::warn!(%caller, "no From for this caller: the INVITE is not sent");
                continue;
            };
            headers.push(Header::new("From", from));
            headers.push(Header::new(
                "To",
                format!("<sip:{number}@{}>", local_sip.ip()),
            ));
            headers.push(Header::new("Call-ID", call_id.clone()));
            headers.push(Header::new("CSeq", "1 INVITE"));
            headers.push(Header::new("Contact", format!("<sip:rswitch@{local_sip}>")));
            headers.push(Header::new("Allow", ALLOWED_IN_CALLS));
            headers.push(Header::new("Supported", "100rel, timer"));
            headers.push(Header::new(
                "Session-Expires",
                self.timers.session_expires.to_string(),
            ));
            headers.push(Header::new("Min-SE", self.timers.min_se.to_string()));
            headers.push(Header::new("User-Agent", self.server_name.clone()));
            for path in &binding.path {
                headers.push(Header::new("Route", path.clone()));
            }
            let mut invite = Request {
                method: Method::Invite,
                uri: target,
                headers,
                body: Vec::new(),
            };
            let body = offer.to_string().into_bytes();
            invite
                .headers
                .push(Header::new("Content-Type", "application/sdp"));
            invite
                .headers
                .push(Header::new("Content-Length", body.len().to_string()));
            invite.body = body;
            let tsx = match self
                .transactions
                .send_request(now, invite.clone(), binding.source)
            {
                Ok(tsx) => tsx,
                Err(error) => {
                    tracing::warn!(%error, "the INVITE to the callee could not start");
                    continue;
                }
            };
            let sent = invite;
            if let Err(error) = self.dialogs.handle_request_sent(tsx, &sent) {
                tracing::warn!(%error, "the dialog layer refused our INVITE");
            }
            forks.push(Fork {
                tsx,
                invite: sent,
                destination: binding.source,
                dialog: None,
                status: None,
                awaiting_final: false,
            });
        }
        forks
    }

    /// Answers the caller (200, or 183 for early media) with our SDP answer; when the callee
    /// has agreed a codec, the caller is offered the same one first.
    fn answer_caller(&mut self, key: CallKey, early: Option<u16>) -> Result<(), ()> {
        let endpoint = match self.calls.calls.get(&key).and_then(|c| c.a_endpoint) {
            Some(endpoint) => endpoint,
            None => self.media.open(key.0).map_err(|error| {
                tracing::error!(%error, "no RTP port for the caller");
            })?,
        };
        let mut local = self.local_media(&endpoint);
        let call = self.calls.calls.get_mut(&key).ok_or(())?;
        call.a_endpoint = Some(endpoint);
        if call.a_late_offer {
            if early.is_some() {
                // No early media without an offer to answer: the caller hears its own
                // ringback.
                return Err(());
            }
            // Our offer, the callee's codec first (pass-through when the caller takes it).
            prefer_codec(&mut local, call.b_agreed.as_ref());
            let sdp = offer(&local, &mut call.a_origin);
            call.pending_offer = Some((Side::Caller, sdp.clone()));
            call.a_answered_sdp = true;
            call.answered = true;
            call.answer_stamp = Some(now_utc());
            let mut response = Response::for_request(&call.invite, 200, "OK");
            response.headers.push(Header::new(
                "Contact",
                format!("<sip:{}@{}>", call.destination, self.local_sip),
            ));
            response.set_body("application/sdp", sdp.to_string().into_bytes());
            let tsx = call.invite_tsx;
            self.start_caller_timer(key, &mut response);
            self.respond_dialog(tsx, response);
            self.publish(key, Side::Caller, EventCode::Answer, "");
            return Ok(());
        }
        let prefer: Vec<_> = call.b_agreed.iter().map(|b| b.codec.clone()).collect();
        let (sdp, agreed) = match answer(&call.a_offer, &local, &prefer, &mut call.a_origin) {
            Ok(done) => done,
            Err(error) => {
                tracing::info!(uuid = %call.uuid, %error, "the caller's offer cannot be answered");
                return Err(());
            }
        };
        let ssrc: u32 = rand::random();
        self.media.configure(endpoint.id, leg_config(&agreed, ssrc));
        call.a_agreed = Some(agreed);
        call.a_answered_sdp = true;
        let status = early.unwrap_or(200);
        let mut response = Response::for_request(&call.invite, status, reason_phrase(status));
        response.headers.push(Header::new(
            "Contact",
            format!("<sip:{}@{}>", call.destination, self.local_sip),
        ));
        response.set_body("application/sdp", sdp.to_string().into_bytes());
        if status == 200 {
            call.answered = true;
            call.answer_stamp = Some(now_utc());
        } else if call.a_reliable {
            // RFC 3262: the early answer goes reliably; the 200 then carries no SDP.
            response.headers.push(Header::new("Require", "100rel"));
            call.a_answered_reliably = true;
        }
        let tsx = call.invite_tsx;
        if status == 200 {
            self.start_caller_timer(key, &mut response);
        }
        self.respond_dialog(tsx, response);
        let code = if status == 200 {
            EventCode::Answer
        } else {
            EventCode::Alert
        };
        self.publish(key, Side::Caller, code, "");
        Ok(())
    }

    /// A response to one of the callee INVITEs.
    pub(crate) fn handle_fork_response(
        &mut self,
        tsx: TsxId,
        dialog: Option<DialogId>,
        response: Response,
        now: Instant,
    ) {
        let Some(key) = self.calls.owns_fork(tsx) else {
            return;
        };
        if self.is_origin_fork(key, tsx) {
            self.handle_origin_response(key, tsx, dialog, response, now);
            return;
        }
        let status = response.status;
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(index) = call.forks.iter().position(|f| f.tsx == tsx) else {
            self.handle_transfer_fork_response(key, tsx, dialog, response, now);
            return;
        };
        if let Some(dialog) = dialog {
            call.forks[index].dialog = Some(dialog);
            self.calls.by_dialog.insert(dialog, key);
        }
        if status >= 200 {
            call.forks[index].awaiting_final = false;
        }
        if call.stage != Stage::Ringing {
            // Another phone of the callee answered after the first (its 200 crossed our
            // CANCEL): ACK it and hang it up (RFC 3261 §13.2.2.4), or it would talk to
            // nobody until it gave up on the ACK.
            if let Some(dialog) = dialog
                && (200..300).contains(&status)
                && call.b_dialog != Some(dialog)
                && !call.detached.contains(&dialog)
            {
                call.forks[index].status = Some(status);
                let destination = call.forks[index].destination;
                self.drop_late_answer(key, dialog, destination, now);
            }
            return;
        }
        match status {
            100 => {}
            101..=199 => {
                let sdp = (!response.body.is_empty())
                    .then(|| SessionDescription::parse(&response.body).ok())
                    .flatten();
                let code = if sdp.is_some() {
                    EventCode::Alert
                } else {
                    EventCode::Ring
                };
                self.publish(key, Side::Callee, code, "");
                let call = self.calls.calls.get_mut(&key).expect("looked up above");
                if let Some(sdp) = sdp {
                    // Early media from the callee: agree it, answer the caller with 183.
                    if call.b_agreed.is_none()
                        && let Some(b_offer) = &call.b_offer
                        && let Ok(agreed) = agreed_from_answer(b_offer, &sdp)
                    {
                        call.b_agreed = Some(agreed);
                    }
                    self.start_media(key);
                    let already = self.calls.calls.get(&key).is_some_and(|c| c.a_answered_sdp);
                    if !already && self.answer_caller(key, Some(183)).is_err() {
                        // No early media for this caller (a late offer): it is told ringing.
                        self.ring_caller(key);
                    }
                } else {
                    self.ring_caller(key);
                }
            }
            200..=299 => {
                call.forks[index].status = Some(status);
                call.stage = Stage::Bridged;
                self.publish(key, Side::Callee, EventCode::Answer, "");
                let call = self.calls.calls.get_mut(&key).expect("looked up above");
                call.deadline = None;
                call.b_dialog = dialog;
                call.b_destination = Some(call.forks[index].destination);
                let session = self.callee_session(&response, now);
                let call = self.calls.calls.get_mut(&key).expect("looked up above");
                call.b_session = session;
                if let Some(timer) = session.timer {
                    self.calls.deadlines.push(Reverse((timer.due, key)));
                }
                let call = self.calls.calls.get_mut(&key).expect("looked up above");
                if let Some(sdp) = SessionDescription::parse(&response.body).ok()
                    && let Some(b_offer) = &call.b_offer
                    && let Ok(agreed) = agreed_from_answer(b_offer, &sdp)
                {
                    call.b_agreed = Some(agreed);
                }
                let others: Vec<usize> = (0..call.forks.len())
                    .filter(|&i| i != index && call.forks[i].status.is_none())
                    .collect();
                if let Some(dialog) = dialog {
                    self.send_ack(dialog, now);
                }
                for other in others {
                    self.cancel_fork(key, other, now);
                }
                if self
                    .calls
                    .calls
                    .get(&key)
                    .is_some_and(|c| c.origin.is_some())
                {
                    // The platform placed the call: its first party answered us already.
                } else if self.calls.calls.get(&key).is_some_and(|c| c.a_answered_sdp) {
                    // Early media already answered the caller: now the final 200.
                    let call = self.calls.calls.get_mut(&key).expect("looked up above");
                    let mut ok = Response::for_request(&call.invite, 200, "OK");
                    ok.headers.push(Header::new(
                        "Contact",
                        format!("<sip:{}@{}>", call.destination, self.local_sip),
                    ));
                    let mut origin = call.a_origin.clone();
                    // The same answer again (RFC 3264: the 200 repeats the early answer),
                    // unless the early answer went reliably (RFC 3262: it is final then).
                    let repeat = !call.a_answered_reliably;
                    if let (Some(endpoint), Some(_), true) =
                        (call.a_endpoint, &call.a_agreed, repeat)
                    {
                        let local = self.local_media(&endpoint);
                        let call = self.calls.calls.get_mut(&key).expect("looked up above");
                        let prefer: Vec<_> =
                            call.b_agreed.iter().map(|b| b.codec.clone()).collect();
                        if let Ok((sdp, _)) = answer(&call.a_offer, &local, &prefer, &mut origin) {
                            ok.set_body("application/sdp", sdp.to_string().into_bytes());
                        }
                    }
                    let call = self.calls.calls.get_mut(&key).expect("looked up above");
                    call.answered = true;
                    call.answer_stamp = Some(now_utc());
                    let tsx = call.invite_tsx;
                    self.start_caller_timer(key, &mut ok);
                    self.respond_final_to_caller(key, tsx, ok);
                    self.publish(key, Side::Caller, EventCode::Answer, "");
                } else if self.answer_caller(key, None).is_err() {
                    self.hang_up(key, HangupCause::IncompatibleDestination, now);
                    return;
                }
                self.start_media(key);
                self.announce_job_number(key, now);
                for code in [EventCode::Bridged, EventCode::Talking] {
                    self.publish(key, Side::Caller, code, "");
                    self.publish(key, Side::Callee, code, "");
                }
                if let Some(call) = self.calls.calls.get(&key) {
                    for number in [call.caller.clone(), call.b_number.clone()] {
                        self.agents
                            .apply(&number, AgentChange::CallState(CallState::Talking));
                    }
                }
                if let Some(call) = self.calls.calls.get_mut(&key) {
                    call.execution.mark_answered();
                    tracing::info!(uuid = %call.uuid, callee = %call.b_number, "answered");
                }
            }
            _ => {
                call.forks[index].status = Some(status);
                call.sip_code = Some(status);
                if call.forks.iter().all(|f| f.status.is_some()) {
                    // Every fork failed: the bridge failed with the most telling status
                    // (busy beats the rest, as a caller most wants to know it).
                    let best = most_telling_status(&call.forks, status);
                    call.stage = Stage::Routing;
                    call.deadline = None;
                    call.sip_code = Some(best);
                    for fork in std::mem::take(&mut call.forks) {
                        self.calls.by_fork.remove(&fork.tsx);
                    }
                    self.end_callee_leg(key, HangupCause::from_sip_status(best));
                    let call = self.calls.calls.get_mut(&key).expect("looked up above");
                    call.execution.failed(HangupCause::from_sip_status(best));
                    self.run_details(key, now);
                }
            }
        }
    }

    /// A phone of call `key` answered after another one did (its 2xx crossed our CANCEL):
    /// ACK it and hang it up (RFC 3261 §13.2.2.4), or it would talk to nobody until it gave
    /// up on the ACK. Its BYE's answer is then just taken.
    fn drop_late_answer(
        &mut self,
        key: CallKey,
        dialog: DialogId,
        destination: Peer,
        now: Instant,
    ) {
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.detached.push(dialog);
            tracing::info!(uuid = %call.uuid, "a second phone answered too late: ACK and BYE");
        }
        self.send_ack(dialog, now);
        self.bye_dialog(dialog, Some(destination), HangupCause::LoseRace, now);
    }

    /// A 180 to the caller (once per call), reliably when it supports 100rel.
    fn ring_caller(&mut self, key: CallKey) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if call.a_answered_sdp || call.a_ringing_sent {
            return;
        }
        call.a_ringing_sent = true;
        let mut ringing = Response::for_request(&call.invite, 180, "Ringing");
        ringing.headers.push(Header::new(
            "Contact",
            format!("<sip:{}@{}>", call.destination, self.local_sip),
        ));
        if call.a_reliable {
            ringing.headers.push(Header::new("Require", "100rel"));
        }
        let tsx = call.invite_tsx;
        self.respond_dialog(tsx, ringing);
        self.publish(key, Side::Caller, EventCode::Ring, "");
    }

    /// Joins the two media endpoints once both have agreed media.
    fn start_media(&mut self, key: CallKey) {
        if let Some(call) = self.calls.calls.get_mut(&key)
            && let Some(mut active) = call.recording.take()
        {
            let (callee, caller) = (call.b_endpoint.map(|e| e.id), None);
            self.attach_recording_sinks(caller, callee, &mut active);
            if let Some(call) = self.calls.calls.get_mut(&key) {
                call.recording = Some(active);
            }
        }
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let (Some(b_endpoint), Some(b_agreed)) = (call.b_endpoint, call.b_agreed.clone()) else {
            return;
        };
        self.media
            .configure(b_endpoint.id, leg_config(&b_agreed, rand::random()));
        let Some(a_endpoint) = call.a_endpoint else {
            return;
        };
        for (target, source) in [
            (a_endpoint.id, b_endpoint.id),
            (b_endpoint.id, a_endpoint.id),
        ] {
            if let Err(error) = self.media.set_feed(target, FeedSpec::Endpoint(source)) {
                tracing::warn!(uuid = %call.uuid, %error, "media bridge refused");
            }
        }
    }

    /// ACKs the 2xx to our INVITE in `dialog` (a callee's answer, or the answer to our
    /// re-INVITE on either leg).
    fn send_ack(&mut self, dialog: DialogId, now: Instant) {
        let _ = now;
        let destination = self.calls.by_dialog.get(&dialog).and_then(|key| {
            let call = self.calls.calls.get(key)?;
            if let Some(fork) = call.fork_by_dialog(dialog) {
                Some(fork.destination)
            } else if call.a_dialog == Some(dialog) {
                Some(call.source)
            } else if call.b_dialog == Some(dialog) {
                call.b_destination
            } else {
                None
            }
        });
        match destination {
            Some(destination) => self.send_ack_to(dialog, destination),
            None => tracing::debug!(?dialog, "no destination for an ACK"),
        }
    }

    fn send_ack_to(&mut self, dialog: DialogId, destination: Peer) {
        let Ok(outgoing) = self.dialogs.ack(dialog) else {
            return;
        };
        let mut ack = outgoing.request;
        ack.headers.push_front(Header::new(
            "Via",
            format!(
                "SIP/2.0/{} {};branch=z9hG4bK{:x}",
                transport_name(destination.transport),
                self.local_sip,
                rand::random::<u64>()
            ),
        ));
        if let Err(error) = self.transactions.send_ack(ack.clone(), destination) {
            tracing::warn!(%error, "ACK not sent");
            return;
        }
        let _ = self.dialogs.handle_ack_sent(ack, destination);
    }

    /// CANCELs fork `index` (RFC 3261 §9.1: same Request-URI, Call-ID, From, To, CSeq number
    /// and top Via as the INVITE).
    fn cancel_fork(&mut self, key: CallKey, index: usize, now: Instant) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(fork) = call.forks.get_mut(index) else {
            return;
        };
        if fork.status.is_some() {
            return;
        }
        fork.status = Some(487);
        fork.awaiting_final = true;
        let fork = fork.clone();
        self.send_cancel(&fork, now);
    }

    /// Sends the CANCEL of `fork`'s INVITE (RFC 3261 §9.1: same Request-URI, Call-ID, From,
    /// To, CSeq number and top Via as the INVITE).
    fn send_cancel(&mut self, fork: &Fork, now: Instant) {
        let invite = &fork.invite;
        let mut headers = crate::sip::message::Headers::default();
        for name in ["Via", "Max-Forwards", "From", "To", "Call-ID", "Route"] {
            for header in invite.headers.all(name) {
                headers.push_field(header.name_text(), header.value());
                if name == "Via" {
                    break;
                }
            }
        }
        let seq = invite
            .headers
            .cseq()
            .ok()
            .flatten()
            .map_or(1, |cseq| cseq.seq);
        headers.push(Header::new("CSeq", format!("{seq} CANCEL")));
        headers.push(Header::new("Content-Length", "0"));
        let cancel = Request {
            method: Method::Cancel,
            uri: invite.uri.clone(),
            headers,
            body: Vec::new(),
        };
        if let Err(error) = self
            .transactions
            .send_request(now, cancel, fork.destination)
        {
            tracing::debug!(%error, "CANCEL not sent");
        }
    }

    /// The caller CANCELled its INVITE.
    pub(crate) fn handle_caller_cancel(&mut self, invite: TsxId, now: Instant) {
        let Some(key) = self.calls.owns_invite(invite) else {
            return;
        };
        if self.calls.calls.get(&key).is_some_and(|c| c.answered) {
            return;
        }
        self.finish(key, HangupCause::OriginatorCancel, now);
    }

    /// A request inside a call's dialog.
    pub(crate) fn handle_dialog_request(
        &mut self,
        dialog: DialogId,
        tsx: TsxId,
        request: Request,
        now: Instant,
    ) {
        let Some(key) = self.calls.by_dialog.get(&dialog).copied() else {
            let response = Response::for_request(&request, 481, reason_phrase(481));
            let _ = self.dialogs.respond(now, tsx, response);
            return;
        };
        if request.method == Method::Bye {
            let call = self.calls.calls.get_mut(&key);
            let detached = call.as_ref().is_some_and(|c| c.detached.contains(&dialog));
            let transferor = call
                .and_then(|c| c.transfer.as_mut())
                .filter(|t| t.transferor_dialog == dialog);
            let leaving = match transferor {
                Some(transfer) => {
                    // The transferor hangs up while the target rings: the transfer goes on.
                    transfer.transferor_gone = true;
                    true
                }
                None => detached,
            };
            if leaving {
                let response = Response::for_request(&request, 200, "OK");
                let _ = self.dialogs.respond(now, tsx, response);
                return;
            }
        }
        match request.method {
            Method::Refer => self.handle_refer(key, dialog, tsx, request, now),
            Method::Bye => {
                let from_caller = self
                    .calls
                    .calls
                    .get(&key)
                    .is_some_and(|c| c.a_dialog == Some(dialog));
                let response = Response::for_request(&request, 200, "OK");
                if let Some(call) = self.calls.calls.get_mut(&key) {
                    tracing::info!(uuid = %call.uuid, by = if from_caller { "caller" } else { "callee" }, "hang-up");
                    if call.cause.is_none() {
                        call.cause = Some(HangupCause::NormalClearing);
                    }
                }
                // Forks still ringing (a bridge after the platform answered) are cancelled.
                let ringing: Vec<usize> = self.calls.calls.get(&key).map_or(Vec::new(), |c| {
                    (0..c.forks.len())
                        .filter(|&i| c.forks[i].status.is_none())
                        .collect()
                });
                for index in ringing {
                    self.cancel_fork(key, index, now);
                }
                // The other side is told at once; this BYE is answered once the CDR is on
                // disk.
                if from_caller {
                    self.bye(key, false, now);
                } else {
                    self.bye(key, true, now);
                }
                self.end_call(key, Some((tsx, response)));
            }
            Method::Invite | Method::Update => {
                // Each refreshes the session (RFC 4028), whatever else it does.
                let Some(timer) = self.session_refresh_request(tsx, &request) else {
                    return;
                };
                if !request.body.is_empty() {
                    self.handle_reoffer(key, dialog, tsx, request, &timer);
                } else if request.method == Method::Invite {
                    self.handle_offerless_reinvite(key, dialog, tsx, request, &timer);
                } else {
                    // A session refresh without a new offer.
                    let side = self
                        .calls
                        .calls
                        .get(&key)
                        .map_or(Side::Callee, |c| c.side_of(dialog));
                    let mut response = Response::for_request(&request, 200, "OK");
                    self.session_refreshed(key, side, &timer, &mut response);
                    let _ = self.dialogs.respond(now, tsx, response);
                }
            }
            Method::Options => {
                // A keep-alive.
                let response = Response::for_request(&request, 200, "OK");
                let _ = self.dialogs.respond(now, tsx, response);
            }
            Method::Prack => {
                let response = Response::for_request(&request, 200, "OK");
                let _ = self.dialogs.respond(now, tsx, response);
                let pending =
                    self.calls.calls.get_mut(&key).and_then(|call| {
                        call.a_pending_final.take().map(|ok| (call.invite_tsx, ok))
                    });
                if let Some((invite_tsx, ok)) = pending {
                    self.respond_final_to_caller(key, invite_tsx, ok);
                }
            }
            Method::Info => self.handle_info(key, dialog, tsx, request),
            _ => {
                // MESSAGE, …: not handled in a call yet; refused cleanly.
                let why = format!("{} is not supported in a call yet", request.method);
                let _ = self.dialogs.respond(now, tsx, refusal(&request, 501, &why));
            }
        }
    }

    /// A re-INVITE or UPDATE with an offer from one side of a call: hold (sendonly or
    /// inactive), unhold (sendrecv), a new address or codec. It is answered here, without
    /// asking the other side (a B2BUA keeps each leg's session its own): the leg's media is
    /// reconfigured, and while one side holds, the other hears music on hold instead of it.
    fn handle_reoffer(
        &mut self,
        key: CallKey,
        dialog: DialogId,
        tsx: TsxId,
        request: Request,
        timer: &UasDecision,
    ) {
        let refuse = |service: &mut Service, status: u16, why: &str| {
            let _ = service
                .dialogs
                .respond(Instant::now(), tsx, refusal(&request, status, why));
        };
        let Some(call) = self.calls.calls.get(&key) else {
            return refuse(self, 481, "the call is gone");
        };
        let side = call.side_of(dialog);
        let Some(endpoint) = call.endpoint(side) else {
            return refuse(self, 488, "this leg has no media yet");
        };
        let Ok(offer) = SessionDescription::parse(&request.body) else {
            return refuse(self, 488, "the SDP does not parse");
        };
        let local = self.local_media(&endpoint);
        let prefer: Vec<_> = call.agreed(side).iter().map(|a| a.codec.clone()).collect();
        let call = self.calls.calls.get_mut(&key).expect("looked up above");
        let origin = match side {
            Side::Caller => &mut call.a_origin,
            Side::Callee => &mut call.b_origin,
        };
        let (sdp, agreed) = match answer(&offer, &local, &prefer, origin) {
            Ok(done) => done,
            Err(error) => {
                let why = error.to_string();
                return refuse(self, 488, &why);
            }
        };
        if side == Side::Caller {
            call.a_offer = offer;
        }
        let destination = call.destination.clone();
        self.apply_leg_media(key, side, agreed);
        let mut ok = Response::for_request(&request, 200, "OK");
        ok.headers.push(Header::new(
            "Contact",
            format!("<sip:{destination}@{}>", self.local_sip),
        ));
        ok.set_body("application/sdp", sdp.to_string().into_bytes());
        self.session_refreshed(key, side, timer, &mut ok);
        let _ = self.dialogs.respond(Instant::now(), tsx, ok);
    }

    /// A re-INVITE without SDP (RFC 3261 §14.2): we offer in the 2xx, the answer comes in
    /// the ACK ([`Self::handle_ack_answer`]). The offer puts the leg's current codec first.
    fn handle_offerless_reinvite(
        &mut self,
        key: CallKey,
        dialog: DialogId,
        tsx: TsxId,
        request: Request,
        timer: &UasDecision,
    ) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let side = call.side_of(dialog);
        let Some(endpoint) = call.endpoint(side) else {
            let response = Response::for_request(&request, 488, reason_phrase(488));
            let _ = self.dialogs.respond(Instant::now(), tsx, response);
            return;
        };
        let mut local = self.local_media(&endpoint);
        prefer_codec(&mut local, call.agreed(side));
        let call = self.calls.calls.get_mut(&key).expect("looked up above");
        let origin = match side {
            Side::Caller => &mut call.a_origin,
            Side::Callee => &mut call.b_origin,
        };
        let sdp = offer(&local, origin);
        call.pending_offer = Some((side, sdp.clone()));
        let mut ok = Response::for_request(&request, 200, "OK");
        ok.headers.push(Header::new(
            "Contact",
            format!("<sip:{}@{}>", call.destination, self.local_sip),
        ));
        ok.set_body("application/sdp", sdp.to_string().into_bytes());
        self.session_refreshed(key, side, timer, &mut ok);
        let _ = self.dialogs.respond(Instant::now(), tsx, ok);
    }

    /// The ACK of a 2xx in which we offered: its SDP is the answer.
    fn handle_ack_answer(&mut self, dialog: DialogId, request: &Request) {
        let Some(key) = self.calls.by_dialog.get(&dialog).copied() else {
            return;
        };
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let side = call.side_of(dialog);
        let Some((offered_side, our_offer)) = call.pending_offer.take() else {
            return;
        };
        if offered_side != side {
            call.pending_offer = Some((offered_side, our_offer));
            return;
        }
        let agreed = SessionDescription::parse(&request.body)
            .ok()
            .and_then(|sdp| agreed_from_answer(&our_offer, &sdp).ok());
        match agreed {
            Some(agreed) => self.apply_leg_media(key, side, agreed),
            None => tracing::info!(
                uuid = %call.uuid,
                "the ACK carried no usable answer; the leg keeps its media"
            ),
        }
    }

    /// A leg agreed new media: reconfigure its endpoint; while it holds (sends nothing), the
    /// other side hears music on hold, and hears it again when it resumes (what the other
    /// side hears is [`Self::resting_feed`], unless the API plays to it).
    fn apply_leg_media(&mut self, key: CallKey, side: Side, agreed: AgreedAudio) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(endpoint) = call.endpoint(side) else {
            return;
        };
        let holding = matches!(agreed.direction, Direction::RecvOnly | Direction::Inactive)
            || call.held_by_us == Some(side);
        // A late offer's answer configures the leg only now: what it hears is set only now.
        let first_media = call.agreed(side).is_none()
            && call.api_playback != Some(side)
            && call.endpoint(side.other()).is_some();
        match side {
            Side::Caller => call.a_agreed = Some(agreed.clone()),
            Side::Callee => call.b_agreed = Some(agreed.clone()),
        }
        let other = call
            .endpoint(side.other())
            .filter(|_| call.api_playback != Some(side.other()));
        let was_holding = call.holding.set(side, holding);
        let uuid = call.uuid.clone();
        if holding && !was_holding {
            tracing::info!(%uuid, by = ?side, "hold: music on hold to the other side");
            self.publish(key, side, EventCode::Hold, "");
        } else if !holding && was_holding {
            tracing::info!(%uuid, by = ?side, "unhold");
            self.publish(key, side, EventCode::Unhold, "");
        }
        self.media
            .configure(endpoint.id, leg_config(&agreed, rand::random()));
        if let Some(other) = other {
            let feed = self.resting_feed(key, side.other());
            if let Err(error) = self.media.set_feed(other.id, feed) {
                tracing::warn!(%uuid, %error, "media change refused");
            }
        }
        if first_media {
            let feed = self.resting_feed(key, side);
            if let Err(error) = self.media.set_feed(endpoint.id, feed) {
                tracing::warn!(%uuid, %error, "the first media's feed was refused");
            }
        }
        // A leg's new media (its codec rebuilt) is mixed afresh where a party joined.
        self.refeed_around(key);
    }

    /// INFO in a call: a DTMF digit (`application/dtmf-relay` or `application/dtmf`) is
    /// played to the other side in the form its leg negotiated; an empty INFO is a
    /// keep-alive. Other bodies get 415.
    fn handle_info(&mut self, key: CallKey, dialog: DialogId, tsx: TsxId, request: Request) {
        let content_type = request
            .headers
            .first("Content-Type")
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let status = if request.body.is_empty() {
            200
        } else if content_type == "application/dtmf-relay" || content_type == "application/dtmf" {
            match parse_info_dtmf(&request.body) {
                Some((digit, duration_ms)) => {
                    if let Some(call) = self.calls.calls.get(&key) {
                        let side = call.side_of(dialog);
                        if let Some(other) = call.endpoint(side.other()) {
                            tracing::debug!(uuid = %call.uuid, %digit, "DTMF by INFO relayed");
                            self.media.send_dtmf(other.id, digit, duration_ms);
                        }
                        self.publish_dtmf(key, side, digit);
                    }
                    200
                }
                None => 400,
            }
        } else {
            415
        };
        let mut response = Response::for_request(&request, status, reason_phrase(status));
        if status == 415 {
            response.headers.push(Header::new(
                "Accept",
                "application/dtmf-relay, application/dtmf",
            ));
        }
        let _ = self.dialogs.respond(Instant::now(), tsx, response);
    }

    /// The caller's dialog was established by our answer.
    pub(crate) fn note_caller_dialog(&mut self, tsx: TsxId, dialog: DialogId) {
        if let Some(key) = self.calls.owns_invite(tsx) {
            if let Some(call) = self.calls.calls.get_mut(&key)
                && call.a_dialog.is_none()
            {
                call.a_dialog = Some(dialog);
            }
            self.calls.by_dialog.insert(dialog, key);
        }
    }

    /// Sends BYE to the caller (`to_caller`) or the callee.
    fn bye(&mut self, key: CallKey, to_caller: bool, now: Instant) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let (dialog, destination) = if to_caller {
            (call.a_dialog, call.source)
        } else {
            match call.b_destination {
                Some(destination) => (call.b_dialog, destination),
                None => return,
            }
        };
        let Some(dialog) = dialog else { return };
        let cause = call.cause.unwrap_or(HangupCause::NormalClearing);
        self.bye_dialog(dialog, Some(destination), cause, now);
    }

    /// Sends a request the dialog layer built (our Via on top) to `destination`.
    fn send_in_dialog(
        &mut self,
        mut outgoing: Outgoing,
        destination: Peer,
        now: Instant,
    ) -> Option<TsxId> {
        outgoing.request.headers.push_front(Header::new(
            "Via",
            format!(
                "SIP/2.0/{} {};rport;branch=z9hG4bK{:016x}",
                transport_name(destination.transport),
                self.local_sip,
                rand::random::<u64>()
            ),
        ));
        let method = outgoing.request.method.clone();
        match self
            .transactions
            .send_request(now, outgoing.request.clone(), destination)
        {
            Ok(tsx) => {
                let _ = self.dialogs.handle_request_sent(tsx, &outgoing.request);
                Some(tsx)
            }
            Err(error) => {
                tracing::debug!(%error, %method, "in-dialog request not sent");
                None
            }
        }
    }

    /// The caller's 200: sent now, or held until the PRACK of our reliable early answer
    /// (RFC 3262 §3: no 2xx before it).
    fn respond_final_to_caller(&mut self, key: CallKey, tsx: TsxId, ok: Response) {
        match self.try_respond_dialog(tsx, ok.clone()) {
            Err(DialogError::ApiMisuse(Misuse::UnacknowledgedReliableBody)) => {
                if let Some(call) = self.calls.calls.get_mut(&key) {
                    call.a_pending_final = Some(ok);
                }
            }
            Err(error) => tracing::debug!(%error, "the caller's 200 was refused"),
            Ok(()) => {}
        }
    }

    /// PRACKs a callee's reliable provisional response (RFC 3262 §7.2).
    fn prack_fork(&mut self, tsx: TsxId, dialog: DialogId, now: Instant) {
        let destination = self
            .calls
            .owns_fork(tsx)
            .and_then(|key| self.calls.calls.get(&key))
            .and_then(|call| {
                let transfer_forks = call.transfer.iter().flat_map(|t| t.forks.iter());
                let origin_forks = call.origin.iter().flat_map(|o| o.forks().iter());
                call.forks
                    .iter()
                    .chain(transfer_forks)
                    .chain(origin_forks)
                    .find(|f| f.tsx == tsx)
            })
            .map(|fork| fork.destination);
        let Some(destination) = destination else {
            return;
        };
        match self.dialogs.prack(dialog) {
            Ok(outgoing) => {
                self.send_in_dialog(outgoing, destination, now);
            }
            Err(error) => tracing::debug!(%error, "no PRACK for the callee"),
        }
    }

    /// Ends an answered call from our side (timeout, a failure after the answer).
    fn hang_up(&mut self, key: CallKey, cause: HangupCause, now: Instant) {
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.cause.get_or_insert(cause);
        }
        self.bye(key, true, now);
        self.bye(key, false, now);
        self.end_call(key, None);
    }

    /// The dialplan is done, or the call failed before an answer: answer the caller's
    /// INVITE with the failure, cancel ringing forks, end the call.
    fn finish(&mut self, key: CallKey, cause: HangupCause, now: Instant) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        call.cause.get_or_insert(cause);
        let ringing: Vec<usize> = (0..call.forks.len())
            .filter(|&i| call.forks[i].status.is_none())
            .collect();
        for index in ringing {
            self.cancel_fork(key, index, now);
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if call.answered {
            self.hang_up(key, cause, now);
            return;
        }
        if call.origin.is_some() {
            // No caller's INVITE to answer: the first party is still being rung.
            self.give_up_calling(key, cause, now);
            return;
        }
        let status = if cause == HangupCause::NormalClearing {
            480
        } else {
            cause.sip_status()
        };
        call.sip_code.get_or_insert(status);
        let mut response = Response::for_request(&call.invite, status, reason_phrase(status));
        response
            .headers
            .push(Header::new("Reason", cause.reason_header()));
        let tsx = call.invite_tsx;
        self.respond_dialog(tsx, response);
        self.end_call(key, None);
    }

    /// Timers: ringing past `call_timeout`, the end of a `sleep`.
    pub(crate) fn handle_call_timeouts(&mut self, now: Instant) {
        // The heap holds every deadline ever set; one still in force is the call's current one.
        let mut due: Vec<CallKey> = Vec::new();
        while let Some(&Reverse((at, key))) = self.calls.deadlines.peek() {
            if at > now {
                break;
            }
            self.calls.deadlines.pop();
            let current = self
                .calls
                .calls
                .get(&key)
                .is_some_and(|c| c.due_at().is_some_and(|d| d <= now));
            if current && !due.contains(&key) {
                due.push(key);
            }
        }
        for key in due {
            for side in [Side::Caller, Side::Callee] {
                let timer_due =
                    self.calls.calls.get_mut(&key).is_some_and(|call| {
                        call.session_mut(side).timer.is_some_and(|t| t.due <= now)
                    });
                if timer_due {
                    self.session_timer_due(key, side, now);
                }
            }
            let Some(call) = self.calls.calls.get_mut(&key) else {
                continue;
            };
            if call.deadline.is_none_or(|d| d > now) {
                continue;
            }
            call.deadline = None;
            match call.stage {
                Stage::Calling => {
                    tracing::info!(uuid = %call.uuid, "the first party did not answer in time");
                    call.sip_code = Some(480);
                    self.give_up_calling(key, HangupCause::NoAnswer, now);
                }
                Stage::Ringing => {
                    tracing::info!(uuid = %call.uuid, "no answer within call_timeout");
                    let ringing: Vec<usize> = (0..call.forks.len())
                        .filter(|&i| call.forks[i].status.is_none())
                        .collect();
                    for index in ringing {
                        self.cancel_fork(key, index, now);
                    }
                    let call = self.calls.calls.get_mut(&key).expect("looked up above");
                    for fork in std::mem::take(&mut call.forks) {
                        self.calls.by_fork.remove(&fork.tsx);
                    }
                    call.stage = Stage::Routing;
                    call.sip_code = Some(480);
                    self.end_callee_leg(key, HangupCause::NoAnswer);
                    let call = self.calls.calls.get_mut(&key).expect("looked up above");
                    call.execution.failed(HangupCause::NoAnswer);
                    self.run_details(key, now);
                }
                Stage::Routing => {
                    if call.waiting_playback.take().is_some() {
                        self.publish(key, Side::Caller, EventCode::PlayStop, "");
                    }
                    self.run_details(key, now);
                }
                Stage::Bridged if call.transfer.is_some() => {
                    self.transfer_failed(key, 480, now);
                }
                Stage::Bridged if call.waiting_playback.is_some() => {
                    // The announcement's end was never reported: the parties talk anyway.
                    self.end_announcement(key);
                }
                _ => {}
            }
        }
    }

    /// Removes the call, closes its media, writes its CDR; `reply` (a BYE's 200) is sent
    /// once the CDR is durable.
    fn end_call(&mut self, key: CallKey, reply: Option<(TsxId, Response)>) {
        let cause = self
            .calls
            .calls
            .get(&key)
            .map(|call| call.cause.unwrap_or(HangupCause::NormalClearing));
        if let Some(cause) = cause {
            self.end_callee_leg(key, cause);
            self.publish_with_cause(key, Side::Caller, EventCode::Hangup, cause);
            self.publish_with_cause(key, Side::Caller, EventCode::Destroy, cause);
        }
        let Some(mut call) = self.calls.calls.remove(&key) else {
            if let Some((tsx, response)) = reply {
                let _ = self.dialogs.respond(Instant::now(), tsx, response);
            }
            return;
        };
        call.stage = Stage::Ended;
        self.calls.by_invite.remove(&call.invite_tsx);
        let now = Instant::now();
        while let Some(&(ended, tsx)) = self.calls.orphan_order.front() {
            if now.duration_since(ended) < ORPHAN_FORK_LIFETIME {
                break;
            }
            self.calls.orphan_order.pop_front();
            self.calls.orphan_forks.remove(&tsx);
        }
        let origin_forks = call.origin.iter().flat_map(|o| o.forks().iter());
        for fork in call.forks.iter().chain(origin_forks) {
            if fork.status.is_none() || fork.awaiting_final {
                self.calls.orphan_forks.insert(fork.tsx, fork.destination);
                self.calls.orphan_order.push_back((now, fork.tsx));
            }
            self.calls.by_fork.remove(&fork.tsx);
            if let Some(dialog) = fork.dialog {
                self.calls.by_dialog.remove(&dialog);
            }
        }
        for dialog in call
            .a_dialog
            .iter()
            .chain(call.b_dialog.iter())
            .chain(call.detached.iter())
        {
            self.calls.by_dialog.remove(dialog);
        }
        if let Some(transfer) = call.transfer.take() {
            for fork in &transfer.forks {
                self.calls.by_fork.remove(&fork.tsx);
                if let Some(dialog) = fork.dialog {
                    self.calls.by_dialog.remove(&dialog);
                }
            }
            self.media.close(transfer.endpoint.id);
        }
        self.end_joins(key, call.origin.as_deref(), &call.joined, now);
        for endpoint in [call.a_endpoint, call.b_endpoint].into_iter().flatten() {
            self.media.close(endpoint.id);
        }
        if let Some(active) = call.recording.take() {
            super::actions::finish_recording(active);
        }
        for number in [&call.caller, &call.b_number] {
            if !number.is_empty() && self.agents.get(number).call_state != CallState::Ready {
                self.agents
                    .apply(number, AgentChange::CallState(CallState::Ready));
            }
        }
        let end = now_utc();
        let cause = call.cause.unwrap_or(HangupCause::NormalClearing);
        let codec = |agreed: &Option<AgreedAudio>| {
            agreed
                .as_ref()
                .map(|a| a.codec.encoding.clone())
                .unwrap_or_default()
        };
        let cdr = Cdr {
            id: 0,
            uuid: call.uuid.clone(),
            bleg_uuid: call.bleg_uuid.clone(),
            sip_call_id: call.invite.headers.call_id().unwrap_or_default().to_owned(),
            direction: CallDirection::Internal,
            local_ip: self.local_sip.ip().to_string(),
            caller_id_name: call.caller.clone(),
            caller_id_number: call.caller.clone(),
            destination_number: call.destination.clone(),
            context: "default".to_owned(),
            start_stamp: call.start,
            answer_stamp: call.answer_stamp,
            end_stamp: end,
            duration: (end - call.start).num_seconds().max(0),
            billsec: call
                .answer_stamp
                .map_or(0, |answered| (end - answered).num_seconds().max(0)),
            hangup_cause: cause.name().to_owned(),
            sip_code: call
                .sip_code
                .map(i64::from)
                .or(call.answered.then_some(200)),
            accountcode: call.caller.clone(),
            read_codec: codec(&call.a_agreed),
            write_codec: codec(&call.b_agreed),
            gateway: String::new(),
            recording_path: call.recording_path.clone(),
        };
        tracing::info!(uuid = %call.uuid, cause = cause.name(), "call ended");
        let (durable, acknowledged) = tokio::sync::oneshot::channel();
        let job = super::cdr::CdrJob {
            cdr: Box::new(cdr),
            durable: Some(durable),
        };
        if self.cdr.send(job).is_err() {
            tracing::error!(uuid = %call.uuid, "the CDR writer is gone; the CDR is lost");
        }
        if let Some((tsx, response)) = reply {
            let ready = self.ready.clone();
            tokio::spawn(async move {
                let _ = acknowledged.await;
                let _ = ready.send((tsx, response));
            });
        }
    }

    /// A response to the INVITE of a call that ended while it rang: a 2xx (it crossed our
    /// CANCEL) is ACKed and the phone hung up at once; a final one ends the watch.
    fn handle_orphan_fork_response(
        &mut self,
        tsx: TsxId,
        dialog: Option<DialogId>,
        response: &Response,
        now: Instant,
    ) {
        if response.status < 200 {
            return;
        }
        let Some(destination) = self.calls.orphan_forks.remove(&tsx) else {
            return;
        };
        if let (Some(dialog), true) = (dialog, response.status < 300) {
            tracing::info!("a phone answered a call already over: ACK and BYE");
            self.send_ack_to(dialog, destination);
            self.bye_dialog(
                dialog,
                Some(destination),
                HangupCause::OriginatorCancel,
                now,
            );
        }
    }

    /// Dialog events that concern calls.
    pub(crate) fn handle_call_dialog_event(&mut self, event: DialogEvent, now: Instant) {
        match event {
            DialogEvent::Response {
                dialog,
                tsx,
                response,
            } if self.calls.owns_fork(tsx).is_some() => {
                self.handle_fork_response(tsx, dialog, response, now);
            }
            DialogEvent::ReliableProvisional {
                dialog,
                tsx,
                response,
            } if self.calls.owns_fork(tsx).is_some() => {
                self.prack_fork(tsx, dialog, now);
                self.handle_fork_response(tsx, Some(dialog), response, now);
            }
            DialogEvent::Response {
                dialog,
                tsx,
                response,
            } if self.calls.orphan_forks.contains_key(&tsx) => {
                self.handle_orphan_fork_response(tsx, dialog, &response, now);
            }
            DialogEvent::Response {
                dialog: Some(dialog),
                response,
                ..
            } => self.handle_in_call_response(dialog, response, now),
            DialogEvent::Request {
                dialog,
                tsx,
                request,
                ..
            } => self.handle_dialog_request(dialog, tsx, request, now),
            DialogEvent::AckReceived { dialog, request } if !request.body.is_empty() => {
                self.handle_ack_answer(dialog, &request);
            }
            DialogEvent::LateForkConfirmed { dialog, confirmed } => {
                // A second callee answered after the first: ACK its 2xx and BYE it (RFC 3261
                // §13.2.2.4), so that phone stops ringing-then-talking to nobody.
                let key = self
                    .calls
                    .by_dialog
                    .get(&dialog)
                    .or_else(|| self.calls.by_dialog.get(&confirmed))
                    .copied();
                let destination = key
                    .and_then(|key| self.calls.calls.get(&key))
                    .and_then(|call| call.fork_by_dialog(dialog))
                    .map(|fork| fork.destination);
                match (key, destination) {
                    (Some(key), Some(destination)) => {
                        self.calls.by_dialog.insert(dialog, key);
                        self.drop_late_answer(key, dialog, destination, now);
                    }
                    _ => {
                        tracing::debug!(
                            ?dialog,
                            "a late 2xx of another fork, not matched to its fork"
                        );
                        let _ = self.dialogs.terminate(dialog);
                    }
                }
            }
            DialogEvent::AckTimeout { dialog } => {
                // Our 2xx was never ACKed (the peer gave up, or it is gone): the call ends,
                // or it would hold its media ports forever.
                let key = self.calls.by_dialog.get(&dialog).copied().filter(|key| {
                    self.calls
                        .calls
                        .get(key)
                        .is_some_and(|c| c.a_dialog == Some(dialog) || c.b_dialog == Some(dialog))
                });
                match key {
                    Some(key) => {
                        // BYE to both sides (RFC 3261 §13.3.1.4); the dialogs end with it.
                        tracing::info!(?dialog, "no ACK for our 2xx: the call is ended");
                        self.hang_up(key, HangupCause::RecoveryOnTimerExpire, now);
                    }
                    None => {
                        let _ = self.dialogs.terminate(dialog);
                    }
                }
            }
            DialogEvent::Terminated { dialog, reason } => {
                let key = self.calls.by_dialog.remove(&dialog);
                // A party that no longer answers in its dialog (481 or 408 to our request, a
                // request that timed out) is gone: the call ends with it.
                let lost = matches!(
                    reason,
                    TerminationReason::PeerEnded { .. } | TerminationReason::NoResponse
                );
                if let Some(key) = key
                    && lost
                    && self.calls.calls.get(&key).is_some_and(|c| {
                        c.stage == Stage::Bridged
                            && (c.a_dialog == Some(dialog) || c.b_dialog == Some(dialog))
                    })
                {
                    tracing::info!(
                        ?dialog,
                        ?reason,
                        "a party of the call is gone: the call is ended"
                    );
                    self.hang_up(key, HangupCause::RecoveryOnTimerExpire, now);
                }
            }
            _ => {}
        }
    }
}

impl Service {
    /// Publishes `code` for one leg of call `key`. Progress events (ringing, answer, bridge…)
    /// go out once per leg; DTMF, hold, unhold and playback each time.
    fn publish(&mut self, key: CallKey, side: Side, code: EventCode, dtmf: &str) {
        let domain = self.local_sip.ip().to_string();
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let repeatable = matches!(
            code,
            EventCode::Dtmf
                | EventCode::Hold
                | EventCode::Unhold
                | EventCode::PlayRing
                | EventCode::PlayStop
                | EventCode::Park
                | EventCode::Unpark
        );
        let published = match side {
            Side::Caller => &mut call.a_published,
            Side::Callee => &mut call.b_published,
        };
        let bit = 1u32 << code.code();
        if !repeatable && *published & bit != 0 {
            return;
        }
        *published |= bit;
        let (uuid, other_uuid, direction, extension) = match side {
            Side::Caller => (
                call.uuid.clone(),
                call.bleg_uuid.clone(),
                // A leg the platform placed goes out, as the callee's does.
                if call.origin.is_some() {
                    LegDirection::Outbound
                } else {
                    LegDirection::Inbound
                },
                call.caller.clone(),
            ),
            Side::Callee => (
                call.bleg_uuid.clone(),
                call.uuid.clone(),
                LegDirection::Outbound,
                call.b_number.clone(),
            ),
        };
        let hangup_cause = match code {
            EventCode::Hangup | EventCode::Destroy => call
                .cause
                .unwrap_or(HangupCause::NormalClearing)
                .name()
                .to_owned(),
            _ => String::new(),
        };
        self.events.publish(CallEvent {
            code,
            uuid,
            other_uuid,
            callin_number: call.caller.clone(),
            dest_number: call.destination.clone(),
            domain,
            dtmf: dtmf.to_owned(),
            gateway: String::new(),
            originate_number: call.caller.clone(),
            direction,
            extension,
            timestamp: now_utc(),
            hangup_cause,
        });
    }

    fn publish_with_cause(
        &mut self,
        key: CallKey,
        side: Side,
        code: EventCode,
        cause: HangupCause,
    ) {
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.cause.get_or_insert(cause);
        }
        self.publish(key, side, code, "");
    }

    fn publish_dtmf(&mut self, key: CallKey, side: Side, digit: char) {
        let mut text = [0u8; 4];
        let digit = digit.encode_utf8(&mut text).to_owned();
        self.publish(key, side, EventCode::Dtmf, &digit);
    }

    /// The callee leg of the current bridge is over (it failed, timed out or the call
    /// ends): its hang-up and destroy events, once; a later bridge starts a new leg.
    fn end_callee_leg(&mut self, key: CallKey, cause: HangupCause) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let started = call.b_published & (1 << EventCode::CallOut.code()) != 0;
        let ended = call.b_published & (1 << EventCode::Destroy.code()) != 0;
        if !started || ended {
            return;
        }
        let saved = call.cause.replace(cause);
        self.publish(key, Side::Callee, EventCode::Hangup, "");
        self.publish(key, Side::Callee, EventCode::Destroy, "");
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.cause = saved;
            // A later bridge is a new leg with its own events.
            call.b_published = 0;
        }
    }

    /// An event of the media threads: a DTMF digit received on a leg becomes a call event;
    /// the end of a prompt runs the next detail; a party silent past the RTP timeout ends
    /// the call. The event names its call, so finding it costs one lookup.
    pub(crate) fn handle_media_event(&mut self, event: crate::media::io::EndpointEvent) {
        use crate::media::shard::MediaEvent;
        let key = CallKey(event.call);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let side = if call.a_endpoint.is_some_and(|e| e.id == event.endpoint) {
            Some(Side::Caller)
        } else if call.b_endpoint.is_some_and(|e| e.id == event.endpoint) {
            Some(Side::Callee)
        } else {
            None
        };
        match event.event {
            MediaEvent::PlaybackDone { .. } => {
                if side.is_some() && call.api_playback == side {
                    self.end_api_playback(key);
                } else if call.waiting_playback == Some(event.endpoint) {
                    if call.stage == Stage::Bridged {
                        self.end_announcement(key);
                    } else {
                        call.waiting_playback = None;
                        call.deadline = None;
                        self.publish(key, Side::Caller, EventCode::PlayStop, "");
                        self.run_details(key, Instant::now());
                    }
                }
            }
            MediaEvent::Dtmf { digit, .. } => {
                if let Some(side) = side {
                    self.publish_dtmf(key, side, digit);
                }
            }
            MediaEvent::RtpTimeout { .. } => {
                let Some(side) = side else { return };
                if call.stage != Stage::Bridged || call.holding.any() {
                    return;
                }
                tracing::info!(
                    uuid = %call.uuid, leg = ?side,
                    "no RTP from a party within rtp.timeout_secs: the call is ended"
                );
                self.hang_up(key, HangupCause::MediaTimeout, Instant::now());
            }
            MediaEvent::Latched { .. } | MediaEvent::RtcpBye { .. } => {}
        }
    }
}

/// A blind transfer in progress (REFER from either party): the target rings while the
/// transferee hears ringback; the transferor's leg stays in the call until the target
/// answers, so a failed transfer gives the transferee back to it.
struct Transfer {
    /// The side that stays (the other one transferred it): the target joins it.
    transferee: Side,
    /// The transferor's dialog (the REFER's), for NOTIFY.
    transferor_dialog: DialogId,
    transferor_destination: Peer,
    /// The transferor hung up while the target rang.
    transferor_gone: bool,
    target: String,
    forks: Vec<Fork>,
    endpoint: Endpoint,
    offer: SessionDescription,
    origin: OriginState,
}

/// The party that asked for a transfer, and whether it is still there to be told.
#[derive(Clone, Copy)]
struct Transferor {
    dialog: DialogId,
    destination: Peer,
    present: bool,
}

/// A leg taken out of one call to join another (attended transfer).
struct MovedLeg {
    dialog: DialogId,
    destination: Peer,
    endpoint: Endpoint,
    agreed: AgreedAudio,
    origin: OriginState,
    number: String,
    uuid: String,
    session: LegSession,
}

impl Service {
    /// REFER in a call (RFC 3515) from either party (the transferor): a blind transfer of
    /// the other party (the transferee) to the extension in Refer-To, or with `Replaces` in
    /// Refer-To, an attended transfer: the transferee is joined with the other party of the
    /// dialog it names (RFC 3891). The transferor hears of the outcome by NOTIFY
    /// (message/sipfrag) and is then hung up.
    fn handle_refer(
        &mut self,
        key: CallKey,
        dialog: DialogId,
        tsx: TsxId,
        request: Request,
        now: Instant,
    ) {
        let refuse = |service: &mut Service, status: u16, why: &str| {
            let _ = service
                .dialogs
                .respond(now, tsx, refusal(&request, status, why));
        };
        let Some(call) = self.calls.calls.get(&key) else {
            return refuse(self, 481, "the call is gone");
        };
        if call.stage != Stage::Bridged || call.transfer.is_some() {
            return refuse(
                self,
                491,
                "the call is not in a state to transfer (not bridged, or a transfer is under way)",
            );
        }
        let transferor = call.side_of(dialog);
        let destination = match transferor {
            Side::Caller => Some(call.source),
            Side::Callee => call.b_destination,
        };
        let Some(destination) = destination else {
            return refuse(self, 481, "the call is gone");
        };
        let refer_to = request
            .headers
            .first("Refer-To")
            .and_then(|value| NameAddr::parse_single("Refer-To", value).ok());
        let Some(refer_to) = refer_to else {
            tracing::debug!(refer_to = ?request.headers.first("Refer-To"), "REFER refused: Refer-To does not parse");
            return refuse(self, 400, "Refer-To is missing or does not parse");
        };
        let target = uri_user(&refer_to.uri);
        let replaces = match &refer_to.uri {
            Uri::Sip(sip) => sip.headers.as_deref().and_then(replaces_of),
            _ => None,
        };
        let mut accepted = Response::for_request(&request, 202, "Accepted");
        accepted.headers.push(Header::new(
            "Contact",
            format!("<sip:{}@{}>", call.destination, self.local_sip),
        ));
        let _ = self.dialogs.respond(now, tsx, accepted);
        // The 202 goes out before the NOTIFY.
        self.pump_dialog_transmits();
        self.notify_transferor(dialog, destination, 100, false, now);
        match replaces {
            Some(replaces) => self.attended_transfer(key, dialog, destination, &replaces, now),
            None => self.blind_transfer(key, dialog, destination, &target, now),
        }
    }

    /// Tells the transferor how its transfer goes: a NOTIFY in the REFER's dialog with the
    /// status line of the target's answer (RFC 3515 §2.4.5).
    fn notify_transferor(
        &mut self,
        dialog: DialogId,
        destination: Peer,
        status: u16,
        terminated: bool,
        now: Instant,
    ) {
        let Ok(mut outgoing) = self.dialogs.request(dialog, Method::Notify) else {
            return;
        };
        let headers = &mut outgoing.request.headers;
        headers.push(Header::new("Event", "refer"));
        headers.push(Header::new(
            "Subscription-State",
            if terminated {
                "terminated;reason=noresource"
            } else {
                "active;expires=60"
            },
        ));
        outgoing.set_body(
            "message/sipfrag;version=2.0",
            format!("SIP/2.0 {status} {}\r\n", reason_phrase(status)).into_bytes(),
        );
        self.send_in_dialog(outgoing, destination, now);
    }

    /// Rings `target` for the caller of call `key`; the caller hears ringback meanwhile.
    fn blind_transfer(
        &mut self,
        key: CallKey,
        dialog: DialogId,
        destination: Peer,
        target: &str,
        now: Instant,
    ) {
        let snapshot = self.live.current();
        let bindings: Vec<_> = if snapshot.extensions.contains_key(target) {
            self.bindings_of(target)
        } else {
            Vec::new()
        };
        if bindings.is_empty() {
            let status = if snapshot.extensions.contains_key(target) {
                480
            } else {
                404
            };
            tracing::info!(%target, status, "transfer target unreachable");
            self.notify_transferor(dialog, destination, status, true, now);
            return;
        }
        let endpoint = match self.media.open(key.0) {
            Ok(endpoint) => endpoint,
            Err(error) => {
                tracing::error!(%error, "no RTP port for the transfer target");
                self.notify_transferor(dialog, destination, 503, true, now);
                return;
            }
        };
        let mut local = self.local_media(&endpoint);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let transferee = call.side_of(dialog).other();
        // The transferee's codec first: the target may then be bridged without transcoding.
        prefer_codec(&mut local, call.agreed(transferee));
        let mut origin = OriginState::new(rand::random::<u32>().into());
        let transfer_offer = offer(&local, &mut origin);
        let caller = match transferee {
            Side::Caller => call.caller.clone(),
            Side::Callee => call.b_number.clone(),
        };
        let timeout = call.call_timeout;
        let uuid = call.uuid.clone();
        let transferee_endpoint = call.endpoint(transferee);
        let forks = self.send_forks(&caller, None, target, bindings, &transfer_offer, now);
        if forks.is_empty() {
            self.media.close(endpoint.id);
            self.notify_transferor(dialog, destination, 503, true, now);
            return;
        }
        tracing::info!(%uuid, %target, "blind transfer: ringing the target");
        for fork in &forks {
            self.calls.by_fork.insert(fork.tsx, key);
        }
        if let Some(endpoint) = transferee_endpoint {
            let ringback = FeedSpec::Tone(ToneSpec::china_ringback());
            if let Err(error) = self.media.set_feed(endpoint.id, ringback) {
                tracing::warn!(%uuid, %error, "no ringback for the transferee");
            }
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        call.deadline = Some(now + timeout);
        self.calls.deadlines.push(Reverse((now + timeout, key)));
        call.transfer = Some(Transfer {
            transferee,
            transferor_dialog: dialog,
            transferor_destination: destination,
            transferor_gone: false,
            target: target.to_owned(),
            forks,
            endpoint,
            offer: transfer_offer,
            origin,
        });
    }

    /// A response to one of a transfer's INVITEs to its target.
    fn handle_transfer_fork_response(
        &mut self,
        key: CallKey,
        tsx: TsxId,
        dialog: Option<DialogId>,
        response: Response,
        now: Instant,
    ) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(transfer) = call.transfer.as_mut() else {
            return;
        };
        let Some(index) = transfer.forks.iter().position(|f| f.tsx == tsx) else {
            return;
        };
        if let Some(dialog) = dialog {
            transfer.forks[index].dialog = Some(dialog);
            self.calls.by_dialog.insert(dialog, key);
        }
        let status = response.status;
        match status {
            100..=199 => {}
            200..=299 => {
                transfer.forks[index].status = Some(status);
                let Some(dialog) = dialog else { return };
                self.send_ack(dialog, now);
                let Some(call) = self.calls.calls.get_mut(&key) else {
                    return;
                };
                let Some(transfer) = call.transfer.take() else {
                    return;
                };
                let agreed = SessionDescription::parse(&response.body)
                    .ok()
                    .and_then(|sdp| agreed_from_answer(&transfer.offer, &sdp).ok());
                let Some(agreed) = agreed else {
                    // An answer we cannot use: end that leg, the transfer failed.
                    call.transfer = Some(transfer);
                    self.bye_dialog(dialog, None, HangupCause::IncompatibleDestination, now);
                    self.transfer_failed(key, 488, now);
                    return;
                };
                let destination = transfer.forks[index].destination;
                let others: Vec<Fork> = transfer
                    .forks
                    .iter()
                    .enumerate()
                    .filter(|(i, f)| *i != index && f.status.is_none())
                    .map(|(_, f)| f.clone())
                    .collect();
                for other in &others {
                    self.send_cancel(other, now);
                }
                let moved = MovedLeg {
                    dialog,
                    destination,
                    endpoint: transfer.endpoint,
                    agreed,
                    origin: transfer.origin,
                    number: transfer.target.clone(),
                    uuid: new_uuid(),
                    session: self.callee_session(&response, now),
                };
                if let Some(call) = self.calls.calls.get_mut(&key) {
                    for fork in &transfer.forks {
                        self.calls.by_fork.insert(fork.tsx, key);
                    }
                    call.forks.extend(transfer.forks);
                }
                self.complete_transfer(
                    key,
                    transfer.transferee.other(),
                    Transferor {
                        dialog: transfer.transferor_dialog,
                        destination: transfer.transferor_destination,
                        present: !transfer.transferor_gone,
                    },
                    moved,
                    HangupCause::BlindTransfer,
                    now,
                );
            }
            _ => {
                transfer.forks[index].status = Some(status);
                if transfer.forks.iter().all(|f| f.status.is_some()) {
                    let best = most_telling_status(&transfer.forks, status);
                    self.transfer_failed(key, best, now);
                }
            }
        }
    }

    /// The target did not take the call: the transferor hears why; the transferee goes back
    /// to the transferor, or, when it has hung up, the call ends.
    fn transfer_failed(&mut self, key: CallKey, status: u16, now: Instant) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(transfer) = call.transfer.take() else {
            return;
        };
        call.deadline = None;
        tracing::info!(uuid = %call.uuid, target = %transfer.target, status, "transfer failed");
        for fork in &transfer.forks {
            self.calls.by_fork.remove(&fork.tsx);
            if fork.status.is_none() {
                self.send_cancel(fork, now);
            }
        }
        self.media.close(transfer.endpoint.id);
        if transfer.transferor_gone {
            self.hang_up(key, HangupCause::from_sip_status(status), now);
        } else {
            self.notify_transferor(
                transfer.transferor_dialog,
                transfer.transferor_destination,
                status,
                true,
                now,
            );
            // Back to the transferor.
            self.start_media(key);
        }
    }

    /// `moved` takes the place (`place`: the transferor's side) of the transferor in call
    /// `key`: its media moves to the call's thread, the transferor is told (when still
    /// there) and hung up, and the call goes on with the other party.
    fn complete_transfer(
        &mut self,
        key: CallKey,
        place: Side,
        transferor: Transferor,
        moved: MovedLeg,
        cause: HangupCause,
        now: Instant,
    ) {
        if let Err(error) = self.media.migrate(moved.endpoint.id, key.0) {
            tracing::warn!(%error, "the transferred leg's media could not move");
        }
        if place == Side::Callee {
            // The transferor's leg ends here (the caller's leg is the call's own).
            self.end_callee_leg(key, cause);
        }
        if transferor.present {
            let (dialog, destination) = (transferor.dialog, transferor.destination);
            self.notify_transferor(dialog, destination, 200, true, now);
            self.bye_dialog(dialog, Some(destination), cause, now);
        }
        match place {
            Side::Callee => self.replace_callee(key, transferor.dialog, moved, cause),
            Side::Caller => {
                self.replace_caller(key, transferor.dialog, moved);
                self.publish_joined_again(key, Side::Callee);
            }
        }
    }

    /// `moved` takes the callee's place in call `key`; the callee's dialog `replaced` is
    /// already being hung up.
    fn replace_callee(
        &mut self,
        key: CallKey,
        replaced: DialogId,
        moved: MovedLeg,
        cause: HangupCause,
    ) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        call.detached.push(replaced);
        if let Some(old) = call.b_endpoint.replace(moved.endpoint) {
            self.media.close(old.id);
        }
        let call = self.calls.calls.get_mut(&key).expect("looked up above");
        call.b_dialog = Some(moved.dialog);
        call.b_destination = Some(moved.destination);
        call.b_agreed = Some(moved.agreed);
        call.b_origin = moved.origin;
        call.b_number = moved.number;
        call.bleg_uuid = moved.uuid;
        call.b_session = moved.session;
        if let Some(timer) = moved.session.timer {
            self.calls.deadlines.push(Reverse((timer.due, key)));
        }
        let call = self.calls.calls.get_mut(&key).expect("looked up above");
        call.holding.set(Side::Callee, false);
        call.deadline = None;
        // A leg from another call (attended) already had its CALLOUT and ANSWER there; a
        // blind transfer's target or a replacing party is a new leg.
        let new_leg = cause != HangupCause::AttendedTransfer;
        call.b_published = if new_leg {
            0
        } else {
            (1 << EventCode::CallOut.code()) | (1 << EventCode::Answer.code())
        };
        tracing::info!(uuid = %call.uuid, to = %call.b_number, "transferred");
        self.calls.by_dialog.insert(moved.dialog, key);
        self.start_media(key);
        for code in [
            EventCode::CallOut,
            EventCode::Answer,
            EventCode::Bridged,
            EventCode::Talking,
        ] {
            self.publish(key, Side::Callee, code, "");
        }
        self.publish_joined_again(key, Side::Caller);
    }

    /// BRIDGED and TALKING again for `side`, which stayed while its other party changed.
    fn publish_joined_again(&mut self, key: CallKey, side: Side) {
        for code in [EventCode::Bridged, EventCode::Talking] {
            if let Some(call) = self.calls.calls.get_mut(&key) {
                match side {
                    Side::Caller => call.a_published &= !(1 << code.code()),
                    Side::Callee => call.b_published &= !(1 << code.code()),
                }
            }
            self.publish(key, side, code, "");
        }
    }

    /// REFER with Replaces from a party of call `key`: the dialog Replaces names belongs
    /// to another call of the transferor; the other party of that call takes the
    /// transferor's place here, and that other call ends.
    fn attended_transfer(
        &mut self,
        key: CallKey,
        dialog: DialogId,
        destination: Peer,
        replaces: &Replaces,
        now: Instant,
    ) {
        let named = self.dialog_named(replaces);
        let other_key = named.and_then(|d| self.calls.by_dialog.get(&d).copied().map(|k| (d, k)));
        let Some((named, other_key)) = other_key.filter(|(_, k)| *k != key) else {
            tracing::info!(call_id = %replaces.call_id, "attended transfer: no call has the dialog Replaces names");
            self.notify_transferor(dialog, destination, 481, true, now);
            return;
        };
        let Some(other) = self.calls.calls.get_mut(&other_key) else {
            return;
        };
        if other.stage != Stage::Bridged {
            self.notify_transferor(dialog, destination, 491, true, now);
            return;
        }
        // The party to keep is the one the transferor talks to in the other call.
        let keep = other.side_of(named).other();
        let Some(moved) = self.take_leg(other_key, keep) else {
            self.notify_transferor(dialog, destination, 500, true, now);
            return;
        };
        tracing::info!(to = %moved.number, "attended transfer");
        self.calls.by_dialog.remove(&moved.dialog);
        // The other call is over for the transferor.
        self.hang_up(other_key, HangupCause::AttendedTransfer, now);
        let place = match self.calls.calls.get(&key) {
            Some(call) => call.side_of(dialog),
            None => return,
        };
        let transferor = Transferor {
            dialog,
            destination,
            present: true,
        };
        self.complete_transfer(
            key,
            place,
            transferor,
            moved,
            HangupCause::AttendedTransfer,
            now,
        );
    }

    /// Takes `side`'s answered leg out of call `key` (its dialog, endpoint and media), to
    /// put it into another call; the call keeps its other party. `None` when that side has
    /// no answered leg.
    fn take_leg(&mut self, key: CallKey, side: Side) -> Option<MovedLeg> {
        let other = self.calls.calls.get_mut(&key)?;
        let moved = match side {
            Side::Callee => {
                let (Some(d), Some(dest), Some(endpoint), Some(agreed)) = (
                    other.b_dialog.take(),
                    other.b_destination,
                    other.b_endpoint.take(),
                    other.b_agreed.take(),
                ) else {
                    return None;
                };
                for fork in other.forks.iter().filter(|f| f.dialog == Some(d)) {
                    self.calls.by_fork.remove(&fork.tsx);
                }
                other.forks.retain(|f| f.dialog != Some(d));
                // The moved leg's events go on in the other call.
                other.b_published |= 1 << EventCode::Destroy.code();
                MovedLeg {
                    dialog: d,
                    destination: dest,
                    endpoint,
                    agreed,
                    origin: other.b_origin.clone(),
                    number: other.b_number.clone(),
                    uuid: other.bleg_uuid.clone(),
                    session: std::mem::take(&mut other.b_session),
                }
            }
            Side::Caller => {
                let (Some(d), Some(endpoint), Some(agreed)) = (
                    other.a_dialog.take(),
                    other.a_endpoint.take(),
                    other.a_agreed.take(),
                ) else {
                    return None;
                };
                other.a_published |=
                    (1 << EventCode::Hangup.code()) | (1 << EventCode::Destroy.code());
                MovedLeg {
                    dialog: d,
                    destination: other.source,
                    endpoint,
                    agreed,
                    origin: other.a_origin.clone(),
                    number: other.caller.clone(),
                    uuid: other.uuid.clone(),
                    session: std::mem::take(&mut other.a_session),
                }
            }
        };
        self.calls.by_dialog.remove(&moved.dialog);
        Some(moved)
    }

    /// The dialog of ours that a Replaces names (its tags in either order: the sender may
    /// see the dialog from either end).
    fn dialog_named(&self, replaces: &Replaces) -> Option<DialogId> {
        [
            (replaces.to_tag.clone(), replaces.from_tag.clone()),
            (replaces.from_tag.clone(), replaces.to_tag.clone()),
        ]
        .into_iter()
        .find_map(|(local, remote)| {
            self.dialogs.find(&crate::sip::dialog::DialogIdentity {
                call_id: replaces.call_id.clone(),
                local_tag: crate::sip::dialog::Tag::new(local),
                remote_tag: crate::sip::dialog::Tag::new(remote),
            })
        })
    }

    /// An INVITE with a `Replaces` header (RFC 3891) from an authenticated extension: the
    /// new party takes the place of the party of the confirmed dialog it names, in that
    /// dialog's call (the replaced party is hung up with `PICKED_OFF`). Refused with 481 when
    /// no answered call has that dialog (RFC 3891 §3: early dialogs included), 488 without a
    /// usable offer.
    fn handle_replacing_invite(
        &mut self,
        tsx: TsxId,
        request: Request,
        source: Peer,
        party: String,
        replaces: Replaces,
    ) {
        let now = Instant::now();
        let refuse = |service: &mut Service, status: u16, why: &str| {
            service.respond(tsx, refusal(&request, status, why));
        };
        let found = self.dialog_named(&replaces).and_then(|named| {
            let key = *self.calls.by_dialog.get(&named)?;
            let call = self.calls.calls.get(&key)?;
            let side = if call.a_dialog == Some(named) {
                Side::Caller
            } else if call.b_dialog == Some(named) {
                Side::Callee
            } else {
                return None;
            };
            (call.stage == Stage::Bridged && call.transfer.is_none()).then_some((named, key, side))
        });
        let Some((named, key, side)) = found else {
            tracing::info!(call_id = %replaces.call_id, "INVITE with Replaces: no answered call has that dialog");
            return refuse(self, 481, "no answered call has the dialog Replaces names");
        };
        let Ok(offer_sdp) = SessionDescription::parse(&request.body) else {
            return refuse(self, 488, "an INVITE with Replaces needs an SDP offer");
        };
        let timer = negotiate_as_uas(&request.headers, &self.timers);
        if let UasDecision::TooSmall { min_se } = timer {
            let mut r = Response::for_request(&request, 422, reason_phrase(422));
            r.headers.push(Header::new("Min-SE", min_se.to_string()));
            return self.respond(tsx, r);
        }
        if self.dialogs.handle_incoming_invite(tsx, &request).is_err() {
            return refuse(self, 503, "no room for another dialog");
        }
        let endpoint = match self.media.open(key.0) {
            Ok(endpoint) => endpoint,
            Err(error) => {
                tracing::error!(%error, "no RTP port for the replacing party");
                let r = Response::for_request(&request, 503, reason_phrase(503));
                return self.respond_dialog(tsx, r);
            }
        };
        let local = self.local_media(&endpoint);
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let prefer: Vec<_> = call
            .agreed(side.other())
            .iter()
            .map(|a| a.codec.clone())
            .collect();
        let mut origin = OriginState::new(rand::random::<u32>().into());
        let (answer_sdp, agreed) = match answer(&offer_sdp, &local, &prefer, &mut origin) {
            Ok(done) => done,
            Err(error) => {
                self.media.close(endpoint.id);
                let r = refusal(&request, 488, &error.to_string());
                return self.respond_dialog(tsx, r);
            }
        };
        self.media
            .configure(endpoint.id, leg_config(&agreed, rand::random()));
        let mut ok = Response::for_request(&request, 200, "OK");
        ok.headers.push(Header::new(
            "Contact",
            format!("<sip:{}@{}>", uri_user(&request.uri), self.local_sip),
        ));
        ok.headers
            .push(Header::new("Server", self.server_name.clone()));
        ok.set_body("application/sdp", answer_sdp.to_string().into_bytes());
        timer.add_to(&mut ok.headers);
        let dialog = match self.dialogs.respond(now, tsx, ok) {
            Ok(Some(dialog)) => dialog,
            _ => {
                self.media.close(endpoint.id);
                return;
            }
        };
        let session = LegSession {
            timer: match timer {
                UasDecision::Run {
                    interval,
                    refresher,
                    ..
                } => Some(LegTimer::start(interval, refresher, now)),
                UasDecision::TooSmall { .. } => None,
            },
            allows_update: allows_update(&request.headers),
        };
        if let Some(timer) = session.timer {
            self.calls.deadlines.push(Reverse((timer.due, key)));
        }
        tracing::info!(%party, replaced = ?side, "INVITE with Replaces: the party takes the call over");
        let replaced_destination = {
            let call = self.calls.calls.get(&key).expect("looked up above");
            match side {
                Side::Caller => Some(call.source),
                Side::Callee => call.b_destination,
            }
        };
        self.bye_dialog(named, replaced_destination, HangupCause::PickedOff, now);
        let moved = MovedLeg {
            dialog,
            destination: source,
            endpoint,
            agreed,
            origin,
            number: party,
            uuid: new_uuid(),
            session,
        };
        // As a transfer without a transferor to tell: the replaced party is hung up above.
        let replaced = Transferor {
            dialog: named,
            destination: source,
            present: false,
        };
        self.complete_transfer(key, side, replaced, moved, HangupCause::PickedOff, now);
    }

    /// `moved` takes the caller's place in call `key`; the caller's dialog `replaced` is
    /// already being hung up. The call keeps its uuid and CDR.
    fn replace_caller(&mut self, key: CallKey, replaced: DialogId, moved: MovedLeg) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        call.detached.push(replaced);
        let old = call.a_endpoint.replace(moved.endpoint);
        call.a_dialog = Some(moved.dialog);
        call.source = moved.destination;
        call.a_agreed = Some(moved.agreed);
        call.a_origin = moved.origin;
        call.a_session = moved.session;
        call.holding.set(Side::Caller, false);
        call.deadline = None;
        tracing::info!(uuid = %call.uuid, by = %moved.number, "the caller's place is taken");
        self.calls.by_dialog.insert(moved.dialog, key);
        if let Some(old) = old {
            self.media.close(old.id);
        }
        self.start_media(key);
        if let Some(call) = self.calls.calls.get(&key)
            && let (Some(a), Some(b)) = (call.a_endpoint, call.b_endpoint)
        {
            let _ = self.media.set_feed(a.id, FeedSpec::Endpoint(b.id));
        }
    }

    /// BYE in `dialog` (to `destination`, or the dialog's callee fork) with `cause`.
    fn bye_dialog(
        &mut self,
        dialog: DialogId,
        destination: Option<Peer>,
        cause: HangupCause,
        now: Instant,
    ) {
        let destination = destination.or_else(|| {
            let key = self.calls.by_dialog.get(&dialog)?;
            let call = self.calls.calls.get(key)?;
            call.fork_by_dialog(dialog).map(|f| f.destination)
        });
        let Some(destination) = destination else {
            return;
        };
        let Ok(mut outgoing) = self.dialogs.request(dialog, Method::Bye) else {
            return;
        };
        outgoing
            .request
            .headers
            .push(Header::new("Reason", cause.reason_header()));
        self.send_in_dialog(outgoing, destination, now);
    }
}

/// The Replaces of a Refer-To URI (RFC 3891), as its headers part carries it escaped:
/// `Replaces=CALLID%3Bto-tag%3DT%3Bfrom-tag%3DF`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Replaces {
    call_id: String,
    to_tag: String,
    from_tag: String,
}

fn replaces_of(uri_headers: &str) -> Option<Replaces> {
    let value = uri_headers.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.eq_ignore_ascii_case("Replaces").then_some(value)
    })?;
    Replaces::parse_header(&percent_decode(value)?)
}

impl Replaces {
    /// A `Replaces` header value: `call-id;to-tag=T;from-tag=F[;early-only]`.
    fn parse_header(value: &str) -> Option<Replaces> {
        replaces_value(value)
    }
}

fn replaces_value(decoded: &str) -> Option<Replaces> {
    let mut parts = decoded.split(';');
    let call_id = parts.next()?.trim().to_owned();
    let (mut to_tag, mut from_tag) = (None, None);
    for part in parts {
        match part.trim().split_once('=') {
            Some((name, tag)) if name.eq_ignore_ascii_case("to-tag") => to_tag = Some(tag),
            Some((name, tag)) if name.eq_ignore_ascii_case("from-tag") => from_tag = Some(tag),
            _ => {}
        }
    }
    if call_id.is_empty() {
        return None;
    }
    Some(Replaces {
        call_id,
        to_tag: to_tag?.to_owned(),
        from_tag: from_tag?.to_owned(),
    })
}

/// `%XX` escapes decoded; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Service {
    pub(crate) fn call_caller(&self, key: CallKey) -> Option<String> {
        self.calls.calls.get(&key).map(|c| c.caller.clone())
    }

    /// (destination, caller) of call `key`.
    pub(crate) fn call_parties(&self, key: CallKey) -> Option<(String, String)> {
        self.calls
            .calls
            .get(&key)
            .map(|c| (c.destination.clone(), c.caller.clone()))
    }

    pub(crate) fn call_uuid(&self, key: CallKey) -> Option<String> {
        self.calls.calls.get(&key).map(|c| c.uuid.clone())
    }

    /// Whether call `key` is being recorded.
    pub(crate) fn call_recording(&self, key: CallKey) -> bool {
        self.calls
            .calls
            .get(&key)
            .is_some_and(|c| c.recording.is_some())
    }

    /// The caller's media endpoint, giving the caller early media (183) first when it has
    /// none yet.
    pub(crate) fn caller_media(&mut self, key: CallKey) -> Option<crate::media::io::EndpointId> {
        let call = self.calls.calls.get(&key)?;
        if !call.a_answered_sdp && self.answer_caller(key, Some(183)).is_err() {
            return None;
        }
        self.calls.calls.get(&key)?.a_endpoint.map(|e| e.id)
    }

    /// The details of call `key` wait for the end of the prompt on `endpoint`.
    pub(crate) fn note_playback(&mut self, key: CallKey, endpoint: crate::media::io::EndpointId) {
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.waiting_playback = Some(endpoint);
        }
    }

    /// The callee just answered: when its extension has `play_job_number`, the caller
    /// hears the job number first (spec §2.25) while the callee hears silence; they are
    /// joined when it ends.
    fn announce_job_number(&mut self, key: CallKey, now: Instant) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let snapshot = self.live.current();
        let Some(extension) = snapshot
            .extensions
            .get(&call.b_number)
            .filter(|e| e.play_job_number)
        else {
            return;
        };
        let (Some(a), Some(b)) = (call.a_endpoint, call.b_endpoint) else {
            return;
        };
        let Some(samples) = self.job_number_audio(extension) else {
            tracing::warn!(uuid = %call.uuid, "the job number cannot be announced (a prompt is missing); the parties are joined at once");
            return;
        };
        let seconds = samples.len() as f64 / 8000.0;
        let announcement = FeedSpec::Play {
            samples: samples.into(),
            rate: 8000,
            looping: false,
        };
        if let Err(error) = self.media.set_feed(a.id, announcement) {
            tracing::warn!(%error, "the job number could not be played");
            return;
        }
        let _ = self.media.set_feed(b.id, FeedSpec::Silence);
        let until = now + Duration::from_secs_f64(seconds + 2.0);
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.waiting_playback = Some(a.id);
            call.deadline = Some(until);
        }
        self.calls.deadlines.push(Reverse((until, key)));
        self.publish(key, Side::Caller, EventCode::PlayRing, "");
    }

    /// The job number was announced: the parties hear each other.
    fn end_announcement(&mut self, key: CallKey) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        call.waiting_playback = None;
        call.deadline = None;
        let (Some(a), Some(b), holding) = (call.a_endpoint, call.b_endpoint, call.holding) else {
            return;
        };
        // A hold during the announcement keeps its music on hold.
        if !holding.by(Side::Callee) {
            let _ = self.media.set_feed(a.id, FeedSpec::Endpoint(b.id));
        }
        if !holding.by(Side::Caller) {
            let _ = self.media.set_feed(b.id, FeedSpec::Endpoint(a.id));
        }
        self.publish(key, Side::Caller, EventCode::PlayStop, "");
    }

    pub(crate) fn publish_caller_event(&mut self, key: CallKey, code: EventCode) {
        self.publish(key, Side::Caller, code, "");
    }

    /// Starts recording call `key` into `active` (both parties, as their media exists).
    pub(crate) fn start_recording(
        &mut self,
        key: CallKey,
        mut active: super::actions::ActiveRecording,
    ) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let (caller, callee) = (
            call.a_endpoint
                .filter(|_| call.a_agreed.is_some())
                .map(|e| e.id),
            call.b_endpoint
                .filter(|_| call.b_agreed.is_some())
                .map(|e| e.id),
        );
        let caller_missing = caller.is_none();
        self.attach_recording_sinks(caller, callee, &mut active);
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.recording_path = active.path.display().to_string();
            call.recording = Some(active);
            if caller_missing {
                tracing::debug!(uuid = %call.uuid, "recording before the caller has media: its sink follows the answer");
            }
        }
    }
}

/// What a held party hears until a music-on-hold prompt is configured: a soft 425 Hz tone,
/// half a second every four seconds (quieter than ringback, so it is not taken for it).
/// Session timers (RFC 4028) in calls: see [`super::session_timer`] for the negotiation.
impl Service {
    /// Adds the session timer the caller's INVITE asked for to its 200, and starts that
    /// leg's timer.
    fn start_caller_timer(&mut self, key: CallKey, response: &mut Response) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(decision) = call.a_timer_answer.take() else {
            return;
        };
        decision.add_to(&mut response.headers);
        if let UasDecision::Run {
            interval,
            refresher,
            ..
        } = decision
        {
            let timer = LegTimer::start(interval, refresher, Instant::now());
            call.a_session.timer = Some(timer);
            self.calls.deadlines.push(Reverse((timer.due, key)));
        }
    }

    /// The session of a callee leg from the 2xx to our INVITE.
    fn callee_session(&self, response: &Response, now: Instant) -> LegSession {
        let (interval, refresher) =
            negotiate_as_uac(&response.headers, self.timers.session_expires);
        LegSession {
            timer: Some(LegTimer::start(interval, refresher, now)),
            allows_update: allows_update(&response.headers),
        }
    }

    /// A re-INVITE or UPDATE from one side refreshes its session: 422 when it asks for too
    /// short an interval (then `None`: the request is answered), else what its 2xx carries.
    fn session_refresh_request(&mut self, tsx: TsxId, request: &Request) -> Option<UasDecision> {
        let decision = negotiate_as_uas(&request.headers, &self.timers);
        if let UasDecision::TooSmall { min_se } = decision {
            let mut response = Response::for_request(request, 422, reason_phrase(422));
            response
                .headers
                .push(Header::new("Min-SE", min_se.to_string()));
            let _ = self.dialogs.respond(Instant::now(), tsx, response);
            return None;
        }
        Some(decision)
    }

    /// The 2xx to a refreshing request of `side`: it carries the session timer, which
    /// restarts.
    fn session_refreshed(
        &mut self,
        key: CallKey,
        side: Side,
        decision: &UasDecision,
        response: &mut Response,
    ) {
        decision.add_to(&mut response.headers);
        let UasDecision::Run {
            interval,
            refresher,
            ..
        } = *decision
        else {
            return;
        };
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let timer = LegTimer::start(interval, refresher, Instant::now());
        call.session_mut(side).timer = Some(timer);
        self.calls.deadlines.push(Reverse((timer.due, key)));
    }

    /// A leg's session timer is due: we refresh it, or (its party refreshes) it expired and
    /// the call ends.
    fn session_timer_due(&mut self, key: CallKey, side: Side, now: Instant) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(timer) = call.session_mut(side).timer else {
            return;
        };
        match timer.refresher {
            Refresher::Peer => {
                tracing::info!(
                    uuid = %call.uuid, leg = ?side, interval = timer.interval,
                    "session timer expired without a refresh: the call is ended"
                );
                call.session_mut(side).timer = None;
                self.hang_up(key, HangupCause::RecoveryOnTimerExpire, now);
            }
            Refresher::Us => {
                // The next refresh at half the interval again; a 2xx may change it. A party
                // that is gone shows as a 481 or a timeout, which ends the call.
                let next = LegTimer::start(timer.interval, Refresher::Us, now);
                call.session_mut(side).timer = Some(next);
                self.calls.deadlines.push(Reverse((next.due, key)));
                self.send_session_refresh(key, side, timer.interval, now);
            }
        }
    }

    /// Refreshes `side`'s session: UPDATE without SDP when the party allows it, else a
    /// re-INVITE offering the leg's current media (its codec first).
    fn send_session_refresh(&mut self, key: CallKey, side: Side, interval: u32, now: Instant) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let use_update = match side {
            Side::Caller => call.a_session.allows_update,
            Side::Callee => call.b_session.allows_update,
        };
        if !use_update {
            self.send_reinvite(key, side, interval, now);
            return;
        }
        let Some((dialog, destination)) = call.leg_dialog(side) else {
            return;
        };
        let session_expires = SessionExpires {
            delta: interval,
            refresher: Some(super::session_timer::RefresherParam::Uac),
        };
        let Ok(mut outgoing) = self.dialogs.request(dialog, Method::Update) else {
            return;
        };
        add_refresh_headers(&mut outgoing.request, &session_expires, self.timers.min_se);
        self.send_in_dialog(outgoing, destination, now);
    }

    /// A re-INVITE to `side` offering the leg's current media (its codec first), `sendonly`
    /// while we hold that leg; it refreshes the session timer with `interval`. Its 2xx is
    /// ACKed and the answer applied ([`Self::handle_in_call_response`]). False when it could
    /// not be sent (no dialog or media yet, or an INVITE of the party's own in progress).
    fn send_reinvite(&mut self, key: CallKey, side: Side, interval: u32, now: Instant) -> bool {
        let Some(call) = self.calls.calls.get(&key) else {
            return false;
        };
        let (Some((dialog, destination)), Some(endpoint)) =
            (call.leg_dialog(side), call.endpoint(side))
        else {
            return false;
        };
        let mut local = self.local_media(&endpoint);
        if call.held_by_us == Some(side) {
            local.direction = Direction::SendOnly;
        }
        prefer_codec(&mut local, call.agreed(side));
        let mut outgoing = match self.dialogs.request(dialog, Method::Invite) {
            Ok(outgoing) => outgoing,
            Err(error) => {
                tracing::debug!(%error, "no re-INVITE now");
                return false;
            }
        };
        let call = self.calls.calls.get_mut(&key).expect("looked up above");
        let origin = match side {
            Side::Caller => &mut call.a_origin,
            Side::Callee => &mut call.b_origin,
        };
        let sdp = offer(&local, origin);
        call.refresh_offer = Some((side, sdp.clone()));
        let session_expires = SessionExpires {
            delta: interval,
            refresher: Some(super::session_timer::RefresherParam::Uac),
        };
        add_refresh_headers(&mut outgoing.request, &session_expires, self.timers.min_se);
        outgoing
            .request
            .headers
            .push(Header::new("Allow", ALLOWED_IN_CALLS));
        outgoing.set_body("application/sdp", sdp.to_string().into_bytes());
        self.send_in_dialog(outgoing, destination, now).is_some()
    }

    /// A response to a request we sent in a call's dialog (not a callee INVITE): the 2xx of
    /// a refresh sets the leg's session timer; the 2xx of our re-INVITE is ACKed and its
    /// answer applied.
    fn handle_in_call_response(&mut self, dialog: DialogId, response: Response, now: Instant) {
        let Some(key) = self.calls.by_dialog.get(&dialog).copied() else {
            return;
        };
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let side = if call.a_dialog == Some(dialog) {
            Side::Caller
        } else if call.b_dialog == Some(dialog) {
            Side::Callee
        } else {
            return;
        };
        let method = response
            .headers
            .cseq()
            .ok()
            .flatten()
            .map(|cseq| cseq.method.clone());
        let reinvite = method.as_deref() == Some("INVITE");
        if !(reinvite || method.as_deref() == Some("UPDATE")) {
            return;
        }
        if !(200..300).contains(&response.status) {
            if reinvite
                && let Some((offered, _)) = &call.refresh_offer
                && *offered == side
            {
                call.refresh_offer = None;
            }
            tracing::debug!(uuid = %call.uuid, leg = ?side, status = response.status, "a session refresh was refused");
            return;
        }
        let (interval, refresher) =
            negotiate_as_uac(&response.headers, self.timers.session_expires);
        let timer = LegTimer::start(interval, refresher, now);
        call.session_mut(side).timer = Some(timer);
        self.calls.deadlines.push(Reverse((timer.due, key)));
        if !reinvite {
            return;
        }
        self.send_ack(dialog, now);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let our_offer = match call.refresh_offer.take() {
            Some((offered, sdp)) if offered == side => sdp,
            other => {
                call.refresh_offer = other;
                return;
            }
        };
        let agreed = SessionDescription::parse(&response.body)
            .ok()
            .and_then(|sdp| agreed_from_answer(&our_offer, &sdp).ok());
        match agreed {
            Some(agreed) => self.apply_leg_media(key, side, agreed),
            None => tracing::info!(
                uuid = %call.uuid,
                "the refresh's 2xx carried no usable answer; the leg keeps its media"
            ),
        }
    }
}

/// The headers of a session refresh we send (RFC 4028 §7.4).
fn add_refresh_headers(request: &mut Request, session_expires: &SessionExpires, min_se: u32) {
    request
        .headers
        .push(Header::new("Session-Expires", session_expires.value()));
    request
        .headers
        .push(Header::new("Min-SE", min_se.to_string()));
    request.headers.push(Header::new("Supported", "timer"));
}

/// A refusal of `request` with `status` and a Warning saying `why` (RFC 3261 §20.43).
fn refusal(request: &Request, status: u16, why: &str) -> Response {
    let mut response = Response::for_request(request, status, reason_phrase(status));
    response
        .headers
        .push(Header::new("Warning", format!("399 rswitch \"{why}\"")));
    response
}

/// Puts the codec a leg already agreed (`current`) first in our offer, so the party may keep
/// it (and the call stay pass-through).
fn prefer_codec(local: &mut LocalMedia, current: Option<&AgreedAudio>) {
    if let Some(current) = current {
        let name = &current.codec.encoding;
        local
            .codecs
            .sort_by_key(|c| !c.encoding.eq_ignore_ascii_case(name));
    }
}

fn music_on_hold() -> ToneSpec {
    ToneSpec::parse("425", "500/3500", -20.0).expect("a valid tone")
}

/// The status a failed set of forks is reported with: busy beats decline beats the rest (a
/// caller most wants to know the callee is busy); `fallback` when none has a status.
fn most_telling_status(forks: &[Fork], fallback: u16) -> u16 {
    forks
        .iter()
        .filter_map(|f| f.status)
        .min_by_key(|&s| match s {
            486 | 600 => 0,
            603 => 1,
            _ => 2,
        })
        .unwrap_or(fallback)
}

fn transport_name(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::Udp => "UDP",
        TransportKind::Tcp => "TCP",
        TransportKind::Tls => "TLS",
        TransportKind::Ws => "WS",
        TransportKind::Wss => "WSS",
    }
}

/// A route with no details: what a call without a matching route runs (it ends at once
/// with `NO_ROUTE_DESTINATION`).
/// Our From of an INVITE from `caller` with the display name `display` (control characters
/// left out, at most 64 characters; [`NameAddr`] quotes it); `None` when `caller` does not
/// make a SIP URI.
fn from_header(
    caller: &str,
    display: Option<&str>,
    host: std::net::IpAddr,
    tag: &str,
) -> Option<String> {
    let display_name = display
        .map(|name| {
            name.chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        })
        .filter(|name| !name.is_empty());
    let from = NameAddr {
        display_name,
        uri: Uri::parse(&format!("sip:{caller}@{host}")).ok()?,
        bracketed: true,
        params: vec![("tag".to_owned(), Some(tag.to_owned()))],
    };
    Some(from.to_string())
}

fn empty_route() -> super::snapshot::CompiledRoute {
    super::snapshot::CompiledRoute {
        route: crate::store::Route {
            id: 0,
            name: String::new(),
            condition_field: crate::store::ConditionField::DestinationNumber,
            pattern: String::new(),
            sequence: 0,
            enabled: true,
            continue_on_fail: false,
            time_condition: crate::store::TimeCondition::Always,
        },
        regex: fancy_regex::Regex::new("^$").expect("a valid regex"),
        details: Vec::new(),
    }
}

/// The digit and duration of a DTMF INFO body: `application/dtmf-relay`
/// (`Signal=5` and `Duration=160` lines) or `application/dtmf` (the digit alone).
fn parse_info_dtmf(body: &[u8]) -> Option<(char, u32)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut digit = None;
    let mut duration_ms = 160;
    for line in text.lines() {
        let line = line.trim();
        if let Some((name, value)) = line.split_once('=') {
            match name.trim().to_ascii_lowercase().as_str() {
                "signal" => digit = value.trim().chars().next(),
                "duration" => {
                    duration_ms = value.trim().parse::<u32>().ok()?.clamp(40, 2000);
                }
                _ => {}
            }
        } else if !line.is_empty() && digit.is_none() {
            digit = line.chars().next();
        }
    }
    let digit = digit?.to_ascii_uppercase();
    matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D').then_some((digit, duration_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_to_with_replaces() {
        let value =
            "<sip:1302@127.0.0.1:5060?Replaces=abc%40rswitch%3Bto-tag%3Dt1%3Bfrom-tag%3Df2>";
        let refer_to = NameAddr::parse_single("Refer-To", value).unwrap();
        assert_eq!(uri_user(&refer_to.uri), "1302");
        let Uri::Sip(sip) = &refer_to.uri else {
            panic!("a SIP URI")
        };
        assert_eq!(
            sip.headers.as_deref().and_then(replaces_of),
            Some(Replaces {
                call_id: "abc@rswitch".into(),
                to_tag: "t1".into(),
                from_tag: "f2".into(),
            })
        );
        assert_eq!(replaces_of("Replaces=abc%3Bto-tag%3Dt1"), None);
        assert_eq!(replaces_of("Replaces=%zz"), None);
        assert_eq!(replaces_of("Other=1"), None);
    }

    #[test]
    fn display_names_are_quoted_and_bounded() {
        let host = std::net::IpAddr::from([192, 0, 2, 1]);
        let from = |display: Option<&str>| from_header("1000", display, host, "t1").unwrap();
        assert_eq!(from(None), "<sip:1000@192.0.2.1>;tag=t1");
        assert_eq!(from(Some("")), "<sip:1000@192.0.2.1>;tag=t1");
        assert_eq!(from(Some("\r\n")), "<sip:1000@192.0.2.1>;tag=t1");
        assert_eq!(
            from(Some("Desk 7")),
            "\"Desk 7\" <sip:1000@192.0.2.1>;tag=t1"
        );
        assert_eq!(
            from(Some("a\"b\\c\r\nVia: x")),
            "\"a\\\"b\\\\cVia: x\" <sip:1000@192.0.2.1>;tag=t1"
        );
        let long = from(Some(&"王".repeat(100)));
        assert_eq!(long.matches('王').count(), 64, "{long}");
        assert!(from_header("10 00>", None, host, "t1").is_none());
    }

    #[test]
    fn dtmf_info_bodies() {
        assert_eq!(
            parse_info_dtmf(b"Signal=5\r\nDuration=160\r\n"),
            Some(('5', 160))
        );
        assert_eq!(
            parse_info_dtmf(b"Signal= #\r\nDuration= 250"),
            Some(('#', 250))
        );
        assert_eq!(parse_info_dtmf(b"7"), Some(('7', 160)));
        assert_eq!(parse_info_dtmf(b"Signal=x"), None);
        assert_eq!(parse_info_dtmf(b"Signal=1\r\nDuration=abc"), None);
        assert_eq!(parse_info_dtmf(&[0xff, 0xfe]), None);
        assert_eq!(
            parse_info_dtmf(b"Signal=1\r\nDuration=99999"),
            Some(('1', 2000))
        );
    }
}
