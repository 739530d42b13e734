//! A small HTTP/1.1 client for the API tests: requests with headers and a body, JSON
//! answers, a logged-in client.
#![allow(clippy::disallowed_methods)] // real sockets

use std::io::{Read, Write};
use std::time::Duration;

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Header lines, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} (status {})", self.body, self.status))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // A server refusing a large body may close before reading it all.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    Answer {
        status,
        headers,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    }
}

/// The body of a chunked answer.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

/// A client with a token from `POST /api/login`.
pub struct Api {
    pub addr: String,
    pub token: String,
}

impl Api {
    /// Logs in as `username`.
    pub fn login(addr: &str, username: &str, password: &str) -> Api {
        let answer = http(
            addr,
            "POST",
            "/api/login",
            &[("Content-Type", "application/json")],
            serde_json::json!({"username": username, "password": password})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(answer.status, 200, "login: {}", answer.body);
        let token = answer.json()["token"].as_str().unwrap().to_owned();
        Api {
            addr: addr.to_owned(),
            token,
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        let auth = format!("Nway {}", self.token);
        http(&self.addr, "GET", path, &[("Authorization", &auth)], b"")
    }

    /// Any method, with a JSON body (may be empty).
    pub fn send(&self, method: &str, path: &str, body: &str) -> Answer {
        let auth = format!("Bearer {}", self.token);
        http(
            &self.addr,
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    }

    pub fn post(&self, path: &str, body: &str) -> Answer {
        let auth = format!("Nway {}", self.token);
        http(
            &self.addr,
            "POST",
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    }
}

/// Waits (15 s at most) until extension `number`'s call state (`extension_info`) is `state`;
/// `context` tells what to show if it never is (the phones' logs).
pub fn until_call_state(api: &Api, number: &str, state: &str, context: &dyn Fn() -> String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let path = format!("/api/extension_info/{number}");
    while api.get(&path).json()["data"]["CallState"] != state {
        assert!(
            std::time::Instant::now() < deadline,
            "{number} never became {state}:\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
