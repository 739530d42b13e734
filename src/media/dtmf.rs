//! DTMF: RFC 4733 telephone-event payloads, tone generation, and in-band detection by the
//! Goertzel algorithm within the ITU-T Q.24 tolerances.
//!
//! The detector looks at 8 kHz audio in blocks of [`BLOCK`] samples. A block holds a
//! digit when one row and one column frequency stand out: each above an absolute floor (about
//! −30 dBm0), each well above the other frequencies of its group, within the twist limits
//! (the column tone at most 8 dB below the row tone, at most 4 dB above it), together
//! carrying most of the block's energy, and each nearer its nominal frequency than 4% either
//! side of it (a steady voice's harmonics can sit 2–3% from a row and a column frequency at
//! once); the last two are what keep speech from passing for digits.
//! A digit is reported after [`MIN_BLOCKS_ON`] such blocks in a row and ends after
//! [`MIN_BLOCKS_OFF`] blocks without it.
//!
//! SIP INFO bodies are read and written here too: `application/dtmf-relay` (`Signal=5`,
//! `Duration=160`) and `application/dtmf` (the digit alone). What this module does not do:
//! the timing of RFC 4733 packets (the media session sends them every packet time).

/// Samples per detection block at 8 kHz (12.75 ms): short enough that a 40 ms tone, however
/// it falls on the blocks, fills two of them.
pub const BLOCK: usize = 102;
/// Blocks with the same digit before it is reported: tones of 40 ms are always reported,
/// tones under 25.5 ms never (Q.24 lets a receiver reject those).
pub const MIN_BLOCKS_ON: u8 = 2;
/// Blocks without it before the digit ends.
pub const MIN_BLOCKS_OFF: u8 = 2;

/// How far off-centre the frequency probes sit, as a fraction of the tone's frequency.
const OFF_FREQUENCY: f64 = 0.04;

/// Power one harmonic spacing beyond a tone, relative to the tone, above which the pair is
/// taken for a voice (−10 dB).
const HARMONIC_LIMIT: f64 = 0.1;

const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const DIGITS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The peak amplitude of a 0 dBm0 sine in 16-bit linear PCM (G.711: +3.14 dBm0 is full
/// scale).
const ZERO_DBM0_PEAK: f64 = 22_767.0;

/// One RFC 4733 telephone-event payload (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// 0–9, 10 = `*`, 11 = `#`, 12–15 = A–D, 16 = flash.
    pub event: u8,
    /// The last packets of an event carry the end bit.
    pub end: bool,
    /// The power level, in −dBm0 (0–63).
    pub volume: u8,
    /// In timestamp units, from the event's start.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Reads the first event of a telephone-event payload; `None` when it is shorter than
    /// four bytes.
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let bytes = payload.get(..4)?;
        Some(TelephoneEvent {
            event: bytes[0],
            end: bytes[1] & 0x80 != 0,
            volume: bytes[1] & 0x3f,
            duration: u16::from_be_bytes([bytes[2], bytes[3]]),
        })
    }

    /// The four bytes of the payload.
    pub fn to_bytes(self) -> [u8; 4] {
        let [high, low] = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            high,
            low,
        ]
    }

    /// The digit of an event code.
    pub fn digit(event: u8) -> Option<char> {
        "0123456789*#ABCD".chars().nth(usize::from(event))
    }

    /// The event code of a digit (`0`–`9`, `*`, `#`, `A`–`D`, case-insensitive).
    pub fn code(digit: char) -> Option<u8> {
        "0123456789*#ABCD"
            .find(digit.to_ascii_uppercase())
            .map(|i| i as u8)
    }
}

/// A digit from the body of a SIP INFO: `application/dtmf-relay` (`Signal=` and an optional
/// `Duration=` in milliseconds, any order, case-insensitive keys) or `application/dtmf` (the
/// digit alone, or its event code). `None` for another type or no digit.
pub fn parse_info_body(content_type: &str, body: &[u8]) -> Option<(char, Option<u32>)> {
    let text = std::str::from_utf8(body).ok()?;
    let media_type = content_type.split(';').next()?.trim();
    let digit_of = |value: &str| {
        let value = value.trim();
        match value.parse::<u8>() {
            // "10"–"15": an event code (`*`, `#`, A–D); a single character is the digit.
            Ok(code) if value.len() == 2 && code <= 15 => TelephoneEvent::digit(code),
            _ => {
                let mut chars = value.chars();
                let c = chars.next()?;
                (chars.next().is_none() && TelephoneEvent::code(c).is_some())
                    .then(|| c.to_ascii_uppercase())
            }
        }
    };
    if media_type.eq_ignore_ascii_case("application/dtmf-relay") {
        let mut digit = None;
        let mut duration = None;
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "signal" => digit = digit_of(value),
                "duration" => duration = value.trim().parse().ok(),
                _ => {}
            }
        }
        return digit.map(|d| (d, duration));
    }
    if media_type.eq_ignore_ascii_case("application/dtmf") {
        return digit_of(text).map(|d| (d, None));
    }
    None
}

/// The `application/dtmf-relay` body for `digit` lasting `duration_ms`.
pub fn dtmf_relay_body(digit: char, duration_ms: u32) -> String {
    format!(
        "Signal={}\r\nDuration={duration_ms}\r\n",
        digit.to_ascii_uppercase()
    )
}

/// The row and column frequencies of a digit.
pub fn frequencies(digit: char) -> Option<(f64, f64)> {
    let digit = digit.to_ascii_uppercase();
    DIGITS.iter().enumerate().find_map(|(row, keys)| {
        keys.iter()
            .position(|&k| k == digit)
            .map(|column| (ROWS[row], COLUMNS[column]))
    })
}

/// Generates the tone pair of one digit, continuing its phase across calls.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    frequencies: (f64, f64),
    amplitude: f64,
    sample_rate: f64,
    position: u64,
}

impl ToneGenerator {
    /// The tones of `digit`, each at `level_dbm0`, at `sample_rate`; `None` for a
    /// character that is no DTMF digit.
    pub fn new(digit: char, level_dbm0: f64, sample_rate: u32) -> Option<ToneGenerator> {
        Some(ToneGenerator {
            frequencies: frequencies(digit)?,
            amplitude: ZERO_DBM0_PEAK * 10f64.powf(level_dbm0 / 20.0),
            sample_rate: f64::from(sample_rate),
            position: 0,
        })
    }

    /// Appends `count` samples.
    pub fn fill(&mut self, count: usize, out: &mut Vec<i16>) {
        let step = std::f64::consts::TAU / self.sample_rate;
        for _ in 0..count {
            let t = self.position as f64 * step;
            let value =
                self.amplitude * ((self.frequencies.0 * t).sin() + (self.frequencies.1 * t).sin());
            out.push(value.clamp(-32_768.0, 32_767.0) as i16);
            self.position += 1;
        }
    }
}

/// In-band DTMF detector for 8 kHz audio. Feed it any amount of audio; it reports each digit
/// once, when it has lasted [`MIN_BLOCKS_ON`] blocks.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    coefficients: [f64; 8],
    block: Vec<f64>,
    candidate: Option<char>,
    on_blocks: u8,
    off_blocks: u8,
    /// The digit reported and not yet ended.
    current: Option<char>,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfDetector {
    pub fn new() -> DtmfDetector {
        let mut coefficients = [0.0; 8];
        for (c, f) in coefficients.iter_mut().zip(ROWS.iter().chain(&COLUMNS)) {
            *c = 2.0 * (std::f64::consts::TAU * f / 8000.0).cos();
        }
        DtmfDetector {
            coefficients,
            block: Vec::with_capacity(BLOCK),
            candidate: None,
            on_blocks: 0,
            off_blocks: 0,
            current: None,
        }
    }

    /// Takes 8 kHz samples; appends each digit that starts in them to `digits`.
    pub fn push(&mut self, samples: &[i16], digits: &mut Vec<char>) {
        for &sample in samples {
            self.block.push(f64::from(sample));
            if self.block.len() == BLOCK {
                let found = self.analyse();
                self.block.clear();
                if let Some(digit) = self.debounce(found) {
                    digits.push(digit);
                }
            }
        }
    }

    /// Goertzel power of the block at the frequency whose coefficient is `coefficient`, scaled
    /// to the mean square of a sine of that frequency.
    fn power(&self, coefficient: f64) -> f64 {
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in &self.block {
            let s = x + coefficient * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        (s1 * s1 + s2 * s2 - coefficient * s1 * s2) * 2.0 / (BLOCK * BLOCK) as f64
    }

    /// Whether the tone found near `frequency` is really at it: the power there exceeds the
    /// power [`OFF_FREQUENCY`] below and above. A tone within ±1.5% (Q.24: must be accepted)
    /// is nearer the centre than either probe; one 2.5% or more off (a voice harmonic passing
    /// for a DTMF tone) is nearer a probe. The boundary falls at about ±2%, inside Q.24's
    /// band where either answer is allowed.
    fn on_frequency(&self, frequency: f64, centre_power: f64) -> bool {
        [1.0 - OFF_FREQUENCY, 1.0 + OFF_FREQUENCY]
            .iter()
            .all(|factor| {
                let coefficient = 2.0 * (std::f64::consts::TAU * frequency * factor / 8000.0).cos();
                self.power(coefficient) < centre_power
            })
    }

    /// The frequency within ±3% of `nominal` where the block's power peaks (13 probes).
    fn peak_near(&self, nominal: f64) -> f64 {
        (0..13)
            .map(|step| nominal * (0.97 + 0.005 * f64::from(step)))
            .map(|frequency| {
                let coefficient = 2.0 * (std::f64::consts::TAU * frequency / 8000.0).cos();
                (frequency, self.power(coefficient))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(nominal, |(frequency, _)| frequency)
    }

    /// Whether the two tones look like two harmonics of a voice rather than a DTMF pair: a
    /// voice with pitch p puts energy at every multiple of p, so with tones at m·p and n·p
    /// there is energy at 2m·p − n·p and 2n·p − m·p too (the harmonics one spacing below
    /// and above). A DTMF generator puts nothing there. Checked only on blocks that passed
    /// every other test, so its cost does not matter.
    fn is_harmonic_pair(&self, row: f64, row_power: f64, column: f64, column_power: f64) -> bool {
        let (low, high) = (self.peak_near(row), self.peak_near(column));
        let below = 2.0 * low - high;
        let above = 2.0 * high - low;
        let power_at =
            |frequency: f64| self.power(2.0 * (std::f64::consts::TAU * frequency / 8000.0).cos());
        power_at(below) > HARMONIC_LIMIT * row_power
            || power_at(above) > HARMONIC_LIMIT * column_power
    }

    /// The digit a block holds, if any.
    fn analyse(&self) -> Option<char> {
        let mut power = [0.0; 8];
        for (p, &coefficient) in power.iter_mut().zip(&self.coefficients) {
            *p = self.power(coefficient);
        }
        let energy: f64 = self.block.iter().map(|x| x * x).sum::<f64>() / BLOCK as f64;
        let strongest = |group: &[f64]| {
            let (index, &peak) = group
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .expect("four frequencies");
            let others_below = group
                .iter()
                .enumerate()
                .all(|(i, &p)| i == index || p * 6.3 < peak); // 8 dB
            (index, peak, others_below)
        };
        let (row, row_power, row_clear) = strongest(&power[..4]);
        let (column, column_power, column_clear) = strongest(&power[4..]);
        // −30 dBm0 per tone, as mean square of a sine.
        let floor = (ZERO_DBM0_PEAK * 10f64.powf(-30.0 / 20.0)).powi(2) / 2.0;
        let twist_ok = column_power <= row_power * 2.51 && column_power * 6.31 >= row_power;
        let tones_dominate = row_power + column_power >= 0.7 * energy;
        (row_power >= floor
            && column_power >= floor
            && row_clear
            && column_clear
            && twist_ok
            && tones_dominate
            && self.on_frequency(ROWS[row], row_power)
            && self.on_frequency(COLUMNS[column], column_power)
            && !self.is_harmonic_pair(ROWS[row], row_power, COLUMNS[column], column_power))
        .then_some(DIGITS[row][column])
    }

    fn debounce(&mut self, found: Option<char>) -> Option<char> {
        if found.is_some() && found == self.candidate {
            self.on_blocks = self.on_blocks.saturating_add(1);
        } else {
            self.candidate = found;
            self.on_blocks = u8::from(found.is_some());
        }
        if found.is_some() && found == self.current {
            self.off_blocks = 0;
            return None;
        }
        if self.current.is_some() {
            self.off_blocks += 1;
            if self.off_blocks >= MIN_BLOCKS_OFF {
                self.current = None;
                self.off_blocks = 0;
            }
        }
        if self.current.is_none() && self.on_blocks >= MIN_BLOCKS_ON {
            self.current = found;
            return found;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded noise source (white, uniform).
    struct Noise(u64);

    impl Noise {
        fn sample(&mut self, amplitude: f64) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * amplitude
        }
    }

    fn digit_audio(digit: char, level: f64, millis: usize, noise: &mut Noise) -> Vec<i16> {
        let mut samples = Vec::new();
        ToneGenerator::new(digit, level, 8000)
            .expect("a digit")
            .fill(8 * millis, &mut samples);
        samples
            .into_iter()
            .map(|s| (f64::from(s) + noise.sample(300.0)) as i16)
            .collect()
    }

    fn silence(millis: usize, noise: &mut Noise) -> Vec<i16> {
        (0..8 * millis)
            .map(|_| noise.sample(300.0) as i16)
            .collect()
    }

    #[test]
    fn every_digit_is_detected_from_minus_10_to_minus_26_dbm0_in_noise() {
        let mut noise = Noise(0x5eed_d7f0);
        for level in [-10.0, -14.0, -18.0, -22.0, -26.0] {
            let mut detector = DtmfDetector::new();
            let mut digits = Vec::new();
            let sequence = "0123456789*#ABCD";
            for digit in sequence.chars() {
                detector.push(&digit_audio(digit, level, 60, &mut noise), &mut digits);
                detector.push(&silence(60, &mut noise), &mut digits);
            }
            assert_eq!(digits.iter().collect::<String>(), sequence, "{level} dBm0");
        }
    }

    #[test]
    fn a_long_digit_is_reported_once_and_a_too_short_one_not_at_all() {
        let mut noise = Noise(1);
        let mut detector = DtmfDetector::new();
        let mut digits = Vec::new();
        detector.push(&digit_audio('5', -10.0, 500, &mut noise), &mut digits);
        detector.push(&silence(50, &mut noise), &mut digits);
        detector.push(&digit_audio('5', -10.0, 15, &mut noise), &mut digits);
        detector.push(&silence(50, &mut noise), &mut digits);
        assert_eq!(digits, ['5']);
    }

    #[test]
    fn forty_millisecond_digits_are_detected_wherever_they_fall_on_the_blocks() {
        let mut noise = Noise(4);
        for offset in (0..BLOCK).step_by(7) {
            let mut detector = DtmfDetector::new();
            let mut digits = Vec::new();
            let lead: Vec<i16> = (0..offset).map(|_| noise.sample(300.0) as i16).collect();
            detector.push(&lead, &mut digits);
            for digit in "159#".chars() {
                detector.push(&digit_audio(digit, -20.0, 40, &mut noise), &mut digits);
                detector.push(&silence(40, &mut noise), &mut digits);
            }
            assert_eq!(digits.iter().collect::<String>(), "159#", "offset {offset}");
        }
    }

    #[test]
    fn off_frequency_tones_and_excess_twist_are_rejected() {
        let mut noise = Noise(2);
        let mut detector = DtmfDetector::new();
        let mut digits = Vec::new();
        // 4% off frequency (Q.24 says reject beyond 3.5%).
        let mut off = ToneGenerator::new('1', -10.0, 8000).expect("a digit");
        off.frequencies = (697.0 * 1.04, 1209.0 * 1.04);
        let mut samples = Vec::new();
        off.fill(8 * 200, &mut samples);
        detector.push(&samples, &mut digits);
        // Column 12 dB above row: reverse twist beyond 4 dB.
        let mut twisted = Vec::new();
        for n in 0..1600 {
            let t = f64::from(n) / 8000.0 * std::f64::consts::TAU;
            twisted.push((2000.0 * (697.0 * t).sin() + 8000.0 * (1209.0 * t).sin()) as i16);
        }
        detector.push(&twisted, &mut digits);
        detector.push(&silence(100, &mut noise), &mut digits);
        // 2.5% low: a voice at 236 Hz has harmonics at 944 and 1180 Hz, near 941 and 1209.
        let mut low = ToneGenerator::new('*', -10.0, 8000).expect("a digit");
        low.frequencies = (941.0 * 1.003, 1209.0 * 0.975);
        let mut samples = Vec::new();
        low.fill(8 * 200, &mut samples);
        detector.push(&samples, &mut digits);
        detector.push(&silence(100, &mut noise), &mut digits);
        assert!(digits.is_empty(), "{digits:?}");
    }

    #[test]
    fn tones_within_one_and_a_half_percent_are_detected() {
        let mut noise = Noise(4);
        for digit in ['1', '5', '9', '*', '0', '#', 'A', 'D'] {
            for factor in [0.985, 1.015] {
                let mut detector = DtmfDetector::new();
                let mut digits = Vec::new();
                let mut tone = ToneGenerator::new(digit, -20.0, 8000).expect("a digit");
                tone.frequencies = (tone.frequencies.0 * factor, tone.frequencies.1 * factor);
                let mut samples = Vec::new();
                tone.fill(8 * 60, &mut samples);
                detector.push(&samples, &mut digits);
                detector.push(&silence(60, &mut noise), &mut digits);
                assert_eq!(digits, vec![digit], "{digit} at ×{factor}");
            }
        }
    }

    #[test]
    fn speech_like_audio_gives_no_digit() {
        // Voiced sound: a 120 Hz fundamental with falling harmonics, its pitch wandering,
        // plus noise; and single tones that sit on DTMF frequencies alone.
        let mut noise = Noise(3);
        let mut detector = DtmfDetector::new();
        let mut digits = Vec::new();
        let mut phase = 0.0f64;
        let mut samples = Vec::new();
        for n in 0..8000 * 60 {
            let pitch = 110.0 + 30.0 * (f64::from(n) / 8000.0 * 0.7).sin();
            phase += std::f64::consts::TAU * pitch / 8000.0;
            let voiced: f64 = (1..30)
                .map(|k| 3000.0 / f64::from(k) * (phase * f64::from(k)).sin())
                .sum();
            samples.push((voiced + noise.sample(500.0)).clamp(-32_768.0, 32_767.0) as i16);
        }
        detector.push(&samples, &mut digits);
        for frequency in ROWS.iter().chain(&COLUMNS) {
            let tone: Vec<i16> = (0..8000)
                .map(|n| {
                    (8000.0 * (std::f64::consts::TAU * frequency * f64::from(n) / 8000.0).sin())
                        as i16
                })
                .collect();
            detector.push(&tone, &mut digits);
        }
        assert!(digits.is_empty(), "{digits:?}");
    }

    #[test]
    fn sip_info_bodies_of_both_types_are_read_and_written() {
        let relay = dtmf_relay_body('5', 160);
        assert_eq!(relay, "Signal=5\r\nDuration=160\r\n");
        assert_eq!(
            parse_info_body("application/dtmf-relay", relay.as_bytes()),
            Some(('5', Some(160)))
        );
        assert_eq!(
            parse_info_body(
                "Application/DTMF-Relay; charset=x",
                b"duration= 250\nSIGNAL= #\n"
            ),
            Some(('#', Some(250)))
        );
        assert_eq!(
            parse_info_body("application/dtmf-relay", b"Signal=*"),
            Some(('*', None))
        );
        assert_eq!(parse_info_body("application/dtmf", b"7"), Some(('7', None)));
        assert_eq!(
            parse_info_body("application/dtmf", b"11"),
            Some(('#', None))
        );
        assert_eq!(parse_info_body("application/dtmf", b"d"), Some(('D', None)));
        for (content_type, body) in [
            ("application/dtmf-relay", &b"Signal=x"[..]),
            ("application/dtmf-relay", b"Duration=100"),
            ("application/dtmf", b"99"),
            ("application/dtmf", b""),
            ("text/plain", b"5"),
            ("application/dtmf", b"\xff"),
        ] {
            assert_eq!(
                parse_info_body(content_type, body),
                None,
                "{content_type} {body:?}"
            );
        }
    }

    #[test]
    fn telephone_events_read_back_and_map_to_digits() {
        let event = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 1600,
        };
        assert_eq!(TelephoneEvent::parse(&event.to_bytes()), Some(event));
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
        assert_eq!(TelephoneEvent::digit(11), Some('#'));
        assert_eq!(TelephoneEvent::digit(16), None);
        assert_eq!(TelephoneEvent::code('d'), Some(15));
        assert_eq!(TelephoneEvent::code('x'), None);
    }
}
