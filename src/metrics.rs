//! Process metrics in the Prometheus text format (`GET /metrics`).
//!
//! Counters are plain atomics owned by [`Metrics`]; gauges that are cheap to read at scrape
//! time (snapshot version, database reachability) are passed to [`Metrics::render`].
//! What this module does not do: histograms or labels beyond what a counter needs.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::media::io::MediaMetrics;
use crate::sip::transport::TransportMetrics;

/// Counters of the whole process.
#[derive(Debug, Default)]
pub struct Metrics {
    pub applies_ok: AtomicU64,
    pub applies_refused: AtomicU64,
    pub http_requests: AtomicU64,
    /// Call events published to Redis.
    pub redis_events_published: AtomicU64,
    /// Call events dropped before Redis took them (buffer full, or the publisher behind).
    pub redis_events_dropped: AtomicU64,
    /// Whether the Redis publisher is connected (1) or not (0).
    pub redis_up: AtomicU64,
    /// Counters of the SIP transports.
    pub sip: Arc<TransportMetrics>,
    /// Counters of the media threads.
    pub media: Arc<MediaMetrics>,
}

/// Values read at scrape time.
#[derive(Debug, Clone)]
pub struct Gauges {
    pub uptime_seconds: f64,
    pub snapshot_version: u64,
    pub snapshot_problems: usize,
    pub database_up: bool,
    pub backend: &'static str,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(1024);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "rswitch_build_info",
            "gauge",
            "Build information; always 1.",
            &[(
                &format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")),
                "1".to_owned(),
            )],
        );
        metric(
            "rswitch_uptime_seconds",
            "gauge",
            "Seconds since the process started.",
            &[("", format!("{:.3}", gauges.uptime_seconds))],
        );
        metric(
            "rswitch_database_up",
            "gauge",
            "Whether the database answered the last check (1) or not (0).",
            &[(
                &format!("{{backend=\"{}\"}}", gauges.backend),
                u8::from(gauges.database_up).to_string(),
            )],
        );
        metric(
            "rswitch_snapshot_version",
            "gauge",
            "Version of the configuration snapshot in force.",
            &[("", gauges.snapshot_version.to_string())],
        );
        metric(
            "rswitch_snapshot_problems",
            "gauge",
            "Problems found by the last snapshot build.",
            &[("", gauges.snapshot_problems.to_string())],
        );
        metric(
            "rswitch_apply_total",
            "counter",
            "Apply requests by outcome.",
            &[
                (
                    "{outcome=\"applied\"}",
                    self.applies_ok.load(Ordering::Relaxed).to_string(),
                ),
                (
                    "{outcome=\"refused\"}",
                    self.applies_refused.load(Ordering::Relaxed).to_string(),
                ),
            ],
        );
        metric(
            "rswitch_http_requests_total",
            "counter",
            "HTTP requests received.",
            &[("", self.http_requests.load(Ordering::Relaxed).to_string())],
        );
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        metric(
            "rswitch_redis_events_published_total",
            "counter",
            "Call events published to Redis.",
            &[("", load(&self.redis_events_published))],
        );
        metric(
            "rswitch_redis_events_dropped_total",
            "counter",
            "Call events dropped before Redis took them (buffer full or publisher behind).",
            &[("", load(&self.redis_events_dropped))],
        );
        metric(
            "rswitch_redis_up",
            "gauge",
            "Whether the Redis event publisher is connected (1) or not (0).",
            &[("", load(&self.redis_up))],
        );
        let sip = &self.sip;
        for (name, kind, help, counter) in [
            (
                "rswitch_sip_messages_received_total",
                "counter",
                "SIP messages received.",
                &sip.messages_received,
            ),
            (
                "rswitch_sip_messages_sent_total",
                "counter",
                "SIP messages sent.",
                &sip.messages_sent,
            ),
            (
                "rswitch_sip_parse_errors_total",
                "counter",
                "SIP messages that did not parse.",
                &sip.parse_errors,
            ),
            (
                "rswitch_sip_responses_dropped_total",
                "counter",
                "Unparseable SIP messages dropped without an answer.",
                &sip.responses_dropped,
            ),
            (
                "rswitch_sip_rate_limited_total",
                "counter",
                "SIP messages dropped by the per-source rate limit.",
                &sip.rate_limited,
            ),
            (
                "rswitch_sip_framing_errors_total",
                "counter",
                "Stream connections closed for a framing error.",
                &sip.framing_errors,
            ),
            (
                "rswitch_sip_connections_refused_total",
                "counter",
                "Stream connections refused by the per-source limit.",
                &sip.connections_refused,
            ),
            (
                "rswitch_sip_connections_open",
                "gauge",
                "Open SIP stream connections.",
                &sip.connections_open,
            ),
            (
                "rswitch_sip_overloaded_total",
                "counter",
                "Requests answered 503 because the transaction table was full.",
                &sip.overloaded,
            ),
        ] {
            metric(name, kind, help, &[("", load(counter))]);
        }
        let media = &self.media;
        for (name, kind, help, counter) in [
            (
                "rswitch_media_packets_received_total",
                "counter",
                "RTP packets taken in (negotiated payload type, accepted source).",
                &media.packets_received,
            ),
            (
                "rswitch_media_packets_sent_total",
                "counter",
                "RTP packets sent.",
                &media.packets_sent,
            ),
            (
                "rswitch_media_octets_sent_total",
                "counter",
                "RTP payload octets sent.",
                &media.octets_sent,
            ),
            (
                "rswitch_media_malformed_total",
                "counter",
                "Datagrams on RTP ports that were not valid RTP or RTCP.",
                &media.malformed,
            ),
            (
                "rswitch_media_unknown_payload_type_total",
                "counter",
                "RTP packets with a payload type that was not negotiated.",
                &media.unknown_payload_type,
            ),
            (
                "rswitch_media_rejected_source_total",
                "counter",
                "RTP packets dropped for coming from another source than the latched one.",
                &media.rejected_source,
            ),
            (
                "rswitch_media_rtcp_received_total",
                "counter",
                "RTCP packets received.",
                &media.rtcp_received,
            ),
            (
                "rswitch_media_concealed_frames_total",
                "counter",
                "Audio frames concealed for lost or late packets.",
                &media.concealed,
            ),
            (
                "rswitch_media_endpoints",
                "gauge",
                "Media endpoints (RTP port pairs) open.",
                &media.endpoints,
            ),
        ] {
            metric(name, kind, help, &[("", load(counter))]);
        }
        out
    }
}
