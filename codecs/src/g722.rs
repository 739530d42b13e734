//! G.722 (RTP payload type 9): 7 kHz wideband audio at 64 kbit/s, per ITU-T G.722, in Rust.
//!
//! The codec takes 16 kHz PCM, splits it with a 24-tap quadrature mirror filter (QMF) into
//! a lower and a higher sub-band of 8 kHz each, and codes each with backward-adaptive ADPCM:
//! 6 bits per sample for the lower band, 2 for the higher. Two PCM samples become one byte,
//! `ihigh << 6 | ilow`, so a 20 ms frame of 320 samples is 160 bytes. Every step follows the
//! recommendation's fixed-point blocks (quantisers, inverse quantisers, log scale factor
//! adaptation, the pole-zero predictor with its limits) with the 16-bit saturating arithmetic
//! of the ITU reference implementation. No allocation beyond appending to the caller's
//! buffer; no `unsafe`; no input can make it panic.
//!
//! What it does not do:
//! - Modes 2 and 3 (56 and 48 kbit/s, which steal one or two low-band bits for data): the
//!   encoder always writes mode 1, and the decoder reads every byte as mode 1. RTP payload
//!   type 9 is mode 1 in practice.
//! - Packet loss concealment (G.722 Appendix III/IV): [`Decoder::conceal`] plays silence.
//! - The SDP clock rate: RFC 3551 writes `G722/8000` for historical reasons although the audio
//!   is sampled at 16 kHz; [`G722`] states the real rate, and whoever writes SDP or RTP
//!   timestamps (which also count at 8000 per second) must apply the RFC's rule.
//!
//! Levels: PCM in and out is 16-bit. As in the ITU's 16-bit reference and other common
//! implementations, the transmit QMF scales its input down to the 15-bit range the ADPCM
//! works in, and the receive QMF scales back up, so a signal comes out at its own level.
//!
//! Bit-exactness: the encoder's bytes and the decoder's samples are identical to FFmpeg's
//! G.722 (trellis search off, its default), which follows the ITU reference, on speech, sweeps,
//! noise and full-scale square waves; the `known_answer_matches_ffmpeg` test keeps it so.
//! The two part ways only where the ITU reference saturates and FFmpeg does not: the encoder
//! limits each sub-band sample out of the transmit QMF to 15 bits (FFmpeg does not), which
//! matters only for input clipped hard near full scale; and the predictor's zero section sums
//! its six taps with 16-bit saturation (FFmpeg in 32 bits), which only contrived code streams
//! reach.

use crate::{CodecInfo, Decoder, Encoder};

/// G.722: static payload type 9, 16 kHz PCM, two samples per byte.
pub const G722: CodecInfo = CodecInfo {
    name: "G722",
    sample_rate: 16_000,
    static_payload_type: Some(9),
    frame_samples: 2,
};

/// QMF coefficients h(0)..h(23), shared by the transmit and the receive filter. The filter
/// is symmetric, and the even and the odd taps each sum to 4096 (its DC gain per branch).
const QMF_COEFFICIENTS: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

/// Lower band quantiser decision levels (Q6 in the recommendation), for intervals 1..=29,
/// relative to the scale factor; index 0 is unused.
const LOW_DECISION_LEVELS: [i32; 30] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
];

/// 6-bit code of a negative lower band difference in quantiser interval 1..=30 (ILN).
const LOW_CODE_NEGATIVE: [u8; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4,
];

/// 6-bit code of a non-negative lower band difference in quantiser interval 1..=30 (ILP).
const LOW_CODE_POSITIVE: [u8; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32,
];

/// Lower band inverse quantiser for the full 6-bit code (QM6), the output value of the
/// decoder; multiplied by the scale factor and shifted right by 15. Codes 0..=3 do not occur
/// in encoder output.
const LOW_INVERSE_6BIT: [i16; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];

/// Lower band inverse quantiser for the 4 most significant code bits (QM4). The predictor
/// and the scale factor adapt on this coarser value only, so encoder and decoder stay in step
/// whichever mode the decoder runs in.
const LOW_INVERSE_4BIT: [i16; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];

/// Lower band log scale factor multiplier (WL), indexed through [`LOW_MAGNITUDE_CLASS`].
const LOW_LOG_STEP: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];

/// Magnitude class 0..=7 of a 4-bit lower band code (RL42).
const LOW_MAGNITUDE_CLASS: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];

/// Upper limit of the lower band log scale factor.
const LOW_LOG_SCALE_MAX: i32 = 18432;

/// Higher band inverse quantiser for the 2-bit code (QM2).
const HIGH_INVERSE_2BIT: [i16; 4] = [-7408, -1616, 7408, 1616];

/// Higher band log scale factor multiplier (WH), indexed through [`HIGH_MAGNITUDE_CLASS`].
const HIGH_LOG_STEP: [i32; 3] = [0, -214, 798];

/// Magnitude class 1 (inner) or 2 (outer) of a 2-bit higher band code (RH2).
const HIGH_MAGNITUDE_CLASS: [usize; 4] = [2, 1, 2, 1];

/// Higher band code of a negative difference in interval 1 (inner) or 2 (outer) (IHN).
const HIGH_CODE_NEGATIVE: [u8; 3] = [0, 1, 0];

/// Higher band code of a non-negative difference in interval 1 or 2 (IHP).
const HIGH_CODE_POSITIVE: [u8; 3] = [0, 3, 2];

/// The higher band quantiser's single decision level (Q2), relative to the scale factor.
const HIGH_DECISION_LEVEL: i32 = 564;

/// Upper limit of the higher band log scale factor.
const HIGH_LOG_SCALE_MAX: i32 = 22528;

/// 2^(i/32) in Q11 (ILB): the mantissa of the log-to-linear scale factor conversion.
const INVERSE_LOG_MANTISSA: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

/// Clamps to the 16-bit range: the ITU basic operators saturate rather than wrap.
fn saturate(value: i32) -> i16 {
    value.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// The ITU basic operator `mult`: the Q15 product `(a * b) >> 15`, saturated.
fn mult(a: i16, b: i16) -> i16 {
    saturate((i32::from(a) * i32::from(b)) >> 15)
}

/// The LIMIT block: a reconstructed sub-band signal stays within 15 bits.
fn limit(value: i32) -> i16 {
    value.clamp(-16384, 16383) as i16
}

/// The sign test of the recommendation, which counts zero as positive.
fn same_sign(a: i16, b: i16) -> bool {
    (a < 0) == (b < 0)
}

/// `|value|` as the quantisers compare it: ones' complement for negatives, which cannot
/// overflow.
fn quantiser_magnitude(value: i16) -> i32 {
    i32::from(if value < 0 { !value } else { value })
}

/// SCALEL / SCALEH: the linear scale factor from the log one. `offset` is 8 for the lower
/// band and 10 for the higher.
fn scale_from_log(log_scale: i16, offset: i32) -> i16 {
    let mantissa = INVERSE_LOG_MANTISSA[((log_scale >> 6) & 31) as usize];
    let exponent = i32::from(log_scale >> 11);
    let linear = if exponent > offset {
        mantissa << (exponent - offset).min(15)
    } else {
        mantissa >> (offset - exponent).min(31)
    };
    saturate(linear << 2)
}

/// Block 4 of the recommendation, the same for both sub-bands: the adaptive predictor with
/// a 2-pole and a 6-zero section, and the signal estimate it makes for the next sample.
#[derive(Debug, Clone, Copy, Default)]
struct AdaptivePredictor {
    /// Pole section coefficients a1 and a2 (Q14).
    poles: [i16; 2],
    /// Zero section coefficients b1..b6.
    zeros: [i16; 6],
    /// Quantised difference signal, newest first: d(n-1)..d(n-6).
    past_differences: [i16; 6],
    /// Partially reconstructed signal (zero-section estimate plus difference), newest first.
    past_partial: [i16; 2],
    /// Reconstructed signal of the previous sample.
    past_reconstructed: i16,
    /// The zero section's contribution to the estimate.
    zero_estimate: i16,
    /// The signal estimate for the next sample.
    estimate: i16,
}

impl AdaptivePredictor {
    /// Feeds the quantised difference `difference` of the current sample: updates the
    /// coefficients and computes the estimate for the next sample.
    fn update(&mut self, difference: i16) {
        // RECONS and PARREC.
        let reconstructed = self.estimate.saturating_add(difference);
        let partial = difference.saturating_add(self.zero_estimate);

        // UPZERO: each zero coefficient leaks by 1/256 and steps by 128 towards the sign
        // agreement of this difference with the one it multiplies (no step when it is 0).
        let step: i16 = if difference == 0 { 0 } else { 128 };
        for (zero, &past) in self.zeros.iter_mut().zip(&self.past_differences) {
            let leaked = mult(*zero, 32640);
            *zero = if same_sign(difference, past) {
                leaked.saturating_add(step)
            } else {
                leaked.saturating_sub(step)
            };
        }
        self.past_differences.copy_within(0..5, 1);
        self.past_differences[0] = difference;

        // UPPOL2: the second pole coefficient, limited to ±0.75.
        let [pole1, pole2] = self.poles;
        let agrees_with_last = same_sign(partial, self.past_partial[0]);
        let agrees_with_second_last = same_sign(partial, self.past_partial[1]);
        let pole1_times_4 = saturate(i32::from(pole1) << 2);
        let gradient = if agrees_with_last {
            pole1_times_4.saturating_neg()
        } else {
            pole1_times_4
        } >> 7;
        let sign_term: i16 = if agrees_with_second_last { 128 } else { -128 };
        let pole2 = (gradient + sign_term)
            .saturating_add(mult(pole2, 32512))
            .clamp(-12288, 12288);

        // UPPOL1: the first pole coefficient, limited to keep the section stable.
        let pole1_step: i16 = if agrees_with_last { 192 } else { -192 };
        let pole1_limit = 15360 - pole2;
        let pole1 = pole1_step
            .saturating_add(mult(pole1, 32640))
            .clamp(-pole1_limit, pole1_limit);
        self.poles = [pole1, pole2];
        self.past_partial = [partial, self.past_partial[0]];

        // FILTEZ, summed from the oldest tap as the reference does (saturation is
        // order-dependent).
        let mut zero_estimate: i16 = 0;
        for (&zero, &past) in self.zeros.iter().zip(&self.past_differences).rev() {
            zero_estimate = zero_estimate.saturating_add(mult(past.saturating_add(past), zero));
        }

        // FILTEP and PREDIC.
        let pole_estimate = mult(pole1, reconstructed.saturating_add(reconstructed))
            .saturating_add(mult(
                pole2,
                self.past_reconstructed
                    .saturating_add(self.past_reconstructed),
            ));
        self.past_reconstructed = reconstructed;
        self.zero_estimate = zero_estimate;
        self.estimate = pole_estimate.saturating_add(zero_estimate);
    }
}

/// The ADPCM state of one sub-band: the predictor and the quantiser scale factor.
#[derive(Debug, Clone, Copy)]
struct SubBand {
    predictor: AdaptivePredictor,
    /// Log scale factor (NBL / NBH).
    log_scale: i16,
    /// Linear scale factor (DETL / DETH), what the quantisers multiply by.
    scale: i16,
}

impl SubBand {
    fn lower() -> SubBand {
        SubBand {
            predictor: AdaptivePredictor::default(),
            log_scale: 0,
            scale: 32,
        }
    }

    fn higher() -> SubBand {
        SubBand {
            predictor: AdaptivePredictor::default(),
            log_scale: 0,
            scale: 8,
        }
    }

    /// Blocks 2L to 4L after the lower band code `code6` (6 bits): the inverse quantised
    /// difference from its top 4 bits (INVQAL), the scale factor adaptation (LOGSCL,
    /// SCALEL), and the predictor update.
    fn adapt_lower(&mut self, code6: u8) {
        let code4 = usize::from(code6 >> 2);
        let difference = mult(self.scale, LOW_INVERSE_4BIT[code4]);
        let leaked = (i32::from(self.log_scale) * 127) >> 7;
        let log_scale = leaked + LOW_LOG_STEP[LOW_MAGNITUDE_CLASS[code4]];
        self.log_scale = log_scale.clamp(0, LOW_LOG_SCALE_MAX) as i16;
        self.scale = scale_from_log(self.log_scale, 8);
        self.predictor.update(difference);
    }

    /// Blocks 2H to 4H after the higher band code `code2` (2 bits).
    fn adapt_higher(&mut self, code2: u8) {
        let code2 = usize::from(code2 & 3);
        let difference = mult(self.scale, HIGH_INVERSE_2BIT[code2]);
        let leaked = (i32::from(self.log_scale) * 127) >> 7;
        let log_scale = leaked + HIGH_LOG_STEP[HIGH_MAGNITUDE_CLASS[code2]];
        self.log_scale = log_scale.clamp(0, HIGH_LOG_SCALE_MAX) as i16;
        self.scale = scale_from_log(self.log_scale, 10);
        self.predictor.update(difference);
    }

    /// SUBTRA and QUANTL: the 6-bit lower band code of the sub-band sample `sample`.
    fn quantise_lower(&self, sample: i16) -> u8 {
        let error = sample.saturating_sub(self.predictor.estimate);
        let magnitude = quantiser_magnitude(error);
        let scale = i32::from(self.scale);
        let mut interval = 1;
        while interval < LOW_DECISION_LEVELS.len()
            && magnitude >= (LOW_DECISION_LEVELS[interval] * scale) >> 12
        {
            interval += 1;
        }
        if error < 0 {
            LOW_CODE_NEGATIVE[interval]
        } else {
            LOW_CODE_POSITIVE[interval]
        }
    }

    /// SUBTRA and QUANTH: the 2-bit higher band code of the sub-band sample `sample`.
    fn quantise_higher(&self, sample: i16) -> u8 {
        let error = sample.saturating_sub(self.predictor.estimate);
        let outer =
            quantiser_magnitude(error) >= (HIGH_DECISION_LEVEL * i32::from(self.scale)) >> 12;
        let interval = if outer { 2 } else { 1 };
        if error < 0 {
            HIGH_CODE_NEGATIVE[interval]
        } else {
            HIGH_CODE_POSITIVE[interval]
        }
    }

    /// The reconstructed sample of a code whose inverse quantiser value is `inverse`
    /// (INVQBL/INVQAH, RECONS, LIMIT), before the state adapts to it.
    fn reconstruct(&self, inverse: i16) -> i16 {
        let difference = mult(self.scale, inverse);
        limit(i32::from(self.predictor.estimate) + i32::from(difference))
    }
}

/// The two polyphase sums of the 24-tap QMF over an interleaved history, newest first:
/// (even taps, odd taps).
fn qmf_sums(history: &[i16; 24]) -> (i32, i32) {
    let mut even = 0;
    let mut odd = 0;
    for (samples, taps) in history
        .chunks_exact(2)
        .zip(QMF_COEFFICIENTS.chunks_exact(2))
    {
        even += i32::from(samples[0]) * taps[0];
        odd += i32::from(samples[1]) * taps[1];
    }
    (even, odd)
}

/// G.722 encoder (64 kbit/s).
///
/// [`Encoder::encode`] turns each pair of samples into one byte. A call with an odd number
/// of samples encodes the whole pairs and keeps the last sample, which becomes the first of
/// the next call's pairs, so a stream cut into any pieces encodes the same as in one piece.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    /// Transmit QMF input, newest first.
    qmf_history: [i16; 24],
    lower: SubBand,
    higher: SubBand,
    /// The odd sample left over from the previous call.
    pending_sample: Option<i16>,
}

impl G722Encoder {
    pub fn new() -> G722Encoder {
        G722Encoder {
            qmf_history: [0; 24],
            lower: SubBand::lower(),
            higher: SubBand::higher(),
            pending_sample: None,
        }
    }

    /// One byte from two consecutive samples.
    fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        // Transmit QMF: split into the two sub-bands, scaled to 15 bits and limited.
        self.qmf_history.copy_within(0..22, 2);
        self.qmf_history[1] = first;
        self.qmf_history[0] = second;
        let (even, odd) = qmf_sums(&self.qmf_history);
        let lower_sample = limit((even + odd) >> 14);
        let higher_sample = limit((even - odd) >> 14);

        let code_low = self.lower.quantise_lower(lower_sample);
        self.lower.adapt_lower(code_low);
        let code_high = self.higher.quantise_higher(higher_sample);
        self.higher.adapt_higher(code_high);
        (code_high << 6) | code_low
    }
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder for G722Encoder {
    fn info(&self) -> CodecInfo {
        G722
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        let mut rest = pcm;
        if let Some(first) = self.pending_sample.take() {
            match rest.split_first() {
                Some((&second, tail)) => {
                    let byte = self.encode_pair(first, second);
                    out.push(byte);
                    rest = tail;
                }
                None => {
                    self.pending_sample = Some(first);
                    return;
                }
            }
        }
        out.reserve(rest.len() / 2);
        let mut pairs = rest.chunks_exact(2);
        for pair in &mut pairs {
            let byte = self.encode_pair(pair[0], pair[1]);
            out.push(byte);
        }
        self.pending_sample = pairs.remainder().first().copied();
    }
}

/// G.722 decoder (64 kbit/s, mode 1: all 6 low band bits are audio).
///
/// Every byte becomes two samples; any byte is a valid code.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    /// Receive QMF input, newest first: interleaved difference (rl - rh) and sum (rl + rh).
    qmf_history: [i16; 24],
    lower: SubBand,
    higher: SubBand,
}

impl G722Decoder {
    pub fn new() -> G722Decoder {
        G722Decoder {
            qmf_history: [0; 24],
            lower: SubBand::lower(),
            higher: SubBand::higher(),
        }
    }

    /// Two samples from one byte.
    fn decode_byte(&mut self, byte: u8) -> [i16; 2] {
        let code_low = byte & 0x3F;
        let code_high = byte >> 6;

        let lower_sample = self
            .lower
            .reconstruct(LOW_INVERSE_6BIT[usize::from(code_low)]);
        self.lower.adapt_lower(code_low);
        let higher_sample = self
            .higher
            .reconstruct(HIGH_INVERSE_2BIT[usize::from(code_high)]);
        self.higher.adapt_higher(code_high);

        // Receive QMF: interleave and filter back to 16 kHz, 16 bits.
        self.qmf_history.copy_within(0..22, 2);
        self.qmf_history[1] = lower_sample.saturating_add(higher_sample);
        self.qmf_history[0] = lower_sample.saturating_sub(higher_sample);
        let (even, odd) = qmf_sums(&self.qmf_history);
        [saturate(even >> 11), saturate(odd >> 11)]
    }
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for G722Decoder {
    fn info(&self) -> CodecInfo {
        G722
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(payload.len() * 2);
        for &byte in payload {
            out.extend_from_slice(&self.decode_byte(byte));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: f64 = 16_000.0;

    fn tone(frequency: f64, amplitude: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                let phase = 2.0 * std::f64::consts::PI * frequency * n as f64 / RATE;
                (amplitude * phase.sin()).round() as i16
            })
            .collect()
    }

    /// Power of `signal` at `frequency` (Goertzel), normalised by length.
    fn goertzel_power(signal: &[i16], frequency: f64) -> f64 {
        let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / RATE).cos();
        let (mut previous, mut before_previous) = (0.0f64, 0.0f64);
        for &sample in signal {
            let current = f64::from(sample) + coefficient * previous - before_previous;
            before_previous = previous;
            previous = current;
        }
        let power = previous * previous + before_previous * before_previous
            - coefficient * previous * before_previous;
        power / (signal.len() as f64).powi(2)
    }

    fn round_trip(pcm: &[i16]) -> Vec<i16> {
        let mut encoder = G722Encoder::new();
        let mut decoder = G722Decoder::new();
        let mut bytes = Vec::new();
        let mut decoded = Vec::new();
        for frame in pcm.chunks(320) {
            bytes.clear();
            encoder.encode(frame, &mut bytes);
            decoder.decode(&bytes, &mut decoded);
        }
        decoded
    }

    /// Encodes and decodes a tone, and checks that after a warm-up its frequency dominates
    /// every other probe frequency by at least 30 dB.
    fn assert_tone_survives(frequency: f64, others: &[f64]) {
        let decoded = round_trip(&tone(frequency, 10_000.0, 16_000));
        let steady = &decoded[3_200..];
        let wanted = goertzel_power(steady, frequency);
        // A sine of amplitude A has power (A/2)^2 at its frequency: expect most of it back.
        assert!(
            wanted > 0.5 * 5_000.0f64.powi(2),
            "{frequency} Hz lost: power {wanted}"
        );
        for &other in others {
            let unwanted = goertzel_power(steady, other);
            assert!(
                wanted > 1_000.0 * unwanted,
                "{frequency} Hz vs {other} Hz: {wanted} / {unwanted}"
            );
        }
    }

    #[test]
    fn info_is_payload_type_9_at_16_khz() {
        assert_eq!(Encoder::info(&G722Encoder::new()), G722);
        assert_eq!(Decoder::info(&G722Decoder::new()), G722);
        assert_eq!(G722.static_payload_type, Some(9));
        assert_eq!(G722.sample_rate, 16_000);
        assert_eq!(G722.frame_samples, 2);
    }

    #[test]
    fn a_20_ms_frame_is_160_bytes_and_back() {
        let mut encoder = G722Encoder::new();
        let mut bytes = vec![0xAA];
        encoder.encode(&tone(440.0, 8_000.0, 320), &mut bytes);
        assert_eq!(bytes.len(), 1 + 160, "appends after what is there");
        let mut decoder = G722Decoder::new();
        let mut pcm = vec![7];
        decoder.decode(&bytes[1..], &mut pcm);
        assert_eq!(pcm.len(), 1 + 320);
        assert_eq!(pcm[0], 7);
    }

    #[test]
    fn odd_sample_counts_carry_over_to_the_next_call() {
        let input = tone(700.0, 9_000.0, 640);
        let mut whole = Vec::new();
        G722Encoder::new().encode(&input, &mut whole);

        let mut pieces = Vec::new();
        let mut encoder = G722Encoder::new();
        let mut start = 0;
        for length in [3, 0, 1, 1, 317, 5, 313] {
            encoder.encode(&input[start..start + length], &mut pieces);
            start += length;
        }
        assert_eq!(start, input.len());
        assert_eq!(pieces, whole);
    }

    #[test]
    fn tone_1khz_round_trip() {
        assert_tone_survives(1_000.0, &[250.0, 500.0, 2_000.0, 3_000.0, 5_000.0, 7_000.0]);
    }

    #[test]
    fn tone_5khz_round_trip() {
        // 5 kHz lies in the higher sub-band (4..8 kHz): it survives only if that band works.
        assert_tone_survives(5_000.0, &[1_000.0, 3_000.0, 4_000.0, 6_000.0, 7_000.0]);
    }

    #[test]
    fn silence_stays_silent() {
        let decoded = round_trip(&[0; 3_200]);
        assert!(
            decoded.iter().all(|&sample| sample.abs() <= 4),
            "{decoded:?}"
        );
        // And after speech-level sound, silence falls back to near silence.
        let mut input = tone(300.0, 12_000.0, 3_200);
        input.extend_from_slice(&[0; 8_000]);
        let decoded = round_trip(&input);
        let tail = &decoded[decoded.len() - 1_600..];
        assert!(tail.iter().all(|&sample| sample.abs() <= 8), "{tail:?}");
    }

    /// A deterministic xorshift generator, for test input without a dependency.
    struct Xorshift(u32);

    impl Xorshift {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            self.0
        }
    }

    #[test]
    fn garbage_bytes_of_every_length_decode_without_panic() {
        let mut random = Xorshift(0x1234_5678);
        let mut decoder = G722Decoder::new();
        let mut out = Vec::new();
        for length in 0..=1_000 {
            let payload: Vec<u8> = (0..length).map(|_| random.next() as u8).collect();
            out.clear();
            decoder.decode(&payload, &mut out);
            assert_eq!(out.len(), 2 * length);
        }
        // Every code, held for long runs, in a fresh decoder each.
        for byte in 0..=255u8 {
            let mut decoder = G722Decoder::new();
            out.clear();
            decoder.decode(&[byte; 4_000], &mut out);
            assert_eq!(out.len(), 8_000);
            assert_sub_band_in_bounds(&decoder.lower, LOW_LOG_SCALE_MAX);
            assert_sub_band_in_bounds(&decoder.higher, HIGH_LOG_SCALE_MAX);
        }
    }

    fn assert_sub_band_in_bounds(band: &SubBand, log_scale_max: i32) {
        assert!(
            (0..=log_scale_max).contains(&i32::from(band.log_scale)),
            "{band:?}"
        );
        assert!(band.scale > 0, "{band:?}");
        let [pole1, pole2] = band.predictor.poles;
        assert!(pole2.abs() <= 12288, "{band:?}");
        assert!(pole1.abs() <= 15360 - pole2, "{band:?}");
    }

    #[test]
    fn loud_square_wave_keeps_state_in_bounds() {
        let mut encoder = G722Encoder::new();
        let mut decoder = G722Decoder::new();
        let mut bytes = Vec::new();
        let mut decoded = Vec::new();
        // Full-scale squares of several periods (including i16::MIN), then full-scale noise.
        let mut random = Xorshift(42);
        for period in [2usize, 3, 7, 16, 40, 101, 333] {
            let input: Vec<i16> = (0..16_000)
                .map(|n| {
                    if (n / period) % 2 == 0 {
                        i16::MAX
                    } else {
                        i16::MIN
                    }
                })
                .chain((0..4_000).map(|_| random.next() as i16))
                .collect();
            for frame in input.chunks(320) {
                bytes.clear();
                encoder.encode(frame, &mut bytes);
                decoder.decode(&bytes, &mut decoded);
                for band in [&encoder.lower, &decoder.lower] {
                    assert_sub_band_in_bounds(band, LOW_LOG_SCALE_MAX);
                }
                for band in [&encoder.higher, &decoder.higher] {
                    assert_sub_band_in_bounds(band, HIGH_LOG_SCALE_MAX);
                }
            }
        }
        // Encoder and decoder track each other: their states are the same.
        assert_eq!(
            format!("{:?}", encoder.lower),
            format!("{:?}", decoder.lower)
        );
        assert_eq!(
            format!("{:?}", encoder.higher),
            format!("{:?}", decoder.higher)
        );
        // A square wave of period 40 (400 Hz) comes out loud.
        let square: Vec<i16> = (0..16_000)
            .map(|n| if (n / 20) % 2 == 0 { 20_000 } else { -20_000 })
            .collect();
        let decoded = round_trip(&square);
        let peak = decoded[1_600..].iter().map(|s| s.unsigned_abs()).max();
        assert!(peak > Some(15_000), "{peak:?}");
    }

    /// 20 ms of a deterministic, integer-only signal with content in both sub-bands: a
    /// 250 Hz triangle, a 2667 Hz square and white noise, peaking near 11500.
    fn known_answer_input() -> Vec<i16> {
        let mut random = Xorshift(0x9E37_79B9);
        (0..320)
            .map(|n: i32| {
                let triangle = (n % 64 - 32).abs() * 400 - 6400;
                let square = if (n / 3) % 2 == 0 { 3000 } else { -3000 };
                let noise = (random.next() >> 20) as i32 - 2048;
                (triangle + square + noise) as i16
            })
            .collect()
    }

    /// FFmpeg 5.1's G.722 encoder output for [`known_answer_input`], as raw 16-bit PCM fed to
    /// `ffmpeg -f s16le -ar 16000 -ac 1 -i in.raw -f g722 -c:a g722 out.g722`.
    const KNOWN_ANSWER_BYTES: [u8; 160] = [
        0x96, 0x23, 0x87, 0x23, 0x87, 0x20, 0xA0, 0x37, 0x2C, 0x29, 0x9D, 0x37, 0x33, 0x14, 0x9B,
        0xB4, 0x11, 0x15, 0x1F, 0x0F, 0x17, 0x1B, 0x10, 0x13, 0x3B, 0x51, 0xD8, 0x74, 0x1B, 0xF9,
        0x6E, 0x58, 0x38, 0x2A, 0x7F, 0x72, 0x69, 0xF6, 0x70, 0xED, 0x3D, 0x76, 0x30, 0x17, 0x7D,
        0x72, 0x12, 0x5D, 0xB7, 0x4E, 0x19, 0xDD, 0x0E, 0x52, 0xFB, 0x50, 0xD9, 0xF8, 0x95, 0x7A,
        0x31, 0x56, 0x3F, 0x2F, 0x3E, 0xF3, 0x6D, 0x77, 0x31, 0xAA, 0x7A, 0x77, 0x72, 0x54, 0x3C,
        0x31, 0xD8, 0x7E, 0x7C, 0xD3, 0x1C, 0x7F, 0xCF, 0x58, 0x5E, 0x4C, 0x12, 0xBC, 0x55, 0x7B,
        0x32, 0x15, 0x3F, 0xF5, 0xDE, 0x77, 0xAF, 0xFC, 0x72, 0x27, 0x5F, 0x6E, 0x72, 0xDD, 0x7D,
        0x77, 0x7E, 0x1E, 0xF0, 0x13, 0x7E, 0x3A, 0xD7, 0x9A, 0x1D, 0x4C, 0x5B, 0xDB, 0x0E, 0x5C,
        0xF1, 0x14, 0xDA, 0xF6, 0xDA, 0xF7, 0xF0, 0x1C, 0x3C, 0x2C, 0x7F, 0xEC, 0xEB, 0xBB, 0x32,
        0xF2, 0x1A, 0xB7, 0x6F, 0x17, 0x5F, 0xF8, 0x94, 0x5F, 0x36, 0xCC, 0x58, 0x5A, 0xD3, 0xD5,
        0xDD, 0x11, 0xBE, 0x35, 0x5D, 0x7F, 0x6F, 0x59, 0x7E, 0xF3,
    ];

    /// FNV-1a (64-bit) over the little-endian bytes of the samples.
    fn fnv1a(samples: &[i16]) -> u64 {
        samples
            .iter()
            .flat_map(|sample| sample.to_le_bytes())
            .fold(0xCBF2_9CE4_8422_2325, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3)
            })
    }

    #[test]
    fn known_answer_matches_ffmpeg() {
        let mut bytes = Vec::new();
        G722Encoder::new().encode(&known_answer_input(), &mut bytes);
        assert_eq!(bytes, KNOWN_ANSWER_BYTES, "encoder");

        // `ffmpeg -f g722 -i out.g722 -f s16le dec.raw` gives 320 samples with this hash.
        let mut pcm = Vec::new();
        G722Decoder::new().decode(&KNOWN_ANSWER_BYTES, &mut pcm);
        assert_eq!(pcm.len(), 320);
        assert_eq!(&pcm[..8], &[-1, 0, 0, -1, -1, 0, 0, -4]);
        assert_eq!(
            &pcm[312..],
            &[-4086, -10084, -8607, -5350, -3674, -1961, 862, -4933]
        );
        assert_eq!(fnv1a(&pcm), 0xB360_69B9_48F5_E699, "decoder");
    }

    /// Prints how long encoding and decoding one 20 ms frame takes. Run with
    /// `cargo test -p rswitch-codecs --release --lib g722 -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, not a check"]
    #[allow(clippy::disallowed_methods)] // reads the clock to time itself, nothing else
    fn time_one_20ms_frame() {
        let input = tone(1_000.0, 10_000.0, 320 * 500);
        let mut encoder = G722Encoder::new();
        let mut decoder = G722Decoder::new();
        let mut bytes = Vec::with_capacity(160);
        let mut pcm = Vec::with_capacity(320);
        let started = std::time::Instant::now();
        for frame in input.chunks_exact(320) {
            bytes.clear();
            pcm.clear();
            encoder.encode(frame, &mut bytes);
            decoder.decode(&bytes, &mut pcm);
            std::hint::black_box(&pcm);
        }
        let per_frame = started.elapsed() / 500;
        println!("G.722 encode + decode of one 20 ms frame: {per_frame:?}");
    }
}
