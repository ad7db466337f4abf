//! Who joins and leaves `required_group`, from a second content-synchronization search on
//! the group entry itself.
//!
//! Why a second search: the memberof overlay writes a member's `memberOf` with an internal
//! operation marked "never replicate", so syncprov does not tell the users search that
//! someone left (or entered) its `(memberOf=<group>)` filter; with dynlist's computed
//! `memberOf` there is no write at all. The group entry's own `member` values do change
//! visibly: each time they do, the search sends the whole entry, and the difference with the
//! values seen before names who left and who joined.

use std::collections::BTreeMap;

use ldap3::ResultEntry;

use super::wire::{sync_state, EntryState};
use super::SyncStream;
use crate::directory::ldap::feed::{Change, FeedBatch};
use crate::directory::ldap::values::*;
use crate::directory::ldap::LdapDirectory;
use crate::directory::DirectoryError;

/// The attributes of a group that name its members (groupOfNames, groupOfUniqueNames).
pub(super) const MEMBER_ATTRIBUTES: [&str; 2] = ["member", "uniqueMember"];

/// A group's members: lower-cased DN (for comparing) to the DN as the group lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Members(BTreeMap<String, String>);

impl Members {
    pub(super) fn of(dns: impl IntoIterator<Item = String>) -> Members {
        Members(dns.into_iter().map(|dn| (dn.to_lowercase(), dn)).collect())
    }

    fn from_entry(entry: &Entry) -> Members {
        Members::of(
            MEMBER_ATTRIBUTES
                .iter()
                .flat_map(|attr| entry.values(attr))
                .filter_map(|v| String::from_utf8(v.clone()).ok()),
        )
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Who left and who joined between two views of the group (DNs as the group lists them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Movement {
    pub(super) left: Vec<String>,
    pub(super) joined: Vec<String>,
}

/// The difference between what was seen before and now. Without an earlier view (the
/// refresh that starts every feed) there is nothing to compare: the first view is only the
/// baseline, so whoever left while no feed ran is left to the scheduled sync.
pub(super) fn movement(before: Option<&Members>, now: &Members) -> Movement {
    let Some(before) = before else {
        return Movement::default();
    };
    Movement {
        left: before
            .0
            .iter()
            .filter(|(k, _)| !now.0.contains_key(*k))
            .map(|(_, dn)| dn.clone())
            .collect(),
        joined: now
            .0
            .iter()
            .filter(|(k, _)| !before.0.contains_key(*k))
            .map(|(_, dn)| dn.clone())
            .collect(),
    }
}

/// What a message of the group's search says about its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GroupMessage {
    /// The group as it is now (deleted or out of the search: nobody).
    Members(Members),
    /// Sync Info, references, other intermediate responses: nothing about members.
    Nothing,
    Malformed(&'static str),
}

/// Reads one message of the group's search (entries carry a Sync State control).
pub(super) fn read_group_message(item: ResultEntry) -> GroupMessage {
    if item.is_intermediate() || item.is_ref() {
        // The group search's cookies are not kept: its refresh is one entry.
        return GroupMessage::Nothing;
    }
    let Some(state) = sync_state(&item.1) else {
        return GroupMessage::Malformed("a group entry without a valid Sync State control");
    };
    match state.state {
        EntryState::Delete => return GroupMessage::Members(Members::default()),
        // Present says "unchanged" and may come without attributes: no news, and no reason
        // to think everyone left.
        EntryState::Present => return GroupMessage::Nothing,
        EntryState::Add | EntryState::Modify => {}
    }
    match parse_entry(item) {
        Some(entry) => GroupMessage::Members(Members::from_entry(&entry)),
        None => GroupMessage::Malformed("an unreadable group entry"),
    }
}

/// The search on `required_group` and the members it last showed (None until the refresh
/// has sent the group).
pub(super) struct GroupWatch<'a> {
    pub(super) stream: SyncStream<'a>,
    pub(super) members: Option<Members>,
}

/// The next message of the group's search; never ready without one.
pub(super) async fn next_of(
    group: Option<&mut GroupWatch<'_>>,
) -> ldap3::result::Result<Option<ResultEntry>> {
    match group {
        Some(watch) => watch.stream.next().await,
        None => std::future::pending().await,
    }
}

impl LdapDirectory {
    /// The batch one message of the group's search makes, if any: `MemberRemoved` for each
    /// member who left, `MemberAdded` for each who joined (as the AD feed reports them; the
    /// consumer looks each DN up).
    pub(super) async fn group_message(
        &self,
        watch: &mut GroupWatch<'_>,
        item: ldap3::result::Result<Option<ResultEntry>>,
    ) -> Result<Option<FeedBatch>, DirectoryError> {
        const WATCH: &str = "change feed (syncrepl), required_group watch";
        let item = match item {
            Ok(Some(item)) => item,
            Ok(None) => {
                let res = watch.stream.finish().await;
                return Err(self.feed_ended(WATCH, &res, false));
            }
            Err(e) => return Err(self.connection_error(WATCH, &e)),
        };
        let now = match read_group_message(item) {
            GroupMessage::Members(now) => now,
            GroupMessage::Nothing => return Ok(None),
            GroupMessage::Malformed(what) => {
                return Err(self.feed_unavailable(WATCH, &format!("the server sent {what}")))
            }
        };
        let moved = movement(watch.members.as_ref(), &now);
        if watch.members.is_none() {
            tracing::info!(directory = %self.cfg.id, members = now.len(), "change feed: following required_group");
        }
        watch.members = Some(now);
        let changes: Vec<Change> = moved
            .left
            .into_iter()
            .map(|dn| Change::MemberRemoved { dn })
            .chain(
                moved
                    .joined
                    .into_iter()
                    .map(|dn| Change::MemberAdded { dn }),
            )
            .collect();
        tracing::debug!(directory = %self.cfg.id, changes = changes.len(), "change feed: required_group changed");
        Ok((!changes.is_empty()).then_some(FeedBatch {
            changes,
            cookie: None,
        }))
    }
}
