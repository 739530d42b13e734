//! `GET /api/v1/events`: the call events and agent state changes as a WebSocket stream.
//!
//! Each call event is one text message, the same JSON object Redis subscribers get
//! ([`CallEvent::legacy_json`] with the correlation keys). An agent state change is
//! `{"type":"agent","extension","seat_state","seat_status","call_state","timestamp"}`. A
//! client too slow to keep up loses the oldest events and is told
//! `{"type":"lost","events":N}`. The token comes in the `Authorization` header or, for
//! browsers (which can not set headers on a WebSocket), as `?token=`.
//!
//! What this module does not do: replay history (a client sees what happens after it
//! connects), or take commands over the socket.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use chrono::SecondsFormat;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::events::CallEvent;
use crate::pbx::agents::AgentStateChanged;

pub(super) async fn events(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let calls = state.events.subscribe();
    let agents = state.agents.subscribe();
    upgrade.on_upgrade(move |socket| stream(socket, calls, agents))
}

async fn stream(
    mut socket: WebSocket,
    mut calls: tokio::sync::broadcast::Receiver<Arc<CallEvent>>,
    mut agents: tokio::sync::broadcast::Receiver<AgentStateChanged>,
) {
    loop {
        let text = tokio::select! {
            event = calls.recv() => match event {
                Ok(event) => event.legacy_json(true),
                Err(RecvError::Lagged(lost)) => lost_message(lost),
                Err(RecvError::Closed) => return,
            },
            change = agents.recv() => match change {
                Ok(change) => agent_message(&change),
                Err(RecvError::Lagged(lost)) => lost_message(lost),
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                // Pings are answered by the WebSocket layer; anything else is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        };
        if socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
    }
}

fn agent_message(change: &AgentStateChanged) -> String {
    serde_json::json!({
        "type": "agent",
        "extension": change.extension,
        "seat_state": change.state.seat_state.as_str(),
        "seat_status": change.state.seat_status.as_str(),
        "call_state": change.state.call_state.as_str(),
        "timestamp": change.at.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
    .to_string()
}

fn lost_message(lost: u64) -> String {
    serde_json::json!({"type": "lost", "events": lost}).to_string()
}
