//! OpenLDAP's change feed: an RFC 4533 content-synchronization search (syncrepl,
//! refreshAndPersist) over the users in scope, and one on `required_group`, whose messages
//! become [`FeedBatch`]es.
//!
//! The feed only names entries to look at again (see `feed.rs`): it never decides anything.

use std::time::Duration;

use ldap3::controls::{MakeCritical, RefreshMode, SyncRequest};
use ldap3::exop::WhoAmI;
use ldap3::{Ldap, LdapResult, ResultEntry, Scope, SearchStream};
use tokio::sync::mpsc::Sender;

use crate::directory::DirectoryError;

use super::feed::FeedBatch;
use super::values::*;
use super::LdapDirectory;

mod group;
mod wire;

use group::{next_of, GroupWatch, MEMBER_ATTRIBUTES};
use wire::*;

/// What the feed's log lines and errors call it.
const WHAT: &str = "change feed (syncrepl)";

/// A content-synchronization search as it streams.
type SyncStream<'a> = SearchStream<'a, &'a str, Vec<&'a str>>;

/// What woke the feed up.
enum Event {
    Closed,
    Tick,
    Users(ldap3::result::Result<Option<ResultEntry>>),
    Group(ldap3::result::Result<Option<ResultEntry>>),
}

/// Longest wait between two checks that the server still answers on the feed's connection.
const MAX_LIVENESS_INTERVAL: Duration = Duration::from_secs(30);

impl LdapDirectory {
    /// Follows the users in scope as they change, from `cookie` (None: from the start), and
    /// sends what the server reports to `batches` until the server or the receiver goes away.
    ///
    /// On one service connection: a search of `user_base`, subtree, with the scope filter of
    /// [`Self::read_users`] (`user_filter` AND `(memberOf=<required_group>)`), only the id
    /// attribute, and a critical Sync Request control (refreshAndPersist, `cookie`,
    /// reloadHint false). With `required_group`, a second such search (base scope, no cookie)
    /// on the group entry's `member` / `uniqueMember` values: the memberof overlay marks the
    /// `memberOf` it writes "never replicate", so syncprov never tells the users search that
    /// someone left or joined the group (verified against slapd 2.5; see `group.rs`).
    ///
    /// The server's `syncprov` overlay must be on the database, and the service account must
    /// be allowed to read `entryUUID` and to search without a size limit (the refresh is not
    /// paged): OpenLDAP `limits dn.exact="<bind_dn>" size=unlimited`.
    ///
    /// What arrives, each as it comes (one batch per message; the channel's capacity bounds
    /// what waits for the consumer, though ldap3 buffers what the server sends meanwhile):
    /// - an entry whose Sync State is add, modify or present: `Change::Entry { deleted: false }`;
    ///   without a cookie the refresh sends every entry in scope as an add;
    /// - Sync State delete: `deleted: true` (deleted, or no longer matching the filter);
    /// - a syncIdSet with refreshDeletes: one deleted entry per UUID. Resuming from a cookie,
    ///   slapd's session log replays a delete for every entry changed since then that is not
    ///   in scope now, also for entries that never were (groups, the service account whose
    ///   binds the lastbind overlay stamps): ids that name nobody the consumer knows. With
    ///   lastbind, each bind of a person in scope is a change too (`deleted: false`);
    /// - the cookie of each entry or Sync Info message goes into that message's batch, alone
    ///   when there are no changes (newcookie, the end of a refresh phase). The end of the
    ///   refresh always makes a batch, empty if it came without a cookie, so a consumer
    ///   hears from a live feed at once even when nothing changed;
    /// - from the group watch, with no cookie: `Change::MemberRemoved { dn }` per member who
    ///   left the group and `Change::MemberAdded { dn }` per member who joined.
    ///
    /// External ids are the entryUUIDs in the lower-case text form slapd stores, i.e. what
    /// `UpstreamUser::external_id` holds with `id_attribute = "entryUUID"` (required: the
    /// only id the protocol reports).
    ///
    /// Not reported, left to the scheduled sync: (1) when the server cannot replay changes
    /// since an old cookie from its session log (which a restart empties) it runs a present
    /// phase, listing the entries still there (present entries, syncIdSets without
    /// refreshDeletes); what was deleted meanwhile could only be found by comparing with a
    /// full earlier list, which the feed does not keep, so no deletion is derived from it;
    /// (2) who left `required_group` while no feed ran: the group watch has no cookie, its
    /// first view of the group is only the baseline.
    ///
    /// Ends:
    /// - `Ok(())` only when `batches` is closed (the receiver dropped), also while nothing
    ///   happens; the connection is unbound, which ends the searches on the server;
    /// - `Err(DirectoryError::FeedReset)` when the server will not continue from `cookie`
    ///   (e-syncRefreshRequired 4096; with a cookie also protocolError, slapd's answer to a
    ///   cookie it cannot read, and unwillingToPerform, its answer to a cookie ahead of its own
    ///   state as after a restore from backup): call again with `None`;
    /// - `Err(DirectoryError::Misconfigured)` when the directory cannot have this feed
    ///   (Active Directory, or an id attribute other than entryUUID);
    /// - `Err(DirectoryError::Unavailable)` on anything else: connection refused or lost, the
    ///   server not answering a WhoAmI within `timeout_seconds` (asked every `timeout_seconds`,
    ///   at most every 30 s, so a server that hangs or vanishes without closing the connection
    ///   is noticed), a malformed message, or a search ending with any result (the server
    ///   does not end a persistent search by itself: rc 12 means no syncprov on the
    ///   database, rc 32 a missing `user_base` or `required_group`). Call again later with the
    ///   last cookie received.
    pub async fn syncrepl(
        &self,
        cookie: Option<Vec<u8>>,
        batches: Sender<FeedBatch>,
    ) -> Result<(), DirectoryError> {
        self.syncrepl_possible()?;
        let mut svc = self.service_connection().await?;
        let result = self.syncrepl_on(&mut svc, cookie, &batches).await;
        // Unbinding closes the socket, which ends the persistent search on the server too.
        self.close(&mut svc).await;
        result
    }

    fn syncrepl_possible(&self) -> Result<(), DirectoryError> {
        if self.cfg.active_directory {
            return Err(DirectoryError::Misconfigured(format!(
                "directory {}: Active Directory has no content synchronization (RFC 4533); its feed is DirSync",
                self.cfg.id
            )));
        }
        if !self.cfg.id_attribute.eq_ignore_ascii_case("entryUUID") {
            return Err(DirectoryError::Misconfigured(format!(
                "directory {}: a syncrepl feed reports entryUUIDs, but id_attribute is {:?}",
                self.cfg.id, self.cfg.id_attribute
            )));
        }
        Ok(())
    }

    async fn syncrepl_on(
        &self,
        svc: &mut Ldap,
        cookie: Option<Vec<u8>>,
        batches: &Sender<FeedBatch>,
    ) -> Result<(), DirectoryError> {
        let had_cookie = cookie.is_some();
        let filter = self.feed_scope();
        let id_attribute = vec![self.cfg.id_attribute.as_str()];
        let mut users = self
            .sync_search(
                svc,
                &self.cfg.user_base,
                Scope::Subtree,
                &filter,
                id_attribute,
                cookie,
            )
            .await?;
        let mut group = match &self.cfg.required_group {
            Some(dn) => Some(GroupWatch {
                stream: self
                    .sync_search(
                        svc,
                        dn,
                        Scope::Base,
                        "(objectClass=*)",
                        MEMBER_ATTRIBUTES.to_vec(),
                        None,
                    )
                    .await?,
                members: None,
            }),
            None => None,
        };
        tracing::info!(directory = %self.cfg.id, resumed = had_cookie, "change feed started");

        let every = self
            .timeout
            .clamp(Duration::from_secs(1), MAX_LIVENESS_INTERVAL);
        let mut liveness = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut entries: u64 = 0;
        loop {
            // Each future is cancel-safe: SearchStream::next (without an ldap3 timeout) waits
            // on a tokio mpsc receiver, and a lost tick is only a later check.
            let event = tokio::select! {
                biased;
                () = batches.closed() => Event::Closed,
                item = users.next() => Event::Users(item),
                item = next_of(group.as_mut()) => Event::Group(item),
                _ = liveness.tick() => Event::Tick,
            };
            let batch = match event {
                Event::Closed => break,
                Event::Tick => {
                    self.still_answers(svc).await?;
                    continue;
                }
                Event::Users(Ok(Some(item))) => match self.users_message(item, &mut entries)? {
                    Some(batch) => batch,
                    None => continue,
                },
                Event::Users(Ok(None)) => {
                    let res = users.finish().await;
                    return self.users_ended(&res, had_cookie, batches).await;
                }
                Event::Users(Err(e)) => {
                    return Err(
                        self.connection_error(&format!("{WHAT}, after {entries} entries"), &e)
                    )
                }
                Event::Group(item) => {
                    let Some(watch) = group.as_mut() else {
                        continue; // not reached: there is no group stream to answer
                    };
                    match self.group_message(watch, item).await? {
                        Some(batch) => batch,
                        None => continue,
                    }
                }
            };
            if batches.send(batch).await.is_err() {
                break;
            }
        }
        // Unbinding (by the caller) ends the searches on the server.
        tracing::info!(directory = %self.cfg.id, "change feed stopped: nobody listens");
        Ok(())
    }

    /// `user_filter` AND membership of `required_group`, as `read_users` reads the scope.
    fn feed_scope(&self) -> String {
        scope_filter(
            &self.cfg.user_filter,
            self.cfg
                .required_group
                .as_deref()
                .map(|g| member_of_clause(g, false)),
        )
    }

    /// Starts a refreshAndPersist search. No ldap3 timeout on it: that would also bound the
    /// wait for each message, and a persistent search can be quiet for days (liveness is
    /// checked separately); only sending it is bounded.
    async fn sync_search<'a>(
        &self,
        svc: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: Vec<&'a str>,
        cookie: Option<Vec<u8>>,
    ) -> Result<SyncStream<'a>, DirectoryError> {
        // Critical: a server without syncprov must refuse rather than answer a plain search.
        let request = SyncRequest {
            mode: RefreshMode::RefreshAndPersist,
            cookie,
            reload_hint: false,
        }
        .critical();
        let start = svc
            .with_controls(request)
            .streaming_search(base, scope, filter, attrs);
        match tokio::time::timeout(self.timeout, start).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(self.connection_error(WHAT, &e)),
            Err(_) => Err(self.feed_unavailable(WHAT, "the search could not be sent (timed out)")),
        }
    }

    /// The batch one message of the users search makes, if any.
    fn users_message(
        &self,
        item: ResultEntry,
        entries: &mut u64,
    ) -> Result<Option<FeedBatch>, DirectoryError> {
        Ok(match read_message(item.0, &item.1) {
            Message::Batch(batch) => {
                *entries += 1;
                Some(batch)
            }
            Message::RefreshDone(batch) => {
                tracing::info!(directory = %self.cfg.id, entries = *entries, "change feed: refresh done, following changes");
                // Always a batch, empty when the server sent no cookie: the consumer hears
                // from a live feed at once, even when nothing changed.
                Some(batch.unwrap_or_default())
            }
            Message::PresentIds { count } => {
                tracing::debug!(directory = %self.cfg.id, count, "change feed: present-phase syncIdSet ignored (deletions are left to the scheduled sync)");
                None
            }
            Message::Reference => {
                tracing::warn!(directory = %self.cfg.id, "change feed: the server refers part of user_base to another server, whose changes are not followed");
                None
            }
            Message::OtherIntermediate(name) => {
                tracing::debug!(directory = %self.cfg.id, ?name, "change feed: intermediate response ignored");
                None
            }
            Message::Nothing => None,
            Message::Malformed(what) => {
                return Err(self.feed_unavailable(WHAT, &format!("the server sent {what}")))
            }
        })
    }

    /// The users search ended (it never should): hands on a final cookie if the server sent
    /// one, and says why.
    async fn users_ended(
        &self,
        res: &LdapResult,
        had_cookie: bool,
        batches: &Sender<FeedBatch>,
    ) -> Result<(), DirectoryError> {
        if let Some(cookie) = sync_done_cookie(&res.ctrls) {
            // Whatever comes next starts from here.
            let batch = FeedBatch {
                changes: Vec::new(),
                cookie: Some(cookie),
            };
            if batches.send(batch).await.is_err() {
                return Ok(());
            }
        }
        Err(self.feed_ended(WHAT, res, had_cookie))
    }

    /// A WhoAmI on the feed's connection, answered within `timeout_seconds`: a server that was
    /// stopped or cut off without closing the socket does not answer.
    async fn still_answers(&self, svc: &mut Ldap) -> Result<(), DirectoryError> {
        match svc.with_timeout(self.timeout).extended(WhoAmI).await {
            // Any answer, even a refusal, means the server is there.
            Ok(_) => Ok(()),
            Err(e) => Err(self.connection_error("change feed (syncrepl) liveness check", &e)),
        }
    }

    /// The error for a search that ended with `res` (a persistent search never ends well).
    fn feed_ended(&self, what: &str, res: &LdapResult, had_cookie: bool) -> DirectoryError {
        match search_end(res.rc, had_cookie) {
            SearchEnd::Reset => {
                let err = DirectoryError::FeedReset(format!(
                    "{what} on {}: the server will not continue from the cookie: {res}",
                    self.cfg.url
                ));
                tracing::warn!(directory = %self.cfg.id, "{err}");
                err
            }
            SearchEnd::Failed(hint) => {
                self.feed_unavailable(what, &format!("the search ended: {res}{hint}"))
            }
        }
    }

    fn feed_unavailable(&self, what: &str, why: &str) -> DirectoryError {
        let err = DirectoryError::Unavailable(format!("{what} on {}: {why}", self.cfg.url));
        tracing::warn!(directory = %self.cfg.id, "{err}");
        err
    }
}

/// How a content-synchronization search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SearchEnd {
    /// Start over without a cookie.
    Reset,
    /// Try again later; with a hint for the log.
    Failed(&'static str),
}

/// What the result code that ended the search means. OpenLDAP answers a cookie it cannot
/// parse with protocolError, and one ahead of its own state (a server restored from a
/// backup) with unwillingToPerform: those are resets only when there was a cookie to blame.
fn search_end(rc: u32, had_cookie: bool) -> SearchEnd {
    match rc {
        RC_SYNC_REFRESH_REQUIRED => SearchEnd::Reset,
        RC_PROTOCOL_ERROR | RC_UNWILLING_TO_PERFORM if had_cookie => SearchEnd::Reset,
        RC_UNAVAILABLE_CRITICAL_EXTENSION => SearchEnd::Failed(
            "; the server does not offer content synchronization (load the syncprov overlay on the database holding user_base)",
        ),
        RC_INSUFFICIENT_ACCESS_RIGHTS => {
            SearchEnd::Failed("; the service account may not run this search")
        }
        RC_SIZE_LIMIT_EXCEEDED => SearchEnd::Failed(
            "; size limit exceeded: the refresh is not paged, so the service account needs an unlimited size limit (OpenLDAP: limits dn.exact=\"<bind_dn>\" size=unlimited)",
        ),
        RC_TIME_LIMIT_EXCEEDED => SearchEnd::Failed(
            "; time limit exceeded: the service account needs an unlimited time limit (OpenLDAP: limits dn.exact=\"<bind_dn>\" time=unlimited)",
        ),
        RC_NO_SUCH_OBJECT => SearchEnd::Failed("; the search base does not exist"),
        _ => SearchEnd::Failed(""),
    }
}

#[cfg(test)]
mod tests;
