//! The FSGui-compatible API of the running binary: login and tokens (Nway and Bearer, an
//! expired or forged token, failed logins limited), the seat endpoints read back through
//! extension_info, bad bodies refused with the field named, 413 for a huge body; and call
//! control on real calls between SIPp phones (get_phone_uuid, hold and unhold seen by the
//! phone as re-INVITEs, hangup, preanswer and answer, intercept of a ringing call), and the
//! WebSocket event stream (call events and agent state changes, the token in the header or
//! the query).
#![allow(clippy::disallowed_methods)] // runs real processes

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::api::{Api, http, until_call_state};
use common::sipp::*;
use common::*;

const PASSWORD: &str = "api-test-password";

/// rswitch on a fresh SQLite database in `path` with the administrator's password set:
/// the server, its log and its listeners by name.
fn api_server(path: &Path, extra: &str) -> (Server, LogReader, HashMap<String, String>) {
    let file = path.join("rswitch.toml");
    std::fs::write(
        &file,
        format!("[admin]\ninitial_password = \"{PASSWORD}\"\n{extra}"),
    )
    .unwrap();
    let mut cmd = rswitch_command(path);
    cmd.arg("--config").arg(&file);
    start_server_with_listeners(cmd)
}

#[test]
fn login_tokens_seats_and_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, _logs, listeners) = api_server(dir.path(), "");
    let addr = &listeners["http"];

    // Without a token, with a wrong one, with a wrong scheme: 401.
    assert_eq!(http(addr, "GET", "/api/get_uuid", &[], b"").status, 401);
    let wrong = http(
        addr,
        "GET",
        "/api/get_uuid",
        &[("Authorization", "Nway not.a.token")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["code"], 401);
    assert!(wrong.header("www-authenticate").is_some());

    // A wrong password: 401; the right one: a token at the top and in data.
    let refused = http(
        addr,
        "POST",
        "/api/login",
        &[],
        br#"{"username":"admin","password":"admin"}"#,
    );
    assert_eq!(refused.status, 401, "{}", refused.body);
    let login = http(
        addr,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        format!(r#"{{"USERNAME":"admin","Password":"{PASSWORD}","extra":1}}"#).as_bytes(),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let json = login.json();
    assert_eq!(json["code"], 0);
    let token = json["token"].as_str().unwrap().to_owned();
    assert_eq!(json["data"]["token"], token.as_str());
    assert!(token.starts_with("eyJhbGciOiJIUzI1NiIs"), "{token}");
    let expires =
        chrono::DateTime::parse_from_rfc3339(json["data"]["expires_at"].as_str().unwrap()).unwrap();
    let lifetime = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        (chrono::Duration::hours(23)..=chrono::Duration::hours(24)).contains(&lifetime),
        "{lifetime}"
    );

    // Both schemes, any case, any spacing.
    for header in [
        format!("Nway {token}"),
        format!("nway {token}"),
        format!("Bearer {token}"),
        format!("BEARER \t {token}"),
    ] {
        let answer = http(
            addr,
            "GET",
            "/api/get_uuid",
            &[("Authorization", &header)],
            b"",
        );
        assert_eq!(answer.status, 200, "{header}: {}", answer.body);
        let uuid = answer.json()["data"]["uuid"].as_str().unwrap().to_owned();
        assert_eq!(uuid.len(), 36, "{uuid}");
    }

    // An expired token, signed with the server's own key: 401 saying so.
    let key_text = std::fs::read_to_string(dir.path().join("api-token-key")).unwrap();
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&key_text.trim()[2 * i..2 * i + 2], 16).unwrap();
    }
    let signer = rswitch::api::auth::TokenSigner::new(key, Duration::from_secs(60));
    let now = chrono::Utc::now().timestamp();
    let expired = signer.sign(&rswitch::api::auth::Claims {
        sub: "admin".into(),
        iat: now - 7200,
        exp: now - 3600,
        pwv: 0,
    });
    let answer = http(
        addr,
        "GET",
        "/api/get_uuid",
        &[("Authorization", &format!("Bearer {expired}"))],
        b"",
    );
    assert_eq!(answer.status, 401);
    assert!(
        answer.json()["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    let api = Api {
        addr: addr.clone(),
        token,
    };

    // The seat endpoints, keys in any case, values in any case, unknown fields ignored;
    // read back by extension_info.
    for (path, value) in [
        ("/api/extension_seatstatus", "BUSY"),
        ("/api/extension_seatstate", "up"),
        ("/api/extension_callstate", "ivr"),
    ] {
        let answer = api.post(
            path,
            &format!(r#"{{"extension":" 1002 ","VALUE":"{value}","Comment":"x"}}"#),
        );
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert_eq!(answer.json()["data"]["Value"], value.to_ascii_lowercase());
    }
    let info = api.get("/api/extension_info/1002");
    assert_eq!(info.status, 200, "{}", info.body);
    let data = &info.json()["data"];
    assert_eq!(data["Extension"], "1002");
    assert_eq!(data["SeatStatus"], "busy");
    assert_eq!(data["SeatState"], "up");
    assert_eq!(data["CallState"], "ivr");
    assert_eq!(data["Registered"], false);
    assert_eq!(data["Uuid"], "");
    let all = api.get("/api/extension_info");
    assert_eq!(all.status, 200);
    assert_eq!(all.json()["data"].as_array().unwrap().len(), 500);

    // Bad requests name the field; unknown extensions and calls are 404.
    let cases: [(&str, &str, u16, &str); 7] = [
        ("/api/extension_seatstatus", r#"{"Extension":"#, 400, "JSON"),
        ("/api/extension_seatstatus", r#"["1002"]"#, 400, "object"),
        (
            "/api/extension_seatstatus",
            r#"{"Extension":["1002"],"Value":"idle"}"#,
            400,
            "Extension",
        ),
        (
            "/api/extension_seatstatus",
            r#"{"Extension":"1002","Value":"away"}"#,
            400,
            "Value",
        ),
        (
            "/api/extension_seatstate",
            r#"{"Value":"up"}"#,
            400,
            "Extension",
        ),
        (
            "/api/extension_callstate",
            r#"{"Extension":"9999","Value":"ready"}"#,
            404,
            "9999",
        ),
        (
            "/api/playback",
            r#"{"PhoneNumber":"1002","FilePath":"D:\nwaytest.wav","Loopplay":"sometimes"}"#,
            400,
            "Loopplay",
        ),
    ];
    for (path, body, status, named) in cases {
        let answer = api.post(path, body);
        assert_eq!(answer.status, status, "{path} {body}: {}", answer.body);
        let message = answer.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(named), "{path} {body}: {message}");
    }
    for path in [
        "/api/get_phone_uuid/1002",
        "/api/hold/1002",
        "/api/hangup/1002",
    ] {
        let answer = api.get(path);
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert!(answer.json()["message"].as_str().unwrap().contains("1002"));
    }
    assert_eq!(api.get("/api/extension_info/9999").status, 404);
    assert_eq!(api.get("/api/no_such_thing").status, 404);

    // A huge body: 413, and the server goes on.
    let huge = format!(
        r#"{{"PhoneNumber":"1002","Dtmf":"{}"}}"#,
        "1".repeat(2 << 20)
    );
    assert_eq!(api.post("/api/senddtmf", &huge).status, 413);
    assert_eq!(api.get("/api/get_uuid").status, 200);

    // Failed logins: the sixth from one source for one user is refused for a while, with
    // Retry-After; another user from there may still try.
    for attempt in 1..=6 {
        let answer = http(
            addr,
            "POST",
            "/api/login",
            &[],
            br#"{"username":"admin","password":"guess"}"#,
        );
        let expected = if attempt <= 5 { 401 } else { 429 };
        assert_eq!(
            answer.status, expected,
            "attempt {attempt}: {}",
            answer.body
        );
        if expected == 429 {
            let wait: u64 = answer.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=300).contains(&wait), "{wait}");
        }
    }
    let other = http(
        addr,
        "POST",
        "/api/login",
        &[],
        br#"{"username":"operator","password":"guess"}"#,
    );
    assert_eq!(other.status, 401);
}

/// Polls `path` until it answers 200 (or `within` passes); the last answer.
/// Starts SIPp extension 1000 calling 1001 with `scenario`.
fn dial_1001(path: &Path, target: &str, scenario: &str) -> std::process::Child {
    let users = users_file(path, "caller-1000", "1000", "1001");
    let mut dial = sipp_command(path, target, scenario, free_udp_port());
    dial.arg("-inf")
        .arg(&users)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    dial.spawn().expect("start the caller")
}

/// Waits (10 s at most) for the file `name` a SIPp scenario touches in `path` when it got
/// that far.
fn until_marker(path: &Path, name: &str, failure: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.join(name).exists() {
        assert!(Instant::now() < deadline, "{failure}: {}", errors_of(path));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn until_ok(api: &Api, path: &str, within: Duration) -> common::api::Answer {
    let deadline = Instant::now() + within;
    loop {
        let answer = api.get(path);
        if answer.status == 200 || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn hold_unhold_and_hangup_of_a_real_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, _logs, listeners) = api_server(path, "[events]\nlog = true\n");
    let target = listeners["sip_udp"].clone();
    let api = Api::login(&listeners["http"], "admin", PASSWORD);

    // 1001 answers and waits for the API's hold, unhold and hangup; 1000 calls it and waits
    // for the BYE.
    let callee = waiting_phone(path, &target, "1001", "uas_api_hold", "1000");
    let caller = dial_1001(path, &target, "uac_until_bye");

    // The call is up once the callee talks.
    until_call_state(&api, "1001", "talking", &|| errors_of(path));
    let caller_leg = until_ok(&api, "/api/get_phone_uuid/1000", Duration::from_secs(5));
    let callee_leg = until_ok(&api, "/api/get_phone_uuid/1001", Duration::from_secs(5));
    let caller_uuid = caller_leg.json()["data"]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let callee_uuid = callee_leg.json()["data"]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(caller_uuid.len() == 36 && callee_uuid.len() == 36 && caller_uuid != callee_uuid);
    assert_eq!(
        api.get("/api/extension_info/1001").json()["data"]["Uuid"],
        callee_uuid.as_str()
    );

    // The admin API's runtime views: the call with both legs and their codec, found by
    // either leg's UUID; the callee's registration.
    let calls = api.get("/api/v1/calls").json()["data"].clone();
    assert_eq!(calls.as_array().unwrap().len(), 1, "{calls}");
    let call = api.get(&format!("/api/v1/calls/{callee_uuid}")).json()["data"].clone();
    assert_eq!(call["uuid"], caller_uuid.as_str(), "{call}");
    assert_eq!(call["state"], "answered");
    assert_eq!(call["caller"], "1000");
    assert_eq!(call["callee"], "1001");
    assert_eq!(call["legs"][0]["side"], "caller");
    assert_eq!(call["legs"][1]["uuid"], callee_uuid.as_str());
    for leg in 0..2 {
        assert_eq!(call["legs"][leg]["codec"], "PCMU/8000", "{call}");
        assert_eq!(call["legs"][leg]["held"], false);
    }
    let registrations = api.get("/api/v1/registrations").json()["data"].clone();
    assert!(
        registrations
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["aor"] == "1001" && r["transport"] == "udp"),
        "{registrations}"
    );

    let hold = api.get("/api/hold/1001");
    assert_eq!(hold.status, 200, "{}", hold.body);
    assert_eq!(hold.json()["data"]["uuid"], callee_uuid.as_str());
    let twice = api.get("/api/hold/1001");
    assert_eq!(twice.status, 409, "held twice: {}", twice.body);
    assert!(twice.body.contains("already on hold"), "{}", twice.body);
    let call = api.get(&format!("/api/v1/calls/{caller_uuid}")).json()["data"].clone();
    assert_eq!(call["legs"][1]["held"], true, "{call}");
    assert_eq!(call["legs"][0]["held"], false, "{call}");
    // POST works as well as GET on these paths. The unhold waits for the hold's re-INVITE
    // to be answered (rswitch refuses a second re-INVITE while one is in progress).
    let deadline = Instant::now() + Duration::from_secs(10);
    let unhold = loop {
        let answer = api.post("/api/unhold/1001", "");
        if !(answer.status == 409 && answer.body.contains("in progress")) {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "the hold's re-INVITE was never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(unhold.status, 200, "{}", unhold.body);
    let again = api.get("/api/unhold/1001");
    assert_eq!(again.status, 409, "not held any more: {}", again.body);
    assert!(again.body.contains("not held"), "{}", again.body);
    // Answering an answered call is a state conflict.
    assert_eq!(api.get("/api/answer/1000").status, 409);
    // The phone has ACKed the unhold's 200 before the hangup's BYE goes.
    until_marker(
        path,
        "api-hold-resumed",
        "the unhold's re-INVITE was never ACKed",
    );

    let hangup = api.get("/api/hangup/1000");
    assert_eq!(hangup.status, 200, "{}", hangup.body);
    assert_eq!(hangup.json()["data"]["uuid"], caller_uuid.as_str());
    assert!(
        finished_ok(callee),
        "the callee saw no hold, unhold or BYE: {}",
        errors_of(path)
    );
    assert!(
        finished_ok(caller),
        "the caller got no BYE: {}",
        errors_of(path)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while api.get("/api/get_phone_uuid/1000").status != 404 {
        assert!(Instant::now() < deadline, "the call is still there");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_carries_call_events_and_agent_changes() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::{Error, Message};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, _logs, listeners) = api_server(path, "");
    let addr = listeners["http"].clone();
    let target = listeners["sip_udp"].clone();
    let api = Api::login(&addr, "admin", PASSWORD);

    let connect = |url: String, authorization: Option<String>| {
        let addr = addr.clone();
        async move {
            let mut request = url.into_client_request().unwrap();
            if let Some(value) = authorization {
                request
                    .headers_mut()
                    .insert("Authorization", value.parse().unwrap());
            }
            let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            tokio_tungstenite::client_async(request, tcp).await
        }
    };
    match connect(format!("ws://{addr}/api/v1/events"), None).await {
        Err(Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("a stream without a token: {:?}", other.map(|_| ())),
    }
    let (mut by_header, _) = connect(
        format!("ws://{addr}/api/v1/events"),
        Some(format!("Bearer {}", api.token)),
    )
    .await
    .expect("the stream with the token in the header");
    let (mut by_query, _) = connect(
        format!("ws://{addr}/api/v1/events?token={}", api.token),
        None,
    )
    .await
    .expect("the stream with the token in the query");

    let seat = api.post(
        "/api/extension_seatstatus",
        r#"{"Extension":"1002","Value":"busy"}"#,
    );
    assert_eq!(seat.status, 200);
    call(
        path,
        &target,
        "1000",
        "1001",
        "uac_talk",
        Some("uas_answer"),
    );

    for stream in [&mut by_header, &mut by_query] {
        let mut agent_change = None;
        let mut destroyed = 0;
        let mut codes = Vec::new();
        while agent_change.is_none() || destroyed < 2 {
            let message = tokio::time::timeout(Duration::from_secs(20), stream.next())
                .await
                .unwrap_or_else(|_| panic!("the stream went quiet: {codes:?} {agent_change:?}"))
                .expect("the stream ended")
                .expect("a WebSocket message");
            let Message::Text(text) = message else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            if event["type"] == "agent" && event["extension"] == "1002" {
                agent_change = Some(event);
                continue;
            }
            if let Some(code) = event["evt_name"].as_u64() {
                codes.push(code);
                assert_eq!(event["callin_number"], "1000");
                destroyed += usize::from(code == 15);
            }
        }
        let agent_change = agent_change.unwrap();
        assert_eq!(agent_change["seat_status"], "busy");
        assert_eq!(agent_change["seat_state"], "down");
        assert!(
            codes.starts_with(&[1]) && codes.contains(&2) && codes.contains(&5),
            "{codes:?}"
        );
    }
}

/// A password reset by the command line, next to the running server (the same database),
/// voids the administrator's older tokens within seconds; the new password logs in.
#[test]
fn a_password_reset_from_the_command_line_voids_older_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, _logs, listeners) = api_server(path, "");
    let addr = &listeners["http"];
    let api = Api::login(addr, "admin", PASSWORD);
    assert_eq!(api.get("/api/get_uuid").status, 200);

    succeeded(rswitch_command(path).args([
        "admin",
        "reset-password",
        "--password",
        "a-new-long-password",
    ]));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = api.get("/api/get_uuid");
        if answer.status == 401 {
            assert!(answer.body.contains("revoked"), "{}", answer.body);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old token still counts 20 s after the reset: {}",
            answer.body
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let again = Api::login(addr, "admin", "a-new-long-password");
    assert_eq!(again.get("/api/get_uuid").status, 200);
}

/// `originate`'s `Callername` reaches the phone rung first as the display name of its
/// From, quoted with the quote inside escaped, before the number it was told to show
/// (`B_effective_caller_id_num`); SIPp checks the INVITE and refuses the call.
#[test]
fn originate_shows_the_callers_name_quoted_to_the_phone_rung_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, _logs, listeners) = api_server(path, "");
    let target = listeners["sip_udp"].clone();
    let api = Api::login(&listeners["http"], "admin", PASSWORD);
    let phone = waiting_phone(path, &target, "1000", "uas_originated", "1001");
    let body = serde_json::json!({
        "Callername": "Desk \"7\"", "Callernum": "1000", "Calleenum": "1001",
        "B_effective_caller_id_num": "4008"
    });
    let started = api.post("/api/originate", &body.to_string());
    assert_eq!(started.status, 200, "{}", started.body);
    assert!(
        finished_ok(phone),
        "1000's INVITE did not show the name quoted, then <sip:4008@…>: {}",
        errors_of(path)
    );
}

/// `intercept`: 1000 calls 1001, which rings; 1002 picks it up through the API. 1001 gets
/// CANCEL, 1002 rings and answers, and the caller talks with it until the API hangs up.
#[test]
fn intercept_hands_a_ringing_call_to_the_phone_that_picks_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, _logs, listeners) = api_server(path, "");
    let target = listeners["sip_udp"].clone();
    let api = Api::login(&listeners["http"], "admin", PASSWORD);
    let nothing = api.get("/api/intercept/1002");
    assert_eq!(
        nothing.status, 409,
        "1002 is not registered: {}",
        nothing.body
    );

    let ringing = waiting_phone(path, &target, "1001", "uas_noanswer", "1000");
    let picker = waiting_phone(path, &target, "1002", "uas_answer", "1000");
    assert_eq!(
        api.get("/api/intercept/1002").status,
        404,
        "no call rings yet"
    );
    let caller = dial_1001(path, &target, "uac_until_bye");
    until_call_state(&api, "1001", "ring", &|| errors_of(path));

    let picked = api.get("/api/intercept/1002");
    assert_eq!(picked.status, 200, "{}", picked.body);
    assert!(
        finished_ok(ringing),
        "1001 was not cancelled: {}",
        errors_of(path)
    );
    until_call_state(&api, "1002", "talking", &|| errors_of(path));
    let calls = api.get("/api/v1/calls").json()["data"].clone();
    assert_eq!(calls[0]["caller"], "1000", "{calls}");
    assert_eq!(calls[0]["callee"], "1002", "{calls}");
    assert_eq!(calls[0]["legs"][1]["uuid"], picked.json()["data"]["uuid"]);
    assert_eq!(
        api.get("/api/extension_info/1001").json()["data"]["CallState"],
        "ready"
    );
    assert_eq!(api.get("/api/hangup/1000").status, 200);
    assert!(finished_ok(caller), "the caller: {}", errors_of(path));
    assert!(finished_ok(picker), "1002: {}", errors_of(path));
}

/// `preanswer` and `answer` while the callee rings: the caller gets a 183 with SDP, then a
/// 200, from the platform; the hangup then cancels the callee and sends the caller BYE.
#[test]
fn preanswer_and_answer_act_on_a_ringing_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (_server, _logs, listeners) = api_server(path, "");
    let target = listeners["sip_udp"].clone();
    let api = Api::login(&listeners["http"], "admin", PASSWORD);
    let callee = waiting_phone(path, &target, "1001", "uas_noanswer", "1000");
    let caller = dial_1001(path, &target, "uac_api_answered");
    until_call_state(&api, "1001", "ring", &|| errors_of(path));
    let early = api.get("/api/preanswer/1000");
    assert_eq!(early.status, 200, "{}", early.body);
    let twice = api.get("/api/preanswer/1000");
    assert_eq!(twice.status, 409, "{}", twice.body);
    let answered = api.get("/api/answer/1000");
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(
        answered.json()["data"]["uuid"],
        early.json()["data"]["uuid"]
    );
    assert_eq!(api.get("/api/answer/1000").status, 409, "answered once");
    let call = api.get("/api/v1/calls").json()["data"][0].clone();
    assert!(call["answered_at"].is_string(), "{call}");
    assert_eq!(call["state"], "ringing", "the callee still rings: {call}");
    // The caller has ACKed the platform's 200 before the hangup's BYE goes.
    until_marker(path, "api-answer-acked", "the 200 was never ACKed");
    assert_eq!(api.get("/api/hangup/1000").status, 200);
    assert!(
        finished_ok(callee),
        "1001 was not cancelled: {}",
        errors_of(path)
    );
    assert!(
        finished_ok(caller),
        "the caller saw no 183, 200 or BYE: {}",
        errors_of(path)
    );
}
