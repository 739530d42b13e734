//! The call event bus: what happens to each call leg, with the legacy event codes and payload
//! of the FSGui Redis interface (spec §5.2, §5.3).
//!
//! The call engine publishes one [`CallEvent`] per happening on each leg — a new leg,
//! ringing, early media, answer, bridge, hold, DTMF, hang-up, destruction — from its single
//! task, so the events of one leg are in causal order (spec §5.4). Subscribers get every
//! event published after they subscribed through a bounded broadcast queue: publishing never
//! waits for a subscriber, and one that falls more than the queue behind loses the oldest
//! events and is told how many ([`tokio::sync::broadcast::error::RecvError::Lagged`]).
//!
//! [`CallEvent::legacy_json`] is the payload legacy consumers parse: exactly the manual's
//! eight keys (always present, empty when not applicable), plus the correlation keys of the
//! spec's proposal unless they are switched off.
//!
//! [`redis`] publishes the bus to Redis.
//!
//! What this module does not do: agent-state events, or keep history.

pub mod redis;

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::broadcast;

/// The legacy event codes, in their fixed order (spec §5.3). The variant names are spelled
/// correctly; [`EventCode::legacy_name`] gives the legacy spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventCode {
    CallIn = 1,
    CallOut = 2,
    Ring = 3,
    Alert = 4,
    Answer = 5,
    Hangup = 6,
    Dtmf = 7,
    PlayRing = 8,
    PlayStop = 9,
    Park = 10,
    Unpark = 11,
    Hold = 12,
    Unhold = 13,
    Bridged = 14,
    Destroy = 15,
    Talking = 16,
}

impl EventCode {
    pub const ALL: [EventCode; 16] = [
        EventCode::CallIn,
        EventCode::CallOut,
        EventCode::Ring,
        EventCode::Alert,
        EventCode::Answer,
        EventCode::Hangup,
        EventCode::Dtmf,
        EventCode::PlayRing,
        EventCode::PlayStop,
        EventCode::Park,
        EventCode::Unpark,
        EventCode::Hold,
        EventCode::Unhold,
        EventCode::Bridged,
        EventCode::Destroy,
        EventCode::Talking,
    ];

    /// The number legacy consumers compare `evt_name` with.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The legacy name, misspellings included (`EVNET_ALERT`, `EVENT_DESTORY`).
    pub fn legacy_name(self) -> &'static str {
        match self {
            EventCode::CallIn => "EVENT_CALLIN",
            EventCode::CallOut => "EVENT_CALLOUT",
            EventCode::Ring => "EVENT_RING",
            EventCode::Alert => "EVNET_ALERT",
            EventCode::Answer => "EVENT_ANSWER",
            EventCode::Hangup => "EVENT_HANGUP",
            EventCode::Dtmf => "EVENT_DTMF",
            EventCode::PlayRing => "EVENT_PLAYRING",
            EventCode::PlayStop => "EVENT_PLAYSTOP",
            EventCode::Park => "EVENT_PARK",
            EventCode::Unpark => "EVENT_UNPARK",
            EventCode::Hold => "EVENT_HOLD",
            EventCode::Unhold => "EVENT_UNHOLD",
            EventCode::Bridged => "EVENT_BRIDGED",
            EventCode::Destroy => "EVENT_DESTORY",
            EventCode::Talking => "EVENT_TALKING",
        }
    }
}

/// Which way a leg goes, seen from rswitch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegDirection {
    /// A leg that called in (a caller).
    Inbound,
    /// A leg rswitch called out on (a callee, a gateway, an originate).
    Outbound,
}

impl LegDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            LegDirection::Inbound => "inbound",
            LegDirection::Outbound => "outbound",
        }
    }
}

/// One event of one call leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    pub code: EventCode,
    /// The leg's UUID.
    pub uuid: String,
    /// The UUID of the leg it is (or will be) bridged with; empty when none.
    pub other_uuid: String,
    /// The calling number.
    pub callin_number: String,
    /// The number called.
    pub dest_number: String,
    /// Our SIP domain (the address phones register to).
    pub domain: String,
    /// The digit, for [`EventCode::Dtmf`]; else empty.
    pub dtmf: String,
    /// The gateway of an external leg; empty for extensions.
    pub gateway: String,
    /// The number first dialled (equal to `callin_number` for a plain call; the A number of
    /// an originate).
    pub originate_number: String,
    pub direction: LegDirection,
    /// The extension this leg belongs to, when it is one.
    pub extension: String,
    pub timestamp: DateTime<Utc>,
    /// The Q.850 name, for hang-up and destroy; else empty.
    pub hangup_cause: String,
}

impl CallEvent {
    /// The legacy payload (spec §5.2): `evt_name` as the number and the seven other keys of
    /// the manual; with `extras`, the correlation keys `uuid`, `other_uuid`, `extension`,
    /// `timestamp` (RFC 3339, milliseconds), `hangup_cause` and `evt_str`.
    pub fn legacy_json(&self, extras: bool) -> String {
        let mut object = serde_json::Map::new();
        object.insert("evt_name".into(), self.code.code().into());
        object.insert("callin_number".into(), self.callin_number.clone().into());
        object.insert("dest_number".into(), self.dest_number.clone().into());
        object.insert("domain".into(), self.domain.clone().into());
        object.insert("dtmf".into(), self.dtmf.clone().into());
        object.insert("gateway".into(), self.gateway.clone().into());
        object.insert(
            "originate_number".into(),
            self.originate_number.clone().into(),
        );
        object.insert("direction".into(), self.direction.as_str().into());
        if extras {
            object.insert("uuid".into(), self.uuid.clone().into());
            object.insert("other_uuid".into(), self.other_uuid.clone().into());
            object.insert("extension".into(), self.extension.clone().into());
            object.insert(
                "timestamp".into(),
                self.timestamp
                    .to_rfc3339_opts(SecondsFormat::Millis, true)
                    .into(),
            );
            object.insert("hangup_cause".into(), self.hangup_cause.clone().into());
            object.insert("evt_str".into(), self.code.legacy_name().into());
        }
        serde_json::Value::Object(object).to_string()
    }
}

/// The bus: cheap to clone, shared by the publisher and every subscriber.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<CallEvent>>,
}

impl EventBus {
    /// A bus whose subscribers may fall `queue` events behind before losing the oldest.
    pub fn new(queue: usize) -> EventBus {
        let (sender, _) = broadcast::channel(queue.max(1));
        EventBus { sender }
    }

    /// Publishes an event to the current subscribers (none: it is dropped).
    pub fn publish(&self, event: CallEvent) {
        let _ = self.sender.send(Arc::new(event));
    }

    /// Every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CallEvent>> {
        self.sender.subscribe()
    }
}

/// Writes every event to the log until the bus is gone (`events.log`).
pub async fn log_events(mut events: broadcast::Receiver<Arc<CallEvent>>) {
    loop {
        match events.recv().await {
            Ok(event) => tracing::info!(
                target: "rswitch::events",
                event = %event.legacy_json(true),
                "call event"
            ),
            Err(broadcast::error::RecvError::Lagged(lost)) => {
                tracing::warn!(target: "rswitch::events", lost, "the event log fell behind");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(code: EventCode) -> CallEvent {
        CallEvent {
            code,
            uuid: "u-1".into(),
            other_uuid: "u-2".into(),
            callin_number: "1002".into(),
            dest_number: "1000".into(),
            domain: "192.168.1.115".into(),
            dtmf: String::new(),
            gateway: String::new(),
            originate_number: "1002".into(),
            direction: LegDirection::Outbound,
            extension: "1000".into(),
            timestamp: DateTime::parse_from_rfc3339("2026-11-24T10:00:00.123Z")
                .unwrap()
                .with_timezone(&Utc),
            hangup_cause: String::new(),
        }
    }

    #[test]
    fn codes_are_the_legacy_contract() {
        let codes: Vec<u8> = EventCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes, (1..=16).collect::<Vec<u8>>());
        assert_eq!(EventCode::Alert.legacy_name(), "EVNET_ALERT");
        assert_eq!(EventCode::Destroy.legacy_name(), "EVENT_DESTORY");
        assert_eq!(EventCode::Talking.code(), 16);
    }

    #[test]
    fn legacy_payload_has_exactly_the_manual_keys() {
        let json = event(EventCode::Answer).legacy_json(false);
        // The manual's example, byte for byte apart from the key order it never specified.
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let expected: serde_json::Value = serde_json::from_str(
            r#"{"evt_name":5,"callin_number":"1002","dest_number":"1000","domain":"192.168.1.115","dtmf":"","gateway":"","originate_number":"1002","direction":"outbound"}"#,
        )
        .unwrap();
        assert_eq!(value, expected);
        let with_extras: serde_json::Value =
            serde_json::from_str(&event(EventCode::Destroy).legacy_json(true)).unwrap();
        assert_eq!(with_extras["evt_name"], 15);
        assert_eq!(with_extras["evt_str"], "EVENT_DESTORY");
        assert_eq!(with_extras["timestamp"], "2026-11-24T10:00:00.123Z");
        assert_eq!(with_extras["uuid"], "u-1");
        assert_eq!(with_extras.as_object().unwrap().len(), 14);
    }

    #[tokio::test]
    async fn subscribers_get_events_in_order_and_a_slow_one_is_told_what_it_lost() {
        let bus = EventBus::new(4);
        let mut fast = bus.subscribe();
        let mut slow = bus.subscribe();
        for code in [EventCode::CallIn, EventCode::Ring, EventCode::Answer] {
            bus.publish(event(code));
            assert_eq!(fast.recv().await.unwrap().code, code);
        }
        for _ in 0..3 {
            bus.publish(event(EventCode::Dtmf));
        }
        // The slow one is 6 behind with room for 4: it lost the 2 oldest.
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(2))
        ));
        assert_eq!(slow.recv().await.unwrap().code, EventCode::Answer);
    }
}
