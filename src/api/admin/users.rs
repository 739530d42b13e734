//! Administrators and their passwords.
//!
//! - `GET /api/v1/admin_users`: every administrator (never a password hash).
//! - `POST /api/v1/admin_users` `{"username","password"}`: a new administrator, who must
//!   change the password at first login.
//! - `DELETE /api/v1/admin_users/{id}`: not oneself, not the last one.
//! - `PUT /api/v1/admin_users/{id}/password` `{"password"}`: another administrator's new
//!   password (they must change it at their next login); for one's own password the current
//!   one is needed, so that goes through
//! - `POST /api/v1/password` `{"current_password","new_password"}`.
//!
//! A password change or a removal revokes the administrator's tokens at once (see
//! [`Auth`](crate::api::auth::Auth)). Passwords have [`MIN_PASSWORD`] to [`MAX_PASSWORD`]
//! characters; hashing runs off the async threads. Every change goes to the audit log.
//!
//! What this module does not do: log in (`api::auth`).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{JsonObject, RowId, store_error};
use crate::api::AppState;
use crate::api::auth::Caller;
use crate::api::error::{ApiError, ok};
use crate::secret::Secret;
use crate::store::value::Value;
use crate::store::{AdminUser, AuditEntry, ListQuery};

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// The longest password accepted (argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD: usize = 256;

/// An administrator as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminUserView {
    pub id: i64,
    pub username: String,
    pub must_change_password: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<&AdminUser> for AdminUserView {
    fn from(user: &AdminUser) -> Self {
        AdminUserView {
            id: user.id,
            username: user.username.clone(),
            must_change_password: user.must_change_password,
            created_at: user.created_at,
            updated_at: user.updated_at,
            last_login_at: user.last_login_at,
        }
    }
}

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin_users", get(list).post(create))
        .route("/api/v1/admin_users/{id}", delete(remove))
        .route("/api/v1/admin_users/{id}/password", put(reset_password))
        .route("/api/v1/password", post(change_own_password))
}

fn text_field(body: &JsonObject, name: &str) -> Result<String, ApiError> {
    match body.0.get(name) {
        Some(serde_json::Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(ApiError::bad_request(format!(
            "field {name} must be a string"
        ))),
        None => Err(ApiError::bad_request(format!("field {name} is missing"))),
    }
}

fn acceptable_password(field: &str, password: &str) -> Result<(), ApiError> {
    let length = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&length) {
        return Err(ApiError::bad_request(format!(
            "field {field} must have {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )));
    }
    if password.contains('\0') {
        return Err(ApiError::bad_request(format!(
            "field {field} holds a NUL character"
        )));
    }
    Ok(())
}

async fn hash(password: String) -> Result<Secret, ApiError> {
    tokio::task::spawn_blocking(move || crate::secret::hash_password(&password))
        .await
        .map_err(|e| ApiError::internal("hashing the password", e))?
        .map(Secret::new)
        .map_err(|e| ApiError::internal("hashing the password", e))
}

fn audit(actor: &str, action: &str, user: &AdminUser, now: DateTime<Utc>) -> AuditEntry {
    let detail = serde_json::json!({ "username": user.username }).to_string();
    super::audit_entry(actor, action, "admin_user", Some(user.id), detail, now)
}

/// The `{id}` of `/api/v1/admin_users/{id}/password` (400 when it is not a number).
struct PasswordOf(i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PasswordOf {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let id = parts.uri.path().rsplit('/').nth(1).unwrap_or_default();
        id.parse::<i64>()
            .map(PasswordOf)
            .map_err(|_| ApiError::bad_request(format!("the id {id:?} is not a number")))
    }
}

async fn user(state: &AppState, id: i64) -> Result<AdminUser, ApiError> {
    state
        .store
        .get::<AdminUser>(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("admin_user {id} does not exist")))
}

async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let users = state.store.all::<AdminUser>().await.map_err(store_error)?;
    let views: Vec<AdminUserView> = users.iter().map(AdminUserView::from).collect();
    Ok(ok(views).into_response())
}

async fn create(
    State(state): State<AppState>,
    axum::Extension(Caller(actor)): axum::Extension<Caller>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let username = text_field(&body, "username")?.trim().to_owned();
    if username.is_empty()
        || username.len() > 64
        || !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(ApiError::bad_request(
            "field username must have 1 to 64 letters, digits or . _ - @",
        ));
    }
    let password = text_field(&body, "password")?;
    acceptable_password("password", &password)?;
    let now = crate::clock::now_utc();
    let mut user = AdminUser {
        id: 0,
        username,
        password_hash: hash(password).await?,
        must_change_password: true,
        created_at: now,
        updated_at: now,
        last_login_at: None,
    };
    let mut tx = state.store.begin().await.map_err(store_error)?;
    user.id = tx.insert(&user).await.map_err(store_error)?;
    tx.insert(&audit(&actor, "create", &user, now))
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    state.auth.password_set(&user);
    tracing::info!(actor = %actor, user = %user.username, "administrator created");
    Ok((StatusCode::CREATED, ok(AdminUserView::from(&user))).into_response())
}

async fn remove(
    State(state): State<AppState>,
    axum::Extension(Caller(actor)): axum::Extension<Caller>,
    RowId(id): RowId,
) -> Result<Response, ApiError> {
    let user = user(&state, id).await?;
    if user.username == actor {
        return Err(ApiError::conflict("an administrator can not remove itself"));
    }
    let now = crate::clock::now_utc();
    let mut tx = state.store.begin().await.map_err(store_error)?;
    tx.delete::<AdminUser>(id).await.map_err(store_error)?;
    // Counted after the delete, in its transaction: two administrators removing each other
    // at once can not leave none.
    let left = tx
        .count::<AdminUser>(&ListQuery::default())
        .await
        .map_err(store_error)?;
    if left == 0 {
        return Err(ApiError::conflict(
            "the last administrator can not be removed",
        ));
    }
    tx.insert(&audit(&actor, "delete", &user, now))
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    state.auth.forget(&user.username, now);
    tracing::info!(actor = %actor, user = %user.username, "administrator removed");
    Ok(ok(AdminUserView::from(&user)).into_response())
}

/// Stores a new password for `user` and revokes its older tokens.
async fn set_password(
    state: &AppState,
    actor: &str,
    mut user: AdminUser,
    password: String,
    must_change: bool,
) -> Result<AdminUser, ApiError> {
    let now = crate::clock::now_utc();
    user.password_hash = hash(password).await?;
    user.must_change_password = must_change;
    // `updated_at` is the password's version: older tokens no longer count.
    user.updated_at = now;
    let mut tx = state.store.begin().await.map_err(store_error)?;
    tx.update(&user).await.map_err(store_error)?;
    tx.insert(&audit(actor, "password", &user, now))
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    state.auth.password_set(&user);
    tracing::info!(actor = %actor, user = %user.username, "password changed");
    Ok(user)
}

async fn reset_password(
    State(state): State<AppState>,
    axum::Extension(Caller(actor)): axum::Extension<Caller>,
    PasswordOf(id): PasswordOf,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let password = text_field(&body, "password")?;
    acceptable_password("password", &password)?;
    let user = user(&state, id).await?;
    if user.username == actor {
        return Err(ApiError::conflict(
            "change your own password with POST /api/v1/password (it needs the current one)",
        ));
    }
    let user = set_password(&state, &actor, user, password, true).await?;
    Ok(ok(AdminUserView::from(&user)).into_response())
}

async fn change_own_password(
    State(state): State<AppState>,
    axum::Extension(Caller(actor)): axum::Extension<Caller>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let current = text_field(&body, "current_password")?;
    let new = text_field(&body, "new_password")?;
    acceptable_password("new_password", &new)?;
    if current == new {
        return Err(ApiError::bad_request(
            "field new_password is the same as the current password",
        ));
    }
    let query = ListQuery::default().filter("username", Value::Text(Some(actor.clone())));
    let user = state
        .store
        .list::<AdminUser>(&query)
        .await
        .map_err(store_error)?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::unauthorized("the administrator no longer exists"))?;
    let stored = user.password_hash.expose().to_owned();
    let verified =
        tokio::task::spawn_blocking(move || crate::secret::verify_password(&current, &stored))
            .await
            .unwrap_or(false);
    if !verified {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "field current_password is not the current password",
        ));
    }
    let user = set_password(&state, &actor, user, new, false).await?;
    Ok(ok(AdminUserView::from(&user)).into_response())
}
