//! Every key at once, for admins: the credential report (one CSV line per key, read in
//! bounded chunks) and the overview's summary of which keys work, lapse soon or stopped.

use crate::caller::Principal;
use crate::error::Result;
use crate::ids::{KeyRowId, UserId};
use crate::keys::{key_view, KeyView};
use crate::options::RuntimeOptions;
use crate::services::Services;
use crate::store::models::{AccessKeyRow, UserRow};
use crate::store::schema::{access_keys, users};
use crate::store::timestamp::Timestamp;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use std::collections::BTreeMap;

/// Keys read per database round trip: what is held in memory at once.
pub const CHUNK: i64 = 500;

/// People listed as the ones whose keys lapse soonest.
pub const SOONEST: usize = 10;

/// The report's header row, in column order.
pub const COLUMNS: [&str; 15] = [
    "key_id",
    "label",
    "owner_username",
    "owner_id",
    "directory",
    "scope",
    "allowed_networks",
    "created",
    "last_used",
    "last_address",
    "expiry",
    "valid_until",
    "owner_last_login",
    "owner_suspended",
    "owner_disabled",
];

/// One key with what the report says of its owner.
#[derive(Clone)]
pub struct Line {
    pub view: KeyView,
    pub directory: String,
    pub owner_last_login: Option<DateTime<Utc>>,
    pub owner_suspended: bool,
    pub owner_disabled: bool,
    pub owner_is_service_account: bool,
}

/// A key and its owner as one line, under `rules`.
pub fn line(row: AccessKeyRow, owner: &UserRow, rules: crate::validity::KeyRules) -> Line {
    Line {
        directory: owner.directory_id.to_string(),
        owner_last_login: owner.last_login(),
        owner_suspended: owner.suspended_at.is_some(),
        owner_disabled: !owner.is_enabled,
        owner_is_service_account: owner.is_service_account,
        view: key_view(row, owner, rules),
    }
}

/// A text a spreadsheet would not take for a formula: one starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return gets a leading `'` (labels are user text, and the report
/// is opened in Excel; OWASP "CSV injection").
pub fn neutralise(field: &str) -> String {
    match field.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{field}"),
        _ => field.to_string(),
    }
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// The report's fields of `l`, in [`COLUMNS`] order, every one neutralised.
pub fn record(l: &Line) -> [String; 15] {
    let row = &l.view.row;
    [
        row.key_id.clone(),
        row.name.clone(),
        l.view.owner_username.clone(),
        row.user_id.to_string(),
        l.directory.clone(),
        row.scope.as_str().to_string(),
        row.allowed_networks
            .as_ref()
            .map(|n| n.to_strings().join(" "))
            .unwrap_or_default(),
        time(Some(row.created_at.at())),
        time(row.last_used_at.map(Timestamp::at)),
        l.view
            .recent_uses
            .first()
            .map(|u| u.address.clone())
            .unwrap_or_default(),
        time(row.expires_at.map(Timestamp::at)),
        time(l.view.valid_until),
        time(l.owner_last_login),
        yes_no(l.owner_suspended),
        yes_no(l.owner_disabled),
    ]
    .map(|f| neutralise(&f))
}

/// The keys after `after` (by row id), at most [`CHUNK`], with their owners and last
/// addresses, in one read; admins only.
pub async fn chunk(
    app: &Services,
    caller: &Principal,
    after: Option<KeyRowId>,
) -> Result<Vec<Line>> {
    caller.require_admin()?;
    let config = app.config.clone();
    app.store
        .read(move |conn| {
            let mut q = access_keys::table.inner_join(users::table).into_boxed();
            if let Some(after) = &after {
                q = q.filter(access_keys::id.gt(after.clone()));
            }
            let rows: Vec<(AccessKeyRow, UserRow)> = q
                .order(access_keys::id.asc())
                .limit(CHUNK)
                .select((AccessKeyRow::as_select(), UserRow::as_select()))
                .load(conn)?;
            let rules = RuntimeOptions::load(conn, &config)?.key_rules();
            let ids: Vec<KeyRowId> = rows.iter().map(|(k, _)| k.id.clone()).collect();
            let mut uses = crate::last_used::recent_uses(conn, &ids)?;
            Ok(rows
                .into_iter()
                .map(|(row, owner)| {
                    let recent = uses.remove(&row.id).unwrap_or_default();
                    let mut l = line(row, &owner, rules);
                    l.view.recent_uses = recent;
                    l
                })
                .collect())
        })
        .await
}

/// Where a key stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Works, and beyond the warning days.
    Working,
    /// Works, but stops within the warning days.
    Lapsing,
    /// Does not work.
    Stopped,
}

/// The state of a key that works until `valid_until`, at `now`, warned `warning_days` ahead.
pub fn state(valid_until: Option<DateTime<Utc>>, now: DateTime<Utc>, warning_days: i64) -> State {
    match valid_until {
        Some(t) if t <= now => State::Stopped,
        None => State::Stopped,
        Some(t) if t <= now + chrono::Duration::days(warning_days.max(0)) => State::Lapsing,
        Some(_) => State::Working,
    }
}

/// An owner whose keys lapse soon: the first of their working keys to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lapse {
    pub owner_id: UserId,
    pub username: String,
    pub is_service_account: bool,
    pub at: DateTime<Utc>,
    /// Their working keys seen up to the one that lapses first.
    pub keys: i64,
}

/// Counts of keys by state, and the owners whose keys lapse soonest: added to one key at a
/// time, in memory bounded by [`SOONEST`] whatever the number of keys.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub working: i64,
    pub lapsing: i64,
    pub stopped: i64,
    soonest: BTreeMap<UserId, Lapse>,
}

impl Summary {
    /// Counts `l` at `now`.
    pub fn add(&mut self, l: &Line, now: DateTime<Utc>, warning_days: i64) {
        match state(l.view.valid_until, now, warning_days) {
            State::Working => self.working += 1,
            State::Lapsing => self.lapsing += 1,
            State::Stopped => return self.stopped += 1,
        }
        let Some(at) = l.view.valid_until else {
            return;
        };
        let owner = &l.view.row.user_id;
        match self.soonest.get_mut(owner) {
            Some(known) => {
                known.keys += 1;
                known.at = known.at.min(at);
            }
            None => {
                self.soonest.insert(
                    owner.clone(),
                    Lapse {
                        owner_id: owner.clone(),
                        username: l.view.owner_username.clone(),
                        is_service_account: l.owner_is_service_account,
                        at,
                        keys: 1,
                    },
                );
            }
        }
        // Only the owner that lapses last can be dropped: if a later key of theirs lapses
        // sooner, it comes back with that time.
        if self.soonest.len() > SOONEST {
            if let Some(last) = self
                .soonest
                .values()
                .max_by(|a, b| a.at.cmp(&b.at).then(a.owner_id.cmp(&b.owner_id)))
                .map(|l| l.owner_id.clone())
            {
                self.soonest.remove(&last);
            }
        }
    }

    /// Every key counted.
    pub fn total(&self) -> i64 {
        self.working + self.lapsing + self.stopped
    }

    /// The owners whose working keys stop first, soonest first.
    pub fn soonest(&self) -> Vec<Lapse> {
        let mut v: Vec<Lapse> = self.soonest.values().cloned().collect();
        v.sort_by(|a, b| a.at.cmp(&b.at).then(a.username.cmp(&b.username)));
        v
    }
}

/// Every key summarised at `now`, read chunk by chunk; admins only.
pub async fn summary(app: &Services, caller: &Principal) -> Result<(Summary, i64)> {
    let now = app.clock.now();
    let warning_days = crate::options::current(app).await?.warning_days;
    let mut summary = Summary::default();
    let mut after = None;
    loop {
        let lines = chunk(app, caller, after).await?;
        for l in &lines {
            summary.add(l, now, warning_days);
        }
        if (lines.len() as i64) < CHUNK {
            break;
        }
        after = lines.last().map(|l| l.view.row.id.clone());
    }
    Ok((summary, warning_days))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(days: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("a time") + Duration::days(days)
    }

    fn key_of(owner: &str, until: Option<DateTime<Utc>>) -> Line {
        let mut row = AccessKeyRow::new_for_tests();
        row.user_id = UserId::from(owner);
        row.id = KeyRowId::generate();
        let mut l = line(row, &UserRow::fixture(owner), Default::default());
        l.view.valid_until = until;
        l
    }

    #[test]
    fn formulas_are_neutralised_and_plain_text_is_not() {
        assert_eq!(
            neutralise("=HYPERLINK(\"http://x\",\"y\")"),
            "'=HYPERLINK(\"http://x\",\"y\")"
        );
        for danger in ["+1", "-1+2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(danger), format!("'{danger}"));
        }
        for plain in ["Power BI", "", "a=b", "1+1", " =x", "'quoted"] {
            assert_eq!(neutralise(plain), plain);
        }
    }

    #[test]
    fn a_record_has_a_field_per_column_and_neutralises_labels() {
        let mut l = key_of("alice", Some(at(3)));
        l.view.row.name = "=cmd|' /C calc'!A0".into();
        l.owner_last_login = Some(at(-4));
        l.owner_suspended = true;
        let r = record(&l);
        assert_eq!(r.len(), COLUMNS.len());
        assert_eq!(r[1], "'=cmd|' /C calc'!A0");
        assert_eq!(r[2], "alice");
        assert_eq!(r[5], "full");
        assert_eq!(r[6], "", "no networks: anywhere");
        assert_eq!(r[9], "", "never used: no address");
        assert_eq!(r[11], "2027-01-18T08:00:00Z");
        assert_eq!(r[12], "2027-01-11T08:00:00Z");
        assert_eq!((r[13].as_str(), r[14].as_str()), ("yes", "no"));
    }

    #[test]
    fn keys_work_lapse_within_the_warning_days_or_stopped() {
        let now = at(0);
        assert_eq!(state(Some(at(15)), now, 14), State::Working);
        assert_eq!(state(Some(at(14)), now, 14), State::Lapsing);
        assert_eq!(state(Some(at(1)), now, 14), State::Lapsing);
        assert_eq!(state(Some(now), now, 14), State::Stopped);
        assert_eq!(state(None, now, 14), State::Stopped);
        assert_eq!(
            state(Some(at(1)), now, 0),
            State::Working,
            "no warning days"
        );
    }

    #[test]
    fn the_summary_counts_states_and_keeps_each_owners_first_lapse() {
        let now = at(0);
        let mut s = Summary::default();
        s.add(&key_of("alice", Some(at(20))), now, 14);
        s.add(&key_of("alice", Some(at(5))), now, 14);
        s.add(&key_of("bob", Some(at(9))), now, 14);
        s.add(&key_of("carol", None), now, 14);
        s.add(&key_of("dave", Some(at(-1))), now, 14);
        assert_eq!((s.working, s.lapsing, s.stopped, s.total()), (1, 2, 2, 5));
        let soonest = s.soonest();
        let names: Vec<(&str, i64, i64)> = soonest
            .iter()
            .map(|l| (l.username.as_str(), (l.at - now).num_days(), l.keys))
            .collect();
        assert_eq!(
            names,
            [("alice", 5, 2), ("bob", 9, 1)],
            "stopped keys lapse no more"
        );
    }

    #[test]
    fn the_soonest_list_stays_bounded_and_exact() {
        let now = at(0);
        let mut s = Summary::default();
        // 30 owners, lapsing on day 30 down to day 1; then owner 29 gets a key lapsing first.
        for i in 0..30 {
            s.add(&key_of(&format!("u{i:02}"), Some(at(30 - i))), now, 0);
        }
        s.add(&key_of("u00", Some(at(0) + Duration::hours(1))), now, 0);
        let soonest = s.soonest();
        assert_eq!(soonest.len(), SOONEST);
        assert_eq!(soonest[0].username, "u00", "came back with its sooner key");
        assert_eq!(soonest[1].username, "u29");
        assert_eq!(soonest[SOONEST - 1].username, "u21");
    }
}
