//! SIPp phones for the tests that make calls through a running rswitch (Debian
//! `sip-tester`): scenarios in `tests/sipp/call/`, injection files with each extension's
//! password, a phone that registers and waits, one call between two phones.
#![allow(clippy::disallowed_methods)] // drives real processes: real clock

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rswitch::store::{ConnectOptions, Store};

use super::{
    LogReader, Server, extension_password_in, rswitch_command, start_server_with_listeners,
};

pub fn sipp() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("sipp"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("sipp is not installed: apt-get install sip-tester (make test installs it)")
        })
}

pub fn scenario(name: &str) -> String {
    format!("{}/tests/sipp/call/{name}.xml", env!("CARGO_MANIFEST_DIR"))
}

/// A free UDP port on loopback (bound and released).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first of four free UDP ports in a row for a SIPp's media (it binds the port and the
/// next ones for RTCP and video), from 10000-16383: below rswitch's RTP range and the
/// kernel's ephemeral ports, where the ports other processes of the test pick at random
/// could take them between the check and SIPp's bind.
pub fn free_media_ports() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        10_000 + (std::process::id() % 1_500) as u16 * 4,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let mut first = NEXT.fetch_add(4, Ordering::SeqCst);
        if first > 16_380 {
            NEXT.store(10_004, Ordering::SeqCst);
            first = 10_000;
        }
        let all_free =
            (first..first + 4).all(|port| std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok());
        if all_free {
            return first;
        }
    }
}

/// The password of extension `number` in the server's database: the SQLite one of `dir`, or
/// the database named in `dir/db-url` (the PostgreSQL test writes it). Kept in
/// `dir/password-NUMBER` once read, so calls need no database.
pub fn password_of(dir: &Path, number: &str) -> String {
    let cached = dir.join(format!("password-{number}"));
    if let Ok(password) = std::fs::read_to_string(&cached) {
        return password;
    }
    let password = read_password(dir, number);
    std::fs::write(&cached, &password).unwrap();
    password
}

pub fn read_password(dir: &Path, number: &str) -> String {
    let url = std::fs::read_to_string(dir.join("db-url")).ok();
    extension_password_in(dir, url.as_deref().map(str::trim), number)
}

/// An injection file: number; its authentication keyword; the number it calls.
pub fn users_file(dir: &Path, name: &str, number: &str, callee: &str) -> PathBuf {
    let password = password_of(dir, number);
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(
        &path,
        format!(
            "SEQUENTIAL\n{number};[authentication username={number} password={password}];{callee}\n"
        ),
    )
    .unwrap();
    path
}

pub fn sipp_command(dir: &Path, target: &str, scenario_name: &str, port: u16) -> Command {
    sipp_command_within(dir, target, scenario_name, port, 40)
}

/// A SIPp run that fails when its scenario takes longer than `limit_secs`.
pub fn sipp_command_within(
    dir: &Path,
    target: &str,
    scenario_name: &str,
    port: u16,
    limit_secs: u64,
) -> Command {
    let mut cmd = Command::new(sipp());
    cmd.current_dir(dir)
        .arg(target)
        .args(["-sf", &scenario(scenario_name)])
        .args(["-m", "1", "-t", "u1", "-i", "127.0.0.1"])
        .args(["-p", &port.to_string()])
        .args([
            "-timeout",
            &format!("{limit_secs}s"),
            "-timeout_error",
            "-nostdin",
            "-trace_err",
            "-mp",
            &free_media_ports().to_string(),
        ]);
    cmd
}

pub fn errors_of(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .map(|e| {
            format!(
                "{}:\n{}",
                e.file_name().to_string_lossy(),
                std::fs::read_to_string(e.path()).unwrap_or_default()
            )
        })
        .collect()
}

pub fn run(mut cmd: Command) -> std::process::Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.output().expect("run sipp")
}

/// One call: the callee registers from its port and waits with `callee_scenario`; the
/// caller runs `caller_scenario`. Both must end successfully.
pub fn call(
    dir: &Path,
    target: &str,
    caller: &str,
    callee: &str,
    caller_scenario: &str,
    callee_scenario: Option<&str>,
) {
    call_within(
        dir,
        target,
        [caller, callee],
        caller_scenario,
        callee_scenario,
        40,
    );
}

/// [`call`] for scenarios that may take up to `limit_secs`.
pub fn call_within(
    dir: &Path,
    target: &str,
    [caller, callee]: [&str; 2],
    caller_scenario: &str,
    callee_scenario: Option<&str>,
    limit_secs: u64,
) {
    let port = free_udp_port();
    let callee_users = users_file(dir, &format!("callee-{callee}-{port}"), callee, caller);
    let mut uas: Option<Child> = None;
    if let Some(callee_scenario) = callee_scenario {
        let mut register = sipp_command(dir, target, "register", port);
        register.arg("-inf").arg(&callee_users);
        let out = run(register);
        assert!(
            out.status.success(),
            "the callee {callee} could not register: {}",
            errors_of(dir)
        );
        let mut waiting = sipp_command_within(dir, target, callee_scenario, port, limit_secs);
        waiting.stdout(Stdio::null()).stderr(Stdio::piped());
        uas = Some(waiting.spawn().expect("start the callee"));
        std::thread::sleep(Duration::from_millis(300));
    }
    let caller_users = users_file(dir, &format!("caller-{caller}-{port}"), caller, callee);
    let mut dial = sipp_command_within(dir, target, caller_scenario, free_udp_port(), limit_secs);
    dial.arg("-inf").arg(&caller_users);
    let out = run(dial);
    let caller_ok = out.status.success();
    let callee_ok = uas.map(|mut uas| {
        let deadline = Instant::now() + Duration::from_secs(limit_secs);
        loop {
            if let Some(status) = uas.try_wait().unwrap() {
                break status.success();
            }
            if Instant::now() > deadline {
                let _ = uas.kill();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    assert!(
        caller_ok && callee_ok.unwrap_or(true),
        "{caller_scenario} / {callee_scenario:?}: caller ok {caller_ok}, callee ok {callee_ok:?}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("call") || l.contains("rror"))
            .collect::<Vec<_>>()
            .join("\n"),
        errors_of(dir)
    );
}

pub async fn database(dir: &Path) -> Store {
    Store::connect(
        &format!("sqlite://{}", dir.join("rswitch.db").display()),
        &ConnectOptions::default(),
    )
    .await
    .unwrap()
}

/// Starts rswitch on a fresh SQLite database in `path`, with `config` (TOML; empty for the
/// defaults): the server, its log, its SIP UDP address and its store.
pub async fn server_in(path: &Path, config: &str) -> (Server, LogReader, String, Store) {
    let file = path.join("rswitch.toml");
    std::fs::write(&file, config).unwrap();
    let mut cmd = rswitch_command(path);
    cmd.arg("--config").arg(&file);
    let (server, logs, listeners) = start_server_with_listeners(cmd);
    let target = listeners["sip_udp"].clone();
    let db = database(path).await;
    (server, logs, target, db)
}

/// Waits for a SIPp process to end; true when it succeeded.
pub fn finished_ok(mut child: Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Registers `number` from a fresh port and starts `scenario` waiting there (with the
/// number's injection file and `-key target TARGET`).
pub fn waiting_phone(
    dir: &Path,
    target: &str,
    number: &str,
    scenario_name: &str,
    key_target: &str,
) -> Child {
    let port = free_udp_port();
    let users = users_file(dir, &format!("phone-{number}-{port}"), number, key_target);
    let mut register = sipp_command(dir, target, "register", port);
    register.arg("-inf").arg(&users);
    let out = run(register);
    assert!(
        out.status.success(),
        "{number} could not register: {}",
        errors_of(dir)
    );
    let mut waiting = sipp_command(dir, target, scenario_name, port);
    waiting
        .arg("-inf")
        .arg(&users)
        .args(["-key", "target", key_target])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = waiting.spawn().expect("start a phone");
    std::thread::sleep(Duration::from_millis(300));
    child
}
