//! `/api/auth`: providers, login, logout, and forward authentication for reverse proxies.

use super::error::ApiError;
use super::extract::{credentials, remote_addr, Caller, JsonBody, Query, RemoteAddr};
use super::users::{user_output, UserOutput};
use super::AppState;
use crate::auth::{self, LoginInput};
use crate::error::Error;
use crate::secret::Secret;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/providers", get(providers))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", delete(logout))
        .route("/api/auth/verify", get(verify).post(verify))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProvidersQuery {
    /// Comma-separated directory ids; only these are listed.
    include_auth_provider_ids: Option<String>,
}

async fn providers(State(state): State<AppState>, Query(q): Query<ProvidersQuery>) -> Json<Value> {
    let wanted: Option<Vec<String>> = q.include_auth_provider_ids.map(|ids| {
        ids.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    });
    let list: Vec<Value> = state
        .0
        .directories
        .iter()
        .filter(|d| {
            wanted
                .as_ref()
                .is_none_or(|w| w.contains(&d.id().to_ascii_lowercase()))
        })
        .map(|d| {
            json!({
                "datasourceClass": d.class(),
                "datasourceId": d.id(),
                "name": d.name(),
                "id": d.id(),
            })
        })
        .collect();
    Json(json!({ "authProviders": list }))
}

/// AuthInputV1. `code`/`state` belong to OIDC, which this build does not have.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthInput {
    username: Option<String>,
    password: Option<Secret>,
    #[allow(dead_code)]
    auth_provider_class: Option<String>,
    auth_provider_id: Option<String>,
    code: Option<String>,
    state: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    RemoteAddr(addr): RemoteAddr,
    JsonBody(input): JsonBody<AuthInput>,
) -> Result<Response, ApiError> {
    if input.code.is_some() || input.state.is_some() {
        return Err(Error::invalid("code/state: no OpenID Connect directory is configured").into());
    }
    let username = input
        .username
        .ok_or_else(|| Error::invalid("username: required"))?;
    let password = input
        .password
        .ok_or_else(|| Error::invalid("password: required"))?;
    let done = auth::login(
        &state.0,
        LoginInput {
            username,
            password,
            directory_id: input.auth_provider_id.filter(|s| !s.is_empty()),
        },
        addr,
    )
    .await?;
    let body: UserOutput = user_output(&state, &done.user);
    let mut response = Json(body).into_response();
    let token = HeaderValue::from_str(done.token.expose())
        .map_err(|e| Error::Internal(format!("token header: {e}")))?;
    response.headers_mut().insert("x-sq-auth", token);
    Ok(response)
}

async fn logout(State(state): State<AppState>, Caller(p): Caller) -> Result<StatusCode, ApiError> {
    auth::logout(&state.0, &p).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forward authentication (nginx `auth_request`, Traefik ForwardAuth, Envoy): 200 with the
/// caller in headers, or 401 with a Basic challenge.
async fn verify(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    let creds = credentials(&parts)?
        .ok_or_else(|| Error::Unauthenticated("authentication required".into()))?;
    let p = auth::authenticate(&state.0, creds, remote_addr(&parts)).await?;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| -> Result<(), ApiError> {
        let v = HeaderValue::from_str(value)
            .map_err(|e| Error::Internal(format!("header {name}: {e}")))?;
        headers.insert(HeaderName::from_static(name), v);
        Ok(())
    };
    set("x-auth-user", &p.user.username)?;
    set("x-auth-user-id", &p.user.id)?;
    set(
        "x-auth-admin",
        if p.user.is_admin { "true" } else { "false" },
    )?;
    set("x-auth-method", p.method.as_str())?;
    if let Some((_, key_id)) = &p.key {
        set("x-auth-key-id", key_id)?;
    }
    Ok((StatusCode::OK, headers).into_response())
}
