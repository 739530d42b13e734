//! Every codec rswitch knows, with what it can do: transcode (decode and encode here) or only
//! relay (pass through between two legs that both use it). The SDP engine offers and accepts
//! from this table; `rswitch codecs` prints it.

/// What rswitch can do with a codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Decoded and encoded here: a call can use it whatever the other leg uses.
    Transcode,
    /// Passed through only: chosen only when both legs use it.
    Relay,
}

/// One codec as SDP names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecEntry {
    /// The SDP encoding name.
    pub name: &'static str,
    pub clock_rate: u32,
    /// Channels as SDP writes them (`opus/48000/2`).
    pub channels: Option<u8>,
    /// Its static payload type, or the dynamic one rswitch offers.
    pub payload_type: u8,
    pub capability: Capability,
    /// What backs it, or why it is relay-only.
    pub note: &'static str,
}

/// The codecs, in rswitch's order of preference when it offers.
pub fn codecs() -> Vec<CodecEntry> {
    let mut table = vec![
        CodecEntry {
            name: "PCMU",
            clock_rate: 8000,
            channels: None,
            payload_type: 0,
            capability: Capability::Transcode,
            note: "G.711 µ-law, bit-exact, in Rust",
        },
        CodecEntry {
            name: "PCMA",
            clock_rate: 8000,
            channels: None,
            payload_type: 8,
            capability: Capability::Transcode,
            note: "G.711 A-law, bit-exact, in Rust",
        },
        CodecEntry {
            name: "G722",
            clock_rate: 8000,
            channels: None,
            payload_type: 9,
            capability: Capability::Transcode,
            note: "G.722 64 kbit/s (16 kHz audio, RTP clock 8000), in Rust",
        },
        CodecEntry {
            name: "opus",
            clock_rate: 48_000,
            channels: Some(2),
            payload_type: 111,
            capability: Capability::Transcode,
            note: "libopus (8, 16, 48 kHz; in-band FEC, DTX, CBR from fmtp)",
        },
    ];
    #[cfg(feature = "g729")]
    table.push(CodecEntry {
        name: "G729",
        clock_rate: 8000,
        channels: None,
        payload_type: 18,
        capability: Capability::Transcode,
        note: "G.729A/B through bcg729 (GPL-3.0)",
    });
    #[cfg(not(feature = "g729"))]
    table.push(CodecEntry {
        name: "G729",
        clock_rate: 8000,
        channels: None,
        payload_type: 18,
        capability: Capability::Relay,
        note: "relay only: built without the g729 feature",
    });
    table.extend([
        CodecEntry {
            name: "GSM",
            clock_rate: 8000,
            channels: None,
            payload_type: 3,
            capability: Capability::Transcode,
            note: "GSM 06.10 through libgsm",
        },
        CodecEntry {
            name: "AMR",
            clock_rate: 8000,
            channels: None,
            payload_type: 96,
            capability: Capability::Transcode,
            note: "AMR-NB through opencore-amrnb; RFC 4867 octet-aligned and bandwidth-efficient",
        },
        CodecEntry {
            name: "iLBC",
            clock_rate: 8000,
            channels: None,
            payload_type: 97,
            capability: Capability::Relay,
            note: "relay only (by design)",
        },
        CodecEntry {
            name: "G723",
            clock_rate: 8000,
            channels: None,
            payload_type: 4,
            capability: Capability::Relay,
            note: "G.723.1, relay only (by design)",
        },
    ]);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_payload_types_are_unique() {
        let table = codecs();
        for (i, a) in table.iter().enumerate() {
            for b in &table[i + 1..] {
                assert!(!a.name.eq_ignore_ascii_case(b.name), "{}", a.name);
                assert_ne!(a.payload_type, b.payload_type, "{} and {}", a.name, b.name);
            }
        }
        assert!(
            table.iter().all(|c| c.payload_type != 101),
            "101 is telephone-event"
        );
    }
}
