//! SCIM 2.0 (RFC 7643/7644) wire format for users: JSON mapping, PATCH, filters, paging, errors and discovery; pure, no I/O.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const SERVICE_PROVIDER_CONFIG_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// Largest page we serve; advertised as `filter.maxResults` so clients know the cap.
pub const MAX_RESULTS: u64 = 200;

/// A user as SCIM sees it. `id`, `created` and `last_modified` are server-assigned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScimUser {
    pub id: Option<String>,
    pub external_id: Option<String>,
    pub user_name: String,
    pub active: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub created: Option<DateTime<Utc>>,
    pub last_modified: Option<DateTime<Utc>>,
}

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
    fn within(mut self, context: &str) -> Self {
        self.detail = format!("{context}: {}", self.detail);
        self
    }
}

// ---------------------------------------------------------------- users

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
            json!([{"value": e, "type": "work", "primary": true}]),
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

fn trim_base(base_url: &str) -> &str {
    base_url.trim_end_matches('/')
}

/// Attribute names are case-insensitive (RFC 7643 §2.1); an exact match wins.
fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn opt_attr(obj: &Map<String, Value>, key: &str, label: &str) -> Result<Option<String>, ScimError> {
    get_ci(obj, key).map_or(Ok(None), |v| opt_string(v, label))
}

fn opt_string(v: &Value, label: &str) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(ScimError::invalid_value(format!(
            "'{label}' must be a string"
        ))),
    }
}

fn required_string(v: &Value, label: &str) -> Result<String, ScimError> {
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
fn parse_bool(v: &Value, label: &str) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::invalid_value(format!(
            "'{label}' must be a boolean"
        ))),
    }
}

/// We keep one email: the primary one, else the first. A lone object is taken as a
/// one-element array because some clients send the value of a filtered path that way.
fn pick_email(v: &Value) -> Result<Option<String>, ScimError> {
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
        let value = opt_attr(o, "value", "emails.value")?;
        let is_primary = match get_ci(o, "primary") {
            None | Some(Value::Null) => false,
            Some(p) => parse_bool(p, "emails.primary")?,
        };
        if value.is_some() {
            if is_primary && primary.is_none() {
                primary.clone_from(&value);
            }
            if first.is_none() {
                first = value;
            }
        }
    }
    Ok(primary.or(first))
}

// ---------------------------------------------------------------- PATCH

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
            if v.as_str().is_none() || v.as_str() != u.id.as_deref() {
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
        Target::WorkEmailValue => u.email = opt_string(v, "emails.value")?,
        Target::Ignored => {}
    }
    Ok(())
}

fn remove_target(u: &mut ScimUser, target: Target) -> Result<(), ScimError> {
    match target {
        Target::Id => return Err(ScimError::invalid_value("'id' is read-only")),
        Target::Active => return Err(ScimError::invalid_value("'active' cannot be removed")),
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

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// `urn:ietf:params:scim:schemas:core:2.0:User:attr` → `attr`; URNs are case-insensitive.
fn strip_core_urn(s: &str) -> Option<&str> {
    if !starts_with_ci(s, USER_SCHEMA) {
        return None;
    }
    s.get(USER_SCHEMA.len()..)?.strip_prefix(':')
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

// ---------------------------------------------------------------- filters

/// A user filter: the subset of RFC 7644 §3.4.2.2 that IdPs send to find a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Eq(Attr, String),
    And(Box<Filter>, Box<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    UserName,
    ExternalId,
    Id,
}

/// IdPs send one or two comparisons; far more is a mistake or abuse.
const MAX_COMPARISONS: usize = 16;

#[derive(Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
}

/// Splits into bare words and JSON string literals (compValue strings are JSON, RFC 7644 §3.4.2.2).
fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b.is_ascii_whitespace() {
            i += 1;
        } else if b == b'"' {
            let start = i;
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err("unterminated string".into()),
                    Some(b'\\') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            // Both ends are ASCII quotes, so these are char boundaries.
            let lit = &s[start..=i];
            let text: String =
                serde_json::from_str(lit).map_err(|_| format!("invalid string {lit}"))?;
            out.push(Tok::Str(text));
            i += 1;
        } else if b == b'(' || b == b')' {
            return Err("grouping with parentheses is not supported".into());
        } else {
            let start = i;
            while bytes
                .get(i)
                .is_some_and(|&c| !c.is_ascii_whitespace() && !matches!(c, b'"' | b'(' | b')'))
            {
                i += 1;
            }
            out.push(Tok::Word(s[start..i].to_string()));
        }
    }
    Ok(out)
}

/// Parses `attr eq "value"` comparisons joined by `and`; anything else is invalidFilter.
pub fn parse_filter(s: &str) -> Result<Filter, ScimError> {
    let toks = tokenize(s).map_err(ScimError::invalid_filter)?;
    let mut pos = 0;
    let mut filter = parse_comparison(&toks, &mut pos)?;
    let mut comparisons = 1;
    while let Some(tok) = toks.get(pos) {
        match tok {
            Tok::Word(w) if w.eq_ignore_ascii_case("and") => {
                // Bounds the nesting that `matches` and drop recurse through.
                comparisons += 1;
                if comparisons > MAX_COMPARISONS {
                    return Err(ScimError::invalid_filter(format!(
                        "at most {MAX_COMPARISONS} comparisons are supported"
                    )));
                }
                pos += 1;
                let right = parse_comparison(&toks, &mut pos)?;
                filter = Filter::And(Box::new(filter), Box::new(right));
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("or") || w.eq_ignore_ascii_case("not") => {
                return Err(ScimError::invalid_filter(format!(
                    "'{w}' is not supported; only 'and'"
                )))
            }
            Tok::Word(w) => {
                return Err(ScimError::invalid_filter(format!(
                    "expected 'and', found '{w}'"
                )))
            }
            Tok::Str(v) => {
                return Err(ScimError::invalid_filter(format!(
                    "expected 'and', found \"{v}\""
                )))
            }
        }
    }
    Ok(filter)
}

fn parse_comparison(toks: &[Tok], pos: &mut usize) -> Result<Filter, ScimError> {
    let attr = match toks.get(*pos) {
        Some(Tok::Word(w)) => filter_attr(w)?,
        Some(Tok::Str(v)) => {
            return Err(ScimError::invalid_filter(format!(
                "expected an attribute name, found \"{v}\""
            )))
        }
        None => {
            return Err(ScimError::invalid_filter(
                "expected a comparison such as userName eq \"alice\"",
            ))
        }
    };
    let op = match toks.get(*pos + 1) {
        Some(Tok::Word(w)) => w,
        _ => {
            return Err(ScimError::invalid_filter(
                "expected an operator after the attribute",
            ))
        }
    };
    if !op.eq_ignore_ascii_case("eq") {
        return Err(ScimError::invalid_filter(format!(
            "operator '{op}' is not supported; only 'eq'"
        )));
    }
    let value = match toks.get(*pos + 2) {
        Some(Tok::Str(v)) => v.clone(),
        Some(Tok::Word(w)) => {
            return Err(ScimError::invalid_filter(format!(
                "expected a quoted string after '{op}', found '{w}'"
            )))
        }
        None => {
            return Err(ScimError::invalid_filter(format!(
                "missing value after '{op}'"
            )))
        }
    };
    *pos += 3;
    Ok(Filter::Eq(attr, value))
}

fn filter_attr(w: &str) -> Result<Attr, ScimError> {
    let name = strip_core_urn(w).unwrap_or(w);
    match name.to_ascii_lowercase().as_str() {
        "username" => Ok(Attr::UserName),
        "externalid" => Ok(Attr::ExternalId),
        "id" => Ok(Attr::Id),
        _ => Err(ScimError::invalid_filter(format!(
            "filtering on '{w}' is not supported; use userName, externalId or id"
        ))),
    }
}

/// userName is caseExact=false (RFC 7643 §4.1.1); id and externalId are case-exact.
pub fn matches(f: &Filter, u: &ScimUser) -> bool {
    match f {
        Filter::Eq(Attr::UserName, v) => eq_ignore_case(&u.user_name, v),
        Filter::Eq(Attr::ExternalId, v) => u.external_id.as_deref() == Some(v.as_str()),
        Filter::Eq(Attr::Id, v) => u.id.as_deref() == Some(v.as_str()),
        Filter::And(a, b) => matches(a, u) && matches(b, u),
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

// ---------------------------------------------------------------- paging

pub fn list_response(
    resources: Vec<Value>,
    total: u64,
    start_index: u64,
    items_per_page: u64,
) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": items_per_page,
        "Resources": resources,
    })
}

/// `(startIndex, count)` from query parameters (RFC 7644 §3.4.2.4): a start below 1 means 1,
/// a negative count means 0, the count is capped at `max`, and unparseable values fall back
/// to the defaults (1 and `max`) rather than failing the request.
pub fn paging(start_index: Option<&str>, count: Option<&str>, max: u64) -> (u64, u64) {
    let start = match start_index.and_then(parse_int) {
        Some(n) if n > 1 => u64::try_from(n).unwrap_or(u64::MAX),
        _ => 1,
    };
    let count = match count.and_then(parse_int) {
        Some(n) => u64::try_from(n.max(0)).unwrap_or(u64::MAX).min(max),
        None => max,
    };
    (start, count)
}

fn parse_int(s: &str) -> Option<i128> {
    s.trim().parse().ok()
}

// ---------------------------------------------------------------- discovery

pub fn service_provider_config(base_url: &str) -> Value {
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A bearer token in the Authorization header",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", trim_base(base_url)),
        },
    })
}

/// The User resource type, for GET /ResourceTypes/User.
pub fn user_resource_type(base_url: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "User Account",
        "schema": USER_SCHEMA,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{}/ResourceTypes/User", trim_base(base_url)),
        },
    })
}

pub fn resource_types(base_url: &str) -> Value {
    list_response(vec![user_resource_type(base_url)], 1, 1, 1)
}

fn attribute(name: &str, kind: &str, description: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": description,
        "required": false,
        "caseExact": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    })
}

/// Sets one field of an attribute definition made by `attribute`.
fn with(mut attr: Value, key: &str, value: Value) -> Value {
    if let Some(o) = attr.as_object_mut() {
        o.insert(key.into(), value);
    }
    attr
}

/// The core User schema, limited to the attributes we store, for GET /Schemas/{id}.
pub fn user_schema() -> Value {
    let user_name = with(
        with(
            attribute(
                "userName",
                "string",
                "Unique identifier for the user, used to sign in",
            ),
            "required",
            json!(true),
        ),
        "uniqueness",
        json!("server"),
    );
    let external_id = with(
        attribute(
            "externalId",
            "string",
            "The identifier the provisioning client uses",
        ),
        "caseExact",
        json!(true),
    );
    let name = with(
        attribute("name", "complex", "The user's name"),
        "subAttributes",
        json!([
            attribute("givenName", "string", "Given name"),
            attribute("familyName", "string", "Family name"),
        ]),
    );
    let email_type = with(
        attribute("type", "string", "The kind of email; only work is kept"),
        "canonicalValues",
        json!(["work"]),
    );
    let emails = with(
        with(
            attribute("emails", "complex", "Email addresses; only one is kept"),
            "multiValued",
            json!(true),
        ),
        "subAttributes",
        json!([
            attribute("value", "string", "Email address"),
            email_type,
            attribute("primary", "boolean", "Whether this is the primary email"),
        ]),
    );
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "User Account",
        "attributes": [
            user_name,
            external_id,
            attribute("active", "boolean", "Whether the user may use the service"),
            name,
            attribute("displayName", "string", "Name for display"),
            emails,
        ],
        "meta": {"resourceType": "Schema"},
    })
}

pub fn schemas() -> Value {
    list_response(vec![user_schema()], 1, 1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn patch(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
    }

    fn alice() -> ScimUser {
        ScimUser {
            id: Some("u-1".into()),
            external_id: Some("ext-1".into()),
            user_name: "alice@example.com".into(),
            active: true,
            given_name: Some("Alice".into()),
            family_name: Some("Liddell".into()),
            display_name: Some("Alice Liddell".into()),
            email: Some("alice@example.com".into()),
            created: Some(Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap()),
            last_modified: Some(Utc.with_ymd_and_hms(2024, 2, 3, 4, 5, 6).single().unwrap()),
        }
    }

    fn err_type(r: Result<impl std::fmt::Debug, ScimError>) -> (u16, Option<&'static str>) {
        let e = r.unwrap_err();
        (e.status, e.scim_type)
    }

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
        assert_eq!(u.email.as_deref(), Some("b@work"));
        let u = user_from_json(&json!({"userName": "b", "active": "TRUE",
            "emails": [{"value": "first"}, {"value": "second"}]}))
        .unwrap();
        assert!(u.active);
        assert_eq!(u.email.as_deref(), Some("first"));
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
        assert_eq!(u.email.as_deref(), Some("al@example.com"));
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
        assert_eq!(u.email.as_deref(), Some("p@example.com"));
    }

    #[test]
    fn email_paths_with_filters() {
        let mut u = alice();
        apply_patch(
            &mut u,
            &patch(json!([{"op": "add", "path": "emails[TYPE eq \"Work\"]", "value": {"value": "w@x"}}])),
        )
        .unwrap();
        assert_eq!(u.email.as_deref(), Some("w@x"));
        apply_patch(
            &mut u,
            &patch(
                json!([{"op": "replace", "path": "emails[primary eq true].value", "value": "p@x"}]),
            ),
        )
        .unwrap();
        assert_eq!(u.email.as_deref(), Some("p@x"));
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
        for path in ["active", "userName", "id"] {
            let r = apply_patch(&mut u, &patch(json!([{"op": "remove", "path": path}])));
            assert_eq!(err_type(r), (400, Some("invalidValue")), "{path}");
        }
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

    fn eq(a: Attr, v: &str) -> Filter {
        Filter::Eq(a, v.into())
    }

    #[test]
    fn filters_parse() {
        assert_eq!(
            parse_filter("userName eq \"bjensen\"").unwrap(),
            eq(Attr::UserName, "bjensen")
        );
        assert_eq!(
            parse_filter("  USERNAME   EQ \"a b\" ").unwrap(),
            eq(Attr::UserName, "a b")
        );
        assert_eq!(
            parse_filter("externalId Eq \"x\"").unwrap(),
            eq(Attr::ExternalId, "x")
        );
        assert_eq!(parse_filter("id eq \"\"").unwrap(), eq(Attr::Id, ""));
        assert_eq!(
            parse_filter(r#"userName eq "say \"hi\" \\ \u00e9""#).unwrap(),
            eq(Attr::UserName, "say \"hi\" \\ é")
        );
        assert_eq!(
            parse_filter("urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"x\"").unwrap(),
            eq(Attr::UserName, "x")
        );
        assert_eq!(
            parse_filter("userName eq \"a\" and externalId eq \"b\" AND id eq \"c\"").unwrap(),
            Filter::And(
                Box::new(Filter::And(
                    Box::new(eq(Attr::UserName, "a")),
                    Box::new(eq(Attr::ExternalId, "b"))
                )),
                Box::new(eq(Attr::Id, "c"))
            )
        );
        assert_eq!(
            parse_filter("userName eq \"a and b\"").unwrap(),
            eq(Attr::UserName, "a and b")
        );
        assert!(parse_filter(&["id eq \"x\""; 16].join(" and ")).is_ok());
    }

    #[test]
    fn filters_reject() {
        let too_long = ["id eq \"x\""; 17].join(" and ");
        for f in [
            "",
            "userName",
            "userName eq",
            "userName eq bjensen",
            "userName eq 5",
            "userName eq true",
            "userName ne \"x\"",
            "userName co \"x\"",
            "userName pr",
            "displayName eq \"x\"",
            "emails[type eq \"work\"].value eq \"x\"",
            "userName eq \"a\" or id eq \"b\"",
            "not userName eq \"a\"",
            "userName eq \"a\" and",
            "userName eq \"a\" id eq \"b\"",
            "(userName eq \"a\")",
            "userName eq \"unterminated",
            "userName eq \"bad \\q escape\"",
            "\"x\" eq userName",
            too_long.as_str(),
        ] {
            let e = parse_filter(f).unwrap_err();
            assert_eq!((e.status, e.scim_type), (400, Some("invalidFilter")), "{f}");
            assert!(!e.detail.is_empty());
        }
    }

    #[test]
    fn filters_match() {
        let u = alice();
        let m = |f: &str| matches(&parse_filter(f).unwrap(), &u);
        assert!(m("userName eq \"ALICE@example.com\""));
        assert!(!m("userName eq \"alice\""));
        assert!(m("externalId eq \"ext-1\""));
        assert!(!m("externalId eq \"EXT-1\""));
        assert!(m("id eq \"u-1\""));
        assert!(!m("id eq \"U-1\""));
        assert!(m("userName eq \"alice@example.com\" and id eq \"u-1\""));
        assert!(!m("userName eq \"alice@example.com\" and id eq \"u-2\""));
        let nobody = ScimUser::default();
        assert!(!matches(&eq(Attr::ExternalId, ""), &nobody));
        let greek = ScimUser {
            user_name: "ΣΊΣΥΦΟΣ".into(),
            ..Default::default()
        };
        assert!(matches(&eq(Attr::UserName, "σίσυφοσ"), &greek));
    }

    #[test]
    fn paging_edge_cases() {
        assert_eq!(paging(None, None, 200), (1, 200));
        assert_eq!(paging(Some("0"), Some("-5"), 200), (1, 0));
        assert_eq!(paging(Some("-3"), Some("0"), 200), (1, 0));
        assert_eq!(paging(Some("11"), Some("10"), 200), (11, 10));
        assert_eq!(paging(Some(" 7 "), Some("5000"), 200), (7, 200));
        assert_eq!(paging(Some("abc"), Some("1.5"), 200), (1, 200));
        assert_eq!(paging(Some(""), Some(""), 50), (1, 50));
        assert_eq!(
            paging(Some("99999999999999999999"), None, 200),
            (u64::MAX, 200)
        );
        assert_eq!(
            paging(
                Some("999999999999999999999999999999999999999999"),
                None,
                200
            ),
            (1, 200)
        );
        let v = list_response(vec![json!({"id": "a"})], 42, 11, 1);
        assert_eq!(
            v,
            json!({"schemas": [LIST_RESPONSE_SCHEMA], "totalResults": 42, "startIndex": 11,
                   "itemsPerPage": 1, "Resources": [{"id": "a"}]})
        );
    }

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

    #[test]
    fn discovery_documents() {
        let spc = service_provider_config("https://h/scim/v2");
        assert_eq!(spc["patch"]["supported"], json!(true));
        assert_eq!(spc["bulk"]["supported"], json!(false));
        assert_eq!(spc["filter"], json!({"supported": true, "maxResults": 200}));
        assert_eq!(spc["changePassword"]["supported"], json!(false));
        assert_eq!(spc["sort"]["supported"], json!(false));
        assert_eq!(spc["etag"]["supported"], json!(false));
        assert_eq!(
            spc["authenticationSchemes"][0]["type"],
            json!("oauthbearertoken")
        );
        assert_eq!(
            spc["meta"]["location"],
            json!("https://h/scim/v2/ServiceProviderConfig")
        );

        let rt = resource_types("https://h/scim/v2/");
        assert_eq!(rt["schemas"], json!([LIST_RESPONSE_SCHEMA]));
        assert_eq!(rt["totalResults"], json!(1));
        let user = &rt["Resources"][0];
        assert_eq!(user["endpoint"], json!("/Users"));
        assert_eq!(user["schema"], json!(USER_SCHEMA));
        assert_eq!(
            user["meta"]["location"],
            json!("https://h/scim/v2/ResourceTypes/User")
        );

        let s = schemas();
        assert_eq!(s["totalResults"], json!(1));
        let schema = &s["Resources"][0];
        assert_eq!(schema["id"], json!(USER_SCHEMA));
        let attrs = schema["attributes"].as_array().unwrap();
        let names: Vec<&str> = attrs.iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "userName",
                "externalId",
                "active",
                "name",
                "displayName",
                "emails"
            ]
        );
        assert_eq!(attrs[0]["required"], json!(true));
        assert_eq!(attrs[0]["uniqueness"], json!("server"));
        assert_eq!(attrs[1]["caseExact"], json!(true));
        assert_eq!(attrs[5]["multiValued"], json!(true));
        let name_subs: Vec<&str> = attrs[3]["subAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(name_subs, ["givenName", "familyName"]);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    // ------------------------------------------------------------ shared printers

    /// `s` as a JSON string literal, each character written as itself, a short escape or
    /// `\uXXXX` (a surrogate pair above the BMP), as `seeds` pick.
    fn json_string(s: &str, seeds: &[u8]) -> String {
        let mut out = String::from("\"");
        for (i, c) in s.chars().enumerate() {
            let seed = seeds.get(i % seeds.len().max(1)).copied().unwrap_or(0);
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '/' => Some("\\/"),
                '\u{8}' => Some("\\b"),
                '\u{c}' => Some("\\f"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                _ => None,
            };
            let must_escape = c == '"' || c == '\\' || u32::from(c) < 0x20;
            match (seed % 3, short) {
                (0, _) if !must_escape => out.push(c),
                (1, Some(e)) => out.push_str(e),
                _ => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        if seed & 0x80 == 0 {
                            out.push_str(&format!("\\u{u:04x}"));
                        } else {
                            out.push_str(&format!("\\u{u:04X}"));
                        }
                    }
                }
            }
        }
        out.push('"');
        out
    }

    /// `s` with the case of each ASCII letter picked by the bits of `seed`.
    fn recase(s: &str, seed: u64) -> String {
        s.chars()
            .enumerate()
            .map(|(i, c)| {
                if seed >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    fn ws() -> impl Strategy<Value = String> {
        "[ \\t\\n\\r\\f]{1,3}"
    }

    // ------------------------------------------------------------ filters

    /// An attribute as written and what it means (None: not one we filter on).
    fn known_filter_attr() -> impl Strategy<Value = (String, Option<Attr>)> {
        let known = prop_oneof![
            Just(("userName", Attr::UserName)),
            Just(("externalId", Attr::ExternalId)),
            Just(("id", Attr::Id)),
        ];
        (known, any::<u64>(), any::<bool>(), any::<u64>()).prop_map(
            |((name, attr), seed, urn, urn_seed)| {
                let name = recase(name, seed);
                let name = if urn {
                    format!("{}:{name}", recase(USER_SCHEMA, urn_seed))
                } else {
                    name
                };
                (name, Some(attr))
            },
        )
    }

    fn filter_attr_name() -> impl Strategy<Value = (String, Option<Attr>)> {
        prop_oneof![
            8 => known_filter_attr(),
            1 => prop_oneof![
                Just("displayName"),
                Just("emails.value"),
                Just("name.givenName"),
                Just("meta.created"),
                Just("userNames"),
                Just("ids"),
                Just("urn:ietf:params:scim:schemas:core:2.0:User"),
                Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
            ]
            .prop_map(|n| (n.to_string(), None)),
        ]
    }

    fn eq_op() -> impl Strategy<Value = (String, bool)> {
        any::<u64>().prop_map(|seed| (recase("eq", seed), true))
    }

    /// An operator as written, and whether it is the one we support.
    fn filter_op() -> impl Strategy<Value = (String, bool)> {
        prop_oneof![
            8 => eq_op(),
            1 => prop_oneof![
                Just("ne"), Just("co"), Just("sw"), Just("ew"), Just("gt"),
                Just("ge"), Just("lt"), Just("le"), Just("=="), Just("eq="),
            ]
            .prop_map(|o| (o.to_string(), false)),
        ]
    }

    #[derive(Debug, Clone)]
    enum Val {
        /// A JSON string literal: the text and how it is escaped.
        Str(String, Vec<u8>),
        /// Anything else written where the value goes.
        Bare(&'static str),
        /// `pr`: no value at all.
        Missing,
    }

    fn string_value() -> impl Strategy<Value = Val> {
        (
            prop_oneof![
                any::<String>(),
                "[a-z@. \"\\\\/]{0,12}",
                Just("a and b".to_string())
            ],
            proptest::collection::vec(any::<u8>(), 1..8),
        )
            .prop_map(|(s, e)| Val::Str(s, e))
    }

    fn filter_value() -> impl Strategy<Value = Val> {
        prop_oneof![
            8 => string_value(),
            1 => prop_oneof![
                Just("true"), Just("false"), Just("null"), Just("42"), Just("bjensen"),
                Just("'single'"),
            ]
            .prop_map(Val::Bare),
            1 => Just(Val::Missing),
        ]
    }

    #[derive(Debug, Clone)]
    struct Cmp {
        attr: (String, Option<Attr>),
        op: (String, bool),
        value: Val,
        gaps: (String, String),
    }

    impl Cmp {
        fn print(&self) -> String {
            let value = match &self.value {
                Val::Str(s, seeds) => json_string(s, seeds),
                Val::Bare(b) => b.to_string(),
                Val::Missing => String::new(),
            };
            format!(
                "{}{}{}{}{value}",
                self.attr.0, self.gaps.0, self.op.0, self.gaps.1
            )
        }

        /// The comparison it parses to, if it is in the subset we support.
        fn supported(&self) -> Option<Filter> {
            match (&self.attr.1, self.op.1, &self.value) {
                (Some(a), true, Val::Str(s, _)) => Some(Filter::Eq(*a, s.clone())),
                _ => None,
            }
        }
    }

    fn comparison() -> impl Strategy<Value = Cmp> {
        (
            filter_attr_name(),
            filter_op(),
            filter_value(),
            (ws(), ws()),
        )
            .prop_map(|(attr, op, value, gaps)| Cmp {
                attr,
                op,
                value,
                gaps,
            })
    }

    /// Comparisons known to be in the supported subset.
    fn supported_comparison() -> impl Strategy<Value = Cmp> {
        (known_filter_attr(), eq_op(), string_value(), (ws(), ws())).prop_map(
            |(attr, op, value, gaps)| Cmp {
                attr,
                op,
                value,
                gaps,
            },
        )
    }

    /// RFC 7644 filter expressions, more than we support: and, or, not, grouping.
    #[derive(Debug, Clone)]
    enum Expr {
        Cmp(Cmp),
        And(Box<Expr>, Box<Expr>, String, (String, String)),
        Or(Box<Expr>, Box<Expr>),
        Not(Box<Expr>),
        Group(Box<Expr>),
    }

    impl Expr {
        fn print(&self) -> String {
            match self {
                Expr::Cmp(c) => c.print(),
                Expr::And(l, r, and, (a, b)) => format!("{}{a}{and}{b}{}", l.print(), r.print()),
                Expr::Or(l, r) => format!("{} or {}", l.print(), r.print()),
                Expr::Not(e) => format!("not ({})", e.print()),
                Expr::Group(e) => format!("({})", e.print()),
            }
        }

        /// The comparisons of an and-chain of supported comparisons, in order; None when
        /// anything outside the subset is used.
        fn flatten(&self, out: &mut Vec<Filter>) -> Option<()> {
            match self {
                Expr::Cmp(c) => out.push(c.supported()?),
                Expr::And(l, r, _, _) => {
                    l.flatten(out)?;
                    r.flatten(out)?;
                }
                Expr::Or(..) | Expr::Not(_) | Expr::Group(_) => return None,
            }
            Some(())
        }

        /// What `parse_filter` must return: the comparisons joined from the left.
        fn expected(&self) -> Option<Filter> {
            let mut list = Vec::new();
            self.flatten(&mut list)?;
            if list.len() > MAX_COMPARISONS {
                return None;
            }
            list.into_iter()
                .reduce(|l, r| Filter::And(Box::new(l), Box::new(r)))
        }
    }

    fn and_word() -> impl Strategy<Value = (String, (String, String))> {
        (any::<u64>(), ws(), ws()).prop_map(|(seed, a, b)| (recase("and", seed), (a, b)))
    }

    fn expr() -> impl Strategy<Value = Expr> {
        comparison()
            .prop_map(Expr::Cmp)
            .prop_recursive(5, 24, 2, |inner| {
                prop_oneof![
                    6 => (inner.clone(), inner.clone(), and_word()).prop_map(|(l, r, (w, gaps))| {
                        Expr::And(Box::new(l), Box::new(r), w, gaps)
                    }),
                    1 => (inner.clone(), inner.clone())
                        .prop_map(|(l, r)| Expr::Or(Box::new(l), Box::new(r))),
                    1 => inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
                    1 => inner.prop_map(|e| Expr::Group(Box::new(e))),
                ]
            })
    }

    /// A printer for parsed filters (the module has none): the canonical spelling.
    fn print_filter(f: &Filter) -> String {
        match f {
            Filter::Eq(a, v) => {
                let name = match a {
                    Attr::UserName => "userName",
                    Attr::ExternalId => "externalId",
                    Attr::Id => "id",
                };
                format!("{name} eq {}", serde_json::to_string(v).unwrap())
            }
            Filter::And(l, r) => format!("{} and {}", print_filter(l), print_filter(r)),
        }
    }

    fn comparisons(f: &Filter) -> usize {
        match f {
            Filter::Eq(..) => 1,
            Filter::And(l, r) => comparisons(l) + comparisons(r),
        }
    }

    fn assert_invalid_filter(
        r: Result<Filter, ScimError>,
        input: &str,
    ) -> Result<(), TestCaseError> {
        match r {
            Ok(f) => Err(TestCaseError::fail(format!("{input:?} accepted as {f:?}"))),
            Err(e) => {
                prop_assert_eq!(
                    (e.status, e.scim_type),
                    (400, Some("invalidFilter")),
                    "{:?}",
                    input
                );
                prop_assert!(!e.detail.is_empty());
                Ok(())
            }
        }
    }

    // ------------------------------------------------------------ PATCH paths

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Urn {
        None,
        Core,
        Extension,
    }

    /// What a filter inside `emails[...]` selects.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Sel {
        Work,
        NotOurs,
        Unsupported,
    }

    #[derive(Debug, Clone)]
    struct PathSpec {
        urn: (Urn, String),
        attr: String,
        filter: Option<(String, Sel)>,
        sub: Option<String>,
        pad: (String, String),
    }

    impl PathSpec {
        fn print(&self) -> String {
            let mut p = self.pad.0.clone();
            if self.urn.0 != Urn::None {
                p.push_str(&self.urn.1);
                p.push(':');
            }
            p.push_str(&self.attr);
            if let Some((f, _)) = &self.filter {
                p.push_str(&format!("[{f}]"));
            }
            if let Some(s) = &self.sub {
                p.push('.');
                p.push_str(s);
            }
            p.push_str(&self.pad.1);
            p
        }

        /// The target of a well-formed path, from the attribute table of our model: the
        /// SCIM type of the error otherwise.
        fn expected(&self) -> Result<Target, &'static str> {
            if self.urn.0 == Urn::Extension {
                return Ok(Target::Ignored);
            }
            let sub = self.sub.as_deref().map(str::to_ascii_lowercase);
            let filter = self.filter.as_ref().map(|(_, s)| *s);
            let plain = |t| match (filter, &sub) {
                (None, None) => Ok(t),
                _ => Err("invalidPath"),
            };
            match self.attr.to_ascii_lowercase().as_str() {
                "id" => plain(Target::Id),
                "active" => plain(Target::Active),
                "username" => plain(Target::UserName),
                "externalid" => plain(Target::ExternalId),
                "displayname" => plain(Target::DisplayName),
                "name" if filter.is_some() => Err("invalidPath"),
                "name" => Ok(match sub.as_deref() {
                    None => Target::Name,
                    Some("givenname") => Target::GivenName,
                    Some("familyname") => Target::FamilyName,
                    Some("formatted") => Target::NameFormatted,
                    Some(_) => Target::Ignored,
                }),
                "emails" => match (filter, sub.as_deref()) {
                    (None, None) => Ok(Target::Emails),
                    (None, Some(_)) => Err("noTarget"),
                    (Some(Sel::Unsupported), _) => Err("invalidPath"),
                    (Some(Sel::NotOurs), _) => Err("noTarget"),
                    (Some(Sel::Work), None) => Ok(Target::WorkEmail),
                    (Some(Sel::Work), Some("value")) => Ok(Target::WorkEmailValue),
                    (Some(Sel::Work), Some(_)) => Ok(Target::Ignored),
                },
                _ => Ok(Target::Ignored),
            }
        }
    }

    fn attr_name() -> impl Strategy<Value = String> {
        "[a-zA-Z][a-zA-Z0-9_-]{0,8}"
    }

    fn urn() -> impl Strategy<Value = (Urn, String)> {
        prop_oneof![
            3 => Just((Urn::None, String::new())),
            2 => any::<u64>().prop_map(|seed| (Urn::Core, recase(USER_SCHEMA, seed))),
            1 => prop_oneof![
                Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
                Just("urn:okta:custom:1.0:user"),
                Just("urn:ietf:params:scim:schemas:core:2.0:Group"),
            ]
            .prop_map(|u| (Urn::Extension, u.to_string())),
        ]
    }

    fn path_attr() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (
                prop_oneof![
                    Just("id"), Just("active"), Just("userName"), Just("externalId"),
                    Just("displayName"), Just("name"), Just("emails"), Just("title"),
                    Just("phoneNumbers"), Just("addresses"), Just("manager"),
                ],
                any::<u64>(),
            )
                .prop_map(|(a, seed)| recase(a, seed)),
            1 => attr_name(),
        ]
    }

    fn email_filter() -> impl Strategy<Value = (String, Sel)> {
        let spelled = |s: &'static str| any::<u64>().prop_map(move |seed| recase(s, seed));
        prop_oneof![
            3 => (
                spelled("type"),
                spelled("eq"),
                spelled("work"),
                proptest::collection::vec(any::<u8>(), 1..4),
            )
                .prop_map(|(t, e, w, seeds)| {
                    (format!("{t} {e} {}", json_string(&w, &seeds)), Sel::Work)
                }),
            1 => (spelled("primary"), spelled("eq"), spelled("true"))
                .prop_map(|(p, e, t)| (format!("{p} {e} {t}"), Sel::Work)),
            1 => prop_oneof![
                Just("type eq \"home\""), Just("type eq \"other\""), Just("primary eq false"),
            ]
            .prop_map(|f| (f.to_string(), Sel::NotOurs)),
            1 => prop_oneof![
                Just("value co \"x\""), Just("type ne \"work\""), Just(""),
                Just("type eq \"work\" and primary eq true"), Just("(type eq \"work\")"),
                Just("type eq \"work"), Just("type eq"), Just("display eq \"work\""),
            ]
            .prop_map(|f| (f.to_string(), Sel::Unsupported)),
        ]
    }

    fn path_sub() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => (
                prop_oneof![
                    Just("value"), Just("givenName"), Just("familyName"), Just("formatted"),
                    Just("display"), Just("type"),
                ],
                any::<u64>(),
            )
                .prop_map(|(s, seed)| recase(s, seed)),
            1 => attr_name(),
        ]
    }

    fn path_spec() -> impl Strategy<Value = PathSpec> {
        (
            urn(),
            path_attr(),
            proptest::option::weighted(0.3, email_filter()),
            proptest::option::weighted(0.4, path_sub()),
            ("[ \\t]{0,2}", "[ \\t]{0,2}"),
        )
            .prop_map(|(urn, attr, filter, sub, pad)| PathSpec {
                urn,
                attr,
                filter,
                sub,
                pad,
            })
    }

    /// A path broken in its structure: a bad attribute name, unbalanced brackets, an
    /// empty or nested sub-attribute, text after the closing bracket.
    fn malformed_path() -> impl Strategy<Value = String> {
        let bad_attr = prop_oneof![
            Just(String::new()),
            "[0-9_-][a-zA-Z0-9]{0,6}",
            "[a-zA-Z]{1,4}[ $@/\\\\!é][a-zA-Z]{1,4}",
        ];
        let shape = prop_oneof![
            bad_attr.prop_map(|a| a),
            (path_attr(), bad_attr_sub()).prop_map(|(a, s)| format!("{a}.{s}")),
            path_attr().prop_map(|a| format!("{a}[type eq \"work\"")),
            path_attr().prop_map(|a| format!("{a}]")),
            path_attr().prop_map(|a| format!("{a}][type eq \"work\"")),
            (path_attr(), attr_name()).prop_map(|(a, s)| format!("{a}[type eq \"work\"]{s}")),
            path_attr().prop_map(|a| format!("{a}[type eq \"work\"].")),
            (path_attr(), attr_name(), attr_name())
                .prop_map(|(a, s, t)| format!("{a}[type eq \"work\"].{s}.{t}")),
            (path_attr(), attr_name()).prop_map(|(a, s)| format!("{a}.{s}[type eq \"work\"]")),
            attr_name().prop_map(|s| format!(".{s}")),
        ];
        (urn(), shape).prop_map(|((kind, u), p)| match kind {
            Urn::None => p,
            _ => format!("{u}:{p}"),
        })
    }

    fn bad_attr_sub() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[0-9][a-z]{0,4}",
            "[a-z]{1,4}\\.[a-z]{1,4}",
            "[a-z]{1,4} [a-z]{1,4}",
        ]
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            Just(Value::from("work")),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("value".to_string()),
                            Just("type".to_string()),
                            Just("primary".to_string()),
                            Just("givenName".to_string()),
                            Just("active".to_string()),
                            any::<String>(),
                        ],
                        inner,
                    ),
                    0..4,
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn user() -> ScimUser {
        ScimUser {
            id: Some("u-1".into()),
            external_id: Some("ext-1".into()),
            user_name: "alice@example.com".into(),
            active: true,
            given_name: Some("Alice".into()),
            family_name: Some("Liddell".into()),
            display_name: Some("Alice Liddell".into()),
            email: Some("alice@example.com".into()),
            created: None,
            last_modified: None,
        }
    }

    proptest! {
        // Moderate counts; shrinking is bounded so that a failure reports in seconds.
        #![proptest_config(ProptestConfig {
            cases: 256,
            max_shrink_iters: 4096,
            ..ProptestConfig::default()
        })]

        /// Every value survives the JSON escapes IdPs may use, and and-chains of up to 16
        /// supported comparisons parse to exactly the comparisons written, joined from the
        /// left; 17 or more are refused.
        #[test]
        fn filter_and_chains_round_trip(
            chain in proptest::collection::vec(supported_comparison(), 1..20),
            ands in proptest::collection::vec(and_word(), 19),
            pad in ("[ \\t]{0,2}", "[ \\t]{0,2}"),
        ) {
            let mut text = pad.0.clone();
            for (i, c) in chain.iter().enumerate() {
                if i > 0 {
                    let (w, (a, b)) = &ands[i - 1];
                    text.push_str(&format!("{a}{w}{b}"));
                }
                text.push_str(&c.print());
            }
            text.push_str(&pad.1);
            let r = parse_filter(&text);
            if chain.len() > MAX_COMPARISONS {
                assert_invalid_filter(r, &text)?;
            } else {
                let want = chain
                    .iter()
                    .map(|c| c.supported().unwrap())
                    .reduce(|l, r| Filter::And(Box::new(l), Box::new(r)))
                    .unwrap();
                prop_assert_eq!(r.map_err(|e| e.detail), Ok(want), "{:?}", text);
            }
        }

        /// Filters from the RFC grammar (and, or, not, grouping, any operator, attribute or
        /// value): accepted exactly when they stay in the supported subset, and then parsed
        /// to the structure generated; refused with invalidFilter otherwise.
        #[test]
        fn filter_grammar_accepts_exactly_the_subset(e in expr()) {
            let text = e.print();
            match e.expected() {
                Some(want) => {
                    let got = parse_filter(&text).map_err(|e| e.detail);
                    prop_assert_eq!(got, Ok(want), "{:?}", text);
                }
                None => assert_invalid_filter(parse_filter(&text), &text)?,
            }
        }

        /// Any text: no panic, invalidFilter when refused, and what is accepted prints to a
        /// filter that parses back to the same thing.
        #[test]
        fn filter_arbitrary_text(
            s in prop_oneof![
                any::<String>(),
                proptest::collection::vec(
                    prop_oneof![
                        Just("userName"), Just("id"), Just("externalId"), Just("eq"),
                        Just("EQ"), Just("and"), Just("or"), Just("not"), Just("("), Just(")"),
                        Just("\"x\""), Just("\"a\\\"b\""), Just("\""), Just("\\"),
                        Just("\"\\u12\""), Just("\"\\ud800\""), Just("\"\\ud83d\\ude00\""),
                        Just("["), Just("]"), Just("pr"), Just(""), Just("é"),
                        Just("urn:ietf:params:scim:schemas:core:2.0:User:"),
                    ],
                    0..12,
                )
                .prop_map(|t| t.join(" ")),
                proptest::collection::vec(
                    prop_oneof![Just("id"), Just("eq"), Just("\"v\""), Just("and"), Just("\\"), Just("\""), Just("é")],
                    0..12,
                )
                .prop_map(|t| t.concat()),
            ]
        ) {
            match parse_filter(&s) {
                Ok(f) => {
                    prop_assert!(comparisons(&f) <= MAX_COMPARISONS);
                    let printed = print_filter(&f);
                    prop_assert_eq!(
                        parse_filter(&printed).map_err(|e| e.detail),
                        Ok(f),
                        "{:?} → {:?}", s, printed
                    );
                }
                Err(e) => {
                    prop_assert_eq!((e.status, e.scim_type), (400, Some("invalidFilter")));
                }
            }
        }

        /// Well-formed PATCH paths (with or without a schema URN, any case, filters on
        /// emails, sub-attributes, surrounding blanks) resolve to the target the attribute
        /// table gives, or to its error.
        #[test]
        fn patch_paths_resolve_as_the_table_says(spec in path_spec()) {
            let text = spec.print();
            let got = parse_path(&text).map_err(|e| (e.status, e.scim_type.unwrap_or("none")));
            prop_assert_eq!(got, spec.expected().map_err(|t| (400, t)), "{:?}", text);
        }

        /// Paths broken in their structure are refused with invalidPath, whatever schema
        /// URN they start with.
        #[test]
        fn malformed_patch_paths_are_refused(p in malformed_path()) {
            match parse_path(&p) {
                Ok(t) => prop_assert!(false, "{:?} accepted as {:?}", p, t),
                Err(e) => prop_assert_eq!((e.status, e.scim_type), (400, Some("invalidPath")), "{:?}", p),
            }
        }

        /// Any path text and any operation object: no panic, 400 errors only, and a PATCH
        /// that fails leaves the user untouched.
        #[test]
        fn patch_arbitrary_operations(
            path in prop_oneof![
                any::<String>(),
                "[a-zA-Z.:\\[\\]\" ]{0,30}",
                path_spec().prop_map(|s| s.print()),
                malformed_path(),
            ],
            op in prop_oneof![Just("add"), Just("Replace"), Just("remove"), Just("move")],
            value in proptest::option::of(json_value()),
            with_path in any::<bool>(),
        ) {
            if let Err(e) = parse_path(&path) {
                prop_assert_eq!(e.status, 400);
                prop_assert!(matches!(e.scim_type, Some("invalidPath" | "noTarget")), "{:?}", e);
            }
            let mut o = Map::new();
            o.insert("op".into(), Value::from(op));
            if with_path {
                o.insert("path".into(), Value::from(path.clone()));
            }
            if let Some(v) = value {
                o.insert("value".into(), v);
            }
            let body = json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [Value::Object(o)]});
            let mut u = user();
            if let Err(e) = apply_patch(&mut u, &body) {
                prop_assert_eq!(e.status, 400);
                prop_assert_eq!(&u, &user());
            }
        }
    }

    #[test]
    fn the_test_printers_write_valid_json_strings() {
        let s = "a\"/é😀\n";
        let literal = json_string(s, &[0]);
        assert_eq!(literal, "\"a\\u0022/é😀\\u000a\"");
        let escaped = json_string(s, &[1]);
        assert_eq!(escaped, r#""\u0061\"\/\u00e9\ud83d\ude00\n""#);
        for lit in [literal, escaped] {
            assert_eq!(serde_json::from_str::<String>(&lit).unwrap(), s);
        }
    }

    /// Found by `malformed_patch_paths_are_refused`: after a schema URN other than the
    /// core User schema anything was accepted (and dropped), even no attribute at all.
    #[test]
    fn extension_paths_must_still_be_paths() {
        const EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        for bad in [
            format!("{EXT}:"),
            format!("{EXT}:manager["),
            format!("{EXT}:manager[value eq \"x\"]x"),
            format!("{EXT}:man ager"),
            format!("{EXT}:manager."),
            "urn:".to_string(),
            "urn:x:".to_string(),
        ] {
            let e = parse_path(&bad).unwrap_err();
            assert_eq!((e.status, e.scim_type), (400, Some("invalidPath")), "{bad}");
        }
        for good in [
            format!("{EXT}:manager"),
            format!("{EXT}:manager.value"),
            format!("{EXT}:manager[value eq \"a:b\"].displayName"),
            // A no-path operation's value may hold the extension's attributes under its URN.
            EXT.to_string(),
            "urn:okta:custom:1.0:user:department".to_string(),
        ] {
            assert_eq!(parse_path(&good).unwrap(), Target::Ignored, "{good}");
        }
    }

    #[test]
    fn the_issue_examples_resolve() {
        assert_eq!(
            parse_path("emails[type eq \"work\"].value").unwrap(),
            Target::WorkEmailValue
        );
        assert_eq!(parse_path("name.givenName").unwrap(), Target::GivenName);
        assert_eq!(
            parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
                .unwrap(),
            Target::Ignored
        );
    }
}
