//! The codec table (`rswitch codecs`, from the codecs crate) as the SDP engine's local
//! codecs: where the two meet, above both. What this module does not do: choose between
//! codecs (the offer/answer engine does).

use rswitch_codecs::registry::{Capability, codecs};

use crate::sip::sdp::negotiate::LocalCodec;

/// Every codec of the table, in its order of preference, with the `fmtp` rswitch offers.
pub fn local_codecs() -> Vec<LocalCodec> {
    codecs()
        .into_iter()
        .map(|c| LocalCodec {
            encoding: c.name,
            clock_rate: c.clock_rate,
            channels: c.channels,
            payload_type: c.payload_type,
            fmtp: match c.name {
                // Annex B silence frames are decoded but not sent; AMR goes octet-aligned.
                "G729" => Some("annexb=no"),
                "AMR" => Some("octet-align=1"),
                _ => None,
            },
            transcodable: c.capability == Capability::Transcode,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::negotiate::{LocalMedia, OriginState, answer, offer};
    use crate::sip::sdp::{Direction, SessionDescription};

    #[test]
    fn the_codec_table_offers_and_answers_consistently() {
        let local = LocalMedia {
            address: "198.51.100.7".parse().unwrap(),
            port: 20_000,
            codecs: local_codecs(),
            telephone_event: true,
            ptime: Some(20),
            rtcp_mux: true,
            direction: Direction::SendRecv,
        };
        let ours = offer(&local, &mut OriginState::new(1));
        let reparsed = SessionDescription::parse(ours.to_string().as_bytes()).expect("parses");
        assert_eq!(reparsed, ours);
        assert_eq!(reparsed.media[0].fmtp(18), Some("annexb=no"));
        // A phone offering only iLBC and G.729: iLBC is relay-only, G.729 is taken.
        let phone = "v=0\r\no=- 1 1 IN IP4 192.0.2.55\r\ns=-\r\nc=IN IP4 192.0.2.55\r\nt=0 0\r\n\
                     m=audio 4000 RTP/AVP 97 18\r\na=rtpmap:97 iLBC/8000\r\n";
        let phone = SessionDescription::parse(phone.as_bytes()).expect("parses");
        let (_, agreed) = answer(&phone, &local, &[], &mut OriginState::new(1)).expect("answers");
        assert_eq!(agreed.codec.encoding, "G729");
    }
}
