//! The admin API of the running binary (`/api/v1`): create, read, change and delete rows
//! with the database's rules answered as 400/409, references and regexes checked, secrets
//! write-only and out of the audit log, Apply refusing a broken configuration and putting a
//! good one into force; CDR search with the GUI's filters and the CSV export; administrators
//! and passwords (a changed password voids older tokens); the OpenAPI document; and
//! schemathesis run against that document: no 5xx, every answer as documented.
#![allow(clippy::disallowed_methods)] // runs real processes

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::api::{Api, http};
use common::*;
use serde_json::{Value, json};

const PASSWORD: &str = "admin-api-password";

fn admin_server(path: &Path) -> (Server, LogReader, HashMap<String, String>) {
    let file = path.join("rswitch.toml");
    std::fs::write(
        &file,
        format!("[admin]\ninitial_password = \"{PASSWORD}\"\n"),
    )
    .unwrap();
    let mut cmd = rswitch_command(path);
    cmd.arg("--config").arg(&file);
    start_server_with_listeners(cmd)
}

fn data(answer: &common::api::Answer) -> Value {
    answer.json()["data"].clone()
}

#[test]
fn rows_are_created_changed_and_deleted_with_the_rules_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, _logs, listeners) = admin_server(dir.path());
    let api = Api::login(&listeners["http"], "admin", PASSWORD);

    // No token: 401 on the admin API too.
    assert_eq!(
        http(&listeners["http"], "GET", "/api/v1/extensions", &[], b"").status,
        401
    );

    // Create with the defaults filled in; the server keeps the timestamps.
    let created = api.send(
        "POST",
        "/api/v1/extensions",
        r#"{"number":"2001","password":"s3cret-2001","name":"Reception","created_at":"1999-01-01T00:00:00Z","unknown":1}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let extension = data(&created);
    let id = extension["id"].as_i64().unwrap();
    assert_eq!(extension["name"], "Reception");
    assert_eq!(extension["extension_type"], "direct");
    assert_eq!(extension["allow_outbound"], false);
    assert!(
        !extension["created_at"]
            .as_str()
            .unwrap()
            .starts_with("1999")
    );

    // Read it back, alone and through a filtered, sorted page.
    let one = api.get(&format!("/api/v1/extensions/{id}"));
    assert_eq!(one.status, 200);
    assert_eq!(data(&one)["number"], "2001");
    let page = api.get("/api/v1/extensions?number=2001");
    assert_eq!(data(&page)["total"], 1);
    assert_eq!(data(&page)["items"][0]["id"], id);
    let page = api.get("/api/v1/extensions?per_page=3&page=2&sort=-number");
    let page = data(&page);
    assert_eq!(page["per_page"], 3);
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    // Page 1 is 2001, 1499, 1498 (text order, newest number first).
    assert_eq!(page["items"][0]["number"], "1497", "{page}");
    for bad in [
        "/api/v1/extensions?per_page=100000",
        "/api/v1/extensions?sort=nonsense",
        "/api/v1/extensions?nonsense=1",
        "/api/v1/extensions?allow_outbound=maybe",
        "/api/v1/extensions?password=x",
        "/api/v1/extensions/abc",
        "/api/v1/extensions?number=1000&number=1001",
        "/api/v1/extensions?name=a%00b",
        "/api/v1/gateways?sort=password",
        "/api/v1/blacklist?expires_at=%2B10000-01-01T00:00:00Z",
        "/api/v1/cdrs?start_date=-200000-01-01",
    ] {
        let answer = api.get(bad);
        assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
        assert_eq!(answer.json()["code"], 400);
    }

    // PATCH changes only what it sends; PUT replaces (left-out fields take the defaults).
    let patched = api.send(
        "PATCH",
        &format!("/api/v1/extensions/{id}"),
        r#"{"allow_outbound":true}"#,
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(data(&patched)["allow_outbound"], true);
    assert_eq!(data(&patched)["name"], "Reception");
    let replaced = api.send(
        "PUT",
        &format!("/api/v1/extensions/{id}"),
        r#"{"number":"2001","password":"s3cret-2001"}"#,
    );
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    assert_eq!(data(&replaced)["name"], "");
    assert_eq!(data(&replaced)["allow_outbound"], false);
    assert_eq!(data(&replaced)["created_at"], extension["created_at"]);

    // The numbering plan: an extension's number is not free for an IVR or another extension.
    let taken = api.send("POST", "/api/v1/ivrs", r#"{"name":"Main","number":"2001"}"#);
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert!(taken.json()["message"].as_str().unwrap().contains("2001"));
    let taken = api.send(
        "POST",
        "/api/v1/extensions",
        r#"{"number":"2001","password":"x"}"#,
    );
    assert_eq!(taken.status, 409, "{}", taken.body);

    // Types, regexes, references and numbers are checked with the field named.
    for (path, body, field) in [
        (
            "/api/v1/extensions",
            r#"{"number":2002,"password":"x"}"#,
            "number",
        ),
        (
            "/api/v1/extensions",
            r#"{"number":"20 02","password":"x"}"#,
            "number",
        ),
        ("/api/v1/extensions", r#"{"number":"2002"}"#, "password"),
        ("/api/v1/ivrs", r#"{"name":"m","number":"20a2"}"#, "digits"),
        (
            "/api/v1/conferences",
            r#"{"name":"c","number":"3000","valid_until":"+10000-01-01T00:00:00Z"}"#,
            "valid_until",
        ),
        (
            "/api/v1/extensions",
            r#"{"number":"2002","password":"x","group_id":999}"#,
            "group_id",
        ),
        (
            "/api/v1/routes",
            r#"{"name":"r","pattern":"^(9"}"#,
            "pattern",
        ),
        (
            "/api/v1/route_details",
            r#"{"route_id":999,"action":"hangup"}"#,
            "route_id",
        ),
        (
            "/api/v1/routes",
            r#"{"name":"r","pattern":"^9","time_condition":"sometimes"}"#,
            "time_condition",
        ),
        ("/api/v1/blacklist", "[1,2]", "object"),
        ("/api/v1/blacklist", "{not json", "JSON"),
        (
            "/api/v1/ring_tones",
            r#"{"name":"x","file_path":"../../etc/passwd"}"#,
            "file_path",
        ),
        (
            "/api/v1/regions",
            "{\"code\":\"1\",\"name\":\"a\\u0000b\",\"level\":\"city\"}",
            "name",
        ),
    ] {
        let answer = api.send("POST", path, body);
        assert_eq!(answer.status, 400, "{path} {body}: {}", answer.body);
        let message = answer.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(field), "{path} {body}: {message}");
    }
    // A huge body: 413.
    let huge = format!(r#"{{"name":"{}"}}"#, "x".repeat(2 << 20));
    assert_eq!(api.send("POST", "/api/v1/regions", &huge).status, 413);

    // A row still used by others is not deleted (409); an unused one is.
    let group = api.send("POST", "/api/v1/extension_groups", r#"{"name":"Sales"}"#);
    let group_id = data(&group)["id"].as_i64().unwrap();
    let member = api.send(
        "PATCH",
        &format!("/api/v1/extensions/{id}"),
        &json!({ "group_id": group_id }).to_string(),
    );
    assert_eq!(member.status, 200, "{}", member.body);
    let refused = api.send(
        "DELETE",
        &format!("/api/v1/extension_groups/{group_id}"),
        "",
    );
    assert_eq!(refused.status, 409, "{}", refused.body);

    // A gateway's password is written, never read back, and kept by a change without it.
    let gateway = api.send(
        "POST",
        "/api/v1/gateways",
        r#"{"name":"carrier","url":"sip:carrier.example.net","realm":"carrier.example.net","username":"u","password":"gw-pass-123"}"#,
    );
    assert_eq!(gateway.status, 201, "{}", gateway.body);
    assert_eq!(data(&gateway)["password"], "");
    let gateway_id = data(&gateway)["id"].as_i64().unwrap();
    let renamed = api.send(
        "PATCH",
        &format!("/api/v1/gateways/{gateway_id}"),
        r#"{"name":"carrier-2"}"#,
    );
    assert_eq!(data(&renamed)["password"], "");
    let database = dir.path().join("rswitch.db");
    let stored = read_gateway_password(&database, gateway_id);
    assert_eq!(stored, "gw-pass-123");
    // `null` clears it.
    let cleared = api.send(
        "PATCH",
        &format!("/api/v1/gateways/{gateway_id}"),
        r#"{"password":null}"#,
    );
    assert_eq!(cleared.status, 200, "{}", cleared.body);
    assert_eq!(read_gateway_password(&database, gateway_id), "");

    // CDRs, recordings and the audit log are read-only.
    for (method, path) in [
        ("POST", "/api/v1/cdrs"),
        ("DELETE", "/api/v1/cdrs/1"),
        ("PUT", "/api/v1/audit_log/1"),
        ("DELETE", "/api/v1/audit_log/1"),
    ] {
        let answer = api.send(method, path, "{}");
        assert_eq!(answer.status, 405, "{method} {path}");
        assert_eq!(answer.json()["code"], 405, "{method} {path}");
    }

    // Every change is in the audit log, by whom, without secrets.
    let audit = api.get("/api/v1/audit_log?entity=extension&sort=-id&per_page=100");
    let entries = data(&audit)["items"].as_array().unwrap().clone();
    let actions: Vec<&str> = entries
        .iter()
        .filter(|e| e["entity_id"] == id)
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["update", "update", "update", "create"],
        "{entries:?}"
    );
    assert!(entries.iter().all(|e| e["actor"] == "admin"));
    let all = api.get("/api/v1/audit_log?per_page=1000").body;
    assert!(
        !all.contains("s3cret-2001") && !all.contains("gw-pass-123"),
        "{all}"
    );

    // Delete: gone.
    let deleted = api.send("DELETE", &format!("/api/v1/extensions/{id}"), "");
    assert_eq!(deleted.status, 200);
    assert_eq!(api.get(&format!("/api/v1/extensions/{id}")).status, 404);
    assert_eq!(
        api.send("DELETE", &format!("/api/v1/extensions/{id}"), "")
            .status,
        404
    );
}

/// Runs `work` on the server's own database (SQLite allows a second connection).
fn with_store<T>(database: &Path, work: impl AsyncFnOnce(&rswitch::store::Store) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = format!("sqlite://{}", database.display());
        let store = rswitch::store::Store::connect(&url, &Default::default())
            .await
            .unwrap();
        let result = work(&store).await;
        store.close().await;
        result
    })
}

fn read_gateway_password(database: &Path, id: i64) -> String {
    with_store(database, async |store| {
        let gateway = store
            .get::<rswitch::store::Gateway>(id)
            .await
            .unwrap()
            .unwrap();
        gateway.password.expose().to_owned()
    })
}

#[test]
fn apply_refuses_problems_and_puts_a_good_configuration_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, _logs, listeners) = admin_server(dir.path());
    let api = Api::login(&listeners["http"], "admin", PASSWORD);

    let state = api.get("/api/v1/apply");
    assert_eq!(state.status, 200, "{}", state.body);
    let version = data(&state)["version"].as_u64().unwrap();

    // A new extension is not in force until Apply.
    let created = api.send(
        "POST",
        "/api/v1/extensions",
        r#"{"number":"3001","password":"pw-3001"}"#,
    );
    assert_eq!(created.status, 201);
    let agents = api.get("/api/v1/agents");
    assert!(!agents.body.contains("\"3001\""), "{}", agents.body);

    // A bridge without a target: Apply refuses, naming the row; the old version stays.
    let route = api.send(
        "POST",
        "/api/v1/routes",
        r#"{"name":"broken","pattern":"^4(\\d+)$","enabled":true}"#,
    );
    assert_eq!(route.status, 201, "{}", route.body);
    let route_id = data(&route)["id"].as_i64().unwrap();
    let detail = api.send(
        "POST",
        "/api/v1/route_details",
        &json!({ "route_id": route_id, "action": "bridge", "data": "" }).to_string(),
    );
    assert_eq!(detail.status, 201, "{}", detail.body);
    let detail_id = data(&detail)["id"].as_i64().unwrap();
    let refused = api.post("/api/v1/apply", "");
    assert_eq!(refused.status, 422, "{}", refused.body);
    let refused = refused.json();
    assert_eq!(refused["data"]["applied"], false);
    assert_eq!(refused["data"]["version"], version);
    let problem = &refused["data"]["problems"][0];
    assert_eq!(problem["entity"], "route_detail");
    assert_eq!(problem["id"], detail_id);
    assert_eq!(problem["field"], "data");

    // Fixed: applied, a new version, the extension in force.
    let fixed = api.send(
        "PATCH",
        &format!("/api/v1/route_details/{detail_id}"),
        r#"{"data":"3001"}"#,
    );
    assert_eq!(fixed.status, 200, "{}", fixed.body);
    let applied = api.post("/api/v1/apply", "");
    assert_eq!(applied.status, 200, "{}", applied.body);
    assert_eq!(data(&applied)["applied"], true);
    assert!(data(&applied)["version"].as_u64().unwrap() > version);
    let agents = api.get("/api/v1/agents");
    let entry = data(&agents)
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["extension"] == "3001")
        .cloned()
        .expect("3001 in force");
    assert_eq!(entry["seat_state"], "down");
    let audit = api.get("/api/v1/audit_log?action=apply");
    assert_eq!(data(&audit)["total"], 2, "{}", audit.body);

    // Nothing runs yet: no calls, no registrations.
    assert_eq!(data(&api.get("/api/v1/calls")), json!([]));
    assert_eq!(data(&api.get("/api/v1/registrations")), json!([]));
    assert_eq!(api.get("/api/v1/calls/no-such-uuid").status, 404);
}

#[test]
fn cdrs_are_searched_with_the_gui_filters_and_exported_as_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, _logs, listeners) = admin_server(dir.path());
    let api = Api::login(&listeners["http"], "admin", PASSWORD);
    insert_cdrs(&dir.path().join("rswitch.db"));

    let search = |query: &str| -> Vec<String> {
        let answer = api.get(&format!("/api/v1/cdrs?{query}"));
        assert_eq!(answer.status, 200, "{query}: {}", answer.body);
        data(&answer)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["uuid"].as_str().unwrap().to_owned())
            .collect()
    };
    // Newest first; each filter, and filters combined.
    assert_eq!(search(""), ["c", "b", "a"]);
    assert_eq!(search("start_date=2026-11-02"), ["c", "b"]);
    assert_eq!(search("end_date=2026-11-02"), ["b", "a"]);
    assert_eq!(search("start_date=2026-11-02&end_date=2026-11-02"), ["b"]);
    assert_eq!(search("caller=100"), ["b", "a"]);
    assert_eq!(search("callee=8000"), ["c", "a"]);
    assert_eq!(search("destination=80001"), ["c"]);
    assert_eq!(search("min_duration=10"), ["c", "b"]);
    assert_eq!(search("max_duration=60&min_duration=10"), ["b"]);
    assert_eq!(search("caller=100&min_duration=10"), ["b"]);
    assert_eq!(search("caller=%25"), Vec::<String>::new());
    assert_eq!(search("per_page=1&page=2"), ["b"]);
    assert_eq!(
        data(&api.get("/api/v1/cdrs?per_page=1"))["total"],
        3,
        "the total counts every match"
    );
    for bad in ["start_date=yesterday", "min_duration=ten", "calller=1"] {
        let answer = api.get(&format!("/api/v1/cdrs?{bad}"));
        assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
    }

    // The CSV: a header, one line per match, quoted where needed.
    let csv = api.get("/api/v1/cdrs.csv?caller=100");
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 3, "{}", csv.body);
    assert!(lines[0].starts_with("id,uuid,bleg_uuid,"), "{}", lines[0]);
    assert!(
        lines[1].contains(",b,") && lines[1].contains("\"Smith, J\""),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains(",a,"), "{}", lines[2]);
}

fn insert_cdrs(database: &Path) {
    use rswitch::store::{CallDirection, Cdr};
    let cdr = |uuid: &str, caller: &str, name: &str, destination: &str, day: u32, duration: i64| {
        let start = chrono::NaiveDate::from_ymd_opt(2026, 11, day)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc();
        Cdr {
            id: 0,
            uuid: uuid.to_owned(),
            bleg_uuid: String::new(),
            sip_call_id: format!("{uuid}@test"),
            direction: CallDirection::Internal,
            local_ip: "127.0.0.1".to_owned(),
            caller_id_name: name.to_owned(),
            caller_id_number: caller.to_owned(),
            destination_number: destination.to_owned(),
            context: "default".to_owned(),
            start_stamp: start,
            answer_stamp: Some(start),
            end_stamp: start + chrono::Duration::seconds(duration),
            duration,
            billsec: duration,
            hangup_cause: "NORMAL_CLEARING".to_owned(),
            sip_code: Some(200),
            accountcode: caller.to_owned(),
            read_codec: "PCMU".to_owned(),
            write_codec: "PCMU".to_owned(),
            gateway: String::new(),
            recording_path: String::new(),
        }
    };
    with_store(database, async |store| {
        for row in [
            cdr("a", "1001", "Ann", "80000", 1, 5),
            cdr("b", "1002", "Smith, J", "2001", 2, 30),
            cdr("c", "2002", "Carl", "80001", 3, 90),
        ] {
            store.insert(&row).await.unwrap();
        }
    });
}

#[test]
fn administrators_and_passwords_and_revoked_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, _logs, listeners) = admin_server(dir.path());
    let addr = &listeners["http"];
    let admin = Api::login(addr, "admin", PASSWORD);

    let created = admin.send(
        "POST",
        "/api/v1/admin_users",
        r#"{"username":"ops","password":"ops-first-pass"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let ops_id = data(&created)["id"].as_i64().unwrap();
    assert_eq!(data(&created)["must_change_password"], true);
    assert!(!created.body.contains("argon2"));
    let short = admin.send(
        "POST",
        "/api/v1/admin_users",
        r#"{"username":"x","password":"short"}"#,
    );
    assert_eq!(short.status, 400);
    let twice = admin.send(
        "POST",
        "/api/v1/admin_users",
        r#"{"username":"ops","password":"ops-first-pass"}"#,
    );
    assert_eq!(twice.status, 409, "{}", twice.body);

    // ops changes its password: the wrong current one is refused; then its old token is void.
    let ops = Api::login(addr, "ops", "ops-first-pass");
    let wrong = ops.post(
        "/api/v1/password",
        r#"{"current_password":"guess-guess","new_password":"ops-second-pass"}"#,
    );
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    let changed = ops.post(
        "/api/v1/password",
        r#"{"current_password":"ops-first-pass","new_password":"ops-second-pass"}"#,
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(data(&changed)["must_change_password"], false);
    let void = ops.get("/api/v1/extensions?per_page=1");
    assert_eq!(void.status, 401, "{}", void.body);
    assert!(void.body.contains("revoked"), "{}", void.body);
    let ops = Api::login(addr, "ops", "ops-second-pass");
    assert_eq!(ops.get("/api/v1/extensions?per_page=1").status, 200);

    // An administrator sets another's password (ops's token is void) but not its own.
    let reset = admin.send(
        "PUT",
        &format!("/api/v1/admin_users/{ops_id}/password"),
        r#"{"password":"ops-third-pass"}"#,
    );
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(ops.get("/api/v1/extensions?per_page=1").status, 401);
    let users = admin.get("/api/v1/admin_users");
    let admin_id = data(&users)
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "admin")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let own = admin.send(
        "PUT",
        &format!("/api/v1/admin_users/{admin_id}/password"),
        r#"{"password":"whatever-123"}"#,
    );
    assert_eq!(own.status, 409);
    assert_eq!(
        admin
            .send("DELETE", &format!("/api/v1/admin_users/{admin_id}"), "")
            .status,
        409
    );

    // Removed: its tokens are void, its login fails.
    let ops = Api::login(addr, "ops", "ops-third-pass");
    let removed = admin.send("DELETE", &format!("/api/v1/admin_users/{ops_id}"), "");
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(ops.get("/api/v1/extensions?per_page=1").status, 401);
    let login = http(
        addr,
        "POST",
        "/api/login",
        &[],
        br#"{"username":"ops","password":"ops-third-pass"}"#,
    );
    assert_eq!(login.status, 401);
    let audit = admin.get("/api/v1/audit_log?entity=admin_user");
    let actions: Vec<String> = data(&audit)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["create", "password", "password", "delete"]);
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _logs, listeners) = admin_server(dir.path());
    let addr = &listeners["http"];

    // The document is open, and names every resource.
    let document = http(addr, "GET", "/api/v1/openapi.json", &[], b"");
    assert_eq!(document.status, 200);
    let document = document.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/extensions/{id}",
        "/api/v1/route_details",
        "/api/v1/cdrs.csv",
        "/api/v1/apply",
        "/api/hangup/{phone}",
    ] {
        assert!(document["paths"][path].is_object(), "{path} missing");
    }

    // The fuzzer works as an administrator of its own: it can not lock itself out.
    let admin = Api::login(addr, "admin", PASSWORD);
    let fuzzer = admin.send(
        "POST",
        "/api/v1/admin_users",
        r#"{"username":"fuzzer","password":"fuzzer-password"}"#,
    );
    assert_eq!(fuzzer.status, 201);
    let fuzzer = Api::login(addr, "fuzzer", "fuzzer-password");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = std::process::Command::new(&python)
        .args([
            "-c",
            "import sys\nfrom schemathesis.cli import schemathesis\nsys.argv[0] = 'schemathesis'\nschemathesis()",
            "run",
            &format!("http://{addr}/api/v1/openapi.json"),
            "--header",
            &format!("Authorization: Bearer {}", fuzzer.token),
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "10",
            "--seed",
            "20261125",
            "--workers",
            "2",
        ])
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| {
            panic!("{python} does not run ({e}); install it with: apt-get install python3 python3-pip && pip install schemathesis")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named"),
        "schemathesis is not installed; install it with: python3 -m pip install schemathesis\n{stderr}"
    );
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("Tested:"), "{stdout}");
    // And the server is still up and well.
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died"
    );
    assert_eq!(http(addr, "GET", "/healthz", &[], b"").status, 200);
}
