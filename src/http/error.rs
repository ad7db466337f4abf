//! The HTTP error: every failure becomes `{"statusMessage": ...}` with its status, decided
//! by the one match of `Error::answer`. A failure whose detail is for the log only (a directory's
//! address, a database's SQL text, a bug) also carries `errorId`, which the log line
//! holding the detail names too.

use crate::error::Error;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// The error body of the API (and the answer to a deletion): Seeq's `statusMessage`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusMessage {
    /// What happened, for a person.
    pub status_message: String,
    /// Names the server log line that holds the detail of a failure below the service (a
    /// database, a directory); absent otherwise.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
}

impl StatusMessage {
    pub fn new(message: impl Into<String>) -> StatusMessage {
        StatusMessage {
            status_message: message.into(),
            error_id: None,
        }
    }
}

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
    (status, Json(StatusMessage::new(message))).into_response()
}

/// [`Error::answer`] without the error id (the web pages show it in the message).
pub fn domain_status(e: Error) -> (StatusCode, String, Option<u64>) {
    let a = e.answer();
    (a.status, a.message, a.retry_after)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, retry_after, error_id) = match self {
            ApiError::Domain(e) => {
                let a = e.answer();
                (a.status, a.message, a.retry_after, a.error_id)
            }
            ApiError::Rejected { status, message } => (status, message, None, None),
        };
        // errorId is an extra field: the vendor SDK reads statusMessage and ignores the rest.
        let body = StatusMessage {
            status_message: message,
            error_id,
        };
        let mut response = (status, Json(body)).into_response();
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
