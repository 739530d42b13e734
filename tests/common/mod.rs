//! Shared test helpers: a fresh database of either backend, and running the real binary.
#![allow(dead_code)] // each test crate uses a part of these helpers
#![allow(clippy::disallowed_methods)] // drives real processes: real clock, reader threads

pub mod api;
pub mod sipp;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rswitch::store::{ConnectOptions, Store};

/// The backends every store test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, migrated database. SQLite lives in a temporary directory; PostgreSQL is a new
/// database on the server named by `RSWITCH_TEST_PG_URL` (which `make test` starts).
pub struct TestDb {
    pub store: Store,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub fn postgres_admin_url() -> String {
    std::env::var("RSWITCH_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "RSWITCH_TEST_PG_URL is not set: the PostgreSQL tests need a real server. \
             Run them through `make test` (it starts a throwaway cluster with pg_virtualenv from \
             the Debian package postgresql-common: apt-get install postgresql postgresql-common), \
             or set RSWITCH_TEST_PG_URL=postgres://USER:PASSWORD@HOST:PORT/DB for a user that may \
             create databases."
        )
    })
}

/// A URL for a brand-new database on the test PostgreSQL server.
pub async fn fresh_postgres_url() -> String {
    let admin_url = postgres_admin_url();
    let name = format!("rswitch_test_{}", rand_suffix());
    let admin = Store::connect(
        &admin_url,
        &ConnectOptions {
            max_connections: 1,
            ..ConnectOptions::default()
        },
    )
    .await
    .expect("connect to the test PostgreSQL server");
    admin
        .execute_raw("database", &format!("create database {name}"))
        .await
        .expect("create a test database");
    admin.close().await;
    let (base, _db) = admin_url.rsplit_once('/').expect("URL has a database part");
    format!("{base}/{name}")
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rswitch::secret::random_password().expose().to_lowercase()
    )
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                (
                    format!("sqlite://{}", dir.path().join("test.db").display()),
                    Some(dir),
                )
            }
            Backend::Postgres => (fresh_postgres_url().await, None),
        };
        let store = Store::connect(&url, &ConnectOptions::default())
            .await
            .expect("connect");
        store
            .migrate()
            .await
            .expect("migrations apply on an empty database");
        TestDb {
            store,
            url,
            _dir: dir,
        }
    }
}

/// Generates one `#[tokio::test]` per backend for an `async fn(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::common::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::common::Backend::Postgres).await;
            })*
        }
    };
}

/// The `rswitch` binary built for these tests.
pub fn rswitch_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rswitch"))
}

/// A `Command` for the binary with a clean `RSWITCH_*` environment and quiet logs.
pub fn rswitch_command(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(rswitch_bin());
    for (key, _) in std::env::vars() {
        if key.starts_with("RSWITCH_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("RSWITCH_DATA_DIR", data_dir)
        .env("RSWITCH_LOG", "warn")
        .env("RSWITCH_HTTP_LISTEN", "127.0.0.1:0")
        .env("RSWITCH_SIP_UDP", "127.0.0.1:0")
        .env("RSWITCH_SIP_TCP", "127.0.0.1:0")
        .env("RSWITCH_SIP_WS", "127.0.0.1:0")
        .stdin(Stdio::null());
    cmd
}

/// A running `rswitch serve`, killed when dropped.
pub struct Server {
    pub child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback (bound and released).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 GET; returns (status, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// Log lines of a running server, read from its JSON log on stderr.
pub struct LogReader {
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
    pub seen: Vec<serde_json::Value>,
}

impl LogReader {
    /// Waits (up to `timeout`) for a log line whose message is `message`.
    pub fn wait_for(&mut self, message: &str, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if line["fields"]["message"] == message {
                return Some(line);
            }
        }
    }
}

impl LogReader {
    /// The lines logged so far that were not read yet, one per line (for failure messages).
    pub fn drain(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen
            .iter()
            .map(|l| format!("{} {}", l["level"], l["fields"]))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits (up to `timeout`) for a log line that `matches`, looking at the lines already
    /// seen first.
    pub fn wait_for_with(
        &mut self,
        timeout: Duration,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        if let Some(line) = self.seen.iter().find(|l| matches(l)) {
            return Some(line.clone());
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if matches(&line) {
                return Some(line);
            }
        }
    }
}

/// Starts `rswitch serve` from `cmd` with JSON logs at info level, waits until it serves, and
/// returns it with its HTTP address.
pub fn start_server(cmd: Command) -> (Server, LogReader, String) {
    let (server, logs, listeners) = start_server_with_listeners(cmd);
    let http = listeners.get("http").expect("an http listener").clone();
    (server, logs, http)
}

/// Like [`start_server`], returning every bound listener by name (`http`, `sip_udp`, …).
pub fn start_server_with_listeners(
    mut cmd: Command,
) -> (Server, LogReader, std::collections::HashMap<String, String>) {
    use std::io::BufRead;
    cmd.arg("serve")
        .env("RSWITCH_LOG", "info")
        .env("RSWITCH_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = cmd.spawn().expect("start rswitch serve");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let value = serde_json::from_str(&line)
                .unwrap_or_else(|_| serde_json::json!({"fields": {"message": line}}));
            if tx.send(value).is_err() {
                break;
            }
        }
    });
    let server = Server { child };
    let mut logs = LogReader {
        lines: rx,
        seen: Vec::new(),
    };
    logs.wait_for("rswitch is serving", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("server did not report serving; log: {:#?}", logs.seen));
    let listeners = logs
        .seen
        .iter()
        .filter(|l| l["fields"]["message"] == "listening")
        .filter_map(|l| {
            Some((
                l["fields"]["listener"].as_str()?.to_owned(),
                l["fields"]["address"].as_str()?.to_owned(),
            ))
        })
        .collect();
    (server, logs, listeners)
}

/// Sends a signal to a child process with kill(1).
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

/// Waits for a child to exit, up to `timeout`; kills it and panics if it does not.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The password of extension `number`, read with `rswitch extensions list` on `data_dir`.
/// Runs `cmd` (an `rswitch` command line), which must succeed (else its stderr is the
/// panic); its standard output.
pub fn succeeded(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run rswitch");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

pub fn extension_password(data_dir: &std::path::Path, number: &str) -> String {
    extension_password_in(data_dir, None, number)
}

/// As [`extension_password`], in the database at `db_url` when given.
pub fn extension_password_in(
    data_dir: &std::path::Path,
    db_url: Option<&str>,
    number: &str,
) -> String {
    let mut cmd = rswitch_command(data_dir);
    if let Some(url) = db_url {
        cmd.env("RSWITCH_DB_URL", url);
    }
    let list = succeeded(cmd.args(["extensions", "list", "--format", "csv"]));
    let line = list
        .lines()
        .find(|l| l.split(',').next() == Some(number))
        .unwrap_or_else(|| panic!("extension {number} is not in the list"));
    line.rsplit(',')
        .next()
        .expect("a password column")
        .to_owned()
}

/// An RFC 5118 message made usable: the archive has bare LF line ends and a stale
/// Content-Length; this gives CRLF and the body's real length.
pub fn rfc5118_message(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let body = body.replace('\n', "\r\n");
    let head: Vec<String> = head
        .lines()
        .map(|l| {
            if l.to_ascii_lowercase().starts_with("content-length") {
                format!("Content-Length: {}", body.len())
            } else {
                l.to_owned()
            }
        })
        .collect();
    format!("{}\r\n\r\n{}", head.join("\r\n"), body).into_bytes()
}
