//! RTCP (RFC 3550 §6): compound packets read and written — sender and receiver reports with
//! their report blocks, SDES CNAME, BYE; other packet types are stepped over.
//!
//! Reading borrows nothing and allocates only the list of packets; every length field is
//! checked against the datagram. What this module does not do: scheduling (RFC 3550 §6.2 —
//! the session decides when to send), feedback messages (RFC 4585), SRTCP.

use super::rtp::RTP_VERSION;

/// Why a datagram is not RTCP. The peer's fault: dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpError {
    #[error("shorter than the RTCP packet it announces")]
    Truncated,
    #[error("RTCP version {0}, not 2")]
    Version(u8),
    #[error("a compound packet must start with SR or RR (RFC 3550 §6.1)")]
    NotReportFirst,
    #[error("more than {0} packets in one datagram")]
    TooManyPackets(usize),
}

/// The most packets read from one compound datagram.
pub const MAX_PACKETS: usize = 16;

/// One report block: what a receiver says about one source (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Lost since the last report, as a fixed-point fraction of 256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    pub extended_highest_sequence: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// The middle 32 bits of the NTP timestamp of the last SR received from this source.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// The sender information of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// NTP timestamp, 32.32 fixed point.
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        reports: Vec<ReportBlock>,
    },
    ReceiverReport {
        ssrc: u32,
        reports: Vec<ReportBlock>,
    },
    /// The CNAME of each chunk that has one.
    SourceDescription {
        cnames: Vec<(u32, String)>,
    },
    Bye {
        sources: Vec<u32>,
    },
    /// Any other type (APP, feedback, XR), skipped.
    Other {
        packet_type: u8,
    },
}

/// Reads a compound RTCP datagram.
///
/// # Errors
/// [`RtcpError`] when a header or length is wrong.
pub fn parse(datagram: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut packets = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        if packets.len() == MAX_PACKETS {
            return Err(RtcpError::TooManyPackets(MAX_PACKETS));
        }
        if rest.len() < 4 {
            return Err(RtcpError::Truncated);
        }
        let version = rest[0] >> 6;
        if version != RTP_VERSION {
            return Err(RtcpError::Version(version));
        }
        let count = usize::from(rest[0] & 0x1f);
        let packet_type = rest[1];
        let length = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
        let body = rest.get(4..length).ok_or(RtcpError::Truncated)?;
        if packets.is_empty() && !matches!(packet_type, 200 | 201) {
            return Err(RtcpError::NotReportFirst);
        }
        packets.push(parse_one(packet_type, count, body)?);
        rest = &rest[length..];
    }
    Ok(packets)
}

fn parse_one(packet_type: u8, count: usize, body: &[u8]) -> Result<RtcpPacket, RtcpError> {
    let word = |at: usize| -> Result<u32, RtcpError> {
        body.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(RtcpError::Truncated)
    };
    match packet_type {
        200 => {
            let info = SenderInfo {
                ntp: (u64::from(word(4)?) << 32) | u64::from(word(8)?),
                rtp_timestamp: word(12)?,
                packet_count: word(16)?,
                octet_count: word(20)?,
            };
            Ok(RtcpPacket::SenderReport {
                ssrc: word(0)?,
                info,
                reports: report_blocks(body.get(24..).ok_or(RtcpError::Truncated)?, count)?,
            })
        }
        201 => Ok(RtcpPacket::ReceiverReport {
            ssrc: word(0)?,
            reports: report_blocks(body.get(4..).ok_or(RtcpError::Truncated)?, count)?,
        }),
        202 => Ok(RtcpPacket::SourceDescription {
            cnames: cnames(body, count)?,
        }),
        203 => Ok(RtcpPacket::Bye {
            sources: (0..count).map(|i| word(4 * i)).collect::<Result<_, _>>()?,
        }),
        other => Ok(RtcpPacket::Other { packet_type: other }),
    }
}

fn report_blocks(bytes: &[u8], count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    (0..count)
        .map(|i| {
            let b = bytes.get(24 * i..24 * i + 24).ok_or(RtcpError::Truncated)?;
            let word = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            // 24-bit two's complement.
            let lost = (i32::from(b[5]) << 16 | i32::from(b[6]) << 8 | i32::from(b[7])) << 8 >> 8;
            Ok(ReportBlock {
                ssrc: word(0),
                fraction_lost: b[4],
                cumulative_lost: lost,
                extended_highest_sequence: word(8),
                jitter: word(12),
                last_sr: word(16),
                delay_since_last_sr: word(20),
            })
        })
        .collect()
}

/// The CNAME items of `count` SDES chunks.
fn cnames(body: &[u8], count: usize) -> Result<Vec<(u32, String)>, RtcpError> {
    let mut out = Vec::new();
    let mut at = 0;
    for _ in 0..count {
        let ssrc = body.get(at..at + 4).ok_or(RtcpError::Truncated)?;
        let ssrc = u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]);
        at += 4;
        loop {
            let item = *body.get(at).ok_or(RtcpError::Truncated)?;
            if item == 0 {
                // The end of the chunk: padding to the next word.
                at = (at + 4) & !3;
                break;
            }
            let length = usize::from(*body.get(at + 1).ok_or(RtcpError::Truncated)?);
            let text = body
                .get(at + 2..at + 2 + length)
                .ok_or(RtcpError::Truncated)?;
            if item == 1 {
                out.push((ssrc, String::from_utf8_lossy(text).into_owned()));
            }
            at += 2 + length;
        }
    }
    Ok(out)
}

/// Appends an SR (with `info`) or, without it, an RR, carrying `reports` (at most 31).
pub fn write_report(
    ssrc: u32,
    info: Option<&SenderInfo>,
    reports: &[ReportBlock],
    out: &mut Vec<u8>,
) {
    let reports = &reports[..reports.len().min(31)];
    let words = 1 + info.map_or(0, |_| 5) + 6 * reports.len();
    out.push((RTP_VERSION << 6) | reports.len() as u8);
    out.push(if info.is_some() { 200 } else { 201 });
    out.extend_from_slice(&(words as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(info) = info {
        out.extend_from_slice(&info.ntp.to_be_bytes());
        out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&info.packet_count.to_be_bytes());
        out.extend_from_slice(&info.octet_count.to_be_bytes());
    }
    for r in reports {
        out.extend_from_slice(&r.ssrc.to_be_bytes());
        out.push(r.fraction_lost);
        let lost = r.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32;
        out.extend_from_slice(&lost.to_be_bytes()[1..]);
        out.extend_from_slice(&r.extended_highest_sequence.to_be_bytes());
        out.extend_from_slice(&r.jitter.to_be_bytes());
        out.extend_from_slice(&r.last_sr.to_be_bytes());
        out.extend_from_slice(&r.delay_since_last_sr.to_be_bytes());
    }
}

/// Appends an SDES packet with one chunk: `ssrc` and its CNAME (at most 255 bytes).
pub fn write_sdes_cname(ssrc: u32, cname: &str, out: &mut Vec<u8>) {
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    // SSRC, CNAME item (type, length, text), a null item, padding to a word.
    let chunk = 4 + 2 + cname.len() + 1;
    let padded = (chunk + 3) & !3;
    out.push((RTP_VERSION << 6) | 1);
    out.push(202);
    out.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(1);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    out.resize(out.len() + padded - chunk + 1, 0);
}

/// Appends a BYE for `ssrc`.
pub fn write_bye(ssrc: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&[(RTP_VERSION << 6) | 1, 203, 0, 1]);
    out.extend_from_slice(&ssrc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32, lost: i32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 25,
            cumulative_lost: lost,
            extended_highest_sequence: 0x0001_0005,
            jitter: 160,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65_536,
        }
    }

    #[test]
    fn a_compound_report_reads_back() {
        let info = SenderInfo {
            ntp: 0xe000_0000_8000_0000,
            rtp_timestamp: 160,
            packet_count: 50,
            octet_count: 8000,
        };
        let mut out = Vec::new();
        write_report(7, Some(&info), &[block(9, 3), block(10, -2)], &mut out);
        write_sdes_cname(7, "rswitch@example", &mut out);
        write_bye(7, &mut out);
        assert_eq!(out.len() % 4, 0);
        let packets = parse(&out).expect("parses");
        assert_eq!(
            packets,
            [
                RtcpPacket::SenderReport {
                    ssrc: 7,
                    info,
                    reports: vec![block(9, 3), block(10, -2)],
                },
                RtcpPacket::SourceDescription {
                    cnames: vec![(7, "rswitch@example".to_owned())]
                },
                RtcpPacket::Bye { sources: vec![7] },
            ]
        );
        let mut rr = Vec::new();
        write_report(8, None, &[block(7, 0)], &mut rr);
        assert_eq!(
            parse(&rr).expect("parses"),
            [RtcpPacket::ReceiverReport {
                ssrc: 8,
                reports: vec![block(7, 0)]
            }]
        );
    }

    #[test]
    fn cname_lengths_pad_to_words() {
        for length in 0..12 {
            let cname = "x".repeat(length);
            let mut out = Vec::new();
            write_report(1, None, &[], &mut out);
            write_sdes_cname(1, &cname, &mut out);
            assert_eq!(out.len() % 4, 0, "{length}");
            let packets = parse(&out).expect("parses");
            assert_eq!(
                packets[1],
                RtcpPacket::SourceDescription {
                    cnames: vec![(1, cname)]
                }
            );
        }
    }

    #[test]
    fn malformed_rtcp_is_refused_never_a_panic() {
        assert_eq!(parse(&[0x80, 201, 0]), Err(RtcpError::Truncated));
        assert_eq!(
            parse(&[0x40, 201, 0, 1, 0, 0, 0, 0]),
            Err(RtcpError::Version(1))
        );
        assert_eq!(
            parse(&[0x80, 203, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::NotReportFirst)
        );
        // An RR announcing a report block it does not carry.
        assert_eq!(
            parse(&[0x81, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Truncated)
        );
        let mut seed = 0x5eed_0007_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 64) as usize;
            let mut datagram: Vec<u8> = (0..len).map(|i| (seed >> (i % 56)) as u8).collect();
            if len > 1 {
                datagram[0] = 0x80 | (datagram[0] & 0x1f);
                datagram[1] = 200 + (datagram[1] % 6);
            }
            let _ = parse(&datagram);
        }
    }
}
