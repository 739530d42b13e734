//! rswitch: a standalone SIP PBX / B2BUA with its own media engine.
//!
//! It re-implements the FSGui call platform as one binary. This crate holds every layer; the
//! `rswitch` binary (`src/main.rs`) is a thin command line over it.
//!
//! # The IO boundary
//!
//! ```text
//!            network, disk, clock, signals                 (drivers: may do IO)
//!   +-----------------------------------------------------------------------------+
//!   |  server        api (axum)        store (sqlx)        clock::now_utc          |
//!   +-------+---------------+-----------------+---------------------+--------------+
//!           |               |                 |  rows               |  now
//!           v               v                 v                     v
//!   +-----------------------------------------------------------------------------+
//!   |  config (parse + validate)     pbx::snapshot (build, match routes)           |
//!   |  sip/*, media/*, dialplan decisions: sans-IO, time passed in as `now`        |
//!   +-----------------------------------------------------------------------------+
//!                              pure: no sockets, no clock, no spawning
//! ```
//!
//! Code below the line never reads the clock or touches a socket: `clippy.toml` forbids
//! `Instant::now`, `SystemTime::now`, `Utc::now` and spawning, and the driver modules above the
//! line opt out with `#![allow(clippy::disallowed_methods)]` at their top.

pub mod api;
pub mod clock;
pub mod config;
pub mod events;
pub mod media;
pub mod metrics;
pub mod pbx;
pub mod secret;
pub mod server;
pub mod sip;
pub mod store;
