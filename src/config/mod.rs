//! Configuration: one [`Config`], built from the embedded defaults, an optional TOML file and
//! `RSWITCH_*` environment variables, in that order of precedence (later wins).
//!
//! The defaults live in `defaults.toml`, which is both the documentation
//! (`rswitch config defaults` prints it) and the base every file is merged onto, so the two
//! can not drift apart. Every value is checked here; an error names the key and where the value
//! came from (default, file or environment variable). Pure: the caller reads the file and the
//! environment and passes them in.
//!
//! What this module does not do: read the database's base configuration (spec §2.4), which is
//! part of the running snapshot, not of the process configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use crate::secret::Secret;

/// The default configuration file, with a comment on every key.
pub const DEFAULTS_TOML: &str = include_str!("defaults.toml");

/// Environment variables and the keys they override.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("RSWITCH_DATA_DIR", "data_dir"),
    ("RSWITCH_LOG", "log.level"),
    ("RSWITCH_LOG_FORMAT", "log.format"),
    ("RSWITCH_DB_URL", "db.url"),
    ("RSWITCH_HTTP_LISTEN", "http.listen"),
    ("RSWITCH_SIP_UDP", "sip.udp"),
    ("RSWITCH_SIP_TCP", "sip.tcp"),
    ("RSWITCH_SIP_WS", "sip.ws"),
    ("RSWITCH_SIP_TLS", "sip.tls"),
    ("RSWITCH_SIP_WSS", "sip.wss"),
    ("RSWITCH_EXTERNAL_IP", "sip.external_ip"),
    ("RSWITCH_RTP_PORTS", "rtp.ports"),
    ("RSWITCH_SOUNDS_DIR", "sounds.dir"),
    ("RSWITCH_REDIS_URL", "redis.url"),
    ("RSWITCH_ADMIN_PASSWORD", "admin.initial_password"),
];

/// The whole process configuration, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub log: LogConfig,
    pub db: DbConfig,
    pub http: HttpConfig,
    pub sip: SipConfig,
    pub rtp: RtpConfig,
    pub redis: RedisConfig,
    pub admin: AdminConfig,
    pub events: EventsConfig,
    pub sounds: SoundsConfig,
    pub shutdown: ShutdownConfig,
}

/// Where the built-in prompts are (job numbers, …).
#[derive(Debug, Clone)]
pub struct SoundsConfig {
    /// The directory holding one subdirectory per language (`zh`, `en`).
    pub dir: PathBuf,
    /// The language whose prompts are played.
    pub language: String,
}

/// The in-process call event bus.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Each event is also written to the log (target `rswitch::events`, info level).
    pub log: bool,
    /// Events kept for a slow subscriber before it starts losing the oldest.
    pub queue: usize,
    /// The Redis channel events are published on.
    pub redis_channel: String,
    /// The correlation keys are added to the legacy payload.
    pub extra_fields: bool,
    /// Events kept while Redis is down.
    pub redis_buffer: usize,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A `tracing` filter directive.
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone)]
pub struct DbConfig {
    /// The effective URL (the SQLite default resolved against `data_dir`). May hold a password.
    pub url: Secret,
    pub connect_retry: Duration,
    pub max_connections: u32,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("url", &redact_url(self.url.expose()))
            .field("connect_retry", &self.connect_retry)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub extra_listen: Vec<SocketAddr>,
    /// How long API tokens are valid.
    pub token_lifetime: Duration,
    /// The largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
}

/// SIP listeners; `None` = off.
#[derive(Debug, Clone)]
pub struct SipConfig {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    /// On only when a certificate and key are configured.
    pub tls: Option<SocketAddr>,
    /// On only when a certificate and key are configured.
    pub wss: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub external_ip: Option<IpAddr>,
    pub force_rport: bool,
    /// Digest algorithms offered, in order.
    pub auth_algorithms: Vec<crate::sip::auth::Algorithm>,
    pub min_expires: u32,
    pub max_expires: u32,
    /// Message limits of the parser.
    pub limits: crate::sip::message::Limits,
    pub max_messages_per_sec_per_ip: u32,
    pub max_connections_per_ip: usize,
    pub idle_timeout: Duration,
    pub partial_message_timeout: Duration,
    pub max_transactions: usize,
    /// Write-behind window of binding changes.
    pub registration_write_delay: Duration,
    /// Entries of the digest replay guard.
    pub auth_replay_entries: usize,
    /// Session timers (RFC 4028): the interval asked for and granted at most, seconds.
    pub session_expires: u32,
    /// Session timers: the shortest interval accepted (422 below), seconds.
    pub min_se: u32,
}

#[derive(Debug, Clone)]
pub struct RtpConfig {
    pub ports: RangeInclusive<u16>,
    /// An answered call whose party sends no RTP this long (while not on hold) is ended;
    /// zero: never.
    pub timeout: Duration,
}

#[derive(Clone, Default)]
pub struct RedisConfig {
    /// `None` = no Redis. May hold a password.
    pub url: Option<Secret>,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.url.as_ref().map(|u| redact_url(u.expose())))
            .finish()
    }
}

#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    pub initial_password: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct ShutdownConfig {
    pub drain: Duration,
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default"),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Env(name) => f.write_str(name),
        }
    }
}

/// A configuration value that can not be used. Names the key and where the value came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{path}: the configuration file can not be read: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error("{path}: not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: unknown key `{key}` (see `rswitch config defaults` for every key)")]
    UnknownKey { path: PathBuf, key: String },
    #[error("{}: {message}", describe_key(key, origin))]
    Invalid {
        key: String,
        origin: Origin,
        message: String,
    },
}

fn describe_key(key: &str, origin: &Origin) -> String {
    match origin {
        Origin::Env(name) => format!("{name} (key `{key}`)"),
        Origin::File(path) => format!("key `{key}` in {}", path.display()),
        Origin::Default => format!("key `{key}`"),
    }
}

/// The inputs a configuration is built from.
#[derive(Debug, Default)]
pub struct Sources<'a> {
    /// Path and contents of the configuration file, if one was given.
    pub file: Option<(&'a Path, &'a str)>,
    /// Environment variables (only `RSWITCH_*` ones matter).
    pub env: BTreeMap<String, String>,
}

impl Config {
    /// The configuration with nothing but the defaults.
    ///
    /// # Panics
    /// Never: the embedded defaults are checked by a test.
    pub fn defaults() -> Config {
        Config::build(&Sources::default()).expect("the embedded defaults are valid")
    }

    /// Builds and checks the configuration: defaults < file < environment.
    ///
    /// # Errors
    /// The first value that can not be used, naming its key and origin.
    pub fn build(sources: &Sources<'_>) -> Result<Config, ConfigError> {
        let mut layered = Layered::defaults();
        if let Some((path, text)) = sources.file {
            layered.merge_file(path, text)?;
        }
        for (name, key) in ENV_OVERRIDES {
            if let Some(value) = sources.env.get(*name) {
                layered.set(key, Value::String(value.clone()), Origin::Env(name));
            }
        }
        layered.into_config()
    }

    /// Builds from the process environment and an optional file on disk.
    ///
    /// # Errors
    /// As [`Config::build`], or the file can not be read.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env = std::env::vars()
            .filter(|(k, _)| k.starts_with("RSWITCH_"))
            .collect();
        let text = match file {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
                        path: path.to_owned(),
                        message: e.to_string(),
                    })?,
                )
            }
            None => None,
        };
        let sources = Sources {
            file: file.zip(text.as_deref()),
            env,
        };
        Config::build(&sources)
    }
}

/// The merged TOML tree and the origin of every leaf.
struct Layered {
    tree: Table,
    origins: BTreeMap<String, Origin>,
}

impl Layered {
    fn defaults() -> Layered {
        let tree: Table = DEFAULTS_TOML
            .parse()
            .expect("the embedded defaults are valid TOML");
        Layered {
            tree,
            origins: BTreeMap::new(),
        }
    }

    fn merge_file(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let file: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: path.to_owned(),
                message: e.message().to_owned(),
            })?;
        let mut leaves = Vec::new();
        flatten("", &file, &mut leaves);
        for (key, value) in leaves {
            if lookup(&self.tree, &key).is_none() {
                return Err(ConfigError::UnknownKey {
                    path: path.to_owned(),
                    key,
                });
            }
            self.set(&key, value, Origin::File(path.to_owned()));
        }
        Ok(())
    }

    fn set(&mut self, key: &str, value: Value, origin: Origin) {
        let mut table = &mut self.tree;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                table.insert(part.to_owned(), value);
                break;
            }
            table = table
                .entry(part.to_owned())
                .or_insert_with(|| Value::Table(Table::new()))
                .as_table_mut()
                .expect("keys are checked against the defaults, whose sections are tables");
        }
        self.origins.insert(key.to_owned(), origin);
    }

    fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_owned(),
            origin: self.origin(key),
            message: message.into(),
        }
    }

    /// A string value; environment values are always strings.
    fn string(&self, key: &str) -> Result<String, ConfigError> {
        match lookup(&self.tree, key) {
            Some(Value::String(s)) => Ok(s.trim().to_owned()),
            Some(other) => Err(self.invalid(
                key,
                format!("expected a string, found {}", other.type_str()),
            )),
            None => Err(self.invalid(key, "missing")),
        }
    }

    /// An unsigned integer, given as a TOML integer or (from the environment) as digits.
    fn unsigned(&self, key: &str, range: RangeInclusive<u64>) -> Result<u64, ConfigError> {
        let n = match lookup(&self.tree, key) {
            Some(Value::Integer(i)) => u64::try_from(*i).ok(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        match n {
            Some(n) if range.contains(&n) => Ok(n),
            _ => Err(self.invalid(
                key,
                format!(
                    "expected a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    fn algorithms(&self, key: &str) -> Result<Vec<crate::sip::auth::Algorithm>, ConfigError> {
        let expected = "expected a non-empty list of \"MD5\" and \"SHA-256\"";
        let Some(Value::Array(items)) = lookup(&self.tree, key) else {
            return Err(self.invalid(key, expected));
        };
        let mut out = Vec::new();
        for item in items {
            let algorithm = item
                .as_str()
                .and_then(crate::sip::auth::Algorithm::from_token)
                .ok_or_else(|| self.invalid(key, expected))?;
            if !out.contains(&algorithm) {
                out.push(algorithm);
            }
        }
        if out.is_empty() {
            return Err(self.invalid(key, expected));
        }
        Ok(out)
    }

    fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        match lookup(&self.tree, key) {
            Some(Value::Boolean(b)) => Ok(*b),
            Some(Value::String(s)) if s.trim() == "true" => Ok(true),
            Some(Value::String(s)) if s.trim() == "false" => Ok(false),
            _ => Err(self.invalid(key, "expected true or false")),
        }
    }

    fn listener(&self, key: &str) -> Result<Option<SocketAddr>, ConfigError> {
        let text = self.string(key)?;
        if text.is_empty() || text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        parse_socket_addr(&text)
            .map(Some)
            .ok_or_else(|| self.invalid(key, format!("{text:?} is not a listen address; expected IP:PORT such as 0.0.0.0:5060 or [::]:5060, or \"off\"")))
    }

    fn into_config(self) -> Result<Config, ConfigError> {
        let data_dir = PathBuf::from(self.string("data_dir")?);
        if data_dir.as_os_str().is_empty() {
            return Err(self.invalid("data_dir", "must not be empty"));
        }

        let level = self.string("log.level")?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&level) {
            return Err(self.invalid(
                "log.level",
                format!("{level:?} is not a log level or filter: {e}"),
            ));
        }
        let format = match self.string("log.format")?.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(self.invalid(
                    "log.format",
                    format!("{other:?}: expected \"text\" or \"json\""),
                ));
            }
        };

        let mut url = self.string("db.url")?;
        if url.is_empty() {
            url = format!("sqlite://{}", data_dir.join("rswitch.db").display());
        } else if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(self.invalid(
                "db.url",
                format!(
                    "{:?}: expected sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB",
                    redact_url(&url)
                ),
            ));
        }
        let db = DbConfig {
            url: Secret::new(url),
            connect_retry: Duration::from_secs(self.unsigned("db.connect_retry_secs", 0..=86_400)?),
            max_connections: self.unsigned("db.max_connections", 1..=1_000)? as u32,
        };

        let listen = self
            .listener("http.listen")?
            .ok_or_else(|| self.invalid("http.listen", "the HTTP listener can not be off"))?;
        let extra_listen = match lookup(&self.tree, "http.extra_listen") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().and_then(parse_socket_addr))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    self.invalid("http.extra_listen", "expected a list of IP:PORT strings")
                })?,
            _ => {
                return Err(self.invalid("http.extra_listen", "expected a list of IP:PORT strings"));
            }
        };

        let tls_cert = non_empty_path(self.string("sip.tls_cert")?);
        let tls_key = non_empty_path(self.string("sip.tls_key")?);
        if tls_cert.is_some() != tls_key.is_some() {
            return Err(self.invalid("sip.tls_cert", "tls_cert and tls_key must be set together"));
        }
        let have_cert = tls_cert.is_some();
        let secure = |key: &str| -> Result<Option<SocketAddr>, ConfigError> {
            let addr = self.listener(key)?;
            if have_cert {
                return Ok(addr);
            }
            if addr.is_some() && self.origin(key) != Origin::Default {
                return Err(
                    self.invalid(key, "needs a certificate: set sip.tls_cert and sip.tls_key")
                );
            }
            Ok(None)
        };
        let tls = secure("sip.tls")?;
        let wss = secure("sip.wss")?;
        let external_ip = match self.string("sip.external_ip")?.as_str() {
            "" => None,
            text => Some(text.parse::<IpAddr>().map_err(|_| {
                self.invalid("sip.external_ip", format!("{text:?} is not an IP address"))
            })?),
        };
        let sip = SipConfig {
            udp: self.listener("sip.udp")?,
            tcp: self.listener("sip.tcp")?,
            ws: self.listener("sip.ws")?,
            tls,
            wss,
            tls_cert,
            tls_key,
            external_ip,
            force_rport: self.boolean("sip.force_rport")?,
            auth_algorithms: self.algorithms("sip.auth_algorithms")?,
            min_expires: self.unsigned("sip.min_expires", 1..=86_400)? as u32,
            max_expires: self.unsigned("sip.max_expires", 1..=604_800)? as u32,
            limits: crate::sip::message::Limits {
                max_message_bytes: self.unsigned("sip.max_message_bytes", 1_024..=1_048_576)?
                    as usize,
                max_headers: self.unsigned("sip.max_headers", 8..=10_000)? as usize,
                max_header_bytes: self.unsigned("sip.max_header_bytes", 256..=1_048_576)? as usize,
                max_vias: self.unsigned("sip.max_vias", 1..=1_000)? as usize,
            },
            max_messages_per_sec_per_ip: self
                .unsigned("sip.max_messages_per_sec_per_ip", 1..=10_000_000)?
                as u32,
            max_connections_per_ip: self.unsigned("sip.max_connections_per_ip", 1..=1_000_000)?
                as usize,
            idle_timeout: Duration::from_secs(self.unsigned("sip.idle_timeout_secs", 1..=86_400)?),
            partial_message_timeout: Duration::from_secs(
                self.unsigned("sip.partial_message_timeout_secs", 1..=3_600)?,
            ),
            max_transactions: self.unsigned("sip.max_transactions", 16..=100_000_000)? as usize,
            registration_write_delay: Duration::from_millis(
                self.unsigned("sip.registration_write_delay_ms", 0..=60_000)?,
            ),
            auth_replay_entries: self.unsigned("sip.auth_replay_entries", 1_000..=100_000_000)?
                as usize,
            session_expires: self.unsigned("sip.session_expires", 90..=86_400)? as u32,
            min_se: self.unsigned("sip.min_se", 90..=86_400)? as u32,
        };
        if sip.session_expires < sip.min_se {
            return Err(self.invalid("sip.session_expires", "must not be below sip.min_se"));
        }
        if sip.max_expires < sip.min_expires {
            return Err(self.invalid("sip.max_expires", "must not be below sip.min_expires"));
        }

        let ports_text = self.string("rtp.ports")?;
        let ports = parse_port_range(&ports_text).ok_or_else(|| {
            self.invalid(
                "rtp.ports",
                format!(
                    "{ports_text:?}: expected FIRST-LAST such as 16384-32767, with FIRST < LAST"
                ),
            )
        })?;

        let redis_url = self.string("redis.url")?;
        let redis = if redis_url.is_empty() {
            RedisConfig::default()
        } else if ["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|s| redis_url.starts_with(s))
        {
            RedisConfig {
                url: Some(Secret::new(redis_url)),
            }
        } else {
            return Err(self.invalid(
                "redis.url",
                format!(
                    "{:?}: expected redis://HOST:PORT[/DB] or redis+unix:///PATH",
                    redact_url(&redis_url)
                ),
            ));
        };

        let initial_password = self.string("admin.initial_password")?;
        if !initial_password.is_empty() && initial_password.len() < 8 {
            return Err(self.invalid("admin.initial_password", "must be at least 8 characters"));
        }
        let admin = AdminConfig {
            initial_password: (!initial_password.is_empty()).then(|| Secret::new(initial_password)),
        };

        Ok(Config {
            data_dir,
            log: LogConfig { level, format },
            db,
            http: HttpConfig {
                listen,
                extra_listen,
                token_lifetime: Duration::from_secs(
                    self.unsigned("http.token_lifetime_secs", 60..=31_536_000)?,
                ),
                max_body_bytes: self.unsigned("http.max_body_bytes", 1_024..=268_435_456)? as usize,
            },
            sip,
            rtp: RtpConfig {
                ports,
                timeout: Duration::from_secs(self.unsigned("rtp.timeout_secs", 0..=86_400)?),
            },
            redis,
            admin,
            sounds: SoundsConfig {
                dir: {
                    let dir = self.string("sounds.dir")?;
                    if dir.trim().is_empty() {
                        return Err(self.invalid("sounds.dir", "must name a directory"));
                    }
                    PathBuf::from(dir)
                },
                language: {
                    let language = self.string("sounds.language")?;
                    if language.is_empty()
                        || !language
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    {
                        return Err(self.invalid(
                            "sounds.language",
                            "must be a language directory name such as zh or en",
                        ));
                    }
                    language
                },
            },
            events: EventsConfig {
                log: self.boolean("events.log")?,
                queue: self.unsigned("events.queue", 16..=1_000_000)? as usize,
                redis_channel: {
                    let channel = self.string("events.redis_channel")?;
                    if channel.is_empty() || channel.len() > 256 {
                        return Err(self.invalid(
                            "events.redis_channel",
                            "must be a channel name of 1 to 256 bytes",
                        ));
                    }
                    channel
                },
                extra_fields: self.boolean("events.extra_fields")?,
                redis_buffer: self.unsigned("events.redis_buffer", 1..=10_000_000)? as usize,
            },
            shutdown: ShutdownConfig {
                drain: Duration::from_secs(self.unsigned("shutdown.drain_secs", 0..=3_600)?),
            },
        })
    }
}

fn flatten(prefix: &str, table: &Table, out: &mut Vec<(String, Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Table(t) => flatten(&key, t, out),
            other => out.push((key, other.clone())),
        }
    }
}

fn lookup<'a>(table: &'a Table, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

fn non_empty_path(s: String) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// `IP:PORT`, `[IPv6]:PORT`, or `localhost:PORT`.
fn parse_socket_addr(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    let (host, port) = text.rsplit_once(':')?;
    if host != "localhost" {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    (host, port).to_socket_addrs().ok()?.next()
}

fn parse_port_range(text: &str) -> Option<RangeInclusive<u16>> {
    let (first, last) = text.split_once('-')?;
    let first: u16 = first.trim().parse().ok()?;
    let last: u16 = last.trim().parse().ok()?;
    (first > 0 && first < last).then_some(first..=last)
}

/// `url` with any password replaced by `***`, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    if userinfo.contains(':') {
        format!("{scheme}://{user}:***@{host}{tail}")
    } else {
        format!("{scheme}://{user}@{host}{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn embedded_defaults_build() {
        let c = Config::defaults();
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.db.url.expose(), "sqlite://./data/rswitch.db");
        assert_eq!(c.http.listen, "0.0.0.0:8082".parse().unwrap());
        assert_eq!(c.sip.udp, Some("0.0.0.0:5060".parse().unwrap()));
        assert_eq!(c.sip.ws, Some("0.0.0.0:5066".parse().unwrap()));
        assert_eq!(c.sip.tls, None, "TLS is off without a certificate");
        assert_eq!(c.sip.wss, None);
        assert_eq!(c.rtp.ports, 16384..=32767);
        assert!(c.redis.url.is_none());
        assert_eq!(c.log.format, LogFormat::Text);
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let file = "data_dir = \"/srv/pbx\"\n[http]\nlisten = \"127.0.0.1:9000\"\n[sip]\nudp = \"127.0.0.1:5070\"\n";
        let sources = Sources {
            file: Some((Path::new("pbx.toml"), file)),
            env: env(&[("RSWITCH_SIP_UDP", "127.0.0.1:5080")]),
        };
        let c = Config::build(&sources).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/pbx"));
        assert_eq!(
            c.db.url.expose(),
            "sqlite:///srv/pbx/rswitch.db",
            "db default follows data_dir"
        );
        assert_eq!(
            c.http.listen,
            "127.0.0.1:9000".parse().unwrap(),
            "file beats default"
        );
        assert_eq!(
            c.sip.udp,
            Some("127.0.0.1:5080".parse().unwrap()),
            "env beats file"
        );
        assert_eq!(
            c.sip.tcp,
            Some("0.0.0.0:5060".parse().unwrap()),
            "untouched keys keep defaults"
        );
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let sources = Sources {
            env: env(&[("RSWITCH_HTTP_LISTEN", "not-an-address")]),
            ..Sources::default()
        };
        let err = Config::build(&sources).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("RSWITCH_HTTP_LISTEN"), "{text}");
        assert!(text.contains("http.listen"), "{text}");
    }

    #[test]
    fn bad_file_value_names_key_and_file() {
        let sources = Sources {
            file: Some((Path::new("x.toml"), "[rtp]\nports = \"9000-8000\"\n")),
            ..Sources::default()
        };
        let text = Config::build(&sources).unwrap_err().to_string();
        assert!(
            text.contains("rtp.ports") && text.contains("x.toml"),
            "{text}"
        );
    }

    #[test]
    fn unknown_file_key_is_refused() {
        let sources = Sources {
            file: Some((Path::new("x.toml"), "[sip]\nupd = \"0.0.0.0:5060\"\n")),
            ..Sources::default()
        };
        let err = Config::build(&sources).unwrap_err();
        assert!(
            matches!(err, ConfigError::UnknownKey { ref key, .. } if key == "sip.upd"),
            "{err}"
        );
    }

    #[test]
    fn listeners_can_be_turned_off_and_port_zero_is_allowed() {
        let sources = Sources {
            env: env(&[
                ("RSWITCH_SIP_WS", "off"),
                ("RSWITCH_SIP_UDP", "127.0.0.1:0"),
            ]),
            ..Sources::default()
        };
        let c = Config::build(&sources).unwrap();
        assert_eq!(c.sip.ws, None);
        assert_eq!(c.sip.udp, Some("127.0.0.1:0".parse().unwrap()));
    }

    #[test]
    fn explicit_tls_listener_without_certificate_is_an_error() {
        let sources = Sources {
            env: env(&[("RSWITCH_SIP_TLS", "0.0.0.0:5061")]),
            ..Sources::default()
        };
        let text = Config::build(&sources).unwrap_err().to_string();
        assert!(
            text.contains("RSWITCH_SIP_TLS") && text.contains("certificate"),
            "{text}"
        );
    }

    #[test]
    fn every_override_variable_is_checked() {
        let bad = [
            ("RSWITCH_DATA_DIR", ""),
            ("RSWITCH_LOG", "info,[[["),
            ("RSWITCH_LOG_FORMAT", "xml"),
            ("RSWITCH_DB_URL", "mysql://x"),
            ("RSWITCH_HTTP_LISTEN", "8082"),
            ("RSWITCH_SIP_UDP", "1.2.3.4"),
            ("RSWITCH_SIP_TCP", "x:y"),
            ("RSWITCH_SIP_WS", "[::1]"),
            ("RSWITCH_SIP_TLS", "bad"),
            ("RSWITCH_SIP_WSS", "bad"),
            ("RSWITCH_EXTERNAL_IP", "not-an-ip"),
            ("RSWITCH_RTP_PORTS", "20000"),
            ("RSWITCH_SOUNDS_DIR", " "),
            ("RSWITCH_REDIS_URL", "http://localhost"),
            ("RSWITCH_ADMIN_PASSWORD", "short"),
        ];
        assert_eq!(bad.len(), ENV_OVERRIDES.len());
        for (name, value) in bad {
            let sources = Sources {
                env: env(&[(name, value)]),
                ..Sources::default()
            };
            let err = Config::build(&sources).expect_err(name);
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("redis://:pw@h/0"), "redis://:***@h/0");
        assert_eq!(redact_url("sqlite://./data/x.db"), "sqlite://./data/x.db");
        let c = Config::build(&Sources {
            env: env(&[("RSWITCH_DB_URL", "postgres://u:secret@h/db")]),
            ..Sources::default()
        })
        .unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }
}
