//! Where a message came from or goes to: the transport and the remote address, plus the
//! connection for stream transports. Plain data shared by the sans-IO layers and the
//! transport driver.

use std::fmt;
use std::net::SocketAddr;

/// A SIP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl TransportKind {
    /// Whether the transport is reliable (no retransmissions by the transaction layer).
    pub fn is_reliable(self) -> bool {
        !matches!(self, TransportKind::Udp)
    }

    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
            TransportKind::Ws => "WS",
            TransportKind::Wss => "WSS",
        }
    }

    /// The transport named by a Via token, if known.
    pub fn from_via_token(token: &str) -> Option<TransportKind> {
        Some(match token.to_ascii_uppercase().as_str() {
            "UDP" => TransportKind::Udp,
            "TCP" => TransportKind::Tcp,
            "TLS" => TransportKind::Tls,
            "WS" => TransportKind::Ws,
            "WSS" => TransportKind::Wss,
            _ => return None,
        })
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_token())
    }
}

/// Identifies one stream connection of the transport driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// The other end of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: TransportKind,
    pub addr: SocketAddr,
    /// The connection a stream message arrived on (or should leave on), if any.
    pub connection: Option<ConnectionId>,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}
