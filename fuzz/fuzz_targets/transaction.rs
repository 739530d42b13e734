//! A stateful target: a sequence of operations derived from the input — requests and
//! responses from the network (built from templates with fuzzed method, branch, CSeq, tags,
//! transport), the TU's responses and requests, time advancing, transport errors — applied
//! to one `TransactionLayer`, draining its outputs after each.
//!
//! Invariants: no panic; `len()` never exceeds `max_transactions`; after `handle_timeout(now)`
//! no deadline is left at or before `now`; every transmit parses; no event names a
//! terminated transaction; and once the TU has answered what it must and time runs on with
//! nothing new arriving, every transaction ends and the layer is empty.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rswitch::sip::message::{
    Header, Headers, Limits, Message, Method, Request, Response, parse_datagram, reason_phrase,
};
use rswitch::sip::peer::{ConnectionId, Peer, TransportKind};
use rswitch::sip::transaction::{
    LayerConfig, TimerTable, TransactionLayer, TsxError, TsxEvent, TsxId, TsxState,
};

fuzz_target!(|scenario: Scenario| Harness::new(&scenario.config).run(scenario.ops));

#[derive(Debug, Arbitrary)]
struct Scenario {
    config: Config,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
struct Config {
    t1_ms: u8,
    t2_ms: u16,
    t4_ms: u16,
    d_ms: u16,
    c_ms: Option<u16>,
    max_transactions: u8,
    send_100_trying: bool,
    seed: u64,
}

#[derive(Debug, Arbitrary)]
enum Op {
    ReceiveRequest(Template),
    ReceiveResponse {
        template: Template,
        status: u16,
    },
    Respond {
        tsx: u8,
        status: u16,
        to_tag: Option<u8>,
    },
    SendRequest(Template),
    SendAck(Template),
    Advance {
        ms: u16,
    },
    TransportError {
        tsx: u8,
    },
}

/// The fuzzed parts of a message; everything else is fixed, so that messages meet.
#[derive(Debug, Arbitrary)]
struct Template {
    method: MethodChoice,
    branch: BranchChoice,
    cseq: u8,
    from_tag: u8,
    to_tag: Option<u8>,
    call_id: u8,
    user: u8,
    peer: PeerChoice,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum MethodChoice {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Prack,
    Other,
}

#[derive(Debug, Arbitrary)]
enum BranchChoice {
    /// `z9hG4bK` and one of a few values.
    Cookie(u8),
    /// An RFC 2543 branch (no cookie).
    Legacy(u8),
    /// No branch parameter.
    Missing,
    /// A branch the layer or the network used before.
    Seen(u8),
}

#[derive(Debug, Arbitrary)]
struct PeerChoice {
    transport: u8,
    host: u8,
    connection: Option<u8>,
}

struct Harness {
    layer: TransactionLayer,
    max: usize,
    base: Instant,
    now: Instant,
    /// Server transactions and the request that made them (for the TU's responses).
    servers: BTreeMap<TsxId, Request>,
    /// Client transactions and the request they sent.
    clients: BTreeMap<TsxId, (Request, Peer)>,
    /// Every id ever reported, live or not (misuse is part of the input space).
    ids: Vec<TsxId>,
    terminated: BTreeSet<TsxId>,
    branches: Vec<String>,
}

impl Harness {
    fn new(config: &Config) -> Harness {
        let t1 = Duration::from_millis(u64::from(config.t1_ms) + 1);
        let timers = TimerTable {
            t1,
            t2: Duration::from_millis(u64::from(config.t2_ms % 8_000)).max(t1),
            t4: Duration::from_millis(u64::from(config.t4_ms % 10_000)),
            d: Duration::from_millis(u64::from(config.d_ms % 40_000)),
            c: config.c_ms.map(|ms| Duration::from_millis(u64::from(ms))),
        };
        let max = usize::from(config.max_transactions % 16) + 1;
        let base = Instant::now();
        Harness {
            layer: TransactionLayer::new(LayerConfig {
                timers,
                max_transactions: max,
                send_100_trying: config.send_100_trying,
                seed: config.seed,
            }),
            max,
            base,
            now: base,
            servers: BTreeMap::new(),
            clients: BTreeMap::new(),
            ids: Vec::new(),
            terminated: BTreeSet::new(),
            branches: Vec::new(),
        }
    }

    fn run(mut self, ops: Vec<Op>) {
        for op in ops {
            self.apply(op);
            self.drain();
        }
        self.wind_down();
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::ReceiveRequest(template) => {
                let text = self.request_text(&template);
                if let Ok(Message::Request(request)) =
                    parse_datagram(text.as_bytes(), &Limits::default())
                {
                    let source = template.peer.peer();
                    if let Err(error) = self.layer.handle_request(self.now, request, source) {
                        assert!(matches!(error, TsxError::Malformed { .. }), "{error:?}");
                    }
                }
            }
            Op::ReceiveResponse { template, status } => {
                let text = self.response_text(&template, 100 + status % 600);
                if let Ok(Message::Response(response)) =
                    parse_datagram(text.as_bytes(), &Limits::default())
                {
                    let source = template.peer.peer();
                    if let Err(error) = self.layer.handle_response(self.now, response, source) {
                        assert!(matches!(error, TsxError::Malformed { .. }), "{error:?}");
                    }
                }
            }
            Op::Respond {
                tsx,
                status,
                to_tag,
            } => {
                let Some(id) = self.pick(tsx) else { return };
                // Mostly valid codes; now and then one outside 100-699, which must be refused.
                let status = if status % 64 == 0 {
                    status
                } else {
                    100 + status % 600
                };
                let request = self
                    .servers
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| self.any_request());
                let mut response = Response::for_request(&request, status, reason_phrase(status));
                if let Some(tag) = to_tag {
                    response.set_to_tag(&format!("t{}", tag % 4));
                }
                let result = self.layer.respond(self.now, id, response);
                if !(100..=699).contains(&status) {
                    assert!(result.is_err(), "status {status} accepted");
                }
            }
            Op::SendRequest(template) => {
                let text = self.request_text(&template);
                if let Ok(Message::Request(request)) =
                    parse_datagram(text.as_bytes(), &Limits::default())
                {
                    let destination = template.peer.peer();
                    if let Ok(id) = self.layer.send_request(self.now, request, destination) {
                        self.ids.push(id);
                    }
                    // Sent requests are recorded from their transmits, with the branch the
                    // layer may have added.
                }
            }
            Op::SendAck(template) => {
                let text = self.request_text(&template);
                if let Ok(Message::Request(ack)) =
                    parse_datagram(text.as_bytes(), &Limits::default())
                {
                    let is_ack = ack.method == Method::Ack;
                    assert_eq!(
                        self.layer.send_ack(ack, template.peer.peer()).is_ok(),
                        is_ack
                    );
                }
            }
            Op::Advance { ms } => self.advance_to(self.now + Duration::from_millis(u64::from(ms))),
            Op::TransportError { tsx } => {
                if let Some(id) = self.pick(tsx) {
                    self.layer.handle_transport_error(self.now, id);
                }
            }
        }
    }

    /// Fires the timers due at `at`; time never goes back.
    fn advance_to(&mut self, at: Instant) {
        assert!(at >= self.now, "time went back");
        self.now = at;
        self.layer.handle_timeout(at);
        if let Some(next) = self.layer.poll_timeout() {
            assert!(
                next > at,
                "a deadline {:?} is left at or before now {:?}",
                next - self.base,
                at - self.base
            );
        }
    }

    /// Empties both output queues, checking what comes out.
    fn drain(&mut self) {
        assert!(
            self.layer.len() <= self.max,
            "{} transactions over the limit of {}",
            self.layer.len(),
            self.max
        );
        while let Some(transmit) = self.layer.poll_transmit() {
            let bytes = transmit.message.to_bytes();
            let reparsed = parse_datagram(&bytes, &Limits::default());
            assert_eq!(
                reparsed.as_ref(),
                Ok(&transmit.message),
                "a transmit does not parse back"
            );
            if let Some(id) = transmit.tsx {
                assert!(
                    !self.terminated.contains(&id),
                    "{id} transmits after it terminated"
                );
            }
            if let (Message::Request(request), Some(id)) = (&transmit.message, transmit.tsx) {
                self.learn_branch(
                    request
                        .headers
                        .via()
                        .ok()
                        .and_then(|v| v.first().and_then(|via| via.branch().map(str::to_owned))),
                );
                if request.method != Method::Ack {
                    self.clients
                        .entry(id)
                        .or_insert_with(|| (request.clone(), transmit.destination));
                }
            }
        }
        while let Some(event) = self.layer.poll_event() {
            if let Some(id) = event_tsx(&event) {
                assert!(
                    !self.terminated.contains(&id),
                    "{event:?} after the transaction terminated"
                );
            }
            match event {
                TsxEvent::NewRequest { tsx, request, .. }
                | TsxEvent::CancelRequest { tsx, request, .. } => {
                    self.learn_branch(
                        request.headers.via().ok().and_then(|v| {
                            v.first().and_then(|via| via.branch().map(str::to_owned))
                        }),
                    );
                    self.servers.insert(tsx, request);
                    self.ids.push(tsx);
                }
                TsxEvent::Terminated { tsx } => {
                    assert!(
                        self.layer.state(tsx).is_none(),
                        "{tsx} terminated but has a state"
                    );
                    self.servers.remove(&tsx);
                    self.clients.remove(&tsx);
                    self.terminated.insert(tsx);
                }
                _ => {}
            }
        }
    }

    /// The TU answers every server transaction still waiting for it and cancels every INVITE
    /// still ringing; then time runs with nothing new arriving until the layer is empty.
    fn wind_down(&mut self) {
        let waiting: Vec<(TsxId, Request)> = self
            .servers
            .iter()
            .filter(|(id, _)| {
                matches!(
                    self.layer.state(**id),
                    Some(TsxState::Trying | TsxState::Proceeding)
                )
            })
            .map(|(id, request)| (*id, request.clone()))
            .collect();
        for (id, request) in waiting {
            let status = if request.method == Method::Invite {
                486
            } else {
                200
            };
            let mut response = Response::for_request(&request, status, reason_phrase(status));
            response.set_to_tag("tu");
            self.layer
                .respond(self.now, id, response)
                .expect("a final response to a waiting server transaction");
            self.drain();
        }
        self.run_timers();
        let ringing: Vec<(TsxId, Request, Peer)> = self
            .clients
            .iter()
            .filter(|(id, (request, _))| {
                request.method == Method::Invite
                    && self.layer.state(**id) == Some(TsxState::Proceeding)
            })
            .map(|(id, (request, peer))| (*id, request.clone(), *peer))
            .collect();
        for (id, invite, destination) in ringing {
            match self
                .layer
                .send_request(self.now, cancel_for(&invite), destination)
            {
                Ok(_) => {}
                // Every slot is an INVITE that only a CANCEL can end: the TU can not send
                // one, so the driver gives up on the INVITE instead.
                Err(TsxError::Capacity { .. }) => self.layer.handle_transport_error(self.now, id),
                // Its CANCEL was already sent and the guard already runs.
                Err(TsxError::ApiMisuse(_)) => {}
                Err(error) => panic!("CANCEL refused: {error:?}"),
            }
            self.drain();
            self.run_timers();
        }
        self.run_timers();
        assert!(
            self.layer.is_empty(),
            "{} transactions never end: {:?}",
            self.layer.len(),
            self.servers
                .keys()
                .chain(self.clients.keys())
                .map(|id| (id, self.layer.state(*id)))
                .collect::<Vec<_>>()
        );
    }

    /// Fires every timer in order until none is left.
    fn run_timers(&mut self) {
        for _ in 0..100_000 {
            let Some(at) = self.layer.poll_timeout() else {
                return;
            };
            self.advance_to(at.max(self.now));
            self.drain();
        }
        panic!("timers still running after 100000 firings");
    }

    fn pick(&self, index: u8) -> Option<TsxId> {
        (!self.ids.is_empty()).then(|| self.ids[usize::from(index) % self.ids.len()])
    }

    fn learn_branch(&mut self, branch: Option<String>) {
        if let Some(branch) = branch
            && !self.branches.contains(&branch)
            && self.branches.len() < 64
        {
            self.branches.push(branch);
        }
    }

    fn branch_param(&self, choice: &BranchChoice) -> String {
        match choice {
            BranchChoice::Cookie(n) => format!(";branch=z9hG4bK{}", n % 4),
            BranchChoice::Legacy(n) => format!(";branch=legacy{}", n % 4),
            BranchChoice::Missing => String::new(),
            BranchChoice::Seen(n) if self.branches.is_empty() => {
                format!(";branch=z9hG4bK{}", n % 4)
            }
            BranchChoice::Seen(n) => format!(
                ";branch={}",
                self.branches[usize::from(*n) % self.branches.len()]
            ),
        }
    }

    fn request_text(&self, t: &Template) -> String {
        let method = t.method.as_str();
        format!(
            "{method} sip:u{user}@example.com SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{dialog}CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            user = t.user % 2,
            via = self.via(t),
            dialog = dialog_headers(t),
            cseq = t.cseq % 4 + 1,
        )
    }

    fn response_text(&self, t: &Template, status: u16) -> String {
        format!(
            "SIP/2.0 {status} {reason}\r\n{via}\r\n{dialog}CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            reason = reason_phrase(status),
            via = self.via(t),
            dialog = dialog_headers(t),
            cseq = t.cseq % 4 + 1,
            method = t.method.as_str(),
        )
    }

    fn via(&self, t: &Template) -> String {
        let peer = t.peer.peer();
        format!(
            "Via: SIP/2.0/{} {}{}",
            peer.transport.via_token(),
            peer.addr,
            self.branch_param(&t.branch)
        )
    }

    /// Some request, for responses to ids that are not server transactions.
    fn any_request(&self) -> Request {
        let text = "OPTIONS sip:u0@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK0\r\nFrom: <sip:a@example.com>;tag=f0\r\nTo: <sip:b@example.com>\r\nCall-ID: c0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        match parse_datagram(text.as_bytes(), &Limits::default()) {
            Ok(Message::Request(request)) => request,
            other => panic!("the fixed request does not parse: {other:?}"),
        }
    }
}

impl MethodChoice {
    fn as_str(self) -> &'static str {
        match self {
            MethodChoice::Invite => "INVITE",
            MethodChoice::Ack => "ACK",
            MethodChoice::Bye => "BYE",
            MethodChoice::Cancel => "CANCEL",
            MethodChoice::Options => "OPTIONS",
            MethodChoice::Register => "REGISTER",
            MethodChoice::Prack => "PRACK",
            MethodChoice::Other => "FOO",
        }
    }
}

impl PeerChoice {
    fn peer(&self) -> Peer {
        let transport = [
            TransportKind::Udp,
            TransportKind::Tcp,
            TransportKind::Tls,
            TransportKind::Ws,
            TransportKind::Wss,
        ][usize::from(self.transport % 5)];
        Peer {
            transport,
            addr: SocketAddr::from((Ipv4Addr::new(192, 0, 2, self.host % 3 + 1), 5060)),
            connection: transport
                .is_reliable()
                .then(|| ConnectionId(u64::from(self.connection.unwrap_or(0) % 2))),
        }
    }
}

fn dialog_headers(t: &Template) -> String {
    let to_tag = t
        .to_tag
        .map(|tag| format!(";tag=t{}", tag % 4))
        .unwrap_or_default();
    format!(
        "From: <sip:a@example.com>;tag=f{}\r\nTo: <sip:b@example.com>{to_tag}\r\nCall-ID: c{}@example.com\r\n",
        t.from_tag % 4,
        t.call_id % 2,
    )
}

/// The CANCEL for `invite` (RFC 3261 §9.1): same Request-URI, top Via, From, To, Call-ID and
/// CSeq number.
fn cancel_for(invite: &Request) -> Request {
    let mut headers = Headers::default();
    if let Some(via) = invite.headers.values("Via").next() {
        headers.push(Header::new("Via", via));
    }
    headers.push(Header::new("Max-Forwards", "70"));
    for name in ["From", "To", "Call-ID"] {
        if let Some(value) = invite.headers.first(name) {
            headers.push(Header::new(name, value));
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
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        headers,
        body: Vec::new(),
    }
}

fn event_tsx(event: &TsxEvent) -> Option<TsxId> {
    match event {
        TsxEvent::NewRequest { tsx, .. }
        | TsxEvent::CancelRequest { tsx, .. }
        | TsxEvent::Response { tsx, .. }
        | TsxEvent::Timeout { tsx, .. }
        | TsxEvent::TransportError { tsx }
        | TsxEvent::Terminated { tsx } => Some(*tsx),
        _ => None,
    }
}
