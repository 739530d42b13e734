//! Calls the platform places itself: the API's `originate` (ring A; when A answers, ring B
//! and bridge them) and `eavesdrop`, `whisper` and `threeway` (ring a third party; when it
//! answers, it listens to, coaches or talks in an answered call).
//!
//! A placed call is an ordinary [`Call`](super::Call) whose caller side is a leg we ring:
//! an INVITE with our offer to every binding of the extension (the first 2xx wins, the
//! others are cancelled), given up after the default call timeout. Nothing answers a
//! caller's INVITE in it. Once the first party answers, the call is what an incoming call is
//! after a route's `answer`: originate then runs a `bridge` to B (A hears ringback
//! meanwhile, B is shown `A_effective_caller_id_num`), and everything a call does from there
//! (hold, transfer, session timers, the CDR) is the same code. A join opens its endpoint on
//! the media thread of the call it joins, and the media mixes: the joiner hears both
//! parties; with `whisper` the party it coaches hears it too, with `threeway` both do.
//! When the joined call ends, the joiner is hung up; when the joiner hangs up, the parties
//! hear each other as before.
//!
//! What this module does not do: parties behind gateways (`A_external`, `B_external`,
//! `EvdGateway`: the API answers 501 for them), early media from the first party (it is
//! rung, not listened to).

use std::cmp::Reverse;
use std::time::Instant;

use super::{
    CallKey, DEFAULT_CALL_TIMEOUT, Fork, Service, Side, Stage, empty_route, leg_config,
    most_telling_status, new_uuid,
};
use crate::clock::now_utc;
use crate::events::EventCode;
use crate::media::io::FeedSpec;
use crate::media::tones::ToneSpec;
use crate::pbx::agents::{AgentChange, CallState};
use crate::pbx::causes::HangupCause;
use crate::pbx::control::{ControlError, ControlReply, JoinMode, Originate};
use crate::pbx::dialplan::Execution;
use crate::sip::dialog::DialogId;
use crate::sip::message::Response;
use crate::sip::sdp::SessionDescription;
use crate::sip::sdp::negotiate::{OriginState, agreed_from_answer, offer};
use crate::sip::transaction::TsxId;

/// How a placed call began: the INVITEs to its first party and what follows its answer.
pub(in crate::pbx) struct Origin {
    forks: Vec<Fork>,
    /// Our offer in those INVITEs.
    offer: SessionDescription,
    then: AfterAnswer,
}

/// What a placed call does once its first party answers.
#[derive(Clone)]
enum AfterAnswer {
    /// Ring this extension and bridge it (originate).
    Bridge { number: String },
    /// Join the call `target`; `party` is the side of it that was named (the one a whisper
    /// is heard by).
    Join {
        target: CallKey,
        party: Side,
        mode: JoinMode,
    },
}

/// A party that joined a call (kept by the joined call).
#[derive(Debug, Clone, Copy)]
pub(in crate::pbx) struct Joined {
    call: CallKey,
    mode: JoinMode,
    party: Side,
}

impl Service {
    /// The API's `originate`: rings `a_number`, then (when it answers) `b_number`.
    pub(super) fn api_originate(
        &mut self,
        request: &Originate,
        now: Instant,
    ) -> Result<ControlReply, ControlError> {
        let Originate {
            uuid,
            display,
            a_number,
            b_number,
            a_shows,
            b_shows,
        } = request;
        let (a_number, b_number) = (a_number.as_str(), b_number.as_str());
        let snapshot = self.live.current();
        for (field, number) in [("Callernum", a_number), ("Calleenum", b_number)] {
            if !snapshot.extensions.contains_key(number) {
                return Err(ControlError::NotFound(format!(
                    "{field}: extension {number} does not exist"
                )));
            }
        }
        if a_number == b_number {
            return Err(ControlError::Invalid(
                "Callernum and Calleenum are the same extension".to_owned(),
            ));
        }
        for (field, number) in [
            ("B_effective_caller_id_num", a_shows),
            ("A_effective_caller_id_num", b_shows),
        ] {
            if !crate::pbx::dialplan::is_dial_string(number) {
                return Err(ControlError::Invalid(format!(
                    "{field} must be 1 to 64 of 0-9 A-Z a-z * # + . _ -"
                )));
            }
        }
        let then = AfterAnswer::Bridge {
            number: b_number.to_owned(),
        };
        let key = self.place_call(
            uuid.clone(),
            (a_number, b_number),
            (a_shows, display),
            then,
            None,
            now,
        )?;
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.presented = Some(b_shows.clone());
        }
        Ok(ControlReply::Uuid(uuid.clone()))
    }

    /// The API's `eavesdrop`, `whisper` and `threeway`: rings `joiner`, then (when it
    /// answers) joins it to the answered call of `monitored`.
    pub(super) fn api_join(
        &mut self,
        monitored: &str,
        joiner: &str,
        mode: JoinMode,
        now: Instant,
    ) -> Result<ControlReply, ControlError> {
        if !self.live.current().extensions.contains_key(joiner) {
            return Err(ControlError::NotFound(format!(
                "EvdPhone: extension {joiner} does not exist"
            )));
        }
        let (target, party) = self.joined_leg(monitored)?;
        let call = &self.calls.calls[&target];
        if call.origin.as_ref().is_some_and(|o| o.is_join()) {
            return Err(ControlError::Conflict(format!(
                "{monitored} is itself listening in on a call"
            )));
        }
        if call.caller == joiner || call.b_number == joiner {
            return Err(ControlError::Conflict(format!(
                "{joiner} is already a party of {monitored}'s call"
            )));
        }
        let uuid = new_uuid();
        let then = AfterAnswer::Join {
            target,
            party,
            mode,
        };
        self.place_call(
            uuid.clone(),
            (joiner, monitored),
            (monitored, ""),
            then,
            Some(target),
            now,
        )?;
        Ok(ControlReply::Uuid(uuid))
    }

    /// Rings extension `number` for a call to `destination`, showing it `shown` (a number
    /// and a display name); its media endpoint on the thread of call `beside` when given.
    fn place_call(
        &mut self,
        uuid: String,
        (number, destination): (&str, &str),
        (shown, display): (&str, &str),
        then: AfterAnswer,
        beside: Option<CallKey>,
        now: Instant,
    ) -> Result<CallKey, ControlError> {
        let bindings = self.bindings_of(number);
        if bindings.is_empty() {
            return Err(ControlError::Conflict(format!(
                "extension {number} is not registered"
            )));
        }
        self.calls.next_key += 1;
        let key = CallKey(self.calls.next_key);
        let endpoint = self
            .media
            .open_beside(key.0, beside.unwrap_or(key).0)
            .map_err(|error| {
                tracing::error!(%error, "no RTP port for a call the platform places");
                ControlError::Unavailable("no free RTP port")
            })?;
        let mut origin_state = OriginState::new(rand::random::<u32>().into());
        let local = self.local_media(&endpoint);
        let our_offer = offer(&local, &mut origin_state);
        let display = (!display.is_empty()).then_some(display);
        let forks = self.send_forks(shown, display, number, bindings, &our_offer, now);
        let Some(first) = forks.first() else {
            self.media.close(endpoint.id);
            return Err(ControlError::Unavailable("the INVITE could not be sent"));
        };
        let nothing_offered =
            SessionDescription::parse(b"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
                .expect("a valid empty description");
        let mut call = super::Call::new(
            uuid,
            number.to_owned(),
            destination.to_owned(),
            (first.invite.clone(), first.tsx, first.destination),
            nothing_offered,
            Execution::new(&empty_route(), &[]),
            now_utc(),
        );
        call.a_origin = origin_state;
        call.a_endpoint = Some(endpoint);
        call.stage = Stage::Calling;
        let at = now + DEFAULT_CALL_TIMEOUT;
        call.deadline = Some(at);
        for fork in &forks {
            self.calls.by_fork.insert(fork.tsx, key);
        }
        tracing::info!(uuid = %call.uuid, %number, %destination, forks = forks.len(), "the platform rings");
        call.origin = Some(Box::new(Origin {
            forks,
            offer: our_offer,
            then,
        }));
        self.calls.calls.insert(key, call);
        self.calls.deadlines.push(Reverse((at, key)));
        self.publish(key, Side::Caller, EventCode::CallOut, "");
        self.agents
            .apply(number, AgentChange::CallState(CallState::Ring));
        Ok(key)
    }

    /// Whether `tsx` is one of the INVITEs ringing the first party of placed call `key`.
    pub(super) fn is_origin_fork(&self, key: CallKey, tsx: TsxId) -> bool {
        self.calls
            .calls
            .get(&key)
            .and_then(|c| c.origin.as_ref())
            .is_some_and(|o| o.forks.iter().any(|f| f.tsx == tsx))
    }

    /// A response from the first party of a placed call.
    pub(super) fn handle_origin_response(
        &mut self,
        key: CallKey,
        tsx: TsxId,
        dialog: Option<DialogId>,
        response: Response,
        now: Instant,
    ) {
        let status = response.status;
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let calling = call.stage == Stage::Calling;
        let a_dialog = call.a_dialog;
        let already_detached = dialog.is_some_and(|d| call.detached.contains(&d));
        let Some(origin) = call.origin.as_mut() else {
            return;
        };
        let Some(index) = origin.forks.iter().position(|f| f.tsx == tsx) else {
            return;
        };
        let fork = &mut origin.forks[index];
        if let Some(dialog) = dialog {
            fork.dialog = Some(dialog);
        }
        if status >= 200 {
            fork.awaiting_final = false;
        }
        let destination = fork.destination;
        if let Some(dialog) = dialog {
            self.calls.by_dialog.insert(dialog, key);
        }
        if !calling {
            // Another phone of the first party answered after the first one (its 200 crossed
            // our CANCEL): ACK it and hang it up.
            if let Some(dialog) = dialog
                && (200..300).contains(&status)
                && a_dialog != Some(dialog)
                && !already_detached
            {
                self.drop_late_answer(key, dialog, destination, now);
            }
            return;
        }
        match status {
            100 => {}
            101..=199 => self.publish(key, Side::Caller, EventCode::Ring, ""),
            200..=299 => self.first_party_answered(key, index, dialog, &response, now),
            _ => {
                let call = self.calls.calls.get_mut(&key).expect("looked up above");
                call.sip_code = Some(status);
                let Some(origin) = call.origin.as_mut() else {
                    return;
                };
                origin.forks[index].status = Some(status);
                if origin.forks.iter().all(|f| f.status.is_some()) {
                    let best = most_telling_status(&origin.forks, status);
                    call.sip_code = Some(best);
                    tracing::info!(uuid = %call.uuid, status = best, "the first party did not answer");
                    self.give_up_calling(key, HangupCause::from_sip_status(best), now);
                }
            }
        }
    }

    /// Cancels the INVITEs still ringing the first party of a placed call and ends it with
    /// `cause` (no answer, the API hung it up).
    pub(super) fn give_up_calling(&mut self, key: CallKey, cause: HangupCause, now: Instant) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        call.cause.get_or_insert(cause);
        call.deadline = None;
        let mut to_cancel = Vec::new();
        if let Some(origin) = call.origin.as_mut() {
            for fork in origin.forks.iter_mut().filter(|f| f.status.is_none()) {
                fork.status = Some(487);
                fork.awaiting_final = true;
                to_cancel.push(fork.clone());
            }
        }
        for fork in &to_cancel {
            self.send_cancel(fork, now);
        }
        self.end_call(key, None);
    }

    /// The first party of a placed call answered on fork `index`: ACK, agree its media,
    /// then bridge to B or join the other call.
    fn first_party_answered(
        &mut self,
        key: CallKey,
        index: usize,
        dialog: Option<DialogId>,
        response: &Response,
        now: Instant,
    ) {
        let Some(dialog) = dialog else {
            return;
        };
        let session = self.callee_session(response, now);
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(origin) = call.origin.as_mut() else {
            return;
        };
        origin.forks[index].status = Some(response.status);
        let answered = origin.forks[index].clone();
        let others: Vec<Fork> = origin
            .forks
            .iter_mut()
            .filter(|f| f.status.is_none())
            .map(|f| {
                f.status = Some(487);
                f.awaiting_final = true;
                f.clone()
            })
            .collect();
        let sdp = SessionDescription::parse(&response.body).ok();
        let agreed = sdp
            .as_ref()
            .and_then(|sdp| agreed_from_answer(&origin.offer, sdp).ok());
        call.deadline = None;
        call.a_dialog = Some(dialog);
        call.source = answered.destination;
        call.invite = answered.invite;
        call.invite_tsx = answered.tsx;
        call.a_session = session;
        if let Some(timer) = session.timer {
            self.calls.deadlines.push(Reverse((timer.due, key)));
        }
        self.send_ack(dialog, now);
        for fork in &others {
            self.send_cancel(fork, now);
        }
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        call.answered = true;
        call.answer_stamp = Some(now_utc());
        call.a_answered_sdp = true;
        let (Some(agreed), Some(endpoint)) = (agreed, call.a_endpoint) else {
            tracing::info!(uuid = %call.uuid, "the first party's answer has no usable SDP");
            self.hang_up(key, HangupCause::IncompatibleDestination, now);
            return;
        };
        self.media
            .configure(endpoint.id, leg_config(&agreed, rand::random()));
        call.a_agreed = Some(agreed);
        if let Some(sdp) = sdp {
            // The bridge offers B the codecs A took first.
            call.a_offer = sdp;
        }
        let number = call.caller.clone();
        self.publish(key, Side::Caller, EventCode::Answer, "");
        self.agents
            .apply(&number, AgentChange::CallState(CallState::Talking));
        let Some(then) = self
            .calls
            .calls
            .get(&key)
            .and_then(|c| c.origin.as_ref())
            .map(|o| o.then.clone())
        else {
            return;
        };
        match then {
            AfterAnswer::Bridge { number } => {
                self.calls
                    .calls
                    .get_mut(&key)
                    .expect("looked up above")
                    .stage = Stage::Routing;
                let ringback = FeedSpec::Tone(ToneSpec::china_ringback());
                if let Err(error) = self.media.set_feed(endpoint.id, ringback) {
                    tracing::debug!(%error, "no ringback for the first party");
                }
                if !self.start_bridge(key, &number, now) {
                    // The route-less execution finishes with the bridge's failure: BYE to A.
                    self.run_details(key, now);
                }
            }
            AfterAnswer::Join {
                target,
                party,
                mode,
            } => {
                let joinable = self
                    .calls
                    .calls
                    .get(&target)
                    .is_some_and(|t| t.stage == Stage::Bridged);
                if !joinable {
                    tracing::info!("the call to join ended before the joiner answered");
                    self.hang_up(key, HangupCause::NormalClearing, now);
                    return;
                }
                if let Some(call) = self.calls.calls.get_mut(&key) {
                    call.stage = Stage::Bridged;
                    call.execution.mark_answered();
                }
                if let Some(joined) = self.calls.calls.get_mut(&target) {
                    joined.joined.push(Joined {
                        call: key,
                        mode,
                        party,
                    });
                }
                for code in [EventCode::Bridged, EventCode::Talking] {
                    self.publish(key, Side::Caller, code, "");
                }
                self.refeed_joined(target);
                tracing::info!(?mode, "a third party joined the call");
            }
        }
    }

    /// Sets the feeds of call `key`'s parties and of the parties that joined it: each
    /// joiner hears both parties; a party hears the other and whoever talks to it.
    pub(super) fn refeed_joined(&mut self, key: CallKey) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let (Some(a), Some(b)) = (call.a_endpoint, call.b_endpoint) else {
            return;
        };
        let joiners: Vec<_> = call
            .joined
            .iter()
            .filter_map(|j| self.calls.calls.get(&j.call)?.a_endpoint)
            .collect();
        let playing = call.api_playback;
        for joiner in joiners {
            if let Err(error) = self
                .media
                .set_feed(joiner.id, FeedSpec::Mix(vec![a.id, b.id]))
            {
                tracing::warn!(%error, "the joiner can not hear the call");
            }
        }
        for (side, endpoint) in [(Side::Caller, a), (Side::Callee, b)] {
            if playing == Some(side) {
                continue;
            }
            let feed = self.resting_feed(key, side);
            if let Err(error) = self.media.set_feed(endpoint.id, feed) {
                tracing::warn!(%error, "a party's feed was refused");
            }
        }
    }

    /// Sets the mixes again after a leg of call `key` changed its media: the call's own
    /// joiners', or those of the call it joined.
    pub(super) fn refeed_around(&mut self, key: CallKey) {
        let Some(call) = self.calls.calls.get(&key) else {
            return;
        };
        let target = match call.origin.as_ref().map(|o| &o.then) {
            Some(AfterAnswer::Join { target, .. }) if call.stage == Stage::Bridged => *target,
            _ if !call.joined.is_empty() => key,
            _ => return,
        };
        self.refeed_joined(target);
    }

    /// The endpoints of the joiners that `side` of call `key` hears (three-way parties, and
    /// a whisperer coaching it).
    pub(super) fn heard_joiners(
        &self,
        key: CallKey,
        side: Side,
    ) -> Vec<crate::media::io::EndpointId> {
        let Some(call) = self.calls.calls.get(&key) else {
            return Vec::new();
        };
        call.joined
            .iter()
            .filter(|j| match j.mode {
                JoinMode::Talk => true,
                JoinMode::Whisper => j.party == side,
                JoinMode::Listen => false,
            })
            .filter_map(|j| {
                let joiner = self.calls.calls.get(&j.call)?;
                (joiner.stage == Stage::Bridged).then_some(joiner.a_endpoint?.id)
            })
            .collect()
    }

    /// Call `ended` is over: if it had joined another call, that call's parties hear each
    /// other as before; the parties that had joined it are hung up.
    pub(super) fn end_joins(
        &mut self,
        ended: CallKey,
        origin: Option<&Origin>,
        joined: &[Joined],
        now: Instant,
    ) {
        if let Some(AfterAnswer::Join { target, .. }) = origin.map(|o| &o.then) {
            let target = *target;
            if let Some(call) = self.calls.calls.get_mut(&target) {
                call.joined.retain(|j| j.call != ended);
                self.refeed_joined(target);
            }
        }
        for joiner in joined {
            self.hang_up(joiner.call, HangupCause::NormalClearing, now);
        }
    }
}

impl Origin {
    /// The INVITEs that rang the first party.
    pub(super) fn forks(&self) -> &[Fork] {
        &self.forks
    }

    /// Whether the call was placed to join another one.
    pub(super) fn is_join(&self) -> bool {
        matches!(self.then, AfterAnswer::Join { .. })
    }
}
