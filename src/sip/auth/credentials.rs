//! The value of an `Authorization` / `Proxy-Authorization` header (RFC 7616 §3.4).

use std::fmt;

use super::hash::Protection;
use super::params::{DigestParams, malformed, write_quoted};
use super::{Algorithm, AuthError, NonceCount, Qop};

/// Digest credentials: parsed from a request by the server, or computed by
/// [`Challenge::respond`](super::Challenge::respond) on the client. `Display` prints the header
/// value.
///
/// Invariant: `qop`, `cnonce` and `nc` are all present or all absent, and no string holds a
/// control character other than HTAB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub(super) username: String,
    pub(super) realm: String,
    pub(super) nonce: String,
    pub(super) uri: String,
    pub(super) response: String,
    pub(super) algorithm: Option<Algorithm>,
    pub(super) opaque: Option<String>,
    pub(super) qop: Option<Qop>,
    pub(super) cnonce: Option<String>,
    pub(super) nc: Option<NonceCount>,
}

impl Credentials {
    /// Parses `Digest username="…", realm="…", nonce="…", uri="…", response="…", …`.
    ///
    /// Parameter names are case-insensitive and in any order; unknown ones are ignored.
    /// Without `qop`, a `cnonce` or `nc` is ignored (RFC 2069 form).
    ///
    /// # Errors
    /// - `Malformed` when the grammar or a limit is broken (more than 8 KiB, more than 32
    ///   parameters, a duplicate), a required parameter is missing, `nc` is not eight hex
    ///   digits, `qop` comes without `cnonce` and `nc`, or `userhash=true` (never offered).
    /// - `UnsupportedScheme`, `UnsupportedAlgorithm`, `UnsupportedQop` for well-formed values
    ///   this module does not handle.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let params = DigestParams::parse(value)?;
        let owned = |name, missing| params.require(name, missing).map(str::to_owned);
        let algorithm = params
            .get("algorithm")
            .map(|token| {
                Algorithm::from_token(token).ok_or_else(|| AuthError::UnsupportedAlgorithm {
                    algorithm: token.to_owned(),
                })
            })
            .transpose()?;
        if params
            .get("userhash")
            .is_some_and(|flag| flag.eq_ignore_ascii_case("true"))
        {
            return Err(malformed("userhash was not offered"));
        }
        let mut credentials = Self {
            username: owned("username", "missing username")?,
            realm: owned("realm", "missing realm")?,
            nonce: owned("nonce", "missing nonce")?,
            uri: owned("uri", "missing uri")?,
            response: owned("response", "missing response")?,
            algorithm,
            opaque: params.get("opaque").map(str::to_owned),
            qop: None,
            cnonce: None,
            nc: None,
        };
        if let Some(qop) = params.get("qop") {
            credentials.qop =
                Some(
                    Qop::from_token(qop).ok_or_else(|| AuthError::UnsupportedQop {
                        qop: qop.to_owned(),
                    })?,
                );
            credentials.cnonce = Some(owned("cnonce", "qop without cnonce")?);
            let nc = params.require("nc", "qop without nc")?;
            credentials.nc =
                Some(NonceCount::parse(nc).ok_or(malformed("nc is not eight hex digits"))?);
        }
        Ok(credentials)
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// The `uri` parameter: the Request-URI the client says it signed.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The `response` parameter as sent (hex digits).
    pub fn response(&self) -> &str {
        &self.response
    }

    /// The algorithm, `MD5` when the parameter is absent.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm.unwrap_or(Algorithm::Md5)
    }

    pub fn opaque(&self) -> Option<&str> {
        self.opaque.as_deref()
    }

    /// `None` for an RFC 2069 response.
    pub fn qop(&self) -> Option<Qop> {
        self.qop
    }

    pub fn cnonce(&self) -> Option<&str> {
        self.cnonce.as_deref()
    }

    pub fn nc(&self) -> Option<NonceCount> {
        self.nc
    }

    /// The qop part of the computation, when there is one.
    pub(super) fn protection(&self) -> Option<Protection<'_>> {
        Some(Protection {
            qop: self.qop?,
            cnonce: self.cnonce.as_deref()?,
            nc: self.nc?,
        })
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest username=")?;
        write_quoted(f, &self.username)?;
        f.write_str(", realm=")?;
        write_quoted(f, &self.realm)?;
        f.write_str(", nonce=")?;
        write_quoted(f, &self.nonce)?;
        f.write_str(", uri=")?;
        write_quoted(f, &self.uri)?;
        f.write_str(", response=")?;
        write_quoted(f, &self.response)?;
        if let Some(algorithm) = self.algorithm {
            write!(f, ", algorithm={algorithm}")?;
        }
        if let Some(cnonce) = &self.cnonce {
            f.write_str(", cnonce=")?;
            write_quoted(f, cnonce)?;
        }
        if let Some(opaque) = &self.opaque {
            f.write_str(", opaque=")?;
            write_quoted(f, opaque)?;
        }
        if let Some(qop) = self.qop {
            write!(f, ", qop={qop}")?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={nc}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC7616_SHA256: &str = r#"Digest username="Mufasa",
        realm="http-auth@example.org",
        uri="/dir/index.html",
        algorithm=SHA-256,
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        nc=00000001,
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        qop=auth,
        response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

    /// The RFC prints the header folded over lines; a SIP parser hands us the value unfolded.
    fn unfolded(value: &str) -> String {
        value
            .split('\n')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn parsed(value: &str) -> Credentials {
        Credentials::parse(value).unwrap_or_else(|e| panic!("{value:?}: {e}"))
    }

    #[test]
    fn parses_the_rfc7616_sha256_example() {
        let credentials = parsed(&unfolded(RFC7616_SHA256));
        assert_eq!(credentials.username(), "Mufasa");
        assert_eq!(credentials.realm(), "http-auth@example.org");
        assert_eq!(credentials.uri(), "/dir/index.html");
        assert_eq!(credentials.algorithm(), Algorithm::Sha256);
        assert_eq!(credentials.nc(), Some(NonceCount(1)));
        assert_eq!(credentials.qop(), Some(Qop::Auth));
        assert_eq!(
            credentials.opaque(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
    }

    #[test]
    fn print_then_parse_gives_the_same_credentials() {
        let mut credentials = parsed(&unfolded(RFC7616_SHA256));
        credentials.username = r#"Mu"fa\sa é"#.into();
        credentials.uri = "sip:alice@example.com;transport=tcp".into();
        assert_eq!(parsed(&credentials.to_string()), credentials);

        let rfc2069 = parsed(r#"Digest username="a", realm="r", nonce="n", uri="u", response="x""#);
        assert_eq!(rfc2069.algorithm, None);
        assert_eq!(parsed(&rfc2069.to_string()), rfc2069);
    }

    #[test]
    fn escaped_quotes_in_the_username_are_unescaped() {
        let credentials = parsed(
            r#"Digest username="bob \"the builder\" \\ co", realm="r", nonce="n", uri="u", response="x""#,
        );
        assert_eq!(credentials.username(), r#"bob "the builder" \ co"#);
    }

    #[test]
    fn names_are_case_insensitive_and_order_and_whitespace_do_not_matter() {
        let credentials = parsed(
            "digest  NC = 0000000a ,QOP= auth, CNonce =\"c\",Response=\"x\" , URI=\"u\",\
             Nonce=\"n\",Realm=\"r\",UserName=\"a\", Algorithm = md5",
        );
        assert_eq!(credentials.username(), "a");
        assert_eq!(credentials.nc(), Some(NonceCount(10)));
        assert_eq!(credentials.algorithm(), Algorithm::Md5);
        assert_eq!(credentials.cnonce(), Some("c"));
    }

    #[test]
    fn unknown_parameters_are_ignored() {
        let credentials = parsed(
            r#"Digest username="a", realm="r", foo=bar, nonce="n", uri="u", response="x", x-y="z, w""#,
        );
        assert_eq!(credentials.username(), "a");
    }

    #[test]
    fn empty_quoted_value_is_an_empty_string_but_a_missing_value_is_malformed() {
        let credentials =
            parsed(r#"Digest username="", realm="r", nonce="n", uri="u", response="x""#);
        assert_eq!(credentials.username(), "");
        assert!(matches!(
            Credentials::parse(r#"Digest username=, realm="r", nonce="n", uri="u", response="x""#),
            Err(AuthError::Malformed { .. })
        ));
        assert!(matches!(
            Credentials::parse(""),
            Err(AuthError::Malformed { .. })
        ));
    }

    #[test]
    fn missing_closing_quote_is_malformed() {
        assert_eq!(
            Credentials::parse(
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="x"#
            ),
            Err(malformed("unterminated quoted-string"))
        );
    }

    #[test]
    fn ten_kilobyte_value_is_malformed() {
        let value = format!(
            r#"Digest username="{}", realm="r", nonce="n", uri="u", response="x""#,
            "a".repeat(10 * 1024)
        );
        assert_eq!(
            Credentials::parse(&value),
            Err(malformed("header value longer than 8 KiB"))
        );
    }

    #[test]
    fn each_required_parameter_is_required() {
        let all = [
            ("username", r#"username="a""#),
            ("realm", r#"realm="r""#),
            ("nonce", r#"nonce="n""#),
            ("uri", r#"uri="u""#),
            ("response", r#"response="x""#),
        ];
        for (missing, _) in all {
            let rest: Vec<&str> = all
                .iter()
                .filter(|(name, _)| *name != missing)
                .map(|(_, param)| *param)
                .collect();
            let value = format!("Digest {}", rest.join(", "));
            assert!(
                matches!(Credentials::parse(&value), Err(AuthError::Malformed { .. })),
                "without {missing}"
            );
        }
    }

    #[test]
    fn qop_needs_cnonce_and_an_eight_digit_nc() {
        let base = r#"Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth"#;
        assert_eq!(
            Credentials::parse(&format!("{base}, nc=00000001")),
            Err(malformed("qop without cnonce"))
        );
        assert_eq!(
            Credentials::parse(&format!("{base}, cnonce=\"c\"")),
            Err(malformed("qop without nc"))
        );
        assert_eq!(
            Credentials::parse(&format!("{base}, cnonce=\"c\", nc=1")),
            Err(malformed("nc is not eight hex digits"))
        );
    }

    #[test]
    fn quoted_qop_and_algorithm_are_accepted() {
        let credentials = parsed(
            r#"Digest username="a", realm="r", nonce="n", uri="u", response="x", qop="auth", algorithm="SHA-256", cnonce="c", nc="00000002""#,
        );
        assert_eq!(credentials.qop(), Some(Qop::Auth));
        assert_eq!(credentials.algorithm(), Algorithm::Sha256);
        assert_eq!(credentials.nc(), Some(NonceCount(2)));
    }

    #[test]
    fn unsupported_algorithm_qop_and_scheme_are_typed() {
        let base = r#"Digest username="a", realm="r", nonce="n", uri="u", response="x""#;
        assert_eq!(
            Credentials::parse(&format!("{base}, algorithm=MD5-sess")),
            Err(AuthError::UnsupportedAlgorithm {
                algorithm: "MD5-sess".into()
            })
        );
        assert_eq!(
            Credentials::parse(&format!("{base}, qop=auth-int, cnonce=\"c\", nc=00000001")),
            Err(AuthError::UnsupportedQop {
                qop: "auth-int".into()
            })
        );
        assert_eq!(
            Credentials::parse("Basic YTpi"),
            Err(AuthError::UnsupportedScheme {
                scheme: "Basic".into()
            })
        );
    }

    #[test]
    fn userhash_is_refused() {
        let value =
            r#"Digest username="a", realm="r", nonce="n", uri="u", response="x", userhash=true"#;
        assert_eq!(
            Credentials::parse(value),
            Err(malformed("userhash was not offered"))
        );
    }

    /// A xorshift generator: the same inputs on every run.
    struct Xorshift(u64);

    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        const PIECES: &[&str] = &[
            "Digest ",
            "digest",
            " ",
            "\t",
            ",",
            "=",
            "\"",
            "\\",
            "username",
            "realm",
            "nonce",
            "uri",
            "response",
            "qop",
            "auth",
            "nc",
            "00000001",
            "cnonce",
            "algorithm",
            "MD5",
            "SHA-256",
            "opaque",
            "stale",
            "true",
            "a",
            "é",
            "☎",
            "\r",
            "\n",
            "\0",
            "\u{7f}",
        ];
        let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let mut value = String::new();
            for _ in 0..rng.below(40) {
                value.push_str(PIECES[rng.below(PIECES.len())]);
            }
            let _ = Credentials::parse(&value);
            let _ = crate::sip::auth::Challenge::parse(&value);
        }
        for _ in 0..5_000 {
            let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            let value = format!("Digest {}", String::from_utf8_lossy(&bytes));
            let _ = Credentials::parse(&value);
            let _ = crate::sip::auth::Challenge::parse(&value);
        }
    }

    #[test]
    fn every_short_string_over_the_grammar_characters_parses_or_errs() {
        const ALPHABET: &[char] = &['a', '=', '"', '\\', ',', ' ', 'é'];
        let mut value = String::new();
        let mut indices = Vec::new();
        // All strings of length up to 6 after the scheme: 7^0 + … + 7^6 ≈ 137 000.
        loop {
            value.clear();
            value.push_str("Digest ");
            value.extend(indices.iter().map(|&i: &usize| ALPHABET[i]));
            let _ = Credentials::parse(&value);
            if !advance(&mut indices, ALPHABET.len(), 6) {
                break;
            }
        }
    }

    /// Next index vector in shortlex order; false after the last one of length `max_len`.
    fn advance(indices: &mut Vec<usize>, base: usize, max_len: usize) -> bool {
        for digit in indices.iter_mut().rev() {
            *digit += 1;
            if *digit < base {
                return true;
            }
            *digit = 0;
        }
        if indices.len() == max_len {
            return false;
        }
        indices.push(0);
        true
    }
}

/// Credentials as real user agents write them.
#[cfg(test)]
mod interop {
    use super::*;

    #[test]
    fn parses_sipp_authorization_without_spaces() {
        let v = r#"Digest username="1000",realm="rswitch",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:15070",nonce="000000006b053ec1c8ac011041bd270bb635dff51fc1e86a",response="e1a3a215735376f15fa9191c4dd03caf",algorithm=MD5"#;
        let c = Credentials::parse(v);
        assert!(c.is_ok(), "{c:?}");
    }
}
