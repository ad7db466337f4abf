//! The SCIM User resource (RFC 7643 §4.1): `ScimUser`, its JSON mapping both ways, and the
//! readers of attribute values (case-insensitive names, Entra's boolean strings, the one
//! email kept, the core schema URN before a name) that PATCH and filters share.

use super::error::ScimError;
use crate::ids::UserId;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// The one email kept (RFC 7643 §4.1.2), as sent: its address, and whether it was sent as
/// the primary one. `type` is not kept: the one email is the work email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub value: String,
    /// `primary` as sent; true when it was not, this being the only email kept.
    pub primary: bool,
}

impl Email {
    /// An address without a `primary` of its own.
    pub fn new(value: impl Into<String>) -> Email {
        Email {
            value: value.into(),
            primary: true,
        }
    }
}

/// A user as SCIM sees it. `id`, `created` and `last_modified` are server-assigned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScimUser {
    pub id: Option<UserId>,
    pub external_id: Option<String>,
    pub user_name: String,
    pub active: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<Email>,
    pub created: Option<DateTime<Utc>>,
    pub last_modified: Option<DateTime<Utc>>,
}

/// The User resource; unassigned attributes are omitted (RFC 7643 §2.5 treats them as null).
pub fn user_to_json(u: &ScimUser, base_url: &str) -> Value {
    let mut o = Map::new();
    o.insert("schemas".into(), json!([USER_SCHEMA]));
    if let Some(id) = &u.id {
        o.insert("id".into(), json!(id));
    }
    if let Some(x) = &u.external_id {
        o.insert("externalId".into(), json!(x));
    }
    o.insert("userName".into(), json!(u.user_name));
    o.insert("active".into(), json!(u.active));
    let mut name = Map::new();
    if let Some(g) = &u.given_name {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = &u.family_name {
        name.insert("familyName".into(), json!(f));
    }
    if !name.is_empty() {
        o.insert("name".into(), Value::Object(name));
    }
    if let Some(d) = &u.display_name {
        o.insert("displayName".into(), json!(d));
    }
    if let Some(e) = &u.email {
        o.insert(
            "emails".into(),
            json!([{"value": e.value, "type": "work", "primary": e.primary}]),
        );
    }
    let mut meta = Map::new();
    meta.insert("resourceType".into(), json!("User"));
    if let Some(t) = &u.created {
        meta.insert("created".into(), json!(timestamp(t)));
    }
    if let Some(t) = &u.last_modified {
        meta.insert("lastModified".into(), json!(timestamp(t)));
    }
    if let Some(id) = &u.id {
        meta.insert(
            "location".into(),
            json!(format!("{}/Users/{id}", trim_base(base_url))),
        );
    }
    o.insert("meta".into(), Value::Object(meta));
    Value::Object(o)
}

/// A user from a POST or PUT body. `id` and `meta` are readOnly, so they are ignored
/// (RFC 7644 §3.5.1); the caller sets them. Empty optional strings count as unassigned.
pub fn user_from_json(v: &Value) -> Result<ScimUser, ScimError> {
    let obj = v
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the request body must be a JSON object"))?;
    let user_name = match get_ci(obj, "userName") {
        None | Some(Value::Null) => return Err(ScimError::invalid_value("'userName' is required")),
        Some(v) => required_string(v, "userName")?,
    };
    let active = match get_ci(obj, "active") {
        None | Some(Value::Null) => true,
        Some(v) => parse_bool(v, "active")?,
    };
    let (given_name, family_name) = match get_ci(obj, "name") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(n)) => (
            opt_attr(n, "givenName", "name.givenName")?,
            opt_attr(n, "familyName", "name.familyName")?,
        ),
        Some(_) => return Err(ScimError::invalid_value("'name' must be an object")),
    };
    Ok(ScimUser {
        id: None,
        external_id: opt_attr(obj, "externalId", "externalId")?,
        user_name,
        active,
        given_name,
        family_name,
        display_name: opt_attr(obj, "displayName", "displayName")?,
        email: match get_ci(obj, "emails") {
            Some(v) => pick_email(v)?,
            None => None,
        },
        created: None,
        last_modified: None,
    })
}

fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(super) fn trim_base(base_url: &str) -> &str {
    base_url.trim_end_matches('/')
}

/// Attribute names are case-insensitive (RFC 7643 §2.1); an exact match wins.
pub(super) fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn opt_attr(obj: &Map<String, Value>, key: &str, label: &str) -> Result<Option<String>, ScimError> {
    get_ci(obj, key).map_or(Ok(None), |v| opt_string(v, label))
}

pub(super) fn opt_string(v: &Value, label: &str) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(ScimError::invalid_value(format!(
            "'{label}' must be a string"
        ))),
    }
}

pub(super) fn required_string(v: &Value, label: &str) -> Result<String, ScimError> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        Value::String(_) => Err(ScimError::invalid_value(format!(
            "'{label}' must not be empty"
        ))),
        _ => Err(ScimError::invalid_value(format!(
            "'{label}' must be a string"
        ))),
    }
}

/// Entra sends booleans as "True"/"False" strings unless its SCIM compliance flag is set.
pub(super) fn parse_bool(v: &Value, label: &str) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::invalid_value(format!(
            "'{label}' must be a boolean"
        ))),
    }
}

/// We keep one email: the primary one, else the first, with its `primary` as sent. A lone
/// object is taken as a one-element array because some clients send the value of a
/// filtered path that way.
pub(super) fn pick_email(v: &Value) -> Result<Option<Email>, ScimError> {
    let items = match v {
        Value::Null => return Ok(None),
        Value::Array(a) => a.as_slice(),
        Value::Object(_) => std::slice::from_ref(v),
        _ => return Err(ScimError::invalid_value("'emails' must be an array")),
    };
    let (mut primary, mut first) = (None, None);
    for item in items {
        let o = item
            .as_object()
            .ok_or_else(|| ScimError::invalid_value("'emails' entries must be objects"))?;
        let Some(value) = opt_attr(o, "value", "emails.value")? else {
            continue;
        };
        let sent = match get_ci(o, "primary") {
            None | Some(Value::Null) => None,
            Some(p) => Some(parse_bool(p, "emails.primary")?),
        };
        let email = Email {
            value,
            primary: sent.unwrap_or(true),
        };
        if sent == Some(true) && primary.is_none() {
            primary = Some(email.clone());
        }
        if first.is_none() {
            first = Some(email);
        }
    }
    Ok(primary.or(first))
}

pub(super) fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// `urn:ietf:params:scim:schemas:core:2.0:User:attr` → `attr`; URNs are case-insensitive.
pub(super) fn strip_core_urn(s: &str) -> Option<&str> {
    if !starts_with_ci(s, USER_SCHEMA) {
        return None;
    }
    s.get(USER_SCHEMA.len()..)?.strip_prefix(':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::protocol::testing::{alice, err_type};

    #[test]
    fn user_json_round_trip() {
        let u = alice();
        let v = user_to_json(&u, "https://h/scim/v2/");
        assert_eq!(
            v,
            json!({
                "schemas": [USER_SCHEMA],
                "id": "u-1",
                "externalId": "ext-1",
                "userName": "alice@example.com",
                "active": true,
                "name": {"givenName": "Alice", "familyName": "Liddell"},
                "displayName": "Alice Liddell",
                "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
                "meta": {
                    "resourceType": "User",
                    "created": "2024-01-02T03:04:05Z",
                    "lastModified": "2024-02-03T04:05:06Z",
                    "location": "https://h/scim/v2/Users/u-1",
                },
            })
        );
        let back = user_from_json(&v).unwrap();
        // id and meta are readOnly and ignored on input.
        let expected = ScimUser {
            id: None,
            created: None,
            last_modified: None,
            ..u
        };
        assert_eq!(back, expected);
    }

    #[test]
    fn minimal_user_omits_unassigned() {
        let u = ScimUser {
            user_name: "bob".into(),
            ..Default::default()
        };
        let v = user_to_json(&u, "https://h");
        assert_eq!(
            v,
            json!({"schemas": [USER_SCHEMA], "userName": "bob", "active": false,
                   "meta": {"resourceType": "User"}})
        );
    }

    #[test]
    fn user_from_json_defaults_and_entra_strings() {
        let u = user_from_json(&json!({"userName": "bob"})).unwrap();
        assert!(u.active);
        assert_eq!(u.email, None);
        let u = user_from_json(&json!({
            "schemas": [USER_SCHEMA], "USERNAME": "bob", "active": "False",
            "name": {"formatted": "Bob B", "givenName": "Bob"},
            "emails": [{"value": "b@home", "type": "home"}, {"value": "b@work", "type": "work", "primary": "True"}],
            "title": "ignored", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "x"},
        }))
        .unwrap();
        assert!(!u.active);
        assert_eq!(u.user_name, "bob");
        assert_eq!(u.given_name.as_deref(), Some("Bob"));
        assert_eq!(u.email, Some(Email::new("b@work")));
        let u = user_from_json(&json!({"userName": "b", "active": "TRUE",
            "emails": [{"value": "first"}, {"value": "second"}]}))
        .unwrap();
        assert!(u.active);
        assert_eq!(u.email, Some(Email::new("first")));
    }

    #[test]
    fn an_email_sent_as_not_primary_comes_back_so() {
        let sent = json!([{"value": "b@x", "type": "work", "primary": false}]);
        let u = user_from_json(&json!({"userName": "b", "emails": sent})).unwrap();
        assert_eq!(
            u.email,
            Some(Email {
                value: "b@x".into(),
                primary: false
            })
        );
        assert_eq!(user_to_json(&u, "https://h")["emails"], sent);
        // Of several, none primary: the first, as sent.
        let u = user_from_json(&json!({"userName": "b", "emails": [
            {"value": "one", "primary": false}, {"value": "two", "primary": false}]}))
        .unwrap();
        assert_eq!(
            u.email,
            Some(Email {
                value: "one".into(),
                primary: false
            })
        );
    }

    #[test]
    fn user_from_json_rejects_bad_types() {
        for (body, attr) in [
            (json!({}), "userName"),
            (json!({"userName": ""}), "userName"),
            (json!({"userName": 5}), "userName"),
            (json!({"userName": "b", "active": "yes"}), "active"),
            (json!({"userName": "b", "active": 1}), "active"),
            (json!({"userName": "b", "externalId": 7}), "externalId"),
            (json!({"userName": "b", "name": "Bob"}), "name"),
            (
                json!({"userName": "b", "name": {"givenName": []}}),
                "name.givenName",
            ),
            (json!({"userName": "b", "emails": "b@x"}), "emails"),
            (
                json!({"userName": "b", "emails": [{"value": 1}]}),
                "emails.value",
            ),
        ] {
            let e = user_from_json(&body).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some("invalidValue")),
                "{body}"
            );
            assert!(
                e.detail.contains(&format!("'{attr}'")),
                "{body}: {}",
                e.detail
            );
        }
        assert_eq!(
            err_type(user_from_json(&json!([]))),
            (400, Some("invalidSyntax"))
        );
    }
}
