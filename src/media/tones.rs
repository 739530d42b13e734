//! Call-progress tones: a tone (one or two frequencies at a level) played in a cadence, frame
//! by frame, phase-continuous.
//!
//! The defaults are China's (YD/T 1277: 450 Hz): dial tone continuous, ringback 1 s on 4 s off,
//! busy 0.35 s on 0.35 s off, congestion 0.7 s on 0.7 s off. Other countries' tones are a
//! configuration of the same [`ToneSpec`]. What this module does not do: mixing with other
//! audio, or encoding.

use std::f64::consts::TAU;

/// The peak amplitude of a 0 dBm0 sine in 16-bit linear PCM.
const ZERO_DBM0_PEAK: f64 = 22_767.0;

/// A tone and its cadence.
#[derive(Debug, Clone, PartialEq)]
pub struct ToneSpec {
    /// One or two frequencies, Hz.
    pub frequencies: Vec<f64>,
    /// The level of each frequency, dBm0.
    pub level_dbm0: f64,
    /// (on, off) periods in milliseconds, repeated; empty = continuous.
    pub cadence: Vec<(u32, u32)>,
}

impl ToneSpec {
    /// 450 Hz continuous.
    pub fn china_dial() -> ToneSpec {
        ToneSpec::china(&[])
    }

    /// 450 Hz, 1 s on, 4 s off.
    pub fn china_ringback() -> ToneSpec {
        ToneSpec::china(&[(1000, 4000)])
    }

    /// 450 Hz, 0.35 s on, 0.35 s off.
    pub fn china_busy() -> ToneSpec {
        ToneSpec::china(&[(350, 350)])
    }

    /// 450 Hz, 0.7 s on, 0.7 s off.
    pub fn china_congestion() -> ToneSpec {
        ToneSpec::china(&[(700, 700)])
    }

    fn china(cadence: &[(u32, u32)]) -> ToneSpec {
        ToneSpec {
            frequencies: vec![450.0],
            level_dbm0: -10.0,
            cadence: cadence.to_vec(),
        }
    }

    /// Reads `"450"`, `"350+440"` and a cadence `"1000/4000"` or `"400/200,400/2000"` (empty
    /// for continuous); `None` when either does not read.
    pub fn parse(frequencies: &str, cadence: &str, level_dbm0: f64) -> Option<ToneSpec> {
        let frequencies: Vec<f64> = frequencies
            .split('+')
            .map(|f| {
                f.trim()
                    .parse()
                    .ok()
                    .filter(|f: &f64| (20.0..4000.0).contains(f))
            })
            .collect::<Option<_>>()?;
        if frequencies.is_empty() || frequencies.len() > 2 {
            return None;
        }
        let cadence = if cadence.trim().is_empty() {
            Vec::new()
        } else {
            cadence
                .split(',')
                .map(|period| {
                    let (on, off) = period.trim().split_once('/')?;
                    Some((on.trim().parse().ok()?, off.trim().parse().ok()?))
                })
                .collect::<Option<Vec<(u32, u32)>>>()?
        };
        if cadence.iter().any(|&(on, off)| on == 0 && off == 0) {
            return None;
        }
        Some(ToneSpec {
            frequencies,
            level_dbm0,
            cadence,
        })
    }
}

/// Plays a [`ToneSpec`] at a sample rate.
#[derive(Debug, Clone)]
pub struct TonePlayer {
    spec: ToneSpec,
    sample_rate: u32,
    amplitude: f64,
    /// Samples since the start.
    position: u64,
    /// The cadence's length, samples (0 when continuous).
    period: u64,
}

impl TonePlayer {
    pub fn new(spec: ToneSpec, sample_rate: u32) -> TonePlayer {
        let samples = |ms: u32| u64::from(ms) * u64::from(sample_rate) / 1000;
        let period = spec
            .cadence
            .iter()
            .map(|&(on, off)| samples(on) + samples(off))
            .sum();
        TonePlayer {
            amplitude: ZERO_DBM0_PEAK * 10f64.powf(spec.level_dbm0 / 20.0),
            spec,
            sample_rate,
            position: 0,
            period,
        }
    }

    /// Whether the tone sounds at sample `position` of its cadence.
    fn is_on(&self, position: u64) -> bool {
        if self.period == 0 {
            return true;
        }
        let mut at = position % self.period;
        let samples = |ms: u32| u64::from(ms) * u64::from(self.sample_rate) / 1000;
        for &(on, off) in &self.spec.cadence {
            if at < samples(on) {
                return true;
            }
            at -= samples(on);
            if at < samples(off) {
                return false;
            }
            at -= samples(off);
        }
        false
    }

    /// Appends the next `count` samples.
    pub fn fill(&mut self, count: usize, out: &mut Vec<i16>) {
        let step = TAU / f64::from(self.sample_rate);
        for _ in 0..count {
            let value = if self.is_on(self.position) {
                let t = self.position as f64 * step;
                self.spec
                    .frequencies
                    .iter()
                    .map(|f| (f * t).sin())
                    .sum::<f64>()
                    * self.amplitude
            } else {
                0.0
            };
            out.push(value.clamp(-32_768.0, 32_767.0) as i16);
            self.position += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of sound and of silence in `samples` at 8 kHz, by 10 ms windows.
    fn on_off_pattern(samples: &[i16]) -> Vec<bool> {
        samples
            .chunks(80)
            .map(|w| w.iter().any(|&s| s.unsigned_abs() > 100))
            .collect()
    }

    #[test]
    fn china_ringback_is_one_second_on_four_off_at_450_hz() {
        let mut player = TonePlayer::new(ToneSpec::china_ringback(), 8000);
        let mut samples = Vec::new();
        player.fill(8000 * 10, &mut samples);
        let pattern = on_off_pattern(&samples);
        assert!(pattern[..100].iter().all(|&on| on));
        assert!(pattern[100..500].iter().all(|&on| !on));
        assert!(
            pattern[500..600].iter().all(|&on| on),
            "the cadence repeats"
        );
        // 450 Hz: 9 cycles in 20 ms give 18 sign changes.
        let crossings = samples[..160]
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((17..=19).contains(&crossings), "{crossings}");
        // About −10 dBm0: peak ≈ 7200.
        let peak = samples[..800]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap_or(0);
        assert!((7000..7300).contains(&peak), "{peak}");
    }

    #[test]
    fn busy_and_congestion_cadences() {
        for (spec, on_windows) in [
            (ToneSpec::china_busy(), 35),
            (ToneSpec::china_congestion(), 70),
        ] {
            let mut player = TonePlayer::new(spec, 8000);
            let mut samples = Vec::new();
            player.fill(8000 * 3, &mut samples);
            let pattern = on_off_pattern(&samples);
            assert!(pattern[..on_windows].iter().all(|&on| on));
            assert!(pattern[on_windows..2 * on_windows].iter().all(|&on| !on));
        }
    }

    #[test]
    fn tone_specs_read_from_configuration_text() {
        let us_ringback = ToneSpec::parse("440+480", "2000/4000", -16.0).expect("reads");
        assert_eq!(us_ringback.frequencies, [440.0, 480.0]);
        assert_eq!(us_ringback.cadence, [(2000, 4000)]);
        let uk_ring = ToneSpec::parse("400+450", "400/200,400/2000", -16.0).expect("reads");
        assert_eq!(uk_ring.cadence.len(), 2);
        assert_eq!(
            ToneSpec::parse("450", "", -10.0),
            Some(ToneSpec::china_dial())
        );
        for (frequencies, cadence) in [
            ("", ""),
            ("x", ""),
            ("1+2+3", ""),
            ("450", "1000"),
            ("450", "0/0"),
            ("9000", ""),
        ] {
            assert_eq!(
                ToneSpec::parse(frequencies, cadence, -10.0),
                None,
                "{frequencies} {cadence}"
            );
        }
    }
}
