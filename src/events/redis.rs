//! Publishing the call events to Redis (spec §5.1): every event of the bus as the legacy
//! JSON ([`CallEvent::legacy_json`]) with `PUBLISH` on one channel (`event` by default, which
//! the legacy subscribers' `psubscribe('event*')` matches).
//!
//! Calls never wait for Redis: the bus hands events over without blocking, and this task
//! keeps them in a bounded buffer while Redis is slow or down. When the buffer is full the
//! oldest events are dropped and counted (`rswitch_redis_events_dropped_total`), as are
//! events the bus had to drop because this task fell behind. The connection is made again
//! automatically (0.5 s, doubling to 10 s between attempts); what is buffered is then sent,
//! in order. Events go out in pipelined batches: one round trip for up to 512 of them.
//!
//! What this module does not do: subscribe, keep events in Redis (PUBLISH only), or
//! publish agent-state changes.
#![allow(clippy::disallowed_methods)] // an IO driver: sockets, clock

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::CallEvent;
use crate::config::redact_url;
use crate::metrics::Metrics;
use crate::secret::Secret;

/// Where and how events are published.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: Secret,
    /// The channel (`event`).
    pub channel: String,
    /// Add the correlation keys (uuid, timestamp, …) to the legacy eight.
    pub extra_fields: bool,
    /// Events kept while Redis is away.
    pub buffer: usize,
}

/// Events sent in one pipelined round trip at most.
const BATCH: usize = 512;

/// How long a connection attempt or a batch may take before Redis is taken for gone.
const IO_TIMEOUT: Duration = Duration::from_secs(3);

const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(10);

/// Publishes the bus's events until `stop` (then a last attempt to send what is buffered).
pub async fn run_publisher(
    settings: RedisSettings,
    mut events: broadcast::Receiver<Arc<CallEvent>>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let where_to = redact_url(settings.url.expose());
    let client = match redis::Client::open(settings.url.expose()) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(url = %where_to, %error, "the Redis URL is not usable: no events are published");
            return;
        }
    };
    let mut buffer: VecDeque<String> = VecDeque::new();
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    let mut retry = FIRST_RETRY;
    let mut next_attempt = tokio::time::Instant::now();
    let mut outage_reported = false;
    let keep = |buffer: &mut VecDeque<String>, event: &CallEvent| {
        if buffer.len() >= settings.buffer.max(1) {
            buffer.pop_front();
            Metrics::inc(&metrics.redis_events_dropped);
        }
        buffer.push_back(event.legacy_json(settings.extra_fields));
    };
    loop {
        let stopping = *stop.borrow();
        if connection.is_none() && (tokio::time::Instant::now() >= next_attempt || stopping) {
            match tokio::time::timeout(IO_TIMEOUT, client.get_multiplexed_async_connection()).await
            {
                Ok(Ok(made)) => {
                    tracing::info!(url = %where_to, buffered = buffer.len(), "publishing events to Redis");
                    connection = Some(made);
                    metrics.redis_up.store(1, Ordering::Relaxed);
                    retry = FIRST_RETRY;
                    outage_reported = false;
                }
                Ok(Err(error)) => {
                    if !outage_reported {
                        tracing::warn!(url = %where_to, %error, "Redis is not reachable; events are buffered");
                        outage_reported = true;
                    }
                }
                Err(_) => {
                    if !outage_reported {
                        tracing::warn!(url = %where_to, "Redis did not answer; events are buffered");
                        outage_reported = true;
                    }
                }
            }
            if connection.is_none() {
                next_attempt = tokio::time::Instant::now() + retry;
                retry = (retry * 2).min(LAST_RETRY);
            }
        }
        // Take what the bus holds without waiting.
        loop {
            match events.try_recv() {
                Ok(event) => keep(&mut buffer, &event),
                Err(broadcast::error::TryRecvError::Lagged(lost)) => {
                    metrics
                        .redis_events_dropped
                        .fetch_add(lost, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
        if let Some(conn) = connection.as_mut()
            && !buffer.is_empty()
        {
            let count = buffer.len().min(BATCH);
            let mut pipe = redis::pipe();
            for payload in buffer.iter().take(count) {
                pipe.cmd("PUBLISH")
                    .arg(&settings.channel)
                    .arg(payload)
                    .ignore();
            }
            match tokio::time::timeout(IO_TIMEOUT, pipe.query_async::<()>(conn)).await {
                Ok(Ok(())) => {
                    buffer.drain(..count);
                    metrics
                        .redis_events_published
                        .fetch_add(count as u64, Ordering::Relaxed);
                    continue;
                }
                Ok(Err(error)) => {
                    tracing::warn!(url = %where_to, %error, "publishing to Redis failed; events are buffered");
                }
                Err(_) => {
                    tracing::warn!(url = %where_to, "Redis did not answer a PUBLISH; events are buffered");
                }
            }
            // What was in flight may have been published: sent again, a subscriber could see
            // an event twice; kept, none is lost.
            connection = None;
            outage_reported = true;
            metrics.redis_up.store(0, Ordering::Relaxed);
            next_attempt = tokio::time::Instant::now() + retry;
        }
        if stopping {
            if !buffer.is_empty() {
                tracing::warn!(
                    events = buffer.len(),
                    "stopping with events not published to Redis"
                );
            }
            return;
        }
        let waiting_to_retry = connection.is_none();
        tokio::select! {
            received = events.recv() => match received {
                Ok(event) => keep(&mut buffer, &event),
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    metrics.redis_events_dropped.fetch_add(lost, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tokio::time::sleep_until(next_attempt), if waiting_to_retry => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
}
