//! The call engine: what a PBX does with the layers below it.
//!
//! Today it holds the running configuration — the immutable [`snapshot::Snapshot`] built from
//! the database and swapped atomically by Apply ([`live::LiveConfig`]). Calls, the registrar,
//! the dialplan executor and the applications build on it in later modules.

pub mod codecs;
pub mod live;
pub mod registrar;
pub mod sip_service;
pub mod snapshot;
