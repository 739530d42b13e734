//! The digest computation of RFC 7616 §3.4.1 with `qop=auth`, and its RFC 2069 form for
//! qop-less challenges:
//!
//! ```text
//! HA1      = H(username ":" realm ":" password)
//! HA2      = H(method ":" uri)
//! response = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)   with qop
//! response = H(HA1 ":" nonce ":" HA2)                              without
//! ```
//!
//! H is the algorithm's hash printed as lowercase hex.

use md5::Md5;
use sha2::{Digest, Sha256};

use super::{Algorithm, NonceCount, Qop};

/// The `qop` part of the computation: the qop with the client's cnonce and count.
#[derive(Debug, Clone, Copy)]
pub(super) struct Protection<'a> {
    pub(super) qop: Qop,
    pub(super) cnonce: &'a str,
    pub(super) nc: NonceCount,
}

/// The inputs of one response computation.
#[derive(Debug, Clone, Copy)]
pub(super) struct ResponseInput<'a> {
    pub(super) algorithm: Algorithm,
    pub(super) username: &'a str,
    pub(super) realm: &'a str,
    pub(super) password: &'a str,
    pub(super) method: &'a str,
    pub(super) uri: &'a str,
    pub(super) nonce: &'a str,
    pub(super) protection: Option<Protection<'a>>,
}

/// The `response` parameter value for `input`, lowercase hex.
pub(super) fn response(input: &ResponseInput<'_>) -> String {
    let h = |parts: &[&[u8]]| hex_digest(input.algorithm, parts);
    let ha1 = h(&[
        input.username.as_bytes(),
        input.realm.as_bytes(),
        input.password.as_bytes(),
    ]);
    let ha2 = h(&[input.method.as_bytes(), input.uri.as_bytes()]);
    match input.protection {
        Some(protection) => {
            let nc = protection.nc.to_string();
            h(&[
                ha1.as_bytes(),
                input.nonce.as_bytes(),
                nc.as_bytes(),
                protection.cnonce.as_bytes(),
                protection.qop.as_str().as_bytes(),
                ha2.as_bytes(),
            ])
        }
        None => h(&[ha1.as_bytes(), input.nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// The hash of `parts` joined with `:`, as lowercase hex.
fn hex_digest(algorithm: Algorithm, parts: &[&[u8]]) -> String {
    match algorithm {
        Algorithm::Md5 => hex(&joined_digest::<Md5>(parts)),
        Algorithm::Sha256 => hex(&joined_digest::<Sha256>(parts)),
    }
}

fn joined_digest<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut hasher = D::new();
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            hasher.update(b":");
        }
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

/// Lowercase hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1, with the `uri`, nonce and cnonce of the example.
    fn rfc7616_example(algorithm: Algorithm) -> String {
        response(&ResponseInput {
            algorithm,
            username: "Mufasa",
            realm: "http-auth@example.org",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            protection: Some(Protection {
                qop: Qop::Auth,
                cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                nc: NonceCount(1),
            }),
        })
    }

    #[test]
    fn rfc7616_example_md5_response() {
        assert_eq!(
            rfc7616_example(Algorithm::Md5),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc7616_example_sha256_response() {
        assert_eq!(
            rfc7616_example(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    fn rfc2617_example(protection: Option<Protection<'_>>) -> String {
        response(&ResponseInput {
            algorithm: Algorithm::Md5,
            username: "Mufasa",
            realm: "testrealm@host.com",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            protection,
        })
    }

    #[test]
    fn rfc2617_example_with_qop_auth() {
        let protection = Protection {
            qop: Qop::Auth,
            cnonce: "0a4f113b",
            nc: NonceCount(1),
        };
        assert_eq!(
            rfc2617_example(Some(protection)),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    #[test]
    fn without_qop_the_response_is_the_rfc2069_form() {
        // H(HA1:nonce:HA2) for the RFC 2617 inputs, computed independently.
        assert_eq!(rfc2617_example(None), "670fd8c2df070c60b045671b8b24ff02");
    }

    #[test]
    fn hex_is_lowercase_and_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
