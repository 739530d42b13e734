//! The runtime state of each extension as an agent (spec §2.26): seat state (logged in or
//! not), seat status (idle or busy for queue calls) and call state (ringing, talking, in an
//! IVR, ready).
//!
//! The dialplan actions `agent_login`, `agent_logout`, `agent_idle`, `agent_busy` and
//! `agent_ready` set them for the calling extension; the call engine moves the call state
//! with the calls it really has (ringing → `ring`, answered → `talking`, ended → `ready`);
//! the API reads and sets them. Every change is logged (target `rswitch::agents`).
//!
//! Subscribers ([`AgentStates::subscribe`], the API's event stream) get every change.
//!
//! What this module does not do: persist the states (they start over at `down`, `idle`,
//! `ready` with the process, as FSGui's did with FreeSWITCH), queue distribution, or check
//! that the extension exists (the callers do).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Logged in (`up`) or not (`down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeatState {
    Up,
    #[default]
    Down,
}

/// Available for queue calls (`idle`) or not (`busy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeatStatus {
    #[default]
    Idle,
    Busy,
}

/// What the extension's phone is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallState {
    Ring,
    Talking,
    Ivr,
    #[default]
    Ready,
}

impl SeatState {
    pub fn as_str(self) -> &'static str {
        match self {
            SeatState::Up => "up",
            SeatState::Down => "down",
        }
    }
}

impl SeatStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SeatStatus::Idle => "idle",
            SeatStatus::Busy => "busy",
        }
    }
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Ring => "ring",
            CallState::Talking => "talking",
            CallState::Ivr => "ivr",
            CallState::Ready => "ready",
        }
    }
}

/// The three dimensions of one extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentState {
    pub seat_state: SeatState,
    pub seat_status: SeatStatus,
    pub call_state: CallState,
}

/// One change to an extension's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentChange {
    SeatState(SeatState),
    SeatStatus(SeatStatus),
    CallState(CallState),
}

/// A change of one extension's state, as subscribers of [`AgentStates::subscribe`] get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStateChanged {
    pub extension: String,
    pub state: AgentState,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The states of every extension, shared by the call engine and the API.
#[derive(Debug, Clone)]
pub struct AgentStates {
    states: Arc<Mutex<HashMap<String, AgentState>>>,
    changes: tokio::sync::broadcast::Sender<AgentStateChanged>,
}

/// Changes a slow subscriber may fall behind before it loses the oldest.
const CHANGE_QUEUE: usize = 4096;

impl Default for AgentStates {
    fn default() -> Self {
        AgentStates {
            states: Arc::default(),
            changes: tokio::sync::broadcast::channel(CHANGE_QUEUE).0,
        }
    }
}

impl AgentStates {
    /// The state of `extension` (the defaults when nothing changed it yet).
    pub fn get(&self, extension: &str) -> AgentState {
        self.states
            .lock()
            .expect("agent states")
            .get(extension)
            .copied()
            .unwrap_or_default()
    }

    /// The states of `extensions`, in that order, read under one lock.
    pub fn get_many<'a>(&self, extensions: impl IntoIterator<Item = &'a str>) -> Vec<AgentState> {
        let states = self.states.lock().expect("agent states");
        extensions
            .into_iter()
            .map(|extension| states.get(extension).copied().unwrap_or_default())
            .collect()
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<AgentStateChanged> {
        self.changes.subscribe()
    }

    /// Applies `change` to `extension`; returns the new state. A change to what it already
    /// is logs nothing.
    pub fn apply(&self, extension: &str, change: AgentChange) -> AgentState {
        let mut states = self.states.lock().expect("agent states");
        let state = states.entry(extension.to_owned()).or_default();
        let before = *state;
        match change {
            AgentChange::SeatState(value) => state.seat_state = value,
            AgentChange::SeatStatus(value) => state.seat_status = value,
            AgentChange::CallState(value) => state.call_state = value,
        }
        let after = *state;
        drop(states);
        if after != before {
            let _ = self.changes.send(AgentStateChanged {
                extension: extension.to_owned(),
                state: after,
                at: crate::clock::now_utc(),
            });
            tracing::info!(
                target: "rswitch::agents",
                extension,
                seat_state = after.seat_state.as_str(),
                seat_status = after.seat_status.as_str(),
                call_state = after.call_state.as_str(),
                "agent state"
            );
        }
        after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_each_dimension_on_its_own() {
        let states = AgentStates::default();
        assert_eq!(
            states.get("1000"),
            AgentState {
                seat_state: SeatState::Down,
                seat_status: SeatStatus::Idle,
                call_state: CallState::Ready,
            }
        );
        states.apply("1000", AgentChange::SeatState(SeatState::Up));
        states.apply("1000", AgentChange::SeatStatus(SeatStatus::Busy));
        let after = states.apply("1000", AgentChange::CallState(CallState::Talking));
        assert_eq!(
            (
                after.seat_state.as_str(),
                after.seat_status.as_str(),
                after.call_state.as_str()
            ),
            ("up", "busy", "talking")
        );
        assert_eq!(states.get("1001"), AgentState::default());
        // Clones share the states (the API's handle and the engine's).
        let api = states.clone();
        api.apply("1000", AgentChange::SeatState(SeatState::Down));
        assert_eq!(states.get("1000").seat_state, SeatState::Down);
    }
}
