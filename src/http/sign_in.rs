//! The sign-ins the API and the web pages share: starting an OpenID Connect login (with
//! the cookie that binds it to the browser) and Windows sign-in (a trusted proxy or
//! Kerberos). Each caller turns the outcome into JSON or a page.

use super::cookies;
use super::extract::{client_ip, peer_ip};
use super::state::AppState;
use crate::auth;
use crate::error::Error;
use crate::ids::DirectoryId;
use crate::kerberos;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum_extra::extract::cookie::Cookie;
use base64::Engine;

/// Starts an OpenID Connect login (the API's start and the web pages' button): the provider
/// URL to send the person to, and the cookie that binds the login to this browser
/// ([`cookies::OIDC_BINDING`]).
pub async fn start_oidc_login(
    state: &AppState,
    id: &DirectoryId,
    parts: &Parts,
) -> Result<(String, Cookie<'static>), Error> {
    let presented = cookies::OIDC_BINDING.read_headers(&parts.headers);
    let started = auth::oidc_start(
        &state.0,
        id,
        client_ip(parts, &state.0),
        presented.as_deref(),
    )
    .await?;
    let cookie =
        cookies::OIDC_BINDING.set(state, started.binding.expose(), Some(started.ttl_seconds));
    Ok((started.authorization_url, cookie))
}

/// What a Windows sign-in attempt came to.
pub enum WindowsOutcome {
    /// Signed in; the mutual-authentication token for the client, if any.
    SignedIn(Box<auth::LoggedIn>, Option<Vec<u8>>),
    /// Neither a trusted proxy nor Kerberos is configured (404: no Windows sign-in here).
    NotConfigured(&'static str),
    /// No, NTLM, malformed or refused credentials; a 401 among them carries the Negotiate
    /// challenge.
    Refused(Error),
}

/// Windows sign-in: through a trusted reverse proxy (`[proxy_auth]`) that did the Negotiate
/// handshake, or with Kerberos here (`[windows]`, a build with the `kerberos` feature). The
/// API and the web pages share it. `Err`: the proxy sign-in itself failed.
pub async fn windows_sign_in(state: &AppState, parts: &Parts) -> Result<WindowsOutcome, Error> {
    let peer = peer_ip(parts);
    let client = client_ip(parts, &state.0);
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
pub fn negotiate_header(token: Option<&[u8]>) -> Result<HeaderValue, Error> {
    let value = match token {
        Some(t) => format!(
            "Negotiate {}",
            base64::engine::general_purpose::STANDARD.encode(t)
        ),
        None => "Negotiate".to_string(),
    };
    HeaderValue::from_str(&value).map_err(|e| Error::Internal(format!("negotiate header: {e}")))
}
