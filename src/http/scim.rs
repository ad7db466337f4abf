//! `/scim/v2`: the SCIM 2.0 service provider an identity provider pushes users to. Answers
//! and errors are SCIM's (`application/scim+json`, RFC 7644 §3.12).

use super::openapi::{ScimBadInput, ScimBody, ScimConflict, ScimNotFound, ScimRefused};
use super::state::AppState;
use crate::ids::{DirectoryId, UserId};
use crate::scim::{self, protocol};
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::{DateTime, Utc};
use protocol::ScimError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(service_provider_config))
        .routes(routes!(resource_types))
        .routes(routes!(user_resource_type))
        .routes(routes!(schemas))
        .routes(routes!(schema))
        .routes(routes!(list, create))
        .routes(routes!(search))
        .routes(routes!(search_root))
        .routes(routes!(show, replace, patch, remove))
        // Not an operation: SCIM's 404 for every other path under /scim/v2.
        .route("/scim/v2/{*rest}", any(not_found))
}

// The shapes below describe, for the OpenAPI document, the JSON that `scim::protocol`
// writes and reads with serde_json's `Value` (RFC 7643 §4.1, RFC 7644 §3.4.2, §3.4.3,
// §3.5.2); the document's snapshot and the SCIM tests keep the two in step.

/// A name's parts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimName {
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
}

/// The one email kept: the work address.
#[derive(Serialize, ToSchema)]
pub struct ScimEmail {
    pub value: String,
    /// `work`.
    #[schema(nullable = false)]
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
}

/// Server-assigned facts about a resource.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimMeta {
    /// `User`.
    pub resource_type: String,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
    /// The resource's URL.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// The SCIM User resource. Unassigned attributes are omitted; `attributes` and
/// `excludedAttributes` omit more (never `id`, `schemas` or `meta`). In a request, `id` and
/// `meta` are ignored and `userName` is required.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimUser {
    /// `["urn:ietf:params:scim:schemas:core:2.0:User"]`
    pub schemas: Vec<String>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// A boolean; in a request also the strings `True`/`False` (Entra ID sends them).
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<ScimName>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<ScimEmail>>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<ScimMeta>,
}

/// A page of users (RFC 7644 §3.4.2).
#[derive(Serialize, ToSchema)]
pub struct ScimListResponse {
    /// `["urn:ietf:params:scim:api:messages:2.0:ListResponse"]`
    pub schemas: Vec<String>,
    #[serde(rename = "totalResults")]
    pub total_results: u64,
    /// 1-based.
    #[serde(rename = "startIndex")]
    pub start_index: u64,
    #[serde(rename = "itemsPerPage")]
    pub items_per_page: u64,
    #[serde(rename = "Resources")]
    pub resources: Vec<ScimUser>,
}

/// One PATCH operation; `op` and attribute names in any case.
#[derive(Serialize, ToSchema)]
pub struct ScimPatchOperation {
    /// `add`, `replace` or `remove`.
    pub op: String,
    /// The attribute (e.g. `active`, `name.givenName`, `emails[type eq "work"].value`);
    /// without one, `value` is an object of attributes.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// A PATCH request (RFC 7644 §3.5.2).
#[derive(Serialize, ToSchema)]
pub struct ScimPatchRequest {
    /// `["urn:ietf:params:scim:api:messages:2.0:PatchOp"]`
    pub schemas: Vec<String>,
    #[serde(rename = "Operations")]
    pub operations: Vec<ScimPatchOperation>,
}

/// A search request (RFC 7644 §3.4.3): the query parameters of a list, in a body.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimSearchRequest {
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schemas: Option<Vec<String>>,
    /// e.g. `userName eq "ann"`.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_index: Option<u64>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Comma-separated, or an array.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Value>,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded_attributes: Option<Value>,
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

/// A path whose rejection (an id that is not UTF-8 once decoded) is a SCIM error.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ScimError))]
struct Path<T>(T);

impl From<QueryRejection> for ScimError {
    fn from(r: QueryRejection) -> Self {
        ScimError::invalid_value(r.body_text())
    }
}

impl From<PathRejection> for ScimError {
    fn from(r: PathRejection) -> Self {
        ScimError::invalid_value(r.body_text())
    }
}

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

async fn directory(state: &AppState, headers: &HeaderMap) -> Result<DirectoryId, ScimError> {
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
    if crate::text::json_has_nul(body) {
        return Err(ScimError::invalid_value(crate::error::NUL_REFUSED));
    }
    serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))
}

/// A query string that does not parse (a repeated parameter, say) is a SCIM error like any
/// other bad input, read after the token was checked.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ScimError> {
    q.map(|Query(q)| q).map_err(ScimError::from)
}

/// The service provider's configuration (RFC 7644 §4)
///
/// Needs no token.
#[utoipa::path(
    get,
    path = "/scim/v2/ServiceProviderConfig",
    tag = "scim",
    operation_id = "scimServiceProviderConfig",
    responses((status = 200, description = "RFC 7643 §5", body = Object, content_type = "application/scim+json")),
)]
async fn service_provider_config(State(s): State<AppState>) -> Scim {
    Scim(StatusCode::OK, protocol::service_provider_config(&base(&s)))
}

/// The resource types: User (RFC 7644 §4)
///
/// Needs no token.
#[utoipa::path(
    get,
    path = "/scim/v2/ResourceTypes",
    tag = "scim",
    operation_id = "scimResourceTypes",
    responses((status = 200, description = "A ListResponse of RFC 7643 §6 resource types", body = Object, content_type = "application/scim+json")),
)]
async fn resource_types(State(s): State<AppState>) -> Scim {
    Scim(StatusCode::OK, protocol::resource_types(&base(&s)))
}

/// The User resource type (RFC 7644 §4)
///
/// Needs no token.
#[utoipa::path(
    get,
    path = "/scim/v2/ResourceTypes/User",
    tag = "scim",
    operation_id = "scimUserResourceType",
    responses((status = 200, description = "RFC 7643 §6", body = Object, content_type = "application/scim+json")),
)]
async fn user_resource_type(State(s): State<AppState>) -> Scim {
    Scim(StatusCode::OK, protocol::user_resource_type(&base(&s)))
}

/// The schemas: the core User schema (RFC 7644 §4)
///
/// Needs no token.
#[utoipa::path(
    get,
    path = "/scim/v2/Schemas",
    tag = "scim",
    operation_id = "scimSchemas",
    responses((status = 200, description = "A ListResponse of RFC 7643 §7 schemas", body = Object, content_type = "application/scim+json")),
)]
async fn schemas() -> Scim {
    Scim(StatusCode::OK, protocol::schemas())
}

/// One schema (RFC 7644 §4)
///
/// Needs no token.
#[utoipa::path(
    get,
    path = "/scim/v2/Schemas/{id}",
    tag = "scim",
    operation_id = "scimSchema",
    params(("id" = String, Path, description = "`urn:ietf:params:scim:schemas:core:2.0:User`")),
    responses(
        (status = 200, description = "RFC 7643 §7", body = Object, content_type = "application/scim+json"),
        ScimBadInput, ScimNotFound,
    ),
)]
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

/// A method a SCIM endpoint does not take: a SCIM error like the others under `/scim/v2`
/// (the router's one method fallback asks here for those paths).
pub(super) fn method_not_allowed() -> Response {
    ScimError {
        status: StatusCode::METHOD_NOT_ALLOWED.as_u16(),
        scim_type: None,
        detail: "method not allowed on this SCIM endpoint".into(),
    }
    .into_response()
}

#[derive(Deserialize, Default, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// A filter (RFC 7644 §3.4.2.2), e.g. `userName eq "ann"`.
    filter: Option<String>,
    /// 1-based; below 1 or not a number means 1.
    start_index: Option<String>,
    /// At most 200; not a number means 200.
    count: Option<String>,
    /// Comma-separated attributes to return (and `id`, `schemas`, `meta`).
    attributes: Option<String>,
    /// Comma-separated attributes to leave out.
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
async fn list_in(s: &AppState, dir: DirectoryId, q: ListQuery) -> Answer {
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

/// Lists the users of the token's directory
#[utoipa::path(
    get,
    path = "/scim/v2/Users",
    tag = "scim",
    operation_id = "scimListUsers",
    security(("scimBearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = ScimListResponse, content_type = "application/scim+json"),
        ScimRefused,
    ),
)]
async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Answer {
    let dir = directory(&s, &headers).await?;
    let q = query(q)?;
    list_in(&s, dir, q).await
}

/// Searches the users of the token's directory
///
/// The query in a SearchRequest body (RFC 7644 §3.4.3).
#[utoipa::path(
    post,
    path = "/scim/v2/Users/.search",
    tag = "scim",
    operation_id = "scimSearchUsers",
    security(("scimBearer" = [])),
    request_body(
        content = ScimSearchRequest,
        content_type = "application/scim+json",
        description = "Also accepted as application/json",
    ),
    responses(
        (status = 200, body = ScimListResponse, content_type = "application/scim+json"),
        ScimRefused, ScimBody,
    ),
)]
async fn search(
    state: State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer {
    searched(state, headers, body).await
}

/// Searches from the root: the users of the token's directory
///
/// The same as `/scim/v2/Users/.search`: users are the only resources.
#[utoipa::path(
    post,
    path = "/scim/v2/.search",
    tag = "scim",
    operation_id = "scimSearch",
    security(("scimBearer" = [])),
    request_body(
        content = ScimSearchRequest,
        content_type = "application/scim+json",
        description = "Also accepted as application/json",
    ),
    responses(
        (status = 200, body = ScimListResponse, content_type = "application/scim+json"),
        ScimRefused, ScimBody,
    ),
)]
async fn search_root(
    state: State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer {
    searched(state, headers, body).await
}

/// A SearchRequest, as a list's query.
async fn searched(
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

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ShowQuery {
    /// Comma-separated attributes to return (and `id`, `schemas`, `meta`).
    attributes: Option<String>,
    /// Comma-separated attributes to leave out.
    excluded_attributes: Option<String>,
}

/// One user of the token's directory
#[utoipa::path(
    get,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scimGetUser",
    security(("scimBearer" = [])),
    params(("id" = String, Path, description = "The user's id"), ShowQuery),
    responses(
        (status = 200, body = ScimUser, content_type = "application/scim+json"),
        ScimRefused, ScimNotFound,
    ),
)]
async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<UserId>,
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

/// Provisions a user in the token's directory
#[utoipa::path(
    post,
    path = "/scim/v2/Users",
    tag = "scim",
    operation_id = "scimCreateUser",
    security(("scimBearer" = [])),
    request_body(
        content = ScimUser,
        content_type = "application/scim+json",
        description = "Also accepted as application/json",
    ),
    responses(
        (status = 201, description = "Created", body = ScimUser, content_type = "application/scim+json"),
        ScimRefused, ScimBody, ScimConflict,
    ),
)]
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

/// Replaces a user's attributes
///
/// `active: false` suspends the user (keys and sessions stop at once); the resource stays,
/// readable with `active: false`.
/// PUT answers 200 and the resource, always (RFC 7644 §3.5.1), also when it set the user
/// inactive: the record stays, suspended.
#[utoipa::path(
    put,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scimReplaceUser",
    security(("scimBearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    request_body(
        content = ScimUser,
        content_type = "application/scim+json",
        description = "Also accepted as application/json",
    ),
    responses(
        (status = 200, body = ScimUser, content_type = "application/scim+json"),
        ScimRefused, ScimBody, ScimNotFound, ScimConflict,
    ),
)]
async fn replace(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<UserId>,
    q: Result<Query<ShowQuery>, QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer {
    let dir = directory(&s, &headers).await?;
    let q = query(q)?;
    let u = protocol::user_from_json(&json_body(&body)?)?;
    let u = scim::update(&s.0, &dir, &id, u).await?;
    Ok(written(&s, StatusCode::OK, &u, &q))
}

/// Changes a user's attributes (PatchOp)
///
/// Setting `active` to false suspends the user (keys and sessions stop at once); the
/// resource stays, readable with `active: false`.
/// PATCH answers 200 and the resource; 204 only if the client asked for no body, which
/// RFC 7644 §3.5.2 allows for PATCH alone.
#[utoipa::path(
    patch,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scimPatchUser",
    security(("scimBearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    request_body(
        content = ScimPatchRequest,
        content_type = "application/scim+json",
        description = "Also accepted as application/json",
    ),
    responses(
        (status = 200, body = ScimUser, content_type = "application/scim+json"),
        (status = 204, description = "Changed; no body because the request asked for none (`Prefer: return=minimal`)"),
        ScimRefused, ScimBody, ScimNotFound, ScimConflict,
    ),
)]
async fn patch(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<UserId>,
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

/// Deprovisions a user
///
/// The user, their keys and sessions are removed.
#[utoipa::path(
    delete,
    path = "/scim/v2/Users/{id}",
    tag = "scim",
    operation_id = "scimDeleteUser",
    security(("scimBearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Deprovisioned"),
        ScimRefused, ScimNotFound,
    ),
)]
async fn remove(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<UserId>,
) -> Result<StatusCode, ScimError> {
    let dir = directory(&s, &headers).await?;
    scim::delete(&s.0, &dir, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
