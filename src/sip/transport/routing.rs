//! Where responses go and what the server writes into the top Via of a request it receives
//! (RFC 3261 §18.2.1, §18.2.2; RFC 3581 `rport`). Pure functions.

use std::net::{IpAddr, SocketAddr};

use crate::sip::message::{Host, Request, Via, split_commas};

/// Writes `received` (and the `rport` value, if the client asked for it) into the top Via of
/// a request that arrived from `source`, as RFC 3261 §18.2.1 and RFC 3581 §4 require.
pub fn stamp_top_via(request: &mut Request, source: SocketAddr) {
    request.headers.map_first("Via", |value| {
        let mut parts: Vec<String> = split_commas(value).map(str::to_owned).collect();
        let Some(top) = parts.first_mut() else {
            return value.to_owned();
        };
        let Ok(via) = Via::parse(top) else {
            return value.to_owned();
        };
        let rport_requested = via.param("rport") == Some(None);
        let host_is_source = match &via.host {
            Host::Ipv4(a) => IpAddr::V4(*a) == source.ip(),
            Host::Ipv6(a) => IpAddr::V6(*a) == source.ip(),
            _ => false,
        };
        let mut stamped = String::with_capacity(top.len() + 40);
        let mut segments = top.split(';');
        stamped.push_str(segments.next().unwrap_or_default().trim_end());
        for segment in segments {
            let name = segment.split('=').next().unwrap_or_default().trim();
            if name.eq_ignore_ascii_case("rport") && rport_requested {
                stamped.push_str(&format!(";rport={}", source.port()));
            } else if name.eq_ignore_ascii_case("received") {
                continue; // replaced below
            } else {
                stamped.push(';');
                stamped.push_str(segment.trim());
            }
        }
        if rport_requested || !host_is_source {
            let ip = match source.ip() {
                IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            };
            stamped.push_str(&format!(";received={ip}"));
        }
        *top = stamped;
        parts.join(", ")
    });
}

/// Where a response to a request with top Via `via`, received from `source` over an
/// unreliable transport, is sent (RFC 3261 §18.2.2 with RFC 3581).
pub fn response_destination(via: &Via, source: SocketAddr) -> SocketAddr {
    if via.param("rport").is_some() {
        return source;
    }
    let port = via.port.unwrap_or(5060);
    if let Some(Some(received)) = via.param("received")
        && let Ok(ip) = received.trim_matches(['[', ']']).parse::<IpAddr>()
    {
        return SocketAddr::new(ip, port);
    }
    match &via.host {
        Host::Ipv4(a) => SocketAddr::new(IpAddr::V4(*a), port),
        Host::Ipv6(a) => SocketAddr::new(IpAddr::V6(*a), port),
        // A host name would need RFC 3263 resolution; the source address is where the
        // request came from and is the best answer without DNS.
        _ => source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Limits, Message, parse_datagram};

    fn request(via: &str) -> Request {
        let raw = format!(
            "OPTIONS sip:a@example.com SIP/2.0\r\nVia: {via}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        match parse_datagram(raw.as_bytes(), &Limits::default()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!("a request was built"),
        }
    }

    #[test]
    fn rport_gets_the_source_port_and_received_is_added() {
        let mut r = request("SIP/2.0/UDP 10.0.0.5:5062;rport;branch=z9hG4bK1, SIP/2.0/UDP other");
        let source: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        stamp_top_via(&mut r, source);
        let vias = r.headers.via().unwrap();
        assert_eq!(vias[0].param("rport"), Some(Some("40000")));
        assert_eq!(vias[0].param("received"), Some(Some("203.0.113.7")));
        assert_eq!(vias[0].branch(), Some("z9hG4bK1"));
        assert_eq!(vias.len(), 2, "other Via values untouched");
        assert_eq!(response_destination(&vias[0], source), source);
    }

    #[test]
    fn received_only_when_the_host_differs() {
        let source: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let mut same = request("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1");
        stamp_top_via(&mut same, source);
        assert_eq!(same.headers.via().unwrap()[0].param("received"), None);

        let mut named = request("SIP/2.0/UDP pc.example.com:5070;branch=z9hG4bK1");
        stamp_top_via(&mut named, source);
        let via = &named.headers.via().unwrap()[0];
        assert_eq!(via.param("received"), Some(Some("192.0.2.1")));
        assert_eq!(
            response_destination(via, "192.0.2.1:40000".parse().unwrap()),
            "192.0.2.1:5070".parse().unwrap()
        );
    }

    #[test]
    fn ipv6_received_is_bracketed() {
        let mut r = request("SIP/2.0/UDP [2001:db8::1];rport;branch=z9hG4bK1");
        let source: SocketAddr = "[2001:db8::9]:5099".parse().unwrap();
        stamp_top_via(&mut r, source);
        let via = &r.headers.via().unwrap()[0];
        assert_eq!(via.param("received"), Some(Some("[2001:db8::9]")));
        assert_eq!(response_destination(via, source), source);
    }
}
