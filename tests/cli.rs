//! The real binary: configuration precedence and errors, serving, signals, and the CLI.
#![allow(clippy::disallowed_methods)] // measures real elapsed time of a real process

mod common;

use std::time::Duration;

use common::*;

fn health(addr: &str) -> serde_json::Value {
    let (status, body) = http_get(addr, "/healthz").expect("GET /healthz");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("healthz is JSON")
}

#[test]
fn config_defaults_prints_every_key_and_variable() {
    let out = std::process::Command::new(rswitch_bin())
        .args(["config", "defaults"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, rswitch::config::DEFAULTS_TOML);
    let parsed: toml::Table = text.parse().expect("the defaults are valid TOML");
    assert!(parsed.contains_key("sip") && parsed.contains_key("db"));
    for (name, _) in rswitch::config::ENV_OVERRIDES {
        assert!(text.contains(name), "{name} is documented in the defaults");
    }
}

#[test]
fn codecs_lists_what_can_be_transcoded_and_what_only_relayed() {
    let out = std::process::Command::new(rswitch_bin())
        .arg("codecs")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let can = |codec: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(codec))
            .and_then(|l| l.split_whitespace().nth(3))
            .unwrap_or_else(|| panic!("{codec} is listed: {text}"))
            .to_owned()
    };
    for codec in ["PCMU", "PCMA", "G729", "GSM"] {
        assert_eq!(can(codec), "transcode", "{codec}");
    }
    for codec in ["iLBC", "G723"] {
        assert_eq!(can(codec), "relay", "{codec}");
    }
    assert!(text.contains("opus") && text.contains("G722") && text.contains("AMR"));
}

#[test]
fn bad_environment_value_exits_2_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("RSWITCH_HTTP_LISTEN", "bogus"),
        ("RSWITCH_RTP_PORTS", "30000-20000"),
        ("RSWITCH_LOG_FORMAT", "xml"),
    ] {
        let out = rswitch_command(dir.path())
            .env(name, value)
            .arg("serve")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}

#[test]
fn bad_file_value_and_unknown_key_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rswitch.toml");
    std::fs::write(&file, "[sip]\nudp = \"nowhere\"\n").unwrap();
    let out = rswitch_command(dir.path())
        .env_remove("RSWITCH_SIP_UDP")
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sip.udp") && stderr.contains("rswitch.toml"),
        "{stderr}"
    );

    std::fs::write(&file, "[http]\nlisten_address = \"0.0.0.0:1\"\n").unwrap();
    let out = rswitch_command(dir.path())
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http.listen_address"));

    let out = rswitch_command(dir.path())
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn environment_beats_file_beats_defaults_in_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data_from_file = dir.path().join("from-file");
    let file = dir.path().join("rswitch.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {:?}\n[http]\nlisten = \"127.0.0.1:1\"\n[shutdown]\ndrain_secs = 3\n",
            data_from_file.display().to_string()
        ),
    )
    .unwrap();
    let mut cmd = rswitch_command(dir.path());
    cmd.env_remove("RSWITCH_DATA_DIR")
        .env("RSWITCH_HTTP_LISTEN", "127.0.0.1:0")
        .arg("--config")
        .arg(&file);
    let (mut server, _logs, addr) = start_server(cmd);
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":1"),
        "env wins over the file: {addr}"
    );
    assert!(
        data_from_file.join("rswitch.db").exists(),
        "data_dir from the file wins over the default"
    );

    let h = health(&addr);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["database"]["backend"], "sqlite");
    assert_eq!(h["snapshot"]["version"], 1);
    assert_eq!(
        h["listeners"]["http"],
        addr.as_str(),
        "healthz reports the bound address"
    );

    signal(&server.child, "TERM");
    let status = wait_exit(&mut server.child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "SIGTERM stops cleanly");
}

#[test]
fn first_start_writes_the_admin_password_once_and_serves_metrics() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = rswitch_command(dir.path());
    cmd.env("RSWITCH_HTTP_LISTEN", "127.0.0.1:0");
    let (mut server, mut logs, addr) = start_server(cmd);

    let file = dir.path().join("initial-admin-password");
    let password = std::fs::read_to_string(&file).expect("initial-admin-password written");
    let password = password.trim();
    assert!(password.len() >= 12);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let printed: Vec<_> = logs
        .seen
        .iter()
        .filter(|l| l["fields"]["password"] == password)
        .collect();
    assert_eq!(printed.len(), 1, "the password is printed exactly once");

    let (status, metrics) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("rswitch_snapshot_version 1"), "{metrics}");
    assert!(
        metrics.contains("rswitch_database_up{backend=\"sqlite\"} 1"),
        "{metrics}"
    );
    // The media threads run from the start, with no endpoint open yet.
    assert!(metrics.contains("rswitch_media_endpoints 0"), "{metrics}");
    assert!(
        metrics.contains("rswitch_media_packets_received_total 0"),
        "{metrics}"
    );

    // SIGHUP applies the configuration: a new snapshot version.
    signal(&server.child, "HUP");
    assert!(
        logs.wait_for("configuration applied", Duration::from_secs(20))
            .is_some(),
        "{:#?}",
        logs.seen
    );
    assert_eq!(health(&addr)["snapshot"]["version"], 2);
    // The counter is bumped right after the log line: wait for it rather than race it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !http_get(&addr, "/metrics")
        .unwrap()
        .1
        .contains("rswitch_apply_total{outcome=\"applied\"} 1")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the applied Apply is counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    signal(&server.child, "INT");
    assert_eq!(
        wait_exit(&mut server.child, Duration::from_secs(20)).code(),
        Some(0)
    );
    drop(server);

    // A second start changes nothing and prints no password.
    let mut cmd = rswitch_command(dir.path());
    cmd.env("RSWITCH_HTTP_LISTEN", "127.0.0.1:0");
    let (mut server, logs, _addr) = start_server(cmd);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), password);
    assert!(
        !logs
            .seen
            .iter()
            .any(|l| l["fields"].get("password").is_some())
    );
    signal(&server.child, "TERM");
    assert_eq!(
        wait_exit(&mut server.child, Duration::from_secs(20)).code(),
        Some(0)
    );
}

#[test]
fn extensions_list_csv_has_the_provisioning_columns() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        succeeded(rswitch_command(dir.path()).args(["extensions", "list", "--format", "csv"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "number,name,group,password");
    assert_eq!(lines.len(), 501);
    let first: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(&first[..3], ["1000", "1000", "默认"]);
    assert!(first[3].len() >= 12);
    assert!(lines[500].starts_with("1499,"));

    let out = rswitch_command(dir.path())
        .args([
            "extensions",
            "create",
            "--from",
            "1498",
            "--to",
            "1502",
            "--group",
            "Sales, East",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("created 3 extensions"), "{stdout}");
    assert!(stdout.contains("skipped 1498"), "{stdout}");
    let out = rswitch_command(dir.path())
        .args(["extensions", "list", "--format", "csv"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("1502,1502,\"Sales, East\",")),
        "CSV quoting"
    );
    assert_eq!(text.lines().count(), 504);

    let out = rswitch_command(dir.path())
        .args(["extensions", "create", "--from", "9", "--to", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn admin_reset_password_prints_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = rswitch_command(dir.path())
        .args(["admin", "reset-password"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let password = stdout.trim().rsplit(' ').next().unwrap();
    assert!(
        stdout.starts_with("new password for admin: ") && password.len() >= 12,
        "{stdout}"
    );
    let out = rswitch_command(dir.path())
        .args(["admin", "reset-password", "--password", "short"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unreachable_postgres_is_retried_then_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rswitch.toml");
    std::fs::write(&file, "[db]\nconnect_retry_secs = 2\n").unwrap();
    let started = std::time::Instant::now();
    let out = rswitch_command(dir.path())
        .env(
            "RSWITCH_DB_URL",
            "postgres://rswitch:hunter2-secret@127.0.0.1:1/rswitch",
        )
        .env("RSWITCH_LOG", "warn")
        .arg("--config")
        .arg(&file)
        .arg("migrate")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("database unreachable after"), "{stderr}");
    assert!(
        stderr.contains("PostgreSQL unreachable, retrying"),
        "it retried: {stderr}"
    );
    assert!(
        !stderr.contains("hunter2-secret"),
        "the password never reaches the log: {stderr}"
    );
    assert!(
        elapsed >= Duration::from_secs(1),
        "it kept trying for the configured time"
    );
}

#[tokio::test]
async fn serves_on_postgresql() {
    let url = fresh_postgres_url().await;
    let dir = tempfile::tempdir().unwrap();
    succeeded(
        rswitch_command(dir.path())
            .env("RSWITCH_DB_URL", &url)
            .arg("migrate"),
    );
    let mut cmd = rswitch_command(dir.path());
    cmd.env("RSWITCH_DB_URL", &url)
        .env("RSWITCH_HTTP_LISTEN", "127.0.0.1:0");
    let (mut server, _logs, addr) = start_server(cmd);
    let h = tokio::task::spawn_blocking(move || health(&addr))
        .await
        .unwrap();
    assert_eq!(h["database"]["backend"], "postgres");
    assert_eq!(h["status"], "ok");
    signal(&server.child, "TERM");
    assert_eq!(
        wait_exit(&mut server.child, Duration::from_secs(20)).code(),
        Some(0)
    );
}
