-- rswitch schema, SQLite dialect. The PostgreSQL twin is migrations/postgres/0001_schema.sql:
-- the same tables, columns and rules; only the dialect differs. Never edit a shipped migration.
--
-- Dialect notes: booleans are declared `boolean` (stored 0/1), timestamps `timestamp` (stored as
-- RFC 3339 text in UTC by the application, so text order is time order).

-- Facts about the database itself (seed marker, schema owner). Not configuration.
create table meta (
    key   text primary key,
    value text not null
);

-- Web/API administrators. Passwords are argon2id PHC strings; the plain text is never stored.
create table admin_user (
    id                   integer primary key autoincrement,
    username             text not null unique check (username <> ''),
    password_hash        text not null check (password_hash like '$argon2%'),
    must_change_password boolean not null default 0,
    created_at           timestamp not null,
    updated_at           timestamp not null,
    last_login_at        timestamp
);

create table extension_group (
    id   integer primary key autoincrement,
    name text not null unique check (name <> '')
);

-- One numbering plan: extensions, IVRs, agent queues, inbound queues and conferences share one
-- number space. Triggers on those five tables keep this table in step, so a collision fails in
-- the database itself whatever path the write took.
create table numbering_plan (
    number     text primary key,
    owner_kind text not null check (owner_kind in ('extension', 'ivr', 'agent_queue', 'inbound_queue', 'conference')),
    owner_id   integer not null,
    unique (owner_kind, owner_id)
);

-- The SIP password is kept in clear: digest authentication needs it (or a per-realm hash), and
-- operators provision phones from `rswitch extensions list`.
create table extension (
    id                  integer primary key autoincrement,
    name                text not null default '',
    number              text not null unique check (number <> '' and number not glob '*[^0-9]*'),
    extension_type      text not null default 'direct' check (extension_type in ('direct')),
    password            text not null check (password <> ''),
    group_id            integer references extension_group (id) on delete restrict,
    allow_outbound      boolean not null default 0,
    answer_when_offline boolean not null default 0,
    play_job_number     boolean not null default 0,
    job_number          text not null default '' check (job_number not glob '*[^0-9]*'),
    created_at          timestamp not null,
    updated_at          timestamp not null
);
create index extension_group_id on extension (group_id);

-- Key/value base configuration (spec 2.4). Keys are fixed by the application; values are text.
create table base_config (
    id          integer primary key autoincrement,
    key         text not null unique,
    value       text not null,
    description text not null default ''
);

create table ring_tone (
    id          integer primary key autoincrement,
    name        text not null unique check (name <> ''),
    description text not null default '',
    -- relative to base_config ring_path; empty until a file is uploaded
    file_path   text not null default ''
);

create table gateway (
    id                integer primary key autoincrement,
    name              text not null unique check (name <> ''),
    url               text not null unique check (url <> ''),
    dial_prefix       text not null default '',
    caller_number     text not null default '',
    max_calls         integer not null default 0 check (max_calls >= 0), -- 0 = unlimited
    callback_enabled  boolean not null default 0,
    username          text not null default '',
    realm             text not null check (realm <> ''),
    from_user         text not null default '',
    from_domain       text not null default '',
    password          text not null default '',
    extension         text not null default '',
    proxy             text not null default '',
    expire_seconds    integer check (expire_seconds > 0),   -- null = engine default
    register          boolean not null default 0,
    register_transport text not null default 'udp' check (register_transport in ('udp', 'tcp', 'tls')),
    retry_seconds     integer check (retry_seconds > 0),    -- null = engine default
    caller_id_in_from boolean not null default 0,
    contact_params    text not null default '',
    ping              integer check (ping >= 0),            -- OPTIONS interval, s; null/0 = off
    register_proxy    text not null default ''
);

create table gateway_group (
    id   integer primary key autoincrement,
    name text not null unique check (name <> '')
);

create table gateway_group_member (
    id         integer primary key autoincrement,
    group_id   integer not null references gateway_group (id) on delete cascade,
    gateway_id integer not null references gateway (id) on delete cascade,
    sequence   integer not null default 0,
    unique (group_id, gateway_id)
);
create index gateway_group_member_gateway on gateway_group_member (gateway_id);

-- Provinces and cities for the area strategy. A detail with area_enabled and an empty region
-- set means "all areas".
create table region (
    id        integer primary key autoincrement,
    code      text not null unique check (code <> ''),
    name      text not null,
    parent_id integer references region (id) on delete cascade,
    level     text not null check (level in ('province', 'city'))
);

create table route (
    id               integer primary key autoincrement,
    name             text not null default '',
    condition_field  text not null default 'destination_number' check (condition_field in ('destination_number')),
    -- stored as typed, even if it does not compile: Apply reports it (spec 3.3)
    pattern          text not null,
    sequence         integer not null default 0,
    enabled          boolean not null default 0,
    continue_on_fail boolean not null default 0,
    time_condition   text not null default 'always' check (time_condition in ('always', 'working_hours', 'non_working_hours'))
);

-- References between configured objects are `restrict`: deleting a ring tone or gateway that a
-- detail uses fails and names the user instead of silently changing call routing.
create table route_detail (
    id               integer primary key autoincrement,
    route_id         integer not null references route (id) on delete cascade,
    name             text not null default '',
    action           text not null check (action in ('set', 'answer', 'dtmf', 'bridge', 'playring', 'sleep', 'submenu', 'hangup', 'agent_login', 'agent_logout', 'conference', 'record', 'voicemail', 'jobnum', 'fax', 'group', 'fifo', 'agent_idle', 'agent_busy', 'agent_ready')),
    data             text not null default '',
    ring_id          integer references ring_tone (id) on delete restrict,
    sequence         integer not null default 0,
    is_external      boolean not null default 0,
    gateway_group_id integer references gateway_group (id) on delete restrict,
    gateway_id       integer references gateway (id) on delete restrict,
    area_enabled     boolean not null default 0
);
create index route_detail_route on route_detail (route_id);

create table route_detail_region (
    id        integer primary key autoincrement,
    detail_id integer not null references route_detail (id) on delete cascade,
    region_id integer not null references region (id) on delete cascade,
    unique (detail_id, region_id)
);

create table ivr (
    id            integer primary key autoincrement,
    name          text not null default '',
    number        text not null unique check (number <> '' and number not glob '*[^0-9]*'),
    confirm_key   text not null default '#' check (length(confirm_key) <= 1),
    max_timeout   integer not null default 60 check (max_timeout > 0),
    digit_timeout integer not null default 10 check (digit_timeout > 0),
    max_attempts  integer not null default 3 check (max_attempts > 0),
    key_length    integer not null default 1 check (key_length > 0),
    enabled       boolean not null default 1,
    -- prompts are ring tone names (spec 2.9); empty = none
    greeting      text not null default '',
    short_tone    text not null default '',
    invalid_tone  text not null default '',
    parent_id     integer not null default 0, -- obsolete in FSGui, kept for import fidelity
    sort_order    integer not null default 0
);

create table ivr_detail (
    id               integer primary key autoincrement,
    ivr_id           integer not null references ivr (id) on delete cascade,
    "key"            text not null default '',
    action           text not null check (action in ('set', 'answer', 'dtmf', 'bridge', 'playring', 'sleep', 'submenu', 'hangup', 'agent_login', 'agent_logout', 'conference', 'record', 'voicemail', 'jobnum', 'fax', 'group', 'fifo', 'agent_idle', 'agent_busy', 'agent_ready')),
    data             text not null default '',
    ring_id          integer references ring_tone (id) on delete restrict,
    sequence         integer not null default 0,
    is_external      boolean not null default 0,
    gateway_group_id integer references gateway_group (id) on delete restrict,
    gateway_id       integer references gateway (id) on delete restrict,
    area_enabled     boolean not null default 0
);
create index ivr_detail_ivr on ivr_detail (ivr_id);

create table ivr_detail_region (
    id        integer primary key autoincrement,
    detail_id integer not null references ivr_detail (id) on delete cascade,
    region_id integer not null references region (id) on delete cascade,
    unique (detail_id, region_id)
);

create table agent_queue (
    id       integer primary key autoincrement,
    name     text not null default '',
    number   text not null unique check (number <> '' and number not glob '*[^0-9]*'),
    strategy text not null default 'sequential' check (strategy in ('sequential', 'random', 'round_robin', 'memory', 'ring_all')),
    cursor   integer not null default 0 -- round-robin position, maintained by the engine
);

-- A member with a gateway is external (dialled through it); without one it is an extension.
create table agent_queue_member (
    id         integer primary key autoincrement,
    queue_id   integer not null references agent_queue (id) on delete cascade,
    sequence   integer not null default 0,
    number     text not null check (number <> ''),
    gateway_id integer references gateway (id) on delete restrict,
    unique (queue_id, number)
);

create table inbound_queue (
    id                 integer primary key autoincrement,
    name               text not null default '',
    number             text not null unique check (number <> '' and number not glob '*[^0-9]*'),
    max_wait           integer not null default 360 check (max_wait > 0),
    key_wait           integer not null default 10 check (key_wait > 0),
    allow_key_continue boolean not null default 1,
    continue_key       text not null default '1' check (length(continue_key) = 1),
    prompt_ring_id     integer references ring_tone (id) on delete restrict,
    moh_ring_id        integer references ring_tone (id) on delete restrict,
    priority           integer not null default 0
);

create table inbound_queue_link (
    id               integer primary key autoincrement,
    inbound_queue_id integer not null references inbound_queue (id) on delete cascade,
    agent_queue_id   integer not null references agent_queue (id) on delete restrict,
    sequence         integer not null default 0,
    unique (inbound_queue_id, agent_queue_id)
);

create table conference (
    id                 integer primary key autoincrement,
    name               text not null default '',
    number             text not null unique check (number <> '' and number not glob '*[^0-9]*'),
    pin                text not null default '' check (pin not glob '*[^0-9]*'),
    start_time         timestamp,
    valid_until        timestamp,
    enabled            boolean not null default 0,
    first_is_moderator boolean not null default 0
);

create table conference_member (
    id            integer primary key autoincrement,
    conference_id integer not null references conference (id) on delete cascade,
    name          text not null default '',
    number        text not null check (number <> ''),
    is_internal   boolean not null default 0,
    gateway_id    integer references gateway (id) on delete restrict,
    max_retries   integer not null default 3 check (max_retries >= 0),
    is_moderator  boolean not null default 0,
    call_count    integer not null default 0
);

create table blacklist (
    id         integer primary key autoincrement,
    number     text not null check (number <> ''),
    match_kind text not null default 'exact' check (match_kind in ('exact', 'prefix')),
    direction  text not null default 'both' check (direction in ('inbound', 'outbound', 'both')),
    enabled    boolean not null default 1,
    expires_at timestamp, -- null = never
    note       text not null default '',
    created_at timestamp not null,
    unique (number, match_kind, direction)
);

-- Call detail records: one per call, append-only (triggers below). Columns 2-16 are FSGui's
-- CDR list (spec 2.19); the rest are what integrations need to correlate and bill.
create table cdr (
    id                 integer primary key autoincrement,
    uuid               text not null unique,
    bleg_uuid          text not null default '',
    sip_call_id        text not null default '',
    direction          text not null check (direction in ('inbound', 'outbound', 'internal')),
    local_ip           text not null default '',
    caller_id_name     text not null default '',
    caller_id_number   text not null default '',
    destination_number text not null default '',
    context            text not null default '',
    start_stamp        timestamp not null,
    answer_stamp       timestamp,
    end_stamp          timestamp not null,
    duration           integer not null check (duration >= 0),
    billsec            integer not null check (billsec >= 0),
    hangup_cause       text not null,
    sip_code           integer,
    accountcode        text not null default '',
    read_codec         text not null default '',
    write_codec        text not null default '',
    gateway            text not null default '',
    recording_path     text not null default ''
);
create index cdr_start_stamp on cdr (start_stamp);
create index cdr_caller on cdr (caller_id_number);
create index cdr_destination on cdr (destination_number);

create trigger cdr_refuse_update before update on cdr
begin
    select raise(abort, 'cdr is append-only: UPDATE refused');
end;
create trigger cdr_refuse_delete before delete on cdr
begin
    select raise(abort, 'cdr is append-only: DELETE refused');
end;

-- SIP registrations (bindings), persisted so they survive a restart.
create table registration (
    id          integer primary key autoincrement,
    aor         text not null,  -- extension number
    contact     text not null,  -- Contact URI as registered
    source      text not null,  -- ip:port the REGISTER came from (reach phones behind NAT)
    transport   text not null check (transport in ('udp', 'tcp', 'tls', 'ws', 'wss')),
    expires_at  timestamp not null,
    call_id     text not null default '',
    cseq        integer not null default 0,
    q_value     integer not null default 1000 check (q_value between 0 and 1000), -- q x 1000
    path        text not null default '',
    instance_id text not null default '',
    reg_id      integer,
    user_agent  text not null default '',
    updated_at  timestamp not null,
    unique (aor, contact)
);
create index registration_expires on registration (expires_at);

create table recording (
    id          integer primary key autoincrement,
    call_uuid   text not null default '',
    path        text not null unique,
    kind        text not null check (kind in ('call', 'api', 'conference')),
    extension   text not null default '',
    started_at  timestamp not null,
    duration_ms integer not null default 0 check (duration_ms >= 0),
    size_bytes  integer not null default 0 check (size_bytes >= 0)
);
create index recording_call on recording (call_uuid);

create table voicemail_message (
    id               integer primary key autoincrement,
    mailbox          text not null, -- extension number
    caller_id_number text not null default '',
    caller_id_name   text not null default '',
    call_uuid        text not null default '',
    path             text not null unique,
    duration         integer not null default 0 check (duration >= 0),
    created_at       timestamp not null,
    heard_at         timestamp
);
create index voicemail_mailbox on voicemail_message (mailbox);

-- Who changed what, when. Append-only like the CDRs.
create table audit_log (
    id        integer primary key autoincrement,
    at        timestamp not null,
    actor     text not null,
    action    text not null,
    entity    text not null,
    entity_id integer,
    detail    text not null default ''
);
create trigger audit_log_refuse_update before update on audit_log
begin
    select raise(abort, 'audit_log is append-only: UPDATE refused');
end;
create trigger audit_log_refuse_delete before delete on audit_log
begin
    select raise(abort, 'audit_log is append-only: DELETE refused');
end;

-- Numbering-plan triggers: one set per numbered table.
create trigger extension_number_insert after insert on extension
begin
    insert into numbering_plan (number, owner_kind, owner_id) values (new.number, 'extension', new.id);
end;
create trigger extension_number_update after update of number on extension when new.number <> old.number
begin
    update numbering_plan set number = new.number where owner_kind = 'extension' and owner_id = old.id;
end;
create trigger extension_number_delete after delete on extension
begin
    delete from numbering_plan where owner_kind = 'extension' and owner_id = old.id;
end;
create trigger ivr_number_insert after insert on ivr
begin
    insert into numbering_plan (number, owner_kind, owner_id) values (new.number, 'ivr', new.id);
end;
create trigger ivr_number_update after update of number on ivr when new.number <> old.number
begin
    update numbering_plan set number = new.number where owner_kind = 'ivr' and owner_id = old.id;
end;
create trigger ivr_number_delete after delete on ivr
begin
    delete from numbering_plan where owner_kind = 'ivr' and owner_id = old.id;
end;
create trigger agent_queue_number_insert after insert on agent_queue
begin
    insert into numbering_plan (number, owner_kind, owner_id) values (new.number, 'agent_queue', new.id);
end;
create trigger agent_queue_number_update after update of number on agent_queue when new.number <> old.number
begin
    update numbering_plan set number = new.number where owner_kind = 'agent_queue' and owner_id = old.id;
end;
create trigger agent_queue_number_delete after delete on agent_queue
begin
    delete from numbering_plan where owner_kind = 'agent_queue' and owner_id = old.id;
end;
create trigger inbound_queue_number_insert after insert on inbound_queue
begin
    insert into numbering_plan (number, owner_kind, owner_id) values (new.number, 'inbound_queue', new.id);
end;
create trigger inbound_queue_number_update after update of number on inbound_queue when new.number <> old.number
begin
    update numbering_plan set number = new.number where owner_kind = 'inbound_queue' and owner_id = old.id;
end;
create trigger inbound_queue_number_delete after delete on inbound_queue
begin
    delete from numbering_plan where owner_kind = 'inbound_queue' and owner_id = old.id;
end;
create trigger conference_number_insert after insert on conference
begin
    insert into numbering_plan (number, owner_kind, owner_id) values (new.number, 'conference', new.id);
end;
create trigger conference_number_update after update of number on conference when new.number <> old.number
begin
    update numbering_plan set number = new.number where owner_kind = 'conference' and owner_id = old.id;
end;
create trigger conference_number_delete after delete on conference
begin
    delete from numbering_plan where owner_kind = 'conference' and owner_id = old.id;
end;
