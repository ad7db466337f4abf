//! SCIM error responses (RFC 7644 §3.12): `ScimError`, its constructors by `scimType`, and
//! the JSON body it is sent as.

use serde_json::{json, Map, Value};

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidValue"), detail)
    }

    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidFilter"), detail)
    }

    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidPath"), detail)
    }

    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::new(400, Some("noTarget"), detail)
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidSyntax"), detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }

    /// 409 with scimType `uniqueness`, e.g. a userName or externalId already taken.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(409, Some("uniqueness"), detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, None, detail)
    }

    /// The error body. `status` is a string because RFC 7644 §3.12 defines it so.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("schemas".into(), json!([ERROR_SCHEMA]));
        o.insert("status".into(), json!(self.status.to_string()));
        if let Some(t) = self.scim_type {
            o.insert("scimType".into(), json!(t));
        }
        o.insert("detail".into(), json!(self.detail));
        Value::Object(o)
    }

    /// Says which PATCH operation failed, so an IdP's log points at it.
    pub(super) fn within(mut self, context: &str) -> Self {
        self.detail = format!("{context}: {}", self.detail);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_shape() {
        let e = ScimError::invalid_filter("bad filter");
        assert_eq!(
            e.to_json(),
            json!({"schemas": [ERROR_SCHEMA], "status": "400", "scimType": "invalidFilter",
                   "detail": "bad filter"})
        );
        assert_eq!(e.to_string(), "bad filter");
        let e = ScimError::unauthorized("no token");
        assert_eq!(
            e.to_json(),
            json!({"schemas": [ERROR_SCHEMA], "status": "401", "detail": "no token"})
        );
        let kinds = [
            (ScimError::invalid_value("x"), 400, Some("invalidValue")),
            (ScimError::invalid_path("x"), 400, Some("invalidPath")),
            (ScimError::no_target("x"), 400, Some("noTarget")),
            (ScimError::invalid_syntax("x"), 400, Some("invalidSyntax")),
            (ScimError::not_found("x"), 404, None),
            (ScimError::conflict("x"), 409, Some("uniqueness")),
        ];
        for (e, status, t) in kinds {
            assert_eq!((e.status, e.scim_type), (status, t));
        }
        assert_eq!(ScimError::not_found("x").to_json()["status"], json!("404"));
    }
}
