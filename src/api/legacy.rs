//! The FSGui control and seat API (spec §4.3, §4.5): the same paths, field names and value
//! forms existing integrations send, acting on real calls through the call engine's
//! [`ControlHandle`](crate::pbx::control::ControlHandle).
//!
//! Paths with `{phone}` are GET in the manual; POST is accepted too (its body ignored), as
//! the spec proposes for integrations that always POST. Bodies are read leniently
//! ([`LegacyBody`]). Answers: `data` is `{"uuid": <the leg acted on>}` for call commands,
//! the state set for the seat commands, the extension's state for `extension_info`.
//!
//! Decisions where the manual is silent (docs/api.md): a phone names the leg of the newest
//! call it is a party of; `hold` holds that leg (a re-INVITE with `sendonly` to the phone)
//! and plays music on hold to the other party; `answer` and `preanswer` act on the incoming
//! (calling) leg of the phone's call; `playback` and `record` take relative paths under the
//! base settings `ring_path` and `record_path`; `record` `Limit` is a minimum length in
//! seconds, `Flag` `start` (the default) or `stop`.
//!
//! `originate` answers at once (`{"Job_uuid","uuid"}`) and rings A, then B once A answers;
//! `eavesdrop`, `whisper` and `threeway` ring `EvdPhone`, which joins `EvdedPhone`'s answered
//! call once it answers (docs/api.md has the roles).
//!
//! `park` puts both parties of the phone's call on music; `bridge` joins them again, or
//! joins legs of two calls (their former partners are hung up); `intercept` makes the phone
//! pick up the newest ringing call of its group (else any).
//!
//! What this module does not do yet: parties behind gateways (`A_external`, `B_external`,
//! `EvdGateway` naming a gateway that exists answer 501); the conference API (§4.4).

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::body::LegacyBody;
use super::error::{ApiError, ok};
use crate::pbx::agents::{AgentChange, CallState, SeatState, SeatStatus};
use crate::pbx::control::{ControlReply, ControlRequest, JoinMode, LegName, Originate};

/// The routes of this module (behind the token check).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/extension_info",
            get(all_extensions).post(all_extensions),
        )
        .route(
            "/api/extension_info/{extension}",
            get(extension_info).post(extension_info),
        )
        .route("/api/extension_seatstatus", post(seat_status))
        .route("/api/extension_seatstate", post(seat_state))
        .route("/api/extension_callstate", post(call_state))
        .route("/api/get_uuid", get(get_uuid).post(get_uuid))
        .route(
            "/api/get_phone_uuid/{phone}",
            get(get_phone_uuid).post(get_phone_uuid),
        )
        .route("/api/hangup/{phone}", get(hangup).post(hangup))
        .route("/api/hold/{phone}", get(hold).post(hold))
        .route("/api/unhold/{phone}", get(unhold).post(unhold))
        .route("/api/answer/{phone}", get(answer).post(answer))
        .route("/api/preanswer/{phone}", get(preanswer).post(preanswer))
        .route(
            "/api/break/{phone}",
            get(break_playback).post(break_playback),
        )
        .route("/api/playback", post(playback))
        .route("/api/record", post(record))
        .route("/api/senddtmf", post(send_dtmf))
        .route("/api/park/{phone}", get(park).post(park))
        .route("/api/intercept/{phone}", get(intercept).post(intercept))
        .route("/api/originate", post(originate))
        .route("/api/bridge", post(bridge))
        .route("/api/bridge_phone", post(bridge_phone))
        .route("/api/eavesdrop", post(eavesdrop))
        .route("/api/threeway", post(threeway))
        .route("/api/whisper", post(whisper))
}

/// `data` of `extension_info`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ExtensionInfo {
    extension: String,
    registered: bool,
    contact: String,
    seat_state: &'static str,
    seat_status: &'static str,
    call_state: &'static str,
    uuid: String,
}

/// The states of `extensions`, in that order: one request to the call engine for all.
async fn extension_states(
    state: &AppState,
    extensions: Vec<String>,
) -> Result<Vec<ExtensionInfo>, ApiError> {
    let reply = state
        .control
        .request(ControlRequest::Extensions {
            extensions: extensions.clone(),
        })
        .await?;
    let ControlReply::Extensions(views) = reply else {
        return Err(ApiError::internal("extension_info", "unexpected reply"));
    };
    Ok(extensions
        .into_iter()
        .zip(views)
        .map(|(extension, view)| {
            let agent = state.agents.get(&extension);
            ExtensionInfo {
                extension,
                registered: view.registered,
                contact: view.contact,
                seat_state: agent.seat_state.as_str(),
                seat_status: agent.seat_status.as_str(),
                call_state: agent.call_state.as_str(),
                uuid: view.uuid,
            }
        })
        .collect())
}

/// 404 unless `extension` is one of the running configuration.
fn known_extension(state: &AppState, extension: &str) -> Result<(), ApiError> {
    if state.live.current().extensions.contains_key(extension) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "extension {extension} does not exist"
        )))
    }
}

async fn extension_info(
    State(state): State<AppState>,
    UrlPath(extension): UrlPath<String>,
) -> Result<Response, ApiError> {
    let extension = extension.trim();
    if extension.eq_ignore_ascii_case("all") {
        return all_extensions(State(state)).await;
    }
    known_extension(&state, extension)?;
    let info = extension_states(&state, vec![extension.to_owned()])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("extension_info", "no answer for the extension"))?;
    Ok(ok(info).into_response())
}

/// Every extension's state, in number order (beyond the legacy API: spec §4.5).
async fn all_extensions(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut numbers: Vec<String> = state.live.current().extensions.keys().cloned().collect();
    numbers.sort();
    Ok(ok(extension_states(&state, numbers).await?).into_response())
}

/// The `Extension` and `Value` of a seat command, the value parsed by `parse`.
fn seat_request<T>(
    state: &AppState,
    body: &LegacyBody,
    allowed: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<(String, T, String), ApiError> {
    let extension = body.required_text("Extension")?;
    let value = body.required_text("Value")?;
    let parsed = parse(&value.to_ascii_lowercase())
        .ok_or_else(|| ApiError::bad_request(format!("field Value must be one of {allowed}")))?;
    known_extension(state, &extension)?;
    Ok((extension, parsed, value.to_ascii_lowercase()))
}

async fn seat_status(
    State(state): State<AppState>,
    body: LegacyBody,
) -> Result<Response, ApiError> {
    let (extension, value, text) = seat_request(&state, &body, "idle, busy", |v| match v {
        "idle" => Some(SeatStatus::Idle),
        "busy" => Some(SeatStatus::Busy),
        _ => None,
    })?;
    state
        .agents
        .apply(&extension, AgentChange::SeatStatus(value));
    Ok(ok(json!({"Extension": extension, "Value": text})).into_response())
}

async fn seat_state(State(state): State<AppState>, body: LegacyBody) -> Result<Response, ApiError> {
    let (extension, value, text) = seat_request(&state, &body, "up, down", |v| match v {
        "up" => Some(SeatState::Up),
        "down" => Some(SeatState::Down),
        _ => None,
    })?;
    state
        .agents
        .apply(&extension, AgentChange::SeatState(value));
    Ok(ok(json!({"Extension": extension, "Value": text})).into_response())
}

async fn call_state(State(state): State<AppState>, body: LegacyBody) -> Result<Response, ApiError> {
    let (extension, value, text) =
        seat_request(&state, &body, "ring, talking, ivr, ready", |v| match v {
            "ring" => Some(CallState::Ring),
            "talking" => Some(CallState::Talking),
            "ivr" => Some(CallState::Ivr),
            "ready" => Some(CallState::Ready),
            _ => None,
        })?;
    state
        .agents
        .apply(&extension, AgentChange::CallState(value));
    Ok(ok(json!({"Extension": extension, "Value": text})).into_response())
}

/// A fresh UUID, reserved for `originate`'s `Job_uuid`.
async fn get_uuid(State(state): State<AppState>) -> Response {
    let uuid = state.uuids.reserve();
    ok(json!({ "uuid": uuid })).into_response()
}

/// Sends a call command for `phone` and answers with the leg's UUID.
async fn command(state: &AppState, request: ControlRequest) -> Result<Response, ApiError> {
    match state.control.request(request).await? {
        ControlReply::Uuid(uuid) => Ok(ok(json!({ "uuid": uuid })).into_response()),
        ControlReply::Recording(path) => {
            Ok(ok(json!({ "path": path.display().to_string() })).into_response())
        }
        ControlReply::Extensions(_)
        | ControlReply::Calls(_)
        | ControlReply::Call(_)
        | ControlReply::Registrations(_) => {
            Err(ApiError::internal("a call command", "unexpected reply"))
        }
    }
}

/// The `{phone}` of a path, trimmed; 400 when empty.
fn phone_of(phone: &str) -> Result<String, ApiError> {
    let phone = phone.trim();
    if phone.is_empty() {
        return Err(ApiError::bad_request(
            "the phone number in the path is empty",
        ));
    }
    Ok(phone.to_owned())
}

macro_rules! phone_command {
    ($name:ident, $variant:ident) => {
        async fn $name(
            State(state): State<AppState>,
            UrlPath(phone): UrlPath<String>,
        ) -> Result<Response, ApiError> {
            let phone = phone_of(&phone)?;
            command(&state, ControlRequest::$variant { phone }).await
        }
    };
}

phone_command!(get_phone_uuid, PhoneUuid);
phone_command!(hangup, Hangup);
phone_command!(hold, Hold);
phone_command!(unhold, Unhold);
phone_command!(answer, Answer);
phone_command!(preanswer, Preanswer);
phone_command!(break_playback, Break);

async fn playback(State(state): State<AppState>, body: LegacyBody) -> Result<Response, ApiError> {
    let phone = body.required_text("PhoneNumber")?;
    let file = body.required_text("FilePath")?;
    let looping = body.boolean("Loopplay", false)?;
    let ring_path = base_dir(&state, "ring_path");
    let audio = tokio::task::spawn_blocking(move || read_wav(&ring_path, &file))
        .await
        .map_err(|e| ApiError::internal("reading the playback file", e))??;
    command(
        &state,
        ControlRequest::Playback {
            phone,
            samples: audio.samples.into(),
            rate: audio.sample_rate,
            looping,
        },
    )
    .await
}

/// A base setting naming a directory (`ring_path`, `record_path`).
fn base_dir(state: &AppState, key: &str) -> PathBuf {
    PathBuf::from(state.live.current().base.value(key).unwrap_or(""))
}

/// The candidates for a file named `name` in a request: as written when absolute, else under
/// `directory`; and when the JSON decoding turned a Windows path's `\n` or `\t` into a control
/// character (the manual's `"D:\nwaytest.wav"`), the text with the backslash put back.
fn file_candidates(directory: &Path, name: &str) -> Vec<PathBuf> {
    let mut names = vec![name.to_owned()];
    if name.chars().any(|c| matches!(c, '\n' | '\t' | '\r')) {
        names.push(
            name.replace('\n', "\\n")
                .replace('\t', "\\t")
                .replace('\r', "\\r"),
        );
    }
    let mut candidates = Vec::new();
    for name in names {
        let path = Path::new(&name);
        if path.is_absolute() {
            candidates.push(path.to_path_buf());
        } else {
            candidates.push(directory.join(path));
        }
    }
    candidates
}

fn read_wav(directory: &Path, name: &str) -> Result<crate::media::wav::Audio, ApiError> {
    let candidates = file_candidates(directory, name);
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        return Err(ApiError::bad_request(format!(
            "field FilePath: {} does not exist",
            candidates[0].display()
        )));
    };
    crate::pbx::actions::load_wav(path)
        .map_err(|error| ApiError::bad_request(format!("field FilePath: {error}")))
}

async fn record(State(state): State<AppState>, body: LegacyBody) -> Result<Response, ApiError> {
    let phone = body.required_text("PhoneNumber")?;
    let flag = body.text("Flag")?.unwrap_or_default().to_ascii_lowercase();
    match flag.as_str() {
        "" | "start" => {}
        "stop" => return command(&state, ControlRequest::RecordStop { phone }).await,
        _ => return Err(ApiError::bad_request("field Flag must be start or stop")),
    }
    let file = body.required_text("FilePath")?;
    let limit = body.integer("Limit")?.unwrap_or(0);
    if !(0..=86_400).contains(&limit) {
        return Err(ApiError::bad_request(
            "field Limit must be a number of seconds from 0 to 86400",
        ));
    }
    let record_path = base_dir(&state, "record_path");
    let path = file_candidates(&record_path, &file).remove(0);
    let directory = path.parent().map(Path::to_path_buf);
    if let Some(directory) = directory {
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(directory))
            .await
            .map_err(|e| ApiError::internal("making the recording's directory", e))?
            .map_err(|error| {
                ApiError::bad_request(format!(
                    "field FilePath: the directory of {} can not be made: {error}",
                    path.display()
                ))
            })?;
    }
    command(
        &state,
        ControlRequest::RecordStart {
            phone,
            path,
            min_length: Duration::from_secs(limit as u64),
        },
    )
    .await
}

async fn send_dtmf(State(state): State<AppState>, body: LegacyBody) -> Result<Response, ApiError> {
    let phone = body.required_text("PhoneNumber")?;
    let digits = body.required_text("Dtmf")?;
    if digits.len() > 128 {
        return Err(ApiError::bad_request("field Dtmf: at most 128 digits"));
    }
    command(&state, ControlRequest::SendDtmf { phone, digits }).await
}

phone_command!(park, Park);
phone_command!(intercept, Intercept);

/// 404 (naming `field`) unless `name` is a gateway of the running configuration.
fn known_gateway(state: &AppState, field: &str, name: &str) -> Result<(), ApiError> {
    if state
        .live
        .current()
        .gateways
        .values()
        .any(|g| g.name == name)
    {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "field {field}: gateway {name:?} does not exist"
        )))
    }
}

/// Rings `Callernum`, then `Calleenum` once it answers, and bridges them. Answers at once
/// with the call's UUID (`Job_uuid` when it was reserved by `get_uuid`, else a new one).
async fn originate(State(state): State<AppState>, body: LegacyBody) -> Result<Response, ApiError> {
    let a_number = body.required_text("Callernum")?;
    let b_number = body.required_text("Calleenum")?;
    for (flag, gateway) in [
        ("A_external", "A_gatewayname"),
        ("B_external", "B_gatewayname"),
    ] {
        if body.boolean(flag, false)? {
            known_gateway(&state, gateway, &body.text(gateway)?.unwrap_or_default())?;
            return Err(ApiError::not_implemented(&format!(
                "originate to an external number ({flag}, through {gateway})"
            )));
        }
    }
    let display = body.text("Callername")?.unwrap_or_default();
    if display.chars().count() > 64 {
        return Err(ApiError::bad_request(
            "field Callername: at most 64 characters",
        ));
    }
    let a_shows = body
        .text("B_effective_caller_id_num")?
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| b_number.clone());
    let b_shows = body
        .text("A_effective_caller_id_num")?
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| a_number.clone());
    let job = body.text("Job_uuid")?.unwrap_or_default();
    let uuid = if !job.is_empty() && state.uuids.take(&job) {
        job
    } else {
        crate::pbx::calls::new_uuid()
    };
    let request = ControlRequest::Originate(Originate {
        uuid,
        display,
        a_number,
        b_number,
        a_shows,
        b_shows,
    });
    match state.control.request(request).await? {
        ControlReply::Uuid(uuid) => {
            Ok(ok(json!({ "Job_uuid": uuid, "uuid": uuid })).into_response())
        }
        _ => Err(ApiError::internal("originate", "unexpected reply")),
    }
}

/// Joins the legs `A_uuid` and `B_uuid`.
async fn bridge(State(state): State<AppState>, body: LegacyBody) -> Result<Response, ApiError> {
    let a = LegName::Uuid(body.required_text("A_uuid")?);
    let b = LegName::Uuid(body.required_text("B_uuid")?);
    command(&state, ControlRequest::Bridge { a, b }).await
}

/// Joins the legs of the phones `A_phone` and `B_phone`.
async fn bridge_phone(
    State(state): State<AppState>,
    body: LegacyBody,
) -> Result<Response, ApiError> {
    let a = LegName::Phone(body.required_text("A_phone")?);
    let b = LegName::Phone(body.required_text("B_phone")?);
    command(&state, ControlRequest::Bridge { a, b }).await
}

/// Rings `EvdPhone`; once it answers, it joins the answered call of `EvdedPhone` as
/// `mode` says. Answers at once with the UUID of `EvdPhone`'s leg.
async fn join(
    state: &AppState,
    body: &LegacyBody,
    what: &str,
    mode: JoinMode,
) -> Result<Response, ApiError> {
    let monitored = body.required_text("EvdedPhone")?;
    let joiner = body.required_text("EvdPhone")?;
    if let Some(gateway) = body.text("EvdGateway")?.filter(|g| !g.is_empty()) {
        known_gateway(state, "EvdGateway", &gateway)?;
        return Err(ApiError::not_implemented(&format!(
            "{what} from an external number (EvdGateway)"
        )));
    }
    command(
        state,
        ControlRequest::Join {
            monitored,
            joiner,
            mode,
        },
    )
    .await
}

async fn eavesdrop(State(state): State<AppState>, body: LegacyBody) -> Result<Response, ApiError> {
    join(&state, &body, "eavesdrop", JoinMode::Listen).await
}

async fn threeway(State(state): State<AppState>, body: LegacyBody) -> Result<Response, ApiError> {
    join(&state, &body, "threeway", JoinMode::Talk).await
}

async fn whisper(State(state): State<AppState>, body: LegacyBody) -> Result<Response, ApiError> {
    join(&state, &body, "whisper", JoinMode::Whisper).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_windows_path_mangled_by_json_escapes_is_also_tried_as_written() {
        let candidates = file_candidates(Path::new("/rings"), "D:\nwaytest.wav");
        assert_eq!(
            candidates,
            [
                PathBuf::from("/rings/D:\nwaytest.wav"),
                PathBuf::from("/rings/D:\\nwaytest.wav")
            ]
        );
        assert_eq!(
            file_candidates(Path::new("/rings"), "/tmp/a.wav"),
            [PathBuf::from("/tmp/a.wav")]
        );
    }
}
