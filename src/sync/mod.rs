//! Directory reconciliation: read a directory completely, decide (`plan`), then apply in one
//! transaction — or stop as blocked, or only report (dry run). A failed or partial read
//! never removes anyone.

pub mod compact;
pub mod plan;

use crate::audit::{self, Actor, Event};
use crate::config::{LdapDirectoryConfig, PERCENT_THRESHOLD_MIN_USERS};
use crate::directory::ldap::{ControllersRead, LdapDirectory};
use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::ids::{DirectoryId, UserId};
use crate::revocation::{self, Revoked};
use crate::services::Services;
use crate::store::models::SyncRunRow;
pub use crate::store::run_status::RunStatus;
use crate::store::schema::{access_keys, sync_runs, users};
use crate::store::timestamp::Timestamp;
use crate::store::user_rows;
use crate::store::{self, DbConn};
use chrono::{DateTime, Duration, Utc};
use compact::{IdKey, IdSet, SeenSet};
use diesel::prelude::*;
use plan::{Local, Plan, Policy, Removal};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

/// The longest a whole read may take before the run fails.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);
/// A run still marked running this long after it started was abandoned (its process died):
/// longer than any run can take, so a live run is never taken for a dead one.
const STALE_AFTER: Duration = Duration::minutes(35);
/// Run records are kept this long.
pub const KEEP_RUNS_DAYS: i64 = 90;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Api,
    Cli,
    /// An admin in the web pages.
    Ui,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
            Trigger::Cli => "cli",
            Trigger::Ui => "ui",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub directory_id: DirectoryId,
    pub dry_run: bool,
    pub trigger: Trigger,
    pub actor: Actor,
    /// Execute the removals of this blocked run (approved by `actor`).
    pub approve_run: Option<i64>,
}

/// Who a run removed or would remove, stored with the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlanRecord {
    pub removals: Vec<Removal>,
    pub expired: Vec<Removal>,
}

fn ldap_directory<'a>(app: &'a Services, id: &DirectoryId) -> Result<&'a LdapDirectory> {
    match app.directory(id) {
        Some(Directory::Ldap(l)) => Ok(l),
        Some(_) => Err(Error::invalid(format!(
            "directory `{id}` is not an LDAP directory; only LDAP directories are reconciled"
        ))),
        None => Err(Error::not_found(format!("no directory with id `{id}`"))),
    }
}

fn policy(cfg: &LdapDirectoryConfig) -> Policy {
    Policy {
        remove_disabled: cfg.sync.remove_disabled,
        threshold: cfg.sync.deletion_threshold,
        threshold_percent: cfg.sync.deletion_threshold_percent,
        percent_min_users: PERCENT_THRESHOLD_MIN_USERS,
        // At most 10 years (checked with the configuration), so this cannot overflow.
        grace: Duration::hours(i64::try_from(cfg.sync.removal_grace_hours).unwrap_or(0)),
    }
}

/// Local users are read in chunks of this many rows, keyset-paginated on the unique index
/// (directory_id, external_id), so that neither SQLite nor PostgreSQL hands a million rows
/// over at once.
const CHUNK: i64 = 10_000;

/// The stable ids of the directory's local users, all from one snapshot of the database.
/// `taken` is told as soon as the snapshot exists, and the directory read begins only then:
/// only users in the snapshot are reconciled, and each of them existed before the read
/// began (someone created during the read is not judged on a read that began before).
fn load_local_ids(
    conn: &mut DbConn,
    dir: &DirectoryId,
    taken: tokio::sync::oneshot::Sender<()>,
) -> Result<Listing> {
    store::snapshot_transaction(conn, |conn| {
        let mut taken = Some(taken);
        let mut ids = IdSet::default();
        let mut marks = Vec::new();
        let mut after = String::new();
        loop {
            let rows: Vec<String> = users::table
                .filter(users::directory_id.eq(dir))
                .filter(users::external_id.ge(&after))
                .order(users::external_id.asc())
                .limit(CHUNK)
                .select(users::external_id)
                .load(conn)?;
            if let Some(t) = taken.take() {
                // The first statement took the snapshot; the rest read the same one.
                let _ = t.send(());
            }
            let full = rows.len() as i64 == CHUNK;
            let Some(last) = rows.last().cloned() else {
                break;
            };
            // `>=` so that an empty id is read too; the previous chunk's last row comes again.
            let again = usize::from(!ids.is_empty() && rows.first() == Some(&after));
            after = last;
            for external_id in rows.into_iter().skip(again) {
                ids.push(external_id);
            }
            if !full {
                break;
            }
            marks.push(after.clone());
        }
        ids.seal();
        Ok(Listing { ids, marks })
    })
}

/// The local users as listed: their stable ids, and the last id of every full chunk in the
/// database's own order, where the decision may split its scan.
struct Listing {
    ids: IdSet,
    marks: Vec<String>,
}

/// Ranges of stable ids, in the database's order, that together hold every user once:
/// `parts` of about equal size cut at the listing's marks, or one range when it is small.
/// Each is (from, inclusive; to, exclusive); None is open.
fn ranges(marks: &[String], parts: usize) -> Vec<(Option<String>, Option<String>)> {
    let parts = parts.clamp(1, marks.len() + 1);
    let mut cuts: Vec<&String> = (1..parts)
        .map(|k| &marks[k * marks.len() / parts])
        .collect();
    cuts.dedup();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut from = None;
    for cut in cuts {
        out.push((from, Some(cut.clone())));
        from = Some(cut.clone());
    }
    out.push((from, None));
    out
}

/// How many access keys each of these users holds (queried in batches of bounded size).
fn key_counts(conn: &mut DbConn, users: &[&UserId]) -> Result<HashMap<UserId, i64>> {
    let mut keys: HashMap<UserId, i64> = HashMap::new();
    for batch in users.chunks(1000) {
        let ids: Vec<&str> = batch.iter().map(|u| u.as_str()).collect();
        let owners: Vec<UserId> = access_keys::table
            .filter(access_keys::user_id.eq_any(ids))
            .select(access_keys::user_id)
            .load(conn)?;
        for o in owners {
            *keys.entry(o).or_default() += 1;
        }
    }
    Ok(keys)
}

/// What the read kept, for deciding.
struct Upstream {
    read: u64,
    seen: SeenSet,
    admins: Option<HashSet<String>>,
}

/// Streams the local users of one range in chunks and decides each one as it comes
/// ([`plan::decide_user`]), keeping only the actions. Only users whose stable id was listed
/// (local when the run started) count. Returns the part of the plan and how many it decided.
#[allow(clippy::too_many_arguments)]
fn decide_range(
    conn: &mut DbConn,
    dir: &DirectoryId,
    (from, to): (Option<String>, Option<String>),
    ids: &IdSet,
    up: &Upstream,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<(Plan, u64)> {
    // Only the columns the decision needs.
    type Row = (
        UserId,
        String,
        String,
        bool,
        Option<Timestamp>,
        Option<Timestamp>,
        Option<String>,
    );
    let mut p = Plan::default();
    let mut decided = 0u64;
    let mut after = from.unwrap_or_default();
    let mut first = true;
    loop {
        let mut query = users::table
            .filter(users::directory_id.eq(dir))
            .filter(users::external_id.ge(&after))
            .order(users::external_id.asc())
            .limit(CHUNK)
            .select((
                users::id,
                users::external_id,
                users::username,
                users::is_admin,
                users::last_login_at,
                users::suspended_at,
                users::suspended_by_signal,
            ))
            .into_boxed();
        if let Some(to) = &to {
            query = query.filter(users::external_id.lt(to));
        }
        let rows: Vec<Row> = query.load(conn)?;
        let full = rows.len() as i64 == CHUNK;
        let Some(last) = rows.last().map(|r| r.1.clone()) else {
            break;
        };
        // `>=` so that an empty id is read too; the previous chunk's last row comes again.
        let again = usize::from(!first && rows.first().is_some_and(|r| r.1 == after));
        (after, first) = (last, false);
        // Records that gave up their name to a new account (`name#id`, disabled) keep their
        // own stable id and are reconciled like everyone else.
        for (id, external_id, username, is_admin, last_login, suspended_at, by_signal) in
            rows.into_iter().skip(again)
        {
            // The id's compact form once, for both look-ups.
            let key = IdKey::of(&external_id);
            if !ids.contains_key(key) {
                continue;
            }
            let seen = up.seen.get_key(key);
            let l = Local {
                // Counted afterwards, for the people leaving only.
                keys: 0,
                last_login: last_login.map(Timestamp::at),
                held_by_signal: suspended_at.is_some() && by_signal.is_some(),
                suspended_at: suspended_at.map(Timestamp::at),
                id,
                external_id,
                username,
                is_admin,
            };
            let admin = up.admins.as_ref().map(|a| a.contains(&l.external_id));
            plan::decide_user(&l, seen, admin, policy, now, &mut p);
            decided += 1;
        }
        if !full {
            break;
        }
    }
    Ok((p, decided))
}

/// At most this many ranges of local users are decided at once, each on a pooled connection
/// of its own.
const MAX_DECIDING: usize = 4;

/// Decides every listed local user: in ranges side by side when there are many (the read
/// is over, so the directory server no longer needs the CPU), each range streamed in chunks;
/// then counts the keys of the people leaving and checks the thresholds.
async fn decide_locals(
    app: &Services,
    dir: &DirectoryId,
    listing: Listing,
    up: Upstream,
    policy: &Policy,
    now: DateTime<Utc>,
    approved: Option<&HashSet<UserId>>,
) -> Result<Plan> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // One connection stays free for whatever else the process does meanwhile.
    let pool = usize::try_from(app.config.database.pool_size).unwrap_or(1);
    let parts = cores.min(MAX_DECIDING).min(pool.saturating_sub(1)).max(1);
    let read = up.read;
    let (ids, up) = (Arc::new(listing.ids), Arc::new(up));
    let scans = ranges(&listing.marks, parts).into_iter().map(|range| {
        let (dir, ids, up, policy) = (dir.clone(), ids.clone(), up.clone(), policy.clone());
        app.store
            .read(move |conn| decide_range(conn, &dir, range, &ids, &up, &policy, now))
    });
    let mut p = Plan::default();
    let mut decided = 0;
    // In range order, so the lists keep the database's order of users.
    for part in futures_util::future::try_join_all(scans).await? {
        p.absorb(part.0);
        decided += part.1;
    }
    let leaving: Vec<UserId> = p
        .removals
        .iter()
        .chain(&p.expired)
        .map(|r| r.user_id.clone())
        .collect();
    let keys = app
        .store
        .read(move |conn| key_counts(conn, &leaving.iter().collect::<Vec<_>>()))
        .await?;
    for r in p.removals.iter_mut().chain(p.expired.iter_mut()) {
        r.keys = keys.get(&r.user_id).copied().unwrap_or(0);
    }
    plan::conclude(&mut p, decided, read, policy, approved);
    Ok(p)
}

fn find_run(conn: &mut DbConn, id: i64) -> Result<SyncRunRow> {
    sync_runs::table
        .find(id)
        .select(SyncRunRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| Error::not_found(format!("sync run {id} not found")))
}

/// Registers a running run (at most one per directory, across replicas) and returns its id.
fn start(
    conn: &mut DbConn,
    app_replica: &str,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<(i64, Option<HashSet<UserId>>)> {
    // A run left "running" by a process that died must not block the directory forever.
    diesel::update(
        sync_runs::table
            .filter(sync_runs::directory_id.eq(&req.directory_id))
            .filter(sync_runs::status.eq(RunStatus::Running))
            .filter(sync_runs::started_at.lt(Timestamp::from(now - STALE_AFTER))),
    )
    .set((
        sync_runs::status.eq(RunStatus::Failed),
        sync_runs::error.eq(Some("abandoned: the process running it stopped")),
        sync_runs::finished_at.eq(Some(Timestamp::from(now))),
    ))
    .execute(conn)?;

    let approved = match req.approve_run {
        None => None,
        Some(run_id) => {
            let blocked = find_run(conn, run_id)?;
            if !blocked.directory_id.eq_ignore_ascii_case(&req.directory_id) {
                return Err(Error::invalid(format!(
                    "run {run_id} belongs to directory `{}`",
                    blocked.directory_id
                )));
            }
            if blocked.status != RunStatus::Blocked {
                return Err(Error::conflict(format!(
                    "run {run_id} is `{}`, not blocked: there is nothing to approve",
                    blocked.status
                )));
            }
            if blocked.approved_by.is_some() {
                return Err(Error::conflict(format!(
                    "run {run_id} was already approved"
                )));
            }
            if blocked.dry_run {
                return Err(Error::conflict(format!(
                    "run {run_id} was a dry run; start a real run and approve that one if it is blocked"
                )));
            }
            if req.dry_run {
                return Err(Error::invalid("an approval cannot be a dry run"));
            }
            // The approval is recorded only when the approving run has removed the users
            // (see `run`): a failed or again-blocked attempt leaves it open.
            Some(
                plan_of(&blocked)
                    .removals
                    .into_iter()
                    .map(|r| r.user_id)
                    .collect(),
            )
        }
    };

    let inserted = diesel::insert_into(sync_runs::table)
        .values((
            sync_runs::directory_id.eq(&req.directory_id),
            sync_runs::started_at.eq(Timestamp::from(now)),
            sync_runs::dry_run.eq(req.dry_run),
            sync_runs::run_trigger.eq(if req.approve_run.is_some() {
                "approval"
            } else {
                req.trigger.as_str()
            }),
            sync_runs::actor.eq(&req.actor.name),
            sync_runs::replica.eq(app_replica),
            sync_runs::status.eq(RunStatus::Running),
            sync_runs::approves_run_id.eq(req.approve_run),
        ))
        .execute(conn);
    match inserted {
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => {
            return Err(Error::conflict(format!(
                "a sync of directory `{}` is already running",
                req.directory_id
            )))
        }
        other => {
            other?;
        }
    }
    let id: i64 = sync_runs::table
        .filter(sync_runs::directory_id.eq(&req.directory_id))
        .filter(sync_runs::status.eq(RunStatus::Running))
        .select(sync_runs::id)
        .first(conn)?;
    Ok((id, approved))
}

/// The counts and outcome a run ends with.
#[derive(Debug)]
struct Outcome {
    status: RunStatus,
    read: u64,
    matched: u64,
    renamed: u64,
    removed: u64,
    suspended: u64,
    restored: u64,
    admin_changes: u64,
    last_logins: u64,
    error: Option<String>,
    plan: Option<PlanRecord>,
    /// Domain controllers whose `lastLogon` could not be read ("url: reason").
    unread_controllers: Vec<String>,
}

impl Outcome {
    /// A run that changed nothing because reading or applying failed.
    fn failed(error: String) -> Outcome {
        Outcome {
            status: RunStatus::Failed,
            read: 0,
            matched: 0,
            renamed: 0,
            removed: 0,
            suspended: 0,
            restored: 0,
            admin_changes: 0,
            last_logins: 0,
            error: Some(error),
            plan: None,
            unread_controllers: Vec::new(),
        }
    }
}

fn finish(conn: &mut DbConn, id: i64, o: &Outcome, now: DateTime<Utc>) -> Result<()> {
    // Old run records go (the newest runs are what operators read).
    diesel::delete(
        sync_runs::table
            .filter(sync_runs::started_at.lt(Timestamp::from(now - Duration::days(KEEP_RUNS_DAYS))))
            .filter(sync_runs::status.ne(RunStatus::Running)),
    )
    .execute(conn)?;
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    diesel::update(sync_runs::table.find(id))
        .set((
            sync_runs::status.eq(o.status),
            sync_runs::finished_at.eq(Some(Timestamp::from(now))),
            sync_runs::read_count.eq(n(o.read)),
            sync_runs::matched.eq(n(o.matched)),
            sync_runs::renamed.eq(n(o.renamed)),
            sync_runs::removed.eq(n(o.removed)),
            sync_runs::suspended.eq(n(o.suspended)),
            sync_runs::restored.eq(n(o.restored)),
            sync_runs::admin_changes.eq(n(o.admin_changes)),
            sync_runs::last_logins.eq(n(o.last_logins)),
            sync_runs::error.eq(&o.error),
            sync_runs::plan.eq(o.plan.as_ref().and_then(|p| serde_json::to_string(p).ok())),
            sync_runs::unread_controllers.eq((!o.unread_controllers.is_empty())
                .then(|| serde_json::to_string(&o.unread_controllers).ok())
                .flatten()),
        ))
        .execute(conn)?;
    Ok(())
}

/// What the directory read gave before it is narrowed to the local users.
struct Read {
    entries: u64,
    seen: SeenSet,
    admins: Option<HashSet<String>>,
}

/// Reads the directory completely while the local users are still being listed. Once the
/// list is there (`listed`), only entries of local users are kept, compactly, so memory
/// follows the local user count rather than the directory's size; the entries that came
/// before it are narrowed in [`narrow`].
async fn read_directory(ldap: &LdapDirectory, listed: &OnceLock<Listing>) -> Result<Read> {
    let cfg = ldap.config();
    // Admin standing from the same source a login uses: nested membership on AD, the group
    // entry's member list elsewhere (matched by DN while reading).
    let (mut admins, member_dns) = match (&cfg.admin_group, cfg.active_directory) {
        (None, _) => (None, None),
        (Some(_), true) => (Some(ldap.admin_external_ids().await?), None),
        (Some(_), false) => (Some(HashSet::new()), ldap.admin_member_dns().await?),
    };
    let mut seen = SeenSet::default();
    let stats = ldap
        .read_users(|u| {
            if let (Some(dns), Some(a)) = (&member_dns, admins.as_mut()) {
                if dns.contains(&u.dn.to_lowercase()) {
                    a.insert(u.external_id.clone());
                }
            }
            if listed.get().is_none_or(|l| l.ids.contains(&u.external_id)) {
                seen.push(u.external_id, &u.username, u.disabled, u.last_login);
            }
        })
        .await?;
    Ok(Read {
        entries: stats.entries,
        seen,
        admins,
    })
}

/// Keeps the read entries of local users only and seals them for look-ups. Then, with
/// domain controllers configured, reads each one's `lastLogon` and keeps the newest: a
/// controller that cannot be read is reported, its values are missing, and the run goes on
/// (a last login only ever moves forward, so a missing value can never remove anyone).
async fn narrow(
    ldap: &LdapDirectory,
    read: Read,
    local_ids: &IdSet,
) -> Result<(Upstream, ControllersRead)> {
    let Read {
        entries,
        mut seen,
        admins,
    } = read;
    seen.retain(|id| local_ids.contains_key(id));
    if !seen.seal() {
        return Err(Error::Internal(
            "the directory's usernames exceed 4 GiB; nobody was removed".into(),
        ));
    }
    let controllers = ldap
        .last_logons_from_controllers(|id, at| seen.newer_login(id, at))
        .await;
    Ok((
        Upstream {
            read: entries,
            seen,
            admins,
        },
        controllers,
    ))
}

/// A decided run: the plan, how many entries the read had, and the domain controllers read.
pub struct Decided {
    pub plan: Plan,
    pub read: u64,
    pub controllers: ControllersRead,
}

/// Reads and decides without recording a run or changing anything: the local users' stable
/// ids, a complete read keeping their entries, then every local user decided as the rows
/// stream in. `approved` is the set of user ids an approval covers.
async fn reconcile(
    app: &Services,
    ldap: &LdapDirectory,
    approved: Option<HashSet<UserId>>,
    run_id: Option<i64>,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Decided> {
    let dir = ldap.config().id.clone();
    let policy = policy(ldap.config());
    progress(&format!(
        "{}reading directory `{dir}` ({}) while listing its local users",
        run_id.map(|id| format!("run {id}: ")).unwrap_or_default(),
        ldap.config().url,
    ));
    let started = std::time::Instant::now();
    // The listing and the read overlap: the read begins once the listing's snapshot exists.
    let listed = Arc::new(OnceLock::new());
    let (taken, snapshot) = tokio::sync::oneshot::channel();
    let (d, cell) = (dir.clone(), listed.clone());
    let listing = app.store.read(move |conn| {
        let listing = load_local_ids(conn, &d, taken)?;
        let count = listing.ids.len();
        let _ = cell.set(listing);
        Ok((count, started.elapsed()))
    });
    let reading = async {
        if snapshot.await.is_err() {
            // The listing failed before its first statement: its error ends the run.
            std::future::pending::<()>().await;
        }
        read_directory(ldap, &listed).await
    };
    let whole = async {
        let ((local, listed_in), read) = tokio::try_join!(listing, reading)?;
        progress(&format!(
            "{local} local user(s) listed in {:.1} s",
            listed_in.as_secs_f64()
        ));
        let listing = listed
            .get()
            .ok_or_else(|| Error::Internal("the local users were not listed".into()))?;
        let (up, controllers) = narrow(ldap, read, &listing.ids).await?;
        Ok::<_, Error>((up, controllers))
    };
    let (up, controllers) = match tokio::time::timeout(READ_TIMEOUT, whole).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Error::unavailable(format!(
                "reading the directory took longer than {} s",
                READ_TIMEOUT.as_secs()
            )))
        }
    };
    let listing = Arc::into_inner(listed)
        .and_then(OnceLock::into_inner)
        .ok_or_else(|| Error::Internal("the local users were not listed".into()))?;
    progress(&format!(
        "read {} entr{} in {:.1} s",
        up.read,
        if up.read == 1 { "y" } else { "ies" },
        started.elapsed().as_secs_f64()
    ));
    let now = app.clock.now();
    let read = up.read;
    let started = std::time::Instant::now();
    let local = listing.ids.len();
    let plan = decide_locals(app, &dir, listing, up, &policy, now, approved.as_ref()).await?;
    progress(&format!(
        "decided {local} local user(s) in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(Decided {
        plan,
        read,
        controllers,
    })
}

/// What a run of this directory would decide now, without recording a run or changing
/// anything (for tests and tools that compare decisions). `approved` as for an approval.
pub async fn preview(
    app: &Services,
    directory_id: &DirectoryId,
    approved: Option<HashSet<UserId>>,
) -> Result<Decided> {
    let ldap = ldap_directory(app, directory_id)?;
    reconcile(app, ldap, approved, None, &|_| {}).await
}

/// Runs one reconciliation of a directory and returns the recorded run.
pub async fn run(
    app: &Services,
    req: Request,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<SyncRunRow> {
    let ldap = ldap_directory(app, &req.directory_id)?;
    let dir = ldap.config().id.clone();
    let req = Request {
        directory_id: dir.clone(),
        ..req
    };
    let now = app.clock.now();
    let replica = app.replica.clone();
    let r = req.clone();
    let (run_id, approved) = app
        .store
        .write(move |conn| start(conn, &replica, &r, now))
        .await?;
    let outcome = match reconcile(app, ldap, approved, Some(run_id), progress).await {
        Err(e) => Outcome::failed(format!("{e}; nobody was removed")),
        Ok(Decided {
            plan: p,
            read,
            controllers,
        }) => {
            if !controllers.reads.is_empty() || controllers.discovery_error.is_some() {
                let up: Vec<(String, bool)> = controllers
                    .reads
                    .iter()
                    .map(|r| (r.controller.clone(), r.outcome.is_ok()))
                    .collect();
                app.metrics.controllers_read(dir.as_str(), &up);
                progress(&format!(
                    "lastLogon read from {} of {} domain controller(s)",
                    up.iter().filter(|(_, ok)| *ok).count(),
                    up.len()
                ));
            }
            let unread = controllers.unread();
            let now = app.clock.now();
            // Whatever happens here, the run must end recorded, not stay "running".
            let mut o = decide(app, &req, run_id, read, p, now)
                .await
                .unwrap_or_else(|e| {
                    Outcome::failed(format!(
                        "applying the changes failed: {e}; nothing was changed"
                    ))
                });
            o.unread_controllers = unread;
            o
        }
    };
    let finished = app.clock.now();
    let (o_status, o_error) = (outcome.status, outcome.error.clone());
    let actor = req.actor.clone();
    let actor_approves = req.approve_run;
    let d = dir.clone();
    let row = app
        .store
        .write(move |conn| {
            finish(conn, run_id, &outcome, finished)?;
            if let (Some(approved), RunStatus::Ok) = (actor_approves, outcome.status) {
                diesel::update(sync_runs::table.find(approved))
                    .set((
                        sync_runs::approved_by.eq(&actor.name),
                        sync_runs::approved_at.eq(Some(Timestamp::from(finished))),
                    ))
                    .execute(conn)?;
                audit::record(
                    conn,
                    finished,
                    &Event::new("sync.approve", &actor)
                        .target("directory", &d, d.as_str())
                        .detail(format!(
                            "approved blocked run {approved}; run {run_id} applied it"
                        )),
                )?;
            }
            if matches!(outcome.status, RunStatus::Failed | RunStatus::Blocked) {
                audit::record(
                    conn,
                    finished,
                    &Event::new("sync.run", &actor)
                        .failed()
                        .target("directory", &d, d.as_str())
                        .detail(format!(
                            "run {run_id} {}: {}",
                            outcome.status,
                            outcome.error.as_deref().unwrap_or("")
                        )),
                )?;
            }
            find_run(conn, run_id)
        })
        .await?;
    // Blocked and dry runs count who they would remove; only done runs removed anyone.
    let removed = if o_status == RunStatus::Ok {
        row.removed as u64
    } else {
        0
    };
    app.metrics.sync_finished(
        dir.as_str(),
        o_status.as_str(),
        removed,
        (finished - now).num_milliseconds(),
    );
    match o_status {
        RunStatus::Failed => {
            tracing::warn!(directory = %dir, run = run_id, error = o_error.as_deref().unwrap_or(""), "directory sync failed; nobody was removed")
        }
        RunStatus::Blocked => {
            tracing::warn!(directory = %dir, run = run_id, reason = o_error.as_deref().unwrap_or(""), "directory sync blocked; nobody was removed until an admin approves")
        }
        _ => {
            tracing::info!(directory = %dir, run = run_id, status = o_status.as_str(), read = row.read_count, removed = row.removed, suspended = row.suspended, renamed = row.renamed, "directory sync finished")
        }
    }
    Ok(row)
}

/// Runs in a task of its own, so a caller that goes away (an HTTP client giving up, a
/// scheduler stopped) does not cut a run off halfway and leave it marked running.
pub async fn run_detached(app: std::sync::Arc<Services>, req: Request) -> Result<SyncRunRow> {
    tokio::spawn(async move { run(&app, req, &|_| {}).await })
        .await
        .map_err(|e| Error::Internal(format!("sync task failed: {e}")))?
}

/// Blocked, dry run, or apply.
async fn decide(
    app: &Services,
    req: &Request,
    run_id: i64,
    read: u64,
    p: Plan,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let record = PlanRecord {
        removals: p.removals.clone(),
        expired: p.expired.clone(),
    };
    let grace = app
        .directory(&req.directory_id)
        .and_then(|d| match d {
            Directory::Ldap(l) => Some(l.config().sync.removal_grace_hours > 0),
            _ => None,
        })
        .unwrap_or(false);
    let (deleting, suspending) = if grace {
        (p.expired.len(), p.removals.len())
    } else {
        (p.removals.len() + p.expired.len(), 0)
    };
    let mut o = Outcome {
        status: RunStatus::Ok,
        read,
        matched: p.matched,
        renamed: p.renames.len() as u64,
        removed: deleting as u64,
        suspended: suspending as u64,
        restored: p.restores.len() as u64,
        admin_changes: p.admin_changes.len() as u64,
        last_logins: p.last_logins.len() as u64,
        error: None,
        plan: Some(record),
        unread_controllers: Vec::new(),
    };
    if let Some(reason) = p.blocked.clone() {
        o.status = RunStatus::Blocked;
        o.error = Some(format!(
            "{reason}; nobody was removed. Approve run {run_id} or raise the threshold"
        ));
        return Ok(o);
    }
    if req.dry_run {
        o.status = RunStatus::DryRun;
        return Ok(o);
    }
    let affected = apply(app, req, run_id, p, grace, now).await?;
    for id in affected {
        revocation::changed(app, Revoked::User(id));
    }
    Ok(o)
}

/// Applies a plan in one transaction; returns the ids of users whose standing changed.
async fn apply(
    app: &Services,
    req: &Request,
    run_id: i64,
    p: Plan,
    grace: bool,
    now: DateTime<Utc>,
) -> Result<Vec<UserId>> {
    let actor = req.actor.clone();
    let dir = req.directory_id.clone();
    app.store
        .write(move |conn| {
            let mut affected = Vec::new();
            let (delete, suspend): (Vec<Removal>, Vec<Removal>) = if grace {
                (p.expired, p.removals)
            } else {
                (p.removals.into_iter().chain(p.expired).collect(), Vec::new())
            };
            for r in &delete {
                let why = format!("sync run {run_id}: {}", reason_text(r.reason));
                crate::users::remove_in(conn, &r.user_id, "user.remove", &actor, now, &why)?;
                affected.push(r.user_id.clone());
            }
            for r in &suspend {
                // A change signal's suspension becomes this run's, with the grace from now.
                diesel::update(users::table.find(&r.user_id))
                    .set((
                        users::suspended_at.eq(Some(Timestamp::from(now))),
                        users::suspended_by_signal.eq(None::<String>),
                    ))
                    .execute(conn)?;
                audit::record(
                    conn,
                    now,
                    &Event::new("user.suspend", &actor)
                        .target("user", &r.user_id, &r.username)
                        .detail(format!(
                            "directory {dir} sync run {run_id}: {}; stable id {}; {} access key(s) refused until the grace ends or the account returns",
                            reason_text(r.reason), r.external_id, r.keys
                        )),
                )?;
                affected.push(r.user_id.clone());
            }
            for (id, name) in &p.restores {
                diesel::update(users::table.find(id))
                    .set((
                        users::suspended_at.eq(None::<Timestamp>),
                        users::suspended_by_signal.eq(None::<String>),
                    ))
                    .execute(conn)?;
                audit::record(
                    conn,
                    now,
                    &Event::new("user.restore", &actor)
                        .target("user", id, name)
                        .detail(format!("directory {dir} sync run {run_id}: back in the directory")),
                )?;
                affected.push(id.clone());
            }
            // A name someone is renamed to may still be held by a record outside this run's
            // renames (a person in their grace period, an old superseded record): that
            // record gives the name up, as at login.
            let renamed: HashSet<&str> = p.renames.iter().map(|(id, _, _)| id.as_str()).collect();
            for (_, _, to) in &p.renames {
                let holder: Option<(UserId, String)> =
                    user_rows::by_username(conn, &dir, to)?.map(|h| (h.id, h.username));
                if let Some((hid, hname)) =
                    holder.filter(|(hid, _)| !renamed.contains(hid.as_str()))
                {
                    let moved = format!("{hname}#{}", &hid.as_str()[..8.min(hid.as_str().len())]);
                    diesel::update(users::table.find(&hid))
                        .set((users::username.eq(&moved), users::is_enabled.eq(false)))
                        .execute(conn)?;
                    audit::record(
                        conn,
                        now,
                        &Event::new("user.superseded", &actor)
                            .target("user", &hid, &moved)
                            .detail(format!(
                                "directory {dir} sync run {run_id}: another account is now named `{to}`"
                            )),
                    )?;
                    affected.push(hid);
                }
            }
            // Renames in two steps, so that swapped or chained names never collide.
            for (id, _, _) in &p.renames {
                diesel::update(users::table.find(id))
                    .set(users::username.eq(format!("~renaming~{id}")))
                    .execute(conn)?;
            }
            for (id, from, to) in &p.renames {
                diesel::update(users::table.find(id))
                    .set(users::username.eq(to))
                    .execute(conn)?;
                audit::record(
                    conn,
                    now,
                    &Event::new("user.rename", &actor)
                        .target("user", id, to)
                        .detail(format!("directory {dir} sync run {run_id}: `{from}` -> `{to}`")),
                )?;
            }
            for (id, name, admin) in &p.admin_changes {
                diesel::update(users::table.find(id))
                    .set(users::is_admin.eq(admin))
                    .execute(conn)?;
                audit::record(
                    conn,
                    now,
                    &Event::new("user.admin", &actor).target("user", id, name).detail(format!(
                        "directory {dir} sync run {run_id}: admin standing {}",
                        if *admin { "granted" } else { "removed" }
                    )),
                )?;
                affected.push(id.clone());
            }
            for (id, at) in &p.last_logins {
                // Forward only, also against a login recorded since the read.
                diesel::update(
                    users::table
                        .find(id)
                        .filter(users::last_login_at.is_null().or(users::last_login_at.lt(Timestamp::from(*at)))),
                )
                .set(users::last_login_at.eq(Some(Timestamp::from(*at))))
                .execute(conn)?;
            }
            // Later logins only move windows forward, which memory never needs to hear
            // (it remembers only "yes"); renames change what `/api/auth/verify` reports.
            affected.extend(p.renames.iter().map(|(id, _, _)| id.clone()));
            for id in &affected {
                revocation::announce(conn, &Revoked::User(id.clone()))?;
            }
            Ok(affected)
        })
        .await
}

fn reason_text(r: plan::Reason) -> &'static str {
    match r {
        plan::Reason::Absent => "no longer in the directory",
        plan::Reason::Disabled => "disabled in the directory",
    }
}

/// The newest runs of a directory, with the total count.
pub async fn runs(
    app: &Services,
    dir: &DirectoryId,
    offset: i64,
    limit: i64,
) -> Result<(Vec<SyncRunRow>, i64)> {
    let dir = dir.clone();
    app.store
        .read(move |conn| {
            let total: i64 = sync_runs::table
                .filter(sync_runs::directory_id.eq(&dir))
                .count()
                .get_result(conn)?;
            let rows = sync_runs::table
                .filter(sync_runs::directory_id.eq(&dir))
                .order(sync_runs::id.desc())
                .offset(offset)
                .limit(limit)
                .select(SyncRunRow::as_select())
                .load(conn)?;
            Ok((rows, total))
        })
        .await
}

/// One run of a directory.
pub async fn run_of(app: &Services, dir: &DirectoryId, run_id: i64) -> Result<SyncRunRow> {
    let dir = dir.clone();
    app.store
        .read(move |conn| {
            sync_runs::table
                .filter(sync_runs::directory_id.eq(&dir))
                .filter(sync_runs::id.eq(run_id))
                .select(SyncRunRow::as_select())
                .first(conn)
                .optional()?
                .ok_or_else(|| Error::not_found(format!("no run {run_id} of directory `{dir}`")))
        })
        .await
}

/// When a directory's schedule fires next after `now`.
pub fn next_run(cfg: &LdapDirectoryConfig, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cfg.sync.schedule.as_ref()?.after(&now).next()
}

/// The stored plan of a run.
/// The domain controllers a run could not read `lastLogon` from ("url: reason").
pub fn unread_controllers_of(row: &SyncRunRow) -> Vec<String> {
    row.unread_controllers
        .as_deref()
        .and_then(|u| serde_json::from_str(u).ok())
        .unwrap_or_default()
}

pub fn plan_of(row: &SyncRunRow) -> PlanRecord {
    row.plan
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("m{i:03}")).collect()
    }

    #[test]
    fn ranges_hold_every_id_once_in_order() {
        let open = || (None, None);
        assert_eq!(ranges(&[], 4), [open()], "few users: one scan");
        assert_eq!(ranges(&marks(10), 1), [open()]);
        let two = ranges(&marks(10), 2);
        assert_eq!(
            two,
            [(None, Some("m006".into())), (Some("m006".into()), None)]
        );
        for parts in 1..8 {
            let r = ranges(&marks(5), parts);
            assert_eq!(r.len(), parts.min(6), "{parts} parts");
            assert_eq!(r.first().unwrap().0, None);
            assert_eq!(r.last().unwrap().1, None);
            // Each range starts where the previous ended: no id is in two, none in none.
            for w in r.windows(2) {
                assert!(w[0].1.is_some());
                assert_eq!(w[0].1, w[1].0);
            }
        }
    }
}
