//! `/scim/v2`: the SCIM 2.0 service provider an identity provider pushes users to. Answers
//! and errors are SCIM's (`application/scim+json`, RFC 7644 §3.12).

use super::state::AppState;
use crate::scim::{self, protocol};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
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
        .route("/scim/v2/Users/.search", axum::routing::post(search))
        .route("/scim/v2/.search", axum::routing::post(search))
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

fn json_body(
    body: &Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Value, ScimError> {
    let body = body.as_ref().map_err(|r| ScimError {
        status: r.status().as_u16(),
        scim_type: None,
        detail: r.body_text(),
    })?;
    serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))
}

/// A query string that does not parse (a repeated parameter, say) is a SCIM error like any
/// other bad input, read after the token was checked.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ScimError> {
    q.map(|Query(q)| q).map_err(|r| ScimError {
        status: r.status().as_u16(),
        scim_type: None,
        detail: r.body_text(),
    })
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

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) over top-level attributes and
/// `parent.sub` paths; `id`, `schemas` and `meta` are always returned.
fn project(mut v: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let names = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|a| {
                let a = a.trim();
                a.strip_prefix(protocol::USER_SCHEMA)
                    .map(|r| r.trim_start_matches(':'))
                    .unwrap_or(a)
                    .to_ascii_lowercase()
            })
            .filter(|a| !a.is_empty())
            .collect()
    };
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    let always = ["id", "schemas", "meta"];
    if let Some(wanted) = attributes.map(names).filter(|w| !w.is_empty()) {
        obj.retain(|k, val| {
            let k = k.to_ascii_lowercase();
            if always.contains(&k.as_str()) || wanted.contains(&k) {
                return true;
            }
            let prefix = format!("{k}.");
            let subs: Vec<&str> = wanted
                .iter()
                .filter_map(|w| w.strip_prefix(&prefix))
                .collect();
            if subs.is_empty() {
                return false;
            }
            if let Some(inner) = val.as_object_mut() {
                inner.retain(|sk, _| subs.contains(&sk.to_ascii_lowercase().as_str()));
            }
            true
        });
    }
    if let Some(dropped) = excluded.map(names) {
        obj.retain(|k, val| {
            let k = k.to_ascii_lowercase();
            if always.contains(&k.as_str()) {
                return true;
            }
            if let Some(inner) = val.as_object_mut() {
                inner
                    .retain(|sk, _| !dropped.contains(&format!("{k}.{}", sk.to_ascii_lowercase())));
            }
            !dropped.contains(&k)
        });
    }
    v
}

/// Lists the users of `dir`, the directory the caller's token authenticated for.
async fn list_in(s: &AppState, dir: String, q: ListQuery) -> Answer {
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
    let b = base(s);
    let resources = users
        .iter()
        .map(|u| {
            project(
                protocol::user_to_json(u, &b),
                q.attributes.as_deref(),
                q.excluded_attributes.as_deref(),
            )
        })
        .collect();
    Ok(Scim(
        StatusCode::OK,
        protocol::list_response(resources, total, start, count),
    ))
}

async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Answer {
    let dir = directory(&s, &headers).await?;
    let q = query(q)?;
    list_in(&s, dir, q).await
}

/// POST /Users/.search: the query in a SearchRequest body (RFC 7644 §3.4.3).
async fn search(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer {
    // The token first, as everywhere: an unauthenticated caller learns nothing, not even
    // how we parse.
    let dir = directory(&s, &headers).await?;
    let v = json_body(&body)?;
    let text = |k: &str| -> Option<String> {
        match v.get(k)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Array(a) => Some(
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        }
    };
    let q = ListQuery {
        filter: text("filter"),
        start_index: text("startIndex"),
        count: text("count"),
        attributes: text("attributes"),
        excluded_attributes: text("excludedAttributes"),
    };
    list_in(&s, dir, q).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ShowQuery {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<ShowQuery>, QueryRejection>,
) -> Answer {
    let dir = directory(&s, &headers).await?;
    let q = query(q)?;
    let u = scim::get(&s.0, &dir, &id).await?;
    let v = protocol::user_to_json(&u, &base(&s));
    Ok(Scim(
        StatusCode::OK,
        project(v, q.attributes.as_deref(), q.excluded_attributes.as_deref()),
    ))
}

/// A user as the answer to a write: the whole resource, or the part the caller asked for
/// with `attributes` / `excludedAttributes` (RFC 7644 §3.9 applies to every operation that
/// returns a resource).
fn written(s: &AppState, status: StatusCode, u: &protocol::ScimUser, q: &ShowQuery) -> Scim {
    let v = protocol::user_to_json(u, &base(s));
    Scim(
        status,
        project(v, q.attributes.as_deref(), q.excluded_attributes.as_deref()),
    )
}

/// The client asked for no body (`Prefer: return=minimal`, RFC 7240).
fn wants_minimal(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"))
}

async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ShowQuery>, QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer {
    let dir = directory(&s, &headers).await?;
    let q = query(q)?;
    let u = protocol::user_from_json(&json_body(&body)?)?;
    let created = scim::create(&s.0, &dir, u).await?;
    Ok(written(&s, StatusCode::CREATED, &created, &q))
}

/// PUT answers 200 and the resource, always (RFC 7644 §3.5.1), also when it set the user
/// inactive: the record stays, suspended.
async fn replace(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<ShowQuery>, QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer {
    let dir = directory(&s, &headers).await?;
    let q = query(q)?;
    let u = protocol::user_from_json(&json_body(&body)?)?;
    let u = scim::update(&s.0, &dir, &id, u).await?;
    Ok(written(&s, StatusCode::OK, &u, &q))
}

/// PATCH answers 200 and the resource; 204 only if the client asked for no body, which
/// RFC 7644 §3.5.2 allows for PATCH alone.
async fn patch(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<ShowQuery>, QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ScimError> {
    let dir = directory(&s, &headers).await?;
    let q = query(q)?;
    let u = scim::patch(&s.0, &dir, &id, &json_body(&body)?).await?;
    if wants_minimal(&headers) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(written(&s, StatusCode::OK, &u, &q).into_response())
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
