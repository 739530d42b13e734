//! What runs now, and Apply.
//!
//! - `POST /api/v1/apply` (spec §3.3): rebuilds the running configuration from the
//!   database. 200 with `{"applied":true,"version":N,"problems":[]}` when the new snapshot
//!   is in force; 422 with the problems (entity, id, field, message) when it was refused and
//!   version `kept_version` stays in force. `GET /api/v1/apply`: the version in force and the
//!   problems of the last build.
//! - `GET /api/v1/registrations`: every live registration binding (from the registrar, not
//!   the database, which trails it by a moment).
//! - `GET /api/v1/calls`, `GET /api/v1/calls/{uuid}` (either leg's UUID): calls in progress
//!   with their legs, codecs and state.
//! - `GET /api/v1/agents`: every extension's seat state, seat status and call state.
//!
//! What this module does not do: change calls (the legacy control API does).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::store_error;
use crate::api::AppState;
use crate::api::auth::Caller;
use crate::api::error::{ApiError, ok};
use crate::pbx::control::{CallView, ControlReply, ControlRequest};
use crate::pbx::live::ApplyOutcome;
use crate::pbx::snapshot::Problem;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/apply", get(applied).post(apply))
        .route("/api/v1/registrations", get(registrations))
        .route("/api/v1/calls", get(calls))
        .route("/api/v1/calls/{uuid}", get(call))
        .route("/api/v1/agents", get(agents))
}

/// The outcome of Apply, and the state `GET /api/v1/apply` reports.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApplyView {
    /// Whether a new snapshot went into force (for GET: whether the last build had no
    /// problems).
    pub applied: bool,
    /// The version in force.
    pub version: u64,
    #[schema(value_type = Vec<ProblemView>)]
    pub problems: Vec<Problem>,
}

/// One thing wrong with a configuration row.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemView {
    pub entity: String,
    pub id: i64,
    pub field: String,
    pub message: String,
}

/// One extension's agent state (spec §2.26).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    pub extension: String,
    /// `up` (logged in) or `down`.
    pub seat_state: &'static str,
    /// `idle` or `busy`.
    pub seat_status: &'static str,
    /// `ring`, `talking`, `ivr` or `ready`.
    pub call_state: &'static str,
}

async fn applied(State(state): State<AppState>) -> Response {
    let problems = state.live.last_problems();
    ok(ApplyView {
        applied: problems.is_empty(),
        version: state.live.current().version,
        problems: problems.as_ref().clone(),
    })
    .into_response()
}

async fn apply(
    State(state): State<AppState>,
    axum::Extension(Caller(actor)): axum::Extension<Caller>,
) -> Result<Response, ApiError> {
    let outcome = state.live.apply(&state.store).await.map_err(store_error)?;
    let (view, detail) = match outcome {
        ApplyOutcome::Applied { version } => (
            ApplyView {
                applied: true,
                version,
                problems: Vec::new(),
            },
            format!("{{\"version\":{version}}}"),
        ),
        ApplyOutcome::Refused {
            kept_version,
            problems,
        } => (
            ApplyView {
                applied: false,
                version: kept_version,
                problems,
            },
            format!("{{\"refused\":true,\"kept_version\":{kept_version}}}"),
        ),
    };
    let now = crate::clock::now_utc();
    let entry = super::audit_entry(&actor, "apply", "configuration", None, detail, now);
    if let Err(error) = state.store.insert(&entry).await {
        tracing::warn!(%error, "Apply could not be written to the audit log");
    }
    if view.applied {
        tracing::info!(actor = %actor, version = view.version, "applied");
        return Ok(ok(view).into_response());
    }
    let message = format!(
        "the configuration has {} problem(s); version {} stays in force",
        view.problems.len(),
        view.version
    );
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(serde_json::json!({ "code": 422, "message": message, "data": view })),
    )
        .into_response())
}

async fn registrations(State(state): State<AppState>) -> Result<Response, ApiError> {
    match state.control.request(ControlRequest::Registrations).await? {
        ControlReply::Registrations(rows) => Ok(ok(rows).into_response()),
        _ => Err(ApiError::internal("registrations", "unexpected reply")),
    }
}

async fn all_calls(state: &AppState) -> Result<Vec<CallView>, ApiError> {
    match state.control.request(ControlRequest::Calls).await? {
        ControlReply::Calls(calls) => Ok(calls),
        _ => Err(ApiError::internal("calls", "unexpected reply")),
    }
}

async fn calls(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(ok(all_calls(&state).await?).into_response())
}

async fn call(State(state): State<AppState>, uri: axum::http::Uri) -> Result<Response, ApiError> {
    let uuid = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
    match state.control.request(ControlRequest::Call { uuid }).await? {
        ControlReply::Call(call) => Ok(ok(*call).into_response()),
        _ => Err(ApiError::internal("call", "unexpected reply")),
    }
}

async fn agents(State(state): State<AppState>) -> Response {
    let snapshot = state.live.current();
    let mut extensions: Vec<&str> = snapshot.extensions.keys().map(String::as_str).collect();
    extensions.sort_unstable();
    let states = state.agents.get_many(extensions.iter().copied());
    let views: Vec<AgentView> = extensions
        .into_iter()
        .zip(states)
        .map(|(extension, agent)| AgentView {
            extension: extension.to_owned(),
            seat_state: agent.seat_state.as_str(),
            seat_status: agent.seat_status.as_str(),
            call_state: agent.call_state.as_str(),
        })
        .collect();
    ok(views).into_response()
}
