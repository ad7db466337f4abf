//! `/api/events/logins`: trusted systems report interactive logins (bearer ingestion token).

use super::error::ApiError;
use super::extract::RawBody;
use super::openapi::{RawInput, Refused};
use super::state::AppState;
use crate::error::Error;
use crate::events::{self, EventResult, EventStatus, LoginEvent};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// A full batch of events is larger than the general body limit.
const MAX_BODY: usize = 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(logins).layer(axum::extract::DefaultBodyLimit::max(MAX_BODY)))
}

/// The body: `{"events": [...]}` or a bare array of events. Only for the document: the
/// handler reads the body itself, to name the part that is wrong.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum LoginEvents {
    Wrapped { events: Vec<LoginEvent> },
    Bare(Vec<LoginEvent>),
}

/// What became of a batch: a count per outcome, and each event's.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestOutput {
    pub updated: usize,
    pub created: usize,
    pub unchanged: usize,
    pub unknown_users: usize,
    pub rejected: usize,
    /// One per event, in the order sent.
    pub results: Vec<EventResult>,
}

/// Reports interactive logins
///
/// For trusted systems (an ingestion token): each known user's last login moves forward,
/// which keeps their access keys working. Up to 1 MiB of events at once.
#[utoipa::path(
    post,
    path = "/api/events/logins",
    tag = "events",
    operation_id = "reportLogins",
    security(("ingestionBearer" = [])),
    request_body(content = inline(LoginEvents), content_type = "application/json"),
    responses(
        (status = 200, body = IngestOutput),
        Refused, RawInput,
    ),
)]
async fn logins(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<IngestOutput>, ApiError> {
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
    Ok(Json(IngestOutput {
        updated: count(EventStatus::Updated),
        created: count(EventStatus::Created),
        unchanged: count(EventStatus::Unchanged),
        unknown_users: count(EventStatus::UnknownUser),
        rejected: count(EventStatus::Rejected),
        results,
    }))
}
