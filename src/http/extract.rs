//! Extractors: JSON bodies, queries and paths whose rejections use our error shape, and the
//! authenticated caller read from `x-sq-auth`, `Authorization: Bearer` or `Basic`.

use super::client_addr;
use super::cookies;
use super::error::ApiError;
use super::state::AppState;
use crate::app::App;
use crate::auth::{self, Credentials};
use crate::caller::Principal;
use crate::error::Error;
use crate::secret::Secret;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use std::net::{IpAddr, SocketAddr};

/// A JSON body whose rejections use our error shape. Text holding U+0000 is refused (400)
/// before it is read: PostgreSQL cannot store it, and SQLite must answer the same.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::Bytes::from_request(
            axum::extract::Request::from_parts(parts.clone(), body),
            state,
        )
        .await?;
        if crate::text::json_has_nul(&bytes) {
            return Err(Error::invalid(crate::error::NUL_REFUSED).into());
        }
        // axum's own reading: the content-type check (415) and its syntax/data rejections.
        let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(JsonBody(value))
    }
}

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
        client_addr::resolve(
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

/// The browser session cookie. On the API it authenticates only requests that change
/// nothing: a cross-site form could otherwise act with it (CSRF). Changes need `x-sq-auth`
/// (the web pages under `/ui` check their own CSRF token instead).
fn cookie_session(parts: &Parts) -> Result<Option<Credentials>, Error> {
    let Some(token) = cookies::SESSION.read_headers(&parts.headers) else {
        return Ok(None);
    };
    if !parts.method.is_safe() {
        return Err(Error::forbidden(
            "a browser session cookie cannot change anything; send the session token in x-sq-auth",
        ));
    }
    Ok(Some(Credentials::Session(Secret::new(token))))
}

/// The authenticated caller of a request; 401 when there is none, 403 when a read-only key
/// asks for anything but GET, HEAD or OPTIONS.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AnyMethodCaller(principal) = AnyMethodCaller::from_request_parts(parts, state).await?;
        principal.require_method(parts.method.as_str())?;
        Ok(Caller(principal))
    }
}

/// The authenticated caller, whatever its key's scope: for the few writes a read-only key
/// may make (logging out, rotating itself), which check for themselves.
pub struct AnyMethodCaller(pub Principal);

impl FromRequestParts<AppState> for AnyMethodCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let creds = credentials(parts)?
            .ok_or_else(|| Error::Unauthenticated("authentication required".into()))?;
        let principal = auth::authenticate(
            &state.0,
            creds,
            client_ip(parts, &state.0),
            user_agent(parts),
        )
        .await?;
        Ok(AnyMethodCaller(principal))
    }
}

/// The request's `User-Agent`, when it is text.
pub fn user_agent(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
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

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::key_format as format;
    use axum::http::{HeaderValue, Method, Request, StatusCode};
    use proptest::prelude::*;

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    /// Request parts carrying the given header values; bytes that are no valid header value
    /// are left out (they cannot reach a handler).
    fn parts(method: Method, headers: &[(&str, &[u8])]) -> Parts {
        let mut b = Request::builder().method(method).uri("/api/keys");
        for (name, bytes) in headers {
            if let Ok(v) = HeaderValue::from_bytes(bytes) {
                b = b.header(*name, v);
            }
        }
        b.body(()).unwrap().into_parts().0
    }

    fn basic(user: &str, password: &str, scheme: &str) -> Vec<u8> {
        format!("{scheme} {}", B64.encode(format!("{user}:{password}"))).into_bytes()
    }

    fn status(e: Error) -> StatusCode {
        crate::http::error::domain_status(e).0
    }

    fn method() -> impl Strategy<Value = Method> {
        prop_oneof![
            Just(Method::GET),
            Just(Method::HEAD),
            Just(Method::POST),
            Just(Method::DELETE),
        ]
    }

    /// Authorization values: known schemes (any case, odd spacing) before anything, base64
    /// of anything, or raw bytes.
    fn authorization() -> impl Strategy<Value = Vec<u8>> {
        let scheme = prop_oneof![
            Just("Basic "),
            Just("basic  "),
            Just(" BASIC "),
            Just("Bearer "),
            Just("bearer\t"),
            Just("Negotiate "),
            Just("Basic"),
            Just(""),
        ];
        let body = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| B64.encode(b).into_bytes()),
            (".{0,20}", ".{0,20}").prop_map(|(u, p)| B64.encode(format!("{u}:{p}")).into_bytes()),
            "[A-Za-z0-9+/=]{0,2000}".prop_map(String::into_bytes),
        ];
        prop_oneof![
            4 => (scheme, body).prop_map(|(s, b)| [s.as_bytes(), &b].concat()),
            1 => proptest::collection::vec(any::<u8>(), 0..80),
        ]
    }

    proptest! {
        // Moderate counts; shrinking is bounded so that a failure reports in seconds.
        #![proptest_config(ProptestConfig {
            cases: 512,
            max_shrink_iters: 4096,
            ..ProptestConfig::default()
        })]

        /// Any header bytes: no panic; the answer comes from the first header present
        /// (x-sq-auth, Authorization, the session cookie) and a refusal is 400, 401 or 403.
        #[test]
        fn arbitrary_headers_never_panic(
            m in method(),
            sq in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            auth in proptest::option::of(authorization()),
            cookie in proptest::option::of("[ -~]{0,40}"),
        ) {
            let mut h: Vec<(&str, &[u8])> = Vec::new();
            if let Some(sq) = &sq {
                h.push(("x-sq-auth", sq));
            }
            if let Some(a) = &auth {
                h.push(("authorization", a));
            }
            if let Some(c) = &cookie {
                h.push(("cookie", c.as_bytes()));
            }
            let p = parts(m, &h);
            let has_sq = p.headers.contains_key("x-sq-auth");
            let has_auth = p.headers.contains_key(header::AUTHORIZATION);
            match credentials(&p) {
                Ok(Some(Credentials::Basic { key_id, password })) => {
                    prop_assert!(!has_sq && has_auth);
                    prop_assert!(key_id.len() <= auth::MAX_USERNAME_BYTES);
                    prop_assert!(password.expose().len() <= auth::MAX_PASSWORD_BYTES);
                    prop_assert!(!key_id.contains(':'));
                }
                Ok(Some(Credentials::Session(_))) => {}
                Ok(None) => prop_assert!(!has_sq && !has_auth),
                Err(e) => {
                    let s = status(e);
                    prop_assert!(
                        [StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN]
                            .contains(&s),
                        "{}", s
                    );
                    if has_sq || has_auth {
                        prop_assert_ne!(s, StatusCode::FORBIDDEN);
                    }
                    if has_sq {
                        prop_assert_eq!(s, StatusCode::UNAUTHORIZED);
                    }
                }
            }
        }

        /// A Basic header built from a key id and password (generated ones, or any name
        /// without a colon and any password within the limits) reads back as the same pair.
        #[test]
        fn basic_credentials_round_trip(
            generated in any::<bool>(),
            user in "[^:]{0,64}",
            password in prop_oneof![".{0,64}", "[ -~]{1000,1024}"],
            scheme in prop_oneof![Just("Basic"), Just("basic"), Just("BASIC"), Just("bAsIc")],
            pad in prop_oneof![Just(""), Just(" "), Just("  ")],
        ) {
            let (user, password) = if generated {
                (format::new_key_id(), format::new_password())
            } else {
                (user, password)
            };
            prop_assume!(user.len() <= auth::MAX_USERNAME_BYTES);
            prop_assume!(password.len() <= auth::MAX_PASSWORD_BYTES);
            let value = [pad.as_bytes(), &basic(&user, &password, scheme), pad.as_bytes()].concat();
            let p = parts(Method::POST, &[("authorization", &value)]);
            match credentials(&p) {
                Ok(Some(Credentials::Basic { key_id, password: got })) => {
                    prop_assert_eq!(key_id, user);
                    prop_assert_eq!(got.expose(), password);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        /// A name over 256 bytes or a password over 1024 bytes is a 400, however long.
        #[test]
        fn oversize_basic_credentials_are_invalid(
            user_len in 0usize..700,
            password_len in 0usize..2500,
            which in 0u8..3,
        ) {
            let (u_max, p_max) = (auth::MAX_USERNAME_BYTES, auth::MAX_PASSWORD_BYTES);
            let (user_len, password_len) = match which {
                0 => (user_len.max(u_max + 1), password_len.min(p_max)),
                1 => (user_len.min(u_max), password_len.max(p_max + 1)),
                _ => (user_len.max(u_max + 1), password_len.max(p_max + 1)),
            };
            let value = basic(&"u".repeat(user_len), &"p".repeat(password_len), "Basic");
            let p = parts(Method::GET, &[("authorization", &value)]);
            match credentials(&p) {
                Err(e @ Error::Invalid(_)) => prop_assert_eq!(status(e), StatusCode::BAD_REQUEST),
                other => prop_assert!(false, "{} / {}: {:?}", user_len, password_len, other),
            }
        }

        /// Session tokens in x-sq-auth (trimmed) and Bearer read back as they were sent.
        #[test]
        fn session_tokens_round_trip(token in "[!-~]{1,80}", bearer in any::<bool>()) {
            let p = if bearer {
                parts(Method::DELETE, &[("authorization", format!("Bearer {token}").as_bytes())])
            } else {
                parts(Method::DELETE, &[("x-sq-auth", format!(" {token} ").as_bytes())])
            };
            match credentials(&p) {
                Ok(Some(Credentials::Session(s))) => prop_assert_eq!(s.expose(), token),
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
