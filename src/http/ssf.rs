//! `POST /api/ssf/{directory}/events`: Security Event Tokens pushed by a directory's Shared
//! Signals transmitter (RFC 8935). The caller is not authenticated by us (the SET is, by its
//! signature; a push token may be required too): answers say little, the log says the rest
//! under an id.

use super::error::{status_message, ApiError};
use super::extract::{Path, RawBody};
use super::openapi::NotFound;
use super::state::AppState;
use crate::directory::ssf::set::{ErrorCode, MAX_SET_BYTES};
use crate::ids::DirectoryId;
use crate::ssf::{self, SetError};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// RFC 8935 §2.1: a pushed SET comes as this media type.
const SET_MEDIA_TYPE: &str = "application/secevent+jwt";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(push).layer(axum::extract::DefaultBodyLimit::max(MAX_SET_BYTES)))
}

/// A refused SET (RFC 8935 §2.3): the error code and a short description.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetErrorBody {
    /// An RFC 8935 §2.4 error code: `invalid_request`, `invalid_key`, `invalid_issuer`,
    /// `invalid_audience`, `authentication_failed` or `access_denied`.
    pub err: String,
    /// What was wrong, in general terms, with an id the receiver's log has the details under.
    pub description: String,
}

/// Receives a pushed Security Event Token
///
/// For a directory's OpenID Shared Signals transmitter (RFC 8935 push delivery): the body is
/// one SET, signed by a key of the transmitter's JWKS. 202 when it was taken (its events
/// applied, or acknowledged and ignored); 400 with an RFC 8935 error code when it is not an
/// acceptable SET (a replayed `jti` is `invalid_request`).
#[utoipa::path(
    post,
    path = "/api/ssf/{directory}/events",
    tag = "ssf",
    operation_id = "pushSecurityEvent",
    params(("directory" = String, Path, description = "The OpenID Connect directory's id")),
    security((), ("ssfPushBearer" = [])),
    request_body(content = String, content_type = "application/secevent+jwt",
        description = "The SET: a compact JWS"),
    responses(
        (status = 202, description = "The SET was taken"),
        (status = 400, description = "Not an acceptable SET", body = SetErrorBody),
        (status = 401, description = "The directory wants a push token and none was sent", body = SetErrorBody),
        (status = 403, description = "The push token is wrong", body = SetErrorBody),
        NotFound,
        (status = 413, description = "Longer than 64 KiB"),
        (status = 415, description = "Not application/secevent+jwt", body = SetErrorBody),
        (status = 503, description = "The transmitter's keys cannot be fetched now; send it again later"),
    ),
)]
async fn push(
    State(s): State<AppState>,
    Path(directory): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let dir = DirectoryId::from(directory);
    let Some((_, cfg)) = ssf::settings(&s.0, &dir).filter(|(_, c)| c.push) else {
        return Ok(status_message(
            StatusCode::NOT_FOUND,
            "no directory takes shared signals here",
        ));
    };
    if let Some(expected) = &cfg.push_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        match sent {
            None => {
                let mut r = refused(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::AuthenticationFailed,
                    &dir,
                    "no bearer token",
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return Ok(r);
            }
            Some(t) if !expected.ct_eq(t) => {
                return Ok(refused(
                    StatusCode::FORBIDDEN,
                    ErrorCode::AccessDenied,
                    &dir,
                    "a wrong bearer token",
                ))
            }
            Some(_) => {}
        }
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() != Some(SET_MEDIA_TYPE) {
        // A general HTTP error (RFC 8935 §2.3 leaves those to HTTP): the request is not a
        // SET transmission at all.
        return Ok(refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidRequest,
            &dir,
            "Content-Type is not application/secevent+jwt",
        ));
    }
    match ssf::receive(&s.0, &dir, &body, s.0.clock.now()).await {
        Ok(receipt) => {
            tracing::info!(directory = %dir, jti = %receipt.jti, events = ?receipt.events, "shared signal received");
            Ok(StatusCode::ACCEPTED.into_response())
        }
        Err(SetError::Refused(r) | SetError::Replayed(r)) => {
            Ok(refused(StatusCode::BAD_REQUEST, r.code, &dir, &r.detail))
        }
        Err(SetError::NotHere) => Ok(status_message(
            StatusCode::NOT_FOUND,
            "no directory takes shared signals here",
        )),
        // The reason names the transmitter's addresses: for the log, under the answer's id.
        Err(SetError::Unavailable(why)) => Err(ApiError::from(crate::error::Error::outage(
            crate::error::DIRECTORY_UNAVAILABLE,
            format!("shared signals of {dir}: {why}"),
        ))),
        Err(SetError::Internal(e)) => Err(ApiError::from(e)),
    }
}

/// An RFC 8935 error answer; `detail` goes to the log only, under the id the answer names.
fn refused(status: StatusCode, code: ErrorCode, dir: &DirectoryId, detail: &str) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    tracing::info!(error_id = %id, directory = %dir, err = code.as_str(), %detail, "shared signal refused");
    (
        status,
        Json(SetErrorBody {
            err: code.as_str().to_string(),
            description: format!("{} (error id {id})", code.description()),
        }),
    )
        .into_response()
}
