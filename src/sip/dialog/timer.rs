//! The two timing tools of the dialog layer: a retransmission schedule that doubles its
//! interval and gives up after 64*T1, and the index of every owner's next deadline.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::sip::transaction::{TimerTable, TsxId};

use super::DialogId;

/// Resends at T1, then at intervals doubling (capped at T2 for 2xx, RFC 3261 §13.3.1.4;
/// uncapped for reliable 1xx, RFC 3262 §3) until 64*T1 after the first send.
#[derive(Debug, Clone)]
pub(super) struct Backoff {
    next_at: Instant,
    interval: Duration,
    cap: Option<Duration>,
    give_up_at: Instant,
}

/// What a [`Backoff`] asks for at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tick {
    Idle,
    Resend,
    GiveUp,
}

impl Backoff {
    /// Starts after a first send at `now`; `capped` applies T2.
    pub(super) fn start(now: Instant, timers: &TimerTable, capped: bool) -> Backoff {
        let t1 = timers.t1.max(Duration::from_millis(1));
        Backoff {
            next_at: later(now, t1),
            interval: t1,
            cap: capped.then_some(timers.t2.max(t1)),
            give_up_at: later(now, t1.saturating_mul(64)),
        }
    }

    pub(super) fn deadline(&self) -> Instant {
        self.next_at.min(self.give_up_at)
    }

    /// Moves the schedule on if it is due: the deadline comes first, and a resend moves the
    /// next one past `now`, so a late wake-up sends once rather than in a burst.
    pub(super) fn tick(&mut self, now: Instant) -> Tick {
        if now >= self.give_up_at {
            return Tick::GiveUp;
        }
        if now < self.next_at {
            return Tick::Idle;
        }
        let doubled = self.interval.saturating_mul(2);
        self.interval = self.cap.map_or(doubled, |cap| doubled.min(cap));
        self.next_at = later(now, self.interval);
        Tick::Resend
    }
}

/// `now + by`, or `now` if that is past what an `Instant` can hold (an absurd T1 then
/// gives up at once rather than panicking).
pub(super) fn later(now: Instant, by: Duration) -> Instant {
    now.checked_add(by).unwrap_or(now)
}

/// Who owns a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Owner {
    /// Retransmissions of a dialog.
    Dialog(DialogId),
    /// The end of a client INVITE transaction's 2xx window (64*T1 after its final
    /// response, like Timer M).
    Client(TsxId),
}

/// Every owner's next deadline, ordered.
#[derive(Debug, Default)]
pub(super) struct Deadlines {
    by_owner: HashMap<Owner, Instant>,
    ordered: BTreeSet<(Instant, Owner)>,
}

impl Deadlines {
    pub(super) fn set(&mut self, owner: Owner, at: Option<Instant>) {
        let old = match at {
            Some(at) => self.by_owner.insert(owner, at),
            None => self.by_owner.remove(&owner),
        };
        if old == at {
            return;
        }
        if let Some(old) = old {
            self.ordered.remove(&(old, owner));
        }
        if let Some(at) = at {
            self.ordered.insert((at, owner));
        }
    }

    pub(super) fn first(&self) -> Option<Instant> {
        self.ordered.first().map(|&(at, _)| at)
    }

    pub(super) fn due(&self, now: Instant) -> Vec<Owner> {
        self.ordered
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|&(_, owner)| owner)
            .collect()
    }
}
