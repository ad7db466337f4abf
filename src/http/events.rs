//! `/api/events/logins`: trusted systems report interactive logins; `/api/events/windows`:
//! the domain controllers' forwarders send Windows Security events (bearer ingestion token).

use super::error::ApiError;
use super::extract::{Query, RawBody};
use super::openapi::{Forbidden, RawInput, Refused};
use super::state::AppState;
use crate::error::Error;
use crate::events::{self, EventResult, EventStatus, LoginEvent, WindowsOutcome};
use axum::extract::{FromRequest, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// A full batch of events is larger than the general body limit.
const MAX_BODY: usize = 1024 * 1024;

/// A forwarder's batch of Windows events: each record carries the event's whole text.
const MAX_WINDOWS_BODY: usize = 8 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(logins).layer(axum::extract::DefaultBodyLimit::max(MAX_BODY)))
        .routes(routes!(windows).layer(axum::extract::DefaultBodyLimit::max(MAX_WINDOWS_BODY)))
}

/// The bearer token of `Authorization: Bearer <token>`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
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
    let source = events::authenticate(&s.0, bearer(&headers)).await?;
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

/// `?directory=`: the LDAP directory whose people signed in.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct WindowsQuery {
    /// The directory id; optional when the token reports for one directory only.
    directory: Option<String>,
}

/// The body: the records as the forwarder sends them. Only for the document: the handler
/// reads the body itself.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(
    description = "A JSON array of records (Fluent Bit `Format json`), records one per line (Fluent Bit `json_lines`, NXLog `BatchMode multiline`), or one record (NXLog without batching). A record is a Windows event as Fluent Bit's `winevtlog` input (`EventID`, `TimeCreated`, `StringInserts`, or `System` as XML) or NXLog's `im_msvistalog` (`EventID`, `EventTime`, `TargetUserName`, `TargetDomainName`, `LogonType`, `Status`) produces it."
)]
struct WindowsRecords(Vec<serde_json::Map<String, Value>>);

/// Reports Windows sign-ins from Security events
///
/// For the forwarders on the domain controllers (an ingestion token): Fluent Bit's
/// `winevtlog` input through its `http` output, or NXLog's `im_msvistalog` through `om_http`.
/// 4624 (logon types 2, 7, 10, 11) and 4768 (status 0x0) of the directory's domains move the
/// person's last login forward; everything else is counted and ignored. Up to 8 MiB and
/// 20,000 records at once. A batch with records that cannot be read still answers 200, with
/// counts: forwarders resend a refused batch whole.
#[utoipa::path(
    post,
    path = "/api/events/windows",
    tag = "events",
    operation_id = "reportWindowsEvents",
    security(("ingestionBearer" = [])),
    params(WindowsQuery),
    request_body(content = inline(WindowsRecords), content_type = "application/json"),
    responses(
        (status = 200, body = WindowsOutcome),
        Refused, Forbidden, RawInput,
    ),
)]
async fn windows(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<WindowsQuery>,
    request: axum::extract::Request,
) -> Result<Json<WindowsOutcome>, ApiError> {
    // The token first: an unknown caller's body is never read, nor its size answered.
    let source = events::authenticate(&s.0, bearer(&headers)).await?;
    let dir = events::windows_directory(&s.0, &source, q.directory.as_deref())?;
    let RawBody(body) = RawBody::from_request(request, &s).await?;
    let records = events::windows::records(&body).map_err(|e| Error::invalid(e.to_string()))?;
    drop(body);
    Ok(Json(
        events::ingest_windows(&s.0, &source, dir, records).await?,
    ))
}
