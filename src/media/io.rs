//! The media threads: RTP sockets and the packet clock around the sans-IO [`Shard`].
#![allow(clippy::disallowed_methods)] // IO driver: owns the media threads and their clocks
//!
//! [`MediaEngine::start`] starts a small pool of threads (one per core by default), not on the
//! tokio pool that serves SIP and HTTP. Each owns a [`Shard`] of legs and their sockets and
//! waits on them with `mio` (epoll), waking on a packet — pass-through forwarding happens
//! right then — or on the 20 ms packet tick, when it decodes, mixes and encodes. The call
//! engine talks to it by command: [`MediaEngine::open`] binds an even RTP port and the RTCP
//! port above it from the pool (so the port can go into SDP before anything is agreed),
//! [`MediaEngine::configure`] sets the negotiated media, [`MediaEngine::set_feed`] bridges or
//! plays, [`MediaEngine::close`] ends the endpoint and frees its ports. Events (DTMF, prompt
//! done, latching) come back on the channel given at start. Every endpoint of one call is
//! opened with the same call key and lands on the same thread, so bridging never crosses
//! threads.
//!
//! Receive and send buffers are allocated once per thread; no per-packet allocation. What
//! this module does not do: choose codecs (SDP), SRTP/DTLS (WebRTC legs), or batch
//! syscalls (recvmmsg/sendmmsg): plain non-blocking calls first; batching comes where a
//! benchmark shows it helps.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use rand::RngExt;

use super::ports::PortPool;
use super::shard::{
    AudioSink, Feed, LegConfig, LegCounters, LegId, MediaEvent, OutgoingStream, Shard,
};

/// The waker's token; endpoint tokens are `slot × 2` (RTP) and `slot × 2 + 1` (RTCP).
const WAKE: Token = Token(usize::MAX);

/// The largest datagram read.
const RECEIVE_BUFFER: usize = 2048;

/// Names one endpoint (one leg's ports) across the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u64);

/// What [`MediaEngine::open`] gives: the id and the RTP port to put into SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub address: IpAddr,
    pub port: u16,
}

/// Where an endpoint's outgoing audio comes from, as the call engine names it.
pub enum FeedSpec {
    Silence,
    /// Another endpoint of the same call (a bridge).
    Endpoint(EndpointId),
    /// The sum of what these endpoints receive (on the same thread as this one): a
    /// three-way call, eavesdropping, whisper.
    Mix(Vec<EndpointId>),
    /// A tone, generated at the rate the leg's encoder runs at.
    Tone(super::tones::ToneSpec),
    /// Mono audio at `rate`, converted once to the leg's rate; `PlaybackDone` at its end
    /// (never, when looping).
    Play {
        samples: Arc<[i16]>,
        rate: u32,
        looping: bool,
    },
}

/// What the engine reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointEvent {
    pub endpoint: EndpointId,
    /// The call the endpoint belongs to (as given to [`MediaEngine::open`] or `migrate`).
    pub call: u64,
    pub event: MediaEvent,
}

/// The media threads' counters for `/metrics`, published by each thread once a second.
#[derive(Debug, Default)]
pub struct MediaMetrics {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub octets_sent: AtomicU64,
    pub malformed: AtomicU64,
    pub unknown_payload_type: AtomicU64,
    pub rejected_source: AtomicU64,
    pub rtcp_received: AtomicU64,
    pub concealed: AtomicU64,
    /// Endpoints open now (a gauge).
    pub endpoints: AtomicU64,
}

impl MediaMetrics {
    fn publish(&self, delta: &LegCounters) {
        let add = |counter: &AtomicU64, value: u64| {
            if value > 0 {
                counter.fetch_add(value, Ordering::Relaxed);
            }
        };
        add(&self.packets_received, delta.packets_in);
        add(&self.packets_sent, delta.packets_out);
        add(&self.octets_sent, delta.octets_out);
        add(&self.malformed, delta.malformed);
        add(&self.unknown_payload_type, delta.unknown_payload_type);
        add(&self.rejected_source, delta.rejected_source);
        add(&self.rtcp_received, delta.rtcp_in);
        add(&self.concealed, delta.concealed);
    }
}

/// Settings.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// The address RTP sockets bind to (and SDP announces unless the caller knows better).
    pub address: IpAddr,
    pub ports: std::ops::RangeInclusive<u16>,
    /// Media threads; 0 means one per core.
    pub threads: usize,
    /// The RTCP CNAME.
    pub cname: String,
    /// A sending-and-receiving leg that hears no RTP this long is reported
    /// ([`MediaEvent::RtpTimeout`]); zero: never.
    pub rtp_timeout: Duration,
}

enum Command {
    Open {
        id: EndpointId,
        rtp: UdpSocket,
        rtcp: UdpSocket,
        call: u64,
    },
    Configure {
        id: EndpointId,
        config: Box<LegConfig>,
    },
    Feed {
        id: EndpointId,
        feed: FeedSpec,
        reply: Option<Sender<Result<(), String>>>,
    },
    Sink {
        id: EndpointId,
        sink: Option<Box<dyn AudioSink>>,
    },
    Dtmf {
        id: EndpointId,
        digit: char,
        duration_ms: u32,
    },
    Counters {
        id: EndpointId,
        reply: Sender<Option<LegCounters>>,
    },
    Close {
        id: EndpointId,
    },
    /// Like `Close`, but the sockets are handed back (to move the endpoint to another
    /// thread).
    Release {
        id: EndpointId,
        reply: Sender<Option<Released>>,
    },
    /// Takes over an endpoint released by another thread.
    Adopt {
        id: EndpointId,
        released: Released,
        call: u64,
    },
    /// The endpoint now belongs to `call` (moved within its thread).
    Owner {
        id: EndpointId,
        call: u64,
    },
    Stop,
}

struct Worker {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    /// A wake-up is on its way and the thread has not drained its commands since: senders
    /// need not wake it again (a burst of commands costs one wake-up, not one each).
    wake_pending: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// See the module doc.
pub struct MediaEngine {
    workers: Vec<Worker>,
    ports: Mutex<PortPool>,
    /// Which worker and ports each open endpoint has.
    endpoints: Mutex<HashMap<EndpointId, (usize, u16)>>,
    next_id: AtomicU64,
    address: IpAddr,
    metrics: Arc<MediaMetrics>,
}

impl MediaEngine {
    /// Starts the media threads; events go to `events`.
    ///
    /// # Errors
    /// When the OS refuses a poller or a thread.
    pub fn start(
        settings: &MediaSettings,
        events: Sender<EndpointEvent>,
    ) -> io::Result<MediaEngine> {
        Self::start_with_metrics(settings, events, Arc::new(MediaMetrics::default()))
    }

    /// As [`MediaEngine::start`], publishing into `metrics`.
    ///
    /// # Errors
    /// When the OS refuses a poller or a thread.
    pub fn start_with_metrics(
        settings: &MediaSettings,
        events: Sender<EndpointEvent>,
        metrics: Arc<MediaMetrics>,
    ) -> io::Result<MediaEngine> {
        let threads = if settings.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            settings.threads
        };
        let mut workers = Vec::with_capacity(threads);
        // One clock for every thread, so a leg's timestamps continue when it moves between them.
        let epoch = Instant::now();
        for index in 0..threads {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
            let (commands, receiver) = channel();
            let events = events.clone();
            let cname = settings.cname.clone();
            let rtp_timeout_ms = settings.rtp_timeout.as_millis() as u64;
            let published = metrics.clone();
            let wake_pending = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let pending = wake_pending.clone();
            let thread = std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || {
                    run(
                        poll,
                        receiver,
                        &pending,
                        events,
                        &cname,
                        (epoch, rtp_timeout_ms),
                        &published,
                    )
                })?;
            workers.push(Worker {
                commands,
                waker,
                wake_pending,
                thread: Some(thread),
            });
        }
        Ok(MediaEngine {
            workers,
            ports: Mutex::new(PortPool::new(settings.ports.clone(), rand::rng().random())),
            endpoints: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            address: settings.address,
            metrics,
        })
    }

    /// The counters the media threads publish.
    pub fn metrics(&self) -> &Arc<MediaMetrics> {
        &self.metrics
    }

    fn send(&self, worker: usize, command: Command) {
        let worker = &self.workers[worker];
        // A send fails only when the thread has ended (engine stopping): nothing to do.
        if worker.commands.send(command).is_ok()
            && !worker.wake_pending.swap(true, Ordering::SeqCst)
        {
            let _ = worker.waker.wake();
        }
    }

    fn worker_of(&self, id: EndpointId) -> Option<usize> {
        self.endpoints
            .lock()
            .expect("endpoint table")
            .get(&id)
            .map(|&(worker, _)| worker)
    }

    /// Binds an RTP port and its RTCP neighbour for a leg of call `call` (any key the call
    /// engine uses for the call: its endpoints share a thread).
    ///
    /// # Errors
    /// When every port of the range is in use or taken by other programs.
    pub fn open(&self, call: u64) -> io::Result<Endpoint> {
        self.open_beside(call, call)
    }

    /// Like [`MediaEngine::open`], for call `call`, but on the thread of call `beside`: the
    /// endpoint can then be mixed with that call's endpoints (a supervisor listening in).
    ///
    /// # Errors
    /// As [`MediaEngine::open`].
    pub fn open_beside(&self, call: u64, beside: u64) -> io::Result<Endpoint> {
        let mut pool = self.ports.lock().expect("port pool");
        for _ in 0..pool.capacity().max(1) {
            let Some(port) = pool.allocate() else { break };
            let rtp = UdpSocket::bind(SocketAddr::new(self.address, port));
            let rtcp = UdpSocket::bind(SocketAddr::new(self.address, port.wrapping_add(1)));
            let (Ok(rtp), Ok(rtcp)) = (rtp, rtcp) else {
                // Another program holds it: leave it marked used so it is not tried again
                // soon, but count it free for the pool's arithmetic.
                pool.release(port);
                continue;
            };
            drop(pool);
            rtp.set_nonblocking(true)?;
            rtcp.set_nonblocking(true)?;
            let id = EndpointId(self.next_id.fetch_add(1, Ordering::Relaxed));
            let worker = (beside % self.workers.len() as u64) as usize;
            self.endpoints
                .lock()
                .expect("endpoint table")
                .insert(id, (worker, port));
            self.send(
                worker,
                Command::Open {
                    id,
                    rtp,
                    rtcp,
                    call,
                },
            );
            self.metrics.endpoints.fetch_add(1, Ordering::Relaxed);
            return Ok(Endpoint {
                id,
                address: self.address,
                port,
            });
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "no free RTP port in the configured range (rtp.ports)",
        ))
    }

    /// Sets (or changes, on a re-INVITE) the negotiated media of an endpoint.
    pub fn configure(&self, id: EndpointId, config: LegConfig) {
        if let Some(worker) = self.worker_of(id) {
            self.send(
                worker,
                Command::Configure {
                    id,
                    config: Box::new(config),
                },
            );
        }
    }

    /// Sets where the endpoint's audio comes from and waits for the media thread's answer.
    ///
    /// # Errors
    /// A description when it cannot be done: an unknown endpoint, endpoints of different
    /// calls, a codec that cannot be transcoded.
    pub fn set_feed(&self, id: EndpointId, feed: FeedSpec) -> Result<(), String> {
        let worker = self
            .worker_of(id)
            .ok_or_else(|| format!("no media endpoint {}", id.0))?;
        let sources = match &feed {
            FeedSpec::Endpoint(source) => std::slice::from_ref(source),
            FeedSpec::Mix(sources) => sources.as_slice(),
            _ => &[],
        };
        if let Some(source) = sources.iter().find(|s| self.worker_of(**s) != Some(worker)) {
            return Err(format!(
                "media endpoints {} and {} belong to different calls",
                id.0, source.0
            ));
        }
        let (reply, answer) = channel();
        self.send(
            worker,
            Command::Feed {
                id,
                feed,
                reply: Some(reply),
            },
        );
        answer
            .recv_timeout(Duration::from_secs(2))
            .map_err(|_| "the media thread did not answer".to_owned())?
    }

    /// Writes what the endpoint receives, decoded, to `sink` (a recording); `None` stops.
    pub fn set_sink(&self, id: EndpointId, sink: Option<Box<dyn AudioSink>>) {
        if let Some(worker) = self.worker_of(id) {
            self.send(worker, Command::Sink { id, sink });
        }
    }

    /// Sends a DTMF digit on the endpoint (RFC 4733 or in-band, as negotiated).
    pub fn send_dtmf(&self, id: EndpointId, digit: char, duration_ms: u32) {
        if let Some(worker) = self.worker_of(id) {
            self.send(
                worker,
                Command::Dtmf {
                    id,
                    digit,
                    duration_ms,
                },
            );
        }
    }

    /// The endpoint's counters, once it has negotiated media.
    pub fn counters(&self, id: EndpointId) -> Option<LegCounters> {
        let worker = self.worker_of(id)?;
        let (reply, answer) = channel();
        self.send(worker, Command::Counters { id, reply });
        answer.recv_timeout(Duration::from_secs(2)).ok().flatten()
    }

    /// Ends the endpoint: its sockets close and its ports go back to the pool.
    pub fn close(&self, id: EndpointId) {
        let Some((worker, port)) = self.endpoints.lock().expect("endpoint table").remove(&id)
        else {
            return;
        };
        self.send(worker, Command::Close { id });
        self.ports.lock().expect("port pool").release(port);
        self.metrics.endpoints.fetch_sub(1, Ordering::Relaxed);
    }

    /// Moves endpoint `id` to the thread of call `call` (so it can be bridged with that
    /// call's endpoints, after a transfer joined legs of two calls). The port stays the same,
    /// so the peer notices nothing; the leg must be configured again and its feed set. An
    /// endpoint already on that thread is left alone.
    ///
    /// # Errors
    /// When the endpoint is unknown or its thread does not hand it over.
    pub fn migrate(&self, id: EndpointId, call: u64) -> Result<(), String> {
        let target = (call % self.workers.len() as u64) as usize;
        let Some(worker) = self.worker_of(id) else {
            return Err(format!("no media endpoint {}", id.0));
        };
        if worker == target {
            self.send(worker, Command::Owner { id, call });
            return Ok(());
        }
        let (reply, answer) = channel();
        self.send(worker, Command::Release { id, reply });
        let released = answer
            .recv_timeout(Duration::from_secs(2))
            .ok()
            .flatten()
            .ok_or_else(|| format!("the media thread did not release endpoint {}", id.0))?;
        if let Some(entry) = self.endpoints.lock().expect("endpoint table").get_mut(&id) {
            entry.0 = target;
        }
        self.send(target, Command::Adopt { id, released, call });
        Ok(())
    }

    /// Endpoints open.
    pub fn open_endpoints(&self) -> usize {
        self.endpoints.lock().expect("endpoint table").len()
    }
}

impl Drop for MediaEngine {
    fn drop(&mut self) {
        for index in 0..self.workers.len() {
            self.send(index, Command::Stop);
        }
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// One endpoint on a media thread.
struct Slot {
    id: EndpointId,
    rtp: mio::net::UdpSocket,
    rtcp: mio::net::UdpSocket,
    leg: Option<LegId>,
    /// The stream the endpoint sent on its former thread, continued by its next leg.
    carried: Option<OutgoingStream>,
    /// The call it belongs to, for its events.
    call: u64,
}

/// A media thread's state.
struct Thread {
    poll: Poll,
    shard: Shard,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    by_id: HashMap<EndpointId, usize>,
    /// Slot of each leg, by `LegId`.
    by_leg: Vec<Option<usize>>,
    events: Sender<EndpointEvent>,
    started: Instant,
}

fn run(
    poll: Poll,
    commands: Receiver<Command>,
    wake_pending: &std::sync::atomic::AtomicBool,
    events: Sender<EndpointEvent>,
    cname: &str,
    (started, rtp_timeout_ms): (Instant, u64),
    metrics: &MediaMetrics,
) {
    let mut thread = Thread {
        poll,
        shard: Shard::new(cname),
        slots: Vec::new(),
        free: Vec::new(),
        by_id: HashMap::new(),
        by_leg: Vec::new(),
        events,
        started,
    };
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
        .saturating_sub(started.elapsed().as_millis() as u64);
    thread.shard.set_wallclock(unix_ms);
    thread.shard.set_rtp_timeout(rtp_timeout_ms);
    let mut ready = Events::with_capacity(256);
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    let tick = Duration::from_millis(super::shard::PTIME_MS);
    let mut next_tick = Instant::now() + tick;
    let mut published = LegCounters::default();
    let mut next_publish = Instant::now() + Duration::from_secs(1);
    loop {
        let timeout = next_tick.saturating_duration_since(Instant::now());
        if let Err(error) = thread.poll.poll(&mut ready, Some(timeout))
            && error.kind() != io::ErrorKind::Interrupted
        {
            tracing::error!(%error, "media thread: poll failed; the thread stops");
            return;
        }
        for event in &ready {
            if event.token() == WAKE {
                continue;
            }
            thread.receive(event.token().0, &mut buffer);
        }
        // Commands after packets: a burst of them never delays the audio much. Clearing the
        // flag before draining: a command sent after this point wakes the thread again.
        wake_pending.store(false, Ordering::SeqCst);
        loop {
            match commands.try_recv() {
                Ok(Command::Stop) => {
                    metrics.publish(&thread.shard.totals().since(&published));
                    return;
                }
                Ok(command) => thread.apply(command),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            }
        }
        let now = Instant::now();
        if now >= next_tick {
            thread.shard.handle_tick(thread.now_ms());
            next_tick += tick;
            if now > next_tick + tick * 5 {
                // Far behind (the machine stalled): skip ahead rather than burst.
                next_tick = now + tick;
            }
            if now >= next_publish {
                let totals = thread.shard.totals();
                metrics.publish(&totals.since(&published));
                published = totals;
                next_publish = now + Duration::from_secs(1);
            }
        }
        thread.flush();
    }
}

impl Thread {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Reads every waiting datagram of the token's socket into the shard.
    fn receive(&mut self, token: usize, buffer: &mut [u8]) {
        let (index, is_rtcp) = (token / 2, token % 2 == 1);
        loop {
            let Some(slot) = self.slots.get(index).and_then(Option::as_ref) else {
                return;
            };
            let socket = if is_rtcp { &slot.rtcp } else { &slot.rtp };
            let (length, source) = match socket.recv_from(buffer) {
                Ok(received) => received,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                // ICMP port unreachable and the like: the next read goes on.
                Err(_) => continue,
            };
            let Some(leg) = slot.leg else {
                // Not configured yet: nothing to do with it.
                continue;
            };
            let now = self.now_ms();
            self.shard
                .handle_datagram(leg, source, &buffer[..length], is_rtcp, now);
            // Forward pass-through packets at once.
            if !self.shard.transmits().is_empty() {
                self.flush();
            }
        }
    }

    /// Sends what the shard has queued, and hands its events on.
    fn flush(&mut self) {
        for transmit in self.shard.transmits() {
            let Some(slot) = self
                .by_leg
                .get(transmit.leg.0 as usize)
                .copied()
                .flatten()
                .and_then(|index| self.slots[index].as_ref())
            else {
                continue;
            };
            let socket = if transmit.rtp { &slot.rtp } else { &slot.rtcp };
            // A full socket buffer drops the packet, as the network would.
            let _ = socket.send_to(&transmit.bytes, transmit.to);
        }
        self.shard.clear_transmits();
        while let Some(event) = self.shard.poll_event() {
            let leg = match &event {
                MediaEvent::Dtmf { leg, .. }
                | MediaEvent::PlaybackDone { leg }
                | MediaEvent::Latched { leg, .. }
                | MediaEvent::RtcpBye { leg }
                | MediaEvent::RtpTimeout { leg } => *leg,
            };
            if let Some(slot) = self
                .by_leg
                .get(leg.0 as usize)
                .copied()
                .flatten()
                .and_then(|index| self.slots[index].as_ref())
            {
                let _ = self.events.send(EndpointEvent {
                    endpoint: slot.id,
                    call: slot.call,
                    event,
                });
            }
        }
    }

    fn leg_of(&self, id: EndpointId) -> Option<LegId> {
        let index = *self.by_id.get(&id)?;
        self.slots[index].as_ref()?.leg
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Open {
                id,
                rtp,
                rtcp,
                call,
            } => {
                let released = Released {
                    rtp: mio::net::UdpSocket::from_std(rtp),
                    rtcp: mio::net::UdpSocket::from_std(rtcp),
                    stream: None,
                };
                self.adopt(id, released, call);
            }
            Command::Adopt { id, released, call } => self.adopt(id, released, call),
            Command::Owner { id, call } => {
                if let Some(slot) = self
                    .by_id
                    .get(&id)
                    .and_then(|&index| self.slots[index].as_mut())
                {
                    slot.call = call;
                }
            }
            Command::Configure { id, config } => {
                let Some(&index) = self.by_id.get(&id) else {
                    return;
                };
                match self.leg_of(id) {
                    Some(leg) => self.shard.update_leg(leg, *config),
                    None => {
                        let carried = self.slots[index].as_mut().and_then(|s| s.carried.take());
                        let leg = match carried {
                            Some(stream) => self.shard.add_leg_continuing(*config, stream),
                            None => self.shard.add_leg(*config),
                        };
                        let position = leg.0 as usize;
                        if self.by_leg.len() <= position {
                            self.by_leg.resize(position + 1, None);
                        }
                        self.by_leg[position] = Some(index);
                        if let Some(slot) = self.slots[index].as_mut() {
                            slot.leg = Some(leg);
                        }
                    }
                }
            }
            Command::Feed { id, feed, reply } => {
                let result = match self.leg_of(id) {
                    None => Err(format!("media endpoint {} has no negotiated media", id.0)),
                    Some(leg) => {
                        let feed = match feed {
                            FeedSpec::Silence => Ok(Feed::Silence),
                            FeedSpec::Tone(spec) => self
                                .shard
                                .encoder_rate(leg)
                                .map(|rate| Feed::Tone(super::tones::TonePlayer::new(spec, rate)))
                                .map_err(|error| error.to_string()),
                            FeedSpec::Play {
                                samples,
                                rate,
                                looping,
                            } => self
                                .shard
                                .encoder_rate(leg)
                                .map(|leg_rate| {
                                    Feed::Play(super::shard::Player::new(
                                        &samples, rate, leg_rate, looping,
                                    ))
                                })
                                .map_err(|error| error.to_string()),
                            FeedSpec::Mix(sources) => {
                                let legs: Vec<_> =
                                    sources.iter().filter_map(|s| self.leg_of(*s)).collect();
                                Ok(Feed::Mix(super::shard::Mix::new(&legs)))
                            }
                            FeedSpec::Endpoint(source) => match self.leg_of(source) {
                                Some(source) => Ok(Feed::Leg(source)),
                                None => Err(format!(
                                    "media endpoint {} has no negotiated media",
                                    source.0
                                )),
                            },
                        };
                        feed.and_then(|feed| {
                            self.shard
                                .set_feed(leg, feed)
                                .map_err(|error| error.to_string())
                        })
                    }
                };
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Command::Sink { id, sink } => {
                if let Some(leg) = self.leg_of(id)
                    && let Err(error) = self.shard.set_sink(leg, sink)
                {
                    tracing::warn!(endpoint = id.0, %error, "media: cannot record this leg");
                }
            }
            Command::Dtmf {
                id,
                digit,
                duration_ms,
            } => {
                if let Some(leg) = self.leg_of(id) {
                    let now = self.now_ms();
                    self.shard.send_dtmf(leg, digit, duration_ms, now);
                }
            }
            Command::Counters { id, reply } => {
                let counters = self.leg_of(id).and_then(|leg| self.shard.counters(leg));
                let _ = reply.send(counters);
            }
            Command::Close { id } => {
                self.remove_endpoint(id);
            }
            Command::Release { id, reply } => {
                let _ = reply.send(self.remove_endpoint(id));
            }
            Command::Stop => {}
        }
    }
}

impl Thread {
    /// Polls an endpoint's sockets on this thread.
    fn adopt(&mut self, id: EndpointId, released: Released, call: u64) {
        let Released {
            mut rtp,
            mut rtcp,
            stream,
        } = released;
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let registry = self.poll.registry();
        if registry
            .register(&mut rtp, Token(index * 2), Interest::READABLE)
            .and_then(|()| registry.register(&mut rtcp, Token(index * 2 + 1), Interest::READABLE))
            .is_err()
        {
            tracing::error!(endpoint = id.0, "media thread: cannot poll the RTP sockets");
            self.free.push(index);
            return;
        }
        self.slots[index] = Some(Slot {
            id,
            rtp,
            rtcp,
            leg: None,
            carried: stream,
            call,
        });
        self.by_id.insert(id, index);
    }

    /// Takes an endpoint out of this thread: its leg leaves the shard, its sockets leave the
    /// poll and are returned with the stream it was sending.
    fn remove_endpoint(&mut self, id: EndpointId) -> Option<Released> {
        let index = self.by_id.remove(&id)?;
        let slot = self.slots[index].take();
        self.free.push(index);
        let mut slot = slot?;
        let registry = self.poll.registry();
        let _ = registry.deregister(&mut slot.rtp);
        let _ = registry.deregister(&mut slot.rtcp);
        let mut stream = slot.carried;
        if let Some(leg) = slot.leg {
            stream = self.shard.remove_leg(leg);
            if let Some(entry) = self.by_leg.get_mut(leg.0 as usize) {
                *entry = None;
            }
        }
        Some(Released {
            rtp: slot.rtp,
            rtcp: slot.rtcp,
            stream,
        })
    }
}

/// An endpoint handed from one media thread to another: its sockets, and the RTP stream it
/// sent (its SSRC, sequence numbers and timestamps go on, so the peer sees one stream).
struct Released {
    rtp: mio::net::UdpSocket,
    rtcp: mio::net::UdpSocket,
    stream: Option<OutgoingStream>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::continuity::LatchPolicy;
    use crate::media::rtp::{RtpHeader, RtpPacket};
    use crate::media::shard::Codec;

    fn engine() -> (MediaEngine, Receiver<EndpointEvent>) {
        let (events, receiver) = channel();
        let settings = MediaSettings {
            address: IpAddr::from([127, 0, 0, 1]),
            ports: 41_000..=41_999,
            threads: 2,
            cname: "rswitch@test".into(),
            rtp_timeout: Duration::ZERO,
        };
        (MediaEngine::start(&settings, events).unwrap(), receiver)
    }

    fn leg(
        name: &str,
        payload_type: u8,
        clock_rate: u32,
        remote: SocketAddr,
        ssrc: u32,
    ) -> LegConfig {
        LegConfig {
            codec: Codec {
                name: name.into(),
                payload_type,
                clock_rate,
                fmtp: None,
            },
            telephone_event: Some(101),
            remote: Some(remote),
            latch: LatchPolicy::Continue,
            send: true,
            receive: true,
            ssrc,
            first_sequence: 1,
            rtcp_mux: true,
            detect_inband_dtmf: false,
        }
    }

    fn phone() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        socket
    }

    #[test]
    fn two_phones_are_bridged_pass_through_over_real_sockets_bit_exact() {
        let (engine, events) = engine();
        let (alice, bob) = (phone(), phone());
        let a = engine.open(7).unwrap();
        let b = engine.open(7).unwrap();
        assert_eq!(a.port % 2, 0);
        engine.configure(a.id, leg("PCMU", 0, 8000, alice.local_addr().unwrap(), 0xa));
        engine.configure(b.id, leg("PCMU", 0, 8000, bob.local_addr().unwrap(), 0xb));
        engine.set_feed(a.id, FeedSpec::Endpoint(b.id)).unwrap();
        engine.set_feed(b.id, FeedSpec::Endpoint(a.id)).unwrap();
        let to_a = SocketAddr::new(a.address, a.port);
        let mut buffer = [0u8; 2048];
        for i in 0..20u16 {
            let payload: Vec<u8> = (0..160).map(|n| (n as u16 * 7 + i) as u8).collect();
            let mut datagram = Vec::new();
            RtpHeader {
                marker: false,
                payload_type: 0,
                sequence: 500 + i,
                timestamp: 160 * u32::from(i),
                ssrc: 0x1111,
            }
            .write_packet(&payload, &mut datagram);
            alice.send_to(&datagram, to_a).unwrap();
            let (length, from) = bob.recv_from(&mut buffer).unwrap();
            assert_eq!(from, SocketAddr::new(b.address, b.port), "from b's port");
            let packet = RtpPacket::parse(&buffer[..length]).unwrap();
            assert_eq!(packet.payload, &payload[..], "bit-exact");
            assert_eq!(packet.header.ssrc, 0xb);
        }
        assert!(matches!(
            events.recv_timeout(Duration::from_secs(1)).unwrap().event,
            MediaEvent::Latched { .. }
        ));
        let counters = engine.counters(a.id).unwrap();
        assert_eq!(counters.packets_in, 20);
        assert_eq!(engine.counters(b.id).unwrap().packets_out, 20);
        // The threads publish their totals for /metrics once a second.
        let published = Instant::now();
        while engine.metrics().packets_received.load(Ordering::Relaxed) < 20 {
            assert!(
                published.elapsed() < Duration::from_secs(5),
                "metrics not published"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(engine.metrics().packets_sent.load(Ordering::Relaxed), 20);
        assert_eq!(engine.metrics().endpoints.load(Ordering::Relaxed), 2);
        // Endpoints of different calls are not bridged.
        let c = engine.open(8).unwrap();
        engine.configure(c.id, leg("PCMU", 0, 8000, bob.local_addr().unwrap(), 0xc));
        let across = engine.set_feed(c.id, FeedSpec::Endpoint(a.id));
        assert!(across.is_err() || engine.workers.len() == 1);
        engine.close(a.id);
        engine.close(b.id);
        engine.close(c.id);
        assert_eq!(engine.open_endpoints(), 0);
    }

    #[test]
    fn an_endpoint_migrated_to_another_call_keeps_its_port_and_is_bridged_there() {
        let (engine, _events) = engine();
        let (alice, carol) = (phone(), phone());
        // Calls 7 and 8 live on different threads of the two.
        let a = engine.open(7).unwrap();
        let c = engine.open(8).unwrap();
        assert!(engine.set_feed(a.id, FeedSpec::Endpoint(c.id)).is_err());
        engine.migrate(c.id, 7).unwrap();
        engine.configure(a.id, leg("PCMU", 0, 8000, alice.local_addr().unwrap(), 0xa));
        engine.configure(c.id, leg("PCMU", 0, 8000, carol.local_addr().unwrap(), 0xc));
        engine.set_feed(a.id, FeedSpec::Endpoint(c.id)).unwrap();
        engine.set_feed(c.id, FeedSpec::Endpoint(a.id)).unwrap();
        let mut buffer = [0u8; 2048];
        for i in 0..5u16 {
            let mut datagram = Vec::new();
            RtpHeader {
                marker: false,
                payload_type: 0,
                sequence: 10 + i,
                timestamp: 160 * u32::from(i),
                ssrc: 0x3333,
            }
            .write_packet(&[0x55; 160], &mut datagram);
            // Carol keeps sending to the port she always had.
            carol
                .send_to(&datagram, SocketAddr::new(c.address, c.port))
                .unwrap();
            let (length, from) = alice.recv_from(&mut buffer).unwrap();
            assert_eq!(from, SocketAddr::new(a.address, a.port));
            assert_eq!(
                RtpPacket::parse(&buffer[..length]).unwrap().payload,
                &[0x55; 160]
            );
        }
        engine.close(a.id);
        engine.close(c.id);
        assert_eq!(engine.open_endpoints(), 0);
        assert!(engine.migrate(c.id, 7).is_err());
    }

    #[test]
    fn a_tone_is_played_at_the_packet_rate() {
        let (engine, _events) = engine();
        let listener = phone();
        let a = engine.open(1).unwrap();
        engine.configure(
            a.id,
            leg("PCMA", 8, 8000, listener.local_addr().unwrap(), 0xa),
        );
        engine
            .set_feed(
                a.id,
                FeedSpec::Tone(crate::media::tones::ToneSpec::china_dial()),
            )
            .unwrap();
        let mut buffer = [0u8; 2048];
        let started = Instant::now();
        for _ in 0..25 {
            let (length, _) = listener.recv_from(&mut buffer).unwrap();
            let packet = RtpPacket::parse(&buffer[..length]).unwrap();
            assert_eq!((packet.header.payload_type, packet.payload.len()), (8, 160));
        }
        // 25 packets at 20 ms: about half a second (generous bounds: shared machines).
        let elapsed = started.elapsed();
        assert!(elapsed > Duration::from_millis(300), "{elapsed:?}");
        assert!(
            engine.set_feed(EndpointId(999), FeedSpec::Silence).is_err(),
            "unknown endpoint"
        );
    }
}
