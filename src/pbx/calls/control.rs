//! The API's requests acted on inside the SIP service ([`crate::pbx::control`]): finding the
//! leg of a phone and hanging it up, holding, answering, playing to, recording, sending DTMF.
//!
//! A phone names a leg (spec §4.1.4): in the newest call where the number is the caller,
//! the caller's leg; where it is the callee (or the number dialled), the callee's.
//!
//! What this module does not do: read files or resolve paths (the API does, off this task);
//! calls the API places (`originate`, `eavesdrop`, `whisper`, `threeway`) are in
//! `calls::originate`; intercept, park and bridge in `calls::rearrange`.

use std::time::Instant;

use super::{Call, CallKey, FeedSpec, Service, Side, Stage, music_on_hold};
use crate::events::EventCode;
use crate::pbx::causes::HangupCause;
use crate::pbx::control::{
    CallView, ControlError, ControlReply, ControlRequest, ExtensionView, LegView, RtpView,
};

/// How long each digit of `senddtmf` lasts.
const API_DTMF_MS: u32 = 100;

impl Service {
    /// Acts on one API request.
    pub(crate) fn handle_control(
        &mut self,
        request: ControlRequest,
        now: Instant,
    ) -> Result<ControlReply, ControlError> {
        match request {
            ControlRequest::PhoneUuid { phone } => {
                let (key, side) = self.leg_of_phone(&phone)?;
                Ok(ControlReply::Uuid(self.leg_uuid(key, side)))
            }
            ControlRequest::Extensions { extensions } => {
                Ok(ControlReply::Extensions(self.extension_views(&extensions)))
            }
            ControlRequest::Hangup { phone } => {
                let (key, side) = self.leg_of_phone(&phone)?;
                let uuid = self.leg_uuid(key, side);
                self.finish(key, HangupCause::NormalClearing, now);
                Ok(ControlReply::Uuid(uuid))
            }
            ControlRequest::Hold { phone } => self.api_hold(&phone, now),
            ControlRequest::Unhold { phone } => self.api_unhold(&phone, now),
            ControlRequest::Answer { phone } => self.api_answer(&phone, None),
            ControlRequest::Preanswer { phone } => self.api_answer(&phone, Some(183)),
            ControlRequest::Playback {
                phone,
                samples,
                rate,
                looping,
            } => self.api_playback(&phone, samples, rate, looping),
            ControlRequest::Break { phone } => self.api_break(&phone, now),
            ControlRequest::RecordStart {
                phone,
                path,
                min_length,
            } => self.api_record_start(&phone, path, min_length),
            ControlRequest::RecordStop { phone } => self.api_record_stop(&phone),
            ControlRequest::SendDtmf { phone, digits } => self.api_send_dtmf(&phone, &digits),
            ControlRequest::Originate(request) => self.api_originate(&request, now),
            ControlRequest::Join {
                monitored,
                joiner,
                mode,
            } => self.api_join(&monitored, &joiner, mode, now),
            ControlRequest::Intercept { phone } => self.api_intercept(&phone, now),
            ControlRequest::Park { phone } => self.api_park(&phone),
            ControlRequest::Bridge { a, b } => self.api_bridge(&a, &b, now),
            ControlRequest::Calls => Ok(ControlReply::Calls(self.call_views())),
            ControlRequest::Call { uuid } => {
                Ok(ControlReply::Call(Box::new(self.call_view(&uuid)?)))
            }
            ControlRequest::Registrations => {
                let now = crate::clock::now_utc();
                Ok(ControlReply::Registrations(
                    self.registrar
                        .all_bindings(now)
                        .into_iter()
                        .map(crate::pbx::registrar::binding_row)
                        .collect(),
                ))
            }
        }
    }

    /// Every call in progress, oldest first.
    fn call_views(&self) -> Vec<CallView> {
        let mut calls: Vec<_> = self
            .calls
            .calls
            .iter()
            .filter(|(_, call)| call.stage != Stage::Ended)
            .collect();
        calls.sort_by_key(|(key, call)| (call.start, **key));
        calls
            .into_iter()
            .map(|(_, call)| self.view_of(call, false))
            .collect()
    }

    /// The call in progress of which `uuid` names a leg, with each leg's RTP counters.
    fn call_view(&self, uuid: &str) -> Result<CallView, ControlError> {
        let uuid = uuid.trim();
        let (key, _) = self.leg_of_uuid(uuid).ok_or_else(|| {
            ControlError::NotFound(format!("no call in progress has the uuid {uuid:?}"))
        })?;
        Ok(self.view_of(&self.calls.calls[&key], true))
    }

    /// The leg named by `uuid` in a call in progress, and its call.
    pub(super) fn leg_of_uuid(&self, uuid: &str) -> Option<(CallKey, Side)> {
        self.calls.calls.iter().find_map(|(key, call)| {
            if call.stage == Stage::Ended || uuid.is_empty() {
                None
            } else if call.uuid == uuid {
                Some((*key, Side::Caller))
            } else if call.bleg_uuid == uuid {
                Some((*key, Side::Callee))
            } else {
                None
            }
        })
    }

    /// How the admin API shows `call`; `with_rtp`: with each leg's RTP counters, asked of
    /// its media thread.
    fn view_of(&self, call: &Call, with_rtp: bool) -> CallView {
        let leg = |side: Side| {
            let (uuid, agreed) = match side {
                Side::Caller => (&call.uuid, call.a_agreed.as_ref()),
                Side::Callee => (&call.bleg_uuid, call.b_agreed.as_ref()),
            };
            LegView {
                side: match side {
                    Side::Caller => "caller",
                    Side::Callee => "callee",
                }
                .to_owned(),
                uuid: uuid.clone(),
                codec: agreed
                    .map(|a| format!("{}/{}", a.codec.encoding, a.codec.clock_rate))
                    .unwrap_or_default(),
                remote_media: agreed
                    .and_then(|a| a.remote)
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
                held: call.holding.by(side) || call.held_by_us == Some(side),
                rtp: call
                    .endpoint(side)
                    .filter(|_| with_rtp)
                    .and_then(|endpoint| self.media.counters(endpoint.id))
                    .map(|counters| RtpView {
                        packets_received: counters.packets_in,
                        packets_sent: counters.packets_out,
                        octets_sent: counters.octets_out,
                        concealed: counters.concealed,
                        rejected_source: counters.rejected_source,
                    }),
            }
        };
        let mut legs = vec![leg(Side::Caller)];
        if !call.bleg_uuid.is_empty() {
            legs.push(leg(Side::Callee));
        }
        CallView {
            uuid: call.uuid.clone(),
            bleg_uuid: call.bleg_uuid.clone(),
            caller: call.caller.clone(),
            destination: call.destination.clone(),
            callee: call.b_number.clone(),
            state: match call.stage {
                Stage::Routing => "routing",
                Stage::Calling | Stage::Ringing => "ringing",
                Stage::Bridged => "answered",
                Stage::Ended => "ending",
            }
            .to_owned(),
            start: call.start,
            answered_at: call.answer_stamp,
            legs,
            recording: call.recording.is_some(),
        }
    }

    /// The newest call in which `phone` is a party, and its side.
    fn leg_of_phone(&self, phone: &str) -> Result<(CallKey, Side), ControlError> {
        let phone = phone.trim();
        self.call_legs()
            .filter(|(number, _)| *number == phone)
            .max_by_key(|(_, (order, _))| *order)
            .map(|(_, ((_, key), side))| (key, side))
            .ok_or_else(|| ControlError::NotFound(format!("{phone} is in no call")))
    }

    /// Every party of every call in progress: its number, the call's (start, key) for
    /// ordering, and its side.
    #[allow(clippy::type_complexity)]
    fn call_legs(
        &self,
    ) -> impl Iterator<Item = (&str, ((chrono::DateTime<chrono::Utc>, CallKey), Side))> {
        self.calls
            .calls
            .iter()
            .filter(|(_, call)| call.stage != Stage::Ended)
            .flat_map(|(key, call)| {
                let order = (call.start, *key);
                let callee = if call.b_number.is_empty() {
                    &call.destination
                } else {
                    &call.b_number
                };
                // A party listening in has one leg: the number it joined is not its party.
                let joins = call.origin.as_ref().is_some_and(|o| o.is_join());
                let callee = (!joins).then_some((callee.as_str(), (order, Side::Callee)));
                std::iter::once((call.caller.as_str(), (order, Side::Caller))).chain(callee)
            })
    }

    pub(super) fn leg_uuid(&self, key: CallKey, side: Side) -> String {
        self.calls
            .calls
            .get(&key)
            .map(|call| match side {
                Side::Caller => call.uuid.clone(),
                Side::Callee => call.bleg_uuid.clone(),
            })
            .unwrap_or_default()
    }

    /// The views of `extensions`, the calls gone through once for all of them.
    fn extension_views(&self, extensions: &[String]) -> Vec<ExtensionView> {
        let mut newest: std::collections::HashMap<
            &str,
            ((chrono::DateTime<chrono::Utc>, CallKey), Side),
        > = std::collections::HashMap::new();
        for (number, (order, side)) in self.call_legs() {
            let entry = newest.entry(number).or_insert((order, side));
            if order > entry.0 {
                *entry = (order, side);
            }
        }
        let now = crate::clock::now_utc();
        extensions
            .iter()
            .map(|extension| {
                let bindings = self.registrar.lookup(extension, now);
                let binding = bindings.iter().max_by_key(|b| b.updated_at);
                ExtensionView {
                    registered: binding.is_some(),
                    contact: binding.map(|b| b.contact.clone()).unwrap_or_default(),
                    uuid: newest
                        .get(extension.as_str())
                        .map(|((_, key), side)| self.leg_uuid(*key, *side))
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// What `side` hears when nothing is played to it: music on hold while the other side
    /// holds, silence while we hold it, else the other side once they are joined.
    pub(super) fn resting_feed(&self, key: CallKey, side: Side) -> FeedSpec {
        let Some(call) = self.calls.calls.get(&key) else {
            return FeedSpec::Silence;
        };
        if call.holding.by(side.other()) || (call.parked && call.stage == Stage::Bridged) {
            return FeedSpec::Tone(music_on_hold());
        }
        if call.held_by_us == Some(side) || call.stage != Stage::Bridged {
            return FeedSpec::Silence;
        }
        let Some(other) = call.endpoint(side.other()) else {
            return FeedSpec::Silence;
        };
        let joiners = self.heard_joiners(key, side);
        if joiners.is_empty() {
            FeedSpec::Endpoint(other.id)
        } else {
            FeedSpec::Mix(std::iter::once(other.id).chain(joiners).collect())
        }
    }

    /// The answered call of `phone` with both legs' media, or 409.
    pub(super) fn joined_leg(&self, phone: &str) -> Result<(CallKey, Side), ControlError> {
        let (key, side) = self.leg_of_phone(phone)?;
        let call = &self.calls.calls[&key];
        if call.stage != Stage::Bridged || call.a_endpoint.is_none() || call.b_endpoint.is_none() {
            return Err(ControlError::Conflict(format!(
                "the call of {phone} is not answered yet"
            )));
        }
        Ok((key, side))
    }

    /// Holds (`hold`) or releases `side` and sends it the re-INVITE that says so (refreshing
    /// its session timer); nothing changes when the re-INVITE can not go now.
    fn reinvite_holding(
        &mut self,
        key: CallKey,
        side: Side,
        hold: bool,
        phone: &str,
        now: Instant,
    ) -> Result<(), ControlError> {
        let call = self.calls.calls.get_mut(&key).expect("the caller found it");
        let before = call.held_by_us;
        call.held_by_us = hold.then_some(side);
        let interval = call
            .session_mut(side)
            .timer
            .map_or(self.timers.session_expires, |t| t.interval);
        if self.send_reinvite(key, side, interval, now) {
            return Ok(());
        }
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.held_by_us = before;
        }
        Err(ControlError::Conflict(format!(
            "a re-INVITE is already in progress with {phone}; try again"
        )))
    }

    fn api_hold(&mut self, phone: &str, now: Instant) -> Result<ControlReply, ControlError> {
        let (key, side) = self.joined_leg(phone)?;
        if self.calls.calls[&key].held_by_us == Some(side) {
            return Err(ControlError::Conflict(format!(
                "{phone} is already on hold"
            )));
        }
        self.reinvite_holding(key, side, true, phone, now)?;
        let call = self.calls.calls.get_mut(&key).expect("found above");
        let was_holding = call.holding.set(side, true);
        let (Some(held), Some(other)) = (call.endpoint(side), call.endpoint(side.other())) else {
            unreachable!("a joined call has both endpoints");
        };
        let uuid = call.uuid.clone();
        let _ = self.media.set_feed(held.id, FeedSpec::Silence);
        if let Err(error) = self
            .media
            .set_feed(other.id, FeedSpec::Tone(music_on_hold()))
        {
            tracing::warn!(%uuid, %error, "music on hold refused");
        }
        if !was_holding {
            self.publish(key, side, EventCode::Hold, "");
        }
        tracing::info!(%uuid, leg = ?side, "held on the API's request");
        Ok(ControlReply::Uuid(self.leg_uuid(key, side)))
    }

    fn api_unhold(&mut self, phone: &str, now: Instant) -> Result<ControlReply, ControlError> {
        let (key, side) = self.joined_leg(phone)?;
        if self.calls.calls[&key].held_by_us != Some(side) {
            return Err(ControlError::Conflict(format!(
                "{phone} is not held by the platform"
            )));
        }
        self.reinvite_holding(key, side, false, phone, now)?;
        let call = self.calls.calls.get_mut(&key).expect("found above");
        let unheld = call.holding.set(side, false);
        let (Some(held), Some(other)) = (call.endpoint(side), call.endpoint(side.other())) else {
            unreachable!("a joined call has both endpoints");
        };
        if call.api_playback != Some(side) {
            let feed = self.resting_feed(key, side);
            let _ = self.media.set_feed(held.id, feed);
        }
        if self.calls.calls[&key].api_playback != Some(side.other()) {
            let feed = self.resting_feed(key, side.other());
            let _ = self.media.set_feed(other.id, feed);
        }
        if unheld {
            self.publish(key, side, EventCode::Unhold, "");
        }
        Ok(ControlReply::Uuid(self.leg_uuid(key, side)))
    }

    /// Answers (`early` = None) or pre-answers (183) the incoming call of `phone` — the
    /// caller's INVITE, whichever party `phone` is.
    fn api_answer(
        &mut self,
        phone: &str,
        early: Option<u16>,
    ) -> Result<ControlReply, ControlError> {
        let (key, _) = self.leg_of_phone(phone)?;
        let call = &self.calls.calls[&key];
        if call.origin.is_some() && !call.answered {
            return Err(ControlError::Conflict(format!(
                "the platform is calling {phone} itself: there is no incoming call to answer"
            )));
        }
        if call.answered {
            return Err(ControlError::Conflict(format!(
                "the call of {phone} is already answered"
            )));
        }
        if early.is_some() && call.a_answered_sdp {
            return Err(ControlError::Conflict(format!(
                "the call of {phone} already has early media"
            )));
        }
        self.answer_caller(key, early).map_err(|()| {
            ControlError::Conflict(format!(
                "the caller of {phone}'s call can not be answered (no usable offer)"
            ))
        })?;
        Ok(ControlReply::Uuid(self.leg_uuid(key, Side::Caller)))
    }

    /// The endpoint of `phone`'s leg when it has agreed media, or 409.
    fn leg_media(
        &self,
        phone: &str,
    ) -> Result<(CallKey, Side, crate::media::io::EndpointId), ControlError> {
        let (key, side) = self.leg_of_phone(phone)?;
        let call = &self.calls.calls[&key];
        match (call.endpoint(side), call.agreed(side)) {
            (Some(endpoint), Some(_)) => Ok((key, side, endpoint.id)),
            _ => Err(ControlError::Conflict(format!(
                "{phone}'s leg has no media yet (not answered)"
            ))),
        }
    }

    fn api_playback(
        &mut self,
        phone: &str,
        samples: std::sync::Arc<[i16]>,
        rate: u32,
        looping: bool,
    ) -> Result<ControlReply, ControlError> {
        let (key, side, endpoint) = self.leg_media(phone)?;
        let feed = FeedSpec::Play {
            samples,
            rate,
            looping,
        };
        self.media
            .set_feed(endpoint, feed)
            .map_err(|error| ControlError::Conflict(format!("can not play to {phone}: {error}")))?;
        if let Some(call) = self.calls.calls.get_mut(&key) {
            call.api_playback = Some(side);
        }
        self.publish(key, side, EventCode::PlayRing, "");
        Ok(ControlReply::Uuid(self.leg_uuid(key, side)))
    }

    /// An API playback ended (its end reported, or `break`): the leg hears what it heard.
    pub(super) fn end_api_playback(&mut self, key: CallKey) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        let Some(side) = call.api_playback.take() else {
            return;
        };
        if let Some(endpoint) = call.endpoint(side) {
            let feed = self.resting_feed(key, side);
            let _ = self.media.set_feed(endpoint.id, feed);
        }
        self.publish(key, side, EventCode::PlayStop, "");
    }

    fn api_break(&mut self, phone: &str, now: Instant) -> Result<ControlReply, ControlError> {
        let (key, side) = self.leg_of_phone(phone)?;
        let call = &self.calls.calls[&key];
        let uuid = self.leg_uuid(key, side);
        if call.api_playback.is_some() {
            self.end_api_playback(key);
            return Ok(ControlReply::Uuid(uuid));
        }
        // A prompt of the dialplan (or a sleep): end it; the next detail runs.
        if call.stage == Stage::Routing
            && (call.waiting_playback.is_some() || call.deadline.is_some())
        {
            let playing = call.waiting_playback;
            if let Some(endpoint) = playing {
                let _ = self.media.set_feed(endpoint, FeedSpec::Silence);
            }
            let call = self.calls.calls.get_mut(&key).expect("found above");
            call.waiting_playback = None;
            call.deadline = None;
            if playing.is_some() {
                self.publish(key, Side::Caller, EventCode::PlayStop, "");
            }
            self.run_details(key, now);
            return Ok(ControlReply::Uuid(uuid));
        }
        if call.stage == Stage::Bridged && call.waiting_playback.is_some() {
            self.end_announcement(key);
            return Ok(ControlReply::Uuid(uuid));
        }
        Err(ControlError::Conflict(format!(
            "nothing is played to {phone}"
        )))
    }

    fn api_record_start(
        &mut self,
        phone: &str,
        path: std::path::PathBuf,
        min_length: std::time::Duration,
    ) -> Result<ControlReply, ControlError> {
        let (key, _) = self.leg_of_phone(phone)?;
        if let Some(active) = &self.calls.calls[&key].recording {
            return Err(ControlError::Conflict(format!(
                "the call of {phone} is already recorded into {}",
                active.path.display()
            )));
        }
        let recording =
            crate::media::record::create_file(&path, 8000, 2, crate::media::record::Layout::Mono)
                .map_err(|error| {
                ControlError::Invalid(format!("can not create {}: {error}", path.display()))
            })?;
        tracing::info!(path = %path.display(), "recording on the API's request");
        self.start_recording(
            key,
            crate::pbx::actions::ActiveRecording {
                recording: std::sync::Arc::new(std::sync::Mutex::new(recording)),
                path: path.clone(),
                callee_attached: false,
                min_frames: min_length.as_secs() * 8000,
            },
        );
        Ok(ControlReply::Recording(path))
    }

    fn api_record_stop(&mut self, phone: &str) -> Result<ControlReply, ControlError> {
        let (key, _) = self.leg_of_phone(phone)?;
        let call = self.calls.calls.get_mut(&key).expect("found above");
        let Some(active) = call.recording.take() else {
            return Err(ControlError::Conflict(format!(
                "the call of {phone} is not being recorded"
            )));
        };
        for endpoint in [call.a_endpoint, call.b_endpoint].into_iter().flatten() {
            self.media.set_sink(endpoint.id, None);
        }
        let path = active.path.clone();
        crate::pbx::actions::finish_recording(active);
        Ok(ControlReply::Recording(path))
    }

    fn api_send_dtmf(&mut self, phone: &str, digits: &str) -> Result<ControlReply, ControlError> {
        let digits: Vec<char> = digits
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if let Some(bad) = digits
            .iter()
            .find(|c| !matches!(c, '0'..='9' | '*' | '#' | 'A'..='D'))
        {
            return Err(ControlError::Invalid(format!(
                "{bad:?} is not a DTMF digit (0-9, *, #, A-D)"
            )));
        }
        if digits.is_empty() {
            return Err(ControlError::Invalid("no digits to send".into()));
        }
        let (key, side, endpoint) = self.leg_media(phone)?;
        for &digit in &digits {
            self.media.send_dtmf(endpoint, digit, API_DTMF_MS);
        }
        Ok(ControlReply::Uuid(self.leg_uuid(key, side)))
    }
}
