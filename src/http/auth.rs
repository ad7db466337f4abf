//! `/api/auth`: providers, login, logout, and forward authentication for reverse proxies.

use super::error::ApiError;
use super::extract::{client_ip, credentials, Caller, JsonBody, Path, Query, RemoteAddr};
use super::users::{user_output, UserOutput};
use super::AppState;
use crate::auth::{self, LoginInput};
use crate::error::Error;
use crate::kerberos;
use crate::secret::Secret;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine;
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

/// Name of the browser session cookie (set only by interactive browser logins).
pub const SESSION_COOKIE: &str = "accesskeyd_session";

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
    headers: HeaderMap,
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
        let binding = super::extract::cookie(&headers, auth::OIDC_BINDING_COOKIE);
        let done = auth::oidc_finish(
            &state.0,
            input.auth_provider_id.as_deref().filter(|s| !s.is_empty()),
            code,
            st,
            binding.as_deref(),
            addr,
        )
        .await?;
        return logged_in(&state, done, false);
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
    logged_in(&state, done, false)
}

/// The answer to a successful login: the user, the token in `x-sq-auth`, and for browser
/// logins also the session cookie.
fn logged_in(state: &AppState, done: auth::LoggedIn, cookie: bool) -> Result<Response, ApiError> {
    let body: UserOutput = user_output(state, &done.user);
    let mut response = Json(body).into_response();
    let token = HeaderValue::from_str(done.token.expose())
        .map_err(|e| Error::Internal(format!("token header: {e}")))?;
    response.headers_mut().insert("x-sq-auth", token);
    if cookie {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, session_cookie(state, &done)?);
    }
    Ok(response)
}

/// Cookies are `Secure` when people reach accesskeyd over HTTPS (`server.public_url`).
fn is_https(state: &AppState) -> bool {
    state.0.config.server.public_url().starts_with("https://")
}

/// A cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SameSite {
    Lax,
    Strict,
}

/// A `Set-Cookie` value. Setting and clearing a cookie both go through here with the same
/// name, path, `SameSite` and `Secure`: a clearing that differs from the cookie it clears
/// (a `Secure` cookie cleared without it, another path) may leave the browser holding it.
pub(crate) fn cookie_value(
    name: &str,
    value: &str,
    path: &str,
    same_site: SameSite,
    max_age: Option<i64>,
    secure: bool,
) -> String {
    let same_site = match same_site {
        SameSite::Lax => "Lax",
        SameSite::Strict => "Strict",
    };
    let max_age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; HttpOnly; SameSite={same_site}{max_age}{secure}")
}

/// A cookie of ours as this deployment sets it (`Secure` behind HTTPS).
pub(crate) fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    same_site: SameSite,
    max_age: Option<i64>,
) -> Result<HeaderValue, Error> {
    let value = cookie_value(name, value, path, same_site, max_age, is_https(state));
    HeaderValue::from_str(&value).map_err(|e| Error::Internal(format!("cookie: {e}")))
}

/// The browser session cookie of an interactive login.
pub(super) fn session_cookie(
    state: &AppState,
    done: &auth::LoggedIn,
) -> Result<HeaderValue, Error> {
    set_cookie(
        state,
        SESSION_COOKIE,
        done.token.expose(),
        "/",
        SameSite::Lax,
        Some(done.ttl_seconds),
    )
}

/// Removes a `SameSite=Lax` cookie set with `Path=path`.
pub(crate) fn clear_cookie(state: &AppState, name: &str, path: &str) -> HeaderValue {
    clear_cookie_with(state, name, path, SameSite::Lax)
}

/// Removes a cookie, with the attributes it was set with.
pub(crate) fn clear_cookie_with(
    state: &AppState,
    name: &str,
    path: &str,
    same_site: SameSite,
) -> HeaderValue {
    let value = cookie_value(name, "", path, same_site, Some(0), is_https(state));
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("x=; Max-Age=0"))
}

/// Set by the web pages' OpenID Connect button: the callback then returns to the pages.
pub(super) const UI_RETURN_COOKIE: &str = "accesskeyd_ui_return";
pub(super) const OIDC_CALLBACK_PATH: &str = "/api/auth/oidc";
/// The binding cookie's path: both ways to finish a login, the callback and
/// `POST /api/auth/login`, are under it.
const OIDC_BINDING_PATH: &str = "/api/auth";

/// Starts an OpenID Connect login (the API's start and the web pages' button): the provider
/// URL to send the person to, and the cookie that binds the login to this browser. The
/// cookie is `SameSite=Lax`, so it comes along on the provider's top-level redirect to the
/// callback but not on a cross-site POST.
pub(super) async fn start_oidc_login(
    state: &AppState,
    id: &str,
    parts: &Parts,
) -> Result<(String, HeaderValue), Error> {
    let presented = super::extract::cookie(&parts.headers, auth::OIDC_BINDING_COOKIE);
    let started = auth::oidc_start(
        &state.0,
        id,
        super::extract::client_ip(parts, &state.0),
        presented.as_deref(),
    )
    .await?;
    let cookie = set_cookie(
        state,
        auth::OIDC_BINDING_COOKIE,
        started.binding.expose(),
        OIDC_BINDING_PATH,
        SameSite::Lax,
        Some(started.ttl_seconds),
    )?;
    Ok((started.authorization_url, cookie))
}

/// What a Windows sign-in attempt came to.
pub(super) enum WindowsOutcome {
    /// Signed in; the mutual-authentication token for the client, if any.
    SignedIn(Box<auth::LoggedIn>, Option<Vec<u8>>),
    /// Neither a trusted proxy nor Kerberos is configured (501).
    NotConfigured(&'static str),
    /// No, NTLM, malformed or refused credentials; a 401 among them carries the Negotiate
    /// challenge.
    Refused(Error),
}

/// Windows sign-in: through a trusted reverse proxy (`[proxy_auth]`) that did the Negotiate
/// handshake, or with Kerberos here (`[windows]`, a build with the `kerberos` feature). The
/// API and the web pages share it. `Err`: the proxy sign-in itself failed.
pub(super) async fn windows_sign_in(
    state: &AppState,
    parts: &Parts,
) -> Result<WindowsOutcome, Error> {
    let peer = super::extract::peer_ip(parts);
    let client = super::extract::client_ip(parts, &state.0);
    let header = |name: Option<&str>| {
        name.and_then(|n| parts.headers.get(n))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let proxy = state.0.config.proxy_auth.as_ref();
    let user = header(proxy.map(|p| p.user_header.as_str()));
    let secret = header(proxy.map(|p| p.secret_header.as_str()));
    if let Some(done) =
        auth::proxy_login(&state.0, peer, client, user.as_deref(), secret.as_deref()).await?
    {
        return Ok(WindowsOutcome::SignedIn(Box::new(done), None));
    }
    if state.0.kerberos.is_none() {
        return Ok(WindowsOutcome::NotConfigured(kerberos::NOT_AVAILABLE));
    }
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let refused = |e: Error| Ok(WindowsOutcome::Refused(e));
    match kerberos::offer(authorization) {
        kerberos::Offer::None => refused(Error::Unauthenticated(
            "sign in with Windows: send a Kerberos ticket (HTTP Negotiate)".into(),
        )),
        kerberos::Offer::Ntlm => refused(Error::Unauthenticated(
            "NTLM is not accepted, only Kerberos: sign in from a domain-joined machine and \
             reach accesskeyd by the name its service principal is registered for"
                .into(),
        )),
        kerberos::Offer::Malformed => {
            refused(Error::invalid("the Negotiate credentials are not base64"))
        }
        kerberos::Offer::Token(token) => {
            match auth::kerberos_login(&state.0, token, client).await {
                Ok((done, mutual)) => Ok(WindowsOutcome::SignedIn(Box::new(done), mutual)),
                Err(e) => refused(e),
            }
        }
    }
}

/// `WWW-Authenticate: Negotiate [token]`: the challenge of a 401, or the mutual token.
pub(super) fn negotiate_header(token: Option<&[u8]>) -> Result<HeaderValue, Error> {
    let value = match token {
        Some(t) => format!(
            "Negotiate {}",
            base64::engine::general_purpose::STANDARD.encode(t)
        ),
        None => "Negotiate".to_string(),
    };
    HeaderValue::from_str(&value).map_err(|e| Error::Internal(format!("negotiate header: {e}")))
}

async fn windows(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    match windows_sign_in(&state, &parts).await? {
        WindowsOutcome::SignedIn(done, mutual) => {
            let mut response = logged_in(&state, *done, true)?;
            if let Some(mutual) = mutual {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, negotiate_header(Some(&mutual))?);
            }
            Ok(response)
        }
        WindowsOutcome::NotConfigured(message) => Ok(super::error::status_message(
            StatusCode::NOT_IMPLEMENTED,
            message,
        )),
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
    Path(id): Path<String>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let (url, binding) = start_oidc_login(&state, &id, &parts).await?;
    let location =
        HeaderValue::from_str(&url).map_err(|e| Error::Internal(format!("location: {e}")))?;
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location), (header::SET_COOKIE, binding)],
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
    Path(id): Path<String>,
    RemoteAddr(addr): RemoteAddr,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let from_ui = super::extract::cookie(&headers, UI_RETURN_COOKIE).is_some();
    let binding = super::extract::cookie(&headers, auth::OIDC_BINDING_COOKIE);
    let result = oidc_complete(&state, &id, addr, binding.as_deref(), q).await;
    if !from_ui {
        return logged_in(&state, result?, true);
    }
    let mut response = match result {
        Ok(done) => {
            let mut r = super::ui::see_other("/ui/keys");
            r.headers_mut()
                .append(header::SET_COOKIE, session_cookie(&state, &done)?);
            r
        }
        Err(e) => super::ui::error_page(e),
    };
    response.headers_mut().append(
        header::SET_COOKIE,
        clear_cookie(&state, UI_RETURN_COOKIE, OIDC_CALLBACK_PATH),
    );
    Ok(super::ui::with_security_headers(response))
}

async fn oidc_complete(
    state: &AppState,
    id: &str,
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
        dynamic("x-auth-user-id", &p.user.id)?,
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

#[cfg(test)]
mod tests {
    use super::{cookie_value, SameSite};

    #[test]
    fn a_cookie_is_cleared_with_the_attributes_it_was_set_with() {
        let set = cookie_value("c", "v", "/ui/login", SameSite::Strict, None, true);
        let cleared = cookie_value("c", "", "/ui/login", SameSite::Strict, Some(0), true);
        assert_eq!(
            set,
            "c=v; Path=/ui/login; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            cleared,
            "c=; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
        );
        assert_eq!(
            cookie_value("s", "t", "/", SameSite::Lax, Some(60), false),
            "s=t; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"
        );
    }
}
