//! Interactive logins: a directory password (or a key typed into the login form), a name
//! reported by a trusted proxy, a Kerberos ticket; each opens a session and records the login.

use crate::audit::{self, Actor, Event};
use crate::caller::Method;
use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::ids::DirectoryId;
use crate::kerberos;
use crate::key_format as format;
use crate::keys;
use crate::metrics::inc;
use crate::revocation::{self, Revoked};
use crate::secret::Secret;
use crate::services::Services;
use crate::sessions;
use crate::store::timestamp::Timestamp;
use crate::users;
use chrono::Duration;

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
    pub directory_id: Option<DirectoryId>,
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
    let directory = match input.directory_id.as_ref() {
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
        None,
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
                tracing::warn!(directory = %dir.id(), error = %e, "directory unavailable during login");
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
pub(super) async fn open_interactive_session(
    app: &Services,
    info: users::UserInfo,
    directory_id: &DirectoryId,
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
    let dir_id = directory_id.clone();
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
    info.row.last_login_at = Some(Timestamp::from(now));
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

#[cfg(test)]
mod tests {
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
}
