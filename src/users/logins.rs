//! Users as logins find them: an interactive login creates or refreshes its user (LDAP, OpenID
//! Connect) and moves the last-login time that keys are bound to.

use super::*;
use crate::audit::{self, Actor, Event};
use crate::directory::DirectoryUser;
use crate::error::{Error, Result};
use crate::ids::{DirectoryId, UserId};
use crate::revocation::{self, Revoked};
use crate::services::Services;
use crate::store::models::UserRow;
use crate::store::schema::users;
use crate::store::timestamp::Timestamp;
use crate::store::user_rows;
use crate::store::DbConn;
use chrono::{DateTime, Utc};
use diesel::prelude::*;

/// Sets `lastLoginAt` (inside the caller's transaction) and announces the moved window; the
/// caller tells `revocation::changed` after the commit. Only interactive logins call this.
pub(crate) fn touch_login(conn: &mut DbConn, user_id: &UserId, now: DateTime<Utc>) -> Result<()> {
    diesel::update(users::table.find(user_id))
        .set(users::last_login_at.eq(Some(Timestamp::from(now))))
        .execute(conn)?;
    revocation::announce(conn, &Revoked::User(user_id.clone()))
}

/// Creates or refreshes the local record of a directory user after a successful login,
/// keyed by directory + stable id, and records the login time. An OpenID Connect directory
/// takes [`upsert_oidc_login`]'s rules (never by name).
pub async fn upsert_login(
    app: &Services,
    directory_id: &DirectoryId,
    du: DirectoryUser,
) -> Result<UserInfo> {
    let du = visible_names(du);
    if matches!(
        app.directory(directory_id),
        Some(crate::directory::Directory::Oidc(_))
    ) {
        return upsert_oidc_login(app, directory_id, du, &Actor::system("login")).await;
    }
    match upsert_login_once(app, directory_id, du.clone()).await {
        // The person's first logins on two replicas at once: one inserted, the other's
        // insert hit the unique index. The retry finds the record and refreshes it.
        Err(Error::Conflict(_)) => upsert_login_once(app, directory_id, du).await,
        other => other,
    }
}

async fn upsert_login_once(
    app: &Services,
    directory_id: &DirectoryId,
    du: DirectoryUser,
) -> Result<UserInfo> {
    let now = app.clock.now();
    // A bind to an LDAP directory proves the account is there, ending a suspension by sync.
    // An OpenID provider may still sign in someone SCIM deprovisioned: that does not.
    let login_restores = matches!(
        app.directory(directory_id),
        Some(crate::directory::Directory::Ldap(_))
    );
    let dir = directory_id.clone();
    let config = app.config.clone();
    let (info, superseded) = app
        .store
        .write(move |conn| {
            let mut superseded = None;
            // SCIM provisions only OpenID Connect directories, so nothing here waits to be
            // linked: the stable id alone finds the record.
            let existing = user_rows::by_external_id(conn, &dir, &du.external_id)?;
            // An LDAP directory is authoritative for its names. Another record holding this
            // name is a person upstream deleted or renamed, whose name now belongs to this
            // account. It keeps its data (its keys stop working at once: it is disabled) but
            // gives up the name, so nothing passes to this person.
            let this_id = existing.as_ref().map(|r| r.id.clone());
            let holder = user_rows::by_username(conn, &dir, &du.username)?;
            if let Some(old) = holder.filter(|h| Some(&h.id) != this_id.as_ref()) {
                let renamed = format!("{}#{}", old.username, &old.id.as_str()[..8]);
                diesel::update(users::table.find(&old.id))
                    .set((users::username.eq(&renamed), users::is_enabled.eq(false)))
                    .execute(conn)?;
                audit::record(
                    conn,
                    now,
                    &Event::new("user.superseded", &Actor::system("login"))
                        .target("user", &old.id, &renamed)
                        .detail(format!(
                            "directory {dir}: another account (stable id {}) now has the name `{}`; this record was renamed and disabled",
                            du.external_id, du.username
                        )),
                )?;
                revocation::announce(conn, &Revoked::User(old.id.clone()))?;
                superseded = Some(old.id);
            }
            let id = match existing {
                Some(row) => refresh_in(conn, &dir, row, &du, now, login_restores)?,
                None => {
                    let row = directory_user_row(&dir, du.clone(), now, Some(now));
                    diesel::insert_into(users::table).values(&row).execute(conn)?;
                    row.id
                }
            };
            let row = find(conn, &id)?;
            Ok((with_window(conn, &config, row)?, superseded))
        })
        .await?;
    if let Some(old) = superseded {
        revocation::changed(app, Revoked::User(old));
    }
    revocation::changed(app, Revoked::User(info.row.id.clone()));
    Ok(info)
}

/// Refreshes the record a login found (inside the caller's transaction) with what the
/// directory says now, and returns its id. `login_restores`: the login itself proves the
/// account is live (an LDAP bind), so it ends a suspension.
fn refresh_in(
    conn: &mut DbConn,
    dir: &DirectoryId,
    row: UserRow,
    du: &DirectoryUser,
    now: DateTime<Utc>,
    login_restores: bool,
) -> Result<UserId> {
    // Deprovisioned by SCIM, signing in at the provider anyway: nothing changes (not even
    // lastLoginAt); the caller refuses the login.
    if row.suspended_at.is_some() && !login_restores {
        return Ok(row.id);
    }
    // A successful login proves the account is live: re-enable a record that was superseded
    // earlier and has now come back under a new name.
    diesel::update(users::table.find(&row.id))
        .set((
            users::username.eq(&du.username),
            users::display_name.eq(&du.display_name),
            users::first_name.eq(&du.first_name),
            users::last_name.eq(&du.last_name),
            users::email.eq(&du.email),
            users::is_admin.eq(du.is_admin),
            users::is_enabled.eq(true),
            users::last_login_at.eq(Some(Timestamp::from(now))),
        ))
        .execute(conn)?;
    if login_restores && row.suspended_at.is_some() {
        diesel::update(users::table.find(&row.id))
            .set((
                users::suspended_at.eq(None::<Timestamp>),
                users::suspended_by_signal.eq(None::<String>),
            ))
            .execute(conn)?;
    }
    revocation::announce(conn, &Revoked::User(row.id.clone()))?;
    if (login_restores && row.suspended_at.is_some()) || !row.is_enabled {
        audit::record(
            conn,
            now,
            &Event::new("user.restore", &Actor::system("login"))
                .target("user", &row.id, &du.username)
                .detail(format!(
                    "directory {dir}: a successful login proves the account is back"
                )),
        )?;
    }
    Ok(row.id)
}

/// Whose record an OpenID Connect login gets ([`decide_oidc_login`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OidcRecord {
    /// The identity's own record: found by `sub`, or a SCIM-provisioned one that this login
    /// links to its `sub` (`link`).
    Own { id: UserId, link: bool },
    /// The identity has no record yet: a new one under the claimed name.
    New,
    /// Another record holds the claimed name: the login is refused and nothing changes.
    NameTaken,
}

/// The rule of an OpenID Connect login, pure. The identity is the directory (issuer) plus
/// `sub`, always; the username claim is only a label that, at many providers, people can
/// edit. So a name never renames, disables or hands over another record. Inputs:
/// - `by_sub`: the record with this directory and stable id `sub`;
/// - `by_external_id`: a record provisioned through SCIM with `externalId` = `sub`;
/// - `by_name`: the record holding the claimed username in this directory;
/// - `names_trusted`: the directory's `username_claim_is_provider_controlled`: only then may
///   a provisioned record waiting under the claimed name be linked.
///
/// Only records still waiting for their first login (stable id `scim:...`) are ever linked.
pub(crate) fn decide_oidc_login(
    by_sub: Option<&UserRow>,
    by_external_id: Option<&UserRow>,
    by_name: Option<&UserRow>,
    names_trusted: bool,
) -> OidcRecord {
    let waiting = |r: &&UserRow| r.external_id.starts_with(SCIM_PENDING_PREFIX);
    let own = match by_sub {
        Some(r) => Some((r, false)),
        None => by_external_id
            .filter(waiting)
            .or(by_name.filter(|r| names_trusted && waiting(r)))
            .map(|r| (r, true)),
    };
    // A deprovisioned record is left exactly as it is; the caller refuses the login.
    if let Some((r, _)) = own.filter(|(r, _)| r.suspended_at.is_some()) {
        return OidcRecord::Own {
            id: r.id.clone(),
            link: false,
        };
    }
    if by_name.is_some_and(|n| own.is_none_or(|(o, _)| o.id != n.id)) {
        return OidcRecord::NameTaken;
    }
    match own {
        Some((r, link)) => OidcRecord::Own {
            id: r.id.clone(),
            link,
        },
        None => OidcRecord::New,
    }
}

/// What one attempt of an OpenID Connect upsert came to.
enum OidcUpsert {
    Done(Box<UserInfo>),
    /// Refused for a name conflict (already in the audit trail): the message for the person.
    NameTaken(String),
}

/// Creates, links or refreshes the record of an OpenID Connect login ([`decide_oidc_login`]).
/// A claimed name that another record holds refuses the login with 409 and records
/// `login.name_conflict` (outcome failure, both stable ids); nothing else changes.
pub async fn upsert_oidc_login(
    app: &Services,
    directory_id: &DirectoryId,
    du: DirectoryUser,
    actor: &Actor,
) -> Result<UserInfo> {
    let du = visible_names(du);
    let once = match upsert_oidc_once(app, directory_id, du.clone(), actor).await {
        // The person's first logins on two replicas at once: one inserted, the other's
        // insert hit the unique index. The retry finds the record (or the name's holder).
        Err(Error::Conflict(_)) => upsert_oidc_once(app, directory_id, du, actor).await?,
        other => other?,
    };
    match once {
        OidcUpsert::Done(info) => Ok(*info),
        OidcUpsert::NameTaken(message) => Err(Error::conflict(message)),
    }
}

async fn upsert_oidc_once(
    app: &Services,
    directory_id: &DirectoryId,
    du: DirectoryUser,
    actor: &Actor,
) -> Result<OidcUpsert> {
    let now = app.clock.now();
    let names_trusted = match app.directory(directory_id) {
        Some(crate::directory::Directory::Oidc(o)) => {
            o.config().username_claim_is_provider_controlled
        }
        _ => false,
    };
    let dir = directory_id.clone();
    let config = app.config.clone();
    let actor = actor.clone();
    let out = app
        .store
        .write(move |conn| {
            let by_sub = user_rows::by_external_id(conn, &dir, &du.external_id)?;
            // Only a first login looks for a provisioned record to link.
            let by_external_id: Option<UserRow> = match by_sub {
                Some(_) => None,
                None => users::table
                    .filter(users::directory_id.eq(&dir))
                    .filter(users::external_id.like(format!("{SCIM_PENDING_PREFIX}%")))
                    .filter(users::scim_external_id.eq(&du.external_id))
                    .order(users::created_at.asc())
                    .select(UserRow::as_select())
                    .first(conn)
                    .optional()?,
            };
            let by_name = user_rows::by_username(conn, &dir, &du.username)?;
            let decision = decide_oidc_login(
                by_sub.as_ref(),
                by_external_id.as_ref(),
                by_name.as_ref(),
                names_trusted,
            );
            let id = match decision {
                OidcRecord::NameTaken => {
                    let holder = by_name.ok_or_else(|| {
                        Error::Internal("a name conflict without the name's holder".into())
                    })?;
                    audit::record(
                        conn,
                        now,
                        &Event::new("login.name_conflict", &actor)
                            .failed()
                            .target("user", &holder.id, &holder.username)
                            .detail(format!(
                                "directory {dir}: the identity with stable id {} signed in with the name `{}`, which the record with stable id {} holds; the login was refused and neither record changed",
                                du.external_id, du.username, holder.external_id
                            )),
                    )?;
                    return Ok(OidcUpsert::NameTaken(format!(
                        "login refused: the name `{}` that the provider sent for you belongs to another account of directory `{dir}`; nothing was changed. Ask an administrator (the audit trail has it as login.name_conflict)",
                        du.username
                    )));
                }
                OidcRecord::Own { id, link } => {
                    let row = find(conn, &id)?;
                    if link {
                        diesel::update(users::table.find(&id))
                            .set(users::external_id.eq(&du.external_id))
                            .execute(conn)?;
                    }
                    // An OpenID provider may still sign in someone SCIM deprovisioned:
                    // that restores nothing.
                    refresh_in(conn, &dir, row, &du, now, false)?
                }
                OidcRecord::New => {
                    let row = directory_user_row(&dir, du.clone(), now, Some(now));
                    diesel::insert_into(users::table).values(&row).execute(conn)?;
                    row.id
                }
            };
            let row = find(conn, &id)?;
            Ok(OidcUpsert::Done(Box::new(with_window(conn, &config, row)?)))
        })
        .await?;
    if let OidcUpsert::Done(info) = &out {
        revocation::changed(app, Revoked::User(info.row.id.clone()));
    }
    Ok(out)
}

/// A directory's names as stored: without control and format characters (bidi overrides,
/// zero-width spaces), which could make one person's name pass for another's in the pages,
/// lists and mails. We cannot refuse what a directory sends, so we drop them; the username
/// stays as sent, since logins and lookups match on it.
pub(super) fn visible_names(mut du: DirectoryUser) -> DirectoryUser {
    let clean = |v: Option<String>| {
        v.map(|s| crate::text::visible(&s))
            .filter(|s| !s.is_empty())
    };
    du.display_name = clean(du.display_name);
    du.first_name = clean(du.first_name);
    du.last_name = clean(du.last_name);
    du
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(external_id: &str, username: &str) -> UserRow {
        let du = DirectoryUser {
            external_id: external_id.into(),
            username: username.into(),
            display_name: None,
            first_name: None,
            last_name: None,
            email: None,
            is_admin: false,
        };
        directory_user_row(&DirectoryId::from("idp"), du, Utc::now(), None)
    }

    fn own(r: &UserRow, link: bool) -> OidcRecord {
        OidcRecord::Own {
            id: r.id.clone(),
            link,
        }
    }

    #[test]
    fn a_name_someone_else_holds_never_moves_their_record() {
        // mallory (sub-mallory) sets her username to `tom` at the provider.
        let tom = row("sub-tom", "tom");
        assert_eq!(
            decide_oidc_login(None, None, Some(&tom), false),
            OidcRecord::NameTaken,
            "her first login"
        );
        assert_eq!(
            decide_oidc_login(None, None, Some(&tom), true),
            OidcRecord::NameTaken,
            "trusting names links provisioned records only, never someone's live one"
        );
        let mallory = row("sub-mallory", "mallory");
        assert_eq!(
            decide_oidc_login(Some(&mallory), None, Some(&tom), false),
            OidcRecord::NameTaken,
            "a later login, renamed at the provider"
        );
    }

    #[test]
    fn the_identity_is_the_subject_whatever_the_name() {
        let ann = row("sub-ann", "ann");
        assert_eq!(
            decide_oidc_login(Some(&ann), None, Some(&ann), false),
            own(&ann, false)
        );
        assert_eq!(
            decide_oidc_login(Some(&ann), None, None, false),
            own(&ann, false),
            "renamed at the provider to a free name"
        );
        assert_eq!(decide_oidc_login(None, None, None, false), OidcRecord::New);
    }

    #[test]
    fn provisioned_records_link_by_external_id_or_by_a_trusted_name() {
        let waiting = row("scim:1", "ben");
        assert_eq!(
            decide_oidc_login(None, Some(&waiting), Some(&waiting), false),
            own(&waiting, true),
            "externalId = sub"
        );
        assert_eq!(
            decide_oidc_login(None, None, Some(&waiting), false),
            OidcRecord::NameTaken,
            "a name alone does not link unless the admin trusts the claim"
        );
        assert_eq!(
            decide_oidc_login(None, None, Some(&waiting), true),
            own(&waiting, true)
        );
        let other = row("scim:2", "ben2");
        assert_eq!(
            decide_oidc_login(None, Some(&other), Some(&waiting), true),
            OidcRecord::NameTaken,
            "linked by externalId, but the name is another record's"
        );
        let linked = row("sub-x", "ben");
        assert_eq!(
            decide_oidc_login(None, Some(&linked), None, false),
            OidcRecord::New,
            "a record already linked to another subject is never taken over"
        );
    }

    #[test]
    fn a_deprovisioned_record_stays_as_it_is() {
        let mut ben = row("sub-ben", "ben");
        ben.suspended_at = Some(Timestamp::from_millis(1));
        let tom = row("sub-tom", "tom");
        assert_eq!(
            decide_oidc_login(Some(&ben), None, Some(&tom), false),
            own(&ben, false)
        );
        let mut waiting = row("scim:1", "ben");
        waiting.suspended_at = Some(Timestamp::from_millis(1));
        assert_eq!(
            decide_oidc_login(None, Some(&waiting), Some(&waiting), false),
            own(&waiting, false),
            "not even linked"
        );
    }
}
