//! The registrar's / proxy's side: issue challenges, verify credentials.
//!
//! ```text
//!  request without credentials ──► 401/407 with challenges(now, stale = false)
//!  request with credentials ─────► Credentials::parse ──Err──► AuthFailure::from ─┐
//!                                        │ Ok                                      │
//!                                        ▼                                         │
//!                                  verify(…, now) ──Err(failure)──────────────────►┤
//!                                        │ Ok(Verified)                            ▼
//!                                        ▼                        failure.action(): 400, or
//!                                   serve the request             401/407 + challenges(now, stale)
//! ```

use subtle::{Choice, ConstantTimeEq};

use super::challenge::Challenge;
use super::credentials::Credentials;
use super::hash::{self, ResponseInput};
use super::nonce::NonceKey;
use super::params::has_control_character;
use super::replay::{Admission, ReplayGuard, Use};
use super::{Algorithm, ApiMisuse, AuthFailure};

/// How long a nonce stays usable, in seconds, unless configured otherwise.
pub const DEFAULT_NONCE_LIFETIME_SECS: u64 = 300;

/// How many (nonce, client) entries the replay guard holds, unless configured otherwise:
/// about 25 MB, the last 20 s of authentications at 12,000 a second. When it is full the
/// oldest nonces are forgotten and answered with a stale challenge, so it must hold more
/// than the authentications of one second (nonces are issued per second).
pub const DEFAULT_REPLAY_CAPACITY: usize = 250_000;

/// How far in the future a nonce's issue time may be, for servers sharing a key whose clocks
/// differ a little. Further out means our clock went back: the nonce is treated as stale.
const MAX_CLOCK_SKEW_SECS: u64 = 5;

/// Hashed in place of the password of a user that does not exist, so that the work done and
/// the answer are the same as for a wrong password.
const DUMMY_PASSWORD: &str = "no such user, no such password";

/// What a [`DigestServer`] is built from. [`DigestConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DigestConfig {
    /// The realm of every challenge; credentials for another realm are refused.
    pub realm: String,
    /// Signs the stateless nonces.
    pub key: NonceKey,
    /// Seconds a nonce stays usable; older ones are stale.
    pub nonce_lifetime_secs: u64,
    /// The algorithms offered, in this order: one challenge each, strongest first (RFC 8760
    /// §2.4). Credentials with an algorithm not listed are refused.
    pub algorithms: Vec<Algorithm>,
    /// Most (nonce, client) entries the replay guard holds before it drops the oldest.
    pub replay_capacity: usize,
}

impl DigestConfig {
    /// `realm` and `key` with the defaults: 300 s nonces, SHA-256 then MD5, 10 000 entries.
    pub fn new(realm: impl Into<String>, key: NonceKey) -> Self {
        Self {
            realm: realm.into(),
            key,
            nonce_lifetime_secs: DEFAULT_NONCE_LIFETIME_SECS,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
        }
    }
}

/// The server side of digest authentication for one realm. See the module doc for the flow.
///
/// Nonces are stateless, so challenges need only `&self`; the one piece of state is the
/// replay guard, updated by [`verify`](Self::verify) after a correct response.
#[derive(Debug)]
pub struct DigestServer {
    realm: String,
    key: NonceKey,
    nonce_lifetime_secs: u64,
    algorithms: Vec<Algorithm>,
    replay: ReplayGuard,
    /// Makes every issued nonce distinct, so clients challenged in the same second never
    /// share a nonce (and a client's reused cnonce never looks like another's replay).
    serial: std::sync::atomic::AtomicU64,
}

/// A request whose credentials passed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The authenticated user, as the client wrote it.
    pub username: String,
    /// The algorithm the client used.
    pub algorithm: Algorithm,
}

impl DigestServer {
    /// A server for `config`. Repeated algorithms are offered once, at their first place.
    ///
    /// # Errors
    /// `NoAlgorithms`, `ZeroNonceLifetime`, `ZeroReplayCapacity`, or `ControlCharacter` when
    /// the realm could not be printed in a header.
    pub fn new(config: DigestConfig) -> Result<Self, ApiMisuse> {
        if config.algorithms.is_empty() {
            return Err(ApiMisuse::NoAlgorithms);
        }
        if config.nonce_lifetime_secs == 0 {
            return Err(ApiMisuse::ZeroNonceLifetime);
        }
        if config.replay_capacity == 0 {
            return Err(ApiMisuse::ZeroReplayCapacity);
        }
        if has_control_character(&config.realm) {
            return Err(ApiMisuse::ControlCharacter { field: "realm" });
        }
        let mut algorithms = Vec::with_capacity(config.algorithms.len());
        for algorithm in config.algorithms {
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
        Ok(Self {
            realm: config.realm,
            key: config.key,
            nonce_lifetime_secs: config.nonce_lifetime_secs,
            algorithms,
            replay: ReplayGuard::new(config.replay_capacity),
            serial: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// One challenge per offered algorithm, in the configured order; each goes in its own
    /// `WWW-Authenticate` (401) or `Proxy-Authenticate` (407) header. Pass `stale = true`
    /// when the failure's [`action`](AuthFailure::action) says so.
    ///
    /// The challenges depend only on the time, never on who asked, so they reveal nothing
    /// about which users exist.
    pub fn challenges(&self, now_unix_secs: u64, stale: bool) -> Vec<Challenge> {
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nonce = self.key.issue(&self.realm, now_unix_secs, serial);
        self.algorithms
            .iter()
            .map(|&algorithm| Challenge::issued(&self.realm, &nonce, algorithm, stale))
            .collect()
    }

    /// Checks `credentials` sent with a request of `method` whose Request-URI was
    /// `request_uri` as written on the wire. `password` is the user's password, `None` if
    /// no such user exists (the caller looks the user up by
    /// [`Credentials::username`]).
    ///
    /// An unknown user costs the same hashing as a known one and fails with the same
    /// [`AuthFailure::Rejected`]. The nonce-count is recorded only once the response is
    /// correct, so wrong guesses cannot spend a client's counts.
    ///
    /// # Errors
    /// An [`AuthFailure`] naming the first check that failed, in this order: algorithm,
    /// qop, realm, uri, nonce origin, response (`Rejected`), nonce age (`Stale`),
    /// nonce-count (`Replay`, or `Stale` if the guard had to forget this nonce).
    pub fn verify(
        &mut self,
        credentials: &Credentials,
        method: &str,
        request_uri: &str,
        password: Option<&str>,
        now_unix_secs: u64,
    ) -> Result<Verified, AuthFailure> {
        let algorithm = credentials.algorithm();
        if !self.algorithms.contains(&algorithm) {
            return Err(AuthFailure::UnsupportedAlgorithm {
                algorithm: algorithm.as_str().to_owned(),
            });
        }
        let Some(protection) = credentials.protection() else {
            return Err(AuthFailure::UnsupportedQop { qop: None });
        };
        if credentials.realm() != self.realm {
            return Err(AuthFailure::WrongRealm {
                realm: credentials.realm().to_owned(),
            });
        }
        if !uri_covers(credentials.uri(), request_uri) {
            return Err(AuthFailure::UriMismatch {
                uri: credentials.uri().to_owned(),
                request_uri: request_uri.to_owned(),
            });
        }
        let Some(issued_at) = self.key.issued_at(&self.realm, credentials.nonce()) else {
            return Err(AuthFailure::InvalidNonce);
        };

        let expected = hash::response(&ResponseInput {
            algorithm,
            username: credentials.username(),
            realm: &self.realm,
            password: password.unwrap_or(DUMMY_PASSWORD),
            method,
            uri: credentials.uri(),
            nonce: credentials.nonce(),
            protection: Some(protection),
        });
        let received = credentials.response().to_ascii_lowercase();
        let user_exists = Choice::from(u8::from(password.is_some()));
        if !bool::from(expected.as_bytes().ct_eq(received.as_bytes()) & user_exists) {
            return Err(AuthFailure::Rejected);
        }

        if self.is_stale(issued_at, now_unix_secs) {
            return Err(AuthFailure::Stale);
        }
        let request = Use {
            nonce: credentials.nonce(),
            issued_at,
            username: credentials.username(),
            cnonce: protection.cnonce,
            nc: protection.nc,
        };
        let expired_before = now_unix_secs.saturating_sub(self.nonce_lifetime_secs);
        match self.replay.admit(request, expired_before) {
            Admission::Accepted => Ok(Verified {
                username: credentials.username().to_owned(),
                algorithm,
            }),
            Admission::Replay => Err(AuthFailure::Replay { nc: protection.nc }),
            Admission::Forgotten => Err(AuthFailure::Stale),
        }
    }

    fn is_stale(&self, issued_at: u64, now_unix_secs: u64) -> bool {
        let from_the_future = issued_at > now_unix_secs.saturating_add(MAX_CLOCK_SKEW_SECS);
        let too_old = now_unix_secs.saturating_sub(issued_at) > self.nonce_lifetime_secs;
        from_the_future || too_old
    }
}

/// Whether the digest `uri` designates the request's Request-URI (RFC 2617 §3.2.2.5): the
/// same text, or the same scheme, host and port without a user part — what SIPp and some
/// phones sign for an INVITE to `sip:user@host:port`. A different host, port or user is a
/// mismatch.
fn uri_covers(uri: &str, request_uri: &str) -> bool {
    let (uri, request_uri) = (uri.trim(), request_uri.trim());
    if uri == request_uri {
        return true;
    }
    let (Ok(crate::sip::message::Uri::Sip(signed)), Ok(crate::sip::message::Uri::Sip(target))) = (
        crate::sip::message::Uri::parse(uri),
        crate::sip::message::Uri::parse(request_uri),
    ) else {
        return false;
    };
    signed.user.is_none()
        && signed.secure == target.secure
        && signed.host == target.host
        && signed.port == target.port
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::auth::{FailureAction, NonceCount, Qop};

    const REALM: &str = "pbx.example.com";
    const NOW: u64 = 1_700_000_000;
    const URI: &str = "sip:pbx.example.com";

    fn config() -> DigestConfig {
        DigestConfig::new(REALM, NonceKey::new([42; 32]))
    }

    fn server() -> DigestServer {
        DigestServer::new(config()).unwrap()
    }

    fn challenge(server: &DigestServer, algorithm: Algorithm, now: u64) -> Challenge {
        server
            .challenges(now, false)
            .into_iter()
            .find(|c| c.algorithm() == algorithm)
            .expect("the algorithm is offered")
    }

    /// What a client would send, printed and parsed again as the server would see it.
    fn answer(challenge: &Challenge, username: &str, password: &str, nc: u32) -> Credentials {
        let credentials = challenge
            .respond(
                "REGISTER",
                URI,
                username,
                password,
                "0a4f113b",
                NonceCount(nc),
            )
            .unwrap();
        Credentials::parse(&credentials.to_string()).unwrap()
    }

    fn verify(
        server: &mut DigestServer,
        credentials: &Credentials,
        password: Option<&str>,
        now: u64,
    ) -> Result<Verified, AuthFailure> {
        server.verify(credentials, "REGISTER", URI, password, now)
    }

    #[test]
    fn default_challenges_offer_sha256_then_md5() {
        let challenges: Vec<String> = server()
            .challenges(NOW, false)
            .iter()
            .map(ToString::to_string)
            .collect();
        let nonce = NonceKey::new([42; 32]).issue(REALM, NOW, 0);
        assert_eq!(
            challenges,
            [
                format!(
                    "Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=SHA-256, qop=\"auth\""
                ),
                format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\""),
            ]
        );
    }

    #[test]
    fn client_response_verifies_with_sha256() {
        let mut server = server();
        let credentials = answer(
            &challenge(&server, Algorithm::Sha256, NOW),
            "alice",
            "pw",
            1,
        );
        let verified = verify(&mut server, &credentials, Some("pw"), NOW + 1).unwrap();
        assert_eq!(verified.username, "alice");
        assert_eq!(verified.algorithm, Algorithm::Sha256);
    }

    #[test]
    fn client_response_verifies_with_md5() {
        let mut server = server();
        let credentials = answer(&challenge(&server, Algorithm::Md5, NOW), "alice", "pw", 1);
        let verified = verify(&mut server, &credentials, Some("pw"), NOW + 1).unwrap();
        assert_eq!(verified.algorithm, Algorithm::Md5);
    }

    #[test]
    fn response_in_uppercase_hex_is_accepted() {
        let mut server = server();
        let mut credentials = answer(&challenge(&server, Algorithm::Md5, NOW), "alice", "pw", 1);
        credentials.response = credentials.response.to_ascii_uppercase();
        assert!(verify(&mut server, &credentials, Some("pw"), NOW).is_ok());
    }

    #[test]
    fn wrong_password_is_rejected() {
        let mut server = server();
        let credentials = answer(
            &challenge(&server, Algorithm::Sha256, NOW),
            "alice",
            "guess",
            1,
        );
        assert_eq!(
            verify(&mut server, &credentials, Some("pw"), NOW),
            Err(AuthFailure::Rejected)
        );
        assert_eq!(
            AuthFailure::Rejected.action(),
            FailureAction::Challenge { stale: false }
        );
    }

    #[test]
    fn unknown_user_is_rejected_exactly_like_a_wrong_password() {
        let mut server = server();
        let offered = challenge(&server, Algorithm::Sha256, NOW);
        let wrong_password = answer(&offered, "alice", "guess", 1);
        let unknown_user = answer(&offered, "mallory", "guess", 1);
        let for_wrong_password = verify(&mut server, &wrong_password, Some("pw"), NOW);
        let for_unknown_user = verify(&mut server, &unknown_user, None, NOW);
        assert_eq!(for_wrong_password, Err(AuthFailure::Rejected));
        assert_eq!(for_unknown_user, for_wrong_password);
    }

    #[test]
    fn unknown_user_is_rejected_even_if_the_response_matches_the_dummy() {
        let mut server = server();
        let credentials = answer(
            &challenge(&server, Algorithm::Md5, NOW),
            "mallory",
            DUMMY_PASSWORD,
            1,
        );
        assert_eq!(
            verify(&mut server, &credentials, None, NOW),
            Err(AuthFailure::Rejected)
        );
    }

    #[test]
    fn challenges_for_a_known_and_an_unknown_user_are_identical_but_for_the_nonce_serial() {
        let mut server = server();
        let offered = challenge(&server, Algorithm::Sha256, NOW);
        let known = verify(
            &mut server,
            &answer(&offered, "alice", "x", 1),
            Some("pw"),
            NOW,
        );
        let unknown = verify(&mut server, &answer(&offered, "mallory", "x", 1), None, NOW);
        let rechallenge = |failure: Result<Verified, AuthFailure>| {
            let FailureAction::Challenge { stale } = failure.unwrap_err().action() else {
                panic!("a rejected request is re-challenged");
            };
            // Every nonce carries a serial; blank it so only what could depend on the user
            // is compared.
            server
                .challenges(NOW, stale)
                .iter()
                .map(|c| c.to_string().replace(c.nonce(), "NONCE"))
                .collect::<Vec<_>>()
        };
        assert_eq!(rechallenge(known), rechallenge(unknown));
    }

    #[test]
    fn nonce_older_than_the_lifetime_is_stale_and_the_new_challenge_says_so() {
        let mut server = server();
        let credentials = answer(
            &challenge(&server, Algorithm::Sha256, NOW),
            "alice",
            "pw",
            1,
        );
        let later = NOW + DEFAULT_NONCE_LIFETIME_SECS + 1;
        let failure = verify(&mut server, &credentials, Some("pw"), later).unwrap_err();
        assert_eq!(failure, AuthFailure::Stale);
        assert_eq!(failure.action(), FailureAction::Challenge { stale: true });
        let renewed = &server.challenges(later, true)[0];
        assert!(renewed.is_stale());
        assert!(renewed.to_string().ends_with(", stale=true"));

        let retried = answer(
            &Challenge::parse(&renewed.to_string()).unwrap(),
            "alice",
            "pw",
            1,
        );
        assert!(verify(&mut server, &retried, Some("pw"), later).is_ok());
    }

    #[test]
    fn nonce_at_exactly_the_lifetime_is_still_fresh() {
        let mut server = server();
        let credentials = answer(
            &challenge(&server, Algorithm::Sha256, NOW),
            "alice",
            "pw",
            1,
        );
        let at_limit = NOW + DEFAULT_NONCE_LIFETIME_SECS;
        assert!(verify(&mut server, &credentials, Some("pw"), at_limit).is_ok());
    }

    #[test]
    fn stale_nonce_with_a_wrong_password_is_rejected_not_stale() {
        let mut server = server();
        let credentials = answer(&challenge(&server, Algorithm::Sha256, NOW), "alice", "x", 1);
        let later = NOW + DEFAULT_NONCE_LIFETIME_SECS + 1;
        assert_eq!(
            verify(&mut server, &credentials, Some("pw"), later),
            Err(AuthFailure::Rejected)
        );
    }

    #[test]
    fn nonce_from_far_in_the_future_is_stale() {
        let mut server = server();
        let credentials = answer(
            &challenge(&server, Algorithm::Sha256, NOW),
            "alice",
            "pw",
            1,
        );
        assert_eq!(
            verify(&mut server, &credentials, Some("pw"), NOW - 60),
            Err(AuthFailure::Stale)
        );
        assert!(verify(&mut server, &credentials, Some("pw"), NOW - 1).is_ok());
    }

    #[test]
    fn tampered_nonce_is_refused() {
        let mut server = server();
        let offered = challenge(&server, Algorithm::Sha256, NOW);
        // Move the issue time forward to stretch the nonce's life, keeping the MAC.
        let tampered = format!("{:016x}{}", NOW + 3600, &offered.nonce()[16..]);
        let forged =
            Challenge::parse(&offered.to_string().replace(offered.nonce(), &tampered)).unwrap();
        let credentials = answer(&forged, "alice", "pw", 1);
        let failure = verify(&mut server, &credentials, Some("pw"), NOW).unwrap_err();
        assert_eq!(failure, AuthFailure::InvalidNonce);
        assert_eq!(failure.action(), FailureAction::Challenge { stale: false });
    }

    #[test]
    fn nonce_of_another_server_is_refused() {
        let mut other =
            DigestServer::new(DigestConfig::new(REALM, NonceKey::new([7; 32]))).unwrap();
        let credentials = answer(&challenge(&other, Algorithm::Md5, NOW), "alice", "pw", 1);
        assert!(verify(&mut other, &credentials, Some("pw"), NOW).is_ok());
        assert_eq!(
            verify(&mut server(), &credentials, Some("pw"), NOW),
            Err(AuthFailure::InvalidNonce)
        );
    }

    #[test]
    fn replayed_nonce_count_is_refused_and_increasing_counts_pass() {
        let mut server = server();
        let offered = challenge(&server, Algorithm::Sha256, NOW);
        let first = answer(&offered, "alice", "pw", 1);
        assert!(verify(&mut server, &first, Some("pw"), NOW).is_ok());
        let failure = verify(&mut server, &first, Some("pw"), NOW + 1).unwrap_err();
        assert_eq!(failure, AuthFailure::Replay { nc: NonceCount(1) });
        assert_eq!(failure.action(), FailureAction::Challenge { stale: true });

        let second = answer(&offered, "alice", "pw", 2);
        assert!(verify(&mut server, &second, Some("pw"), NOW + 2).is_ok());
        let fifth = answer(&offered, "alice", "pw", 5);
        assert!(verify(&mut server, &fifth, Some("pw"), NOW + 3).is_ok());
        let fourth = answer(&offered, "alice", "pw", 4);
        assert_eq!(
            verify(&mut server, &fourth, Some("pw"), NOW + 4),
            Err(AuthFailure::Replay { nc: NonceCount(4) })
        );
    }

    #[test]
    fn failed_attempts_do_not_spend_nonce_counts() {
        let mut server = server();
        let offered = challenge(&server, Algorithm::Sha256, NOW);
        let guess = answer(&offered, "alice", "guess", 9);
        assert_eq!(
            verify(&mut server, &guess, Some("pw"), NOW),
            Err(AuthFailure::Rejected)
        );
        let real = answer(&offered, "alice", "pw", 1);
        assert!(verify(&mut server, &real, Some("pw"), NOW).is_ok());
    }

    #[test]
    fn two_clients_with_the_same_nonce_each_start_at_one() {
        let mut server = server();
        let offered = challenge(&server, Algorithm::Sha256, NOW);
        let alice = answer(&offered, "alice", "a", 1);
        let bob = offered
            .respond("REGISTER", URI, "bob", "b", "other-cnonce", NonceCount(1))
            .unwrap();
        assert!(verify(&mut server, &alice, Some("a"), NOW).is_ok());
        assert!(verify(&mut server, &bob, Some("b"), NOW).is_ok());
    }

    #[test]
    fn full_replay_guard_turns_a_forgotten_nonce_stale() {
        let mut config = config();
        config.replay_capacity = 1;
        let mut server = DigestServer::new(config).unwrap();
        let early = answer(&challenge(&server, Algorithm::Md5, NOW), "alice", "pw", 1);
        let late = answer(
            &challenge(&server, Algorithm::Md5, NOW + 1),
            "alice",
            "pw",
            1,
        );
        assert!(verify(&mut server, &early, Some("pw"), NOW + 1).is_ok());
        assert!(verify(&mut server, &late, Some("pw"), NOW + 1).is_ok());
        assert_eq!(
            verify(&mut server, &early, Some("pw"), NOW + 1),
            Err(AuthFailure::Stale)
        );
    }

    #[test]
    fn uri_that_differs_from_the_request_uri_is_a_mismatch() {
        let mut server = server();
        let credentials = answer(
            &challenge(&server, Algorithm::Sha256, NOW),
            "alice",
            "pw",
            1,
        );
        let failure = server
            .verify(
                &credentials,
                "REGISTER",
                "sip:other.example.com",
                Some("pw"),
                NOW,
            )
            .unwrap_err();
        assert_eq!(
            failure,
            AuthFailure::UriMismatch {
                uri: URI.into(),
                request_uri: "sip:other.example.com".into()
            }
        );
        assert_eq!(failure.action(), FailureAction::BadRequest);
        // The host and port without the user part is the same resource (SIPp signs INVITEs
        // so); another host, port or user is not.
        let user_uri = "sip:1001@example.com:5070";
        assert!(uri_covers("sip:example.com:5070", user_uri));
        assert!(!uri_covers("sip:example.com", user_uri));
        assert!(!uri_covers("sip:other.example.com:5070", user_uri));
        assert!(!uri_covers("sip:1002@example.com:5070", user_uri));
        assert!(!uri_covers("sips:example.com:5070", user_uri));
        let padded = format!("  {URI} ");
        assert!(
            server
                .verify(&credentials, "REGISTER", &padded, Some("pw"), NOW)
                .is_ok()
        );
    }

    #[test]
    fn response_for_another_method_is_rejected() {
        let mut server = server();
        let credentials = answer(
            &challenge(&server, Algorithm::Sha256, NOW),
            "alice",
            "pw",
            1,
        );
        assert_eq!(
            server.verify(&credentials, "INVITE", URI, Some("pw"), NOW),
            Err(AuthFailure::Rejected)
        );
    }

    #[test]
    fn credentials_for_another_realm_are_refused() {
        let mut server = server();
        let foreign = Challenge::parse(
            &challenge(&server, Algorithm::Sha256, NOW)
                .to_string()
                .replace(REALM, "elsewhere.example.com"),
        )
        .unwrap();
        let credentials = answer(&foreign, "alice", "pw", 1);
        assert_eq!(
            verify(&mut server, &credentials, Some("pw"), NOW),
            Err(AuthFailure::WrongRealm {
                realm: "elsewhere.example.com".into()
            })
        );
    }

    #[test]
    fn response_without_qop_is_refused() {
        let mut server = server();
        let offered = challenge(&server, Algorithm::Md5, NOW);
        let rfc2069 = Challenge::parse(&offered.to_string().replace(", qop=\"auth\"", "")).unwrap();
        assert_eq!(rfc2069.qop(), None);
        let credentials = answer(&rfc2069, "alice", "pw", 1);
        assert_eq!(credentials.qop(), None);
        let failure = verify(&mut server, &credentials, Some("pw"), NOW).unwrap_err();
        assert_eq!(failure, AuthFailure::UnsupportedQop { qop: None });
        assert_eq!(failure.action(), FailureAction::Challenge { stale: false });
    }

    #[test]
    fn algorithm_not_offered_is_refused() {
        let mut config = config();
        config.algorithms = vec![Algorithm::Sha256];
        let mut server = DigestServer::new(config).unwrap();
        assert_eq!(server.challenges(NOW, false).len(), 1);
        let md5 = Challenge::parse(
            &challenge(&server, Algorithm::Sha256, NOW)
                .to_string()
                .replace("SHA-256", "MD5"),
        )
        .unwrap();
        let credentials = answer(&md5, "alice", "pw", 1);
        assert_eq!(
            verify(&mut server, &credentials, Some("pw"), NOW),
            Err(AuthFailure::UnsupportedAlgorithm {
                algorithm: "MD5".into()
            })
        );
    }

    #[test]
    fn parse_failure_maps_to_a_400_or_a_challenge() {
        let malformed = AuthFailure::from(Credentials::parse("Digest username=\"a").unwrap_err());
        assert_eq!(malformed.action(), FailureAction::BadRequest);
        let basic = AuthFailure::from(Credentials::parse("Basic YTpi").unwrap_err());
        assert_eq!(basic.action(), FailureAction::Challenge { stale: false });
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let mut no_algorithms = config();
        no_algorithms.algorithms.clear();
        assert_eq!(
            DigestServer::new(no_algorithms).unwrap_err(),
            ApiMisuse::NoAlgorithms
        );
        let mut zero_lifetime = config();
        zero_lifetime.nonce_lifetime_secs = 0;
        assert_eq!(
            DigestServer::new(zero_lifetime).unwrap_err(),
            ApiMisuse::ZeroNonceLifetime
        );
        let mut zero_capacity = config();
        zero_capacity.replay_capacity = 0;
        assert_eq!(
            DigestServer::new(zero_capacity).unwrap_err(),
            ApiMisuse::ZeroReplayCapacity
        );
        let mut bad_realm = config();
        bad_realm.realm = "a\r\nb".into();
        assert_eq!(
            DigestServer::new(bad_realm).unwrap_err(),
            ApiMisuse::ControlCharacter { field: "realm" }
        );
    }

    #[test]
    fn repeated_algorithms_are_offered_once() {
        let mut config = config();
        config.algorithms = vec![Algorithm::Md5, Algorithm::Sha256, Algorithm::Md5];
        let offered: Vec<Algorithm> = DigestServer::new(config)
            .unwrap()
            .challenges(NOW, false)
            .iter()
            .map(Challenge::algorithm)
            .collect();
        assert_eq!(offered, [Algorithm::Md5, Algorithm::Sha256]);
    }

    #[test]
    fn issued_challenges_use_qop_auth() {
        for challenge in server().challenges(NOW, false) {
            assert_eq!(challenge.qop(), Some(Qop::Auth));
            assert_eq!(challenge.realm(), REALM);
            assert_eq!(challenge.opaque(), None);
        }
    }

    #[test]
    fn debug_output_hides_the_key() {
        let printed = format!("{:?}", server());
        assert!(printed.contains("NonceKey(***)"));
        assert!(!printed.contains("42"));
    }
}
