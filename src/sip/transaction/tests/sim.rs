//! A client layer and a server layer over a simulated network with seeded loss,
//! duplication and reordering, each with a small automatic TU on top.
//!
//! The server TU answers with the status written as the Request-URI user (`sip:486@…`);
//! `ring` means 180 and no answer until a CANCEL, or 480 after a minute. It retransmits its
//! 2xx to INVITE every T1..T2 until the ACK arrives (RFC 3261 §13.3.1.4, as RFC 6026 leaves
//! it to the TU). The client TU ACKs every 2xx end to end and CANCELs an INVITE that is
//! still Proceeding without a final response after ten seconds (RFC 3261 §9.1: not before a
//! provisional response).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::*;

/// xorshift64*: small, seeded, good enough to pick losses.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

#[derive(Debug, Clone, Copy)]
struct Conditions {
    loss_percent: u64,
    duplicate_percent: u64,
    latency: Duration,
    /// Extra random delay up to this, which reorders packets.
    jitter: Duration,
}

impl Conditions {
    fn perfect() -> Conditions {
        Conditions {
            loss_percent: 0,
            duplicate_percent: 0,
            latency: ms(10),
            jitter: Duration::ZERO,
        }
    }

    fn lossy() -> Conditions {
        Conditions {
            loss_percent: 20,
            duplicate_percent: 10,
            latency: ms(10),
            jitter: ms(300),
        }
    }
}

struct Packet {
    at: Instant,
    seq: u64,
    to_server: bool,
    from: Peer,
    bytes: Vec<u8>,
}

/// An INVITE that the client TU will CANCEL if it has no final response by `at`.
struct PendingCancel {
    at: Instant,
    invite: TsxId,
    spec: Spec,
}

/// A 2xx the server TU retransmits until its ACK arrives.
struct Unacked {
    tsx: TsxId,
    call_id: String,
    response: Response,
    next_at: Instant,
    interval: Duration,
    give_up_at: Instant,
}

struct Sim {
    base: Instant,
    now: Instant,
    rng: Rng,
    conditions: Conditions,
    packets: Vec<Packet>,
    seq: u64,
    client: TransactionLayer,
    server: TransactionLayer,
    client_peer: Peer,
    server_peer: Peer,
    client_log: Vec<(Duration, TsxEvent)>,
    server_log: Vec<(Duration, TsxEvent)>,
    /// Every message either layer handed to the network, before loss.
    client_sent: Vec<Message>,
    server_sent: Vec<Message>,
    // Client TU.
    invites: HashSet<TsxId>,
    finals: HashSet<TsxId>,
    cancels: Vec<PendingCancel>,
    // Server TU: unanswered INVITEs and when they stop ringing.
    ringing: HashMap<TsxId, (Request, Instant)>,
    unacked: Vec<Unacked>,
    acked_call_ids: Vec<String>,
}

impl Sim {
    fn new(seed: u64, conditions: Conditions, transport: TransportKind) -> Sim {
        let base = clock::base();
        let config = LayerConfig {
            seed,
            ..LayerConfig::default()
        };
        Sim {
            base,
            now: base,
            rng: Rng::new(seed),
            conditions,
            packets: Vec::new(),
            seq: 0,
            client: TransactionLayer::new(config.clone()),
            server: TransactionLayer::new(config),
            client_peer: peer(transport, client_addr()),
            server_peer: peer(transport, server_addr()),
            client_log: Vec::new(),
            server_log: Vec::new(),
            client_sent: Vec::new(),
            server_sent: Vec::new(),
            invites: HashSet::new(),
            finals: HashSet::new(),
            cancels: Vec::new(),
            ringing: HashMap::new(),
            unacked: Vec::new(),
            acked_call_ids: Vec::new(),
        }
    }

    fn t1(&self) -> Duration {
        self.server.config().timers.t1
    }

    /// The client TU starts a transaction.
    fn start(&mut self, spec: &Spec) -> TsxId {
        let tsx = self
            .client
            .send_request(self.now, spec.build(), self.server_peer)
            .expect("send_request");
        if spec.method == "INVITE" {
            self.invites.insert(tsx);
            self.cancels.push(PendingCancel {
                at: self.now + secs(10),
                invite: tsx,
                spec: spec.clone(),
            });
        }
        self.pump();
        tsx
    }

    fn run_until(&mut self, offset: Duration) {
        let end = self.base + offset;
        loop {
            self.pump();
            let next = [
                self.client.poll_timeout(),
                self.server.poll_timeout(),
                self.packets.iter().map(|p| p.at).min(),
                self.unacked.iter().map(|u| u.next_at).min(),
                self.cancels.iter().map(|c| c.at).min(),
                self.ringing.values().map(|(_, until)| *until).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|next| *next <= end) else {
                break;
            };
            self.now = self.now.max(next);
            self.deliver_due();
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
            self.pump();
            self.server_tu_retransmit();
            self.server_tu_stop_ringing();
            self.client_tu_cancel();
        }
        self.now = self.now.max(end);
    }

    fn deliver_due(&mut self) {
        while let Some(index) = self
            .packets
            .iter()
            .enumerate()
            .filter(|(_, p)| p.at <= self.now)
            .min_by_key(|(_, p)| (p.at, p.seq))
            .map(|(i, _)| i)
        {
            let packet = self.packets.swap_remove(index);
            let message = parse_datagram(&packet.bytes, &Limits::default())
                .expect("every sent message parses");
            let layer = if packet.to_server {
                &mut self.server
            } else {
                &mut self.client
            };
            let result = match message {
                Message::Request(request) => layer.handle_request(self.now, request, packet.from),
                Message::Response(response) => {
                    layer.handle_response(self.now, response, packet.from)
                }
            };
            result.expect("well-formed input is accepted");
            self.pump();
        }
    }

    /// Drains both layers (the drain rule), letting each TU react, until both are quiet.
    fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(transmit) = self.client.poll_transmit() {
                busy = true;
                assert_eq!(transmit.destination, self.server_peer);
                self.client_sent.push(transmit.message.clone());
                self.send(transmit.message, true);
            }
            while let Some(transmit) = self.server.poll_transmit() {
                busy = true;
                assert_eq!(
                    transmit.destination, self.client_peer,
                    "responses go to the request's source"
                );
                self.server_sent.push(transmit.message.clone());
                self.send(transmit.message, false);
            }
            while let Some(event) = self.client.poll_event() {
                busy = true;
                self.client_log.push((self.now - self.base, event.clone()));
                self.client_tu(event);
            }
            while let Some(event) = self.server.poll_event() {
                busy = true;
                self.server_log.push((self.now - self.base, event.clone()));
                self.server_tu(event);
            }
            if !busy {
                return;
            }
        }
    }

    fn send(&mut self, message: Message, to_server: bool) {
        let reliable = self.client_peer.transport.is_reliable();
        if !reliable && self.rng.percent(self.conditions.loss_percent) {
            return;
        }
        let copies = if !reliable && self.rng.percent(self.conditions.duplicate_percent) {
            2
        } else {
            1
        };
        let from = if to_server {
            self.client_peer
        } else {
            self.server_peer
        };
        for _ in 0..copies {
            let jitter_ms = self.conditions.jitter.as_millis() as u64;
            let delay = self.conditions.latency + ms(self.rng.below(jitter_ms + 1));
            self.seq += 1;
            self.packets.push(Packet {
                at: self.now + delay,
                seq: self.seq,
                to_server,
                from,
                bytes: message.to_bytes(),
            });
        }
    }

    fn client_tu(&mut self, event: TsxEvent) {
        let TsxEvent::Response { tsx, response } = event else {
            return;
        };
        if response.status >= 200 {
            self.finals.insert(tsx);
        }
        if self.invites.contains(&tsx) && (200..300).contains(&response.status) {
            let ack = ack_for_2xx(&response);
            self.client.send_ack(ack, self.server_peer).expect("an ACK");
        }
    }

    fn client_tu_cancel(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.cancels)
            .into_iter()
            .partition(|c| c.at <= now);
        self.cancels = later;
        for pending in due {
            match self.client.state(pending.invite) {
                None => {}
                Some(_) if self.finals.contains(&pending.invite) => {}
                Some(TsxState::Calling) => self.cancels.push(PendingCancel {
                    at: now + secs(1),
                    ..pending
                }),
                Some(_) => {
                    self.client
                        .send_request(now, pending.spec.method("CANCEL").build(), self.server_peer)
                        .expect("CANCEL");
                    self.pump();
                }
            }
        }
    }

    fn server_tu(&mut self, event: TsxEvent) {
        match event {
            TsxEvent::NewRequest { tsx, request, .. } => {
                let user = request
                    .uri
                    .as_sip()
                    .and_then(|u| u.user.clone())
                    .unwrap_or_default();
                let is_invite = request.method == Method::Invite;
                if is_invite {
                    self.tu_respond(tsx, response_to(&request, 180, "uas"));
                }
                match user.parse::<u16>() {
                    Ok(status) => {
                        let response = response_to(&request, status, "uas");
                        if is_invite && (200..300).contains(&status) {
                            self.unacked.push(Unacked {
                                tsx,
                                call_id: request.headers.call_id().unwrap_or_default().to_owned(),
                                response: response.clone(),
                                next_at: self.now + self.t1(),
                                interval: self.t1(),
                                give_up_at: self.now + self.t1() * 64,
                            });
                        }
                        self.tu_respond(tsx, response);
                    }
                    Err(_) => {
                        self.ringing.insert(tsx, (request, self.now + secs(60)));
                    }
                }
            }
            TsxEvent::CancelRequest {
                tsx,
                invite,
                request,
                ..
            } => {
                let status = if invite.is_some() { 200 } else { 481 };
                self.tu_respond(tsx, response_to(&request, status, "uas"));
                if let Some(invite) = invite
                    && let Some((invite_request, _)) = self.ringing.remove(&invite)
                {
                    self.tu_respond(invite, response_to(&invite_request, 487, "uas"));
                }
            }
            TsxEvent::AckFor2xx { request, .. } => {
                let call_id = request.headers.call_id().unwrap_or_default().to_owned();
                self.unacked.retain(|u| u.call_id != call_id);
                self.acked_call_ids.push(call_id);
            }
            TsxEvent::Terminated { tsx } => {
                self.unacked.retain(|u| u.tsx != tsx);
                self.ringing.remove(&tsx);
            }
            _ => {}
        }
    }

    fn tu_respond(&mut self, tsx: TsxId, response: Response) {
        self.server
            .respond(self.now, tsx, response)
            .unwrap_or_else(|e| panic!("the server TU responds within the rules: {e}"));
    }

    fn server_tu_retransmit(&mut self) {
        let now = self.now;
        self.unacked.retain(|u| u.give_up_at > now);
        let t2 = self.server.config().timers.t2;
        let mut due = Vec::new();
        for pending in &mut self.unacked {
            if pending.next_at <= now {
                pending.interval = (pending.interval * 2).min(t2);
                pending.next_at = now + pending.interval;
                due.push((pending.tsx, pending.response.clone()));
            }
        }
        for (tsx, response) in due {
            self.tu_respond(tsx, response);
            self.pump();
        }
    }

    fn server_tu_stop_ringing(&mut self) {
        let now = self.now;
        let done: Vec<TsxId> = self
            .ringing
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(tsx, _)| *tsx)
            .collect();
        for tsx in done {
            if let Some((request, _)) = self.ringing.remove(&tsx) {
                self.tu_respond(tsx, response_to(&request, 480, "uas"));
                self.pump();
            }
        }
    }

    fn client_events_of(&self, tsx: TsxId) -> Vec<&TsxEvent> {
        self.client_log
            .iter()
            .map(|(_, e)| e)
            .filter(|e| match e {
                TsxEvent::Response { tsx: t, .. }
                | TsxEvent::Timeout { tsx: t, .. }
                | TsxEvent::Terminated { tsx: t } => *t == tsx,
                _ => false,
            })
            .collect()
    }
}

/// The UAC core's ACK for a 2xx (RFC 3261 §13.2.2.4): a new branch, To from the response.
fn ack_for_2xx(response: &Response) -> Request {
    let call_id = response.headers.call_id().unwrap_or_default();
    let cseq = response.headers.cseq().ok().flatten().map_or(0, |c| c.seq);
    let to = response.headers.first("To").unwrap_or_default();
    let from = response.headers.first("From").unwrap_or_default();
    let text = format!(
        "ACK sip:uas@192.0.2.20 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKack-{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: {from}\r\n\
         To: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match parse_datagram(text.as_bytes(), &Limits::default()) {
        Ok(Message::Request(ack)) => ack,
        other => panic!("ACK does not parse: {other:?}"),
    }
}

/// How one client transaction ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The final statuses the TU saw (several only for 2xx to INVITE).
    Finals(Vec<u16>),
    TimedOut(Timer),
}

fn outcome(sim: &Sim, tsx: TsxId) -> Outcome {
    let events = sim.client_events_of(tsx);
    let terminations = events
        .iter()
        .filter(|e| matches!(e, TsxEvent::Terminated { .. }))
        .count();
    assert_eq!(terminations, 1, "{tsx} terminates exactly once: {events:?}");
    let finals: Vec<u16> = events
        .iter()
        .filter_map(|e| match e {
            TsxEvent::Response { response, .. } if response.status >= 200 => Some(response.status),
            _ => None,
        })
        .collect();
    let timeouts: Vec<Timer> = events
        .iter()
        .filter_map(|e| match e {
            TsxEvent::Timeout { timer, .. } if *timer != Timer::C => Some(*timer),
            _ => None,
        })
        .collect();
    match (finals.is_empty(), timeouts.as_slice()) {
        (false, []) => Outcome::Finals(finals),
        (true, [timer]) => Outcome::TimedOut(*timer),
        _ => panic!("{tsx} ended with both or neither a final response and a timeout: {events:?}"),
    }
}

fn scenario(index: u64, method: &'static str, user: &str) -> Spec {
    let mut spec = Spec::new(method, &format!("z9hG4bK{method}-{user}-{index}"));
    spec.user = user.to_owned();
    spec.call_id = format!("call-{index}-{method}-{user}");
    spec.cseq = index as u32 + 1;
    spec
}

#[test]
fn lossy_network_still_completes() {
    let mut completed = 0;
    let mut total = 0;
    for seed in 1..=100 {
        let mut sim = Sim::new(seed, Conditions::lossy(), TransportKind::Udp);
        let plan = [
            ("INVITE", "486"),
            ("INVITE", "200"),
            ("OPTIONS", "200"),
            ("MESSAGE", "404"),
            ("INVITE", "ring"),
            ("REGISTER", "401"),
        ];
        let mut started = Vec::new();
        for (index, (method, user)) in plan.into_iter().enumerate() {
            sim.run_until(ms(index as u64 * 150));
            started.push((
                sim.start(&scenario(index as u64, method, user)),
                method,
                user,
            ));
        }
        sim.run_until(secs(300));

        for (tsx, method, user) in started {
            let got = outcome(&sim, tsx);
            total += 1;
            let ok = match (&got, method, user) {
                (Outcome::Finals(finals), "INVITE", "200") => finals.iter().all(|s| *s == 200),
                (Outcome::Finals(finals), _, "ring") => finals == &[487] || finals == &[480],
                (Outcome::Finals(finals), _, status) => {
                    finals.len() == 1 && finals[0].to_string() == status
                }
                (Outcome::TimedOut(Timer::B | Timer::Cancel), "INVITE", _) => true,
                (Outcome::TimedOut(Timer::F), _, _) => method != "INVITE",
                _ => false,
            };
            assert!(ok, "seed {seed}: {method} to {user} ended with {got:?}");
            if matches!(got, Outcome::Finals(_)) {
                completed += 1;
            }
        }
        assert!(
            sim.client.is_empty() && sim.server.is_empty(),
            "seed {seed}: every transaction is gone"
        );
        assert_eq!(sim.client.poll_timeout(), None);
        assert_eq!(sim.server.poll_timeout(), None);
    }
    // The retransmission timers must carry nearly everything through 20 % loss.
    assert!(
        completed * 100 >= total * 97,
        "only {completed} of {total} completed"
    );
}

#[test]
fn ack_for_2xx_is_end_to_end_and_reaches_the_tu() {
    let mut sim = Sim::new(1, Conditions::perfect(), TransportKind::Udp);
    let spec = scenario(0, "INVITE", "200");
    let tsx = sim.start(&spec);
    sim.run_until(secs(1));
    assert_eq!(outcome_so_far(&sim, tsx), vec![100, 180, 200]);
    assert_eq!(sim.client.state(tsx), Some(TsxState::Accepted));

    let acks: Vec<&Request> = sim
        .client_sent
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) if r.method == Method::Ack => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(acks.len(), 1, "one ACK, from the TU");
    let ack_branch = acks[0].headers.via().expect("via")[0]
        .branch()
        .map(str::to_owned);
    assert_ne!(
        ack_branch.as_deref(),
        spec.branch.as_deref(),
        "a 2xx ACK is a new transaction"
    );
    assert_eq!(
        sim.acked_call_ids,
        vec![spec.call_id.clone()],
        "the server TU got the ACK"
    );
    assert!(
        sim.server_log
            .iter()
            .any(|(_, e)| matches!(e, TsxEvent::AckFor2xx { .. })),
        "as AckFor2xx"
    );
    sim.run_until(secs(60));
    assert!(sim.client.is_empty() && sim.server.is_empty());
}

#[test]
fn invite_and_non_invite_complete_over_a_perfect_network() {
    let mut sim = Sim::new(2, Conditions::perfect(), TransportKind::Udp);
    let busy = sim.start(&scenario(0, "INVITE", "486"));
    let ring = sim.start(&scenario(1, "INVITE", "ring"));
    let options = sim.start(&scenario(2, "OPTIONS", "200"));
    sim.run_until(secs(60));
    assert_eq!(outcome(&sim, busy), Outcome::Finals(vec![486]));
    assert_eq!(
        outcome(&sim, ring),
        Outcome::Finals(vec![487]),
        "cancelled after ten seconds"
    );
    assert_eq!(outcome(&sim, options), Outcome::Finals(vec![200]));
    let client_acks = sim
        .client_sent
        .iter()
        .filter(|m| method_of(m) == Some("ACK"))
        .count();
    assert_eq!(client_acks, 2, "the transaction ACKs the 486 and the 487");
    assert!(sim.client.is_empty() && sim.server.is_empty());
}

#[test]
fn reliable_transport_end_to_end_sends_each_message_once() {
    let mut sim = Sim::new(3, Conditions::perfect(), TransportKind::Tcp);
    let tcp = |index, method, user| {
        let mut spec = scenario(index, method, user);
        spec.transport = "TCP";
        spec
    };
    let specs = [
        tcp(0, "INVITE", "486"),
        tcp(1, "INVITE", "200"),
        tcp(2, "OPTIONS", "200"),
        tcp(3, "INVITE", "ring"),
    ];
    let ids: Vec<TsxId> = specs.iter().map(|spec| sim.start(spec)).collect();
    sim.run_until(secs(60));
    assert_eq!(outcome(&sim, ids[0]), Outcome::Finals(vec![486]));
    assert_eq!(outcome(&sim, ids[2]), Outcome::Finals(vec![200]));
    assert_eq!(outcome(&sim, ids[3]), Outcome::Finals(vec![487]));
    let requests: Vec<String> = sim
        .client_sent
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(format!("{} {:?}", r.method, r.headers.first("CSeq"))),
            Message::Response(_) => None,
        })
        .collect();
    let unique: HashSet<&String> = requests.iter().collect();
    assert_eq!(
        unique.len(),
        requests.len(),
        "no request is retransmitted: {requests:?}"
    );
    // On the server side only the TU repeats its 2xx, and on a perfect network the ACK
    // arrives before it would.
    let responses: Vec<Vec<u8>> = sim.server_sent.iter().map(Message::to_bytes).collect();
    let unique: HashSet<&Vec<u8>> = responses.iter().collect();
    assert_eq!(
        unique.len(),
        responses.len(),
        "no response is retransmitted"
    );
    let statuses: Vec<u16> = sim.server_sent.iter().filter_map(status_of).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s >= 300).count(),
        2,
        "486 and 487: {statuses:?}"
    );
    assert!(sim.client.is_empty() && sim.server.is_empty());
}

fn outcome_so_far(sim: &Sim, tsx: TsxId) -> Vec<u16> {
    sim.client_events_of(tsx)
        .iter()
        .filter_map(|e| match e {
            TsxEvent::Response { response, .. } => Some(response.status),
            _ => None,
        })
        .collect()
}
