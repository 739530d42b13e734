//! [`DialogLayer`]: owns every dialog, matches messages to them, runs their retransmissions
//! and queues what they send and report.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::sip::message::{
    Header, Headers, Method, NameAddr, Request, Response, Uri, reason_phrase,
};
use crate::sip::peer::Peer;
use crate::sip::transaction::TsxId;

use super::error::Misuse;
use super::state::{
    Dialog, QueuedReliable, ReliableOut, SentAck, Unacked2xx, has_method, is_target_refresh,
};
use super::timer::{Backoff, Deadlines, Owner, Tick, later};
use super::{
    DialogConfig, DialogError, DialogEvent, DialogId, DialogIdentity, DialogState, Outgoing, RAck,
    Role, Tag, TerminationReason, Transmit, parse_u32,
};

/// Every dialog of one element, sans-IO.
///
/// The TU owns a `DialogLayer` next to its `TransactionLayer` and passes messages between
/// them:
///
/// - `NewRequest` for an initial INVITE the TU takes on:
///   [`handle_incoming_invite`](Self::handle_incoming_invite);
/// - `NewRequest` with a To tag (not CANCEL): [`handle_request`](Self::handle_request);
/// - `AckFor2xx`: [`handle_ack`](Self::handle_ack);
/// - `Response`: [`handle_response`](Self::handle_response);
/// - `Timeout` (B, F, the CANCEL guard) and `TransportError`:
///   [`handle_transaction_failed`](Self::handle_transaction_failed);
/// - `Terminated`: [`handle_transaction_terminated`](Self::handle_transaction_terminated).
///
/// The TU's own actions: [`respond`](Self::respond) for every response to an INVITE it
/// registered or to a request the layer passed on; [`request`](Self::request),
/// [`ack`](Self::ack) and [`prack`](Self::prack) build in-dialog requests, which the TU
/// sends and reports with [`handle_request_sent`](Self::handle_request_sent) (also for its
/// initial INVITE) or [`handle_ack_sent`](Self::handle_ack_sent);
/// [`terminate`](Self::terminate) forgets a dialog.
///
/// **Drain rule:** after any `handle_*` call and after any call from the TU, drain
/// [`poll_transmit`](Self::poll_transmit) (hand each [`Transmit`] to the transaction layer)
/// and [`poll_event`](Self::poll_event) until each returns `None`; then sleep until
/// [`poll_timeout`](Self::poll_timeout) and call [`handle_timeout`](Self::handle_timeout)
/// then, or earlier on other input.
///
/// Terminated dialogs are removed at once ([`DialogEvent::Terminated`]); the number of live
/// dialogs never exceeds [`DialogConfig::max_dialogs`].
#[derive(Debug)]
pub struct DialogLayer {
    config: DialogConfig,
    next_id: u64,
    next_token: u64,
    dialogs: HashMap<DialogId, Dialog>,
    index: HashMap<DialogIdentity, DialogId>,
    /// Client transactions of the TU that concern dialogs.
    client: HashMap<TsxId, ClientTsx>,
    /// Server transactions whose responses pass through the layer.
    server: HashMap<TsxId, ServerTsx>,
    /// How many of `client` and `server` are initial INVITEs.
    uac_invites: usize,
    uas_invites: usize,
    deadlines: Deadlines,
    transmits: VecDeque<Transmit>,
    events: VecDeque<DialogEvent>,
}

impl DialogLayer {
    /// A layer with `config`. A zero T1 is raised to 1 ms and T2 to at least T1, so that
    /// retransmissions always advance.
    pub fn new(mut config: DialogConfig) -> DialogLayer {
        let timers = &mut config.timers;
        timers.t1 = timers.t1.max(Duration::from_millis(1));
        timers.t2 = timers.t2.max(timers.t1);
        DialogLayer {
            config,
            next_id: 0,
            next_token: 0,
            dialogs: HashMap::new(),
            index: HashMap::new(),
            client: HashMap::new(),
            server: HashMap::new(),
            uac_invites: 0,
            uas_invites: 0,
            deadlines: Deadlines::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &DialogConfig {
        &self.config
    }

    /// The number of live dialogs.
    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }

    /// The dialog `id`, or `None` once it has terminated.
    pub fn dialog(&self, id: DialogId) -> Option<&Dialog> {
        self.dialogs.get(&id)
    }

    /// The dialog with this identity, if it exists.
    pub fn find(&self, identity: &DialogIdentity) -> Option<DialogId> {
        self.index.get(identity).copied()
    }

    /// Whether the layer tracks transaction `tsx` (so its events belong here).
    pub fn handles(&self, tsx: TsxId) -> bool {
        self.client.contains_key(&tsx) || self.server.contains_key(&tsx)
    }

    /// A fresh tag, for the From of a new INVITE.
    pub fn new_tag(&mut self) -> Tag {
        Tag::new(format!("{:016x}", self.mix()))
    }

    /// UAS: an initial INVITE (no To tag) that the TU will answer through
    /// [`respond`](Self::respond), which creates the dialogs. The layer picks the local tag.
    ///
    /// # Errors
    /// [`DialogError::Malformed`] when the INVITE lacks Call-ID, From, To, CSeq or Contact
    /// (the TU answers 400); [`DialogError::Capacity`] when as many initial INVITEs wait as
    /// there may be dialogs (503); [`DialogError::ApiMisuse`] for another method, a To tag or
    /// a known `tsx`.
    pub fn handle_incoming_invite(
        &mut self,
        tsx: TsxId,
        request: &Request,
    ) -> Result<(), DialogError> {
        if request.method != Method::Invite {
            return Err(Misuse::NotAnInitialInvite {
                method: request.method.to_string(),
            }
            .into());
        }
        if self.server.contains_key(&tsx) {
            return Err(Misuse::DuplicateTransaction { tsx }.into());
        }
        let malformed = |reason| DialogError::Malformed { reason };
        let headers = &request.headers;
        let to = headers
            .to()
            .ok()
            .flatten()
            .ok_or(malformed("no usable To"))?;
        if to.tag().is_some() {
            return Err(Misuse::AlreadyInDialog.into());
        }
        let call_id = headers.call_id().ok_or(malformed("no Call-ID"))?;
        let from = headers
            .from()
            .ok()
            .flatten()
            .ok_or(malformed("no usable From"))?;
        let cseq = headers
            .cseq()
            .ok()
            .flatten()
            .ok_or(malformed("no usable CSeq"))?;
        let remote_target = contact_uri(headers).ok_or(malformed("no usable Contact"))?;
        if self.uas_invites >= self.config.max_dialogs {
            return Err(DialogError::Capacity {
                limit: self.config.max_dialogs,
            });
        }
        let invite = UasInvite {
            call_id: call_id.to_owned(),
            remote_tag: Tag::new(from.tag().unwrap_or_default()),
            remote: from,
            local: to,
            local_tag: self.new_tag(),
            cseq: cseq.seq,
            record_route: headers
                .all("Record-Route")
                .map(|h| h.value().to_owned())
                .collect(),
            route_set: route_set(headers, false),
            remote_target,
            peer_supports_100rel: has_option_tag(headers, "Supported", "100rel")
                || has_option_tag(headers, "Require", "100rel"),
            dialogs: Vec::new(),
        };
        self.put_server(tsx, ServerTsx::Initial(Box::new(invite)));
        Ok(())
    }

    /// A request with a To tag, from server transaction `tsx`. The layer matches it to its
    /// dialog and either answers it itself — 481 for an unknown dialog or a PRACK that
    /// matches no reliable provisional response, 500 for a CSeq out of order (RFC 3261
    /// §12.2.2) or an INVITE/UPDATE while the peer's previous one is unanswered (with
    /// Retry-After), 491 when it collides with our own re-INVITE or UPDATE (RFC 3261 §14.2,
    /// RFC 3311 §5.2), 400 without Call-ID or CSeq — or passes it on as
    /// [`DialogEvent::Request`] for the TU to answer with [`respond`](Self::respond).
    ///
    /// # Errors
    /// [`DialogError::ApiMisuse`] for an ACK or CANCEL, a request without To tag, or a known
    /// `tsx`.
    pub fn handle_request(
        &mut self,
        now: Instant,
        tsx: TsxId,
        request: Request,
        source: Peer,
    ) -> Result<(), DialogError> {
        if matches!(request.method, Method::Ack | Method::Cancel) {
            return Err(Misuse::NotForDialogs {
                method: request.method,
            }
            .into());
        }
        if self.server.contains_key(&tsx) {
            return Err(Misuse::DuplicateTransaction { tsx }.into());
        }
        let headers = &request.headers;
        let local_tag = to_tag(headers).ok_or(Misuse::NotInDialog)?;
        let (Some(call_id), Ok(Some(cseq))) = (headers.call_id(), headers.cseq()) else {
            self.answer(tsx, &request, 400, false);
            return Ok(());
        };
        let identity = DialogIdentity {
            call_id: call_id.to_owned(),
            local_tag: Tag::new(local_tag),
            remote_tag: Tag::new(from_tag(headers).unwrap_or_default()),
        };
        let Some(&id) = self.index.get(&identity) else {
            self.answer(tsx, &request, 481, false);
            return Ok(());
        };
        let max_pending = self.config.max_pending_requests;
        let Some(dialog) = self.dialogs.get_mut(&id) else {
            self.answer(tsx, &request, 481, false);
            return Ok(());
        };
        let pracked = match judge(dialog, &request, cseq.seq, max_pending) {
            Judgement::Accept { pracked } => pracked,
            Judgement::Reject(status) => {
                self.answer(tsx, &request, status, false);
                return Ok(());
            }
            Judgement::RetryLater => {
                self.answer(tsx, &request, 500, true);
                return Ok(());
            }
        };
        if is_target_refresh(&request.method)
            && let Some(target) = contact_uri(&request.headers)
        {
            dialog.remote_target = target;
        }
        dialog.server_pending.push((tsx, request.method.clone()));
        let record = InDialogTsx {
            dialog: id,
            method: request.method.clone(),
            cseq: cseq.seq,
            answered: false,
        };
        self.put_server(tsx, ServerTsx::InDialog(record));
        self.events.push_back(DialogEvent::Request {
            dialog: id,
            tsx,
            request,
            source,
        });
        if pracked {
            self.send_next_reliable(now, id);
        }
        self.settle(id);
        Ok(())
    }

    /// An ACK for a 2xx (the transaction layer's `AckFor2xx`). The ACK for our pending 2xx
    /// stops its retransmission and is passed on ([`DialogEvent::AckReceived`]); any other
    /// (a retransmission, an unknown dialog) is absorbed.
    ///
    /// # Errors
    /// [`DialogError::Malformed`] without Call-ID or CSeq; [`DialogError::ApiMisuse`] for
    /// another method.
    pub fn handle_ack(&mut self, request: Request) -> Result<(), DialogError> {
        if request.method != Method::Ack {
            return Err(Misuse::NotAnAck {
                method: request.method,
            }
            .into());
        }
        let headers = &request.headers;
        let Some(local_tag) = to_tag(headers) else {
            return Ok(());
        };
        let malformed = |reason| DialogError::Malformed { reason };
        let call_id = headers.call_id().ok_or(malformed("ACK without Call-ID"))?;
        let cseq = headers
            .cseq()
            .ok()
            .flatten()
            .ok_or(malformed("ACK without a usable CSeq"))?;
        let identity = DialogIdentity {
            call_id: call_id.to_owned(),
            local_tag: Tag::new(local_tag),
            remote_tag: Tag::new(from_tag(headers).unwrap_or_default()),
        };
        let Some(&id) = self.index.get(&identity) else {
            return Ok(());
        };
        let Some(dialog) = self.dialogs.get_mut(&id) else {
            return Ok(());
        };
        let before = dialog.unacked_2xx.len();
        dialog.unacked_2xx.retain(|job| job.cseq != cseq.seq);
        if dialog.unacked_2xx.len() < before {
            self.events.push_back(DialogEvent::AckReceived {
                dialog: id,
                request,
            });
            self.settle(id);
        }
        Ok(())
    }

    /// A response for client transaction `tsx`. Responses to the initial INVITE create early
    /// dialogs (one per To tag) and confirm them; responses in a dialog refresh the target
    /// (2xx to re-INVITE/UPDATE) or end it (BYE, 481, 408). A retransmitted 2xx is answered
    /// with the same ACK again and a repeated reliable provisional response dropped; every
    /// other response comes back as [`DialogEvent::Response`] or
    /// [`DialogEvent::ReliableProvisional`], also for a `tsx` the layer does not know.
    ///
    /// # Errors
    /// [`DialogError::Malformed`] for a 2xx to the initial INVITE without To tag (dropped);
    /// [`DialogError::Capacity`] when a response would create a dialog beyond the limit (the
    /// response is still passed on, without a dialog).
    pub fn handle_response(
        &mut self,
        now: Instant,
        tsx: TsxId,
        response: Response,
    ) -> Result<(), DialogError> {
        match self.take_client(tsx) {
            None => {
                self.events.push_back(DialogEvent::Response {
                    dialog: None,
                    tsx,
                    response,
                });
                Ok(())
            }
            Some(ClientTsx::Initial(invite)) => self.initial_response(now, tsx, invite, response),
            Some(ClientTsx::InDialog(record)) => {
                self.in_dialog_response(now, tsx, record, response);
                Ok(())
            }
        }
    }

    /// Transaction `tsx` failed: Timer B or F, the CANCEL guard, or a transport error (not
    /// Timer C, which only informs). A client request in a dialog without a final response
    /// ends the dialog (RFC 3261 §12.2.1.2); an initial INVITE without one ends its early
    /// dialogs. Unknown transactions are ignored.
    pub fn handle_transaction_failed(&mut self, tsx: TsxId) {
        self.forget(tsx);
    }

    /// Transaction `tsx` is gone. The layer forgets it; for an answered initial INVITE the
    /// early dialogs of the other forks end ([`TerminationReason::NotChosen`]). Unknown
    /// transactions are ignored.
    pub fn handle_transaction_terminated(&mut self, tsx: TsxId) {
        self.forget(tsx);
    }

    /// Runs the retransmissions and deadlines due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for owner in self.deadlines.due(now) {
            match owner {
                Owner::Dialog(id) => self.dialog_timeout(now, id),
                Owner::Client(tsx) => self.expire_client(tsx),
            }
        }
    }

    /// The TU's response in server transaction `tsx` (an initial INVITE registered with
    /// [`handle_incoming_invite`](Self::handle_incoming_invite) or a request from a
    /// [`DialogEvent::Request`]). It goes out through [`poll_transmit`](Self::poll_transmit).
    ///
    /// To the initial INVITE: a 101-299 without To tag gets the layer's tag, and Record-Route
    /// copied from the request; a 101-199 creates an early dialog, a 2xx confirms it (or
    /// creates it confirmed), a 300-699 ends the early ones. A 101-199 with
    /// `Require: 100rel` is sent reliably: the layer adds RSeq and retransmits it until its
    /// PRACK (a second one waits for the PRACK of the first). A 2xx to any INVITE is
    /// retransmitted until its ACK; a 2xx to INVITE or UPDATE without Contact gets ours; a 2xx
    /// to BYE ends the dialog. Returns the dialog the response belongs to.
    ///
    /// # Errors
    /// [`DialogError::Capacity`] when the response would create a dialog beyond the limit
    /// (nothing is sent; answer 503); [`DialogError::ApiMisuse`] for an unknown `tsx` or
    /// status, a dialog-creating response without Contact, a reliable 100 or a reliable
    /// response the peer does not support, or a 2xx while a reliable provisional response
    /// with a body waits for its PRACK.
    pub fn respond(
        &mut self,
        now: Instant,
        tsx: TsxId,
        response: Response,
    ) -> Result<Option<DialogId>, DialogError> {
        let status = response.status;
        if !(100..=699).contains(&status) {
            return Err(Misuse::InvalidStatus { status }.into());
        }
        match self.take_server(tsx) {
            None => Err(Misuse::UnknownTransaction { tsx }.into()),
            Some(ServerTsx::Initial(invite)) => self.respond_initial(now, tsx, invite, response),
            Some(ServerTsx::InDialog(record)) => self.respond_in_dialog(now, tsx, record, response),
        }
    }

    /// Builds a request in `dialog` (BYE, re-INVITE, UPDATE, INFO, NOTIFY, REFER, OPTIONS,
    /// MESSAGE, …) with the next local CSeq (RFC 3261 §12.2.1.1).
    ///
    /// # Errors
    /// [`DialogError::ApiMisuse`] for an unknown dialog; for ACK, PRACK and CANCEL (they have
    /// their own calls); for an INVITE in an early dialog or while an INVITE transaction is in
    /// progress (RFC 3261 §14.1); for a BYE of the callee in an early dialog (RFC 3261 §15).
    pub fn request(&mut self, dialog: DialogId, method: Method) -> Result<Outgoing, DialogError> {
        if matches!(method, Method::Ack | Method::Prack | Method::Cancel) {
            return Err(Misuse::DedicatedBuilder { method }.into());
        }
        let max_forwards = self.config.max_forwards;
        let d = self.dialog_mut(dialog)?;
        let early = d.state == DialogState::Early;
        let callee = d.role == Role::Uas;
        if early && (method == Method::Invite || (method == Method::Bye && callee)) {
            return Err(Misuse::NotConfirmed { dialog, method }.into());
        }
        if method == Method::Invite && d.invite_in_progress() {
            return Err(Misuse::InviteInProgress { dialog }.into());
        }
        let cseq = d.next_local_seq().ok_or(Misuse::CSeqExhausted { dialog })?;
        Ok(d.build(method, cseq, max_forwards))
    }

    /// Builds the ACK for the latest 2xx to INVITE in `dialog`: end to end, with the CSeq
    /// number of that INVITE (RFC 3261 §13.2.2.4). The TU may add a body (the answer when
    /// the INVITE had no offer).
    ///
    /// # Errors
    /// [`DialogError::ApiMisuse`] for an unknown dialog, or when no 2xx waits for an ACK.
    pub fn ack(&mut self, dialog: DialogId) -> Result<Outgoing, DialogError> {
        let max_forwards = self.config.max_forwards;
        let d = self.dialog_mut(dialog)?;
        let cseq = d.ack_due.ok_or(Misuse::NothingToAck { dialog })?;
        Ok(d.build(Method::Ack, cseq, max_forwards))
    }

    /// Builds the PRACK for the last reliable provisional response received in `dialog`
    /// (RFC 3262 §7.2: `RAck: RSeq CSeq-number INVITE`). The TU may add a body.
    ///
    /// # Errors
    /// [`DialogError::ApiMisuse`] for an unknown dialog, or when no reliable provisional
    /// response waits for a PRACK.
    pub fn prack(&mut self, dialog: DialogId) -> Result<Outgoing, DialogError> {
        let max_forwards = self.config.max_forwards;
        let d = self.dialog_mut(dialog)?;
        let rack = d
            .prack_due
            .clone()
            .ok_or(Misuse::NothingToPrack { dialog })?;
        let cseq = d.next_local_seq().ok_or(Misuse::CSeqExhausted { dialog })?;
        d.prack_due = None;
        let mut out = d.build(Method::Prack, cseq, max_forwards);
        out.request
            .headers
            .push(Header::new("RAck", rack.to_string()));
        Ok(out)
    }

    /// The TU sent `request` in client transaction `tsx`: its initial INVITE (no To tag),
    /// whose responses will create dialogs, or a request in a dialog, whose final response
    /// the layer then awaits (for glare, target refresh and ending the dialog).
    ///
    /// # Errors
    /// [`DialogError::Capacity`] when as many initial INVITEs wait as there may be dialogs;
    /// [`DialogError::ApiMisuse`] for an ACK or CANCEL, a known `tsx`, a request without
    /// CSeq, Call-ID, From tag or To, a request without To tag that is not an INVITE, or one
    /// for an unknown dialog.
    pub fn handle_request_sent(
        &mut self,
        tsx: TsxId,
        request: &Request,
    ) -> Result<(), DialogError> {
        let method = &request.method;
        if matches!(method, Method::Ack | Method::Cancel) {
            return Err(Misuse::NotForDialogs {
                method: method.clone(),
            }
            .into());
        }
        if self.client.contains_key(&tsx) {
            return Err(Misuse::DuplicateTransaction { tsx }.into());
        }
        let missing = |header| DialogError::from(Misuse::MissingHeader { header });
        let headers = &request.headers;
        let cseq = headers.cseq().ok().flatten().ok_or(missing("CSeq"))?;
        let call_id = headers.call_id().ok_or(missing("Call-ID"))?;
        let from = headers.from().ok().flatten().ok_or(missing("From"))?;
        let local_tag = Tag::new(from.tag().ok_or(missing("a From tag"))?);
        let to = headers.to().ok().flatten().ok_or(missing("To"))?;
        let Some(remote_tag) = to.tag() else {
            if *method != Method::Invite {
                return Err(Misuse::NotAnInitialInvite {
                    method: method.to_string(),
                }
                .into());
            }
            if self.uac_invites >= self.config.max_dialogs {
                return Err(DialogError::Capacity {
                    limit: self.config.max_dialogs,
                });
            }
            let invite = UacInvite {
                call_id: call_id.to_owned(),
                local: from,
                local_tag,
                remote: to,
                local_contact: first_contact_value(headers),
                request_uri: request.uri.clone(),
                cseq: cseq.seq,
                forks: Vec::new(),
                confirmed: None,
                answered: false,
            };
            self.put_client(tsx, ClientTsx::Initial(Box::new(invite)));
            return Ok(());
        };
        let identity = DialogIdentity {
            call_id: call_id.to_owned(),
            local_tag,
            remote_tag: Tag::new(remote_tag),
        };
        let id = self.find(&identity).ok_or(Misuse::NoSuchDialog)?;
        let d = self.dialog_mut(id)?;
        d.local_seq = Some(d.local_seq.map_or(cseq.seq, |seq| seq.max(cseq.seq)));
        if is_target_refresh(method)
            && let Some(contact) = first_contact_value(headers)
        {
            d.local_contact = Some(contact);
        }
        d.client_pending.push((tsx, method.clone()));
        let record = InDialogTsx {
            dialog: id,
            method: method.clone(),
            cseq: cseq.seq,
            answered: false,
        };
        self.put_client(tsx, ClientTsx::InDialog(record));
        Ok(())
    }

    /// The TU sent `ack` (built by [`ack`](Self::ack), with its Via) to `destination`. The
    /// layer keeps it and re-sends it for each retransmission of the 2xx.
    ///
    /// # Errors
    /// [`DialogError::ApiMisuse`] for another method, an ACK without CSeq, Call-ID or tags,
    /// or one for an unknown dialog.
    pub fn handle_ack_sent(&mut self, ack: Request, destination: Peer) -> Result<(), DialogError> {
        if ack.method != Method::Ack {
            return Err(Misuse::NotAnAck { method: ack.method }.into());
        }
        let missing = |header| DialogError::from(Misuse::MissingHeader { header });
        let headers = &ack.headers;
        let cseq = headers.cseq().ok().flatten().ok_or(missing("CSeq"))?;
        let identity = DialogIdentity {
            call_id: headers.call_id().ok_or(missing("Call-ID"))?.to_owned(),
            local_tag: Tag::new(from_tag(headers).ok_or(missing("a From tag"))?),
            remote_tag: Tag::new(to_tag(headers).ok_or(missing("a To tag"))?),
        };
        let id = self.find(&identity).ok_or(Misuse::NoSuchDialog)?;
        let d = self.dialog_mut(id)?;
        if d.ack_due == Some(cseq.seq) {
            d.ack_due = None;
        }
        d.last_ack = Some(SentAck {
            cseq: cseq.seq,
            request: ack,
            destination,
        });
        Ok(())
    }

    /// Ends `dialog` now, without sending anything ([`TerminationReason::Local`]).
    ///
    /// # Errors
    /// [`DialogError::ApiMisuse`] for an unknown dialog.
    pub fn terminate(&mut self, dialog: DialogId) -> Result<(), DialogError> {
        if !self.dialogs.contains_key(&dialog) {
            return Err(Misuse::UnknownDialog { dialog }.into());
        }
        self.end(dialog, TerminationReason::Local);
        Ok(())
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first()
    }

    /// The next message to hand to the transaction layer.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<DialogEvent> {
        self.events.pop_front()
    }

    fn respond_initial(
        &mut self,
        now: Instant,
        tsx: TsxId,
        mut invite: Box<UasInvite>,
        mut response: Response,
    ) -> Result<Option<DialogId>, DialogError> {
        let status = response.status;
        let reliable = is_reliable(&response) && status < 200;
        if status == 100 {
            self.put_server(tsx, ServerTsx::Initial(invite));
            if reliable {
                return Err(Misuse::Reliable100.into());
            }
            self.send_response(tsx, response);
            return Ok(None);
        }
        if to_tag(&response.headers).is_none() {
            response.set_to_tag(invite.local_tag.as_str());
        }
        if status >= 300 {
            self.send_response(tsx, response);
            for id in invite.dialogs {
                self.end_if_early(id, TerminationReason::Rejected { status });
            }
            return Ok(None);
        }
        let local_tag =
            to_tag(&response.headers).map_or_else(|| invite.local_tag.clone(), Tag::new);
        let identity = DialogIdentity {
            call_id: invite.call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: invite.remote_tag.clone(),
        };
        let existing = self.find(&identity);
        if let Err(error) = self.check_uas_response(&invite, existing, &response, reliable) {
            self.put_server(tsx, ServerTsx::Initial(invite));
            return Err(error);
        }
        if response.headers.first("Record-Route").is_none() {
            for value in &invite.record_route {
                response
                    .headers
                    .push(Header::new("Record-Route", value.clone()));
            }
        }
        let id = match existing {
            Some(id) => id,
            None => {
                let id = self.new_id();
                let mut dialog = Dialog::new(
                    id,
                    identity,
                    Role::Uas,
                    with_tag(&invite.local, local_tag.as_str()),
                    invite.remote.clone(),
                    invite.remote_target.clone(),
                );
                dialog.route_set = invite.route_set.clone();
                dialog.remote_seq = Some(invite.cseq);
                dialog.local_contact = first_contact_value(&response.headers);
                dialog.next_rseq = self.initial_rseq();
                self.insert_dialog(dialog);
                invite.dialogs.push(id);
                if status < 200 {
                    self.events.push_back(DialogEvent::Early { dialog: id });
                }
                id
            }
        };
        let cseq = invite.cseq;
        if status < 200 {
            self.put_server(tsx, ServerTsx::Initial(invite));
            if reliable {
                self.send_reliable(now, id, tsx, cseq, response);
            } else {
                self.send_response(tsx, response);
            }
            return Ok(Some(id));
        }
        let timers = self.config.timers;
        if let Some(dialog) = self.dialogs.get_mut(&id) {
            dialog.reliable = None;
            dialog.reliable_queue.clear();
            dialog.state = DialogState::Confirmed;
            dialog.unacked_2xx.push(Unacked2xx {
                cseq,
                tsx,
                response: response.clone(),
                backoff: Backoff::start(now, &timers, true),
            });
        }
        self.send_response(tsx, response);
        self.events.push_back(DialogEvent::Confirmed { dialog: id });
        for other in invite.dialogs.into_iter().filter(|&other| other != id) {
            self.end(other, TerminationReason::NotChosen);
        }
        self.settle(id);
        Ok(Some(id))
    }

    /// What a UAS response to the initial INVITE must satisfy before anything changes.
    fn check_uas_response(
        &self,
        invite: &UasInvite,
        existing: Option<DialogId>,
        response: &Response,
        reliable: bool,
    ) -> Result<(), DialogError> {
        if reliable && !invite.peer_supports_100rel {
            return Err(Misuse::PeerLacks100rel.into());
        }
        match existing.and_then(|id| self.dialogs.get(&id)) {
            None => {
                if first_contact_value(&response.headers).is_none() {
                    return Err(Misuse::MissingContact.into());
                }
                self.has_room()
            }
            Some(dialog) if response.status >= 200 && unacked_body(dialog, None) => {
                Err(Misuse::UnacknowledgedReliableBody.into())
            }
            Some(_) => Ok(()),
        }
    }

    fn respond_in_dialog(
        &mut self,
        now: Instant,
        tsx: TsxId,
        record: InDialogTsx,
        mut response: Response,
    ) -> Result<Option<DialogId>, DialogError> {
        let status = response.status;
        let id = record.dialog;
        let Some(dialog) = self.dialogs.get_mut(&id) else {
            if status < 200 {
                self.put_server(tsx, ServerTsx::InDialog(record));
            }
            self.send_response(tsx, response);
            return Ok(None);
        };
        let is_invite = record.method == Method::Invite;
        if status < 200 {
            let reliable = is_invite && status > 100 && is_reliable(&response);
            let cseq = record.cseq;
            self.put_server(tsx, ServerTsx::InDialog(record));
            if reliable {
                self.send_reliable(now, id, tsx, cseq, response);
            } else {
                self.send_response(tsx, response);
            }
            return Ok(Some(id));
        }
        let success = status < 300;
        if success && is_invite && unacked_body(dialog, Some(tsx)) {
            self.put_server(tsx, ServerTsx::InDialog(record));
            return Err(Misuse::UnacknowledgedReliableBody.into());
        }
        dialog.server_pending.retain(|(t, _)| *t != tsx);
        if dialog.reliable.as_ref().is_some_and(|job| job.tsx == tsx) {
            dialog.reliable = None;
        }
        dialog.reliable_queue.retain(|queued| queued.tsx != tsx);
        let refreshes = matches!(record.method, Method::Invite | Method::Update);
        if success
            && refreshes
            && response.headers.first("Contact").is_none()
            && let Some(contact) = &dialog.local_contact
        {
            response
                .headers
                .push(Header::new("Contact", contact.clone()));
        }
        if success && is_invite {
            dialog.unacked_2xx.push(Unacked2xx {
                cseq: record.cseq,
                tsx,
                response: response.clone(),
                backoff: Backoff::start(now, &self.config.timers, true),
            });
        }
        self.send_response(tsx, response);
        if success && record.method == Method::Bye {
            self.end(id, TerminationReason::ByeReceived);
        } else {
            self.send_next_reliable(now, id);
            self.settle(id);
        }
        Ok(Some(id))
    }

    /// Sends a reliable provisional response now, with the next RSeq, or queues it behind
    /// the one still waiting for its PRACK.
    fn send_reliable(
        &mut self,
        now: Instant,
        id: DialogId,
        tsx: TsxId,
        cseq: u32,
        mut response: Response,
    ) {
        let queue_limit = self.config.max_pending_requests.max(1);
        let timers = self.config.timers;
        let Some(dialog) = self.dialogs.get_mut(&id) else {
            self.send_response(tsx, response);
            return;
        };
        if dialog.reliable.is_some() {
            if dialog.reliable_queue.len() >= queue_limit {
                // Provisional responses are informational: the newest matters most.
                dialog.reliable_queue.pop_front();
            }
            dialog.reliable_queue.push_back(QueuedReliable {
                tsx,
                cseq,
                response,
            });
            return;
        }
        let rseq = dialog.next_rseq;
        dialog.next_rseq = dialog.next_rseq.wrapping_add(1).max(1);
        response.headers.remove("RSeq");
        response.headers.push(Header::new("RSeq", rseq.to_string()));
        dialog.reliable = Some(ReliableOut {
            rseq,
            cseq,
            tsx,
            response: response.clone(),
            backoff: Backoff::start(now, &timers, false),
        });
        self.send_response(tsx, response);
        self.settle(id);
    }

    /// After a PRACK: the next queued reliable provisional response, if any.
    fn send_next_reliable(&mut self, now: Instant, id: DialogId) {
        let Some(dialog) = self.dialogs.get_mut(&id) else {
            return;
        };
        if dialog.reliable.is_some() {
            return;
        }
        if let Some(next) = dialog.reliable_queue.pop_front() {
            self.send_reliable(now, id, next.tsx, next.cseq, next.response);
        }
    }

    fn initial_response(
        &mut self,
        now: Instant,
        tsx: TsxId,
        mut invite: Box<UacInvite>,
        response: Response,
    ) -> Result<(), DialogError> {
        let status = response.status;
        if status >= 300 {
            self.deadlines.set(Owner::Client(tsx), None);
            self.events.push_back(DialogEvent::Response {
                dialog: None,
                tsx,
                response,
            });
            for id in invite.forks {
                self.end_if_early(id, TerminationReason::Rejected { status });
            }
            return Ok(());
        }
        let Some(remote_tag) = to_tag(&response.headers).filter(|_| status > 100) else {
            self.put_client(tsx, ClientTsx::Initial(invite));
            if status >= 200 {
                return Err(DialogError::Malformed {
                    reason: "2xx to INVITE without a To tag",
                });
            }
            self.events.push_back(DialogEvent::Response {
                dialog: None,
                tsx,
                response,
            });
            return Ok(());
        };
        let identity = DialogIdentity {
            call_id: invite.call_id.clone(),
            local_tag: invite.local_tag.clone(),
            remote_tag: Tag::new(remote_tag.as_str()),
        };
        let existing = self.find(&identity);
        let id = match existing {
            Some(id) => id,
            None => {
                if let Err(error) = self.has_room() {
                    self.put_client(tsx, ClientTsx::Initial(invite));
                    self.events.push_back(DialogEvent::Response {
                        dialog: None,
                        tsx,
                        response,
                    });
                    return Err(error);
                }
                let id = self.new_id();
                let target =
                    contact_uri(&response.headers).unwrap_or_else(|| invite.request_uri.clone());
                let mut dialog = Dialog::new(
                    id,
                    identity,
                    Role::Uac,
                    invite.local.clone(),
                    with_tag(&invite.remote, &remote_tag),
                    target,
                );
                dialog.route_set = route_set(&response.headers, true);
                dialog.local_seq = Some(invite.cseq);
                dialog.local_contact = invite.local_contact.clone();
                self.insert_dialog(dialog);
                invite.forks.push(id);
                if status < 200 {
                    self.events.push_back(DialogEvent::Early { dialog: id });
                }
                id
            }
        };
        let cseq = invite.cseq;
        if status < 200 {
            if existing.is_some()
                && let Some(dialog) = self.dialogs.get_mut(&id)
                && dialog.state == DialogState::Early
                && let Some(target) = contact_uri(&response.headers)
            {
                dialog.remote_target = target;
            }
            self.put_client(tsx, ClientTsx::Initial(invite));
            self.provisional(id, tsx, cseq, response);
            return Ok(());
        }
        if !invite.answered {
            invite.answered = true;
            let window = self.config.timers.t1.saturating_mul(64);
            self.deadlines
                .set(Owner::Client(tsx), Some(later(now, window)));
        }
        let Some(dialog) = self.dialogs.get_mut(&id) else {
            self.put_client(tsx, ClientTsx::Initial(invite));
            return Ok(());
        };
        if dialog.state == DialogState::Confirmed {
            // A retransmission of the 2xx that confirmed this dialog.
            if let Some(ack) = dialog.last_ack.as_ref().filter(|ack| ack.cseq == cseq) {
                self.transmits.push_back(Transmit::Ack {
                    dialog: id,
                    request: ack.request.clone(),
                    destination: ack.destination,
                });
            }
            self.put_client(tsx, ClientTsx::Initial(invite));
            return Ok(());
        }
        if existing.is_some() {
            // RFC 3261 §13.2.2.4: the 2xx recomputes what the early dialog took from a 1xx.
            dialog.route_set = route_set(&response.headers, true);
            if let Some(target) = contact_uri(&response.headers) {
                dialog.remote_target = target;
            }
        }
        dialog.state = DialogState::Confirmed;
        dialog.ack_due = Some(cseq);
        match invite.confirmed {
            Some(confirmed) => {
                self.events.push_back(DialogEvent::LateForkConfirmed {
                    dialog: id,
                    confirmed,
                });
            }
            None => {
                invite.confirmed = Some(id);
                self.events.push_back(DialogEvent::Confirmed { dialog: id });
                for &other in invite.forks.iter().filter(|&&other| other != id) {
                    if self.state_of(other) == Some(DialogState::Early) {
                        self.events.push_back(DialogEvent::ForkConfirmedElsewhere {
                            dialog: other,
                            confirmed: id,
                        });
                    }
                }
                self.events.push_back(DialogEvent::Response {
                    dialog: Some(id),
                    tsx,
                    response,
                });
            }
        }
        self.put_client(tsx, ClientTsx::Initial(invite));
        Ok(())
    }

    fn in_dialog_response(
        &mut self,
        now: Instant,
        tsx: TsxId,
        mut record: InDialogTsx,
        response: Response,
    ) {
        let status = response.status;
        let id = record.dialog;
        let is_invite = record.method == Method::Invite;
        let Some(dialog) = self.dialogs.get_mut(&id) else {
            if status < 200 {
                self.put_client(tsx, ClientTsx::InDialog(record));
            } else {
                self.deadlines.set(Owner::Client(tsx), None);
            }
            self.events.push_back(DialogEvent::Response {
                dialog: None,
                tsx,
                response,
            });
            return;
        };
        if status < 200 {
            let cseq = record.cseq;
            self.put_client(tsx, ClientTsx::InDialog(record));
            if is_invite && status > 100 {
                self.provisional(id, tsx, cseq, response);
            } else {
                self.events.push_back(DialogEvent::Response {
                    dialog: Some(id),
                    tsx,
                    response,
                });
            }
            return;
        }
        let success = status < 300;
        if record.answered {
            // Only an answered INVITE stays: this is a retransmission of its 2xx.
            if let Some(ack) = dialog
                .last_ack
                .as_ref()
                .filter(|ack| ack.cseq == record.cseq)
            {
                self.transmits.push_back(Transmit::Ack {
                    dialog: id,
                    request: ack.request.clone(),
                    destination: ack.destination,
                });
            }
            self.put_client(tsx, ClientTsx::InDialog(record));
            return;
        }
        dialog.client_pending.retain(|(t, _)| *t != tsx);
        if success
            && matches!(record.method, Method::Invite | Method::Update)
            && let Some(target) = contact_uri(&response.headers)
        {
            dialog.remote_target = target;
        }
        let method = record.method.clone();
        if success && is_invite {
            dialog.ack_due = Some(record.cseq);
            record.answered = true;
            self.put_client(tsx, ClientTsx::InDialog(record));
            let window = self.config.timers.t1.saturating_mul(64);
            self.deadlines
                .set(Owner::Client(tsx), Some(later(now, window)));
        }
        self.events.push_back(DialogEvent::Response {
            dialog: Some(id),
            tsx,
            response,
        });
        if method == Method::Bye {
            self.end(id, TerminationReason::ByeSent);
        } else if matches!(status, 408 | 481) {
            self.end(id, TerminationReason::PeerEnded { status });
        }
    }

    /// A 101-199 to one of our INVITEs in dialog `id`: a new reliable one is passed on for
    /// the TU to PRACK, a repeated or out-of-order one dropped (RFC 3262 §4), an unreliable
    /// one passed on.
    fn provisional(&mut self, id: DialogId, tsx: TsxId, cseq: u32, response: Response) {
        let rseq = if is_reliable(&response) {
            rseq_of(&response)
        } else {
            None
        };
        let (Some(rseq), Some(dialog)) = (rseq, self.dialogs.get_mut(&id)) else {
            self.events.push_back(DialogEvent::Response {
                dialog: Some(id),
                tsx,
                response,
            });
            return;
        };
        let in_order = match dialog.last_rseq {
            Some((last_cseq, last)) if last_cseq == cseq => Some(rseq) == last.checked_add(1),
            _ => true,
        };
        if !in_order {
            return;
        }
        dialog.last_rseq = Some((cseq, rseq));
        dialog.prack_due = Some(RAck {
            rseq,
            cseq,
            method: Method::Invite,
        });
        self.events.push_back(DialogEvent::ReliableProvisional {
            dialog: id,
            tsx,
            response,
        });
    }

    fn dialog_timeout(&mut self, now: Instant, id: DialogId) {
        let transmits = &mut self.transmits;
        let events = &mut self.events;
        let Some(dialog) = self.dialogs.get_mut(&id) else {
            self.deadlines.set(Owner::Dialog(id), None);
            return;
        };
        dialog
            .unacked_2xx
            .retain_mut(|job| match job.backoff.tick(now) {
                Tick::Idle => true,
                Tick::Resend => {
                    transmits.push_back(Transmit::Response {
                        tsx: job.tsx,
                        response: job.response.clone(),
                    });
                    true
                }
                Tick::GiveUp => {
                    events.push_back(DialogEvent::AckTimeout { dialog: id });
                    false
                }
            });
        let mut gave_up = None;
        if let Some(job) = &mut dialog.reliable {
            match job.backoff.tick(now) {
                Tick::Idle => {}
                Tick::Resend => transmits.push_back(Transmit::Response {
                    tsx: job.tsx,
                    response: job.response.clone(),
                }),
                Tick::GiveUp => gave_up = Some(job.tsx),
            }
        }
        if let Some(tsx) = gave_up {
            dialog.reliable = None;
            dialog.reliable_queue.retain(|queued| queued.tsx != tsx);
            events.push_back(DialogEvent::PrackTimeout { dialog: id, tsx });
        }
        self.settle(id);
    }

    /// The 2xx window of a client INVITE is over: its record goes, and with an initial
    /// INVITE the forks that stayed early.
    fn expire_client(&mut self, tsx: TsxId) {
        self.deadlines.set(Owner::Client(tsx), None);
        if let Some(ClientTsx::Initial(invite)) = self.take_client(tsx) {
            for id in invite.forks {
                self.end_if_early(id, TerminationReason::NotChosen);
            }
        }
    }

    /// Drops every record of `tsx`, ending what depended on it.
    fn forget(&mut self, tsx: TsxId) {
        self.deadlines.set(Owner::Client(tsx), None);
        match self.take_client(tsx) {
            Some(ClientTsx::Initial(invite)) => {
                let reason = if invite.answered {
                    TerminationReason::NotChosen
                } else {
                    TerminationReason::NoResponse
                };
                for id in invite.forks {
                    self.end_if_early(id, reason);
                }
            }
            Some(ClientTsx::InDialog(record)) if !record.answered => {
                let reason = if record.method == Method::Bye {
                    TerminationReason::ByeSent
                } else {
                    TerminationReason::NoResponse
                };
                self.end(record.dialog, reason);
            }
            Some(ClientTsx::InDialog(_)) | None => {}
        }
        match self.take_server(tsx) {
            Some(ServerTsx::Initial(invite)) => {
                for id in invite.dialogs {
                    self.end_if_early(id, TerminationReason::NoResponse);
                }
            }
            Some(ServerTsx::InDialog(record)) => {
                if let Some(dialog) = self.dialogs.get_mut(&record.dialog) {
                    dialog.server_pending.retain(|(t, _)| *t != tsx);
                    if dialog.reliable.as_ref().is_some_and(|job| job.tsx == tsx) {
                        dialog.reliable = None;
                    }
                    dialog.reliable_queue.retain(|queued| queued.tsx != tsx);
                }
                self.settle(record.dialog);
            }
            None => {}
        }
    }

    /// Queues a response of the layer's own (400, 481, 491, 500).
    fn answer(&mut self, tsx: TsxId, request: &Request, status: u16, retry_later: bool) {
        let mut response = Response::for_request(request, status, reason_phrase(status));
        if retry_later {
            // RFC 3261 §14.2: a random value between 0 and 10 seconds.
            let seconds = self.mix() % 11;
            response
                .headers
                .push(Header::new("Retry-After", seconds.to_string()));
        }
        self.send_response(tsx, response);
    }

    fn send_response(&mut self, tsx: TsxId, response: Response) {
        self.transmits
            .push_back(Transmit::Response { tsx, response });
    }

    fn dialog_mut(&mut self, id: DialogId) -> Result<&mut Dialog, DialogError> {
        self.dialogs
            .get_mut(&id)
            .ok_or_else(|| Misuse::UnknownDialog { dialog: id }.into())
    }

    fn state_of(&self, id: DialogId) -> Option<DialogState> {
        self.dialogs.get(&id).map(|dialog| dialog.state)
    }

    fn has_room(&self) -> Result<(), DialogError> {
        if self.dialogs.len() >= self.config.max_dialogs {
            return Err(DialogError::Capacity {
                limit: self.config.max_dialogs,
            });
        }
        Ok(())
    }

    fn insert_dialog(&mut self, dialog: Dialog) {
        self.index.insert(dialog.identity.clone(), dialog.id);
        self.dialogs.insert(dialog.id, dialog);
    }

    /// Removes dialog `id` and reports it.
    fn end(&mut self, id: DialogId, reason: TerminationReason) {
        let Some(dialog) = self.dialogs.remove(&id) else {
            return;
        };
        if self.index.get(&dialog.identity) == Some(&id) {
            self.index.remove(&dialog.identity);
        }
        self.deadlines.set(Owner::Dialog(id), None);
        self.events
            .push_back(DialogEvent::Terminated { dialog: id, reason });
    }

    fn end_if_early(&mut self, id: DialogId, reason: TerminationReason) {
        if self.state_of(id) == Some(DialogState::Early) {
            self.end(id, reason);
        }
    }

    /// Brings the deadline index up to date with dialog `id`.
    fn settle(&mut self, id: DialogId) {
        let next = self.dialogs.get(&id).and_then(Dialog::next_deadline);
        self.deadlines.set(Owner::Dialog(id), next);
    }

    fn put_client(&mut self, tsx: TsxId, record: ClientTsx) {
        if matches!(record, ClientTsx::Initial(_)) {
            self.uac_invites += 1;
        }
        if let Some(ClientTsx::Initial(_)) = self.client.insert(tsx, record) {
            self.uac_invites = self.uac_invites.saturating_sub(1);
        }
    }

    fn take_client(&mut self, tsx: TsxId) -> Option<ClientTsx> {
        let record = self.client.remove(&tsx)?;
        if matches!(record, ClientTsx::Initial(_)) {
            self.uac_invites = self.uac_invites.saturating_sub(1);
        }
        Some(record)
    }

    fn put_server(&mut self, tsx: TsxId, record: ServerTsx) {
        if matches!(record, ServerTsx::Initial(_)) {
            self.uas_invites += 1;
        }
        if let Some(ServerTsx::Initial(_)) = self.server.insert(tsx, record) {
            self.uas_invites = self.uas_invites.saturating_sub(1);
        }
    }

    fn take_server(&mut self, tsx: TsxId) -> Option<ServerTsx> {
        let record = self.server.remove(&tsx)?;
        if matches!(record, ServerTsx::Initial(_)) {
            self.uas_invites = self.uas_invites.saturating_sub(1);
        }
        Some(record)
    }

    fn new_id(&mut self) -> DialogId {
        self.next_id += 1;
        DialogId(self.next_id)
    }

    /// RFC 3262 §3: the first RSeq is chosen between 1 and 2^31 - 1.
    fn initial_rseq(&mut self) -> u32 {
        let value = self.mix() % 0x7fff_fffe;
        u32::try_from(value).map_or(1, |value| value + 1)
    }

    fn mix(&mut self) -> u64 {
        self.next_token += 1;
        splitmix64(self.config.seed ^ splitmix64(self.next_token))
    }
}

/// A client transaction the layer follows.
#[derive(Debug)]
enum ClientTsx {
    Initial(Box<UacInvite>),
    InDialog(InDialogTsx),
}

/// A server transaction whose responses pass through the layer.
#[derive(Debug)]
enum ServerTsx {
    Initial(Box<UasInvite>),
    InDialog(InDialogTsx),
}

/// A request inside a dialog, in either direction.
#[derive(Debug)]
struct InDialogTsx {
    dialog: DialogId,
    method: Method,
    cseq: u32,
    /// Client INVITE: a 2xx arrived; the record stays for the 2xx retransmissions.
    answered: bool,
}

/// Our initial INVITE: what its responses need to create dialogs, and the dialogs they
/// created (one per fork).
#[derive(Debug)]
struct UacInvite {
    call_id: String,
    /// From, with our tag.
    local: NameAddr,
    local_tag: Tag,
    /// To, without a tag.
    remote: NameAddr,
    local_contact: Option<String>,
    request_uri: Uri,
    cseq: u32,
    forks: Vec<DialogId>,
    confirmed: Option<DialogId>,
    /// A 2xx arrived: the record lives 64*T1 more for retransmissions and other forks.
    answered: bool,
}

/// A peer's initial INVITE the TU answers through the layer.
#[derive(Debug)]
struct UasInvite {
    call_id: String,
    /// From.
    remote: NameAddr,
    remote_tag: Tag,
    /// To, without a tag.
    local: NameAddr,
    /// The tag the layer gives responses that lack one.
    local_tag: Tag,
    cseq: u32,
    /// Record-Route values as received, copied into dialog-creating responses.
    record_route: Vec<String>,
    route_set: Vec<NameAddr>,
    remote_target: Uri,
    peer_supports_100rel: bool,
    dialogs: Vec<DialogId>,
}

/// What becomes of a request in a dialog.
enum Judgement {
    /// Pass it to the TU; `pracked` when it was the PRACK of our reliable response.
    Accept { pracked: bool },
    /// Answer it with this status.
    Reject(u16),
    /// Answer 500 with Retry-After.
    RetryLater,
}

/// The checks of RFC 3261 §12.2.2 and §14.2, RFC 3262 §3 and RFC 3311 §5.2 for a request in
/// `dialog` with CSeq number `seq`.
fn judge(dialog: &mut Dialog, request: &Request, seq: u32, max_pending: usize) -> Judgement {
    if dialog.remote_seq.is_some_and(|remote| seq <= remote) {
        // Retransmissions never get here (the transaction layer absorbs them), so an equal
        // number is a new request out of order too.
        return Judgement::Reject(500);
    }
    dialog.remote_seq = Some(seq);
    if dialog.server_pending.len() >= max_pending {
        return Judgement::RetryLater;
    }
    match &request.method {
        Method::Invite => {
            if dialog.state == DialogState::Early {
                // Our initial INVITE (UAC) or theirs (UAS) is still in progress.
                return match dialog.role {
                    Role::Uac => Judgement::Reject(491),
                    Role::Uas => Judgement::RetryLater,
                };
            }
            if has_method(&dialog.client_pending, &Method::Invite) || dialog.ack_due.is_some() {
                return Judgement::Reject(491);
            }
            if has_method(&dialog.server_pending, &Method::Invite) || !dialog.unacked_2xx.is_empty()
            {
                return Judgement::RetryLater;
            }
        }
        Method::Update => {
            if has_method(&dialog.client_pending, &Method::Update) {
                return Judgement::Reject(491);
            }
            if has_method(&dialog.server_pending, &Method::Update) {
                return Judgement::RetryLater;
            }
        }
        Method::Prack => {
            let Some(rack) = request.headers.first("RAck").and_then(RAck::parse) else {
                return Judgement::Reject(400);
            };
            let matched = dialog.reliable.as_ref().is_some_and(|job| {
                job.rseq == rack.rseq && job.cseq == rack.cseq && rack.method == Method::Invite
            });
            if !matched {
                return Judgement::Reject(481);
            }
            dialog.reliable = None;
            return Judgement::Accept { pracked: true };
        }
        _ => {}
    }
    Judgement::Accept { pracked: false }
}

/// Whether a reliable provisional response with a body (of transaction `tsx`, or any) still
/// waits for its PRACK.
fn unacked_body(dialog: &Dialog, tsx: Option<TsxId>) -> bool {
    dialog
        .reliable
        .as_ref()
        .is_some_and(|job| tsx.is_none_or(|tsx| job.tsx == tsx) && !job.response.body.is_empty())
}

fn to_tag(headers: &Headers) -> Option<String> {
    headers.to().ok().flatten()?.tag().map(str::to_owned)
}

fn from_tag(headers: &Headers) -> Option<String> {
    headers.from().ok().flatten()?.tag().map(str::to_owned)
}

/// The URI of the first Contact.
fn contact_uri(headers: &Headers) -> Option<Uri> {
    let contacts = headers.contacts().ok().flatten()?;
    contacts.into_iter().next().map(|contact| contact.uri)
}

/// The first Contact value as written.
fn first_contact_value(headers: &Headers) -> Option<String> {
    headers
        .values("Contact")
        .next()
        .filter(|value| !value.is_empty() && *value != "*")
        .map(str::to_owned)
}

/// The route set from Record-Route: in order on the UAS side, reversed on the UAC side
/// (RFC 3261 §12.1.1, §12.1.2).
fn route_set(headers: &Headers, reverse: bool) -> Vec<NameAddr> {
    let mut routes = headers.name_addrs("Record-Route").unwrap_or_default();
    if reverse {
        routes.reverse();
    }
    routes
}

pub(crate) fn has_option_tag(headers: &Headers, header: &str, tag: &str) -> bool {
    headers
        .values(header)
        .any(|value| value.eq_ignore_ascii_case(tag))
}

/// A provisional response sent or received reliably (RFC 3262 §3).
fn is_reliable(response: &Response) -> bool {
    has_option_tag(&response.headers, "Require", "100rel")
}

fn rseq_of(response: &Response) -> Option<u32> {
    parse_u32(response.headers.first("RSeq")?.trim())
}

/// `addr` with its tag parameter set to `tag`.
fn with_tag(addr: &NameAddr, tag: &str) -> NameAddr {
    let mut addr = addr.clone();
    addr.params
        .retain(|(name, _)| !name.eq_ignore_ascii_case("tag"));
    addr.params.push(("tag".to_owned(), Some(tag.to_owned())));
    addr
}

/// The splitmix64 finalizer: spreads a counter over 64 bits.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49eb_1331_11eb);
    z ^ (z >> 31)
}
