//! One media thread's legs and what feeds each of them: the bridge between legs, in sans-IO.
//!
//! A leg is one RTP endpoint of a call: the codec offer/answer agreed on, the remote address
//! (latched from what arrives, RFC 3550 symmetric RTP), receive statistics, and a [`Feed`] —
//! where the audio it sends comes from: another leg (a bridge), a tone, a prompt or music on
//! hold, or nothing. Datagrams are handed in as they arrive ([`Shard::handle_datagram`]), the
//! packet clock as it ticks ([`Shard::handle_tick`], every 20 ms); what to send comes out of
//! [`Shard::transmits`], what the call engine must know out of [`Shard::poll_event`].
//!
//! Bridging two legs with the same codec forwards each packet when it arrives, payload
//! untouched (bit-exact), only SSRC, sequence number, timestamp and payload type rewritten
//! onto the receiving leg's one continuous stream. Legs with different codecs are
//! transcoded: the packets go through the jitter buffer, are decoded (or concealed) one frame
//! per tick, resampled when the rates differ, and encoded for the other leg. RFC 4733 events
//! are forwarded to a leg that negotiated telephone-event, played as in-band tones to one that
//! did not, and reported as [`MediaEvent::Dtmf`] either way (the call engine sends SIP INFO
//! where a leg wants that); a leg can also listen for in-band digits.
//!
//! After set-up nothing here allocates per packet: transmit buffers, PCM buffers and the
//! jitter buffer's slots are reused. What this module does not do: sockets and threads
//! (`media::io`), SDP (the call engine turns the negotiated answer into a [`LegConfig`]),
//! SRTP, conferences (`mixer`).

use std::collections::VecDeque;
use std::net::SocketAddr;

use rswitch_codecs::factory::{self, CodecError};
use rswitch_codecs::{Decoder, Encoder};

use super::continuity::{Latch, LatchPolicy, Rewriter, Verdict};
use super::dtmf::{DtmfDetector, TelephoneEvent, ToneGenerator};
use super::jitter::{JitterBuffer, JitterConfig, Playout};
use super::resample::Resampler;
use super::rtcp::{self, RtcpPacket};
use super::rtp::{self, RtpHeader, RtpPacket};
use super::stats::{Arrival, ReceiveStats};
use super::tones::TonePlayer;

/// The packet time rswitch sends at and ticks at.
pub const PTIME_MS: u64 = 20;

/// Largest datagram built here (RTP header + the largest payload a codec writes).
const MAX_DATAGRAM: usize = 1500;

/// How often each leg sends an RTCP report (RFC 3550's minimum interval).
const RTCP_INTERVAL_MS: u64 = 5000;

/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Digits waiting to be sent as RFC 4733 events on one leg.
pub const MAX_QUEUED_DIGITS: usize = 32;

/// How long an in-band digit is signalled as an RFC 4733 event (its real length is not
/// known when it is detected).
const INBAND_TO_EVENT_MS: u32 = 100;

/// Level of in-band DTMF played for an RFC 4733 event, dBm0.
const INBAND_DTMF_LEVEL: f64 = -10.0;

/// Names a leg within its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u32);

/// A codec as offer/answer agreed on it for one leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// The SDP encoding name (`PCMU`, `opus`, …).
    pub name: String,
    pub payload_type: u8,
    /// The RTP clock rate.
    pub clock_rate: u32,
    /// The remote side's `fmtp` for it.
    pub fmtp: Option<String>,
}

impl Codec {
    /// Whether packets of `self` can be forwarded as they are to a leg that uses `other`.
    pub fn relays_to(&self, other: &Codec) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
            && self.clock_rate == other.clock_rate
            && (!self.name.eq_ignore_ascii_case("AMR")
                || amr_octet_aligned(self.fmtp.as_deref())
                    == amr_octet_aligned(other.fmtp.as_deref()))
    }

    /// RTP timestamp units per 20 ms.
    fn frame_units(&self) -> u32 {
        self.clock_rate / 50
    }
}

fn amr_octet_aligned(fmtp: Option<&str>) -> bool {
    fmtp.is_some_and(|f| {
        f.split(';')
            .any(|p| p.trim().eq_ignore_ascii_case("octet-align=1"))
    })
}

/// A leg's media as negotiated.
#[derive(Debug, Clone)]
pub struct LegConfig {
    pub codec: Codec,
    /// The telephone-event payload type, when negotiated.
    pub telephone_event: Option<u8>,
    /// Where the SDP says to send; replaced by the latched source once packets arrive.
    pub remote: Option<SocketAddr>,
    pub latch: LatchPolicy,
    /// Send RTP (the answer's direction allows it).
    pub send: bool,
    /// Take RTP in.
    pub receive: bool,
    /// Our SSRC and first sequence number on this leg (random, from the caller).
    pub ssrc: u32,
    pub first_sequence: u16,
    /// RTCP on the RTP port (RFC 5761).
    pub rtcp_mux: bool,
    /// Listen for in-band DTMF in what this leg receives (decodes it).
    pub detect_inband_dtmf: bool,
}

/// Where a leg's outgoing audio comes from.
pub enum Feed {
    /// Nothing is sent.
    Silence,
    /// What another leg receives (a bridge).
    Leg(LegId),
    /// A call-progress tone.
    Tone(TonePlayer),
    /// A prompt or music on hold.
    Play(Player),
    /// The sum of what several legs receive (a three-way call, a supervisor listening in).
    Mix(Mix),
}

/// The legs a [`Feed::Mix`] adds up, each converted to the receiving leg's rate.
pub struct Mix {
    sources: Vec<MixSource>,
    /// The sum of one tick, before clipping.
    sum: Vec<i32>,
    converted: Vec<i16>,
}

struct MixSource {
    leg: LegId,
    /// Converts from the source's decoded rate when it differs from the receiver's.
    resampler: Option<(u32, Resampler)>,
}

impl Mix {
    /// Mixes what `legs` receive (a leg listed twice counts once).
    pub fn new(legs: &[LegId]) -> Mix {
        let mut sources: Vec<MixSource> = Vec::with_capacity(legs.len());
        for &leg in legs {
            if !sources.iter().any(|s| s.leg == leg) {
                sources.push(MixSource {
                    leg,
                    resampler: None,
                });
            }
        }
        Mix {
            sources,
            sum: Vec::with_capacity(960),
            converted: Vec::with_capacity(960),
        }
    }

    fn legs(&self) -> impl Iterator<Item = LegId> + '_ {
        self.sources.iter().map(|s| s.leg)
    }

    /// Appends one frame (`frame` samples at `rate`) of the sources' decoded audio, added
    /// and clipped; silence where no source has audio this tick.
    fn fill(&mut self, legs: &[Option<Leg>], frame: usize, rate: u32, out: &mut Vec<i16>) {
        self.sum.clear();
        self.sum.resize(frame, 0);
        for source in &mut self.sources {
            let Some(path) = leg_in(legs, source.leg).and_then(|l| l.decode.as_ref()) else {
                continue;
            };
            if path.pcm.is_empty() {
                continue;
            }
            let source_rate = path.decoder.info().sample_rate;
            let samples: &[i16] = if source_rate == rate {
                &path.pcm
            } else {
                let resampler = match &mut source.resampler {
                    Some((from, resampler)) if *from == source_rate => resampler,
                    slot => {
                        &mut slot
                            .insert((source_rate, Resampler::new(source_rate, rate)))
                            .1
                    }
                };
                self.converted.clear();
                resampler.process(&path.pcm, &mut self.converted);
                &self.converted
            };
            for (total, &sample) in self.sum.iter_mut().zip(samples) {
                *total += i32::from(sample);
            }
        }
        out.extend(
            self.sum
                .iter()
                .map(|&s| s.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16),
        );
    }
}

/// Audio played to a leg, already at the leg's rate.
pub struct Player {
    samples: std::sync::Arc<[i16]>,
    position: usize,
    looping: bool,
}

impl Player {
    /// Plays `samples` (mono, at `rate`) to a leg whose audio runs at `leg_rate`; converted
    /// once here, at set-up.
    pub fn new(samples: &[i16], rate: u32, leg_rate: u32, looping: bool) -> Player {
        let samples = if rate == leg_rate {
            samples.into()
        } else {
            let mut out = Vec::with_capacity(samples.len() * leg_rate as usize / rate as usize);
            Resampler::new(rate, leg_rate).process(samples, &mut out);
            out.into()
        };
        Player {
            samples,
            position: 0,
            looping,
        }
    }

    /// Shares already converted audio (music on hold played to many legs).
    pub fn shared(samples: std::sync::Arc<[i16]>, looping: bool) -> Player {
        Player {
            samples,
            position: 0,
            looping,
        }
    }

    /// Appends `count` samples; returns false once a non-looping prompt has ended (the rest
    /// filled with silence).
    fn fill(&mut self, count: usize, out: &mut Vec<i16>) -> bool {
        let mut left = count;
        while left > 0 {
            if self.position >= self.samples.len() {
                if !self.looping || self.samples.is_empty() {
                    out.resize(out.len() + left, 0);
                    return false;
                }
                self.position = 0;
            }
            let take = left.min(self.samples.len() - self.position);
            out.extend_from_slice(&self.samples[self.position..self.position + take]);
            self.position += take;
            left -= take;
        }
        true
    }
}

/// Receives a leg's decoded audio (a recording).
pub trait AudioSink: Send {
    /// One frame of what the leg received, at `rate`.
    fn write(&mut self, samples: &[i16], rate: u32);
}

/// What the call engine hears from the media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A DTMF digit received on `leg`, by RFC 4733 or in-band.
    Dtmf {
        leg: LegId,
        digit: char,
        duration_ms: u32,
        inband: bool,
    },
    /// A prompt played to `leg` has ended.
    PlaybackDone { leg: LegId },
    /// `leg` latched onto (or moved to) `remote`.
    Latched { leg: LegId, remote: SocketAddr },
    /// The leg's peer said goodbye in RTCP.
    RtcpBye { leg: LegId },
    /// A leg that sends and receives heard no RTP for the shard's RTP timeout (reported
    /// once; again only after packets came back and stopped again).
    RtpTimeout { leg: LegId },
}

/// Counters per leg, for CDRs and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegCounters {
    pub packets_in: u64,
    pub packets_out: u64,
    pub octets_out: u64,
    /// Not RTP or RTCP, or malformed.
    pub malformed: u64,
    /// A payload type not negotiated.
    pub unknown_payload_type: u64,
    /// From another source than the latched one.
    pub rejected_source: u64,
    pub rtcp_in: u64,
    /// Frames concealed for lost or late packets.
    pub concealed: u64,
}

impl LegCounters {
    /// Adds `other` to these counters.
    pub fn add(&mut self, other: &LegCounters) {
        self.packets_in += other.packets_in;
        self.packets_out += other.packets_out;
        self.octets_out += other.octets_out;
        self.malformed += other.malformed;
        self.unknown_payload_type += other.unknown_payload_type;
        self.rejected_source += other.rejected_source;
        self.rtcp_in += other.rtcp_in;
        self.concealed += other.concealed;
    }

    /// What these counters gained since `earlier`.
    pub fn since(&self, earlier: &LegCounters) -> LegCounters {
        LegCounters {
            packets_in: self.packets_in - earlier.packets_in,
            packets_out: self.packets_out - earlier.packets_out,
            octets_out: self.octets_out - earlier.octets_out,
            malformed: self.malformed - earlier.malformed,
            unknown_payload_type: self.unknown_payload_type - earlier.unknown_payload_type,
            rejected_source: self.rejected_source - earlier.rejected_source,
            rtcp_in: self.rtcp_in - earlier.rtcp_in,
            concealed: self.concealed - earlier.concealed,
        }
    }
}

/// One datagram to send.
#[derive(Debug)]
pub struct Transmit {
    pub leg: LegId,
    /// RTP (false: RTCP on the RTCP port when not muxed).
    pub rtp: bool,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Transmit buffers reused from one tick to the next.
#[derive(Default)]
struct TransmitQueue {
    items: Vec<Transmit>,
    len: usize,
}

impl TransmitQueue {
    /// A cleared buffer for a datagram to `to` from `leg`.
    fn push(&mut self, leg: LegId, rtp: bool, to: SocketAddr) -> &mut Vec<u8> {
        if self.len == self.items.len() {
            self.items.push(Transmit {
                leg,
                rtp,
                to,
                bytes: Vec::with_capacity(MAX_DATAGRAM),
            });
        }
        let item = &mut self.items[self.len];
        self.len += 1;
        item.leg = leg;
        item.rtp = rtp;
        item.to = to;
        item.bytes.clear();
        &mut item.bytes
    }

    fn as_slice(&self) -> &[Transmit] {
        &self.items[..self.len]
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// The decode side of a leg: jitter buffer, decoder, the frame decoded this tick.
struct DecodePath {
    jitter: JitterBuffer,
    decoder: Box<dyn Decoder>,
    /// This tick's frame at `decoder.info().sample_rate`.
    pcm: Vec<i16>,
    /// For in-band detection (8 kHz) when the decoder runs at another rate.
    to_8k: Option<Resampler>,
    pcm_8k: Vec<i16>,
    /// The last good frame and the gaps since, for codecs without their own concealment.
    last_good: Vec<i16>,
    gap_run: u32,
}

impl DecodePath {
    /// One frame standing in for a lost one: the codec's concealment where it has one,
    /// otherwise the last good frame repeated, fading (0.7, 0.4, 0.15) to silence from the
    /// fourth gap on.
    fn conceal(&mut self, frame: usize) {
        self.gap_run += 1;
        if self.decoder.has_concealment() || self.last_good.len() != frame {
            self.decoder.conceal(frame, &mut self.pcm);
            return;
        }
        let gain = match self.gap_run {
            1 => 0.7,
            2 => 0.4,
            3 => 0.15,
            _ => 0.0,
        };
        self.pcm
            .extend(self.last_good.iter().map(|&s| (f32::from(s) * gain) as i16));
    }
}

/// The encode side of a leg.
struct EncodePath {
    encoder: Box<dyn Encoder>,
    /// Converts from the rate audio arrives at, when it differs.
    resampler: Option<(u32, Resampler)>,
    pcm: Vec<i16>,
    payload: Vec<u8>,
    /// Our own timestamp for generated audio (a source of its own for the rewriter).
    timestamp: u32,
    sequence: u16,
}

/// What a leg was sending, to be continued by the leg its endpoint gets on another shard.
#[derive(Debug, Clone)]
pub struct OutgoingStream {
    rewriter: Rewriter,
    event_sequence: u16,
    last_sent: Option<(u32, u64)>,
}

/// An RFC 4733 event being sent on a leg.
struct OutgoingEvent {
    code: u8,
    /// Its whole duration and what has been sent so far, timestamp units.
    total: u16,
    duration: u16,
    /// End packets sent (three in all).
    end_sent: u8,
    /// The stand-in SSRC and the timestamp of this event for the rewriter.
    source: u32,
    timestamp: u32,
}

/// An RFC 4733 event being played in-band to a leg.
struct InbandDigit {
    tone: ToneGenerator,
    samples_left: usize,
}

struct Leg {
    config: LegConfig,
    latch: Latch,
    stats: Option<ReceiveStats>,
    rewriter: Rewriter,
    feed: Feed,
    /// The leg whose feed is this one (its bridge peer): the last of `fed`.
    listener: Option<LegId>,
    /// Every leg whose feed is this one (usually none or one).
    fed: Vec<LegId>,
    /// Every leg whose feed is a mix with this one in it.
    mixed_into: Vec<LegId>,
    decode: Option<DecodePath>,
    encode: Option<EncodePath>,
    detector: Option<DtmfDetector>,
    inband: Option<InbandDigit>,
    sink: Option<Box<dyn AudioSink>>,
    /// The timestamp of the last RFC 4733 event reported (events repeat their packets).
    last_event: Option<u32>,
    /// The RFC 4733 event being sent, and the digits waiting for it to end.
    outgoing: Option<OutgoingEvent>,
    queued_digits: VecDeque<(u8, u16)>,
    /// Our sequence counter for event packets.
    event_sequence: u16,
    /// The remote SSRC heard, for reports.
    remote_ssrc: Option<u32>,
    last_rtcp_ms: u64,
    /// Our last RTP timestamp sent and when (for the SR's RTP timestamp).
    last_sent: Option<(u32, u64)>,
    /// The middle 32 bits of the peer's last SR's NTP time, and when it came (for LSR/DLSR).
    last_sr: Option<(u32, u64)>,
    /// Round-trip time from the peer's report blocks about us (RFC 3550 §6.4.1).
    rtt_ms: Option<u32>,
    counters: LegCounters,
    /// When RTP last arrived, or the watch for it started (`None`: not watched yet).
    last_rtp_ms: Option<u64>,
    /// An `RtpTimeout` was reported and no RTP came since.
    timed_out: bool,
}

/// See the module doc.
pub struct Shard {
    legs: Vec<Option<Leg>>,
    free: Vec<u32>,
    transmits: TransmitQueue,
    events: VecDeque<MediaEvent>,
    scratch: Vec<i16>,
    digits: Vec<char>,
    cname: String,
    /// Unix time, ms, at `now_ms` = 0: for the NTP timestamps of RTCP.
    wallclock_at_zero_ms: u64,
    /// The counters of legs already removed (for totals).
    retired: LegCounters,
    /// Silence on a sendrecv leg this long is reported; 0: never.
    rtp_timeout_ms: u64,
}

impl Shard {
    /// An empty shard; `cname` goes into the RTCP SDES of every leg.
    pub fn new(cname: &str) -> Shard {
        Shard {
            legs: Vec::new(),
            free: Vec::new(),
            transmits: TransmitQueue::default(),
            events: VecDeque::new(),
            scratch: Vec::with_capacity(960),
            digits: Vec::new(),
            cname: cname.to_owned(),
            wallclock_at_zero_ms: 0,
            retired: LegCounters::default(),
            rtp_timeout_ms: 0,
        }
    }

    /// Reports [`MediaEvent::RtpTimeout`] for a leg that sends and receives but hears no RTP
    /// for `ms` (0: never). Held legs (sendonly, recvonly, inactive) are not watched, and
    /// the watch starts afresh whenever a leg's media is renegotiated.
    pub fn set_rtp_timeout(&mut self, ms: u64) {
        self.rtp_timeout_ms = ms;
    }

    /// Sets the wall-clock time (Unix ms) of `now_ms` = 0, for RTCP's NTP timestamps.
    pub fn set_wallclock(&mut self, unix_ms_at_zero: u64) {
        self.wallclock_at_zero_ms = unix_ms_at_zero;
    }

    fn ntp(&self, now_ms: u64) -> u64 {
        ntp_of(self.wallclock_at_zero_ms, now_ms)
    }

    /// The round-trip time to a leg's peer from RTCP, once known.
    pub fn round_trip_ms(&self, id: LegId) -> Option<u32> {
        self.leg(id)?.rtt_ms
    }

    /// Adds a leg; its feed starts as silence.
    pub fn add_leg(&mut self, config: LegConfig) -> LegId {
        let leg = Leg {
            latch: Latch::new(config.latch),
            stats: None,
            rewriter: Rewriter::new(config.ssrc, config.first_sequence, config.codec.clock_rate),
            feed: Feed::Silence,
            listener: None,
            fed: Vec::new(),
            mixed_into: Vec::new(),
            decode: None,
            encode: None,
            detector: config.detect_inband_dtmf.then(DtmfDetector::new),
            inband: None,
            sink: None,
            last_event: None,
            outgoing: None,
            queued_digits: VecDeque::with_capacity(MAX_QUEUED_DIGITS),
            event_sequence: 0,
            remote_ssrc: None,
            last_rtcp_ms: 0,
            last_sent: None,
            last_sr: None,
            rtt_ms: None,
            counters: LegCounters::default(),
            last_rtp_ms: None,
            timed_out: false,
            config,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.legs[index as usize] = Some(leg);
                index
            }
            None => {
                self.legs.push(Some(leg));
                (self.legs.len() - 1) as u32
            }
        };
        let id = LegId(index);
        if self.legs[index as usize]
            .as_ref()
            .is_some_and(|l| l.detector.is_some())
        {
            // In-band detection needs the audio decoded whatever the feeds are.
            let _ = self.ensure_decoder(id, 8000);
        }
        id
    }

    /// Removes a leg; a leg fed by it falls silent.
    pub fn remove_leg(&mut self, id: LegId) -> Option<OutgoingStream> {
        let leg = self.leg(id)?;
        let stream = OutgoingStream {
            rewriter: leg.rewriter.clone(),
            event_sequence: leg.event_sequence,
            last_sent: leg.last_sent,
        };
        let counters = leg.counters;
        self.retired.add(&counters);
        self.unlink_feed(id);
        let (fed, mixed_into) = self.legs[id.0 as usize]
            .take()
            .map(|leg| (leg.fed, leg.mixed_into))
            .unwrap_or_default();
        self.free.push(id.0);
        for target in fed {
            if let Some(leg) = self.leg_mut(target)
                && matches!(leg.feed, Feed::Leg(source) if source == id)
            {
                leg.feed = Feed::Silence;
            }
        }
        for target in mixed_into {
            if let Some(leg) = self.leg_mut(target)
                && let Feed::Mix(mix) = &mut leg.feed
            {
                mix.sources.retain(|s| s.leg != id);
            }
        }
        Some(stream)
    }

    /// Adds a leg that goes on with `stream`, what a removed leg sent (its endpoint moved here
    /// from another shard): same SSRC, the next sequence number and timestamp, so the peer
    /// sees one stream (receivers' jitter buffers drop a new stream whose numbers start
    /// behind the old one's).
    pub fn add_leg_continuing(&mut self, mut config: LegConfig, stream: OutgoingStream) -> LegId {
        config.ssrc = stream.rewriter.ssrc();
        let rewriter = stream.rewriter.continued(config.codec.clock_rate);
        let id = self.add_leg(config);
        if let Some(leg) = self.leg_mut(id) {
            leg.rewriter = rewriter;
            leg.event_sequence = stream.event_sequence;
            leg.last_sent = stream.last_sent;
        }
        id
    }

    /// `target`'s feed no longer reads its source leg or legs (if it did).
    fn unlink_feed(&mut self, target: LegId) {
        let sources: Vec<LegId> = match self.leg(target).map(|l| &l.feed) {
            Some(Feed::Leg(source)) => {
                let source = *source;
                if let Some(leg) = self.leg_mut(source) {
                    leg.fed.retain(|&t| t != target);
                    leg.listener = leg.fed.last().copied();
                }
                return;
            }
            Some(Feed::Mix(mix)) => mix.legs().collect(),
            _ => return,
        };
        for source in sources {
            if let Some(leg) = self.leg_mut(source) {
                leg.mixed_into.retain(|&t| t != target);
            }
        }
    }

    /// `target`'s feed reads `source`: it becomes `source`'s listener.
    fn link_feed(&mut self, target: LegId, source: LegId) {
        if let Some(leg) = self.leg_mut(source) {
            if !leg.fed.contains(&target) {
                leg.fed.push(target);
            }
            leg.listener = Some(target);
        }
    }

    /// The legs in the shard.
    pub fn len(&self) -> usize {
        self.legs.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn leg(&self, id: LegId) -> Option<&Leg> {
        self.legs.get(id.0 as usize)?.as_ref()
    }

    fn leg_mut(&mut self, id: LegId) -> Option<&mut Leg> {
        self.legs.get_mut(id.0 as usize)?.as_mut()
    }

    /// The counters of every leg the shard has had, added up.
    pub fn totals(&self) -> LegCounters {
        let mut totals = self.retired;
        for leg in self.legs.iter().flatten() {
            totals.add(&leg.counters);
        }
        totals
    }

    /// A leg's counters.
    pub fn counters(&self, id: LegId) -> Option<LegCounters> {
        self.leg(id).map(|l| l.counters)
    }

    /// A leg's RFC 3550 receive statistics: (lost, jitter in timestamp units).
    pub fn receive_quality(&self, id: LegId) -> Option<(i64, u32)> {
        let stats = self.leg(id)?.stats.as_ref()?;
        Some((stats.lost(), stats.jitter()))
    }

    /// Where a leg sends: the latched source, else what the SDP said.
    pub fn remote(&self, id: LegId) -> Option<SocketAddr> {
        let leg = self.leg(id)?;
        leg.latch.remote().or(leg.config.remote)
    }

    /// Whether packets from `from` reach `to` untouched.
    pub fn passes_through(&self, from: LegId, to: LegId) -> bool {
        match (self.leg(from), self.leg(to)) {
            (Some(a), Some(b)) => a.config.codec.relays_to(&b.config.codec),
            _ => false,
        }
    }

    /// New negotiated media for a leg (a re-INVITE): codec, remote, direction. The stream it
    /// sends continues (the rewriter marks the change); the decoder and encoder are rebuilt
    /// on next use.
    pub fn update_leg(&mut self, id: LegId, config: LegConfig) {
        let Some(leg) = self.leg_mut(id) else { return };
        let codec_changed = leg.config.codec != config.codec;
        if leg.config.remote != config.remote {
            leg.latch.reset();
        }
        leg.config.codec = config.codec;
        leg.config.telephone_event = config.telephone_event;
        leg.config.remote = config.remote;
        leg.config.send = config.send;
        leg.config.receive = config.receive;
        leg.last_rtp_ms = None;
        leg.timed_out = false;
        if codec_changed {
            leg.decode = None;
            leg.encode = None;
            leg.stats = None;
            leg.rewriter.source_changed();
        }
    }

    /// Sets where a leg's audio comes from. Bridging two legs is `set_feed(a, Leg(b))` and
    /// `set_feed(b, Leg(a))`.
    ///
    /// # Errors
    /// When the audio has to be transcoded and a codec cannot be (relay-only codecs such as
    /// iLBC): the feed is left unchanged.
    pub fn set_feed(&mut self, id: LegId, feed: Feed) -> Result<(), CodecError> {
        if self.leg(id).is_none() {
            return Ok(());
        }
        if let Feed::Leg(source) = feed
            && self.leg(source).is_some()
            && !self.passes_through(source, id)
        {
            let rate = self.encoder_rate_hint(id);
            let decoded_rate = self.ensure_decoder(source, rate)?;
            self.ensure_encoder(id, decoded_rate)?;
        }
        if matches!(feed, Feed::Tone(_) | Feed::Play(_)) {
            self.ensure_encoder(id, 8000)?;
        }
        let mut feed = feed;
        if let Feed::Mix(mix) = &mut feed {
            // A source that is this leg itself or not here is left out; every other one is
            // decoded.
            mix.sources.retain(|s| {
                s.leg != id && self.legs.get(s.leg.0 as usize).is_some_and(Option::is_some)
            });
            let rate = self.encoder_rate_hint(id);
            let mut first_rate = None;
            for source in mix.legs().collect::<Vec<_>>() {
                let decoded = self.ensure_decoder(source, rate)?;
                first_rate.get_or_insert(decoded);
            }
            self.ensure_encoder(id, first_rate.unwrap_or(rate))?;
        }
        self.unlink_feed(id);
        let source = match feed {
            Feed::Leg(source) => Some(source),
            _ => None,
        };
        let mixed: Vec<LegId> = match &feed {
            Feed::Mix(mix) => mix.legs().collect(),
            _ => Vec::new(),
        };
        let leg = self.leg_mut(id).expect("checked above");
        leg.feed = feed;
        leg.rewriter.source_changed();
        if let Some(source) = source {
            self.link_feed(id, source);
        }
        for source in mixed {
            if let Some(leg) = self.leg_mut(source)
                && !leg.mixed_into.contains(&id)
            {
                leg.mixed_into.push(id);
            }
        }
        Ok(())
    }

    /// The PCM rate a leg's encoder runs at (for players: convert prompts to it once).
    pub fn encoder_rate(&mut self, id: LegId) -> Result<u32, CodecError> {
        self.ensure_encoder(id, 8000)
    }

    /// Sends a leg's received audio, decoded, to `sink` too (a recording); `None` stops.
    ///
    /// # Errors
    /// When the leg's codec cannot be decoded.
    pub fn set_sink(
        &mut self,
        id: LegId,
        sink: Option<Box<dyn AudioSink>>,
    ) -> Result<(), CodecError> {
        if sink.is_some() {
            self.ensure_decoder(id, 8000)?;
        }
        if let Some(leg) = self.leg_mut(id) {
            leg.sink = sink;
        }
        Ok(())
    }

    /// Plays `digit` to a leg: RFC 4733 when it negotiated telephone-event, in-band otherwise.
    pub fn send_dtmf(&mut self, id: LegId, digit: char, duration_ms: u32, now_ms: u64) -> bool {
        let Some(leg) = self.leg(id) else {
            return false;
        };
        let Some(code) = TelephoneEvent::code(digit) else {
            return false;
        };
        if leg.config.telephone_event.is_some() {
            self.queue_event(id, code, duration_ms, now_ms)
        } else {
            self.start_inband(id, digit, duration_ms).is_ok()
        }
    }

    /// Queues an RFC 4733 event (at most [`MAX_QUEUED_DIGITS`] waiting) and, when none is
    /// under way, sends its first packet now.
    fn queue_event(&mut self, id: LegId, code: u8, duration_ms: u32, now_ms: u64) -> bool {
        let Some(leg) = self.leg_mut(id) else {
            return false;
        };
        if leg.queued_digits.len() >= MAX_QUEUED_DIGITS {
            return false;
        }
        // RFC 4733 §2.5.2.3: a long event is split into segments; rswitch caps one at the
        // 16-bit duration instead (8 s at 8 kHz), longer than any key press.
        let units = (u64::from(duration_ms.clamp(40, 8000))
            * u64::from(leg.config.codec.clock_rate)
            / 1000)
            .min(u64::from(u16::MAX)) as u16;
        leg.queued_digits.push_back((code, units));
        if leg.outgoing.is_none() {
            self.send_event_packet(id, now_ms);
        }
        true
    }

    /// The datagrams to send now; call [`Shard::clear_transmits`] once they are sent.
    pub fn transmits(&self) -> &[Transmit] {
        self.transmits.as_slice()
    }

    pub fn clear_transmits(&mut self) {
        self.transmits.clear();
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// The rate `id`'s encoder runs at or will run at, to decode its source's audio at.
    fn encoder_rate_hint(&self, id: LegId) -> u32 {
        match self.leg(id) {
            Some(leg) => match &leg.encode {
                Some(path) => path.encoder.info().sample_rate,
                None => natural_rate(&leg.config.codec),
            },
            None => 8000,
        }
    }

    /// Makes the leg's decode path if missing; returns its PCM rate.
    fn ensure_decoder(&mut self, id: LegId, rate_hint: u32) -> Result<u32, CodecError> {
        let Some(leg) = self.leg_mut(id) else {
            return Ok(rate_hint);
        };
        if let Some(path) = &leg.decode {
            return Ok(path.decoder.info().sample_rate);
        }
        let codec = &leg.config.codec;
        let decoder = factory::new_decoder(&codec.name, codec.fmtp.as_deref(), rate_hint)?;
        let rate = decoder.info().sample_rate;
        let mut jitter = JitterConfig::for_clock_rate(codec.clock_rate);
        jitter.frame = codec.frame_units();
        leg.decode = Some(DecodePath {
            jitter: JitterBuffer::new(jitter),
            decoder,
            pcm: Vec::with_capacity(rate as usize / 50 * 2),
            to_8k: (rate != 8000).then(|| Resampler::new(rate, 8000)),
            pcm_8k: Vec::with_capacity(320),
            last_good: Vec::with_capacity(rate as usize / 50),
            gap_run: 0,
        });
        Ok(rate)
    }

    /// Makes the leg's encode path if missing, for audio arriving at `input_rate`; returns
    /// the encoder's PCM rate.
    fn ensure_encoder(&mut self, id: LegId, input_rate: u32) -> Result<u32, CodecError> {
        let Some(leg) = self.leg_mut(id) else {
            return Ok(input_rate);
        };
        if leg.encode.is_none() {
            let codec = &leg.config.codec;
            let encoder = factory::new_encoder(&codec.name, codec.fmtp.as_deref(), input_rate)?;
            leg.encode = Some(EncodePath {
                encoder,
                resampler: None,
                pcm: Vec::with_capacity(960),
                payload: Vec::with_capacity(MAX_DATAGRAM),
                timestamp: leg.config.ssrc.rotate_left(7),
                sequence: 0,
            });
        }
        let path = leg.encode.as_ref().expect("made above");
        Ok(path.encoder.info().sample_rate)
    }

    fn start_inband(&mut self, id: LegId, digit: char, duration_ms: u32) -> Result<(), CodecError> {
        let rate = self.ensure_encoder(id, 8000)?;
        let Some(tone) = ToneGenerator::new(digit, INBAND_DTMF_LEVEL, rate) else {
            return Ok(());
        };
        if let Some(leg) = self.leg_mut(id) {
            leg.inband = Some(InbandDigit {
                tone,
                samples_left: (u64::from(duration_ms.clamp(40, 2000)) * u64::from(rate) / 1000)
                    as usize,
            });
        }
        Ok(())
    }

    /// Sends the next packet of the leg's outgoing RFC 4733 event, if one is under way, and
    /// starts the next queued digit after one has ended (RFC 4733 §2.5.1: one timestamp
    /// for the event, the duration growing by a packet time per packet, the marker on the
    /// first, the end packet sent three times at the packet interval).
    fn send_event_packet(&mut self, id: LegId, now_ms: u64) {
        let Some(leg) = self.legs.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(pt) = leg.config.telephone_event else {
            leg.outgoing = None;
            leg.queued_digits.clear();
            return;
        };
        if leg.outgoing.is_none() {
            let Some((code, total)) = leg.queued_digits.pop_front() else {
                return;
            };
            leg.event_sequence = leg.event_sequence.wrapping_add(1);
            leg.outgoing = Some(OutgoingEvent {
                code,
                total,
                duration: 0,
                end_sent: 0,
                source: leg.config.ssrc ^ 0x4733_0000 ^ u32::from(leg.event_sequence),
                timestamp: (now_ms * u64::from(leg.config.codec.clock_rate) / 1000) as u32,
            });
        }
        let Some(to) = leg.latch.remote().or(leg.config.remote) else {
            return;
        };
        let frame = leg.config.codec.frame_units().min(u32::from(u16::MAX)) as u16;
        let event = leg.outgoing.as_mut().expect("set above");
        let first = event.duration == 0 && event.end_sent == 0;
        event.duration = event.duration.saturating_add(frame).min(event.total);
        let end = event.duration >= event.total;
        if end {
            event.end_sent += 1;
        }
        let payload = TelephoneEvent {
            event: event.code,
            end,
            volume: 10,
            duration: event.duration,
        }
        .to_bytes();
        let (source, timestamp, done) = (event.source, event.timestamp, event.end_sent >= 3);
        leg.event_sequence = leg.event_sequence.wrapping_add(1);
        if leg.config.send {
            let numbers = leg
                .rewriter
                .rewrite(source, leg.event_sequence, timestamp, now_ms);
            let header = RtpHeader {
                marker: first,
                payload_type: pt,
                sequence: numbers.sequence,
                timestamp: numbers.timestamp,
                ssrc: numbers.ssrc,
            };
            let bytes = self.transmits.push(id, true, to);
            header.write_packet(&payload, bytes);
            leg.last_sent = Some((header.timestamp, now_ms));
            leg.counters.packets_out += 1;
            leg.counters.octets_out += payload.len() as u64;
        }
        if done {
            leg.outgoing = None;
            leg.rewriter.source_changed();
        }
    }

    /// A datagram arrived on `id`'s port (RTP, or RTCP when muxed or `rtcp` is set) from
    /// `source` at `now_ms`.
    pub fn handle_datagram(
        &mut self,
        id: LegId,
        source: SocketAddr,
        datagram: &[u8],
        rtcp_port: bool,
        now_ms: u64,
    ) {
        let Some(leg) = self.legs.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        if rtcp_port || (leg.config.rtcp_mux && rtp::is_rtcp(datagram)) {
            leg.counters.rtcp_in += 1;
            let packets = match rtcp::parse(datagram) {
                Ok(packets) => packets,
                Err(_) => {
                    leg.counters.malformed += 1;
                    return;
                }
            };
            let now_ntp_middle = (self.ntp(now_ms) >> 16) as u32;
            let leg = self.legs[id.0 as usize].as_mut().expect("looked up above");
            for packet in &packets {
                let reports = match packet {
                    RtcpPacket::SenderReport { info, reports, .. } => {
                        leg.last_sr = Some(((info.ntp >> 16) as u32, now_ms));
                        reports
                    }
                    RtcpPacket::ReceiverReport { reports, .. } => reports,
                    RtcpPacket::Bye { .. } => {
                        self.events.push_back(MediaEvent::RtcpBye { leg: id });
                        continue;
                    }
                    _ => continue,
                };
                for block in reports {
                    if block.ssrc == leg.config.ssrc && block.last_sr != 0 {
                        // RFC 3550 §6.4.1: A − LSR − DLSR, in 1/65536 s.
                        let rtt = now_ntp_middle
                            .wrapping_sub(block.last_sr)
                            .wrapping_sub(block.delay_since_last_sr);
                        if rtt < 10 * 65_536 {
                            leg.rtt_ms = Some((u64::from(rtt) * 1000 / 65_536) as u32);
                        }
                    }
                }
            }
            return;
        }
        let Ok(packet) = RtpPacket::parse(datagram) else {
            leg.counters.malformed += 1;
            return;
        };
        if !leg.config.receive {
            return;
        }
        let header = packet.header;
        let is_audio = header.payload_type == leg.config.codec.payload_type;
        let is_event = leg.config.telephone_event == Some(header.payload_type);
        if !is_audio && !is_event {
            leg.counters.unknown_payload_type += 1;
            return;
        }
        match leg.latch.check(source, header.ssrc, header.sequence) {
            Verdict::Reject => {
                leg.counters.rejected_source += 1;
                return;
            }
            Verdict::Accept { moved } => {
                if moved {
                    self.events.push_back(MediaEvent::Latched {
                        leg: id,
                        remote: source,
                    });
                }
            }
        }
        leg.counters.packets_in += 1;
        leg.last_rtp_ms = Some(now_ms);
        leg.timed_out = false;
        let clock = u64::from(leg.config.codec.clock_rate);
        let arrival = (now_ms * clock / 1000) as u32;
        if leg.remote_ssrc != Some(header.ssrc) {
            leg.remote_ssrc = Some(header.ssrc);
            leg.stats = Some(ReceiveStats::new(header.sequence));
        }
        if let Some(stats) = &mut leg.stats
            && is_audio
            && stats.record(header.sequence, header.timestamp, arrival) == Arrival::Jump
        {
            return;
        }
        if is_event {
            self.handle_event(id, header, packet.payload, now_ms);
            return;
        }
        if let Some(path) = &mut leg.decode {
            path.jitter
                .insert(header.timestamp, packet.payload, arrival);
        }
        // Forward untouched to every leg fed by this one with the same codec.
        let listener = leg.listener;
        if let Some(target) = listener
            && self.passes_through(id, target)
        {
            self.forward(target, header, packet.payload, now_ms);
        }
    }

    /// The payload of `header` sent on `target` as its own stream.
    fn forward(&mut self, target: LegId, header: RtpHeader, payload: &[u8], now_ms: u64) {
        let Some(leg) = self
            .legs
            .get_mut(target.0 as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        if !leg.config.send || leg.inband.is_some() || leg.outgoing.is_some() {
            return;
        }
        let Some(to) = leg.latch.remote().or(leg.config.remote) else {
            return;
        };
        let numbers = leg
            .rewriter
            .rewrite(header.ssrc, header.sequence, header.timestamp, now_ms);
        let out = RtpHeader {
            marker: header.marker || numbers.marker,
            payload_type: leg.config.codec.payload_type,
            sequence: numbers.sequence,
            timestamp: numbers.timestamp,
            ssrc: numbers.ssrc,
        };
        let bytes = self.transmits.push(target, true, to);
        out.write_packet(payload, bytes);
        leg.last_sent = Some((out.timestamp, now_ms));
        leg.counters.packets_out += 1;
        leg.counters.octets_out += payload.len() as u64;
    }

    /// An RFC 4733 packet on `id`: reported once per event, forwarded or played in-band to
    /// the leg it feeds.
    fn handle_event(&mut self, id: LegId, header: RtpHeader, payload: &[u8], now_ms: u64) {
        let Some(event) = TelephoneEvent::parse(payload) else {
            if let Some(leg) = self.leg_mut(id) {
                leg.counters.malformed += 1;
            }
            return;
        };
        let Some(leg) = self.leg_mut(id) else { return };
        let clock = leg.config.codec.clock_rate.max(1);
        let first_of_event = leg.last_event != Some(header.timestamp);
        if first_of_event {
            leg.last_event = Some(header.timestamp);
        }
        let listener = leg.listener;
        let digit = TelephoneEvent::digit(event.event);
        if first_of_event && let Some(digit) = digit {
            self.events.push_back(MediaEvent::Dtmf {
                leg: id,
                digit,
                duration_ms: u32::from(event.duration) * 1000 / clock,
                inband: false,
            });
        }
        // Where does the other side's audio come from? Pass-through peers get the event
        // packets; transcoded ones are listeners.
        let target = listener.or_else(|| {
            self.legs.iter().enumerate().find_map(|(i, l)| {
                matches!(l.as_ref()?.feed, Feed::Leg(s) if s == id).then_some(LegId(i as u32))
            })
        });
        let Some(target) = target else { return };
        let Some(target_leg) = self.leg(target) else {
            return;
        };
        match target_leg.config.telephone_event {
            Some(pt) => {
                let Some(to) = target_leg.latch.remote().or(target_leg.config.remote) else {
                    return;
                };
                if !target_leg.config.send {
                    return;
                }
                let target_clock = target_leg.config.codec.clock_rate.max(1);
                let mut event = event;
                event.duration = (u64::from(event.duration) * u64::from(target_clock)
                    / u64::from(clock))
                .min(u64::from(u16::MAX)) as u16;
                let leg = self.legs[target.0 as usize]
                    .as_mut()
                    .expect("checked above");
                let numbers = leg.rewriter.rewrite(
                    header.ssrc ^ 0x4733_0000,
                    header.sequence,
                    header.timestamp,
                    now_ms,
                );
                let out = RtpHeader {
                    marker: header.marker,
                    payload_type: pt,
                    sequence: numbers.sequence,
                    timestamp: numbers.timestamp,
                    ssrc: numbers.ssrc,
                };
                let bytes = self.transmits.push(target, true, to);
                out.write_packet(&event.to_bytes(), bytes);
                leg.last_sent = Some((out.timestamp, now_ms));
                leg.counters.packets_out += 1;
                if event.end {
                    leg.rewriter.source_changed();
                }
            }
            None => {
                if first_of_event && let Some(digit) = digit {
                    let _ = self.start_inband(target, digit, 100);
                }
            }
        }
    }

    /// The packet clock: decode one frame per decoding leg, then generate and send one frame
    /// per leg whose feed needs encoding; RTCP reports when due.
    pub fn handle_tick(&mut self, now_ms: u64) {
        for index in 0..self.legs.len() {
            let id = LegId(index as u32);
            self.decode_one(id, now_ms);
        }
        for index in 0..self.legs.len() {
            let id = LegId(index as u32);
            let sending_event = self
                .leg(id)
                .is_some_and(|leg| leg.outgoing.is_some() || !leg.queued_digits.is_empty());
            if sending_event {
                // The event replaces the audio while it lasts.
                self.send_event_packet(id, now_ms);
            } else {
                self.encode_one(id, now_ms);
            }
            self.maybe_report(id, now_ms);
        }
        if self.rtp_timeout_ms > 0 {
            self.watch_rtp(now_ms);
        }
    }

    /// Reports the sendrecv legs that heard no RTP for the RTP timeout.
    fn watch_rtp(&mut self, now_ms: u64) {
        let timeout = self.rtp_timeout_ms;
        for (index, slot) in self.legs.iter_mut().enumerate() {
            let Some(leg) = slot else { continue };
            if !(leg.config.send && leg.config.receive) {
                // On hold: silence is expected; the watch restarts when it resumes.
                leg.last_rtp_ms = None;
                continue;
            }
            let since = *leg.last_rtp_ms.get_or_insert(now_ms);
            if !leg.timed_out && now_ms.saturating_sub(since) >= timeout {
                leg.timed_out = true;
                self.events.push_back(MediaEvent::RtpTimeout {
                    leg: LegId(index as u32),
                });
            }
        }
    }

    fn decode_one(&mut self, id: LegId, now_ms: u64) {
        let Some(leg) = self.legs.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(path) = &mut leg.decode else { return };
        path.pcm.clear();
        let frame = path.decoder.info().sample_rate as usize / 50;
        match path.jitter.pop() {
            Playout::Frame { payload, .. } => {
                path.decoder.decode(payload, &mut path.pcm);
                if path.pcm.is_empty() {
                    path.conceal(frame);
                    leg.counters.concealed += 1;
                } else {
                    path.gap_run = 0;
                    path.last_good.clear();
                    path.last_good.extend_from_slice(&path.pcm);
                }
            }
            Playout::Gap => {
                path.conceal(frame);
                leg.counters.concealed += 1;
            }
            Playout::Idle => return,
        }
        let rate = path.decoder.info().sample_rate;
        if let Some(sink) = &mut leg.sink {
            sink.write(&path.pcm, rate);
        }
        if let Some(detector) = &mut leg.detector {
            let audio = match &mut path.to_8k {
                Some(resampler) => {
                    path.pcm_8k.clear();
                    resampler.process(&path.pcm, &mut path.pcm_8k);
                    &path.pcm_8k
                }
                None => &path.pcm,
            };
            self.digits.clear();
            detector.push(audio, &mut self.digits);
            for &digit in &self.digits {
                self.events.push_back(MediaEvent::Dtmf {
                    leg: id,
                    digit,
                    duration_ms: 0,
                    inband: true,
                });
            }
        } else {
            return;
        }
        // In-band digits go on as RFC 4733 events to a peer that negotiated them (one that
        // did not hears the tones in the audio itself).
        let listener = leg.listener;
        if let Some(peer) = listener
            && self
                .leg(peer)
                .is_some_and(|p| p.config.telephone_event.is_some())
        {
            for index in 0..self.digits.len() {
                if let Some(code) = TelephoneEvent::code(self.digits[index]) {
                    self.queue_event(peer, code, INBAND_TO_EVENT_MS, now_ms);
                }
            }
        }
    }

    fn encode_one(&mut self, id: LegId, now_ms: u64) {
        // The PCM to send this tick, into `scratch`, and the rate it is at.
        self.scratch.clear();
        let source_rate;
        {
            let legs = &self.legs;
            let Some(leg) = leg_in(legs, id) else {
                return;
            };
            let Some(encode) = &leg.encode else {
                return;
            };
            if !leg.config.send {
                return;
            }
            let rate = encode.encoder.info().sample_rate;
            if leg.inband.is_some() {
                source_rate = rate;
            } else {
                match &leg.feed {
                    Feed::Silence => return,
                    Feed::Leg(source) => {
                        let Some(source_leg) = leg_in(legs, *source) else {
                            return;
                        };
                        if source_leg.config.codec.relays_to(&leg.config.codec) {
                            return;
                        }
                        let Some(path) = &source_leg.decode else {
                            return;
                        };
                        if path.pcm.is_empty() {
                            return;
                        }
                        self.scratch.extend_from_slice(&path.pcm);
                        source_rate = path.decoder.info().sample_rate;
                    }
                    Feed::Tone(_) | Feed::Play(_) | Feed::Mix(_) => source_rate = rate,
                }
            }
        }
        let leg = self.legs[id.0 as usize].as_mut().expect("checked above");
        if leg.inband.is_none() && matches!(leg.feed, Feed::Mix(_)) {
            // The mix reads the other legs: taken out of this one while it does.
            let mut feed = std::mem::replace(&mut leg.feed, Feed::Silence);
            if let Feed::Mix(mix) = &mut feed {
                mix.fill(
                    &self.legs,
                    source_rate as usize / 50,
                    source_rate,
                    &mut self.scratch,
                );
            }
            if let Some(leg) = self.legs[id.0 as usize].as_mut() {
                leg.feed = feed;
            }
        }
        let leg = self.legs[id.0 as usize].as_mut().expect("checked above");
        let path = leg.encode.as_mut().expect("checked above");
        let rate = path.encoder.info().sample_rate;
        let frame = rate as usize / 50;
        if let Some(digit) = &mut leg.inband {
            digit.tone.fill(frame, &mut self.scratch);
            digit.samples_left = digit.samples_left.saturating_sub(frame);
            if digit.samples_left == 0 {
                leg.inband = None;
            }
        } else {
            let ended = match &mut leg.feed {
                Feed::Tone(tone) => {
                    tone.fill(frame, &mut self.scratch);
                    false
                }
                Feed::Play(player) => !player.fill(frame, &mut self.scratch),
                _ => false,
            };
            if ended {
                leg.feed = Feed::Silence;
                self.events.push_back(MediaEvent::PlaybackDone { leg: id });
            }
        }
        // Convert to the encoder's rate.
        path.pcm.clear();
        if source_rate != rate {
            let resampler = match &mut path.resampler {
                Some((from, resampler)) if *from == source_rate => resampler,
                slot => {
                    &mut slot
                        .insert((source_rate, Resampler::new(source_rate, rate)))
                        .1
                }
            };
            resampler.process(&self.scratch, &mut path.pcm);
        } else {
            path.pcm.extend_from_slice(&self.scratch);
        }
        path.pcm.resize(frame, 0);
        path.payload.clear();
        path.encoder.encode(&path.pcm, &mut path.payload);
        if path.payload.is_empty() {
            return;
        }
        let Some(to) = leg.latch.remote().or(leg.config.remote) else {
            return;
        };
        let clock_units = leg.config.codec.frame_units();
        path.timestamp = path.timestamp.wrapping_add(clock_units);
        path.sequence = path.sequence.wrapping_add(1);
        let numbers = leg.rewriter.rewrite(
            leg.config.ssrc ^ 0x00ff_ff00,
            path.sequence,
            path.timestamp,
            now_ms,
        );
        let header = RtpHeader {
            marker: numbers.marker,
            payload_type: leg.config.codec.payload_type,
            sequence: numbers.sequence,
            timestamp: numbers.timestamp,
            ssrc: numbers.ssrc,
        };
        let bytes = self.transmits.push(id, true, to);
        header.write_packet(&path.payload, bytes);
        leg.last_sent = Some((header.timestamp, now_ms));
        leg.counters.packets_out += 1;
        leg.counters.octets_out += path.payload.len() as u64;
    }

    /// An RR (or SR when we send) with SDES every [`RTCP_INTERVAL_MS`].
    fn maybe_report(&mut self, id: LegId, now_ms: u64) {
        let Some(leg) = self.legs.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        if now_ms < leg.last_rtcp_ms + RTCP_INTERVAL_MS || leg.counters.packets_in == 0 {
            if leg.last_rtcp_ms == 0 {
                leg.last_rtcp_ms = now_ms;
            }
            return;
        }
        leg.last_rtcp_ms = now_ms;
        let Some(remote) = leg.latch.remote().or(leg.config.remote) else {
            return;
        };
        let (to, rtp) = if leg.config.rtcp_mux {
            (remote, true)
        } else {
            let mut to = remote;
            to.set_port(remote.port().wrapping_add(1));
            (to, false)
        };
        let (last_sr, delay) = match leg.last_sr {
            Some((middle, at)) => (middle, ((now_ms - at) * 65_536 / 1000) as u32),
            None => (0, 0),
        };
        let block = match (&mut leg.stats, leg.remote_ssrc) {
            (Some(stats), Some(ssrc)) => Some(stats.report(ssrc, last_sr, delay)),
            _ => None,
        };
        // A sender reports with an SR: its NTP time and the RTP timestamp of that instant.
        let ntp = ntp_of(self.wallclock_at_zero_ms, now_ms);
        let info = leg.last_sent.map(|(timestamp, at)| {
            let since = (now_ms - at) * u64::from(leg.config.codec.clock_rate) / 1000;
            rtcp::SenderInfo {
                ntp,
                rtp_timestamp: timestamp.wrapping_add(since as u32),
                packet_count: leg.counters.packets_out as u32,
                octet_count: leg.counters.octets_out as u32,
            }
        });
        let ssrc = leg.config.ssrc;
        let bytes = self.transmits.push(id, rtp, to);
        let reports: &[_] = match &block {
            Some(block) => std::slice::from_ref(block),
            None => &[],
        };
        rtcp::write_report(ssrc, info.as_ref(), reports, bytes);
        rtcp::write_sdes_cname(ssrc, &self.cname, bytes);
    }
}

/// The NTP timestamp (RFC 3550 §4, 32.32 fixed point since 1900) of `now_ms`.
fn ntp_of(wallclock_at_zero_ms: u64, now_ms: u64) -> u64 {
    let unix_ms = wallclock_at_zero_ms + now_ms;
    let seconds = unix_ms / 1000 + NTP_UNIX_OFFSET;
    let fraction = ((unix_ms % 1000) << 32) / 1000;
    (seconds << 32) | fraction
}

fn leg_in(legs: &[Option<Leg>], id: LegId) -> Option<&Leg> {
    legs.get(id.0 as usize)?.as_ref()
}

/// The PCM rate a codec runs at when nothing asks otherwise.
fn natural_rate(codec: &Codec) -> u32 {
    if codec.name.eq_ignore_ascii_case("G722") {
        16_000
    } else if codec.name.eq_ignore_ascii_case("opus") {
        48_000
    } else {
        8000
    }
}

#[cfg(test)]
mod tests;
