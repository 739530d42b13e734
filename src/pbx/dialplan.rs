//! The dialplan's decisions (spec §3.5–3.7, §3.16, §2.23), sans-IO: which route a call takes,
//! whether the blacklist stops it, whether it is working time, and what happens after each
//! detail succeeds or fails.
//!
//! - Route selection: enabled routes in (sequence, id) order, a regex *search* on the
//!   destination number, the first hit wins; with the time plan on, a route whose time
//!   condition does not hold now is skipped — it does not hide the routes after it.
//! - `$0`…`$9` are substituted into every detail's data; details run in sequence order.
//! - [`Execution`]: a failed detail ends the call with its cause unless the route has
//!   `continue_on_fail`, in which case the next detail runs; when the details run out, an
//!   answered call ends `NORMAL_CLEARING`, an unanswered one with the last failure (or
//!   `NO_ROUTE_DESTINATION` when nothing was tried).
//! - Blacklist: an enabled, unexpired entry whose number equals (exact) or starts (prefix)
//!   the number tested, for the call's direction.
//!
//! What this module does not do: run the actions (the call engine does, and reports each
//! outcome here), or read the clock (times are passed in, local time for the time plan).

use chrono::{DateTime, NaiveTime, Utc};

use super::causes::HangupCause;
use super::snapshot::{BaseConfig, CompiledRoute, DetailRule, Snapshot, substitute_captures};
use crate::store::{Action, BlacklistDirection, BlacklistEntry, MatchKind, TimeCondition};

/// Whether `time` (local) is working time: within the morning or the afternoon period
/// (start inclusive, stop exclusive).
pub fn is_working_time(base: &BaseConfig, time: NaiveTime) -> bool {
    let within = |(start, stop): (NaiveTime, NaiveTime)| time >= start && time < stop;
    within(base.morning) || within(base.afternoon)
}

/// Whether a route's time condition holds at `time` (local). With the time plan off every
/// route is "always".
pub fn time_condition_holds(base: &BaseConfig, condition: TimeCondition, time: NaiveTime) -> bool {
    if !base.use_time_plan {
        return true;
    }
    match condition {
        TimeCondition::Always => true,
        TimeCondition::WorkingHours => is_working_time(base, time),
        TimeCondition::NonWorkingHours => !is_working_time(base, time),
    }
}

/// The route a call to `destination` takes at local time `time`, with its captures.
/// The longest dial string a number field may hold.
pub const MAX_DIAL_STRING: usize = 64;

/// Whether `text` is a dial string: 1 to [`MAX_DIAL_STRING`] letters, digits and `* # + . _ -`
/// (what a blacklist entry, a caller ID or a presented number may be; all of it fits a SIP
/// URI's user part unescaped).
pub fn is_dial_string(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_DIAL_STRING
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'*' | b'#' | b'+' | b'.' | b'_' | b'-')
        })
}

pub fn select_route<'a>(
    snapshot: &'a Snapshot,
    destination: &str,
    time: NaiveTime,
) -> Option<(&'a CompiledRoute, Vec<String>)> {
    snapshot
        .routes
        .iter()
        .filter(|route| time_condition_holds(&snapshot.base, route.route.time_condition, time))
        .find_map(|route| {
            let caps = route.regex.captures(destination).ok().flatten()?;
            let captures = (0..caps.len().min(10))
                .map(|i| {
                    caps.get(i)
                        .map_or_else(String::new, |m| m.as_str().to_owned())
                })
                .collect();
            Some((route, captures))
        })
}

/// Which way the number is tested against the blacklist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A call coming in: the caller's number.
    Inbound,
    /// A call going out: the number dialled.
    Outbound,
}

/// The blacklist entry that stops `number` in `direction` at `now`, if any.
pub fn blacklisted<'a>(
    snapshot: &'a Snapshot,
    number: &str,
    direction: Direction,
    now: DateTime<Utc>,
) -> Option<&'a BlacklistEntry> {
    if number.is_empty() {
        return None;
    }
    snapshot.blacklist.iter().find(|entry| {
        let applies = matches!(
            (entry.direction, direction),
            (BlacklistDirection::Both, _)
                | (BlacklistDirection::Inbound, Direction::Inbound)
                | (BlacklistDirection::Outbound, Direction::Outbound)
        );
        let current = entry.enabled && entry.expires_at.is_none_or(|at| at > now);
        let matches = match entry.match_kind {
            MatchKind::Exact => number == entry.number,
            MatchKind::Prefix => number.starts_with(entry.number.as_str()),
        };
        applies && current && matches
    })
}

/// One detail to run, with its data substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub data: String,
    pub rule: DetailRule,
}

impl Step {
    /// Whether this build runs the action. The others fail the call with
    /// `SERVICE_NOT_IMPLEMENTED` and a log line naming the action; they never pretend.
    pub fn is_supported(&self) -> bool {
        match self.action {
            Action::Set
            | Action::Answer
            | Action::Sleep
            | Action::Hangup
            | Action::Dtmf
            | Action::Playring
            | Action::Record
            | Action::Jobnum
            | Action::AgentLogin
            | Action::AgentLogout
            | Action::AgentIdle
            | Action::AgentBusy
            | Action::AgentReady => true,
            Action::Bridge => !self.rule.is_external,
            Action::Submenu
            | Action::Conference
            | Action::Voicemail
            | Action::Fax
            | Action::Group
            | Action::Fifo => false,
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Run this step and report its outcome with [`Execution::succeeded`] or
    /// [`Execution::failed`].
    Run(Step),
    /// The details are done: end the call with this cause.
    Finish(HangupCause),
}

/// The details of one route for one call.
#[derive(Debug, Clone)]
pub struct Execution {
    route_name: String,
    steps: Vec<Step>,
    position: usize,
    continue_on_fail: bool,
    answered: bool,
    last_failure: Option<HangupCause>,
    finished: Option<HangupCause>,
}

impl Execution {
    /// The steps of `route` with `captures` substituted.
    pub fn new(route: &CompiledRoute, captures: &[String]) -> Execution {
        Execution {
            route_name: route.route.name.clone(),
            steps: route
                .details
                .iter()
                .map(|rule| Step {
                    action: rule.action,
                    data: substitute_captures(&rule.data, captures),
                    rule: rule.clone(),
                })
                .collect(),
            position: 0,
            continue_on_fail: route.route.continue_on_fail,
            answered: false,
            last_failure: None,
            finished: None,
        }
    }

    pub fn route_name(&self) -> &str {
        &self.route_name
    }

    /// The call was answered (by `answer`, or a bridge that was answered).
    pub fn mark_answered(&mut self) {
        self.answered = true;
    }

    /// Overrides the route's `continue_on_fail` for this call (`set continue_on_fail=…`).
    pub fn set_continue_on_fail(&mut self, on: bool) {
        self.continue_on_fail = on;
    }

    /// The next step, or how the call ends.
    pub fn next_step(&mut self) -> Next {
        if let Some(cause) = self.finished {
            return Next::Finish(cause);
        }
        match self.steps.get(self.position) {
            Some(step) => {
                self.position += 1;
                Next::Run(step.clone())
            }
            None => {
                let cause = if self.answered {
                    HangupCause::NormalClearing
                } else {
                    self.last_failure.unwrap_or(HangupCause::NoRouteDestination)
                };
                self.finished = Some(cause);
                Next::Finish(cause)
            }
        }
    }

    /// The last step worked: go on with the next.
    pub fn succeeded(&mut self) {}

    /// The last step failed with `cause`: the call ends with it unless the route continues
    /// on failure.
    pub fn failed(&mut self, cause: HangupCause) {
        self.last_failure = Some(cause);
        if !self.continue_on_fail {
            self.finished = Some(cause);
        }
    }

    /// A `hangup` step (or the caller hanging up): nothing more runs.
    pub fn end(&mut self, cause: HangupCause) {
        self.finished = Some(cause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbx::snapshot::{ConfigRows, Snapshot};
    use crate::store::{BaseConfigEntry, Route, RouteDetail};
    use chrono::TimeZone;

    fn base_rows() -> Vec<BaseConfigEntry> {
        [
            ("use_time_plan", "true"),
            ("morning_start_time", "8:00:00"),
            ("morning_stop_time", "12:00:00"),
            ("afternoon_start_time", "13:00:00"),
            ("afternoon_stop_time", "17:00:00"),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| BaseConfigEntry {
            id: i as i64 + 1,
            key: key.into(),
            value: value.into(),
            description: String::new(),
        })
        .collect()
    }

    fn route(id: i64, pattern: &str, sequence: i64, time: TimeCondition, cof: bool) -> Route {
        Route {
            id,
            name: format!("route {id}"),
            condition_field: crate::store::ConditionField::DestinationNumber,
            pattern: pattern.into(),
            sequence,
            enabled: true,
            continue_on_fail: cof,
            time_condition: time,
        }
    }

    fn detail(id: i64, route_id: i64, action: Action, data: &str, sequence: i64) -> RouteDetail {
        RouteDetail {
            id,
            route_id,
            name: String::new(),
            action,
            data: data.into(),
            ring_id: None,
            sequence,
            is_external: false,
            gateway_group_id: None,
            gateway_id: None,
            area_enabled: false,
        }
    }

    fn snapshot() -> Snapshot {
        let rows = ConfigRows {
            base_config: base_rows(),
            routes: vec![
                route(1, "^8(\\d{4})$", 0, TimeCondition::WorkingHours, false),
                route(2, "^8(\\d{4})$", 1, TimeCondition::Always, true),
                route(3, "^(1\\d{3})$", 2, TimeCondition::Always, false),
            ],
            route_details: vec![
                detail(10, 1, Action::Answer, "", 0),
                detail(20, 2, Action::Bridge, "$1", 0),
                detail(21, 2, Action::Hangup, "", 1),
                detail(30, 3, Action::Bridge, "$1", 0),
            ],
            ..ConfigRows::default()
        };
        Snapshot::build(1, rows).0
    }

    fn at(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn working_hours_are_start_inclusive_stop_exclusive() {
        let base = snapshot().base;
        assert!(is_working_time(&base, at(8, 0)));
        assert!(!is_working_time(&base, at(12, 0)));
        assert!(is_working_time(&base, at(16, 59)));
        assert!(!is_working_time(&base, at(7, 59)));
    }

    #[test]
    fn a_route_out_of_its_hours_does_not_hide_the_next() {
        let snapshot = snapshot();
        let (route, captures) = select_route(&snapshot, "81234", at(9, 0)).unwrap();
        assert_eq!(route.route.id, 1, "working hours: the first route");
        assert_eq!(captures, ["81234", "1234"]);
        let (route, _) = select_route(&snapshot, "81234", at(20, 0)).unwrap();
        assert_eq!(route.route.id, 2, "after hours: the next matching route");
        assert!(select_route(&snapshot, "999", at(9, 0)).is_none());
    }

    #[test]
    fn details_run_in_order_and_continue_on_fail_decides_what_a_failure_does() {
        let snapshot = snapshot();
        let (route, captures) = select_route(&snapshot, "81005", at(20, 0)).unwrap();
        let mut run = Execution::new(route, &captures);
        let Next::Run(first) = run.next_step() else {
            panic!()
        };
        assert_eq!(
            (first.action, first.data.as_str()),
            (Action::Bridge, "1005")
        );
        assert!(first.is_supported());
        run.failed(HangupCause::UserBusy);
        // continue_on_fail: the hangup detail runs next.
        let Next::Run(second) = run.next_step() else {
            panic!()
        };
        assert_eq!(second.action, Action::Hangup);
        run.succeeded();
        assert_eq!(run.next_step(), Next::Finish(HangupCause::UserBusy));

        let (route, captures) = select_route(&snapshot, "1005", at(20, 0)).unwrap();
        let mut run = Execution::new(route, &captures);
        assert!(matches!(run.next_step(), Next::Run(_)));
        run.failed(HangupCause::NoAnswer);
        assert_eq!(
            run.next_step(),
            Next::Finish(HangupCause::NoAnswer),
            "no continue_on_fail"
        );

        let (route, captures) = select_route(&snapshot, "81005", at(9, 0)).unwrap();
        let mut run = Execution::new(route, &captures);
        assert!(matches!(run.next_step(), Next::Run(_)));
        run.mark_answered();
        run.succeeded();
        assert_eq!(run.next_step(), Next::Finish(HangupCause::NormalClearing));
    }

    #[test]
    fn blacklist_matches_by_kind_direction_and_expiry() {
        let mut snapshot = snapshot();
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap();
        let entry = |number: &str, kind, direction, expires_at| BlacklistEntry {
            id: 0,
            number: number.into(),
            match_kind: kind,
            direction,
            enabled: true,
            expires_at,
            note: String::new(),
            created_at: now,
        };
        snapshot.blacklist = vec![
            entry(
                "1390000",
                MatchKind::Prefix,
                BlacklistDirection::Inbound,
                None,
            ),
            entry("110", MatchKind::Exact, BlacklistDirection::Outbound, None),
            entry(
                "400",
                MatchKind::Prefix,
                BlacklistDirection::Both,
                Some(now - chrono::Duration::hours(1)),
            ),
        ];
        assert!(blacklisted(&snapshot, "13900001234", Direction::Inbound, now).is_some());
        assert!(blacklisted(&snapshot, "13900001234", Direction::Outbound, now).is_none());
        assert!(blacklisted(&snapshot, "110", Direction::Outbound, now).is_some());
        assert!(
            blacklisted(&snapshot, "1100", Direction::Outbound, now).is_none(),
            "exact"
        );
        assert!(
            blacklisted(&snapshot, "4001234", Direction::Inbound, now).is_none(),
            "expired"
        );
        assert!(blacklisted(&snapshot, "", Direction::Inbound, now).is_none());
    }

    #[test]
    fn actions_of_later_issues_are_not_supported() {
        let snapshot = snapshot();
        let (route, captures) = select_route(&snapshot, "1005", at(9, 0)).unwrap();
        let mut run = Execution::new(route, &captures);
        let Next::Run(mut step) = run.next_step() else {
            panic!()
        };
        step.rule.is_external = true;
        assert!(!step.is_supported(), "external bridge comes with trunks");
        step.action = Action::Fifo;
        assert!(!step.is_supported());
    }
}
