//! Turning a directory change feed's changes into signals: each change is confirmed by a
//! point lookup of the person before anyone is suspended, so only what the directory says
//! now counts, and a lookup that fails stops the batch (the feed resumes from its last
//! stored cookie) rather than suspending anyone.

use super::{apply, Applied, Effect, Signal};
use crate::audit::Actor;
use crate::directory::ldap::feed::{Change, Standing};
use crate::directory::ldap::LdapDirectory;
use crate::error::{Error, Result};
use crate::ids::{DirectoryId, UserId};
use crate::services::Services;
use crate::store::schema::users;
use crate::store::timestamp::Timestamp;
use diesel::prelude::*;
use std::collections::HashMap;

/// How a local record stands, as far as a signal is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    pub suspended: bool,
    /// Suspended by a signal (which a signal may lift).
    pub by_signal: bool,
}

/// What the directory's current standing of a person means for their local record. Pure.
pub fn decide(local: Local, standing: &Standing) -> Option<(Effect, &'static str)> {
    match standing {
        Standing::InScope(u) if u.disabled => {
            (!local.suspended).then_some((Effect::Suspend, "disabled in the directory"))
        }
        Standing::InScope(_) => local
            .by_signal
            .then_some((Effect::Lift, "back in the directory")),
        Standing::OutOfScope { .. } => {
            (!local.suspended).then_some((Effect::Suspend, "out of the directory's scope"))
        }
        Standing::Absent => (!local.suspended).then_some((Effect::Suspend, "deleted")),
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Processed {
    pub looked_up: usize,
    pub suspended: usize,
    pub lifted: usize,
    pub withheld: usize,
}

type LocalRow = (UserId, String, Option<Timestamp>, Option<String>);

/// Local records of `dir` with these stable ids.
async fn locals(
    app: &Services,
    dir: &DirectoryId,
    ids: Vec<String>,
) -> Result<HashMap<String, (UserId, Local)>> {
    let dir = dir.clone();
    app.store
        .read(move |conn| {
            let mut found = HashMap::new();
            // Bounded statements, whatever the batch size.
            for chunk in ids.chunks(500) {
                let rows: Vec<LocalRow> = users::table
                    .filter(users::directory_id.eq(&dir))
                    .filter(users::external_id.eq_any(chunk))
                    .select((
                        users::id,
                        users::external_id,
                        users::suspended_at,
                        users::suspended_by_signal,
                    ))
                    .load(conn)?;
                for (id, external_id, suspended_at, by_signal) in rows {
                    let local = Local {
                        suspended: suspended_at.is_some(),
                        by_signal: suspended_at.is_some() && by_signal.is_some(),
                    };
                    found.insert(external_id, (id, local));
                }
            }
            Ok(found)
        })
        .await
}

/// Confirms and applies one batch of changes. An error (a lookup failing, the database)
/// leaves the rest of the batch unapplied: the caller must not store the batch's cookie.
pub async fn process(
    app: &Services,
    ldap: &LdapDirectory,
    changes: &[Change],
) -> Result<Processed> {
    let cfg = ldap.config();
    let dir = &cfg.id;
    let kind = if cfg.active_directory {
        "AD change feed"
    } else {
        "LDAP change feed"
    };
    let mut ids: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Entry { external_id, .. } => Some(external_id.clone()),
            Change::MemberRemoved { .. } | Change::MemberAdded { .. } => None,
        })
        .collect();
    ids.sort();
    ids.dedup();
    let mut known = locals(app, dir, ids).await?;
    let mut done = Processed::default();
    let actor = Actor::system("change feed");
    for change in changes {
        let (standing, external_id, what) = match change {
            Change::Entry {
                external_id,
                deleted,
            } => {
                let Some(&(_, local)) = known.get(external_id) else {
                    continue; // nobody here: nothing to do
                };
                // On OpenLDAP an entry the feed sends as present is in scope, which matters
                // only to someone a signal suspended; on AD it may have been disabled.
                if !deleted && !cfg.active_directory && !local.by_signal {
                    continue;
                }
                done.looked_up += 1;
                let standing = ldap
                    .standing_by_id(external_id)
                    .await
                    .map_err(|e| Error::unavailable(e.to_string()))?;
                (
                    standing,
                    external_id.clone(),
                    format!("stable id {external_id}"),
                )
            }
            // An addition is looked up like a removal: someone a removal suspended is
            // lifted once the look-up finds them in scope again.
            Change::MemberRemoved { dn } | Change::MemberAdded { dn } => {
                done.looked_up += 1;
                let standing = ldap
                    .standing_by_dn(dn)
                    .await
                    .map_err(|e| Error::unavailable(e.to_string()))?;
                let external_id = match &standing {
                    Standing::InScope(u) => u.external_id.clone(),
                    Standing::OutOfScope { external_id } => external_id.clone(),
                    Standing::Absent => continue, // the entry is gone; its deletion names it
                };
                if !known.contains_key(&external_id) {
                    known.extend(locals(app, dir, vec![external_id.clone()]).await?);
                }
                let how = if matches!(change, Change::MemberAdded { .. }) {
                    "added to"
                } else {
                    "removed from"
                };
                (standing, external_id, format!("{how} a group: {dn}"))
            }
        };
        let Some((user, local)) = known.get(&external_id).cloned() else {
            continue;
        };
        let Some((effect, reason)) = decide(local, &standing) else {
            continue;
        };
        let signal = Signal {
            directory: dir.clone(),
            user,
            effect,
            name: format!("{kind}: {reason}"),
            detail: what,
        };
        let applied = apply(app, &actor, signal).await?;
        match applied {
            Applied::Changed if effect == Effect::Lift => done.lifted += 1,
            Applied::Changed => done.suspended += 1,
            Applied::Withheld => done.withheld += 1,
            Applied::Unchanged => {}
        }
        // Later changes of this batch see the record as it is now.
        if applied == Applied::Changed {
            if let Some((_, l)) = known.get_mut(&external_id) {
                let suspended = effect != Effect::Lift;
                *l = Local {
                    suspended,
                    by_signal: suspended,
                };
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::ldap::UpstreamUser;

    const ACTIVE: Local = Local {
        suspended: false,
        by_signal: false,
    };
    const HELD: Local = Local {
        suspended: true,
        by_signal: true,
    };
    /// Suspended by reconciliation's grace, SCIM or for want of a manager.
    const SUSPENDED_OTHERWISE: Local = Local {
        suspended: true,
        by_signal: false,
    };

    fn in_scope(disabled: bool) -> Standing {
        Standing::InScope(UpstreamUser {
            dn: "uid=bob,ou=people,dc=example,dc=org".into(),
            external_id: "b0b".into(),
            username: "bob".into(),
            disabled,
            last_login: None,
        })
    }

    #[test]
    fn a_person_gone_or_out_of_scope_is_suspended_once() {
        let out = Standing::OutOfScope {
            external_id: "b0b".into(),
        };
        assert_eq!(
            decide(ACTIVE, &Standing::Absent),
            Some((Effect::Suspend, "deleted"))
        );
        assert_eq!(
            decide(ACTIVE, &out),
            Some((Effect::Suspend, "out of the directory's scope"))
        );
        assert_eq!(decide(HELD, &Standing::Absent), None);
        assert_eq!(decide(SUSPENDED_OTHERWISE, &out), None);
    }

    #[test]
    fn a_disabled_person_is_suspended_and_stays_so_while_disabled() {
        assert_eq!(
            decide(ACTIVE, &in_scope(true)),
            Some((Effect::Suspend, "disabled in the directory"))
        );
        assert_eq!(decide(HELD, &in_scope(true)), None);
    }

    #[test]
    fn only_a_suspension_by_a_signal_is_lifted_when_the_person_is_back() {
        assert_eq!(
            decide(HELD, &in_scope(false)),
            Some((Effect::Lift, "back in the directory"))
        );
        assert_eq!(decide(SUSPENDED_OTHERWISE, &in_scope(false)), None);
        assert_eq!(decide(ACTIVE, &in_scope(false)), None);
    }
}
