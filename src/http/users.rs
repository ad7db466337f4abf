//! `/api/users`: the caller, the user list, one user, the validity override, deletion.

use super::error::ApiError;
use super::extract::{Admin, Caller, JsonBody, Path, Query};
use super::paging::PageParams;
use super::AppState;
use crate::error::Error;
use crate::metrics::inc;
use crate::store::models::from_ms;
use crate::users::{self, UserInfo};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/me", get(me))
        .route("/api/users", get(list))
        .route("/api/users/{id}", get(show).delete(delete))
        .route("/api/users/{id}/update", post(update))
}

/// The SDK's ScalarValueOutputV1: a bare number makes the SDK fail to parse.
#[derive(Debug, Serialize)]
pub struct ScalarValue {
    pub value: i64,
    pub uom: &'static str,
}

/// UserOutputV1.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOutput {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub username: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub is_admin: bool,
    pub is_enabled: bool,
    pub datasource_class: String,
    pub datasource_id: String,
    pub datasource_name: String,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub access_key_validity_duration: Option<i64>,
    pub effective_access_key_validity_duration: ScalarValue,
    /// accesskeyd's own: when this user's keys stop working unless they log in again.
    pub access_keys_valid_until: Option<DateTime<Utc>>,
    /// accesskeyd's own: since when the user is suspended (gone from the directory, within
    /// `removal_grace_hours`); keys and sessions are refused meanwhile.
    pub suspended_at: Option<DateTime<Utc>>,
}

pub fn user_output(state: &AppState, u: &UserInfo) -> UserOutput {
    let dir = state.0.directory(&u.row.directory_id);
    let r = &u.row;
    UserOutput {
        id: r.id.clone(),
        kind: "User",
        name: r.display_name.clone().unwrap_or_else(|| r.username.clone()),
        username: r.username.clone(),
        first_name: r.first_name.clone(),
        last_name: r.last_name.clone(),
        email: r.email.clone(),
        is_admin: r.is_admin,
        is_enabled: r.is_enabled,
        datasource_class: dir.map_or("Auth", |d| d.class()).to_string(),
        datasource_id: r.directory_id.clone(),
        datasource_name: dir.map_or_else(|| r.directory_id.clone(), |d| d.name().to_string()),
        created_at: from_ms(r.created_at),
        last_login_at: r.last_login(),
        access_key_validity_duration: r.access_key_validity_minutes,
        effective_access_key_validity_duration: ScalarValue {
            value: u.window.minutes(),
            uom: "min",
        },
        access_keys_valid_until: u.keys_valid_until(),
        suspended_at: r.suspended_at.map(from_ms),
    }
}

async fn me(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<UserOutput>, ApiError> {
    let info = users::get(&state.0, &p.user.id).await?;
    Ok(Json(user_output(&state, &info)))
}

async fn list(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(params): Query<PageParams>,
) -> Result<Json<Value>, ApiError> {
    let page = params.page()?;
    let (rows, total) = users::list(&state.0, page.offset, page.limit).await?;
    let users: Vec<UserOutput> = rows.iter().map(|u| user_output(&state, u)).collect();
    Ok(Json(json!({
        "users": users,
        "offset": page.offset,
        "limit": page.limit,
        "totalResults": total,
        "next": page.next("/api/users", &[], total),
        "prev": page.prev("/api/users", &[]),
    })))
}

async fn show(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Result<Json<UserOutput>, ApiError> {
    if !p.user.is_admin && !p.user.id.eq_ignore_ascii_case(&id) {
        return Err(Error::forbidden("only admins see other users").into());
    }
    let info = users::get(&state.0, &id).await?;
    Ok(Json(user_output(&state, &info)))
}

/// The subset of UserInputV1 this service acts on; other fields are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserUpdate {
    access_key_validity_duration: Option<i64>,
}

async fn update(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UserUpdate>,
) -> Result<Json<UserOutput>, ApiError> {
    let minutes = body.access_key_validity_duration.ok_or_else(|| {
        Error::invalid(
            "accessKeyValidityDuration: required (minutes; negative resets to the system value)",
        )
    })?;
    let info = users::set_validity_override(&state.0, &p.actor(), &id, minutes).await?;
    Ok(Json(user_output(&state, &info)))
}

async fn delete(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (row, deleted) = users::delete(&state.0, &p.actor(), &id).await?;
    inc(&state.0.metrics.users_deleted);
    Ok(Json(json!({
        "statusMessage": format!(
            "user `{}` deleted with {} access key(s) and {} session(s)",
            row.username, deleted.keys, deleted.sessions
        )
    })))
}
