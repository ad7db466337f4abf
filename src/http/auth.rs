//! `/api/auth`: providers, login, logout, and forward authentication for reverse proxies.

use super::cookies;
use super::error::{status_message, ApiError, StatusMessage};
use super::extract::{
    client_ip, credentials, user_agent, AnyMethodCaller, JsonBody, Path, Query, RemoteAddr,
};
use super::openapi::{BadInput, Forbidden, JsonInput, NotFound, Refused, Throttled, Unavailable};
use super::output::{user_output, UserOutput};
use super::sign_in::{negotiate_header, start_oidc_login, windows_sign_in, WindowsOutcome};
use super::state::AppState;
use super::ui::page::{error_page, see_other, with_security_headers};
use crate::auth::{self, LoginInput};
use crate::error::Error;
use crate::ids::DirectoryId;
use crate::secret::Secret;
use crate::store::key_columns::KeyScope;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(providers))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(verify, verify_post))
        .routes(routes!(windows))
        .routes(routes!(oidc_start))
        .routes(routes!(oidc_callback))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ProvidersQuery {
    /// Comma-separated directory ids; only these are listed.
    include_auth_provider_ids: Option<String>,
}

/// One directory as a login choice (the SDK's AuthProviderOutputV1).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthProvider {
    /// `Auth` (built-in), `LDAP` or `OpenIDConnect`.
    pub datasource_class: String,
    /// The directory's id, as `authProviderId` of a login names it.
    pub datasource_id: String,
    pub name: String,
    /// The same as `datasourceId`.
    pub id: String,
}

/// The directories one can log in with.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthProviders {
    pub auth_providers: Vec<AuthProvider>,
}

/// The configured directories, as login choices
///
/// One entry per configured directory; needs no credentials.
#[utoipa::path(
    get,
    path = "/api/auth/providers",
    tag = "auth",
    operation_id = "getAuthProviders",
    params(ProvidersQuery),
    responses((status = 200, body = AuthProviders), BadInput),
)]
async fn providers(
    State(state): State<AppState>,
    Query(q): Query<ProvidersQuery>,
) -> Json<AuthProviders> {
    let wanted: Option<Vec<String>> = q.include_auth_provider_ids.map(|ids| {
        ids.split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    });
    let list: Vec<AuthProvider> = state
        .0
        .directories
        .iter()
        .filter(|d| {
            wanted
                .as_ref()
                .is_none_or(|w| w.contains(&d.id().as_str().to_ascii_lowercase()))
        })
        .map(|d| AuthProvider {
            datasource_class: d.class().to_string(),
            datasource_id: d.id().to_string(),
            name: d.name().to_string(),
            id: d.id().to_string(),
        })
        .collect();
    Json(AuthProviders {
        auth_providers: list,
    })
}

/// AuthInputV1: a username and password, or the `code` and `state` that complete an
/// OpenID Connect login started with `/api/auth/oidc/{id}/start`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AuthInput {
    /// A user's name, or an access key (its `keyId`); required unless `code` and `state`
    /// are given.
    #[schema(nullable = false)]
    username: Option<String>,
    /// The user's password, or the access key's; required with `username`.
    #[schema(value_type = Option<String>, format = Password, nullable = false)]
    password: Option<Secret>,
    /// Ignored (the SDK sends it).
    #[allow(dead_code)]
    auth_provider_class: Option<String>,
    /// The directory to check the name and password against (a `datasourceId` of
    /// `/api/auth/providers`); without it an access key is tried first, then each directory.
    auth_provider_id: Option<DirectoryId>,
    /// OpenID Connect: the authorization code the provider returned.
    code: Option<String>,
    /// OpenID Connect: the state the provider returned.
    state: Option<String>,
}

/// Logs in: a session token in `x-sq-auth`
///
/// An access key logs in as its owner (the key as the username, its password as the
/// password). Needs no credentials.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    operation_id = "login",
    request_body(
        content = AuthInput,
        content_type = "application/json",
        description = "Also accepted as application/vnd.seeq.v1+json (what the Seeq SDK sends)",
    ),
    responses(
        (status = 200, description = "Logged in", body = UserOutput, headers(
            ("x-sq-auth" = String, description = "The session token, for `x-sq-auth` (or `Authorization: Bearer`) on later requests"),
        )),
        Refused, JsonInput, Forbidden, NotFound,
    ),
)]
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

/// Windows sign-in (Kerberos, SPNEGO)
///
/// Through a trusted reverse proxy that did the Negotiate handshake, or with Kerberos in
/// the daemon. Answers the user, the session token in `x-sq-auth` and the session cookie.
#[utoipa::path(
    get,
    path = "/api/auth/windows",
    tag = "auth",
    operation_id = "windowsSignIn",
    responses(
        (status = 200, description = "Signed in; also sets the session cookie", body = UserOutput, headers(
            ("x-sq-auth" = String, description = "The session token"),
            ("WWW-Authenticate" = String, description = "`Negotiate <token>`: mutual authentication, when Kerberos runs here"),
        )),
        (status = 401, description = "No or refused Negotiate credentials", body = StatusMessage, headers(
            ("WWW-Authenticate" = String, description = "`Negotiate`"),
        )),
        (status = 404, description = "Windows sign-in is not configured here (neither a trusted proxy nor Kerberos); the message says what to set", body = StatusMessage),
        BadInput, Forbidden, Unavailable,
        Throttled,
    ),
)]
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
            Ok(status_message(StatusCode::NOT_FOUND, message))
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

/// Starts an OpenID Connect login
///
/// Sends the person to the OpenID provider (303), with a cookie that binds the login to
/// this browser (or client).
#[utoipa::path(
    get,
    path = "/api/auth/oidc/{id}/start",
    tag = "auth",
    operation_id = "startOidcLogin",
    params(("id" = String, Path, description = "An OpenID Connect directory's id")),
    responses(
        (status = 303, description = "To the provider's authorization endpoint", headers(
            ("Location" = String, description = "The provider's authorization URL"),
        )),
        BadInput, NotFound, Unavailable,
        Throttled,
    ),
)]
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

/// What the provider adds to the redirect (OpenID Connect's names, not camelCase).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// The state sent with the authorization request.
    state: Option<String>,
    /// The provider's error code, when it refused.
    error: Option<String>,
    error_description: Option<String>,
}

/// Completes an OpenID Connect login
///
/// Where the provider sends the browser back: completes the login, sets the session cookie.
/// A login started from the web pages returns there (303 to the key list, or an HTML error
/// page with the status below).
#[utoipa::path(
    get,
    path = "/api/auth/oidc/{id}/callback",
    tag = "auth",
    operation_id = "completeOidcLogin",
    params(("id" = String, Path, description = "An OpenID Connect directory's id"), CallbackQuery),
    responses(
        (status = 200, description = "Logged in; also sets the session cookie", body = UserOutput, headers(
            ("x-sq-auth" = String, description = "The session token"),
        )),
        (status = 303, description = "A login started from the web pages: to the key list", headers(
            ("Location" = String, description = "`/ui/keys`"),
        )),
        (status = 400, description = "Malformed or invalid", content(
            (StatusMessage = "application/json"),
            (String = "text/html"),
        )),
        (status = 401, description = "The provider refused, or the login is not bound to this browser", content(
            (StatusMessage = "application/json"),
            (String = "text/html"),
        )),
        (status = 403, description = "Not allowed", content(
            (StatusMessage = "application/json"),
            (String = "text/html"),
        )),
        (status = 404, description = "No such directory", content(
            (StatusMessage = "application/json"),
            (String = "text/html"),
        )),
        (status = 409, description = "The identity conflicts with an existing user", content(
            (StatusMessage = "application/json"),
            (String = "text/html"),
        )),
        (status = 429, description = "Too many attempts", content(
            (StatusMessage = "application/json"),
            (String = "text/html"),
        )),
        (status = 503, description = "The provider or the database is unavailable", content(
            (StatusMessage = "application/json"),
            (String = "text/html"),
        )),
    ),
)]
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

/// Logs out
///
/// The session token stops working everywhere.
#[utoipa::path(
    delete,
    path = "/api/auth/logout",
    tag = "auth",
    operation_id = "logout",
    security(("sqAuth" = []), ("sessionBearer" = []), ("basic" = [])),
    responses((status = 204, description = "Logged out"), Refused, Forbidden),
)]
async fn logout(
    State(state): State<AppState>,
    AnyMethodCaller(p): AnyMethodCaller,
) -> Result<StatusCode, ApiError> {
    auth::logout(&state.0, &p).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forward authentication
///
/// For nginx `auth_request`, Traefik ForwardAuth, Envoy: 200 with the caller in headers, or
/// 401 with a Basic challenge.
#[utoipa::path(
    get,
    path = "/api/auth/verify",
    tag = "auth",
    operation_id = "verify",
    security(("basic" = []), ("sqAuth" = []), ("sessionBearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "Authenticated; the caller in headers", headers(
            ("X-Auth-User" = String, description = "The username"),
            ("X-Auth-User-Id" = String, description = "The user's id"),
            ("X-Auth-Admin" = String, description = "`true` or `false`"),
            ("X-Auth-Method" = String, description = "`interactive` or `access-key`"),
            ("X-Auth-Key-Id" = String, description = "The access key, for `access-key`"),
            ("X-Auth-Key-Scope" = String, description = "The key's scope (`full` or `read`), for `access-key`"),
        )),
        Refused,
    ),
)]
async fn verify(state: State<AppState>, request: Request) -> Result<Response, ApiError> {
    verified(state, request).await
}

/// Forward authentication, as POST
///
/// The same as `GET /api/auth/verify`, for proxies that forward the method; a session
/// cookie is refused here (403), as on every change.
#[utoipa::path(
    post,
    path = "/api/auth/verify",
    tag = "auth",
    operation_id = "verifyPost",
    security(("basic" = []), ("sqAuth" = []), ("sessionBearer" = [])),
    responses(
        (status = 200, description = "Authenticated; the caller in headers", headers(
            ("X-Auth-User" = String, description = "The username"),
            ("X-Auth-User-Id" = String, description = "The user's id"),
            ("X-Auth-Admin" = String, description = "`true` or `false`"),
            ("X-Auth-Method" = String, description = "`interactive` or `access-key`"),
            ("X-Auth-Key-Id" = String, description = "The access key, for `access-key`"),
            ("X-Auth-Key-Scope" = String, description = "The key's scope (`full` or `read`), for `access-key`"),
        )),
        Refused, Forbidden,
    ),
)]
async fn verify_post(state: State<AppState>, request: Request) -> Result<Response, ApiError> {
    verified(state, request).await
}

/// The methods a forward-authentication request stands for: its own and those the proxy
/// forwards in `X-Original-Method` / `X-Forwarded-Method` (each value, upper-cased).
fn forwarded_methods(parts: &Parts) -> Vec<String> {
    let named = ["x-original-method", "x-forwarded-method"]
        .iter()
        .flat_map(|h| parts.headers.get_all(*h).iter())
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_uppercase()
        });
    std::iter::once(parts.method.as_str().to_string())
        .chain(named)
        .collect()
}

async fn verified(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    // The request itself, not `Parts`: extracting `Parts` clones its headers and extensions.
    let (parts, _) = request.into_parts();
    let creds = credentials(&parts)?
        .ok_or_else(|| Error::Unauthenticated("authentication required".into()))?;
    let p = auth::authenticate(
        &state.0,
        creds,
        client_ip(&parts, &state.0),
        user_agent(&parts),
    )
    .await?;
    // A read-only key passes only for reads: the verify request's own method and every
    // method a proxy names (nginx sends the original one as we document, Traefik in
    // X-Forwarded-Method) must be reads. Every one, not the first: a proxy passes the
    // client's own headers on too, and a client must not name a read for its write.
    if p.scope != KeyScope::Full {
        for method in forwarded_methods(&parts) {
            p.require_method(&method)?;
        }
    }
    // Written straight into the response's own map, sized once: this answers every
    // request an auth_request proxy forwards.
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.reserve(6);
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
        headers.insert(
            HeaderName::from_static("x-auth-key-scope"),
            HeaderValue::from_static(p.scope.as_str()),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request as HttpRequest;

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = HttpRequest::builder()
            .method(method)
            .uri("/api/auth/verify");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn every_method_a_proxy_or_client_names_is_judged() {
        assert_eq!(forwarded_methods(&parts("GET", &[])), ["GET"]);
        assert_eq!(
            forwarded_methods(&parts("GET", &[("X-Original-Method", "post")])),
            ["GET", "POST"]
        );
        // Behind Traefik a client's own X-Original-Method arrives beside Traefik's header:
        // both are judged, so naming a read does not hide the write.
        assert_eq!(
            forwarded_methods(&parts(
                "GET",
                &[
                    ("X-Original-Method", "GET"),
                    ("X-Forwarded-Method", "DELETE")
                ]
            )),
            ["GET", "GET", "DELETE"]
        );
        assert_eq!(
            forwarded_methods(&parts(
                "GET",
                &[("X-Original-Method", "GET"), ("X-Original-Method", "PUT")]
            )),
            ["GET", "GET", "PUT"]
        );
    }
}
