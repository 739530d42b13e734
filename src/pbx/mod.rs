//! The call engine: what a PBX does with the layers below it.
//!
//! Today it holds the running configuration — the immutable [`snapshot::Snapshot`] built from
//! the database and swapped atomically by Apply ([`live::LiveConfig`]), the registrar, the SIP
//! service, hang-up causes ([`causes`]) and durable CDRs ([`cdr`]). Calls, the dialplan
//! executor and the applications build on it in later modules.

pub mod actions;
pub mod agents;
pub mod calls;
pub mod causes;
pub mod cdr;
pub mod codecs;
pub mod control;
pub mod dialplan;
pub mod live;
pub mod registrar;
pub mod session_timer;
pub mod sip_service;
pub mod snapshot;
