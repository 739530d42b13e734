//! The running server speaking SIP: the RFC 4475 torture messages over UDP get the answer a
//! registrar/B2BUA owes them, stream framing errors close TCP connections, keep-alives are
//! answered, and OPTIONS works over UDP, TCP, TLS, WS and WSS.
#![allow(clippy::disallowed_methods)] // real sockets, real clock

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::*;

/// What the server answers each corpus file over UDP: the final status, or `None` for silence.
/// A new INVITE is challenged for credentials (407, the call engine authenticates callers);
/// a request in a dialog that does not exist gets 481; REGISTERs are challenged (401)
/// because they carry no credentials; unknown methods get 501.
const EXPECTED_UDP: &[(&str, Option<u16>)] = &[
    ("wsinv.dat", Some(481)),
    ("intmeth.dat", Some(501)),
    ("esc01.dat", Some(407)),
    ("escnull.dat", Some(401)),
    ("esc02.dat", Some(501)),
    ("lwsdisp.dat", Some(200)),
    ("longreq.dat", Some(407)),
    ("dblreq.dat", Some(401)),
    ("semiuri.dat", Some(200)),
    ("transports.dat", Some(200)),
    ("mpart01.dat", Some(405)),
    ("unreason.dat", None),
    ("noreason.dat", None),
    ("badinv01.dat", Some(400)),
    ("clerr.dat", Some(400)),
    ("ncl.dat", Some(400)),
    ("scalar02.dat", Some(400)),
    ("scalarlg.dat", None),
    ("quotbal.dat", Some(400)),
    ("ltgtruri.dat", Some(400)),
    ("lwsruri.dat", Some(400)),
    ("lwsstart.dat", Some(400)),
    ("trws.dat", Some(400)),
    ("escruri.dat", Some(400)),
    ("baddate.dat", Some(407)),
    ("regbadct.dat", Some(400)),
    ("badaspec.dat", Some(400)),
    ("baddn.dat", Some(400)),
    ("badvers.dat", Some(505)),
    ("mismatch01.dat", Some(400)),
    ("mismatch02.dat", Some(501)),
    ("bigcode.dat", None),
    ("badbranch.dat", Some(200)),
    ("insuf.dat", Some(400)),
    ("unkscm.dat", Some(416)),
    ("novelsc.dat", Some(416)),
    ("unksm2.dat", Some(400)),
    ("bext01.dat", Some(420)),
    ("invut.dat", Some(415)),
    ("regaut01.dat", Some(401)),
    ("multi01.dat", Some(400)),
    ("mcl01.dat", Some(400)),
    ("bcast.dat", None),
    ("zeromf.dat", Some(200)),
    ("cparam01.dat", Some(401)),
    ("cparam02.dat", Some(401)),
    ("regescrt.dat", Some(401)),
    ("sdp01.dat", Some(406)),
    ("inv2543.dat", Some(407)),
    ("test.dat", None),
];

fn corpus(file: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/rfc4475/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn start() -> (
    Server,
    LogReader,
    HashMap<String, String>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let cmd = rswitch_command(dir.path());
    let (server, logs, listeners) = start_server_with_listeners(cmd);
    (server, logs, listeners, dir)
}

/// The status code of a response datagram or stream message.
fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes).ok()?;
    let line = text.lines().next()?;
    line.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// The server-transaction key of a corpus message (RFC 3261 §17.2.3: branch, sent-by,
/// method), if it parses. Several corpus files share one: sent to one server they are, by the
/// RFC's rules, retransmissions of each other.
fn transaction_key(raw: &[u8]) -> Option<String> {
    use rswitch::sip::message::{Limits, Message, parse_datagram};
    let Ok(Message::Request(r)) = parse_datagram(raw, &Limits::default()) else {
        return None;
    };
    let via = r.headers.via().ok()?.into_iter().next()?;
    Some(format!(
        "{}|{}:{:?}|{}",
        via.branch()?.to_lowercase(),
        via.host,
        via.port,
        r.method
    ))
}

/// Splits `files` into groups in which no two share a transaction key, keeping their order.
fn waves<T: Copy>(
    files: &[(&'static str, T)],
    key: impl Fn(&str) -> Option<String>,
) -> Vec<Vec<(&'static str, T)>> {
    let mut waves: Vec<Vec<(&'static str, T)>> = Vec::new();
    let mut keys: Vec<Vec<String>> = Vec::new();
    for &(file, expected) in files {
        let key = key(file);
        let wave = (0..)
            .find(|&w| {
                key.as_ref()
                    .is_none_or(|k| !keys.get(w).is_some_and(|ks: &Vec<String>| ks.contains(k)))
            })
            .expect("some wave has room");
        if waves.len() <= wave {
            waves.push(Vec::new());
            keys.push(Vec::new());
        }
        waves[wave].push((file, expected));
        keys[wave].extend(key);
    }
    waves
}

#[test]
fn rfc4475_messages_over_udp_get_the_answer_the_index_names() {
    assert_eq!(EXPECTED_UDP.len(), 50, "the whole corpus");
    // Files whose transaction keys collide go to separate server runs ("waves").
    let waves = waves(EXPECTED_UDP, |file| transaction_key(&corpus(file)));
    let mut failures = Vec::new();
    let mut checked = 0;
    for wave in &waves {
        let (_server, _logs, listeners, _dir) = start();
        let target = &listeners["sip_udp"];
        // One socket per message, so retransmitted answers never mix.
        let sockets: Vec<(&str, Option<u16>, UdpSocket)> = wave
            .iter()
            .map(|&(file, expected)| {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket.send_to(&corpus(file), target).unwrap();
                (file, expected, socket)
            })
            .collect();
        for (file, expected, socket) in &sockets {
            let deadline = Instant::now()
                + if expected.is_some() {
                    Duration::from_secs(5)
                } else {
                    Duration::from_millis(700)
                };
            let mut answer = None;
            let mut buffer = [0u8; 65_535];
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                socket
                    .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .unwrap();
                let Ok(n) = socket.recv(&mut buffer) else {
                    break;
                };
                if let Some(s) = status_of(&buffer[..n]).filter(|s| *s >= 200) {
                    answer = Some(s);
                    break;
                }
            }
            if answer != *expected {
                failures.push(format!("{file}: expected {expected:?}, got {answer:?}"));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 50);
    assert!(
        failures.is_empty(),
        "{} of 50 wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn tcp(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads until the peer closes or the timeout; returns what was read and whether it closed.
fn read_until_close(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut all = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (all, true),
            Ok(n) => all.extend_from_slice(&buffer[..n]),
            Err(_) => return (all, false),
        }
    }
}

const OPTIONS_TCP: &str = "OPTIONS sip:rswitch@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKtcp1\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:rswitch@127.0.0.1>\r\nCall-ID: tcp-options-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

#[test]
fn tcp_answers_options_and_keepalive_and_closes_on_framing_errors() {
    let (_server, _logs, listeners, _dir) = start();
    let addr = &listeners["sip_tcp"];

    let mut s = tcp(addr);
    s.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    s.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n", "RFC 5626 pong");
    s.write_all(OPTIONS_TCP.as_bytes()).unwrap();
    let mut buffer = [0u8; 4096];
    let n = s.read(&mut buffer).unwrap();
    let answer = String::from_utf8_lossy(&buffer[..n]).into_owned();
    assert_eq!(status_of(&buffer[..n]), Some(200), "{answer}");
    assert!(
        answer.contains("Allow: ") && answer.contains("REGISTER"),
        "{answer}"
    );

    for file in ["ncl.dat", "mcl01.dat"] {
        let mut s = tcp(addr);
        s.write_all(&corpus(file)).unwrap();
        let (_, closed) = read_until_close(&mut s);
        assert!(
            closed,
            "{file}: a stream framing error closes the connection"
        );
    }
}

#[test]
fn websocket_needs_the_sip_subprotocol_and_answers_options() {
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let (_server, _logs, listeners, _dir) = start();
    let url = format!("ws://{}/", listeners["sip_ws"]);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        let ws_addr = listeners["sip_ws"].clone();
        let tcp = tokio::net::TcpStream::connect(&ws_addr).await.unwrap();
        let refused = tokio_tungstenite::client_async(url.as_str(), tcp).await;
        assert!(
            refused.is_err(),
            "no sip subprotocol: the upgrade is refused"
        );

        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
        let tcp = tokio::net::TcpStream::connect(&ws_addr).await.unwrap();
        let (mut ws, response) = tokio_tungstenite::client_async(request, tcp)
            .await
            .expect("upgrade with sip");
        assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "sip");
        let options = OPTIONS_TCP.replace("SIP/2.0/TCP", "SIP/2.0/WS");
        ws.send(Message::text(options)).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(status_of(reply.to_text().unwrap().as_bytes()), Some(200));
    });
}

#[test]
fn tls_and_wss_serve_with_the_configured_certificate() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let config = dir.path().join("rswitch.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\ntls = \"127.0.0.1:0\"\nwss = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert_path.display().to_string(),
            key_path.display().to_string()
        ),
    )
    .unwrap();
    let mut cmd = rswitch_command(dir.path());
    cmd.arg("--config").arg(&config);
    let (_server, _logs, listeners) = start_server_with_listeners(cmd);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();

        let tcp = tokio::net::TcpStream::connect(&listeners["sip_tls"])
            .await
            .unwrap();
        let mut tls = connector
            .connect(name.clone(), tcp)
            .await
            .expect("TLS handshake");
        tls.write_all(OPTIONS_TCP.replace("SIP/2.0/TCP", "SIP/2.0/TLS").as_bytes())
            .await
            .unwrap();
        let mut buffer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status_of(&buffer[..n]), Some(200), "OPTIONS over TLS");

        let tcp = tokio::net::TcpStream::connect(&listeners["sip_wss"])
            .await
            .unwrap();
        let tls = connector
            .connect(name, tcp)
            .await
            .expect("TLS handshake for WSS");
        use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
        let mut request = format!(
            "wss://localhost:{}/",
            listeners["sip_wss"].rsplit(':').next().unwrap()
        )
        .into_client_request()
        .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::client_async(request, tls)
            .await
            .expect("WSS upgrade");
        ws.send(Message::text(
            OPTIONS_TCP.replace("SIP/2.0/TCP", "SIP/2.0/WSS"),
        ))
        .await
        .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            status_of(reply.to_text().unwrap().as_bytes()),
            Some(200),
            "OPTIONS over WSS"
        );
    });
}

/// REGISTER over UDP from `socket`; returns the final response text.
fn register_once(
    socket: &UdpSocket,
    target: &str,
    user: &str,
    cseq: u32,
    authorization: Option<&str>,
) -> String {
    let local = socket.local_addr().unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "REGISTER sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bKsha{cseq}\r\nFrom: <sip:{user}@{target}>;tag=sha\r\nTo: <sip:{user}@{target}>\r\nCall-ID: sha256-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}>\r\n{auth}Max-Forwards: 70\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(request.as_bytes(), target).unwrap();
    let mut buffer = [0u8; 65_535];
    loop {
        let n = socket.recv(&mut buffer).expect("an answer to REGISTER");
        if status_of(&buffer[..n]).is_some_and(|s| s >= 200) {
            return String::from_utf8_lossy(&buffer[..n]).into_owned();
        }
    }
}

#[test]
fn sha256_digest_registers_when_configured_and_unknown_users_look_the_same() {
    use rswitch::sip::auth::{Algorithm, Challenge, NonceCount};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rswitch.toml");
    std::fs::write(&config, "[sip]\nauth_algorithms = [\"SHA-256\"]\n").unwrap();
    let password = extension_password(dir.path(), "1042");
    let mut cmd = rswitch_command(dir.path());
    cmd.arg("--config").arg(&config);
    let (_server, _logs, listeners) = start_server_with_listeners(cmd);
    let target = listeners["sip_udp"].clone();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();

    let challenge_of = |response: &str| -> String {
        assert!(response.starts_with("SIP/2.0 401 "), "{response}");
        response
            .lines()
            .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
            .unwrap()
            .to_owned()
    };
    let known = challenge_of(&register_once(&socket, &target, "1042", 1, None));
    let unknown = challenge_of(&register_once(&socket, &target, "9999", 1, None));
    let challenge = Challenge::parse(&known).unwrap();
    assert_eq!(challenge.algorithm(), Algorithm::Sha256);
    let unknown_challenge = Challenge::parse(&unknown).unwrap();
    assert_eq!(
        known.replace(challenge.nonce(), "N"),
        unknown.replace(unknown_challenge.nonce(), "N"),
        "no user enumeration"
    );

    let uri = format!("sip:{target}");
    let credentials = challenge
        .respond(
            "REGISTER",
            &uri,
            "1042",
            &password,
            "0a4f113b",
            NonceCount::FIRST,
        )
        .unwrap();
    let ok = register_once(&socket, &target, "1042", 2, Some(&credentials.to_string()));
    assert!(ok.starts_with("SIP/2.0 200 "), "{ok}");
    assert!(ok.contains("expires=300"), "{ok}");

    let wrong = challenge
        .respond(
            "REGISTER",
            &uri,
            "1042",
            "not-the-password",
            "0a4f113c",
            NonceCount::FIRST,
        )
        .unwrap();
    let refused = register_once(&socket, &target, "1042", 3, Some(&wrong.to_string()));
    assert!(refused.starts_with("SIP/2.0 401 "), "{refused}");
}

/// A server started with extra `[sip]` configuration lines.
fn start_with_sip_config(
    sip: &str,
    env: &[(&str, &str)],
) -> (Server, HashMap<String, String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rswitch.toml");
    std::fs::write(&config, format!("[sip]\n{sip}\n")).unwrap();
    let mut cmd = rswitch_command(dir.path());
    cmd.arg("--config").arg(&config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (server, _logs, listeners) = start_server_with_listeners(cmd);
    (server, listeners, dir)
}

fn options_udp(n: u32) -> String {
    format!(
        "OPTIONS sip:rswitch@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bKrate{n}\r\nFrom: <sip:probe@127.0.0.1>;tag=p{n}\r\nTo: <sip:rswitch@127.0.0.1>\r\nCall-ID: rate-{n}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Counts the final responses arriving on `socket` within `window`.
fn count_answers(socket: &UdpSocket, window: Duration) -> Vec<u16> {
    let deadline = Instant::now() + window;
    let mut statuses = Vec::new();
    let mut buffer = [0u8; 65_535];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let Ok(n) = socket.recv(&mut buffer) else {
            break;
        };
        statuses.extend(status_of(&buffer[..n]).filter(|s| *s >= 200));
    }
    statuses
}

/// The first final response arriving on `socket` within `timeout`.
fn first_answer(socket: &UdpSocket, timeout: Duration) -> Option<u16> {
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 65_535];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let n = socket.recv(&mut buffer).ok()?;
        if let Some(status) = status_of(&buffer[..n]).filter(|s| *s >= 200) {
            return Some(status);
        }
    }
    None
}

#[test]
fn per_source_message_rate_is_limited_and_counted() {
    let (_server, listeners, _dir) = start_with_sip_config("max_messages_per_sec_per_ip = 10", &[]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in 0..100 {
        socket
            .send_to(options_udp(n).as_bytes(), &listeners["sip_udp"])
            .unwrap();
    }
    let answered = count_answers(&socket, Duration::from_secs(2)).len();
    assert!(
        (5..=30).contains(&answered),
        "about a burst of 10 answered, got {answered}"
    );
    let (_, metrics) = http_get(&listeners["http"], "/metrics").unwrap();
    let limited: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rswitch_sip_rate_limited_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(limited >= 70, "dropped messages are counted: {limited}");
}

#[test]
fn per_source_connection_limit_refuses_extra_connections() {
    let (_server, listeners, _dir) = start_with_sip_config("max_connections_per_ip = 2", &[]);
    let addr = &listeners["sip_tcp"];
    let mut kept = vec![tcp(addr), tcp(addr)];
    // Make sure both are registered before the third arrives.
    for s in &mut kept {
        s.write_all(b"\r\n\r\n").unwrap();
        let mut pong = [0u8; 2];
        s.read_exact(&mut pong).unwrap();
    }
    let mut third = tcp(addr);
    let (_, closed) = read_until_close(&mut third);
    assert!(
        closed,
        "the third connection from the same address is closed at once"
    );
    kept[0].write_all(OPTIONS_TCP.as_bytes()).unwrap();
    let mut buffer = [0u8; 4096];
    let n = kept[0].read(&mut buffer).unwrap();
    assert_eq!(
        status_of(&buffer[..n]),
        Some(200),
        "the first connections still work"
    );
}

#[test]
fn incomplete_stream_message_is_dropped_after_the_partial_timeout() {
    let (_server, listeners, _dir) = start_with_sip_config("partial_message_timeout_secs = 1", &[]);
    let mut s = tcp(&listeners["sip_tcp"]);
    s.write_all(&corpus("clerr.dat")).unwrap();
    let started = Instant::now();
    let (answer, closed) = read_until_close(&mut s);
    assert!(
        closed,
        "a Content-Length that never arrives ends with the connection closed"
    );
    assert!(
        answer.is_empty(),
        "nothing is answered to an incomplete message"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn oversized_message_gets_513() {
    let (_server, listeners, _dir) = start_with_sip_config("max_message_bytes = 2048", &[]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let big = options_udp(1).replace(
        "Content-Length: 0\r\n",
        &format!("X-Padding: {}\r\nContent-Length: 0\r\n", "a".repeat(3000)),
    );
    socket
        .send_to(big.as_bytes(), &listeners["sip_udp"])
        .unwrap();
    assert_eq!(first_answer(&socket, Duration::from_secs(3)), Some(513));
}

fn rfc5118(file: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/rfc5118/{file}", env!("CARGO_MANIFEST_DIR"));
    rfc5118_message(&std::fs::read(path).unwrap())
}

#[test]
fn ipv6_listener_answers_the_rfc5118_messages() {
    let (_server, listeners, _dir) = start_with_sip_config("", &[("RSWITCH_SIP_UDP", "[::1]:0")]);
    let target = &listeners["sip_udp"];
    assert!(target.starts_with("[::1]:"), "{target}");
    let expected: &[(&str, u16)] = &[
        ("ipv6-good", 401),
        ("ipv6-bad", 400),
        ("port-ambiguous", 401),
        ("port-unambiguous", 401),
        ("via-received-param-with-delim", 481),
        ("via-received-param-no-delim", 200),
        ("ipv6-in-sdp", 407),
        ("mult-ip-in-header", 481),
        ("mult-ip-in-sdp", 407),
        ("ipv4-mapped-ipv6", 407),
        ("ipv6-bug-abnf-3-colons", 200),
        ("ipv6-correct-abnf-2-colons", 200),
    ];
    // Several files share a transaction key: send those to a second server, as in the RFC 4475 test.
    let waves = waves(expected, |file| transaction_key(&rfc5118(file)));
    let mut failures = Vec::new();
    let mut servers = vec![(_server, listeners, _dir)];
    for (i, wave) in waves.iter().enumerate() {
        if i > 0 {
            servers.push(start_with_sip_config("", &[("RSWITCH_SIP_UDP", "[::1]:0")]));
        }
        let target = servers[i].1["sip_udp"].clone();
        let sockets: Vec<(&str, u16, UdpSocket)> = wave
            .iter()
            .map(|&(file, status)| {
                let socket = UdpSocket::bind("[::1]:0").unwrap();
                socket.send_to(&rfc5118(file), &target).unwrap();
                (file, status, socket)
            })
            .collect();
        for (file, status, socket) in &sockets {
            let answer = first_answer(socket, Duration::from_secs(3));
            if answer != Some(*status) {
                failures.push(format!("{file}: expected {status}, got {answer:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bindings_survive_a_restart() {
    use rswitch::sip::auth::{Challenge, NonceCount};
    let dir = tempfile::tempdir().unwrap();
    let password = extension_password(dir.path(), "1007");

    let (mut server, _logs, listeners) = start_server_with_listeners(rswitch_command(dir.path()));
    let target = listeners["sip_udp"].clone();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let challenged = register_once(&socket, &target, "1007", 1, None);
    let header = challenged
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .unwrap();
    let credentials = Challenge::parse(header)
        .unwrap()
        .respond(
            "REGISTER",
            &format!("sip:{target}"),
            "1007",
            &password,
            "c0ffee",
            NonceCount::FIRST,
        )
        .unwrap();
    assert!(
        register_once(&socket, &target, "1007", 2, Some(&credentials.to_string()))
            .starts_with("SIP/2.0 200 ")
    );
    // The binding is written by a background task; give it until the restart to land.
    signal(&server.child, "TERM");
    assert_eq!(
        wait_exit(&mut server.child, Duration::from_secs(20)).code(),
        Some(0)
    );

    let (_server, logs, _listeners) = start_server_with_listeners(rswitch_command(dir.path()));
    let restored = logs
        .seen
        .iter()
        .chain(std::iter::once(&serde_json::Value::Null))
        .find(|l| l["fields"]["message"] == "registrations restored")
        .cloned()
        .or_else(|| {
            let mut logs = logs;
            logs.wait_for("registrations restored", Duration::from_secs(10))
        })
        .expect("the restored bindings are logged");
    assert_eq!(restored["fields"]["bindings"], 1, "{restored}");
}
