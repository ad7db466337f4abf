//! `/api/users`: the caller, the user list, one user, the validity override, deletion.

use super::error::{ApiError, StatusMessage};
use super::extract::{Admin, Caller, JsonBody, Path, Query};
use super::openapi::{Conflict, Forbidden, JsonInput, NotFound, Refused};
use super::output::{user_output, UserOutput};
use super::paging::{PageLinks, PageParams};
use super::state::AppState;
use crate::auth::{may_change_binding, Binding};
use crate::error::Error;
use crate::ids::UserId;
use crate::metrics::inc;
use crate::users::{self, Override};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list, create))
        .routes(routes!(show, delete))
        .routes(routes!(update))
}

/// The caller
#[utoipa::path(
    get,
    path = "/api/users/me",
    tag = "users",
    operation_id = "getMe",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = []), ("session" = [])),
    responses((status = 200, body = UserOutput), Refused, NotFound),
)]
async fn me(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<UserOutput>, ApiError> {
    let info = users::get(&state.0, &p.user.id).await?;
    Ok(Json(user_output(&state, &info)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// How many users to skip (default 0).
    #[param(minimum = 0)]
    offset: Option<i64>,
    /// How many users at most (default 40).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// true: only service accounts; false: only people.
    is_application_service_principal: Option<bool>,
}

/// A page of users.
#[derive(Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserOutput>,
    #[serde(flatten)]
    pub page: PageLinks,
}

/// Lists users (admins)
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "users",
    operation_id = "listUsers",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = []), ("session" = [])),
    params(ListParams),
    responses((status = 200, body = UserList), Refused, Forbidden),
)]
async fn list(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Query(params): Query<ListParams>,
) -> Result<Json<UserList>, ApiError> {
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
    Ok(Json(UserList {
        users,
        page: page.links("/api/users", &extra, total),
    }))
}

/// The subset of UserInputV1 for creating a service account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct NewUserInput {
    /// The display name.
    name: Option<String>,
    /// The login name; derived from `name` when absent.
    username: Option<String>,
    /// Must be true: only service accounts are created here.
    #[serde(default)]
    is_application_service_principal: bool,
    /// The responsible person: a user id, or `DIRECTORY:USERNAME`.
    manager: Option<String>,
}

/// Creates a service account (admins)
///
/// People are not created here: they come from their directory (or `accesskeyd local-user
/// add` for the built-in one).
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "users",
    operation_id = "createServiceAccount",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = [])),
    request_body(
        content = NewUserInput,
        content_type = "application/json",
        description = "Also accepted as application/vnd.seeq.v1+json (what the Seeq SDK sends)",
    ),
    responses(
        (status = 201, description = "Created", body = UserOutput),
        Refused, JsonInput, Forbidden, NotFound, Conflict,
    ),
)]
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

/// One user (admins, or the user themself)
#[utoipa::path(
    get,
    path = "/api/users/{id}",
    tag = "users",
    operation_id = "getUser",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = []), ("session" = [])),
    params(("id" = String, Path, description = "The user's id (any case)")),
    responses((status = 200, body = UserOutput), Refused, Forbidden, NotFound),
)]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserUpdate {
    /// Integer minutes: the user's validity window. Negative removes the override, 0
    /// disables the user's keys, at most 52704000. Audit `user.validity_override`.
    access_key_validity_duration: Option<i64>,
    /// Integer minutes, 1 to 525600: the user's session duration, for sessions opened from
    /// now on. Negative removes the override; 0 is refused. Audit `user.session_duration`.
    session_duration: Option<i64>,
    /// Service accounts only: a new manager, a user id or `DIRECTORY:USERNAME`. A suspended
    /// account becomes active again. Audit `service_account.manager`; 404 for a person.
    manager: Option<String>,
}

/// Changes a user's overrides (admins)
///
/// One transaction: a refused field leaves the others unapplied too.
#[utoipa::path(
    post,
    path = "/api/users/{id}/update",
    tag = "users",
    operation_id = "updateUser",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "The user's id (any case)")),
    request_body(
        content = UserUpdate,
        content_type = "application/json",
        description = "Also accepted as application/vnd.seeq.v1+json (what the Seeq SDK sends)",
    ),
    responses(
        (status = 200, body = UserOutput),
        Refused, JsonInput, Forbidden, NotFound, Conflict,
    ),
)]
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

/// Deletes a user (admins)
///
/// The user's keys and sessions are gone in the same transaction.
#[utoipa::path(
    delete,
    path = "/api/users/{id}",
    tag = "users",
    operation_id = "deleteUser",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = [])),
    params(("id" = String, Path, description = "The user's id (any case)")),
    responses(
        (status = 200, description = "Deleted", body = StatusMessage),
        Refused, Forbidden, NotFound, Conflict,
    ),
)]
async fn delete(
    State(state): State<AppState>,
    Admin(p): Admin,
    Path(id): Path<UserId>,
) -> Result<Json<StatusMessage>, ApiError> {
    let (row, deleted) = users::delete(&state.0, &p.actor(), &id).await?;
    inc(&state.0.metrics.users_deleted);
    Ok(Json(StatusMessage::new(format!(
        "user `{}` deleted with {} access key(s) and {} session(s)",
        row.username, deleted.keys, deleted.sessions
    ))))
}
