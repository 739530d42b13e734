//! Where a leg's RTP may come from, and how what we send stays one stream.
//!
//! [`Latch`]: symmetric RTP for phones behind NAT. The first acceptable packet (a negotiated
//! payload type) fixes the source address we take, and send to, whatever the SDP said. After
//! that, packets from another address are dropped — RTP bleed and injection — unless they
//! continue the latched stream (same SSRC, the next sequence numbers), which is a NAT binding
//! that moved; [`LatchPolicy::Strict`] drops them too, [`LatchPolicy::Follow`] also follows a new
//! stream that persists for a while (a phone that restarts its RTP after a re-INVITE).
//!
//! [`Rewriter`]: what one leg receives must look like one RTP stream — one SSRC, sequence
//! numbers and timestamps that run on — although its source changes: the other party's
//! phone, a prompt, music on hold, a re-INVITE to a new codec. Each packet's own numbers are
//! mapped onto ours; at a change of source the mapping restarts where the last packet ended,
//! advanced by the time that passed, and the marker bit is set.
//!
//! Sans-IO: addresses and times are passed in. What this module does not do: sockets, SRTP.

use std::net::SocketAddr;

/// How strictly a latched leg holds on to its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchPolicy {
    /// Only the latched address, ever.
    Strict,
    /// The latched address, or another one continuing the same stream (NAT rebinding).
    Continue,
    /// As `Continue`, and a new source that sends [`FOLLOW_AFTER`] packets in a row without
    /// the latched one being heard.
    Follow,
}

/// Packets a new source must send in a row, unanswered by the old one, before `Follow`
/// switches to it.
pub const FOLLOW_AFTER: u8 = 10;

/// How far ahead a packet from a new address may be and still continue the stream.
const CONTINUE_WINDOW: u16 = 50;

/// What the latch says about one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Take it (and, if `moved`, send to its address from now on).
    Accept { moved: bool },
    /// Drop it and count it.
    Reject,
}

/// See the module doc.
#[derive(Debug, Clone)]
pub struct Latch {
    policy: LatchPolicy,
    latched: Option<(SocketAddr, u32)>,
    last_sequence: u16,
    candidate: Option<(SocketAddr, u32, u8)>,
    /// Packets rejected, for statistics.
    pub rejected: u64,
}

impl Latch {
    pub fn new(policy: LatchPolicy) -> Latch {
        Latch {
            policy,
            latched: None,
            last_sequence: 0,
            candidate: None,
            rejected: 0,
        }
    }

    /// The address media is sent to, once latched.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.latched.map(|(address, _)| address)
    }

    /// Forgets the source (after a re-INVITE that moves the stream on purpose).
    pub fn reset(&mut self) {
        self.latched = None;
        self.candidate = None;
    }

    /// Judges a packet with `ssrc` and `sequence` from `source` whose payload type is one the
    /// leg negotiated (the caller drops others first).
    pub fn check(&mut self, source: SocketAddr, ssrc: u32, sequence: u16) -> Verdict {
        let Some((address, latched_ssrc)) = self.latched else {
            self.latch(source, ssrc, sequence);
            return Verdict::Accept { moved: true };
        };
        if source == address {
            self.candidate = None;
            self.latched = Some((address, ssrc));
            self.last_sequence = sequence;
            return Verdict::Accept { moved: false };
        }
        let continues = ssrc == latched_ssrc
            && sequence.wrapping_sub(self.last_sequence).wrapping_sub(1) < CONTINUE_WINDOW;
        match self.policy {
            LatchPolicy::Continue | LatchPolicy::Follow if continues => {
                self.latch(source, ssrc, sequence);
                return Verdict::Accept { moved: true };
            }
            LatchPolicy::Follow => {
                let count = match self.candidate {
                    Some((a, s, n)) if a == source && s == ssrc => n.saturating_add(1),
                    _ => 1,
                };
                if count >= FOLLOW_AFTER {
                    self.latch(source, ssrc, sequence);
                    return Verdict::Accept { moved: true };
                }
                self.candidate = Some((source, ssrc, count));
            }
            _ => {}
        }
        self.rejected += 1;
        Verdict::Reject
    }

    fn latch(&mut self, source: SocketAddr, ssrc: u32, sequence: u16) {
        self.latched = Some((source, ssrc));
        self.last_sequence = sequence;
        self.candidate = None;
    }
}

/// The numbers of one outgoing packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    /// Set on the first packet after a change of source.
    pub marker: bool,
}

/// See the module doc.
#[derive(Debug, Clone)]
pub struct Rewriter {
    ssrc: u32,
    /// The current source (its SSRC) and the offsets that map it onto ours.
    source: Option<u32>,
    sequence_offset: u16,
    timestamp_offset: u32,
    /// Our last packet's sequence number and timestamp, and when it was sent (in our
    /// timestamp units).
    last: Option<(u16, u32, u64)>,
    /// The clock rate of our timestamps, Hz.
    clock_rate: u32,
}

impl Rewriter {
    /// Packets out with our `ssrc`, sequence numbers from `first_sequence`, timestamps at
    /// `clock_rate`.
    pub fn new(ssrc: u32, first_sequence: u16, clock_rate: u32) -> Rewriter {
        Rewriter {
            ssrc,
            source: None,
            sequence_offset: first_sequence,
            timestamp_offset: 0,
            last: None,
            clock_rate,
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The same stream going on at `clock_rate` (after a move to another thread, perhaps a
    /// codec change): the next packet, whatever its source, follows our last one.
    pub fn continued(mut self, clock_rate: u32) -> Rewriter {
        self.source = None;
        if clock_rate != self.clock_rate {
            // Elapsed time cannot be carried into another clock: timestamps start again.
            if let Some((last_sequence, _, _)) = self.last.take() {
                self.sequence_offset = last_sequence.wrapping_add(1);
            }
            self.clock_rate = clock_rate;
        }
        self
    }

    /// Forgets the source: the next packet starts a new mapping even with the same SSRC (a
    /// switch to a prompt and back, a codec change).
    pub fn source_changed(&mut self) {
        self.source = None;
    }

    /// Maps a packet from the current source, sent at `now_ms` (any monotonic milliseconds).
    pub fn rewrite(&mut self, ssrc: u32, sequence: u16, timestamp: u32, now_ms: u64) -> Rewritten {
        let now = now_ms * u64::from(self.clock_rate) / 1000;
        let marker = self.source != Some(ssrc);
        if marker {
            // Continue one sequence number and the elapsed time after our last packet.
            let (next_sequence, next_timestamp) = match self.last {
                Some((last_sequence, last_timestamp, sent_at)) => {
                    let elapsed = now.saturating_sub(sent_at).max(1);
                    (
                        last_sequence.wrapping_add(1),
                        last_timestamp.wrapping_add(elapsed as u32),
                    )
                }
                None => (self.sequence_offset, 0),
            };
            self.sequence_offset = next_sequence.wrapping_sub(sequence);
            self.timestamp_offset = next_timestamp.wrapping_sub(timestamp);
            self.source = Some(ssrc);
        }
        let out = Rewritten {
            ssrc: self.ssrc,
            sequence: sequence.wrapping_add(self.sequence_offset),
            timestamp: timestamp.wrapping_add(self.timestamp_offset),
            marker,
        };
        self.last = Some((out.sequence, out.timestamp, now));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([203, 0, 113, 5], port))
    }

    #[test]
    fn the_first_source_is_latched_and_strangers_are_refused() {
        let mut latch = Latch::new(LatchPolicy::Continue);
        assert_eq!(
            latch.check(addr(4000), 7, 100),
            Verdict::Accept { moved: true }
        );
        assert_eq!(latch.remote(), Some(addr(4000)));
        assert_eq!(
            latch.check(addr(4000), 7, 101),
            Verdict::Accept { moved: false }
        );
        // RTP bleed: another stream from elsewhere.
        assert_eq!(latch.check(addr(5000), 99, 5), Verdict::Reject);
        // Injection with the right SSRC but a sequence number far away.
        assert_eq!(latch.check(addr(5000), 7, 30_000), Verdict::Reject);
        assert_eq!(latch.rejected, 2);
        assert_eq!(latch.remote(), Some(addr(4000)));
    }

    #[test]
    fn a_moved_nat_binding_is_followed_when_the_stream_continues() {
        let mut latch = Latch::new(LatchPolicy::Continue);
        latch.check(addr(4000), 7, 100);
        assert_eq!(
            latch.check(addr(4444), 7, 102),
            Verdict::Accept { moved: true }
        );
        assert_eq!(latch.remote(), Some(addr(4444)));
        let mut strict = Latch::new(LatchPolicy::Strict);
        strict.check(addr(4000), 7, 100);
        assert_eq!(strict.check(addr(4444), 7, 101), Verdict::Reject);
    }

    #[test]
    fn follow_takes_a_new_stream_that_persists_alone() {
        let mut latch = Latch::new(LatchPolicy::Follow);
        latch.check(addr(4000), 7, 100);
        for n in 0..FOLLOW_AFTER - 1 {
            assert_eq!(latch.check(addr(6000), 8, n.into()), Verdict::Reject);
        }
        // The old source speaks up: the count starts again.
        latch.check(addr(4000), 7, 101);
        assert_eq!(latch.check(addr(6000), 8, 20), Verdict::Reject);
        for n in 0..FOLLOW_AFTER - 2 {
            latch.check(addr(6000), 8, 21 + u16::from(n));
        }
        assert_eq!(
            latch.check(addr(6000), 8, 40),
            Verdict::Accept { moved: true }
        );
        assert_eq!(latch.remote(), Some(addr(6000)));
    }

    #[test]
    fn a_leg_sees_one_stream_across_source_changes() {
        let mut rewriter = Rewriter::new(0xabcd, 1000, 8000);
        // The callee's phone: 50 packets.
        let mut last = None;
        for n in 0..50u16 {
            let out = rewriter.rewrite(
                111,
                40_000 + n,
                5_000_000 + u32::from(n) * 160,
                u64::from(n) * 20,
            );
            assert_eq!(out.ssrc, 0xabcd);
            assert_eq!(out.marker, n == 0);
            if let Some((sequence, timestamp)) = last {
                assert_eq!(out.sequence, u16::wrapping_add(sequence, 1));
                assert_eq!(out.timestamp, u32::wrapping_add(timestamp, 160));
            }
            last = Some((out.sequence, out.timestamp));
        }
        let (sequence, timestamp) = last.expect("sent");
        assert_eq!(sequence, 1049);
        // Music on hold starts 100 ms later, with its own numbers.
        let out = rewriter.rewrite(222, 7, 123, 49 * 20 + 100);
        assert!(out.marker);
        assert_eq!(out.sequence, 1050);
        assert_eq!(out.timestamp, timestamp + 800, "100 ms at 8 kHz");
        let next = rewriter.rewrite(222, 8, 283, 49 * 20 + 120);
        assert!(!next.marker);
        assert_eq!(next.sequence, 1051);
        assert_eq!(next.timestamp, timestamp + 960);
        // Back to the phone, same SSRC as before: a new mapping all the same.
        rewriter.source_changed();
        let back = rewriter.rewrite(222, 9, 443, 49 * 20 + 140);
        assert!(back.marker);
        assert_eq!(back.sequence, 1052);
    }

    #[test]
    fn a_continued_stream_keeps_its_numbers_and_restarts_time_only_for_a_new_clock() {
        let mut rewriter = Rewriter::new(0xabc, 500, 8000);
        let last = rewriter.rewrite(1, 70, 16_000, 1000);
        let mut same_clock = rewriter.clone().continued(8000);
        let next = same_clock.rewrite(1, 71, 16_160, 1020);
        assert!(next.marker, "a new mapping even for the same source");
        assert_eq!(
            (next.ssrc, next.sequence, next.timestamp),
            (0xabc, last.sequence + 1, last.timestamp + 160)
        );
        let mut wideband = rewriter.continued(16_000);
        let next = wideband.rewrite(1, 71, 16_160, 1020);
        assert_eq!((next.ssrc, next.sequence), (0xabc, last.sequence + 1));
    }
}
