//! Makes the encoder and decoder for a negotiated codec, speaking its RTP payload format:
//! what the media engine asks for once offer/answer has agreed on an encoding name, its
//! `fmtp` and the PCM rate the leg's audio path runs at.
//!
//! Most codecs' bytes are their RTP payload as they are; AMR-NB's storage frames are packed
//! into RFC 4867 payloads here (octet-aligned when `octet-align=1`, bandwidth-efficient
//! otherwise, the RFC's default). What this module does not do: decide which codec a call
//! uses (the SDP engine does) or resample (the media engine converts between the PCM rates
//! these codecs report).

use crate::amr_payload;
use crate::amrnb::{AmrDecoder, AmrEncoder, AmrMode};
use crate::opus::{OpusDecoder, OpusEncoder, OpusError, OpusParams};
use crate::{CodecInfo, Decoder, Encoder};

/// Why no encoder or decoder can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("codec {0} is relayed only: rswitch does not decode or encode it")]
    RelayOnly(String),
    #[error("codec {0} is not one rswitch knows")]
    Unknown(String),
    #[error("codec opus: {0}")]
    Opus(#[from] OpusError),
}

/// The encoder for `name` (the SDP encoding name, any case) with the remote side's `fmtp`.
/// `pcm_rate` is the rate the caller would like to feed it; a codec with a fixed rate ignores
/// it (look at [`Encoder::info`]), Opus runs at it when it is 8, 16 or 48 kHz and at 48 kHz
/// otherwise.
pub fn new_encoder(
    name: &str,
    fmtp: Option<&str>,
    pcm_rate: u32,
) -> Result<Box<dyn Encoder>, CodecError> {
    let fmtp = fmtp.unwrap_or("");
    Ok(match canonical(name)? {
        "PCMU" => Box::new(crate::g711::G711::Ulaw),
        "PCMA" => Box::new(crate::g711::G711::Alaw),
        "G722" => Box::new(crate::g722::G722Encoder::new()),
        "GSM" => Box::new(crate::gsm::GsmEncoder::new()),
        #[cfg(feature = "g729")]
        "G729" => Box::new(crate::g729::G729Encoder::new(false)),
        "AMR" => Box::new(AmrRtpEncoder::new(&AmrFormat::from_fmtp(fmtp))),
        "opus" => Box::new(OpusEncoder::new(
            opus_rate(pcm_rate),
            OpusParams::from_fmtp(fmtp),
        )?),
        other => return Err(CodecError::RelayOnly(other.to_owned())),
    })
}

/// The decoder for `name` with the `fmtp` that describes what arrives; `pcm_rate` as for
/// [`new_encoder`].
pub fn new_decoder(
    name: &str,
    fmtp: Option<&str>,
    pcm_rate: u32,
) -> Result<Box<dyn Decoder>, CodecError> {
    let fmtp = fmtp.unwrap_or("");
    Ok(match canonical(name)? {
        "PCMU" => Box::new(crate::g711::G711::Ulaw),
        "PCMA" => Box::new(crate::g711::G711::Alaw),
        "G722" => Box::new(crate::g722::G722Decoder::new()),
        "GSM" => Box::new(crate::gsm::GsmDecoder::new()),
        #[cfg(feature = "g729")]
        "G729" => Box::new(crate::g729::G729Decoder::new()),
        "AMR" => Box::new(AmrRtpDecoder::new(&AmrFormat::from_fmtp(fmtp))),
        "opus" => Box::new(OpusDecoder::new(opus_rate(pcm_rate))?),
        other => return Err(CodecError::RelayOnly(other.to_owned())),
    })
}

/// The table's spelling of `name`, or why it has none.
fn canonical(name: &str) -> Result<&'static str, CodecError> {
    crate::registry::codecs()
        .into_iter()
        .find(|entry| entry.name.eq_ignore_ascii_case(name))
        .map(|entry| entry.name)
        .ok_or_else(|| CodecError::Unknown(name.to_owned()))
}

fn opus_rate(pcm_rate: u32) -> u32 {
    if crate::opus::supported_rate(pcm_rate) {
        pcm_rate
    } else {
        48_000
    }
}

/// AMR-NB's payload format and mode as the `fmtp` gives them (RFC 4867 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmrFormat {
    pub octet_aligned: bool,
    /// The mode sent: the highest of `mode-set`, 12.2 kbit/s without one.
    pub mode: AmrMode,
}

impl AmrFormat {
    pub fn from_fmtp(fmtp: &str) -> AmrFormat {
        let mut format = AmrFormat {
            octet_aligned: false,
            mode: AmrMode::Mr122,
        };
        for pair in fmtp.split(';') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            if key.eq_ignore_ascii_case("octet-align") {
                format.octet_aligned = value == "1";
            } else if key.eq_ignore_ascii_case("mode-set") {
                let highest = value
                    .split(',')
                    .filter_map(|m| m.trim().parse::<u8>().ok())
                    .filter(|&m| m <= 7)
                    .max();
                if let Some(mode) = highest {
                    format.mode = AMR_MODES[usize::from(mode)];
                }
            }
        }
        format
    }
}

const AMR_MODES: [AmrMode; 8] = [
    AmrMode::Mr475,
    AmrMode::Mr515,
    AmrMode::Mr59,
    AmrMode::Mr67,
    AmrMode::Mr74,
    AmrMode::Mr795,
    AmrMode::Mr102,
    AmrMode::Mr122,
];

/// AMR-NB encoder writing RFC 4867 payloads, one 20 ms frame each.
pub struct AmrRtpEncoder {
    encoder: AmrEncoder,
    octet_aligned: bool,
    storage: Vec<u8>,
}

impl AmrRtpEncoder {
    pub fn new(format: &AmrFormat) -> AmrRtpEncoder {
        AmrRtpEncoder {
            encoder: AmrEncoder::new(format.mode, false),
            octet_aligned: format.octet_aligned,
            storage: Vec::with_capacity(64),
        }
    }
}

impl Encoder for AmrRtpEncoder {
    fn info(&self) -> CodecInfo {
        self.encoder.info()
    }

    /// Every whole 20 ms frame of `pcm` into one payload.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        self.storage.clear();
        self.encoder.encode(pcm, &mut self.storage);
        let mut frames: Vec<&[u8]> = Vec::new();
        let mut rest = &self.storage[..];
        while let Some(&toc) = rest.first() {
            let Some(length) = crate::amrnb::frame_bytes((toc >> 3) & 0x0f) else {
                break;
            };
            let Some(frame) = rest.get(..1 + length) else {
                break;
            };
            frames.push(frame);
            rest = &rest[frame.len()..];
        }
        if frames.is_empty() {
            return;
        }
        if self.octet_aligned {
            amr_payload::pack_octet_aligned(amr_payload::NO_MODE_REQUEST, &frames, out);
        } else {
            amr_payload::pack_bandwidth_efficient(amr_payload::NO_MODE_REQUEST, &frames, out);
        }
    }
}

/// AMR-NB decoder reading RFC 4867 payloads.
pub struct AmrRtpDecoder {
    decoder: AmrDecoder,
    octet_aligned: bool,
    storage: Vec<u8>,
    /// Payloads that did not parse in the negotiated format.
    pub malformed: u64,
}

impl AmrRtpDecoder {
    pub fn new(format: &AmrFormat) -> AmrRtpDecoder {
        AmrRtpDecoder {
            decoder: AmrDecoder::new(),
            octet_aligned: format.octet_aligned,
            storage: Vec::with_capacity(64),
            malformed: 0,
        }
    }
}

impl Decoder for AmrRtpDecoder {
    fn info(&self) -> CodecInfo {
        self.decoder.info()
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        self.storage.clear();
        let parsed = if self.octet_aligned {
            amr_payload::unpack_octet_aligned(payload, &mut self.storage)
        } else {
            amr_payload::unpack_bandwidth_efficient(payload, &mut self.storage)
        };
        match parsed {
            Some(_) => self.decoder.decode(&self.storage, out),
            None => self.malformed += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transcodable_codec_of_the_table_can_be_made_and_relay_only_ones_cannot() {
        use crate::registry::{Capability, codecs};
        for entry in codecs() {
            let encoder = new_encoder(entry.name, None, 8000);
            let decoder = new_decoder(&entry.name.to_ascii_lowercase(), None, 8000);
            match entry.capability {
                Capability::Transcode => {
                    let (encoder, decoder) = (encoder.unwrap(), decoder.unwrap());
                    assert_eq!(encoder.info().sample_rate, decoder.info().sample_rate);
                    assert!(encoder.info().name.eq_ignore_ascii_case(entry.name));
                }
                Capability::Relay => {
                    assert!(
                        matches!(encoder, Err(CodecError::RelayOnly(_))),
                        "{}",
                        entry.name
                    );
                    assert!(decoder.is_err());
                }
            }
        }
        assert!(matches!(
            new_encoder("SPEEX", None, 8000),
            Err(CodecError::Unknown(_))
        ));
    }

    #[test]
    fn amr_fmtp_chooses_format_and_highest_mode() {
        let format = AmrFormat::from_fmtp("octet-align=1; mode-set=0,2,5");
        assert!(format.octet_aligned);
        assert_eq!(format.mode, AmrMode::Mr795);
        assert_eq!(
            AmrFormat::from_fmtp("mode-set=9"),
            AmrFormat {
                octet_aligned: false,
                mode: AmrMode::Mr122
            }
        );
    }

    #[test]
    fn amr_payloads_round_trip_in_both_formats() {
        for fmtp in ["octet-align=1", ""] {
            let format = AmrFormat::from_fmtp(fmtp);
            let mut encoder = AmrRtpEncoder::new(&format);
            let mut decoder = AmrRtpDecoder::new(&format);
            let pcm: Vec<i16> = (0..160).map(|n| ((n * 300) % 8000) as i16).collect();
            let mut payload = Vec::new();
            encoder.encode(&pcm, &mut payload);
            // 12.2 kbit/s: 244 bits; octet-aligned CMR + ToC + 31 bytes, bandwidth-efficient
            // 4 + 6 + 244 bits = 32 bytes.
            assert_eq!(payload.len(), if format.octet_aligned { 33 } else { 32 });
            let mut out = Vec::new();
            decoder.decode(&payload, &mut out);
            assert_eq!(out.len(), 160);
            decoder.decode(&[0xff], &mut out);
            assert_eq!(decoder.malformed, 1);
        }
    }
}
