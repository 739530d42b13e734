//! Opus (RFC 6716) through libopus, with the RTP payload format's SDP parameters (RFC 7587).
//!
//! The PCM side runs at 8, 16 or 48 kHz (libopus converts internally, so a leg bridged to
//! G.711 decodes straight to 8 kHz with no resampler of ours), mono: rswitch mixes and
//! bridges mono audio, and every Opus decoder takes a mono stream although SDP always writes
//! `opus/48000/2`. The encoder follows what the receiving side asked for in its `fmtp`:
//! `maxplaybackrate` caps the audio bandwidth, `maxaveragebitrate` the bitrate,
//! `useinbandfec=1` turns on in-band FEC, `usedtx=1` discontinuous transmission and `cbr=1`
//! constant bitrate. The decoder conceals lost packets (libopus PLC) and rebuilds one from the
//! FEC data of the packet after it when the caller has that packet.
//!
//! What this module does not do: stereo, multistream, or repacketising several frames into
//! one packet. The safe `opus` crate holds the FFI; there is no `unsafe` here.

use ::opus as libopus;

use crate::{CodecInfo, Decoder, Encoder};

/// The bitrate used when the receiver sets no `maxaveragebitrate`: 24 kbit/s carries
/// wideband speech well and leaves room for in-band FEC.
pub const DEFAULT_BITRATE: i32 = 24_000;

/// The encoder complexity (0–10) for audio at `pcm_rate`. Narrowband (8 kHz: what comes
/// from G.711, G.729, GSM or AMR) at 3: a PCMU → Opus tandem scores within 0.03–0.05 PESQ of
/// PCMU alone (complexity 9: within 0.00–0.01) at about 40% of the CPU, which is what lets a
/// core carry 400 PCMU↔Opus calls; wideband and fullband at libopus's default 9, because
/// below 8 wideband speech loses 0.1–1.2 PESQ at 24 kbit/s (measured: benches/RESULTS.md).
pub fn complexity_for(pcm_rate: u32) -> i32 {
    if pcm_rate <= 8000 { 3 } else { 9 }
}

/// The longest packet Opus allows: 120 ms (a decode buffer of this size fits any packet).
const MAX_PACKET_MS: usize = 120;

/// The largest packet written: RFC 6716 §3.4 recommends 1275 bytes per frame as the bound.
const MAX_PACKET_BYTES: usize = 1275;

/// What an `a=fmtp` line for Opus says (RFC 7587 §6.1). Unknown keys are ignored; values
/// that do not parse leave the default, so a peer's typo never refuses a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusParams {
    /// The highest sample rate the receiver will play, Hz (default 48,000).
    pub max_playback_rate: u32,
    /// The most the receiver wants on average, bit/s (`None`: no cap).
    pub max_average_bitrate: Option<u32>,
    /// The receiver can use in-band FEC.
    pub use_inband_fec: bool,
    /// The receiver prefers discontinuous transmission.
    pub use_dtx: bool,
    /// The receiver wants a constant bitrate.
    pub cbr: bool,
}

impl Default for OpusParams {
    fn default() -> Self {
        OpusParams {
            max_playback_rate: 48_000,
            max_average_bitrate: None,
            use_inband_fec: false,
            use_dtx: false,
            cbr: false,
        }
    }
}

impl OpusParams {
    /// Reads `key=value` pairs separated by `;` (spaces allowed), as RFC 7587 writes them.
    pub fn from_fmtp(fmtp: &str) -> OpusParams {
        let mut params = OpusParams::default();
        for pair in fmtp.split(';') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            let number = value.parse::<u32>().ok();
            let flag = value == "1";
            if key.eq_ignore_ascii_case("maxplaybackrate") {
                // RFC 7587: 8000 to 48000.
                if let Some(rate) = number.filter(|r| (8000..=48_000).contains(r)) {
                    params.max_playback_rate = rate;
                }
            } else if key.eq_ignore_ascii_case("maxaveragebitrate") {
                // RFC 7587: 6000 to 510000.
                params.max_average_bitrate = number
                    .filter(|b| (6000..=510_000).contains(b))
                    .or(params.max_average_bitrate);
            } else if key.eq_ignore_ascii_case("useinbandfec") {
                params.use_inband_fec = flag;
            } else if key.eq_ignore_ascii_case("usedtx") {
                params.use_dtx = flag;
            } else if key.eq_ignore_ascii_case("cbr") {
                params.cbr = flag;
            }
        }
        params
    }

    /// The audio bandwidth the encoder may use for this receiver at `pcm_rate`.
    fn max_bandwidth(&self, pcm_rate: u32) -> libopus::Bandwidth {
        match self.max_playback_rate.min(pcm_rate) {
            0..=8000 => libopus::Bandwidth::Narrowband,
            8001..=12_000 => libopus::Bandwidth::Mediumband,
            12_001..=16_000 => libopus::Bandwidth::Wideband,
            16_001..=24_000 => libopus::Bandwidth::Superwideband,
            _ => libopus::Bandwidth::Fullband,
        }
    }
}

/// A PCM rate Opus can run at here: 8, 16 or 48 kHz.
pub fn supported_rate(rate: u32) -> bool {
    matches!(rate, 8000 | 16_000 | 48_000)
}

fn info(pcm_rate: u32) -> CodecInfo {
    CodecInfo {
        name: "opus",
        sample_rate: pcm_rate,
        static_payload_type: None,
        frame_samples: pcm_rate as usize / 50,
    }
}

/// Why an Opus encoder or decoder could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpusError {
    #[error("Opus runs at 8, 16 or 48 kHz here, not {0} Hz")]
    UnsupportedRate(u32),
    #[error("libopus refused: {0}")]
    Library(String),
}

fn library(error: libopus::Error) -> OpusError {
    OpusError::Library(error.to_string())
}

/// Opus encoder, mono, VoIP application.
pub struct OpusEncoder {
    encoder: libopus::Encoder,
    pcm_rate: u32,
    scratch: Box<[u8; MAX_PACKET_BYTES]>,
    /// Calls whose PCM was not an Opus frame duration (2.5 to 60 ms): nothing was encoded.
    pub rejected: u64,
}

impl OpusEncoder {
    /// An encoder at `pcm_rate` (8, 16 or 48 kHz) set up for a receiver that sent `params`.
    pub fn new(pcm_rate: u32, params: OpusParams) -> Result<OpusEncoder, OpusError> {
        if !supported_rate(pcm_rate) {
            return Err(OpusError::UnsupportedRate(pcm_rate));
        }
        let mut encoder = libopus::Encoder::new(
            pcm_rate,
            libopus::Channels::Mono,
            libopus::Application::Voip,
        )
        .map_err(library)?;
        let bitrate = params
            .max_average_bitrate
            .map_or(DEFAULT_BITRATE, |cap| DEFAULT_BITRATE.min(cap as i32));
        encoder
            .set_bitrate(libopus::Bitrate::Bits(bitrate))
            .map_err(library)?;
        encoder
            .set_max_bandwidth(params.max_bandwidth(pcm_rate))
            .map_err(library)?;
        encoder
            .set_signal(libopus::Signal::Voice)
            .map_err(library)?;
        encoder
            .set_complexity(complexity_for(pcm_rate))
            .map_err(library)?;
        if params.use_inband_fec {
            encoder.set_inband_fec(true).map_err(library)?;
            // FEC is only coded when the encoder expects loss.
            encoder.set_packet_loss_perc(10).map_err(library)?;
        }
        encoder.set_dtx(params.use_dtx).map_err(library)?;
        encoder.set_vbr(!params.cbr).map_err(library)?;
        Ok(OpusEncoder {
            encoder,
            pcm_rate,
            scratch: Box::new([0; MAX_PACKET_BYTES]),
            rejected: 0,
        })
    }

    /// Sets the encoder complexity, 0–10 (clamped): CPU against quality.
    pub fn set_complexity(&mut self, complexity: i32) -> Result<(), OpusError> {
        self.encoder
            .set_complexity(complexity.clamp(0, 10))
            .map_err(library)
    }

    /// Whether `samples` is a duration Opus codes in one frame: 2.5, 5, 10, 20, 40 or 60 ms.
    fn is_frame_duration(&self, samples: usize) -> bool {
        let per_2_5_ms = self.pcm_rate as usize / 400;
        samples.is_multiple_of(per_2_5_ms)
            && matches!(samples / per_2_5_ms, 1 | 2 | 4 | 8 | 16 | 24)
    }
}

impl Encoder for OpusEncoder {
    fn info(&self) -> CodecInfo {
        info(self.pcm_rate)
    }

    /// One packet from `pcm`, which must last 2.5, 5, 10, 20, 40 or 60 ms; any other length
    /// is counted in `rejected` and appends nothing. With DTX on, silence may give a packet of
    /// one or two bytes (the receiver conceals through it).
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        if !self.is_frame_duration(pcm.len()) {
            self.rejected += 1;
            return;
        }
        match self.encoder.encode(pcm, &mut self.scratch[..]) {
            Ok(length) => out.extend_from_slice(&self.scratch[..length]),
            Err(_) => self.rejected += 1,
        }
    }
}

/// Opus decoder, mono output.
pub struct OpusDecoder {
    decoder: libopus::Decoder,
    pcm_rate: u32,
    scratch: Box<[i16]>,
    /// Packets libopus refused as corrupt (each concealed instead).
    pub corrupt: u64,
}

impl OpusDecoder {
    /// A decoder producing `pcm_rate` (8, 16 or 48 kHz) whatever the sender encoded at.
    pub fn new(pcm_rate: u32) -> Result<OpusDecoder, OpusError> {
        if !supported_rate(pcm_rate) {
            return Err(OpusError::UnsupportedRate(pcm_rate));
        }
        let decoder = libopus::Decoder::new(pcm_rate, libopus::Channels::Mono).map_err(library)?;
        let scratch = vec![0; pcm_rate as usize * MAX_PACKET_MS / 1000].into_boxed_slice();
        Ok(OpusDecoder {
            decoder,
            pcm_rate,
            scratch,
            corrupt: 0,
        })
    }

    /// Rebuilds a lost packet of `samples` samples from the in-band FEC data of `next`, the
    /// packet after it; where `next` carries none, libopus conceals instead.
    pub fn recover(&mut self, next: &[u8], samples: usize, out: &mut Vec<i16>) {
        let samples = self.concealable(samples);
        if samples == 0 {
            return;
        }
        match self
            .decoder
            .decode(next, &mut self.scratch[..samples], true)
        {
            Ok(decoded) => out.extend_from_slice(&self.scratch[..decoded.min(samples)]),
            Err(_) => out.resize(out.len() + samples, 0),
        }
    }

    /// `samples` rounded down to what libopus can conceal at once: a multiple of 2.5 ms, at
    /// most 120 ms.
    fn concealable(&self, samples: usize) -> usize {
        let per_2_5_ms = self.pcm_rate as usize / 400;
        (samples - samples % per_2_5_ms).min(self.scratch.len())
    }
}

impl Decoder for OpusDecoder {
    fn info(&self) -> CodecInfo {
        info(self.pcm_rate)
    }

    /// Appends the packet's audio; a packet libopus refuses is counted in `corrupt` and
    /// appends nothing (the jitter buffer's next gap conceals).
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        if payload.is_empty() {
            return;
        }
        match self.decoder.decode(payload, &mut self.scratch, false) {
            Ok(decoded) => out.extend_from_slice(&self.scratch[..decoded.min(self.scratch.len())]),
            Err(_) => self.corrupt += 1,
        }
    }

    fn has_concealment(&self) -> bool {
        true
    }

    /// libopus packet-loss concealment, 2.5 ms steps; a remainder as silence.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        let mut left = samples;
        while left > 0 {
            let step = self.concealable(left);
            if step == 0 {
                break;
            }
            match self.decoder.decode(&[], &mut self.scratch[..step], false) {
                Ok(decoded) => out.extend_from_slice(&self.scratch[..decoded.min(step)]),
                Err(_) => out.resize(out.len() + step, 0),
            }
            left -= step;
        }
        out.resize(out.len() + left, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmtp_parameters_are_read_and_bad_values_ignored() {
        let params = OpusParams::from_fmtp(
            "minptime=10; useinbandfec=1;maxplaybackrate=16000; maxaveragebitrate=20000;usedtx=1",
        );
        assert_eq!(
            params,
            OpusParams {
                max_playback_rate: 16_000,
                max_average_bitrate: Some(20_000),
                use_inband_fec: true,
                use_dtx: true,
                cbr: false,
            }
        );
        let odd = OpusParams::from_fmtp("maxplaybackrate=999999;maxaveragebitrate=x;cbr=1;junk");
        assert_eq!(odd.max_playback_rate, 48_000);
        assert_eq!(odd.max_average_bitrate, None);
        assert!(odd.cbr);
        assert_eq!(OpusParams::from_fmtp(""), OpusParams::default());
    }

    #[test]
    fn only_8_16_and_48_khz_are_accepted() {
        assert!(OpusEncoder::new(44_100, OpusParams::default()).is_err());
        assert!(OpusDecoder::new(11_025).is_err());
        for rate in [8000, 16_000, 48_000] {
            assert!(OpusEncoder::new(rate, OpusParams::default()).is_ok());
            assert_eq!(
                OpusDecoder::new(rate).unwrap().info().frame_samples,
                rate as usize / 50
            );
        }
    }

    #[test]
    fn frames_of_other_durations_are_refused_not_encoded() {
        let mut encoder = OpusEncoder::new(8000, OpusParams::default()).unwrap();
        let mut out = Vec::new();
        encoder.encode(&[0; 150], &mut out);
        assert!(out.is_empty());
        assert_eq!(encoder.rejected, 1);
        encoder.encode(&[0; 480], &mut out);
        assert!(!out.is_empty(), "60 ms is an Opus frame");
    }

    #[test]
    fn concealment_fills_exactly_what_is_asked() {
        let mut decoder = OpusDecoder::new(16_000).unwrap();
        let mut out = Vec::new();
        decoder.conceal(321, &mut out);
        assert_eq!(out.len(), 321);
        decoder.conceal(16_000 * 3, &mut out);
        assert_eq!(out.len(), 321 + 48_000, "longer than 120 ms goes in steps");
    }
}
