//! `/api/accesskeys`: create (password shown once), list, delete.

use super::error::ApiError;
use super::error::StatusMessage;
use super::extract::{Caller, JsonBody, Path, Query};
use super::openapi::{Conflict, Forbidden, JsonInput, NotFound, Refused};
use super::paging::{PageLinks, PageParams};
use super::state::AppState;
use crate::auth::{may_change_binding, Binding};
use crate::ids::{KeyRowId, UserId};
use crate::keys::{self, KeyView, NewKey, Scope};
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
        .routes(routes!(remove))
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
}

fn output(v: KeyView, password: Option<String>) -> KeyOutput {
    KeyOutput {
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
    let (view, password) = keys::create(
        &state.0,
        &p,
        NewKey {
            name: input.name,
            description: input.description,
            user_id: input.user_id,
            expiry: input.expiry,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(output(view, Some(password.expose().to_string()))),
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
    let keys: Vec<KeyOutput> = rows.into_iter().map(|v| output(v, None)).collect();
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
