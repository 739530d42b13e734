//! The adaptive jitter buffer of a decoding leg: packets in as they arrive, one frame out per
//! packet time, in timestamp order, with losses and underruns reported as gaps for the decoder
//! to conceal.
//!
//! Sans-IO and allocation-free after construction: a fixed ring of slots, each with a payload
//! buffer sized once. Time is the caller's, in timestamp units (samples at the codec's clock
//! rate). The target delay follows the measured jitter — the RFC 3550 estimate, plus a margin
//! — between a minimum and a maximum; it grows at once when a packet comes too late and shrinks
//! slowly by skipping a frame when the buffer has held more than needed for a while.
//!
//! What this module does not do: decode or conceal (the caller does, on [`Playout::Gap`]),
//! resynchronise to a new SSRC (the session resets the buffer).

/// What the buffer gives for one frame time.
#[derive(Debug, PartialEq, Eq)]
pub enum Playout<'a> {
    /// The frame's payload and RTP timestamp.
    Frame { payload: &'a [u8], timestamp: u32 },
    /// No packet for this frame (lost, late, or an underrun): conceal it.
    Gap,
    /// Nothing has arrived yet: play silence, nothing to conceal.
    Idle,
}

/// Settings, in timestamp units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Samples per frame (160 for 20 ms at 8 kHz).
    pub frame: u32,
    pub min_delay: u32,
    pub max_delay: u32,
    /// Slots in the ring (at least max_delay / frame + 2).
    pub slots: usize,
    /// The largest payload kept.
    pub max_payload: usize,
}

impl JitterConfig {
    /// 20 ms frames at `clock_rate`, 20–200 ms of delay.
    pub fn for_clock_rate(clock_rate: u32) -> JitterConfig {
        let ms = clock_rate / 1000;
        JitterConfig {
            frame: 20 * ms,
            min_delay: 20 * ms,
            max_delay: 200 * ms,
            slots: 16,
            max_payload: 1500,
        }
    }
}

#[derive(Debug, Clone)]
struct Slot {
    timestamp: Option<u32>,
    length: usize,
    payload: Box<[u8]>,
}

/// See the module doc.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    config: JitterConfig,
    slots: Vec<Slot>,
    /// The timestamp of the next frame to play; `None` until the first packet.
    next_play: Option<u32>,
    /// The arrival time the first played frame was due; playout runs from it.
    delay: u32,
    /// RFC 3550 jitter estimate ×16, timestamp units.
    jitter_x16: u32,
    last_transit: Option<i64>,
    /// Frames played since the buffer last had to grow, for shrinking.
    calm_frames: u32,
    /// Whether a frame has been played yet.
    playing: bool,
    /// Statistics.
    pub late: u64,
    pub gaps: u64,
    pub skipped: u64,
}

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> JitterBuffer {
        let slots = config
            .slots
            .max((config.max_delay / config.frame.max(1)) as usize + 2);
        JitterBuffer {
            config,
            slots: (0..slots)
                .map(|_| Slot {
                    timestamp: None,
                    length: 0,
                    payload: vec![0; config.max_payload].into_boxed_slice(),
                })
                .collect(),
            next_play: None,
            delay: config.min_delay,
            jitter_x16: 0,
            last_transit: None,
            calm_frames: 0,
            playing: false,
            late: 0,
            gaps: 0,
            skipped: 0,
        }
    }

    /// The current target delay, timestamp units.
    pub fn delay(&self) -> u32 {
        self.delay
    }

    fn slot_of(&self, timestamp: u32) -> usize {
        (timestamp / self.config.frame.max(1)) as usize % self.slots.len()
    }

    /// A packet with RTP `timestamp` arrived at `now`. Returns false when it is dropped
    /// (too late, too early for the ring, or too large).
    pub fn insert(&mut self, timestamp: u32, payload: &[u8], now: u32) -> bool {
        self.update_jitter(timestamp, now);
        if self.wanted_delay() > self.delay {
            self.grow();
        }
        if payload.len() > self.config.max_payload {
            return false;
        }
        if let Some(next) = self.next_play {
            let ahead = timestamp.wrapping_sub(next) as i32;
            if ahead < 0 {
                // Its time has passed: the buffer was too shallow.
                self.late += 1;
                self.grow();
                return false;
            }
            if ahead as u64 >= u64::from(self.config.frame) * self.slots.len() as u64 {
                return false;
            }
        } else {
            // The first packet: play it after the target delay.
            self.next_play = Some(timestamp.wrapping_sub(self.delay));
        }
        let index = self.slot_of(timestamp);
        let slot = &mut self.slots[index];
        slot.timestamp = Some(timestamp);
        slot.length = payload.len();
        slot.payload[..payload.len()].copy_from_slice(payload);
        true
    }

    /// The next frame; call once per frame time.
    pub fn pop(&mut self) -> Playout<'_> {
        let Some(next) = self.next_play else {
            return Playout::Idle;
        };
        self.maybe_shrink(next);
        let next = self.next_play.expect("set above");
        self.next_play = Some(next.wrapping_add(self.config.frame));
        self.calm_frames = self.calm_frames.saturating_add(1);
        let index = self.slot_of(next);
        let slot = &mut self.slots[index];
        if slot.timestamp == Some(next) {
            slot.timestamp = None;
            self.playing = true;
            return Playout::Frame {
                payload: &slot.payload[..slot.length],
                timestamp: next,
            };
        }
        // The frames of the initial delay, before anything has played, are not gaps.
        if !self.playing {
            return Playout::Idle;
        }
        self.gaps += 1;
        Playout::Gap
    }

    fn update_jitter(&mut self, timestamp: u32, now: u32) {
        let transit = i64::from(now.wrapping_sub(timestamp) as i32);
        if let Some(last) = self.last_transit {
            let d = (transit - last)
                .unsigned_abs()
                .min(u64::from(u32::MAX >> 5)) as u32;
            let j = self.jitter_x16;
            self.jitter_x16 = j + d - ((j + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// The delay the jitter calls for: four times the mean deviation, rounded up to frames.
    fn wanted_delay(&self) -> u32 {
        let frame = self.config.frame.max(1);
        let wanted = (self.jitter_x16 >> 4).saturating_mul(4);
        let frames = wanted.div_ceil(frame) * frame;
        frames.clamp(self.config.min_delay, self.config.max_delay)
    }

    /// A late packet: play one frame later from now on (a gap now, not a skip later).
    fn grow(&mut self) {
        let target = (self.delay + self.config.frame)
            .max(self.wanted_delay())
            .min(self.config.max_delay);
        if target > self.delay
            && let Some(next) = self.next_play
        {
            self.next_play = Some(next.wrapping_sub(target - self.delay));
            self.delay = target;
        }
        self.calm_frames = 0;
    }

    /// After two calm seconds (at 20 ms frames) with more delay than the jitter needs, skip
    /// one frame to come one frame closer.
    fn maybe_shrink(&mut self, next: u32) {
        if self.calm_frames < 100 || self.delay <= self.wanted_delay() {
            return;
        }
        let index = self.slot_of(next);
        if self.slots[index].timestamp == Some(next) {
            self.slots[index].timestamp = None;
        }
        self.next_play = Some(next.wrapping_add(self.config.frame));
        self.delay -= self.config.frame;
        self.skipped += 1;
        self.calm_frames = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded generator for the simulated network.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Sends `frames` 20 ms packets at 8 kHz through a network with up to `jitter_ms` of
    /// delay variation and `loss_percent` loss, plays out once per 20 ms, and returns what
    /// came out, frame by frame: Some(sequence number) or None for a gap.
    fn run(
        frames: u32,
        jitter_ms: u64,
        loss_percent: u64,
        seed: u64,
    ) -> (Vec<Option<u32>>, JitterBuffer) {
        run_with(frames, |_| jitter_ms, loss_percent, seed)
    }

    /// [`run`] with the jitter of frame n given by `jitter_ms(n)`.
    fn run_with(
        frames: u32,
        jitter_ms: impl Fn(u32) -> u64,
        loss_percent: u64,
        seed: u64,
    ) -> (Vec<Option<u32>>, JitterBuffer) {
        let mut rng = Rng(seed);
        let mut buffer = JitterBuffer::new(JitterConfig::for_clock_rate(8000));
        // (arrival time, timestamp)
        let mut arrivals: Vec<(u32, u32)> = Vec::new();
        for n in 0..frames {
            let lost = rng.below(100) < loss_percent;
            let delay = 8 * rng.below(jitter_ms(n) + 1) as u32;
            if !lost {
                arrivals.push((n * 160 + delay, n * 160));
            }
        }
        arrivals.sort();
        let mut played = Vec::new();
        let mut pending = arrivals.into_iter().peekable();
        let start = 0;
        for tick in 0..frames + 20 {
            let now = start + tick * 160;
            while let Some(&(at, ts)) = pending.peek() {
                if at > now {
                    break;
                }
                let payload = (ts / 160).to_be_bytes();
                buffer.insert(ts, &payload, at);
                pending.next();
            }
            match buffer.pop() {
                Playout::Frame { payload, .. } => played.push(Some(u32::from_be_bytes(
                    payload.try_into().expect("4 bytes"),
                ))),
                Playout::Gap => played.push(None),
                Playout::Idle => {}
            }
        }
        (played, buffer)
    }

    #[test]
    fn a_clean_network_plays_every_frame_in_order() {
        let (played, buffer) = run(500, 0, 0, 1);
        let frames: Vec<u32> = played.iter().flatten().copied().collect();
        assert_eq!(frames, (0..500).collect::<Vec<_>>());
        assert_eq!(buffer.late, 0);
    }

    #[test]
    fn jitter_up_to_80_ms_with_5_percent_loss_stays_continuous() {
        for (jitter_ms, seed) in [(0, 2), (20, 3), (40, 4), (80, 5), (80, 6)] {
            let (played, buffer) = run(3000, jitter_ms, 5, seed);
            let frames: Vec<u32> = played.iter().flatten().copied().collect();
            // In order, never repeated: what comes out is a continuous stream with gaps
            // (to conceal) in place of what was lost or late.
            assert!(
                frames.windows(2).all(|w| w[0] < w[1]),
                "{jitter_ms} ms: out of order"
            );
            let gaps = played.iter().filter(|p| p.is_none()).count() as f64;
            let lost_or_late = gaps / 3000.0;
            assert!(
                lost_or_late < 0.10,
                "{jitter_ms} ms: {:.1}% gaps (5% lost in the network), delay {} ms",
                lost_or_late * 100.0,
                buffer.delay() / 8
            );
            // The delay followed the jitter.
            assert!(
                buffer.delay() / 8 <= (jitter_ms as u32 + 40).max(20) * 2,
                "{jitter_ms} ms: {} ms",
                buffer.delay() / 8
            );
        }
    }

    #[test]
    fn the_delay_grows_with_jitter_and_shrinks_when_it_calms() {
        // 10 s with 60 ms of jitter, then 30 s without.
        let (_, rough) = run_with(500, |_| 60, 0, 7);
        let grown = rough.delay();
        assert!(grown >= 8 * 60, "{} ms", grown / 8);
        let (played, calm) = run_with(2000, |n| if n < 500 { 60 } else { 0 }, 0, 7);
        assert!(calm.delay() < grown, "{} ms after calm", calm.delay() / 8);
        assert!(calm.skipped > 0);
        let frames: Vec<u32> = played.iter().flatten().copied().collect();
        assert!(frames.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn hostile_input_is_dropped_without_harm() {
        let mut buffer = JitterBuffer::new(JitterConfig::for_clock_rate(8000));
        assert!(buffer.insert(0, &[1; 100], 0));
        assert!(!buffer.insert(160, &[0; 2000], 160), "too large");
        assert!(!buffer.insert(u32::MAX / 2, &[0], 320), "far ahead");
        for ts in [u32::MAX, 1, 7, 0x8000_0000] {
            buffer.insert(ts, &[0], ts);
            let _ = buffer.pop();
        }
    }
}
