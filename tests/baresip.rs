//! A real softphone, baresip (Debian `baresip-core`), registers extension 1000 with its
//! password and stays registered across re-registrations.
#![allow(clippy::disallowed_methods)] // runs real processes, waits on real time

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rswitch::store::{ConnectOptions, Registration, Store};

fn baresip() -> PathBuf {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("baresip"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("baresip is not installed: apt-get install baresip-core (make test installs it)")
    })
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The bindings of `aor` in the database of the running server.
async fn bindings(db: &Store, aor: &str) -> Vec<Registration> {
    db.all::<Registration>()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.aor == aor)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_registers_and_stays_registered_across_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rswitch.toml");
    // Short registrations so refreshes happen within the test.
    std::fs::write(&config, "[sip]\nmin_expires = 5\n").unwrap();
    let password = extension_password(dir.path(), "1000");

    let mut cmd = rswitch_command(dir.path());
    cmd.arg("--config").arg(&config);
    let (_server, _logs, listeners) = start_server_with_listeners(cmd);
    let sip = listeners["sip_udp"].clone();

    let phone_dir = dir.path().join("baresip");
    std::fs::create_dir_all(&phone_dir).unwrap();
    let sip_port = free_port();
    std::fs::write(
        phone_dir.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\ndns_server 127.0.0.1:53\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule_app account.so\n"
        ),
    )
    .unwrap();
    std::fs::write(
        phone_dir.join("accounts"),
        format!("<sip:1000@{sip};transport=udp>;auth_pass={password};regint=10\n"),
    )
    .unwrap();
    let mut phone = Command::new(baresip())
        .arg("-f")
        .arg(&phone_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start baresip");

    let db = Store::connect(
        &format!("sqlite://{}", dir.path().join("rswitch.db").display()),
        &ConnectOptions::default(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut first: Option<Registration> = None;
    let mut refreshed = None;
    while Instant::now() < deadline && refreshed.is_none() {
        let rows = bindings(&db, "1000").await;
        if let Some(row) = rows.first() {
            match &first {
                None => first = Some(row.clone()),
                Some(f) if row.cseq > f.cseq && row.call_id == f.call_id => {
                    refreshed = Some(row.clone())
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = phone.kill();
    let output = phone.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let first = first.unwrap_or_else(|| panic!("baresip never registered; its log:\n{log}"));
    assert!(
        first.contact.starts_with("sip:1000") && first.contact.contains("@127.0.0.1:"),
        "{first:?}"
    );
    assert_eq!(
        first.source.rsplit_once(':').map(|(ip, _)| ip),
        Some("127.0.0.1"),
        "{first:?}"
    );
    assert!(first.user_agent.starts_with("baresip"), "{first:?}");
    let refreshed =
        refreshed.unwrap_or_else(|| panic!("baresip did not re-register in time; its log:\n{log}"));
    assert!(
        refreshed.expires_at > first.expires_at,
        "the refresh moved the expiry"
    );
}
