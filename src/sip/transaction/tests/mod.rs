//! Tests of the transaction layer: one layer driven by hand on a virtual clock (every timer
//! path, matching rules, API misuse), and two layers over a simulated network (`sim`).

mod sim;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::sip::message::{Limits, Message, Request, Response, parse_datagram, reason_phrase};
use crate::sip::peer::{ConnectionId, Peer, TransportKind};

mod clock {
    use std::time::Instant;

    /// The one real instant the tests read; every other instant is this plus an offset.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn base() -> Instant {
        Instant::now()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn client_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], 5060))
}

fn server_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 20], 5060))
}

fn peer(transport: TransportKind, addr: SocketAddr) -> Peer {
    let connection = transport.is_reliable().then_some(ConnectionId(7));
    Peer {
        transport,
        addr,
        connection,
    }
}

fn udp(addr: SocketAddr) -> Peer {
    peer(TransportKind::Udp, addr)
}

/// What a test request looks like; [`Spec::build`] prints it as SIP text and parses it.
#[derive(Debug, Clone)]
struct Spec {
    method: &'static str,
    /// The user part of the Request-URI (the simulated server TU reads its answer there).
    user: String,
    transport: &'static str,
    branch: Option<String>,
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    cseq: u32,
    routes: Vec<String>,
}

impl Spec {
    fn new(method: &'static str, branch: &str) -> Spec {
        Spec {
            method,
            user: "bob".into(),
            transport: "UDP",
            branch: Some(branch.to_owned()),
            call_id: format!("call-{branch}"),
            from_tag: "alice-tag".into(),
            to_tag: None,
            cseq: 1,
            routes: Vec::new(),
        }
    }

    fn method(&self, method: &'static str) -> Spec {
        Spec {
            method,
            ..self.clone()
        }
    }

    fn uri(&self) -> String {
        format!("sip:{}@192.0.2.20", self.user)
    }

    fn text(&self) -> String {
        let branch = self
            .branch
            .as_ref()
            .map(|b| format!(";branch={b}"))
            .unwrap_or_default();
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let mut text = format!("{} {} SIP/2.0\r\n", self.method, self.uri());
        text += &format!(
            "Via: SIP/2.0/{} 192.0.2.10:5060{branch}\r\n",
            self.transport
        );
        text += "Max-Forwards: 70\r\n";
        for route in &self.routes {
            text += &format!("Route: <{route}>\r\n");
        }
        text += &format!(
            "From: \"Alice\" <sip:alice@192.0.2.10>;tag={}\r\n",
            self.from_tag
        );
        text += &format!("To: <{}>{to_tag}\r\n", self.uri());
        text += &format!("Call-ID: {}\r\n", self.call_id);
        text += &format!("CSeq: {} {}\r\n", self.cseq, self.method);
        text += "Contact: <sip:alice@192.0.2.10:5060>\r\n";
        text += "Content-Length: 0\r\n\r\n";
        text
    }

    fn build(&self) -> Request {
        match parse_datagram(self.text().as_bytes(), &Limits::default()) {
            Ok(Message::Request(request)) => request,
            other => panic!("test request does not parse: {other:?}"),
        }
    }
}

/// The TU's response to `request`, with a To tag on anything but 100.
fn response_to(request: &Request, status: u16, to_tag: &str) -> Response {
    let mut response = Response::for_request(request, status, reason_phrase(status));
    if status != 100 {
        response.set_to_tag(to_tag);
    }
    response
}

/// Prints and re-parses a message, as the wire would.
fn over_the_wire(message: &Message) -> Message {
    parse_datagram(&message.to_bytes(), &Limits::default())
        .unwrap_or_else(|e| panic!("sent an unparsable message: {e}"))
}

fn response_over_the_wire(response: &Response) -> Response {
    match over_the_wire(&Message::Response(response.clone())) {
        Message::Response(response) => response,
        other => panic!("not a response: {other:?}"),
    }
}

fn status_of(message: &Message) -> Option<u16> {
    match message {
        Message::Response(r) => Some(r.status),
        Message::Request(_) => None,
    }
}

fn method_of(message: &Message) -> Option<&str> {
    match message {
        Message::Request(r) => Some(r.method.as_str()),
        Message::Response(_) => None,
    }
}

fn fast_config() -> LayerConfig {
    LayerConfig {
        send_100_trying: false,
        ..LayerConfig::default()
    }
}

/// One layer on a virtual clock; everything it emits is logged with its time offset.
struct Harness {
    base: Instant,
    now: Instant,
    layer: TransactionLayer,
    transmits: Vec<(Duration, Transmit)>,
    events: Vec<(Duration, TsxEvent)>,
}

impl Harness {
    fn new(config: LayerConfig) -> Harness {
        let base = clock::base();
        Harness {
            base,
            now: base,
            layer: TransactionLayer::new(config),
            transmits: Vec::new(),
            events: Vec::new(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    fn drain(&mut self) {
        let at = self.elapsed();
        while let Some(transmit) = self.layer.poll_transmit() {
            over_the_wire(&transmit.message);
            self.transmits.push((at, transmit));
        }
        while let Some(event) = self.layer.poll_event() {
            self.events.push((at, event));
        }
    }

    /// Runs every timer up to `offset` after the start, in order.
    fn advance_to(&mut self, offset: Duration) {
        let target = self.base + offset;
        self.drain();
        while let Some(due) = self.layer.poll_timeout().filter(|due| *due <= target) {
            self.now = self.now.max(due);
            self.layer.handle_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(target);
    }

    fn send(&mut self, request: Request, destination: Peer) -> TsxId {
        let tsx = self
            .layer
            .send_request(self.now, request, destination)
            .expect("send_request");
        self.drain();
        tsx
    }

    fn receive_request(&mut self, request: Request, source: Peer) {
        self.layer
            .handle_request(self.now, request, source)
            .expect("handle_request");
        self.drain();
    }

    fn receive_response(&mut self, response: &Response, source: Peer) {
        self.layer
            .handle_response(self.now, response_over_the_wire(response), source)
            .expect("handle_response");
        self.drain();
    }

    fn respond(&mut self, tsx: TsxId, response: Response) -> Result<(), TsxError> {
        let result = self.layer.respond(self.now, tsx, response);
        self.drain();
        result
    }

    fn take_transmits(&mut self) -> Vec<(Duration, Transmit)> {
        std::mem::take(&mut self.transmits)
    }

    fn take_events(&mut self) -> Vec<(Duration, TsxEvent)> {
        std::mem::take(&mut self.events)
    }

    /// The new server transaction the last request created.
    fn new_request_tsx(&mut self) -> (TsxId, Request) {
        match self.take_events().pop() {
            Some((_, TsxEvent::NewRequest { tsx, request, .. })) => (tsx, request),
            other => panic!("expected NewRequest, got {other:?}"),
        }
    }
}

fn offsets(transmits: &[(Duration, Transmit)]) -> Vec<Duration> {
    transmits.iter().map(|(at, _)| *at).collect()
}

fn timeouts(events: &[(Duration, TsxEvent)]) -> Vec<(Duration, Timer)> {
    events
        .iter()
        .filter_map(|(at, event)| match event {
            TsxEvent::Timeout { timer, .. } => Some((*at, *timer)),
            _ => None,
        })
        .collect()
}

fn terminated_at(events: &[(Duration, TsxEvent)], id: TsxId) -> Option<Duration> {
    events.iter().find_map(|(at, event)| match event {
        TsxEvent::Terminated { tsx } if *tsx == id => Some(*at),
        _ => None,
    })
}

fn response_statuses(events: &[(Duration, TsxEvent)]) -> Vec<u16> {
    events
        .iter()
        .filter_map(|(_, event)| match event {
            TsxEvent::Response { response, .. } => Some(response.status),
            _ => None,
        })
        .collect()
}

// ---- client transactions -------------------------------------------------------------

#[test]
fn invite_with_total_loss_times_out_after_timer_b_64_t1() {
    let mut h = Harness::new(fast_config());
    let tsx = h.send(
        Spec::new("INVITE", "z9hG4bKinv1").build(),
        udp(server_addr()),
    );
    assert_eq!(h.layer.state(tsx), Some(TsxState::Calling));
    h.advance_to(secs(40));
    // Timer A: T1, 2*T1, 4*T1 ... without a cap, until Timer B at 64*T1.
    let expected: Vec<Duration> = [0, 500, 1500, 3500, 7500, 15_500, 31_500]
        .into_iter()
        .map(ms)
        .collect();
    assert_eq!(offsets(&h.transmits), expected);
    assert!(
        h.transmits
            .iter()
            .all(|(_, t)| t.tsx == Some(tsx) && t.destination == udp(server_addr()))
    );
    assert_eq!(timeouts(&h.events), vec![(secs(32), Timer::B)]);
    assert_eq!(terminated_at(&h.events, tsx), Some(secs(32)));
    assert!(h.layer.is_empty());
    assert_eq!(h.layer.poll_timeout(), None);
}

#[test]
fn non_invite_retransmits_e_doubling_up_to_t2() {
    let mut h = Harness::new(fast_config());
    let tsx = h.send(
        Spec::new("OPTIONS", "z9hG4bKopt1").build(),
        udp(server_addr()),
    );
    h.advance_to(secs(40));
    let expected: Vec<Duration> = [
        0, 500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
    ]
    .into_iter()
    .map(ms)
    .collect();
    assert_eq!(offsets(&h.transmits), expected);
    assert_eq!(timeouts(&h.events), vec![(secs(32), Timer::F)]);
    assert_eq!(terminated_at(&h.events, tsx), Some(secs(32)));
    assert!(h.layer.is_empty());
}

#[test]
fn non_invite_in_proceeding_retransmits_every_t2_until_timer_f() {
    let mut h = Harness::new(fast_config());
    let request = Spec::new("REGISTER", "z9hG4bKreg1").build();
    let tsx = h.send(request.clone(), udp(server_addr()));
    h.advance_to(ms(200));
    h.receive_response(&response_to(&request, 100, "x"), udp(server_addr()));
    assert_eq!(h.layer.state(tsx), Some(TsxState::Proceeding));
    h.advance_to(secs(40));
    // Timer E keeps its pending 500 ms expiry, then fires every T2.
    let expected: Vec<Duration> = [0, 500, 4500, 8500, 12_500, 16_500, 20_500, 24_500, 28_500]
        .into_iter()
        .map(ms)
        .collect();
    assert_eq!(offsets(&h.transmits), expected);
    assert_eq!(timeouts(&h.events), vec![(secs(32), Timer::F)]);
    assert_eq!(response_statuses(&h.events), vec![100]);
}

#[test]
fn non_invite_client_absorbs_response_retransmissions_for_timer_k() {
    let mut h = Harness::new(fast_config());
    let request = Spec::new("OPTIONS", "z9hG4bKopt2").build();
    let tsx = h.send(request.clone(), udp(server_addr()));
    let ok = response_to(&request, 200, "srv");
    h.advance_to(ms(100));
    h.receive_response(&ok, udp(server_addr()));
    assert_eq!(h.layer.state(tsx), Some(TsxState::Completed));
    h.advance_to(secs(3));
    h.receive_response(&ok, udp(server_addr()));
    h.advance_to(secs(10));
    assert_eq!(
        response_statuses(&h.events),
        vec![200],
        "the retransmission is absorbed"
    );
    assert_eq!(
        offsets(&h.transmits),
        vec![ms(0)],
        "no retransmission after the final response"
    );
    // Timer K = T4 after the final response.
    assert_eq!(terminated_at(&h.events, tsx), Some(ms(5100)));
}

#[test]
fn ack_for_non_2xx_is_generated_hop_by_hop() {
    let mut h = Harness::new(fast_config());
    let mut spec = Spec::new("INVITE", "z9hG4bKinv2");
    spec.cseq = 42;
    spec.routes = vec![
        "sip:proxy1.example.com;lr".into(),
        "sip:proxy2.example.com;lr".into(),
    ];
    let invite = spec.build();
    let tsx = h.send(invite.clone(), udp(server_addr()));
    h.advance_to(ms(100));
    let busy = response_to(&invite, 486, "callee-tag");
    h.receive_response(&busy, udp(server_addr()));

    let transmits = h.take_transmits();
    assert_eq!(transmits.len(), 2, "the INVITE, then the ACK");
    let (at, ack) = &transmits[1];
    assert_eq!(*at, ms(100));
    assert_eq!(ack.tsx, Some(tsx));
    assert_eq!(ack.destination, udp(server_addr()));
    let Message::Request(ack) = over_the_wire(&ack.message) else {
        panic!("the ACK is a request")
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri, invite.uri, "same Request-URI");
    let vias: Vec<&str> = ack.headers.values("Via").collect();
    assert_eq!(
        vias,
        vec!["SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinv2"],
        "only the INVITE's top Via"
    );
    assert_eq!(ack.headers.first("From"), invite.headers.first("From"));
    assert_eq!(ack.headers.call_id(), invite.headers.call_id());
    assert_eq!(ack.headers.first("CSeq"), Some("42 ACK"));
    let to = ack.headers.to().ok().flatten().expect("To");
    assert_eq!(to.tag(), Some("callee-tag"), "To from the response");
    let routes: Vec<&str> = ack.headers.values("Route").collect();
    assert_eq!(
        routes,
        vec!["<sip:proxy1.example.com;lr>", "<sip:proxy2.example.com;lr>"]
    );

    // A retransmitted final response is absorbed and answered with the same ACK.
    h.advance_to(secs(2));
    h.receive_response(&busy, udp(server_addr()));
    let again = h.take_transmits();
    assert_eq!(again.len(), 1);
    assert_eq!(over_the_wire(&again[0].1.message), Message::Request(ack));
    assert_eq!(response_statuses(&h.events), vec![486]);
    assert_eq!(h.layer.state(tsx), Some(TsxState::Completed));
    // Timer D: 32 s on UDP.
    h.advance_to(secs(40));
    assert_eq!(terminated_at(&h.events, tsx), Some(ms(32_100)));
}

#[test]
fn two_xx_retransmissions_in_accepted_state_go_to_the_tu() {
    let mut h = Harness::new(fast_config());
    let invite = Spec::new("INVITE", "z9hG4bKinv3").build();
    let tsx = h.send(invite.clone(), udp(server_addr()));
    h.advance_to(ms(300));
    let ok = response_to(&invite, 200, "fork-a");
    h.receive_response(&ok, udp(server_addr()));
    assert_eq!(h.layer.state(tsx), Some(TsxState::Accepted));
    h.advance_to(ms(800));
    h.receive_response(&ok, udp(server_addr()));
    h.advance_to(secs(1));
    h.receive_response(&response_to(&invite, 200, "fork-b"), udp(server_addr()));
    h.receive_response(&response_to(&invite, 486, "fork-c"), udp(server_addr()));
    assert_eq!(
        response_statuses(&h.events),
        vec![200, 200, 200],
        "every 2xx reaches the TU; the 486 is absorbed"
    );
    assert_eq!(
        offsets(&h.transmits),
        vec![ms(0)],
        "no ACK from the transaction and no retransmission after the 2xx"
    );
    // Timer M = 64*T1 after the first 2xx.
    h.advance_to(secs(40));
    assert_eq!(terminated_at(&h.events, tsx), Some(ms(32_300)));
    // After Timer M a 2xx is stray: the TU still sees it.
    h.receive_response(&ok, udp(server_addr()));
    assert!(matches!(
        h.events.last(),
        Some((_, TsxEvent::StrayResponse { .. }))
    ));
}

#[test]
fn provisional_response_stops_timer_a_and_timer_b() {
    let mut h = Harness::new(fast_config());
    let invite = Spec::new("INVITE", "z9hG4bKinv4").build();
    let tsx = h.send(invite.clone(), udp(server_addr()));
    h.advance_to(ms(700));
    h.receive_response(&response_to(&invite, 180, "t"), udp(server_addr()));
    assert_eq!(h.layer.state(tsx), Some(TsxState::Proceeding));
    h.advance_to(secs(300));
    assert_eq!(offsets(&h.transmits), vec![ms(0), ms(500)]);
    assert!(
        timeouts(&h.events).is_empty(),
        "Proceeding waits for the TU (Timer C is off)"
    );
    assert_eq!(h.layer.poll_timeout(), None);
}

#[test]
fn timer_c_reports_an_invite_left_ringing() {
    let mut config = fast_config();
    config.timers.c = Some(secs(180));
    let mut h = Harness::new(config);
    let invite = Spec::new("INVITE", "z9hG4bKinv5").build();
    let tsx = h.send(invite.clone(), udp(server_addr()));
    h.advance_to(secs(1));
    h.receive_response(&response_to(&invite, 180, "t"), udp(server_addr()));
    h.advance_to(secs(100));
    // Each provisional response re-arms Timer C.
    h.receive_response(&response_to(&invite, 183, "t"), udp(server_addr()));
    h.advance_to(secs(400));
    assert_eq!(timeouts(&h.events), vec![(secs(280), Timer::C)]);
    assert_eq!(
        h.layer.state(tsx),
        Some(TsxState::Proceeding),
        "the TU decides whether to CANCEL"
    );
}

#[test]
fn cancel_from_the_client_arms_the_64_t1_guard_on_its_invite() {
    let mut h = Harness::new(fast_config());
    let spec = Spec::new("INVITE", "z9hG4bKinv6");
    let invite = spec.build();
    let invite_tsx = h.send(invite.clone(), udp(server_addr()));
    h.advance_to(ms(100));
    h.receive_response(&response_to(&invite, 180, "t"), udp(server_addr()));
    h.advance_to(secs(10));
    let cancel = spec.method("CANCEL").build();
    let cancel_tsx = h.send(cancel.clone(), udp(server_addr()));
    assert_ne!(cancel_tsx, invite_tsx, "the CANCEL is its own transaction");
    h.advance_to(ms(10_050));
    h.receive_response(&response_to(&cancel, 200, "t"), udp(server_addr()));
    // The CANCEL's 200 went to the CANCEL transaction; the INVITE never gets a final.
    h.advance_to(secs(100));
    assert_eq!(timeouts(&h.events), vec![(secs(42), Timer::Cancel)]);
    assert_eq!(terminated_at(&h.events, invite_tsx), Some(secs(42)));
    assert_eq!(
        terminated_at(&h.events, cancel_tsx),
        Some(ms(15_050)),
        "Timer K after the CANCEL's 200"
    );
}

#[test]
fn invite_client_sends_the_branch_it_was_given_or_adds_one() {
    let mut h = Harness::new(fast_config());
    let mut spec = Spec::new("INVITE", "unused");
    spec.branch = None;
    h.send(spec.build(), udp(server_addr()));
    h.send(spec.build(), udp(server_addr()));
    let branches: Vec<String> = h
        .take_transmits()
        .iter()
        .map(|(_, t)| {
            let vias = t.message.headers().via().expect("via");
            vias[0].branch().expect("branch").to_owned()
        })
        .collect();
    assert_eq!(branches.len(), 2);
    assert!(branches.iter().all(|b| b.starts_with(MAGIC_COOKIE)));
    assert_ne!(branches[0], branches[1], "fresh branches are unique");

    let mut legacy = Spec::new("OPTIONS", "1234");
    legacy.call_id = "legacy".into();
    let err = h
        .layer
        .send_request(h.now, legacy.build(), udp(server_addr()));
    assert!(matches!(
        err,
        Err(TsxError::ApiMisuse(Misuse::BranchWithoutCookie { .. }))
    ));
    let duplicate = h.layer.send_request(
        h.now,
        Spec::new("OPTIONS", "z9hG4bKdup").build(),
        udp(server_addr()),
    );
    assert!(duplicate.is_ok());
    let again = h.layer.send_request(
        h.now,
        Spec::new("OPTIONS", "z9hG4bKdup").build(),
        udp(server_addr()),
    );
    assert!(matches!(
        again,
        Err(TsxError::ApiMisuse(Misuse::DuplicateTransaction { .. }))
    ));
    let ack = h.layer.send_request(
        h.now,
        Spec::new("ACK", "z9hG4bKack").build(),
        udp(server_addr()),
    );
    assert_eq!(ack, Err(TsxError::ApiMisuse(Misuse::AckHasNoTransaction)));
}

#[test]
fn response_matching_uses_branch_and_cseq_method() {
    let mut h = Harness::new(fast_config());
    let spec = Spec::new("INVITE", "z9hG4bKinv7");
    let invite = spec.build();
    let invite_tsx = h.send(invite.clone(), udp(server_addr()));
    let cancel = spec.method("CANCEL").build();
    let cancel_tsx = h.send(cancel.clone(), udp(server_addr()));
    h.take_events();
    h.receive_response(&response_to(&cancel, 200, "t"), udp(server_addr()));
    h.receive_response(&response_to(&invite, 487, "t"), udp(server_addr()));
    let by_tsx: Vec<(TsxId, u16)> = h
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            TsxEvent::Response { tsx, response } => Some((*tsx, response.status)),
            _ => None,
        })
        .collect();
    assert_eq!(by_tsx, vec![(cancel_tsx, 200), (invite_tsx, 487)]);

    let other = Spec::new("OPTIONS", "z9hG4bKnobody").build();
    h.receive_response(&response_to(&other, 200, "t"), udp(server_addr()));
    assert!(
        matches!(h.events.last(), Some((_, TsxEvent::StrayResponse { response, .. })) if response.status == 200)
    );
}

// ---- server transactions -------------------------------------------------------------

#[test]
fn invite_server_retransmits_final_response_until_ack_then_absorbs_for_timer_i() {
    let mut h = Harness::new(fast_config());
    let spec = Spec::new("INVITE", "z9hG4bKsrv1");
    let client = udp(client_addr());
    h.receive_request(spec.build(), client);
    let (tsx, request) = h.new_request_tsx();
    assert_eq!(h.layer.state(tsx), Some(TsxState::Proceeding));
    h.respond(tsx, response_to(&request, 486, "uas"))
        .expect("486");
    assert_eq!(h.layer.state(tsx), Some(TsxState::Completed));
    h.advance_to(secs(9));
    // Timer G: T1, doubling up to T2.
    let expected: Vec<Duration> = [0, 500, 1500, 3500, 7500].into_iter().map(ms).collect();
    assert_eq!(offsets(&h.transmits), expected);
    assert!(
        h.transmits
            .iter()
            .all(|(_, t)| status_of(&t.message) == Some(486) && t.destination == client)
    );

    let mut ack = spec.method("ACK");
    ack.to_tag = Some("uas".into());
    h.receive_request(ack.build(), client);
    assert_eq!(h.layer.state(tsx), Some(TsxState::Confirmed));
    h.take_transmits();
    h.advance_to(secs(10));
    h.receive_request(ack.build(), client);
    h.receive_request(spec.build(), client);
    h.advance_to(secs(60));
    assert!(
        h.transmits.is_empty(),
        "Confirmed absorbs ACKs and INVITEs silently"
    );
    assert!(
        h.events
            .iter()
            .all(|(_, e)| matches!(e, TsxEvent::Terminated { .. })),
        "{:?}",
        h.events
    );
    // Timer I = T4 after the ACK.
    assert_eq!(terminated_at(&h.events, tsx), Some(secs(14)));
}

#[test]
fn invite_server_without_ack_times_out_after_timer_h() {
    let mut h = Harness::new(fast_config());
    h.receive_request(
        Spec::new("INVITE", "z9hG4bKsrv2").build(),
        udp(client_addr()),
    );
    let (tsx, request) = h.new_request_tsx();
    h.respond(tsx, response_to(&request, 603, "uas"))
        .expect("603");
    h.advance_to(secs(40));
    let expected: Vec<Duration> = [
        0, 500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
    ]
    .into_iter()
    .map(ms)
    .collect();
    assert_eq!(offsets(&h.transmits), expected);
    assert_eq!(timeouts(&h.events), vec![(secs(32), Timer::H)]);
    assert_eq!(terminated_at(&h.events, tsx), Some(secs(32)));
}

#[test]
fn invite_server_sends_100_trying_and_resends_the_last_provisional() {
    let mut h = Harness::new(LayerConfig::default());
    let spec = Spec::new("INVITE", "z9hG4bKsrv3");
    h.receive_request(spec.build(), udp(client_addr()));
    let (tsx, request) = h.new_request_tsx();
    let first = h.take_transmits();
    assert_eq!(first.len(), 1);
    let Message::Response(trying) = &first[0].1.message else {
        panic!("100 Trying")
    };
    assert_eq!(trying.status, 100);
    assert_eq!(
        key::to_tag(&trying.headers),
        None,
        "a 100 carries no To tag"
    );
    h.receive_request(spec.build(), udp(client_addr()));
    assert_eq!(
        h.take_transmits()
            .iter()
            .map(|(_, t)| status_of(&t.message))
            .collect::<Vec<_>>(),
        vec![Some(100)]
    );
    h.respond(tsx, response_to(&request, 180, "uas"))
        .expect("180");
    h.receive_request(spec.build(), udp(client_addr()));
    let statuses: Vec<_> = h
        .take_transmits()
        .iter()
        .map(|(_, t)| status_of(&t.message))
        .collect();
    assert_eq!(statuses, vec![Some(180), Some(180)]);
    assert!(h.events.is_empty(), "retransmissions never reach the TU");
}

#[test]
fn ack_in_accepted_state_goes_to_the_tu_and_tu_retransmits_its_2xx() {
    let mut h = Harness::new(fast_config());
    let spec = Spec::new("INVITE", "z9hG4bKsrv4");
    let client = udp(client_addr());
    h.receive_request(spec.build(), client);
    let (tsx, request) = h.new_request_tsx();
    let ok = response_to(&request, 200, "uas");
    h.respond(tsx, ok.clone()).expect("200");
    assert_eq!(h.layer.state(tsx), Some(TsxState::Accepted));
    h.advance_to(secs(5));
    assert_eq!(
        offsets(&h.transmits),
        vec![ms(0)],
        "the transaction does not retransmit a 2xx itself"
    );
    h.receive_request(spec.build(), client);
    assert_eq!(
        h.transmits.len(),
        1,
        "an INVITE retransmission in Accepted is absorbed"
    );
    h.respond(tsx, ok.clone())
        .expect("the TU's 2xx retransmission passes");
    assert_eq!(h.transmits.len(), 2);
    let err = h.respond(tsx, response_to(&request, 486, "uas"));
    assert!(matches!(
        err,
        Err(TsxError::ApiMisuse(Misuse::AfterFinalResponse {
            status: 486,
            ..
        }))
    ));
    // An ACK with the INVITE's branch (an RFC 2543-style element) is still for the 2xx.
    let mut ack = spec.method("ACK");
    ack.to_tag = Some("uas".into());
    h.receive_request(ack.build(), client);
    assert!(matches!(
        h.events.last(),
        Some((_, TsxEvent::AckFor2xx { .. }))
    ));
    // Timer L = 64*T1 after the 2xx.
    h.advance_to(secs(40));
    assert_eq!(terminated_at(&h.events, tsx), Some(secs(32)));
    let err = h.respond(tsx, ok);
    assert_eq!(
        err,
        Err(TsxError::ApiMisuse(Misuse::UnknownTransaction { tsx }))
    );
}

#[test]
fn request_retransmission_resends_last_response() {
    let mut h = Harness::new(fast_config());
    let spec = Spec::new("MESSAGE", "z9hG4bKsrv5");
    let client = udp(client_addr());
    h.receive_request(spec.build(), client);
    let (tsx, request) = h.new_request_tsx();
    assert_eq!(h.layer.state(tsx), Some(TsxState::Trying));
    h.receive_request(spec.build(), client);
    assert!(h.transmits.is_empty(), "Trying absorbs without answering");
    h.respond(tsx, response_to(&request, 182, "uas"))
        .expect("1xx");
    assert_eq!(h.layer.state(tsx), Some(TsxState::Proceeding));
    h.receive_request(spec.build(), client);
    h.respond(tsx, response_to(&request, 202, "uas"))
        .expect("202");
    h.advance_to(secs(20));
    h.receive_request(spec.build(), client);
    let sent: Vec<(Duration, Option<u16>)> = h
        .take_transmits()
        .iter()
        .map(|(at, t)| (*at, status_of(&t.message)))
        .collect();
    assert_eq!(
        sent,
        vec![
            (ms(0), Some(182)),
            (ms(0), Some(182)),
            (ms(0), Some(202)),
            (secs(20), Some(202))
        ]
    );
    assert!(h.events.is_empty(), "no retransmission reaches the TU");
    // Timer J = 64*T1; afterwards the same request is new.
    h.advance_to(secs(40));
    assert_eq!(terminated_at(&h.events, tsx), Some(secs(32)));
    h.take_events();
    h.receive_request(spec.build(), client);
    let (again, _) = h.new_request_tsx();
    assert_ne!(again, tsx);
}

#[test]
fn cancel_matches_the_invite_transaction() {
    let mut h = Harness::new(fast_config());
    let spec = Spec::new("INVITE", "z9hG4bKsrv6");
    let client = udp(client_addr());
    h.receive_request(spec.build(), client);
    let (invite_tsx, invite) = h.new_request_tsx();
    h.respond(invite_tsx, response_to(&invite, 180, "uas"))
        .expect("180");
    h.receive_request(spec.method("CANCEL").build(), client);
    let Some((
        _,
        TsxEvent::CancelRequest {
            tsx,
            invite: target,
            request,
            source,
        },
    )) = h.take_events().pop()
    else {
        panic!("expected CancelRequest")
    };
    assert_ne!(tsx, invite_tsx);
    assert_eq!(target, Some(invite_tsx));
    assert_eq!(source, client);
    h.respond(tsx, response_to(&request, 200, "uas"))
        .expect("200 to CANCEL");
    h.respond(invite_tsx, response_to(&invite, 487, "uas"))
        .expect("487 to INVITE");
    assert_eq!(h.layer.state(invite_tsx), Some(TsxState::Completed));
    // A retransmitted CANCEL hits the CANCEL transaction, not the INVITE one.
    h.take_transmits();
    h.receive_request(spec.method("CANCEL").build(), client);
    let sent = h.take_transmits();
    assert_eq!(sent.len(), 1);
    let Message::Response(resent) = &sent[0].1.message else {
        panic!()
    };
    assert_eq!(
        (resent.status, resent.headers.first("CSeq")),
        (200, Some("1 CANCEL"))
    );

    // A CANCEL for nothing still gets its own transaction, without a target.
    h.receive_request(Spec::new("CANCEL", "z9hG4bKnothing").build(), client);
    assert!(matches!(
        h.take_events().pop(),
        Some((_, TsxEvent::CancelRequest { invite: None, .. }))
    ));
}

#[test]
fn rfc2543_request_without_cookie_matches_by_fallback() {
    let mut h = Harness::new(LayerConfig::default());
    let client = udp(client_addr());
    let mut spec = Spec::new("INVITE", "1234");
    spec.cseq = 7;
    h.receive_request(spec.build(), client);
    let (tsx, request) = h.new_request_tsx();
    h.receive_request(spec.build(), client);
    assert!(h.events.is_empty(), "the retransmission matched");
    assert_eq!(h.take_transmits().len(), 2, "100 Trying, resent once");

    // Without any branch, and for a CANCEL, the same rules apply.
    let mut no_branch = spec.clone();
    no_branch.branch = None;
    no_branch.call_id = "no-branch".into();
    h.receive_request(no_branch.build(), client);
    let (other, _) = h.new_request_tsx();
    assert_ne!(other, tsx);
    h.receive_request(spec.method("CANCEL").build(), client);
    assert!(
        matches!(h.take_events().pop(), Some((_, TsxEvent::CancelRequest { invite: Some(t), .. })) if t == tsx)
    );

    // The ACK carries the response's To tag and matches the INVITE transaction.
    h.respond(tsx, response_to(&request, 486, "uas-tag"))
        .expect("486");
    let mut wrong_tag = spec.method("ACK");
    wrong_tag.to_tag = Some("other".into());
    h.receive_request(wrong_tag.build(), client);
    assert!(
        matches!(h.take_events().pop(), Some((_, TsxEvent::AckFor2xx { .. }))),
        "a different To tag does not match"
    );
    let mut ack = spec.method("ACK");
    ack.to_tag = Some("uas-tag".into());
    h.receive_request(ack.build(), client);
    assert_eq!(h.layer.state(tsx), Some(TsxState::Confirmed));
    assert!(h.events.is_empty());

    // A different CSeq is a different transaction.
    let mut next = spec.clone();
    next.cseq = 8;
    h.receive_request(next.build(), client);
    let (third, _) = h.new_request_tsx();
    assert!(third != tsx && third != other);
}

#[test]
fn branch_matching_distinguishes_sent_by_and_method() {
    let mut h = Harness::new(fast_config());
    let client = udp(client_addr());
    h.receive_request(Spec::new("OPTIONS", "z9hG4bKsame").build(), client);
    let (first, _) = h.new_request_tsx();
    // Same branch, different sent-by: another client's transaction.
    let text = Spec::new("OPTIONS", "z9hG4bKsame")
        .text()
        .replace("192.0.2.10:5060;", "192.0.2.11:5060;");
    let Ok(Message::Request(elsewhere)) = parse_datagram(text.as_bytes(), &Limits::default())
    else {
        panic!()
    };
    h.receive_request(elsewhere, client);
    let (second, _) = h.new_request_tsx();
    // Same branch, different method.
    h.receive_request(Spec::new("INFO", "z9hG4bKsame").build(), client);
    let (third, _) = h.new_request_tsx();
    assert!(first != second && second != third && first != third);
    // The branch compares case-insensitively.
    h.receive_request(Spec::new("OPTIONS", "z9hG4bKSAME").build(), client);
    assert!(h.events.is_empty());
}

#[test]
fn ack_without_transaction_reaches_the_tu() {
    let mut h = Harness::new(fast_config());
    let mut ack = Spec::new("ACK", "z9hG4bKe2e");
    ack.to_tag = Some("uas".into());
    h.receive_request(ack.build(), udp(client_addr()));
    assert!(matches!(
        h.take_events().as_slice(),
        [(_, TsxEvent::AckFor2xx { .. })]
    ));
    assert!(h.layer.is_empty(), "an ACK never creates a transaction");
}

// ---- transports, limits, misuse ------------------------------------------------------

#[test]
fn reliable_transport_does_not_retransmit() {
    let tcp_server = peer(TransportKind::Tcp, server_addr());
    let tcp_client = peer(TransportKind::Tcp, client_addr());
    let tcp = |method: &'static str, branch: &str| {
        let mut spec = Spec::new(method, branch);
        spec.transport = "TCP";
        spec
    };

    // Clients: one send, then Timer B / F; after a final, D and K are zero.
    let mut h = Harness::new(fast_config());
    let invite = h.send(tcp("INVITE", "z9hG4bKt1").build(), tcp_server);
    let options = h.send(tcp("OPTIONS", "z9hG4bKt2").build(), tcp_server);
    h.advance_to(secs(40));
    assert_eq!(offsets(&h.transmits), vec![ms(0), ms(0)]);
    assert_eq!(
        timeouts(&h.events),
        vec![(secs(32), Timer::B), (secs(32), Timer::F)]
    );
    assert!(
        terminated_at(&h.events, invite).is_some() && terminated_at(&h.events, options).is_some()
    );
    let request = tcp("INVITE", "z9hG4bKt3").build();
    h.send(request.clone(), tcp_server);
    h.receive_response(&response_to(&request, 486, "uas"), tcp_server);
    assert!(
        h.layer.is_empty(),
        "Timer D is zero on TCP (the ACK is sent first)"
    );
    assert_eq!(
        h.transmits.last().and_then(|(_, t)| method_of(&t.message)),
        Some("ACK")
    );
    let request = tcp("OPTIONS", "z9hG4bKt4").build();
    h.send(request.clone(), tcp_server);
    h.receive_response(&response_to(&request, 200, "uas"), tcp_server);
    assert!(h.layer.is_empty(), "Timer K is zero on TCP");

    // Servers: no Timer G; I and J are zero.
    let mut h = Harness::new(fast_config());
    h.receive_request(tcp("INVITE", "z9hG4bKt5").build(), tcp_client);
    let (tsx, request) = h.new_request_tsx();
    h.respond(tsx, response_to(&request, 486, "uas"))
        .expect("486");
    h.advance_to(secs(10));
    assert_eq!(offsets(&h.transmits), vec![ms(0)]);
    assert_eq!(
        h.transmits[0].1.destination, tcp_client,
        "back on the request's connection"
    );
    let mut ack = tcp("ACK", "z9hG4bKt5");
    ack.to_tag = Some("uas".into());
    h.receive_request(ack.build(), tcp_client);
    assert!(h.layer.is_empty(), "Timer I is zero on TCP");
    h.receive_request(tcp("BYE", "z9hG4bKt6").build(), tcp_client);
    let (tsx, request) = h.new_request_tsx();
    h.respond(tsx, response_to(&request, 200, "uas"))
        .expect("200");
    assert!(h.layer.is_empty(), "Timer J is zero on TCP");
    // Timer H still guards a missing ACK.
    h.receive_request(tcp("INVITE", "z9hG4bKt7").build(), tcp_client);
    let (tsx, request) = h.new_request_tsx();
    h.respond(tsx, response_to(&request, 480, "uas"))
        .expect("480");
    h.advance_to(secs(50));
    assert_eq!(timeouts(&h.events), vec![(secs(42), Timer::H)]);
}

#[test]
fn transaction_limit_refuses_new_ones() {
    let mut h = Harness::new(LayerConfig {
        max_transactions: 2,
        ..fast_config()
    });
    let client = udp(client_addr());
    h.receive_request(Spec::new("INVITE", "z9hG4bKl1").build(), client);
    let (first, _) = h.new_request_tsx();
    let outgoing = h.send(
        Spec::new("OPTIONS", "z9hG4bKl2").build(),
        udp(server_addr()),
    );
    h.take_transmits();
    assert_eq!(h.layer.len(), 2);

    h.receive_request(Spec::new("INVITE", "z9hG4bKl3").build(), client);
    let events = h.take_events();
    assert!(
        matches!(events.as_slice(), [(_, TsxEvent::Overloaded { method: Method::Invite, source })] if *source == client)
    );
    let sent = h.take_transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].1.tsx, sent[0].1.destination), (None, client));
    let Message::Response(refusal) = &sent[0].1.message else {
        panic!()
    };
    assert_eq!(refusal.status, 503);
    assert!(key::to_tag(&refusal.headers).is_some());
    assert_eq!(h.layer.len(), 2);

    let err = h.layer.send_request(
        h.now,
        Spec::new("OPTIONS", "z9hG4bKl4").build(),
        udp(server_addr()),
    );
    assert_eq!(err, Err(TsxError::Capacity { limit: 2 }));
    // Existing transactions still match, and room frees up when they terminate.
    h.receive_request(Spec::new("INVITE", "z9hG4bKl1").build(), client);
    assert!(h.take_events().is_empty());
    h.advance_to(secs(40));
    assert_eq!(terminated_at(&h.events, outgoing), Some(secs(32)));
    h.receive_request(Spec::new("INVITE", "z9hG4bKl5").build(), client);
    let (second, _) = h.new_request_tsx();
    assert_ne!(second, first);
}

#[test]
fn api_misuse_is_an_error_not_a_panic() {
    let mut h = Harness::new(fast_config());
    let client_tsx = h.send(
        Spec::new("OPTIONS", "z9hG4bKm1").build(),
        udp(server_addr()),
    );
    let some_request = Spec::new("OPTIONS", "z9hG4bKm1").build();
    assert_eq!(
        h.respond(client_tsx, response_to(&some_request, 200, "x")),
        Err(TsxError::ApiMisuse(Misuse::NotAServerTransaction {
            tsx: client_tsx
        }))
    );
    h.receive_request(
        Spec::new("OPTIONS", "z9hG4bKm2").build(),
        udp(client_addr()),
    );
    let (tsx, request) = h.new_request_tsx();
    let mut bad = response_to(&request, 200, "x");
    bad.status = 99;
    assert_eq!(
        h.respond(tsx, bad),
        Err(TsxError::ApiMisuse(Misuse::InvalidStatus { status: 99 }))
    );
    h.respond(tsx, response_to(&request, 200, "x"))
        .expect("200");
    assert_eq!(
        h.respond(tsx, response_to(&request, 180, "x")),
        Err(TsxError::ApiMisuse(Misuse::AfterFinalResponse {
            tsx,
            status: 180
        }))
    );
    let options = Spec::new("OPTIONS", "z9hG4bKm3").build();
    assert!(matches!(
        h.layer.send_ack(options, udp(server_addr())),
        Err(TsxError::ApiMisuse(Misuse::NotAnAck { .. }))
    ));
    let mut no_via = Spec::new("OPTIONS", "z9hG4bKm4").build();
    no_via.headers.remove("Via");
    assert_eq!(
        h.layer
            .send_request(h.now, no_via.clone(), udp(server_addr())),
        Err(TsxError::ApiMisuse(Misuse::NoVia))
    );
    // From the network, the same omission is the peer's fault.
    assert_eq!(
        h.layer.handle_request(h.now, no_via, udp(client_addr())),
        Err(TsxError::Malformed { reason: "no Via" })
    );
}

#[test]
fn transport_error_terminates_and_informs_the_tu() {
    let mut h = Harness::new(fast_config());
    let tsx = h.send(Spec::new("INVITE", "z9hG4bKx1").build(), udp(server_addr()));
    h.take_events();
    h.layer.handle_transport_error(h.now, tsx);
    h.drain();
    let events: Vec<TsxEvent> = h.take_events().into_iter().map(|(_, e)| e).collect();
    assert_eq!(
        events,
        vec![
            TsxEvent::TransportError { tsx },
            TsxEvent::Terminated { tsx }
        ]
    );
    assert!(h.layer.is_empty());
    // A late report for a gone transaction is ignored.
    h.layer.handle_transport_error(h.now, tsx);
    h.drain();
    assert!(h.events.is_empty());

    h.receive_request(Spec::new("INVITE", "z9hG4bKx2").build(), udp(client_addr()));
    let (server_tsx, request) = h.new_request_tsx();
    h.respond(server_tsx, response_to(&request, 500, "x"))
        .expect("500");
    h.layer.handle_transport_error(h.now, server_tsx);
    h.drain();
    let events: Vec<TsxEvent> = h.take_events().into_iter().map(|(_, e)| e).collect();
    assert_eq!(
        events,
        vec![
            TsxEvent::TransportError { tsx: server_tsx },
            TsxEvent::Terminated { tsx: server_tsx }
        ]
    );
}
