//! Who is calling: logins (directory password or access key) that open sessions, and the
//! authentication of every request from a session token or Basic access-key credentials.

use crate::audit::{self, Actor, Event};
use crate::auth_cache::{token_digest, Hit};
use crate::caller::{Method, Principal};
use crate::directory::oidc::OidcDirectory;
use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::kerberos;
use crate::keys::{self, format};
use crate::metrics::inc;
use crate::options;
use crate::revocation::{self, Revoked};
use crate::secret::Secret;
use crate::services::Services;
use crate::sessions;
use crate::store::models::{to_ms, AccessKeyRow, SessionRow, UserRow};
use crate::store::schema::{access_keys, oidc_logins, sessions as sessions_t, users as users_t};
use crate::users;
use crate::validity;
use chrono::Duration;
use diesel::prelude::*;
use std::net::IpAddr;
use std::sync::Arc;

/// A change to the rules that bind access keys to their owners' interactive logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding<'a> {
    /// A runtime option under `Authentication/` (the path as given).
    Option(&'a str),
    /// A user's `accessKeyValidityDuration`.
    ValidityOverride,
    /// A user's `sessionDuration`.
    SessionDuration,
    /// A service account's manager (assigned at creation or reassigned).
    ServiceAccountManager,
    /// A service account's key with its `expiry`.
    ServiceAccountKeyExpiry,
}

impl<'a> Binding<'a> {
    /// The option at `path` (any case, as the API takes paths), if it binds keys: every
    /// option under `Authentication/` does (validity, session length, who creates keys,
    /// service-account lifetimes, warnings).
    pub fn of_option(path: &'a str) -> Option<Binding<'a>> {
        const PREFIX: &str = "authentication/";
        path.get(..PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
            .then_some(Binding::Option(path))
    }

    fn what(self) -> String {
        match self {
            Binding::Option(path) => format!("the option `{path}`"),
            Binding::ValidityOverride => "`accessKeyValidityDuration`".into(),
            Binding::SessionDuration => "`sessionDuration`".into(),
            Binding::ServiceAccountManager => "a service account's `manager`".into(),
            Binding::ServiceAccountKeyExpiry => "a service account key's `expiry`".into(),
        }
    }
}

/// Whether a caller who proved themselves with `method` may change `what`. A key acts with
/// its owner's rights everywhere else, but not here: these rules are what make a key stop
/// when its owner stops signing in, so a key that could change them could keep itself (and
/// every other key) alive without anyone signing in. Only an interactive session may.
pub fn may_change_binding(method: Method, what: Binding<'_>) -> Result<()> {
    match method {
        Method::Interactive => Ok(()),
        Method::AccessKey => Err(Error::forbidden(format!(
            "{} cannot be changed with an access key: it is one of the rules that bind keys to \
             their owners' sign-ins; sign in interactively to change it",
            what.what()
        ))),
    }
}

/// Credentials found on a request.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `x-sq-auth` or `Authorization: Bearer`.
    Session(Secret),
    /// `Authorization: Basic` with an access key and its password.
    Basic { key_id: String, password: Secret },
}

const BAD_SESSION: &str = "the session is invalid or has expired; log in again";

/// Authenticates one request. Known keys and live sessions are decided from memory (the
/// same rule, see `auth_cache`); everything else reads the database. Sessions opened with a
/// key are re-checked against the validity rule every time, so they die the moment their
/// key, its owner or the window does.
pub async fn authenticate(
    app: &Services,
    credentials: Credentials,
    remote_addr: Option<IpAddr>,
) -> Result<Principal> {
    let now = app.clock.now();
    match credentials {
        Credentials::Basic { key_id, password } => {
            if let Some(hit) = app.auth_cache.key(&key_id, &password, now) {
                inc(&app.metrics.key_auth_ok);
                return Ok(remembered(app, hit, None, remote_addr, now));
            }
            // Boxed: the slow path's state (argon2, database) would otherwise make every
            // request's future, hits included, several KB that is copied on each call.
            let v = Box::pin(keys::verify(app, &key_id, password, remote_addr))
                .await
                .inspect_err(|e| {
                    // Not audited (a misconfigured poller would flood the trail); logged
                    // instead, except refusals the throttle or the hashing queue answered
                    // (counted and summed, see `jobs`). The password never appears.
                    if matches!(e, Error::Unauthenticated(_)) {
                        tracing::warn!(
                            key_id = %audit::cut(&key_id, 64),
                            remote_addr = ?remote_addr,
                            reason = %e,
                            "access-key authentication refused"
                        );
                    }
                })?;
            Ok(Principal {
                user: Arc::new(v.user),
                method: Method::AccessKey,
                key: Some((Arc::from(v.key.id), Arc::from(v.key.key_id))),
                session_hash: None,
                remote_addr,
            })
        }
        Credentials::Session(token) => {
            if !token.expose().starts_with(sessions::TOKEN_PREFIX) {
                return Err(Error::Unauthenticated(BAD_SESSION.into()));
            }
            let digest = token_digest(token.expose());
            if let Some(hit) = app.auth_cache.session(&digest, now) {
                return Ok(remembered(app, hit, Some(&digest), remote_addr, now));
            }
            Box::pin(session_from_database(app, digest, remote_addr, now)).await
        }
    }
}

/// A principal decided from memory.
fn remembered(
    app: &Services,
    hit: Hit,
    session: Option<&[u8; 32]>,
    remote_addr: Option<IpAddr>,
    now: chrono::DateTime<chrono::Utc>,
) -> Principal {
    let key = hit.key.map(|(row, key_id)| {
        if hit.use_due {
            app.last_used.touch(&app.store, &row, now);
        }
        (row, key_id)
    });
    Principal {
        user: hit.user,
        method: if key.is_some() {
            Method::AccessKey
        } else {
            Method::Interactive
        },
        key,
        session_hash: session.map(hex::encode),
        remote_addr,
    }
}

/// A session token not decided from memory: read, decided, and remembered when valid.
async fn session_from_database(
    app: &Services,
    digest: [u8; 32],
    remote_addr: Option<IpAddr>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Principal> {
    let hash = hex::encode(digest);
    let config = app.config.clone();
    let h = hash.clone();
    let generation = app.auth_cache.generation();
    type Found = (SessionRow, UserRow, Option<AccessKeyRow>, i64);
    let found: Option<Found> = app
        .store
        .read(move |conn| {
            let row: Option<(SessionRow, UserRow)> = sessions_t::table
                .inner_join(users_t::table)
                .filter(sessions_t::token_hash.eq(&h))
                .filter(sessions_t::expires_at.gt(to_ms(now)))
                .select((SessionRow::as_select(), UserRow::as_select()))
                .first(conn)
                .optional()?;
            let Some((session, user)) = row else {
                return Ok(None);
            };
            let key = match &session.access_key_id {
                Some(id) => access_keys::table
                    .find(id)
                    .select(AccessKeyRow::as_select())
                    .first(conn)
                    .optional()?,
                None => None,
            };
            let days = options::validity_days(conn, &config)?;
            Ok(Some((session, user, key, days)))
        })
        .await?;
    let Some((session, user, key, days)) = found else {
        return Err(Error::Unauthenticated(BAD_SESSION.into()));
    };
    if !user.is_active() {
        return Err(Error::Unauthenticated(BAD_SESSION.into()));
    }
    let principal_key = match (&session.access_key_id, &key) {
        (None, _) => None,
        // The key is gone (the cascade normally removed the session already).
        (Some(_), None) => return Err(Error::Unauthenticated(BAD_SESSION.into())),
        (Some(_), Some(k)) => {
            let window = validity::window(user.access_key_validity_minutes, days);
            validity::check_key(user.key_holder(k), window, now).map_err(|reason| {
                inc(&app.metrics.key_auth_not_valid_now);
                Error::Unauthenticated(format!(
                    "access key `{}` is not valid now: {reason}",
                    k.key_id
                ))
            })?;
            app.last_used.touch(&app.store, &k.id, now);
            Some((Arc::from(k.id.as_str()), Arc::from(k.key_id.as_str())))
        }
    };
    app.auth_cache
        .remember_session(generation, digest, &session, &user, key.as_ref(), days);
    Ok(Principal {
        user: Arc::new(user),
        method: if principal_key.is_some() {
            Method::AccessKey
        } else {
            Method::Interactive
        },
        key: principal_key,
        session_hash: Some(hash),
        remote_addr,
    })
}

/// Longest username (or key id) accepted, in bytes.
pub const MAX_USERNAME_BYTES: usize = 256;
/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Refuses oversized credentials with 400 before anything is looked up, hashed or stored.
pub fn check_lengths(username: &str, password: &Secret) -> Result<()> {
    if username.len() > MAX_USERNAME_BYTES {
        return Err(Error::invalid(format!(
            "username: at most {MAX_USERNAME_BYTES} bytes"
        )));
    }
    if password.expose().len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid(format!(
            "password: at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// A login request (`POST /api/auth/login`).
#[derive(Debug, Clone)]
pub struct LoginInput {
    pub username: String,
    pub password: Secret,
    /// `authProviderId`: the directory to use; None tries key, then every directory in order.
    pub directory_id: Option<String>,
}

/// A successful login: the user and the token of the new session.
pub struct LoggedIn {
    pub user: users::UserInfo,
    pub token: Secret,
    pub method: Method,
    /// How long the session lasts, in seconds (the browser cookie's Max-Age).
    pub ttl_seconds: i64,
}

/// Logs in with a directory password or an access key and opens a session. Interactive logins
/// record `lastLoginAt`; key logins never do.
pub async fn login(
    app: &Services,
    input: LoginInput,
    remote_addr: Option<String>,
) -> Result<LoggedIn> {
    if input.username.is_empty() {
        return Err(Error::invalid("username: required"));
    }
    if input.password.is_empty() {
        return Err(Error::invalid("password: required"));
    }
    check_lengths(&input.username, &input.password)?;
    let directory = match input.directory_id.as_deref() {
        Some(id) => Some(app.directory(id).ok_or_else(|| {
            Error::invalid(format!("authProviderId: no directory with id `{id}`"))
        })?),
        None => None,
    };
    let actor = Actor {
        user_id: None,
        name: Some(input.username.clone()),
        remote_addr: remote_addr.clone(),
        key_id: None,
    };
    // Keys belong to the built-in directory; without a directory, a key-shaped name is a key.
    let as_key = format::is_key_id(&input.username) && directory.is_none_or(Directory::is_builtin);
    let result = if as_key {
        match key_login(app, &input, &actor).await {
            // "Checked as a key first": a name of key shape that is no valid key may still be
            // a directory user's name. If no directory accepts it, the key's answer stands.
            Err(key_error @ Error::Unauthenticated(_)) if directory.is_none() => {
                match throttled_login(app, &input, None, &actor).await {
                    Err(Error::Unauthenticated(_)) => Err(key_error),
                    other => other,
                }
            }
            other => other,
        }
    } else {
        throttled_login(app, &input, directory, &actor).await
    };
    if let Err(e) = &result {
        if matches!(e, Error::RateLimited(..) | Error::Overloaded(..)) {
            // Counted in metrics and summed per address (`jobs::summarize_refusals`): a
            // flood of refusals is not a flood of rows.
            return result;
        }
        let method = if as_key { "access-key" } else { "interactive" };
        if !as_key {
            inc(&app.metrics.logins_interactive_failed);
        }
        if matches!(e, Error::Unavailable(_)) {
            inc(&app.metrics.directory_unavailable);
        }
        let ev = Event::new("login", &actor)
            .failed()
            .detail(format!("{method}: {e}"));
        if let Err(audit_error) = audit::record_alone(&app.store, app.clock.now(), &ev).await {
            tracing::warn!(error = %audit_error, "could not record a failed login");
        }
    }
    result
}

async fn key_login(app: &Services, input: &LoginInput, actor: &Actor) -> Result<LoggedIn> {
    let v = keys::verify(
        app,
        &input.username,
        input.password.clone(),
        actor.remote_addr.as_deref().and_then(|a| a.parse().ok()),
    )
    .await?;
    let now = app.clock.now();
    let ttl = Duration::minutes(app.config.sessions.access_key_ttl_minutes);
    let key = v.key.clone();
    let user = v.user.clone();
    let actor = Actor {
        user_id: Some(user.id.clone()),
        name: Some(user.username.clone()),
        remote_addr: actor.remote_addr.clone(),
        key_id: Some(key.key_id.clone()),
    };
    let config = app.config.clone();
    let (token, info) = app
        .store
        .write(move |conn| {
            let token = sessions::issue(conn, &user.id, Some(&key.id), now, ttl)?;
            audit::record(
                conn,
                now,
                &Event::new("login", &actor)
                    .target("access_key", &key.key_id, &key.name)
                    .detail("access-key"),
            )?;
            Ok((token, users::with_window(conn, &config, user)?))
        })
        .await?;
    Ok(LoggedIn {
        user: info,
        token,
        method: Method::AccessKey,
        ttl_seconds: ttl.num_seconds(),
    })
}

/// An interactive login behind the failed-login throttle.
async fn throttled_login(
    app: &Services,
    input: &LoginInput,
    directory: Option<&Directory>,
    actor: &Actor,
) -> Result<LoggedIn> {
    let addr = actor.remote_addr.as_deref().and_then(|a| a.parse().ok());
    // Checked and reserved in one step: parallel attempts cannot all slip under the limit.
    let attempt = app.throttle.admit(&input.username, addr, app.clock.now())?;
    let result = interactive_login(app, input, directory, actor).await;
    match &result {
        Ok(_) => attempt.succeeded(),
        Err(Error::Unauthenticated(_)) => attempt.failed(),
        Err(_) => attempt.abandoned(),
    }
    result
}

async fn interactive_login(
    app: &Services,
    input: &LoginInput,
    directory: Option<&Directory>,
    actor: &Actor,
) -> Result<LoggedIn> {
    let candidates: Vec<&Directory> = match directory {
        Some(d) => vec![d],
        // Password directories only: an OpenID provider never sees a password here.
        None => app
            .directories
            .iter()
            .filter(|d| !matches!(d, Directory::Oidc(_)))
            .collect(),
    };
    // Without a named directory each is tried in order; the first that accepts wins. If none
    // accepts and one was unreachable, the answer is 503: the password may well be right.
    let mut unavailable = None;
    let mut user = None;
    for dir in candidates {
        let from = actor.remote_addr.as_deref().and_then(|a| a.parse().ok());
        match check_password(app, dir, &input.username, input.password.clone(), from).await {
            Ok(info) => {
                user = Some((dir, info));
                break;
            }
            Err(Error::Unauthenticated(_)) => {}
            Err(e @ Error::Unavailable(_)) => {
                tracing::warn!(directory = dir.id(), error = %e, "directory unavailable during login");
                unavailable = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    let Some((dir, info)) = user else {
        return Err(unavailable
            .unwrap_or_else(|| Error::Unauthenticated("invalid username or password".into())));
    };
    open_interactive_session(app, info, dir.id(), actor.remote_addr.clone()).await
}

/// The end of every interactive login, whatever the directory: records `lastLoginAt`, opens
/// the session, audits, counts.
async fn open_interactive_session(
    app: &Services,
    info: users::UserInfo,
    directory_id: &str,
    remote_addr: Option<String>,
) -> Result<LoggedIn> {
    let now = app.clock.now();
    let row = info.row.clone();
    let config = app.config.clone();
    let actor = Actor {
        user_id: Some(row.id.clone()),
        name: Some(row.username.clone()),
        remote_addr,
        key_id: None,
    };
    let dir_id = directory_id.to_string();
    let (token, ttl) = app
        .store
        .write(move |conn| {
            users::touch_login(conn, &row.id, now)?;
            // Ends at login + the effective duration, however active the session is.
            let ttl = Duration::minutes(users::session_minutes(conn, &config, &row)?);
            let token = sessions::issue(conn, &row.id, None, now, ttl)?;
            audit::record(
                conn,
                now,
                &Event::new("login", &actor)
                    .target("user", &row.id, &row.username)
                    .detail(format!("interactive via directory {dir_id}")),
            )?;
            Ok((token, ttl))
        })
        .await?;
    inc(&app.metrics.logins_interactive_ok);
    revocation::changed(app, Revoked::User(info.row.id.clone()));
    let mut info = info;
    info.row.last_login_at = Some(to_ms(now));
    Ok(LoggedIn {
        user: info,
        token,
        method: Method::Interactive,
        ttl_seconds: ttl.num_seconds(),
    })
}

/// The name a proxy reports (`user@REALM`, `DOMAIN\user` or `user`) as a directory username.
pub fn proxy_username(reported: &str) -> &str {
    let name = reported.rsplit('\\').next().unwrap_or(reported);
    name.split('@').next().unwrap_or(name).trim()
}

/// The directory username of a name the proxy reports, if `proxy_auth.allowed_realms`
/// (upper-cased; empty = any) lets it in. A `user@REALM` needs its realm in the list. A
/// `DOMAIN\user` needs its domain in the list as written: a NetBIOS domain (`EXAMPLE`) is
/// not its Kerberos realm (`EXAMPLE.COM`) and cannot be derived from it, so an operator whose
/// proxy sends such names lists the domain too. With a list, a bare `user` is refused: there
/// is nothing to check.
pub fn proxy_name_allowed<'a>(reported: &'a str, allowed: &[String]) -> Result<&'a str> {
    let username = proxy_username(reported);
    if allowed.is_empty() {
        return Ok(username);
    }
    let (domain, rest) = match reported.rsplit_once('\\') {
        Some((d, r)) => (Some(d.trim()), r),
        None => (None, reported),
    };
    let realm = rest.rsplit_once('@').map(|(_, r)| r.trim());
    let is_allowed = |q: &str| allowed.iter().any(|a| a.eq_ignore_ascii_case(q));
    if let Some(r) = realm.filter(|r| !is_allowed(r)) {
        return Err(Error::forbidden(format!(
            "`{reported}` signed in from the Kerberos realm `{r}`, which proxy_auth.allowed_realms does not allow"
        )));
    }
    if let Some(d) = domain.filter(|d| !is_allowed(d)) {
        return Err(Error::forbidden(format!(
            "`{reported}` signed in from the Windows domain `{d}`, which proxy_auth.allowed_realms \
             does not allow (a NetBIOS domain is not a Kerberos realm: list it as well to accept \
             DOMAIN\\user names)"
        )));
    }
    if realm.is_none() && domain.is_none() {
        return Err(Error::forbidden(format!(
            "`{reported}` carries no realm, and proxy_auth.allowed_realms accepts only names of \
             its realms: have the proxy pass user@REALM"
        )));
    }
    Ok(username)
}

/// A sign-in a trusted reverse proxy vouches for (it did the Negotiate handshake): only from
/// its addresses and with its shared secret; the name is looked up in the directory (same
/// record and stable id as a password login there). `Ok(None)`: the request is not the
/// proxy's, so its headers mean nothing.
/// The proxy is recognised as the TCP peer, or, behind balancers listed in
/// `[server] trusted_proxies`, as the client address they name.
pub async fn proxy_login(
    app: &Services,
    peer: Option<std::net::IpAddr>,
    client: Option<std::net::IpAddr>,
    user: Option<&str>,
    secret: Option<&str>,
) -> Result<Option<LoggedIn>> {
    let Some(cfg) = &app.config.proxy_auth else {
        return Ok(None);
    };
    // An IPv4 proxy reaching a dual-stack listener shows as ::ffff:a.b.c.d.
    let peer = peer.map(|p| p.to_canonical());
    let trusted = [peer, client]
        .into_iter()
        .flatten()
        .any(|a| cfg.trusted_addresses.contains(&a.to_canonical()));
    let vouched = secret.is_some_and(|s| cfg.secret.ct_eq(s));
    let (true, true, Some(user)) = (trusted, vouched, user) else {
        if user.is_some() {
            tracing::warn!(peer = ?peer, trusted, vouched, "ignored a proxy user header: not from the trusted proxy");
        }
        return Ok(None);
    };
    let Some(Directory::Ldap(dir)) = app.directory(&cfg.directory) else {
        return Err(Error::Internal(
            "proxy_auth.directory is not an LDAP directory".into(),
        ));
    };
    let username = proxy_name_allowed(user, &cfg.allowed_realms).inspect_err(|e| {
        tracing::warn!(reported = %user, reason = %e, "proxy sign-in refused: realm not allowed");
    })?;
    let du = dir.lookup(username).await.map_err(|e| match e {
        crate::directory::DirectoryError::InvalidCredentials => Error::Unauthenticated(format!(
            "`{user}` is not a user of directory `{}`",
            cfg.directory
        )),
        other => other.into(),
    })?;
    let id = dir.config().id.clone();
    let info = users::upsert_login(app, &id, du).await?;
    let addr = client.or(peer).map(|p| p.to_string());
    open_interactive_session(app, info, &id, addr)
        .await
        .map(Some)
}

/// A Windows sign-in: the Negotiate token is checked against the keytab, the client principal
/// `user@REALM` is looked up in the realm's directory (same record and stable id as a
/// password login there), and an interactive session starts. Returns the session and the
/// mutual-authentication token for the client.
pub async fn kerberos_login(
    app: &Services,
    token: Vec<u8>,
    peer: Option<std::net::IpAddr>,
) -> Result<(LoggedIn, Option<Vec<u8>>)> {
    let (Some(acceptor), Some(cfg)) = (app.kerberos.clone(), app.config.windows.as_ref()) else {
        return Err(Error::Internal("Kerberos sign-in is not configured".into()));
    };
    let accepted = tokio::task::spawn_blocking(move || acceptor.accept(&token))
        .await
        .map_err(|e| Error::Internal(format!("Kerberos acceptor: {e}")))?
        .map_err(|r| match r {
            kerberos::Rejected::Malformed(m) => Error::Invalid(m),
            kerberos::Rejected::Refused(m) => {
                tracing::info!(reason = %m, "Kerberos sign-in refused");
                Error::Unauthenticated(m)
            }
        })?;
    let principal = accepted.principal;
    let (name, realm) = kerberos::split_principal(&principal)
        .ok_or_else(|| Error::Unauthenticated(format!("`{principal}` is not a user principal")))?;
    let mapping = kerberos::mapping(cfg, realm).ok_or_else(|| {
        tracing::warn!(%principal, "Kerberos sign-in from a realm no directory is mapped to");
        Error::forbidden(format!(
            "the Kerberos realm `{realm}` is not mapped to a directory here ([[windows.realms]])"
        ))
    })?;
    let Some(Directory::Ldap(dir)) = app.directory(&mapping.directory) else {
        return Err(Error::Internal(format!(
            "windows.realms: `{}` is not an LDAP directory",
            mapping.directory
        )));
    };
    let (attribute, value) = match &mapping.match_attribute {
        Some(a) => (Some(a.as_str()), principal.as_str()),
        None => (None, name),
    };
    let du = dir.lookup_by(attribute, value).await.map_err(|e| match e {
        crate::directory::DirectoryError::InvalidCredentials => Error::forbidden(format!(
            "`{principal}` signed in with Kerberos but is not a user of directory `{}`",
            mapping.directory
        )),
        other => other.into(),
    })?;
    let id = dir.config().id.clone();
    let info = users::upsert_login(app, &id, du).await?;
    let logged_in = open_interactive_session(app, info, &id, peer.map(|p| p.to_string())).await?;
    Ok((logged_in, accepted.mutual_token))
}

/// How long a started OpenID Connect login may take before its callback.
const OIDC_LOGIN_TTL_MINUTES: i64 = 10;

/// Logins started but not finished that are kept at most (all directories together): the
/// last resort; the per-address limit (`pending_logins_per_address`) normally comes first.
const MAX_PENDING_OIDC_LOGINS: i64 = 10_000;

/// Name of the cookie that binds a pending OpenID Connect login to the browser that started
/// it. Only its SHA-256 is stored, with the pending login.
pub const OIDC_BINDING_COOKIE: &str = "accesskeyd_oidc_binding";

/// A started OpenID Connect login: where to send the person, and the browser binding to set
/// as the [`OIDC_BINDING_COOKIE`] (for [`OIDC_LOGIN_TTL_MINUTES`]).
pub struct OidcStarted {
    pub authorization_url: String,
    pub binding: Secret,
    /// How long the binding is needed, in seconds (the cookie's Max-Age).
    pub ttl_seconds: i64,
}

/// The binding to use for a new login: the browser's current one when it sent a well-formed
/// one (so two sign-ins started in two tabs both finish), else a new random one. A value the
/// browser holds is no weaker than a fresh one: whoever could set it there could set either.
fn binding_for(presented: Option<&str>) -> Secret {
    match presented {
        Some(b)
            if b.len() == 43
                && b.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') =>
        {
            Secret::new(b)
        }
        _ => Secret::new(sessions::random_token("")),
    }
}

/// Whether the browser finishing a login is the one that started it: the cookie it sent
/// hashes to the stored binding (compared in constant time). No stored binding (a login
/// started before bindings existed) or no cookie: no.
fn binding_matches(stored: Option<&str>, presented: Option<&str>) -> bool {
    match (stored, presented) {
        (Some(stored), Some(presented)) => {
            Secret::new(sessions::token_hash(presented)).ct_eq(stored)
        }
        _ => false,
    }
}

/// The client-address bucket pending logins are counted in: an IPv4 address, or the /64 of
/// an IPv6 one (one host usually holds a whole /64, so single addresses would not limit it).
fn address_bucket(client: Option<std::net::IpAddr>) -> String {
    match client.map(|a| a.to_canonical()) {
        Some(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Some(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
        None => "unknown".to_string(),
    }
}

fn oidc_directory<'a>(app: &'a Services, id: &str) -> Result<&'a OidcDirectory> {
    match app.directory(id) {
        Some(Directory::Oidc(o)) => Ok(o),
        Some(_) => Err(Error::invalid(format!(
            "directory `{id}` is not an OpenID Connect directory"
        ))),
        None => Err(Error::not_found(format!("no directory with id `{id}`"))),
    }
}

fn redirect_uri(app: &Services, directory_id: &str) -> String {
    format!(
        "{}/api/auth/oidc/{directory_id}/callback",
        app.config.server.public_url()
    )
}

/// Starts an OpenID Connect login: remembers state, nonce and PKCE verifier (single use, a
/// few minutes) with the hash of the browser binding, and returns the provider URL to send
/// the person to and the binding for the browser's cookie. `client`: the client's address
/// (pending logins are limited per address); `presented`: the binding cookie the browser
/// already holds, if any.
pub async fn oidc_start(
    app: &Services,
    directory_id: &str,
    client: Option<std::net::IpAddr>,
    presented: Option<&str>,
) -> Result<OidcStarted> {
    let dir = oidc_directory(app, directory_id)?;
    let id = dir.config().id.clone();
    let per_address = i64::try_from(dir.config().pending_logins_per_address).unwrap_or(i64::MAX);
    let pending = dir.start(&redirect_uri(app, &id)).await?;
    let binding = binding_for(presented);
    let bucket = address_bucket(client);
    let now = app.clock.now();
    let row = (
        oidc_logins::state_hash.eq(sessions::token_hash(&pending.state)),
        oidc_logins::directory_id.eq(id.clone()),
        oidc_logins::nonce.eq(pending.nonce.clone()),
        oidc_logins::pkce_verifier.eq(pending.pkce_verifier.clone()),
        oidc_logins::created_at.eq(to_ms(now)),
        oidc_logins::expires_at.eq(to_ms(now + Duration::minutes(OIDC_LOGIN_TTL_MINUTES))),
        oidc_logins::binding_hash.eq(Some(sessions::token_hash(binding.expose()))),
        oidc_logins::client_addr.eq(Some(bucket.clone())),
    );
    app.store
        .write(move |conn| {
            diesel::delete(oidc_logins::table.filter(oidc_logins::expires_at.le(to_ms(now))))
                .execute(conn)?;
            // Starting a login needs no credentials: bound what one address can make us
            // store, so that nobody alone can fill the cap below and block everyone.
            let mine = oidc_logins::table
                .filter(oidc_logins::directory_id.eq(&id))
                .filter(oidc_logins::client_addr.eq(&bucket));
            let (count, oldest): (i64, Option<i64>) = mine
                .select((
                    diesel::dsl::count_star(),
                    diesel::dsl::min(oidc_logins::expires_at),
                ))
                .first(conn)?;
            if count >= per_address {
                let wait_ms = oldest.unwrap_or(0) - to_ms(now);
                let wait = u64::try_from(wait_ms.div_euclid(1000) + 1).unwrap_or(1);
                return Err(Error::RateLimited(
                    format!(
                        "too many OpenID Connect sign-ins started from your address and not finished; finish one, or try again in {wait} seconds"
                    ),
                    wait,
                ));
            }
            let pending: i64 = oidc_logins::table.count().get_result(conn)?;
            if pending >= MAX_PENDING_OIDC_LOGINS {
                return Err(Error::unavailable(
                    "too many OpenID Connect logins in progress; try again in a few minutes",
                ));
            }
            diesel::insert_into(oidc_logins::table)
                .values(row)
                .execute(conn)?;
            Ok(())
        })
        .await?;
    Ok(OidcStarted {
        authorization_url: pending.authorization_url,
        binding,
        ttl_seconds: OIDC_LOGIN_TTL_MINUTES * 60,
    })
}

/// Completes an OpenID Connect login with the code and state the provider sent back. The
/// state is used up whatever happens next, so a code can never be tried twice through us.
/// `binding`: the browser's binding cookie; it must be the one of the browser that started
/// the login, so a code and state obtained elsewhere cannot sign this browser in (login
/// CSRF).
pub async fn oidc_finish(
    app: &Services,
    directory_id: Option<&str>,
    code: &str,
    state: &str,
    binding: Option<&str>,
    remote_addr: Option<String>,
) -> Result<LoggedIn> {
    let now = app.clock.now();
    let hash = sessions::token_hash(state);
    type Pending = (String, String, String, i64, Option<String>);
    let pending: Option<Pending> = app
        .store
        .write(move |conn| {
            let row = oidc_logins::table
                .find(&hash)
                .select((
                    oidc_logins::directory_id,
                    oidc_logins::nonce,
                    oidc_logins::pkce_verifier,
                    oidc_logins::expires_at,
                    oidc_logins::binding_hash,
                ))
                .first(conn)
                .optional()?;
            diesel::delete(oidc_logins::table.find(&hash)).execute(conn)?;
            Ok(row)
        })
        .await?;
    let actor = Actor {
        user_id: None,
        name: None,
        remote_addr: remote_addr.clone(),
        key_id: None,
    };
    let result = async {
        let (dir_id, nonce, verifier, expires_at, bound_to) = pending.ok_or_else(|| {
            Error::Unauthenticated(
                "login refused: unknown or already used state; start the login again".into(),
            )
        })?;
        if expires_at <= to_ms(now) {
            return Err(Error::Unauthenticated(
                "login refused: the login took too long; start it again".into(),
            ));
        }
        if directory_id.is_some_and(|d| !d.eq_ignore_ascii_case(&dir_id)) {
            return Err(Error::Unauthenticated(
                "login refused: the state belongs to another directory".into(),
            ));
        }
        // After the expiry check: a browser drops the cookie when the login is too old
        // anyway, and "too long" is the better answer then.
        if !binding_matches(bound_to.as_deref(), binding) {
            return Err(Error::Unauthenticated(
                "login refused: this sign-in was not started in this browser or client (its sign-in cookie accesskeyd_oidc_binding is missing or does not match); start it again here".into(),
            ));
        }
        let dir = oidc_directory(app, &dir_id)?;
        let du = dir
            .finish(code, &verifier, &nonce, &redirect_uri(app, &dir_id))
            .await?;
        let who = Actor {
            name: Some("login".into()),
            ..actor.clone()
        };
        let info = users::upsert_oidc_login(app, &dir_id, du, &who).await?;
        if info.row.suspended_at.is_some() {
            return Err(Error::Unauthenticated(
                "login refused: the account was deprovisioned by the identity provider".into(),
            ));
        }
        open_interactive_session(app, info, &dir_id, remote_addr.clone()).await
    }
    .await;
    if let Err(e) = &result {
        inc(&app.metrics.logins_interactive_failed);
        let ev = Event::new("login", &actor)
            .failed()
            .detail(format!("openid connect: {e}"));
        if let Err(audit_error) = audit::record_alone(&app.store, app.clock.now(), &ev).await {
            tracing::warn!(error = %audit_error, "could not record a failed login");
        }
    }
    result
}

/// Checks a password against one directory and returns the (created or refreshed) local user.
async fn check_password(
    app: &Services,
    dir: &Directory,
    username: &str,
    password: Secret,
    from: Option<std::net::IpAddr>,
) -> Result<users::UserInfo> {
    match dir {
        Directory::Builtin(b) => {
            let row = crate::directory::builtin::authenticate(
                &app.store,
                &app.hasher,
                &b.id,
                username,
                password,
                from,
            )
            .await?;
            users::get(app, &row.id).await
        }
        Directory::Ldap(l) => {
            let du = l.authenticate(username, &password).await?;
            users::upsert_login(app, &l.config().id, du).await
        }
        // No passwords pass through accesskeyd for these: the provider checks them.
        Directory::Oidc(o) => Err(Error::invalid(format!(
            "authProviderId: `{}` signs people in at its provider; start at /api/auth/oidc/{}/start \
             and send the code and state back",
            o.config().id,
            o.config().id
        ))),
    }
}

/// Ends the caller's session (`DELETE /api/auth/logout`).
pub async fn logout(app: &Services, caller: &Principal) -> Result<()> {
    let Some(hash) = caller.session_hash.clone() else {
        return Err(Error::invalid(
            "there is no session to log out of: Basic credentials open none",
        ));
    };
    sessions::revoke(&app.store, hash.clone()).await?;
    revocation::changed(app, Revoked::Session(hash));
    let actor = caller.actor();
    audit::record_alone(
        &app.store,
        app.clock.now(),
        &Event::new("logout", &actor).target("user", &caller.user.id, &caller.user.username),
    )
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn pending_logins_are_counted_per_address_and_per_ipv6_64() {
        let bucket = |a: &str| super::address_bucket(Some(a.parse().unwrap()));
        assert_eq!(bucket("127.0.0.2"), "127.0.0.2");
        assert_eq!(
            bucket("::ffff:10.1.2.3"),
            "10.1.2.3",
            "IPv4 on a dual-stack listener"
        );
        assert_eq!(bucket("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(
            bucket("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            bucket("2001:db8:1:2::1"),
            "one host, one /64"
        );
        assert_ne!(bucket("2001:db8:1:3::1"), bucket("2001:db8:1:2::1"));
        assert_eq!(super::address_bucket(None), "unknown");
    }

    #[test]
    fn a_login_finishes_only_with_the_binding_of_the_browser_that_started_it() {
        let mine = super::binding_for(None);
        let stored = crate::sessions::token_hash(mine.expose());
        assert!(super::binding_matches(Some(&stored), Some(mine.expose())));
        let other = super::binding_for(None);
        assert_ne!(mine.expose(), other.expose());
        assert!(!super::binding_matches(Some(&stored), Some(other.expose())));
        assert!(!super::binding_matches(Some(&stored), None), "no cookie");
        assert!(
            !super::binding_matches(None, Some(mine.expose())),
            "nothing bound"
        );
        // A browser that starts again keeps its binding, so two tabs both finish; anything
        // not shaped like a binding is replaced.
        assert_eq!(
            super::binding_for(Some(mine.expose())).expose(),
            mine.expose()
        );
        assert_ne!(super::binding_for(Some("short")).expose(), "short");
        let odd = "a".repeat(42) + ";";
        assert_ne!(super::binding_for(Some(&odd)).expose(), odd);
    }

    #[test]
    fn proxy_names_lose_realm_and_domain() {
        assert_eq!(super::proxy_username("bob@EXAMPLE.ORG"), "bob");
        assert_eq!(super::proxy_username("EXAMPLE\\bob"), "bob");
        assert_eq!(super::proxy_username("bob"), "bob");
    }

    #[test]
    fn without_an_allow_list_every_realm_and_domain_signs_in() {
        for name in ["bob@OTHER.ORG", "OTHER\\bob", "bob"] {
            assert_eq!(super::proxy_name_allowed(name, &[]).unwrap(), "bob");
        }
    }

    #[test]
    fn an_allow_list_admits_its_realms_and_the_domains_it_names() {
        let allowed = vec!["EXAMPLE.ORG".to_string(), "EXAMPLE".to_string()];
        let ok = |n: &'static str| super::proxy_name_allowed(n, &allowed);
        assert_eq!(ok("bob@EXAMPLE.ORG").unwrap(), "bob");
        assert_eq!(
            ok("bob@example.org").unwrap(),
            "bob",
            "realms compare in any case"
        );
        assert_eq!(ok("EXAMPLE\\bob").unwrap(), "bob");
        let refused = |n: &'static str, needle: &str| {
            let e = ok(n).unwrap_err();
            assert!(matches!(e, super::Error::Forbidden(_)), "{n}: {e}");
            assert!(e.to_string().contains(needle), "{n}: {e}");
        };
        refused("bob@OTHER.ORG", "realm `OTHER.ORG`");
        // The NetBIOS name of EXAMPLE.ORG's domain is not derived from the realm.
        let only_realm = vec!["EXAMPLE.ORG".to_string()];
        let e = super::proxy_name_allowed("EXAMPLE\\bob", &only_realm).unwrap_err();
        assert!(e.to_string().contains("NetBIOS"), "{e}");
        refused("OTHER\\bob", "domain `OTHER`");
        refused("bob", "no realm");
        refused("EXAMPLE\\bob@OTHER.ORG", "realm `OTHER.ORG`");
    }

    #[test]
    fn only_an_interactive_session_changes_what_binds_keys() {
        use super::{may_change_binding, Binding, Method};
        let all = [
            Binding::Option("Authentication/AccessKey/ValidityWithoutUserLogin"),
            Binding::ValidityOverride,
            Binding::SessionDuration,
            Binding::ServiceAccountManager,
            Binding::ServiceAccountKeyExpiry,
        ];
        for what in all {
            assert!(may_change_binding(Method::Interactive, what).is_ok());
            let e = may_change_binding(Method::AccessKey, what).unwrap_err();
            assert!(matches!(e, super::Error::Forbidden(_)), "{what:?}");
            assert!(e.to_string().contains("with an access key"), "{e}");
        }
        assert_eq!(
            Binding::of_option("authentication/accesskey/warningdays"),
            Some(Binding::Option("authentication/accesskey/warningdays"))
        );
        assert_eq!(Binding::of_option("Features/Something"), None);
        assert_eq!(Binding::of_option("Auth"), None);
        let e = may_change_binding(
            Method::AccessKey,
            Binding::Option("Authentication/AccessKey/ValidityWithoutUserLogin"),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("`Authentication/AccessKey/ValidityWithoutUserLogin`"),
            "{e}"
        );
    }
}
