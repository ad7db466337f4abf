//! Who is calling: logins (directory password or access key) that open sessions, and the
//! authentication of every request from a session token or Basic access-key credentials.

use crate::audit::{self, Event};
use crate::auth_cache::{token_digest, Hit};
use crate::caller::{Method, Principal};
use crate::error::{Error, Result};
use crate::keys::{self};
use crate::last_used::Seen;
use crate::metrics::inc;
use crate::options::RuntimeOptions;
use crate::revocation::{self, Revoked};
use crate::secret::Secret;
use crate::services::Services;
use crate::sessions;
use crate::store::key_columns::KeyScope;
use crate::store::models::{AccessKeyRow, SessionRow, UserRow};
use crate::store::schema::{access_keys, sessions as sessions_t, users as users_t};
use crate::store::timestamp::Timestamp;
use crate::validity::KeyRules;
use diesel::prelude::*;
use std::net::IpAddr;
use std::sync::Arc;

mod login;
mod oidc;

pub use login::{
    check_lengths, kerberos_login, login, proxy_login, proxy_name_allowed, proxy_username,
    LoggedIn, LoginInput, MAX_PASSWORD_BYTES, MAX_USERNAME_BYTES,
};
pub use oidc::{oidc_finish, oidc_start, OidcStarted, OIDC_BINDING_COOKIE};
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
    user_agent: Option<&str>,
) -> Result<Principal> {
    let now = app.clock.now();
    match credentials {
        Credentials::Basic { key_id, password } => {
            if let Some(hit) = app.auth_cache.key(&key_id, &password, remote_addr, now) {
                inc(&app.metrics.key_auth_ok);
                return Ok(remembered(app, hit, None, remote_addr, user_agent, now));
            }
            // Boxed: the slow path's state (argon2, database) would otherwise make every
            // request's future, hits included, several KB that is copied on each call.
            let v = Box::pin(keys::verify(
                app,
                &key_id,
                password,
                remote_addr,
                user_agent,
            ))
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
                scope: v.key.scope,
                key: Some((Arc::from(v.key.id.into_string()), Arc::from(v.key.key_id))),
                session_hash: None,
                remote_addr,
            })
        }
        Credentials::Session(token) => {
            if !token.expose().starts_with(sessions::TOKEN_PREFIX) {
                return Err(Error::Unauthenticated(BAD_SESSION.into()));
            }
            let digest = token_digest(token.expose());
            if let Some(hit) = app.auth_cache.session(&digest, remote_addr, now) {
                if hit.key.is_some() {
                    inc(&app.metrics.key_session_requests);
                }
                return Ok(remembered(
                    app,
                    hit,
                    Some(&digest),
                    remote_addr,
                    user_agent,
                    now,
                ));
            }
            Box::pin(session_from_database(
                app,
                digest,
                remote_addr,
                user_agent,
                now,
            ))
            .await
        }
    }
}

/// A principal decided from memory.
fn remembered(
    app: &Services,
    hit: Hit,
    session: Option<&[u8; 32]>,
    remote_addr: Option<IpAddr>,
    user_agent: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Principal {
    let key = hit.key.map(|(row, key_id)| {
        if hit.use_due {
            let seen = Seen::new(remote_addr, user_agent);
            app.last_used.touch(&app.store, &row, now, seen);
        }
        (row, key_id)
    });
    Principal {
        scope: hit.scope,
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
    user_agent: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Principal> {
    let hash = hex::encode(digest);
    let config = app.config.clone();
    let h = hash.clone();
    let generation = app.auth_cache.generation();
    type Found = (SessionRow, UserRow, Option<AccessKeyRow>, KeyRules);
    let found: Option<Found> = app
        .store
        .read(move |conn| {
            let row: Option<(SessionRow, UserRow)> = sessions_t::table
                .inner_join(users_t::table)
                .filter(sessions_t::token_hash.eq(&h))
                .filter(sessions_t::expires_at.gt(Timestamp::from(now)))
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
            let rules = RuntimeOptions::load(conn, &config)?.key_rules();
            Ok(Some((session, user, key, rules)))
        })
        .await?;
    let Some((session, user, key, rules)) = found else {
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
            keys::may_act(k, &user, rules, now).map_err(|message| {
                inc(&app.metrics.key_auth_not_valid_now);
                Error::Unauthenticated(message)
            })?;
            keys::admit_network(app, k, &user, remote_addr, now)?;
            inc(&app.metrics.key_session_requests);
            let seen = Seen::new(remote_addr, user_agent);
            app.last_used.touch(&app.store, k.id.as_str(), now, seen);
            Some((Arc::from(k.id.as_str()), Arc::from(k.key_id.as_str())))
        }
    };
    app.auth_cache
        .remember_session(generation, digest, &session, &user, key.as_ref(), rules);
    Ok(Principal {
        scope: key.as_ref().map_or(KeyScope::Full, |k| k.scope),
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
