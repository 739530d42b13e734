//! Media costs per 20 ms frame: each codec's encode + decode, DTMF detection, resampling, the
//! conference mixer per participant, pass-through forwarding per packet, and a transcoded
//! call (both directions, jitter buffer, decode, resample, encode) per 20 ms — the inverse
//! of which is calls per core.
//!
//! `cargo bench --bench media`; results and the machine in benches/RESULTS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use std::net::SocketAddr;

use rswitch::media::continuity::LatchPolicy;
use rswitch::media::dtmf::DtmfDetector;
use rswitch::media::mixer::{Mixer, ParticipantSettings};
use rswitch::media::resample::Resampler;
use rswitch::media::rtp::RtpHeader;
use rswitch::media::shard::{Codec, Feed, LegConfig, Mix, Shard};
use rswitch_codecs::amrnb::{AmrDecoder, AmrEncoder, AmrMode};
use rswitch_codecs::factory;
use rswitch_codecs::g711::G711;
use rswitch_codecs::g729::{G729Decoder, G729Encoder};
use rswitch_codecs::gsm::{GsmDecoder, GsmEncoder};
use rswitch_codecs::{Decoder, Encoder};

/// 20 ms of a voiced sound at `rate`.
fn voice(rate: u32) -> Vec<i16> {
    let samples = rate as usize / 50;
    (0..samples)
        .map(|n| {
            let t = n as f64 / f64::from(rate);
            let v: f64 = (1..12)
                .map(|k| {
                    2500.0 / f64::from(k) * (std::f64::consts::TAU * 140.0 * f64::from(k) * t).sin()
                })
                .sum();
            v as i16
        })
        .collect()
}

fn codec_round_trip(
    c: &mut Criterion,
    name: &str,
    mut encoder: Box<dyn Encoder>,
    mut decoder: Box<dyn Decoder>,
) {
    let frame = voice(encoder.info().sample_rate);
    let mut payload = Vec::with_capacity(64);
    let mut pcm = Vec::with_capacity(160);
    c.bench_function(&format!("codec/{name}/encode+decode_20ms"), |b| {
        b.iter(|| {
            payload.clear();
            pcm.clear();
            encoder.encode(black_box(&frame), &mut payload);
            decoder.decode(&payload, &mut pcm);
            pcm.len()
        })
    });
}

fn benches(c: &mut Criterion) {
    codec_round_trip(c, "PCMU", Box::new(G711::Ulaw), Box::new(G711::Ulaw));
    codec_round_trip(c, "PCMA", Box::new(G711::Alaw), Box::new(G711::Alaw));
    codec_round_trip(
        c,
        "GSM",
        Box::new(GsmEncoder::new()),
        Box::new(GsmDecoder::new()),
    );
    codec_round_trip(
        c,
        "G729",
        Box::new(G729Encoder::new(false)),
        Box::new(G729Decoder::new()),
    );
    codec_round_trip(
        c,
        "AMR-12.2",
        Box::new(AmrEncoder::new(AmrMode::Mr122, false)),
        Box::new(AmrDecoder::new()),
    );

    codec_round_trip(
        c,
        "G722",
        factory::new_encoder("G722", None, 16_000).unwrap(),
        factory::new_decoder("G722", None, 16_000).unwrap(),
    );
    for rate in [8000, 16_000, 48_000] {
        codec_round_trip(
            c,
            &format!("opus-{}k", rate / 1000),
            factory::new_encoder("opus", None, rate).unwrap(),
            factory::new_decoder("opus", None, rate).unwrap(),
        );
    }
    bridge_benches(c);

    let frame = voice(8000);
    let mut detector = DtmfDetector::new();
    let mut digits = Vec::new();
    c.bench_function("dtmf/detect_20ms", |b| {
        b.iter(|| {
            detector.push(black_box(&frame), &mut digits);
            digits.clear();
        })
    });

    let mut up = Resampler::new(8000, 16_000);
    let mut out = Vec::with_capacity(640);
    c.bench_function("resample/8k_to_16k_20ms", |b| {
        b.iter(|| {
            out.clear();
            up.process(black_box(&frame), &mut out);
        })
    });

    // 100 participants at 8 kHz, 10 of them speaking; cost per tick / 100 = per participant.
    let mut mixer = Mixer::new(160);
    for id in 0..100 {
        mixer.add(id, ParticipantSettings::default());
    }
    let quiet = vec![0i16; 160];
    c.bench_function("mixer/100_participants_8k_20ms", |b| {
        b.iter(|| {
            mixer.mix(|id| Some(if id % 10 == 0 { &frame[..] } else { &quiet[..] }));
            black_box(mixer.output(1));
        })
    });
}

fn leg(name: &str, payload_type: u8, clock_rate: u32, port: u16, ssrc: u32) -> LegConfig {
    LegConfig {
        codec: Codec {
            name: name.into(),
            payload_type,
            clock_rate,
            fmtp: None,
        },
        telephone_event: Some(101),
        remote: Some(SocketAddr::from(([192, 0, 2, 1], port))),
        latch: LatchPolicy::Continue,
        send: true,
        receive: true,
        ssrc,
        first_sequence: 1,
        rtcp_mux: true,
        detect_inband_dtmf: false,
    }
}

/// 20 ms RTP packets of `voice` in codec `name` at `rate`, 50 of them (one second).
fn packets(name: &str, payload_type: u8, rate: u32, clock_rate: u32) -> Vec<Vec<u8>> {
    let mut encoder = factory::new_encoder(name, None, rate).unwrap();
    let frame = voice(encoder.info().sample_rate);
    (0..50u16)
        .map(|i| {
            let mut payload = Vec::new();
            encoder.encode(&frame, &mut payload);
            let mut datagram = Vec::new();
            RtpHeader {
                marker: false,
                payload_type,
                sequence: i,
                timestamp: u32::from(i) * clock_rate / 50,
                ssrc: 0x5555,
            }
            .write_packet(&payload, &mut datagram);
            datagram
        })
        .collect()
}

/// One call's 20 ms: a packet in on each leg and a tick. Time per iteration = the cost of
/// one call for 20 ms of audio. With `listener`, a third PCMU leg hears both (an
/// eavesdropping supervisor: both legs decoded, mixed and encoded once more).
fn call_20ms(
    c: &mut Criterion,
    bench: &str,
    a: (&str, u8, u32, u32),
    b: (&str, u8, u32, u32),
    listener: bool,
) {
    let mut shard = Shard::new("bench");
    let leg_a = shard.add_leg(leg(a.0, a.1, a.3, 4000, 1));
    let leg_b = shard.add_leg(leg(b.0, b.1, b.3, 5000, 2));
    shard.set_feed(leg_a, Feed::Leg(leg_b)).unwrap();
    shard.set_feed(leg_b, Feed::Leg(leg_a)).unwrap();
    if listener {
        let supervisor = shard.add_leg(leg("PCMU", 0, 8000, 6000, 3));
        shard
            .set_feed(supervisor, Feed::Mix(Mix::new(&[leg_a, leg_b])))
            .unwrap();
    }
    let from_a = packets(a.0, a.1, a.2, a.3);
    let from_b = packets(b.0, b.1, b.2, b.3);
    let source_a = SocketAddr::from(([192, 0, 2, 1], 4000));
    let source_b = SocketAddr::from(([192, 0, 2, 1], 5000));
    let mut tick = 0u64;
    c.bench_function(bench, |bencher| {
        bencher.iter(|| {
            // Packets keep their one-second pattern; the sequence wraps with the clock.
            let index = (tick % 50) as usize;
            let now = tick * 20;
            let mut pa = from_a[index].clone();
            let mut pb = from_b[index].clone();
            for (packet, units) in [(&mut pa, a.3 / 50), (&mut pb, b.3 / 50)] {
                packet[2..4].copy_from_slice(&(tick as u16).to_be_bytes());
                packet[4..8].copy_from_slice(&((tick as u32).wrapping_mul(units)).to_be_bytes());
            }
            shard.handle_datagram(leg_a, source_a, &pa, false, now);
            shard.handle_datagram(leg_b, source_b, &pb, false, now);
            shard.handle_tick(now);
            black_box(shard.transmits().len());
            shard.clear_transmits();
            tick += 1;
        })
    });
}

fn bridge_benches(c: &mut Criterion) {
    // Pass-through: both directions forwarded on receive, nothing decoded.
    call_20ms(
        c,
        "bridge/pass-through_PCMU_call_20ms",
        ("PCMU", 0, 8000, 8000),
        ("PCMU", 0, 8000, 8000),
        false,
    );
    // The same call with a supervisor listening in (eavesdrop).
    call_20ms(
        c,
        "bridge/pass-through_PCMU_call_with_listener_20ms",
        ("PCMU", 0, 8000, 8000),
        ("PCMU", 0, 8000, 8000),
        true,
    );
    call_20ms(
        c,
        "bridge/PCMU-opus_call_20ms",
        ("PCMU", 0, 8000, 8000),
        ("opus", 111, 8000, 48_000),
        false,
    );
    call_20ms(
        c,
        "bridge/PCMU-G729_call_20ms",
        ("PCMU", 0, 8000, 8000),
        ("G729", 18, 8000, 8000),
        false,
    );
    call_20ms(
        c,
        "bridge/PCMU-G722_call_20ms",
        ("PCMU", 0, 8000, 8000),
        ("G722", 9, 16_000, 8000),
        false,
    );
}

criterion_group!(media, benches);
criterion_main!(media);
