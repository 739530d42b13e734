//! Media costs per 20 ms frame: each codec's encode + decode, DTMF detection, resampling, and
//! the conference mixer per participant.
//!
//! `cargo bench --bench media`; results and the machine in benches/RESULTS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rswitch::media::dtmf::DtmfDetector;
use rswitch::media::mixer::{Mixer, ParticipantSettings};
use rswitch::media::resample::Resampler;
use rswitch_codecs::amrnb::{AmrDecoder, AmrEncoder, AmrMode};
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
    let frame = voice(8000);
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

criterion_group!(media, benches);
criterion_main!(media);
