//! CDRs over HTTP: read-only (spec §2.19, §3.19), searched with the GUI's filters, paged, and
//! exported as CSV.
//!
//! `GET /api/v1/cdrs` and `GET /api/v1/cdrs.csv` take the same filters, all optional and
//! combined with AND: `start_date` (calls starting on or after; `YYYY-MM-DD` is that day's
//! 00:00 UTC, or an RFC 3339 time), `end_date` (calls starting up to; a date includes the
//! whole day), `caller` (the caller number contains it, ignoring case), `callee` (the dialled
//! number contains it), `destination` (the dialled number is exactly it), `min_duration` (duration
//! greater than N s), `max_duration` (less than N s), `uuid` (either leg), `direction`,
//! `hangup_cause`. Newest first. The list pages like every list (`page`, `per_page`); the CSV
//! has every matching row (up to [`CSV_ROW_LIMIT`]), read and sent in keyset pages so memory
//! stays flat and each page costs the same however many there are.
//!
//! What this module does not do: change or delete CDRs (no route does; the database refuses
//! it too).

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::{Page, QueryPairs, RowId, existing, ok, store_error, take_number, take_text};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::store::value::Value;
use crate::store::{Cdr, Compare, Entity, ListQuery};

/// The most rows one CSV export holds.
pub const CSV_ROW_LIMIT: i64 = 1_000_000;
/// Rows read from the database per round trip of an export.
const CSV_PAGE: i64 = 1000;

/// The CDR routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/cdrs", get(search))
        .route("/api/v1/cdrs.csv", get(export))
        .route("/api/v1/cdrs/{id}", get(get_one))
}

/// The filters of spec §2.19 as a query.
///
/// # Errors
/// 400 naming a filter that does not read, or one that is unknown.
pub fn filters(pairs: &mut Vec<(String, String)>) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery::default();
    if let Some(text) = take_text(pairs, "start_date").filter(|t| !t.trim().is_empty()) {
        let from = day_or_time(&text, "start_date", false)?;
        query = query.compare("start_stamp", Compare::GreaterOrEqual, time(from));
    }
    if let Some(text) = take_text(pairs, "end_date").filter(|t| !t.trim().is_empty()) {
        let until = day_or_time(&text, "end_date", true)?;
        query = query.compare("start_stamp", Compare::Less, time(until));
    }
    if let Some(caller) = take_text(pairs, "caller").filter(|t| !t.is_empty()) {
        query = query.compare("caller_id_number", Compare::Contains, text(&caller));
    }
    if let Some(callee) = take_text(pairs, "callee").filter(|t| !t.is_empty()) {
        query = query.compare("destination_number", Compare::Contains, text(&callee));
    }
    if let Some(destination) = take_text(pairs, "destination").filter(|t| !t.is_empty()) {
        query = query.filter("destination_number", text(&destination));
    }
    if let Some(seconds) = take_number(pairs, "min_duration")? {
        query = query.compare("duration", Compare::Greater, Value::Int(Some(seconds)));
    }
    if let Some(seconds) = take_number(pairs, "max_duration")? {
        query = query.compare("duration", Compare::Less, Value::Int(Some(seconds)));
    }
    if let Some(uuid) = take_text(pairs, "uuid").filter(|t| !t.is_empty()) {
        query = query.filter("uuid", text(&uuid));
    }
    for column in ["direction", "hangup_cause"] {
        if let Some(value) = take_text(pairs, column).filter(|t| !t.is_empty()) {
            query = query.filter(column, text(&value));
        }
    }
    take_text(pairs, "token");
    if let Some((name, _)) = pairs.first() {
        return Err(ApiError::bad_request(format!(
            "{name:?} is not a CDR filter (start_date, end_date, caller, callee, destination, \
             min_duration, max_duration, uuid, direction, hangup_cause)"
        )));
    }
    query.order_by = Some("start_stamp".to_owned());
    query.descending = true;
    Ok(query)
}

fn text(value: &str) -> Value {
    Value::Text(Some(value.to_owned()))
}

fn time(value: DateTime<Utc>) -> Value {
    Value::Time(Some(value))
}

/// A date (its start, or with `end_of_day` the next day's start) or an RFC 3339 time.
fn day_or_time(text: &str, name: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    let text = text.trim();
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if end_of_day {
            day.checked_add_signed(TimeDelta::days(1)).unwrap_or(day)
        } else {
            day
        };
        let time = day.and_time(chrono::NaiveTime::MIN).and_utc();
        if super::storable_time(&time) {
            return Ok(time);
        }
    }
    super::parse_time(text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{name} must be a date (YYYY-MM-DD) or an RFC 3339 time"
        ))
    })
}

async fn search(
    State(state): State<AppState>,
    QueryPairs(mut pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let page = Page::take(&mut pairs)?;
    let query = filters(&mut pairs)?;
    let total = state
        .store
        .count::<Cdr>(&query)
        .await
        .map_err(store_error)?;
    let items = state
        .store
        .list::<Cdr>(&page.apply(query))
        .await
        .map_err(store_error)?;
    Ok(ok(super::Listing {
        items,
        total,
        page: page.page,
        per_page: page.per_page,
    })
    .into_response())
}

async fn get_one(State(state): State<AppState>, RowId(id): RowId) -> Result<Response, ApiError> {
    let row = existing::<Cdr>(&state, id).await?;
    Ok(ok(row).into_response())
}

async fn export(
    State(state): State<AppState>,
    QueryPairs(mut pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let query = filters(&mut pairs)?;
    // Fail before the first byte when the database does not answer.
    state
        .store
        .count::<Cdr>(&query)
        .await
        .map_err(store_error)?;
    // Keyset paging (after the last row sent, by start time then id): each page costs one
    // index range however deep the export is, and calls ending meanwhile shift nothing.
    let store = state.store.clone();
    let pages = futures_util::stream::unfold(
        (store, query, 0_i64, true),
        |(store, mut query, sent, first)| async move {
            if sent >= CSV_ROW_LIMIT || (!first && query.after.is_none()) {
                return None;
            }
            let page = ListQuery {
                limit: Some(CSV_PAGE.min(CSV_ROW_LIMIT - sent)),
                offset: 0,
                ..query.clone()
            };
            let rows = match store.list::<Cdr>(&page).await {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::error!(%error, "CDR export stopped: the database failed");
                    query.after = None;
                    let failed = Err(std::io::Error::other("database failure"));
                    return Some((failed, (store, query, CSV_ROW_LIMIT, false)));
                }
            };
            let mut chunk = String::new();
            if first {
                chunk.push_str(&csv_header());
            }
            for row in &rows {
                chunk.push_str(&csv_row(row));
            }
            let read = rows.len() as i64;
            query.after = match rows.last() {
                Some(last) if read == CSV_PAGE => {
                    Some((Value::Time(Some(last.start_stamp)), last.id))
                }
                _ => None,
            };
            Some((
                Ok::<_, std::io::Error>(chunk),
                (store, query, sent + read, false),
            ))
        },
    );
    let mut response = Body::from_stream(pages).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"cdrs.csv\""),
    );
    Ok(response)
}

/// The header line: `id` then every column.
pub fn csv_header() -> String {
    let mut line = String::from("id");
    for column in Cdr::COLUMNS {
        line.push(',');
        line.push_str(column);
    }
    line.push_str("\r\n");
    line
}

/// One CDR as a CSV line (RFC 4180; cells that a spreadsheet would run as a formula are
/// prefixed with `'`).
pub fn csv_row(cdr: &Cdr) -> String {
    let mut line = csv_cell(&cdr.id.to_string());
    for value in cdr.values() {
        line.push(',');
        let cell = match value {
            Value::Int(Some(n)) => n.to_string(),
            Value::Text(Some(text)) => text,
            Value::Bool(b) => b.to_string(),
            Value::Time(Some(t)) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            Value::Int(None) | Value::Text(None) | Value::Time(None) => String::new(),
        };
        line.push_str(&csv_cell(&cell));
    }
    line.push_str("\r\n");
    line
}

fn csv_cell(value: &str) -> String {
    let guarded;
    let value =
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) && value.parse::<f64>().is_err() {
            guarded = format!("'{value}");
            guarded.as_str()
        } else {
            value
        };
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("1008"), "1008");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_cell("+8613800000000"), "+8613800000000");
        assert_eq!(csv_cell("-5"), "-5");
    }

    #[test]
    fn filters_read_dates_and_refuse_unknown_names() {
        let mut pairs = vec![
            ("start_date".to_owned(), "2026-11-01".to_owned()),
            ("end_date".to_owned(), "2026-11-24".to_owned()),
            ("min_duration".to_owned(), "10".to_owned()),
        ];
        let query = filters(&mut pairs).unwrap();
        assert_eq!(query.compares.len(), 3);
        assert_eq!(
            query.compares[1].2,
            Value::Time(Some("2026-11-25T00:00:00Z".parse().unwrap()))
        );
        let mut bad = vec![("calller".to_owned(), "1".to_owned())];
        assert!(filters(&mut bad).unwrap_err().message.contains("calller"));
        let mut bad = vec![("start_date".to_owned(), "yesterday".to_owned())];
        assert!(
            filters(&mut bad)
                .unwrap_err()
                .message
                .contains("start_date")
        );
    }
}
