//! Call events on Redis, read by the FSGui manual's subscriber (ported to Python 3, with
//! `psubscribe('event*')`) from a real `redis-server`: a call between two SIPp phones
//! arrives as CALLIN … ANSWER … HANGUP … DESTORY with the legacy keys; a call made while
//! Redis is down goes through, and its events arrive once Redis is back.
#![allow(clippy::disallowed_methods)] // runs real processes

mod common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::sipp::*;
use common::*;

/// A `redis-server` on `port` of loopback, killed when dropped.
struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis(dir: &std::path::Path, port: u16) -> Redis {
    let child = Command::new("redis-server")
        .current_dir(dir)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("redis-server can not run ({e}): apt-get install redis-server (make test installs it)")
        });
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Redis(child)
}

/// The Python subscriber, its lines on a channel once it is subscribed.
struct Subscriber {
    child: Child,
    lines: Receiver<String>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_subscriber(port: u16) -> Subscriber {
    let script = format!(
        "{}/tests/python/event_subscriber.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut child = Command::new("python3")
        .arg(script)
        .args(["127.0.0.1", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs (make test installs it and redis-py)");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("the subscriber did not subscribe (is redis-py installed? pip install redis)");
    assert_eq!(first, "SUBSCRIBED");
    Subscriber { child, lines }
}

/// Events from the subscriber until every leg that began has its DESTORY (15).
fn events_of_one_call(subscriber: &Subscriber, within: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + within;
    let mut events: Vec<serde_json::Value> = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = subscriber.lines.recv_timeout(left) else {
            panic!("not every leg ended within {within:?}: {events:#?}");
        };
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        events.push(event);
        let began = events
            .iter()
            .filter(|e| e["evt_name"] == 1 || e["evt_name"] == 2)
            .count();
        let destroyed = events.iter().filter(|e| e["evt_name"] == 15).count();
        if began == 2 && destroyed == 2 {
            return events;
        }
    }
}

fn codes_of_leg(events: &[serde_json::Value], uuid: &str) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e["uuid"] == uuid)
        .filter_map(|e| e["evt_name"].as_u64())
        .collect()
}

/// Whether `wanted` occur in `codes` in this order (others may come between).
fn in_order(codes: &[u64], wanted: &[u64]) -> bool {
    let mut rest = codes.iter();
    wanted.iter().all(|w| rest.any(|c| c == w))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manuals_subscriber_gets_a_calls_events_even_across_a_redis_outage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let port = free_tcp_port();
    let redis = start_redis(path, port);
    let subscriber = start_subscriber(port);

    let mut cmd = rswitch_command(path);
    cmd.env("RSWITCH_REDIS_URL", format!("redis://127.0.0.1:{port}"));
    let (_server, _logs, listeners) = start_server_with_listeners(cmd);
    let target = listeners["sip_udp"].clone();

    call(
        path,
        &target,
        "1000",
        "1001",
        "uac_talk",
        Some("uas_answer"),
    );
    let events = events_of_one_call(&subscriber, Duration::from_secs(20));
    let caller = events.iter().find(|e| e["evt_name"] == 1).unwrap();
    let caller_codes = codes_of_leg(&events, caller["uuid"].as_str().unwrap());
    assert!(
        in_order(&caller_codes, &[1, 5, 6, 15]),
        "CALLIN … ANSWER … HANGUP … DESTORY: {caller_codes:?}"
    );
    let callee = events.iter().find(|e| e["evt_name"] == 2).unwrap();
    let callee_codes = codes_of_leg(&events, callee["uuid"].as_str().unwrap());
    assert!(
        in_order(&callee_codes, &[2, 3, 5, 6, 15]),
        "{callee_codes:?}"
    );
    for event in &events {
        for key in [
            "evt_name",
            "callin_number",
            "dest_number",
            "domain",
            "dtmf",
            "gateway",
            "originate_number",
            "direction",
        ] {
            assert!(event.get(key).is_some(), "{key} missing: {event}");
        }
        assert!(event["evt_name"].is_u64(), "{event}");
        assert_eq!(event["callin_number"], "1000");
        assert_eq!(event["dest_number"], "1001");
        assert!(event["timestamp"].is_string() && event["evt_str"].is_string());
    }

    // Redis goes away: a call still goes through; its events wait and arrive once Redis is
    // back.
    drop(subscriber);
    drop(redis);
    call(
        path,
        &target,
        "1000",
        "1001",
        "uac_talk",
        Some("uas_answer"),
    );
    let _redis = start_redis(path, port);
    let subscriber = start_subscriber(port);
    let events = events_of_one_call(&subscriber, Duration::from_secs(40));
    let caller = events.iter().find(|e| e["evt_name"] == 1).unwrap();
    let caller_codes = codes_of_leg(&events, caller["uuid"].as_str().unwrap());
    assert!(in_order(&caller_codes, &[1, 5, 6, 15]), "{caller_codes:?}");

    let (_, metrics) = http_get(&listeners["http"], "/metrics").unwrap();
    assert!(metrics.contains("rswitch_redis_up 1"), "{metrics}");
    assert!(
        metrics.contains("rswitch_redis_events_dropped_total 0"),
        "{metrics}"
    );
}
