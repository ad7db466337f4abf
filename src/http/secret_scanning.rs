//! `POST /api/secret-scanning/reports`: tokens a secret scanner (GitHub's partner program)
//! found in public. No session: the scanner's signature over the body is the
//! authentication. Refusals say little; the log says why under the answer's error id.

use super::error::{status_message, ApiError};
use super::extract::{RawBody, RemoteAddr};
use super::state::AppState;
use crate::directory::scanner::signature::MAX_HEADER_BYTES;
use crate::secret_scanning::{self, ReportError, ReportedToken, TokenVerdict, MAX_REPORT_BYTES};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

/// The key that signed the report.
pub const KEY_IDENTIFIER_HEADER: &str = "github-public-key-identifier";
/// Base64 of the DER ECDSA P-256 / SHA-256 signature over the raw body.
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report).layer(axum::extract::DefaultBodyLimit::max(MAX_REPORT_BYTES)))
}

/// Reports tokens found in public
///
/// For a secret scanner (GitHub's secret scanning partner program): the body is a list of
/// tokens found in public, signed with the scanner's key (headers
/// `Github-Public-Key-Identifier` and `Github-Public-Key-Signature`: base64 of an ECDSA
/// P-256 / SHA-256 signature over the raw body). Each token that is one of our key ids or
/// key passwords deletes that key at once, and its owner is told. The answer has a verdict
/// per token, in order.
#[utoipa::path(
    post,
    path = "/api/secret-scanning/reports",
    tag = "secret-scanning",
    operation_id = "reportLeakedTokens",
    security(()),
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "The identifier of the scanner's key that signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 of the DER ECDSA P-256 / SHA-256 signature over the raw body"),
    ),
    request_body(content = Vec<ReportedToken>, content_type = "application/json",
        description = "The tokens found: at most 1000, at most 1 MiB in all"),
    responses(
        (status = 200, description = "A verdict per reported token, in order", body = Vec<TokenVerdict>),
        (status = 400, description = "Signed, but not a list of tokens", body = super::error::StatusMessage),
        (status = 401, description = "No signature, a signature that does not match, or a key the scanner does not publish", body = super::error::StatusMessage),
        (status = 404, description = "Secret scanning reports are not taken here (no `[secret_scanning]`)", body = super::error::StatusMessage),
        (status = 413, description = "Longer than 1 MiB, or more than 1000 tokens", body = super::error::StatusMessage),
        (status = 503, description = "The scanner's public keys cannot be read now, or the database is unavailable; send it again later", body = super::error::StatusMessage),
    ),
)]
async fn report(
    State(s): State<AppState>,
    RemoteAddr(addr): RemoteAddr,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= MAX_HEADER_BYTES)
    };
    let result = secret_scanning::receive(
        &s.0,
        header(KEY_IDENTIFIER_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        addr,
    )
    .await;
    match result {
        Ok(verdicts) => Ok(Json(verdicts).into_response()),
        Err(ReportError::NotConfigured) => Ok(status_message(
            StatusCode::NOT_FOUND,
            "secret scanning reports are not taken here",
        )),
        Err(ReportError::Refused(why)) => Ok(refused(
            StatusCode::UNAUTHORIZED,
            "the report's signature could not be verified",
            &why.to_string(),
        )),
        Err(e @ ReportError::Malformed(_)) => Ok(refused(
            StatusCode::BAD_REQUEST,
            "the report is not a JSON list of tokens",
            &e.to_string(),
        )),
        Err(e @ ReportError::TooMany(_)) => {
            Ok(status_message(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))
        }
        // The reason names the file or URL: for the log, under the answer's id.
        Err(ReportError::Unavailable(why)) => Err(ApiError::from(crate::error::Error::outage(
            "the secret scanner's public keys cannot be read now; try again later",
            why.to_string(),
        ))),
        Err(ReportError::Failed(e)) => Err(ApiError::from(e)),
    }
}

/// A refusal in our error shape; `detail` goes to the log only, under the id the answer names.
fn refused(status: StatusCode, public: &str, detail: &str) -> Response {
    let id = format!("{:016x}", rand::random::<u64>());
    tracing::info!(error_id = %id, status = status.as_u16(), %detail, "secret scanning report refused");
    (
        status,
        Json(super::error::StatusMessage {
            status_message: format!("{public} (error id {id})"),
            error_id: Some(id),
        }),
    )
        .into_response()
}
