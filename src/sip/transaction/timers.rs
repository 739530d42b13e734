//! The timer table of RFC 3261 §17 (Table 4) with the two timers RFC 6026 adds.
//!
//! Every duration a transaction uses is derived here from T1, T2, T4 and Timer D, so a test
//! (or a deployment on a fast LAN) changes them in one place.
//!
//! | timer | default        | meaning                                               | section   |
//! |-------|----------------|-------------------------------------------------------|-----------|
//! | T1    | 500 ms         | RTT estimate                                          | §17.1.1.1 |
//! | T2    | 4 s            | maximum retransmit interval (non-INVITE, INVITE resp) | §17.1.2.2 |
//! | T4    | 5 s            | maximum time a message stays in the network           | §17.1.2.2 |
//! | A     | T1, doubling   | INVITE request retransmit (unreliable only)           | §17.1.1.2 |
//! | B     | 64*T1          | INVITE client transaction timeout                     | §17.1.1.2 |
//! | C     | off            | proxy INVITE timeout, > 3 min (optional, see below)   | §16.6     |
//! | D     | 32 s / 0       | wait for response retransmits (unreliable / reliable) | §17.1.1.2 |
//! | E     | T1 .. T2       | non-INVITE request retransmit (unreliable only)       | §17.1.2.2 |
//! | F     | 64*T1          | non-INVITE client transaction timeout                 | §17.1.2.2 |
//! | G     | T1 .. T2       | INVITE final response retransmit (unreliable only)    | §17.2.1   |
//! | H     | 64*T1          | wait for ACK                                          | §17.2.1   |
//! | I     | T4 / 0         | wait for ACK retransmits                              | §17.2.1   |
//! | J     | 64*T1 / 0      | wait for non-INVITE request retransmits               | §17.2.2   |
//! | K     | T4 / 0         | wait for non-INVITE response retransmits              | §17.1.2.2 |
//! | L     | 64*T1          | wait for accepted INVITE request retransmits          | RFC 6026  |
//! | M     | 64*T1          | wait for 2xx retransmits (and forks) after a 2xx      | RFC 6026  |
//!
//! Timer C is off by default: a user agent leaves "how long may it ring" to its TU, and a
//! proxy-like TU may set [`TimerTable::c`]. When it fires the layer only reports it; sending
//! the CANCEL is the TU's decision (RFC 3261 §16.8). Independently of Timer C, an INVITE
//! client transaction the TU has sent a CANCEL for gives up 64*T1 after that CANCEL if no
//! final response arrives (RFC 3261 §9.1), reported as [`Timer::Cancel`].

use std::fmt;
use std::time::Duration;

/// The base values T1, T2, T4 and Timer D; every other timer is derived from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerTable {
    /// Round-trip time estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (default 5 s).
    pub t4: Duration,
    /// Timer D on unreliable transports: at least 32 s (RFC 3261 §17.1.1.2).
    pub d: Duration,
    /// Timer C, re-armed by every provisional response to a client INVITE. `None` (the
    /// default) leaves it to the TU.
    pub c: Option<Duration>,
}

impl Default for TimerTable {
    fn default() -> Self {
        TimerTable {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            d: Duration::from_secs(32),
            c: None,
        }
    }
}

impl TimerTable {
    /// Timer A's first interval (T1); it doubles after each retransmission.
    pub fn a(&self) -> Duration {
        self.t1
    }

    /// Timer B: 64*T1.
    pub fn b(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: [`TimerTable::d`] on unreliable transports, zero on reliable ones.
    pub fn d(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.d }
    }

    /// Timer E's first interval (T1).
    pub fn e(&self) -> Duration {
        self.t1
    }

    /// Timer F: 64*T1.
    pub fn f(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer G's first interval (T1).
    pub fn g(&self) -> Duration {
        self.t1
    }

    /// Timer H: 64*T1.
    pub fn h(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer I: T4 on unreliable transports, zero on reliable ones.
    pub fn i(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }

    /// Timer J: 64*T1 on unreliable transports, zero on reliable ones.
    pub fn j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1 * 64
        }
    }

    /// Timer K: T4 on unreliable transports, zero on reliable ones.
    pub fn k(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }

    /// Timer L (RFC 6026): 64*T1.
    pub fn l(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer M (RFC 6026): 64*T1.
    pub fn m(&self) -> Duration {
        self.t1 * 64
    }

    /// How long an INVITE client transaction waits for a final response after its CANCEL
    /// (RFC 3261 §9.1): 64*T1.
    pub fn cancel(&self) -> Duration {
        self.t1 * 64
    }

    /// The next interval of a retransmit timer that doubles: Timer A doubles without bound,
    /// E and G are capped at T2.
    pub fn doubled(&self, interval: Duration, capped: bool) -> Duration {
        let next = interval.saturating_mul(2);
        if capped { next.min(self.t2) } else { next }
    }
}

/// The name of a timer, as reported in [`super::TsxEvent::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timer {
    A,
    B,
    C,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
    L,
    M,
    /// 64*T1 after a CANCEL without a final response to the INVITE (RFC 3261 §9.1).
    Cancel,
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Timer::A => "A",
            Timer::B => "B",
            Timer::C => "C",
            Timer::D => "D",
            Timer::E => "E",
            Timer::F => "F",
            Timer::G => "G",
            Timer::H => "H",
            Timer::I => "I",
            Timer::J => "J",
            Timer::K => "K",
            Timer::L => "L",
            Timer::M => "M",
            Timer::Cancel => "CANCEL",
        };
        write!(f, "Timer {name}")
    }
}
