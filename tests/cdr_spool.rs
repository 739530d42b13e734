//! Durable CDRs against a real database (SQLite and PostgreSQL): the writer acknowledges each
//! CDR once it is fsynced in the spool, inserts the batch and empties the spool; a replay at
//! start writes what a crash left behind, once, even when part of it was already written.

#![allow(clippy::disallowed_methods)] // spawns the writer task, as the server does

mod common;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::{Backend, TestDb};
use rswitch::pbx::cdr::{CdrJob, CdrSpool, replay, run_writer};
use rswitch::store::{CallDirection, Cdr, ListQuery};

fn cdr(uuid: &str) -> Cdr {
    Cdr {
        id: 0,
        uuid: uuid.into(),
        bleg_uuid: format!("{uuid}-b"),
        sip_call_id: format!("{uuid}@test"),
        direction: CallDirection::Internal,
        local_ip: "192.0.2.1".into(),
        caller_id_name: "1000".into(),
        caller_id_number: "1000".into(),
        destination_number: "1001".into(),
        context: "default".into(),
        start_stamp: Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap(),
        answer_stamp: None,
        end_stamp: Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 30).unwrap(),
        duration: 30,
        billsec: 0,
        hangup_cause: "NO_ANSWER".into(),
        sip_code: Some(480),
        accountcode: "1000".into(),
        read_codec: String::new(),
        write_codec: String::new(),
        gateway: String::new(),
        recording_path: String::new(),
    }
}

async fn the_writer_spools_acknowledges_inserts_and_empties_the_spool(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = CdrSpool::open(&dir.path().join("cdr-spool")).unwrap();
    let (jobs, queue) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::spawn(run_writer(spool.clone(), db.store.clone(), queue));
    let mut acks = Vec::new();
    for i in 0..200 {
        let (durable, ack) = tokio::sync::oneshot::channel();
        jobs.send(CdrJob {
            cdr: Box::new(cdr(&format!("call-{i}"))),
            durable: Some(durable),
        })
        .unwrap();
        acks.push(ack);
    }
    for ack in acks {
        tokio::time::timeout(Duration::from_secs(10), ack)
            .await
            .expect("acknowledged in time")
            .expect("acknowledged, not dropped");
    }
    drop(jobs);
    writer.await.unwrap();
    let rows = db.store.list::<Cdr>(&ListQuery::default()).await.unwrap();
    assert_eq!(rows.len(), 200);
    assert!(spool.pending().unwrap().is_empty(), "the spool is emptied");
}

async fn a_replay_writes_what_was_left_once(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = CdrSpool::open(&dir.path().join("cdr-spool")).unwrap();
    // The process died after inserting "old" but before removing its file.
    db.store.insert(&cdr("old")).await.unwrap();
    let (old, new) = (cdr("old"), cdr("new"));
    spool.write_batch(&[&old, &new]).unwrap();
    let later = cdr("later");
    spool.write_batch(&[&later]).unwrap();
    assert_eq!(
        replay(&spool, &db.store).await,
        2,
        "old is not written twice"
    );
    assert!(spool.pending().unwrap().is_empty());
    let mut uuids: Vec<String> = db
        .store
        .list::<Cdr>(&ListQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.uuid)
        .collect();
    uuids.sort();
    assert_eq!(uuids, ["later", "new", "old"]);
    assert_eq!(replay(&spool, &db.store).await, 0, "nothing left");
}

on_both_backends!(
    the_writer_spools_acknowledges_inserts_and_empties_the_spool,
    a_replay_writes_what_was_left_once,
);
