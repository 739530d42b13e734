//! The data model (spec §2): one struct per table, each field one column.
//!
//! Every entity has an integer `id` (0 before it is inserted). The `entity!` macro generates
//! the struct and its [`Entity`] description — table name, column list, how to read a row and
//! what to bind — so the generic store code in `mod.rs` can create, read, update, delete and
//! list any table on both backends. What this module does not do: validate cross-table rules
//! (the database does that with foreign keys, the numbering plan and triggers) or decide
//! whether a configuration makes sense (the snapshot builder does that).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::value::{ColumnKind, Field, Value};
use crate::secret::Secret;
use crate::text_enum;

/// A table of the data model.
pub trait Entity: Sized + Send + Sync + Unpin + 'static {
    /// The table name.
    const TABLE: &'static str;
    /// The columns other than `id`, in the order of [`Entity::values`].
    const COLUMNS: &'static [&'static str];
    /// The kind of each of [`Entity::COLUMNS`], in the same order.
    const KINDS: &'static [ColumnKind];
    /// Whether the table takes part in the numbering plan (its `number` column).
    const NUMBERED: Option<OwnerKind> = None;
    /// Whether rows can never change once written (enforced by the database).
    const APPEND_ONLY: bool = false;

    fn id(&self) -> i64;
    fn set_id(&mut self, id: i64);
    /// The column values, in [`Entity::COLUMNS`] order.
    fn values(&self) -> Vec<Value>;
    /// # Errors
    /// A column is missing or does not decode.
    fn from_sqlite(row: &SqliteRow) -> Result<Self, sqlx::Error>;
    /// # Errors
    /// A column is missing or does not decode.
    fn from_pg(row: &PgRow) -> Result<Self, sqlx::Error>;
}

macro_rules! entity {
    (
        $(#[$meta:meta])*
        $name:ident in $table:literal $(numbered as $kind:ident)? $(, $append_only:ident)? {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
        pub struct $name {
            /// Row id; 0 until inserted.
            #[serde(default)]
            pub id: i64,
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Entity for $name {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];
            const KINDS: &'static [ColumnKind] = &[$(<$ty as Field>::KIND),*];
            $(const NUMBERED: Option<OwnerKind> = Some(OwnerKind::$kind);)?
            $(const APPEND_ONLY: bool = entity!(@flag $append_only);)?

            fn id(&self) -> i64 {
                self.id
            }
            fn set_id(&mut self, id: i64) {
                self.id = id;
            }
            fn values(&self) -> Vec<Value> {
                vec![$(Field::to_value(&self.$field)),*]
            }
            fn from_sqlite(row: &SqliteRow) -> Result<Self, sqlx::Error> {
                Ok(Self {
                    id: Field::from_sqlite(row, "id")?,
                    $($field: Field::from_sqlite(row, stringify!($field))?,)*
                })
            }
            fn from_pg(row: &PgRow) -> Result<Self, sqlx::Error> {
                Ok(Self {
                    id: Field::from_pg(row, "id")?,
                    $($field: Field::from_pg(row, stringify!($field))?,)*
                })
            }
        }
    };
    (@flag append_only) => { true };
}

text_enum! {
    /// Which table owns a number of the numbering plan.
    pub enum OwnerKind {
        Extension = "extension",
        Ivr = "ivr",
        AgentQueue = "agent_queue",
        InboundQueue = "inbound_queue",
        Conference = "conference",
    }
}

text_enum! {
    /// Extension type (spec 2.3): FSGui knows only the direct-line extension.
    pub enum ExtensionType {
        Direct = "direct",
    }
}

text_enum! {
    /// The field a route's regex is tested against (spec 2.5): only the destination number.
    pub enum ConditionField {
        DestinationNumber = "destination_number",
    }
}

text_enum! {
    /// When a route takes part in matching, if the time plan is on (spec 3.16).
    pub enum TimeCondition {
        Always = "always",
        WorkingHours = "working_hours",
        NonWorkingHours = "non_working_hours",
    }
}

text_enum! {
    /// The action of a route or IVR detail (spec 2.7), in the drop-down order of FSGui.
    pub enum Action {
        Set = "set",
        Answer = "answer",
        Dtmf = "dtmf",
        Bridge = "bridge",
        Playring = "playring",
        Sleep = "sleep",
        Submenu = "submenu",
        Hangup = "hangup",
        AgentLogin = "agent_login",
        AgentLogout = "agent_logout",
        Conference = "conference",
        Record = "record",
        Voicemail = "voicemail",
        Jobnum = "jobnum",
        Fax = "fax",
        /// Deprecated in FSGui: group calling was replaced by agent queues.
        Group = "group",
        Fifo = "fifo",
        AgentIdle = "agent_idle",
        AgentBusy = "agent_busy",
        AgentReady = "agent_ready",
    }
}

text_enum! {
    /// Distribution strategy of an agent queue (spec 2.11).
    pub enum QueueStrategy {
        Sequential = "sequential",
        Random = "random",
        RoundRobin = "round_robin",
        Memory = "memory",
        RingAll = "ring_all",
    }
}

text_enum! {
    /// Transport a gateway registers and signals over.
    pub enum GatewayTransport {
        Udp = "udp",
        Tcp = "tcp",
        Tls = "tls",
    }
}

text_enum! {
    /// Level of a region in the area-strategy tree.
    pub enum RegionLevel {
        Province = "province",
        City = "city",
    }
}

text_enum! {
    /// How a blacklist number matches.
    pub enum MatchKind {
        Exact = "exact",
        Prefix = "prefix",
    }
}

text_enum! {
    /// Which calls a blacklist entry applies to.
    pub enum BlacklistDirection {
        Inbound = "inbound",
        Outbound = "outbound",
        Both = "both",
    }
}

text_enum! {
    /// Direction of a call as seen by the PBX.
    pub enum CallDirection {
        /// From a gateway (trunk) to the PBX.
        Inbound = "inbound",
        /// From the PBX out through a gateway.
        Outbound = "outbound",
        /// Between extensions.
        Internal = "internal",
    }
}

text_enum! {
    /// SIP transport of a registration binding.
    pub enum SipTransport {
        Udp = "udp",
        Tcp = "tcp",
        Tls = "tls",
        Ws = "ws",
        Wss = "wss",
    }
}

text_enum! {
    /// What made a recording.
    pub enum RecordingKind {
        Call = "call",
        Api = "api",
        Conference = "conference",
    }
}

entity! {
    /// A web/API administrator (spec 2.1). Only the argon2id hash of the password is stored.
    AdminUser in "admin_user" {
        username: String,
        password_hash: Secret,
        must_change_password: bool,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
        last_login_at: Option<DateTime<Utc>>,
    }
}

entity! {
    /// An extension group (spec 2.2): an organisational label today.
    ExtensionGroup in "extension_group" {
        name: String,
    }
}

entity! {
    /// An extension (spec 2.3): a SIP account phones register with (user = number).
    Extension in "extension" numbered as Extension {
        #[serde(default)]
        name: String,
        number: String,
        #[serde(default)]
        extension_type: ExtensionType,
        password: Secret,
        #[serde(default)]
        group_id: Option<i64>,
        #[serde(default)]
        allow_outbound: bool,
        #[serde(default)]
        answer_when_offline: bool,
        #[serde(default)]
        play_job_number: bool,
        #[serde(default)]
        job_number: String,
        #[serde(default = "epoch")]
        created_at: DateTime<Utc>,
        #[serde(default = "epoch")]
        updated_at: DateTime<Utc>,
    }
}

entity! {
    /// One key of the base configuration (spec 2.4).
    BaseConfigEntry in "base_config" {
        key: String,
        value: String,
        #[serde(default)]
        description: String,
    }
}

entity! {
    /// A ring tone (spec 2.20): a WAV file under `ring_path`, referenced by name or id.
    RingTone in "ring_tone" {
        name: String,
        #[serde(default)]
        description: String,
        file_path: String,
    }
}

entity! {
    /// A gateway / trunk / IMS interconnection (spec 2.17, all 21 fields).
    Gateway in "gateway" {
        name: String,
        url: String,
        #[serde(default)]
        dial_prefix: String,
        #[serde(default)]
        caller_number: String,
        #[serde(default)]
        max_calls: i64,
        #[serde(default)]
        callback_enabled: bool,
        #[serde(default)]
        username: String,
        realm: String,
        #[serde(default)]
        from_user: String,
        #[serde(default)]
        from_domain: String,
        #[serde(default)]
        password: Secret,
        #[serde(default)]
        extension: String,
        #[serde(default)]
        proxy: String,
        #[serde(default)]
        expire_seconds: Option<i64>,
        #[serde(default)]
        register: bool,
        #[serde(default)]
        register_transport: GatewayTransport,
        #[serde(default)]
        retry_seconds: Option<i64>,
        #[serde(default)]
        caller_id_in_from: bool,
        #[serde(default)]
        contact_params: String,
        #[serde(default)]
        ping: Option<i64>,
        #[serde(default)]
        register_proxy: String,
    }
}

entity! {
    /// A gateway group (spec 2.15).
    GatewayGroup in "gateway_group" {
        name: String,
    }
}

entity! {
    /// A gateway's membership of a group, in trial order (spec 2.16).
    GatewayGroupMember in "gateway_group_member" {
        group_id: i64,
        gateway_id: i64,
        #[serde(default)]
        sequence: i64,
    }
}

entity! {
    /// A province or city of the area strategy (spec 2.8).
    Region in "region" {
        code: String,
        name: String,
        #[serde(default)]
        parent_id: Option<i64>,
        level: RegionLevel,
    }
}

entity! {
    /// A route of the dial plan (spec 2.5).
    Route in "route" {
        #[serde(default)]
        name: String,
        #[serde(default)]
        condition_field: ConditionField,
        pattern: String,
        #[serde(default)]
        sequence: i64,
        #[serde(default)]
        enabled: bool,
        #[serde(default)]
        continue_on_fail: bool,
        #[serde(default)]
        time_condition: TimeCondition,
    }
}

entity! {
    /// One action of a route (spec 2.6).
    RouteDetail in "route_detail" {
        route_id: i64,
        #[serde(default)]
        name: String,
        action: Action,
        #[serde(default)]
        data: String,
        #[serde(default)]
        ring_id: Option<i64>,
        #[serde(default)]
        sequence: i64,
        #[serde(default)]
        is_external: bool,
        #[serde(default)]
        gateway_group_id: Option<i64>,
        #[serde(default)]
        gateway_id: Option<i64>,
        #[serde(default)]
        area_enabled: bool,
    }
}

entity! {
    /// A region selected for a route detail's area strategy.
    RouteDetailRegion in "route_detail_region" {
        detail_id: i64,
        region_id: i64,
    }
}

entity! {
    /// An IVR menu (spec 2.9). Prompts are ring-tone names; empty means none.
    Ivr in "ivr" numbered as Ivr {
        #[serde(default)]
        name: String,
        number: String,
        #[serde(default = "hash_key")]
        confirm_key: String,
        #[serde(default = "sixty")]
        max_timeout: i64,
        #[serde(default = "ten")]
        digit_timeout: i64,
        #[serde(default = "three")]
        max_attempts: i64,
        #[serde(default = "one")]
        key_length: i64,
        #[serde(default = "yes")]
        enabled: bool,
        #[serde(default)]
        greeting: String,
        #[serde(default)]
        short_tone: String,
        #[serde(default)]
        invalid_tone: String,
        #[serde(default)]
        parent_id: i64,
        #[serde(default)]
        sort_order: i64,
    }
}

entity! {
    /// One action of an IVR menu, run when the caller enters `key` (spec 2.10).
    IvrDetail in "ivr_detail" {
        ivr_id: i64,
        #[serde(default)]
        key: String,
        action: Action,
        #[serde(default)]
        data: String,
        #[serde(default)]
        ring_id: Option<i64>,
        #[serde(default)]
        sequence: i64,
        #[serde(default)]
        is_external: bool,
        #[serde(default)]
        gateway_group_id: Option<i64>,
        #[serde(default)]
        gateway_id: Option<i64>,
        #[serde(default)]
        area_enabled: bool,
    }
}

entity! {
    /// A region selected for an IVR detail's area strategy.
    IvrDetailRegion in "ivr_detail_region" {
        detail_id: i64,
        region_id: i64,
    }
}

entity! {
    /// An agent queue / FIFO (spec 2.11).
    AgentQueue in "agent_queue" numbered as AgentQueue {
        #[serde(default)]
        name: String,
        number: String,
        #[serde(default)]
        strategy: QueueStrategy,
        #[serde(default)]
        cursor: i64,
    }
}

entity! {
    /// A member of an agent queue (spec 2.12): an extension, or an external number when a
    /// gateway is set.
    AgentQueueMember in "agent_queue_member" {
        queue_id: i64,
        #[serde(default)]
        sequence: i64,
        number: String,
        #[serde(default)]
        gateway_id: Option<i64>,
    }
}

entity! {
    /// An inbound queue (spec 2.13).
    InboundQueue in "inbound_queue" numbered as InboundQueue {
        #[serde(default)]
        name: String,
        number: String,
        #[serde(default = "max_wait")]
        max_wait: i64,
        #[serde(default = "ten")]
        key_wait: i64,
        #[serde(default = "yes")]
        allow_key_continue: bool,
        #[serde(default = "one_key")]
        continue_key: String,
        #[serde(default)]
        prompt_ring_id: Option<i64>,
        #[serde(default)]
        moh_ring_id: Option<i64>,
        #[serde(default)]
        priority: i64,
    }
}

entity! {
    /// An agent queue serving an inbound queue, in trial order (spec 2.14).
    InboundQueueLink in "inbound_queue_link" {
        inbound_queue_id: i64,
        agent_queue_id: i64,
        #[serde(default)]
        sequence: i64,
    }
}

entity! {
    /// A conference room (spec 2.21).
    Conference in "conference" numbered as Conference {
        #[serde(default)]
        name: String,
        number: String,
        #[serde(default)]
        pin: String,
        #[serde(default)]
        start_time: Option<DateTime<Utc>>,
        #[serde(default)]
        valid_until: Option<DateTime<Utc>>,
        #[serde(default)]
        enabled: bool,
        #[serde(default)]
        first_is_moderator: bool,
    }
}

entity! {
    /// A member a conference dials out to (spec 2.22).
    ConferenceMember in "conference_member" {
        conference_id: i64,
        #[serde(default)]
        name: String,
        number: String,
        #[serde(default)]
        is_internal: bool,
        #[serde(default)]
        gateway_id: Option<i64>,
        #[serde(default = "three")]
        max_retries: i64,
        #[serde(default)]
        is_moderator: bool,
        #[serde(default)]
        call_count: i64,
    }
}

entity! {
    /// A blacklisted number or prefix (spec 2.23).
    BlacklistEntry in "blacklist" {
        number: String,
        #[serde(default)]
        match_kind: MatchKind,
        #[serde(default = "both_directions")]
        direction: BlacklistDirection,
        #[serde(default = "yes")]
        enabled: bool,
        #[serde(default)]
        expires_at: Option<DateTime<Utc>>,
        #[serde(default)]
        note: String,
        #[serde(default = "epoch")]
        created_at: DateTime<Utc>,
    }
}

entity! {
    /// A call detail record (spec 2.19 and the correlation columns). Append-only.
    Cdr in "cdr", append_only {
        uuid: String,
        bleg_uuid: String,
        sip_call_id: String,
        direction: CallDirection,
        local_ip: String,
        caller_id_name: String,
        caller_id_number: String,
        destination_number: String,
        context: String,
        start_stamp: DateTime<Utc>,
        answer_stamp: Option<DateTime<Utc>>,
        end_stamp: DateTime<Utc>,
        duration: i64,
        billsec: i64,
        hangup_cause: String,
        sip_code: Option<i64>,
        accountcode: String,
        read_codec: String,
        write_codec: String,
        gateway: String,
        recording_path: String,
    }
}

entity! {
    /// A registration binding: one contact of an extension's address of record.
    Registration in "registration" {
        aor: String,
        contact: String,
        source: String,
        transport: SipTransport,
        expires_at: DateTime<Utc>,
        call_id: String,
        cseq: i64,
        q_value: i64,
        path: String,
        instance_id: String,
        reg_id: Option<i64>,
        user_agent: String,
        updated_at: DateTime<Utc>,
    }
}

entity! {
    /// A recording file and what made it.
    Recording in "recording" {
        call_uuid: String,
        path: String,
        kind: RecordingKind,
        extension: String,
        started_at: DateTime<Utc>,
        duration_ms: i64,
        size_bytes: i64,
    }
}

entity! {
    /// A voicemail message left in an extension's mailbox.
    VoicemailMessage in "voicemail_message" {
        mailbox: String,
        caller_id_number: String,
        caller_id_name: String,
        call_uuid: String,
        path: String,
        duration: i64,
        created_at: DateTime<Utc>,
        heard_at: Option<DateTime<Utc>>,
    }
}

entity! {
    /// One administrative change: who, when, what. Append-only.
    AuditEntry in "audit_log", append_only {
        at: DateTime<Utc>,
        actor: String,
        action: String,
        entity: String,
        entity_id: Option<i64>,
        detail: String,
    }
}

// Defaults of fields an API client may leave out: the database's own defaults.
fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}
fn yes() -> bool {
    true
}
fn one() -> i64 {
    1
}
fn three() -> i64 {
    3
}
fn ten() -> i64 {
    10
}
fn sixty() -> i64 {
    60
}
fn max_wait() -> i64 {
    360
}
fn hash_key() -> String {
    "#".to_owned()
}
fn one_key() -> String {
    "1".to_owned()
}
fn both_directions() -> BlacklistDirection {
    BlacklistDirection::Both
}

/// Numbered entities expose their number for numbering-plan checks.
pub trait Numbered: Entity {
    fn number(&self) -> &str;
}

macro_rules! numbered {
    ($($ty:ty),*) => {
        $(impl Numbered for $ty {
            fn number(&self) -> &str {
                &self.number
            }
        })*
    };
}
numbered!(Extension, Ivr, AgentQueue, InboundQueue, Conference);
