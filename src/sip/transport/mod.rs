//! SIP transports: the IO under the sans-IO stack.
//!
//! Binds the configured listeners (UDP, TCP; TLS, WS and WSS where configured), receives
//! datagrams and stream bytes, frames and parses them, and hands each message to the stack
//! through a channel as an [`Inbound`]. It answers what the stack never sees: a request that
//! does not parse gets its 400/505 statelessly (`message::error_response`), an unparseable
//! response is dropped and counted, a stream framing error closes the connection, and RFC 5626
//! keep-alive pings get their pong. It stamps `received`/`rport` into the top Via of every
//! request (RFC 3581). [`TransportHandle::send`] sends a message to a [`Peer`]: over the
//! connection it names, over an existing connection to the address (connection reuse), or over
//! UDP.
//!
//! Limits: per source IP, a token bucket on messages per second and a cap on connections;
//! idle stream connections are closed. Nothing is logged per bad packet at info level; the
//! counters in [`TransportMetrics`] show it.
//!
//! What this module does not do: transactions, retransmissions, or DNS (RFC 3263).
#![allow(clippy::disallowed_methods)] // IO driver: sockets, tasks and the clock

pub mod framing;
pub mod routing;
mod secure;
mod websocket;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

use self::framing::{Frame, StreamFramer};
use crate::sip::message::{Limits, Message, error_response, parse_datagram};
use crate::sip::peer::{ConnectionId, Peer, TransportKind};

pub use secure::{TlsSetupError, load_tls_config};

/// A message received from the network, already parsed.
#[derive(Debug)]
pub struct Inbound {
    pub message: Message,
    pub peer: Peer,
}

/// Transport settings.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    pub limits: Limits,
    /// Close a stream connection after this long without traffic.
    pub idle_timeout: Duration,
    /// Close a stream connection when a message stays incomplete this long (a
    /// Content-Length larger than what is sent never resolves, RFC 4475 §3.1.2.2).
    pub partial_message_timeout: Duration,
    pub max_connections_per_ip: usize,
    /// Messages per second accepted from one source IP (burst of the same size).
    pub max_messages_per_sec_per_ip: u32,
}

impl Default for TransportSettings {
    fn default() -> Self {
        TransportSettings {
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(300),
            partial_message_timeout: Duration::from_secs(32),
            max_connections_per_ip: 64,
            max_messages_per_sec_per_ip: 2_000,
        }
    }
}

/// Addresses to listen on; `None` = off. TLS and WSS need `tls`.
#[derive(Clone, Default)]
pub struct ListenAddrs {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub wss: Option<SocketAddr>,
    /// The server certificate and key for TLS and WSS.
    pub tls_config: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for ListenAddrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenAddrs")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .field("ws", &self.ws)
            .field("tls", &self.tls)
            .field("wss", &self.wss)
            .field("tls_config", &self.tls_config.is_some())
            .finish()
    }
}

/// Counters of the transport, for `/metrics`.
#[derive(Debug, Default)]
pub struct TransportMetrics {
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub parse_errors: AtomicU64,
    pub responses_dropped: AtomicU64,
    pub rate_limited: AtomicU64,
    pub framing_errors: AtomicU64,
    pub connections_refused: AtomicU64,
    pub connections_open: AtomicU64,
    /// Requests answered 503 because the transaction table was full.
    pub overloaded: AtomicU64,
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("no {0} listener to send from")]
    NoTransport(TransportKind),
    #[error("connection {0:?} is closed")]
    ConnectionClosed(ConnectionId),
    #[error("sending to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// Sends messages; cheap to clone.
#[derive(Clone, Debug)]
pub struct TransportHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    udp: Option<Arc<UdpSocket>>,
    connections: Mutex<Connections>,
    next_connection: AtomicU64,
    metrics: Arc<TransportMetrics>,
    settings: TransportSettings,
    inbound: mpsc::Sender<Inbound>,
}

#[derive(Debug, Default)]
struct Connections {
    by_id: HashMap<ConnectionId, ConnectionEntry>,
    by_addr: HashMap<(TransportKind, SocketAddr), ConnectionId>,
    per_ip: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct ConnectionEntry {
    kind: TransportKind,
    addr: SocketAddr,
    outbox: mpsc::Sender<Vec<u8>>,
}

/// Binds the listeners and starts receiving. Returns the handle, the bound addresses by name
/// (`sip_udp`, `sip_tcp`) and the receiver of inbound messages.
///
/// # Errors
/// A listener can not be bound.
pub async fn start(
    settings: TransportSettings,
    listen: &ListenAddrs,
    metrics: Arc<TransportMetrics>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<(
    TransportHandle,
    Vec<(String, SocketAddr)>,
    mpsc::Receiver<Inbound>,
)> {
    let (inbound_tx, inbound_rx) = mpsc::channel(4096);
    let mut bound = Vec::new();
    let udp = match listen.udp {
        Some(addr) => {
            let socket = Arc::new(bind_udp(addr)?);
            bound.push(("sip_udp".to_owned(), socket.local_addr()?));
            Some(socket)
        }
        None => None,
    };
    let mut stream_listeners = Vec::new();
    for (name, kind, addr) in [
        ("sip_tcp", TransportKind::Tcp, listen.tcp),
        ("sip_tls", TransportKind::Tls, listen.tls),
        ("sip_ws", TransportKind::Ws, listen.ws),
        ("sip_wss", TransportKind::Wss, listen.wss),
    ] {
        let Some(addr) = addr else { continue };
        if matches!(kind, TransportKind::Tls | TransportKind::Wss) && listen.tls_config.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} needs a TLS certificate"),
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        bound.push((name.to_owned(), listener.local_addr()?));
        stream_listeners.push((kind, listener));
    }
    let handle = TransportHandle {
        inner: Arc::new(Inner {
            udp: udp.clone(),
            connections: Mutex::new(Connections::default()),
            next_connection: AtomicU64::new(1),
            metrics,
            settings,
            inbound: inbound_tx,
        }),
    };
    if let Some(socket) = udp {
        tokio::spawn(udp_loop(handle.clone(), socket, shutdown.clone()));
    }
    let acceptor = listen
        .tls_config
        .clone()
        .map(tokio_rustls::TlsAcceptor::from);
    for (kind, listener) in stream_listeners {
        tokio::spawn(accept_loop(
            handle.clone(),
            kind,
            listener,
            acceptor.clone(),
            shutdown.clone(),
        ));
    }
    Ok((handle, bound, inbound_rx))
}

impl TransportHandle {
    /// Sends `bytes` to `peer`: on its connection if it names one, else on an open connection
    /// to the same address and transport, else over UDP (or a new TCP connection).
    ///
    /// # Errors
    /// No suitable transport, a closed connection, or a socket error.
    pub async fn send(&self, peer: Peer, bytes: Vec<u8>) -> Result<(), SendError> {
        self.inner
            .metrics
            .messages_sent
            .fetch_add(1, Ordering::Relaxed);
        if peer.transport == TransportKind::Udp {
            let socket = self
                .inner
                .udp
                .as_ref()
                .ok_or(SendError::NoTransport(TransportKind::Udp))?;
            return socket
                .send_to(&bytes, peer.addr)
                .await
                .map(|_| ())
                .map_err(|source| SendError::Io {
                    addr: peer.addr,
                    source,
                });
        }
        let outbox = {
            let connections = self
                .inner
                .connections
                .lock()
                .expect("connection table lock is never poisoned");
            let id = peer.connection.or_else(|| {
                connections
                    .by_addr
                    .get(&(peer.transport, peer.addr))
                    .copied()
            });
            id.and_then(|id| connections.by_id.get(&id).map(|c| (id, c.outbox.clone())))
        };
        match outbox {
            Some((id, outbox)) => outbox
                .send(bytes)
                .await
                .map_err(|_| SendError::ConnectionClosed(id)),
            None if peer.transport == TransportKind::Tcp => {
                let stream =
                    TcpStream::connect(peer.addr)
                        .await
                        .map_err(|source| SendError::Io {
                            addr: peer.addr,
                            source,
                        })?;
                let (id, outbox_rx) = self
                    .register_connection(TransportKind::Tcp, peer.addr)
                    .ok_or(SendError::NoTransport(TransportKind::Tcp))?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(stream_task(
                    self.clone(),
                    stream,
                    id,
                    TransportKind::Tcp,
                    peer.addr,
                    outbox_rx,
                ));
                let outbox = {
                    let connections = self
                        .inner
                        .connections
                        .lock()
                        .expect("connection table lock is never poisoned");
                    connections.by_id.get(&id).map(|c| c.outbox.clone())
                };
                outbox
                    .ok_or(SendError::ConnectionClosed(id))?
                    .send(bytes)
                    .await
                    .map_err(|_| SendError::ConnectionClosed(id))
            }
            None => Err(SendError::NoTransport(peer.transport)),
        }
    }

    pub fn metrics(&self) -> &TransportMetrics {
        &self.inner.metrics
    }

    /// Enters a new connection into the table. `None` when the per-IP connection limit
    /// refuses it; otherwise its id and the receiver of what is to be written to it.
    fn register_connection(
        &self,
        kind: TransportKind,
        addr: SocketAddr,
    ) -> Option<(ConnectionId, mpsc::Receiver<Vec<u8>>)> {
        let id = ConnectionId(self.inner.next_connection.fetch_add(1, Ordering::Relaxed));
        let (outbox_tx, outbox_rx) = mpsc::channel(256);
        let mut connections = self
            .inner
            .connections
            .lock()
            .expect("connection table lock is never poisoned");
        let count = connections.per_ip.entry(addr.ip()).or_insert(0);
        if *count >= self.inner.settings.max_connections_per_ip {
            self.inner
                .metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *count += 1;
        connections.by_id.insert(
            id,
            ConnectionEntry {
                kind,
                addr,
                outbox: outbox_tx,
            },
        );
        connections.by_addr.insert((kind, addr), id);
        self.inner
            .metrics
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        Some((id, outbox_rx))
    }

    fn unregister(&self, id: ConnectionId) {
        let mut connections = self
            .inner
            .connections
            .lock()
            .expect("connection table lock is never poisoned");
        if let Some(entry) = connections.by_id.remove(&id) {
            if connections.by_addr.get(&(entry.kind, entry.addr)) == Some(&id) {
                connections.by_addr.remove(&(entry.kind, entry.addr));
            }
            if let Some(count) = connections.per_ip.get_mut(&entry.addr.ip()) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    connections.per_ip.remove(&entry.addr.ip());
                }
            }
            self.inner
                .metrics
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Parses one message and delivers it; answers or drops what does not parse. Returns the
    /// stateless error response to send back, if any.
    async fn deliver(&self, bytes: &[u8], peer: Peer) -> Option<Vec<u8>> {
        let metrics = &self.inner.metrics;
        metrics.messages_received.fetch_add(1, Ordering::Relaxed);
        match parse_datagram(bytes, &self.inner.settings.limits) {
            Ok(Message::Request(mut request)) => {
                routing::stamp_top_via(&mut request, peer.addr);
                let _ = self
                    .inner
                    .inbound
                    .send(Inbound {
                        message: Message::Request(request),
                        peer,
                    })
                    .await;
                None
            }
            Ok(response) => {
                let _ = self
                    .inner
                    .inbound
                    .send(Inbound {
                        message: response,
                        peer,
                    })
                    .await;
                None
            }
            Err(error) => {
                metrics.parse_errors.fetch_add(1, Ordering::Relaxed);
                let answer = error_response(bytes, &error);
                if answer.is_none() {
                    metrics.responses_dropped.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(%peer, %error, "unparseable message");
                answer
            }
        }
    }
}

/// Size asked for the UDP socket buffers: bursts of SIP traffic (a registration storm after a
/// power cut) overflow the system default of about 200 KB and are lost. The kernel caps it at
/// `net.core.rmem_max` / `wmem_max`.
const UDP_BUFFER_BYTES: usize = 8 * 1024 * 1024;

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv6() {
        socket2::Domain::IPV6
    } else {
        socket2::Domain::IPV4
    };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: a smaller buffer still works.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// A token bucket per source IP.
struct RateLimiter {
    rate: f64,
    buckets: HashMap<IpAddr, (f64, Instant)>,
    last_prune: Instant,
}

impl RateLimiter {
    fn new(per_second: u32) -> Self {
        RateLimiter {
            rate: f64::from(per_second.max(1)),
            buckets: HashMap::new(),
            last_prune: Instant::now(),
        }
    }

    fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if now.duration_since(self.last_prune) > Duration::from_secs(10) {
            self.buckets
                .retain(|_, (_, seen)| now.duration_since(*seen) < Duration::from_secs(10));
            self.last_prune = now;
        }
        let (tokens, seen) = self.buckets.entry(ip).or_insert((self.rate, now));
        *tokens = (*tokens + now.duration_since(*seen).as_secs_f64() * self.rate).min(self.rate);
        *seen = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn udp_loop(
    handle: TransportHandle,
    socket: Arc<UdpSocket>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 65_535];
    let mut limiter = RateLimiter::new(handle.inner.settings.max_messages_per_sec_per_ip);
    loop {
        let (len, source) = tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors surface here on some systems; keep serving.
                    tracing::debug!(error = %e, "UDP receive error");
                    continue;
                }
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        if !limiter.allow(source.ip(), Instant::now()) {
            handle
                .inner
                .metrics
                .rate_limited
                .fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let datagram = &buffer[..len];
        if datagram.iter().all(|&b| b == b'\r' || b == b'\n') {
            continue; // keep-alive
        }
        let peer = Peer {
            transport: TransportKind::Udp,
            addr: source,
            connection: None,
        };
        if let Some(answer) = handle.deliver(datagram, peer).await {
            let _ = socket.send_to(&answer, source).await;
        }
    }
}

async fn accept_loop(
    handle: TransportHandle,
    kind: TransportKind,
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some((id, outbox)) = handle.register_connection(kind, addr) else {
            continue; // dropping the stream closes it
        };
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let handshake_timeout = Duration::from_secs(10);
            match (kind, acceptor) {
                (TransportKind::Tcp, _) => {
                    stream_task(handle, stream, id, kind, addr, outbox).await
                }
                (TransportKind::Ws, _) => {
                    websocket::serve(handle, stream, id, addr, kind, outbox).await
                }
                (TransportKind::Tls | TransportKind::Wss, Some(acceptor)) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) if kind == TransportKind::Tls => {
                            stream_task(handle, tls, id, kind, addr, outbox).await
                        }
                        Ok(Ok(tls)) => websocket::serve(handle, tls, id, addr, kind, outbox).await,
                        _ => {
                            tracing::debug!(%addr, "TLS handshake failed");
                            handle.unregister(id);
                        }
                    }
                }
                _ => handle.unregister(id),
            }
        });
    }
}

async fn stream_task<S: AsyncRead + AsyncWrite + Unpin>(
    handle: TransportHandle,
    mut stream: S,
    id: ConnectionId,
    kind: TransportKind,
    addr: SocketAddr,
    mut outbox: mpsc::Receiver<Vec<u8>>,
) {
    let settings = handle.inner.settings.clone();
    let mut framer = StreamFramer::new(settings.limits);
    let mut buffer = vec![0u8; 16 * 1024];
    let mut limiter = RateLimiter::new(settings.max_messages_per_sec_per_ip);
    let peer = Peer {
        transport: kind,
        addr,
        connection: Some(id),
    };
    let mut partial_since: Option<Instant> = None;
    'connection: loop {
        let wait = match partial_since {
            Some(since) => settings
                .partial_message_timeout
                .saturating_sub(since.elapsed())
                .min(settings.idle_timeout),
            None => settings.idle_timeout,
        };
        tokio::select! {
            read = tokio::time::timeout(wait, stream.read(&mut buffer)) => {
                let n = match read {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => n,
                    Err(_) => {
                        if partial_since.is_some() {
                            handle.inner.metrics.framing_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, "incomplete message timed out: closing the connection");
                        }
                        break;
                    }
                };
                framer.push(&buffer[..n]);
                loop {
                    match framer.next_frame() {
                        Ok(None) => break,
                        Ok(Some(Frame::Ping)) => {
                            if stream.write_all(b"\r\n").await.is_err() {
                                break 'connection;
                            }
                        }
                        Ok(Some(Frame::Pong)) => {}
                        Ok(Some(Frame::Message(bytes))) => {
                            if !limiter.allow(addr.ip(), Instant::now()) {
                                handle.inner.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            if let Some(answer) = handle.deliver(&bytes, peer).await
                                && stream.write_all(&answer).await.is_err()
                            {
                                break 'connection;
                            }
                        }
                        Err(error) => {
                            handle.inner.metrics.framing_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, %error, "stream framing error: closing the connection");
                            break 'connection;
                        }
                    }
                }
                partial_since = match (framer.pending(), partial_since) {
                    (0, _) => None,
                    (_, Some(since)) => Some(since),
                    (_, None) => Some(Instant::now()),
                };
            }
            message = outbox.recv() => {
                let Some(bytes) = message else { break };
                if stream.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown().await;
    handle.unregister(id);
}
