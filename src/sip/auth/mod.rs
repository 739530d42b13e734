//! HTTP digest authentication for SIP (RFC 7616, RFC 8760, RFC 3261 §22), server and client.
//!
//! Server side: [`DigestServer`] issues [`Challenge`]s (one per offered algorithm, strongest
//! first, as RFC 8760 asks) with stateless nonces — a timestamp and an HMAC-SHA256 of it under
//! a secret key — and verifies [`Credentials`] parsed from an `Authorization` /
//! `Proxy-Authorization` value. The only state it keeps is a bounded replay guard remembering
//! the highest nonce-count seen per nonce and client. A failed check is an [`AuthFailure`] that
//! says what went wrong and, through [`AuthFailure::action`], whether to answer 400 or to
//! re-challenge (401/407, possibly with `stale=true`).
//!
//! Client side: [`Challenge::parse`] reads a `WWW-Authenticate` / `Proxy-Authenticate` value,
//! [`select_challenge`] picks the strongest usable one, and [`Challenge::respond`] computes the
//! [`Credentials`] to send back. The cnonce and nonce-count are parameters: the caller makes the
//! cnonce random and counts, so the computation stays deterministic.
//!
//! Supported: algorithms `MD5` and `SHA-256` with `qop=auth`. The server refuses qop-less
//! (RFC 2069) responses; the client can still answer a qop-less challenge from an old server.
//!
//! What this module does not do: read a clock (time comes in as seconds since the Unix epoch),
//! make random numbers, look up passwords, or build SIP messages — the caller picks the header
//! (401 with `WWW-Authenticate` or 407 with `Proxy-Authenticate`). Not supported: `-sess`
//! algorithms, `SHA-512-256`, `qop=auth-int`, `userhash`, the `username*` extended notation,
//! `Authentication-Info` / `nextnonce`, and verifying against a stored HA1.

mod challenge;
mod credentials;
mod error;
mod hash;
mod nonce;
mod params;
mod replay;
mod server;

use std::fmt;

pub use challenge::{Challenge, select_challenge};
pub use credentials::Credentials;
pub use error::{ApiMisuse, AuthError, AuthFailure, FailureAction};
pub use nonce::NonceKey;
pub use server::{
    DEFAULT_NONCE_LIFETIME_SECS, DEFAULT_REPLAY_CAPACITY, DigestConfig, DigestServer, Verified,
};

/// A digest algorithm this module can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `MD5`, the RFC 2617 default, still what most SIP devices speak.
    Md5,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The token as it appears in the `algorithm` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha256 => "SHA-256",
        }
    }

    /// The algorithm named by `token` (case-insensitive), if supported.
    pub fn from_token(token: &str) -> Option<Self> {
        [Self::Md5, Self::Sha256]
            .into_iter()
            .find(|algorithm| algorithm.as_str().eq_ignore_ascii_case(token))
    }

    /// Higher is stronger; used to prefer one challenge over another.
    fn strength(self) -> u8 {
        match self {
            Self::Md5 => 0,
            Self::Sha256 => 1,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The quality of protection. Only `auth` is supported (`auth-int` is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Qop {
    /// `auth`: the response covers the method and the request URI.
    Auth,
}

impl Qop {
    /// The token as it appears in the `qop` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        token.eq_ignore_ascii_case("auth").then_some(Self::Auth)
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The nonce-count (`nc`): how many requests the client has sent with one nonce, this one
/// included. Printed as exactly eight lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NonceCount(pub u32);

impl NonceCount {
    /// The first count for a fresh nonce.
    pub const FIRST: Self = Self(1);

    /// The count for the next request with the same nonce (saturates at `u32::MAX`).
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// Parses the wire form: exactly eight hex digits.
    fn parse(value: &str) -> Option<Self> {
        if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(value, 16).ok().map(Self)
    }
}

impl fmt::Display for NonceCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_tokens_are_case_insensitive_and_unknown_ones_are_none() {
        assert_eq!(Algorithm::from_token("sha-256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::from_token("MD5"), Some(Algorithm::Md5));
        assert_eq!(Algorithm::from_token("md5"), Some(Algorithm::Md5));
        assert_eq!(Algorithm::from_token("MD5-sess"), None);
        assert_eq!(Algorithm::from_token("SHA-512-256"), None);
    }

    #[test]
    fn nonce_count_is_exactly_eight_hex_digits() {
        assert_eq!(NonceCount::parse("00000001"), Some(NonceCount(1)));
        assert_eq!(NonceCount::parse("0000000A"), Some(NonceCount(10)));
        assert_eq!(NonceCount::parse("ffffffff"), Some(NonceCount(u32::MAX)));
        assert_eq!(NonceCount::parse("1"), None);
        assert_eq!(NonceCount::parse("000000001"), None);
        assert_eq!(NonceCount::parse("+0000001"), None);
        assert_eq!(NonceCount::parse("0000000g"), None);
        assert_eq!(NonceCount(0x2a).to_string(), "0000002a");
    }
}
