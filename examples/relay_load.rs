//! Load generator for the concurrent-calls benchmark (`benches/sipp/relay.sh`): N calls from
//! extension 1000 to extension 1001 through a running rswitch, each with PCMU RTP both ways
//! (50 packets per second per direction, relayed pass-through by rswitch), held for a while;
//! then it reports the packets lost at the receivers, and rswitch's CPU and memory per call
//! from /proc.
//!
//! It plays both phones itself: it registers 1001 (digest), places the calls as 1000 (digest
//! against the 407), answers them as 1001, and gives every call leg its own RTP socket.
//! Loss is counted per direction: packets the sending side sent minus packets the other
//! side received.
//!
//! usage: relay_load SIP_ADDR PASSWORD_1000 PASSWORD_1001 CALLS HOLD_SECONDS RSWITCH_PID
#![allow(clippy::disallowed_methods)] // a benchmark driver: real clock, real sockets

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mio::net::UdpSocket as MioSocket;
use mio::{Events, Interest, Poll, Token};
use rswitch::sip::auth::{NonceCount, select_challenge};
use rswitch::sip::message::{Limits, Message, Request, Response, parse_datagram};

const PTIME: Duration = Duration::from_millis(20);

/// One RTP socket of the generator (a phone's media for one call).
struct MediaLeg {
    socket: MioSocket,
    /// rswitch's media address for this leg, from its SDP.
    remote: Option<SocketAddr>,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    sent: u64,
    received: u64,
}

impl MediaLeg {
    fn new() -> MediaLeg {
        let socket = MioSocket::bind("127.0.0.1:0".parse().unwrap()).expect("an RTP port");
        MediaLeg {
            socket,
            remote: None,
            sequence: rand::random(),
            timestamp: rand::random(),
            ssrc: rand::random(),
            sent: 0,
            received: 0,
        }
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    fn send(&mut self) {
        let Some(remote) = self.remote else { return };
        let mut packet = [0xffu8; 172];
        packet[0] = 0x80;
        packet[1] = 0; // PCMU
        packet[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        packet[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        packet[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        if self.socket.send_to(&packet, remote).is_ok() {
            self.sent += 1;
        }
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(160);
    }
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=load 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n"
    )
}

/// The port of the audio m-line of an SDP body.
fn sdp_port(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().find(|l| l.starts_with("m=audio "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn header<'a>(request: &'a Request, name: &str) -> &'a str {
    request.headers.first(name).unwrap_or("")
}

fn response_header<'a>(response: &'a Response, name: &str) -> &'a str {
    response.headers.first(name).unwrap_or("")
}

/// A response to `request` with `status`, the Vias, From, To (with `tag`), Call-ID and CSeq
/// copied.
fn respond(
    request: &Request,
    status: u16,
    reason: &str,
    tag: &str,
    extra: &str,
    body: &str,
) -> String {
    let mut text = format!("SIP/2.0 {status} {reason}\r\n");
    for via in request.headers.all("Via") {
        text.push_str(&format!("Via: {}\r\n", via.value()));
    }
    let to = header(request, "To");
    let to = if to.contains("tag=") {
        to.to_owned()
    } else {
        format!("{to};tag={tag}")
    };
    text.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}",
        header(request, "From"),
        header(request, "Call-ID"),
        header(request, "CSeq"),
    ));
    if body.is_empty() {
        text.push_str("Content-Length: 0\r\n\r\n");
    } else {
        text.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    text
}

/// A caller's call in progress.
struct Outgoing {
    index: usize,
    from_tag: String,
    authenticated: bool,
    up: bool,
    to: String,
    /// The branch of the first INVITE (its ACK to the 407 must carry it).
    first_branch: String,
}

fn branch() -> String {
    format!("z9hG4bK{:016x}", rand::random::<u64>())
}

fn invite(
    sip: SocketAddr,
    local: SocketAddr,
    call_id: &str,
    call: &Outgoing,
    cseq: u32,
    auth: &str,
    port: u16,
) -> String {
    let body = sdp(port);
    let branch = if cseq == 1 {
        call.first_branch.clone()
    } else {
        branch()
    };
    format!(
        "INVITE sip:1001@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n\
         From: <sip:1000@{}>;tag={}\r\nTo: <sip:1001@{}>\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} INVITE\r\nContact: <sip:1000@{local}>\r\nMax-Forwards: 70\r\n{auth}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        sip.ip(),
        call.from_tag,
        sip.ip(),
        body.len()
    )
}

fn proc_stat(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0, utime 11, stime 12.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (cpu, rss_kib)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!(
            "usage: relay_load SIP_ADDR PASSWORD_1000 PASSWORD_1001 CALLS HOLD_SECONDS RSWITCH_PID"
        );
        std::process::exit(2);
    }
    let sip: SocketAddr = args[1].parse().expect("SIP_ADDR");
    let (password_a, password_b) = (args[2].clone(), args[3].clone());
    let calls: usize = args[4].parse().expect("CALLS");
    let hold = Duration::from_secs(args[5].parse().expect("HOLD_SECONDS"));
    let pid: u32 = args[6].parse().expect("RSWITCH_PID");
    let limits = Limits::default();

    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
    for socket in [&caller, &callee] {
        socket
            .set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
    }
    let (caller_addr, callee_addr) = (caller.local_addr().unwrap(), callee.local_addr().unwrap());
    let receive = |socket: &UdpSocket| -> Option<Message> {
        let mut buffer = [0u8; 65535];
        let (length, _) = socket.recv_from(&mut buffer).ok()?;
        parse_datagram(&buffer[..length], &limits).ok()
    };

    // Register 1001 from the callee socket.
    let register = |auth: &str, cseq: u32| {
        format!(
            "REGISTER sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {callee_addr};branch={}\r\n\
             From: <sip:1001@{}>;tag=reg\r\nTo: <sip:1001@{}>\r\nCall-ID: load-register\r\n\
             CSeq: {cseq} REGISTER\r\nContact: <sip:1001@{callee_addr}>\r\nExpires: 3600\r\n\
             Max-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n",
            branch(),
            sip.ip(),
            sip.ip()
        )
    };
    callee.send_to(register("", 1).as_bytes(), sip).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut registered = false;
    while Instant::now() < deadline && !registered {
        if let Some(Message::Response(response)) = receive(&callee) {
            match response.status {
                401 => {
                    let challenge = select_challenge(
                        response.headers.all("WWW-Authenticate").map(|h| h.value()),
                    )
                    .expect("a digest challenge");
                    let credentials = challenge
                        .respond(
                            "REGISTER",
                            &format!("sip:{sip}"),
                            "1001",
                            &password_b,
                            "abcdef",
                            NonceCount::FIRST,
                        )
                        .unwrap();
                    callee
                        .send_to(
                            register(&format!("Authorization: {credentials}\r\n"), 2).as_bytes(),
                            sip,
                        )
                        .unwrap();
                }
                200 => registered = true,
                _ => {}
            }
        }
    }
    assert!(registered, "1001 did not register");

    let mut legs: Vec<(MediaLeg, MediaLeg)> = (0..calls)
        .map(|_| (MediaLeg::new(), MediaLeg::new()))
        .collect();
    let mut outgoing: HashMap<String, Outgoing> = HashMap::new();
    let mut next_callee_leg = 0usize;
    let mut callee_legs: HashMap<String, usize> = HashMap::new();
    let (baseline_cpu, baseline_rss) = proc_stat(pid);
    let _ = baseline_cpu;

    // Place the calls at up to 200 per second, answering them as they arrive.
    let setup_started = Instant::now();
    let mut placed = 0usize;
    let mut up = 0usize;
    let mut failed = 0usize;
    let setup_deadline = setup_started + Duration::from_secs(10 + calls as u64 / 100);
    while up + failed < calls && Instant::now() < setup_deadline {
        let due = (setup_started.elapsed().as_secs_f64() * 200.0) as usize + 1;
        while placed < calls.min(due) {
            let call = Outgoing {
                index: placed,
                from_tag: format!("a{placed}"),
                authenticated: false,
                up: false,
                to: String::new(),
                first_branch: branch(),
            };
            let call_id = format!("load-{placed}-{:08x}", rand::random::<u32>());
            let text = invite(
                sip,
                caller_addr,
                &call_id,
                &call,
                1,
                "",
                legs[placed].0.port(),
            );
            caller.send_to(text.as_bytes(), sip).unwrap();
            outgoing.insert(call_id, call);
            placed += 1;
        }
        if let Some(Message::Request(request)) = receive(&callee) {
            let call_id = header(&request, "Call-ID").to_owned();
            match request.method.as_str() {
                "INVITE" => {
                    let index = *callee_legs.entry(call_id).or_insert_with(|| {
                        next_callee_leg += 1;
                        next_callee_leg - 1
                    });
                    if index < calls {
                        let leg = &mut legs[index].1;
                        leg.remote = sdp_port(&request.body).map(|p| SocketAddr::new(sip.ip(), p));
                        let text = respond(
                            &request,
                            200,
                            "OK",
                            &format!("b{index}"),
                            &format!("Contact: <sip:1001@{callee_addr}>\r\n"),
                            &sdp(leg.port()),
                        );
                        callee.send_to(text.as_bytes(), sip).unwrap();
                    }
                }
                "BYE" => {
                    let text = respond(&request, 200, "OK", "b", "", "");
                    callee.send_to(text.as_bytes(), sip).unwrap();
                }
                _ => {}
            }
        }
        if let Some(Message::Response(response)) = receive(&caller) {
            let call_id = response_header(&response, "Call-ID").to_owned();
            let Some(call) = outgoing.get_mut(&call_id) else {
                continue;
            };
            let to = response_header(&response, "To").to_owned();
            let cseq: u32 = response_header(&response, "CSeq")
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let first = call.first_branch.clone();
            let ack = |to: &str, uri: &str, branch: &str| {
                format!(
                    "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {caller_addr};branch={branch}\r\n\
                     From: <sip:1000@{}>;tag={}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} ACK\r\n\
                     Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                    sip.ip(),
                    call.from_tag
                )
            };
            match response.status {
                // A retransmitted 407 of the first INVITE: ACK it again.
                407 if cseq == 1 && call.authenticated => {
                    caller
                        .send_to(ack(&to, &format!("sip:1001@{sip}"), &first).as_bytes(), sip)
                        .unwrap();
                }
                407 if !call.authenticated => {
                    // The ACK of a non-2xx belongs to the INVITE's transaction: same branch.
                    caller
                        .send_to(ack(&to, &format!("sip:1001@{sip}"), &first).as_bytes(), sip)
                        .unwrap();
                    let challenge = select_challenge(
                        response
                            .headers
                            .all("Proxy-Authenticate")
                            .map(|h| h.value()),
                    )
                    .expect("a digest challenge");
                    let credentials = challenge
                        .respond(
                            "INVITE",
                            &format!("sip:1001@{sip}"),
                            "1000",
                            &password_a,
                            &format!("{:016x}", rand::random::<u64>()),
                            NonceCount::FIRST,
                        )
                        .unwrap();
                    call.authenticated = true;
                    let text = invite(
                        sip,
                        caller_addr,
                        &call_id,
                        call,
                        2,
                        &format!("Proxy-Authorization: {credentials}\r\n"),
                        legs[call.index].0.port(),
                    );
                    caller.send_to(text.as_bytes(), sip).unwrap();
                }
                200..=299 if !call.up => {
                    call.up = true;
                    call.to = to.clone();
                    legs[call.index].0.remote =
                        sdp_port(&response.body).map(|p| SocketAddr::new(sip.ip(), p));
                    let contact = response_header(&response, "Contact");
                    let uri = contact
                        .trim_start_matches('<')
                        .split('>')
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    caller
                        .send_to(ack(&to, &uri, &branch()).as_bytes(), sip)
                        .unwrap();
                    up += 1;
                }
                300..=699 => {
                    failed += 1;
                    if failed <= 3 {
                        eprintln!(
                            "call {call_id} failed: {} {}",
                            response.status, response.reason
                        );
                    }
                }
                _ => {}
            }
        }
    }
    let setup = setup_started.elapsed();

    // Media: every leg sends a packet each 20 ms; every socket counts what it receives.
    let mut poll = Poll::new().unwrap();
    for (index, (a, b)) in legs.iter_mut().enumerate() {
        poll.registry()
            .register(&mut a.socket, Token(index * 2), Interest::READABLE)
            .unwrap();
        poll.registry()
            .register(&mut b.socket, Token(index * 2 + 1), Interest::READABLE)
            .unwrap();
    }
    let mut events = Events::with_capacity(4096);
    let mut buffer = [0u8; 2048];
    let started = Instant::now();
    let mut next_tick = started;
    let mut measured: Option<(Instant, f64, u64)> = None;
    let stop_sending = started + hold;
    let end = stop_sending + Duration::from_millis(500);
    let mut late_ticks = 0u64;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= next_tick && now < stop_sending {
            if now > next_tick + PTIME {
                late_ticks += 1;
            }
            for (a, b) in &mut legs {
                a.send();
                b.send();
            }
            next_tick += PTIME;
        }
        // Start measuring rswitch once the media runs steadily.
        if measured.is_none() && now >= started + Duration::from_secs(2) {
            let (cpu, rss) = proc_stat(pid);
            measured = Some((now, cpu, rss));
        }
        let wait = next_tick
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(5));
        poll.poll(&mut events, Some(wait)).unwrap();
        for event in &events {
            let index = event.token().0;
            let leg = if index % 2 == 0 {
                &mut legs[index / 2].0
            } else {
                &mut legs[index / 2].1
            };
            while let Ok((length, _)) = leg.socket.recv_from(&mut buffer) {
                if length >= 12 {
                    leg.received += 1;
                }
            }
        }
    }
    let (window_start, cpu_start, rss_loaded) = measured.unwrap_or((started, 0.0, baseline_rss));
    let (cpu_end, _) = proc_stat(pid);
    let window = stop_sending
        .saturating_duration_since(window_start)
        .as_secs_f64()
        .max(0.001);
    let cores = (cpu_end - cpu_start) / window;
    let active: Vec<&(MediaLeg, MediaLeg)> = legs
        .iter()
        .filter(|(a, b)| a.remote.is_some() && b.remote.is_some())
        .collect();
    let sent_a: u64 = active.iter().map(|(a, _)| a.sent).sum();
    let got_b: u64 = active.iter().map(|(_, b)| b.received).sum();
    let sent_b: u64 = active.iter().map(|(_, b)| b.sent).sum();
    let got_a: u64 = active.iter().map(|(a, _)| a.received).sum();
    let lost = sent_a.saturating_sub(got_b) + sent_b.saturating_sub(got_a);
    let total = sent_a + sent_b;
    println!(
        "calls {calls}: {up} up ({failed} failed) in {:.1} s; media {} s: sent {total} packets, \
         lost {lost} ({:.4} %), generator late ticks {late_ticks}; rswitch {:.2} cores = {:.0} µs \
         per call-second, RSS {} KiB idle -> {} KiB loaded = {:.1} KiB per call",
        setup.as_secs_f64(),
        hold.as_secs(),
        100.0 * lost as f64 / total.max(1) as f64,
        cores,
        1e6 * cores / up.max(1) as f64,
        baseline_rss,
        rss_loaded,
        (rss_loaded.saturating_sub(baseline_rss)) as f64 / up.max(1) as f64,
    );

    // Hang up every call from the caller's side.
    for (call_id, call) in &outgoing {
        if !call.up {
            continue;
        }
        let text = format!(
            "BYE sip:1001@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {caller_addr};branch={}\r\n\
             From: <sip:1000@{}>;tag={}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: 3 BYE\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            branch(),
            sip.ip(),
            call.from_tag,
            call.to
        );
        let _ = caller.send_to(text.as_bytes(), sip);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Some(Message::Request(request)) = receive(&callee)
            && request.method.as_str() == "BYE"
        {
            let text = respond(&request, 200, "OK", "b", "", "");
            let _ = callee.send_to(text.as_bytes(), sip);
        }
        let _ = receive(&caller);
    }
}
