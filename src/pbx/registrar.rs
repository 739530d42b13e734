//! The registrar (RFC 3261 §10.3, RFC 3327 Path, RFC 5626 instance/reg-id): bindings from an
//! extension's address of record to the contacts where its phones can be reached.
//!
//! Sans-IO: the caller authenticates the request first and passes the extension it proved to
//! be, the wall-clock time and the source of the request; [`Registrar::handle_register`]
//! answers with the response and the binding changes to persist. The source address,
//! transport and connection of each binding are kept, so requests reach a phone behind NAT
//! over the flow it registered from. [`Registrar::handle_timeout`] removes expired bindings.
//!
//! Decisions: an expiry below `min_expires` (other than 0) gets 423 with Min-Expires; above
//! `max_expires` it is shortened. When an address of record already has `max_contacts`
//! bindings, a new contact replaces the one that expires first, so a phone that reboots often
//! is never locked out. A binding is identified by its `+sip.instance` and `reg-id` when the
//! phone sends them, otherwise by its contact URI as written.
//!
//! What this module does not do: authentication (done before), persistence (the caller
//! writes [`BindingChange`]s), or sending anything.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};

use crate::sip::message::{Header, NameAddr, Request, Response, Uri, reason_phrase};
use crate::sip::peer::{Peer, TransportKind};
use crate::store::{Registration, SipTransport};

/// Registrar limits.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_contacts: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 10,
        }
    }
}

/// One contact of an address of record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The extension number.
    pub aor: String,
    /// The contact URI as the phone wrote it.
    pub contact: String,
    pub source: Peer,
    pub expires_at: DateTime<Utc>,
    pub call_id: String,
    pub cseq: u32,
    /// q-value × 1000.
    pub q: u16,
    pub path: Vec<String>,
    pub instance_id: String,
    pub reg_id: Option<u32>,
    pub user_agent: String,
    pub updated_at: DateTime<Utc>,
}

/// A change the caller persists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingChange {
    Upsert(Binding),
    Remove { aor: String, contact: String },
}

/// The outcome of a REGISTER.
#[derive(Debug)]
pub struct RegisterOutcome {
    pub response: Response,
    pub changes: Vec<BindingChange>,
}

/// All bindings.
#[derive(Debug, Default)]
pub struct Registrar {
    config: RegistrarConfig,
    bindings: HashMap<String, Vec<Binding>>,
    /// Every binding's expiry, ordered, so the next one is found without a scan.
    expiries: BTreeSet<(DateTime<Utc>, String, String)>,
}

impl Registrar {
    pub fn new(config: RegistrarConfig) -> Self {
        Registrar {
            config,
            bindings: HashMap::new(),
            expiries: BTreeSet::new(),
        }
    }

    /// Restores persisted bindings (those not yet expired at `now`).
    pub fn restore(&mut self, rows: Vec<Registration>, now: DateTime<Utc>) {
        for row in rows {
            if row.expires_at <= now {
                continue;
            }
            let Ok(addr) = row.source.parse() else {
                continue;
            };
            let transport = match row.transport {
                SipTransport::Udp => TransportKind::Udp,
                SipTransport::Tcp => TransportKind::Tcp,
                SipTransport::Tls => TransportKind::Tls,
                SipTransport::Ws => TransportKind::Ws,
                SipTransport::Wss => TransportKind::Wss,
            };
            let binding = Binding {
                aor: row.aor.clone(),
                contact: row.contact,
                source: Peer {
                    transport,
                    addr,
                    connection: None,
                },
                expires_at: row.expires_at,
                call_id: row.call_id,
                cseq: u32::try_from(row.cseq).unwrap_or(0),
                q: u16::try_from(row.q_value).unwrap_or(1000),
                path: row
                    .path
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect(),
                instance_id: row.instance_id,
                reg_id: row.reg_id.and_then(|r| u32::try_from(r).ok()),
                user_agent: row.user_agent,
                updated_at: row.updated_at,
            };
            self.expiries.insert((
                binding.expires_at,
                binding.aor.clone(),
                binding.contact.clone(),
            ));
            self.bindings.entry(row.aor).or_default().push(binding);
        }
    }

    /// The live bindings of `aor`, highest q first.
    pub fn lookup(&self, aor: &str, now: DateTime<Utc>) -> Vec<&Binding> {
        let mut found: Vec<&Binding> = self.bindings.get(aor).map_or_else(Vec::new, |b| {
            b.iter().filter(|b| b.expires_at > now).collect()
        });
        found.sort_by(|a, b| b.q.cmp(&a.q).then(b.updated_at.cmp(&a.updated_at)));
        found
    }

    /// Every live binding, by address of record then newest first.
    pub fn all_bindings(&self, now: DateTime<Utc>) -> Vec<&Binding> {
        let mut all: Vec<&Binding> = self
            .bindings
            .values()
            .flatten()
            .filter(|b| b.expires_at > now)
            .collect();
        all.sort_by(|a, b| a.aor.cmp(&b.aor).then(b.updated_at.cmp(&a.updated_at)));
        all
    }

    /// Every address of record with at least one live binding, and how many.
    pub fn counts(&self) -> usize {
        self.bindings.values().map(Vec::len).sum()
    }

    /// When the next binding expires.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        self.expiries.first().map(|(at, _, _)| *at)
    }

    /// Removes the bindings expired at `now`.
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) -> Vec<BindingChange> {
        let mut changes = Vec::new();
        while let Some((at, aor, contact)) = self.expiries.first().cloned() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            let Some(list) = self.bindings.get_mut(&aor) else {
                continue;
            };
            if let Some(i) = list
                .iter()
                .position(|b| b.contact == contact && b.expires_at == at)
            {
                list.remove(i);
                changes.push(BindingChange::Remove {
                    aor: aor.clone(),
                    contact,
                });
            }
            if list.is_empty() {
                self.bindings.remove(&aor);
            }
        }
        changes
    }

    /// Processes a REGISTER from `source` whose sender proved to be extension `aor`.
    pub fn handle_register(
        &mut self,
        now: DateTime<Utc>,
        request: &Request,
        aor: &str,
        source: Peer,
    ) -> RegisterOutcome {
        let before = self.entries_of(aor);
        let outcome = match self.register(now, request, aor, source) {
            Ok(outcome) => outcome,
            Err(response) => RegisterOutcome {
                response,
                changes: Vec::new(),
            },
        };
        for (at, contact) in before {
            self.expiries.remove(&(at, aor.to_owned(), contact));
        }
        for (at, contact) in self.entries_of(aor) {
            self.expiries.insert((at, aor.to_owned(), contact));
        }
        outcome
    }

    fn entries_of(&self, aor: &str) -> Vec<(DateTime<Utc>, String)> {
        self.bindings.get(aor).map_or_else(Vec::new, |list| {
            list.iter()
                .map(|b| (b.expires_at, b.contact.clone()))
                .collect()
        })
    }

    fn register(
        &mut self,
        now: DateTime<Utc>,
        request: &Request,
        aor: &str,
        source: Peer,
    ) -> Result<RegisterOutcome, Response> {
        let fail = |status: u16, reason: &str| Response::for_request(request, status, reason);
        let to = request
            .headers
            .to()
            .ok()
            .flatten()
            .ok_or_else(|| fail(400, "Bad To Header"))?;
        let Uri::Sip(to_uri) = &to.uri else {
            return Err(fail(400, "To Must Be a SIP URI"));
        };
        if to_uri.user.as_deref() != Some(aor) {
            return Err(fail(403, "Not Your Address of Record"));
        }
        let call_id = request.headers.call_id().unwrap_or_default().to_owned();
        let cseq = request.headers.cseq().ok().flatten().map_or(0, |c| c.seq);
        let header_expires = request
            .headers
            .first("Expires")
            .map(|v| parse_expires(v, self.config.default_expires));
        let contacts = request
            .headers
            .contacts()
            .map_err(|_| fail(400, "Bad Contact Header"))?;
        let user_agent = request
            .headers
            .first("User-Agent")
            .unwrap_or_default()
            .to_owned();
        let path: Vec<String> = request.headers.values("Path").map(str::to_owned).collect();
        let mut changes = Vec::new();

        match contacts {
            None => {
                // Contact: * — only alone and with Expires: 0 (§10.3 step 6).
                if request.headers.values("Contact").count() != 1 || header_expires != Some(0) {
                    return Err(fail(400, "Contact * Needs Expires 0"));
                }
                for b in self.bindings.remove(aor).unwrap_or_default() {
                    changes.push(BindingChange::Remove {
                        aor: b.aor,
                        contact: b.contact,
                    });
                }
            }
            Some(contacts) => {
                let mut planned = Vec::with_capacity(contacts.len());
                for contact in &contacts {
                    let expires = contact
                        .param("expires")
                        .flatten()
                        .map(|v| parse_expires(v, self.config.default_expires))
                        .or(header_expires)
                        .unwrap_or(self.config.default_expires);
                    if expires != 0 && expires < self.config.min_expires {
                        let mut r = fail(423, reason_phrase(423));
                        r.headers.push(Header::new(
                            "Min-Expires",
                            self.config.min_expires.to_string(),
                        ));
                        return Err(r);
                    }
                    // A reordered or replayed REGISTER aborts the whole update (§10.3 step 7).
                    let uri = contact.uri.to_string();
                    let instance_id = contact
                        .param("+sip.instance")
                        .flatten()
                        .unwrap_or_default()
                        .trim_matches('"');
                    let reg_id = contact
                        .param("reg-id")
                        .flatten()
                        .and_then(|v| v.parse().ok());
                    let stale = self.bindings.get(aor).is_some_and(|list| {
                        list.iter().any(|b| {
                            same_binding(b, &uri, instance_id, reg_id)
                                && b.call_id == call_id
                                && cseq <= b.cseq
                        })
                    });
                    if stale {
                        return Err(fail(500, "Out of Order REGISTER"));
                    }
                    planned.push((contact, expires.min(self.config.max_expires)));
                }
                let list = self.bindings.entry(aor.to_owned()).or_default();
                for (contact, expires) in planned {
                    let uri = contact.uri.to_string();
                    let instance_id = contact
                        .param("+sip.instance")
                        .flatten()
                        .unwrap_or_default()
                        .trim_matches('"')
                        .to_owned();
                    let reg_id = contact
                        .param("reg-id")
                        .flatten()
                        .and_then(|v| v.parse().ok());
                    let existing = list
                        .iter()
                        .position(|b| same_binding(b, &uri, &instance_id, reg_id));
                    if expires == 0 {
                        if let Some(i) = existing {
                            let b = list.remove(i);
                            changes.push(BindingChange::Remove {
                                aor: b.aor,
                                contact: b.contact,
                            });
                        }
                        continue;
                    }
                    let binding = Binding {
                        aor: aor.to_owned(),
                        contact: uri,
                        source,
                        expires_at: now + TimeDelta::seconds(i64::from(expires)),
                        call_id: call_id.clone(),
                        cseq,
                        q: parse_q(contact),
                        path: path.clone(),
                        instance_id,
                        reg_id,
                        user_agent: user_agent.clone(),
                        updated_at: now,
                    };
                    match existing {
                        Some(i) => {
                            if list[i].contact != binding.contact {
                                changes.push(BindingChange::Remove {
                                    aor: list[i].aor.clone(),
                                    contact: list[i].contact.clone(),
                                });
                            }
                            list[i] = binding.clone();
                        }
                        None => {
                            if list.len() >= self.config.max_contacts
                                && let Some(oldest) = list
                                    .iter()
                                    .enumerate()
                                    .min_by_key(|(_, b)| b.expires_at)
                                    .map(|(i, _)| i)
                            {
                                let b = list.remove(oldest);
                                changes.push(BindingChange::Remove {
                                    aor: b.aor,
                                    contact: b.contact,
                                });
                            }
                            list.push(binding.clone());
                        }
                    }
                    changes.push(BindingChange::Upsert(binding));
                }
                if list.is_empty() {
                    self.bindings.remove(aor);
                }
            }
        }

        let mut response = Response::for_request(request, 200, "OK");
        response.headers.remove("Content-Length");
        for b in self.lookup(aor, now) {
            let left = (b.expires_at - now).num_seconds().max(0);
            response.headers.push(Header::new(
                "Contact",
                format!("<{}>;expires={left}", b.contact),
            ));
        }
        if !path.is_empty() {
            response.headers.push(Header::new("Path", path.join(", ")));
        }
        response.headers.push(Header::new(
            "Date",
            now.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        ));
        response.headers.push(Header::new("Content-Length", "0"));
        Ok(RegisterOutcome { response, changes })
    }
}

fn same_binding(b: &Binding, uri: &str, instance_id: &str, reg_id: Option<u32>) -> bool {
    if !instance_id.is_empty() && !b.instance_id.is_empty() {
        return b.instance_id == instance_id && b.reg_id == reg_id;
    }
    b.contact == uri
}

/// An expiry in seconds; a value that does not fit 32 bits, or is not a number, counts as the
/// default (RFC 4475 §3.1.2.4 allows this).
fn parse_expires(value: &str, default: u32) -> u32 {
    value.trim().parse::<u32>().unwrap_or(default)
}

/// `q` as thousandths, default 1.0.
fn parse_q(contact: &NameAddr) -> u16 {
    let Some(Some(q)) = contact.param("q") else {
        return 1000;
    };
    q.parse::<f64>()
        .ok()
        .filter(|q| (0.0..=1.0).contains(q))
        .map_or(1000, |q| (q * 1000.0).round() as u16)
}

/// The row persisting a binding.
pub fn binding_row(b: &Binding) -> Registration {
    Registration {
        id: 0,
        aor: b.aor.clone(),
        contact: b.contact.clone(),
        source: b.source.addr.to_string(),
        transport: match b.source.transport {
            TransportKind::Udp => SipTransport::Udp,
            TransportKind::Tcp => SipTransport::Tcp,
            TransportKind::Tls => SipTransport::Tls,
            TransportKind::Ws => SipTransport::Ws,
            TransportKind::Wss => SipTransport::Wss,
        },
        expires_at: b.expires_at,
        call_id: b.call_id.clone(),
        cseq: i64::from(b.cseq),
        q_value: i64::from(b.q),
        path: b.path.join(","),
        instance_id: b.instance_id.clone(),
        reg_id: b.reg_id.map(i64::from),
        user_agent: b.user_agent.clone(),
        updated_at: b.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Limits, Message, parse_datagram};
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn peer() -> Peer {
        Peer {
            transport: TransportKind::Udp,
            addr: "203.0.113.9:40000".parse().unwrap(),
            connection: None,
        }
    }

    fn register(contact: &str, extra: &str, cseq: u32) -> Request {
        let raw = format!(
            "REGISTER sip:pbx.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK{cseq}\r\nFrom: <sip:1000@pbx.example.com>;tag=a\r\nTo: <sip:1000@pbx.example.com>\r\nCall-ID: reg-1\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match parse_datagram(raw.as_bytes(), &Limits::default()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!("tests build requests"),
        }
    }

    #[test]
    fn register_refresh_and_unregister() {
        let mut r = Registrar::new(RegistrarConfig::default());
        let out = r.handle_register(
            t(0),
            &register("<sip:1000@10.0.0.2:5060>", "Expires: 600\r\n", 1),
            "1000",
            peer(),
        );
        assert_eq!(out.response.status, 200);
        assert_eq!(
            out.response.headers.first("Contact"),
            Some("<sip:1000@10.0.0.2:5060>;expires=600")
        );
        assert!(matches!(&out.changes[..], [BindingChange::Upsert(b)] if b.source == peer()));
        assert_eq!(r.lookup("1000", t(1)).len(), 1);

        let out = r.handle_register(
            t(300),
            &register("<sip:1000@10.0.0.2:5060>;expires=900", "", 2),
            "1000",
            peer(),
        );
        assert_eq!(out.response.status, 200);
        assert_eq!(r.lookup("1000", t(301))[0].expires_at, t(1200));

        let out = r.handle_register(
            t(400),
            &register("<sip:1000@10.0.0.2:5060>", "Expires: 0\r\n", 3),
            "1000",
            peer(),
        );
        assert_eq!(out.response.status, 200);
        assert!(matches!(&out.changes[..], [BindingChange::Remove { .. }]));
        assert!(r.lookup("1000", t(401)).is_empty());
    }

    #[test]
    fn too_brief_expiry_gets_423_with_min_expires() {
        let mut r = Registrar::new(RegistrarConfig::default());
        let out = r.handle_register(
            t(0),
            &register("<sip:1000@10.0.0.2>", "Expires: 10\r\n", 1),
            "1000",
            peer(),
        );
        assert_eq!(out.response.status, 423);
        assert_eq!(out.response.headers.first("Min-Expires"), Some("60"));
    }

    #[test]
    fn star_removes_all_and_needs_expires_zero() {
        let mut r = Registrar::new(RegistrarConfig::default());
        r.handle_register(
            t(0),
            &register("<sip:1000@10.0.0.2>, <sip:1000@10.0.0.3>;q=0.5", "", 1),
            "1000",
            peer(),
        );
        assert_eq!(r.lookup("1000", t(1)).len(), 2);
        assert_eq!(r.lookup("1000", t(1))[1].q, 500);
        assert_eq!(
            r.handle_register(t(2), &register("*", "", 2), "1000", peer())
                .response
                .status,
            400
        );
        let out = r.handle_register(t(3), &register("*", "Expires: 0\r\n", 3), "1000", peer());
        assert_eq!(out.response.status, 200);
        assert_eq!(out.changes.len(), 2);
        assert!(r.lookup("1000", t(4)).is_empty());
    }

    #[test]
    fn another_extensions_aor_is_forbidden() {
        let mut r = Registrar::new(RegistrarConfig::default());
        let out = r.handle_register(
            t(0),
            &register("<sip:1000@10.0.0.2>", "", 1),
            "1001",
            peer(),
        );
        assert_eq!(out.response.status, 403);
    }

    #[test]
    fn out_of_order_cseq_is_refused() {
        let mut r = Registrar::new(RegistrarConfig::default());
        r.handle_register(
            t(0),
            &register("<sip:1000@10.0.0.2>", "", 5),
            "1000",
            peer(),
        );
        let out = r.handle_register(
            t(1),
            &register("<sip:1000@10.0.0.2>", "", 4),
            "1000",
            peer(),
        );
        assert_eq!(out.response.status, 500);
    }

    #[test]
    fn contact_limit_replaces_the_binding_that_expires_first() {
        let mut r = Registrar::new(RegistrarConfig {
            max_contacts: 2,
            ..RegistrarConfig::default()
        });
        r.handle_register(
            t(0),
            &register("<sip:1000@10.0.0.1>", "", 1),
            "1000",
            peer(),
        );
        r.handle_register(
            t(10),
            &register("<sip:1000@10.0.0.2>", "", 2),
            "1000",
            peer(),
        );
        r.handle_register(
            t(20),
            &register("<sip:1000@10.0.0.3>", "", 3),
            "1000",
            peer(),
        );
        let contacts: Vec<&str> = r
            .lookup("1000", t(21))
            .iter()
            .map(|b| b.contact.as_str())
            .collect();
        assert_eq!(contacts.len(), 2);
        assert!(!contacts.contains(&"sip:1000@10.0.0.1"));
    }

    #[test]
    fn contact_params_outside_brackets_are_not_uri_params() {
        let mut r = Registrar::new(RegistrarConfig::default());
        r.handle_register(
            t(0),
            &register("sip:1000@10.0.0.2;unknownparam", "", 1),
            "1000",
            peer(),
        );
        assert_eq!(r.lookup("1000", t(1))[0].contact, "sip:1000@10.0.0.2");
        r.handle_register(
            t(0),
            &register("<sip:1000@10.0.0.3;unknownparam>", "", 2),
            "1000",
            peer(),
        );
        assert!(
            r.lookup("1000", t(1))
                .iter()
                .any(|b| b.contact == "sip:1000@10.0.0.3;unknownparam")
        );
    }

    #[test]
    fn expired_bindings_are_removed_and_restored_ones_survive() {
        let mut r = Registrar::new(RegistrarConfig::default());
        let out = r.handle_register(
            t(0),
            &register("<sip:1000@10.0.0.2>", "Expires: 60\r\n", 1),
            "1000",
            peer(),
        );
        let BindingChange::Upsert(b) = &out.changes[0] else {
            panic!("upsert")
        };
        let row = binding_row(b);
        assert_eq!(r.poll_timeout(), Some(t(60)));
        let removed = r.handle_timeout(t(61));
        assert_eq!(removed.len(), 1);
        assert_eq!(r.counts(), 0);

        let mut restored = Registrar::new(RegistrarConfig::default());
        restored.restore(vec![row.clone()], t(30));
        assert_eq!(restored.lookup("1000", t(31))[0].source, peer());
        let mut late = Registrar::new(RegistrarConfig::default());
        late.restore(vec![row], t(90));
        assert_eq!(late.counts(), 0, "expired rows are not restored");
    }
}
