//! Call recording: the decoded audio of one or more legs into one WAV file, mono (the parties
//! mixed) or one channel per party, with a minimum length under which the file is discarded.
//!
//! Each recorded leg gets a [`RecordingSink`] (the shard's [`AudioSink`]) naming its channel;
//! the sinks share the [`Recording`]. Frames arrive per leg as each is decoded, at the leg's
//! rate: they are converted to the recording's rate and queued per party, and written as soon
//! as every party has audio for the same span. A party that sends nothing (on hold, muted
//! phone with DTX) does not stall the file: past [`MAX_SKEW_MS`] of difference its channel is
//! filled with silence. What this module does not do: choose the file name or directory (the
//! call engine does), or compress.

use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::resample::Resampler;
use super::shard::AudioSink;
use super::wav::WavWriter;

/// How far one party may run ahead of another before the silent one is padded.
pub const MAX_SKEW_MS: u32 = 200;

/// How the parties go into the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// All parties mixed into one channel.
    Mono,
    /// One channel per party, in party order.
    PerParty,
}

/// What [`Recording::finish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Kept, with this many frames (samples per channel).
    Kept { frames: u64 },
    /// Shorter than the minimum: discarded.
    Discarded { frames: u64 },
}

struct Party {
    pending: Vec<i16>,
    resampler: Option<(u32, Resampler)>,
    scratch: Vec<i16>,
}

/// One recording shared by its sinks.
pub struct Recording<W: Write + Seek + Send> {
    writer: Option<WavWriter<W>>,
    rate: u32,
    layout: Layout,
    parties: Vec<Party>,
    interleaved: Vec<i16>,
    error: Option<io::Error>,
}

impl<W: Write + Seek + Send> Recording<W> {
    /// A recording of `parties` parties at `rate` into `out`.
    ///
    /// # Errors
    /// The writer's IO error (writing the header).
    pub fn new(out: W, rate: u32, parties: usize, layout: Layout) -> io::Result<Recording<W>> {
        let parties = parties.max(1);
        let channels = match layout {
            Layout::Mono => 1,
            Layout::PerParty => parties as u16,
        };
        Ok(Recording {
            writer: Some(WavWriter::new(out, rate, channels)?),
            rate,
            layout,
            parties: (0..parties)
                .map(|_| Party {
                    pending: Vec::with_capacity(rate as usize / 2),
                    resampler: None,
                    scratch: Vec::with_capacity(rate as usize / 25),
                })
                .collect(),
            interleaved: Vec::with_capacity(rate as usize / 25 * parties),
            error: None,
        })
    }

    /// Audio of party `party` at `rate`.
    pub fn push(&mut self, party: usize, samples: &[i16], rate: u32) {
        let target = self.rate;
        let Some(state) = self.parties.get_mut(party) else {
            return;
        };
        if rate == target {
            state.pending.extend_from_slice(samples);
        } else {
            let resampler = match &mut state.resampler {
                Some((from, resampler)) if *from == rate => resampler,
                slot => &mut slot.insert((rate, Resampler::new(rate, target))).1,
            };
            state.scratch.clear();
            resampler.process(samples, &mut state.scratch);
            state.pending.extend_from_slice(&state.scratch);
        }
        self.drain();
    }

    /// Writes what every party has; pads a party that fell too far behind.
    fn drain(&mut self) {
        let skew = (self.rate * MAX_SKEW_MS / 1000) as usize;
        let longest = self
            .parties
            .iter()
            .map(|p| p.pending.len())
            .max()
            .unwrap_or(0);
        for party in &mut self.parties {
            if longest > party.pending.len() + skew {
                party.pending.resize(longest - skew, 0);
            }
        }
        let ready = self
            .parties
            .iter()
            .map(|p| p.pending.len())
            .min()
            .unwrap_or(0);
        if ready == 0 {
            return;
        }
        self.interleaved.clear();
        match self.layout {
            Layout::Mono => {
                for i in 0..ready {
                    let sum: i32 = self.parties.iter().map(|p| i32::from(p.pending[i])).sum();
                    self.interleaved
                        .push(sum.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16);
                }
            }
            Layout::PerParty => {
                for i in 0..ready {
                    self.interleaved
                        .extend(self.parties.iter().map(|p| p.pending[i]));
                }
            }
        }
        for party in &mut self.parties {
            party.pending.drain(..ready);
        }
        if let Some(writer) = &mut self.writer
            && let Err(error) = writer.write(&self.interleaved)
        {
            // Keep the first error for `finish`; stop writing (a full disk).
            self.error.get_or_insert(error);
            self.writer = None;
        }
    }

    /// Ends the recording: pads and writes what is pending, fixes the header. Returns the
    /// writer with the outcome; below `min_frames` the outcome is `Discarded` (the caller
    /// removes the file: see [`finish_file`]).
    ///
    /// # Errors
    /// The first IO error met while recording or finishing.
    pub fn finish(mut self, min_frames: u64) -> io::Result<(W, Outcome)> {
        let longest = self
            .parties
            .iter()
            .map(|p| p.pending.len())
            .max()
            .unwrap_or(0);
        for party in &mut self.parties {
            party.pending.resize(longest, 0);
        }
        self.drain();
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        let writer = self
            .writer
            .take()
            .ok_or_else(|| io::Error::other("recording ended"))?;
        let frames = writer.frames();
        let out = writer.finish()?;
        let outcome = if frames >= min_frames {
            Outcome::Kept { frames }
        } else {
            Outcome::Discarded { frames }
        };
        Ok((out, outcome))
    }
}

/// A shard sink writing one party of a shared recording.
pub struct RecordingSink<W: Write + Seek + Send> {
    pub recording: Arc<Mutex<Recording<W>>>,
    pub party: usize,
}

impl<W: Write + Seek + Send> AudioSink for RecordingSink<W> {
    fn write(&mut self, samples: &[i16], rate: u32) {
        if let Ok(mut recording) = self.recording.lock() {
            recording.push(self.party, samples, rate);
        }
    }
}

/// A recording into a new file at `path`.
///
/// # Errors
/// When the file cannot be created.
pub fn create_file(
    path: &Path,
    rate: u32,
    parties: usize,
    layout: Layout,
) -> io::Result<Recording<BufWriter<File>>> {
    Recording::new(BufWriter::new(File::create(path)?), rate, parties, layout)
}

/// Finishes a file recording; removes the file when it is shorter than `min_frames`.
///
/// # Errors
/// The IO error of finishing or removing.
pub fn finish_file(
    recording: Recording<BufWriter<File>>,
    path: &PathBuf,
    min_frames: u64,
) -> io::Result<Outcome> {
    let (writer, outcome) = recording.finish(min_frames)?;
    drop(writer);
    if let Outcome::Discarded { .. } = outcome {
        std::fs::remove_file(path)?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::wav;
    use std::io::Cursor;

    fn tone(frequency: f64, count: usize, rate: u32) -> Vec<i16> {
        (0..count)
            .map(|n| {
                (5000.0 * (std::f64::consts::TAU * frequency * n as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn two_parties_one_channel_each_at_the_recording_rate() {
        let mut recording =
            Recording::new(Cursor::new(Vec::new()), 8000, 2, Layout::PerParty).unwrap();
        // Whole cycles per 20 ms frame, so the frames join without a click.
        for _ in 0..50 {
            recording.push(0, &tone(400.0, 160, 8000), 8000);
            // The second party is a 16 kHz (G.722) leg: converted.
            recording.push(1, &tone(1000.0, 320, 16_000), 16_000);
        }
        let (out, outcome) = recording.finish(4000).unwrap();
        assert!(
            matches!(outcome, Outcome::Kept { frames } if (7900..=8040).contains(&frames)),
            "{outcome:?}"
        );
        let bytes = out.into_inner();
        assert_eq!(
            u16::from_le_bytes([bytes[22], bytes[23]]),
            2,
            "two channels"
        );
        // wav::read mixes to mono; check the channels by hand.
        let samples: Vec<i16> = bytes[44..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
        let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
        let power = |s: &[i16], f: f64| {
            let c = 2.0 * (std::f64::consts::TAU * f / 8000.0).cos();
            let (mut a, mut b) = (0.0, 0.0);
            for &x in s {
                let n = f64::from(x) + c * a - b;
                b = a;
                a = n;
            }
            a * a + b * b - c * a * b
        };
        assert!(power(&left, 400.0) > 100.0 * power(&left, 1000.0));
        assert!(power(&right, 1000.0) > 100.0 * power(&right, 400.0));
    }

    #[test]
    fn mono_mixes_and_a_silent_party_does_not_stall_the_file() {
        let mut recording = Recording::new(Cursor::new(Vec::new()), 8000, 2, Layout::Mono).unwrap();
        // Only party 0 speaks for a second: party 1 is padded as it falls behind.
        for _ in 0..50 {
            recording.push(0, &tone(440.0, 160, 8000), 8000);
        }
        let (out, outcome) = recording.finish(0).unwrap();
        assert_eq!(outcome, Outcome::Kept { frames: 8000 });
        let audio = wav::read(&out.into_inner(), 1 << 20).unwrap();
        assert_eq!(audio.samples.len(), 8000);
    }

    #[test]
    fn a_recording_shorter_than_the_minimum_is_discarded_with_its_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("short.wav");
        let shared = Arc::new(Mutex::new(
            create_file(&path, 8000, 1, Layout::Mono).unwrap(),
        ));
        let mut sink = RecordingSink {
            recording: shared.clone(),
            party: 0,
        };
        sink.write(&tone(440.0, 160, 8000), 8000);
        drop(sink);
        let recording = Arc::into_inner(shared).unwrap().into_inner().unwrap();
        let outcome = finish_file(recording, &path, 8000).unwrap();
        assert_eq!(outcome, Outcome::Discarded { frames: 160 });
        assert!(!path.exists());
    }
}
