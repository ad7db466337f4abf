//! The OpenAPI 3.1 document of the API, served at `GET /api/openapi.json`. The operations
//! come from the handlers' `#[utoipa::path]` (each area registers its routes with
//! `routes!`, so a route cannot exist without its operation); this file holds what belongs
//! to no one handler: `info`, the security schemes, and the error answers they share.
//! A request body is documented with one content type, the other one accepted named in its
//! description: client generators (openapi-python-client) make no working function of one
//! schema under two content types.

use super::error::StatusMessage;
use crate::sync::RunStatus;
use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response as ApiResponse, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Header, OpenApi as Document, Ref, RefOr};
use utoipa::{IntoResponses, OpenApi, PartialSchema, ToSchema};

/// Security scheme names, as the operations' `security(...)` name them.
pub const BASIC: &str = "basic";
pub const SQ_AUTH: &str = "sqAuth";
pub const SESSION_BEARER: &str = "sessionBearer";
pub const SESSION_COOKIE: &str = "session";
pub const SCIM_BEARER: &str = "scimBearer";
pub const INGESTION_BEARER: &str = "ingestionBearer";
pub const SSF_PUSH_BEARER: &str = "ssfPushBearer";

/// What the document says beyond the operations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "accesskeyd",
        description = "Directory-bound access keys for scripts, notebooks and OData clients. \
            Authentication, users, access keys and system configuration have the shapes of the \
            Seeq REST API (camelCase JSON); the rest is accesskeyd's own. docs/api.md has the \
            narrative and the Seeq-compatibility notes."
    ),
    components(schemas(StatusMessage, ScimErrorBody)),
    modifiers(&Shared),
    tags(
        (name = "auth", description = "Login, logout, sign-in and forward authentication"),
        (name = "users", description = "Users and service accounts"),
        (name = "accesskeys", description = "Access keys"),
        (name = "system", description = "Server status and runtime configuration options"),
        (name = "audit", description = "The audit trail"),
        (name = "directories", description = "Directories and their synchronisation"),
        (name = "events", description = "Logins reported by trusted systems"),
        (name = "scim", description = "SCIM 2.0 service provider (RFC 7643, RFC 7644)"),
        (name = "ssf", description = "OpenID Shared Signals receiver (SSF 1.0, RFC 8935 push)"),
        (name = "secret-scanning", description = "Leaked-token reports from a secret scanner (GitHub's partner program)"),
        (name = "openapi", description = "This document"),
    )
)]
pub struct ApiDoc;

/// The security schemes and the shared error answers.
struct Shared;

impl utoipa::Modify for Shared {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let schemes = [
            (
                BASIC,
                SecurityScheme::Http(
                    HttpBuilder::new().scheme(HttpAuthScheme::Basic).description(Some(
                        "An access key as the username and its password (OData clients, curl); \
                         stateless, checked on every request",
                    ))
                    .build(),
                ),
            ),
            (
                SQ_AUTH,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "x-sq-auth",
                    "The session token answered by POST /api/auth/login in `x-sq-auth` \
                     (what the Seeq SDK sends)",
                ))),
            ),
            (
                SESSION_BEARER,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("The session token as `Authorization: Bearer`"))
                        .build(),
                ),
            ),
            (
                SESSION_COOKIE,
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    "accesskeyd_session",
                    "The browser session of the web pages; on the API it authenticates only \
                     requests that change nothing (GET, HEAD), a change with it is answered 403",
                ))),
            ),
            (
                SCIM_BEARER,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(
                    "A directory's SCIM token (`accesskeyd scim-token create DIR`)",
                )).build()),
            ),
            (
                INGESTION_BEARER,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(
                    "A login-event ingestion token, `akevt_...` (`accesskeyd event-token create`)",
                )).build()),
            ),
            (
                SSF_PUSH_BEARER,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(
                    "The token of a directory's `ssf.push_token_file`, when it has one (the \
                     transmitter's stream sends it as its authorization header)",
                )).build()),
            ),
        ];
        for (name, scheme) in schemes {
            components.security_schemes.insert(name.to_string(), scheme);
        }
        for (name, response) in shared_responses() {
            components
                .responses
                .insert(name.to_string(), response.into());
        }
    }
}

fn json_error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name(StatusMessage::name()))),
    )
}

fn scim_error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/scim+json",
        Content::new(Some(Ref::from_schema_name(ScimErrorBody::name()))),
    )
}

fn header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(String::schema())
        .description(Some(description))
        .build()
}

fn retry_after() -> Header {
    HeaderBuilder::new()
        .schema(u64::schema())
        .description(Some("Seconds to wait before trying again"))
        .build()
}

/// The answers named by [`Refused`] and its kin, as components.
fn shared_responses() -> Vec<(&'static str, ApiResponse)> {
    vec![
        (
            "BadRequest",
            json_error(
                "Malformed or invalid input (body, query, path or credentials); the message \
                 names the field",
            )
            .build(),
        ),
        (
            "Unauthenticated",
            json_error(
                "No credentials, or credentials that are wrong, expired or not valid now",
            )
            .header(
                "WWW-Authenticate",
                header("`Basic realm=\"accesskeyd\"`: OData clients then send access-key credentials"),
            )
            .build(),
        ),
        (
            "Forbidden",
            json_error("Authenticated, but not allowed to do this (not an admin, an access key where an interactive session is needed, a session cookie on a change)").build(),
        ),
        ("NotFound", json_error("No such thing").build()),
        (
            "Conflict",
            json_error("The request conflicts with the current state (a limit reached, a name taken)")
                .build(),
        ),
        (
            "PayloadTooLarge",
            json_error("The body is larger than `server.max_body_bytes`").build(),
        ),
        (
            "UnsupportedMediaType",
            json_error("The body is not sent as application/json or application/vnd.seeq.v1+json")
                .build(),
        ),
        (
            "TooManyRequests",
            json_error("Too many failed attempts from this client or for this name")
                .header("Retry-After", retry_after())
                .build(),
        ),
        (
            "Unavailable",
            json_error(
                "A dependency (database, directory) is unavailable, or too much password \
                 hashing is waiting (then with Retry-After)",
            )
            .header("Retry-After", retry_after())
            .build(),
        ),
        (
            "ScimBadRequest",
            scim_error("Invalid input: scimType says what (invalidSyntax, invalidValue, invalidFilter, invalidPath, noTarget)").build(),
        ),
        (
            "ScimUnauthorized",
            scim_error("No SCIM bearer token, or one that is unknown or revoked").build(),
        ),
        ("ScimForbidden", scim_error("Not allowed").build()),
        ("ScimNotFound", scim_error("No such resource").build()),
        (
            "ScimConflict",
            scim_error("scimType `uniqueness`: a userName or externalId already taken").build(),
        ),
        (
            "ScimPayloadTooLarge",
            scim_error("The body is larger than `server.max_body_bytes`").build(),
        ),
        (
            "ScimTooManyRequests",
            scim_error("Too many attempts").build(),
        ),
        (
            "ScimUnavailable",
            scim_error("The database is unavailable").build(),
        ),
    ]
}

/// `(status, component name)` pairs as an operation's responses.
fn refs(pairs: &[(&str, &str)]) -> BTreeMap<String, RefOr<ApiResponse>> {
    pairs
        .iter()
        .map(|(status, name)| {
            (
                status.to_string(),
                RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))),
            )
        })
        .collect()
}

/// The refusals of any request that carries credentials: 400 (malformed credentials or
/// input), 401, 429 (the failed-login throttle), 503.
pub struct Refused;

impl IntoResponses for Refused {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[
            ("400", "BadRequest"),
            ("401", "Unauthenticated"),
            ("429", "TooManyRequests"),
            ("503", "Unavailable"),
        ])
    }
}

/// 403: an admin's operation, a change an access key may not make, a cookie on a change.
pub struct Forbidden;

impl IntoResponses for Forbidden {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[("403", "Forbidden")])
    }
}

/// 404.
pub struct NotFound;

impl IntoResponses for NotFound {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[("404", "NotFound")])
    }
}

/// 409.
pub struct Conflict;

impl IntoResponses for Conflict {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[("409", "Conflict")])
    }
}

/// What a JSON body may be refused with: 400 (malformed, wrong shape), 413, 415.
pub struct JsonInput;

impl IntoResponses for JsonInput {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[
            ("400", "BadRequest"),
            ("413", "PayloadTooLarge"),
            ("415", "UnsupportedMediaType"),
        ])
    }
}

/// A body read as bytes and parsed by the handler (any content type): 400, 413.
pub struct RawInput;

impl IntoResponses for RawInput {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[("400", "BadRequest"), ("413", "PayloadTooLarge")])
    }
}

/// A query or path that cannot be read: 400.
pub struct BadInput;

impl IntoResponses for BadInput {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[("400", "BadRequest")])
    }
}

/// 429, for operations without credentials that the throttle still counts.
pub struct Throttled;

impl IntoResponses for Throttled {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[("429", "TooManyRequests")])
    }
}

/// 503, for operations without credentials that still need the database.
pub struct Unavailable;

impl IntoResponses for Unavailable {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[("503", "Unavailable")])
    }
}

/// The refusals of every SCIM request (token, input, database), as SCIM errors.
pub struct ScimRefused;

impl IntoResponses for ScimRefused {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[
            ("400", "ScimBadRequest"),
            ("401", "ScimUnauthorized"),
            ("403", "ScimForbidden"),
            ("429", "ScimTooManyRequests"),
            ("503", "ScimUnavailable"),
        ])
    }
}

/// A SCIM path that cannot be read (not UTF-8 once decoded): 400, as a SCIM error.
pub struct ScimBadInput;

impl IntoResponses for ScimBadInput {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[("400", "ScimBadRequest")])
    }
}

/// SCIM 404.
pub struct ScimNotFound;

impl IntoResponses for ScimNotFound {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[("404", "ScimNotFound")])
    }
}

/// SCIM 409 (`uniqueness`).
pub struct ScimConflict;

impl IntoResponses for ScimConflict {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[("409", "ScimConflict")])
    }
}

/// A SCIM body: 413 when too large (bad JSON is in [`ScimRefused`]'s 400).
pub struct ScimBody;

impl IntoResponses for ScimBody {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        refs(&[("413", "ScimPayloadTooLarge")])
    }
}

/// A SCIM error (RFC 7644 §3.12), as `scim::protocol::ScimError::to_json` writes it.
#[derive(Serialize, ToSchema)]
#[schema(as = ScimError)]
#[serde(rename_all = "camelCase")]
pub struct ScimErrorBody {
    /// `["urn:ietf:params:scim:api:messages:2.0:Error"]`
    pub schemas: Vec<String>,
    /// The HTTP status, as a string (RFC 7644 §3.12).
    pub status: String,
    /// Present for 400 and 409: invalidSyntax, invalidValue, invalidFilter, invalidPath,
    /// noTarget, uniqueness.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<String>,
    pub detail: String,
}

/// A sync run's status: its stored strings, which the API shows too.
impl PartialSchema for RunStatus {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(RunStatus::ALL.iter().map(|s| s.as_str())))
            .description(Some(
                "running; ok (applied); dry-run (nothing changed); blocked (over a threshold \
                 or an empty read: nothing changed until an admin approves); failed (nothing \
                 changed; see error)",
            ))
            .into()
    }
}

impl ToSchema for RunStatus {}

/// The document as JSON, made once by the first router built in this process (every
/// router of a build makes the same document).
static DOCUMENT: OnceLock<Bytes> = OnceLock::new();

/// Keeps `doc` (which starts from [`ApiDoc`]) as the served document, unless one is kept
/// already.
///
/// # Panics
/// At start-up, if the document cannot be written as JSON (it always can: it is made of
/// strings and maps with string keys).
pub fn keep(doc: Document) {
    DOCUMENT.get_or_init(|| {
        #[allow(clippy::expect_used)]
        let json = serde_json::to_vec_pretty(&doc).expect("the OpenAPI document is JSON");
        Bytes::from(json)
    });
}

/// The OpenAPI 3.1 document of this API
///
/// Generated from the handlers and their types; needs no credentials.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "openapi",
    operation_id = "getOpenApiDocument",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object),
    )
)]
pub async fn document() -> Response {
    match DOCUMENT.get() {
        Some(json) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json.clone(),
        )
            .into_response(),
        // Only a router made without `keep` (none is) would get here.
        None => super::error::status_message(
            StatusCode::SERVICE_UNAVAILABLE,
            "the OpenAPI document is not built",
        ),
    }
}
