//! OpenID Connect sign-in in two requests: the start (state, nonce, PKCE and a binding to
//! the browser) and the finish, which opens the session.

use super::login::{open_interactive_session, LoggedIn};
use crate::audit::{self, Actor, Event};
use crate::directory::oidc::OidcDirectory;
use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::ids::DirectoryId;
use crate::metrics::inc;
use crate::secret::Secret;
use crate::services::Services;
use crate::sessions;
use crate::store::schema::oidc_logins;
use crate::store::timestamp::Timestamp;
use crate::users;
use chrono::Duration;
use diesel::prelude::*;

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

fn oidc_directory<'a>(app: &'a Services, id: &DirectoryId) -> Result<&'a OidcDirectory> {
    match app.directory(id) {
        Some(Directory::Oidc(o)) => Ok(o),
        Some(_) => Err(Error::invalid(format!(
            "directory `{id}` is not an OpenID Connect directory"
        ))),
        None => Err(Error::not_found(format!("no directory with id `{id}`"))),
    }
}

fn redirect_uri(app: &Services, directory_id: &DirectoryId) -> String {
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
    directory_id: &DirectoryId,
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
        oidc_logins::created_at.eq(Timestamp::from(now)),
        oidc_logins::expires_at.eq(Timestamp::from(
            now + Duration::minutes(OIDC_LOGIN_TTL_MINUTES),
        )),
        oidc_logins::binding_hash.eq(Some(sessions::token_hash(binding.expose()))),
        oidc_logins::client_addr.eq(Some(bucket.clone())),
    );
    app.store
        .write(move |conn| {
            diesel::delete(oidc_logins::table.filter(oidc_logins::expires_at.le(Timestamp::from(now))))
                .execute(conn)?;
            // Starting a login needs no credentials: bound what one address can make us
            // store, so that nobody alone can fill the cap below and block everyone.
            let mine = oidc_logins::table
                .filter(oidc_logins::directory_id.eq(&id))
                .filter(oidc_logins::client_addr.eq(&bucket));
            let (count, oldest): (i64, Option<Timestamp>) = mine
                .select((
                    diesel::dsl::count_star(),
                    diesel::dsl::min(oidc_logins::expires_at),
                ))
                .first(conn)?;
            if count >= per_address {
                // Seconds until the oldest expires, rounded up: arithmetic on the stored millis.
                let wait_ms = oldest.unwrap_or_default().millis() - Timestamp::from(now).millis();
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
    directory_id: Option<&DirectoryId>,
    code: &str,
    state: &str,
    binding: Option<&str>,
    remote_addr: Option<String>,
) -> Result<LoggedIn> {
    let now = app.clock.now();
    let hash = sessions::token_hash(state);
    type Pending = (DirectoryId, String, String, Timestamp, Option<String>);
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
        if expires_at <= Timestamp::from(now) {
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
            return Err(Error::Unauthenticated(match &info.row.suspended_by_signal {
                Some(signal) => format!(
                    "login refused: the account is suspended by the identity provider's signal ({signal}) until it says the account is back"
                ),
                None => {
                    "login refused: the account was deprovisioned by the identity provider".into()
                }
            }));
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
}
