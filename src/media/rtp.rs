//! RTP packets (RFC 3550 §5): read without copying, written into a caller's buffer.
//!
//! [`RtpPacket::parse`] checks the fixed header, the CSRC list, the header extension and the
//! padding against the datagram's length and borrows the payload; nothing is allocated.
//! [`RtpHeader::write`] writes a header (no CSRCs, no extension: what rswitch sends) in front
//! of a payload the caller already has.
//!
//! What this module does not do: SRTP, RTP header extensions' contents, or any timing.

/// The RTP version this stack speaks.
pub const RTP_VERSION: u8 = 2;
/// The fixed header's length.
pub const RTP_HEADER_LEN: usize = 12;

/// Why a datagram is not an RTP packet. The peer's fault: the packet is dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    #[error("shorter than the RTP header it announces")]
    Truncated,
    #[error("RTP version {0}, not 2")]
    Version(u8),
    #[error("padding longer than the packet")]
    BadPadding,
}

/// The fields of an RTP header that a media engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// A received RTP packet, borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    /// The contributing sources, as the 4-byte words of the packet.
    pub csrc_count: u8,
    /// The payload, without padding.
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Reads an RTP packet from a datagram.
    ///
    /// # Errors
    /// [`RtpError`] when the datagram is not a well-formed RTP packet.
    pub fn parse(datagram: &'a [u8]) -> Result<RtpPacket<'a>, RtpError> {
        if datagram.len() < RTP_HEADER_LEN {
            return Err(RtpError::Truncated);
        }
        let first = datagram[0];
        let version = first >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::Version(version));
        }
        let padding = first & 0x20 != 0;
        let extension = first & 0x10 != 0;
        let csrc_count = first & 0x0f;
        let mut offset = RTP_HEADER_LEN + 4 * usize::from(csrc_count);
        if extension {
            let words = datagram
                .get(offset + 2..offset + 4)
                .ok_or(RtpError::Truncated)?;
            offset += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        if offset > datagram.len() {
            return Err(RtpError::Truncated);
        }
        let mut end = datagram.len();
        if padding {
            let count = usize::from(datagram[end - 1]);
            if count == 0 || offset + count > end {
                return Err(RtpError::BadPadding);
            }
            end -= count;
        }
        Ok(RtpPacket {
            header: RtpHeader {
                marker: datagram[1] & 0x80 != 0,
                payload_type: datagram[1] & 0x7f,
                sequence: u16::from_be_bytes([datagram[2], datagram[3]]),
                timestamp: u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]),
                ssrc: u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]),
            },
            csrc_count,
            payload: &datagram[offset..end],
        })
    }
}

impl RtpHeader {
    /// Writes the 12-byte header into `out[..12]`.
    ///
    /// # Panics
    /// If `out` is shorter than [`RTP_HEADER_LEN`] (a caller's buffer-size bug).
    pub fn write(&self, out: &mut [u8]) {
        out[0] = RTP_VERSION << 6;
        out[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7f);
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
    }

    /// The header followed by `payload`, appended to `out`.
    pub fn write_packet(&self, payload: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + RTP_HEADER_LEN, 0);
        self.write(&mut out[start..]);
        out.extend_from_slice(payload);
    }
}

/// Whether a datagram on a muxed port is RTCP rather than RTP (RFC 5761 §4: RTCP packet
/// types 192–223 fall where RTP would carry marker + payload types 64–95, which are not used).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (192..=223).contains(&datagram[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RtpHeader {
        RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 65_535,
            timestamp: 0xdead_beef,
            ssrc: 0x1234_5678,
        }
    }

    #[test]
    fn a_written_packet_reads_back() {
        let mut out = Vec::new();
        header().write_packet(&[1, 2, 3], &mut out);
        let packet = RtpPacket::parse(&out).expect("parses");
        assert_eq!(packet.header, header());
        assert_eq!(packet.payload, [1, 2, 3]);
        assert!(!is_rtcp(&out));
    }

    #[test]
    fn csrcs_extension_and_padding_are_stepped_over() {
        let mut datagram = vec![0xb1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        datagram.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        datagram.extend_from_slice(&[0xbe, 0xde, 0, 1, 7, 7, 7, 7]); // extension, one word
        datagram.extend_from_slice(&[0xaa, 0xbb]); // payload
        datagram.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let packet = RtpPacket::parse(&datagram).expect("parses");
        assert_eq!(packet.csrc_count, 1);
        assert_eq!(packet.payload, [0xaa, 0xbb]);
    }

    #[test]
    fn malformed_packets_are_refused_never_a_panic() {
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::Truncated));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::Version(1)));
        // 15 CSRCs announced, none present.
        assert_eq!(RtpPacket::parse(&[0x8f; 12]), Err(RtpError::Truncated));
        // Extension announced without its header.
        assert_eq!(RtpPacket::parse(&[0x90; 12]), Err(RtpError::Truncated));
        // Padding count 0, and larger than the packet.
        let mut zero = vec![0xa0; 12];
        zero.push(0);
        assert_eq!(RtpPacket::parse(&zero), Err(RtpError::BadPadding));
        let mut large = vec![0xa0; 12];
        large.push(200);
        assert_eq!(RtpPacket::parse(&large), Err(RtpError::BadPadding));
        // Every length and first byte: no panic.
        for first in 0..=255u8 {
            for len in 0..40 {
                let mut datagram = vec![0xff; len];
                if len > 0 {
                    datagram[0] = first;
                }
                let _ = RtpPacket::parse(&datagram);
            }
        }
    }

    #[test]
    fn rtcp_is_told_apart_on_a_muxed_port() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(is_rtcp(&[0x81, 201, 0, 7]));
        assert!(!is_rtcp(&[0x80, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0x80 | 101]));
    }
}
