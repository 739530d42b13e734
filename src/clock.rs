//! The wall clock, read in one place.
//!
//! Records (CDRs, audit entries, registrations) carry UTC timestamps. Protocol cores never call
//! this: they receive `now` from their driver. Timestamps are truncated to microseconds, the
//! precision both database backends store, so a value reads back exactly as written.
#![allow(clippy::disallowed_methods)]

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// The current UTC time, truncated to whole microseconds.
pub fn now_utc() -> DateTime<Utc> {
    truncate_to_micros(Utc::now())
}

/// `t` without its sub-microsecond part.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}
