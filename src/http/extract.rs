//! Extractors: JSON bodies, queries and paths whose rejections use our error shape, and the
//! authenticated caller read from `x-sq-auth`, `Authorization: Bearer` or `Basic`.

use super::error::ApiError;
use super::AppState;
use crate::app::App;
use crate::auth::{self, Credentials, Principal};
use crate::error::Error;
use crate::secret::Secret;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use std::net::{IpAddr, SocketAddr};

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// A raw body whose rejections (413 too large) use our error shape.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(ApiError::from)
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The TCP peer of a request.
pub fn peer_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip())
}

/// The client: the TCP peer, or behind a trusted proxy the address it names
/// (`[server] trusted_proxies`, see `client_addr`).
pub fn client_ip(parts: &Parts, app: &App) -> Option<IpAddr> {
    let server = &app.config.server;
    peer_ip(parts).map(|peer| {
        super::client_addr::resolve(
            peer,
            &parts.headers,
            &server.trusted_proxies,
            server.client_address_header,
        )
    })
}

/// The client's address as text, for the audit trail, the logs and the throttle.
pub fn remote_addr(parts: &Parts, app: &App) -> Option<String> {
    client_ip(parts, app).map(|ip| ip.to_string())
}

/// Reads the credentials of a request; `Ok(None)` when it carries none.
pub fn credentials(parts: &Parts) -> Result<Option<Credentials>, Error> {
    if let Some(v) = parts.headers.get("x-sq-auth") {
        let token = v
            .to_str()
            .map_err(|_| Error::Unauthenticated("x-sq-auth: not a valid token".into()))?;
        return Ok(Some(Credentials::Session(Secret::new(token.trim()))));
    }
    let Some(v) = parts.headers.get(header::AUTHORIZATION) else {
        return cookie_session(parts);
    };
    let malformed = || Error::Unauthenticated("Authorization: malformed credentials".into());
    let v = v.to_str().map_err(|_| malformed())?.trim();
    let (scheme, rest) = v.split_once(' ').ok_or_else(malformed)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Some(Credentials::Session(Secret::new(rest))));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        // Longer than the longest name and password allowed, encoded: 400 before decoding.
        if rest.len() > (auth::MAX_USERNAME_BYTES + auth::MAX_PASSWORD_BYTES + 1).div_ceil(3) * 4 {
            return Err(Error::invalid(format!(
                "Authorization: Basic credentials over {} bytes (username) or {} bytes (password)",
                auth::MAX_USERNAME_BYTES,
                auth::MAX_PASSWORD_BYTES
            )));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| malformed())?;
        let text = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (key_id, password) = text.split_once(':').ok_or_else(malformed)?;
        let password = Secret::new(password);
        auth::check_lengths(key_id, &password)?;
        return Ok(Some(Credentials::Basic {
            key_id: key_id.to_string(),
            password,
        }));
    }
    Err(Error::Unauthenticated(format!(
        "Authorization: unsupported scheme `{scheme}`; use Bearer or Basic"
    )))
}

/// The value of the cookie `name`, if the request carries it.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_string())
}

/// The browser session cookie. On the API it authenticates only requests that change
/// nothing: a cross-site form could otherwise act with it (CSRF). Changes need `x-sq-auth`
/// (the web pages under `/ui` check their own CSRF token instead).
fn cookie_session(parts: &Parts) -> Result<Option<Credentials>, Error> {
    let token = cookie(&parts.headers, super::auth::SESSION_COOKIE);
    let Some(token) = token else {
        return Ok(None);
    };
    if !parts.method.is_safe() {
        return Err(Error::forbidden(
            "a browser session cookie cannot change anything; send the session token in x-sq-auth",
        ));
    }
    Ok(Some(Credentials::Session(Secret::new(token))))
}

/// The authenticated caller of a request; 401 when there is none.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let creds = credentials(parts)?
            .ok_or_else(|| Error::Unauthenticated("authentication required".into()))?;
        let principal = auth::authenticate(&state.0, creds, remote_addr(parts, &state.0)).await?;
        Ok(Caller(principal))
    }
}

/// An authenticated admin; 403 for anyone else.
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(p) = Caller::from_request_parts(parts, state).await?;
        p.require_admin()?;
        Ok(Admin(p))
    }
}

/// The client's address as an extractor.
pub struct RemoteAddr(pub Option<String>);

impl FromRequestParts<AppState> for RemoteAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(RemoteAddr(remote_addr(parts, &state.0)))
    }
}
