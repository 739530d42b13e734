//! Session timers (RFC 4028) for one leg of a call: what to answer, who refreshes, and when
//! the leg is due for a refresh or dead.
//!
//! A B2BUA keeps each leg's session timer its own. On the caller's leg we are the UAS of the
//! INVITE; on the callee's leg the UAC. The negotiation here is pure: it reads the headers of
//! a request or response and says what to answer (`Session-Expires`, `Require: timer`, or 422
//! with `Min-SE`) and what timer the leg then runs. Refreshes themselves (UPDATE or
//! re-INVITE), the BYE at expiry and the clock belong to [`super::calls`].
//!
//! Decisions (docs/calls.md, "Session timers"):
//! - a request asking for less than our `Min-SE` gets 422; more than our interval is lowered
//!   to it, never below the request's own `Min-SE`;
//! - a caller that asked for a timer and named no refresher refreshes itself (it asked); a
//!   caller that asked for none, or cannot refresh (no `Supported: timer`), is refreshed by
//!   us: every leg runs a timer, so a party that vanished without a BYE is found;
//! - towards the callee we ask for our interval and let it choose; when its 2xx carries no
//!   `Session-Expires` we refresh anyway (RFC 4028 §7.2 lets the UAC), for the same reason.

use std::time::{Duration, Instant};

use crate::sip::dialog::has_option_tag;
use crate::sip::message::Headers;

/// The session interval we ask for and grant at most, seconds (RFC 4028 §4 recommends 1800).
pub const DEFAULT_SESSION_EXPIRES: u32 = 1800;

/// The smallest session interval RFC 4028 allows anyone to ask for, seconds (§4).
pub const RFC_MIN_SE: u32 = 90;

/// Our limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// The interval we ask for and grant at most.
    pub session_expires: u32,
    /// The smallest interval we accept (422 below it).
    pub min_se: u32,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            session_expires: DEFAULT_SESSION_EXPIRES,
            min_se: RFC_MIN_SE,
        }
    }
}

/// Who sends the refreshes of a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// We do (UPDATE or re-INVITE at half the interval).
    Us,
    /// The other party does; without a refresh in time the leg is dead.
    Peer,
}

/// The `refresher` parameter, in the terms of the transaction that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefresherParam {
    Uac,
    Uas,
}

impl RefresherParam {
    fn as_str(self) -> &'static str {
        match self {
            RefresherParam::Uac => "uac",
            RefresherParam::Uas => "uas",
        }
    }
}

/// A `Session-Expires` header value: `delta-seconds *(;param)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    pub delta: u32,
    pub refresher: Option<RefresherParam>,
}

impl SessionExpires {
    /// Parses a header value; `None` when it is not `delta-seconds` with parameters.
    pub fn parse(value: &str) -> Option<SessionExpires> {
        let mut parts = value.split(';');
        let delta = parts.next()?.trim().parse::<u32>().ok()?;
        let mut refresher = None;
        for param in parts {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("refresher") {
                refresher = match value.trim().to_ascii_lowercase().as_str() {
                    "uac" => Some(RefresherParam::Uac),
                    "uas" => Some(RefresherParam::Uas),
                    _ => None,
                };
            }
        }
        Some(SessionExpires { delta, refresher })
    }

    /// The header value.
    pub fn value(&self) -> String {
        match self.refresher {
            Some(r) => format!("{};refresher={}", self.delta, r.as_str()),
            None => self.delta.to_string(),
        }
    }
}

/// The `Min-SE` of `headers`, if it is there and well formed.
pub fn min_se_of(headers: &Headers) -> Option<u32> {
    let value = headers.first("Min-SE")?;
    value.split(';').next()?.trim().parse().ok()
}

/// The `Session-Expires` of `headers`, if it is there and well formed.
pub fn session_expires_of(headers: &Headers) -> Option<SessionExpires> {
    SessionExpires::parse(headers.first("Session-Expires")?)
}

/// What to do with a request (initial INVITE, re-INVITE or UPDATE) received on a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UasDecision {
    /// 422 Session Interval Too Small, with this `Min-SE`.
    TooSmall { min_se: u32 },
    /// Answer with this `Session-Expires` (and `Require: timer` when `require_timer`); the
    /// leg runs `interval` with `refresher`.
    Run {
        answer: SessionExpires,
        require_timer: bool,
        interval: u32,
        refresher: Refresher,
    },
}

impl UasDecision {
    /// The headers a 2xx gets for this decision.
    pub fn add_to(&self, headers: &mut Headers) {
        if let UasDecision::Run {
            answer,
            require_timer,
            ..
        } = self
        {
            headers.push(crate::sip::message::Header::new(
                "Session-Expires",
                answer.value(),
            ));
            if *require_timer {
                headers.push(crate::sip::message::Header::new("Require", "timer"));
            }
        }
    }
}

/// RFC 4028 §9: the UAS side of a session-refreshing request with `headers`.
pub fn negotiate_as_uas(headers: &Headers, config: &TimerConfig) -> UasDecision {
    let supports = has_option_tag(headers, "Supported", "timer")
        || has_option_tag(headers, "Require", "timer");
    let request_min_se = min_se_of(headers).unwrap_or(RFC_MIN_SE);
    let (interval, asked_refresher) = match session_expires_of(headers) {
        Some(asked) => {
            if asked.delta < config.min_se {
                return UasDecision::TooSmall {
                    min_se: config.min_se,
                };
            }
            (
                asked.delta.min(config.session_expires).max(request_min_se),
                asked.refresher,
            )
        }
        None => (config.session_expires.max(request_min_se), None),
    };
    let param = match (supports, asked_refresher) {
        // A UAC without timer support cannot refresh: we do (§9).
        (false, _) => RefresherParam::Uas,
        (true, Some(asked)) => asked,
        // It asked for a timer without naming the refresher: it refreshes.
        (true, None) if session_expires_of(headers).is_some() => RefresherParam::Uac,
        (true, None) => RefresherParam::Uas,
    };
    UasDecision::Run {
        answer: SessionExpires {
            delta: interval,
            refresher: Some(param),
        },
        require_timer: supports,
        interval,
        refresher: match param {
            RefresherParam::Uac => Refresher::Peer,
            RefresherParam::Uas => Refresher::Us,
        },
    }
}

/// RFC 4028 §7.2: the timer a leg runs after the 2xx to a session-refreshing request we
/// sent (`response_headers`), having asked for `asked` seconds.
pub fn negotiate_as_uac(response_headers: &Headers, asked: u32) -> (u32, Refresher) {
    match session_expires_of(response_headers) {
        Some(granted) => {
            let refresher = match granted.refresher {
                Some(RefresherParam::Uas) => Refresher::Peer,
                Some(RefresherParam::Uac) | None => Refresher::Us,
            };
            (granted.delta.max(RFC_MIN_SE), refresher)
        }
        None => (asked, Refresher::Us),
    }
}

/// The running session timer of one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegTimer {
    pub interval: u32,
    pub refresher: Refresher,
    /// When we refresh (`Us`) or give the leg up (`Peer`).
    pub due: Instant,
}

impl LegTimer {
    /// A timer (re)started by a refresh at `now`.
    pub fn start(interval: u32, refresher: Refresher, now: Instant) -> LegTimer {
        let interval_d = Duration::from_secs(interval.into());
        let due = match refresher {
            // §10: the refresher sends at half the interval.
            Refresher::Us => now + interval_d / 2,
            // §10: without a refresh, the session ends at interval - min(32, interval / 3).
            Refresher::Peer => {
                now + interval_d - Duration::from_secs(u64::from((interval / 3).min(32)))
            }
        };
        LegTimer {
            interval,
            refresher,
            due,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Header;

    fn headers(list: &[(&'static str, &str)]) -> Headers {
        let mut h = Headers::default();
        for (name, value) in list {
            h.push(Header::new(*name, *value));
        }
        h
    }

    #[test]
    fn parses_session_expires_and_min_se() {
        assert_eq!(
            SessionExpires::parse("1800;refresher=UAC"),
            Some(SessionExpires {
                delta: 1800,
                refresher: Some(RefresherParam::Uac)
            })
        );
        assert_eq!(
            SessionExpires::parse(" 90 ; x=y"),
            Some(SessionExpires {
                delta: 90,
                refresher: None
            })
        );
        assert_eq!(SessionExpires::parse("soon"), None);
        assert_eq!(SessionExpires::parse("-5"), None);
        assert_eq!(min_se_of(&headers(&[("Min-SE", "120;lr")])), Some(120));
        assert_eq!(
            session_expires_of(&headers(&[("x", "600;refresher=uas")])).map(|s| s.delta),
            Some(600),
            "the compact form x"
        );
    }

    #[test]
    fn a_request_below_min_se_gets_422() {
        let h = headers(&[("Supported", "timer"), ("Session-Expires", "60")]);
        assert_eq!(
            negotiate_as_uas(&h, &TimerConfig::default()),
            UasDecision::TooSmall { min_se: 90 }
        );
    }

    #[test]
    fn the_requester_refreshes_what_it_asked_for() {
        let h = headers(&[("Supported", "timer"), ("Session-Expires", "600")]);
        let UasDecision::Run {
            answer,
            require_timer,
            refresher,
            interval,
        } = negotiate_as_uas(&h, &TimerConfig::default())
        else {
            panic!()
        };
        assert_eq!(answer.value(), "600;refresher=uac");
        assert!(require_timer);
        assert_eq!((interval, refresher), (600, Refresher::Peer));
    }

    #[test]
    fn a_long_interval_is_lowered_but_not_below_the_requests_min_se() {
        let config = TimerConfig {
            session_expires: 300,
            min_se: 90,
        };
        let h = headers(&[
            ("Supported", "timer"),
            ("Session-Expires", "7200;refresher=uas"),
            ("Min-SE", "600"),
        ]);
        let UasDecision::Run {
            answer, refresher, ..
        } = negotiate_as_uas(&h, &config)
        else {
            panic!()
        };
        assert_eq!(answer.value(), "600;refresher=uas");
        assert_eq!(refresher, Refresher::Us);
    }

    #[test]
    fn without_timer_support_we_refresh_and_require_nothing() {
        let h = headers(&[("Session-Expires", "600;refresher=uac")]);
        let UasDecision::Run {
            answer,
            require_timer,
            refresher,
            ..
        } = negotiate_as_uas(&h, &TimerConfig::default())
        else {
            panic!()
        };
        assert_eq!(answer.value(), "600;refresher=uas");
        assert!(!require_timer);
        assert_eq!(refresher, Refresher::Us);
        let plain = headers(&[]);
        let decision = negotiate_as_uas(&plain, &TimerConfig::default());
        let mut out = Headers::default();
        decision.add_to(&mut out);
        assert_eq!(out.first("Session-Expires"), Some("1800;refresher=uas"));
        assert_eq!(out.first("Require"), None);
    }

    #[test]
    fn the_uac_side_follows_the_2xx() {
        let granted = headers(&[("Session-Expires", "900;refresher=uas")]);
        assert_eq!(negotiate_as_uac(&granted, 1800), (900, Refresher::Peer));
        let ours = headers(&[("Session-Expires", "900;refresher=uac")]);
        assert_eq!(negotiate_as_uac(&ours, 1800), (900, Refresher::Us));
        assert_eq!(negotiate_as_uac(&headers(&[]), 1800), (1800, Refresher::Us));
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // one reading as the virtual clock's origin
    fn due_times_follow_section_10() {
        let t0 = Instant::now();
        let us = LegTimer::start(90, Refresher::Us, t0);
        assert_eq!(us.due - t0, Duration::from_secs(45));
        let peer = LegTimer::start(90, Refresher::Peer, t0);
        assert_eq!(peer.due - t0, Duration::from_secs(60));
        let long = LegTimer::start(1800, Refresher::Peer, t0);
        assert_eq!(long.due - t0, Duration::from_secs(1768));
    }
}
