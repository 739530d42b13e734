//! API authentication (spec §4.1.2, §4.2): `POST /api/login` gives an HS256 JWT; every other
//! `/api` path wants it as `Authorization: Nway <token>` or `Authorization: Bearer <token>`.
//!
//! - Tokens are JWTs (RFC 7519) signed with HMAC-SHA256 by a 32-byte key generated at first
//!   start and kept in `<data_dir>/api-token-key` (mode 0600), so tokens survive a restart.
//!   Claims: `sub` (the user), `iat`, `exp` (`http.token_lifetime_secs` later, 24 h by
//!   default), `pwv` (the version of the user's password). Only `alg` HS256 is accepted;
//!   the signature is compared in constant time.
//! - A token counts only while its administrator exists with the password it was issued
//!   under: a password change or a removal through the API voids older tokens at once. A
//!   change made outside this server (the `admin reset-password` command) takes effect
//!   within [`USERS_REFRESH`], when the server reads the administrators again.
//! - The scheme is matched ignoring case, with any whitespace before the token. Without the
//!   header, a `token` query parameter is taken (browsers can not set headers on WebSockets;
//!   JWTs need no URL escaping).
//! - Failed logins are limited: 5 per source address and user name, and 20 per source
//!   address, within 5 minutes; more get 429 with Retry-After until the window ends. A
//!   success clears the pair's count. Keying on the pair (not on the user alone) keeps an
//!   attacker elsewhere from locking the administrator out.
//! - Passwords are checked against the argon2id hash of the `admin_user` table, off the
//!   async threads; an unknown user costs the same hash check as a known one.
//!
//! What this module does not do: roles (every administrator may do everything), enforce
//! `must_change_password` (it is reported at login; the web UI asks for the change).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::body::LegacyBody;
use super::error::ApiError;
use crate::store::value::Value;
use crate::store::{AdminUser, ListQuery, StoreError};

/// The file in the data directory that holds the token signing key.
pub const TOKEN_KEY_FILE: &str = "api-token-key";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// How often the administrators are read again from the database, to learn of password
/// changes and removals made outside this server.
pub const USERS_REFRESH: Duration = Duration::from_secs(5);

/// Reads the administrators again every [`USERS_REFRESH`] until `stop` turns true. A
/// database that can not be read is said once, and the versions known stay in force.
pub async fn keep_users_fresh(
    auth: std::sync::Arc<Auth>,
    store: crate::store::Store,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    #![allow(clippy::disallowed_methods)] // a driver: reads the clock
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(USERS_REFRESH) => {}
        }
        match auth.refresh_users(&store, crate::clock::now_utc()).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("the administrators can be read again");
            }
            Ok(()) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(
                    %error,
                    "the administrators can not be read again: changes made elsewhere wait"
                );
            }
            Err(_) => {}
        }
    }
}

/// The claims of our tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The administrator's user name.
    pub sub: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// The version of the administrator's password the token was issued under (the
    /// microsecond it was last set): a new password makes older tokens void.
    #[serde(default)]
    pub pwv: i64,
}

/// Why a token was refused (said to the caller in the 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token is not signed with HS256")]
    WrongAlgorithm,
    #[error("the token's signature is wrong")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

/// Signs and checks tokens.
pub struct TokenSigner {
    key: [u8; 32],
    lifetime: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key", &"***")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// The header of every token: `{"alg":"HS256","typ":"JWT"}`.
const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl TokenSigner {
    pub fn new(key: [u8; 32], lifetime: Duration) -> TokenSigner {
        TokenSigner { key, lifetime }
    }

    /// The key of `<data_dir>/api-token-key`, made (random, mode 0600) when missing.
    ///
    /// # Errors
    /// The file can not be read or written, or does not hold 64 hex digits.
    pub fn load_or_create(data_dir: &Path, lifetime: Duration) -> std::io::Result<TokenSigner> {
        let path = data_dir.join(TOKEN_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = parse_hex_key(text.trim()).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} must hold 64 hex digits", path.display()),
                    )
                })?;
                Ok(TokenSigner::new(key, lifetime))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::fill(&mut key);
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                write_private(&path, &format!("{hex}\n"))?;
                tracing::info!(file = %path.display(), "generated the API token signing key");
                Ok(TokenSigner::new(key, lifetime))
            }
            Err(error) => Err(error),
        }
    }

    /// How long the tokens issued are valid.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A token for `subject` under its password version `pwv`, valid for the lifetime from
    /// `now`, and when it expires.
    pub fn issue(&self, subject: &str, pwv: i64, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
        let expires =
            now + chrono::Duration::from_std(self.lifetime).unwrap_or(chrono::Duration::days(1));
        let claims = Claims {
            sub: subject.to_owned(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
            pwv,
        };
        (self.sign(&claims), expires)
    }

    /// The token carrying `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialise");
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER_JSON),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// The claims of `token` if it is ours, well signed and not expired at `now`.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header_part), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let signed = &token[..header_part.len() + 1 + payload.len()];
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(header_part)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(TokenError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(TokenError::WrongAlgorithm);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(signed.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

fn parse_hex_key(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Failed logins per source and user name, and per source.
#[derive(Debug)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, FailureWindow>>,
    window: Duration,
    per_user: u32,
    per_source: u32,
}

#[derive(Debug, Clone, Copy)]
struct FailureWindow {
    count: u32,
    started: Instant,
}

/// Entries kept before expired windows are swept (and, past it, the oldest dropped).
const LIMITER_ENTRIES: usize = 100_000;

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter {
            failures: Mutex::new(HashMap::new()),
            window: Duration::from_secs(300),
            per_user: 5,
            per_source: 20,
        }
    }
}

impl LoginLimiter {
    fn keys(source: IpAddr, user: &str) -> [String; 2] {
        [format!("{source} {user}"), source.to_string()]
    }

    /// `Err(seconds)` when `user` from `source` must wait that long before trying again.
    pub fn check(&self, source: IpAddr, user: &str, now: Instant) -> Result<(), u64> {
        let failures = self.failures.lock().expect("login limiter");
        let [pair, from] = Self::keys(source, user);
        for (key, limit) in [(pair, self.per_user), (from, self.per_source)] {
            if let Some(w) = failures.get(&key)
                && w.count >= limit
                && now.duration_since(w.started) < self.window
            {
                let left = self.window - now.duration_since(w.started);
                return Err(left.as_secs().max(1));
            }
        }
        Ok(())
    }

    /// Counts a failed login.
    pub fn failed(&self, source: IpAddr, user: &str, now: Instant) {
        let mut failures = self.failures.lock().expect("login limiter");
        if failures.len() >= LIMITER_ENTRIES {
            let window = self.window;
            failures.retain(|_, w| now.duration_since(w.started) < window);
            if failures.len() >= LIMITER_ENTRIES {
                failures.clear();
            }
        }
        for key in Self::keys(source, user) {
            let entry = failures.entry(key).or_insert(FailureWindow {
                count: 0,
                started: now,
            });
            if now.duration_since(entry.started) >= self.window {
                *entry = FailureWindow {
                    count: 0,
                    started: now,
                };
            }
            entry.count += 1;
        }
    }

    /// A successful login clears the pair's failures.
    pub fn succeeded(&self, source: IpAddr, user: &str) {
        let [pair, _] = Self::keys(source, user);
        self.failures.lock().expect("login limiter").remove(&pair);
    }
}

/// What the API's authentication shares.
#[derive(Debug)]
pub struct Auth {
    pub tokens: TokenSigner,
    pub limiter: LoginLimiter,
    /// Per administrator, its password version: tokens issued under another one (before a
    /// password change) are refused, and so are tokens of names not in it (administrators
    /// removed).
    password_versions: Mutex<HashMap<String, i64>>,
}

impl Auth {
    /// Knows no administrator until [`Auth::load_users`] or [`Auth::password_set`].
    pub fn new(tokens: TokenSigner, limiter: LoginLimiter) -> Auth {
        Auth {
            tokens,
            limiter,
            password_versions: Mutex::default(),
        }
    }

    /// Learns every administrator's password version from the database.
    ///
    /// # Errors
    /// The database can not be read.
    pub async fn load_users(&self, store: &crate::store::Store) -> Result<(), StoreError> {
        let users = store.all::<AdminUser>().await?;
        let mut map = self.password_versions.lock().expect("password versions");
        map.clear();
        for user in users {
            map.insert(user.username.clone(), password_version(&user));
        }
        Ok(())
    }

    /// Learns again from the database what changed outside this server (`rswitch admin
    /// reset-password`, another administrator tool): newer password versions, and the
    /// administrators no longer there. Versions only move forward, as in
    /// [`Auth::password_set`]; `now` voids the tokens of administrators removed.
    ///
    /// # Errors
    /// The database can not be read (nothing changes).
    pub async fn refresh_users(
        &self,
        store: &crate::store::Store,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let users = store.all::<AdminUser>().await?;
        let mut map = self.password_versions.lock().expect("password versions");
        for (name, version) in map.iter_mut() {
            if !users.iter().any(|u| u.username == *name) {
                *version = (*version).max(now.timestamp_micros());
            }
        }
        for user in users {
            let version = password_version(&user);
            let entry = map.entry(user.username.clone()).or_insert(version);
            *entry = (*entry).max(version);
        }
        Ok(())
    }

    /// Only tokens issued under `user`'s password as it is now count from now on. Versions
    /// only move forward: a login that read the row before a change can not bring the old
    /// version back.
    pub fn password_set(&self, user: &AdminUser) {
        let version = password_version(user);
        let mut map = self.password_versions.lock().expect("password versions");
        let entry = map.entry(user.username.clone()).or_insert(version);
        *entry = (*entry).max(version);
    }

    /// Every token of `user` issued until `now` is refused from now on (a version no token
    /// carries; a login racing the removal can not undo it).
    pub fn forget(&self, user: &str, now: DateTime<Utc>) {
        let mut map = self.password_versions.lock().expect("password versions");
        let entry = map.entry(user.to_owned()).or_insert(i64::MIN);
        *entry = (*entry).max(now.timestamp_micros());
    }

    /// Whether a verified token still counts for its administrator.
    fn still_valid(&self, claims: &Claims) -> bool {
        self.password_versions
            .lock()
            .expect("password versions")
            .get(&claims.sub)
            .is_some_and(|version| claims.pwv == *version)
    }
}

/// The version of an administrator's password: when it was last set (`updated_at`, in
/// microseconds).
pub fn password_version(user: &AdminUser) -> i64 {
    user.updated_at.timestamp_micros()
}

#[derive(Serialize)]
struct LoginData {
    token: String,
    expires_at: String,
    must_change_password: bool,
}

#[derive(Serialize)]
struct LoginResponse {
    code: u16,
    message: &'static str,
    /// At the top level too, for clients that look for it there (spec §4.2).
    token: String,
    data: LoginData,
}

/// `POST /api/login` with `{"username","password"}`.
pub(super) async fn login(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    #![allow(clippy::disallowed_methods)] // a driver: reads the clock
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
    let body = LegacyBody::from_request(request, &()).await?;
    let username = body.required_text("username")?;
    let password = body.text("password")?.unwrap_or_default();
    let auth = state.auth.clone();
    if let Err(seconds) = auth.limiter.check(source, &username, Instant::now()) {
        tracing::warn!(%source, user = %username, "login refused: too many failures");
        let mut error = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed logins; try again in {seconds} s"),
        );
        error.retry_after = Some(seconds);
        return Err(error);
    }
    let query = ListQuery::default().filter("username", Value::Text(Some(username.clone())));
    let user = state
        .store
        .list::<AdminUser>(&query)
        .await
        .map_err(|e| ApiError::internal("reading the administrators", e))?
        .into_iter()
        .next();
    let hash = user.as_ref().map(|u| u.password_hash.expose().to_owned());
    let verified = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => crate::secret::verify_password(&password, &hash),
        None => {
            // The same work as for a real user: the answer's timing tells nothing.
            let _ = crate::secret::verify_password(&password, dummy_hash());
            false
        }
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|_| verified) else {
        auth.limiter.failed(source, &username, Instant::now());
        tracing::warn!(%source, user = %username, "login failed");
        return Err(ApiError::unauthorized("wrong user name or password"));
    };
    auth.limiter.succeeded(source, &username);
    let now = crate::clock::now_utc();
    // The database is the truth about the password (a change by another process too).
    auth.password_set(&user);
    let (token, expires) = auth
        .tokens
        .issue(&user.username, password_version(&user), now);
    if let Err(error) = note_login(&state.store, user.id, now).await {
        tracing::warn!(%error, "the login time could not be stored");
    }
    tracing::info!(%source, user = %user.username, "login");
    Ok(axum::Json(LoginResponse {
        code: 0,
        message: "ok",
        token: token.clone(),
        data: LoginData {
            token,
            expires_at: expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            must_change_password: user.must_change_password,
        },
    })
    .into_response())
}

/// Stores the login time alone (a password set meanwhile stays).
async fn note_login(
    store: &crate::store::Store,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    store
        .set_column::<AdminUser>(id, "last_login_at", Value::Time(Some(now)))
        .await
}

/// An argon2id hash of nothing in particular, for unknown users.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        crate::secret::hash_password("not the password of anyone").unwrap_or_default()
    })
}

/// The administrator a request was authenticated as.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// Middleware: lets the request through with a valid token (its [`Caller`] in the
/// extensions), else 401.
pub(super) async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    #![allow(clippy::disallowed_methods)] // a driver: reads the clock
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_token(request.uri().query()).map(|t| format!("Bearer {t}")));
    let Some(header) = header.as_deref() else {
        return unauthorized(
            "the Authorization header is missing (Nway <token> or Bearer <token>)",
        );
    };
    let header = header.trim();
    let (scheme, token) = header
        .split_once(|c: char| c.is_ascii_whitespace())
        .map_or((header, ""), |(s, t)| (s, t.trim()));
    if !(scheme.eq_ignore_ascii_case("nway") || scheme.eq_ignore_ascii_case("bearer")) {
        return unauthorized("the Authorization scheme must be Nway or Bearer");
    }
    match state.auth.tokens.verify(token, crate::clock::now_utc()) {
        Ok(claims) if !state.auth.still_valid(&claims) => unauthorized(
            "the token was revoked (the password changed or the administrator was removed)",
        ),
        Ok(claims) => {
            request.extensions_mut().insert(Caller(claims.sub));
            next.run(request).await
        }
        Err(error) => unauthorized(&error.to_string()),
    }
}

/// The `token` parameter of a query string (browsers' WebSockets can not send headers).
fn query_token(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .filter(|t| !t.is_empty())
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::unauthorized(message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"rswitch\""),
    );
    response
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a real Instant to count from
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::new([7; 32], Duration::from_secs(3600))
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let (token, expires) = signer().issue("admin", 0, now);
        assert!(token.starts_with("eyJhbGciOiJIUzI1NiIs"));
        let claims = signer().verify(&token, now).unwrap();
        assert_eq!(claims.sub, "admin");
        assert_eq!(claims.exp, expires.timestamp());
        assert_eq!(signer().verify(&token, expires), Err(TokenError::Expired));
    }

    #[test]
    fn forged_tokens_are_refused() {
        let now = crate::clock::now_utc();
        let (token, _) = signer().issue("admin", 0, now);
        let other = TokenSigner::new([8; 32], Duration::from_secs(3600));
        assert_eq!(other.verify(&token, now), Err(TokenError::BadSignature));
        // "alg":"none" with the signature dropped.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            token.split('.').nth(1).unwrap()
        );
        assert_eq!(signer().verify(&none, now), Err(TokenError::WrongAlgorithm));
        // A changed payload.
        let mut parts: Vec<&str> = token.split('.').collect();
        let changed = URL_SAFE_NO_PAD.encode(r#"{"sub":"root","iat":0,"exp":99999999999}"#);
        parts[1] = &changed;
        assert_eq!(
            signer().verify(&parts.join("."), now),
            Err(TokenError::BadSignature)
        );
        for junk in ["", "a.b", "a.b.c.d", "###.###.###"] {
            assert!(signer().verify(junk, now).is_err(), "{junk}");
        }
    }

    #[test]
    fn failed_logins_are_limited_per_source_and_user() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let attacker = IpAddr::from([10, 0, 0, 1]);
        let admin_desk = IpAddr::from([10, 0, 0, 2]);
        for _ in 0..5 {
            assert!(limiter.check(attacker, "admin", t0).is_ok());
            limiter.failed(attacker, "admin", t0);
        }
        let wait = limiter.check(attacker, "admin", t0).unwrap_err();
        assert!((299..=300).contains(&wait), "{wait}");
        // The administrator elsewhere is not locked out by it.
        assert!(limiter.check(admin_desk, "admin", t0).is_ok());
        // Over the window, the pair may try again.
        assert!(
            limiter
                .check(attacker, "admin", t0 + Duration::from_secs(301))
                .is_ok()
        );
        // Twenty failures from one source, whatever the names, stop that source.
        for i in 0..15 {
            limiter.failed(attacker, &format!("user{i}"), t0);
        }
        assert!(limiter.check(attacker, "someone", t0).is_err());
        // A success clears the pair.
        limiter.failed(admin_desk, "admin", t0);
        limiter.succeeded(admin_desk, "admin");
        assert!(limiter.check(admin_desk, "admin", t0).is_ok());
    }
}
