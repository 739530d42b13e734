//! The RFC 4475 torture messages and the RFC 5118 IPv6 messages against the message parser.
//!
//! The corpus is kept byte-exact in `tests/data/` (checked here against the SHA-256 sums of
//! its index). Valid messages must parse, print, and parse again to the same message; invalid
//! ones must give a typed error; "reject or tolerate" cases may do either but must not panic.

mod common;

use std::path::PathBuf;

use rswitch::sip::message::{Limits, Message, ParseError, parse_datagram};
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn data_dir(corpus: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(corpus)
}

#[derive(Debug, PartialEq)]
enum Expect {
    Accept,
    Reject,
    Either,
}

fn expectation(parser_must: &str) -> Expect {
    match parser_must {
        m if m.starts_with("ACCEPT") => Expect::Accept,
        "REJECT or tolerate" => Expect::Either,
        m if m.starts_with("REJECT") => Expect::Reject,
        _ => Expect::Reject, // test.dat: "n/a (malformed …)"
    }
}

fn reparse_equivalent(name: &str, message: &Message) {
    let printed = message.to_bytes();
    let again = parse_datagram(&printed, &Limits::default()).unwrap_or_else(|e| {
        panic!(
            "{name}: printed form does not parse again: {e}\n{}",
            String::from_utf8_lossy(&printed)
        )
    });
    assert_eq!(
        &again, message,
        "{name}: print then parse gives the same message"
    );
}

#[test]
fn rfc4475_torture_messages_behave_as_the_index_says() {
    let dir = data_dir("rfc4475");
    let index =
        std::fs::read_to_string(dir.join("index.tsv")).expect("tests/data/rfc4475/index.tsv");
    let mut counted = 0;
    let mut outcomes = Vec::new();
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, parser_must, bytes, sha) = (cols[0], cols[4], cols[6], cols[7]);
        let raw = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(raw.len().to_string(), bytes, "{file}: byte count");
        assert_eq!(
            hex(&Sha256::digest(&raw)),
            sha,
            "{file}: the corpus file is byte-exact"
        );

        let result = parse_datagram(&raw, &Limits::default());
        match (expectation(parser_must), &result) {
            (Expect::Accept | Expect::Either, Ok(message)) => reparse_equivalent(file, message),
            (Expect::Reject | Expect::Either, Err(_)) => {}
            (Expect::Accept, Err(e)) => panic!("{file} must be accepted, got: {e}"),
            (Expect::Reject, Ok(_)) => panic!("{file} must be rejected"),
        }
        outcomes.push(format!(
            "{file}: {}",
            result
                .as_ref()
                .map_or_else(|e| format!("rejected ({e})"), |_| "accepted".into())
        ));
        counted += 1;
    }
    assert_eq!(counted, 50, "all 50 messages of the corpus");
    println!("{}", outcomes.join("\n"));
}

#[test]
fn rfc4475_rejections_map_to_the_right_response() {
    let dir = data_dir("rfc4475");
    let status = |file: &str| {
        let raw = std::fs::read(dir.join(file)).unwrap();
        let err = parse_datagram(&raw, &Limits::default()).expect_err(file);
        let method_known = !file.starts_with("mismatch02");
        err.status(method_known)
    };
    assert_eq!(status("badvers.dat"), 505);
    assert_eq!(status("mismatch02.dat"), 501);
    for file in [
        "badinv01.dat",
        "clerr.dat",
        "ncl.dat",
        "scalar02.dat",
        "quotbal.dat",
        "ltgtruri.dat",
        "lwsruri.dat",
        "regbadct.dat",
        "baddn.dat",
        "mismatch01.dat",
        "mcl01.dat",
    ] {
        assert_eq!(status(file), 400, "{file}");
    }
    let bigcode = std::fs::read(dir.join("bigcode.dat")).unwrap();
    assert!(matches!(
        parse_datagram(&bigcode, &Limits::default()),
        Err(ParseError::BadStatusCode { .. })
    ));
}

#[test]
fn rfc5118_ipv6_messages_only_ipv6_bad_is_rejected() {
    let dir = data_dir("rfc5118");
    let index =
        std::fs::read_to_string(dir.join("index.tsv")).expect("tests/data/rfc5118/index.tsv");
    let mut counted = 0;
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, parser_must) = (cols[0], cols[3]);
        let raw = common::rfc5118_message(&std::fs::read(dir.join(file)).unwrap());
        let result = parse_datagram(&raw, &Limits::default());
        match (parser_must.starts_with("ACCEPT"), &result) {
            (true, Ok(message)) => reparse_equivalent(file, message),
            (false, Err(e)) => assert_eq!(e.status(true), 400, "{file}"),
            (true, Err(e)) => panic!("{file} must be accepted: {e}"),
            (false, Ok(_)) => panic!("{file} must be rejected"),
        }
        counted += 1;
    }
    assert_eq!(counted, 12);
}
