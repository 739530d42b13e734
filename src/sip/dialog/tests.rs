//! Tests of the dialog layer: a transaction layer and a dialog layer wired together by a
//! small TU, fed with SIP text from a scripted peer, on a virtual clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::sip::message::{Header, Limits, Message, parse_datagram, reason_phrase};
use crate::sip::peer::TransportKind;
use crate::sip::transaction::{LayerConfig, Timer, TransactionLayer, TsxEvent};

mod clock {
    use std::time::Instant;

    /// The one real instant the tests read; every other instant is this plus an offset.
    #[allow(clippy::disallowed_methods)]
    pub(super) fn base() -> Instant {
        Instant::now()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn peer() -> Peer {
    Peer {
        transport: TransportKind::Udp,
        addr: SocketAddr::from(([192, 0, 2, 20], 5060)),
        connection: None,
    }
}

fn parse(text: &str) -> Message {
    parse_datagram(text.as_bytes(), &Limits::default())
        .unwrap_or_else(|e| panic!("test message does not parse: {e}\n{text}"))
}

fn parse_request(text: &str) -> Request {
    match parse(text) {
        Message::Request(request) => request,
        Message::Response(_) => panic!("not a request:\n{text}"),
    }
}

/// What identifies a dialog in the peer's messages.
#[derive(Debug, Clone)]
struct Leg {
    call_id: String,
    /// Our tag: the To tag of the peer's requests.
    our_tag: String,
    /// The peer's tag: the From tag of its requests.
    peer_tag: String,
}

/// A request from the peer in the dialog of `leg`.
fn peer_request(leg: &Leg, method: &str, cseq: u32, branch: &str, extra: &[&str]) -> String {
    let mut text = format!("{method} sip:alice@192.0.2.10:5060 SIP/2.0\r\n");
    text += &format!("Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK{branch}\r\n");
    text += "Max-Forwards: 70\r\n";
    text += &format!("From: <sip:bob@192.0.2.20>;tag={}\r\n", leg.peer_tag);
    text += &format!("To: <sip:alice@192.0.2.10>;tag={}\r\n", leg.our_tag);
    text += &format!("Call-ID: {}\r\n", leg.call_id);
    text += &format!("CSeq: {cseq} {method}\r\n");
    for line in extra {
        text += line;
        text += "\r\n";
    }
    text + "Content-Length: 0\r\n\r\n"
}

/// The peer's response to `request` (as it went out on the wire), with `to_tag` added to
/// To unless it has one.
fn reply(request: &Request, status: u16, to_tag: &str, extra: &[&str]) -> String {
    let header = |name: &str| {
        request
            .headers
            .first(name)
            .unwrap_or_else(|| panic!("request without {name}"))
    };
    let mut text = format!("SIP/2.0 {status} {}\r\n", reason_phrase(status));
    for via in request.headers.values("Via") {
        text += &format!("Via: {via}\r\n");
    }
    text += &format!("From: {}\r\n", header("From"));
    let to = header("To");
    if to.contains(";tag=") {
        text += &format!("To: {to}\r\n");
    } else {
        text += &format!("To: {to};tag={to_tag}\r\n");
    }
    text += &format!("Call-ID: {}\r\n", header("Call-ID"));
    text += &format!("CSeq: {}\r\n", header("CSeq"));
    for line in extra {
        text += line;
        text += "\r\n";
    }
    text + "Content-Length: 0\r\n\r\n"
}

/// The INVITE the peer sends us (UAS tests).
fn peer_invite(extra: &[&str]) -> String {
    let mut text = String::from("INVITE sip:alice@192.0.2.10 SIP/2.0\r\n");
    text += "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKpeer-invite\r\n";
    text += "Max-Forwards: 70\r\n";
    text += "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n";
    text += "From: \"Bob\" <sip:bob@192.0.2.20>;tag=bob1\r\n";
    text += "To: <sip:alice@192.0.2.10>\r\n";
    text += "Call-ID: peer-call-1\r\n";
    text += "CSeq: 10 INVITE\r\n";
    text += "Contact: <sip:bob@192.0.2.20:5060>\r\n";
    for line in extra {
        text += line;
        text += "\r\n";
    }
    text + "Content-Length: 0\r\n\r\n"
}

/// The INVITE we send (UAC tests).
fn our_invite() -> Request {
    parse_request(
        "INVITE sip:bob@192.0.2.20 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKour-invite\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:alice@192.0.2.10>;tag=alice1\r\n\
         To: <sip:bob@192.0.2.20>\r\n\
         Call-ID: call-1@192.0.2.10\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@192.0.2.10:5060>\r\n\
         Supported: 100rel\r\n\
         Content-Length: 0\r\n\r\n",
    )
}

/// Our response to `request`, with our Contact.
fn our_response(request: &Request, status: u16) -> Response {
    let mut response = Response::for_request(request, status, reason_phrase(status));
    response
        .headers
        .push(Header::new("Contact", "<sip:alice@192.0.2.10:5060>"));
    response
}

fn status_of(message: &Message) -> Option<u16> {
    match message {
        Message::Response(response) => Some(response.status),
        Message::Request(_) => None,
    }
}

fn method_of(message: &Message) -> Option<&Method> {
    match message {
        Message::Request(request) => Some(&request.method),
        Message::Response(_) => None,
    }
}

fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.headers().first(name)
}

/// A transaction layer and a dialog layer with the glue a TU writes, recording what goes on
/// the wire and what the dialog layer reports.
struct Tu {
    base: Instant,
    now: Instant,
    tsxs: TransactionLayer,
    dialogs: DialogLayer,
    events: Vec<DialogEvent>,
    wire: Vec<(Duration, Message)>,
    /// Initial INVITEs the TU received.
    invites: Vec<(TsxId, Request)>,
    errors: Vec<DialogError>,
    acks_sent: u32,
}

impl Tu {
    fn new() -> Tu {
        Tu::with_config(DialogConfig::default())
    }

    fn with_config(config: DialogConfig) -> Tu {
        let base = clock::base();
        let layer = LayerConfig {
            timers: config.timers,
            ..LayerConfig::default()
        };
        Tu {
            base,
            now: base,
            tsxs: TransactionLayer::new(layer),
            dialogs: DialogLayer::new(config),
            events: Vec::new(),
            wire: Vec::new(),
            invites: Vec::new(),
            errors: Vec::new(),
            acks_sent: 0,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// The drain rule for both layers, routing between them until both are idle.
    fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(event) = self.tsxs.poll_event() {
                busy = true;
                self.on_transaction_event(event);
            }
            while let Some(transmit) = self.dialogs.poll_transmit() {
                busy = true;
                match transmit {
                    Transmit::Response { tsx, response } => {
                        // The transaction may be gone (Timer L); a real TU logs and moves on.
                        let _ = self.tsxs.respond(self.now, tsx, response);
                    }
                    Transmit::Ack {
                        request,
                        destination,
                        ..
                    } => self
                        .tsxs
                        .send_ack(request, destination)
                        .expect("the layer re-sends ACKs only"),
                }
            }
            while let Some(event) = self.dialogs.poll_event() {
                busy = true;
                self.events.push(event);
            }
            while let Some(transmit) = self.tsxs.poll_transmit() {
                busy = true;
                let bytes = transmit.message.to_bytes();
                let text = String::from_utf8(bytes).expect("SIP text");
                self.wire.push((self.elapsed(), parse(&text)));
            }
            if !busy {
                break;
            }
        }
    }

    fn on_transaction_event(&mut self, event: TsxEvent) {
        let now = self.now;
        let result = match event {
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
                if in_dialog {
                    self.dialogs.handle_request(now, tsx, request, source)
                } else {
                    self.invites.push((tsx, request));
                    Ok(())
                }
            }
            TsxEvent::AckFor2xx { request, .. } => self.dialogs.handle_ack(request),
            TsxEvent::Response { tsx, response } => {
                self.dialogs.handle_response(now, tsx, response)
            }
            TsxEvent::Timeout { tsx, timer } if timer != Timer::C => {
                self.dialogs.handle_transaction_failed(tsx);
                Ok(())
            }
            TsxEvent::TransportError { tsx } => {
                self.dialogs.handle_transaction_failed(tsx);
                Ok(())
            }
            TsxEvent::Terminated { tsx } => {
                self.dialogs.handle_transaction_terminated(tsx);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(error) = result {
            self.errors.push(error);
        }
    }

    /// A message from the peer.
    fn receive(&mut self, text: &str) {
        match parse(text) {
            Message::Request(request) => self
                .tsxs
                .handle_request(self.now, request, peer())
                .expect("a well-formed request"),
            Message::Response(response) => self
                .tsxs
                .handle_response(self.now, response, peer())
                .expect("a well-formed response"),
        }
        self.pump();
    }

    /// Sends a request (the initial INVITE or one the layer built): adds a Via, starts its
    /// client transaction and reports it to the dialog layer. Returns the transaction and the
    /// request as it went out.
    fn send(&mut self, mut request: Request) -> (TsxId, Request) {
        if request.headers.first("Via").is_none() {
            request
                .headers
                .push_front(Header::new("Via", "SIP/2.0/UDP 192.0.2.10:5060"));
        }
        let tsx = self
            .tsxs
            .send_request(self.now, request.clone(), peer())
            .expect("the transaction starts");
        self.dialogs
            .handle_request_sent(tsx, &request)
            .expect("the dialog layer tracks it");
        self.pump();
        let sent = self
            .wire
            .iter()
            .rev()
            .find_map(|(_, message)| match message {
                Message::Request(sent) if sent.method == request.method => Some(sent.clone()),
                _ => None,
            })
            .expect("the request went out");
        (tsx, sent)
    }

    /// Builds, sends and reports the ACK for the 2xx in `dialog`.
    fn ack(&mut self, dialog: DialogId) -> Request {
        let mut ack = self.dialogs.ack(dialog).expect("a 2xx to ACK").request;
        self.acks_sent += 1;
        ack.headers.push_front(Header::new(
            "Via",
            format!(
                "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKack{}",
                self.acks_sent
            ),
        ));
        self.tsxs
            .send_ack(ack.clone(), peer())
            .expect("an ACK is sent");
        self.dialogs
            .handle_ack_sent(ack.clone(), peer())
            .expect("the ACK belongs to the dialog");
        self.pump();
        ack
    }

    fn respond(&mut self, tsx: TsxId, response: Response) -> Option<DialogId> {
        let dialog = self
            .dialogs
            .respond(self.now, tsx, response)
            .expect("the layer takes the response");
        self.pump();
        dialog
    }

    /// Moves the clock on by `by`, firing every timer of both layers on the way.
    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        for _ in 0..10_000 {
            let next = [self.tsxs.poll_timeout(), self.dialogs.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(at) = next.filter(|at| *at <= target) else {
                self.now = target;
                return;
            };
            self.now = self.now.max(at);
            self.tsxs.handle_timeout(self.now);
            self.dialogs.handle_timeout(self.now);
            self.pump();
        }
        panic!("timers do not advance");
    }

    fn take_events(&mut self) -> Vec<DialogEvent> {
        std::mem::take(&mut self.events)
    }

    /// When each response with `status` went out.
    fn sent_status_offsets(&self, status: u16) -> Vec<Duration> {
        self.wire
            .iter()
            .filter(|(_, message)| status_of(message) == Some(status))
            .map(|(at, _)| *at)
            .collect()
    }

    fn sent_statuses(&self) -> Vec<u16> {
        self.wire
            .iter()
            .filter_map(|(_, message)| status_of(message))
            .collect()
    }

    fn sent_requests(&self, method: &Method) -> Vec<&Message> {
        self.wire
            .iter()
            .map(|(_, message)| message)
            .filter(|message| method_of(message) == Some(method))
            .collect()
    }

    fn last_response(&self, status: u16) -> &Message {
        self.wire
            .iter()
            .rev()
            .map(|(_, message)| message)
            .find(|message| status_of(message) == Some(status))
            .unwrap_or_else(|| panic!("no {status} was sent"))
    }

    fn dialog(&self, id: DialogId) -> &Dialog {
        self.dialogs
            .dialog(id)
            .unwrap_or_else(|| panic!("{id} is gone"))
    }
}

/// UAS: receives the peer's INVITE and registers it with the dialog layer.
fn uas_invite(tu: &mut Tu, extra: &[&str]) -> (TsxId, Request) {
    tu.receive(&peer_invite(extra));
    let (tsx, invite) = tu.invites.pop().expect("the INVITE reached the TU");
    tu.dialogs
        .handle_incoming_invite(tsx, &invite)
        .expect("the INVITE is usable");
    (tsx, invite)
}

/// UAS: an early dialog after a 180, or a confirmed one after 200 and the peer's ACK.
fn uas_dialog(tu: &mut Tu, confirm: bool) -> (DialogId, Leg, TsxId, Request) {
    let (tsx, invite) = uas_invite(tu, &["Supported: 100rel"]);
    let status = if confirm { 200 } else { 180 };
    let dialog = tu
        .respond(tsx, our_response(&invite, status))
        .expect("a dialog");
    let leg = Leg {
        call_id: "peer-call-1".into(),
        our_tag: tu.dialog(dialog).local_tag().to_string(),
        peer_tag: "bob1".into(),
    };
    if confirm {
        tu.receive(&peer_request(&leg, "ACK", 10, "peer-ack", &[]));
    }
    tu.take_events();
    (dialog, leg, tsx, invite)
}

/// UAC: a confirmed dialog after our INVITE, the peer's 200 with `record_route` and our ACK.
fn uac_dialog(tu: &mut Tu, record_route: &[&str]) -> (DialogId, Leg) {
    let (_, invite) = tu.send(our_invite());
    let mut extra = vec!["Contact: <sip:bob@192.0.2.20:5060>"];
    extra.extend_from_slice(record_route);
    tu.receive(&reply(&invite, 200, "bob-tag", &extra));
    let dialog = confirmed_in(&tu.take_events());
    tu.ack(dialog);
    let leg = Leg {
        call_id: "call-1@192.0.2.10".into(),
        our_tag: "alice1".into(),
        peer_tag: "bob-tag".into(),
    };
    (dialog, leg)
}

fn confirmed_in(events: &[DialogEvent]) -> DialogId {
    events
        .iter()
        .find_map(|event| match event {
            DialogEvent::Confirmed { dialog } => Some(*dialog),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Confirmed in {events:#?}"))
}

fn early_in(events: &[DialogEvent]) -> Vec<DialogId> {
    events
        .iter()
        .filter_map(|event| match event {
            DialogEvent::Early { dialog } => Some(*dialog),
            _ => None,
        })
        .collect()
}

fn requests_in(events: &[DialogEvent]) -> Vec<(DialogId, TsxId, Request)> {
    events
        .iter()
        .filter_map(|event| match event {
            DialogEvent::Request {
                dialog,
                tsx,
                request,
                ..
            } => Some((*dialog, *tsx, request.clone())),
            _ => None,
        })
        .collect()
}

fn route_uris(dialog: &Dialog) -> Vec<String> {
    dialog
        .route_set()
        .iter()
        .map(|route| route.uri.to_string())
        .collect()
}

fn route_values(request: &Request) -> Vec<String> {
    request.headers.values("Route").map(str::to_owned).collect()
}

#[test]
fn uac_early_then_confirmed_on_2xx_with_route_set_reversed() {
    let mut tu = Tu::new();
    let (tsx, invite) = tu.send(our_invite());
    // The proxy next to the callee is on top of Record-Route; p1 is next to us.
    let record_route = "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>";
    let ringing = reply(
        &invite,
        180,
        "bob-tag",
        &[record_route, "Contact: <sip:bob@192.0.2.20:5060>"],
    );
    tu.receive(&ringing);

    let events = tu.take_events();
    let dialog = early_in(&events)[0];
    assert!(matches!(
        &events[1],
        DialogEvent::Response { dialog: Some(d), tsx: t, response } if *d == dialog && *t == tsx && response.status == 180
    ));
    let d = tu.dialog(dialog);
    assert_eq!(d.state(), DialogState::Early);
    assert_eq!(d.role(), Role::Uac);
    assert_eq!(d.identity().call_id, "call-1@192.0.2.10");
    assert_eq!(d.local_tag().as_str(), "alice1");
    assert_eq!(d.remote_tag().as_str(), "bob-tag");
    assert_eq!(
        route_uris(d),
        ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    );

    tu.receive(&reply(
        &invite,
        200,
        "bob-tag",
        &[record_route, "Contact: <sip:bob@192.0.2.99:5070>"],
    ));
    let events = tu.take_events();
    assert_eq!(confirmed_in(&events), dialog);
    assert!(matches!(
        events.last(),
        Some(DialogEvent::Response { dialog: Some(d), response, .. }) if *d == dialog && response.status == 200
    ));
    let d = tu.dialog(dialog);
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(d.remote_target().to_string(), "sip:bob@192.0.2.99:5070");
    assert_eq!(
        route_uris(d),
        ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    );

    let ack = tu.dialogs.ack(dialog).expect("the 2xx needs an ACK");
    assert_eq!(ack.request.uri.to_string(), "sip:bob@192.0.2.99:5070");
    assert_eq!(ack.request.headers.first("CSeq"), Some("1 ACK"));
    assert_eq!(
        route_values(&ack.request),
        ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    );
    assert_eq!(ack.next_hop.to_string(), "sip:p1.example.com;lr");
    assert!(tu.errors.is_empty(), "{:?}", tu.errors);
}

#[test]
fn uas_creates_dialog_on_provisional_with_tag() {
    let mut tu = Tu::new();
    let (tsx, invite) = uas_invite(&mut tu, &[]);
    assert_eq!(tu.dialogs.len(), 0, "an INVITE alone creates no dialog");

    let dialog = tu
        .respond(tsx, our_response(&invite, 180))
        .expect("a 180 creates an early dialog");

    assert_eq!(tu.take_events(), [DialogEvent::Early { dialog }]);
    let ringing = tu.last_response(180);
    let to = ringing.headers().to().expect("To parses").expect("a To");
    let tag = to.tag().expect("the layer tags the 180");
    assert_eq!(
        ringing.headers().values("Record-Route").collect::<Vec<_>>(),
        ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"],
        "Record-Route is copied into the response"
    );
    let d = tu.dialog(dialog);
    assert_eq!(d.state(), DialogState::Early);
    assert_eq!(d.role(), Role::Uas);
    assert_eq!(d.local_tag().as_str(), tag);
    assert_eq!(d.remote_tag().as_str(), "bob1");
    assert_eq!(d.remote_seq(), Some(10));
    assert_eq!(d.local_seq(), None);
    assert_eq!(d.remote_target().to_string(), "sip:bob@192.0.2.20:5060");
    assert_eq!(
        route_uris(d),
        ["sip:p2.example.com;lr", "sip:p1.example.com;lr"],
        "the UAS keeps Record-Route order"
    );
    // The 200 confirms the same dialog.
    assert_eq!(tu.respond(tsx, our_response(&invite, 200)), Some(dialog));
    assert_eq!(tu.take_events(), [DialogEvent::Confirmed { dialog }]);
    assert_eq!(tu.dialog(dialog).state(), DialogState::Confirmed);
}

#[test]
fn forked_invite_keeps_several_early_dialogs_and_reports_the_others_when_one_confirms() {
    let mut tu = Tu::new();
    let (_, invite) = tu.send(our_invite());
    for (status, tag, host) in [(180, "f1", "10"), (183, "f2", "20"), (180, "f3", "30")] {
        let contact = format!("Contact: <sip:bob@192.0.2.{host}>");
        tu.receive(&reply(&invite, status, tag, &[&contact]));
    }
    let forks = early_in(&tu.take_events());
    let [f1, f2, f3] = forks[..] else {
        panic!("three early dialogs expected: {forks:?}");
    };
    assert_eq!(tu.dialogs.len(), 3);
    assert_eq!(
        tu.dialog(f2).remote_target().to_string(),
        "sip:bob@192.0.2.20"
    );

    tu.receive(&reply(
        &invite,
        200,
        "f2",
        &["Contact: <sip:bob@192.0.2.20>"],
    ));
    let events = tu.take_events();
    assert_eq!(events[0], DialogEvent::Confirmed { dialog: f2 });
    assert_eq!(
        events[1..3],
        [
            DialogEvent::ForkConfirmedElsewhere {
                dialog: f1,
                confirmed: f2
            },
            DialogEvent::ForkConfirmedElsewhere {
                dialog: f3,
                confirmed: f2
            },
        ]
    );
    tu.ack(f2);

    // A 2xx from a fork after the choice: confirmed so that the TU can ACK and BYE it.
    tu.receive(&reply(
        &invite,
        200,
        "f1",
        &["Contact: <sip:bob@192.0.2.10>"],
    ));
    assert_eq!(
        tu.take_events(),
        [DialogEvent::LateForkConfirmed {
            dialog: f1,
            confirmed: f2
        }]
    );
    tu.ack(f1);
    let bye = tu.dialogs.request(f1, Method::Bye).expect("a BYE");
    let (_, bye) = tu.send(bye.request);
    tu.receive(&reply(&bye, 200, "f1", &[]));
    assert!(tu.take_events().contains(&DialogEvent::Terminated {
        dialog: f1,
        reason: TerminationReason::ByeSent
    }));

    // The fork that stayed early ends with the INVITE transaction (64*T1).
    tu.advance(secs(32));
    assert!(tu.take_events().contains(&DialogEvent::Terminated {
        dialog: f3,
        reason: TerminationReason::NotChosen
    }));
    assert_eq!(tu.dialogs.len(), 1);
    assert_eq!(tu.dialog(f2).state(), DialogState::Confirmed);
    assert!(tu.errors.is_empty(), "{:?}", tu.errors);
}

#[test]
fn in_dialog_request_with_unknown_tags_gets_481() {
    let mut tu = Tu::new();
    let (_, leg, _, _) = uas_dialog(&mut tu, true);
    let stranger = Leg {
        peer_tag: "someone-else".into(),
        ..leg.clone()
    };
    tu.receive(&peer_request(&stranger, "BYE", 11, "bye-1", &[]));
    let unknown_call = Leg {
        call_id: "no-such-call".into(),
        ..leg
    };
    tu.receive(&peer_request(&unknown_call, "INFO", 11, "info-1", &[]));

    assert_eq!(tu.sent_status_offsets(481).len(), 2);
    let answer = tu.last_response(481);
    assert_eq!(header(answer, "CSeq"), Some("11 INFO"));
    assert!(tu.take_events().is_empty(), "the TU never sees them");
    assert_eq!(tu.dialogs.len(), 1);
}

#[test]
fn lower_remote_cseq_gets_500() {
    let mut tu = Tu::new();
    let (dialog, leg, _, _) = uas_dialog(&mut tu, true);
    tu.receive(&peer_request(&leg, "INFO", 12, "info-12", &[]));
    let (_, tsx, info) = requests_in(&tu.take_events())[0].clone();
    tu.respond(tsx, our_response(&info, 200));
    assert_eq!(tu.dialog(dialog).remote_seq(), Some(12));

    tu.receive(&peer_request(&leg, "INFO", 11, "info-11", &[]));
    tu.receive(&peer_request(&leg, "INFO", 12, "info-12-again", &[]));
    assert_eq!(tu.sent_status_offsets(500).len(), 2);
    assert!(tu.take_events().is_empty());
    assert_eq!(tu.dialog(dialog).remote_seq(), Some(12));

    tu.receive(&peer_request(&leg, "INFO", 13, "info-13", &[]));
    assert_eq!(requests_in(&tu.take_events()).len(), 1);
}

#[test]
fn reinvite_glare_gets_491() {
    let mut tu = Tu::new();
    let (dialog, leg) = uac_dialog(&mut tu, &[]);
    let reinvite = tu
        .dialogs
        .request(dialog, Method::Invite)
        .expect("a re-INVITE");
    assert_eq!(reinvite.request.headers.first("CSeq"), Some("2 INVITE"));
    tu.send(reinvite.request);
    assert!(matches!(
        tu.dialogs.request(dialog, Method::Invite),
        Err(DialogError::ApiMisuse(Misuse::InviteInProgress { .. }))
    ));

    tu.receive(&peer_request(
        &leg,
        "INVITE",
        1,
        "glare",
        &["Contact: <sip:bob@192.0.2.20:5060>"],
    ));
    assert_eq!(
        tu.sent_statuses(),
        [100, 491],
        "100 Trying from the transaction layer"
    );
    assert!(tu.take_events().is_empty());
}

#[test]
fn update_glare_gets_491() {
    let mut tu = Tu::new();
    let (dialog, leg) = uac_dialog(&mut tu, &[]);
    let update = tu
        .dialogs
        .request(dialog, Method::Update)
        .expect("an UPDATE");
    tu.send(update.request);
    tu.receive(&peer_request(&leg, "UPDATE", 1, "update-glare", &[]));
    assert_eq!(tu.sent_statuses(), [491]);
    assert!(tu.take_events().is_empty());
}

#[test]
fn second_reinvite_before_the_first_is_answered_gets_500_with_retry_after() {
    let mut tu = Tu::new();
    let (_, leg, _, _) = uas_dialog(&mut tu, true);
    let contact = "Contact: <sip:bob@192.0.2.20:5060>";
    tu.receive(&peer_request(&leg, "INVITE", 11, "re-1", &[contact]));
    assert_eq!(requests_in(&tu.take_events()).len(), 1);
    tu.receive(&peer_request(&leg, "INVITE", 12, "re-2", &[contact]));
    let answer = tu.last_response(500);
    let retry: u32 = header(answer, "Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry <= 10);
    assert!(tu.take_events().is_empty());
}

#[test]
fn target_refresh_updates_remote_target() {
    // UAS: the peer's re-INVITE carries its new Contact.
    let mut tu = Tu::new();
    let (dialog, leg, _, _) = uas_dialog(&mut tu, true);
    tu.receive(&peer_request(
        &leg,
        "INVITE",
        11,
        "refresh",
        &["Contact: <sip:bob@198.51.100.7:5080>"],
    ));
    assert_eq!(requests_in(&tu.take_events()).len(), 1);
    assert_eq!(
        tu.dialog(dialog).remote_target().to_string(),
        "sip:bob@198.51.100.7:5080"
    );

    // UAC: the 2xx to our UPDATE carries it.
    let mut tu = Tu::new();
    let (dialog, _) = uac_dialog(&mut tu, &[]);
    let update = tu
        .dialogs
        .request(dialog, Method::Update)
        .expect("an UPDATE");
    assert_eq!(
        update.request.headers.first("Contact"),
        Some("<sip:alice@192.0.2.10:5060>"),
        "a target refresh request carries our Contact"
    );
    let (_, update) = tu.send(update.request);
    tu.receive(&reply(
        &update,
        200,
        "",
        &["Contact: <sip:bob@203.0.113.9:5062;transport=udp>"],
    ));
    assert_eq!(
        tu.dialog(dialog).remote_target().to_string(),
        "sip:bob@203.0.113.9:5062;transport=udp"
    );
    let info = tu.dialogs.request(dialog, Method::Info).expect("an INFO");
    assert_eq!(
        info.request.uri.to_string(),
        "sip:bob@203.0.113.9:5062;transport=udp"
    );
    assert_eq!(info.request.headers.first("Contact"), None);
}

#[test]
fn bye_uses_the_route_set_and_increments_cseq() {
    let mut tu = Tu::new();
    let (dialog, _) = uac_dialog(
        &mut tu,
        &["Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr;transport=tcp>"],
    );
    let info = tu.dialogs.request(dialog, Method::Info).expect("an INFO");
    assert_eq!(info.request.headers.first("CSeq"), Some("2 INFO"));
    let bye = tu.dialogs.request(dialog, Method::Bye).expect("a BYE");
    let request = &bye.request;
    assert_eq!(request.headers.first("CSeq"), Some("3 BYE"));
    assert_eq!(tu.dialog(dialog).local_seq(), Some(3));
    assert_eq!(request.uri.to_string(), "sip:bob@192.0.2.20:5060");
    assert_eq!(
        route_values(request),
        [
            "<sip:p1.example.com;lr;transport=tcp>",
            "<sip:p2.example.com;lr>"
        ]
    );
    assert_eq!(
        bye.next_hop.to_string(),
        "sip:p1.example.com;lr;transport=tcp"
    );
    assert_eq!(request.headers.call_id(), Some("call-1@192.0.2.10"));
    let from = request.headers.from().expect("From").expect("a From");
    let to = request.headers.to().expect("To").expect("a To");
    assert_eq!(from.tag(), Some("alice1"));
    assert_eq!(from.display_name.as_deref(), Some("Alice"));
    assert_eq!(to.tag(), Some("bob-tag"));
    assert_eq!(request.headers.first("Max-Forwards"), Some("70"));

    let (_, bye) = tu.send(bye.request);
    tu.receive(&reply(&bye, 200, "", &[]));
    assert!(tu.take_events().contains(&DialogEvent::Terminated {
        dialog,
        reason: TerminationReason::ByeSent
    }));
    assert!(tu.dialogs.is_empty());
}

#[test]
fn uas_retransmits_2xx_until_ack() {
    let mut tu = Tu::new();
    let (tsx, invite) = uas_invite(&mut tu, &[]);
    let dialog = tu
        .respond(tsx, our_response(&invite, 200))
        .expect("a dialog");
    tu.advance(secs(4));
    assert_eq!(
        tu.sent_status_offsets(200),
        [ms(0), ms(500), ms(1_500), ms(3_500)],
        "T1, then doubling"
    );
    let leg = Leg {
        call_id: "peer-call-1".into(),
        our_tag: tu.dialog(dialog).local_tag().to_string(),
        peer_tag: "bob1".into(),
    };
    tu.take_events();
    tu.receive(&peer_request(&leg, "ACK", 10, "ack-1", &[]));
    assert!(matches!(
        &tu.take_events()[..],
        [DialogEvent::AckReceived { dialog: d, request }] if *d == dialog && request.method == Method::Ack
    ));
    tu.advance(secs(40));
    assert_eq!(tu.sent_status_offsets(200).len(), 4, "no 2xx after the ACK");
    // A retransmitted ACK is absorbed.
    tu.receive(&peer_request(&leg, "ACK", 10, "ack-1", &[]));
    assert!(tu.take_events().is_empty());
    assert_eq!(tu.dialog(dialog).state(), DialogState::Confirmed);
}

#[test]
fn uas_reports_missing_ack_after_64_t1() {
    let mut tu = Tu::new();
    let (tsx, invite) = uas_invite(&mut tu, &[]);
    let dialog = tu
        .respond(tsx, our_response(&invite, 200))
        .expect("a dialog");
    tu.take_events();
    tu.advance(ms(31_999));
    assert!(tu.take_events().is_empty());
    tu.advance(ms(1));
    assert_eq!(tu.take_events(), [DialogEvent::AckTimeout { dialog }]);
    let offsets = tu.sent_status_offsets(200);
    assert_eq!(
        offsets,
        [
            0, 500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
        .map(ms),
        "intervals double from T1 and stay at T2"
    );
    assert_eq!(tu.dialog(dialog).state(), DialogState::Confirmed);
    assert!(tu.dialogs.poll_timeout().is_none());
    // The TU ends the session with a BYE.
    let bye = tu.dialogs.request(dialog, Method::Bye).expect("a BYE");
    assert_eq!(bye.request.headers.first("CSeq"), Some("1 BYE"));
}

#[test]
fn uac_reacks_retransmitted_2xx() {
    let mut tu = Tu::new();
    let (_, invite) = tu.send(our_invite());
    let ok = reply(
        &invite,
        200,
        "bob-tag",
        &["Contact: <sip:bob@192.0.2.20:5060>"],
    );
    tu.receive(&ok);
    let dialog = confirmed_in(&tu.take_events());
    // Before the TU's ACK a retransmission has nothing to re-send.
    tu.receive(&ok);
    assert!(tu.sent_requests(&Method::Ack).is_empty());
    tu.ack(dialog);
    tu.receive(&ok);
    tu.receive(&ok);
    let acks = tu.sent_requests(&Method::Ack);
    assert_eq!(acks.len(), 3);
    assert!(
        acks.iter().all(|ack| *ack == acks[0]),
        "the same ACK each time"
    );
    assert_eq!(header(acks[0], "CSeq"), Some("1 ACK"));
    assert!(tu.take_events().is_empty(), "retransmissions are absorbed");
    assert!(tu.errors.is_empty(), "{:?}", tu.errors);
}

#[test]
fn reliable_provisional_is_retransmitted_until_prack() {
    let mut tu = Tu::new();
    let (tsx, invite) = uas_invite(&mut tu, &["Supported: 100rel"]);
    let mut progress = our_response(&invite, 183);
    progress.headers.push(Header::new("Require", "100rel"));
    let dialog = tu.respond(tsx, progress).expect("an early dialog");
    let rseq: u32 = header(tu.last_response(183), "RSeq")
        .expect("the layer adds RSeq")
        .parse()
        .expect("a number");
    assert!((1..=0x7fff_ffff).contains(&rseq));

    // A second reliable provisional response waits for the PRACK of the first.
    let mut ringing = our_response(&invite, 180);
    ringing.headers.push(Header::new("Require", "100rel"));
    tu.respond(tsx, ringing);
    assert!(tu.sent_status_offsets(180).is_empty());

    tu.advance(ms(1_600));
    assert_eq!(tu.sent_status_offsets(183), [ms(0), ms(500), ms(1_500)]);
    let leg = Leg {
        call_id: "peer-call-1".into(),
        our_tag: tu.dialog(dialog).local_tag().to_string(),
        peer_tag: "bob1".into(),
    };
    tu.take_events();
    let rack = format!("RAck: {rseq} 10 INVITE");
    tu.receive(&peer_request(&leg, "PRACK", 11, "prack-1", &[&rack]));
    let requests = requests_in(&tu.take_events());
    let (_, prack_tsx, prack) = requests[0].clone();
    assert_eq!(prack.method, Method::Prack);
    tu.respond(prack_tsx, our_response(&prack, 200));

    let next = tu.last_response(180);
    assert_eq!(header(next, "RSeq"), Some((rseq + 1).to_string().as_str()));
    tu.advance(secs(10));
    assert_eq!(
        tu.sent_status_offsets(183).len(),
        3,
        "no 183 after its PRACK"
    );

    // A PRACK that matches nothing gets 481.
    tu.receive(&peer_request(&leg, "PRACK", 12, "prack-2", &[&rack]));
    assert_eq!(tu.sent_status_offsets(481).len(), 1);
}

#[test]
fn prack_timeout_is_reported() {
    let mut tu = Tu::new();
    let (tsx, invite) = uas_invite(&mut tu, &["Supported: 100rel"]);
    let mut progress = our_response(&invite, 183);
    progress.headers.push(Header::new("Require", "100rel"));
    let dialog = tu.respond(tsx, progress).expect("an early dialog");
    tu.take_events();
    tu.advance(secs(32));
    assert_eq!(
        tu.take_events(),
        [DialogEvent::PrackTimeout { dialog, tsx }]
    );
    assert_eq!(
        tu.sent_status_offsets(183),
        [0, 500, 1_500, 3_500, 7_500, 15_500, 31_500].map(ms),
        "doubling from T1 without the T2 cap"
    );
    // The TU rejects the INVITE; the early dialog ends with it.
    tu.respond(tsx, Response::for_request(&invite, 504, reason_phrase(504)));
    assert_eq!(
        tu.take_events(),
        [DialogEvent::Terminated {
            dialog,
            reason: TerminationReason::Rejected { status: 504 }
        }]
    );
}

#[test]
fn uac_sends_prack_for_reliable_provisional_and_ignores_repeats() {
    let mut tu = Tu::new();
    let (tsx, invite) = tu.send(our_invite());
    let reliable = |rseq: u32| {
        let rseq = format!("RSeq: {rseq}");
        reply(
            &invite,
            183,
            "bob-tag",
            &[
                "Contact: <sip:bob@192.0.2.20:5060>",
                "Require: 100rel",
                &rseq,
            ],
        )
    };
    tu.receive(&reliable(7));
    let events = tu.take_events();
    let dialog = early_in(&events)[0];
    assert!(matches!(
        &events[1],
        DialogEvent::ReliableProvisional { dialog: d, tsx: t, response } if *d == dialog && *t == tsx && response.status == 183
    ));
    let prack = tu.dialogs.prack(dialog).expect("a PRACK is due");
    assert_eq!(prack.request.headers.first("RAck"), Some("7 1 INVITE"));
    assert_eq!(prack.request.headers.first("CSeq"), Some("2 PRACK"));
    assert_eq!(
        prack
            .request
            .headers
            .to()
            .ok()
            .flatten()
            .and_then(|to| to.tag().map(str::to_owned)),
        Some("bob-tag".to_owned())
    );
    let (_, prack) = tu.send(prack.request);
    tu.receive(&reply(&prack, 200, "", &[]));
    assert!(matches!(
        &tu.take_events()[..],
        [DialogEvent::Response { dialog: Some(d), response, .. }] if *d == dialog && response.status == 200
    ));

    tu.receive(&reliable(7));
    tu.receive(&reliable(9));
    assert!(
        tu.take_events().is_empty(),
        "a repeat and an out-of-order one are dropped"
    );
    assert!(matches!(
        tu.dialogs.prack(dialog),
        Err(DialogError::ApiMisuse(Misuse::NothingToPrack { .. }))
    ));

    tu.receive(&reliable(8));
    assert!(matches!(
        &tu.take_events()[..],
        [DialogEvent::ReliableProvisional { .. }]
    ));
    let prack = tu.dialogs.prack(dialog).expect("a PRACK is due");
    assert_eq!(prack.request.headers.first("RAck"), Some("8 1 INVITE"));
    assert_eq!(prack.request.headers.first("CSeq"), Some("3 PRACK"));
}

#[test]
fn update_in_early_dialog_is_accepted() {
    let mut tu = Tu::new();
    let (dialog, leg, _, _) = uas_dialog(&mut tu, false);
    tu.receive(&peer_request(
        &leg,
        "UPDATE",
        11,
        "early-update",
        &["Contact: <sip:bob@192.0.2.21:5060>"],
    ));
    let requests = requests_in(&tu.take_events());
    let [(d, tsx, update)] = &requests[..] else {
        panic!("one UPDATE for the TU: {requests:?}");
    };
    assert_eq!(*d, dialog);
    assert_eq!(tu.dialog(dialog).state(), DialogState::Early);
    assert_eq!(
        tu.dialog(dialog).remote_target().to_string(),
        "sip:bob@192.0.2.21:5060"
    );
    tu.respond(*tsx, Response::for_request(update, 200, "OK"));
    let ok = tu.last_response(200);
    assert_eq!(header(ok, "CSeq"), Some("11 UPDATE"));
    assert_eq!(
        header(ok, "Contact"),
        Some("<sip:alice@192.0.2.10:5060>"),
        "the layer adds our Contact to the 2xx of a target refresh"
    );
    // An INVITE in the early dialog is refused while the initial INVITE is unanswered.
    tu.receive(&peer_request(
        &leg,
        "INVITE",
        12,
        "early-invite",
        &["Contact: <sip:bob@192.0.2.21:5060>"],
    ));
    assert_eq!(tu.sent_status_offsets(500).len(), 1);
}

#[test]
fn strict_router_in_route_set_is_handled() {
    let mut tu = Tu::new();
    let (dialog, _) = uac_dialog(
        &mut tu,
        &["Record-Route: <sip:p2.example.com;lr>, <sip:strict.example.com;maddr=192.0.2.50>"],
    );
    let bye = tu.dialogs.request(dialog, Method::Bye).expect("a BYE");
    assert_eq!(
        bye.request.uri.to_string(),
        "sip:strict.example.com;maddr=192.0.2.50",
        "a strict router is put in the Request-URI"
    );
    assert_eq!(
        route_values(&bye.request),
        ["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.20:5060>"],
        "the rest of the route set, then the remote target"
    );
    assert_eq!(
        bye.next_hop.to_string(),
        "sip:strict.example.com;maddr=192.0.2.50"
    );
    // The request prints and parses back.
    let text = String::from_utf8(Message::Request(bye.request.clone()).to_bytes()).expect("text");
    let with_via = text.replacen(
        "\r\n",
        "\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx\r\n",
        1,
    );
    assert_eq!(parse_request(&with_via).uri, bye.request.uri);
}

#[test]
fn rejected_invite_ends_its_early_dialogs() {
    let mut tu = Tu::new();
    let (_, invite) = tu.send(our_invite());
    tu.receive(&reply(
        &invite,
        180,
        "b1",
        &["Contact: <sip:bob@192.0.2.20>"],
    ));
    let dialog = early_in(&tu.take_events())[0];
    tu.receive(&reply(&invite, 486, "b1", &[]));
    let events = tu.take_events();
    assert!(matches!(
        &events[0],
        DialogEvent::Response { dialog: None, response, .. } if response.status == 486
    ));
    assert_eq!(
        events[1],
        DialogEvent::Terminated {
            dialog,
            reason: TerminationReason::Rejected { status: 486 }
        }
    );
    assert!(tu.dialogs.is_empty());
}

#[test]
fn bye_from_the_peer_ends_the_dialog_when_answered() {
    let mut tu = Tu::new();
    let (dialog, leg, _, _) = uas_dialog(&mut tu, true);
    tu.receive(&peer_request(&leg, "BYE", 11, "bye", &[]));
    let requests = requests_in(&tu.take_events());
    let (_, tsx, bye) = requests[0].clone();
    tu.respond(tsx, Response::for_request(&bye, 200, "OK"));
    assert_eq!(
        tu.take_events(),
        [DialogEvent::Terminated {
            dialog,
            reason: TerminationReason::ByeReceived
        }]
    );
    tu.receive(&peer_request(&leg, "BYE", 12, "bye-late", &[]));
    assert_eq!(tu.sent_status_offsets(481).len(), 1);
}

#[test]
fn no_response_to_an_in_dialog_request_ends_the_dialog() {
    let mut tu = Tu::new();
    let (dialog, _) = uac_dialog(&mut tu, &[]);
    let info = tu.dialogs.request(dialog, Method::Info).expect("an INFO");
    tu.send(info.request);
    tu.advance(secs(33));
    assert!(tu.take_events().contains(&DialogEvent::Terminated {
        dialog,
        reason: TerminationReason::NoResponse
    }));
}

#[test]
fn dialog_limit_is_enforced() {
    let mut tu = Tu::with_config(DialogConfig {
        max_dialogs: 1,
        ..DialogConfig::default()
    });
    let (dialog, _) = uac_dialog(&mut tu, &[]);
    assert_eq!(tu.dialogs.len(), 1);
    let (tsx, invite) = uas_invite(&mut tu, &[]);
    assert_eq!(
        tu.dialogs.respond(tu.now, tsx, our_response(&invite, 180)),
        Err(DialogError::Capacity { limit: 1 })
    );
    assert_eq!(tu.dialogs.len(), 1);
    // The INVITE can still be refused through the layer.
    assert_eq!(
        tu.respond(
            tsx,
            Response::for_request(&invite, 503, "Service Unavailable")
        ),
        None
    );
    tu.dialogs.terminate(dialog).expect("a live dialog");
    assert!(tu.dialogs.is_empty());
}

#[test]
fn api_misuse_is_an_error_not_a_panic() {
    let mut tu = Tu::new();
    let (dialog, _, tsx, invite) = uas_dialog(&mut tu, false);
    let misuse = |result: Result<Outgoing, DialogError>| match result {
        Err(DialogError::ApiMisuse(misuse)) => misuse,
        other => panic!("expected misuse, got {other:?}"),
    };
    assert!(matches!(
        misuse(tu.dialogs.request(dialog, Method::Bye)),
        Misuse::NotConfirmed { .. }
    ));
    assert!(matches!(
        misuse(tu.dialogs.request(dialog, Method::Invite)),
        Misuse::NotConfirmed { .. }
    ));
    assert!(matches!(
        misuse(tu.dialogs.request(dialog, Method::Ack)),
        Misuse::DedicatedBuilder { .. }
    ));
    assert!(matches!(
        misuse(tu.dialogs.ack(dialog)),
        Misuse::NothingToAck { .. }
    ));
    assert!(matches!(
        misuse(tu.dialogs.prack(dialog)),
        Misuse::NothingToPrack { .. }
    ));

    let ok = our_response(&invite, 200);
    assert!(tu.dialogs.respond(tu.now, tsx, ok.clone()).is_ok());
    assert!(matches!(
        tu.dialogs.respond(tu.now, tsx, ok),
        Err(DialogError::ApiMisuse(Misuse::UnknownTransaction { .. }))
    ));
    tu.pump();
    tu.dialogs.terminate(dialog).expect("a live dialog");
    assert!(matches!(
        misuse(tu.dialogs.request(dialog, Method::Bye)),
        Misuse::UnknownDialog { .. }
    ));

    // A reliable provisional response to a peer without 100rel is refused.
    let mut tu = Tu::new();
    let (tsx, invite) = uas_invite(&mut tu, &[]);
    let mut progress = our_response(&invite, 183);
    progress.headers.push(Header::new("Require", "100rel"));
    assert_eq!(
        tu.dialogs.respond(tu.now, tsx, progress),
        Err(DialogError::ApiMisuse(Misuse::PeerLacks100rel))
    );
    // Without a Contact a response can not create a dialog.
    let bare = Response::for_request(&invite, 180, "Ringing");
    assert_eq!(
        tu.dialogs.respond(tu.now, tsx, bare),
        Err(DialogError::ApiMisuse(Misuse::MissingContact))
    );
    assert!(tu.dialogs.is_empty());
}
