//! The data model on both backends: migrations, create/read/update/delete of every table,
//! the numbering plan, and the append-only tables.

mod common;

use std::fmt::Debug;

use chrono::{Duration, TimeZone, Utc};
use common::{Backend, TestDb};
use rswitch::secret::Secret;
use rswitch::store::value::Value;
use rswitch::store::*;

fn t(secs: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 123_456_000)
        .unwrap()
}

/// Insert, read back, update, read back, list, delete, and check it is gone.
async fn crud<E: Entity + PartialEq + Debug + Clone>(
    store: &Store,
    sample: E,
    change: impl Fn(&mut E),
) -> i64 {
    let id = store
        .insert(&sample)
        .await
        .unwrap_or_else(|e| panic!("insert into {}: {e}", E::TABLE));
    let mut expected = sample.clone();
    expected.set_id(id);
    let read = store
        .get::<E>(id)
        .await
        .unwrap()
        .expect("inserted row reads back");
    assert_eq!(read, expected, "{} reads back as written", E::TABLE);

    change(&mut expected);
    store
        .update(&expected)
        .await
        .unwrap_or_else(|e| panic!("update {}: {e}", E::TABLE));
    let read = store.get::<E>(id).await.unwrap().unwrap();
    assert_eq!(read, expected, "{} reads back as updated", E::TABLE);
    assert!(store.all::<E>().await.unwrap().contains(&expected));
    id
}

async fn delete_and_check_gone<E: Entity>(store: &Store, id: i64) {
    store
        .delete::<E>(id)
        .await
        .unwrap_or_else(|e| panic!("delete from {}: {e}", E::TABLE));
    assert!(
        store.get::<E>(id).await.unwrap().is_none(),
        "{} {id} is gone",
        E::TABLE
    );
    assert!(matches!(
        store.delete::<E>(id).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn every_table_supports_create_read_update_delete(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = &db.store;

    let group = crud(
        s,
        ExtensionGroup {
            id: 0,
            name: "技术部".into(),
        },
        |g| g.name = "Finance".into(),
    )
    .await;
    let extension = crud(
        s,
        Extension {
            id: 0,
            name: "Zhang San".into(),
            number: "10000".into(),
            extension_type: ExtensionType::Direct,
            password: Secret::new("s3cret-password"),
            group_id: Some(group),
            allow_outbound: true,
            answer_when_offline: false,
            play_job_number: true,
            job_number: "10000".into(),
            created_at: t(0),
            updated_at: t(0),
        },
        |e| {
            e.number = "10001".into();
            e.allow_outbound = false;
            e.group_id = None;
            e.updated_at = t(60);
        },
    )
    .await;
    let base = crud(
        s,
        BaseConfigEntry {
            id: 0,
            key: "custom_key".into(),
            value: "1".into(),
            description: "d".into(),
        },
        |b| b.value = "2".into(),
    )
    .await;
    let ring = crud(
        s,
        RingTone {
            id: 0,
            name: "welcome".into(),
            description: "greeting".into(),
            file_path: "welcome.wav".into(),
        },
        |r| r.description = "彩铃".into(),
    )
    .await;
    let gateway = crud(
        s,
        Gateway {
            id: 0,
            name: "nway".into(),
            url: "nway1".into(),
            dial_prefix: "0".into(),
            caller_number: "88880000".into(),
            max_calls: 30,
            callback_enabled: true,
            username: "user".into(),
            realm: "192.0.2.10:5060".into(),
            from_user: "fu".into(),
            from_domain: "example.com".into(),
            password: Secret::new("gw-secret"),
            extension: "2300".into(),
            proxy: "192.0.2.11".into(),
            expire_seconds: Some(600),
            register: true,
            register_transport: GatewayTransport::Tcp,
            retry_seconds: Some(30),
            caller_id_in_from: true,
            contact_params: "tport=tcp".into(),
            ping: Some(25),
            register_proxy: "192.0.2.12".into(),
        },
        |g| {
            g.max_calls = 0;
            g.expire_seconds = None;
            g.register_transport = GatewayTransport::Tls;
        },
    )
    .await;
    let gateway_group = crud(
        s,
        GatewayGroup {
            id: 0,
            name: "落地1".into(),
        },
        |g| g.name = "Breakout 1".into(),
    )
    .await;
    let gateway_group_member = crud(
        s,
        GatewayGroupMember {
            id: 0,
            group_id: gateway_group,
            gateway_id: gateway,
            sequence: 0,
        },
        |m| m.sequence = 5,
    )
    .await;
    let province = crud(
        s,
        Region {
            id: 0,
            code: "T14".into(),
            name: "山西省".into(),
            parent_id: None,
            level: RegionLevel::Province,
        },
        |r| r.name = "Shanxi".into(),
    )
    .await;
    let city = crud(
        s,
        Region {
            id: 0,
            code: "T1401".into(),
            name: "太原".into(),
            parent_id: Some(province),
            level: RegionLevel::City,
        },
        |r| r.name = "Taiyuan".into(),
    )
    .await;
    let route = crud(
        s,
        Route {
            id: 0,
            name: "内线互转".into(),
            condition_field: ConditionField::DestinationNumber,
            pattern: r"^1[0-6]\d\d$".into(),
            sequence: 1,
            enabled: true,
            continue_on_fail: false,
            time_condition: TimeCondition::Always,
        },
        |r| {
            r.continue_on_fail = true;
            r.time_condition = TimeCondition::WorkingHours;
        },
    )
    .await;
    let route_detail = crud(
        s,
        RouteDetail {
            id: 0,
            route_id: route,
            name: "Transfer".into(),
            action: Action::Bridge,
            data: "$0".into(),
            ring_id: None,
            sequence: 0,
            is_external: true,
            gateway_group_id: Some(gateway_group),
            gateway_id: Some(gateway),
            area_enabled: true,
        },
        |d| {
            d.action = Action::Playring;
            d.ring_id = Some(ring);
        },
    )
    .await;
    let route_detail_region = crud(
        s,
        RouteDetailRegion {
            id: 0,
            detail_id: route_detail,
            region_id: province,
        },
        |r| r.region_id = city,
    )
    .await;
    let ivr = crud(
        s,
        Ivr {
            id: 0,
            name: "IVR2300".into(),
            number: "2300".into(),
            confirm_key: "#".into(),
            max_timeout: 60,
            digit_timeout: 30,
            max_attempts: 3,
            key_length: 1,
            enabled: true,
            greeting: "welcome".into(),
            short_tone: "welcome".into(),
            invalid_tone: String::new(),
            parent_id: 0,
            sort_order: 1,
        },
        |i| i.key_length = 4,
    )
    .await;
    let ivr_detail = crud(
        s,
        IvrDetail {
            id: 0,
            ivr_id: ivr,
            key: "1".into(),
            action: Action::Bridge,
            data: "***".into(),
            ring_id: Some(ring),
            sequence: 0,
            is_external: false,
            gateway_group_id: None,
            gateway_id: Some(gateway),
            area_enabled: false,
        },
        |d| d.key = "2".into(),
    )
    .await;
    let ivr_detail_region = crud(
        s,
        IvrDetailRegion {
            id: 0,
            detail_id: ivr_detail,
            region_id: city,
        },
        |r| r.region_id = province,
    )
    .await;
    let agent_queue = crud(
        s,
        AgentQueue {
            id: 0,
            name: "3300".into(),
            number: "3300".into(),
            strategy: QueueStrategy::RoundRobin,
            cursor: 0,
        },
        |q| {
            q.strategy = QueueStrategy::RingAll;
            q.cursor = 3;
        },
    )
    .await;
    let agent_queue_member = crud(
        s,
        AgentQueueMember {
            id: 0,
            queue_id: agent_queue,
            sequence: 6,
            number: "13800000000".into(),
            gateway_id: Some(gateway),
        },
        |m| m.gateway_id = None,
    )
    .await;
    let inbound_queue = crud(
        s,
        InboundQueue {
            id: 0,
            name: "8001".into(),
            number: "8001".into(),
            max_wait: 360,
            key_wait: 10,
            allow_key_continue: true,
            continue_key: "2".into(),
            prompt_ring_id: Some(ring),
            moh_ring_id: Some(ring),
            priority: 0,
        },
        |q| q.priority = 10,
    )
    .await;
    let inbound_queue_link = crud(
        s,
        InboundQueueLink {
            id: 0,
            inbound_queue_id: inbound_queue,
            agent_queue_id: agent_queue,
            sequence: 0,
        },
        |l| l.sequence = 1,
    )
    .await;
    let conference = crud(
        s,
        Conference {
            id: 0,
            name: "weekly".into(),
            number: "3000".into(),
            pin: "1234".into(),
            start_time: Some(t(0)),
            valid_until: Some(t(3600)),
            enabled: true,
            first_is_moderator: true,
        },
        |c| c.valid_until = None,
    )
    .await;
    let conference_member = crud(
        s,
        ConferenceMember {
            id: 0,
            conference_id: conference,
            name: "boss".into(),
            number: "1000".into(),
            is_internal: true,
            gateway_id: None,
            max_retries: 3,
            is_moderator: false,
            call_count: 0,
        },
        |m| m.call_count = 2,
    )
    .await;
    let blacklist = crud(
        s,
        BlacklistEntry {
            id: 0,
            number: "400".into(),
            match_kind: MatchKind::Prefix,
            direction: BlacklistDirection::Inbound,
            enabled: true,
            expires_at: Some(t(86_400)),
            note: "telemarketing".into(),
            created_at: t(0),
        },
        |b| b.direction = BlacklistDirection::Both,
    )
    .await;
    let registration = crud(
        s,
        Registration {
            id: 0,
            aor: "10001".into(),
            contact: "sip:10001@192.0.2.50:5062;transport=tcp".into(),
            source: "192.0.2.50:40000".into(),
            transport: SipTransport::Tcp,
            expires_at: t(3600),
            call_id: "abc@host".into(),
            cseq: 2,
            q_value: 1000,
            path: String::new(),
            instance_id: "<urn:uuid:00000000-0000-0000-0000-000000000001>".into(),
            reg_id: Some(1),
            user_agent: "baresip".into(),
            updated_at: t(0),
        },
        |r| {
            r.cseq = 3;
            r.expires_at = t(7200);
        },
    )
    .await;
    let recording = crud(
        s,
        Recording {
            id: 0,
            call_uuid: "u-1".into(),
            path: "2026/11/24/u-1.wav".into(),
            kind: RecordingKind::Call,
            extension: "10001".into(),
            started_at: t(0),
            duration_ms: 0,
            size_bytes: 44,
        },
        |r| r.duration_ms = 15_000,
    )
    .await;
    let voicemail = crud(
        s,
        VoicemailMessage {
            id: 0,
            mailbox: "10001".into(),
            caller_id_number: "1002".into(),
            caller_id_name: "李四".into(),
            call_uuid: "u-2".into(),
            path: "vm/u-2.wav".into(),
            duration: 12,
            created_at: t(0),
            heard_at: None,
        },
        |v| v.heard_at = Some(t(100)),
    )
    .await;
    let admin = crud(
        s,
        AdminUser {
            id: 0,
            username: "operator".into(),
            password_hash: Secret::new(
                rswitch::secret::hash_password("operator-password").unwrap(),
            ),
            must_change_password: true,
            created_at: t(0),
            updated_at: t(0),
            last_login_at: None,
        },
        |a| a.last_login_at = Some(t(5)),
    )
    .await;

    // Delete children before parents; every configurable table deletes.
    delete_and_check_gone::<RouteDetailRegion>(s, route_detail_region).await;
    delete_and_check_gone::<IvrDetailRegion>(s, ivr_detail_region).await;
    delete_and_check_gone::<RouteDetail>(s, route_detail).await;
    delete_and_check_gone::<Route>(s, route).await;
    delete_and_check_gone::<IvrDetail>(s, ivr_detail).await;
    delete_and_check_gone::<Ivr>(s, ivr).await;
    delete_and_check_gone::<InboundQueueLink>(s, inbound_queue_link).await;
    delete_and_check_gone::<InboundQueue>(s, inbound_queue).await;
    delete_and_check_gone::<AgentQueueMember>(s, agent_queue_member).await;
    delete_and_check_gone::<AgentQueue>(s, agent_queue).await;
    delete_and_check_gone::<ConferenceMember>(s, conference_member).await;
    delete_and_check_gone::<Conference>(s, conference).await;
    delete_and_check_gone::<GatewayGroupMember>(s, gateway_group_member).await;
    delete_and_check_gone::<GatewayGroup>(s, gateway_group).await;
    delete_and_check_gone::<Gateway>(s, gateway).await;
    delete_and_check_gone::<RingTone>(s, ring).await;
    delete_and_check_gone::<Region>(s, city).await;
    delete_and_check_gone::<Region>(s, province).await;
    delete_and_check_gone::<Extension>(s, extension).await;
    delete_and_check_gone::<ExtensionGroup>(s, group).await;
    delete_and_check_gone::<BaseConfigEntry>(s, base).await;
    delete_and_check_gone::<BlacklistEntry>(s, blacklist).await;
    delete_and_check_gone::<Registration>(s, registration).await;
    delete_and_check_gone::<Recording>(s, recording).await;
    delete_and_check_gone::<VoicemailMessage>(s, voicemail).await;
    delete_and_check_gone::<AdminUser>(s, admin).await;
}

fn extension(number: &str) -> Extension {
    Extension {
        id: 0,
        name: number.into(),
        number: number.into(),
        extension_type: ExtensionType::Direct,
        password: Secret::new("password-123456"),
        group_id: None,
        allow_outbound: false,
        answer_when_offline: true,
        play_job_number: false,
        job_number: String::new(),
        created_at: t(0),
        updated_at: t(0),
    }
}

fn ivr(number: &str) -> Ivr {
    Ivr {
        id: 0,
        name: format!("IVR{number}"),
        number: number.into(),
        confirm_key: "#".into(),
        max_timeout: 60,
        digit_timeout: 10,
        max_attempts: 3,
        key_length: 1,
        enabled: true,
        greeting: String::new(),
        short_tone: String::new(),
        invalid_tone: String::new(),
        parent_id: 0,
        sort_order: 0,
    }
}

async fn numbering_plan_refuses_collisions_across_tables(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = &db.store;
    let ext = s.insert(&extension("2300")).await.unwrap();

    let err = s.insert(&ivr("2300")).await.unwrap_err();
    match &err {
        StoreError::NumberTaken { number, owner } => {
            assert_eq!(number, "2300");
            assert_eq!(*owner, Some((OwnerKind::Extension, ext)));
        }
        other => panic!("expected NumberTaken, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("number 2300 is already used by extension {ext}")
    );

    let queue = AgentQueue {
        id: 0,
        name: "q".into(),
        number: "3300".into(),
        strategy: QueueStrategy::Sequential,
        cursor: 0,
    };
    let queue_id = s.insert(&queue).await.unwrap();
    let inbound = InboundQueue {
        id: 0,
        name: "in".into(),
        number: "3300".into(),
        max_wait: 360,
        key_wait: 10,
        allow_key_continue: true,
        continue_key: "1".into(),
        prompt_ring_id: None,
        moh_ring_id: None,
        priority: 0,
    };
    assert!(matches!(
        s.insert(&inbound).await,
        Err(StoreError::NumberTaken { .. })
    ));

    // Renumbering into a taken number is refused; renumbering to a free one frees the old.
    let mut moved = s.get::<AgentQueue>(queue_id).await.unwrap().unwrap();
    moved.number = "2300".into();
    assert!(matches!(
        s.update(&moved).await,
        Err(StoreError::NumberTaken { .. })
    ));
    moved.number = "3301".into();
    s.update(&moved).await.unwrap();
    s.insert(&inbound)
        .await
        .expect("3300 is free again after the queue moved");

    // Updating a row without changing its number is not a collision with itself.
    let mut same = s.get::<Extension>(ext).await.unwrap().unwrap();
    same.name = "renamed".into();
    s.update(&same).await.unwrap();

    // The database itself enforces it, whatever path the write takes.
    let raw = s
        .execute_raw(
            "conference",
            "insert into conference (name, number) values ('c', '2300')",
        )
        .await
        .unwrap_err();
    assert!(matches!(raw, StoreError::NumberTaken { .. }), "{raw:?}");

    // Deleting frees the number.
    s.delete::<Extension>(ext).await.unwrap();
    s.insert(&ivr("2300"))
        .await
        .expect("2300 is free after the extension is deleted");
    assert_eq!(
        s.number_owner("2300").await.unwrap().map(|(k, _)| k),
        Some(OwnerKind::Ivr)
    );
}

fn cdr(uuid: &str) -> Cdr {
    Cdr {
        id: 0,
        uuid: uuid.into(),
        bleg_uuid: String::new(),
        sip_call_id: "call-1@192.0.2.1".into(),
        direction: CallDirection::Internal,
        local_ip: "192.0.2.1".into(),
        caller_id_name: "1008".into(),
        caller_id_number: "1008".into(),
        destination_number: "80000".into(),
        context: "default".into(),
        start_stamp: t(0),
        answer_stamp: Some(t(2)),
        end_stamp: t(16),
        duration: 16,
        billsec: 14,
        hangup_cause: "NORMAL_CLEARING".into(),
        sip_code: Some(200),
        accountcode: "1008".into(),
        read_codec: "PCMA".into(),
        write_codec: "PCMA".into(),
        gateway: String::new(),
        recording_path: String::new(),
    }
}

async fn cdrs_can_not_be_updated_or_deleted(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = &db.store;
    let id = s.insert(&cdr("uuid-1")).await.unwrap();
    let mut changed = s.get::<Cdr>(id).await.unwrap().unwrap();
    assert_eq!(changed.uuid, "uuid-1");

    changed.billsec = 0;
    assert!(matches!(
        s.update(&changed).await,
        Err(StoreError::AppendOnly { table: "cdr" })
    ));
    assert!(matches!(
        s.delete::<Cdr>(id).await,
        Err(StoreError::AppendOnly { table: "cdr" })
    ));

    // Not only through the store: the database refuses raw SQL too.
    for sql in [
        "update cdr set billsec = 0".to_owned(),
        format!("delete from cdr where id = {id}"),
        "delete from cdr".to_owned(),
    ] {
        let err = s.execute_raw("cdr", &sql).await.unwrap_err();
        assert!(
            matches!(err, StoreError::AppendOnly { .. }),
            "{sql}: {err:?}"
        );
    }
    if matches!(backend, Backend::Postgres) {
        let err = s.execute_raw("cdr", "truncate cdr").await.unwrap_err();
        assert!(
            matches!(err, StoreError::AppendOnly { .. }),
            "truncate: {err:?}"
        );
    }
    let still = s.get::<Cdr>(id).await.unwrap().unwrap();
    assert_eq!(still.billsec, 14, "the row is unchanged");
    assert_eq!(s.count::<Cdr>(&ListQuery::default()).await.unwrap(), 1);

    // CDR uuids are unique.
    assert!(matches!(
        s.insert(&cdr("uuid-1")).await,
        Err(StoreError::Duplicate { .. })
    ));
}

async fn audit_log_is_append_only(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = &db.store;
    let entry = AuditEntry {
        id: 0,
        at: t(0),
        actor: "admin".into(),
        action: "update".into(),
        entity: "extension".into(),
        entity_id: Some(1),
        detail: "{\"allow_outbound\":true}".into(),
    };
    let id = s.insert(&entry).await.unwrap();
    assert!(matches!(
        s.delete::<AuditEntry>(id).await,
        Err(StoreError::AppendOnly { .. })
    ));
    let err = s
        .execute_raw("audit_log", "update audit_log set actor = 'x'")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AppendOnly { .. }));
}

async fn references_and_checks_are_enforced(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = &db.store;
    // A dangling reference is refused.
    let mut e = extension("1000");
    e.group_id = Some(999);
    assert!(
        matches!(s.insert(&e).await, Err(StoreError::Reference { .. })),
        "dangling group"
    );
    // A row still referenced can not be deleted.
    let ring = s
        .insert(&RingTone {
            id: 0,
            name: "welcome".into(),
            description: String::new(),
            file_path: String::new(),
        })
        .await
        .unwrap();
    let inbound = InboundQueue {
        id: 0,
        name: "in".into(),
        number: "8001".into(),
        max_wait: 360,
        key_wait: 10,
        allow_key_continue: true,
        continue_key: "1".into(),
        prompt_ring_id: Some(ring),
        moh_ring_id: None,
        priority: 0,
    };
    s.insert(&inbound).await.unwrap();
    let err = s.delete::<RingTone>(ring).await;
    assert!(
        matches!(err, Err(StoreError::Reference { .. })),
        "ring tone in use: {err:?}"
    );
    // Numbers are digits.
    assert!(matches!(
        s.insert(&extension("10a0")).await,
        Err(StoreError::Invalid { .. })
    ));
    // Unique names.
    s.insert(&GatewayGroup {
        id: 0,
        name: "g".into(),
    })
    .await
    .unwrap();
    assert!(matches!(
        s.insert(&GatewayGroup {
            id: 0,
            name: "g".into()
        })
        .await,
        Err(StoreError::Duplicate { .. })
    ));
    // Parent deletion cascades to its details.
    let route = s
        .insert(&Route {
            id: 0,
            name: "r".into(),
            condition_field: ConditionField::DestinationNumber,
            pattern: "^1$".into(),
            sequence: 0,
            enabled: true,
            continue_on_fail: false,
            time_condition: TimeCondition::Always,
        })
        .await
        .unwrap();
    let detail = s
        .insert(&RouteDetail {
            id: 0,
            route_id: route,
            name: String::new(),
            action: Action::Answer,
            data: String::new(),
            ring_id: None,
            sequence: 0,
            is_external: false,
            gateway_group_id: None,
            gateway_id: None,
            area_enabled: false,
        })
        .await
        .unwrap();
    s.delete::<Route>(route).await.unwrap();
    assert!(s.get::<RouteDetail>(detail).await.unwrap().is_none());
}

async fn list_filters_orders_and_pages(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = &db.store;
    for n in ["1003", "1001", "1002", "1004"] {
        let mut e = extension(n);
        e.allow_outbound = n != "1002";
        s.insert(&e).await.unwrap();
    }
    let q = ListQuery::default()
        .filter("allow_outbound", Value::Bool(true))
        .order_by("number");
    let numbers: Vec<String> = s
        .list::<Extension>(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.number)
        .collect();
    assert_eq!(numbers, ["1001", "1003", "1004"]);
    let page = ListQuery {
        limit: Some(2),
        offset: 1,
        ..q.clone()
    };
    let numbers: Vec<String> = s
        .list::<Extension>(&page)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.number)
        .collect();
    assert_eq!(numbers, ["1003", "1004"]);
    assert_eq!(s.count::<Extension>(&q).await.unwrap(), 3);
    let nulls = ListQuery::default().filter("group_id", Value::Int(None));
    assert_eq!(s.count::<Extension>(&nulls).await.unwrap(), 4);
    let bad = ListQuery::default().filter("number; drop table extension", Value::Int(Some(1)));
    assert!(matches!(
        s.list::<Extension>(&bad).await,
        Err(StoreError::UnknownColumn { .. })
    ));
}

async fn migrations_are_idempotent_and_timestamps_keep_microseconds(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store.migrate().await.expect("second migrate is a no-op");
    let mut reg = Registration {
        id: 0,
        aor: "1000".into(),
        contact: "sip:1000@192.0.2.1".into(),
        source: "192.0.2.1:5060".into(),
        transport: SipTransport::Udp,
        expires_at: t(0) + Duration::microseconds(7),
        call_id: String::new(),
        cseq: 1,
        q_value: 500,
        path: String::new(),
        instance_id: String::new(),
        reg_id: None,
        user_agent: String::new(),
        updated_at: t(1),
    };
    reg.id = db.store.insert(&reg).await.unwrap();
    assert_eq!(
        db.store.get::<Registration>(reg.id).await.unwrap().unwrap(),
        reg
    );
}

async fn upsert_rewrites_by_unique_key_and_delete_where_filters(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = &db.store;
    let reg = |contact: &str, cseq: i64| Registration {
        id: 0,
        aor: "1000".into(),
        contact: contact.into(),
        source: "192.0.2.1:5060".into(),
        transport: SipTransport::Udp,
        expires_at: t(60),
        call_id: "c".into(),
        cseq,
        q_value: 1000,
        path: String::new(),
        instance_id: String::new(),
        reg_id: None,
        user_agent: String::new(),
        updated_at: t(0),
    };
    s.upsert(&reg("sip:a@h", 1), &["aor", "contact"])
        .await
        .unwrap();
    s.upsert(&reg("sip:a@h", 2), &["aor", "contact"])
        .await
        .unwrap();
    let many: Vec<Registration> = (0..450)
        .map(|i| reg(&format!("sip:{i}@h"), i))
        .chain([reg("sip:a@h", 3)])
        .collect();
    s.upsert_many(&many, &["aor", "contact"]).await.unwrap();
    let rows = s.all::<Registration>().await.unwrap();
    assert_eq!(rows.len(), 451, "one row per (aor, contact)");
    assert_eq!(
        rows.iter().find(|r| r.contact == "sip:a@h").unwrap().cseq,
        3,
        "the last write wins"
    );
    let q = ListQuery::default().filter("contact", Value::Text(Some("sip:7@h".into())));
    assert_eq!(s.delete_where::<Registration>(&q).await.unwrap(), 1);
    assert_eq!(
        s.count::<Registration>(&ListQuery::default())
            .await
            .unwrap(),
        450
    );
    assert!(matches!(
        s.upsert(&reg("x", 1), &["nope"]).await,
        Err(StoreError::UnknownColumn { .. })
    ));
}

/// The admin API's queries: comparisons, `like` with its wildcards taken literally and case
/// ignored, NULLs at the same end, keyset paging newest first — the same on both backends.
async fn compares_like_nulls_and_keyset_pages(backend: Backend) {
    let db = TestDb::new(backend).await;
    let s = &db.store;
    for (i, (uuid, caller)) in [("a", "Ann_1"), ("b", "ann%2"), ("c", "Bob"), ("d", "bob")]
        .into_iter()
        .enumerate()
    {
        let mut row = cdr(uuid);
        row.caller_id_number = caller.into();
        // Two rows share a start time: the id breaks the tie.
        row.start_stamp = t([10, 20, 20, 30][i]);
        row.duration = [5, 30, 60, 90][i];
        row.answer_stamp = [Some(t(1)), None, Some(t(3)), None][i];
        s.insert(&row).await.unwrap();
    }
    let uuids = |rows: Vec<Cdr>| rows.into_iter().map(|c| c.uuid).collect::<Vec<_>>();
    let like = |text: &str| {
        ListQuery::default()
            .compare(
                "caller_id_number",
                Compare::Contains,
                Value::Text(Some(text.into())),
            )
            .order_by("start_stamp")
    };
    assert_eq!(
        uuids(s.list::<Cdr>(&like("ANN")).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(uuids(s.list::<Cdr>(&like("_")).await.unwrap()), ["a"]);
    assert_eq!(uuids(s.list::<Cdr>(&like("%")).await.unwrap()), ["b"]);
    assert_eq!(
        uuids(s.list::<Cdr>(&like("!")).await.unwrap()),
        Vec::<String>::new()
    );
    let between = ListQuery::default()
        .compare("duration", Compare::Greater, Value::Int(Some(5)))
        .compare("start_stamp", Compare::Less, Value::Time(Some(t(30))));
    assert_eq!(uuids(s.list::<Cdr>(&between).await.unwrap()), ["b", "c"]);
    let mut nulls = ListQuery::default().order_by("answer_stamp");
    assert_eq!(
        uuids(s.list::<Cdr>(&nulls).await.unwrap()),
        ["b", "d", "a", "c"]
    );
    nulls.descending = true;
    assert_eq!(
        uuids(s.list::<Cdr>(&nulls).await.unwrap()),
        ["c", "a", "d", "b"]
    );
    // Newest first, two at a time, each page after the last row of the one before.
    let mut page = ListQuery {
        limit: Some(2),
        descending: true,
        ..ListQuery::default().order_by("start_stamp")
    };
    let first = s.list::<Cdr>(&page).await.unwrap();
    assert_eq!(uuids(first.clone()), ["d", "c"]);
    let last = first.last().unwrap();
    page.after = Some((Value::Time(Some(last.start_stamp)), last.id));
    assert_eq!(uuids(s.list::<Cdr>(&page).await.unwrap()), ["b", "a"]);
}

on_both_backends!(
    compares_like_nulls_and_keyset_pages,
    upsert_rewrites_by_unique_key_and_delete_where_filters,
    every_table_supports_create_read_update_delete,
    numbering_plan_refuses_collisions_across_tables,
    cdrs_can_not_be_updated_or_deleted,
    audit_log_is_append_only,
    references_and_checks_are_enforced,
    list_filters_orders_and_pages,
    migrations_are_idempotent_and_timestamps_keep_microseconds,
);
