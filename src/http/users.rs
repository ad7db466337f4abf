//! `/api/users`: the caller, the user list, one user, the validity override, deletion.

use super::error::ApiError;
use super::extract::{Admin, Caller, JsonBody, Path, Query};
use super::paging::PageParams;
use super::AppState;
use crate::auth::{may_change_binding, Binding};
use crate::error::Error;
use crate::metrics::inc;
use crate::store::models::from_ms;
use crate::users::{self, UserInfo};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/me", get(me))
        .route("/api/users", get(list).post(create))
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
    /// `removal_grace_hours`; or a service account whose manager was removed); keys and
    /// sessions are refused meanwhile.
    pub suspended_at: Option<DateTime<Utc>>,
    /// The user's session duration override in minutes, null when none.
    pub session_duration: Option<i64>,
    /// The session duration in force for this user.
    pub effective_session_duration: ScalarValue,
    /// A service account (never logs in; its keys carry an expiry).
    pub is_application_service_principal: bool,
    /// A service account's responsible person; null for people, and for a suspended account.
    pub manager: Option<IdentityOutput>,
}

/// `{"id","name","type"}`, as the SDK's identity previews.
#[derive(Debug, Serialize)]
pub struct IdentityOutput {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
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
        access_keys_valid_until: if r.is_service_account {
            None
        } else {
            u.keys_valid_until()
        },
        suspended_at: r.suspended_at.map(from_ms),
        session_duration: r.session_duration_minutes,
        effective_session_duration: ScalarValue {
            value: u.session_minutes,
            uom: "min",
        },
        is_application_service_principal: r.is_service_account,
        manager: r.manager_id.as_ref().map(|id| IdentityOutput {
            id: id.clone(),
            name: u.manager_name.clone().unwrap_or_default(),
            kind: "User",
        }),
    }
}

async fn me(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<UserOutput>, ApiError> {
    let info = users::get(&state.0, &p.user.id).await?;
    Ok(Json(user_output(&state, &info)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    offset: Option<i64>,
    limit: Option<i64>,
    /// true: only service accounts; false: only people.
    is_application_service_principal: Option<bool>,
}

async fn list(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let page = PageParams {
        offset: params.offset,
        limit: params.limit,
    }
    .page()?;
    let filter = params.is_application_service_principal;
    let (rows, total) = users::list(&state.0, filter, page.offset, page.limit).await?;
    let users: Vec<UserOutput> = rows.iter().map(|u| user_output(&state, u)).collect();
    let extra: Vec<(&str, String)> = filter
        .map(|f| vec![("isApplicationServicePrincipal", f.to_string())])
        .unwrap_or_default();
    Ok(Json(json!({
        "users": users,
        "offset": page.offset,
        "limit": page.limit,
        "totalResults": total,
        "next": page.next("/api/users", &extra, total),
        "prev": page.prev("/api/users", &extra),
    })))
}

/// The subset of UserInputV1 for creating a service account.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewUserInput {
    name: Option<String>,
    username: Option<String>,
    #[serde(default)]
    is_application_service_principal: bool,
    /// A user id, or `DIRECTORY:USERNAME`.
    manager: Option<String>,
}

/// Creates a service account. People are not created here: they come from their directory
/// (or `accesskeyd local-user add` for the built-in one).
async fn create(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(input): JsonBody<NewUserInput>,
) -> Result<(StatusCode, Json<UserOutput>), ApiError> {
    if !input.is_application_service_principal {
        return Err(Error::invalid(
            "isApplicationServicePrincipal: only service accounts are created here; people come from their directory",
        )
        .into());
    }
    // Its manager is what keeps a service account's keys working.
    may_change_binding(p.method, Binding::ServiceAccountManager)?;
    let info = crate::service_accounts::create(
        &state.0,
        &p.actor(),
        crate::service_accounts::NewServiceAccount {
            name: input.name.unwrap_or_default(),
            username: input.username,
            manager: input.manager.unwrap_or_default(),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user_output(&state, &info))))
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
    session_duration: Option<i64>,
    /// A service account's new manager (user id or `DIRECTORY:USERNAME`).
    manager: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UserUpdate>,
) -> Result<Json<UserOutput>, ApiError> {
    // Every field here binds keys: an admin's key changes none of them.
    let fields = [
        (
            body.access_key_validity_duration.is_some(),
            Binding::ValidityOverride,
        ),
        (body.session_duration.is_some(), Binding::SessionDuration),
        (body.manager.is_some(), Binding::ServiceAccountManager),
    ];
    for (_, what) in fields.iter().filter(|(given, _)| *given) {
        may_change_binding(p.method, *what)?;
    }
    // One transaction: a refused field leaves the others unapplied too.
    let update = users::Update {
        access_key_validity_minutes: body.access_key_validity_duration,
        session_duration_minutes: body.session_duration,
        manager: body.manager,
    };
    let info = users::update(&state.0, &p.actor(), &id, update).await?;
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
