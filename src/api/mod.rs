//! HTTP: the router and the endpoints every deployment has.
//!
//! [`app`] builds the whole router from an [`AppState`], so tests can drive it without a
//! socket. Today it serves `GET /healthz` (status, version, database, snapshot, bound
//! addresses) and `GET /metrics` (Prometheus text). The FSGui control API, the admin API and
//! the event stream are added by their own modules.
//!
//! What this module does not do: bind sockets or handle signals (`server.rs` does).

mod health;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;

use crate::metrics::Metrics;
use crate::pbx::live::LiveConfig;
use crate::store::Store;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub live: Arc<LiveConfig>,
    pub metrics: Arc<Metrics>,
    pub info: Arc<ServerInfo>,
}

/// Facts fixed when the server started.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub started: Instant,
    /// Addresses actually bound, by listener name (`http`, `http_extra`, …).
    pub listeners: Vec<(String, SocketAddr)>,
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    state.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}
