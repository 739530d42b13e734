//! Parse and print of SIP messages: the RFC 4475 `wsinv` INVITE (folding, compact forms,
//! odd whitespace) and a typical 1 KB INVITE with SDP from a desk phone.
//!
//! `cargo bench --bench sip_parse`; results and the machine in benches/RESULTS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rswitch::sip::message::{Limits, parse_datagram};

const TYPICAL_INVITE: &str = "INVITE sip:1001@192.0.2.10 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.55:5060;branch=z9hG4bK-524287-1---7f9d3c1a2b4e5f60;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:1000@192.0.2.55:5060;transport=udp>\r\n\
To: <sip:1001@192.0.2.10>\r\n\
From: \"Zhang San\" <sip:1000@192.0.2.10>;tag=3f8a7b2c\r\n\
Call-ID: 9c4e2a1f7b3d4e5a8c6b0d2f1e3a5c7b@192.0.2.55\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE, UPDATE, PRACK\r\n\
Content-Type: application/sdp\r\n\
Supported: replaces, norefersub, extended-refer, timer, 100rel, outbound, path, X-cisco-serviceuri\r\n\
User-Agent: Yealink SIP-T46U 108.86.0.20\r\n\
Allow-Events: presence, kpml, talk, as-feature-event\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
P-Preferred-Identity: \"Zhang San\" <sip:1000@192.0.2.10>\r\n\
Content-Length: 403\r\n\
\r\n\
v=0\r\n\
o=- 20518 0 IN IP4 192.0.2.55\r\n\
s=SDP data\r\n\
c=IN IP4 192.0.2.55\r\n\
t=0 0\r\n\
m=audio 11780 RTP/AVP 9 0 8 18 101\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp:11781 IN IP4 192.0.2.55\r\n\
a=ssrc:1766354312 cname:a1b2c3d4e5\r\n\
a=label:1\r\n\
a=x-nat:0\r\n\
a=maxptime:60\r\n";

fn benches(c: &mut Criterion) {
    let wsinv = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rfc4475/wsinv.dat"
    ))
    .expect("corpus");
    let limits = Limits::default();
    for (name, bytes) in [
        ("wsinv", wsinv.as_slice()),
        ("invite_1k", TYPICAL_INVITE.as_bytes()),
    ] {
        let message = parse_datagram(bytes, &limits).expect("the benchmark input parses");
        c.bench_function(&format!("parse/{name}"), |b| {
            b.iter(|| parse_datagram(black_box(bytes), &limits))
        });
        c.bench_function(&format!("print/{name}"), |b| {
            b.iter(|| black_box(&message).to_bytes())
        });
        c.bench_function(&format!("parse_and_via/{name}"), |b| {
            b.iter(|| {
                let m = parse_datagram(black_box(bytes), &limits).expect("parses");
                m.headers().via().expect("via").len()
            })
        });
    }
}

criterion_group!(sip, benches);
criterion_main!(sip);
