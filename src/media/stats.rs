//! Receive statistics of one RTP source (RFC 3550 Appendix A.1, A.3, A.8): the extended
//! highest sequence number across wrap-arounds, packets expected and lost, the fraction lost
//! since the last report, and interarrival jitter — what a report block and a CDR need.
//!
//! Sans-IO: the arrival time is passed in, as a count of timestamp units (the caller converts
//! its clock at the codec's rate). What this module does not do: decide which source to trust
//! (latching does), or round-trip time (the session computes it from report blocks).

use super::rtcp::ReportBlock;

/// Sequence numbers further ahead than this are a jump, not loss (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// Sequence numbers this far behind are a restart of the source (RFC 3550 A.1).
const MAX_MISORDER: u16 = 100;
/// Packets in sequence before a new source counts as valid.
const MIN_SEQUENTIAL: u8 = 2;

/// The statistics of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveStats {
    max_sequence: u16,
    /// Sequence wrap-arounds, shifted left 16 bits.
    cycles: u32,
    base_sequence: u32,
    /// The last "bad" sequence number plus one, when a jump is being confirmed.
    bad_sequence: Option<u32>,
    probation: u8,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Jitter in timestamp units, scaled by 16 (RFC 3550 A.8).
    jitter_x16: u32,
    last_transit: Option<i64>,
    duplicates_or_late: u64,
}

/// What [`ReceiveStats::record`] decided about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// In sequence or a tolerable reorder: use it.
    Accepted,
    /// The source is still on probation (its first packets): use it, the statistics wait.
    Probation,
    /// A large jump, not yet confirmed by the next packet: drop it.
    Jump,
}

impl ReceiveStats {
    /// Statistics starting at the first packet's sequence number.
    pub fn new(first_sequence: u16) -> ReceiveStats {
        ReceiveStats {
            // As if the packet before the first had been seen (RFC 3550 A.1).
            max_sequence: first_sequence.wrapping_sub(1),
            cycles: 0,
            base_sequence: u32::from(first_sequence),
            bad_sequence: None,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter_x16: 0,
            last_transit: None,
            duplicates_or_late: 0,
        }
    }

    fn restart(&mut self, sequence: u16) {
        self.base_sequence = u32::from(sequence);
        self.max_sequence = sequence;
        self.bad_sequence = None;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Records a packet with `sequence` and RTP `timestamp` that arrived at `arrival` (in the
    /// same timestamp units).
    pub fn record(&mut self, sequence: u16, timestamp: u32, arrival: u32) -> Arrival {
        let delta = sequence.wrapping_sub(self.max_sequence);
        let verdict = if self.probation > 0 {
            if sequence == self.max_sequence.wrapping_add(1) {
                self.probation -= 1;
                self.max_sequence = sequence;
                if self.probation == 0 {
                    self.restart(sequence);
                    self.received += 1;
                    Arrival::Accepted
                } else {
                    Arrival::Probation
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_sequence = sequence;
                Arrival::Probation
            }
        } else if delta < MAX_DROPOUT {
            if sequence < self.max_sequence {
                self.cycles = self.cycles.wrapping_add(1 << 16);
            }
            self.max_sequence = sequence;
            self.received += 1;
            Arrival::Accepted
        } else if delta <= u16::MAX - MAX_MISORDER {
            // A big jump: believe it only if the next packet follows it.
            if self.bad_sequence == Some(u32::from(sequence)) {
                self.restart(sequence);
                self.received += 1;
                Arrival::Accepted
            } else {
                self.bad_sequence = Some(u32::from(sequence.wrapping_add(1)));
                return Arrival::Jump;
            }
        } else {
            // Duplicate or late: counted as received (RFC 3550 A.3 counts it too).
            self.duplicates_or_late += 1;
            self.received += 1;
            Arrival::Accepted
        };
        self.update_jitter(timestamp, arrival);
        verdict
    }

    /// RFC 3550 A.8: J += (|D| - J) / 16, in timestamp units.
    fn update_jitter(&mut self, timestamp: u32, arrival: u32) {
        let transit = i64::from(arrival.wrapping_sub(timestamp) as i32);
        if let Some(last) = self.last_transit {
            let d = (transit - last)
                .unsigned_abs()
                .min(u64::from(u32::MAX >> 4)) as u32;
            let j = self.jitter_x16;
            self.jitter_x16 = j + d - ((j + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// The extended highest sequence number received.
    pub fn extended_highest(&self) -> u32 {
        self.cycles | u32::from(self.max_sequence)
    }

    /// Packets expected since the start.
    pub fn expected(&self) -> u64 {
        u64::from(self.extended_highest())
            .saturating_sub(u64::from(self.base_sequence))
            .saturating_add(1)
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets lost since the start (negative when duplicates outnumber losses).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_x16 >> 4
    }

    /// A report block about `ssrc`, and the interval counters moved on (RFC 3550 A.3).
    pub fn report(&mut self, ssrc: u32, last_sr: u32, delay_since_last_sr: u32) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |fraction| fraction.min(255) as u8);
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            extended_highest_sequence: self.extended_highest(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `sequences` at 20 ms (160 units) apart with matching timestamps.
    fn feed(stats: &mut ReceiveStats, sequences: impl IntoIterator<Item = u16>) {
        for sequence in sequences {
            let t = u32::from(sequence).wrapping_mul(160);
            stats.record(sequence, t, t.wrapping_add(1000));
        }
    }

    #[test]
    fn a_clean_stream_across_a_wrap_loses_nothing_and_has_no_jitter() {
        let mut stats = ReceiveStats::new(65_000);
        feed(&mut stats, (65_000..=65_535).chain(0..1000));
        assert_eq!(stats.extended_highest(), (1 << 16) | 999);
        assert_eq!(stats.lost(), 0);
        assert_eq!(stats.jitter(), 0);
        let report = stats.report(1, 0, 0);
        assert_eq!(report.fraction_lost, 0);
        assert_eq!(report.cumulative_lost, 0);
    }

    #[test]
    fn loss_is_counted_in_total_and_per_interval() {
        let mut stats = ReceiveStats::new(0);
        // 100 packets, every tenth missing.
        feed(&mut stats, (0..100u16).filter(|s| s % 10 != 5));
        let report = stats.report(1, 0, 0);
        assert_eq!(
            stats.expected(),
            99,
            "counted from the packet that ended probation"
        );
        assert_eq!(report.cumulative_lost, 10);
        assert_eq!(report.fraction_lost, (10 * 256 / 99) as u8);
        // The next interval is clean.
        feed(&mut stats, 100..200);
        assert_eq!(stats.report(1, 0, 0).fraction_lost, 0);
    }

    #[test]
    fn jitter_follows_rfc_3550_a8() {
        let mut stats = ReceiveStats::new(0);
        // Arrivals alternate 0 and 80 units late: |D| = 80 each time after the first.
        for sequence in 0..2000u16 {
            let t = u32::from(sequence) * 160;
            let late = if sequence % 2 == 0 { 0 } else { 80 };
            stats.record(sequence, t, t + late);
        }
        // J converges to |D| = 80 (the estimator's fixed point).
        assert!((75..=80).contains(&stats.jitter()), "{}", stats.jitter());
    }

    #[test]
    fn a_jump_needs_a_second_packet_and_restarts_the_counts() {
        let mut stats = ReceiveStats::new(0);
        feed(&mut stats, 0..50);
        assert_eq!(stats.record(30_000, 0, 0), Arrival::Jump);
        assert_eq!(stats.record(30_001, 160, 160), Arrival::Accepted);
        assert_eq!(stats.extended_highest(), 30_001);
        assert_eq!(
            stats.lost(),
            0,
            "a restarted source starts its counts again"
        );
    }

    #[test]
    fn duplicates_and_late_packets_do_not_move_the_highest_sequence() {
        let mut stats = ReceiveStats::new(0);
        feed(&mut stats, 0..50);
        assert_eq!(stats.record(40, 0, 0), Arrival::Accepted);
        assert_eq!(stats.extended_highest(), 49);
        assert_eq!(stats.lost(), -1, "a duplicate counts as received");
    }
}
