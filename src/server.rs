//! The process: open the database, seed it, build the first snapshot, bind the listeners,
//! serve until SIGINT/SIGTERM, then drain and stop.
//!
//! This is a driver: it does the IO the layers below leave out (files, sockets, signals,
//! tasks). SIGHUP runs Apply. What this module does not do: any protocol or call logic.
#![allow(clippy::disallowed_methods)] // IO driver: spawns the listener tasks, reads clocks

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{self, AppState, ServerInfo};
use crate::config::{Config, redact_url};
use crate::media::io::{MediaEngine, MediaSettings};
use crate::metrics::Metrics;
use crate::pbx::cdr::{CdrSpool, run_writer};
use crate::pbx::live::{ApplyOutcome, LiveConfig};
use crate::pbx::registrar::RegistrarConfig;
use crate::pbx::sip_service::{self, SipServiceConfig};
use crate::sip::transport::{self, ListenAddrs, TlsSetupError, TransportSettings};
use crate::store::{ConnectOptions, Store, StoreError, seed};

/// Name of the file in the data directory that receives a generated admin password.
pub const INITIAL_ADMIN_PASSWORD_FILE: &str = "initial-admin-password";

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("can not listen on {addr} ({name}): {source}")]
    Bind {
        name: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("signal handling: {0}")]
    Signals(#[source] std::io::Error),
    #[error("SIP TLS: {0}")]
    Tls(#[from] TlsSetupError),
    #[error("can not start the SIP listeners: {0}")]
    SipBind(#[source] std::io::Error),
    #[error("can not start the media threads: {0}")]
    Media(#[source] std::io::Error),
}

/// Connects, migrates and seeds the database. A generated admin password is written to
/// `<data_dir>/initial-admin-password` (mode 0600) and printed once in the log.
///
/// # Errors
/// The data directory can not be created, or the database is unreachable or refuses.
pub async fn open_database(config: &Config) -> Result<Store, ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let options = ConnectOptions {
        retry_for: config.db.connect_retry,
        max_connections: config.db.max_connections,
    };
    tracing::info!(url = %redact_url(config.db.url.expose()), "opening database");
    let store = Store::connect(config.db.url.expose(), &options).await?;
    store.migrate().await?;
    let report = seed::seed(&store, config.admin.initial_password.as_ref()).await?;
    if report.base_config_keys_added > 0 || report.extensions_created > 0 {
        tracing::info!(
            base_config_keys = report.base_config_keys_added,
            extensions = report.extensions_created,
            "seeded the database"
        );
    }
    if let Some(admin) = report.initial_admin {
        if admin.generated {
            let path = config.data_dir.join(INITIAL_ADMIN_PASSWORD_FILE);
            write_private_file(&path, &format!("{}\n", admin.password.expose())).map_err(
                |source| ServeError::DataDir {
                    path: path.display().to_string(),
                    source,
                },
            )?;
            // Printed exactly once, when the user is created; the operator must change it.
            tracing::warn!(
                username = %admin.username,
                password = %admin.password.expose(),
                file = %path.display(),
                "created the administrator with a generated password; it is shown only now"
            );
        } else {
            tracing::info!(username = %admin.username, "created the administrator with the configured initial password");
        }
    }
    Ok(store)
}

/// Writes `contents` to a new file readable only by its owner.
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Runs the server until SIGINT or SIGTERM.
///
/// # Errors
/// Start-up fails (database, listeners); once serving, only signal set-up can fail.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let started = Instant::now();
    let store = open_database(&config).await?;
    let (live, problems) = LiveConfig::load(&store).await?;
    for p in &problems {
        tracing::warn!(problem = %p, "configuration problem: row left out of the running configuration");
    }
    let live = Arc::new(live);

    let mut listeners = Vec::new();
    let mut bound = Vec::new();
    for (name, addr) in std::iter::once(("http", config.http.listen))
        .chain(config.http.extra_listen.iter().map(|a| ("http_extra", *a)))
    {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { name, addr, source })?;
        let local =
            listener
                .local_addr()
                .map_err(|source| ServeError::Bind { name, addr, source })?;
        tracing::info!(listener = name, address = %local, "listening");
        bound.push((name.to_owned(), local));
        listeners.push(listener);
    }

    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = watch::channel(false);

    let tls_config = match (&config.sip.tls_cert, &config.sip.tls_key) {
        (Some(cert), Some(key)) => Some(transport::load_tls_config(cert, key)?),
        _ => None,
    };
    let listen = ListenAddrs {
        udp: config.sip.udp,
        tcp: config.sip.tcp,
        ws: config.sip.ws,
        tls: config.sip.tls,
        wss: config.sip.wss,
        tls_config,
    };
    let settings = TransportSettings {
        limits: config.sip.limits,
        idle_timeout: config.sip.idle_timeout,
        partial_message_timeout: config.sip.partial_message_timeout,
        max_connections_per_ip: config.sip.max_connections_per_ip,
        max_messages_per_sec_per_ip: config.sip.max_messages_per_sec_per_ip,
    };
    let (sip_transport, sip_bound, inbound) =
        transport::start(settings, &listen, metrics.sip.clone(), stop_rx.clone())
            .await
            .map_err(ServeError::SipBind)?;
    for (name, local) in &sip_bound {
        tracing::info!(listener = %name, address = %local, "listening");
    }
    // Our SIP address for the requests we send, and the address SDP announces for RTP.
    let udp_local = sip_bound
        .iter()
        .find(|(name, _)| name.ends_with("udp"))
        .map(|(_, addr)| *addr);
    let advertised_ip = config.sip.external_ip.unwrap_or_else(|| match udp_local {
        Some(addr) if !addr.ip().is_unspecified() => addr.ip(),
        _ => std::net::IpAddr::from([127, 0, 0, 1]),
    });
    let local_sip = SocketAddr::new(advertised_ip, udp_local.map_or(5060, |addr| addr.port()));
    bound.extend(sip_bound);

    // The media threads (ARCHITECTURE §4): started before the SIP service so their ports
    // and threads are ready for the first call.
    let (media_events, media_event_queue) = std::sync::mpsc::channel();
    // The media threads report on a std channel; one thread hands their events (DTMF, …)
    // to the SIP service's task.
    let (media_event_tx, media_event_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("media-events".into())
        .spawn(move || {
            while let Ok(event) = media_event_queue.recv() {
                if media_event_tx.send(event).is_err() {
                    break;
                }
            }
        })
        .map_err(ServeError::Media)?;
    let events = crate::events::EventBus::new(config.events.queue);
    let agents = crate::pbx::agents::AgentStates::default();
    let (control, control_queue) = crate::pbx::control::ControlHandle::new();
    let tokens =
        crate::api::auth::TokenSigner::load_or_create(&config.data_dir, config.http.token_lifetime)
            .map_err(|source| ServeError::DataDir {
                path: config
                    .data_dir
                    .join(crate::api::auth::TOKEN_KEY_FILE)
                    .display()
                    .to_string(),
                source,
            })?;
    if config.events.log {
        tokio::spawn(crate::events::log_events(events.subscribe()));
    }
    let redis_publisher = config.redis.url.clone().map(|url| {
        tokio::spawn(crate::events::redis::run_publisher(
            crate::events::redis::RedisSettings {
                url,
                channel: config.events.redis_channel.clone(),
                extra_fields: config.events.extra_fields,
                buffer: config.events.redis_buffer,
            },
            events.subscribe(),
            metrics.clone(),
            stop_rx.clone(),
        ))
    });
    let media = Arc::new(
        MediaEngine::start_with_metrics(
            &MediaSettings {
                address: std::net::IpAddr::from([0, 0, 0, 0]),
                ports: config.rtp.ports.clone(),
                threads: 0,
                cname: format!("rswitch@{advertised_ip}"),
                rtp_timeout: config.rtp.timeout,
            },
            media_events,
            metrics.media.clone(),
        )
        .map_err(ServeError::Media)?,
    );

    // Durable CDRs: the spool in the data directory, the writer task (replays at start).
    let spool = CdrSpool::open(&config.data_dir.join("cdr-spool")).map_err(|source| {
        ServeError::DataDir {
            path: config.data_dir.join("cdr-spool").display().to_string(),
            source,
        }
    })?;
    let (cdr_jobs, cdr_queue) = tokio::sync::mpsc::unbounded_channel();
    let cdr_writer = tokio::spawn(run_writer(spool, store.clone(), cdr_queue));

    let realm = config
        .sip
        .external_ip
        .map_or_else(|| "rswitch".to_owned(), |ip| ip.to_string());
    let sip_task = tokio::spawn(sip_service::run(
        SipServiceConfig {
            realm,
            force_rport: config.sip.force_rport,
            registration_write_delay: config.sip.registration_write_delay,
            auth_replay_entries: config.sip.auth_replay_entries,
            auth_algorithms: config.sip.auth_algorithms.clone(),
            transactions: crate::sip::transaction::LayerConfig {
                max_transactions: config.sip.max_transactions,
                ..crate::sip::transaction::LayerConfig::default()
            },
            registrar: RegistrarConfig {
                min_expires: config.sip.min_expires,
                max_expires: config.sip.max_expires,
                default_expires: config.sip.max_expires.min(3600),
                ..RegistrarConfig::default()
            },
            local_sip,
            media_ip: advertised_ip,
            sounds: config.sounds.clone(),
            timers: crate::pbx::session_timer::TimerConfig {
                session_expires: config.sip.session_expires,
                min_se: config.sip.min_se,
            },
            agents: agents.clone(),
            ..SipServiceConfig::default()
        },
        sip_transport,
        inbound,
        store.clone(),
        live.clone(),
        media.clone(),
        cdr_jobs,
        events.clone(),
        media_event_rx,
        control_queue,
        stop_rx.clone(),
    ));

    let auth = Arc::new(crate::api::auth::Auth::new(
        tokens,
        crate::api::auth::LoginLimiter::default(),
    ));
    auth.load_users(&store).await?;
    tokio::spawn(crate::api::auth::keep_users_fresh(
        auth.clone(),
        store.clone(),
        stop_rx.clone(),
    ));
    let state = AppState {
        store: store.clone(),
        live: live.clone(),
        metrics: metrics.clone(),
        info: Arc::new(ServerInfo {
            started,
            listeners: bound,
        }),
        control,
        agents,
        auth,
        uuids: Arc::default(),
        max_body_bytes: config.http.max_body_bytes,
        events: events.clone(),
    };
    let app = api::app(state);

    let mut servers = JoinSet::new();
    for listener in listeners {
        let mut stop = stop_rx.clone();
        let app = app.clone();
        servers.spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        });
    }
    let signals = Signals::register()?;
    tracing::info!(
        snapshot = live.current().version,
        backend = store.backend().as_str(),
        startup_ms = started.elapsed().as_millis() as u64,
        "rswitch is serving"
    );

    wait_for_stop(signals, &store, &live, &metrics).await?;
    tracing::info!(drain = ?config.shutdown.drain, "stopping: no new work accepted, draining");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(config.shutdown.drain, async {
        while let Some(result) = servers.join_next().await {
            if let Ok(Err(e)) = result {
                tracing::warn!(error = %e, "HTTP listener ended with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("drain time over: closing the connections still open");
        servers.abort_all();
    }
    match tokio::time::timeout(config.shutdown.drain, sip_task).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the SIP service ended with an error"),
        Err(_) => tracing::warn!("the SIP service did not stop in time"),
        _ => {}
    }
    // The SIP service has let go of its senders: the CDR writer writes what is queued.
    if tokio::time::timeout(config.shutdown.drain, cdr_writer)
        .await
        .is_err()
    {
        tracing::warn!("the CDR writer did not finish in time; the spool keeps the rest");
    }
    if let Some(publisher) = redis_publisher
        && tokio::time::timeout(config.shutdown.drain, publisher)
            .await
            .is_err()
    {
        tracing::warn!("the Redis publisher did not finish in time");
    }
    // The media threads stop within one packet tick; joining them blocks briefly.
    let _ = tokio::task::spawn_blocking(move || drop(media)).await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for SIGINT or SIGTERM; runs Apply on every SIGHUP meanwhile.
/// The signals `serve` handles, registered before it reports serving: a SIGTERM that comes
/// right after "rswitch is serving" stops it cleanly instead of killing it.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> Result<Signals, ServeError> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).map_err(ServeError::Signals)?,
            terminate: signal(SignalKind::terminate()).map_err(ServeError::Signals)?,
            hangup: signal(SignalKind::hangup()).map_err(ServeError::Signals)?,
        })
    }
}

async fn wait_for_stop(
    signals: Signals,
    store: &Store,
    live: &LiveConfig,
    metrics: &Metrics,
) -> Result<(), ServeError> {
    let Signals {
        mut interrupt,
        mut terminate,
        mut hangup,
    } = signals;
    loop {
        tokio::select! {
            _ = interrupt.recv() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: applying the configuration");
                match live.apply(store).await {
                    Ok(ApplyOutcome::Applied { .. }) => Metrics::inc(&metrics.applies_ok),
                    Ok(ApplyOutcome::Refused { .. }) => Metrics::inc(&metrics.applies_refused),
                    Err(e) => {
                        Metrics::inc(&metrics.applies_refused);
                        tracing::error!(error = %e, "Apply failed: the database could not be read");
                    }
                }
            }
        }
    }
}
