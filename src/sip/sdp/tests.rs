use super::negotiate::{
    LocalCodec, LocalMedia, NegotiationError, OriginState, agreed_from_answer, answer, offer,
};
use super::*;

/// A desk phone's offer: G.722, PCMU, PCMA, G.729, telephone-event.
const PHONE_OFFER: &str = "v=0\r\n\
o=- 20518 0 IN IP4 192.0.2.55\r\n\
s=SDP data\r\n\
c=IN IP4 192.0.2.55\r\n\
t=0 0\r\n\
m=audio 11780 RTP/AVP 9 0 8 18 101\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp:11781 IN IP4 192.0.2.55\r\n";

fn codec(encoding: &'static str, payload_type: u8, transcodable: bool) -> LocalCodec {
    LocalCodec {
        encoding,
        clock_rate: if encoding == "opus" { 48_000 } else { 8000 },
        channels: (encoding == "opus").then_some(2),
        payload_type,
        fmtp: None,
        transcodable,
    }
}

fn local() -> LocalMedia {
    LocalMedia {
        address: "198.51.100.7".parse().unwrap(),
        port: 20_000,
        codecs: vec![
            codec("PCMU", 0, true),
            codec("PCMA", 8, true),
            codec("G722", 9, true),
            codec("G729", 18, true),
            codec("opus", 111, true),
            codec("iLBC", 97, false),
        ],
        telephone_event: true,
        ptime: Some(20),
        rtcp_mux: true,
        direction: Direction::SendRecv,
    }
}

fn map(encoding: &str, pt: u8) -> RtpMap {
    RtpMap {
        payload_type: pt,
        encoding: encoding.to_owned(),
        clock_rate: if encoding == "opus" { 48_000 } else { 8000 },
        channels: None,
    }
}

fn parse(text: &str) -> SessionDescription {
    SessionDescription::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_phone_offer_parses_with_typed_access() {
    let sdp = parse(PHONE_OFFER);
    assert_eq!(sdp.origin.address, "192.0.2.55");
    assert_eq!(sdp.media.len(), 1);
    let audio = &sdp.media[0];
    assert_eq!(audio.port, 11780);
    assert_eq!(
        audio.payload_types().collect::<Vec<_>>(),
        [9, 0, 8, 18, 101]
    );
    assert_eq!(audio.rtpmap(18).unwrap().encoding, "G729");
    assert_eq!(audio.fmtp(18), Some("annexb=no"));
    assert_eq!(audio.ptime(), Some(20));
    assert_eq!(audio.rtcp_port(), Some(11781));
    assert_eq!(sdp.direction_of(0), Direction::SendRecv);
    assert_eq!(
        sdp.connection_for(0).and_then(Connection::ip),
        Some("192.0.2.55".parse().unwrap())
    );
    assert!(!sdp.is_hold());
}

#[test]
fn printing_gives_back_what_was_parsed() {
    let sdp = parse(PHONE_OFFER);
    assert_eq!(String::from_utf8(sdp.to_bytes()).unwrap(), PHONE_OFFER);
    // LF line ends and odd spacing parse to the same description.
    let lf = PHONE_OFFER.replace("\r\n", "\n");
    assert_eq!(parse(&lf), sdp);
}

#[test]
fn generated_descriptions_print_and_parse_back_to_themselves() {
    let mut seed = 0x5eed_05d9_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..500 {
        let media_count = (next() % 3) as usize;
        let media = (0..media_count)
            .map(|i| {
                let pts: Vec<String> = (0..1 + next() % 4).map(|k| (k * 8).to_string()).collect();
                MediaDescription {
                    media: ["audio", "video"][i % 2].to_owned(),
                    port: (next() % 65_536) as u16,
                    port_count: None,
                    protocol: "RTP/AVP".to_owned(),
                    formats: pts,
                    connection: (next() % 2 == 0)
                        .then(|| Connection::for_ip("2001:db8::1".parse().unwrap())),
                    other_lines: vec![('b', format!("AS:{}", next() % 100))],
                    attributes: vec![
                        Attribute::with_value("rtpmap", "0 PCMU/8000"),
                        Attribute::flag(["sendonly", "recvonly", "inactive"][i % 3]),
                    ],
                }
            })
            .collect();
        let sdp = SessionDescription {
            origin: Origin {
                username: "-".to_owned(),
                session_id: next().to_string(),
                session_version: next(),
                net_type: "IN".to_owned(),
                addr_type: "IP4".to_owned(),
                address: "192.0.2.1".to_owned(),
            },
            session_name: "call".to_owned(),
            connection: Some(Connection::for_ip("192.0.2.1".parse().unwrap())),
            other_lines: vec![('t', "0 0".to_owned())],
            attributes: vec![Attribute::with_value("group", "BUNDLE 0")],
            media,
        };
        assert_eq!(parse(&sdp.to_string()), sdp, "{sdp}");
    }
}

#[test]
fn garbage_is_refused_with_a_reason() {
    let cases: [(&[u8], SdpError); 6] = [
        (b"hello", SdpError::NoVersion),
        (b"", SdpError::NoVersion),
        (b"v=0\r\ns=x\r\n", SdpError::Missing { field: "o=" }),
        (&[b'v', b'=', b'0', b'\n', 0xff], SdpError::NotText),
        (
            b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nm=audio 4000 RTP/AVP 0\r\n",
            SdpError::Missing { field: "c=" },
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 300\r\n",
            SdpError::BadLine {
                line: 0,
                reason: "an RTP payload type is not a number from 0 to 127",
            },
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(SessionDescription::parse(body), Err(expected));
    }
    for bad in [
        "v=0\r\no=- 1\r\ns=-\r\n",
        "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio x RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 4000 RTP/AVP\r\n",
        "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nnot a line\r\n",
        "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nv=0\r\n",
        "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio 4000 RTP/AVP 0\r\no=- 1 1 IN IP4 a\r\n",
    ] {
        assert!(
            matches!(
                SessionDescription::parse(bad.as_bytes()),
                Err(SdpError::BadLine { .. })
            ),
            "{bad:?}"
        );
    }
    let many = format!(
        "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n{}",
        "m=audio 0 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1)
    );
    assert_eq!(
        SessionDescription::parse(many.as_bytes()),
        Err(SdpError::TooMany {
            what: "media sections",
            limit: MAX_MEDIA
        })
    );
}

#[test]
fn the_answer_takes_the_codec_the_other_leg_uses_so_nothing_is_transcoded() {
    let offer = parse(PHONE_OFFER);
    // The other leg talks PCMA: PCMA is chosen though G.722 and PCMU come first.
    let (answer_sdp, agreed) = answer(
        &offer,
        &local(),
        &[map("PCMA", 8)],
        &mut OriginState::new(7),
    )
    .unwrap();
    assert_eq!(agreed.codec.encoding, "PCMA");
    assert_eq!(agreed.codec.payload_type, 8);
    assert_eq!(agreed.telephone_event, Some(101));
    assert_eq!(agreed.remote, Some("192.0.2.55:11780".parse().unwrap()));
    assert_eq!(agreed.direction, Direction::SendRecv);
    assert_eq!(answer_sdp.media[0].formats, ["8", "101"]);
    assert_eq!(answer_sdp.media[0].port, 20_000);
    // It parses back, and the offerer reads the same agreement from it.
    let reparsed = parse(&answer_sdp.to_string());
    let theirs = agreed_from_answer(&offer, &reparsed).unwrap();
    assert_eq!(theirs.codec.encoding, "PCMA");
    assert_eq!(theirs.telephone_event, Some(101));
}

#[test]
fn without_a_shared_codec_the_offerers_first_transcodable_codec_is_chosen() {
    let offer = parse(PHONE_OFFER);
    let (_, agreed) = answer(
        &offer,
        &local(),
        &[map("opus", 111)],
        &mut OriginState::new(1),
    )
    .unwrap();
    assert_eq!(
        agreed.codec.encoding, "G722",
        "the phone's first choice; transcoded"
    );
    assert_eq!(agreed.fmtp, None);
    let (_, agreed) = answer(&offer, &local(), &[], &mut OriginState::new(1)).unwrap();
    assert_eq!(agreed.codec.encoding, "G722");
}

#[test]
fn relay_only_codecs_are_chosen_only_when_the_other_leg_uses_them() {
    let ilbc_only = PHONE_OFFER
        .replace(
            "m=audio 11780 RTP/AVP 9 0 8 18 101",
            "m=audio 11780 RTP/AVP 97 101",
        )
        .replace("a=rtpmap:9 G722/8000\r\n", "a=rtpmap:97 iLBC/8000\r\n");
    let offer = parse(&ilbc_only);
    assert_eq!(
        answer(&offer, &local(), &[], &mut OriginState::new(1)),
        Err(NegotiationError::NoCommonCodec {
            offered: "iLBC/8000 telephone-event/8000".to_owned()
        })
    );
    let (_, agreed) = answer(
        &offer,
        &local(),
        &[map("iLBC", 102)],
        &mut OriginState::new(1),
    )
    .unwrap();
    assert_eq!(agreed.codec.encoding, "iLBC");
    assert_eq!(agreed.codec.payload_type, 97, "the offer's number is kept");
}

#[test]
fn hold_and_unhold_re_offers_are_answered_in_kind() {
    let mut origin = OriginState::new(100);
    let held = parse(&PHONE_OFFER.replace("a=sendrecv", "a=sendonly"));
    assert!(held.is_hold());
    let (answer_sdp, agreed) = answer(&held, &local(), &[], &mut origin).unwrap();
    assert_eq!(agreed.direction, Direction::RecvOnly);
    assert_eq!(agreed.remote, Some("192.0.2.55:11780".parse().unwrap()));
    assert!(answer_sdp.media[0].has_attribute("recvonly"));
    assert_eq!(answer_sdp.origin.session_version, 100);

    let inactive = parse(&PHONE_OFFER.replace("a=sendrecv", "a=inactive"));
    let (_, agreed) = answer(&inactive, &local(), &[], &mut origin).unwrap();
    assert_eq!(agreed.direction, Direction::Inactive);
    assert_eq!(agreed.remote, Some("192.0.2.55:11780".parse().unwrap()));

    // RFC 2543 hold: c=0.0.0.0.
    let old_hold = parse(&PHONE_OFFER.replace("IN IP4 192.0.2.55\r\nt=", "IN IP4 0.0.0.0\r\nt="));
    assert!(old_hold.is_hold());
    let (_, agreed) = answer(&old_hold, &local(), &[], &mut origin).unwrap();
    assert_eq!(agreed.remote, None);
    assert_eq!(
        agreed.direction,
        Direction::RecvOnly,
        "we do not send to 0.0.0.0"
    );

    let resumed = parse(PHONE_OFFER);
    let (answer_sdp, agreed) = answer(&resumed, &local(), &[], &mut origin).unwrap();
    assert_eq!(agreed.direction, Direction::SendRecv);
    assert_eq!(
        answer_sdp.origin.session_version, 103,
        "one version per new description"
    );

    // We put the peer on hold: our sendonly against its sendrecv.
    let holding = LocalMedia {
        direction: Direction::SendOnly,
        ..local()
    };
    let (answer_sdp, agreed) = answer(&resumed, &holding, &[], &mut origin).unwrap();
    assert_eq!(agreed.direction, Direction::SendOnly);
    assert!(answer_sdp.media[0].has_attribute("sendonly"));
}

#[test]
fn a_codec_change_re_offer_picks_again() {
    let mut origin = OriginState::new(1);
    let first = parse(PHONE_OFFER);
    let (_, agreed) = answer(&first, &local(), &[map("PCMU", 0)], &mut origin).unwrap();
    assert_eq!(agreed.codec.encoding, "PCMU");
    let g729_only = parse(&PHONE_OFFER.replace(
        "m=audio 11780 RTP/AVP 9 0 8 18 101",
        "m=audio 11780 RTP/AVP 18 101",
    ));
    let (_, agreed) = answer(&g729_only, &local(), &[map("PCMU", 0)], &mut origin).unwrap();
    assert_eq!(agreed.codec.encoding, "G729");
    assert_eq!(agreed.fmtp.as_deref(), Some("annexb=no"));
}

#[test]
fn video_and_extra_streams_are_declined_with_port_zero() {
    let with_video = format!(
        "{}m=video 11790 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 11800 RTP/AVP 0\r\n",
        PHONE_OFFER
    );
    let offer = parse(&with_video);
    let (answer_sdp, agreed) = answer(&offer, &local(), &[], &mut OriginState::new(1)).unwrap();
    assert_eq!(agreed.index, 0);
    assert_eq!(
        answer_sdp.media.len(),
        3,
        "one answer section per offered one"
    );
    assert_eq!(answer_sdp.media[1].port, 0);
    assert_eq!(answer_sdp.media[1].formats, ["96"]);
    assert_eq!(
        answer_sdp.media[2].port, 0,
        "only the first audio stream is taken"
    );

    let video_only = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\n",
    );
    assert_eq!(
        answer(&video_only, &local(), &[], &mut OriginState::new(1)),
        Err(NegotiationError::NoAudio)
    );
}

#[test]
fn telephone_event_and_rtcp_mux_are_negotiated_only_when_both_want_them() {
    let offer = parse(&PHONE_OFFER.replace("a=sendrecv\r\n", "a=sendrecv\r\na=rtcp-mux\r\n"));
    let (answer_sdp, agreed) = answer(&offer, &local(), &[], &mut OriginState::new(1)).unwrap();
    assert!(agreed.rtcp_mux);
    assert!(answer_sdp.media[0].has_attribute("rtcp-mux"));
    let no_events = LocalMedia {
        telephone_event: false,
        rtcp_mux: false,
        ..local()
    };
    let (answer_sdp, agreed) = answer(&offer, &no_events, &[], &mut OriginState::new(1)).unwrap();
    assert_eq!(agreed.telephone_event, None);
    assert!(!agreed.rtcp_mux);
    assert_eq!(answer_sdp.media[0].formats, ["9"]);
    // An offer without telephone-event gets none.
    let plain = parse(&PHONE_OFFER.replace(
        "m=audio 11780 RTP/AVP 9 0 8 18 101",
        "m=audio 11780 RTP/AVP 0",
    ));
    let (_, agreed) = answer(&plain, &local(), &[], &mut OriginState::new(1)).unwrap();
    assert_eq!(agreed.telephone_event, None);
}

#[test]
fn our_offer_lists_every_codec_and_reads_the_answer() {
    let mut origin = OriginState::new(42);
    let ours = offer(&local(), &mut origin);
    let text = ours.to_string();
    let reparsed = parse(&text);
    assert_eq!(reparsed, ours);
    let audio = &reparsed.media[0];
    assert_eq!(
        audio.payload_types().collect::<Vec<_>>(),
        [0, 8, 9, 18, 111, 97, 101]
    );
    assert_eq!(audio.rtpmap(111).unwrap().channels, Some(2));
    assert_eq!(audio.fmtp(101), Some("0-16"));
    // The phone answers G.729 and telephone-event.
    let their_answer = parse(&PHONE_OFFER.replace(
        "m=audio 11780 RTP/AVP 9 0 8 18 101",
        "m=audio 11780 RTP/AVP 18 101",
    ));
    let agreed = agreed_from_answer(&ours, &their_answer).unwrap();
    assert_eq!(agreed.codec.encoding, "G729");
    assert_eq!(agreed.telephone_event, Some(101));
    assert_eq!(agreed.remote, Some("192.0.2.55:11780".parse().unwrap()));
    // An answer naming a codec we never offered is refused.
    let wrong = parse(&PHONE_OFFER.replace(
        "m=audio 11780 RTP/AVP 9 0 8 18 101",
        "m=audio 11780 RTP/AVP 3",
    ));
    assert!(matches!(
        agreed_from_answer(&ours, &wrong),
        Err(NegotiationError::NoCommonCodec { .. })
    ));
}
