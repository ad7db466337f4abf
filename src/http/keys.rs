//! `/api/accesskeys`: create (password shown once), list, delete.

use super::error::ApiError;
use super::extract::{Caller, JsonBody, Path, Query};
use super::paging::PageParams;
use super::state::AppState;
use crate::auth::{may_change_binding, Binding};
use crate::ids::{KeyRowId, UserId};
use crate::keys::{self, KeyView, NewKey, Scope};
use crate::store::models::from_ms;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/accesskeys", get(list).post(create))
        .route("/api/accesskeys/{key_name}", delete(remove))
}

/// AccessKeyOutputV1.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyOutput {
    pub id: KeyRowId,
    pub key_id: String,
    pub name: String,
    pub description: Option<String>,
    /// Only in the answer to creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
    pub is_admin: bool,
    pub user_id: UserId,
    /// accesskeyd's own: the owner's username, for the admin list.
    pub username: String,
    /// A service account's key: when it stops working; null for people's keys.
    pub expiry: Option<DateTime<Utc>>,
    /// accesskeyd's own: when the key stops working unless its owner signs in again (or its
    /// expiry); null when it does not work now.
    pub valid_until: Option<DateTime<Utc>>,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

fn output(v: KeyView, password: Option<String>) -> KeyOutput {
    KeyOutput {
        id: v.row.id,
        key_id: v.row.key_id,
        name: v.row.name,
        description: v.row.description,
        password,
        created_at: from_ms(v.row.created_at),
        last_used: v.row.last_used_at.map(from_ms),
        is_admin: v.owner_is_admin,
        user_id: v.row.user_id,
        username: v.owner_username,
        expiry: v.row.expires_at.map(from_ms),
        valid_until: v.valid_until,
        kind: "AccessKey",
    }
}

/// AccessKeyInputV1.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyInput {
    name: Option<String>,
    description: Option<String>,
    user_id: Option<UserId>,
    /// ISO-8601; required for a service account's key.
    expiry: Option<DateTime<Utc>>,
}

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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    offset: Option<i64>,
    limit: Option<i64>,
    get_all: Option<bool>,
    user_id: Option<UserId>,
}

async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "keys": keys,
        "offset": page.offset,
        "limit": page.limit,
        "totalResults": total,
        "next": page.next("/api/accesskeys", &extra, total),
        "prev": page.prev("/api/accesskeys", &extra),
    })))
}

async fn remove(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(key_name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = keys::delete(&state.0, &p, &key_name).await?;
    Ok(Json(json!({
        "statusMessage": format!("access key `{}` ({}) deleted", row.key_id, row.name)
    })))
}
