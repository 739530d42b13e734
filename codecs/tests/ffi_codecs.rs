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
    let granule = decoder.info().frame_samples;
    garbage_in(decoder, granule);
}

/// As [`garbage`], for codecs whose output comes in steps of `granule` samples.
fn garbage_in(decoder: &mut dyn Decoder, granule: usize) {
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
            assert_eq!(out.len() % granule, 0, "{} bytes", payload.len());
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
    decoder.conceal_frame(&mut out);
    assert_eq!(out.len(), 80);
    decoder.conceal(170, &mut out);
    assert_eq!(out.len(), 250);
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

/// A `frequency` tone of `seconds` at `rate`, amplitude 8000.
fn tone_at(frequency: f64, rate: u32, seconds: usize) -> Vec<i16> {
    (0..rate as usize * seconds)
        .map(|n| {
            (8000.0 * (2.0 * std::f64::consts::PI * frequency * n as f64 / f64::from(rate)).sin())
                as i16
        })
        .collect()
}

/// The power of `samples` at `frequency` for audio at `rate` (Goertzel).
fn power_at_rate(samples: &[i16], frequency: f64, rate: u32) -> f64 {
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = f64::from(x) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

#[test]
fn opus_round_trip_keeps_the_tone_at_8_16_and_48_khz() {
    use rswitch_codecs::opus::{OpusDecoder, OpusEncoder, OpusParams};
    for (rate, frequency) in [(8000, 1000.0), (16_000, 5000.0), (48_000, 5000.0)] {
        let mut encoder = OpusEncoder::new(rate, OpusParams::default()).unwrap();
        let mut decoder = OpusDecoder::new(rate).unwrap();
        let input = tone_at(frequency, rate, 1);
        let mut decoded = Vec::new();
        let mut bytes = 0;
        for frame in input.chunks(rate as usize / 50) {
            let mut payload = Vec::new();
            encoder.encode(frame, &mut payload);
            assert!(!payload.is_empty() && payload.len() <= 1275);
            bytes += payload.len();
            decoder.decode(&payload, &mut decoded);
        }
        assert_eq!(decoded.len(), input.len(), "{rate} Hz");
        // 24 kbit/s by default: about 60 bytes per 20 ms, VBR.
        assert!(
            (1500..=4500).contains(&bytes),
            "{rate} Hz: {bytes} bytes in 1 s"
        );
        let settled = &decoded[decoded.len() / 5..];
        let signal = power_at_rate(settled, frequency, rate);
        for other in [300.0, 600.0, 1500.0, 2200.0, 3000.0] {
            let noise = power_at_rate(settled, other, rate);
            assert!(
                signal > 100.0 * noise,
                "{rate} Hz: {signal:.3e} vs {other} Hz {noise:.3e}"
            );
        }
        // Opus frames last multiples of 2.5 ms.
        garbage_in(&mut OpusDecoder::new(rate).unwrap(), rate as usize / 400);
    }
}

#[test]
fn opus_rebuilds_a_lost_packet_from_in_band_fec() {
    use rswitch_codecs::opus::{OpusDecoder, OpusEncoder, OpusParams};
    let params = OpusParams::from_fmtp("useinbandfec=1; maxplaybackrate=16000");
    let mut encoder = OpusEncoder::new(16_000, params).unwrap();
    let input = tone_at(440.0, 16_000, 1);
    let packets: Vec<Vec<u8>> = input
        .chunks(320)
        .map(|frame| {
            let mut payload = Vec::new();
            encoder.encode(frame, &mut payload);
            payload
        })
        .collect();
    let mut decoder = OpusDecoder::new(16_000).unwrap();
    let mut decoded = Vec::new();
    for (index, packet) in packets.iter().enumerate() {
        if index == 30 {
            continue; // lost: rebuilt from packet 31 below
        }
        if index == 31 {
            decoder.recover(packet, 320, &mut decoded);
        }
        decoder.decode(packet, &mut decoded);
    }
    assert_eq!(decoded.len(), input.len());
    let rebuilt = &decoded[30 * 320..31 * 320];
    let energy: f64 = rebuilt.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 320.0;
    assert!(
        energy.sqrt() > 2000.0,
        "the rebuilt frame carries the tone: rms {}",
        energy.sqrt()
    );
}
