//! PATCH (RFC 7644 §3.5.2): `apply_patch` on a user, all or nothing, with the PATH grammar
//! resolved to the attributes we keep, and the Entra and Okta forms of operations.

use super::error::ScimError;
use super::filter::{tokenize, Tok};
use super::user::{
    get_ci, opt_string, parse_bool, pick_email, required_string, starts_with_ci, strip_core_urn,
    Email, ScimUser,
};
use crate::ids::UserId;
use serde_json::Value;

pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// What a PATCH path resolves to in our model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Id,
    Active,
    UserName,
    ExternalId,
    DisplayName,
    Name,
    GivenName,
    FamilyName,
    NameFormatted,
    Emails,
    WorkEmail,
    WorkEmailValue,
    /// An attribute we do not keep (title, phoneNumbers, the enterprise extension...):
    /// accepted and dropped, as identity providers send their default mappings whole.
    Ignored,
}

/// Applies a PatchOp body (RFC 7644 §3.5.2). All or nothing: operations run on a copy
/// that replaces `u` only when every one succeeded.
pub fn apply_patch(u: &mut ScimUser, body: &Value) -> Result<(), ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the PATCH body must be a JSON object"))?;
    let has_schema = get_ci(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
            })
        });
    if !has_schema {
        return Err(ScimError::invalid_syntax(format!(
            "'schemas' must contain {PATCH_OP_SCHEMA}"
        )));
    }
    let ops = match get_ci(obj, "Operations") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => {
            return Err(ScimError::invalid_syntax(
                "'Operations' must be a non-empty array",
            ))
        }
    };
    let mut draft = u.clone();
    for (i, op) in ops.iter().enumerate() {
        apply_operation(&mut draft, op).map_err(|e| e.within(&format!("Operations[{i}]")))?;
    }
    *u = draft;
    Ok(())
}

fn apply_operation(u: &mut ScimUser, op: &Value) -> Result<(), ScimError> {
    let o = op
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("an operation must be an object"))?;
    let kind = match get_ci(o, "op").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("add") => Op::Add,
        Some(s) if s.eq_ignore_ascii_case("replace") => Op::Replace,
        Some(s) if s.eq_ignore_ascii_case("remove") => Op::Remove,
        Some(s) => return Err(ScimError::invalid_syntax(format!("unsupported op '{s}'"))),
        None => return Err(ScimError::invalid_syntax("'op' must be a string")),
    };
    let value = get_ci(o, "value");
    match get_ci(o, "path") {
        Some(Value::String(p)) if !p.trim().is_empty() => {
            apply_target(u, kind, parse_path(p)?, value)
        }
        Some(Value::String(_)) | Some(Value::Null) | None => {
            if kind == Op::Remove {
                return Err(ScimError::no_target("'remove' requires a path"));
            }
            // Okta and Entra send {"active": false} or {"name.givenName": "x"}: each key is a path.
            match value {
                Some(Value::Object(m)) => m
                    .iter()
                    .try_for_each(|(k, v)| apply_target(u, kind, parse_path(k)?, Some(v))),
                _ => Err(ScimError::invalid_value(
                    "without a path, 'value' must be an object of attributes",
                )),
            }
        }
        Some(_) => Err(ScimError::invalid_path("'path' must be a string")),
    }
}

fn apply_target(
    u: &mut ScimUser,
    kind: Op,
    target: Target,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if kind == Op::Remove {
        return remove_target(u, target);
    }
    let v = value
        .ok_or_else(|| ScimError::invalid_syntax("'value' is required for add and replace"))?;
    match target {
        // Clients echo the id back; accept that, refuse a change (it is readOnly).
        Target::Id => {
            if v.as_str().is_none() || v.as_str() != u.id.as_ref().map(UserId::as_str) {
                return Err(ScimError::invalid_value("'id' is read-only"));
            }
        }
        Target::Active => u.active = parse_bool(v, "active")?,
        Target::UserName => u.user_name = required_string(v, "userName")?,
        Target::ExternalId => u.external_id = opt_string(v, "externalId")?,
        Target::DisplayName => u.display_name = opt_string(v, "displayName")?,
        Target::GivenName => u.given_name = opt_string(v, "name.givenName")?,
        Target::FamilyName => u.family_name = opt_string(v, "name.familyName")?,
        // We derive the formatted name from its parts, so a sent one has nowhere to go.
        Target::NameFormatted => {}
        Target::Name => match v {
            Value::Null => {
                u.given_name = None;
                u.family_name = None;
            }
            // Sub-attributes not sent stay as they are (RFC 7644 §3.5.2.3).
            Value::Object(m) => {
                for (k, sv) in m {
                    match k.to_ascii_lowercase().as_str() {
                        "givenname" => u.given_name = opt_string(sv, "name.givenName")?,
                        "familyname" => u.family_name = opt_string(sv, "name.familyName")?,
                        // Sub-attributes we do not keep are dropped.
                        _ => {}
                    }
                }
            }
            _ => return Err(ScimError::invalid_value("'name' must be an object")),
        },
        // We keep a single email, so adding one replaces it.
        Target::Emails | Target::WorkEmail => u.email = pick_email(v)?,
        // A new address for the same email: it stays as primary as it was.
        Target::WorkEmailValue => {
            let primary = u.email.as_ref().is_none_or(|e| e.primary);
            u.email = opt_string(v, "emails.value")?.map(|value| Email { value, primary });
        }
        Target::Ignored => {}
    }
    Ok(())
}

fn remove_target(u: &mut ScimUser, target: Target) -> Result<(), ScimError> {
    match target {
        Target::Id => return Err(ScimError::invalid_value("'id' is read-only")),
        // Unassigned is not active (RFC 7643 §2.5 leaves its meaning to us): the safe side.
        Target::Active => u.active = false,
        Target::UserName => {
            return Err(ScimError::invalid_value(
                "'userName' is required and cannot be removed",
            ))
        }
        Target::ExternalId => u.external_id = None,
        Target::DisplayName => u.display_name = None,
        Target::GivenName => u.given_name = None,
        Target::FamilyName => u.family_name = None,
        Target::Name => {
            u.given_name = None;
            u.family_name = None;
        }
        Target::NameFormatted => {}
        Target::Emails | Target::WorkEmail | Target::WorkEmailValue => u.email = None,
        Target::Ignored => {}
    }
    Ok(())
}

/// Resolves `attr`, `attr.sub`, `attr[filter]`, `attr[filter].sub`, each optionally
/// prefixed with the core User schema URN (RFC 7644 §3.5.2 PATH grammar).
fn parse_path(raw: &str) -> Result<Target, ScimError> {
    let path = raw.trim();
    let path = match strip_core_urn(path) {
        Some(rest) => rest,
        None if starts_with_ci(path, "urn:") => {
            // Another schema's attribute (an extension): dropped, but still a path. The
            // attribute starts after the last colon before any filter.
            let head = path.find('[').map_or(path, |open| &path[..open]);
            let attr = head.rfind(':').map_or(path, |colon| &path[colon + 1..]);
            split_path(attr)
                .map_err(|_| ScimError::invalid_path(format!("malformed path '{path}'")))?;
            return Ok(Target::Ignored);
        }
        None => path,
    };
    let (attr, filter, sub) = split_path(path)?;
    let sub = sub.map(str::to_ascii_lowercase);
    let plain = |t: Target| {
        if filter.is_none() && sub.is_none() {
            Ok(t)
        } else {
            Err(ScimError::invalid_path(format!(
                "'{attr}' has no sub-attributes or values to filter"
            )))
        }
    };
    match attr.to_ascii_lowercase().as_str() {
        "id" => plain(Target::Id),
        "active" => plain(Target::Active),
        "username" => plain(Target::UserName),
        "externalid" => plain(Target::ExternalId),
        "displayname" => plain(Target::DisplayName),
        "name" if filter.is_some() => Err(ScimError::invalid_path("'name' is not multi-valued")),
        "name" => match sub.as_deref() {
            None => Ok(Target::Name),
            Some("givenname") => Ok(Target::GivenName),
            Some("familyname") => Ok(Target::FamilyName),
            Some("formatted") => Ok(Target::NameFormatted),
            Some(_) => Ok(Target::Ignored),
        },
        "emails" => match (filter, sub.as_deref()) {
            (None, None) => Ok(Target::Emails),
            (Some(f), s) => {
                check_email_filter(f)?;
                match s {
                    None => Ok(Target::WorkEmail),
                    Some("value") => Ok(Target::WorkEmailValue),
                    Some(_) => Ok(Target::Ignored),
                }
            }
            (None, Some(_)) => Err(ScimError::no_target(
                "address the email as emails[type eq \"work\"].value",
            )),
        },
        _ => Ok(Target::Ignored),
    }
}

fn split_path(p: &str) -> Result<(&str, Option<&str>, Option<&str>), ScimError> {
    let bad = || ScimError::invalid_path(format!("malformed path '{p}'"));
    let (attr, filter, rest) = match p.find('[') {
        Some(open) => {
            let close = p.rfind(']').filter(|&c| c > open).ok_or_else(bad)?;
            (&p[..open], Some(&p[open + 1..close]), &p[close + 1..])
        }
        None => match p.find('.') {
            Some(dot) => (&p[..dot], None, &p[dot..]),
            None => (p, None, ""),
        },
    };
    let sub = if rest.is_empty() {
        None
    } else {
        Some(
            rest.strip_prefix('.')
                .filter(|s| is_attr_name(s))
                .ok_or_else(bad)?,
        )
    };
    if !is_attr_name(attr) {
        return Err(bad());
    }
    Ok((attr, filter, sub))
}

/// ATTRNAME = ALPHA *(nameChar) (RFC 7643 §2.1).
fn is_attr_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// We store only the work (primary) email, so only filters that select it resolve.
fn check_email_filter(f: &str) -> Result<(), ScimError> {
    let toks = tokenize(f).map_err(|m| ScimError::invalid_path(format!("filter '{f}': {m}")))?;
    match toks.as_slice() {
        [Tok::Word(a), Tok::Word(op), v] if op.eq_ignore_ascii_case("eq") => {
            let selects_ours = if a.eq_ignore_ascii_case("type") {
                matches!(v, Tok::Str(s) if s.eq_ignore_ascii_case("work"))
            } else if a.eq_ignore_ascii_case("primary") {
                matches!(v, Tok::Word(w) if w.eq_ignore_ascii_case("true"))
            } else {
                return Err(ScimError::invalid_path(format!(
                    "unsupported filter '{f}'; use type eq \"work\""
                )));
            };
            if selects_ours {
                Ok(())
            } else {
                Err(ScimError::no_target(format!(
                    "'{f}' matches no email; only the work email is kept"
                )))
            }
        }
        _ => Err(ScimError::invalid_path(format!(
            "unsupported filter '{f}'; use type eq \"work\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::protocol::testing::{alice, err_type};
    use serde_json::json;

    fn patch(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
    }

    #[test]
    fn entra_replace_active_string() {
        let mut u = alice();
        let body = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations":[{"op":"Replace","path":"active","value":"False"}]});
        apply_patch(&mut u, &body).unwrap();
        assert!(!u.active);
    }

    #[test]
    fn entra_style_operations() {
        let mut u = alice();
        apply_patch(
            &mut u,
            &patch(json!([
                {"op": "Replace", "path": "userName", "value": "alice2@example.com"},
                {"op": "Add", "path": "name.givenName", "value": "Al"},
                {"op": "Replace", "path": "NAME.FAMILYNAME", "value": "L"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "al@example.com"},
                {"op": "Add", "path": "externalId", "value": "ext-2"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:displayName", "value": "Al L"},
                {"op": "Replace", "path": "name.formatted", "value": "ignored"},
            ])),
        )
        .unwrap();
        assert_eq!(u.user_name, "alice2@example.com");
        assert_eq!(u.given_name.as_deref(), Some("Al"));
        assert_eq!(u.family_name.as_deref(), Some("L"));
        assert_eq!(u.email, Some(Email::new("al@example.com")));
        assert_eq!(u.external_id.as_deref(), Some("ext-2"));
        assert_eq!(u.display_name.as_deref(), Some("Al L"));
    }

    #[test]
    fn okta_and_no_path_value_objects() {
        let mut u = alice();
        apply_patch(
            &mut u,
            &patch(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .unwrap();
        assert!(!u.active);
        apply_patch(
            &mut u,
            &patch(json!([{"op": "replace", "value": {
                "name.givenName": "Ally",
                "urn:ietf:params:scim:schemas:core:2.0:User:active": "True",
                "name": {"familyName": "Pleasance"},
                "emails": [{"value": "p@example.com", "primary": true}],
                "id": "u-1",
            }}])),
        )
        .unwrap();
        assert!(u.active);
        assert_eq!(u.given_name.as_deref(), Some("Ally"));
        assert_eq!(u.family_name.as_deref(), Some("Pleasance"));
        assert_eq!(u.email, Some(Email::new("p@example.com")));
    }

    #[test]
    fn email_paths_with_filters() {
        let mut u = alice();
        apply_patch(
            &mut u,
            &patch(json!([{"op": "add", "path": "emails[TYPE eq \"Work\"]", "value": {"value": "w@x"}}])),
        )
        .unwrap();
        assert_eq!(u.email, Some(Email::new("w@x")));
        apply_patch(
            &mut u,
            &patch(
                json!([{"op": "replace", "path": "emails[primary eq true].value", "value": "p@x"}]),
            ),
        )
        .unwrap();
        assert_eq!(u.email, Some(Email::new("p@x")));
        let r = apply_patch(
            &mut u,
            &patch(
                json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "h@x"}]),
            ),
        );
        assert_eq!(err_type(r), (400, Some("noTarget")));
        let r = apply_patch(
            &mut u,
            &patch(
                json!([{"op": "replace", "path": "emails[value co \"x\"].value", "value": "h@x"}]),
            ),
        );
        assert_eq!(err_type(r), (400, Some("invalidPath")));
        apply_patch(
            &mut u,
            &patch(json!([{"op": "remove", "path": "emails[type eq \"work\"].value"}])),
        )
        .unwrap();
        assert_eq!(u.email, None);
    }

    #[test]
    fn email_primary_round_trips_as_sent() {
        let mut u = alice();
        let not_primary = Email {
            value: "n@x".into(),
            primary: false,
        };
        apply_patch(
            &mut u,
            &patch(json!([{"op": "replace", "path": "emails",
                "value": [{"value": "n@x", "type": "work", "primary": false}]}])),
        )
        .unwrap();
        assert_eq!(u.email, Some(not_primary.clone()));
        // A new address through the filtered path keeps it as it was.
        apply_patch(
            &mut u,
            &patch(json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "m@x"}])),
        )
        .unwrap();
        assert_eq!(
            u.email,
            Some(Email {
                value: "m@x".into(),
                ..not_primary
            })
        );
        apply_patch(
            &mut u,
            &patch(json!([{"op": "add", "path": "emails",
                "value": [{"value": "p@x", "type": "work", "primary": true}]}])),
        )
        .unwrap();
        assert_eq!(u.email, Some(Email::new("p@x")));
    }

    #[test]
    fn multiple_ops_are_all_or_nothing() {
        let mut u = alice();
        let before = u.clone();
        let e = apply_patch(
            &mut u,
            &patch(json!([
                {"op": "replace", "path": "displayName", "value": "changed"},
                {"op": "replace", "path": "active", "value": "maybe"},
            ])),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, Some("invalidValue"));
        assert!(e.detail.starts_with("Operations[1]: "), "{}", e.detail);
        assert_eq!(u, before);
        apply_patch(
            &mut u,
            &patch(json!([
                {"op": "replace", "path": "displayName", "value": "changed"},
                {"op": "replace", "path": "active", "value": false},
            ])),
        )
        .unwrap();
        assert_eq!(u.display_name.as_deref(), Some("changed"));
        assert!(!u.active);
    }

    #[test]
    fn remove_operations() {
        let mut u = alice();
        apply_patch(
            &mut u,
            &patch(json!([
                {"op": "remove", "path": "externalId"},
                {"op": "Remove", "path": "name"},
                {"op": "remove", "path": "displayName"},
                {"op": "remove", "path": "emails"},
            ])),
        )
        .unwrap();
        assert_eq!((u.external_id.clone(), u.given_name.clone()), (None, None));
        assert_eq!(
            (u.family_name.clone(), u.display_name.clone()),
            (None, None)
        );
        assert_eq!(u.email, None);
        for path in ["userName", "id"] {
            let r = apply_patch(&mut u, &patch(json!([{"op": "remove", "path": path}])));
            assert_eq!(err_type(r), (400, Some("invalidValue")), "{path}");
        }
        // Removing `active` makes the user inactive.
        assert!(u.active);
        apply_patch(&mut u, &patch(json!([{"op": "remove", "path": "active"}]))).unwrap();
        assert!(!u.active);
        let r = apply_patch(&mut u, &patch(json!([{"op": "remove"}])));
        assert_eq!(err_type(r), (400, Some("noTarget")));
    }

    #[test]
    fn attributes_we_do_not_keep_are_ignored() {
        // Entra and Okta send their default mappings whole (title, department, phone
        // numbers...): accepted, dropped, and the rest of the operation still applies.
        let mut u = alice();
        for body in [
            patch(json!([{"op": "add", "path": "title", "value": "x"}])),
            patch(json!([{"op": "add", "path": "name.middleName", "value": "x"}])),
            patch(json!([{"op": "Add",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                "value": "x"}])),
            patch(json!([{"op": "add", "value": {"nickName": "x", "displayName": "Al"}}])),
        ] {
            apply_patch(&mut u, &body).unwrap();
        }
        assert_eq!(u.display_name.as_deref(), Some("Al"));
    }

    #[test]
    fn patch_errors() {
        let mut u = alice();
        let cases = [
            (
                json!({"Operations": [{"op": "add", "path": "active", "value": true}]}),
                "invalidSyntax",
            ),
            (
                json!({"schemas": [PATCH_OP_SCHEMA], "Operations": []}),
                "invalidSyntax",
            ),
            (
                patch(json!([{"op": "move", "path": "active", "value": true}])),
                "invalidSyntax",
            ),
            (
                patch(json!([{"op": "add", "path": "active"}])),
                "invalidSyntax",
            ),
            (
                patch(json!([{"op": "add", "path": "emails[type eq \"work\"", "value": "x"}])),
                "invalidPath",
            ),
            (
                patch(json!([{"op": "add", "path": "active.value", "value": true}])),
                "invalidPath",
            ),
            (
                patch(json!([{"op": "add", "path": "na me", "value": "x"}])),
                "invalidPath",
            ),
            (
                patch(json!([{"op": "add", "path": 5, "value": "x"}])),
                "invalidPath",
            ),
            (
                patch(json!([{"op": "replace", "path": "userName", "value": ""}])),
                "invalidValue",
            ),
            (
                patch(json!([{"op": "replace", "path": "displayName", "value": 3}])),
                "invalidValue",
            ),
            (
                patch(json!([{"op": "replace", "path": "active", "value": null}])),
                "invalidValue",
            ),
            (
                patch(json!([{"op": "replace", "path": "id", "value": "other"}])),
                "invalidValue",
            ),
            (
                patch(json!([{"op": "replace", "value": "x"}])),
                "invalidValue",
            ),
        ];
        for (body, want) in cases {
            let r = apply_patch(&mut u, &body);
            assert_eq!(err_type(r), (400, Some(want)), "{body}");
        }
        assert_eq!(u, alice());
        // null is "unassigned" (RFC 7643 §2.5).
        apply_patch(
            &mut u,
            &patch(json!([{"op": "replace", "path": "displayName", "value": null}])),
        )
        .unwrap();
        assert_eq!(u.display_name, None);
    }
}

#[cfg(test)]
#[path = "patch_proptests.rs"]
mod proptests;
