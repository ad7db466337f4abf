//! Reconciling a large directory (20,000 people in a real slapd) decides exactly what the
//! whole-slice algorithm it replaced decided: the same removals (absent, in and past their
//! grace), renames, restores, admin changes and blocked decision, also for a run blocked by
//! the threshold and for its approval. The reference below is a copy of the algorithm before
//! the streaming reconciler (every local user loaded whole, every matched entry in a map by
//! its text id); the run under test streams the local users and holds ids compactly.

use crate::harness::daemon::{Daemon, LDAP_DIR};
use crate::harness::slapd::Slapd;
use accesskeyd::config::PERCENT_THRESHOLD_MIN_USERS;
use accesskeyd::directory::Directory;
use accesskeyd::ids::{DirectoryId, UserId};
use accesskeyd::store::schema::{access_keys, users};
use accesskeyd::store::timestamp::Timestamp;
use accesskeyd::sync::plan::{Local, Plan, Policy, Reason, Removal, Seen, Snapshot};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde_json::json;
use std::collections::{HashMap, HashSet};

const PEOPLE: usize = 20_000;
const GRACE_HOURS: i64 = 24;

/// The decision before the streaming reconciler, verbatim but for the names.
fn old_plan(
    local: &[Local],
    snap: &Snapshot,
    policy: &Policy,
    now: DateTime<Utc>,
    approved: Option<&HashSet<UserId>>,
) -> Plan {
    fn removal(l: &Local, reason: Reason) -> Removal {
        Removal {
            user_id: l.id.clone(),
            username: l.username.clone(),
            external_id: l.external_id.clone(),
            reason,
            keys: l.keys,
        }
    }
    let mut p = Plan::default();
    for l in local {
        let leaving = match snap.seen.get(&l.external_id) {
            None => Some(Reason::Absent),
            Some(s) if s.disabled && policy.remove_disabled => Some(Reason::Disabled),
            Some(s) => {
                p.matched += 1;
                if s.username != l.username {
                    p.renames
                        .push((l.id.clone(), l.username.clone(), s.username.clone()));
                }
                if let Some(admins) = &snap.admins {
                    let admin = admins.contains(&l.external_id);
                    if admin != l.is_admin {
                        p.admin_changes
                            .push((l.id.clone(), s.username.clone(), admin));
                    }
                }
                if let Some(upstream) = s.last_login {
                    if l.last_login.is_none_or(|local| upstream > local) {
                        p.last_logins.push((l.id.clone(), upstream));
                    }
                }
                if l.suspended_at.is_some() && !(l.held_by_signal && s.disabled) {
                    p.restores.push((l.id.clone(), s.username.clone()));
                }
                None
            }
        };
        if let Some(reason) = leaving {
            if reason == Reason::Disabled {
                p.matched += 1;
            }
            match l.suspended_at.filter(|_| !l.held_by_signal) {
                Some(since) if now >= since + policy.grace => p.expired.push(removal(l, reason)),
                Some(_) => {}
                None => p.removals.push(removal(l, reason)),
            }
        }
    }
    p.blocked = old_blocked(local.len() as u64, snap.read, &p, policy, approved);
    p
}

fn old_blocked(
    local_users: u64,
    read: u64,
    p: &Plan,
    policy: &Policy,
    approved: Option<&HashSet<UserId>>,
) -> Option<String> {
    let leaving = p.removals.len() as u64 + p.expired.len() as u64;
    if leaving == 0 {
        return None;
    }
    if read == 0 {
        return Some(format!(
            "the directory returned no users while {local_users} local user(s) exist"
        ));
    }
    if let Some(ok) = approved {
        if p.removals.iter().all(|r| ok.contains(&r.user_id)) {
            return None;
        }
    }
    let n = p.removals.len() as u64;
    if n > policy.threshold {
        return Some(format!(
            "{n} removals exceed deletion_threshold = {}",
            policy.threshold
        ));
    }
    if local_users >= policy.percent_min_users
        && n.saturating_mul(100) > policy.threshold_percent.saturating_mul(local_users)
    {
        return Some(format!(
            "{n} removals of {local_users} local users exceed deletion_threshold_percent = {}%",
            policy.threshold_percent
        ));
    }
    None
}

/// The old run's inputs: every local user whole (with their key count), and a snapshot of
/// the read keyed by the id text, admins by the group's member DNs.
async fn old_inputs(d: &Daemon) -> (Vec<Local>, Snapshot) {
    let dir = DirectoryId::from(LDAP_DIR);
    let locals = d
        .app
        .store
        .read(move |conn| {
            type Row = (
                String,
                String,
                String,
                bool,
                Option<Timestamp>,
                Option<Timestamp>,
                Option<String>,
            );
            let rows: Vec<Row> = users::table
                .filter(users::directory_id.eq(dir.as_str()))
                .select((
                    users::id,
                    users::external_id,
                    users::username,
                    users::is_admin,
                    users::last_login_at,
                    users::suspended_at,
                    users::suspended_by_signal,
                ))
                .load(conn)?;
            let owners: Vec<String> = access_keys::table
                .inner_join(users::table)
                .filter(users::directory_id.eq(dir.as_str()))
                .select(access_keys::user_id)
                .load(conn)?;
            let mut keys: HashMap<String, i64> = HashMap::new();
            for o in owners {
                *keys.entry(o).or_default() += 1;
            }
            Ok(rows
                .into_iter()
                .map(
                    |(id, external_id, username, is_admin, last, susp, signal)| Local {
                        keys: keys.get(&id).copied().unwrap_or(0),
                        id: id.into(),
                        external_id,
                        username,
                        is_admin,
                        last_login: last.map(Timestamp::at),
                        held_by_signal: susp.is_some() && signal.is_some(),
                        suspended_at: susp.map(Timestamp::at),
                    },
                )
                .collect::<Vec<Local>>())
        })
        .await
        .expect("load locals");
    let Some(Directory::Ldap(ldap)) = d.app.directory(&DirectoryId::from(LDAP_DIR)) else {
        panic!("no LDAP directory")
    };
    let ids: HashSet<&str> = locals.iter().map(|l| l.external_id.as_str()).collect();
    let member_dns = ldap
        .admin_member_dns()
        .await
        .expect("admin group")
        .expect("admin group configured");
    let mut admins = HashSet::new();
    let mut seen = HashMap::new();
    let stats = ldap
        .read_users(|u| {
            if member_dns.contains(&u.dn.to_lowercase()) {
                admins.insert(u.external_id.clone());
            }
            if ids.contains(u.external_id.as_str()) {
                seen.insert(
                    u.external_id,
                    Seen {
                        username: u.username,
                        disabled: u.disabled,
                        last_login: u.last_login,
                    },
                );
            }
        })
        .await
        .expect("read");
    (
        locals,
        Snapshot {
            read: stats.entries,
            seen,
            admins: Some(admins),
        },
    )
}

/// Decisions compared as sets: the order of a plan follows the order users are read in.
fn sorted(mut p: Plan) -> Plan {
    p.renames.sort();
    p.admin_changes.sort();
    p.last_logins.sort();
    p.restores.sort();
    p.removals.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    p.expired.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    p
}

/// The new reconciler's decision and the old one's, on the directory as it is now.
async fn both(d: &Daemon, approved: Option<HashSet<UserId>>) -> (Plan, Plan) {
    let (locals, snap) = old_inputs(d).await;
    let policy = Policy {
        remove_disabled: true,
        threshold: 500,
        threshold_percent: 25,
        percent_min_users: PERCENT_THRESHOLD_MIN_USERS,
        grace: Duration::hours(GRACE_HOURS),
    };
    let new = accesskeyd::sync::preview(&d.app, &DirectoryId::from(LDAP_DIR), approved.clone())
        .await
        .expect("preview");
    assert_eq!(new.read, snap.read);
    let old = old_plan(
        &locals,
        &snap,
        &policy,
        d.app.clock.now(),
        approved.as_ref(),
    );
    (sorted(new.plan), sorted(old))
}

struct Person {
    external_id: String,
    username: String,
    is_admin: bool,
    suspended: Option<DateTime<Utc>>,
    signal: bool,
    keys: usize,
}

/// Adds local users of the LDAP directory straight into the database, in one transaction.
async fn add_locals(d: &Daemon, people: Vec<Person>) {
    d.app
        .store
        .write(move |conn| {
            // One row at a time: a multi-row INSERT is not available on the daemon's
            // connection, which serves both backends.
            for p in &people {
                let id = uuid::Uuid::new_v4().to_string();
                diesel::insert_into(users::table)
                    .values((
                        users::id.eq(&id),
                        users::directory_id.eq(LDAP_DIR),
                        users::external_id.eq(&p.external_id),
                        users::username.eq(&p.username),
                        users::is_admin.eq(p.is_admin),
                        users::is_enabled.eq(true),
                        users::created_at.eq(0i64),
                        users::suspended_at.eq(p.suspended.map(Timestamp::from)),
                        users::suspended_by_signal.eq(p.signal.then_some("feed")),
                    ))
                    .execute(conn)?;
                for k in 0..p.keys {
                    diesel::insert_into(access_keys::table)
                        .values((
                            access_keys::id.eq(uuid::Uuid::new_v4().to_string()),
                            access_keys::key_id.eq(format!("k{}", uuid::Uuid::new_v4().simple())),
                            access_keys::user_id.eq(&id),
                            access_keys::name.eq(format!("key {k}")),
                            access_keys::password_hash.eq("x"),
                            access_keys::created_at.eq(0i64),
                            access_keys::scope.eq("all"),
                        ))
                        .execute(conn)?;
                }
            }
            Ok(())
        })
        .await
        .expect("add local users");
}

fn gone(n: usize, external_id: String, suspended: Option<DateTime<Utc>>) -> Person {
    Person {
        external_id,
        username: format!("gone-{n}"),
        is_admin: false,
        suspended,
        signal: false,
        keys: n % 3,
    }
}

#[tokio::test]
async fn twenty_thousand_people_are_decided_exactly_as_before() {
    let slapd = Slapd::start().await;
    slapd.add_users_bulk("p-", PEOPLE, "pw").await;
    for uid in ["p-5", "p-6", "p-7"] {
        slapd.add_to_admins(uid).await;
    }
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[(
            "ACCESSKEYD_DIRECTORIES__1__REMOVAL_GRACE_HOURS",
            &GRACE_HOURS.to_string(),
        )],
    )
    .await;
    let now = d.app.clock.now();

    // Everyone in the directory, as its read shows them.
    let Some(Directory::Ldap(ldap)) = d.app.directory(&DirectoryId::from(LDAP_DIR)) else {
        panic!("no LDAP directory")
    };
    let mut upstream = Vec::new();
    ldap.read_users(|u| upstream.push((u.external_id, u.username)))
        .await
        .expect("read");
    assert_eq!(upstream.len(), PEOPLE + 3);

    // Local records in every situation a run meets.
    let mut people = Vec::new();
    for (i, (id, uid)) in upstream.iter().enumerate() {
        people.push(Person {
            external_id: id.clone(),
            // Renamed upstream since their last login.
            username: if i % 10 == 3 {
                format!("before-{uid}")
            } else {
                uid.clone()
            },
            // Admin here but not in the group any more.
            is_admin: i % 97 == 5,
            // Suspended (a grace, SCIM, a change signal) and back in the directory.
            suspended: (i % 7 == 1).then(|| now - Duration::hours(1)),
            signal: i % 14 == 1,
            keys: 0,
        });
    }
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    // Absent: left the directory (a fresh UUID, a text id, the same UUID in upper case,
    // which is another stable id), some within their grace and some past it.
    for _ in 0..150 {
        let n = next();
        people.push(gone(n, uuid::Uuid::new_v4().to_string(), None));
    }
    for _ in 0..50 {
        let n = next();
        people.push(gone(n, format!("employee-{n}"), None));
    }
    for (id, _) in upstream.iter().take(20) {
        let n = next();
        people.push(gone(n, id.to_uppercase(), None));
    }
    for _ in 0..40 {
        let n = next();
        people.push(gone(
            n,
            uuid::Uuid::new_v4().to_string(),
            Some(now - Duration::hours(3 * GRACE_HOURS)),
        ));
    }
    for _ in 0..30 {
        let n = next();
        people.push(gone(
            n,
            uuid::Uuid::new_v4().to_string(),
            Some(now - Duration::hours(1)),
        ));
    }
    add_locals(&d, people).await;

    let (new, old) = both(&d, None).await;
    assert_eq!(old.removals.len(), 220);
    assert_eq!(old.expired.len(), 40);
    assert_eq!(old.renames.len(), 2000);
    assert!(old.admin_changes.len() > 100, "{}", old.admin_changes.len());
    assert!(old.restores.len() > 2000, "{}", old.restores.len());
    assert!(old.removals.iter().any(|r| r.keys > 0));
    assert_eq!(old.blocked, None);
    assert_eq!(new, old);

    // More people gone than the threshold allows: blocked, the same way.
    let mut more = Vec::new();
    for _ in 0..400 {
        let n = next();
        more.push(gone(n, uuid::Uuid::new_v4().to_string(), None));
    }
    add_locals(&d, more).await;
    let (new, old) = both(&d, None).await;
    assert_eq!(
        old.blocked.as_deref(),
        Some("620 removals exceed deletion_threshold = 500")
    );
    assert_eq!(new, old);

    // An approval of exactly these removals lets the run through; one that misses one
    // person does not.
    let mut approved: HashSet<UserId> = old.removals.iter().map(|r| r.user_id.clone()).collect();
    let (new, old) = both(&d, Some(approved.clone())).await;
    assert_eq!(old.blocked, None);
    assert_eq!(new, old);
    approved.remove(&old.removals[0].user_id);
    let (new, old) = both(&d, Some(approved)).await;
    assert!(old.blocked.is_some());
    assert_eq!(new, old);

    // And the run an admin starts stops as blocked with the same people listed.
    let admin = d.admin().await;
    let run = admin
        .post(&format!("/api/directories/{LDAP_DIR}/sync"), json!({}))
        .await
        .body;
    assert_eq!(run["status"], "blocked", "{run}");
    let mut listed: Vec<&str> = run["removals"]
        .as_array()
        .expect("removals")
        .iter()
        .map(|r| r["userId"].as_str().expect("userId"))
        .collect();
    listed.sort();
    let expected: Vec<&str> = old.removals.iter().map(|r| r.user_id.as_str()).collect();
    assert_eq!(listed, expected);
}
