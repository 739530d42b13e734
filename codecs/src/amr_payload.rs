//! The RTP payload formats of AMR-NB (RFC 4867 §4.3 and §4.4, single channel): between the
//! storage frames the codec reads and writes (a ToC byte and the speech bits, octet-padded)
//! and RTP payloads, octet-aligned or bandwidth-efficient.
//!
//! A payload is a codec mode request (CMR), a table of contents (one entry per frame) and the
//! frames' bits. Reading checks every length against the payload: a short or malformed one
//! gives `None`, never a panic. What this module does not do: interleaving, CRCs, or several
//! channels (rswitch offers `octet-align=1` or the default without them).

/// No mode request (RFC 4867: CMR 15).
pub const NO_MODE_REQUEST: u8 = 15;

/// Speech bits per frame type (0–7 speech modes, 8 SID, 15 no data).
fn frame_bits(frame_type: u8) -> Option<usize> {
    match frame_type {
        0 => Some(95),
        1 => Some(103),
        2 => Some(118),
        3 => Some(134),
        4 => Some(148),
        5 => Some(159),
        6 => Some(204),
        7 => Some(244),
        8 => Some(39),
        15 => Some(0),
        _ => None,
    }
}

/// One frame as the payload formats see it: its type, quality bit and speech bits (MSB
/// first, octet-padded with zeros).
fn split_storage(frame: &[u8]) -> Option<(u8, bool, &[u8])> {
    let (&toc, data) = frame.split_first()?;
    let frame_type = (toc >> 3) & 0x0f;
    let bits = frame_bits(frame_type)?;
    let data = data.get(..bits.div_ceil(8))?;
    Some((frame_type, toc & 0x04 != 0, data))
}

fn storage_toc(frame_type: u8, quality: bool) -> u8 {
    (frame_type << 3) | (u8::from(quality) << 2)
}

/// Packs storage frames into an octet-aligned payload with mode request `cmr`.
/// Frames that are not valid storage frames are left out.
pub fn pack_octet_aligned(cmr: u8, frames: &[&[u8]], out: &mut Vec<u8>) {
    let frames: Vec<(u8, bool, &[u8])> = frames.iter().filter_map(|f| split_storage(f)).collect();
    out.push((cmr & 0x0f) << 4);
    for (i, &(frame_type, quality, _)) in frames.iter().enumerate() {
        let follows = u8::from(i + 1 < frames.len()) << 7;
        out.push(follows | storage_toc(frame_type, quality));
    }
    for (_, _, data) in &frames {
        out.extend_from_slice(data);
    }
}

/// Reads an octet-aligned payload: the mode request and the storage frames (appended to
/// `frames`, one after another, each a ToC byte and its data). `None` if malformed.
pub fn unpack_octet_aligned(payload: &[u8], frames: &mut Vec<u8>) -> Option<u8> {
    let (&cmr, mut rest) = payload.split_first()?;
    let mut tocs = Vec::new();
    loop {
        let (&toc, after) = rest.split_first()?;
        rest = after;
        tocs.push(toc);
        if toc & 0x80 == 0 {
            break;
        }
        if tocs.len() > 16 {
            return None;
        }
    }
    for toc in tocs {
        let frame_type = (toc >> 3) & 0x0f;
        let bytes = frame_bits(frame_type)?.div_ceil(8);
        let data = rest.get(..bytes)?;
        rest = &rest[bytes..];
        frames.push(toc & 0x7c);
        frames.extend_from_slice(data);
    }
    Some(cmr >> 4)
}

/// Writes bits MSB first.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    used: u8,
}

impl BitWriter<'_> {
    fn push(&mut self, value: u32, bits: usize) {
        for i in (0..bits).rev() {
            if self.used == 0 {
                self.out.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            let last = self.out.len() - 1;
            self.out[last] |= bit << (7 - self.used);
            self.used = (self.used + 1) % 8;
        }
    }
}

/// Reads bits MSB first.
struct BitReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl BitReader<'_> {
    fn take(&mut self, bits: usize) -> Option<u32> {
        let mut value = 0;
        for _ in 0..bits {
            let byte = *self.bytes.get(self.position / 8)?;
            value = (value << 1) | u32::from((byte >> (7 - self.position % 8)) & 1);
            self.position += 1;
        }
        Some(value)
    }
}

/// Packs storage frames into a bandwidth-efficient payload with mode request `cmr`.
pub fn pack_bandwidth_efficient(cmr: u8, frames: &[&[u8]], out: &mut Vec<u8>) {
    let frames: Vec<(u8, bool, &[u8])> = frames.iter().filter_map(|f| split_storage(f)).collect();
    let mut writer = BitWriter { out, used: 0 };
    writer.push(u32::from(cmr & 0x0f), 4);
    for (i, &(frame_type, quality, _)) in frames.iter().enumerate() {
        writer.push(u32::from(i + 1 < frames.len()), 1);
        writer.push(u32::from(frame_type), 4);
        writer.push(u32::from(quality), 1);
    }
    for &(frame_type, _, data) in &frames {
        let bits = frame_bits(frame_type).unwrap_or(0);
        let mut reader = BitReader {
            bytes: data,
            position: 0,
        };
        for _ in 0..bits {
            writer.push(reader.take(1).unwrap_or(0), 1);
        }
    }
}

/// Reads a bandwidth-efficient payload into storage frames (see
/// [`unpack_octet_aligned`]). `None` if malformed.
pub fn unpack_bandwidth_efficient(payload: &[u8], frames: &mut Vec<u8>) -> Option<u8> {
    let mut reader = BitReader {
        bytes: payload,
        position: 0,
    };
    let cmr = reader.take(4)? as u8;
    let mut tocs = Vec::new();
    loop {
        let follows = reader.take(1)? == 1;
        let frame_type = reader.take(4)? as u8;
        let quality = reader.take(1)? == 1;
        frame_bits(frame_type)?;
        tocs.push((frame_type, quality));
        if !follows {
            break;
        }
        if tocs.len() > 16 {
            return None;
        }
    }
    for (frame_type, quality) in tocs {
        let bits = frame_bits(frame_type)?;
        frames.push(storage_toc(frame_type, quality));
        let mut writer = BitWriter {
            out: frames,
            used: 0,
        };
        for _ in 0..bits {
            writer.push(reader.take(1)?, 1);
        }
    }
    Some(cmr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Encoder;
    use crate::amrnb::{AmrEncoder, AmrMode};

    /// Two real frames at `mode`.
    fn frames(mode: AmrMode) -> Vec<Vec<u8>> {
        let mut encoder = AmrEncoder::new(mode, false);
        (0..2)
            .map(|k| {
                let pcm: Vec<i16> = (0..160)
                    .map(|n| (6000.0 * ((n + 160 * k) as f64 * 0.3).sin()) as i16)
                    .collect();
                let mut out = Vec::new();
                encoder.encode(&pcm, &mut out);
                out
            })
            .collect()
    }

    const MODES: [AmrMode; 8] = [
        AmrMode::Mr475,
        AmrMode::Mr515,
        AmrMode::Mr59,
        AmrMode::Mr67,
        AmrMode::Mr74,
        AmrMode::Mr795,
        AmrMode::Mr102,
        AmrMode::Mr122,
    ];

    #[test]
    fn both_formats_carry_the_codec_frames_unchanged() {
        for mode in MODES {
            let frames = frames(mode);
            let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            let expected: Vec<u8> = frames.concat();

            let mut octet = Vec::new();
            pack_octet_aligned(7, &refs, &mut octet);
            assert_eq!(octet.len(), 1 + 2 + 2 * (frames[0].len() - 1), "{mode:?}");
            let mut back = Vec::new();
            assert_eq!(unpack_octet_aligned(&octet, &mut back), Some(7));
            assert_eq!(back, expected, "{mode:?} octet-aligned");

            let mut efficient = Vec::new();
            pack_bandwidth_efficient(NO_MODE_REQUEST, &refs, &mut efficient);
            let bits = 4 + 2 * 6 + 2 * frame_bits(mode as u8).expect("a mode");
            assert_eq!(efficient.len(), bits.div_ceil(8), "{mode:?}");
            let mut back = Vec::new();
            assert_eq!(
                unpack_bandwidth_efficient(&efficient, &mut back),
                Some(NO_MODE_REQUEST)
            );
            assert_eq!(back, expected, "{mode:?} bandwidth-efficient");
        }
    }

    #[test]
    fn a_known_bandwidth_efficient_header() {
        // CMR 15, one 12.2 frame (FT 7, Q 1): 1111 0 0111 1 then the speech bits.
        let frame = [storage_toc(7, true)]
            .into_iter()
            .chain([0xffu8; 31])
            .collect::<Vec<u8>>();
        let mut payload = Vec::new();
        pack_bandwidth_efficient(15, &[&frame], &mut payload);
        assert_eq!(payload[0], 0b1111_0011);
        assert_eq!(payload[1] >> 6, 0b11);
        assert_eq!(payload.len(), (4 + 6 + 244usize).div_ceil(8));
    }

    #[test]
    fn malformed_payloads_are_refused_never_a_panic() {
        let mut out = Vec::new();
        assert_eq!(unpack_octet_aligned(&[], &mut out), None);
        assert_eq!(unpack_octet_aligned(&[0xf0], &mut out), None);
        assert_eq!(
            unpack_octet_aligned(&[0xf0, 0x3c, 1, 2], &mut out),
            None,
            "cut short"
        );
        assert_eq!(
            unpack_octet_aligned(&[0xf0, 0x48], &mut out),
            None,
            "frame type 9"
        );
        assert_eq!(unpack_bandwidth_efficient(&[0xf0], &mut out), None);
        let mut seed = 0x5eed_a3a3_u64;
        for length in 0..64 {
            for _ in 0..200 {
                let payload: Vec<u8> = (0..length)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed as u8
                    })
                    .collect();
                out.clear();
                let _ = unpack_octet_aligned(&payload, &mut out);
                out.clear();
                let _ = unpack_bandwidth_efficient(&payload, &mut out);
            }
        }
    }
}
