//! The C-library codecs through their wrappers: a tone survives a round trip at its
//! frequency, frame sizes are what the RTP payload formats say, and garbage payloads decode
//! to something or nothing, never a crash. (Speech quality against reference encoders is
//! measured with PESQ by the media tests.)

use rswitch_codecs::amrnb::{AmrDecoder, AmrEncoder, AmrMode};
#[cfg(feature = "g729")]
use rswitch_codecs::g729::{G729Decoder, G729Encoder};
use rswitch_codecs::gsm::{GsmDecoder, GsmEncoder};
use rswitch_codecs::{Decoder, Encoder};

/// One second of a `frequency` tone at 8 kHz, amplitude 8000.
fn tone(frequency: f64) -> Vec<i16> {
    (0..8000)
        .map(|n| {
            (8000.0 * (2.0 * std::f64::consts::PI * frequency * f64::from(n) / 8000.0).sin()) as i16
        })
        .collect()
}

/// The power of `samples` at `frequency` (Goertzel).
fn power_at(samples: &[i16], frequency: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / 8000.0).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = f64::from(x) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

/// Encodes and decodes one second of a 1 kHz tone 20 ms at a time; checks the sizes and that
/// 1 kHz dominates the decoded audio (after the first 200 ms, where decoders warm up).
fn round_trip(encoder: &mut dyn Encoder, decoder: &mut dyn Decoder, bytes_per_20ms: usize) {
    let input = tone(1000.0);
    let mut decoded = Vec::new();
    for frame in input.chunks(160) {
        let mut payload = Vec::new();
        encoder.encode(frame, &mut payload);
        assert_eq!(payload.len(), bytes_per_20ms, "{}", encoder.info().name);
        decoder.decode(&payload, &mut decoded);
    }
    assert_eq!(decoded.len(), input.len(), "{}", decoder.info().name);
    let settled = &decoded[1600..];
    let signal = power_at(settled, 1000.0);
    for other in [300.0, 600.0, 1500.0, 2200.0, 3000.0] {
        let noise = power_at(settled, other);
        assert!(
            signal > 100.0 * noise,
            "{}: 1 kHz {signal:.3e} vs {other} Hz {noise:.3e}",
            decoder.info().name
        );
    }
}

/// Random payloads of every length up to 80 bytes: decoding never crashes.
fn garbage(decoder: &mut dyn Decoder) {
    let mut seed = 0x5eed_c0de_u64;
    for length in 0..80 {
        for _ in 0..50 {
            let payload: Vec<u8> = (0..length)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let mut out = Vec::new();
            decoder.decode(&payload, &mut out);
            assert_eq!(out.len() % decoder.info().frame_samples, 0);
        }
    }
}

#[test]
fn gsm_round_trip_keeps_the_tone_in_33_byte_frames() {
    round_trip(&mut GsmEncoder::new(), &mut GsmDecoder::new(), 33);
    garbage(&mut GsmDecoder::new());
}

#[cfg(feature = "g729")]
#[test]
fn g729_round_trip_keeps_the_tone_in_two_10_byte_frames() {
    round_trip(&mut G729Encoder::new(false), &mut G729Decoder::new(), 20);
    garbage(&mut G729Decoder::new());
    let mut decoder = G729Decoder::new();
    let mut out = Vec::new();
    decoder.conceal(&mut out);
    assert_eq!(out.len(), 80);
}

#[test]
fn amr_round_trip_keeps_the_tone_at_every_mode() {
    for (mode, bytes) in [
        (AmrMode::Mr122, 32),
        (AmrMode::Mr102, 27),
        (AmrMode::Mr795, 21),
        (AmrMode::Mr74, 20),
        (AmrMode::Mr67, 18),
        (AmrMode::Mr59, 16),
        (AmrMode::Mr515, 14),
        (AmrMode::Mr475, 13),
    ] {
        round_trip(
            &mut AmrEncoder::new(mode, false),
            &mut AmrDecoder::new(),
            bytes,
        );
    }
    garbage(&mut AmrDecoder::new());
}
