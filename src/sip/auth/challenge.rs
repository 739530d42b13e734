//! The value of a `WWW-Authenticate` / `Proxy-Authenticate` header (RFC 7616 §3.3), and the
//! client's answer to it.

use std::fmt;

use super::credentials::Credentials;
use super::hash::{self, Protection, ResponseInput};
use super::params::{DigestParams, has_control_character, write_quoted};
use super::{Algorithm, ApiMisuse, AuthError, NonceCount, Qop};

/// One digest challenge: issued by [`DigestServer::challenges`](super::DigestServer::challenges)
/// or parsed from a response by the client. `Display` prints the header value.
///
/// Invariant: no string holds a control character other than HTAB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: Algorithm,
    qop: Option<Qop>,
    stale: bool,
}

impl Challenge {
    /// A challenge as this module's server issues it: `qop="auth"`, no opaque. The caller
    /// guarantees that `realm` and `nonce` hold no control character.
    pub(super) fn issued(realm: &str, nonce: &str, algorithm: Algorithm, stale: bool) -> Self {
        Self {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            opaque: None,
            algorithm,
            qop: Some(Qop::Auth),
            stale,
        }
    }

    /// Parses `Digest realm="…", nonce="…", …`.
    ///
    /// A missing `algorithm` means MD5. A `qop` list is usable when it contains `auth`; a
    /// missing `qop` is an RFC 2069 challenge, answered without cnonce and nonce-count.
    /// Unknown parameters (`domain`, `charset`, `userhash`, …) are ignored.
    ///
    /// # Errors
    /// `Malformed` when the grammar or a limit is broken or `realm` or `nonce` is missing;
    /// `UnsupportedScheme`, `UnsupportedAlgorithm`, or `UnsupportedQop` (a `qop` list without
    /// `auth`) for challenges this module cannot answer.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let params = DigestParams::parse(value)?;
        let algorithm = match params.get("algorithm") {
            None => Algorithm::Md5,
            Some(token) => {
                Algorithm::from_token(token).ok_or_else(|| AuthError::UnsupportedAlgorithm {
                    algorithm: token.to_owned(),
                })?
            }
        };
        let qop = match params.get("qop") {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .find_map(|option| Qop::from_token(option.trim_matches([' ', '\t'])))
                    .ok_or_else(|| AuthError::UnsupportedQop {
                        qop: list.to_owned(),
                    })?,
            ),
        };
        Ok(Self {
            realm: params.require("realm", "missing realm")?.to_owned(),
            nonce: params.require("nonce", "missing nonce")?.to_owned(),
            opaque: params.get("opaque").map(str::to_owned),
            algorithm,
            qop,
            stale: params
                .get("stale")
                .is_some_and(|flag| flag.eq_ignore_ascii_case("true")),
        })
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    pub fn opaque(&self) -> Option<&str> {
        self.opaque.as_deref()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// `None` for an RFC 2069 challenge without `qop`.
    pub fn qop(&self) -> Option<Qop> {
        self.qop
    }

    /// Whether the server said the previous nonce was stale: retry without asking the user.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// The credentials answering this challenge for a request with `method` and Request-URI
    /// `uri`, with the challenge's algorithm. `cnonce` should be fresh random text (16 random
    /// bytes as hex is plenty); `nc` counts the requests sent with this nonce, starting at
    /// [`NonceCount::FIRST`]. Both are left out for a challenge without `qop`.
    ///
    /// # Errors
    /// `ControlCharacter` when `username`, `uri` or `cnonce` holds a CR, LF or other control
    /// character: it could not be printed in a header.
    pub fn respond(
        &self,
        method: &str,
        uri: &str,
        username: &str,
        password: &str,
        cnonce: &str,
        nc: NonceCount,
    ) -> Result<Credentials, ApiMisuse> {
        for (field, value) in [("username", username), ("uri", uri), ("cnonce", cnonce)] {
            if has_control_character(value) {
                return Err(ApiMisuse::ControlCharacter { field });
            }
        }
        let protection = self.qop.map(|qop| Protection { qop, cnonce, nc });
        let response = hash::response(&ResponseInput {
            algorithm: self.algorithm,
            username,
            realm: &self.realm,
            password,
            method,
            uri,
            nonce: &self.nonce,
            protection,
        });
        Ok(Credentials {
            username: username.to_owned(),
            realm: self.realm.clone(),
            nonce: self.nonce.clone(),
            uri: uri.to_owned(),
            response,
            algorithm: Some(self.algorithm),
            opaque: self.opaque.clone(),
            qop: self.qop,
            cnonce: self.qop.map(|_| cnonce.to_owned()),
            nc: self.qop.map(|_| nc),
        })
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest realm=")?;
        write_quoted(f, &self.realm)?;
        f.write_str(", nonce=")?;
        write_quoted(f, &self.nonce)?;
        if let Some(opaque) = &self.opaque {
            f.write_str(", opaque=")?;
            write_quoted(f, opaque)?;
        }
        write!(f, ", algorithm={}", self.algorithm)?;
        if let Some(qop) = self.qop {
            write!(f, ", qop=\"{qop}\"")?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        Ok(())
    }
}

/// The strongest challenge the client can answer among `values` (the `WWW-Authenticate` or
/// `Proxy-Authenticate` values of one response): SHA-256 over MD5, the first one on a tie.
/// Values that do not parse — other schemes, unknown algorithms, malformed — are skipped.
pub fn select_challenge<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    values
        .into_iter()
        .filter_map(|value| Challenge::parse(value).ok())
        .fold(None, |best: Option<Challenge>, candidate| match best {
            Some(best) if best.algorithm.strength() >= candidate.algorithm.strength() => Some(best),
            _ => Some(candidate),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC7616_SHA256_CHALLENGE: &str = "Digest realm=\"http-auth@example.org\", \
        qop=\"auth, auth-int\", algorithm=SHA-256, \
        nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
        opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

    const RFC7616_MD5_CHALLENGE: &str = "Digest realm=\"http-auth@example.org\", \
        qop=\"auth, auth-int\", algorithm=MD5, \
        nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
        opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc7616_credentials(challenge: &str) -> Credentials {
        Challenge::parse(challenge)
            .unwrap()
            .respond(
                "GET",
                "/dir/index.html",
                "Mufasa",
                "Circle of Life",
                CNONCE,
                NonceCount::FIRST,
            )
            .unwrap()
    }

    #[test]
    fn rfc7616_example_md5_response_from_the_parsed_challenge() {
        let credentials = rfc7616_credentials(RFC7616_MD5_CHALLENGE);
        assert_eq!(credentials.response(), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc7616_example_sha256_response_from_the_parsed_challenge() {
        let credentials = rfc7616_credentials(RFC7616_SHA256_CHALLENGE);
        assert_eq!(
            credentials.response(),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert_eq!(credentials.algorithm(), Algorithm::Sha256);
        assert_eq!(credentials.qop(), Some(Qop::Auth));
        assert_eq!(credentials.cnonce(), Some(CNONCE));
        assert_eq!(
            credentials.opaque(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
    }

    #[test]
    fn printed_credentials_are_an_authorization_value() {
        let printed = rfc7616_credentials(RFC7616_SHA256_CHALLENGE).to_string();
        assert_eq!(
            printed,
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", uri=\"/dir/index.html\", \
             response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", \
             algorithm=SHA-256, cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\", qop=auth, nc=00000001"
        );
    }

    #[test]
    fn challenge_print_then_parse_gives_the_same_challenge() {
        let challenge = Challenge::parse(RFC7616_SHA256_CHALLENGE).unwrap();
        assert_eq!(Challenge::parse(&challenge.to_string()).unwrap(), challenge);
        let stale = Challenge::issued("r \"q\"", "n", Algorithm::Md5, true);
        assert_eq!(
            stale.to_string(),
            "Digest realm=\"r \\\"q\\\"\", nonce=\"n\", algorithm=MD5, qop=\"auth\", stale=true"
        );
        assert_eq!(Challenge::parse(&stale.to_string()).unwrap(), stale);
    }

    #[test]
    fn challenge_without_algorithm_is_md5_and_without_qop_is_rfc2069() {
        let challenge = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        assert_eq!(challenge.algorithm(), Algorithm::Md5);
        assert_eq!(challenge.qop(), None);
        assert!(!challenge.is_stale());
        let credentials = challenge
            .respond("REGISTER", "sip:r", "u", "p", "c", NonceCount::FIRST)
            .unwrap();
        assert_eq!(credentials.qop(), None);
        assert_eq!(credentials.cnonce(), None);
        assert_eq!(credentials.nc(), None);
        assert!(!credentials.to_string().contains("nc="));
    }

    #[test]
    fn challenge_needs_realm_and_nonce_and_a_usable_qop() {
        assert!(matches!(
            Challenge::parse("Digest nonce=\"n\""),
            Err(AuthError::Malformed { .. })
        ));
        assert!(matches!(
            Challenge::parse("Digest realm=\"r\""),
            Err(AuthError::Malformed { .. })
        ));
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\""),
            Err(AuthError::UnsupportedQop {
                qop: "auth-int".into()
            })
        );
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"),
            Err(AuthError::UnsupportedAlgorithm {
                algorithm: "SHA-512-256".into()
            })
        );
    }

    #[test]
    fn stale_flag_is_case_insensitive() {
        let challenge = Challenge::parse("Digest realm=\"r\", nonce=\"n\", stale=TRUE").unwrap();
        assert!(challenge.is_stale());
        let challenge = Challenge::parse("Digest realm=\"r\", nonce=\"n\", stale=false").unwrap();
        assert!(!challenge.is_stale());
    }

    #[test]
    fn respond_refuses_values_that_cannot_be_printed() {
        let challenge = Challenge::parse(RFC7616_MD5_CHALLENGE).unwrap();
        assert_eq!(
            challenge.respond("GET", "/", "a\r\nX: y", "p", "c", NonceCount::FIRST),
            Err(ApiMisuse::ControlCharacter { field: "username" })
        );
        assert_eq!(
            challenge.respond("GET", "/\n", "a", "p", "c", NonceCount::FIRST),
            Err(ApiMisuse::ControlCharacter { field: "uri" })
        );
    }

    #[test]
    fn select_prefers_sha256_and_skips_what_it_cannot_answer() {
        let values = [
            "Basic realm=\"r\"",
            "Digest realm=\"r\", nonce=\"a\", algorithm=MD5, qop=\"auth\"",
            "Digest realm=\"r\", nonce=\"b\", algorithm=SHA-512-256, qop=\"auth\"",
            "Digest realm=\"r\", nonce=\"c\", algorithm=SHA-256, qop=\"auth\"",
            "Digest realm=\"r\", nonce=\"d\", algorithm=SHA-256, qop=\"auth\"",
            "Digest realm=",
        ];
        let best = select_challenge(values).unwrap();
        assert_eq!(best.nonce(), "c");
        assert_eq!(best.algorithm(), Algorithm::Sha256);

        let md5_only = select_challenge([values[0], values[1], values[2]]).unwrap();
        assert_eq!(md5_only.nonce(), "a");
        assert_eq!(select_challenge([values[0], values[2]]), None);
    }
}
