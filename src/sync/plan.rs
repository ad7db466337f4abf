//! Deciding a reconciliation run, pure: local users of a directory × what a complete read of
//! the directory showed × the policy → renames, admin changes, last logins, removals, and
//! whether the run must stop as blocked. No I/O; time is an argument.

use crate::ids::UserId;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// A local user of the directory being reconciled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub id: UserId,
    pub external_id: String,
    pub username: String,
    pub is_admin: bool,
    pub last_login: Option<DateTime<Utc>>,
    /// Suspended earlier: by this reconciliation's grace, SCIM, or a change signal.
    pub suspended_at: Option<DateTime<Utc>>,
    /// The suspension came from a change signal (a feed, a shared signal): it is no removal
    /// yet, so a removal still counts against the thresholds and starts the grace.
    pub held_by_signal: bool,
    pub keys: i64,
}

/// What the directory says about a local user it still has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub username: String,
    pub disabled: bool,
    pub last_login: Option<DateTime<Utc>>,
}

/// The result of a complete read: how many entries were read in all, and the entries that
/// match local users (by stable id). Entries of people with no local record are not kept.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub read: u64,
    pub seen: HashMap<String, Seen>,
    /// Stable ids of admin-group members, or None when no admin group is configured.
    pub admins: Option<HashSet<String>>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub remove_disabled: bool,
    pub threshold: u64,
    pub threshold_percent: u64,
    pub percent_min_users: u64,
    pub grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// Not in a complete read of the directory (deleted, or out of scope).
    Absent,
    /// The account is disabled upstream.
    Disabled,
}

/// One person the run removes (or would remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Removal {
    pub user_id: UserId,
    pub username: String,
    pub external_id: String,
    pub reason: Reason,
    /// How many keys they held.
    pub keys: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub matched: u64,
    /// (user id, old name, new name)
    pub renames: Vec<(UserId, String, String)>,
    /// (user id, username, new admin standing)
    pub admin_changes: Vec<(UserId, String, bool)>,
    /// (user id, newer last login from the directory)
    pub last_logins: Vec<(UserId, DateTime<Utc>)>,
    /// Leaving now: deleted at once (no grace), or suspended (grace).
    pub removals: Vec<Removal>,
    /// Suspended earlier, grace over: deleted now. Counted when they were suspended.
    pub expired: Vec<Removal>,
    /// Suspended earlier and back in the directory: (user id, username).
    pub restores: Vec<(UserId, String)>,
    /// Why the run must not remove anyone, if it must not.
    pub blocked: Option<String>,
}

impl Plan {
    /// Adds the decisions of another part of the same run, decided over users that come
    /// after this part's (so that lists keep the users' order).
    pub fn absorb(&mut self, other: Plan) {
        self.matched += other.matched;
        self.renames.extend(other.renames);
        self.admin_changes.extend(other.admin_changes);
        self.last_logins.extend(other.last_logins);
        self.removals.extend(other.removals);
        self.expired.extend(other.expired);
        self.restores.extend(other.restores);
        self.blocked = self.blocked.take().or(other.blocked);
    }
}

fn removal(l: &Local, reason: Reason) -> Removal {
    Removal {
        user_id: l.id.clone(),
        username: l.username.clone(),
        external_id: l.external_id.clone(),
        reason,
        keys: l.keys,
    }
}

/// What the directory says about one local user's stable id, borrowed from wherever the
/// read keeps it (a [`Snapshot`], or the compact set of a large run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upstream<'a> {
    pub username: &'a str,
    pub disabled: bool,
    pub last_login: Option<DateTime<Utc>>,
}

impl<'a> From<&'a Seen> for Upstream<'a> {
    fn from(s: &'a Seen) -> Upstream<'a> {
        Upstream {
            username: &s.username,
            disabled: s.disabled,
            last_login: s.last_login,
        }
    }
}

/// Decides one local user and adds what follows to `p`: `seen` is their entry in a complete
/// read (None: absent), `admin` whether they are in the admin group (None: no admin group
/// configured). Users are independent of each other; only the final threshold check
/// ([`conclude`]) looks at the whole run.
pub fn decide_user(
    l: &Local,
    seen: Option<Upstream<'_>>,
    admin: Option<bool>,
    policy: &Policy,
    now: DateTime<Utc>,
    p: &mut Plan,
) {
    let leaving = match seen {
        None => Some(Reason::Absent),
        Some(s) if s.disabled && policy.remove_disabled => Some(Reason::Disabled),
        Some(s) => {
            p.matched += 1;
            if s.username != l.username {
                p.renames
                    .push((l.id.clone(), l.username.clone(), s.username.to_owned()));
            }
            if let Some(admin) = admin {
                if admin != l.is_admin {
                    p.admin_changes
                        .push((l.id.clone(), s.username.to_owned(), admin));
                }
            }
            if let Some(upstream) = s.last_login {
                if l.last_login.is_none_or(|local| upstream > local) {
                    p.last_logins.push((l.id.clone(), upstream));
                }
            }
            // A signal's suspension of a disabled account stays (the feed saw the
            // disable; without remove_disabled sync keeps the record, suspended).
            if l.suspended_at.is_some() && !(l.held_by_signal && s.disabled) {
                p.restores.push((l.id.clone(), s.username.to_owned()));
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
            Some(_) => {} // still in its grace
            None => p.removals.push(removal(l, reason)),
        }
    }
}

/// Ends a run's decision once every local user was decided: whether it must stop as
/// blocked. `local_users` is how many were decided, `read` how many entries the read had.
pub fn conclude(
    p: &mut Plan,
    local_users: u64,
    read: u64,
    policy: &Policy,
    approved: Option<&HashSet<UserId>>,
) {
    p.blocked = blocked(local_users, read, p, policy, approved);
}

/// Decides a run over whole slices (the reference form: a large run decides user by user
/// with the same [`decide_user`] as it streams the local users). `approved` holds the user
/// ids an admin approved removing (from a blocked run); a removal set within it passes the
/// threshold.
pub fn plan(
    local: &[Local],
    snap: &Snapshot,
    policy: &Policy,
    now: DateTime<Utc>,
    approved: Option<&HashSet<UserId>>,
) -> Plan {
    let mut p = Plan::default();
    for l in local {
        let seen = snap.seen.get(&l.external_id).map(Upstream::from);
        let admin = snap.admins.as_ref().map(|a| a.contains(&l.external_id));
        decide_user(l, seen, admin, policy, now, &mut p);
    }
    conclude(&mut p, local.len() as u64, snap.read, policy, approved);
    p
}

fn blocked(
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
        // A directory that suddenly has nobody is far likelier broken than empty.
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
    }

    fn local(n: usize) -> Vec<Local> {
        (0..n)
            .map(|i| Local {
                id: UserId::from(format!("u{i}")),
                external_id: format!("x{i}"),
                username: format!("user{i}"),
                is_admin: false,
                last_login: Some(t0()),
                suspended_at: None,
                held_by_signal: false,
                keys: 1,
            })
            .collect()
    }

    fn seen_all(l: &[Local]) -> Snapshot {
        Snapshot {
            read: l.len() as u64 + 10,
            seen: l
                .iter()
                .map(|u| {
                    (
                        u.external_id.clone(),
                        Seen {
                            username: u.username.clone(),
                            disabled: false,
                            last_login: None,
                        },
                    )
                })
                .collect(),
            admins: None,
        }
    }

    fn policy() -> Policy {
        Policy {
            remove_disabled: true,
            threshold: 500,
            threshold_percent: 25,
            percent_min_users: 20,
            grace: Duration::zero(),
        }
    }

    #[test]
    fn nothing_changes_when_everyone_is_there() {
        let l = local(3);
        let p = plan(&l, &seen_all(&l), &policy(), t0(), None);
        assert_eq!(p.matched, 3);
        assert_eq!(
            p,
            Plan {
                matched: 3,
                ..Plan::default()
            }
        );
    }

    #[test]
    fn absent_and_disabled_users_leave_renames_and_logins_follow() {
        let l = local(3);
        let mut s = seen_all(&l);
        s.seen.remove("x0");
        s.seen.get_mut("x1").unwrap().disabled = true;
        let later = t0() + Duration::days(3);
        let x2 = s.seen.get_mut("x2").unwrap();
        x2.username = "renamed".into();
        x2.last_login = Some(later);
        let p = plan(&l, &s, &policy(), t0(), None);
        let reasons: Vec<_> = p
            .removals
            .iter()
            .map(|r| (r.user_id.as_str(), r.reason))
            .collect();
        assert_eq!(reasons, [("u0", Reason::Absent), ("u1", Reason::Disabled)]);
        assert_eq!(p.renames, [("u2".into(), "user2".into(), "renamed".into())]);
        assert_eq!(p.last_logins, [("u2".into(), later)]);
        assert_eq!(p.blocked, None);

        // With remove_disabled off a disabled account stays.
        let mut keep = policy();
        keep.remove_disabled = false;
        assert_eq!(plan(&l, &s, &keep, t0(), None).removals.len(), 1);
    }

    /// A run decided in parts (one per range of users, in their order) and absorbed into
    /// one plan decides exactly what one pass over everyone does.
    #[test]
    fn a_run_decided_in_parts_decides_as_one_pass() {
        let mut l = local(9);
        l[4].is_admin = true;
        l[7].suspended_at = Some(t0() - Duration::days(2));
        let mut s = seen_all(&l);
        s.seen.remove("x1");
        s.seen.remove("x6");
        s.seen.get_mut("x3").unwrap().disabled = true;
        s.seen.get_mut("x5").unwrap().username = "renamed".into();
        s.seen.get_mut("x8").unwrap().last_login = Some(t0() + Duration::days(1));
        s.admins = Some(["x2".to_string()].into());
        let whole = plan(&l, &s, &policy(), t0(), None);
        for cuts in [
            vec![0, 9],
            vec![0, 4, 9],
            vec![0, 1, 5, 6, 9],
            vec![0, 0, 9, 9],
        ] {
            let mut parts = Plan::default();
            for w in cuts.windows(2) {
                let mut part = Plan::default();
                for u in &l[w[0]..w[1]] {
                    let seen = s.seen.get(&u.external_id).map(Upstream::from);
                    let admin = s.admins.as_ref().map(|a| a.contains(&u.external_id));
                    decide_user(u, seen, admin, &policy(), t0(), &mut part);
                }
                parts.absorb(part);
            }
            conclude(&mut parts, l.len() as u64, s.read, &policy(), None);
            assert_eq!(parts, whole, "cut at {cuts:?}");
        }
    }

    #[test]
    fn last_login_never_moves_backwards() {
        let l = local(1);
        let mut s = seen_all(&l);
        s.seen.get_mut("x0").unwrap().last_login = Some(t0() - Duration::days(1));
        assert!(plan(&l, &s, &policy(), t0(), None).last_logins.is_empty());
    }

    #[test]
    fn admin_standing_follows_the_group() {
        let mut l = local(2);
        l[1].is_admin = true;
        let mut s = seen_all(&l);
        s.admins = Some(["x0".to_string()].into());
        let p = plan(&l, &s, &policy(), t0(), None);
        assert_eq!(
            p.admin_changes,
            [
                ("u0".into(), "user0".into(), true),
                ("u1".into(), "user1".into(), false)
            ]
        );
    }

    #[test]
    fn thresholds_block_mass_removals_and_approval_lets_them_through() {
        let l = local(100);
        let mut s = seen_all(&l);
        for i in 0..30 {
            s.seen.remove(&format!("x{i}"));
        }
        let p = plan(&l, &s, &policy(), t0(), None);
        assert!(
            p.blocked.as_deref().unwrap().contains("25%"),
            "{:?}",
            p.blocked
        );
        let mut absolute = policy();
        absolute.threshold = 10;
        absolute.threshold_percent = 100;
        let p2 = plan(&l, &s, &absolute, t0(), None);
        assert!(p2
            .blocked
            .as_deref()
            .unwrap()
            .contains("deletion_threshold = 10"));
        let ok: HashSet<UserId> = p.removals.iter().map(|r| r.user_id.clone()).collect();
        assert_eq!(plan(&l, &s, &policy(), t0(), Some(&ok)).blocked, None);
        // An approval does not cover more than it named.
        s.seen.remove("x50");
        assert!(plan(&l, &s, &policy(), t0(), Some(&ok)).blocked.is_some());
    }

    #[test]
    fn small_directories_use_the_count_only() {
        let l = local(3);
        let mut s = seen_all(&l);
        s.seen.remove("x0");
        s.seen.remove("x1");
        assert_eq!(plan(&l, &s, &policy(), t0(), None).blocked, None);
    }

    #[test]
    fn an_empty_read_is_always_blocked() {
        let l = local(2);
        let s = Snapshot::default();
        let p = plan(&l, &s, &policy(), t0(), None);
        assert!(p.blocked.unwrap().contains("no users"));
        // Approval cannot override an empty read.
        let ok: HashSet<UserId> = ["u0".into(), "u1".into()].into();
        assert!(plan(&l, &s, &policy(), t0(), Some(&ok)).blocked.is_some());
        // No local users: nothing to protect.
        assert_eq!(plan(&[], &s, &policy(), t0(), None).blocked, None);
    }

    #[test]
    fn grace_suspends_then_deletes_and_a_return_restores() {
        let mut l = local(3);
        let mut pol = policy();
        pol.grace = Duration::hours(24);
        l[1].suspended_at = Some(t0() - Duration::hours(25));
        l[2].suspended_at = Some(t0() - Duration::hours(1));
        let mut s = seen_all(&l);
        s.seen.remove("x0");
        s.seen.remove("x1");
        let p = plan(&l, &s, &pol, t0(), None);
        assert_eq!(
            p.removals
                .iter()
                .map(|r| r.user_id.as_str())
                .collect::<Vec<_>>(),
            ["u0"]
        );
        assert_eq!(
            p.expired
                .iter()
                .map(|r| r.user_id.as_str())
                .collect::<Vec<_>>(),
            ["u1"]
        );
        assert_eq!(p.restores, [("u2".into(), "user2".into())]);
    }

    #[test]
    fn a_signals_suspension_is_no_removal_yet_it_counts_and_waits_for_its_grace() {
        let mut l = local(3);
        for u in &mut l {
            // Suspended by a change feed two days ago.
            u.suspended_at = Some(t0() - Duration::days(2));
            u.held_by_signal = true;
        }
        let mut s = seen_all(&l);
        s.seen.remove("x0");
        s.seen.remove("x1");
        let mut pol = policy();
        pol.grace = Duration::hours(24);
        let p = plan(&l, &s, &pol, t0(), None);
        // Both gone upstream: removals of this run (suspended now, deleted after the grace),
        // not expired ones, however old the signal's suspension is.
        let removals: Vec<_> = p.removals.iter().map(|r| r.user_id.as_str()).collect();
        assert_eq!(removals, ["u0", "u1"]);
        assert!(p.expired.is_empty());
        // Still there and not disabled: the signal's suspension is lifted.
        assert_eq!(p.restores, [("u2".into(), "user2".into())]);
        // And they count against the threshold like any removal.
        pol.threshold = 1;
        assert!(plan(&l, &s, &pol, t0(), None).blocked.is_some());
    }

    #[test]
    fn a_signals_suspension_of_a_disabled_account_stays_without_remove_disabled() {
        let mut l = local(2);
        for u in &mut l {
            u.suspended_at = Some(t0() - Duration::hours(1));
        }
        l[0].held_by_signal = true;
        let mut s = seen_all(&l);
        for seen in s.seen.values_mut() {
            seen.disabled = true;
        }
        let mut keep = policy();
        keep.remove_disabled = false;
        let p = plan(&l, &s, &keep, t0(), None);
        // The other suspension (a grace, SCIM) is lifted as before; the signal's stays.
        assert_eq!(p.restores, [("u1".into(), "user1".into())]);
        assert!(p.removals.is_empty());
    }

    #[test]
    fn one_user_at_a_time_decides_like_the_whole_run() {
        // Each situation decided alone adds exactly what the whole-slice plan lists for it.
        let mut l = local(6);
        l[1].is_admin = true;
        l[3].suspended_at = Some(t0() - Duration::hours(1));
        l[4].suspended_at = Some(t0() - Duration::days(3));
        l[5].last_login = None;
        let mut s = seen_all(&l);
        s.seen.remove("x0");
        s.seen.remove("x4");
        s.seen.get_mut("x2").unwrap().username = "renamed".into();
        s.seen.get_mut("x5").unwrap().last_login = Some(t0());
        s.admins = Some(["x5".to_string()].into());
        let mut pol = policy();
        pol.grace = Duration::hours(24);
        let whole = plan(&l, &s, &pol, t0(), None);
        let mut streamed = Plan::default();
        for u in &l {
            let seen = s.seen.get(&u.external_id).map(Upstream::from);
            let admin = s.admins.as_ref().map(|a| a.contains(&u.external_id));
            decide_user(u, seen, admin, &pol, t0(), &mut streamed);
        }
        conclude(&mut streamed, l.len() as u64, s.read, &pol, None);
        assert_eq!(streamed, whole);
        assert_eq!(whole.matched, 4);
        assert_eq!(whole.removals.len(), 1);
        assert_eq!(whole.expired.len(), 1);
        assert_eq!(whole.renames.len(), 1);
        assert_eq!(whole.restores, [("u3".into(), "user3".into())]);
        assert_eq!(
            whole.admin_changes,
            [
                ("u1".into(), "user1".into(), false),
                ("u5".into(), "user5".into(), true)
            ]
        );
        assert_eq!(whole.last_logins, [("u5".into(), t0())]);
    }

    #[test]
    fn an_absent_user_alone_is_one_removal_with_its_reason_and_keys() {
        let l = local(1);
        let mut p = Plan::default();
        decide_user(&l[0], None, Some(true), &policy(), t0(), &mut p);
        assert_eq!(
            p.removals,
            [Removal {
                user_id: "u0".into(),
                username: "user0".into(),
                external_id: "x0".into(),
                reason: Reason::Absent,
                keys: 1,
            }]
        );
        // Admin standing is never changed for someone leaving.
        assert!(p.admin_changes.is_empty());
        assert_eq!(p.matched, 0);
        // A disabled one counts as matched and leaves as disabled.
        let mut p = Plan::default();
        let up = Upstream {
            username: "user0",
            disabled: true,
            last_login: None,
        };
        decide_user(&l[0], Some(up), None, &policy(), t0(), &mut p);
        assert_eq!((p.matched, p.removals[0].reason), (1, Reason::Disabled));
    }
}
