//! The SIP service: the task that joins the transport, the transaction layer, the UAS checks,
//! digest authentication and the registrar.
//!
//! One task owns the sans-IO cores and drives them: messages from the transport go into the
//! transaction layer; new requests are checked (RFC 3261 §8.2) and handed to their method:
//! OPTIONS is answered with what this server supports, REGISTER is authenticated against the
//! extension's password in the running snapshot and given to the registrar. Binding changes
//! are written to the store by a separate task, in order, so a slow database never delays SIP.
//! Bindings are restored from the store at start.
//!
//! Calls: a new INVITE, after the request checks (so a bad INVITE gets its 415, 406 or
//! 420), goes to the call engine ([`super::calls`]), which uses the dialog layer owned here
//! and the media threads.
//!
//! What this module does not do: the call logic itself (`calls`), or media (`media::io`).
#![allow(clippy::disallowed_methods)] // IO driver: owns the clocks and tasks of the SIP stack

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use tokio::sync::{mpsc, watch};

use super::calls::Calls;
use super::cdr::CdrJob;
use super::live::LiveConfig;
use super::registrar::{BindingChange, Registrar, RegistrarConfig, binding_row};
use crate::clock::now_utc;
use crate::media::io::MediaEngine;
use crate::sip::auth::{
    Algorithm, Credentials, DigestConfig, DigestServer, FailureAction, NonceKey,
};
use crate::sip::dialog::{DialogConfig, DialogEvent, DialogLayer, Transmit as DialogTransmit};
use crate::sip::message::{Header, Message, Method, Request, Response, reason_phrase};
use crate::sip::peer::{Peer, TransportKind};
use crate::sip::transaction::{LayerConfig, TransactionLayer, Transmit, TsxEvent, TsxId};
use crate::sip::transport::{Inbound, TransportHandle, routing};
use crate::sip::uas::Capabilities;
use crate::store::value::Value;
use crate::store::{ListQuery, Registration, Store};

/// Settings of the SIP service.
#[derive(Debug, Clone)]
pub struct SipServiceConfig {
    /// Our SIP address for Via and Contact of the requests we send (the UDP listener).
    pub local_sip: std::net::SocketAddr,
    /// The address SDP announces for our RTP.
    pub media_ip: std::net::IpAddr,
    /// The digest realm.
    pub realm: String,
    /// Digest algorithms offered, in order.
    pub auth_algorithms: Vec<Algorithm>,
    pub registrar: RegistrarConfig,
    pub transactions: LayerConfig,
    /// The User-Agent / Server header value.
    pub server_name: String,
    /// Answer UDP requests at their source address even without `rport` (RFC 3581), as if
    /// every client had asked for it: phones behind NAT that do not send `rport` still get
    /// their responses. Off: RFC 3261 §18.2.2 (`received` and the Via port).
    pub force_rport: bool,
    /// How long binding changes gather before they are written together (write-behind).
    /// Refreshes of one binding within the window are written once.
    pub registration_write_delay: Duration,
    /// Entries of the digest replay guard (nonce-counts remembered).
    pub auth_replay_entries: usize,
    /// Where the built-in prompts are.
    pub sounds: crate::config::SoundsConfig,
    /// The agents' states, shared with the API.
    pub agents: super::agents::AgentStates,
    /// Session timer limits (RFC 4028).
    pub timers: super::session_timer::TimerConfig,
}

impl Default for SipServiceConfig {
    fn default() -> Self {
        SipServiceConfig {
            realm: "rswitch".to_owned(),
            auth_algorithms: vec![Algorithm::Md5],
            registrar: RegistrarConfig::default(),
            transactions: LayerConfig::default(),
            server_name: format!("rswitch/{}", env!("CARGO_PKG_VERSION")),
            registration_write_delay: Duration::from_secs(1),
            auth_replay_entries: crate::sip::auth::DEFAULT_REPLAY_CAPACITY,
            force_rport: true,
            local_sip: std::net::SocketAddr::from(([127, 0, 0, 1], 5060)),
            media_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            sounds: crate::config::SoundsConfig {
                dir: std::path::PathBuf::from("sounds"),
                language: "zh".to_owned(),
            },
            agents: super::agents::AgentStates::default(),
            timers: super::session_timer::TimerConfig::default(),
        }
    }
}

/// Restores the bindings and runs the service until `shutdown` turns true.
///
/// # Errors
/// The bindings can not be read from the store.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    config: SipServiceConfig,
    transport: TransportHandle,
    mut inbound: mpsc::Receiver<Inbound>,
    store: Store,
    live: Arc<LiveConfig>,
    media: Arc<MediaEngine>,
    cdr: mpsc::UnboundedSender<CdrJob>,
    events: crate::events::EventBus,
    mut media_events: mpsc::UnboundedReceiver<crate::media::io::EndpointEvent>,
    mut control: mpsc::Receiver<super::control::ControlMessage>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), crate::store::StoreError> {
    let mut registrar = Registrar::new(config.registrar.clone());
    let now = now_utc();
    let rows = store.all::<Registration>().await?;
    for expired in rows.iter().filter(|r| r.expires_at <= now) {
        let _ = store.delete::<Registration>(expired.id).await;
    }
    let restored = rows.len();
    registrar.restore(rows, now);
    tracing::info!(
        bindings = registrar.counts(),
        rows = restored,
        "registrations restored"
    );

    let (persist_tx, persist_rx) = mpsc::unbounded_channel();
    let persisting = tokio::spawn(persist_bindings(
        store,
        persist_rx,
        config.registration_write_delay,
    ));

    let mut key = [0u8; 32];
    rand::fill(&mut key);
    let mut digest_config = DigestConfig::new(config.realm.clone(), NonceKey::new(key));
    if !config.auth_algorithms.is_empty() {
        digest_config.algorithms = config.auth_algorithms.clone();
    }
    digest_config.replay_capacity = config.auth_replay_entries;
    let digest = DigestServer::new(digest_config)
        .expect("a digest configuration with algorithms and a realm is valid");
    let mut transactions = config.transactions.clone();
    transactions.seed = rand::random();
    // Dialogs are bounded like transactions (`sip.max_transactions`): a B-leg INVITE's
    // record lives as long as its transaction (32 s after a 2xx, RFC 6026), so at 1,000
    // calls per second some 35,000 are in flight.
    let dialog_config = DialogConfig {
        timers: transactions.timers,
        max_dialogs: transactions.max_transactions,
        seed: rand::random(),
        ..DialogConfig::default()
    };
    let (ready, mut ready_rx) = mpsc::unbounded_channel();
    let mut service = Service {
        transactions: TransactionLayer::new(transactions),
        dialogs: DialogLayer::new(dialog_config),
        calls: Calls::default(),
        media,
        cdr,
        events,
        ready,
        local_sip: config.local_sip,
        media_ip: config.media_ip,
        registrar,
        digest,
        capabilities: Capabilities::default(),
        live,
        transport,
        persist: persist_tx,
        server_name: config.server_name,
        force_rport: config.force_rport,
        sounds: config.sounds,
        agents: config.agents,
        timers: config.timers,
    };
    loop {
        let deadline = service.next_deadline();
        tokio::select! {
            message = inbound.recv() => {
                let Some(Inbound { message, peer }) = message else { break };
                service.handle_inbound(message, peer);
                // Take what else is waiting before sending: one wake-up serves a burst.
                for _ in 0..256 {
                    let Ok(Inbound { message, peer }) = inbound.try_recv() else { break };
                    service.handle_inbound(message, peer);
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => service.handle_timeout(),
            reply = ready_rx.recv() => {
                // A BYE's 200, held until the call's CDR was durable.
                if let Some((tsx, response)) = reply {
                    let _ = service.dialogs.respond(Instant::now(), tsx, response);
                }
            }
            Some(event) = media_events.recv() => service.handle_media_event(event),
            Some((request, reply)) = control.recv() => {
                let answer = service.handle_control(request, Instant::now());
                let _ = reply.send(answer);
            }
            _ = shutdown.wait_for(|s| *s) => break,
        }
        service.drain().await;
    }
    // Closing the channel lets the writer finish what is queued, so no binding is lost.
    drop(service);
    let _ = persisting.await;
    Ok(())
}

pub(crate) struct Service {
    pub(crate) transactions: TransactionLayer,
    pub(crate) dialogs: DialogLayer,
    pub(crate) calls: Calls,
    pub(crate) media: Arc<MediaEngine>,
    pub(crate) cdr: mpsc::UnboundedSender<CdrJob>,
    /// Call events (legacy codes 1-16), in causal order per leg.
    pub(crate) events: crate::events::EventBus,
    /// Responses to send once something finished elsewhere (a CDR on disk).
    pub(crate) ready: mpsc::UnboundedSender<(TsxId, Response)>,
    pub(crate) local_sip: std::net::SocketAddr,
    pub(crate) media_ip: std::net::IpAddr,
    pub(crate) registrar: Registrar,
    pub(crate) digest: DigestServer,
    capabilities: Capabilities,
    pub(crate) live: Arc<LiveConfig>,
    transport: TransportHandle,
    persist: mpsc::UnboundedSender<BindingChange>,
    pub(crate) server_name: String,
    force_rport: bool,
    pub(crate) sounds: crate::config::SoundsConfig,
    pub(crate) agents: super::agents::AgentStates,
    /// Session timer limits (RFC 4028).
    pub(crate) timers: super::session_timer::TimerConfig,
}

impl Service {
    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let tsx = self
            .transactions
            .poll_timeout()
            .unwrap_or(far)
            .min(self.dialogs.poll_timeout().unwrap_or(far))
            .min(self.calls.next_deadline().unwrap_or(far));
        let reg = self
            .registrar
            .poll_timeout()
            .map(|at| {
                let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                Instant::now() + left
            })
            .unwrap_or(far);
        tsx.min(reg)
    }

    fn handle_inbound(&mut self, message: Message, peer: Peer) {
        let now = Instant::now();
        let result = match message {
            Message::Request(request) => self.transactions.handle_request(now, request, peer),
            Message::Response(response) => self.transactions.handle_response(now, response, peer),
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "message refused by the transaction layer");
        }
    }

    fn handle_timeout(&mut self) {
        let now = Instant::now();
        self.transactions.handle_timeout(now);
        self.dialogs.handle_timeout(now);
        self.handle_call_timeouts(now);
        for change in self.registrar.handle_timeout(now_utc()) {
            let _ = self.persist.send(change);
        }
    }

    /// Drains both layers, routing between them until both are idle (events may produce
    /// responses and requests), then sends everything.
    async fn drain(&mut self) {
        loop {
            let mut busy = false;
            while let Some(event) = self.transactions.poll_event() {
                busy = true;
                self.handle_event(event);
            }
            busy |= self.pump_dialog_transmits();
            while let Some(event) = self.dialogs.poll_event() {
                busy = true;
                self.handle_dialog_event(event);
            }
            if !busy {
                break;
            }
        }
        while let Some(transmit) = self.transactions.poll_transmit() {
            self.send(transmit).await;
        }
    }

    /// Hands what the dialog layer sends to the transaction layer, now (so that a response
    /// goes out before a request the TU sends right after it); true when there was some.
    pub(crate) fn pump_dialog_transmits(&mut self) -> bool {
        let mut any = false;
        while let Some(transmit) = self.dialogs.poll_transmit() {
            any = true;
            match transmit {
                DialogTransmit::Response { tsx, response } => {
                    // The transaction may be gone (Timer L): nothing to send then.
                    let _ = self.transactions.respond(Instant::now(), tsx, response);
                }
                DialogTransmit::Ack {
                    request,
                    destination,
                    ..
                } => {
                    let _ = self.transactions.send_ack(request, destination);
                }
            }
        }
        any
    }

    fn handle_dialog_event(&mut self, event: DialogEvent) {
        let now = Instant::now();
        self.handle_call_dialog_event(event, now);
    }

    fn handle_event(&mut self, event: TsxEvent) {
        let now = Instant::now();
        match event {
            TsxEvent::NewRequest {
                tsx,
                request,
                source,
            } => {
                let in_dialog = request
                    .headers
                    .to()
                    .ok()
                    .flatten()
                    .is_some_and(|to| to.tag().is_some());
                if in_dialog
                    && request.method != Method::Register
                    && request.method != Method::Options
                {
                    if let Err(error) = self.dialogs.handle_request(now, tsx, request, source) {
                        tracing::debug!(%error, "in-dialog request refused");
                    }
                } else {
                    self.handle_request(tsx, request, source);
                }
            }
            TsxEvent::CancelRequest {
                tsx,
                invite,
                request,
                ..
            } => {
                let known = invite.is_some_and(|invite| self.calls.owns_invite(invite).is_some());
                let status = if known { 200 } else { 481 };
                let response = Response::for_request(&request, status, reason_phrase(status));
                self.respond(tsx, response);
                if let Some(invite) = invite {
                    self.handle_caller_cancel(invite, now);
                }
            }
            TsxEvent::AckFor2xx { request, .. } => {
                if let Err(error) = self.dialogs.handle_ack(request) {
                    tracing::debug!(%error, "ACK matched no dialog");
                }
            }
            TsxEvent::Response { tsx, response } => {
                if let Err(error) = self.dialogs.handle_response(now, tsx, response) {
                    tracing::debug!(%error, "response refused by the dialog layer");
                }
            }
            TsxEvent::Timeout { tsx, timer } if timer != crate::sip::transaction::Timer::C => {
                self.dialogs.handle_transaction_failed(tsx);
                self.fork_failed(tsx, now);
            }
            TsxEvent::TransportError { tsx } => {
                self.dialogs.handle_transaction_failed(tsx);
                self.fork_failed(tsx, now);
            }
            TsxEvent::Terminated { tsx } => {
                self.dialogs.handle_transaction_terminated(tsx);
            }
            TsxEvent::Overloaded { .. } => {
                self.transport
                    .metrics()
                    .overloaded
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// A callee INVITE that timed out or could not be sent counts as a 408 from it.
    fn fork_failed(&mut self, tsx: TsxId, now: Instant) {
        if self.calls.owns_fork(tsx).is_some() {
            let timeout = Response {
                status: 408,
                reason: reason_phrase(408).to_owned(),
                headers: crate::sip::message::Headers::default(),
                body: Vec::new(),
            };
            self.handle_fork_response(tsx, None, timeout, now);
        }
    }

    /// A response to the caller's INVITE, through the dialog layer (it keeps the dialog).
    pub(crate) fn respond_dialog(&mut self, tsx: TsxId, response: Response) {
        if let Err(error) = self.try_respond_dialog(tsx, response) {
            tracing::debug!(%error, "response refused by the dialog layer");
        }
    }

    /// [`respond_dialog`](Self::respond_dialog), saying why the dialog layer refused.
    pub(crate) fn try_respond_dialog(
        &mut self,
        tsx: TsxId,
        mut response: Response,
    ) -> Result<(), crate::sip::dialog::DialogError> {
        response
            .headers
            .push(Header::new("Server", self.server_name.clone()));
        if let Some(dialog) = self.dialogs.respond(Instant::now(), tsx, response)? {
            self.note_caller_dialog(tsx, dialog);
        }
        Ok(())
    }

    fn handle_request(&mut self, tsx: TsxId, request: Request, source: Peer) {
        if let Some(rejection) = self.capabilities.check(&request) {
            self.respond(tsx, rejection);
            return;
        }
        let response = match request.method {
            Method::Options => self.options(&request),
            Method::Register => self.register(&request, source),
            Method::Invite => {
                self.handle_new_invite(tsx, request, source);
                return;
            }
            // In-dialog methods outside any dialog.
            Method::Bye | Method::Prack | Method::Update | Method::Info => {
                Response::for_request(&request, 481, reason_phrase(481))
            }
            _ => {
                let mut r = Response::for_request(&request, 405, reason_phrase(405));
                r.headers.push(self.capabilities.allow_header());
                r
            }
        };
        self.respond(tsx, response);
    }

    fn options(&self, request: &Request) -> Response {
        let mut r = Response::for_request(request, 200, "OK");
        r.headers.push(self.capabilities.allow_header());
        r.headers.push(self.capabilities.accept_header());
        r.headers.push(self.capabilities.supported_header());
        r
    }

    fn register(&mut self, request: &Request, source: Peer) -> Response {
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let credentials = request
            .headers
            .all("Authorization")
            .filter_map(|h| Credentials::parse(h.value()).ok())
            .find(|c| c.realm() == self.digest.realm());
        let Some(credentials) = credentials else {
            return self.challenge(request, unix_now, false);
        };
        let snapshot = self.live.current();
        let password = snapshot
            .extensions
            .get(credentials.username())
            .map(|e| e.password.expose().to_owned());
        let uri = request.uri.to_string();
        match self.digest.verify(
            &credentials,
            "REGISTER",
            &uri,
            password.as_deref(),
            unix_now,
        ) {
            Ok(verified) => {
                let outcome =
                    self.registrar
                        .handle_register(now_utc(), request, &verified.username, source);
                for change in outcome.changes {
                    let _ = self.persist.send(change);
                }
                outcome.response
            }
            Err(failure) => {
                tracing::debug!(user = credentials.username(), %failure, "REGISTER authentication failed");
                match failure.action() {
                    FailureAction::BadRequest => {
                        Response::for_request(request, 400, "Bad Authorization Header")
                    }
                    FailureAction::Challenge { stale } => self.challenge(request, unix_now, stale),
                }
            }
        }
    }

    fn challenge(&self, request: &Request, unix_now: u64, stale: bool) -> Response {
        let mut r = Response::for_request(request, 401, reason_phrase(401));
        for c in self.digest.challenges(unix_now, stale) {
            r.headers
                .push(Header::new("WWW-Authenticate", c.to_string()));
        }
        r
    }

    pub(crate) fn respond(&mut self, tsx: TsxId, mut response: Response) {
        if response.status > 100 {
            response.set_to_tag(&to_tag(tsx));
        }
        response
            .headers
            .push(Header::new("Server", self.server_name.clone()));
        if let Err(e) = self.transactions.respond(Instant::now(), tsx, response) {
            tracing::debug!(error = %e, "response refused by the transaction layer");
        }
    }

    async fn send(&mut self, transmit: Transmit) {
        let mut destination = transmit.destination;
        if let Message::Response(response) = &transmit.message
            && destination.transport == TransportKind::Udp
            && !self.force_rport
            && let Ok(vias) = response.headers.via()
            && let Some(top) = vias.first()
        {
            destination.addr = routing::response_destination(top, destination.addr);
        }
        if let Err(e) = self
            .transport
            .send(destination, transmit.message.to_bytes())
            .await
        {
            tracing::debug!(%destination, error = %e, "send failed");
            if let Some(tsx) = transmit.tsx {
                self.transactions
                    .handle_transport_error(Instant::now(), tsx);
            }
        }
    }
}

/// A To tag that is the same for every response of one transaction.
fn to_tag(tsx: TsxId) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tsx.to_string().bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("rsw{hash:x}")
}

/// Writes binding changes to the store, in order (write-behind). After the first change the
/// writer waits `delay`, then writes everything that has queued up in one transaction, only
/// the last change of each binding: a burst of registrations costs a few transactions, not
/// one per message, and a phone refreshing often costs one write per window. What a crash
/// loses is at most the last window's changes, which the phones repeat at their next
/// refresh; a shutdown writes everything (the channel closes, the queue is drained).
async fn persist_bindings(
    store: Store,
    mut changes: mpsc::UnboundedReceiver<BindingChange>,
    delay: Duration,
) {
    const BATCH: usize = 65_536;
    while let Some(first) = changes.recv().await {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match changes.try_recv() {
                Ok(change) => batch.push(change),
                Err(_) => break,
            }
        }
        // The last change per (aor, contact) wins; order among bindings is kept.
        let mut latest: std::collections::HashMap<(String, String), usize> =
            std::collections::HashMap::new();
        for (i, change) in batch.iter().enumerate() {
            let key = match change {
                BindingChange::Upsert(b) => (b.aor.clone(), b.contact.clone()),
                BindingChange::Remove { aor, contact } => (aor.clone(), contact.clone()),
            };
            latest.insert(key, i);
        }
        let mut keep: Vec<usize> = latest.into_values().collect();
        keep.sort_unstable();
        let mut upserts = Vec::new();
        let mut removals = Vec::new();
        for i in keep {
            match &batch[i] {
                BindingChange::Upsert(b) => upserts.push(binding_row(b)),
                BindingChange::Remove { aor, contact } => {
                    removals.push((aor.clone(), contact.clone()))
                }
            }
        }
        let result = async {
            let mut tx = store.begin().await?;
            for (aor, contact) in removals {
                let query = ListQuery::default()
                    .filter("aor", Value::Text(Some(aor)))
                    .filter("contact", Value::Text(Some(contact)));
                tx.delete_where::<Registration>(&query).await?;
            }
            tx.upsert_many(&upserts, &["aor", "contact"]).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, changes = batch.len(), "registrations could not be persisted");
        }
    }
}
