//! The shard driven by hand on a virtual clock: packets in, ticks, datagrams out.

use super::*;
use crate::media::dtmf::{DtmfDetector, ToneGenerator};
use crate::media::tones::ToneSpec;

fn codec(name: &str, payload_type: u8, clock_rate: u32) -> Codec {
    Codec {
        name: name.to_owned(),
        payload_type,
        clock_rate,
        fmtp: None,
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], port))
}

fn config(codec: Codec, remote_port: u16, ssrc: u32) -> LegConfig {
    LegConfig {
        codec,
        telephone_event: Some(101),
        remote: Some(addr(remote_port)),
        latch: LatchPolicy::Continue,
        send: true,
        receive: true,
        ssrc,
        first_sequence: 1000,
        rtcp_mux: true,
        detect_inband_dtmf: false,
    }
}

fn packet(payload_type: u8, sequence: u16, timestamp: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    RtpHeader {
        marker: false,
        payload_type,
        sequence,
        timestamp,
        ssrc,
    }
    .write_packet(payload, &mut out);
    out
}

/// A `frequency` tone at 8 kHz, amplitude 8000, from sample `start`.
fn tone(frequency: f64, start: usize, count: usize, rate: u32) -> Vec<i16> {
    (start..start + count)
        .map(|n| {
            (8000.0 * (std::f64::consts::TAU * frequency * n as f64 / f64::from(rate)).sin()) as i16
        })
        .collect()
}

fn power_at(samples: &[i16], frequency: f64, rate: u32) -> f64 {
    let coefficient = 2.0 * (std::f64::consts::TAU * frequency / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = f64::from(x) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

/// Takes the shard's datagrams for `leg`.
fn sent(shard: &mut Shard, leg: LegId) -> Vec<(SocketAddr, Vec<u8>)> {
    let out = shard
        .transmits()
        .iter()
        .filter(|t| t.leg == leg && t.rtp)
        .map(|t| (t.to, t.bytes.clone()))
        .collect();
    shard.clear_transmits();
    out
}

fn bridge(shard: &mut Shard, a: LegId, b: LegId) {
    shard.set_feed(a, Feed::Leg(b)).expect("feeds");
    shard.set_feed(b, Feed::Leg(a)).expect("feeds");
}

#[test]
fn same_codec_is_forwarded_bit_exact_as_one_continuous_stream() {
    let mut shard = Shard::new("rswitch@test");
    let a = shard.add_leg(config(codec("opus", 111, 48_000), 4000, 0xaaaa));
    let b = shard.add_leg(config(codec("opus", 96, 48_000), 5000, 0xbbbb));
    bridge(&mut shard, a, b);
    assert!(shard.passes_through(a, b));
    let payloads: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 40 + usize::from(i)]).collect();
    let mut out = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        let datagram = packet(
            111,
            7000 + i as u16,
            90_000 + 960 * i as u32,
            0x1234,
            payload,
        );
        shard.handle_datagram(a, addr(4000), &datagram, false, 20 * i as u64);
        out.extend(sent(&mut shard, b));
        shard.handle_tick(20 * i as u64);
        assert!(
            sent(&mut shard, b).is_empty(),
            "nothing encoded in pass-through"
        );
    }
    assert_eq!(out.len(), 50);
    let mut last_sequence = None;
    for ((to, datagram), payload) in out.iter().zip(&payloads) {
        assert_eq!(*to, addr(5000));
        let packet = RtpPacket::parse(datagram).unwrap();
        assert_eq!(packet.payload, &payload[..], "payload untouched");
        assert_eq!(packet.header.payload_type, 96, "b's payload type");
        assert_eq!(packet.header.ssrc, 0xbbbb, "b's SSRC");
        if let Some(last) = last_sequence {
            assert_eq!(packet.header.sequence, u16::wrapping_add(last, 1));
        }
        last_sequence = Some(packet.header.sequence);
    }
    // A new source on a (the phone restarted its stream): b's stream runs on.
    let datagram = packet(111, 1, 5, 0x9999, &[1, 2, 3]);
    shard.handle_datagram(a, addr(4000), &datagram, false, 1020);
    let next = sent(&mut shard, b);
    let header = RtpPacket::parse(&next[0].1).unwrap().header;
    assert_eq!(header.ssrc, 0xbbbb);
    assert_eq!(header.sequence, last_sequence.unwrap().wrapping_add(1));
    assert!(header.marker);
}

#[test]
fn packets_from_another_source_are_dropped_after_latching() {
    let mut shard = Shard::new("rswitch@test");
    let a = shard.add_leg(config(codec("PCMU", 0, 8000), 4000, 1));
    let b = shard.add_leg(config(codec("PCMU", 0, 8000), 5000, 2));
    bridge(&mut shard, a, b);
    shard.handle_datagram(a, addr(4100), &packet(0, 1, 0, 77, &[0xff; 160]), false, 0);
    assert_eq!(
        shard.poll_event(),
        Some(MediaEvent::Latched {
            leg: a,
            remote: addr(4100)
        })
    );
    assert_eq!(sent(&mut shard, b).len(), 1);
    // An injected stream from elsewhere.
    shard.handle_datagram(a, addr(6666), &packet(0, 900, 0, 99, &[0; 160]), false, 20);
    assert!(sent(&mut shard, b).is_empty());
    assert_eq!(shard.counters(a).unwrap().rejected_source, 1);
    // a's replies now go to the latched address, not the SDP's.
    assert_eq!(shard.remote(a), Some(addr(4100)));
    // Garbage and unknown payload types are counted, not forwarded.
    shard.handle_datagram(a, addr(4100), &[0x80, 0], false, 40);
    shard.handle_datagram(a, addr(4100), &packet(34, 2, 160, 77, &[0; 10]), false, 40);
    let counters = shard.counters(a).unwrap();
    assert_eq!((counters.malformed, counters.unknown_payload_type), (1, 1));
    assert!(sent(&mut shard, b).is_empty());
}

/// Sends one second of a 1 kHz tone from a PCMU phone on `a`, bridged to `b` with
/// `b_codec`; decodes what `b` is sent and checks the tone is there.
fn transcode_tone_to(b_codec: Codec) {
    let mut shard = Shard::new("rswitch@test");
    let a = shard.add_leg(config(codec("PCMU", 0, 8000), 4000, 1));
    let b = shard.add_leg(config(b_codec.clone(), 5000, 2));
    bridge(&mut shard, a, b);
    assert!(!shard.passes_through(a, b));
    let mut encoder = factory::new_encoder("PCMU", None, 8000).unwrap();
    let mut decoder = factory::new_decoder(&b_codec.name, None, 8000).unwrap();
    let mut decoded = Vec::new();
    for i in 0..50usize {
        let mut payload = Vec::new();
        encoder.encode(&tone(1000.0, i * 160, 160, 8000), &mut payload);
        let now = 20 * i as u64;
        let datagram = packet(0, i as u16, 160 * i as u32, 0x55, &payload);
        shard.handle_datagram(a, addr(4000), &datagram, false, now);
        shard.handle_tick(now);
        for (to, datagram) in sent(&mut shard, b) {
            assert_eq!(to, addr(5000));
            let packet = RtpPacket::parse(&datagram).unwrap();
            assert_eq!(packet.header.payload_type, b_codec.payload_type);
            decoder.decode(packet.payload, &mut decoded);
        }
    }
    let rate = decoder.info().sample_rate;
    assert!(
        decoded.len() >= rate as usize * 8 / 10,
        "{}: {} samples",
        b_codec.name,
        decoded.len()
    );
    let settled = &decoded[decoded.len() / 3..];
    let signal = power_at(settled, 1000.0, rate);
    for other in [400.0, 700.0, 1500.0, 2500.0] {
        assert!(
            signal > 50.0 * power_at(settled, other, rate),
            "{}: 1 kHz not dominant over {other} Hz",
            b_codec.name
        );
    }
}

#[test]
fn different_codecs_are_transcoded() {
    transcode_tone_to(codec("PCMA", 8, 8000));
    transcode_tone_to(codec("G722", 9, 8000));
    transcode_tone_to(codec("AMR", 96, 8000));
    transcode_tone_to(codec("GSM", 3, 8000));
    transcode_tone_to(codec("opus", 111, 48_000));
    transcode_tone_to(codec("G729", 18, 8000));
}

#[test]
fn relay_only_codecs_cannot_be_transcoded() {
    let mut shard = Shard::new("rswitch@test");
    let a = shard.add_leg(config(codec("iLBC", 97, 8000), 4000, 1));
    let b = shard.add_leg(config(codec("PCMU", 0, 8000), 5000, 2));
    assert!(matches!(
        shard.set_feed(b, Feed::Leg(a)),
        Err(CodecError::RelayOnly(_))
    ));
    let c = shard.add_leg(config(codec("iLBC", 98, 8000), 6000, 3));
    shard
        .set_feed(c, Feed::Leg(a))
        .expect("iLBC to iLBC is relayed");
}

#[test]
fn rfc_4733_is_forwarded_or_played_in_band_and_reported_once() {
    let mut shard = Shard::new("rswitch@test");
    let a = shard.add_leg(config(codec("PCMU", 0, 8000), 4000, 1));
    let mut no_events = config(codec("PCMU", 0, 8000), 5000, 2);
    no_events.telephone_event = None;
    let b = shard.add_leg(no_events);
    let c = shard.add_leg(config(codec("PCMA", 8, 8000), 6000, 3));
    // a ↔ b: b has no telephone-event → in-band.
    bridge(&mut shard, a, b);
    let event = |end: bool, duration: u16| {
        TelephoneEvent {
            event: 5,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    };
    let mut detector = DtmfDetector::new();
    let mut decoder = factory::new_decoder("PCMU", None, 8000).unwrap();
    let mut digits = Vec::new();
    for i in 0..15u16 {
        let now = u64::from(i) * 20;
        if i < 5 {
            let payload = event(i == 4, 160 * (i + 1));
            shard.handle_datagram(
                a,
                addr(4000),
                &packet(101, i, 8000, 9, &payload),
                false,
                now,
            );
        }
        shard.handle_tick(now);
        for (_, datagram) in sent(&mut shard, b) {
            let packet = RtpPacket::parse(&datagram).unwrap();
            assert_eq!(packet.header.payload_type, 0, "b gets audio, not events");
            let mut pcm = Vec::new();
            decoder.decode(packet.payload, &mut pcm);
            detector.push(&pcm, &mut digits);
        }
    }
    assert_eq!(digits, vec!['5'], "played in-band to b");
    let reported: Vec<MediaEvent> = std::iter::from_fn(|| shard.poll_event())
        .filter(|e| matches!(e, MediaEvent::Dtmf { .. }))
        .collect();
    assert_eq!(
        reported,
        vec![MediaEvent::Dtmf {
            leg: a,
            digit: '5',
            duration_ms: 20,
            inband: false
        }]
    );
    // a ↔ c: c has telephone-event → the packets go through as events.
    shard.set_feed(b, Feed::Silence).unwrap();
    bridge(&mut shard, a, c);
    shard.handle_datagram(
        a,
        addr(4000),
        &packet(101, 20, 16_000, 9, &event(true, 800)),
        false,
        400,
    );
    let out = sent(&mut shard, c);
    assert_eq!(out.len(), 1);
    let packet = RtpPacket::parse(&out[0].1).unwrap();
    assert_eq!(packet.header.payload_type, 101);
    assert_eq!(TelephoneEvent::parse(packet.payload).unwrap().duration, 800);
}

#[test]
fn send_dtmf_follows_rfc_4733_timing() {
    let mut shard = Shard::new("rswitch@test");
    let a = shard.add_leg(config(codec("PCMU", 0, 8000), 4000, 1));
    assert!(shard.send_dtmf(a, '#', 100, 0));
    assert!(shard.send_dtmf(a, '1', 60, 0), "queued behind the first");
    let mut packets = sent(&mut shard, a);
    for tick in 1..=12 {
        shard.handle_tick(tick * 20);
        packets.extend(sent(&mut shard, a));
    }
    let parsed: Vec<(RtpHeader, TelephoneEvent)> = packets
        .iter()
        .map(|(_, datagram)| {
            let packet = RtpPacket::parse(datagram).unwrap();
            (
                packet.header,
                TelephoneEvent::parse(packet.payload).unwrap(),
            )
        })
        .collect();
    // '#': the first packet at once, one per 20 ms with the duration growing, the end
    // packet three times; then '1' the same way (60 ms: 480 units).
    let summary: Vec<(u8, bool, u16, bool)> = parsed
        .iter()
        .map(|(h, e)| (e.event, e.end, e.duration, h.marker))
        .collect();
    assert_eq!(
        summary,
        vec![
            (11, false, 160, true),
            (11, false, 320, false),
            (11, false, 480, false),
            (11, false, 640, false),
            (11, true, 800, false),
            (11, true, 800, false),
            (11, true, 800, false),
            (1, false, 160, true),
            (1, false, 320, false),
            (1, true, 480, false),
            (1, true, 480, false),
            (1, true, 480, false),
        ]
    );
    for window in parsed.windows(2) {
        assert_eq!(window[1].0.sequence, window[0].0.sequence.wrapping_add(1));
        assert_eq!(window[1].0.ssrc, 1);
    }
    // One timestamp per event; the second event's is later.
    assert!(
        parsed[..7]
            .iter()
            .all(|(h, _)| h.timestamp == parsed[0].0.timestamp)
    );
    assert!(
        parsed[7..]
            .iter()
            .all(|(h, _)| h.timestamp == parsed[7].0.timestamp)
    );
    assert_ne!(parsed[7].0.timestamp, parsed[0].0.timestamp);
    assert!(!shard.send_dtmf(a, 'x', 100, 0));
}

#[test]
fn in_band_digits_become_rfc_4733_events_for_a_peer_that_wants_them() {
    let mut shard = Shard::new("rswitch@test");
    let mut listening = config(codec("PCMU", 0, 8000), 4000, 1);
    listening.telephone_event = None;
    listening.detect_inband_dtmf = true;
    let a = shard.add_leg(listening);
    let b = shard.add_leg(config(codec("PCMU", 0, 8000), 5000, 2));
    bridge(&mut shard, a, b);
    let mut encoder = factory::new_encoder("PCMU", None, 8000).unwrap();
    let mut tone = ToneGenerator::new('7', -10.0, 8000).unwrap();
    let mut events = Vec::new();
    for i in 0..20u16 {
        let mut pcm = Vec::new();
        if i < 6 {
            tone.fill(160, &mut pcm);
        } else {
            pcm.resize(160, 0);
        }
        let mut payload = Vec::new();
        encoder.encode(&pcm, &mut payload);
        let now = u64::from(i) * 20;
        shard.handle_datagram(
            a,
            addr(4000),
            &packet(0, i, 160 * u32::from(i), 5, &payload),
            false,
            now,
        );
        shard.handle_tick(now);
        for (_, datagram) in sent(&mut shard, b) {
            let packet = RtpPacket::parse(&datagram).unwrap();
            if packet.header.payload_type == 101 {
                events.push(TelephoneEvent::parse(packet.payload).unwrap());
            }
        }
    }
    assert!(!events.is_empty(), "no RFC 4733 packets reached b");
    assert!(events.iter().all(|e| e.event == 7));
    assert_eq!(events.iter().filter(|e| e.end).count(), 3);
    assert!(std::iter::from_fn(|| shard.poll_event()).any(|e| matches!(
        e,
        MediaEvent::Dtmf {
            digit: '7',
            inband: true,
            ..
        }
    )));
}

#[test]
fn tones_and_prompts_feed_a_leg_and_a_prompt_ends_with_an_event() {
    let mut shard = Shard::new("rswitch@test");
    let a = shard.add_leg(config(codec("PCMU", 0, 8000), 4000, 1));
    shard
        .set_feed(
            a,
            Feed::Tone(TonePlayer::new(ToneSpec::china_ringback(), 8000)),
        )
        .unwrap();
    let mut decoder = factory::new_decoder("PCMU", None, 8000).unwrap();
    let mut pcm = Vec::new();
    for i in 0..25 {
        shard.handle_tick(i * 20);
        for (_, datagram) in sent(&mut shard, a) {
            decoder.decode(RtpPacket::parse(&datagram).unwrap().payload, &mut pcm);
        }
    }
    assert_eq!(pcm.len(), 25 * 160);
    assert!(power_at(&pcm, 450.0, 8000) > 100.0 * power_at(&pcm, 1000.0, 8000));
    // A 16 kHz prompt of 50 ms played to the 8 kHz leg.
    let prompt = tone(700.0, 0, 800, 16_000);
    shard
        .set_feed(a, Feed::Play(Player::new(&prompt, 16_000, 8000, false)))
        .unwrap();
    let mut packets = 0;
    for i in 25..35 {
        shard.handle_tick(i * 20);
        packets += sent(&mut shard, a).len();
    }
    assert_eq!(packets, 3, "50 ms is three 20 ms frames, the last padded");
    let events: Vec<MediaEvent> = std::iter::from_fn(|| shard.poll_event()).collect();
    assert_eq!(events, vec![MediaEvent::PlaybackDone { leg: a }]);
}

/// Jitter of 0–80 ms and 5 % loss on a transcoded leg (virtual clock): once playing, every
/// tick sends a frame, and the decoded tone holds its level (concealment fills the gaps).
#[test]
fn jittery_lossy_input_still_gives_continuous_audio() {
    let mut shard = Shard::new("rswitch@test");
    let a = shard.add_leg(config(codec("PCMU", 0, 8000), 4000, 1));
    let b = shard.add_leg(config(codec("PCMA", 8, 8000), 5000, 2));
    bridge(&mut shard, a, b);
    let mut encoder = factory::new_encoder("PCMU", None, 8000).unwrap();
    let mut seed = 0x1234_5678_u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // (arrival ms, packet) for 10 s of audio.
    let mut arrivals: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut lost = 0;
    for i in 0..500usize {
        if random() % 100 < 5 {
            lost += 1;
            continue;
        }
        let mut payload = Vec::new();
        encoder.encode(&tone(440.0, i * 160, 160, 8000), &mut payload);
        let arrival = 20 * i as u64 + random() % 81;
        arrivals.push((arrival, packet(0, i as u16, 160 * i as u32, 0x77, &payload)));
    }
    arrivals.sort_by_key(|(at, _)| *at);
    assert!(lost > 10);
    let mut decoder = factory::new_decoder("PCMA", None, 8000).unwrap();
    let mut next = 0;
    let mut frames = Vec::new();
    for tick in 0..520u64 {
        let now = tick * 20;
        while next < arrivals.len() && arrivals[next].0 <= now {
            shard.handle_datagram(a, addr(4000), &arrivals[next].1, false, arrivals[next].0);
            next += 1;
        }
        shard.handle_tick(now);
        let out = sent(&mut shard, b);
        let mut pcm = Vec::new();
        for (_, datagram) in &out {
            decoder.decode(RtpPacket::parse(datagram).unwrap().payload, &mut pcm);
        }
        frames.push(pcm);
    }
    let first = frames.iter().position(|f| !f.is_empty()).expect("plays");
    let playing = &frames[first..first + 480];
    assert!(
        playing.iter().all(|f| f.len() == 160),
        "a frame every tick once playing"
    );
    // Every frame carries sound: concealment repeats the last frame, fading, so only a
    // run of four or more gaps would fall silent.
    let quiet = playing
        .iter()
        .filter(|f| f.iter().map(|&s| i64::from(s).abs()).max().unwrap_or(0) < 500)
        .count();
    assert!(quiet <= 2, "{quiet} quiet frames ({lost} packets lost)");
    let counters = shard.counters(a).unwrap();
    assert!(counters.concealed >= lost as u64 / 2, "{counters:?}");
}

#[test]
fn removing_a_leg_silences_the_legs_it_fed() {
    let mut shard = Shard::new("rswitch@test");
    let a = shard.add_leg(config(codec("PCMU", 0, 8000), 4000, 1));
    let b = shard.add_leg(config(codec("PCMA", 8, 8000), 5000, 2));
    bridge(&mut shard, a, b);
    shard.remove_leg(a);
    assert_eq!(shard.len(), 1);
    shard.handle_tick(0);
    assert!(sent(&mut shard, b).is_empty());
    let c = shard.add_leg(config(codec("PCMU", 0, 8000), 6000, 3));
    assert_eq!(c, a, "the slot is reused");
    shard.handle_datagram(LegId(99), addr(1), &[0; 20], false, 0);
}

/// Two PCMU legs bridged pass-through, a G.722 leg (16 kHz) hearing both through a mix: the
/// bridge stays bit-exact, the mix carries both tones; removing a source leaves the other.
#[test]
fn a_leg_moved_to_another_shard_goes_on_with_the_same_stream() {
    // 1002's leg is bridged to 1003 on one shard, then moves to another shard where it is
    // bridged to 1000: 1002 must see one stream (same SSRC, the next sequence number, the
    // timestamp advanced by the time between), not a new one starting anywhere.
    let mut first = Shard::new("rswitch@test");
    let moved = first.add_leg(config(codec("PCMU", 0, 8000), 4000, 0x1002));
    let old_partner = first.add_leg(config(codec("PCMU", 0, 8000), 5000, 0x1003));
    bridge(&mut first, moved, old_partner);
    let mut last = None;
    for i in 0..10u16 {
        let datagram = packet(0, 20_000 + i, 160 * u32::from(i), 0x77, &[0xff; 160]);
        first.handle_datagram(old_partner, addr(5000), &datagram, false, 20 * u64::from(i));
        for (_, bytes) in sent(&mut first, moved) {
            last = Some(RtpPacket::parse(&bytes).unwrap().header);
        }
    }
    let last = last.expect("1002 was sent 1003's audio");
    let stream = first.remove_leg(moved).expect("the leg's stream");

    let mut second = Shard::new("rswitch@test");
    // Its new configuration carries a fresh SSRC and first sequence number: both ignored.
    let mut fresh = config(codec("PCMU", 0, 8000), 4000, 0x9999);
    fresh.first_sequence = last.sequence.wrapping_sub(5000);
    let moved = second.add_leg_continuing(fresh, stream);
    let new_partner = second.add_leg(config(codec("PCMU", 0, 8000), 6000, 0x1000));
    bridge(&mut second, moved, new_partner);
    // 1000's stream numbers are far behind 1003's; 100 ms passed meanwhile.
    let datagram = packet(0, 3, 999, 0x55, &[0xff; 160]);
    second.handle_datagram(new_partner, addr(6000), &datagram, false, 20 * 9 + 100);
    let out = sent(&mut second, moved);
    assert_eq!(out.len(), 1);
    let next = RtpPacket::parse(&out[0].1).unwrap().header;
    assert_eq!(next.ssrc, last.ssrc, "the same stream");
    assert_eq!(next.sequence, last.sequence.wrapping_add(1));
    assert_eq!(
        next.timestamp,
        last.timestamp.wrapping_add(800),
        "100 ms later"
    );
    assert!(next.marker, "a new talk spurt");
}

#[test]
fn a_mix_hears_both_parties_of_a_pass_through_bridge() {
    let mut shard = Shard::new("rswitch@test");
    let a = shard.add_leg(config(codec("PCMU", 0, 8000), 4000, 1));
    let b = shard.add_leg(config(codec("PCMU", 0, 8000), 5000, 2));
    let c = shard.add_leg(config(codec("G722", 9, 8000), 6000, 3));
    bridge(&mut shard, a, b);
    shard
        .set_feed(c, Feed::Mix(Mix::new(&[a, b, c, a])))
        .unwrap();
    let mut encoders = [
        factory::new_encoder("PCMU", None, 8000).unwrap(),
        factory::new_encoder("PCMU", None, 8000).unwrap(),
    ];
    let mut decoder = factory::new_decoder("G722", None, 16_000).unwrap();
    let mut heard = Vec::new();
    let mut relayed = 0;
    let mut run = |shard: &mut Shard,
                   encoders: &mut [Box<dyn rswitch_codecs::Encoder>; 2],
                   heard: &mut Vec<i16>,
                   relayed: &mut usize,
                   from: usize,
                   to: usize| {
        heard.clear();
        for i in from..to {
            let now = 20 * i as u64;
            for (index, (leg, port, frequency)) in [(a, 4000, 600.0), (b, 5000, 1400.0)]
                .into_iter()
                .enumerate()
            {
                let mut payload = Vec::new();
                encoders[index].encode(&tone(frequency, i * 160, 160, 8000), &mut payload);
                let datagram = packet(0, i as u16, 160 * i as u32, 0x50 + port as u32, &payload);
                shard.handle_datagram(leg, addr(port), &datagram, false, now);
            }
            *relayed += sent(shard, b).len();
            shard.handle_tick(now);
            for (to, datagram) in sent(shard, c) {
                assert_eq!(to, addr(6000));
                decoder.decode(RtpPacket::parse(&datagram).unwrap().payload, heard);
            }
        }
    };
    run(&mut shard, &mut encoders, &mut heard, &mut relayed, 0, 50);
    assert_eq!(relayed, 50, "a reaches b pass-through, once per packet");
    assert!(shard.passes_through(a, b));
    let settled = &heard[heard.len() / 3..];
    let (low, high) = (
        power_at(settled, 600.0, 16_000),
        power_at(settled, 1400.0, 16_000),
    );
    for other in [300.0, 1000.0, 2500.0] {
        let noise = power_at(settled, other, 16_000);
        assert!(low > 50.0 * noise && high > 50.0 * noise, "{other} Hz");
    }
    assert!(low > high / 4.0 && high > low / 4.0, "both parties, alike");

    shard.remove_leg(b);
    run(&mut shard, &mut encoders, &mut heard, &mut relayed, 50, 100);
    let settled = &heard[heard.len() / 3..];
    assert!(
        power_at(settled, 600.0, 16_000) > 50.0 * power_at(settled, 1400.0, 16_000),
        "only a is left in the mix"
    );
    shard.set_feed(c, Feed::Silence).unwrap();
    shard.remove_leg(a);
    assert_eq!(shard.len(), 1);
}

/// Two legs in two shards (two rswitch instances, or rswitch and a phone), each playing a
/// tone to the other, 40 ms apart each way: their RTCP exchange (SR, RR with LSR/DLSR) gives
/// each side a round trip of 80 ms and no loss.
#[test]
fn rtcp_reports_give_the_round_trip_time() {
    let mut left = Shard::new("left@test");
    let mut right = Shard::new("right@test");
    left.set_wallclock(1_700_000_000_000);
    right.set_wallclock(1_700_000_000_000);
    let x = left.add_leg(config(codec("PCMU", 0, 8000), 5000, 0x1));
    let y = right.add_leg(config(codec("PCMU", 0, 8000), 4000, 0x2));
    let ringback = || Feed::Tone(TonePlayer::new(ToneSpec::china_dial(), 8000));
    left.set_feed(x, ringback()).unwrap();
    right.set_feed(y, ringback()).unwrap();
    // (deliver at, to the right shard?, datagram)
    let mut in_flight: Vec<(u64, bool, Vec<u8>)> = Vec::new();
    let mut rtcp_seen = 0;
    for tick in 0..1000u64 {
        let now = tick * 20;
        let (due, later): (Vec<_>, Vec<_>) = in_flight.into_iter().partition(|m| m.0 <= now);
        in_flight = later;
        for (_, to_right, datagram) in due {
            if rtp::is_rtcp(&datagram) {
                rtcp_seen += 1;
            }
            if to_right {
                right.handle_datagram(y, addr(4000), &datagram, false, now);
            } else {
                left.handle_datagram(x, addr(5000), &datagram, false, now);
            }
        }
        left.handle_tick(now);
        right.handle_tick(now);
        for t in left.transmits() {
            in_flight.push((now + 40, true, t.bytes.clone()));
        }
        for t in right.transmits() {
            in_flight.push((now + 40, false, t.bytes.clone()));
        }
        left.clear_transmits();
        right.clear_transmits();
    }
    assert!(rtcp_seen >= 6, "{rtcp_seen} RTCP packets");
    for (shard, leg) in [(&left, x), (&right, y)] {
        let rtt = shard.round_trip_ms(leg).expect("round trip known");
        assert!((75..=85).contains(&rtt), "round trip {rtt} ms");
        assert_eq!(shard.receive_quality(leg).unwrap().0, 0, "nothing lost");
    }
}

#[test]
fn a_silent_sendrecv_leg_is_reported_once_and_held_legs_are_not() {
    let mut shard = Shard::new("test");
    shard.set_rtp_timeout(1_000);
    let talking = shard.add_leg(config(codec("PCMU", 0, 8000), 4000, 1));
    let mut held_config = config(codec("PCMU", 0, 8000), 4002, 2);
    held_config.send = false;
    let held = shard.add_leg(held_config);
    let timeouts = |shard: &mut Shard| {
        let mut legs = Vec::new();
        while let Some(event) = shard.poll_event() {
            if let MediaEvent::RtpTimeout { leg } = event {
                legs.push(leg);
            }
        }
        legs
    };
    let mut now = 0;
    let mut sequence = 0u16;
    // RTP for the first half second keeps the leg alive; the timeout counts from the last.
    while now < 500 {
        sequence += 1;
        let datagram = packet(0, sequence, u32::from(sequence) * 160, 77, &[0xff; 160]);
        shard.handle_datagram(talking, addr(4000), &datagram, false, now);
        shard.handle_tick(now);
        now += 20;
    }
    assert!(timeouts(&mut shard).is_empty());
    while now < 1_480 {
        shard.handle_tick(now);
        now += 20;
    }
    assert!(
        timeouts(&mut shard).is_empty(),
        "reported before a second of silence"
    );
    while now < 3_000 {
        shard.handle_tick(now);
        now += 20;
    }
    let reported = timeouts(&mut shard);
    assert_eq!(reported, vec![talking], "once");
    assert!(!reported.contains(&held), "a held leg is silent on purpose");
    // Media renegotiated (a re-INVITE): the watch starts again.
    shard.update_leg(talking, config(codec("PCMU", 0, 8000), 4000, 1));
    let resumed = now;
    while now < resumed + 900 {
        shard.handle_tick(now);
        now += 20;
    }
    assert!(timeouts(&mut shard).is_empty());
    while now < resumed + 1_100 {
        shard.handle_tick(now);
        now += 20;
    }
    assert_eq!(timeouts(&mut shard), vec![talking]);
}
