//! `/api/auth`: providers, login, logout, and forward authentication for reverse proxies.

use super::cookies;
use super::error::{status_message, ApiError};
use super::extract::{client_ip, credentials, Caller, JsonBody, Path, Query, RemoteAddr};
use super::output::{user_output, UserOutput};
use super::sign_in::{negotiate_header, start_oidc_login, windows_sign_in, WindowsOutcome};
use super::state::AppState;
use super::ui::page::{error_page, see_other, with_security_headers};
use crate::auth::{self, LoginInput};
use crate::error::Error;
use crate::ids::DirectoryId;
use crate::secret::Secret;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/providers", get(providers))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", delete(logout))
        .route("/api/auth/verify", get(verify).post(verify))
        .route("/api/auth/windows", get(windows))
        .route("/api/auth/oidc/{id}/start", get(oidc_start))
        .route("/api/auth/oidc/{id}/callback", get(oidc_callback))
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
                .is_none_or(|w| w.contains(&d.id().as_str().to_ascii_lowercase()))
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
    auth_provider_id: Option<DirectoryId>,
    code: Option<String>,
    state: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    RemoteAddr(addr): RemoteAddr,
    jar: CookieJar,
    JsonBody(input): JsonBody<AuthInput>,
) -> Result<Response, ApiError> {
    // Seeq-style completion of an OpenID Connect login by an API client.
    if input.code.is_some() || input.state.is_some() {
        let (Some(code), Some(st)) = (input.code.as_deref(), input.state.as_deref()) else {
            return Err(Error::invalid(
                "code and state: both are required for an OpenID Connect login",
            )
            .into());
        };
        // The client must be the one that started the login: its cookie jar holds the
        // binding (`start_oidc_login`), as a browser's would.
        let binding = cookies::OIDC_BINDING.read(&jar);
        let done = auth::oidc_finish(
            &state.0,
            input
                .auth_provider_id
                .as_ref()
                .filter(|s| !s.as_str().is_empty()),
            code,
            st,
            binding.as_deref(),
            addr,
        )
        .await?;
        return logged_in(&state, done);
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
            directory_id: input.auth_provider_id.filter(|s| !s.as_str().is_empty()),
        },
        addr,
    )
    .await?;
    logged_in(&state, done)
}

/// The answer to a successful login: the user, and the token in `x-sq-auth`.
fn logged_in(state: &AppState, done: auth::LoggedIn) -> Result<Response, ApiError> {
    let body: UserOutput = user_output(state, &done.user);
    let mut response = Json(body).into_response();
    let token = HeaderValue::from_str(done.token.expose())
        .map_err(|e| Error::Internal(format!("token header: {e}")))?;
    response.headers_mut().insert("x-sq-auth", token);
    Ok(response)
}

/// The answer to a browser login: [`logged_in`] and the session cookie.
fn browser_logged_in(state: &AppState, done: auth::LoggedIn) -> Result<Response, ApiError> {
    let session = CookieJar::new().add(cookies::session(state, &done));
    Ok((session, logged_in(state, done)?).into_response())
}

async fn windows(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    match windows_sign_in(&state, &parts).await? {
        WindowsOutcome::SignedIn(done, mutual) => {
            let mut response = browser_logged_in(&state, *done)?;
            if let Some(mutual) = mutual {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, negotiate_header(Some(&mutual))?);
            }
            Ok(response)
        }
        WindowsOutcome::NotConfigured(message) => {
            Ok(status_message(StatusCode::NOT_IMPLEMENTED, message))
        }
        WindowsOutcome::Refused(e) => {
            let mut response = ApiError::from(e).into_response();
            if response.status() == StatusCode::UNAUTHORIZED {
                // Only Negotiate: a Basic challenge here would make browsers ask for a password.
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, negotiate_header(None)?);
            }
            Ok(response)
        }
    }
}

/// Sends the person to the OpenID provider (303), with the binding cookie.
async fn oidc_start(
    State(state): State<AppState>,
    Path(id): Path<DirectoryId>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let (url, binding) = start_oidc_login(&state, &id, &parts).await?;
    let location =
        HeaderValue::from_str(&url).map_err(|e| Error::Internal(format!("location: {e}")))?;
    Ok((
        StatusCode::SEE_OTHER,
        CookieJar::new().add(binding),
        [(header::LOCATION, location)],
    )
        .into_response())
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the provider sends the browser back: completes the login, sets the session cookie.
/// A login started from the web pages returns there (303 to the key list, or an error page).
async fn oidc_callback(
    State(state): State<AppState>,
    Path(id): Path<DirectoryId>,
    RemoteAddr(addr): RemoteAddr,
    jar: CookieJar,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let from_ui = cookies::UI_RETURN.read(&jar).is_some();
    let binding = cookies::OIDC_BINDING.read(&jar);
    let result = oidc_complete(&state, &id, addr, binding.as_deref(), q).await;
    if !from_ui {
        return browser_logged_in(&state, result?);
    }
    let jar = cookies::UI_RETURN.clear(&state, jar);
    let response = match result {
        Ok(done) => {
            let jar = jar.add(cookies::session(&state, &done));
            (jar, see_other("/ui/keys")).into_response()
        }
        Err(e) => (jar, error_page(e)).into_response(),
    };
    Ok(with_security_headers(response))
}

async fn oidc_complete(
    state: &AppState,
    id: &DirectoryId,
    addr: Option<String>,
    binding: Option<&str>,
    q: CallbackQuery,
) -> Result<auth::LoggedIn, Error> {
    if let Some(error) = q.error {
        return Err(Error::Unauthenticated(format!(
            "login refused by the provider: {error}{}",
            q.error_description
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        )));
    }
    let (Some(code), Some(st)) = (q.code, q.state) else {
        return Err(Error::invalid("code and state: the provider sent neither"));
    };
    auth::oidc_finish(&state.0, Some(id), &code, &st, binding, addr).await
}

async fn logout(State(state): State<AppState>, Caller(p): Caller) -> Result<StatusCode, ApiError> {
    auth::logout(&state.0, &p).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forward authentication (nginx `auth_request`, Traefik ForwardAuth, Envoy): 200 with the
/// caller in headers, or 401 with a Basic challenge.
async fn verify(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    // The request itself, not `Parts`: extracting `Parts` clones its headers and extensions.
    let (parts, _) = request.into_parts();
    let creds = credentials(&parts)?
        .ok_or_else(|| Error::Unauthenticated("authentication required".into()))?;
    let p = auth::authenticate(&state.0, creds, client_ip(&parts, &state.0)).await?;
    // Written straight into the response's own map, sized once: this answers every
    // request an auth_request proxy forwards.
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.reserve(5);
    let dynamic = |name: &'static str, value: &str| {
        HeaderValue::from_str(value)
            .map_err(|e| ApiError::from(Error::Internal(format!("header {name}: {e}"))))
    };
    headers.insert(
        HeaderName::from_static("x-auth-user"),
        dynamic("x-auth-user", &p.user.username)?,
    );
    headers.insert(
        HeaderName::from_static("x-auth-user-id"),
        dynamic("x-auth-user-id", p.user.id.as_str())?,
    );
    headers.insert(
        HeaderName::from_static("x-auth-admin"),
        HeaderValue::from_static(if p.user.is_admin { "true" } else { "false" }),
    );
    headers.insert(
        HeaderName::from_static("x-auth-method"),
        HeaderValue::from_static(p.method.as_str()),
    );
    if let Some((_, key_id)) = &p.key {
        headers.insert(
            HeaderName::from_static("x-auth-key-id"),
            dynamic("x-auth-key-id", key_id)?,
        );
    }
    Ok(response)
}
