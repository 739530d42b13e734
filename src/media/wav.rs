//! WAV files: reading any PCM or float WAV to mono 16-bit samples (for prompts and music on
//! hold), and writing 16-bit PCM with one or more channels (for recordings).
//!
//! Reading accepts 8-bit unsigned, 16/24/32-bit signed and 32-bit float samples, plain or
//! `WAVE_FORMAT_EXTENSIBLE`, any channel count (mixed down by averaging) and any rate (the
//! caller resamples). Every size field is checked against the bytes present and a limit.
//! Writing streams samples and fixes the RIFF and data sizes when finished.
//!
//! What this module does not do: compressed WAV (µ-law, ADPCM), resampling, or file IO
//! beyond the `Read`/`Write + Seek` it is given.

use std::io::{self, Seek, SeekFrom, Write};

/// Why a WAV file could not be read. The file's fault (an operator's upload).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("the {0} chunk is missing or cut short")]
    Truncated(&'static str),
    #[error("unsupported sample format (tag {tag}, {bits} bits)")]
    Unsupported { tag: u16, bits: u16 },
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: usize },
}

/// Mono audio read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    pub sample_rate: u32,
    pub samples: Vec<i16>,
}

const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
const FORMAT_EXTENSIBLE: u16 = 0xfffe;

/// Reads a WAV file's bytes (at most `limit`).
///
/// # Errors
/// [`WavError`] saying what is wrong with the file.
pub fn read(bytes: &[u8], limit: usize) -> Result<Audio, WavError> {
    if bytes.len() > limit {
        return Err(WavError::TooLarge { limit });
    }
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut format = None;
    let mut data = None;
    let mut rest = &bytes[12..];
    while rest.len() >= 8 {
        let id = &rest[..4];
        let size = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let body_end = 8usize.saturating_add(size);
        // A data chunk may claim more than the file holds (a recording cut short): take what
        // is there. Other chunks must be whole.
        let body = match rest.get(8..body_end) {
            Some(body) => body,
            None if id == b"data" => &rest[8..],
            None if id == b"fmt " => return Err(WavError::Truncated("fmt")),
            None => break,
        };
        match id {
            b"fmt " => format = Some(body),
            b"data" => data = Some(body),
            _ => {}
        }
        // Chunks are padded to an even length.
        let next = body_end.saturating_add(size & 1).min(rest.len());
        rest = &rest[next..];
    }
    let format = format.ok_or(WavError::Truncated("fmt"))?;
    let data = data.ok_or(WavError::Truncated("data"))?;
    if format.len() < 16 {
        return Err(WavError::Truncated("fmt"));
    }
    let word = |at: usize| u16::from_le_bytes([format[at], format[at + 1]]);
    let mut tag = word(0);
    let channels = usize::from(word(2)).max(1);
    let sample_rate = u32::from_le_bytes([format[4], format[5], format[6], format[7]]);
    let bits = word(14);
    if tag == FORMAT_EXTENSIBLE {
        // The sub-format GUID starts with the plain format tag.
        tag = if format.len() >= 26 { word(24) } else { 0 };
    }
    let bytes_per_sample = usize::from(bits).div_ceil(8);
    let decode: fn(&[u8]) -> f64 = match (tag, bits) {
        (FORMAT_PCM, 8) => |b| (f64::from(b[0]) - 128.0) * 256.0,
        (FORMAT_PCM, 16) => |b| f64::from(i16::from_le_bytes([b[0], b[1]])),
        (FORMAT_PCM, 24) => |b| f64::from(i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 16),
        (FORMAT_PCM, 32) => |b| f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) >> 16),
        (FORMAT_FLOAT, 32) => {
            |b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])) * 32_767.0
        }
        _ => return Err(WavError::Unsupported { tag, bits }),
    };
    if sample_rate == 0 {
        return Err(WavError::Unsupported { tag, bits });
    }
    let frame = bytes_per_sample * channels;
    let samples = data
        .chunks_exact(frame)
        .map(|frame| {
            let sum: f64 = frame.chunks_exact(bytes_per_sample).map(decode).sum();
            (sum / channels as f64).round().clamp(-32_768.0, 32_767.0) as i16
        })
        .collect();
    Ok(Audio {
        sample_rate,
        samples,
    })
}

/// Writes 16-bit PCM WAV, streaming; [`WavWriter::finish`] fixes the sizes.
#[derive(Debug)]
pub struct WavWriter<W: Write + Seek> {
    out: W,
    channels: u16,
    data_bytes: u64,
}

impl<W: Write + Seek> WavWriter<W> {
    /// Starts a file with `channels` interleaved channels at `sample_rate`.
    ///
    /// # Errors
    /// The writer's IO error.
    pub fn new(mut out: W, sample_rate: u32, channels: u16) -> io::Result<WavWriter<W>> {
        let channels = channels.max(1);
        let block_align = 2 * channels;
        let mut header = Vec::with_capacity(44);
        header.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        header.extend_from_slice(&16u32.to_le_bytes());
        header.extend_from_slice(&FORMAT_PCM.to_le_bytes());
        header.extend_from_slice(&channels.to_le_bytes());
        header.extend_from_slice(&sample_rate.to_le_bytes());
        header.extend_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
        header.extend_from_slice(&block_align.to_le_bytes());
        header.extend_from_slice(&16u16.to_le_bytes());
        header.extend_from_slice(b"data\0\0\0\0");
        out.write_all(&header)?;
        Ok(WavWriter {
            out,
            channels,
            data_bytes: 0,
        })
    }

    /// Appends interleaved samples (a whole number of frames).
    ///
    /// # Errors
    /// The writer's IO error.
    pub fn write(&mut self, samples: &[i16]) -> io::Result<()> {
        debug_assert_eq!(samples.len() % usize::from(self.channels), 0);
        // Through a buffer on the stack: recording allocates nothing per frame.
        let mut bytes = [0u8; 1024];
        for chunk in samples.chunks(bytes.len() / 2) {
            for (pair, sample) in bytes.chunks_exact_mut(2).zip(chunk) {
                pair.copy_from_slice(&sample.to_le_bytes());
            }
            self.out.write_all(&bytes[..chunk.len() * 2])?;
        }
        self.data_bytes += samples.len() as u64 * 2;
        Ok(())
    }

    /// Frames (samples per channel) written so far.
    pub fn frames(&self) -> u64 {
        self.data_bytes / (2 * u64::from(self.channels))
    }

    /// Whether the recording is long enough to keep: at least `min_frames` frames (a call
    /// recording shorter than the configured minimum is discarded by the caller, which owns
    /// the file).
    pub fn is_long_enough(&self, min_frames: u64) -> bool {
        self.frames() >= min_frames
    }

    /// Fixes the RIFF and data sizes and returns the writer.
    ///
    /// # Errors
    /// The writer's IO error.
    pub fn finish(mut self) -> io::Result<W> {
        let data = u32::try_from(self.data_bytes).unwrap_or(u32::MAX - 36);
        self.out.seek(SeekFrom::Start(4))?;
        self.out.write_all(&(36 + data).to_le_bytes())?;
        self.out.seek(SeekFrom::Start(40))?;
        self.out.write_all(&data.to_le_bytes())?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn written(sample_rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
        let mut writer =
            WavWriter::new(Cursor::new(Vec::new()), sample_rate, channels).expect("header");
        writer.write(samples).expect("samples");
        writer.finish().expect("sizes").into_inner()
    }

    /// A WAV file with a given format chunk body and data.
    fn wav(format: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = b"RIFF\0\0\0\0WAVE".to_vec();
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&(format.len() as u32).to_le_bytes());
        out.extend_from_slice(format);
        out.extend_from_slice(b"LIST\x03\0\0\0abc\0"); // an odd-sized chunk to step over
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    fn format(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&tag.to_le_bytes());
        f.extend_from_slice(&channels.to_le_bytes());
        f.extend_from_slice(&rate.to_le_bytes());
        f.extend_from_slice(&(rate * u32::from(channels * bits / 8)).to_le_bytes());
        f.extend_from_slice(&(channels * bits / 8).to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f
    }

    #[test]
    fn what_is_written_reads_back() {
        let samples: Vec<i16> = (0..1000)
            .map(|n| (n * 37 % 65_536 - 32_768) as i16)
            .collect();
        let bytes = written(8000, 1, &samples);
        assert_eq!(bytes.len(), 44 + 2000);
        let audio = read(&bytes, 1 << 20).expect("reads");
        assert_eq!(
            audio,
            Audio {
                sample_rate: 8000,
                samples
            }
        );
    }

    #[test]
    fn a_recording_shorter_than_the_minimum_is_reported_as_such() {
        let mut writer = WavWriter::new(Cursor::new(Vec::new()), 8000, 2).expect("header");
        writer.write(&[0; 2 * 7999]).expect("samples");
        assert_eq!(writer.frames(), 7999);
        assert!(!writer.is_long_enough(8000), "under one second");
        writer.write(&[0; 2]).expect("samples");
        assert!(writer.is_long_enough(8000));
    }

    #[test]
    fn every_supported_layout_reads_to_mono_16_bit() {
        // Stereo 16-bit: left 1000, right 3000 -> 2000.
        let stereo = wav(&format(1, 2, 44_100, 16), &[0xe8, 0x03, 0xb8, 0x0b]);
        assert_eq!(read(&stereo, 1 << 20).unwrap().samples, [2000]);
        assert_eq!(read(&stereo, 1 << 20).unwrap().sample_rate, 44_100);
        // 8-bit unsigned: 0x80 is zero, 0xff almost full scale.
        let eight = wav(&format(1, 1, 8000, 8), &[0x80, 0xff]);
        assert_eq!(read(&eight, 1 << 20).unwrap().samples, [0, 32_512]);
        // 24-bit: 0x123456 -> 0x1234.
        let twenty_four = wav(&format(1, 1, 48_000, 24), &[0x56, 0x34, 0x12]);
        assert_eq!(read(&twenty_four, 1 << 20).unwrap().samples, [0x1234]);
        // Float: 0.5 -> 16384.
        let float = wav(&format(3, 1, 16_000, 32), &0.5f32.to_le_bytes());
        assert_eq!(read(&float, 1 << 20).unwrap().samples, [16_384]);
        // Extensible with a PCM sub-format.
        let mut extensible = format(0xfffe, 1, 8000, 16);
        extensible.extend_from_slice(&22u16.to_le_bytes());
        extensible.extend_from_slice(&[16, 0, 0, 0, 0, 0]);
        extensible.extend_from_slice(&1u16.to_le_bytes());
        extensible.extend_from_slice(&[0; 14]);
        let extensible = wav(&extensible, &[0x10, 0x00]);
        assert_eq!(read(&extensible, 1 << 20).unwrap().samples, [16]);
    }

    #[test]
    fn bad_files_are_refused_never_a_panic() {
        assert_eq!(read(b"hello", 100), Err(WavError::NotWave));
        assert_eq!(read(&[0; 200], 100), Err(WavError::TooLarge { limit: 100 }));
        let alaw = wav(&format(6, 1, 8000, 8), &[0; 4]);
        assert_eq!(
            read(&alaw, 1 << 20),
            Err(WavError::Unsupported { tag: 6, bits: 8 })
        );
        let no_data =
            b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x40\x1f\0\0\x80\x3e\0\0\x02\0\x10\0"
                .to_vec();
        assert_eq!(read(&no_data, 1 << 20), Err(WavError::Truncated("data")));
        // A data chunk that claims more than is there: what is there is read.
        let mut cut = written(8000, 1, &[1, 2, 3]);
        cut.truncate(cut.len() - 2);
        assert_eq!(read(&cut, 1 << 20).unwrap().samples, [1, 2]);
        // Every truncation and a corrupted size byte of a real file: no panic.
        let whole = written(8000, 2, &[5; 64]);
        for end in 0..whole.len() {
            let _ = read(&whole[..end], 1 << 20);
            let mut corrupt = whole.clone();
            corrupt[end] ^= 0xff;
            let _ = read(&corrupt, 1 << 20);
        }
    }
}
