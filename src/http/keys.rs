//! `/api/accesskeys`: create (password shown once), list, delete.

use super::error::ApiError;
use super::error::StatusMessage;
use super::extract::{AnyMethodCaller, Caller, JsonBody, Path, Query};
use super::openapi::{Conflict, Forbidden, JsonInput, NotFound, Refused};
use super::paging::{PageLinks, PageParams};
use super::state::AppState;
use crate::auth::{may_change_binding, Binding};
use crate::error::Error;
use crate::ids::{KeyRowId, UserId};
use crate::keys::{self, KeyView, NewKey, Scope};
use crate::store::key_columns::{KeyScope, Networks, UnknownScope};
use crate::store::timestamp::Timestamp;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(remove, update))
        .routes(routes!(rotate))
}

/// AccessKeyOutputV1.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyOutput {
    /// The key's own id.
    pub id: KeyRowId,
    /// The access key itself: the "username" part of its credentials.
    pub key_id: String,
    /// The label.
    pub name: String,
    pub description: Option<String>,
    /// The key's password: only in the answer to creation, never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Password, nullable = false)]
    pub password: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the key last authenticated; null when never.
    pub last_used: Option<DateTime<Utc>>,
    /// The owner's admin standing.
    pub is_admin: bool,
    /// The owner's id.
    pub user_id: UserId,
    /// accesskeyd's own: the owner's username, for the admin list.
    pub username: String,
    /// A service account's key: when it stops working; null for people's keys.
    pub expiry: Option<DateTime<Utc>>,
    /// accesskeyd's own: when the key stops working unless its owner signs in again (or its
    /// expiry); null when it does not work now.
    pub valid_until: Option<DateTime<Utc>>,
    /// `AccessKey`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "AccessKey")]
    pub kind: &'static str,
    /// accesskeyd's own: `full`, or `read` (GET, HEAD and OPTIONS only).
    #[schema(value_type = String, example = "full")]
    pub scope: &'static str,
    /// accesskeyd's own: the client networks (CIDRs) the key may be used from; null:
    /// anywhere.
    pub allowed_networks: Option<Vec<String>>,
    /// accesskeyd's own: the last distinct client addresses the key was used from, newest
    /// first (at most 5; written no more often than `lastUsed`).
    pub recent_uses: Vec<RecentUse>,
    /// accesskeyd's own: when its password was last rotated; null if never.
    pub rotated_at: Option<DateTime<Utc>>,
    /// accesskeyd's own: until when the password from before the last rotation still works;
    /// null when it no longer does.
    pub previous_password_valid_until: Option<DateTime<Utc>>,
}

/// One client address a key was used from.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecentUse {
    pub address: String,
    /// When (the last written use from that address).
    pub at: DateTime<Utc>,
    pub user_agent: Option<String>,
}

fn output(v: KeyView, password: Option<String>, now: DateTime<Utc>) -> KeyOutput {
    let previous_until = v
        .row
        .previous_until
        .filter(|_| v.row.previous_hash_at(now).is_some())
        .map(Timestamp::at);
    KeyOutput {
        scope: v.row.scope.as_str(),
        allowed_networks: v.row.allowed_networks.as_ref().map(Networks::to_strings),
        recent_uses: v
            .recent_uses
            .into_iter()
            .map(|u| RecentUse {
                address: u.address,
                at: u.at.at(),
                user_agent: u.user_agent,
            })
            .collect(),
        rotated_at: v.row.rotated_at.map(Timestamp::at),
        previous_password_valid_until: previous_until,
        id: v.row.id,
        key_id: v.row.key_id,
        name: v.row.name,
        description: v.row.description,
        password,
        created_at: v.row.created_at.at(),
        last_used: v.row.last_used_at.map(Timestamp::at),
        is_admin: v.owner_is_admin,
        user_id: v.row.user_id,
        username: v.owner_username,
        expiry: v.row.expires_at.map(Timestamp::at),
        valid_until: v.valid_until,
        kind: "AccessKey",
    }
}

/// AccessKeyInputV1.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct KeyInput {
    /// The label (required): visible characters, at most `access_keys.max_label_length`.
    #[schema(required = true, nullable = false, min_length = 1, pattern = r"\S")]
    name: Option<String>,
    description: Option<String>,
    /// Admins: create the key for this user (a person or a service account).
    user_id: Option<UserId>,
    /// ISO-8601; required for a service account's key.
    expiry: Option<DateTime<Utc>>,
    /// accesskeyd's own: `full` (the default: what its owner may do) or `read` (GET, HEAD
    /// and OPTIONS only).
    #[schema(value_type = Option<String>, example = "read")]
    scope: Option<String>,
    /// accesskeyd's own: the client networks (CIDRs or addresses, at most 32) the key may be
    /// used from; absent or null: anywhere.
    allowed_networks: Option<Vec<String>>,
}

/// The scope a caller asked for: `full` when absent.
pub(super) fn parse_scope(scope: Option<&str>) -> Result<KeyScope, Error> {
    match scope.map(str::trim) {
        None | Some("") => Ok(KeyScope::Full),
        Some(s) => s
            .parse()
            .map_err(|e: UnknownScope| Error::invalid(format!("scope: {e}"))),
    }
}

/// The networks a caller asked for: None when absent.
pub(super) fn parse_networks(list: Option<&[String]>) -> Result<Option<Networks>, Error> {
    list.map(|l| Networks::parse(l).map_err(|e| Error::invalid(format!("allowedNetworks: {e}"))))
        .transpose()
}

/// Creates an access key
///
/// For the caller (an interactive session), or as an admin for `userId`. The answer holds
/// the password, which is never shown again.
#[utoipa::path(
    post,
    path = "/api/accesskeys",
    tag = "accesskeys",
    operation_id = "createKey",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = [])),
    request_body(
        content = KeyInput,
        content_type = "application/json",
        description = "Also accepted as application/vnd.seeq.v1+json (what the Seeq SDK sends)",
    ),
    responses(
        (status = 201, description = "Created; with the password", body = KeyOutput),
        Refused, JsonInput, Forbidden, NotFound, Conflict,
    ),
)]
async fn create(
    State(state): State<AppState>,
    Caller(p): Caller,
    JsonBody(input): JsonBody<KeyInput>,
) -> Result<(StatusCode, Json<KeyOutput>), ApiError> {
    // Even where key sessions may create keys, an expiry is a service account's binding.
    if input.expiry.is_some() {
        may_change_binding(p.method, Binding::ServiceAccountKeyExpiry)?;
    }
    let scope = parse_scope(input.scope.as_deref())?;
    let allowed_networks = parse_networks(input.allowed_networks.as_deref())?;
    let (view, password) = keys::create(
        &state.0,
        &p,
        NewKey {
            name: input.name,
            description: input.description,
            user_id: input.user_id,
            expiry: input.expiry,
            scope,
            allowed_networks,
        },
    )
    .await?;
    let now = state.0.clock.now();
    Ok((
        StatusCode::CREATED,
        Json(output(view, Some(password.expose().to_string()), now)),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// How many keys to skip (default 0).
    #[param(minimum = 0)]
    offset: Option<i64>,
    /// How many keys at most (default 40).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Admins: every user's keys.
    get_all: Option<bool>,
    /// Admins: this user's keys.
    user_id: Option<UserId>,
}

/// A page of access keys.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    /// Without passwords.
    pub keys: Vec<KeyOutput>,
    #[serde(flatten)]
    pub page: PageLinks,
}

/// Lists access keys
///
/// The caller's own; admins every user's (`getAll`) or one user's (`userId`).
#[utoipa::path(
    get,
    path = "/api/accesskeys",
    tag = "accesskeys",
    operation_id = "listKeys",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = []), ("session" = [])),
    params(ListParams),
    responses((status = 200, body = KeyList), Refused, Forbidden, NotFound),
)]
async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<KeyList>, ApiError> {
    let page = PageParams {
        offset: params.offset,
        limit: params.limit,
    }
    .page()?;
    let mut extra = Vec::new();
    let scope = match (params.get_all.unwrap_or(false), params.user_id) {
        (true, _) => {
            extra.push(("getAll", "true".to_string()));
            Scope::All
        }
        (false, Some(id)) => {
            extra.push(("userId", id.to_string()));
            Scope::User(id)
        }
        (false, None) => Scope::Mine,
    };
    let (rows, total) = keys::list(&state.0, &p, scope, None, page.offset, page.limit).await?;
    let now = state.0.clock.now();
    let keys: Vec<KeyOutput> = rows.into_iter().map(|v| output(v, None, now)).collect();
    Ok(Json(KeyList {
        keys,
        page: page.links("/api/accesskeys", &extra, total),
    }))
}

/// Deletes an access key
///
/// The owner's or, for admins, anyone's.
#[utoipa::path(
    delete,
    path = "/api/accesskeys/{keyName}",
    tag = "accesskeys",
    operation_id = "deleteKey",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = [])),
    params(("keyName" = String, Path, description = "The access key (its `keyId`)")),
    responses(
        (status = 200, description = "Deleted", body = StatusMessage),
        Refused, Forbidden, NotFound,
    ),
)]
async fn remove(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(key_name): Path<String>,
) -> Result<Json<StatusMessage>, ApiError> {
    let row = keys::delete(&state.0, &p, &key_name).await?;
    Ok(Json(StatusMessage::new(format!(
        "access key `{}` ({}) deleted",
        row.key_id, row.name
    ))))
}

/// A change to a key (only `allowedNetworks` may change).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyUpdate {
    /// CIDRs or addresses (at most 32) the key may be used from from now on; `null`: from
    /// anywhere again. Required.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, required = true)]
    allowed_networks: Option<Option<Vec<String>>>,
}

/// A field that is present, even as `null` (absent stays `None`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes where an access key may be used from
///
/// The owner's or, for admins, anyone's; from an interactive login only (403 with a key).
#[utoipa::path(
    patch,
    path = "/api/accesskeys/{keyName}",
    tag = "accesskeys",
    operation_id = "updateKey",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = [])),
    params(("keyName" = String, Path, description = "The access key (its `keyId`)")),
    request_body(content = KeyUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = KeyOutput),
        Refused, JsonInput, Forbidden, NotFound,
    ),
)]
async fn update(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(key_name): Path<String>,
    JsonBody(input): JsonBody<KeyUpdate>,
) -> Result<Json<KeyOutput>, ApiError> {
    let networks = match input.allowed_networks {
        None => {
            return Err(Error::invalid(
                "allowedNetworks: required (a list of networks, or null for anywhere)",
            )
            .into())
        }
        Some(list) => parse_networks(list.as_deref())?,
    };
    let view = keys::set_networks(&state.0, &p, &key_name, networks).await?;
    Ok(Json(output(view, None, state.0.clock.now())))
}

/// Rotates an access key's password
///
/// The answer holds the new password, shown once; the old one keeps working for
/// `Authentication/AccessKey/RotationOverlapMinutes`. The owner, an admin, or the key
/// itself (even a read-only one) may rotate it. Rotation never extends how long it works.
#[utoipa::path(
    post,
    path = "/api/accesskeys/{keyName}/rotate",
    tag = "accesskeys",
    operation_id = "rotateKey",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = [])),
    params(("keyName" = String, Path, description = "The access key (its `keyId`)")),
    responses(
        (status = 200, description = "Rotated; with the new password", body = KeyOutput),
        Refused, Forbidden, NotFound,
    ),
)]
async fn rotate(
    State(state): State<AppState>,
    AnyMethodCaller(p): AnyMethodCaller,
    Path(key_name): Path<String>,
) -> Result<Json<KeyOutput>, ApiError> {
    let (view, password) = keys::rotate(&state.0, &p, &key_name).await?;
    Ok(Json(output(
        view,
        Some(password.expose().to_string()),
        state.0.clock.now(),
    )))
}
