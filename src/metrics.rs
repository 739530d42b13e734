//! Process metrics in the Prometheus text format (`GET /metrics`).
//!
//! Counters are plain atomics owned by [`Metrics`]; gauges that are cheap to read at scrape
//! time (snapshot version, database reachability) are passed to [`Metrics::render`].
//! What this module does not do: histograms or labels beyond what a counter needs.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the whole process.
#[derive(Debug, Default)]
pub struct Metrics {
    pub applies_ok: AtomicU64,
    pub applies_refused: AtomicU64,
    pub http_requests: AtomicU64,
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
        out
    }
}
