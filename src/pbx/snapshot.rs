//! The running configuration: an immutable snapshot built from the database rows (spec §3.3).
//!
//! [`Snapshot::build`] takes every configuration row and returns a snapshot plus the list of
//! problems it found: a route regex that does not compile, a detail whose literal data names
//! an IVR, queue, conference or extension that does not exist, a prompt that is not a ring
//! tone, a base-configuration value of the wrong type. A route with a problem is left out of
//! the snapshot (rather than half-routed); other rows with a problem are left out too.
//! Whether a snapshot with problems may replace the running one is the caller's decision
//! (`live.rs`: Apply refuses it).
//!
//! Pure: no IO, no clock. Routes are ordered by sequence, then id (spec §3.5), and matched by
//! an unanchored regex search with a PCRE-compatible engine. Time conditions and the
//! execution of details belong to the dialplan executor, not here.

use std::collections::HashMap;
use std::fmt;

use chrono::NaiveTime;
use fancy_regex::Regex;
use serde::Serialize;

use crate::store::*;

/// Every configuration row, as loaded from the store.
#[derive(Debug, Default, Clone)]
pub struct ConfigRows {
    pub extension_groups: Vec<ExtensionGroup>,
    pub extensions: Vec<Extension>,
    pub base_config: Vec<BaseConfigEntry>,
    pub ring_tones: Vec<RingTone>,
    pub gateways: Vec<Gateway>,
    pub gateway_groups: Vec<GatewayGroup>,
    pub gateway_group_members: Vec<GatewayGroupMember>,
    pub routes: Vec<Route>,
    pub route_details: Vec<RouteDetail>,
    pub route_detail_regions: Vec<RouteDetailRegion>,
    pub ivrs: Vec<Ivr>,
    pub ivr_details: Vec<IvrDetail>,
    pub ivr_detail_regions: Vec<IvrDetailRegion>,
    pub agent_queues: Vec<AgentQueue>,
    pub agent_queue_members: Vec<AgentQueueMember>,
    pub inbound_queues: Vec<InboundQueue>,
    pub inbound_queue_links: Vec<InboundQueueLink>,
    pub conferences: Vec<Conference>,
    pub conference_members: Vec<ConferenceMember>,
    pub blacklist: Vec<BlacklistEntry>,
}

/// One thing wrong with a configuration row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The table of the offending row.
    pub entity: &'static str,
    pub id: i64,
    /// The offending field.
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}: {}",
            self.entity, self.id, self.field, self.message
        )
    }
}

/// A route ready to match: its regex compiled, its details in sequence order.
#[derive(Debug, Clone)]
pub struct CompiledRoute {
    pub route: Route,
    pub regex: Regex,
    pub details: Vec<DetailRule>,
}

/// A route or IVR detail with its area-strategy regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailRule {
    pub action: Action,
    pub data: String,
    pub ring_id: Option<i64>,
    pub is_external: bool,
    pub gateway_group_id: Option<i64>,
    pub gateway_id: Option<i64>,
    pub area_enabled: bool,
    /// Selected regions; empty with `area_enabled` means all areas.
    pub regions: Vec<i64>,
    /// The IVR key this detail answers (empty for route details).
    pub key: String,
    pub id: i64,
}

/// An IVR menu with its details in sequence order.
#[derive(Debug, Clone)]
pub struct IvrMenu {
    pub ivr: Ivr,
    pub details: Vec<DetailRule>,
}

/// An agent queue with its members in sequence order.
#[derive(Debug, Clone)]
pub struct AgentQueueDef {
    pub queue: AgentQueue,
    pub members: Vec<AgentQueueMember>,
}

/// An inbound queue with the ids of its agent queues in link order.
#[derive(Debug, Clone)]
pub struct InboundQueueDef {
    pub queue: InboundQueue,
    pub agent_queue_ids: Vec<i64>,
}

/// A conference with its members.
#[derive(Debug, Clone)]
pub struct ConferenceDef {
    pub conference: Conference,
    pub members: Vec<ConferenceMember>,
}

/// A gateway group with its gateways' ids in trial order.
#[derive(Debug, Clone)]
pub struct GatewayGroupDef {
    pub group: GatewayGroup,
    pub gateway_ids: Vec<i64>,
}

/// The base configuration (spec §2.4), typed where the engine interprets a value.
#[derive(Debug, Clone)]
pub struct BaseConfig {
    values: HashMap<String, String>,
    pub use_time_plan: bool,
    pub linux_platform: bool,
    pub morning: (NaiveTime, NaiveTime),
    pub afternoon: (NaiveTime, NaiveTime),
}

impl BaseConfig {
    /// The raw value of `key`, if the key exists.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// A route chosen for a destination number, with its regex captures.
#[derive(Debug)]
pub struct RouteMatch<'a> {
    pub route: &'a CompiledRoute,
    /// `$0` (the whole match), `$1`, … ; a group that did not take part is empty.
    pub captures: Vec<String>,
}

impl RouteMatch<'_> {
    /// `data` with `$0`…`$9` replaced by the captures; a missing group becomes empty.
    pub fn substitute(&self, data: &str) -> String {
        substitute_captures(data, &self.captures)
    }
}

/// The running configuration. Immutable; a new one replaces it as a whole.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub version: u64,
    /// Enabled routes that compiled, ordered by sequence then id.
    pub routes: Vec<CompiledRoute>,
    pub extensions: HashMap<String, Extension>,
    pub extension_groups: HashMap<i64, ExtensionGroup>,
    pub ivrs: HashMap<String, IvrMenu>,
    pub agent_queues: HashMap<String, AgentQueueDef>,
    pub inbound_queues: HashMap<String, InboundQueueDef>,
    pub conferences: HashMap<String, ConferenceDef>,
    pub gateways: HashMap<i64, Gateway>,
    pub gateway_groups: HashMap<i64, GatewayGroupDef>,
    pub ring_tones: HashMap<i64, RingTone>,
    /// Enabled blacklist entries.
    pub blacklist: Vec<BlacklistEntry>,
    pub base: BaseConfig,
}

impl Snapshot {
    /// Builds a snapshot from every configuration row, with the problems found.
    pub fn build(version: u64, rows: ConfigRows) -> (Snapshot, Vec<Problem>) {
        Builder::new(&rows).build(version, rows.clone())
    }

    /// The first enabled route whose regex is found in `destination` (spec §3.5).
    pub fn match_route(&self, destination: &str) -> Option<RouteMatch<'_>> {
        self.routes.iter().find_map(|route| {
            let caps = route.regex.captures(destination).ok().flatten()?;
            let captures = (0..caps.len())
                .map(|i| {
                    caps.get(i)
                        .map_or_else(String::new, |m| m.as_str().to_owned())
                })
                .collect();
            Some(RouteMatch { route, captures })
        })
    }

    /// A ring tone by name.
    pub fn ring_tone_named(&self, name: &str) -> Option<&RingTone> {
        self.ring_tones.values().find(|r| r.name == name)
    }
}

/// `data` with `$0`…`$9` replaced by `captures`; a group that does not exist becomes empty.
pub fn substitute_captures(data: &str, captures: &[String]) -> String {
    let mut out = String::with_capacity(data.len());
    let mut chars = data.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$'
            && let Some(d) = chars.peek().and_then(|d| d.to_digit(10))
        {
            chars.next();
            out.push_str(captures.get(d as usize).map_or("", String::as_str));
            continue;
        }
        out.push(c);
    }
    out
}

/// Indexes of the rows, for reference checks.
struct Builder<'a> {
    rows: &'a ConfigRows,
    problems: Vec<Problem>,
}

const DTMF_KEYS: &str = "0123456789*#ABCDabcd";

impl<'a> Builder<'a> {
    fn new(rows: &'a ConfigRows) -> Self {
        Builder {
            rows,
            problems: Vec::new(),
        }
    }

    fn problem(
        &mut self,
        entity: &'static str,
        id: i64,
        field: &'static str,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            entity,
            id,
            field,
            message: message.into(),
        });
    }

    fn build(mut self, version: u64, rows: ConfigRows) -> (Snapshot, Vec<Problem>) {
        let base = self.base_config();
        let routes = self.routes();
        let ivrs = self.ivrs();
        let agent_queues = self.agent_queues();
        let inbound_queues = self.inbound_queues();
        let conferences = self.conferences();
        let gateway_groups = self.gateway_groups();
        let snapshot = Snapshot {
            version,
            routes,
            extensions: rows
                .extensions
                .into_iter()
                .map(|e| (e.number.clone(), e))
                .collect(),
            extension_groups: rows
                .extension_groups
                .into_iter()
                .map(|g| (g.id, g))
                .collect(),
            ivrs,
            agent_queues,
            inbound_queues,
            conferences,
            gateways: rows.gateways.into_iter().map(|g| (g.id, g)).collect(),
            gateway_groups,
            ring_tones: rows.ring_tones.into_iter().map(|r| (r.id, r)).collect(),
            blacklist: rows.blacklist.into_iter().filter(|b| b.enabled).collect(),
            base,
        };
        (snapshot, self.problems)
    }

    fn base_config(&mut self) -> BaseConfig {
        let values: HashMap<String, String> = self
            .rows
            .base_config
            .iter()
            .map(|e| (e.key.clone(), e.value.trim().to_owned()))
            .collect();
        let id_of = |key: &str| {
            self.rows
                .base_config
                .iter()
                .find(|e| e.key == key)
                .map_or(0, |e| e.id)
        };
        let flag =
            |this: &mut Self, key: &str, default: bool| match values.get(key).map(String::as_str) {
                None => default,
                Some("true") => true,
                Some("false") => false,
                Some(other) => {
                    this.problem(
                        "base_config",
                        id_of(key),
                        "value",
                        format!("{key} = {other:?}: expected true or false"),
                    );
                    default
                }
            };
        let use_time_plan = flag(self, "use_time_plan", true);
        let linux_platform = flag(self, "linux_platform", true);
        let time = |this: &mut Self, key: &str, default: (u32, u32)| {
            let fallback =
                NaiveTime::from_hms_opt(default.0, default.1, 0).expect("valid default time");
            match values.get(key) {
                None => fallback,
                Some(text) => parse_time_of_day(text).unwrap_or_else(|| {
                    this.problem(
                        "base_config",
                        id_of(key),
                        "value",
                        format!("{key} = {text:?}: expected a time H:MM:SS"),
                    );
                    fallback
                }),
            }
        };
        let morning = (
            time(self, "morning_start_time", (8, 0)),
            time(self, "morning_stop_time", (12, 0)),
        );
        let afternoon = (
            time(self, "afternoon_start_time", (13, 0)),
            time(self, "afternoon_stop_time", (17, 0)),
        );
        for (key, (start, stop)) in [
            ("morning_stop_time", morning),
            ("afternoon_stop_time", afternoon),
        ] {
            if stop <= start {
                self.problem(
                    "base_config",
                    id_of(key),
                    "value",
                    format!("{key} must be later than the period's start"),
                );
            }
        }
        BaseConfig {
            values,
            use_time_plan,
            linux_platform,
            morning,
            afternoon,
        }
    }

    fn routes(&mut self) -> Vec<CompiledRoute> {
        let mut routes = Vec::new();
        for route in self.rows.routes.iter().filter(|r| r.enabled) {
            let before = self.problems.len();
            let regex = match Regex::new(&route.pattern) {
                Ok(regex) => Some(regex),
                Err(e) => {
                    self.problem(
                        "route",
                        route.id,
                        "pattern",
                        format!("`{}` does not compile: {e}", route.pattern),
                    );
                    None
                }
            };
            let mut details: Vec<&RouteDetail> = self
                .rows
                .route_details
                .iter()
                .filter(|d| d.route_id == route.id)
                .collect();
            details.sort_by_key(|d| (d.sequence, d.id));
            let details = details
                .into_iter()
                .map(|d| {
                    let regions = self
                        .rows
                        .route_detail_regions
                        .iter()
                        .filter(|r| r.detail_id == d.id)
                        .map(|r| r.region_id)
                        .collect();
                    let rule = DetailRule {
                        action: d.action,
                        data: d.data.clone(),
                        ring_id: d.ring_id,
                        is_external: d.is_external,
                        gateway_group_id: d.gateway_group_id,
                        gateway_id: d.gateway_id,
                        area_enabled: d.area_enabled,
                        regions,
                        key: String::new(),
                        id: d.id,
                    };
                    self.check_detail("route_detail", &rule);
                    rule
                })
                .collect();
            if let (Some(regex), true) = (regex, self.problems.len() == before) {
                routes.push(CompiledRoute {
                    route: route.clone(),
                    regex,
                    details,
                });
            }
        }
        routes.sort_by_key(|r| (r.route.sequence, r.route.id));
        routes
    }

    /// Reference checks that only need the data: literal targets must exist.
    fn check_detail(&mut self, entity: &'static str, d: &DetailRule) {
        let data = d.data.trim();
        let literal = !data.contains('$') && data != "***";
        match d.action {
            Action::Playring if d.ring_id.is_none() => {
                self.problem(entity, d.id, "ring_id", "playring needs a ring tone");
            }
            Action::Submenu if literal && !self.rows.ivrs.iter().any(|i| i.number == data) => {
                self.problem(
                    entity,
                    d.id,
                    "data",
                    format!("submenu {data:?}: no IVR has this number"),
                );
            }
            Action::Fifo
                if literal
                    && !self.rows.agent_queues.iter().any(|q| q.number == data)
                    && !self.rows.inbound_queues.iter().any(|q| q.number == data) =>
            {
                self.problem(
                    entity,
                    d.id,
                    "data",
                    format!("fifo {data:?}: no agent or inbound queue has this number"),
                );
            }
            Action::Conference
                if literal && !self.rows.conferences.iter().any(|c| c.number == data) =>
            {
                self.problem(
                    entity,
                    d.id,
                    "data",
                    format!("conference {data:?}: no conference has this number"),
                );
            }
            Action::Bridge if data.is_empty() => {
                self.problem(entity, d.id, "data", "bridge needs a target number");
            }
            Action::Bridge
                if d.is_external && d.gateway_group_id.is_none() && d.gateway_id.is_none() =>
            {
                self.problem(
                    entity,
                    d.id,
                    "is_external",
                    "an external bridge needs a gateway group or a gateway",
                );
            }
            Action::Bridge
                if !d.is_external
                    && literal
                    && !self.rows.extensions.iter().any(|e| e.number == data) =>
            {
                self.problem(entity, d.id, "data", format!("bridge {data:?}: no extension has this number (set is_external for outside numbers)"));
            }
            Action::Set if !data.contains('=') => {
                self.problem(
                    entity,
                    d.id,
                    "data",
                    format!("set {data:?}: expected name=value"),
                );
            }
            Action::Dtmf
                if literal && (data.is_empty() || !data.chars().all(|c| DTMF_KEYS.contains(c))) =>
            {
                self.problem(
                    entity,
                    d.id,
                    "data",
                    format!("dtmf {data:?}: expected DTMF digits 0-9 * # A-D"),
                );
            }
            _ => {}
        }
    }

    fn ivrs(&mut self) -> HashMap<String, IvrMenu> {
        let mut menus = HashMap::new();
        for ivr in &self.rows.ivrs {
            let before = self.problems.len();
            for (field, name) in [
                ("greeting", &ivr.greeting),
                ("short_tone", &ivr.short_tone),
                ("invalid_tone", &ivr.invalid_tone),
            ] {
                if !name.is_empty() && !self.rows.ring_tones.iter().any(|r| &r.name == name) {
                    self.problem(
                        "ivr",
                        ivr.id,
                        field,
                        format!("{name:?} is not the name of a ring tone"),
                    );
                }
            }
            if !ivr.confirm_key.is_empty()
                && !ivr.confirm_key.chars().all(|c| DTMF_KEYS.contains(c))
            {
                self.problem(
                    "ivr",
                    ivr.id,
                    "confirm_key",
                    format!("{:?} is not a DTMF key", ivr.confirm_key),
                );
            }
            let mut details: Vec<&IvrDetail> = self
                .rows
                .ivr_details
                .iter()
                .filter(|d| d.ivr_id == ivr.id)
                .collect();
            details.sort_by_key(|d| (d.sequence, d.id));
            let details = details
                .into_iter()
                .map(|d| {
                    if !(d.key.is_empty()
                        || d.key == "***"
                        || d.key.chars().all(|c| DTMF_KEYS.contains(c)))
                    {
                        self.problem(
                            "ivr_detail",
                            d.id,
                            "key",
                            format!("{:?} is not a DTMF key sequence or ***", d.key),
                        );
                    }
                    let regions = self
                        .rows
                        .ivr_detail_regions
                        .iter()
                        .filter(|r| r.detail_id == d.id)
                        .map(|r| r.region_id)
                        .collect();
                    let rule = DetailRule {
                        action: d.action,
                        data: d.data.clone(),
                        ring_id: d.ring_id,
                        is_external: d.is_external,
                        gateway_group_id: d.gateway_group_id,
                        gateway_id: d.gateway_id,
                        area_enabled: d.area_enabled,
                        regions,
                        key: d.key.clone(),
                        id: d.id,
                    };
                    self.check_detail("ivr_detail", &rule);
                    rule
                })
                .collect();
            if self.problems.len() == before {
                menus.insert(
                    ivr.number.clone(),
                    IvrMenu {
                        ivr: ivr.clone(),
                        details,
                    },
                );
            }
        }
        menus
    }

    fn agent_queues(&mut self) -> HashMap<String, AgentQueueDef> {
        let mut queues = HashMap::new();
        for queue in &self.rows.agent_queues {
            let mut members: Vec<AgentQueueMember> = self
                .rows
                .agent_queue_members
                .iter()
                .filter(|m| m.queue_id == queue.id)
                .cloned()
                .collect();
            members.sort_by_key(|m| (m.sequence, m.id));
            let before = self.problems.len();
            for m in &members {
                if m.gateway_id.is_none()
                    && !self.rows.extensions.iter().any(|e| e.number == m.number)
                {
                    self.problem(
                        "agent_queue_member",
                        m.id,
                        "number",
                        format!(
                            "{:?} is not an extension (set a gateway for external members)",
                            m.number
                        ),
                    );
                }
            }
            if self.problems.len() == before {
                queues.insert(
                    queue.number.clone(),
                    AgentQueueDef {
                        queue: queue.clone(),
                        members,
                    },
                );
            }
        }
        queues
    }

    fn inbound_queues(&mut self) -> HashMap<String, InboundQueueDef> {
        self.rows
            .inbound_queues
            .iter()
            .map(|queue| {
                let mut links: Vec<&InboundQueueLink> = self
                    .rows
                    .inbound_queue_links
                    .iter()
                    .filter(|l| l.inbound_queue_id == queue.id)
                    .collect();
                links.sort_by_key(|l| (l.sequence, l.id));
                let agent_queue_ids = links.into_iter().map(|l| l.agent_queue_id).collect();
                (
                    queue.number.clone(),
                    InboundQueueDef {
                        queue: queue.clone(),
                        agent_queue_ids,
                    },
                )
            })
            .collect()
    }

    fn conferences(&mut self) -> HashMap<String, ConferenceDef> {
        self.rows
            .conferences
            .iter()
            .map(|conference| {
                let members = self
                    .rows
                    .conference_members
                    .iter()
                    .filter(|m| m.conference_id == conference.id)
                    .cloned()
                    .collect();
                (
                    conference.number.clone(),
                    ConferenceDef {
                        conference: conference.clone(),
                        members,
                    },
                )
            })
            .collect()
    }

    fn gateway_groups(&mut self) -> HashMap<i64, GatewayGroupDef> {
        self.rows
            .gateway_groups
            .iter()
            .map(|group| {
                let mut members: Vec<&GatewayGroupMember> = self
                    .rows
                    .gateway_group_members
                    .iter()
                    .filter(|m| m.group_id == group.id)
                    .collect();
                members.sort_by_key(|m| (m.sequence, m.id));
                let gateway_ids = members.into_iter().map(|m| m.gateway_id).collect();
                (
                    group.id,
                    GatewayGroupDef {
                        group: group.clone(),
                        gateway_ids,
                    },
                )
            })
            .collect()
    }
}

/// `H:MM:SS` or `HH:MM` (FSGui writes `8:00:00`).
fn parse_time_of_day(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: i64, pattern: &str, sequence: i64) -> Route {
        Route {
            id,
            name: format!("r{id}"),
            condition_field: ConditionField::DestinationNumber,
            pattern: pattern.to_owned(),
            sequence,
            enabled: true,
            continue_on_fail: false,
            time_condition: TimeCondition::Always,
        }
    }

    #[test]
    fn routes_are_ordered_by_sequence_then_id_and_matched_by_search() {
        let rows = ConfigRows {
            routes: vec![
                route(13, r"^73(\d+)$", 4),
                route(12, "^3300$", 4),
                route(9, r"^1[0-6]\d\d$", 1),
                route(33, "87654321", 2),
            ],
            ..ConfigRows::default()
        };
        let (snapshot, problems) = Snapshot::build(1, rows);
        assert!(problems.is_empty(), "{problems:?}");
        let order: Vec<i64> = snapshot.routes.iter().map(|r| r.route.id).collect();
        assert_eq!(order, vec![9, 33, 12, 13]);
        let m = snapshot
            .match_route("0087654321")
            .expect("unanchored pattern is a search");
        assert_eq!(m.route.route.id, 33);
        let m = snapshot.match_route("731009").unwrap();
        assert_eq!(m.captures, vec!["731009".to_owned(), "1009".to_owned()]);
        assert_eq!(m.substitute("$1@$0/$7"), "1009@731009/");
        assert!(snapshot.match_route("999").is_none());
    }

    #[test]
    fn disabled_routes_do_not_match() {
        let mut r = route(1, "^1000$", 0);
        r.enabled = false;
        let (snapshot, _) = Snapshot::build(
            1,
            ConfigRows {
                routes: vec![r],
                ..ConfigRows::default()
            },
        );
        assert!(snapshot.match_route("1000").is_none());
    }

    #[test]
    fn pcre_features_compile() {
        let rows = ConfigRows {
            routes: vec![route(1, r"^(?!9)(\d)\1\d+$", 0)],
            ..ConfigRows::default()
        };
        let (snapshot, problems) = Snapshot::build(1, rows);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(
            snapshot.match_route("1123").is_some(),
            "look-ahead and back-reference"
        );
        assert!(snapshot.match_route("9923").is_none());
    }

    #[test]
    fn broken_regex_is_a_problem_naming_the_row() {
        let rows = ConfigRows {
            routes: vec![route(7, "^(12", 0), route(8, "^12$", 1)],
            ..ConfigRows::default()
        };
        let (snapshot, problems) = Snapshot::build(1, rows);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            (problems[0].entity, problems[0].id, problems[0].field),
            ("route", 7, "pattern")
        );
        assert_eq!(
            snapshot.routes.len(),
            1,
            "the bad route is left out, the good one stays"
        );
    }

    #[test]
    fn dangling_literal_references_are_problems() {
        let detail = |id, action, data: &str| RouteDetail {
            id,
            route_id: 1,
            name: String::new(),
            action,
            data: data.to_owned(),
            ring_id: None,
            sequence: id,
            is_external: false,
            gateway_group_id: None,
            gateway_id: None,
            area_enabled: false,
        };
        let rows = ConfigRows {
            routes: vec![route(1, "^2300$", 0)],
            route_details: vec![
                detail(1, Action::Answer, ""),
                detail(2, Action::Submenu, "2300"),
                detail(3, Action::Fifo, "3300"),
                detail(4, Action::Bridge, "$0"),
                detail(5, Action::Playring, ""),
            ],
            ..ConfigRows::default()
        };
        let (snapshot, problems) = Snapshot::build(1, rows);
        let ids: Vec<(i64, &str)> = problems.iter().map(|p| (p.id, p.field)).collect();
        assert_eq!(ids, vec![(2, "data"), (3, "data"), (5, "ring_id")]);
        assert!(snapshot.routes.is_empty());
    }

    #[test]
    fn base_config_values_are_typed_and_checked() {
        let entry = |id, key: &str, value: &str| BaseConfigEntry {
            id,
            key: key.to_owned(),
            value: value.to_owned(),
            description: String::new(),
        };
        let rows = ConfigRows {
            base_config: vec![
                entry(11, "use_time_plan", "false"),
                entry(12, "morning_start_time", "8:30:00"),
                entry(13, "morning_stop_time", "noon"),
            ],
            ..ConfigRows::default()
        };
        let (snapshot, problems) = Snapshot::build(1, rows);
        assert!(!snapshot.base.use_time_plan);
        assert_eq!(
            snapshot.base.morning.0,
            NaiveTime::from_hms_opt(8, 30, 0).unwrap()
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].id, 13);
    }
}
