//! `/api/users`: the caller, the user list, one user, the validity override, deletion.

use super::error::ApiError;
use super::extract::{Admin, Caller, JsonBody, Path, Query};
use super::output::{user_output, UserOutput};
use super::paging::PageParams;
use super::state::AppState;
use crate::auth::{may_change_binding, Binding};
use crate::error::Error;
use crate::ids::UserId;
use crate::metrics::inc;
use crate::users::{self, Override};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/me", get(me))
        .route("/api/users", get(list).post(create))
        .route("/api/users/{id}", get(show).delete(delete))
        .route("/api/users/{id}/update", post(update))
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
    Path(id): Path<UserId>,
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
    Path(id): Path<UserId>,
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
        access_key_validity: body.access_key_validity_duration.map(Override::from_api),
        session_duration: body.session_duration.map(Override::from_api),
        manager: body.manager,
    };
    let info = users::update(&state.0, &p.actor(), &id, update).await?;
    Ok(Json(user_output(&state, &info)))
}

async fn delete(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<UserId>,
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
