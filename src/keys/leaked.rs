//! Keys a secret scanner found in public: matched by their key id or by the lookup hash of a
//! password (never by argon2), and deleted with the effects of `keys::delete` (sessions go
//! with the key, the revocation is announced, metrics), each with an `access_key.leaked`
//! audit event that says where it was found. No caller is involved: the scanner's signature
//! was the authentication, so the actor is `secret-scanning`.

use crate::audit::{self, Actor, Event};
use crate::error::Result;
use crate::ids::{KeyRowId, UserId};
use crate::metrics::inc;
use crate::revocation::{self, Revoked};
use crate::services::Services;
use crate::store::key_rows;
use crate::store::models::{AccessKeyRow, UserRow};
use crate::store::schema::access_keys;
use crate::store::user_rows;
use crate::store::DbConn;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use std::collections::BTreeMap;

/// The actor of the audit events.
pub const ACTOR: &str = "secret-scanning";

/// What a reported token is, if it can be one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A key id (`akd_…`).
    KeyId(String),
    /// A password (`akp_…`), by its lookup hash (`key_lookup::KeyLookup::hash`).
    Password { lookup_hash: String },
}

/// One reported token that may be ours, and where the scanner saw it.
#[derive(Debug, Clone)]
pub struct Sighting {
    pub credential: Credential,
    /// Where it was found (a URL), as the scanner said, already cut to a sane length.
    pub url: Option<String>,
    /// What kind of place (`content`, `commit`, `npm`, …), as the scanner said.
    pub source: Option<String>,
}

/// How a token matched a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    KeyId,
    Password,
    /// A rotation's old password, while it still works.
    PreviousPassword,
}

impl Match {
    fn describe(self) -> &'static str {
        match self {
            Match::KeyId => "its key id",
            Match::Password => "its password",
            Match::PreviousPassword => "its previous password (still valid after a rotation)",
        }
    }
}

/// Does `credential` name `key` at `now`? A rotation's old password counts only while it
/// still works: once its overlap is over it opens nothing.
pub fn matches(credential: &Credential, key: &AccessKeyRow, now: DateTime<Utc>) -> Option<Match> {
    match credential {
        Credential::KeyId(id) => (key.key_id == *id).then_some(Match::KeyId),
        Credential::Password { lookup_hash } => {
            if key.lookup_hash.as_deref() == Some(lookup_hash.as_str()) {
                Some(Match::Password)
            } else if key.previous_lookup_hash.as_deref() == Some(lookup_hash.as_str())
                && key.previous_hash_at(now).is_some()
            {
                Some(Match::PreviousPassword)
            } else {
                None
            }
        }
    }
}

/// For each sighting, the index of the key it names among `keys`, and how.
pub fn assign(
    sightings: &[Sighting],
    keys: &[AccessKeyRow],
    now: DateTime<Utc>,
) -> Vec<Option<(usize, Match)>> {
    sightings
        .iter()
        .map(|s| {
            keys.iter()
                .enumerate()
                .find_map(|(i, k)| matches(&s.credential, k, now).map(|m| (i, m)))
        })
        .collect()
}

/// A key this report deleted, with whom to tell.
#[derive(Clone)]
pub struct Leaked {
    pub key: AccessKeyRow,
    pub owner: UserRow,
    /// A service account's manager (who is told instead of the account).
    pub manager: Option<UserRow>,
    /// The first sighting that named it.
    pub sighting: usize,
}

/// What a report did.
#[derive(Clone, Default)]
pub struct Outcome {
    /// Per sighting: did it name a key of ours (deleted now, or by a report just before)?
    pub matched: Vec<bool>,
    /// The keys this call deleted; a key another report deleted first is not here, so its
    /// owner is told once.
    pub revoked: Vec<Leaked>,
}

/// Deletes the keys the sightings name. One read finds them; only when it finds any does
/// a write transaction find them again and delete them (an unknown token never takes the
/// write lock). `from`: the address the report came from, for the audit trail.
pub async fn revoke(
    app: &Services,
    sightings: Vec<Sighting>,
    from: Option<String>,
) -> Result<Outcome> {
    let now = app.clock.now();
    let mut key_ids = Vec::new();
    let mut hashes = Vec::new();
    for s in &sightings {
        match &s.credential {
            Credential::KeyId(id) => key_ids.push(id.clone()),
            Credential::Password { lookup_hash } => hashes.push(lookup_hash.clone()),
        }
    }
    let (ids, hs) = (key_ids.clone(), hashes.clone());
    let found = app
        .store
        .read(move |conn| key_rows::leak_candidates(conn, &ids, &hs))
        .await?;
    let keys: Vec<AccessKeyRow> = found.into_iter().map(|(k, _)| k).collect();
    if assign(&sightings, &keys, now).iter().all(Option::is_none) {
        return Ok(Outcome {
            matched: vec![false; sightings.len()],
            revoked: Vec::new(),
        });
    }
    let outcome = app
        .store
        .write(move |conn| revoke_in(conn, &sightings, &key_ids, &hashes, now, from))
        .await?;
    for l in &outcome.revoked {
        inc(&app.metrics.keys_deleted);
        inc(&app.metrics.keys_leaked);
        revocation::changed(app, Revoked::Key(l.key.id.clone()));
    }
    Ok(outcome)
}

fn revoke_in(
    conn: &mut DbConn,
    sightings: &[Sighting],
    key_ids: &[String],
    hashes: &[String],
    now: DateTime<Utc>,
    from: Option<String>,
) -> Result<Outcome> {
    let (keys, owners): (Vec<AccessKeyRow>, Vec<UserRow>) =
        key_rows::leak_candidates(conn, key_ids, hashes)?
            .into_iter()
            .unzip();
    let assigned = assign(sightings, &keys, now);
    let manager_ids: Vec<UserId> = owners
        .iter()
        .filter(|o| o.is_service_account)
        .filter_map(|o| o.manager_id.clone())
        .collect();
    let managers: BTreeMap<UserId, UserRow> = user_rows::by_ids(conn, &manager_ids)?
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    let actor = Actor {
        remote_addr: from,
        ..Actor::system(ACTOR)
    };
    let mut done: Vec<KeyRowId> = Vec::new();
    let mut revoked = Vec::new();
    for (sighting, found) in assigned.iter().enumerate() {
        let Some((i, how)) = *found else { continue };
        let (key, owner) = (&keys[i], &owners[i]);
        if done.contains(&key.id) {
            continue;
        }
        done.push(key.id.clone());
        // Sessions opened with this key go with it (ON DELETE CASCADE). None deleted: a
        // report a moment earlier took it (PostgreSQL), and told its owner.
        if diesel::delete(access_keys::table.find(&key.id)).execute(conn)? == 0 {
            continue;
        }
        revocation::announce(conn, &Revoked::Key(key.id.clone()))?;
        let s = &sightings[sighting];
        audit::record(
            conn,
            now,
            &Event::new("access_key.leaked", &actor)
                .target("access_key", &key.key_id, &key.name)
                .detail(format!(
                    "deleted: a secret scanner found {} in public (source {}): {}; owner {} ({})",
                    how.describe(),
                    s.source.as_deref().unwrap_or("unknown"),
                    s.url.as_deref().unwrap_or("no URL given"),
                    owner.username,
                    owner.id
                )),
        )?;
        revoked.push(Leaked {
            key: key.clone(),
            owner: owner.clone(),
            manager: owner
                .manager_id
                .as_ref()
                .filter(|_| owner.is_service_account)
                .and_then(|m| managers.get(m).cloned()),
            sighting,
        });
    }
    Ok(Outcome {
        matched: assigned.iter().map(Option::is_some).collect(),
        revoked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::timestamp::Timestamp;
    use chrono::Duration;

    fn key(
        id: &str,
        lookup: Option<&str>,
        previous: Option<(&str, DateTime<Utc>)>,
    ) -> AccessKeyRow {
        AccessKeyRow {
            id: id.into(),
            key_id: format!("akd_{id}"),
            lookup_hash: lookup.map(str::to_string),
            previous_password_hash: previous.map(|_| "argon2-old".to_string()),
            previous_lookup_hash: previous.map(|(h, _)| h.to_string()),
            previous_until: previous.map(|(_, until)| Timestamp::from(until)),
            ..AccessKeyRow::new_for_tests()
        }
    }

    fn seen(c: Credential) -> Sighting {
        Sighting {
            credential: c,
            url: None,
            source: None,
        }
    }

    fn password(h: &str) -> Credential {
        Credential::Password {
            lookup_hash: h.into(),
        }
    }

    #[test]
    fn tokens_name_keys_by_id_by_password_and_by_an_old_password_while_it_works() {
        let now = Timestamp::from_millis(1_800_000_000_000).at();
        let keys = [
            key("a", Some("ha"), None),
            key(
                "b",
                Some("hb"),
                Some(("hb-old", now + Duration::minutes(30))),
            ),
            key(
                "c",
                Some("hc"),
                Some(("hc-old", now - Duration::minutes(1))),
            ),
        ];
        let sightings = [
            seen(Credential::KeyId("akd_a".into())),
            seen(password("hb")),
            seen(password("hb-old")),
            seen(password("hc-old")),
            seen(password("nobody")),
            seen(Credential::KeyId("akd_zz".into())),
        ];
        assert_eq!(
            assign(&sightings, &keys, now),
            vec![
                Some((0, Match::KeyId)),
                Some((1, Match::Password)),
                Some((1, Match::PreviousPassword)),
                None,
                None,
                None
            ],
            "an old password whose overlap ended opens nothing: not a match"
        );
    }

    #[test]
    fn a_password_hash_never_matches_a_key_id_or_the_other_way() {
        let now = Timestamp::from_millis(1_800_000_000_000).at();
        let k = key("a", Some("akd_a"), None);
        assert_eq!(matches(&password("akd_a"), &k, now), Some(Match::Password));
        assert_eq!(matches(&Credential::KeyId("ha".into()), &k, now), None);
        let no_lookup = key("n", None, None);
        assert_eq!(matches(&password(""), &no_lookup, now), None);
    }
}
