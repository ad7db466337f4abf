//! `/api/events/logins`: trusted systems report interactive logins (bearer ingestion token).

use super::error::ApiError;
use super::extract::RawBody;
use super::state::AppState;
use crate::error::Error;
use crate::events::{self, EventStatus, LoginEvent};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// A full batch of events is larger than the general body limit.
const MAX_BODY: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/events/logins",
        post(logins).layer(axum::extract::DefaultBodyLimit::max(MAX_BODY)),
    )
}

async fn logins(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let source = events::authenticate(&s.0, bearer).await?;
    // `{"events": [...]}` or a bare array.
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("body: not JSON: {e}")))?;
    let list = match v {
        Value::Object(mut m) => m.remove("events").unwrap_or(Value::Null),
        other => other,
    };
    let events: Vec<LoginEvent> =
        serde_json::from_value(list).map_err(|e| Error::invalid(format!("events: {e}")))?;
    let results = events::ingest(&s.0, &source, events).await?;
    let count = |st: EventStatus| results.iter().filter(|r| r.status == st).count();
    Ok(Json(json!({
        "updated": count(EventStatus::Updated),
        "created": count(EventStatus::Created),
        "unchanged": count(EventStatus::Unchanged),
        "unknownUsers": count(EventStatus::UnknownUser),
        "rejected": count(EventStatus::Rejected),
        "results": results,
    })))
}
