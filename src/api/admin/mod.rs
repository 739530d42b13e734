//! The admin API under `/api/v1`: every entity of the data model over HTTP, for the web UI
//! and for scripts.
//!
//! Each table is a [`Resource`] with one path (`/api/v1/extensions`, …). The handlers are
//! written once, generic over the resource:
//!
//! - `GET /api/v1/{resource}`: a page of rows (`page`, `per_page` ≤ 1000, `sort=column` or
//!   `sort=-column`, and `column=value` equality filters on any non-secret column);
//!   `data` is `{"items":[…],"total":N,"page":P,"per_page":S}`.
//! - `GET /api/v1/{resource}/{id}`: one row.
//! - `POST /api/v1/{resource}`: create (201); fields left out take the database's defaults.
//! - `PUT /api/v1/{resource}/{id}`: replace (fields left out take the defaults again);
//!   `PATCH`: change only the fields sent.
//! - `DELETE /api/v1/{resource}/{id}`.
//!
//! Checks before the database is touched: the body's types (400 naming the field), text
//! without NUL and at most [`MAX_TEXT`] bytes, every reference to another row (400 naming the
//! field and the missing row), each resource's own rules ([`Resource::validate`]: regexes
//! compile, numbers are dialable). Then the database's own rules: a number already in the
//! numbering plan or a duplicate unique value is 409, a row still referenced by others can
//! not be deleted (409). Timestamps (`created_at`, `updated_at`) are the server's. Write-only
//! secrets (a gateway's password) read back empty and keep their value when a change leaves
//! them out or empty. Every change is written to the audit log in the same transaction, with
//! secrets left out.
//!
//! Changes reach calls only after `POST /api/v1/apply` (spec §3.3), as in FSGui.
//!
//! What this module does not do: the CDR search ([`cdr`]), administrators and passwords
//! ([`users`]), the runtime views and Apply ([`runtime`]), the OpenAPI document (`openapi`).

pub mod cdr;
pub mod runtime;
pub mod users;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ok};
use crate::store::value::{ColumnKind, Value};
use crate::store::*;

/// The longest text a field may hold.
pub const MAX_TEXT: usize = 4096;
/// The most rows one page may hold.
pub const MAX_PER_PAGE: i64 = 1000;
/// The most parameters a query string may have.
pub const MAX_QUERY_PAIRS: usize = 32;
/// Rows per page when the request does not say.
pub const DEFAULT_PER_PAGE: i64 = 50;

/// A table the admin API manages.
pub trait Resource:
    Entity + Serialize + DeserializeOwned + utoipa::ToSchema + Clone + Send + Sync
{
    /// The path segment under `/api/v1`.
    const PATH: &'static str;
    /// Columns that reference another table's `id`: (column, table).
    const REFERENCES: &'static [(&'static str, &'static str)] = &[];
    /// Secret columns that are never shown.
    const WRITE_ONLY: &'static [&'static str] = &[];
    /// Whether rows can be created, changed and deleted (else only read).
    const WRITABLE: bool = true;

    /// Rules of this resource beyond types and references.
    ///
    /// # Errors
    /// 400 naming the field.
    fn validate(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// One resource as the router and the OpenAPI document see it.
pub struct ResourceInfo {
    pub path: &'static str,
    pub table: &'static str,
    pub schema_name: String,
    pub columns: &'static [&'static str],
    pub kinds: &'static [ColumnKind],
    pub writable: bool,
    pub schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    /// Schemas the resource's schema refers to.
    pub dependencies: Vec<(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    )>,
}

fn info<R: Resource>() -> ResourceInfo {
    let mut dependencies = Vec::new();
    <R as utoipa::ToSchema>::schemas(&mut dependencies);
    ResourceInfo {
        path: R::PATH,
        table: R::TABLE,
        schema_name: <R as utoipa::ToSchema>::name().into_owned(),
        columns: R::COLUMNS,
        kinds: R::KINDS,
        writable: R::WRITABLE,
        schema: <R as utoipa::PartialSchema>::schema(),
        dependencies,
    }
}

macro_rules! resources {
    ($($ty:ty),* $(,)?) => {
        /// Every resource, for the OpenAPI document.
        pub fn resources() -> Vec<ResourceInfo> {
            vec![$(info::<$ty>()),*]
        }

        fn resource_routes(router: Router<AppState>) -> Router<AppState> {
            router $(.merge(routes::<$ty>()))*
        }
    };
}

resources!(
    ExtensionGroup,
    Extension,
    BaseConfigEntry,
    RingTone,
    Gateway,
    GatewayGroup,
    GatewayGroupMember,
    Region,
    Route,
    RouteDetail,
    RouteDetailRegion,
    Ivr,
    IvrDetail,
    IvrDetailRegion,
    AgentQueue,
    AgentQueueMember,
    InboundQueue,
    InboundQueueLink,
    Conference,
    ConferenceMember,
    BlacklistEntry,
    VoicemailMessage,
    Recording,
    AuditEntry,
);

/// The routes of the admin API (behind the token check).
pub fn router() -> Router<AppState> {
    resource_routes(Router::new())
        .merge(cdr::router())
        .merge(users::router())
        .merge(runtime::router())
}

fn routes<R: Resource>() -> Router<AppState> {
    let collection = format!("/api/v1/{}", R::PATH);
    let item = format!("/api/v1/{}/{{id}}", R::PATH);
    if R::WRITABLE {
        Router::new()
            .route(&collection, get(list::<R>).post(create::<R>))
            .route(
                &item,
                get(get_one::<R>)
                    .put(replace::<R>)
                    .patch(change::<R>)
                    .delete(remove::<R>),
            )
    } else {
        Router::new()
            .route(&collection, get(list::<R>))
            .route(&item, get(get_one::<R>))
    }
}

// ---------------------------------------------------------------------------------------
// The resources' own rules.

fn digits_or_dial_chars(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > crate::pbx::dialplan::MAX_DIAL_STRING {
        return Err(ApiError::bad_request(format!(
            "field {field} must hold 1 to 64 characters"
        )));
    }
    if !crate::pbx::dialplan::is_dial_string(value) {
        return Err(ApiError::bad_request(format!(
            "field {field} may hold only letters, digits and * # + . _ -"
        )));
    }
    Ok(())
}

/// A number of the numbering plan: 1 to 32 digits (the database allows nothing else).
fn plan_number(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > 32 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "field {field} must be 1 to 32 digits"
        )));
    }
    Ok(())
}

fn not_empty(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::bad_request(format!("field {field} is empty")));
    }
    Ok(())
}

fn regex_compiles(field: &str, pattern: &str) -> Result<(), ApiError> {
    fancy_regex::Regex::new(pattern)
        .map(|_| ())
        .map_err(|e| ApiError::bad_request(format!("field {field}: `{pattern}` is no regex: {e}")))
}

impl Resource for ExtensionGroup {
    const PATH: &'static str = "extension_groups";
    fn validate(&self) -> Result<(), ApiError> {
        not_empty("name", &self.name)
    }
}

impl Resource for Extension {
    const PATH: &'static str = "extensions";
    const REFERENCES: &'static [(&'static str, &'static str)] = &[("group_id", "extension_group")];
    fn validate(&self) -> Result<(), ApiError> {
        plan_number("number", &self.number)?;
        not_empty("password", self.password.expose())
    }
}

impl Resource for BaseConfigEntry {
    const PATH: &'static str = "base_config";
    fn validate(&self) -> Result<(), ApiError> {
        not_empty("key", &self.key)
    }
}

impl Resource for RingTone {
    const PATH: &'static str = "ring_tones";
    fn validate(&self) -> Result<(), ApiError> {
        not_empty("name", &self.name)?;
        if self.file_path.split(['/', '\\']).any(|part| part == "..") {
            return Err(ApiError::bad_request(
                "field file_path may not leave the ring directory (..)",
            ));
        }
        Ok(())
    }
}

impl Resource for Gateway {
    const PATH: &'static str = "gateways";
    const WRITE_ONLY: &'static [&'static str] = &["password"];
    fn validate(&self) -> Result<(), ApiError> {
        not_empty("name", &self.name)?;
        not_empty("url", &self.url)?;
        not_empty("realm", &self.realm)
    }
}

impl Resource for GatewayGroup {
    const PATH: &'static str = "gateway_groups";
    fn validate(&self) -> Result<(), ApiError> {
        not_empty("name", &self.name)
    }
}

impl Resource for GatewayGroupMember {
    const PATH: &'static str = "gateway_group_members";
    const REFERENCES: &'static [(&'static str, &'static str)] =
        &[("group_id", "gateway_group"), ("gateway_id", "gateway")];
}

impl Resource for Region {
    const PATH: &'static str = "regions";
    const REFERENCES: &'static [(&'static str, &'static str)] = &[("parent_id", "region")];
}

impl Resource for Route {
    const PATH: &'static str = "routes";
    fn validate(&self) -> Result<(), ApiError> {
        regex_compiles("pattern", &self.pattern)
    }
}

const DETAIL_REFERENCES: &[(&str, &str)] = &[
    ("ring_id", "ring_tone"),
    ("gateway_group_id", "gateway_group"),
    ("gateway_id", "gateway"),
];

impl Resource for RouteDetail {
    const PATH: &'static str = "route_details";
    const REFERENCES: &'static [(&'static str, &'static str)] = &[
        ("route_id", "route"),
        DETAIL_REFERENCES[0],
        DETAIL_REFERENCES[1],
        DETAIL_REFERENCES[2],
    ];
}

impl Resource for RouteDetailRegion {
    const PATH: &'static str = "route_detail_regions";
    const REFERENCES: &'static [(&'static str, &'static str)] =
        &[("detail_id", "route_detail"), ("region_id", "region")];
}

impl Resource for Ivr {
    const PATH: &'static str = "ivrs";
    fn validate(&self) -> Result<(), ApiError> {
        plan_number("number", &self.number)
    }
}

impl Resource for IvrDetail {
    const PATH: &'static str = "ivr_details";
    const REFERENCES: &'static [(&'static str, &'static str)] = &[
        ("ivr_id", "ivr"),
        DETAIL_REFERENCES[0],
        DETAIL_REFERENCES[1],
        DETAIL_REFERENCES[2],
    ];
}

impl Resource for IvrDetailRegion {
    const PATH: &'static str = "ivr_detail_regions";
    const REFERENCES: &'static [(&'static str, &'static str)] =
        &[("detail_id", "ivr_detail"), ("region_id", "region")];
}

impl Resource for AgentQueue {
    const PATH: &'static str = "agent_queues";
    fn validate(&self) -> Result<(), ApiError> {
        plan_number("number", &self.number)
    }
}

impl Resource for AgentQueueMember {
    const PATH: &'static str = "agent_queue_members";
    const REFERENCES: &'static [(&'static str, &'static str)] =
        &[("queue_id", "agent_queue"), ("gateway_id", "gateway")];
    fn validate(&self) -> Result<(), ApiError> {
        digits_or_dial_chars("number", &self.number)
    }
}

impl Resource for InboundQueue {
    const PATH: &'static str = "inbound_queues";
    const REFERENCES: &'static [(&'static str, &'static str)] = &[
        ("prompt_ring_id", "ring_tone"),
        ("moh_ring_id", "ring_tone"),
    ];
    fn validate(&self) -> Result<(), ApiError> {
        plan_number("number", &self.number)
    }
}

impl Resource for InboundQueueLink {
    const PATH: &'static str = "inbound_queue_links";
    const REFERENCES: &'static [(&'static str, &'static str)] = &[
        ("inbound_queue_id", "inbound_queue"),
        ("agent_queue_id", "agent_queue"),
    ];
}

impl Resource for Conference {
    const PATH: &'static str = "conferences";
    fn validate(&self) -> Result<(), ApiError> {
        plan_number("number", &self.number)
    }
}

impl Resource for ConferenceMember {
    const PATH: &'static str = "conference_members";
    const REFERENCES: &'static [(&'static str, &'static str)] =
        &[("conference_id", "conference"), ("gateway_id", "gateway")];
    fn validate(&self) -> Result<(), ApiError> {
        digits_or_dial_chars("number", &self.number)
    }
}

impl Resource for BlacklistEntry {
    const PATH: &'static str = "blacklist";
    fn validate(&self) -> Result<(), ApiError> {
        digits_or_dial_chars("number", &self.number)
    }
}

impl Resource for VoicemailMessage {
    const PATH: &'static str = "voicemail_messages";
    const WRITABLE: bool = false;
}

impl Resource for Recording {
    const PATH: &'static str = "recordings";
    const WRITABLE: bool = false;
}

impl Resource for AuditEntry {
    const PATH: &'static str = "audit_log";
    const WRITABLE: bool = false;
}

// ---------------------------------------------------------------------------------------
// Request parts.

/// The `{id}` of a path, as a row id (400 when it is not a number).
pub struct RowId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for RowId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let last = parts.uri.path().rsplit('/').next().unwrap_or_default();
        last.parse::<i64>()
            .map(RowId)
            .map_err(|_| ApiError::bad_request(format!("the id {last:?} is not a number")))
    }
}

/// The pairs of the query string, decoded.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map_err(|e| ApiError::bad_request(format!("the query string does not decode: {e}")))?;
        if pairs.len() > MAX_QUERY_PAIRS {
            return Err(ApiError::bad_request(format!(
                "the query string has more than {MAX_QUERY_PAIRS} parameters"
            )));
        }
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(ApiError::bad_request(format!(
                "query parameter {name:?} holds a NUL character"
            )));
        }
        Ok(QueryPairs(pairs))
    }
}

/// A JSON object body (400 when it is not one; 413 over the size limit), read by
/// [`LegacyBody`](crate::api::body::LegacyBody)'s parser; its keys are taken exactly.
pub struct JsonObject(pub Map<String, Json>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        crate::api::body::LegacyBody::from_request(request, state)
            .await
            .map(|body| JsonObject(body.0))
    }
}

/// Paging and filters of a list request.
pub struct Page {
    pub page: i64,
    pub per_page: i64,
}

impl Page {
    /// Reads `page` and `per_page` out of `pairs` (and removes them).
    ///
    /// # Errors
    /// 400 for a value that is not a positive number.
    pub fn take(pairs: &mut Vec<(String, String)>) -> Result<Page, ApiError> {
        let page = take_number(pairs, "page")?.unwrap_or(1);
        let per_page = take_number(pairs, "per_page")?.unwrap_or(DEFAULT_PER_PAGE);
        if page < 1 || page > i64::from(u32::MAX) {
            return Err(ApiError::bad_request("page must be 1 or more"));
        }
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(ApiError::bad_request(format!(
                "per_page must be 1 to {MAX_PER_PAGE}"
            )));
        }
        Ok(Page { page, per_page })
    }

    pub fn apply(&self, mut query: ListQuery) -> ListQuery {
        query.limit = Some(self.per_page);
        query.offset = (self.page - 1) * self.per_page;
        query
    }
}

/// Removes `name` from `pairs` and reads it as a number.
///
/// # Errors
/// 400 when it is not one.
pub fn take_number(pairs: &mut Vec<(String, String)>, name: &str) -> Result<Option<i64>, ApiError> {
    take_text(pairs, name)
        .map(|text| {
            text.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("{name} must be a number")))
        })
        .transpose()
}

/// Removes `name` from `pairs` and returns its last value.
pub fn take_text(pairs: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let mut found = None;
    pairs.retain(|(key, value)| {
        if key == name {
            found = Some(value.clone());
            false
        } else {
            true
        }
    });
    found
}

/// A page of rows.
#[derive(Debug, Serialize)]
pub struct Listing<T: Serialize> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// A filter value read as the column's kind.
fn filter_value(column: &str, kind: ColumnKind, text: &str) -> Result<Value, ApiError> {
    let wrong = |what: &str| ApiError::bad_request(format!("filter {column} must be {what}"));
    Ok(match kind {
        ColumnKind::Int if text.is_empty() || text == "null" => Value::Int(None),
        ColumnKind::Int => Value::Int(Some(text.trim().parse().map_err(|_| wrong("a number"))?)),
        ColumnKind::Bool => Value::Bool(match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(wrong("true or false")),
        }),
        ColumnKind::Time => {
            Value::Time(Some(parse_time(text).ok_or_else(|| {
                wrong("a time (RFC 3339, e.g. 2026-11-25T08:00:00Z)")
            })?))
        }
        ColumnKind::Text => Value::Text(Some(text.to_owned())),
        ColumnKind::Secret => {
            return Err(ApiError::bad_request(format!(
                "{column} is a secret and can not be filtered on"
            )));
        }
    })
}

/// An RFC 3339 time of the years 1 to 9999 (what both databases store and order right).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .filter(storable_time)
}

/// Whether both databases store `time` and order it right (years 1 to 9999).
pub fn storable_time(time: &DateTime<Utc>) -> bool {
    (1..=9999).contains(&chrono::Datelike::year(time))
}

// ---------------------------------------------------------------------------------------
// The generic handlers.

async fn list<R: Resource>(
    State(state): State<AppState>,
    QueryPairs(mut pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let page = Page::take(&mut pairs)?;
    let mut query = ListQuery::default();
    if let Some(sort) = take_text(&mut pairs, "sort") {
        let (column, descending) = match sort.strip_prefix('-') {
            Some(column) => (column, true),
            None => (sort.as_str(), false),
        };
        let kind = match column {
            "id" => Some(ColumnKind::Int),
            _ => R::COLUMNS
                .iter()
                .position(|c| *c == column)
                .map(|i| R::KINDS[i]),
        };
        match kind {
            None => {
                return Err(ApiError::bad_request(format!(
                    "sort: {} has no column {column:?}",
                    R::PATH
                )));
            }
            Some(ColumnKind::Secret) => {
                return Err(ApiError::bad_request(format!(
                    "sort: {column} is a secret and can not be sorted on"
                )));
            }
            Some(_) => {}
        }
        query.order_by = Some(column.to_owned());
        query.descending = descending;
    }
    take_text(&mut pairs, "token");
    for (column, text) in pairs {
        let kind = match column.as_str() {
            "id" => ColumnKind::Int,
            _ => match R::COLUMNS.iter().position(|c| *c == column) {
                Some(i) => R::KINDS[i],
                None => {
                    return Err(ApiError::bad_request(format!(
                        "{} has no column {column:?} to filter on",
                        R::PATH
                    )));
                }
            },
        };
        if query.equals.iter().any(|(c, _)| *c == column) {
            return Err(ApiError::bad_request(format!(
                "filter {column} is given more than once"
            )));
        }
        let value = filter_value(&column, kind, &text)?;
        query.equals.push((column, value));
    }
    let total = state.store.count::<R>(&query).await.map_err(store_error)?;
    let rows = state
        .store
        .list::<R>(&page.apply(query))
        .await
        .map_err(store_error)?;
    let items = rows.iter().map(shown).collect::<Vec<_>>();
    Ok(ok(Listing {
        items,
        total,
        page: page.page,
        per_page: page.per_page,
    })
    .into_response())
}

async fn get_one<R: Resource>(
    State(state): State<AppState>,
    RowId(id): RowId,
) -> Result<Response, ApiError> {
    let row = existing::<R>(&state, id).await?;
    Ok(ok(shown(&row)).into_response())
}

async fn create<R: Resource>(
    State(state): State<AppState>,
    axum::Extension(Caller(actor)): axum::Extension<Caller>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let now = crate::clock::now_utc();
    let mut row: R = from_body::<R>(body, None, now)?;
    check::<R>(&state, &row).await?;
    let mut tx = state.store.begin().await.map_err(store_error)?;
    let id = tx.insert(&row).await.map_err(store_error)?;
    row.set_id(id);
    tx.insert(&audit::<R>(&actor, "create", Some(id), &row, now))
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    tracing::info!(actor = %actor, table = R::TABLE, id, "created");
    Ok((StatusCode::CREATED, ok(shown(&row))).into_response())
}

async fn replace<R: Resource>(
    state: State<AppState>,
    caller: axum::Extension<Caller>,
    id: RowId,
    body: JsonObject,
) -> Result<Response, ApiError> {
    write::<R>(state, caller, id, body, false).await
}

async fn change<R: Resource>(
    state: State<AppState>,
    caller: axum::Extension<Caller>,
    id: RowId,
    body: JsonObject,
) -> Result<Response, ApiError> {
    write::<R>(state, caller, id, body, true).await
}

/// PUT (`merge` false: the body is the whole row) and PATCH (`merge` true: the body's
/// fields over the stored row).
async fn write<R: Resource>(
    State(state): State<AppState>,
    axum::Extension(Caller(actor)): axum::Extension<Caller>,
    RowId(id): RowId,
    JsonObject(body): JsonObject,
    merge: bool,
) -> Result<Response, ApiError> {
    let now = crate::clock::now_utc();
    let old = existing::<R>(&state, id).await?;
    let body = if merge {
        let Json::Object(mut stored) = serde_json::to_value(&old)
            .map_err(|e| ApiError::internal("reading the stored row", e))?
        else {
            return Err(ApiError::internal(
                "reading the stored row",
                "not an object",
            ));
        };
        for field in R::WRITE_ONLY {
            stored.remove(*field);
        }
        stored.extend(body);
        stored
    } else {
        body
    };
    let mut row: R = from_body::<R>(body, Some(&old), now)?;
    row.set_id(id);
    check::<R>(&state, &row).await?;
    let mut tx = state.store.begin().await.map_err(store_error)?;
    tx.update(&row).await.map_err(store_error)?;
    tx.insert(&audit::<R>(&actor, "update", Some(id), &row, now))
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    tracing::info!(actor = %actor, table = R::TABLE, id, "updated");
    Ok(ok(shown(&row)).into_response())
}

async fn remove<R: Resource>(
    State(state): State<AppState>,
    axum::Extension(Caller(actor)): axum::Extension<Caller>,
    RowId(id): RowId,
) -> Result<Response, ApiError> {
    let now = crate::clock::now_utc();
    let old = existing::<R>(&state, id).await?;
    let mut tx = state.store.begin().await.map_err(store_error)?;
    tx.delete::<R>(id).await.map_err(|e| match e {
        StoreError::Reference { .. } => ApiError::conflict(format!(
            "{} {id} is still used by other rows; change or delete those first",
            R::TABLE
        )),
        other => store_error(other),
    })?;
    tx.insert(&audit::<R>(&actor, "delete", Some(id), &old, now))
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    tracing::info!(actor = %actor, table = R::TABLE, id, "deleted");
    Ok(ok(shown(&old)).into_response())
}

// ---------------------------------------------------------------------------------------
// Helpers of the handlers.

async fn existing<R: Entity>(state: &AppState, id: i64) -> Result<R, ApiError> {
    state
        .store
        .get::<R>(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::not_found(format!("{} {id} does not exist", R::TABLE)))
}

/// The row from a body: server-kept fields set, types checked with the field named,
/// write-only secrets kept from `old` when the body leaves them empty.
fn from_body<R: Resource>(
    mut body: Map<String, Json>,
    old: Option<&R>,
    now: DateTime<Utc>,
) -> Result<R, ApiError> {
    body.remove("id");
    let old_json = old.and_then(|o| serde_json::to_value(o).ok());
    for column in ["created_at", "updated_at"] {
        if R::COLUMNS.contains(&column) {
            let kept = match (column, &old_json) {
                ("created_at", Some(old)) => old.get(column).cloned(),
                _ => None,
            };
            let value = kept.unwrap_or_else(|| Json::String(now.to_rfc3339()));
            body.insert(column.to_owned(), value);
        }
    }
    for field in R::WRITE_ONLY {
        match body.get(*field) {
            // Absent or empty: kept. `null`: cleared.
            None => {}
            Some(Json::String(text)) if text.is_empty() => {}
            Some(Json::Null) => {
                body.insert((*field).to_owned(), Json::String(String::new()));
                continue;
            }
            Some(_) => continue,
        }
        if let Some(value) = old_json.as_ref().and_then(|o| o.get(*field)) {
            body.insert((*field).to_owned(), value.clone());
        }
    }
    for (key, value) in &body {
        if let Json::String(text) = value {
            if text.len() > MAX_TEXT {
                return Err(ApiError::bad_request(format!(
                    "field {key} is longer than {MAX_TEXT} bytes"
                )));
            }
            if text.contains('\0') {
                return Err(ApiError::bad_request(format!(
                    "field {key} holds a NUL character"
                )));
            }
        }
    }
    let row: R = serde_path_to_error::deserialize(Json::Object(body)).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad_request(format!("field {path}: {}", e.inner()))
    })?;
    for (column, value) in R::COLUMNS.iter().zip(row.values()) {
        if let Value::Time(Some(time)) = value
            && !storable_time(&time)
        {
            return Err(ApiError::bad_request(format!(
                "field {column}: the year must be 1 to 9999"
            )));
        }
    }
    row.validate()?;
    Ok(row)
}

/// The references of `row` exist (400 naming the field otherwise).
async fn check<R: Resource>(state: &AppState, row: &R) -> Result<(), ApiError> {
    let values = row.values();
    for (column, table) in R::REFERENCES {
        let Some(index) = R::COLUMNS.iter().position(|c| c == column) else {
            continue;
        };
        if let Value::Int(Some(id)) = values[index]
            && !state.store.exists(table, id).await.map_err(store_error)?
        {
            return Err(ApiError::bad_request(format!(
                "field {column}: {table} {id} does not exist"
            )));
        }
    }
    Ok(())
}

/// The row as the API shows it: write-only secrets empty.
fn shown<R: Resource>(row: &R) -> Json {
    let mut json = serde_json::to_value(row).unwrap_or(Json::Null);
    if let Json::Object(map) = &mut json {
        for field in R::WRITE_ONLY {
            if map.contains_key(*field) {
                map.insert((*field).to_owned(), Json::String(String::new()));
            }
        }
    }
    json
}

/// An audit entry for a change of `row`: its columns without secrets.
fn audit<R: Resource>(
    actor: &str,
    action: &str,
    id: Option<i64>,
    row: &R,
    now: DateTime<Utc>,
) -> AuditEntry {
    let mut detail = serde_json::to_value(row).unwrap_or(Json::Null);
    if let Json::Object(map) = &mut detail {
        for (column, kind) in R::COLUMNS.iter().zip(R::KINDS) {
            if *kind == ColumnKind::Secret {
                map.remove(*column);
            }
        }
    }
    audit_entry(actor, action, R::TABLE, id, detail.to_string(), now)
}

/// One line of the audit log.
pub fn audit_entry(
    actor: &str,
    action: &str,
    entity: &str,
    entity_id: Option<i64>,
    detail: String,
    at: DateTime<Utc>,
) -> AuditEntry {
    AuditEntry {
        id: 0,
        at,
        actor: actor.to_owned(),
        action: action.to_owned(),
        entity: entity.to_owned(),
        entity_id,
        detail,
    }
}

/// A store error as the API says it: the caller's data (400, 404, 409) or ours (500, 503).
pub fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::NumberTaken { .. } | StoreError::Duplicate { .. } => {
            ApiError::conflict(error.to_string())
        }
        StoreError::Reference { .. }
        | StoreError::Invalid { .. }
        | StoreError::UnknownColumn { .. } => ApiError::bad_request(error.to_string()),
        StoreError::AppendOnly { .. } => {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, error.to_string())
        }
        StoreError::NotFound { .. } => ApiError::not_found(error.to_string()),
        StoreError::Unavailable { .. } => {
            let mut api = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unreachable",
            );
            api.retry_after = Some(5);
            tracing::error!(%error, "database unreachable");
            api
        }
        StoreError::Database(error) if error.to_string().contains("database is locked") => {
            let mut api = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is busy; try again",
            );
            api.retry_after = Some(1);
            api
        }
        other => ApiError::internal("the database", other),
    }
}
