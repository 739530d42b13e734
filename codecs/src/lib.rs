//! rswitch-codecs: audio codecs behind one [`Encoder`]/[`Decoder`] interface.
//!
//! Each codec states its sample rate and frame size; samples are 16-bit linear PCM, mono.
//! This crate holds G.711 (µ-law and A-law, bit-exact with ITU-T G.711) and G.722 (64 kbit/s
//! wideband SB-ADPCM, ITU-T G.722) in Rust, and GSM
//! 06.10 (libgsm), G.729A/B (bcg729, cargo feature `g729`), AMR-NB (opencore-amrnb) and
//! Opus (libopus, through the `opus` crate's safe API) through safe wrappers over their C
//! libraries; `unsafe` lives only in those wrappers; and
//! AMR's RTP payload formats (RFC 4867), which are part of the codec's bytes on the wire.
//! What it does not do: resampling or jitter buffering.

pub mod amr_payload;
pub mod amrnb;
pub mod factory;
pub mod g711;
pub mod g722;
#[cfg(feature = "g729")]
pub mod g729;
pub mod gsm;
pub mod opus;
pub mod registry;

/// What a codec is, independent of any instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecInfo {
    /// The SDP encoding name, e.g. `PCMU`.
    pub name: &'static str,
    /// Samples per second of the PCM side.
    pub sample_rate: u32,
    /// The RTP static payload type, if the codec has one.
    pub static_payload_type: Option<u8>,
    /// Samples per codec frame (for sample-based codecs, 1).
    pub frame_samples: usize,
}

/// Turns PCM into codec bytes.
pub trait Encoder: Send {
    fn info(&self) -> CodecInfo;
    /// Encodes `pcm` (a whole number of frames), appending the bytes to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>);
}

/// Turns codec bytes into PCM.
pub trait Decoder: Send {
    fn info(&self) -> CodecInfo;
    /// Decodes `payload`, appending the samples to `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>);

    /// Appends `samples` samples standing in for a lost packet. Codecs with their own
    /// concealment (Opus, G.729) extrapolate from what they decoded last; the others play
    /// silence, which is what this default does.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        out.resize(out.len() + samples, 0);
    }

    /// Whether [`Decoder::conceal`] is the codec's own concealment rather than silence (the
    /// media engine repeats and fades the last frame for codecs without one).
    fn has_concealment(&self) -> bool {
        false
    }
}
