//! The SIP stack, written for rswitch (RFC 3261 and its extensions).
//!
//! `message` parses and prints SIP messages; `auth` does HTTP digest authentication (server
//! and client). Both are sans-IO: no sockets, no clock, time passed in. Transactions,
//! dialogs and transports build on them.

pub mod auth;
pub mod dialog;
pub mod message;
pub mod peer;
pub mod transaction;
pub mod transport;
pub mod uas;
