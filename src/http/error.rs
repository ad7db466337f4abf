//! The HTTP error: every failure becomes `{"statusMessage": ...}` with its status, decided
//! in the one match below.

use crate::error::Error;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    Domain(Error),
    /// A request the framework could not parse (body, content type, query, path).
    Rejected {
        status: StatusCode,
        message: String,
    },
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Domain(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match r.status() {
            // A body of the wrong shape is a plain 400 in this API, not axum's 422.
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            s => s,
        };
        let message = match &r {
            JsonRejection::MissingJsonContentType(_) => {
                "send the body as application/json or application/vnd.seeq.v1+json".to_string()
            }
            other => other.body_text(),
        };
        ApiError::Rejected { status, message }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        ApiError::Rejected {
            status: r.status(),
            message: r.body_text(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::Rejected {
            status: StatusCode::BAD_REQUEST,
            message: r.body_text(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::Rejected {
            status: StatusCode::BAD_REQUEST,
            message: r.body_text(),
        }
    }
}

pub fn status_message(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "statusMessage": message.into() }))).into_response()
}

/// The one mapping of domain errors to HTTP: status, the message for the client, and the
/// Retry-After seconds of a 429 or a shed 503. The API and the web pages both answer with it.
pub fn domain_status(e: Error) -> (StatusCode, String, Option<u64>) {
    match e {
        Error::Invalid(m) => (StatusCode::BAD_REQUEST, m, None),
        Error::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m, None),
        Error::Forbidden(m) => (StatusCode::FORBIDDEN, m, None),
        Error::NotFound(m) => (StatusCode::NOT_FOUND, m, None),
        Error::Conflict(m) => (StatusCode::CONFLICT, m, None),
        Error::Unavailable(m) => {
            tracing::warn!(reason = %m, "dependency unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, m, None)
        }
        Error::RateLimited(m, after) => (StatusCode::TOO_MANY_REQUESTS, m, Some(after)),
        Error::Overloaded(m, after) => (StatusCode::SERVICE_UNAVAILABLE, m, Some(after)),
        Error::Internal(m) => {
            tracing::error!(error = %m, "internal error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the server log has the details".to_string(),
                None,
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, retry_after) = match self {
            ApiError::Domain(e) => domain_status(e),
            ApiError::Rejected { status, message } => (status, message, None),
        };
        let mut response = status_message(status, message);
        if let Some(after) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(after));
        }
        if status == StatusCode::UNAUTHORIZED {
            // Lets OData clients (Excel, Power BI) know to send access-key Basic credentials.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"accesskeyd\""),
            );
        }
        response
    }
}
