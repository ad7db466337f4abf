//! `/api/system`: server status and the runtime configuration options.

use super::error::ApiError;
use super::extract::{Admin, JsonBody};
use super::state::AppState;
use crate::auth::{may_change_binding, Binding};
use crate::options::{self, Change, OptionOutput};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/system/server-status", get(server_status))
        .route(
            "/api/system/configuration/options",
            get(list_options).post(set_options),
        )
}

async fn server_status() -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "serverSpecVersion": env!("CARGO_PKG_VERSION"),
        "status": "HEALTHY",
    }))
}

async fn list_options(
    State(state): State<AppState>,
    Admin(_): Admin,
) -> Result<Json<Value>, ApiError> {
    let list = options::list(&state.0).await?;
    Ok(Json(json!({ "configurationOptions": list })))
}

#[derive(Debug, Deserialize)]
struct OptionInput {
    path: String,
    value: Value,
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OptionsInput {
    configuration_options: Vec<OptionInput>,
    #[serde(default)]
    dry_run: bool,
}

async fn set_options(
    State(state): State<AppState>,
    Admin(p): Admin,
    JsonBody(input): JsonBody<OptionsInput>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "configurationOptions": list })))
}
