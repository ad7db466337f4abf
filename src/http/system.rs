//! `/api/system`: server status and the runtime configuration options.

use super::error::ApiError;
use super::extract::{Admin, JsonBody};
use super::openapi::{Conflict, Forbidden, JsonInput, Refused};
use super::state::AppState;
use crate::auth::{may_change_binding, Binding};
use crate::options::{self, Change, OptionOutput};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(server_status))
        .routes(routes!(list_options, set_options))
}

/// The SDK's ServerStatusOutputV1, the fields this service has.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// `<major>.<minor>.<patch>`
    #[schema(value_type = String)]
    pub version: &'static str,
    #[schema(value_type = String)]
    pub server_spec_version: &'static str,
    /// `HEALTHY`.
    #[schema(value_type = String, example = "HEALTHY")]
    pub status: &'static str,
}

/// The server's version
///
/// Needs no credentials.
#[utoipa::path(
    get,
    path = "/api/system/server-status",
    tag = "system",
    operation_id = "getServerStatus",
    responses((status = 200, body = ServerStatus)),
)]
async fn server_status() -> Json<ServerStatus> {
    Json(ServerStatus {
        version: env!("CARGO_PKG_VERSION"),
        server_spec_version: env!("CARGO_PKG_VERSION"),
        status: "HEALTHY",
    })
}

/// The runtime configuration options.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptionsOutput {
    pub configuration_options: Vec<OptionOutput>,
}

/// The runtime configuration options (admins)
#[utoipa::path(
    get,
    path = "/api/system/configuration/options",
    tag = "system",
    operation_id = "getConfigurationOptions",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = []), ("session" = [])),
    responses((status = 200, body = OptionsOutput), Refused, Forbidden),
)]
async fn list_options(
    State(state): State<AppState>,
    Admin(_admin): Admin,
) -> Result<Json<OptionsOutput>, ApiError> {
    let list = options::list(&state.0).await?;
    Ok(Json(OptionsOutput {
        configuration_options: list,
    }))
}

/// One change.
#[derive(Debug, Deserialize, ToSchema)]
struct OptionInput {
    /// The option, e.g. `Authentication/AccessKey/ValidityWithoutUserLogin`.
    path: String,
    /// The new value, of the option's type.
    value: Value,
    /// Why, for the audit trail.
    note: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct OptionsInput {
    configuration_options: Vec<OptionInput>,
    /// Answer the list as it would be, change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Changes runtime configuration options (admins)
///
/// Answers every option after the change (or, for a dry run, as it would be). An unknown
/// path or a value of the wrong type is a 400 and changes nothing.
#[utoipa::path(
    post,
    path = "/api/system/configuration/options",
    tag = "system",
    operation_id = "setConfigurationOptions",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = [])),
    request_body(
        content = OptionsInput,
        content_type = "application/json",
        description = "Also accepted as application/vnd.seeq.v1+json (what the Seeq SDK sends)",
    ),
    responses((status = 200, body = OptionsOutput), Refused, JsonInput, Forbidden, Conflict),
)]
async fn set_options(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(input): JsonBody<OptionsInput>,
) -> Result<Json<OptionsOutput>, ApiError> {
    let app = &state.0;
    // Dry runs too: a preview should answer as the real change would, not say "fine" to
    // a change this caller cannot make.
    for o in &input.configuration_options {
        if let Some(what) = Binding::of_option(&o.path) {
            may_change_binding(p.method, what)?;
        }
    }
    let changes = input
        .configuration_options
        .into_iter()
        .map(|o| Change {
            path: o.path,
            value: o.value,
            note: o.note,
        })
        .collect();
    let changed: Vec<OptionOutput> = options::set(app, &p.actor(), changes, input.dry_run).await?;
    let list = options::list(app).await?;
    let list = if input.dry_run {
        // Show the list as it would be.
        list.into_iter()
            .map(|o| {
                changed
                    .iter()
                    .find(|c| c.path == o.path)
                    .cloned()
                    .unwrap_or(o)
            })
            .collect()
    } else {
        list
    };
    Ok(Json(OptionsOutput {
        configuration_options: list,
    }))
}
