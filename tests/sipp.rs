//! Registration with SIPp (Debian `sip-tester`), the reference SIP load tool, over UDP and TCP:
//! 100 extensions register with digest authentication, refresh and unregister; wrong
//! passwords are challenged again and never accepted; OPTIONS pings are answered.
#![allow(clippy::disallowed_methods)] // runs real processes

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn sipp() -> PathBuf {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("sipp"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("sipp is not installed: apt-get install sip-tester (make test installs it)")
    })
}

fn scenario(name: &str) -> String {
    format!("{}/tests/sipp/{name}.xml", env!("CARGO_MANIFEST_DIR"))
}

/// Writes a SIPp injection file for extensions `first..first+count` with their real
/// passwords (read with `rswitch extensions list`): number; auth keyword; wrong-auth keyword.
fn users_file(data_dir: &Path, first: u32, count: u32) -> PathBuf {
    let list = succeeded(rswitch_command(data_dir).args(["extensions", "list", "--format", "csv"]));
    let mut file = String::from("SEQUENTIAL\n");
    for line in list.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let number: u32 = cells[0].parse().unwrap();
        if (first..first + count).contains(&number) {
            let password = cells[3];
            file.push_str(&format!(
                "{number};[authentication username={number} password={password}];[authentication username={number} password=wrong{password}]\n"
            ));
        }
    }
    let path = data_dir.join(format!("users-{first}.csv"));
    std::fs::write(&path, file).unwrap();
    path
}

/// Runs a SIPp scenario; returns (exit code, successful calls, failed calls, output).
fn run_sipp(
    dir: &Path,
    target: &str,
    scenario_name: &str,
    transport: &str,
    users: Option<&Path>,
    calls: u32,
) -> (i32, u32, u32, String) {
    let mut cmd = Command::new(sipp());
    cmd.current_dir(dir)
        .arg(target)
        .args(["-sf", &scenario(scenario_name)])
        .args(["-m", &calls.to_string(), "-r", "200", "-l", "100"])
        .args([
            "-t",
            transport,
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-timeout",
            "60s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ]);
    if let Some(users) = users {
        cmd.arg("-inf").arg(users);
    }
    let out = cmd.output().expect("run sipp");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let count = |label: &str| -> u32 {
        text.lines()
            .rfind(|l| l.contains(label))
            .and_then(|l| l.split('|').nth(2))
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0)
    };
    let errors: String = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    (
        out.status.code().unwrap_or(-1),
        count("Successful call"),
        count("Failed call"),
        errors,
    )
}

#[test]
fn hundred_extensions_register_refresh_and_unregister_over_udp_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let udp_users = users_file(dir.path(), 1000, 100);
    let tcp_users = users_file(dir.path(), 1100, 100);
    let (_server, _logs, listeners) = start_server_with_listeners(rswitch_command(dir.path()));
    for (transport, target, users) in [
        ("u1", &listeners["sip_udp"], &udp_users),
        ("t1", &listeners["sip_tcp"], &tcp_users),
    ] {
        let (code, ok, failed, errors) =
            run_sipp(dir.path(), target, "register", transport, Some(users), 100);
        assert_eq!(
            (code, ok, failed),
            (0, 100, 0),
            "register over {transport}: {errors}"
        );
        let (code, ok, failed, errors) = run_sipp(
            dir.path(),
            target,
            "register_wrong_password",
            transport,
            Some(users),
            100,
        );
        assert_eq!(
            (code, ok, failed),
            (0, 100, 0),
            "wrong passwords over {transport} are never accepted: {errors}"
        );
        let (code, ok, failed, errors) =
            run_sipp(dir.path(), target, "options", transport, None, 20);
        assert_eq!(
            (code, ok, failed),
            (0, 20, 0),
            "OPTIONS over {transport}: {errors}"
        );
    }
}
