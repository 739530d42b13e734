//! The media engine: RTP and RTCP packets, receive statistics, and (to come) sessions with
//! latching, the jitter buffer, DTMF, tones, playback, recording, bridging and mixing.
//!
//! Everything here except `io` (still to come) is sans-IO: packets in, packets out, time
//! passed in. What exists today: [`rtp`] (packets read without copying, written into the
//! caller's buffer), [`rtcp`] (compound SR/RR/SDES/BYE read and written) and [`stats`] (RFC
//! 3550 receive statistics for report blocks and CDRs) and [`dtmf`] (RFC 4733 events, tone
//! generation, in-band detection) [`jitter`] (the adaptive jitter buffer), [`tones`] (call-progress tones in cadence) and
//! [`wav`] (prompt files read, recordings written), [`resample`] (rate conversion) and
//! [`mixer`] (N−1 conference mixing with mute, deaf, threshold and AGC), [`continuity`]
//! (symmetric RTP latching against bleed and injection; one outgoing stream across source
//! changes) and [`ports`] (the RTP port pool).

pub mod continuity;
pub mod dtmf;
pub mod io;
pub mod jitter;
pub mod mixer;
pub mod ports;
pub mod record;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod shard;
pub mod stats;
pub mod tones;
pub mod wav;
