//! [`TransactionLayer`]: owns every transaction, matches messages to them, runs their timers
//! and queues what they send and report.

use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasherDefault;
use std::time::{Duration, Instant};

use crate::sip::message::{Method, Request, Response, reason_phrase, split_commas};
use crate::sip::peer::Peer;

use super::error::Misuse;
use super::invite_client::{InviteClient, InviteClientState};
use super::invite_server::{InviteServer, InviteServerState};
use super::key::{ClientKey, MAGIC_COOKIE, Origin, ServerKey};
use super::non_invite_client::{NonInviteClient, NonInviteClientState};
use super::non_invite_server::{NonInviteServer, NonInviteServerState};
use super::{Ctx, Outbox, TimerTable, Transmit, TsxError, TsxEvent, TsxId, TsxState};

/// How a [`TransactionLayer`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerConfig {
    pub timers: TimerTable,
    /// At most this many transactions (client and server) exist at once. Beyond it a new
    /// server transaction is refused with a stateless 503 and [`TsxEvent::Overloaded`]; a
    /// new client transaction with [`TsxError::Capacity`].
    pub max_transactions: usize,
    /// Send 100 Trying as soon as an INVITE server transaction is created (RFC 3261
    /// §17.2.1 allows leaving it out only when the TU answers within 200 ms).
    pub send_100_trying: bool,
    /// Mixed into generated branches and To tags. The driver sets it from a random source
    /// at start-up so that they stay unique across restarts.
    pub seed: u64,
}

impl Default for LayerConfig {
    fn default() -> Self {
        LayerConfig {
            timers: TimerTable::default(),
            max_transactions: 10_000,
            send_100_trying: true,
            seed: 0,
        }
    }
}

/// All SIP transactions of one element, sans-IO.
///
/// Inputs: [`handle_request`](Self::handle_request), [`handle_response`](Self::handle_response)
/// (from the network), [`handle_timeout`](Self::handle_timeout) (the clock),
/// [`handle_transport_error`](Self::handle_transport_error) (the driver), and from the TU
/// [`send_request`](Self::send_request), [`respond`](Self::respond) and
/// [`send_ack`](Self::send_ack). Outputs: [`poll_transmit`](Self::poll_transmit),
/// [`poll_event`](Self::poll_event) and [`poll_timeout`](Self::poll_timeout).
///
/// **Drain rule:** after any `handle_*` call, and after any call from the TU, drain
/// `poll_transmit` and `poll_event` until each returns `None`, then sleep until
/// `poll_timeout` (call `handle_timeout` then, or earlier on other input).
///
/// Terminated transactions are removed at once ([`TsxEvent::Terminated`]); the number of
/// live transactions never exceeds [`LayerConfig::max_transactions`].
#[derive(Debug)]
pub struct TransactionLayer {
    config: LayerConfig,
    next_id: u64,
    next_token: u64,
    tsxs: HashMap<TsxId, Entry, BuildHasherDefault<IdHasher>>,
    server_index: HashMap<ServerKey, TsxId>,
    client_index: HashMap<ClientKey, TsxId>,
    /// The next deadline of every transaction that has one.
    deadlines: BTreeSet<(Instant, TsxId)>,
    out: Outbox,
}

impl TransactionLayer {
    /// A layer with `config`. A zero T1 is raised to 1 ms and T2 to at least T1, so that
    /// retransmit timers always advance.
    pub fn new(mut config: LayerConfig) -> TransactionLayer {
        let timers = &mut config.timers;
        timers.t1 = timers.t1.max(Duration::from_millis(1));
        timers.t2 = timers.t2.max(timers.t1);
        TransactionLayer {
            config,
            next_id: 0,
            next_token: 0,
            tsxs: HashMap::default(),
            server_index: HashMap::new(),
            client_index: HashMap::new(),
            deadlines: BTreeSet::new(),
            out: Outbox::default(),
        }
    }

    pub fn config(&self) -> &LayerConfig {
        &self.config
    }

    /// The number of live transactions.
    pub fn len(&self) -> usize {
        self.tsxs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tsxs.is_empty()
    }

    /// The state of `tsx`, or `None` once it has terminated.
    pub fn state(&self, tsx: TsxId) -> Option<TsxState> {
        self.tsxs.get(&tsx).and_then(|entry| entry.machine.state())
    }

    /// A request from the network. A retransmission is absorbed (the last response is
    /// resent); an ACK goes to its INVITE server transaction or, matching none, to the TU
    /// as [`TsxEvent::AckFor2xx`]; any other request creates a server transaction
    /// ([`TsxEvent::NewRequest`] / [`TsxEvent::CancelRequest`]) or, when the layer is full,
    /// is answered 503 ([`TsxEvent::Overloaded`]).
    ///
    /// # Errors
    /// [`TsxError::Malformed`] when the request has no usable top Via or CSeq; the driver
    /// drops it.
    pub fn handle_request(
        &mut self,
        now: Instant,
        request: Request,
        source: Peer,
    ) -> Result<(), TsxError> {
        let origin = Origin::of(&request)?;
        if let Some(id) = self.match_server(&origin, &request) {
            self.drive(id, now, |machine, ctx| match machine {
                Machine::InviteServer(tsx) => tsx.on_request(ctx, request, source),
                Machine::NonInviteServer(tsx) => tsx.on_request(ctx),
                Machine::InviteClient(_) | Machine::NonInviteClient(_) => {}
            });
            return Ok(());
        }
        if request.method == Method::Ack {
            self.out
                .events
                .push_back(TsxEvent::AckFor2xx { request, source });
        } else if self.tsxs.len() >= self.config.max_transactions {
            self.refuse(request, source);
        } else {
            self.create_server(now, &origin, request, source);
        }
        Ok(())
    }

    /// A response from the network, matched to its client transaction by top Via branch and
    /// CSeq method (RFC 3261 §17.1.3); a response matching none is a
    /// [`TsxEvent::StrayResponse`].
    ///
    /// # Errors
    /// [`TsxError::Malformed`] when the response has no top Via branch or no CSeq; the
    /// driver drops it.
    pub fn handle_response(
        &mut self,
        now: Instant,
        response: Response,
        source: Peer,
    ) -> Result<(), TsxError> {
        let key = ClientKey::of_response(&response)?;
        let Some(&id) = self.client_index.get(&key) else {
            self.out
                .events
                .push_back(TsxEvent::StrayResponse { response, source });
            return Ok(());
        };
        self.drive(id, now, |machine, ctx| match machine {
            Machine::InviteClient(tsx) => tsx.on_response(ctx, response),
            Machine::NonInviteClient(tsx) => tsx.on_response(ctx, response),
            Machine::InviteServer(_) | Machine::NonInviteServer(_) => {}
        });
        Ok(())
    }

    /// Fires the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // One firing per due transaction: the machines check their terminating timer first
        // and move a retransmit timer past `now`, so one pass is enough even for a driver
        // that wakes late, and no timer can keep this loop busy.
        let due: Vec<TsxId> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|&(_, id)| id)
            .collect();
        for id in due {
            self.drive(id, now, |machine, ctx| machine.on_timeout(ctx));
        }
    }

    /// The driver could not send a message of `tsx` (RFC 3261 §17.1.4, §17.2.4): the
    /// transaction terminates, and the TU hears of it unless it already has the final
    /// response of a client transaction. An unknown `tsx` (already terminated) is ignored.
    pub fn handle_transport_error(&mut self, now: Instant, tsx: TsxId) {
        self.drive(tsx, now, |machine, ctx| {
            if !machine.has_final_for_tu() {
                ctx.event(TsxEvent::TransportError { tsx });
            }
            machine.terminate();
        });
    }

    /// Starts a client transaction for `request` to `destination` and sends it.
    ///
    /// The request must carry its top Via with the sent-by in place. Without a branch the
    /// layer adds a fresh one; a branch given by the TU (a CANCEL copies its INVITE's) must
    /// start with [`MAGIC_COOKIE`]. A CANCEL whose branch matches an INVITE client
    /// transaction arms that transaction's RFC 3261 §9.1 guard: 64*T1 without a final
    /// response and it times out ([`super::Timer::Cancel`]).
    ///
    /// # Errors
    /// [`TsxError::ApiMisuse`] for an ACK (use [`send_ack`](Self::send_ack)), a request
    /// without Via or CSeq, a branch without the cookie, or a branch and method already in
    /// use; [`TsxError::Capacity`] when the layer is full.
    pub fn send_request(
        &mut self,
        now: Instant,
        mut request: Request,
        destination: Peer,
    ) -> Result<TsxId, TsxError> {
        if request.method == Method::Ack {
            return Err(Misuse::AckHasNoTransaction.into());
        }
        if !matches!(request.headers.cseq(), Ok(Some(_))) {
            return Err(Misuse::NoCSeq.into());
        }
        let vias = request.headers.via().map_err(|_| Misuse::NoVia)?;
        let top = vias.first().ok_or(Misuse::NoVia)?;
        let branch = match top.branch() {
            Some(branch) if branch.starts_with(MAGIC_COOKIE) => branch.to_owned(),
            Some(branch) => {
                return Err(Misuse::BranchWithoutCookie {
                    branch: branch.to_owned(),
                }
                .into());
            }
            None => {
                let branch = self.new_branch();
                request
                    .headers
                    .map_first("Via", |value| with_branch(value, &branch));
                branch
            }
        };
        let key = ClientKey::new(&branch, request.method.as_str());
        if self.client_index.contains_key(&key) {
            return Err(Misuse::DuplicateTransaction {
                branch,
                method: request.method.to_string(),
            }
            .into());
        }
        if self.tsxs.len() >= self.config.max_transactions {
            return Err(TsxError::Capacity {
                limit: self.config.max_transactions,
            });
        }
        let id = self.new_id();
        let is_cancel = request.method == Method::Cancel;
        let mut ctx = Ctx {
            id,
            now,
            timers: &self.config.timers,
            out: &mut self.out,
        };
        let machine = if request.method == Method::Invite {
            Machine::InviteClient(InviteClient::start(&mut ctx, request, destination))
        } else {
            Machine::NonInviteClient(NonInviteClient::start(&mut ctx, request, destination))
        };
        self.client_index.insert(key.clone(), id);
        self.insert(id, machine, Key::Client(key));
        if is_cancel
            && let Some(&invite) = self.client_index.get(&ClientKey::new(&branch, "INVITE"))
        {
            self.drive(invite, now, |machine, ctx| {
                if let Machine::InviteClient(tsx) = machine {
                    tsx.note_cancel(ctx);
                }
            });
        }
        Ok(id)
    }

    /// Sends a response of server transaction `tsx`: a 1xx keeps it Proceeding, a 2xx to
    /// INVITE moves it to Accepted (Timer L; further 2xx retransmissions from the TU are
    /// sent as given), any other final response to Completed (Timers G/H or J).
    ///
    /// # Errors
    /// [`TsxError::ApiMisuse`] for a status outside 100–699, an unknown or client
    /// transaction, or a response after the final one (other than a 2xx retransmission in
    /// Accepted).
    pub fn respond(
        &mut self,
        now: Instant,
        tsx: TsxId,
        response: Response,
    ) -> Result<(), TsxError> {
        let status = response.status;
        if !(100..=699).contains(&status) {
            return Err(Misuse::InvalidStatus { status }.into());
        }
        let result = self.drive(tsx, now, |machine, ctx| match machine {
            Machine::InviteServer(server) => server.respond(ctx, response),
            Machine::NonInviteServer(server) => server.respond(ctx, response),
            Machine::InviteClient(_) | Machine::NonInviteClient(_) => {
                Err(Misuse::NotAServerTransaction { tsx })
            }
        });
        result
            .unwrap_or(Err(Misuse::UnknownTransaction { tsx }))
            .map_err(TsxError::from)
    }

    /// Sends the TU's ACK for a 2xx (end to end, no transaction).
    ///
    /// # Errors
    /// [`TsxError::ApiMisuse`] when `ack` is not an ACK.
    pub fn send_ack(&mut self, ack: Request, destination: Peer) -> Result<(), TsxError> {
        if ack.method != Method::Ack {
            return Err(Misuse::NotAnAck {
                method: ack.method.to_string(),
            }
            .into());
        }
        self.out.transmits.push_back(Transmit {
            destination,
            message: crate::sip::message::Message::Request(ack),
            tsx: None,
        });
        Ok(())
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TsxEvent> {
        self.out.events.pop_front()
    }

    /// The server transaction `request` belongs to (RFC 3261 §17.2.3).
    fn match_server(&self, origin: &Origin, request: &Request) -> Option<TsxId> {
        if request.method != Method::Ack {
            return self
                .server_index
                .get(&origin.key(request.method.as_str()))
                .copied();
        }
        let Some(ack_to_tag) = origin.legacy_to_tag() else {
            return self.server_index.get(&origin.key("INVITE")).copied();
        };
        // RFC 2543: the ACK carries the To tag of the response, which the INVITE also had
        // (re-INVITE) or did not (initial INVITE).
        [ack_to_tag, None]
            .into_iter()
            .filter_map(|tag| {
                self.server_index
                    .get(&origin.key_with_to_tag("INVITE", tag))
            })
            .copied()
            .find(|id| match self.tsxs.get(id).map(|entry| &*entry.machine) {
                Some(Machine::InviteServer(server)) => server.final_to_tag() == ack_to_tag,
                _ => false,
            })
    }

    fn create_server(&mut self, now: Instant, origin: &Origin, request: Request, source: Peer) {
        let id = self.new_id();
        let key = origin.key(request.method.as_str());
        let mut ctx = Ctx {
            id,
            now,
            timers: &self.config.timers,
            out: &mut self.out,
        };
        let machine = if request.method == Method::Invite {
            Machine::InviteServer(InviteServer::start(
                &mut ctx,
                &request,
                source,
                self.config.send_100_trying,
            ))
        } else {
            Machine::NonInviteServer(NonInviteServer::start(source))
        };
        let event = if request.method == Method::Cancel {
            let invite = self.server_index.get(&origin.key("INVITE")).copied();
            TsxEvent::CancelRequest {
                tsx: id,
                invite,
                request,
                source,
            }
        } else {
            TsxEvent::NewRequest {
                tsx: id,
                request,
                source,
            }
        };
        self.server_index.insert(key.clone(), id);
        self.insert(id, machine, Key::Server(key));
        self.out.events.push_back(event);
    }

    /// Answers 503 without creating a transaction.
    fn refuse(&mut self, request: Request, source: Peer) {
        // Counted by the TU through the Overloaded event; no log line per refused request.
        tracing::debug!(method = %request.method, %source, limit = self.config.max_transactions, "transaction limit reached; answering 503");
        let mut response = Response::for_request(&request, 503, reason_phrase(503));
        response.set_to_tag(&self.new_token());
        self.out.transmits.push_back(Transmit {
            destination: source,
            message: crate::sip::message::Message::Response(response),
            tsx: None,
        });
        self.out.events.push_back(TsxEvent::Overloaded {
            method: request.method,
            source,
        });
    }

    fn insert(&mut self, id: TsxId, machine: Machine, key: Key) {
        self.tsxs.insert(
            id,
            Entry {
                machine: Box::new(machine),
                key,
                deadline: None,
            },
        );
        self.settle(id);
    }

    /// Runs `f` on transaction `id`, then reschedules or removes it. `None` if `id` is
    /// unknown.
    fn drive<R>(
        &mut self,
        id: TsxId,
        now: Instant,
        f: impl FnOnce(&mut Machine, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let entry = self.tsxs.get_mut(&id)?;
        let mut ctx = Ctx {
            id,
            now,
            timers: &self.config.timers,
            out: &mut self.out,
        };
        let result = f(&mut entry.machine, &mut ctx);
        self.settle(id);
        Some(result)
    }

    /// Brings the deadline index up to date with transaction `id`, removing it if it has
    /// terminated.
    fn settle(&mut self, id: TsxId) {
        let Some(entry) = self.tsxs.get_mut(&id) else {
            return;
        };
        let next = if entry.machine.is_terminated() {
            None
        } else {
            entry.machine.next_deadline()
        };
        if next != entry.deadline {
            if let Some(old) = entry.deadline {
                self.deadlines.remove(&(old, id));
            }
            if let Some(new) = next {
                self.deadlines.insert((new, id));
            }
            entry.deadline = next;
        }
        if !entry.machine.is_terminated() {
            return;
        }
        if let Some(entry) = self.tsxs.remove(&id) {
            match entry.key {
                Key::Client(key) => {
                    if self.client_index.get(&key) == Some(&id) {
                        self.client_index.remove(&key);
                    }
                }
                Key::Server(key) => {
                    if self.server_index.get(&key) == Some(&id) {
                        self.server_index.remove(&key);
                    }
                }
            }
        }
        self.out.events.push_back(TsxEvent::Terminated { tsx: id });
    }

    fn new_id(&mut self) -> TsxId {
        self.next_id += 1;
        TsxId(self.next_id)
    }

    /// A branch unique to this layer: the cookie and 64 bits mixed from the seed and a
    /// counter.
    fn new_branch(&mut self) -> String {
        format!("{MAGIC_COOKIE}{:016x}", self.mix())
    }

    /// A To tag for the responses the layer makes itself.
    fn new_token(&mut self) -> String {
        format!("{:016x}", self.mix())
    }

    fn mix(&mut self) -> u64 {
        self.next_token += 1;
        splitmix64(self.config.seed ^ splitmix64(self.next_token))
    }
}

/// The hasher of the table keyed by [`TsxId`]: ids are assigned by the layer (a counter),
/// not chosen by the network, so a multiplicative mix is enough and SipHash's DoS
/// resistance is not needed.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: the high bits, which hashbrown uses, depend on every input bit.
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// One transaction and its bookkeeping.
#[derive(Debug)]
struct Entry {
    /// Boxed: the table moves entries when it grows, and machines are large.
    machine: Box<Machine>,
    /// The index entry to remove when it terminates.
    key: Key,
    /// Its entry in `deadlines`.
    deadline: Option<Instant>,
}

#[derive(Debug)]
enum Key {
    Client(ClientKey),
    Server(ServerKey),
}

#[derive(Debug)]
enum Machine {
    InviteClient(InviteClient),
    NonInviteClient(NonInviteClient),
    InviteServer(InviteServer),
    NonInviteServer(NonInviteServer),
}

impl Machine {
    /// The RFC state name; `None` for Terminated (such a transaction is removed at once).
    fn state(&self) -> Option<TsxState> {
        Some(match self {
            Machine::InviteClient(tsx) => match tsx.state() {
                InviteClientState::Calling { .. } => TsxState::Calling,
                InviteClientState::Proceeding { .. } => TsxState::Proceeding,
                InviteClientState::Completed { .. } => TsxState::Completed,
                InviteClientState::Accepted { .. } => TsxState::Accepted,
                InviteClientState::Terminated => return None,
            },
            Machine::NonInviteClient(tsx) => match tsx.state() {
                NonInviteClientState::Trying { .. } => TsxState::Trying,
                NonInviteClientState::Proceeding { .. } => TsxState::Proceeding,
                NonInviteClientState::Completed { .. } => TsxState::Completed,
                NonInviteClientState::Terminated => return None,
            },
            Machine::InviteServer(tsx) => match tsx.state() {
                InviteServerState::Proceeding { .. } => TsxState::Proceeding,
                InviteServerState::Completed { .. } => TsxState::Completed,
                InviteServerState::Confirmed { .. } => TsxState::Confirmed,
                InviteServerState::Accepted { .. } => TsxState::Accepted,
                InviteServerState::Terminated => return None,
            },
            Machine::NonInviteServer(tsx) => match tsx.state() {
                NonInviteServerState::Trying => TsxState::Trying,
                NonInviteServerState::Proceeding { .. } => TsxState::Proceeding,
                NonInviteServerState::Completed { .. } => TsxState::Completed,
                NonInviteServerState::Terminated => return None,
            },
        })
    }

    fn is_terminated(&self) -> bool {
        match self {
            Machine::InviteClient(tsx) => tsx.is_terminated(),
            Machine::NonInviteClient(tsx) => tsx.is_terminated(),
            Machine::InviteServer(tsx) => tsx.is_terminated(),
            Machine::NonInviteServer(tsx) => tsx.is_terminated(),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match self {
            Machine::InviteClient(tsx) => tsx.next_deadline(),
            Machine::NonInviteClient(tsx) => tsx.next_deadline(),
            Machine::InviteServer(tsx) => tsx.next_deadline(),
            Machine::NonInviteServer(tsx) => tsx.next_deadline(),
        }
    }

    fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        match self {
            Machine::InviteClient(tsx) => tsx.on_timeout(ctx),
            Machine::NonInviteClient(tsx) => tsx.on_timeout(ctx),
            Machine::InviteServer(tsx) => tsx.on_timeout(ctx),
            Machine::NonInviteServer(tsx) => tsx.on_timeout(ctx),
        }
    }

    /// Whether the TU already holds the final response of this client transaction (a
    /// later transport failure concerns only the transaction itself).
    fn has_final_for_tu(&self) -> bool {
        match self {
            Machine::InviteClient(tsx) => tsx.has_final(),
            Machine::NonInviteClient(tsx) => tsx.has_final(),
            Machine::InviteServer(_) | Machine::NonInviteServer(_) => false,
        }
    }

    fn terminate(&mut self) {
        match self {
            Machine::InviteClient(tsx) => tsx.terminate(),
            Machine::NonInviteClient(tsx) => tsx.terminate(),
            Machine::InviteServer(tsx) => tsx.terminate(),
            Machine::NonInviteServer(tsx) => tsx.terminate(),
        }
    }
}

/// The top Via value (the first of `value`) with `;branch=` appended.
fn with_branch(value: &str, branch: &str) -> String {
    let mut values: Vec<String> = split_commas(value).map(str::to_owned).collect();
    if let Some(top) = values.first_mut() {
        top.push_str(";branch=");
        top.push_str(branch);
    }
    values.join(", ")
}

/// The splitmix64 finalizer: spreads a counter over 64 bits.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49eb_1331_11eb);
    z ^ (z >> 31)
}
