//! The conference mixer: each participant hears everyone else (N−1 mixing), at one internal
//! rate (16 kHz by default), one frame per tick.
//!
//! Per participant: mute (not heard), deaf (hears nothing), an energy threshold under which
//! its frame is not mixed (its line noise stays out of the conference), and automatic gain
//! control that brings its level slowly toward a target. Participants that contribute nothing
//! this tick all hear the same full mix: [`MixOutput::Shared`] tells the caller to encode that
//! mix once for all of them with the same codec. Three-way calls are a three-participant
//! mix and eavesdropping a muted participant; whisper (heard by one party only) needs a
//! per-listener choice of sources, which the call engine builds on this.
//!
//! What this module does not do: decoding, resampling, timing (the caller ticks every frame
//! time with the frames it has, or none for a participant whose packet is missing).

/// Settings of one participant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParticipantSettings {
    /// Not heard by the others.
    pub muted: bool,
    /// Hears nothing.
    pub deaf: bool,
    /// Frames with a mean square below this are not mixed (0 = always mixed).
    pub energy_threshold: f64,
    /// Apply automatic gain control to this participant's voice.
    pub agc: bool,
}

impl Default for ParticipantSettings {
    fn default() -> Self {
        ParticipantSettings {
            muted: false,
            deaf: false,
            // About −50 dBFS: line noise and silence stay out.
            energy_threshold: 100.0,
            agc: true,
        }
    }
}

/// What one participant hears this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixOutput<'a> {
    /// Everyone else but not itself: its own frame.
    Own(&'a [i16]),
    /// The full mix (it contributed nothing): the same for every such participant.
    Shared(&'a [i16]),
    /// Nothing (deaf, or nobody speaks).
    Silence,
}

/// The mean square level AGC steers voices toward (about −20 dBFS).
const AGC_TARGET: f64 = 1.0e7;
/// AGC gain limits.
const AGC_MIN: f64 = 0.25;
const AGC_MAX: f64 = 4.0;

#[derive(Debug, Clone)]
struct Participant {
    id: u32,
    settings: ParticipantSettings,
    gain: f64,
    /// This tick's frame after gain, if it is mixed.
    input: Vec<i32>,
    contributing: bool,
    output: Vec<i16>,
}

/// See the module doc.
#[derive(Debug, Clone)]
pub struct Mixer {
    frame: usize,
    participants: Vec<Participant>,
    total: Vec<i32>,
    shared: Vec<i16>,
}

impl Mixer {
    /// A mixer of `frame` samples per tick (320 for 20 ms at 16 kHz).
    pub fn new(frame: usize) -> Mixer {
        Mixer {
            frame,
            participants: Vec::new(),
            total: vec![0; frame],
            shared: vec![0; frame],
        }
    }

    pub fn add(&mut self, id: u32, settings: ParticipantSettings) {
        self.remove(id);
        self.participants.push(Participant {
            id,
            settings,
            gain: 1.0,
            input: vec![0; self.frame],
            contributing: false,
            output: vec![0; self.frame],
        });
    }

    pub fn remove(&mut self, id: u32) {
        self.participants.retain(|p| p.id != id);
    }

    pub fn len(&self) -> usize {
        self.participants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Changes a participant's settings (mute, deaf, …); false when it is not in the mix.
    pub fn set(&mut self, id: u32, settings: ParticipantSettings) -> bool {
        match self.participants.iter_mut().find(|p| p.id == id) {
            Some(p) => {
                p.settings = settings;
                true
            }
            None => false,
        }
    }

    /// Mixes one tick. `frames(id)` gives each participant's frame (exactly `frame`
    /// samples), or `None` when it has none this tick. Then [`Mixer::output`] says what each
    /// one hears.
    pub fn mix<'f>(&mut self, mut frames: impl FnMut(u32) -> Option<&'f [i16]>) {
        self.total.iter_mut().for_each(|s| *s = 0);
        for p in &mut self.participants {
            p.contributing = false;
            let Some(frame) = frames(p.id).filter(|f| f.len() == self.frame) else {
                continue;
            };
            if p.settings.muted {
                continue;
            }
            let energy =
                frame.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / frame.len() as f64;
            if energy < p.settings.energy_threshold {
                continue;
            }
            if p.settings.agc {
                // Move a tenth of the way (in dB) toward the target each voiced frame.
                let wanted = (AGC_TARGET / energy).sqrt().clamp(AGC_MIN, AGC_MAX);
                p.gain *= (wanted / p.gain).powf(0.1);
            }
            let gain = if p.settings.agc { p.gain } else { 1.0 };
            for ((input, &sample), total) in p.input.iter_mut().zip(frame).zip(&mut self.total) {
                *input = (f64::from(sample) * gain) as i32;
                *total += *input;
            }
            p.contributing = true;
        }
        for (shared, &total) in self.shared.iter_mut().zip(&self.total) {
            *shared = clip(total);
        }
        for p in &mut self.participants {
            if p.contributing && !p.settings.deaf {
                for ((out, &total), &own) in p.output.iter_mut().zip(&self.total).zip(&p.input) {
                    *out = clip(total - own);
                }
            }
        }
    }

    /// What participant `id` hears this tick.
    pub fn output(&self, id: u32) -> MixOutput<'_> {
        let Some(p) = self.participants.iter().find(|p| p.id == id) else {
            return MixOutput::Silence;
        };
        let others_speak = self
            .participants
            .iter()
            .any(|o| o.id != id && o.contributing);
        if p.settings.deaf || !others_speak {
            MixOutput::Silence
        } else if p.contributing {
            MixOutput::Own(&p.output)
        } else {
            MixOutput::Shared(&self.shared)
        }
    }
}

fn clip(sample: i32) -> i16 {
    sample.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 320;

    fn tone(frequency: f64, amplitude: f64) -> Vec<i16> {
        (0..FRAME)
            .map(|n| {
                (amplitude * (std::f64::consts::TAU * frequency * n as f64 / 16_000.0).sin()) as i16
            })
            .collect()
    }

    fn plain() -> ParticipantSettings {
        ParticipantSettings {
            agc: false,
            ..ParticipantSettings::default()
        }
    }

    fn heard(mixer: &Mixer, id: u32) -> Vec<i16> {
        match mixer.output(id) {
            MixOutput::Own(s) | MixOutput::Shared(s) => s.to_vec(),
            MixOutput::Silence => vec![0; FRAME],
        }
    }

    #[test]
    fn each_participant_hears_the_others_and_not_itself() {
        let mut mixer = Mixer::new(FRAME);
        for id in 1..=3 {
            mixer.add(id, plain());
        }
        let voices = [
            tone(300.0, 3000.0),
            tone(500.0, 3000.0),
            tone(700.0, 3000.0),
        ];
        mixer.mix(|id| Some(&voices[id as usize - 1][..]));
        for id in 1..=3u32 {
            let expected: Vec<i16> = (0..FRAME)
                .map(|n| {
                    (1..=3u32)
                        .filter(|&o| o != id)
                        .map(|o| voices[o as usize - 1][n])
                        .sum()
                })
                .collect();
            assert_eq!(heard(&mixer, id), expected, "participant {id}");
            assert!(matches!(mixer.output(id), MixOutput::Own(_)));
        }
    }

    #[test]
    fn silent_listeners_share_one_mix_and_the_deaf_hear_nothing() {
        let mut mixer = Mixer::new(FRAME);
        mixer.add(1, plain());
        mixer.add(2, plain());
        mixer.add(3, plain());
        mixer.add(
            4,
            ParticipantSettings {
                deaf: true,
                ..plain()
            },
        );
        let voice = tone(400.0, 5000.0);
        let quiet = vec![3i16; FRAME]; // line noise under the threshold
        mixer.mix(|id| match id {
            1 => Some(&voice[..]),
            _ => Some(&quiet[..]),
        });
        assert_eq!(mixer.output(2), MixOutput::Shared(&voice[..]));
        assert_eq!(mixer.output(3), MixOutput::Shared(&voice[..]));
        assert_eq!(mixer.output(4), MixOutput::Silence);
        assert_eq!(mixer.output(1), MixOutput::Silence, "nobody else speaks");
    }

    #[test]
    fn a_muted_participant_is_not_heard_and_missing_frames_are_skipped() {
        let mut mixer = Mixer::new(FRAME);
        mixer.add(
            1,
            ParticipantSettings {
                muted: true,
                ..plain()
            },
        );
        mixer.add(2, plain());
        mixer.add(3, plain());
        let voice = tone(400.0, 5000.0);
        mixer.mix(|id| match id {
            1 => Some(&voice[..]),
            2 => None,
            _ => Some(&voice[..3]), // wrong length: ignored
        });
        assert_eq!(mixer.output(2), MixOutput::Silence);
        assert!(mixer.set(1, plain()));
        mixer.mix(|id| (id == 1).then_some(&voice[..]));
        assert_eq!(heard(&mixer, 2), voice);
        assert!(!mixer.set(9, plain()));
    }

    #[test]
    fn loud_voices_clip_instead_of_wrapping() {
        let mut mixer = Mixer::new(FRAME);
        for id in 1..=4 {
            mixer.add(id, plain());
        }
        let loud = vec![30_000i16; FRAME];
        mixer.mix(|_| Some(&loud[..]));
        assert!(heard(&mixer, 1).iter().all(|&s| s == i16::MAX));
    }

    #[test]
    fn agc_brings_a_quiet_voice_up_and_a_loud_one_down() {
        let mut mixer = Mixer::new(FRAME);
        mixer.add(1, ParticipantSettings::default());
        mixer.add(2, ParticipantSettings::default());
        mixer.add(3, plain());
        let quiet = tone(300.0, 800.0);
        let loud = tone(500.0, 20_000.0);
        for _ in 0..200 {
            mixer.mix(|id| match id {
                1 => Some(&quiet[..]),
                2 => Some(&loud[..]),
                _ => None,
            });
        }
        let gain = |id| {
            mixer
                .participants
                .iter()
                .find(|p| p.id == id)
                .map_or(0.0, |p| p.gain)
        };
        assert!(gain(1) > 2.0, "quiet voice gain {}", gain(1));
        assert!(gain(2) < 0.5, "loud voice gain {}", gain(2));
    }
}
