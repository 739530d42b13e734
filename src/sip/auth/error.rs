//! What can go wrong: the peer's header is bad ([`AuthError`]), its credentials do not pass
//! ([`AuthFailure`]), or our caller used the API wrongly ([`ApiMisuse`]).

use thiserror::Error;

use super::NonceCount;

/// A `WWW-Authenticate` / `Authorization` value (or their proxy twins) that cannot be used.
/// The fault is on the peer that sent it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The value breaks the grammar or a limit, or lacks a required parameter.
    #[error("malformed digest header: {reason}")]
    Malformed { reason: &'static str },
    /// Well-formed, but not the `Digest` scheme (for example `Basic`).
    #[error("unsupported authentication scheme {scheme:?}")]
    UnsupportedScheme { scheme: String },
    /// An `algorithm` this module does not compute (for example `SHA-512-256` or `MD5-sess`).
    #[error("unsupported digest algorithm {algorithm:?}")]
    UnsupportedAlgorithm { algorithm: String },
    /// A `qop` other than `auth`, or a challenge offering no `qop` we support.
    #[error("unsupported qop {qop:?}")]
    UnsupportedQop { qop: String },
}

/// Why [`DigestServer::verify`](super::DigestServer::verify) refused a request.
///
/// Every variant is the peer's doing. [`action`](Self::action) tells how to answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The credentials header could not be parsed.
    #[error("malformed credentials: {reason}")]
    Malformed { reason: &'static str },
    /// The credentials are not digest credentials.
    #[error("unsupported authentication scheme {scheme:?}")]
    UnsupportedScheme { scheme: String },
    /// The credentials are for another realm.
    #[error("credentials for realm {realm:?}, not ours")]
    WrongRealm { realm: String },
    /// The `uri` parameter differs from the Request-URI of the request.
    #[error("digest uri {uri:?} differs from the request URI {request_uri:?}")]
    UriMismatch { uri: String, request_uri: String },
    /// An algorithm we do not compute or do not offer.
    #[error("digest algorithm {algorithm:?} is not offered")]
    UnsupportedAlgorithm { algorithm: String },
    /// `qop` is missing (an RFC 2069 response) or is not `auth`.
    #[error("qop {qop:?} is not supported (only \"auth\")")]
    UnsupportedQop { qop: Option<String> },
    /// The nonce was not issued by us (bad format or bad MAC), or is for another realm.
    #[error("nonce was not issued by this server")]
    InvalidNonce,
    /// The nonce was ours but has expired; re-challenge with `stale=true`.
    #[error("nonce is stale")]
    Stale,
    /// The nonce-count is not greater than one already seen for this nonce and client.
    #[error("nonce-count {nc} was already used")]
    Replay { nc: NonceCount },
    /// Wrong password or unknown user: deliberately indistinguishable.
    #[error("credentials rejected")]
    Rejected,
}

/// How to answer a request whose authentication failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureAction {
    /// 400 Bad Request: the credentials are broken, a new challenge will not help.
    BadRequest,
    /// 401 (or 407 as a proxy) with fresh challenges from
    /// [`DigestServer::challenges`](super::DigestServer::challenges), passing `stale` on.
    Challenge { stale: bool },
}

impl AuthFailure {
    /// Whether to answer 400 or to re-challenge, and with which `stale` flag.
    ///
    /// `Stale` and `Replay` come with `stale=true`: the credentials were right, only the nonce
    /// cannot be used, so the client may retry with a new nonce without asking its user.
    /// A `uri` that differs from the Request-URI gets 400, as RFC 7616 §3.4.6 says.
    pub fn action(&self) -> FailureAction {
        match self {
            Self::Malformed { .. } | Self::UriMismatch { .. } => FailureAction::BadRequest,
            Self::Stale | Self::Replay { .. } => FailureAction::Challenge { stale: true },
            Self::UnsupportedScheme { .. }
            | Self::WrongRealm { .. }
            | Self::UnsupportedAlgorithm { .. }
            | Self::UnsupportedQop { .. }
            | Self::InvalidNonce
            | Self::Rejected => FailureAction::Challenge { stale: false },
        }
    }
}

impl From<AuthError> for AuthFailure {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Malformed { reason } => Self::Malformed { reason },
            AuthError::UnsupportedScheme { scheme } => Self::UnsupportedScheme { scheme },
            AuthError::UnsupportedAlgorithm { algorithm } => {
                Self::UnsupportedAlgorithm { algorithm }
            }
            AuthError::UnsupportedQop { qop } => Self::UnsupportedQop { qop: Some(qop) },
        }
    }
}

/// Our caller's bug: a configuration or an argument that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// The server was configured to offer no algorithm.
    #[error("no digest algorithm to offer")]
    NoAlgorithms,
    /// A nonce lifetime of zero would make every nonce stale at once.
    #[error("nonce lifetime must be at least one second")]
    ZeroNonceLifetime,
    /// A replay guard with no room could not accept any request.
    #[error("replay guard capacity must be at least one")]
    ZeroReplayCapacity,
    /// A value that goes into a header contains a control character (CR, LF, NUL, …), which
    /// no quoted-string can carry.
    #[error("{field} contains a control character")]
    ControlCharacter { field: &'static str },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_and_uri_mismatch_get_400_others_a_challenge() {
        assert_eq!(
            AuthFailure::Malformed { reason: "x" }.action(),
            FailureAction::BadRequest
        );
        let mismatch = AuthFailure::UriMismatch {
            uri: "sip:a".into(),
            request_uri: "sip:b".into(),
        };
        assert_eq!(mismatch.action(), FailureAction::BadRequest);
        assert_eq!(
            AuthFailure::Rejected.action(),
            FailureAction::Challenge { stale: false }
        );
        assert_eq!(
            AuthFailure::InvalidNonce.action(),
            FailureAction::Challenge { stale: false }
        );
    }

    #[test]
    fn stale_and_replay_get_a_challenge_with_stale_true() {
        assert_eq!(
            AuthFailure::Stale.action(),
            FailureAction::Challenge { stale: true }
        );
        assert_eq!(
            AuthFailure::Replay { nc: NonceCount(1) }.action(),
            FailureAction::Challenge { stale: true }
        );
    }

    #[test]
    fn parse_errors_convert_to_the_matching_failure() {
        let failure: AuthFailure = AuthError::Malformed { reason: "r" }.into();
        assert_eq!(failure, AuthFailure::Malformed { reason: "r" });
        let failure: AuthFailure = AuthError::UnsupportedQop {
            qop: "auth-int".into(),
        }
        .into();
        assert_eq!(
            failure,
            AuthFailure::UnsupportedQop {
                qop: Some("auth-int".into())
            }
        );
    }
}
