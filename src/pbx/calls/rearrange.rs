//! The API's rearrangements of calls in progress (spec §4.3 #12–15): `intercept` (another
//! phone picks up a ringing call), `park` (both parties of a call wait on music, no longer
//! joined) and `bridge` / `bridge_phone` (two legs joined).
//!
//! `intercept` rings the picking-up phone in place of the phones that ring now (they get
//! CANCEL, their leg ends `PICKED_OFF`); the caller hears on, and talks with whoever answers.
//! `bridge` of the two legs of one call joins them again (after `park`); of legs of two
//! calls, the second leg leaves its call and takes the place of the first leg's partner: both
//! former partners are hung up (NORMAL_CLEARING), as the B2BUA keeps two parties per call.
//!
//! What this module does not do: a parked leg on its own (the partner of a parked leg stays
//! parked with it, in the same call), legs that are still ringing, calls with a party
//! listening in (the API answers 409).

use std::cmp::Reverse;
use std::time::Instant;

use super::{CallKey, FeedSpec, Service, Side, Stage, music_on_hold, new_uuid};
use crate::events::EventCode;
use crate::pbx::agents::{AgentChange, CallState};
use crate::pbx::causes::HangupCause;
use crate::pbx::control::{ControlError, ControlReply, LegName};

impl Service {
    /// The API's `intercept`: `phone` picks up the newest call ringing at an extension of
    /// its group, else the newest ringing anywhere.
    pub(super) fn api_intercept(
        &mut self,
        phone: &str,
        now: Instant,
    ) -> Result<ControlReply, ControlError> {
        let snapshot = self.live.current();
        let Some(extension) = snapshot.extensions.get(phone) else {
            return Err(ControlError::NotFound(format!(
                "extension {phone} does not exist"
            )));
        };
        let group = extension.group_id;
        let bindings = self.bindings_of(phone);
        if bindings.is_empty() {
            return Err(ControlError::Conflict(format!(
                "extension {phone} is not registered"
            )));
        }
        let same_group = |number: &str| {
            group.is_some() && snapshot.extensions.get(number).map(|e| e.group_id) == Some(group)
        };
        let target = self
            .calls
            .calls
            .iter()
            .filter(|(_, c)| {
                c.stage == Stage::Ringing
                    && c.transfer.is_none()
                    && c.caller != phone
                    && c.b_number != phone
                    && c.forks.iter().any(|f| f.status.is_none())
            })
            .max_by_key(|(key, c)| (same_group(&c.b_number), c.start, **key))
            .map(|(key, _)| *key);
        let Some(key) = target else {
            return Err(ControlError::NotFound(
                "no call is ringing to pick up".to_owned(),
            ));
        };
        let call = &self.calls.calls[&key];
        let Some(offer) = call.b_offer.clone() else {
            return Err(ControlError::Conflict(
                "the ringing call has no offer to send".to_owned(),
            ));
        };
        let caller = call
            .presented
            .clone()
            .unwrap_or_else(|| call.caller.clone());
        let picked_off = call.b_number.clone();
        let forks = self.send_forks(&caller, None, phone, bindings, &offer, now);
        if forks.is_empty() {
            return Err(ControlError::Unavailable("the INVITE could not be sent"));
        }
        let ringing: Vec<usize> = (0..self.calls.calls[&key].forks.len())
            .filter(|&i| self.calls.calls[&key].forks[i].status.is_none())
            .collect();
        for index in ringing {
            self.cancel_fork(key, index, now);
        }
        self.end_callee_leg(key, HangupCause::PickedOff);
        self.agents
            .apply(&picked_off, AgentChange::CallState(CallState::Ready));
        for fork in &forks {
            self.calls.by_fork.insert(fork.tsx, key);
        }
        let call = self.calls.calls.get_mut(&key).expect("found above");
        call.forks.extend(forks);
        call.b_number = phone.to_owned();
        call.bleg_uuid = new_uuid();
        call.b_agreed = None;
        let at = now + call.call_timeout;
        call.deadline = Some(at);
        let uuid = call.bleg_uuid.clone();
        tracing::info!(uuid = %call.uuid, from = %picked_off, by = %phone, "picked up");
        self.calls.deadlines.push(Reverse((at, key)));
        self.publish(key, Side::Callee, EventCode::CallOut, "");
        self.agents
            .apply(phone, AgentChange::CallState(CallState::Ring));
        Ok(ControlReply::Uuid(uuid))
    }

    /// The API's `park`: the parties of `phone`'s answered call hear music on hold instead
    /// of each other until `bridge` joins them again (or one hangs up).
    pub(super) fn api_park(&mut self, phone: &str) -> Result<ControlReply, ControlError> {
        let (key, side) = self.joined_leg(phone)?;
        let call = self.calls.calls.get_mut(&key).expect("found above");
        if call.parked {
            return Err(ControlError::Conflict(format!(
                "the call of {phone} is already parked"
            )));
        }
        if !call.joined.is_empty() || call.origin.as_ref().is_some_and(|o| o.is_join()) {
            return Err(ControlError::Conflict(format!(
                "a third party is joined to the call of {phone}"
            )));
        }
        call.parked = true;
        tracing::info!(uuid = %call.uuid, "parked");
        for side in [Side::Caller, Side::Callee] {
            if let Some(endpoint) = self.calls.calls[&key].endpoint(side)
                && let Err(error) = self
                    .media
                    .set_feed(endpoint.id, FeedSpec::Tone(music_on_hold()))
            {
                tracing::warn!(%error, "no music for a parked leg");
            }
            self.publish(key, side, EventCode::Park, "");
        }
        Ok(ControlReply::Uuid(self.leg_uuid(key, side)))
    }

    /// The API's `bridge` and `bridge_phone`: joins the legs `a` and `b`.
    pub(super) fn api_bridge(
        &mut self,
        a: &LegName,
        b: &LegName,
        now: Instant,
    ) -> Result<ControlReply, ControlError> {
        let (a_key, a_side) = self.answered_leg(a)?;
        let (b_key, b_side) = self.answered_leg(b)?;
        if a_key == b_key {
            if a_side == b_side {
                return Err(ControlError::Invalid(format!(
                    "{a} and {b} are the same leg"
                )));
            }
            self.unpark(a_key);
            return Ok(ControlReply::Uuid(self.leg_uuid(a_key, a_side)));
        }
        for key in [a_key, b_key] {
            let call = &self.calls.calls[&key];
            if !call.joined.is_empty()
                || call.origin.as_ref().is_some_and(|o| o.is_join())
                || call.transfer.is_some()
            {
                return Err(ControlError::Conflict(format!(
                    "the call of {} has a party joined or a transfer in progress",
                    if key == a_key { a } else { b }
                )));
            }
        }
        // B's leg leaves its call, whose other party is hung up.
        let Some(moved) = self.take_leg(b_key, b_side) else {
            return Err(ControlError::Conflict(format!("{b} has no answered leg")));
        };
        self.hang_up(b_key, HangupCause::NormalClearing, now);
        if let Err(error) = self.media.migrate(moved.endpoint.id, a_key.0) {
            tracing::warn!(%error, "the bridged leg's media could not move");
        }
        // It takes the place of A's partner, who is hung up.
        let partner = a_side.other();
        let Some(call) = self.calls.calls.get_mut(&a_key) else {
            return Err(ControlError::NotFound(format!("the call of {a} ended")));
        };
        call.parked = false;
        // What the API did to the partner (hold, a playback) does not pass to its successor.
        call.held_by_us = call.held_by_us.filter(|held| *held != partner);
        call.api_playback = call.api_playback.filter(|played| *played != partner);
        let Some((replaced, destination)) = call.leg_dialog(partner) else {
            return Err(ControlError::Conflict(format!("{a} has no partner")));
        };
        let former = match partner {
            Side::Caller => call.caller.clone(),
            Side::Callee => call.b_number.clone(),
        };
        self.bye_dialog(
            replaced,
            Some(destination),
            HangupCause::NormalClearing,
            now,
        );
        let number = moved.number.clone();
        match partner {
            Side::Callee => {
                self.end_callee_leg(a_key, HangupCause::NormalClearing);
                self.replace_callee(a_key, replaced, moved, HangupCause::AttendedTransfer);
            }
            Side::Caller => {
                self.replace_caller(a_key, replaced, moved);
                if let Some(call) = self.calls.calls.get_mut(&a_key) {
                    call.caller = number.clone();
                }
                self.publish_joined_again(a_key, Side::Callee);
            }
        }
        if let Some(call) = self.calls.calls.get(&a_key) {
            tracing::info!(uuid = %call.uuid, with = %number, "bridged on the API's request");
        }
        self.agents
            .apply(&former, AgentChange::CallState(CallState::Ready));
        self.agents
            .apply(&number, AgentChange::CallState(CallState::Talking));
        Ok(ControlReply::Uuid(self.leg_uuid(a_key, a_side)))
    }

    /// The parked call `key` is joined again: its parties hear each other.
    fn unpark(&mut self, key: CallKey) {
        let Some(call) = self.calls.calls.get_mut(&key) else {
            return;
        };
        if !std::mem::replace(&mut call.parked, false) {
            return;
        }
        tracing::info!(uuid = %call.uuid, "unparked");
        for side in [Side::Caller, Side::Callee] {
            let playing = self.calls.calls[&key].api_playback == Some(side);
            if let Some(endpoint) = self.calls.calls[&key].endpoint(side)
                && !playing
            {
                let feed = self.resting_feed(key, side);
                let _ = self.media.set_feed(endpoint.id, feed);
            }
            self.publish(key, side, EventCode::Unpark, "");
        }
    }

    /// The answered leg `name` names (a UUID or a phone), in a call whose parties are both
    /// answered.
    fn answered_leg(&self, name: &LegName) -> Result<(CallKey, Side), ControlError> {
        match name {
            LegName::Phone(phone) => self.joined_leg(phone),
            LegName::Uuid(uuid) => {
                let (key, side) = self
                    .leg_of_uuid(uuid)
                    .ok_or_else(|| ControlError::NotFound(format!("no leg has uuid {uuid}")))?;
                let call = &self.calls.calls[&key];
                if call.stage != Stage::Bridged
                    || call.a_endpoint.is_none()
                    || call.b_endpoint.is_none()
                {
                    return Err(ControlError::Conflict(format!(
                        "the call of leg {uuid} is not answered yet"
                    )));
                }
                Ok((key, side))
            }
        }
    }
}
