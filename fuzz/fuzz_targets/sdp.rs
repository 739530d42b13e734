//! Any body: SDP parsing never panics; a description that parses prints to one that parses,
//! and printing is stable after that; answering it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rswitch::sip::sdp::{Direction, SessionDescription};
use rswitch::sip::sdp::negotiate::{LocalCodec, LocalMedia, OriginState, answer};

fuzz_target!(|body: &[u8]| {
    let Ok(sdp) = SessionDescription::parse(body) else {
        return;
    };
    let printed = sdp.to_string();
    let reparsed = SessionDescription::parse(printed.as_bytes())
        .unwrap_or_else(|e| panic!("a printed description does not parse ({e}): {printed:?}"));
    assert_eq!(reparsed.to_string(), printed, "printing is not stable");
    let local = LocalMedia {
        address: "192.0.2.1".parse().expect("an address"),
        port: 4000,
        codecs: vec![LocalCodec {
            encoding: "PCMU",
            clock_rate: 8000,
            channels: None,
            payload_type: 0,
            fmtp: None,
            transcodable: true,
        }],
        telephone_event: true,
        ptime: Some(20),
        rtcp_mux: true,
        direction: Direction::SendRecv,
    };
    if let Ok((ours, _)) = answer(&sdp, &local, &[], &mut OriginState::new(1)) {
        SessionDescription::parse(ours.to_string().as_bytes()).expect("our answer parses");
    }
});
