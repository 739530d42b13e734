//! The offer/answer engine (RFC 3264): our offers, our answers to the peers' offers, and what
//! was agreed for the media engine.
//!
//! Codec choice, in this order: a codec the offer shares with `prefer` (what the other leg of
//! the call already uses — the call then needs no transcoding), else the offerer's most
//! preferred codec that we can transcode. Codecs we can only relay (iLBC, G.723.1) are chosen
//! only through `prefer`. The answer carries the chosen codec and telephone-event, with the
//! offer's payload type numbers. The first RTP audio stream is used; every other stream
//! (video, a second audio stream, non-RTP) is declined with port 0 as RFC 3264 §6 says.
//! Re-offers go through the same function: hold (sendonly, inactive, `c=0.0.0.0`) is answered
//! recvonly or inactive, a codec change picks again.
//!
//! What this module does not do: allocate ports, open sockets or decide hold for us (the
//! caller says so in [`LocalMedia::direction`]).

use std::net::{IpAddr, SocketAddr};

use super::{
    Attribute, Connection, Direction, MediaDescription, Origin, RtpMap, SessionDescription,
};

/// A codec this side can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalCodec {
    /// The SDP encoding name (`PCMU`, `opus`, `G729`, …), compared case-insensitively.
    pub encoding: &'static str,
    pub clock_rate: u32,
    /// Channels as SDP writes them (`opus/48000/2`); `None` for mono codecs.
    pub channels: Option<u8>,
    /// The payload type used when we offer it: its static number, or a dynamic one.
    pub payload_type: u8,
    /// `fmtp` parameters we offer with it.
    pub fmtp: Option<&'static str>,
    /// Whether the media engine can decode and encode it; otherwise it is relayed only.
    pub transcodable: bool,
}

/// What this side offers or accepts for audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// The address and port media comes to.
    pub address: IpAddr,
    pub port: u16,
    /// Our codecs, most preferred first.
    pub codecs: Vec<LocalCodec>,
    /// Offer and accept RFC 4733 telephone-event.
    pub telephone_event: bool,
    /// `a=ptime` to ask for, milliseconds.
    pub ptime: Option<u32>,
    /// Accept RTP and RTCP on one port (RFC 5761) when offered.
    pub rtcp_mux: bool,
    /// What we want: sendrecv normally, sendonly to put the peer on hold.
    pub direction: Direction,
}

/// The telephone-event payload type offered when the codec table has none of its own.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// What two sides agreed on for one audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreedAudio {
    /// The index of the audio section in both descriptions.
    pub index: usize,
    /// The peer's media address; `None` for `c=0.0.0.0` (RFC 2543 hold). Whether we send
    /// there is [`AgreedAudio::direction`].
    pub remote: Option<SocketAddr>,
    /// The codec, with the payload type both sides use for it.
    pub codec: RtpMap,
    /// Its `fmtp`, as the peer wrote it.
    pub fmtp: Option<String>,
    /// The telephone-event payload type, if both sides use RFC 4733.
    pub telephone_event: Option<u8>,
    /// The direction from our side.
    pub direction: Direction,
    /// RTP and RTCP share one port.
    pub rtcp_mux: bool,
    pub ptime: Option<u32>,
}

/// Why an offer could not be answered; the SIP answer is 488 with this in a Warning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    #[error("no RTP audio stream in the offer")]
    NoAudio,
    #[error("no common codec: offered {offered}")]
    NoCommonCodec { offered: String },
    #[error("the audio stream has no usable connection address")]
    NoAddress,
}

/// The `o=` line of our descriptions in one dialog: the version goes up with each new one
/// (RFC 3264 §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginState {
    pub session_id: u64,
    pub version: u64,
}

impl OriginState {
    pub fn new(session_id: u64) -> OriginState {
        OriginState {
            session_id,
            version: session_id,
        }
    }

    fn next(&mut self, address: IpAddr) -> Origin {
        let origin = Origin {
            username: "rswitch".to_owned(),
            session_id: self.session_id.to_string(),
            session_version: self.version,
            net_type: "IN".to_owned(),
            addr_type: if address.is_ipv4() { "IP4" } else { "IP6" }.to_owned(),
            address: address.to_string(),
        };
        self.version += 1;
        origin
    }
}

/// Our offer: one audio stream with every local codec and telephone-event.
pub fn offer(local: &LocalMedia, origin: &mut OriginState) -> SessionDescription {
    let mut formats: Vec<String> = local
        .codecs
        .iter()
        .map(|c| c.payload_type.to_string())
        .collect();
    let mut attributes: Vec<Attribute> = Vec::new();
    for codec in &local.codecs {
        attributes.push(rtpmap_attribute(
            codec.payload_type,
            codec.encoding,
            codec.clock_rate,
            codec.channels,
        ));
        if let Some(fmtp) = codec.fmtp {
            attributes.push(Attribute::with_value(
                "fmtp",
                format!("{} {fmtp}", codec.payload_type),
            ));
        }
    }
    if local.telephone_event {
        formats.push(TELEPHONE_EVENT_PT.to_string());
        attributes.push(rtpmap_attribute(
            TELEPHONE_EVENT_PT,
            "telephone-event",
            8000,
            None,
        ));
        attributes.push(Attribute::with_value(
            "fmtp",
            format!("{TELEPHONE_EVENT_PT} 0-16"),
        ));
    }
    finish_audio(local, &mut attributes, false);
    SessionDescription {
        origin: origin.next(local.address),
        session_name: "rswitch".to_owned(),
        connection: Some(Connection::for_ip(local.address)),
        other_lines: vec![('t', "0 0".to_owned())],
        attributes: Vec::new(),
        media: vec![MediaDescription {
            media: "audio".to_owned(),
            port: local.port,
            port_count: None,
            protocol: "RTP/AVP".to_owned(),
            formats,
            connection: None,
            other_lines: Vec::new(),
            attributes,
        }],
    }
}

/// Our answer to `offer`, and what was agreed.
///
/// # Errors
/// [`NegotiationError`] when no audio stream can be accepted.
pub fn answer(
    offer: &SessionDescription,
    local: &LocalMedia,
    prefer: &[RtpMap],
    origin: &mut OriginState,
) -> Result<(SessionDescription, AgreedAudio), NegotiationError> {
    let index = offer
        .media
        .iter()
        .position(|m| m.media == "audio" && m.is_rtp() && m.port != 0)
        .ok_or(NegotiationError::NoAudio)?;
    let offered = &offer.media[index];
    let (codec, fmtp) = choose(offered, local, prefer)?;
    let telephone_event = local
        .telephone_event
        .then(|| telephone_event_of(offered, codec.clock_rate))
        .flatten();
    let remote_ip = offer
        .connection_for(index)
        .and_then(Connection::ip)
        .ok_or(NegotiationError::NoAddress)?;
    // RFC 2543 hold (c=0.0.0.0) means the peer receives nothing.
    let offered_direction = match offer.direction_of(index) {
        Direction::SendRecv if remote_ip.is_unspecified() => Direction::SendOnly,
        other => other,
    };
    let direction = combine(offered_direction.answer(), local.direction);
    let remote = (!remote_ip.is_unspecified()).then(|| SocketAddr::new(remote_ip, offered.port));
    let rtcp_mux = local.rtcp_mux && offered.has_attribute("rtcp-mux");
    let ptime = offered.ptime();

    let mut formats = vec![codec.payload_type.to_string()];
    let mut attributes = vec![rtpmap_attribute(
        codec.payload_type,
        &codec.encoding,
        codec.clock_rate,
        codec.channels,
    )];
    if let Some(fmtp) = &fmtp {
        attributes.push(Attribute::with_value(
            "fmtp",
            format!("{} {fmtp}", codec.payload_type),
        ));
    }
    if let Some(pt) = telephone_event {
        formats.push(pt.to_string());
        let rate = offered.rtpmap(pt).map_or(8000, |map| map.clock_rate);
        attributes.push(rtpmap_attribute(pt, "telephone-event", rate, None));
        attributes.push(Attribute::with_value("fmtp", format!("{pt} 0-16")));
    }
    let local_answer = LocalMedia {
        direction,
        ptime: ptime.or(local.ptime),
        ..local.clone()
    };
    finish_audio(&local_answer, &mut attributes, rtcp_mux);

    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i == index {
                MediaDescription {
                    media: "audio".to_owned(),
                    port: local.port,
                    port_count: None,
                    protocol: m.protocol.clone(),
                    formats: formats.clone(),
                    connection: None,
                    other_lines: Vec::new(),
                    attributes: attributes.clone(),
                }
            } else {
                declined(m)
            }
        })
        .collect();
    let answer = SessionDescription {
        origin: origin.next(local.address),
        session_name: "rswitch".to_owned(),
        connection: Some(Connection::for_ip(local.address)),
        other_lines: vec![('t', "0 0".to_owned())],
        attributes: Vec::new(),
        media,
    };
    let agreed = AgreedAudio {
        index,
        remote,
        codec,
        fmtp,
        telephone_event,
        direction,
        rtcp_mux,
        ptime,
    };
    Ok((answer, agreed))
}

/// What the peer's answer to our offer agreed.
///
/// # Errors
/// [`NegotiationError`] when the answer accepts no audio stream or names no codec of ours.
pub fn agreed_from_answer(
    our_offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<AgreedAudio, NegotiationError> {
    let index = answer
        .media
        .iter()
        .position(|m| m.media == "audio" && m.is_rtp() && m.port != 0)
        .ok_or(NegotiationError::NoAudio)?;
    let answered = &answer.media[index];
    let ours = our_offer
        .media
        .get(index)
        .ok_or(NegotiationError::NoAudio)?;
    let codec = answered
        .payload_types()
        .filter_map(|pt| answered.rtpmap(pt))
        .find(|map| !map.encoding.eq_ignore_ascii_case("telephone-event"))
        .filter(|map| {
            ours.payload_types()
                .filter_map(|pt| ours.rtpmap(pt))
                .any(|o| same_codec(&o, map))
        })
        .ok_or_else(|| NegotiationError::NoCommonCodec {
            offered: describe(answered),
        })?;
    let ip = answer
        .connection_for(index)
        .and_then(Connection::ip)
        .ok_or(NegotiationError::NoAddress)?;
    let their_direction = answer.direction_of(index);
    Ok(AgreedAudio {
        index,
        remote: (!ip.is_unspecified()).then(|| SocketAddr::new(ip, answered.port)),
        fmtp: answered.fmtp(codec.payload_type).map(str::to_owned),
        telephone_event: telephone_event_of(answered, codec.clock_rate),
        direction: their_direction.answer(),
        rtcp_mux: answered.has_attribute("rtcp-mux") && ours.has_attribute("rtcp-mux"),
        ptime: answered.ptime(),
        codec,
    })
}

/// The codec for the answer: shared with `prefer` first, else the offerer's first that we
/// can transcode.
fn choose(
    offered: &MediaDescription,
    local: &LocalMedia,
    prefer: &[RtpMap],
) -> Result<(RtpMap, Option<String>), NegotiationError> {
    let candidates: Vec<RtpMap> = offered
        .payload_types()
        .filter_map(|pt| offered.rtpmap(pt))
        .filter(|map| !map.encoding.eq_ignore_ascii_case("telephone-event"))
        .collect();
    let ours = |map: &RtpMap| {
        local.codecs.iter().find(|c| {
            c.encoding.eq_ignore_ascii_case(&map.encoding) && c.clock_rate == map.clock_rate
        })
    };
    let shared = prefer.iter().find_map(|wanted| {
        candidates
            .iter()
            .find(|map| same_codec(map, wanted) && ours(map).is_some())
    });
    let chosen = shared
        .or_else(|| {
            candidates
                .iter()
                .find(|map| ours(map).is_some_and(|c| c.transcodable))
        })
        .ok_or_else(|| NegotiationError::NoCommonCodec {
            offered: describe(offered),
        })?;
    Ok((
        chosen.clone(),
        offered.fmtp(chosen.payload_type).map(str::to_owned),
    ))
}

/// Same encoding (case-insensitive) and clock rate; payload type numbers may differ.
pub fn same_codec(a: &RtpMap, b: &RtpMap) -> bool {
    a.encoding.eq_ignore_ascii_case(&b.encoding) && a.clock_rate == b.clock_rate
}

/// The telephone-event payload type offered at `clock_rate` (or at 8000 Hz).
fn telephone_event_of(media: &MediaDescription, clock_rate: u32) -> Option<u8> {
    let events: Vec<RtpMap> = media
        .payload_types()
        .filter_map(|pt| media.rtpmap(pt))
        .filter(|map| map.encoding.eq_ignore_ascii_case("telephone-event"))
        .collect();
    events
        .iter()
        .find(|map| map.clock_rate == clock_rate)
        .or_else(|| events.iter().find(|map| map.clock_rate == 8000))
        .map(|map| map.payload_type)
}

/// The direction that satisfies both what the offer allows and what we want.
fn combine(allowed: Direction, wanted: Direction) -> Direction {
    let sends = allowed.sends() && wanted.sends();
    let receives = allowed.receives() && wanted.receives();
    match (sends, receives) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        (false, true) => Direction::RecvOnly,
        (false, false) => Direction::Inactive,
    }
}

/// A stream we do not take: port 0, the offer's protocol and formats (RFC 3264 §6).
fn declined(offered: &MediaDescription) -> MediaDescription {
    MediaDescription {
        media: offered.media.clone(),
        port: 0,
        port_count: None,
        protocol: offered.protocol.clone(),
        formats: offered.formats.clone(),
        connection: None,
        other_lines: Vec::new(),
        attributes: Vec::new(),
    }
}

fn finish_audio(local: &LocalMedia, attributes: &mut Vec<Attribute>, rtcp_mux: bool) {
    if let Some(ptime) = local.ptime {
        attributes.push(Attribute::with_value("ptime", ptime.to_string()));
    }
    if rtcp_mux {
        attributes.push(Attribute::flag("rtcp-mux"));
    }
    attributes.push(Attribute::flag(local.direction.as_str()));
}

fn rtpmap_attribute(pt: u8, encoding: &str, rate: u32, channels: Option<u8>) -> Attribute {
    let value = match channels {
        Some(n) => format!("{pt} {encoding}/{rate}/{n}"),
        None => format!("{pt} {encoding}/{rate}"),
    };
    Attribute::with_value("rtpmap", value)
}

/// The offered codecs for an error message, e.g. `G729/8000 iLBC/8000`.
fn describe(media: &MediaDescription) -> String {
    let names: Vec<String> = media
        .payload_types()
        .map(|pt| match media.rtpmap(pt) {
            Some(map) => format!("{}/{}", map.encoding, map.clock_rate),
            None => format!("payload type {pt}"),
        })
        .collect();
    names.join(" ")
}
