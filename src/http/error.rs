//! The HTTP error: every failure becomes `{"statusMessage": ...}` with its status, decided
//! in the one match below. A failure whose detail is for the log only (a directory's
//! address, a database's SQL text, a bug) also carries `errorId`, which the log line
//! holding the detail names too.

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

/// A domain error as it is answered.
#[derive(Debug)]
pub struct DomainAnswer {
    pub status: StatusCode,
    /// For the caller: the domain's own words, or a fixed text naming `error_id`.
    pub message: String,
    /// Seconds for `Retry-After` (a 429, a shed 503).
    pub retry_after: Option<u64>,
    /// Set when a detail went to the log under this id.
    pub error_id: Option<String>,
}

/// The one mapping of domain errors to HTTP: status, the message for the client, the
/// Retry-After seconds of a 429 or a shed 503, and the error id of a detail that went to
/// the log. The API, the web pages and SCIM all answer with it.
pub fn domain_answer(e: Error) -> DomainAnswer {
    let (status, retry_after) = match &e {
        Error::Invalid(_) => (StatusCode::BAD_REQUEST, None),
        Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, None),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, None),
        Error::NotFound(_) => (StatusCode::NOT_FOUND, None),
        Error::Conflict(_) => (StatusCode::CONFLICT, None),
        Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
        Error::RateLimited(_, after) => (StatusCode::TOO_MANY_REQUESTS, Some(*after)),
        Error::Overloaded(_, after) => (StatusCode::SERVICE_UNAVAILABLE, Some(*after)),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
    };
    let Some(detail) = e.detail() else {
        return DomainAnswer {
            status,
            message: e.public_message().to_string(),
            retry_after,
            error_id: None,
        };
    };
    // Random, not a counter: ids from several replicas must not collide in one log store,
    // and must not tell a caller how many errors there were.
    let id = format!("{:016x}", rand::random::<u64>());
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error_id = %id, error = %detail, status = status.as_u16(), "internal error");
    } else {
        tracing::warn!(error_id = %id, error = %detail, status = status.as_u16(), "request failed");
    }
    DomainAnswer {
        status,
        message: format!("{} (error id {id})", e.public_message()),
        retry_after,
        error_id: Some(id),
    }
}

/// [`domain_answer`] without the error id (the web pages show it in the message).
pub fn domain_status(e: Error) -> (StatusCode, String, Option<u64>) {
    let a = domain_answer(e);
    (a.status, a.message, a.retry_after)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, retry_after, error_id) = match self {
            ApiError::Domain(e) => {
                let a = domain_answer(e);
                (a.status, a.message, a.retry_after, a.error_id)
            }
            ApiError::Rejected { status, message } => (status, message, None, None),
        };
        let mut response = match error_id {
            // An extra field: the vendor SDK reads statusMessage and ignores the rest.
            Some(id) => (
                status,
                Json(json!({ "statusMessage": message, "errorId": id })),
            )
                .into_response(),
            None => status_message(status, message),
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_detail_becomes_an_error_id_and_a_fixed_text() {
        let a = domain_answer(Error::outage(
            crate::error::DATABASE_UNAVAILABLE,
            "the database is unavailable: could not connect to server at 10.0.0.9",
        ));
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        let id = a.error_id.expect("an error id");
        assert_eq!(id.len(), 16);
        assert_eq!(
            a.message,
            format!("the database is unavailable; try again shortly (error id {id})")
        );
        assert!(!a.message.contains("10.0.0.9"));
    }

    #[test]
    fn a_rule_of_ours_keeps_its_message_and_gets_no_id() {
        let a = domain_answer(Error::conflict(
            "a sync of directory `corp` is already running",
        ));
        assert_eq!(a.status, StatusCode::CONFLICT);
        assert_eq!(a.message, "a sync of directory `corp` is already running");
        assert_eq!(a.error_id, None);
        let a = domain_answer(Error::Overloaded("too many password checks".into(), 2));
        assert_eq!(a.retry_after, Some(2));
        assert_eq!(a.error_id, None);
    }
}
