//! Sample-rate conversion for the media engine (8, 16 and 48 kHz between codecs, the mixer and
//! Opus) and for prompt files of any rate.
//!
//! A streaming windowed-sinc interpolator: each output sample is the sum of [`TAPS`] input
//! samples around its position weighted by a Kaiser-windowed sinc, taken from a table of
//! [`PHASES`] sub-sample positions. The cut-off sits below the lower of the two Nyquist
//! frequencies, so downsampling does not alias. State carries across calls, so 20 ms frames
//! convert without seams. Allocation happens once, at construction.
//!
//! What this module does not do: rates above 192 kHz, or channel mixing.

/// Input samples weighed per output sample.
pub const TAPS: usize = 32;
/// Sub-sample positions in the filter table.
pub const PHASES: usize = 256;

/// Kaiser window shape: about 80 dB of stop-band attenuation.
const KAISER_BETA: f64 = 8.0;

/// A streaming resampler from one rate to another (mono).
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    /// PHASES + 1 rows of TAPS coefficients.
    table: Vec<f32>,
    /// The last TAPS input samples, oldest first, then the new ones of a call.
    history: Vec<f32>,
    /// The position of the next output sample, in input samples from `history[0]`, as a
    /// fraction `numerator / to`.
    position: u64,
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz.
    ///
    /// # Panics
    /// If a rate is 0 or above 192 kHz (a caller's bug: rates come from codec tables).
    pub fn new(from: u32, to: u32) -> Resampler {
        assert!(
            (1..=192_000).contains(&from) && (1..=192_000).contains(&to),
            "sample rates must be 1..=192000 Hz"
        );
        // The cut-off, as a fraction of the input rate's Nyquist frequency.
        let cutoff = if to < from {
            f64::from(to) / f64::from(from)
        } else {
            1.0
        } * 0.92;
        let half = (TAPS / 2) as f64;
        let mut table = Vec::with_capacity((PHASES + 1) * TAPS);
        for phase in 0..=PHASES {
            let fraction = phase as f64 / PHASES as f64;
            let mut row: Vec<f64> = (0..TAPS)
                .map(|tap| {
                    // Distance from the output position to input sample `tap`.
                    let x = tap as f64 - (half - 1.0) - fraction;
                    sinc(x * cutoff) * cutoff * kaiser(x / half)
                })
                .collect();
            // Unity gain at DC for every phase.
            let sum: f64 = row.iter().sum();
            if sum.abs() > 1e-9 {
                row.iter_mut().for_each(|c| *c /= sum);
            }
            table.extend(row.into_iter().map(|c| c as f32));
        }
        Resampler {
            from,
            to,
            table,
            history: vec![0.0; TAPS],
            position: 0,
        }
    }

    /// Converts `input`, appending the output samples to `out` (about `input.len() × to /
    /// from` of them).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.from == self.to {
            out.extend_from_slice(input);
            return;
        }
        self.history.extend(input.iter().map(|&s| f32::from(s)));
        let from = u64::from(self.from);
        let to = u64::from(self.to);
        // Output positions are kept in units of 1/to input samples.
        while (self.position / to) as usize + TAPS <= self.history.len() {
            let start = (self.position / to) as usize;
            let fraction = (self.position % to) as f64 / to as f64;
            let scaled = fraction * PHASES as f64;
            let phase = scaled as usize;
            let blend = (scaled - phase as f64) as f32;
            let a = &self.table[phase * TAPS..(phase + 1) * TAPS];
            let b = &self.table[(phase + 1) * TAPS..(phase + 2) * TAPS];
            let window = &self.history[start..start + TAPS];
            let mut sum = 0.0f32;
            for ((x, ca), cb) in window.iter().zip(a).zip(b) {
                sum += x * (ca + (cb - ca) * blend);
            }
            out.push(sum.round().clamp(-32_768.0, 32_767.0) as i16);
            self.position += from;
        }
        // Keep what the next output samples still need.
        let consumed = (self.position / to) as usize;
        self.history.drain(..consumed);
        self.position -= consumed as u64 * to;
    }
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// The Kaiser window at `x` in −1..1.
fn kaiser(x: f64) -> f64 {
    if x.abs() > 1.0 {
        return 0.0;
    }
    bessel_i0(KAISER_BETA * (1.0 - x * x).sqrt()) / bessel_i0(KAISER_BETA)
}

/// The modified Bessel function of order 0, by its series.
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    for k in 1..30 {
        term *= (x / (2.0 * k as f64)).powi(2);
        sum += term;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frequency: f64, rate: u32, seconds: f64) -> Vec<i16> {
        (0..(f64::from(rate) * seconds) as usize)
            .map(|n| {
                (10_000.0 * (std::f64::consts::TAU * frequency * n as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    /// The amplitude of `frequency` in `samples` (Goertzel, normalised to a sine's peak).
    fn amplitude(samples: &[i16], frequency: f64, rate: u32) -> f64 {
        let coefficient = 2.0 * (std::f64::consts::TAU * frequency / f64::from(rate)).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in samples {
            let s = f64::from(x) + coefficient * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        (s1 * s1 + s2 * s2 - coefficient * s1 * s2).sqrt() * 2.0 / samples.len() as f64
    }

    /// Converts in 20 ms pieces, as the media engine does.
    fn convert(input: &[i16], from: u32, to: u32) -> Vec<i16> {
        let mut resampler = Resampler::new(from, to);
        let mut out = Vec::new();
        for piece in input.chunks((from / 50) as usize) {
            resampler.process(piece, &mut out);
        }
        out
    }

    #[test]
    fn tones_keep_their_frequency_and_level_across_the_engines_rates() {
        for (from, to) in [
            (8000, 16_000),
            (16_000, 8000),
            (8000, 48_000),
            (48_000, 8000),
            (16_000, 48_000),
            (44_100, 8000),
            (22_050, 16_000),
        ] {
            let out = convert(&tone(1000.0, from, 1.0), from, to);
            let expected = f64::from(to);
            assert!(
                (out.len() as f64 - expected).abs() < 40.0,
                "{from}->{to}: {} samples",
                out.len()
            );
            // Skip the filter's start-up.
            let settled = &out[(to / 50) as usize..];
            let level = amplitude(settled, 1000.0, to);
            assert!(
                (level - 10_000.0).abs() < 300.0,
                "{from}->{to}: amplitude {level:.0}"
            );
        }
    }

    #[test]
    fn downsampling_does_not_alias() {
        // 6 kHz at 16 kHz would fold to 2 kHz at 8 kHz.
        let out = convert(&tone(6000.0, 16_000, 1.0), 16_000, 8000);
        let alias = amplitude(&out[160..], 2000.0, 8000);
        assert!(
            alias < 10_000.0 * 0.01,
            "alias at 2 kHz: {alias:.1} (more than −40 dB)"
        );
        // 3 kHz passes.
        let out = convert(&tone(3000.0, 16_000, 1.0), 16_000, 8000);
        assert!(amplitude(&out[160..], 3000.0, 8000) > 9000.0);
    }

    #[test]
    fn a_round_trip_through_16_khz_adds_little_noise() {
        let original = tone(700.0, 8000, 1.0);
        let up = convert(&original, 8000, 16_000);
        let back = convert(&up, 16_000, 8000);
        // Whatever the filters' delay, the result is a 700 Hz sine of the same level: the
        // power not at 700 Hz is noise and distortion.
        let settled = &back[400..7400];
        let level = amplitude(settled, 700.0, 8000);
        let total: f64 =
            settled.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / settled.len() as f64;
        let tone_power = level * level / 2.0;
        let snr_db = 10.0 * (tone_power / (total - tone_power).abs().max(1e-9)).log10();
        assert!((level - 10_000.0).abs() < 200.0, "level {level:.0}");
        assert!(snr_db > 40.0, "round trip SNR {snr_db:.1} dB");
    }

    #[test]
    fn the_same_rate_passes_samples_through() {
        let mut resampler = Resampler::new(8000, 8000);
        let mut out = Vec::new();
        resampler.process(&[1, 2, 3], &mut out);
        assert_eq!(out, [1, 2, 3]);
    }
}
