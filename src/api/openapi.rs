//! The OpenAPI 3.1 document of the whole HTTP API, served at `GET /api/v1/openapi.json`.
//!
//! It is built from the code: the admin resources' paths and filters from the same
//! [`resources`](super::admin::resources) list the router is built from, their schemas
//! derived from the entity structs (utoipa), the views' schemas likewise; the legacy control
//! API and the fixed endpoints are listed here next to the decisions of `docs/api.md`.
//! Every success is the envelope `{"code":0,"message":"ok","data":…}`, every error
//! `{"code":<status>,"message":…}` (the `default` response).
//!
//! What this module does not do: validate requests against the document (the handlers
//! check what they read).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use utoipa::{PartialSchema, ToSchema};

use super::admin::{DEFAULT_PER_PAGE, MAX_PER_PAGE, ResourceInfo, resources};
use crate::store::value::ColumnKind;

/// `GET /api/v1/openapi.json`.
pub(super) async fn document() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(|| build().to_string());
    let mut response = text.clone().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn schema_json<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap_or_default()
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Collects `T`'s schema and those it refers to.
fn add_schema<T: ToSchema>(schemas: &mut Map<String, Value>) {
    let mut dependencies = Vec::new();
    T::schemas(&mut dependencies);
    for (name, schema) in dependencies {
        schemas.insert(name, serde_json::to_value(schema).unwrap_or_default());
    }
    schemas.insert(T::name().into_owned(), schema_json::<T>());
}

fn envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["code", "message", "data"],
        "properties": {
            "code": { "type": "integer", "const": 0 },
            "message": { "type": "string" },
            "data": data,
        }
    })
}

fn listing(item: Value) -> Value {
    envelope(json!({
        "type": "object",
        "required": ["items", "total", "page", "per_page"],
        "properties": {
            "items": { "type": "array", "items": item },
            "total": { "type": "integer" },
            "page": { "type": "integer" },
            "per_page": { "type": "integer" },
        }
    }))
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// An operation answering `status` with `schema` inside `content`, errors as `default`.
fn operation(
    id: &str,
    summary: &str,
    tag: &str,
    status: &str,
    schema: Value,
) -> Map<String, Value> {
    let mut responses = Map::new();
    responses.insert(
        status.to_owned(),
        json!({ "description": "success", "content": json_content(schema) }),
    );
    responses.insert(
        "default".to_owned(),
        json!({ "description": "an error: the status and what was wrong",
                "content": json_content(reference("Error")) }),
    );
    let mut op = Map::new();
    op.insert("operationId".to_owned(), json!(id));
    op.insert("summary".to_owned(), json!(summary));
    op.insert("tags".to_owned(), json!([tag]));
    op.insert("responses".to_owned(), Value::Object(responses));
    op
}

fn with_body(mut op: Map<String, Value>, schema: Value) -> Map<String, Value> {
    op.insert(
        "requestBody".to_owned(),
        json!({ "required": true, "content": json_content(schema) }),
    );
    op
}

fn with_parameters(mut op: Map<String, Value>, parameters: Vec<Value>) -> Map<String, Value> {
    op.insert("parameters".to_owned(), Value::Array(parameters));
    op
}

fn path_parameter(name: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": schema })
}

fn query_parameter(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema,
            "description": description })
}

fn id_parameter() -> Value {
    path_parameter("id", json!({ "type": "integer", "format": "int64" }))
}

fn paging_parameters() -> Vec<Value> {
    vec![
        query_parameter(
            "page",
            json!({ "type": "integer", "minimum": 1, "maximum": u32::MAX }),
            "the page, from 1",
        ),
        query_parameter(
            "per_page",
            json!({ "type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE,
                    "default": DEFAULT_PER_PAGE }),
            "rows per page",
        ),
    ]
}

fn filter_schema(kind: ColumnKind) -> Option<Value> {
    Some(match kind {
        ColumnKind::Int => json!({ "type": "integer", "format": "int64" }),
        ColumnKind::Bool => json!({ "type": "boolean" }),
        ColumnKind::Time => json!({ "type": "string", "format": "date-time" }),
        ColumnKind::Text => json!({ "type": "string" }),
        ColumnKind::Secret => return None,
    })
}

/// The schema without required fields (a PATCH body).
fn partial(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Value::Object(map) = &mut schema {
        map.remove("required");
    }
    schema
}

fn add_resource(paths: &mut Map<String, Value>, resource: &ResourceInfo) {
    let name = &resource.schema_name;
    let item = reference(name);
    let mut list_parameters = paging_parameters();
    let mut sortable = vec![json!("id"), json!("-id")];
    for (column, kind) in resource.columns.iter().zip(resource.kinds) {
        if let Some(schema) = filter_schema(*kind) {
            list_parameters.push(query_parameter(column, schema, "only rows with this value"));
            sortable.push(json!(column));
            sortable.push(json!(format!("-{column}")));
        }
    }
    list_parameters.push(query_parameter(
        "sort",
        json!({ "type": "string", "enum": sortable }),
        "order by this column (descending with a leading -)",
    ));
    let collection = format!("/api/v1/{}", resource.path);
    let single = format!("/api/v1/{}/{{id}}", resource.path);
    let tag = resource.path;
    let mut collection_item = Map::new();
    collection_item.insert(
        "get".to_owned(),
        Value::Object(with_parameters(
            operation(
                &format!("list_{}", resource.path),
                &format!("A page of {}", resource.table),
                tag,
                "200",
                listing(item.clone()),
            ),
            list_parameters,
        )),
    );
    let mut single_item = Map::new();
    single_item.insert(
        "get".to_owned(),
        Value::Object(with_parameters(
            operation(
                &format!("get_{}", resource.path),
                &format!("One {}", resource.table),
                tag,
                "200",
                envelope(item.clone()),
            ),
            vec![id_parameter()],
        )),
    );
    if resource.writable {
        let schema = serde_json::to_value(&resource.schema).unwrap_or_default();
        collection_item.insert(
            "post".to_owned(),
            Value::Object(with_body(
                operation(
                    &format!("create_{}", resource.path),
                    &format!("Create a {}", resource.table),
                    tag,
                    "201",
                    envelope(item.clone()),
                ),
                item.clone(),
            )),
        );
        single_item.insert(
            "put".to_owned(),
            Value::Object(with_parameters(
                with_body(
                    operation(
                        &format!("replace_{}", resource.path),
                        &format!("Replace a {}", resource.table),
                        tag,
                        "200",
                        envelope(item.clone()),
                    ),
                    item.clone(),
                ),
                vec![id_parameter()],
            )),
        );
        single_item.insert(
            "patch".to_owned(),
            Value::Object(with_parameters(
                with_body(
                    operation(
                        &format!("change_{}", resource.path),
                        &format!("Change fields of a {}", resource.table),
                        tag,
                        "200",
                        envelope(item.clone()),
                    ),
                    partial(&schema),
                ),
                vec![id_parameter()],
            )),
        );
        single_item.insert(
            "delete".to_owned(),
            Value::Object(with_parameters(
                operation(
                    &format!("delete_{}", resource.path),
                    &format!("Delete a {}", resource.table),
                    tag,
                    "200",
                    envelope(item),
                ),
                vec![id_parameter()],
            )),
        );
    }
    paths.insert(collection, Value::Object(collection_item));
    paths.insert(single, Value::Object(single_item));
}

/// A legacy endpoint: (methods, path, operation id, summary, body fields).
type Legacy = (
    &'static [&'static str],
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

const LEGACY: &[Legacy] = &[
    (
        &["get", "post"],
        "/api/extension_info",
        "extension_info_all",
        "Every extension's registration, seat and call state",
        &[],
    ),
    (
        &["get", "post"],
        "/api/extension_info/{extension}",
        "extension_info",
        "One extension's registration, seat and call state (or `all`)",
        &[],
    ),
    (
        &["post"],
        "/api/extension_seatstatus",
        "extension_seatstatus",
        "Set an agent's seat status (idle, busy)",
        &["Extension", "Value"],
    ),
    (
        &["post"],
        "/api/extension_seatstate",
        "extension_seatstate",
        "Set an agent's seat state (up, down)",
        &["Extension", "Value"],
    ),
    (
        &["post"],
        "/api/extension_callstate",
        "extension_callstate",
        "Set an agent's call state",
        &["Extension", "Value"],
    ),
    (
        &["get", "post"],
        "/api/get_uuid",
        "get_uuid",
        "A new UUID, reserved for originate",
        &[],
    ),
    (
        &["get", "post"],
        "/api/get_phone_uuid/{phone}",
        "get_phone_uuid",
        "The UUID of the phone's leg",
        &[],
    ),
    (
        &["get", "post"],
        "/api/hangup/{phone}",
        "hangup",
        "Hang up the phone's call",
        &[],
    ),
    (
        &["get", "post"],
        "/api/hold/{phone}",
        "hold",
        "Hold the phone's leg",
        &[],
    ),
    (
        &["get", "post"],
        "/api/unhold/{phone}",
        "unhold",
        "Take the phone's leg off hold",
        &[],
    ),
    (
        &["get", "post"],
        "/api/answer/{phone}",
        "answer",
        "Answer the phone's incoming call",
        &[],
    ),
    (
        &["get", "post"],
        "/api/preanswer/{phone}",
        "preanswer",
        "Early media for the phone's incoming call",
        &[],
    ),
    (
        &["get", "post"],
        "/api/break/{phone}",
        "break",
        "Stop what is played to the phone",
        &[],
    ),
    (
        &["post"],
        "/api/playback",
        "playback",
        "Play a file to the phone",
        &["PhoneNumber", "FilePath", "Loopplay"],
    ),
    (
        &["post"],
        "/api/record",
        "record",
        "Start or stop recording the phone's call",
        &["PhoneNumber", "FilePath", "Flag", "Limit"],
    ),
    (
        &["post"],
        "/api/senddtmf",
        "senddtmf",
        "Send DTMF digits to the phone",
        &["PhoneNumber", "Dtmf"],
    ),
    (
        &["get", "post"],
        "/api/park/{phone}",
        "park",
        "Park the phone's call",
        &[],
    ),
    (
        &["get", "post"],
        "/api/intercept/{phone}",
        "intercept",
        "Pick up a call ringing elsewhere",
        &[],
    ),
    (
        &["post"],
        "/api/originate",
        "originate",
        "Call one party, then connect it to another",
        &[
            "Job_uuid",
            "Callername",
            "Callernum",
            "Calleenum",
            "A_gatewayname",
            "B_gatewayname",
            "A_effective_caller_id_num",
            "B_effective_caller_id_num",
            "A_external",
            "B_external",
        ],
    ),
    (
        &["post"],
        "/api/bridge",
        "bridge",
        "Connect two legs",
        &["A_uuid", "B_uuid"],
    ),
    (
        &["post"],
        "/api/bridge_phone",
        "bridge_phone",
        "Connect two phones' legs",
        &["A_phone", "B_phone"],
    ),
    (
        &["post"],
        "/api/eavesdrop",
        "eavesdrop",
        "Listen to a call",
        &["EvdedPhone", "EvdPhone", "EvdGateway"],
    ),
    (
        &["post"],
        "/api/threeway",
        "threeway",
        "Join a call as a third party",
        &["EvdedPhone", "EvdPhone", "EvdGateway"],
    ),
    (
        &["post"],
        "/api/whisper",
        "whisper",
        "Speak to one party of a call",
        &["EvdedPhone", "EvdPhone", "EvdGateway"],
    ),
];

fn add_legacy(paths: &mut Map<String, Value>) {
    for (methods, path, id, summary, fields) in LEGACY {
        let mut item = Map::new();
        for method in *methods {
            let mut op = operation(
                &format!("{id}_{method}"),
                summary,
                "control",
                "200",
                envelope(json!({ "description": "what the endpoint answers (docs/api.md)" })),
            );
            let parameter = path
                .split('/')
                .find_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')));
            if let Some(name) = parameter {
                op = with_parameters(op, vec![path_parameter(name, json!({ "type": "string" }))]);
            }
            if *method == "post" {
                let properties: Map<String, Value> = fields
                    .iter()
                    .map(|f| {
                        (
                            (*f).to_owned(),
                            json!({ "type": ["string", "integer", "boolean"] }),
                        )
                    })
                    .collect();
                op.insert(
                    "requestBody".to_owned(),
                    json!({ "required": false, "content": json_content(json!({
                        "type": "object",
                        "description": "keys match without regard to case; values may be strings",
                        "properties": properties,
                    })) }),
                );
            }
            item.insert((*method).to_owned(), Value::Object(op));
        }
        paths.insert((*path).to_owned(), Value::Object(item));
    }
}

fn add_fixed(paths: &mut Map<String, Value>) {
    let mut login = with_body(
        operation(
            "login",
            "A token for an administrator",
            "auth",
            "200",
            json!({
                "type": "object",
                "required": ["code", "message", "token", "data"],
                "properties": {
                    "code": { "type": "integer" },
                    "message": { "type": "string" },
                    "token": { "type": "string" },
                    "data": {
                        "type": "object",
                        "required": ["token", "expires_at", "must_change_password"],
                        "properties": {
                            "token": { "type": "string" },
                            "expires_at": { "type": "string", "format": "date-time" },
                            "must_change_password": { "type": "boolean" },
                        }
                    }
                }
            }),
        ),
        json!({ "type": "object", "required": ["username", "password"], "properties": {
            "username": { "type": "string" }, "password": { "type": "string" } } }),
    );
    login.insert("security".to_owned(), json!([]));
    paths.insert("/api/login".to_owned(), json!({ "post": login }));

    let apply_view = reference("ApplyView");
    paths.insert(
        "/api/v1/apply".to_owned(),
        json!({
            "get": operation("apply_state", "The configuration version in force and the last build's problems", "runtime", "200", envelope(apply_view.clone())),
            "post": {
                "operationId": "apply",
                "summary": "Put the database's configuration into force",
                "tags": ["runtime"],
                "responses": {
                    "200": { "description": "applied", "content": json_content(envelope(apply_view.clone())) },
                    "422": { "description": "refused: the problems; the old version stays", "content": json_content(json!({
                        "type": "object", "required": ["code", "message", "data"],
                        "properties": { "code": { "type": "integer" }, "message": { "type": "string" }, "data": apply_view }
                    })) },
                    "default": { "description": "an error", "content": json_content(reference("Error")) },
                }
            }
        }),
    );
    paths.insert(
        "/api/v1/registrations".to_owned(),
        json!({ "get": operation("registrations", "Live registration bindings", "runtime", "200",
            envelope(json!({ "type": "array", "items": reference("Registration") }))) }),
    );
    paths.insert(
        "/api/v1/calls".to_owned(),
        json!({ "get": operation("calls", "Calls in progress", "runtime", "200",
            envelope(json!({ "type": "array", "items": reference("CallView") }))) }),
    );
    paths.insert(
        "/api/v1/calls/{uuid}".to_owned(),
        json!({ "get": with_parameters(
            operation("call", "One call in progress, by either leg's UUID", "runtime", "200", envelope(reference("CallView"))),
            vec![path_parameter("uuid", json!({ "type": "string" }))]) }),
    );
    paths.insert(
        "/api/v1/agents".to_owned(),
        json!({ "get": operation("agents", "Every extension's agent state", "runtime", "200",
            envelope(json!({ "type": "array", "items": reference("AgentView") }))) }),
    );
    let view = reference("AdminUserView");
    paths.insert(
        "/api/v1/admin_users".to_owned(),
        json!({
            "get": operation("list_admin_users", "Every administrator", "admin_users", "200",
                envelope(json!({ "type": "array", "items": view.clone() }))),
            "post": with_body(
                operation("create_admin_user", "A new administrator", "admin_users", "201", envelope(view.clone())),
                json!({ "type": "object", "required": ["username", "password"], "properties": {
                    "username": { "type": "string" }, "password": { "type": "string" } } })),
        }),
    );
    paths.insert(
        "/api/v1/admin_users/{id}".to_owned(),
        json!({ "delete": with_parameters(
            operation("delete_admin_user", "Remove an administrator", "admin_users", "200", envelope(view.clone())),
            vec![id_parameter()]) }),
    );
    paths.insert(
        "/api/v1/admin_users/{id}/password".to_owned(),
        json!({ "put": with_parameters(with_body(
            operation("reset_admin_password", "Set another administrator's password", "admin_users", "200", envelope(view.clone())),
            json!({ "type": "object", "required": ["password"], "properties": { "password": { "type": "string" } } })),
            vec![id_parameter()]) }),
    );
    paths.insert(
        "/api/v1/password".to_owned(),
        json!({ "post": with_body(
            operation("change_password", "Change one's own password", "admin_users", "200", envelope(view)),
            json!({ "type": "object", "required": ["current_password", "new_password"], "properties": {
                "current_password": { "type": "string" }, "new_password": { "type": "string" } } })) }),
    );
    let cdr_filters = vec![
        query_parameter(
            "start_date",
            json!({ "type": "string" }),
            "calls starting on or after (YYYY-MM-DD, UTC, or RFC 3339)",
        ),
        query_parameter(
            "end_date",
            json!({ "type": "string" }),
            "calls starting up to (a date includes the day)",
        ),
        query_parameter(
            "caller",
            json!({ "type": "string" }),
            "the caller number contains",
        ),
        query_parameter(
            "callee",
            json!({ "type": "string" }),
            "the dialled number contains",
        ),
        query_parameter(
            "destination",
            json!({ "type": "string" }),
            "the dialled number is",
        ),
        query_parameter(
            "min_duration",
            json!({ "type": "integer", "format": "int64" }),
            "duration greater than (s)",
        ),
        query_parameter(
            "max_duration",
            json!({ "type": "integer", "format": "int64" }),
            "duration less than (s)",
        ),
        query_parameter("uuid", json!({ "type": "string" }), "the call's UUID"),
        query_parameter(
            "direction",
            json!({ "type": "string" }),
            "inbound, outbound or internal",
        ),
        query_parameter(
            "hangup_cause",
            json!({ "type": "string" }),
            "the Q.850 cause name",
        ),
    ];
    let mut search_parameters = paging_parameters();
    search_parameters.extend(cdr_filters.iter().cloned());
    paths.insert(
        "/api/v1/cdrs".to_owned(),
        json!({ "get": with_parameters(
            operation("search_cdrs", "Search CDRs, newest first", "cdrs", "200", listing(reference("Cdr"))),
            search_parameters) }),
    );
    let mut export = with_parameters(
        operation(
            "export_cdrs",
            "Every matching CDR as CSV",
            "cdrs",
            "200",
            json!({ "type": "string" }),
        ),
        cdr_filters,
    );
    export["responses"]["200"]["content"] =
        json!({ "text/csv": { "schema": { "type": "string" } } });
    paths.insert("/api/v1/cdrs.csv".to_owned(), json!({ "get": export }));
    paths.insert(
        "/api/v1/cdrs/{id}".to_owned(),
        json!({ "get": with_parameters(
            operation("get_cdr", "One CDR", "cdrs", "200", envelope(reference("Cdr"))),
            vec![id_parameter()]) }),
    );
    let mut health = operation(
        "healthz",
        "Liveness and what the server runs on",
        "health",
        "200",
        json!({ "type": "object" }),
    );
    health.insert("security".to_owned(), json!([]));
    paths.insert("/healthz".to_owned(), json!({ "get": health }));
    let mut metrics = operation(
        "metrics",
        "Prometheus metrics",
        "health",
        "200",
        json!({ "type": "string" }),
    );
    metrics["responses"]["200"]["content"] =
        json!({ "text/plain": { "schema": { "type": "string" } } });
    metrics.insert("security".to_owned(), json!([]));
    paths.insert("/metrics".to_owned(), json!({ "get": metrics }));
}

/// The whole document.
pub fn build() -> Value {
    let mut schemas = Map::new();
    let mut paths = Map::new();
    for resource in resources() {
        for (name, schema) in &resource.dependencies {
            schemas.insert(
                name.clone(),
                serde_json::to_value(schema).unwrap_or_default(),
            );
        }
        schemas.insert(
            resource.schema_name.clone(),
            serde_json::to_value(&resource.schema).unwrap_or_default(),
        );
        add_resource(&mut paths, &resource);
    }
    add_schema::<crate::store::Cdr>(&mut schemas);
    add_schema::<crate::store::Registration>(&mut schemas);
    add_schema::<crate::pbx::control::CallView>(&mut schemas);
    add_schema::<super::admin::runtime::ApplyView>(&mut schemas);
    add_schema::<super::admin::runtime::AgentView>(&mut schemas);
    add_schema::<super::admin::users::AdminUserView>(&mut schemas);
    schemas.insert(
        "Error".to_owned(),
        json!({
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": { "type": "integer", "description": "the HTTP status" },
                "message": { "type": "string", "description": "what was wrong" },
            }
        }),
    );
    add_legacy(&mut paths);
    add_fixed(&mut paths);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "rswitch HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The FSGui-compatible control API (/api/*) and the admin API (/api/v1/*). \
                Log in with POST /api/login, then send `Authorization: Bearer <token>` \
                (or `Nway <token>`).",
        },
        "security": [{ "token": [] }],
        "components": {
            "securitySchemes": {
                "token": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }
            },
            "schemas": schemas,
        },
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let document = build();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        let text = document.to_string();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(schemas.contains_key(name), "unresolved $ref {name}");
        }
        assert!(document["paths"]["/api/v1/extensions/{id}"]["patch"].is_object());
        assert!(document["paths"]["/api/v1/cdrs/{id}"]["delete"].is_null());
    }
}
