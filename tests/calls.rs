//! Calls between extensions through rswitch with SIPp on both sides (Debian `sip-tester`):
//! a caller authenticates (407), rswitch routes by the seeded internal-calls route and rings
//! the registered callee; answered calls, 100rel (PRACK) on both legs, the callee hanging up,
//! busy, no answer (a route that sets `call_timeout`), the caller cancelling, a blacklisted
//! caller, hold and unhold by re-INVITE and by UPDATE, DTMF by INFO, a re-INVITE without SDP,
//! a late offer, session timers (422, refreshes by UPDATE and re-INVITE, expiry), the RTP
//! timeout, INVITE with Replaces.
//! Each call's CDR is then read from the database and checked field by field, and its call
//! events (from the log) leg by leg. PostgreSQL stopped for 30 s during calls loses no CDR,
//! and neither does a server killed with SIGKILL right after the calls. Three phones: blind
//! and attended transfer, by the callee and by the caller.
#![allow(clippy::disallowed_methods)] // runs real processes

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sipp::*;
use common::*;
use rswitch::store::{
    Action, BlacklistDirection, BlacklistEntry, Cdr, ConditionField, ConnectOptions, ListQuery,
    MatchKind, Route, RouteDetail, Store, TimeCondition,
};

/// The call events of leg `uuid` from the server's log, through its DESTORY (15).
fn leg_events(logs: &mut LogReader, uuid: &str) -> Vec<serde_json::Value> {
    let of_leg = |logs: &LogReader| -> Vec<serde_json::Value> {
        logs.seen
            .iter()
            .filter(|l| l["fields"]["message"] == "call event")
            .filter_map(|l| serde_json::from_str(l["fields"]["event"].as_str()?).ok())
            .filter(|e: &serde_json::Value| e["uuid"] == uuid)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = of_leg(logs);
        if events.iter().any(|e| e["evt_name"] == 15) || Instant::now() > deadline {
            return events;
        }
        logs.wait_for("call event", Duration::from_millis(200));
    }
}

fn codes(events: &[serde_json::Value]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| e["evt_name"].as_u64())
        .collect()
}

/// The CDR of the call to `destination` that is newest, waiting for it to arrive.
async fn cdr_of(db: &Store, destination: &str, expected: usize) -> Vec<Cdr> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows: Vec<Cdr> = db
            .list::<Cdr>(&ListQuery::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.destination_number == destination)
            .collect();
        if rows.len() >= expected || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_between_extensions_with_sipp_and_their_cdrs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    // Configuration before the server starts: a route that rings 1009 for two seconds only,
    // and a blacklisted caller.
    {
        let status = rswitch_command(path).arg("migrate").status().unwrap();
        assert!(status.success());
        let db = database(path).await;
        rswitch::store::seed::seed(&db, None).await.unwrap();
        let route = db
            .insert(&Route {
                id: 0,
                name: "short ring".into(),
                condition_field: ConditionField::DestinationNumber,
                pattern: "^(1009)$".into(),
                sequence: 0,
                enabled: true,
                continue_on_fail: false,
                time_condition: TimeCondition::Always,
            })
            .await
            .unwrap();
        for (sequence, action, data) in [
            (0, Action::Set, "call_timeout=2"),
            (1, Action::Bridge, "$1"),
        ] {
            db.insert(&RouteDetail {
                id: 0,
                route_id: route,
                name: String::new(),
                action,
                data: data.into(),
                ring_id: None,
                sequence,
                is_external: false,
                gateway_group_id: None,
                gateway_id: None,
                area_enabled: false,
            })
            .await
            .unwrap();
        }
        db.insert(&BlacklistEntry {
            id: 0,
            number: "1066".into(),
            match_kind: MatchKind::Exact,
            direction: BlacklistDirection::Inbound,
            enabled: true,
            expires_at: None,
            note: "test".into(),
            created_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
        db.close().await;
    }
    // Call events go to the log too, where this test reads them.
    let (_server, mut logs, target, db) = server_in(path, "[events]\nlog = true\n").await;

    // Answered; the caller hangs up.
    call(
        path,
        &target,
        "1000",
        "1001",
        "uac_talk",
        Some("uas_answer"),
    );
    let cdrs = cdr_of(&db, "1001", 1).await;
    assert_eq!(cdrs.len(), 1, "one CDR per call");
    let cdr = &cdrs[0];
    assert_eq!(cdr.hangup_cause, "NORMAL_CLEARING");
    assert_eq!(cdr.caller_id_number, "1000");
    assert_eq!(cdr.accountcode, "1000");
    assert_eq!(cdr.context, "default");
    assert_eq!(cdr.sip_code, Some(200));
    assert!(cdr.answer_stamp.is_some());
    assert!(cdr.billsec >= 1 && cdr.billsec <= cdr.duration, "{cdr:?}");
    assert_eq!(
        (cdr.read_codec.as_str(), cdr.write_codec.as_str()),
        ("PCMU", "PCMU")
    );
    assert!(!cdr.uuid.is_empty() && !cdr.bleg_uuid.is_empty() && cdr.uuid != cdr.bleg_uuid);
    // Its events, per leg in causal order, with the legacy codes and keys: the caller's leg
    // CALLIN RING ANSWER BRIDGED TALKING HANGUP DESTORY, the callee's the same from CALLOUT.
    let caller_leg = leg_events(&mut logs, &cdr.uuid);
    let callee_leg = leg_events(&mut logs, &cdr.bleg_uuid);
    assert_eq!(
        codes(&caller_leg),
        [1, 3, 5, 14, 16, 6, 15],
        "{caller_leg:#?}"
    );
    assert_eq!(
        codes(&callee_leg),
        [2, 3, 5, 14, 16, 6, 15],
        "{callee_leg:#?}"
    );
    for event in caller_leg.iter().chain(&callee_leg) {
        assert_eq!(event["callin_number"], "1000");
        assert_eq!(event["originate_number"], "1000");
        assert_eq!(event["dest_number"], "1001");
        assert_eq!(event["domain"], "127.0.0.1");
        assert_eq!(
            (event["dtmf"].as_str(), event["gateway"].as_str()),
            (Some(""), Some(""))
        );
    }
    // The caller's leg knows the other leg from the moment it exists (after CALLIN).
    assert_eq!(caller_leg[0]["other_uuid"], "");
    assert!(
        caller_leg[1..]
            .iter()
            .all(|e| e["direction"] == "inbound" && e["other_uuid"] == cdr.bleg_uuid.as_str())
    );
    assert!(
        callee_leg
            .iter()
            .all(|e| e["direction"] == "outbound" && e["extension"] == "1001")
    );
    assert_eq!(caller_leg[6]["evt_str"], "EVENT_DESTORY");
    assert_eq!(caller_leg[6]["hangup_cause"], "NORMAL_CLEARING");

    // Hold and unhold by re-INVITE from the caller, answered by rswitch (recvonly, then
    // sendrecv) while the callee's call goes on; then the caller hangs up.
    call(
        path,
        &target,
        "1000",
        "1006",
        "uac_hold",
        Some("uas_answer"),
    );
    let cdr = &cdr_of(&db, "1006", 1).await[0];
    assert_eq!(cdr.hangup_cause, "NORMAL_CLEARING");
    let caller_leg = leg_events(&mut logs, &cdr.uuid);
    assert_eq!(
        codes(&caller_leg),
        [1, 3, 5, 14, 16, 12, 13, 6, 15],
        "{caller_leg:#?}"
    );
    assert!(cdr.billsec >= 1, "{cdr:?}");

    // Inside the call: hold and unhold by UPDATE, DTMF by INFO, an INFO body refused with
    // 415, a re-INVITE without SDP answered with our offer (the answer in the ACK).
    call(
        path,
        &target,
        "1000",
        "1008",
        "uac_update_info",
        Some("uas_answer"),
    );
    let cdr = &cdr_of(&db, "1008", 1).await[0];
    assert_eq!(cdr.hangup_cause, "NORMAL_CLEARING");
    let caller_leg = leg_events(&mut logs, &cdr.uuid);
    assert_eq!(
        codes(&caller_leg),
        [1, 3, 5, 14, 16, 12, 13, 7, 6, 15],
        "{caller_leg:#?}"
    );
    assert_eq!(caller_leg[7]["dtmf"], "5");
    assert!(cdr.billsec >= 1, "{cdr:?}");

    // A late offer: the caller's INVITE has no SDP; rswitch offers in the 200 and takes the
    // answer from the ACK.
    call(
        path,
        &target,
        "1000",
        "1012",
        "uac_late_offer",
        Some("uas_answer"),
    );
    let cdr = &cdr_of(&db, "1012", 1).await[0];
    assert_eq!(cdr.hangup_cause, "NORMAL_CLEARING");
    assert_eq!(cdr.read_codec, "PCMU", "{cdr:?}");
    assert!(cdr.billsec >= 1, "{cdr:?}");

    // 100rel both ways: the callee's reliable 183 with its early answer is PRACKed by
    // rswitch, the caller gets a reliable 183 of its own and PRACKs it; then 200, talk, BYE.
    call(
        path,
        &target,
        "1000",
        "1007",
        "uac_100rel",
        Some("uas_100rel"),
    );
    let cdr = &cdr_of(&db, "1007", 1).await[0];
    assert_eq!(cdr.hangup_cause, "NORMAL_CLEARING");
    assert_eq!(cdr.sip_code, Some(200));
    assert!(cdr.answer_stamp.is_some() && cdr.billsec >= 1, "{cdr:?}");

    // Answered; the callee hangs up.
    call(
        path,
        &target,
        "1000",
        "1002",
        "uac_callee_hangs_up",
        Some("uas_hangup"),
    );
    let cdr = &cdr_of(&db, "1002", 1).await[0];
    assert_eq!(cdr.hangup_cause, "NORMAL_CLEARING");
    assert!(cdr.answer_stamp.is_some());

    // Busy.
    call(path, &target, "1000", "1003", "uac_busy", Some("uas_busy"));
    let cdr = &cdr_of(&db, "1003", 1).await[0];
    assert_eq!(
        (cdr.hangup_cause.as_str(), cdr.sip_code, cdr.billsec),
        ("USER_BUSY", Some(486), 0)
    );
    assert!(cdr.answer_stamp.is_none());

    // The caller cancels while it rings.
    call(
        path,
        &target,
        "1000",
        "1004",
        "uac_cancel",
        Some("uas_noanswer"),
    );
    let cdr = &cdr_of(&db, "1004", 1).await[0];
    assert_eq!(cdr.hangup_cause, "ORIGINATOR_CANCEL");
    assert!(cdr.answer_stamp.is_none());

    // No answer within the route's call_timeout of 2 s.
    let started = Instant::now();
    call(
        path,
        &target,
        "1000",
        "1009",
        "uac_no_answer",
        Some("uas_noanswer"),
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    let cdr = &cdr_of(&db, "1009", 1).await[0];
    assert_eq!(
        (cdr.hangup_cause.as_str(), cdr.sip_code),
        ("NO_ANSWER", Some(480))
    );

    // A blacklisted caller: 603, and still a CDR.
    call(path, &target, "1066", "1005", "uac_refused", None);
    let cdr = &cdr_of(&db, "1005", 1).await[0];
    assert_eq!(
        (cdr.hangup_cause.as_str(), cdr.sip_code),
        ("CALL_REJECTED", Some(603))
    );
    assert_eq!(cdr.caller_id_number, "1066");

    // Every call left exactly one CDR.
    let all = db.list::<Cdr>(&ListQuery::default()).await.unwrap();
    assert_eq!(all.len(), 10, "{all:#?}");
}

/// `kill -9` right after calls have ended, then a restart: every call the phones saw end has
/// its CDR (the spool is fsynced before the final BYE is answered; a restart replays it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_cdr_of_a_finished_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (mut server, _logs, listeners) = start_server_with_listeners(rswitch_command(path));
    let target = listeners["sip_udp"].clone();
    for callee in ["1011", "1012", "1013"] {
        call(
            path,
            &target,
            "1010",
            callee,
            "uac_talk",
            Some("uas_answer"),
        );
    }
    // No clean shutdown: SIGKILL at once.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let (_server, _logs, _listeners) = start_server_with_listeners(rswitch_command(path));
    let db = database(path).await;
    for callee in ["1011", "1012", "1013"] {
        let cdrs = cdr_of(&db, callee, 1).await;
        assert_eq!(cdrs.len(), 1, "the CDR of the call to {callee} survived");
        assert_eq!(cdrs[0].hangup_cause, "NORMAL_CLEARING");
    }
    let spool = path.join("cdr-spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .collect();
    assert!(
        left.is_empty(),
        "the spool is empty after the replay: {left:?}"
    );
}

/// The PostgreSQL cluster of the test run, as `pg_ctlcluster` names it: (version, name).
/// Only the throwaway cluster pg_virtualenv made for `make test` qualifies: the one on the
/// port of `RSWITCH_TEST_PG_URL`, made by pg_virtualenv (its private registry, or the
/// marker it leaves in /etc/postgresql).
fn test_cluster() -> (String, String) {
    let url = postgres_admin_url();
    let port = url
        .rsplit_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|host_port| host_port.rsplit_once(':'))
        .map(|(_, port)| port.to_owned())
        .unwrap_or_else(|| "5432".to_owned());
    let out = Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .unwrap_or_else(|e| panic!("pg_lsclusters: {e}: apt-get install postgresql-common"));
    let text = String::from_utf8_lossy(&out.stdout);
    let private_registry = std::env::var_os("PG_CLUSTER_CONF_ROOT").is_some();
    text.lines()
        .filter_map(|line| {
            let mut cells = line.split_whitespace();
            Some((
                cells.next()?.to_owned(),
                cells.next()?.to_owned(),
                cells.next()?.to_owned(),
            ))
        })
        .find(|(version, name, cluster_port)| {
            *cluster_port == port
                && (private_registry
                    || Path::new(&format!(
                        "/etc/postgresql/{version}/{name}/.by_pg_virtualenv"
                    ))
                    .exists())
        })
        .map(|(version, name, _)| (version, name))
        .unwrap_or_else(|| {
            panic!(
                "this test stops and restarts PostgreSQL, so it runs only against the \
                 throwaway cluster `make test` makes with pg_virtualenv (port {port}), not a \
                 server named by RSWITCH_TEST_PG_URL; clusters: {text:?}"
            )
        })
}

fn pg_ctlcluster(cluster: &(String, String), action: &str) {
    let status = Command::new("pg_ctlcluster")
        .args([&cluster.0, &cluster.1, action])
        .args(if action == "stop" {
            &["-m", "fast"][..]
        } else {
            &[][..]
        })
        .status()
        .expect("run pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action} failed");
}

/// PostgreSQL stopped for 30 s while calls are made: the calls go on (routing and
/// registrations live in memory), their CDRs wait in the spool, and once the database is
/// back every CDR is in it, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_on_while_postgresql_is_down_and_every_cdr_arrives() {
    let cluster = test_cluster();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let url = fresh_postgres_url().await;
    std::fs::write(path.join("db-url"), &url).unwrap();
    let mut cmd = rswitch_command(path);
    cmd.env("RSWITCH_DB_URL", &url);
    let (_server, _logs, listeners) = start_server_with_listeners(cmd);
    let target = listeners["sip_udp"].clone();
    let db = Store::connect(&url, &ConnectOptions::default())
        .await
        .unwrap();

    call(
        path,
        &target,
        "1000",
        "1101",
        "uac_talk",
        Some("uas_answer"),
    );
    assert_eq!(cdr_of(&db, "1101", 1).await.len(), 1);
    db.close().await;

    // The phones know their passwords; read them before the database goes.
    for number in ["1102", "1103", "1104", "1105"] {
        password_of(path, number);
    }
    pg_ctlcluster(&cluster, "stop");
    let stopped = Instant::now();
    let outage = std::panic::catch_unwind(|| {
        call(
            path,
            &target,
            "1000",
            "1102",
            "uac_talk",
            Some("uas_answer"),
        );
        call(
            path,
            &target,
            "1000",
            "1103",
            "uac_callee_hangs_up",
            Some("uas_hangup"),
        );
        call(path, &target, "1000", "1104", "uac_busy", Some("uas_busy"));
        while stopped.elapsed() < Duration::from_secs(25) {
            std::thread::sleep(Duration::from_millis(500));
        }
        call(
            path,
            &target,
            "1000",
            "1105",
            "uac_talk",
            Some("uas_answer"),
        );
        while stopped.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    // Whatever happened, the cluster is started again for the tests after this one.
    pg_ctlcluster(&cluster, "start");
    if let Err(panic) = outage {
        std::panic::resume_unwind(panic);
    }

    let db = Store::connect(&url, &ConnectOptions::default())
        .await
        .unwrap();
    // The writer retries every 5 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut all = Vec::new();
    while Instant::now() < deadline {
        all = db.list::<Cdr>(&ListQuery::default()).await.unwrap();
        if all.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut destinations: Vec<&str> = all.iter().map(|c| c.destination_number.as_str()).collect();
    destinations.sort_unstable();
    assert_eq!(
        destinations,
        ["1101", "1102", "1103", "1104", "1105"],
        "{all:#?}"
    );
    let busy = all.iter().find(|c| c.destination_number == "1104").unwrap();
    assert_eq!(
        (busy.hangup_cause.as_str(), busy.sip_code),
        ("USER_BUSY", Some(486))
    );
    let talk = all.iter().find(|c| c.destination_number == "1105").unwrap();
    assert!(talk.answer_stamp.is_some() && talk.billsec >= 1, "{talk:?}");
}

/// Three phones: `caller` calls `transferor`, which transfers it (blind or attended) to
/// `target_number`; caller and target talk until the caller hangs up.
fn three_party(
    dir: &Path,
    target: &str,
    caller: &str,
    transferor: &str,
    transferor_scenario: &str,
    target_number: &str,
) {
    let transfer_target = waiting_phone(dir, target, target_number, "uas_answer", caller);
    let transferring = waiting_phone(dir, target, transferor, transferor_scenario, target_number);
    let users = users_file(
        dir,
        &format!("caller-{caller}-{transferor}"),
        caller,
        transferor,
    );
    let mut dial = sipp_command(dir, target, "uac_talk_3s", free_udp_port());
    dial.arg("-inf").arg(&users);
    let out = run(dial);
    let transferor_ok = finished_ok(transferring);
    let target_ok = finished_ok(transfer_target);
    assert!(
        out.status.success() && transferor_ok && target_ok,
        "{transferor_scenario}: caller ok {}, transferor ok {transferor_ok}, target ok {target_ok}\n{}",
        out.status.success(),
        errors_of(dir)
    );
}

/// Blind transfer (REFER) and attended transfer (REFER with Replaces) among three SIPp
/// phones: the caller ends up talking with the target, the transferor is told by NOTIFY
/// and hung up, every CDR and leg event says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_and_attended_transfer_among_three_phones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, mut logs, target, db) = server_in(path, "[events]\nlog = true\n").await;

    // Blind: 1200 calls 1201, which transfers it to 1202.
    three_party(
        path,
        &target,
        "1200",
        "1201",
        "uas_blind_transferor",
        "1202",
    );
    let cdr = &cdr_of(&db, "1201", 1).await[0];
    assert_eq!(cdr.caller_id_number, "1200");
    assert_eq!(cdr.hangup_cause, "NORMAL_CLEARING");
    assert!(cdr.billsec >= 2, "{cdr:?}");
    let caller_leg = leg_events(&mut logs, &cdr.uuid);
    assert_eq!(
        codes(&caller_leg),
        [1, 5, 14, 16, 14, 16, 6, 15],
        "{caller_leg:#?}"
    );
    // The leg now in the CDR is the target's; the transferor's leg ended BLIND_TRANSFER.
    let target_leg = leg_events(&mut logs, &cdr.bleg_uuid);
    assert_eq!(codes(&target_leg), [2, 5, 14, 16, 6, 15], "{target_leg:#?}");
    assert!(target_leg.iter().all(|e| e["extension"] == "1202"));
    let transferor_end = logs
        .seen
        .iter()
        .filter(|l| l["fields"]["message"] == "call event")
        .filter_map(|l| {
            serde_json::from_str::<serde_json::Value>(l["fields"]["event"].as_str()?).ok()
        })
        .find(|e| e["extension"] == "1201" && e["evt_name"] == 15)
        .expect("the transferor's leg was destroyed");
    assert_eq!(transferor_end["hangup_cause"], "BLIND_TRANSFER");

    // Attended: 1300 calls 1301; 1301 calls 1302 itself, then REFERs 1300 to 1302 with
    // Replaces naming that second call. 1300 and 1302 talk; both of 1301's calls end.
    three_party(
        path,
        &target,
        "1300",
        "1301",
        "uas_attended_transferor",
        "1302",
    );
    let first = &cdr_of(&db, "1301", 1).await[0];
    assert_eq!(
        (first.caller_id_number.as_str(), first.hangup_cause.as_str()),
        ("1300", "NORMAL_CLEARING")
    );
    assert!(first.billsec >= 2, "{first:?}");
    let second = &cdr_of(&db, "1302", 1).await[0];
    assert_eq!(
        (
            second.caller_id_number.as_str(),
            second.hangup_cause.as_str()
        ),
        ("1301", "ATTENDED_TRANSFER")
    );
    // The target's leg moved from the second call into the first.
    assert_eq!(first.bleg_uuid, second.bleg_uuid);
    let caller_leg = leg_events(&mut logs, &first.uuid);
    assert_eq!(
        codes(&caller_leg),
        [1, 5, 14, 16, 14, 16, 6, 15],
        "{caller_leg:#?}"
    );
    let target_leg = leg_events(&mut logs, &second.bleg_uuid);
    assert_eq!(
        codes(&target_leg),
        [2, 3, 5, 14, 16, 14, 16, 6, 15],
        "{target_leg:#?}"
    );
}

/// A caller that never ACKs the 200: rswitch retransmits it for 64×T1 (32 s), then ends the
/// call (BYE both ways) with `RECOVERY_ON_TIMER_EXPIRE`, freeing its media; no call is left
/// holding ports forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_200_is_never_acked_is_ended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, _logs, target, db) = server_in(path, "").await;
    call(
        path,
        &target,
        "1000",
        "1001",
        "uac_no_ack",
        Some("uas_answer"),
    );
    let cdr = &cdr_of(&db, "1001", 1).await[0];
    assert_eq!(cdr.hangup_cause, "RECOVERY_ON_TIMER_EXPIRE", "{cdr:?}");
    assert!(cdr.duration >= 30, "{cdr:?}");
}

/// Session timers (RFC 4028) with rswitch's interval set to 90 s: a caller asking for 30 s
/// gets 422 with Min-SE 90; a caller asking for 90 s and to refresh itself is granted it,
/// refreshes once by UPDATE, then stops refreshing; the callee lets rswitch refresh and
/// allows no UPDATE, so it gets a refreshing re-INVITE after 45 s. The call is ended by
/// BYE to both when the caller's interval runs out (60 s after its refresh), with
/// `RECOVERY_ON_TIMER_EXPIRE`. At the same time a caller that asks for no timer is refreshed
/// by rswitch with a re-INVITE (and ACKed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timers_refresh_both_legs_and_end_an_unrefreshed_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, mut logs, target, db) = server_in(path, "[sip]\nsession_expires = 90\n").await;
    call(path, &target, "1000", "1001", "uac_session_too_small", None);
    // Meanwhile, 1002 calls 1003 asking for no timer: rswitch refreshes both legs by
    // re-INVITE after 45 s (neither allows UPDATE), then the caller hangs up.
    let refreshed = {
        let (path, target) = (path.to_owned(), target.clone());
        std::thread::spawn(move || {
            call_within(
                &path,
                &target,
                ["1002", "1003"],
                "uac_session_refreshed",
                Some("uas_session_timer"),
                120,
            );
        })
    };
    let started = Instant::now();
    call_within(
        path,
        &target,
        ["1000", "1001"],
        "uac_session_timer",
        Some("uas_session_timer"),
        120,
    );
    let took = started.elapsed();
    refreshed
        .join()
        .expect("the call refreshed by rswitch went as expected");
    assert!(
        took >= Duration::from_secs(64),
        "the call ended after {took:?}, before the refreshed interval ran out"
    );
    assert!(
        logs.wait_for(
            "session timer expired without a refresh: the call is ended",
            Duration::from_secs(5)
        )
        .is_some(),
        "no log line says why the call ended"
    );
    let cdrs = cdr_of(&db, "1001", 1).await;
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    let cdr = &cdrs[0];
    assert_eq!(cdr.hangup_cause, "RECOVERY_ON_TIMER_EXPIRE", "{cdr:?}");
    assert!(cdr.billsec >= 64, "{cdr:?}");
}

/// The RTP timeout set to 2 s: an answered call whose parties send no RTP (SIPp sends none
/// here) is ended with BYE to both and `MEDIA_TIMEOUT` in its CDR. (That RTP keeps a call
/// alive, and that held legs are not watched, is the media shard's unit test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_rtp_is_ended_by_the_rtp_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, mut logs, target, db) = server_in(path, "[rtp]\ntimeout_secs = 2\n").await;
    call(
        path,
        &target,
        "1000",
        "1001",
        "uac_until_bye",
        Some("uas_answer"),
    );
    assert!(
        logs.wait_for(
            "no RTP from a party within rtp.timeout_secs: the call is ended",
            Duration::from_secs(5)
        )
        .is_some(),
        "no log line says why the call ended"
    );
    let cdrs = cdr_of(&db, "1001", 1).await;
    assert_eq!(cdrs.len(), 1, "{cdrs:?}");
    let cdr = &cdrs[0];
    assert_eq!(cdr.hangup_cause, "MEDIA_TIMEOUT", "{cdr:?}");
    assert!((2..=5).contains(&cdr.billsec), "{cdr:?}");
}

/// Extension 1001 on two phones: the first answers; the second answers after rswitch's
/// CANCEL reached it (its 200 crossed the CANCEL). rswitch ACKs that late 200 and hangs the
/// second phone up with BYE (`Reason: … LOSE_RACE`, RFC 3261 §13.2.2.4), while the call
/// with the first phone goes on normally. The same when the caller cancelled and the one
/// phone's 200 crosses that CANCEL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_phone_answering_too_late_is_acked_and_hung_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, _logs, target, db) = server_in(path, "").await;
    let first = waiting_phone(path, &target, "1001", "uas_answer", "1000");
    let late = waiting_phone(path, &target, "1001", "uas_late_answer", "1000");
    let users = users_file(path, "caller-1000-late", "1000", "1001");
    let mut dial = sipp_command(path, &target, "uac_talk", free_udp_port());
    dial.arg("-inf").arg(&users);
    let out = run(dial);
    let first_ok = finished_ok(first);
    let late_ok = finished_ok(late);
    assert!(
        out.status.success() && first_ok && late_ok,
        "caller ok {}, first phone ok {first_ok}, late phone ok {late_ok}\n{}",
        out.status.success(),
        errors_of(path)
    );
    let cdrs = cdr_of(&db, "1001", 1).await;
    assert_eq!(cdrs.len(), 1, "one call, one CDR: {cdrs:?}");
    assert_eq!(cdrs[0].hangup_cause, "NORMAL_CLEARING", "{cdrs:?}");

    // The caller gives up while 1002 rings; the phone's 200 crosses the CANCEL: it is
    // ACKed and hung up although the call is over.
    call(
        path,
        &target,
        "1000",
        "1002",
        "uac_cancel",
        Some("uas_late_answer"),
    );
    let cdr = &cdr_of(&db, "1002", 1).await[0];
    assert_eq!(cdr.hangup_cause, "ORIGINATOR_CANCEL", "{cdr:?}");
}

/// INVITE with Replaces (RFC 3891), for each place in turn: a call is set up whose party
/// to be replaced writes down the dialog rswitch has with it; 1002 sends an INVITE whose
/// Replaces names that dialog, is answered and talks in that party's place, the replaced
/// party gets BYE with `PICKED_OFF`; when 1002 hangs up, the remaining party gets BYE. One
/// CDR per call, for the caller that made it. First the callee's place (1000 calls 1001,
/// 1002 replaces 1001), then the caller's (1003 calls 1004, 1002 replaces 1003). A
/// Replaces naming no dialog of ours gets 481.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_with_replaces_takes_a_partys_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, _logs, target, db) = server_in(path, "").await;
    let stranger = users_file(path, "replacing-wrong", "1002", "1001");
    let mut wrong = sipp_command(path, &target, "uac_replaces_unknown", free_udp_port());
    wrong.arg("-inf").arg(&stranger);
    assert!(
        run(wrong).status.success(),
        "a Replaces naming no dialog: {}",
        errors_of(path)
    );
    // (caller, its scenario, callee, its scenario, the file the replaced party writes)
    for (caller, caller_scenario, callee, callee_scenario, written) in [
        (
            "1000",
            "uac_until_bye",
            "1001",
            "uas_replaced",
            "replaces.txt",
        ),
        (
            "1003",
            "uac_replaced",
            "1004",
            "uas_answer",
            "replaces-caller.txt",
        ),
    ] {
        let callee_phone = waiting_phone(path, &target, callee, callee_scenario, caller);
        let caller_users = users_file(path, &format!("replaced-{caller}"), caller, callee);
        let mut caller_phone = sipp_command(path, &target, caller_scenario, free_udp_port());
        caller_phone
            .arg("-inf")
            .arg(&caller_users)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let caller_phone = caller_phone.spawn().expect("start the caller");
        let deadline = Instant::now() + Duration::from_secs(10);
        let replaces = loop {
            let value = std::fs::read_to_string(path.join(written))
                .ok()
                .map(|text| text.trim().to_owned())
                .filter(|text| text.contains("from-tag="));
            if let Some(value) = value {
                break value;
            }
            assert!(
                Instant::now() < deadline,
                "{written} was never written: {}",
                errors_of(path)
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let replacing_users = users_file(path, &format!("replacing-{callee}"), "1002", callee);
        let mut replacing = sipp_command(path, &target, "uac_replaces", free_udp_port());
        replacing
            .arg("-inf")
            .arg(&replacing_users)
            .args(["-key", "replaces", &replaces]);
        let replacing_ok = run(replacing).status.success();
        let caller_ok = finished_ok(caller_phone);
        let callee_ok = finished_ok(callee_phone);
        assert!(
            replacing_ok && caller_ok && callee_ok,
            "{written}: replacing ok {replacing_ok}, caller ok {caller_ok}, callee ok \
             {callee_ok} (Replaces: {replaces})\n{}",
            errors_of(path)
        );
        let cdrs = cdr_of(&db, callee, 1).await;
        assert_eq!(cdrs.len(), 1, "{cdrs:?}");
        assert_eq!(cdrs[0].caller_id_number, caller, "{cdrs:?}");
        assert_eq!(cdrs[0].hangup_cause, "NORMAL_CLEARING", "{cdrs:?}");
    }
}

/// Blind and attended transfer by the calling party: 1000 calls 1001 and REFERs it to 1002
/// (blind: 1001 hears ringback until 1002 answers; attended: 1000 calls 1002 itself first
/// and names that dialog in Replaces). 1002 talks with 1001 in 1000's place, 1000 is told by
/// NOTIFY (100, then 200) and hung up (`BLIND_TRANSFER`, `ATTENDED_TRANSFER`); 1002 hangs
/// up, and 1001 gets BYE. The transferred call has one CDR, still 1000's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calling_party_transfers_the_callee() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, _logs, target, db) = server_in(path, "").await;
    for (scenario, transferee_number) in [
        ("uac_blind_transferor", "1001"),
        ("uac_attended_transferor", "1003"),
    ] {
        let transfer_target = waiting_phone(path, &target, "1002", "uas_hangup", transferee_number);
        let transferee = waiting_phone(path, &target, transferee_number, "uas_answer", "1000");
        let users = users_file(
            path,
            &format!("caller-{scenario}"),
            "1000",
            transferee_number,
        );
        let mut dial = sipp_command(path, &target, scenario, free_udp_port());
        dial.arg("-inf")
            .arg(&users)
            .args(["-key", "target", "1002"]);
        let out = run(dial);
        let transferee_ok = finished_ok(transferee);
        let target_ok = finished_ok(transfer_target);
        assert!(
            out.status.success() && transferee_ok && target_ok,
            "{scenario}: transferor ok {}, transferee ok {transferee_ok}, target ok {target_ok}\n{}",
            out.status.success(),
            errors_of(path)
        );
        let cdrs = cdr_of(&db, transferee_number, 1).await;
        assert_eq!(cdrs.len(), 1, "{scenario}: {cdrs:?}");
        assert_eq!(cdrs[0].caller_id_number, "1000", "{scenario}: {cdrs:?}");
        assert_eq!(
            cdrs[0].hangup_cause, "NORMAL_CLEARING",
            "{scenario}: {cdrs:?}"
        );
    }
}
