//! A stateful target for the media path: datagrams from the network (any bytes, or RTP
//! packets built with fuzzed header fields, telephone-events and payloads), from the latched
//! or another source, into the legs of one shard — two bridged pass-through, two
//! transcoded (Opus↔PCMU, AMR↔G.722 with in-band DTMF detection) — interleaved with packet
//! ticks, feed changes, DTMF sends and codec changes.
//!
//! Invariants: no panic; every datagram the shard sends parses as RTP or RTCP and goes to an
//! address it learnt; no leg counts more packets in than were given to it.
#![no_main]

use std::net::SocketAddr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rswitch::media::continuity::LatchPolicy;
use rswitch::media::rtcp;
use rswitch::media::rtp::{self, RtpHeader, RtpPacket};
use rswitch::media::shard::{Codec, Feed, LegConfig, LegId, Shard};
use rswitch::media::tones::{TonePlayer, ToneSpec};

#[derive(Debug, Arbitrary)]
enum Op {
    Raw { leg: u8, other_source: bool, rtcp_port: bool, bytes: Vec<u8> },
    Rtp {
        leg: u8,
        other_source: bool,
        payload_type: u8,
        sequence: u16,
        timestamp: u32,
        ssrc: u8,
        marker: bool,
        payload: Vec<u8>,
    },
    Event { leg: u8, event: u8, end: bool, duration: u16, timestamp: u32 },
    Tick { advance_ms: u8 },
    Feed { leg: u8, to: FeedChoice },
    Dtmf { leg: u8, digit: char, duration_ms: u16 },
    Recodec { leg: u8, codec: u8 },
}

#[derive(Debug, Arbitrary)]
enum FeedChoice {
    Silence,
    Leg(u8),
    Tone,
}

const CODECS: [(&str, u8, u32, Option<&str>); 6] = [
    ("PCMU", 0, 8000, None),
    ("opus", 111, 48_000, Some("useinbandfec=1")),
    ("AMR", 96, 8000, None),
    ("G722", 9, 8000, None),
    ("G729", 18, 8000, None),
    ("iLBC", 97, 8000, None),
];

fn config(codec: usize, port: u16, ssrc: u32) -> LegConfig {
    let (name, payload_type, clock_rate, fmtp) = CODECS[codec % CODECS.len()];
    LegConfig {
        codec: Codec {
            name: name.into(),
            payload_type,
            clock_rate,
            fmtp: fmtp.map(str::to_owned),
        },
        telephone_event: (codec % 2 == 0).then_some(101),
        remote: Some(SocketAddr::from(([192, 0, 2, 1], port))),
        latch: LatchPolicy::Continue,
        send: true,
        receive: true,
        ssrc,
        first_sequence: 1,
        rtcp_mux: codec % 3 != 0,
        detect_inband_dtmf: codec == 2,
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut shard = Shard::new("fuzz");
    let codecs = [0usize, 0, 1, 0, 2, 3];
    let legs: Vec<LegId> = codecs
        .iter()
        .enumerate()
        .map(|(i, &codec)| shard.add_leg(config(codec, 4000 + 2 * i as u16, i as u32 + 1)))
        .collect();
    for pair in legs.chunks(2) {
        let _ = shard.set_feed(pair[0], Feed::Leg(pair[1]));
        let _ = shard.set_feed(pair[1], Feed::Leg(pair[0]));
    }
    let source = |leg: usize, other: bool| {
        SocketAddr::from(([192, 0, 2, if other { 99 } else { 1 }], 4000 + 2 * leg as u16))
    };
    let mut now = 0u64;
    let mut given = vec![0u64; legs.len()];
    let mut datagram = Vec::new();
    for op in ops.into_iter().take(2000) {
        match op {
            Op::Raw { leg, other_source, rtcp_port, bytes } => {
                let index = usize::from(leg) % legs.len();
                given[index] += 1;
                shard.handle_datagram(legs[index], source(index, other_source), &bytes, rtcp_port, now);
            }
            Op::Rtp { leg, other_source, payload_type, sequence, timestamp, ssrc, marker, payload } => {
                let index = usize::from(leg) % legs.len();
                datagram.clear();
                RtpHeader { marker, payload_type: payload_type & 0x7f, sequence, timestamp, ssrc: u32::from(ssrc) }
                    .write_packet(&payload, &mut datagram);
                given[index] += 1;
                shard.handle_datagram(legs[index], source(index, other_source), &datagram, false, now);
            }
            Op::Event { leg, event, end, duration, timestamp } => {
                let index = usize::from(leg) % legs.len();
                datagram.clear();
                let payload = [event, if end { 0x8a } else { 0x0a }, (duration >> 8) as u8, duration as u8];
                RtpHeader { marker: false, payload_type: 101, sequence: duration, timestamp, ssrc: 7 }
                    .write_packet(&payload, &mut datagram);
                given[index] += 1;
                shard.handle_datagram(legs[index], source(index, false), &datagram, false, now);
            }
            Op::Tick { advance_ms } => {
                now += u64::from(advance_ms);
                shard.handle_tick(now);
            }
            Op::Feed { leg, to } => {
                let index = usize::from(leg) % legs.len();
                let feed = match to {
                    FeedChoice::Silence => Feed::Silence,
                    FeedChoice::Leg(other) => Feed::Leg(legs[usize::from(other) % legs.len()]),
                    FeedChoice::Tone => Feed::Tone(TonePlayer::new(ToneSpec::china_busy(), 8000)),
                };
                let _ = shard.set_feed(legs[index], feed);
            }
            Op::Dtmf { leg, digit, duration_ms } => {
                let index = usize::from(leg) % legs.len();
                shard.send_dtmf(legs[index], digit, u32::from(duration_ms), now);
            }
            Op::Recodec { leg, codec } => {
                let index = usize::from(leg) % legs.len();
                shard.update_leg(legs[index], config(usize::from(codec), 4000 + 2 * index as u16, index as u32 + 1));
            }
        }
        for transmit in shard.transmits() {
            let bytes = &transmit.bytes;
            let parses = if rtp::is_rtcp(bytes) || !transmit.rtp {
                rtcp::parse(bytes).is_ok()
            } else {
                RtpPacket::parse(bytes).is_ok()
            };
            assert!(parses, "the shard sent a datagram that does not parse: {bytes:?}");
            let to = transmit.to.ip().to_string();
            assert!(to == "192.0.2.1" || to == "192.0.2.99", "sent to {to}, an address never seen");
        }
        shard.clear_transmits();
        while shard.poll_event().is_some() {}
    }
    for (index, &leg) in legs.iter().enumerate() {
        if let Some(counters) = shard.counters(leg) {
            assert!(counters.packets_in <= given[index], "leg {index}: {counters:?}");
        }
    }
});
