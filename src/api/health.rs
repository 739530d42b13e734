//! `GET /healthz` and `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;

use super::AppState;
use crate::metrics::Gauges;

#[derive(Serialize)]
struct Health {
    /// "ok", or "degraded" when the database does not answer.
    status: &'static str,
    version: &'static str,
    uptime_secs: u64,
    database: DatabaseHealth,
    snapshot: SnapshotHealth,
    /// Bound addresses by listener name.
    listeners: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct DatabaseHealth {
    backend: &'static str,
    reachable: bool,
}

#[derive(Serialize)]
struct SnapshotHealth {
    version: u64,
    problems: usize,
}

/// 200 with the health document when the database answers, 503 with it when not.
pub(super) async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let reachable = state.store.ping().await;
    let snapshot = state.live.current();
    let mut listeners = serde_json::Map::new();
    for (name, addr) in &state.info.listeners {
        match listeners.get_mut(name) {
            Some(serde_json::Value::Array(list)) => list.push(addr.to_string().into()),
            Some(existing) => {
                let first = existing.take();
                *existing = serde_json::Value::Array(vec![first, addr.to_string().into()]);
            }
            None => {
                listeners.insert(name.clone(), addr.to_string().into());
            }
        }
    }
    let body = Health {
        status: if reachable { "ok" } else { "degraded" },
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.info.started.elapsed().as_secs(),
        database: DatabaseHealth {
            backend: state.store.backend().as_str(),
            reachable,
        },
        snapshot: SnapshotHealth {
            version: snapshot.version,
            problems: state.live.last_problems().len(),
        },
        listeners,
    };
    let status = if reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let gauges = Gauges {
        uptime_seconds: state.info.started.elapsed().as_secs_f64(),
        snapshot_version: state.live.current().version,
        snapshot_problems: state.live.last_problems().len(),
        database_up: state.store.ping().await,
        backend: state.store.backend().as_str(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&gauges),
    )
}
