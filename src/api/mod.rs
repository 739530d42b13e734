//! HTTP: the router and the endpoints every deployment has.
//!
//! [`app`] builds the whole router from an [`AppState`], so tests can drive it without a
//! socket. Open to all: `GET /healthz` (status, version, database, snapshot, bound
//! addresses), `GET /metrics` (Prometheus text) and `POST /api/login`. Every other `/api`
//! path wants a token ([`auth`]): the FSGui control and seat API ([`legacy`]), the admin API
//! ([`admin`]) and the event stream `GET /api/v1/events` (WebSocket). The OpenAPI document
//! of all of it is open at `GET /api/v1/openapi.json` ([`openapi`]). Bodies over
//! `http.max_body_bytes` get 413; unknown paths a 404 in the API's envelope.
//!
//! What this module does not do: bind sockets or handle signals (`server.rs` does).

pub mod admin;
pub mod auth;
pub mod body;
pub mod error;
mod events_ws;
mod health;
pub mod legacy;
pub mod openapi;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::metrics::Metrics;
use crate::pbx::agents::AgentStates;
use crate::pbx::control::{ControlHandle, UuidReservations};
use crate::pbx::live::LiveConfig;
use crate::store::Store;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub live: Arc<LiveConfig>,
    pub metrics: Arc<Metrics>,
    pub info: Arc<ServerInfo>,
    /// The way to the calls.
    pub control: ControlHandle,
    /// The agents' states (shared with the call engine).
    pub agents: AgentStates,
    pub auth: Arc<auth::Auth>,
    /// UUIDs from `get_uuid` waiting for their `originate`.
    pub uuids: Arc<UuidReservations>,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// The call events, for the WebSocket stream.
    pub events: crate::events::EventBus,
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
    let protected = legacy::router()
        .merge(admin::router())
        .route("/api/v1/events", get(events_ws::events))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/api/login", post(auth::login))
        .route("/api/v1/openapi.json", get(openapi::document))
        .merge(protected)
        .fallback(unknown_path)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn unknown_path(uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::not_found(format!("no such path: {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    state.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}
