//! The SIP stack, written for rswitch (RFC 3261 and its extensions).
//!
//! `message` parses and prints SIP messages; `sdp` parses session descriptions and negotiates
//! them (RFC 3264); `auth` does HTTP digest authentication (server and client). They are
//! sans-IO: no sockets, no clock, time passed in. Transactions, dialogs and transports build
//! on them.

pub mod auth;
pub mod dialog;
pub mod message;
pub mod peer;
pub mod sdp;
pub mod transaction;
pub mod transport;
pub mod uas;
