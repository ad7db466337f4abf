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
        None if starts_with_ci(path, "urn:") => return Ok(Target::Ignored),
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
