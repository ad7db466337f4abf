//! `/scim/v2`: the SCIM 2.0 service provider an identity provider pushes users to. Answers
//! and errors are SCIM's (`application/scim+json`, RFC 7644 §3.12).

use super::AppState;
use crate::scim::{self, protocol};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use protocol::ScimError;
use serde::Deserialize;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(service_provider_config),
        )
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/ResourceTypes/User", get(user_resource_type))
        .route("/scim/v2/Schemas", get(schemas))
        .route("/scim/v2/Schemas/{id}", get(schema))
        .route("/scim/v2/Users", get(list).post(create))
        .route(
            "/scim/v2/Users/{id}",
            get(show).put(replace).patch(patch).delete(remove),
        )
        .route("/scim/v2/{*rest}", get(not_found).post(not_found))
}

/// A SCIM answer: a status and a JSON document.
struct Scim(StatusCode, Value);

impl IntoResponse for Scim {
    fn into_response(self) -> Response {
        let mut r = (self.0, self.1.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/scim+json"),
        );
        r
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(detail = %self.detail, "SCIM request failed");
        }
        Scim(status, self.to_json()).into_response()
    }
}

type Answer = Result<Scim, ScimError>;

fn base(state: &AppState) -> String {
    format!("{}/scim/v2", state.0.config.server.public_url())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

async fn directory(state: &AppState, headers: &HeaderMap) -> Result<String, ScimError> {
    scim::authenticate(&state.0, bearer(headers)).await
}

fn json_body(body: &Bytes) -> Result<Value, ScimError> {
    serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))
}

async fn service_provider_config(State(s): State<AppState>) -> Scim {
    Scim(StatusCode::OK, protocol::service_provider_config(&base(&s)))
}

async fn resource_types(State(s): State<AppState>) -> Scim {
    Scim(StatusCode::OK, protocol::resource_types(&base(&s)))
}

async fn user_resource_type(State(s): State<AppState>) -> Scim {
    Scim(StatusCode::OK, protocol::user_resource_type(&base(&s)))
}

async fn schemas() -> Scim {
    Scim(StatusCode::OK, protocol::schemas())
}

async fn schema(Path(id): Path<String>) -> Answer {
    if id == protocol::USER_SCHEMA {
        Ok(Scim(StatusCode::OK, protocol::user_schema()))
    } else {
        Err(ScimError::not_found(format!("no schema `{id}`")))
    }
}

async fn not_found() -> ScimError {
    ScimError::not_found("no such SCIM endpoint")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
}

async fn list(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Answer {
    let dir = directory(&s, &headers).await?;
    let filter = q
        .filter
        .as_deref()
        .map(protocol::parse_filter)
        .transpose()?;
    let (start, count) = protocol::paging(
        q.start_index.as_deref(),
        q.count.as_deref(),
        protocol::MAX_RESULTS,
    );
    let (users, total) = scim::list(&s.0, &dir, filter, start, count).await?;
    let b = base(&s);
    let resources = users
        .iter()
        .map(|u| protocol::user_to_json(u, &b))
        .collect();
    Ok(Scim(
        StatusCode::OK,
        protocol::list_response(resources, total, start, count),
    ))
}

async fn show(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    let dir = directory(&s, &headers).await?;
    let u = scim::get(&s.0, &dir, &id).await?;
    Ok(Scim(StatusCode::OK, protocol::user_to_json(&u, &base(&s))))
}

async fn create(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Answer {
    let dir = directory(&s, &headers).await?;
    let u = protocol::user_from_json(&json_body(&body)?)?;
    let created = scim::create(&s.0, &dir, u).await?;
    Ok(Scim(
        StatusCode::CREATED,
        protocol::user_to_json(&created, &base(&s)),
    ))
}

async fn replace(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    let dir = directory(&s, &headers).await?;
    let u = protocol::user_from_json(&json_body(&body)?)?;
    Ok(match scim::update(&s.0, &dir, &id, u).await? {
        Some(u) => Scim(StatusCode::OK, protocol::user_to_json(&u, &base(&s))).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn patch(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    let dir = directory(&s, &headers).await?;
    Ok(
        match scim::patch(&s.0, &dir, &id, &json_body(&body)?).await? {
            Some(u) => Scim(StatusCode::OK, protocol::user_to_json(&u, &base(&s))).into_response(),
            // Deprovisioned: the resource is gone.
            None => StatusCode::NO_CONTENT.into_response(),
        },
    )
}

async fn remove(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ScimError> {
    let dir = directory(&s, &headers).await?;
    scim::delete(&s.0, &dir, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
