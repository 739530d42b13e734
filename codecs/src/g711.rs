//! G.711 µ-law (PCMU) and A-law (PCMA), per ITU-T G.711.
//!
//! Encoding follows the reference algorithm of G.711 / G.191 (the segment search on the
//! biased magnitude); decoding uses the table derived from it. Stateless and allocation-free
//! apart from the caller's output buffer.

use crate::{CodecInfo, Decoder, Encoder};

/// PCMU: static payload type 0, 8 kHz.
pub const PCMU: CodecInfo = CodecInfo {
    name: "PCMU",
    sample_rate: 8000,
    static_payload_type: Some(0),
    frame_samples: 1,
};

/// PCMA: static payload type 8, 8 kHz.
pub const PCMA: CodecInfo = CodecInfo {
    name: "PCMA",
    sample_rate: 8000,
    static_payload_type: Some(8),
    frame_samples: 1,
};

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// One linear sample to µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(ULAW_CLIP) + ULAW_BIAS;
    let exponent = (7
        - ((pcm >> 7) as u32 & 0xFF)
            .leading_zeros()
            .saturating_sub(24))
    .min(7) as i32;
    let exponent = if pcm >= 0x4000 { 7 } else { exponent };
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// One µ-law byte to linear.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// One linear sample to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let pcm = i32::from(sample) >> 3; // A-law works on 13-bit samples
    let (mask, magnitude) = if pcm >= 0 {
        (0xD5, pcm)
    } else {
        (0x55, -pcm - 1)
    };
    let segment = match magnitude {
        m if m < 0x20 => 0,
        m if m < 0x40 => 1,
        m if m < 0x80 => 2,
        m if m < 0x100 => 3,
        m if m < 0x200 => 4,
        m if m < 0x400 => 5,
        m if m < 0x800 => 6,
        m if m < 0x1000 => 7,
        _ => 8,
    };
    let code = if segment >= 8 {
        0x7F
    } else {
        let shift = if segment < 2 { 1 } else { segment };
        (segment << 4) | ((magnitude >> shift) & 0x0F)
    };
    (code as u8) ^ mask
}

/// One A-law byte to linear.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = i32::from(byte ^ 0x55);
    let segment = (a & 0x70) >> 4;
    let mut magnitude = ((a & 0x0F) << 4) + 8;
    if segment != 0 {
        magnitude = (magnitude + 0x100) << (segment - 1);
    }
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// The G.711 codec of one law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711 {
    Ulaw,
    Alaw,
}

impl Encoder for G711 {
    fn info(&self) -> CodecInfo {
        match self {
            G711::Ulaw => PCMU,
            G711::Alaw => PCMA,
        }
    }
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        let f = match self {
            G711::Ulaw => linear_to_ulaw,
            G711::Alaw => linear_to_alaw,
        };
        out.extend(pcm.iter().map(|&s| f(s)));
    }
}

impl Decoder for G711 {
    fn info(&self) -> CodecInfo {
        Encoder::info(self)
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let f = match self {
            G711::Ulaw => ulaw_to_linear,
            G711::Alaw => alaw_to_linear,
        };
        out.extend(payload.iter().map(|&b| f(b)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        // Values of the ITU-T G.711 tables.
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn decode_then_encode_is_identity_for_every_code() {
        for b in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "A-law {b:#04x}");
            let back = linear_to_ulaw(ulaw_to_linear(b));
            // 0x7F (-0) and 0xFF (+0) both decode to 0, which encodes as +0.
            let expected = if b == 0x7F { 0xFF } else { b };
            assert_eq!(back, expected, "µ-law {b:#04x}");
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        let mut last = ulaw_to_linear(linear_to_ulaw(i16::MIN));
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let v = ulaw_to_linear(linear_to_ulaw(s));
            assert!(v >= last, "µ-law not monotonic at {s}");
            last = v;
        }
    }
}
