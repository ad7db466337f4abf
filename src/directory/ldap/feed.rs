//! What a directory change feed reports, shared by the OpenLDAP content-synchronization
//! search (RFC 4533, `syncrepl.rs`) and Active Directory's DirSync poll (`dirsync.rs`).
//!
//! A change only names who to look at again; it never decides anything by itself. The domain
//! (`signals`) confirms each change with a point lookup (`LdapDirectory::standing_by_id` /
//! `standing_by_dn`) before it suspends anyone, so a malformed or spurious change cannot
//! suspend a person who is still in scope.

use ldap3::{Ldap, LdapResult, Scope, SearchOptions};

use super::values::*;
use super::LdapDirectory;
use crate::directory::DirectoryError;

/// One change the feed saw.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// The entry with this stable id (formatted as `external_id`, like `UpstreamUser`)
    /// changed, left the feed's scope, or was deleted (`deleted`: the server said so).
    Entry { external_id: String, deleted: bool },
    /// This DN was taken out of a group (AD incremental member values): it may have left the
    /// scope of `required_group`.
    MemberRemoved { dn: String },
    /// This DN was added to a group (AD incremental member values): it may be back in the
    /// scope of `required_group`. Adding someone to a group does not change their own entry,
    /// so without this a person re-added to `required_group` would only come back at the
    /// next reconciliation. The first DirSync poll (no cookie) reports every membership so.
    MemberAdded { dn: String },
}

/// Changes the feed delivered together, and the cookie to store once they are applied: a
/// restart resumes from the last stored cookie, so a change is applied at least once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedBatch {
    pub changes: Vec<Change>,
    /// The server's opaque state after these changes; None when it sent none with them.
    pub cookie: Option<Vec<u8>>,
}

/// Where a person stands in the directory right now, as a point lookup found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// In scope (matches `user_filter` and `required_group`), with the entry as sync reads it.
    InScope(super::UpstreamUser),
    /// The entry exists but is out of scope (filtered out, or no longer in `required_group`);
    /// carries its stable id.
    OutOfScope { external_id: String },
    /// No entry with that id or DN (deleted, or never there).
    Absent,
}

impl LdapDirectory {
    /// Where the person with this stable id (formatted as `UpstreamUser::external_id`) stands
    /// now, as the service account sees it: a subtree search of `user_base` for the id together
    /// with the scope (`user_filter` and membership of `required_group`, nested on AD) gives
    /// `InScope` with the entry mapped as sync maps it (`disabled` from userAccountControl on
    /// AD); found only without the scope, `OutOfScope`; not found at all, `Absent`.
    ///
    /// The id is searched as the directory stores it: objectGUID as its 16 bytes (the inverse
    /// of the GUID formatting), entryUUID and other text ids as text. An id that cannot be an
    /// objectGUID is Misconfigured. Anything that keeps the answer from being certain (no
    /// connection, timeout, a result code other than success, an entry sync could not map,
    /// several entries with the id) is an error, never `Absent`: a dropped connection must not
    /// look like a deletion.
    pub async fn standing_by_id(&self, external_id: &str) -> Result<Standing, DirectoryError> {
        let clause = id_clause(&self.cfg.id_attribute, external_id).ok_or_else(|| {
            DirectoryError::Misconfigured(format!(
                "{external_id:?} is not a GUID, so no {} can have it",
                self.cfg.id_attribute
            ))
        })?;
        let mut svc = self.service_connection().await?;
        let result = self.standing_by_id_on(&mut svc, &clause).await;
        self.close(&mut svc).await;
        result
    }

    /// Where the entry `dn` (a member DN a group change named) stands now: `Absent` when the
    /// server has no such entry (noSuchObject; also a deleted object's DN); otherwise its id is
    /// read from the entry and the answer is [`Self::standing_by_id`]'s, except that an entry
    /// outside `user_base` is `OutOfScope`. A group's DN (a nested group taken out of
    /// `required_group`) is `OutOfScope` with the group's id: no person has it. Errors as for
    /// `standing_by_id`.
    pub async fn standing_by_dn(&self, dn: &str) -> Result<Standing, DirectoryError> {
        let mut svc = self.service_connection().await?;
        let result = self.standing_by_dn_on(&mut svc, dn).await;
        self.close(&mut svc).await;
        result
    }

    async fn standing_by_dn_on(
        &self,
        svc: &mut Ldap,
        dn: &str,
    ) -> Result<Standing, DirectoryError> {
        let id_attr = self.cfg.id_attribute.as_str();
        let (mut entries, res) = self
            .point_search(svc, dn, Scope::Base, "(objectClass=*)", &[id_attr])
            .await?;
        match res.rc {
            RC_SUCCESS => {}
            RC_NO_SUCH_OBJECT => return Ok(Standing::Absent),
            _ => return Err(self.unavailable(&format!("look-up of {dn:?}"), &res)),
        }
        let Some(entry) = entries.pop() else {
            return Ok(Standing::Absent);
        };
        let external_id = self.external_id(&entry)?;
        let clause = id_clause(id_attr, &external_id).ok_or_else(|| {
            self.malformed(&format!("look-up of {dn:?} ({id_attr} is not a GUID)"))
        })?;
        Ok(match self.standing_by_id_on(svc, &clause).await? {
            Standing::Absent => Standing::OutOfScope { external_id },
            standing => standing,
        })
    }

    async fn standing_by_id_on(
        &self,
        svc: &mut Ldap,
        clause: &str,
    ) -> Result<Standing, DirectoryError> {
        let base = self.cfg.user_base.clone();
        let scope = scope_filter(
            &self.cfg.user_filter,
            self.cfg
                .required_group
                .as_deref()
                .map(|g| member_of_clause(g, self.cfg.active_directory)),
        );
        let attrs = self.sync_attributes();
        let scoped = format!("(&{scope}{clause})");
        if let Some(entry) = self
            .one_under_base(svc, &base, &scoped, &attrs, "in-scope look-up")
            .await?
        {
            return Ok(Standing::InScope(self.upstream_user(entry)?));
        }
        let id_attr = [self.cfg.id_attribute.as_str()];
        match self
            .one_under_base(svc, &base, clause, &id_attr, "look-up")
            .await?
        {
            Some(entry) => Ok(Standing::OutOfScope {
                external_id: self.external_id(&entry)?,
            }),
            None => Ok(Standing::Absent),
        }
    }

    /// The one entry under `base` matching `filter`, None when there is none; several are an
    /// error (ids are unique: the filter or the data is wrong).
    async fn one_under_base(
        &self,
        svc: &mut Ldap,
        base: &str,
        filter: &str,
        attrs: &[&str],
        what: &str,
    ) -> Result<Option<super::values::Entry>, DirectoryError> {
        let (mut entries, res) = self
            .point_search(svc, base, Scope::Subtree, filter, attrs)
            .await?;
        match res.rc {
            RC_SUCCESS if entries.len() <= 1 => Ok(entries.pop()),
            RC_SUCCESS | RC_SIZE_LIMIT_EXCEEDED if entries.len() > 1 => {
                Err(DirectoryError::Unavailable(format!(
                    "{what} on {}: several entries under {base:?} match {filter}",
                    self.cfg.url
                )))
            }
            RC_NO_SUCH_OBJECT => Err(DirectoryError::Unavailable(format!(
                "user_base {base:?} does not exist on {}",
                self.cfg.url
            ))),
            _ => Err(self.unavailable(what, &res)),
        }
    }

    /// A search for at most two entries with the given attributes.
    async fn point_search(
        &self,
        svc: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<(Vec<super::values::Entry>, LdapResult), DirectoryError> {
        svc.with_search_options(SearchOptions::new().sizelimit(2));
        let res = svc
            .with_timeout(self.timeout)
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| self.connection_error("look-up", &e))?;
        let ldap3::SearchResult(raw, res) = res;
        let mut entries = Vec::new();
        for item in raw {
            if item.is_intermediate() {
                continue;
            }
            if item.is_ref() {
                // Part of the base lives elsewhere: the entry could be there, so "not found"
                // would not be certain. AD's DNS / configuration partitions hold no users.
                let urls = parse_reference(item).ok_or_else(|| self.malformed("look-up"))?;
                if urls.is_empty() || !urls.iter().all(|u| is_ignorable_reference(u)) {
                    return Err(DirectoryError::Unavailable(format!(
                        "look-up on {}: the server refers part of {base:?} to {} (referrals \
                         are not followed)",
                        self.cfg.url,
                        urls.join(" ")
                    )));
                }
                continue;
            }
            entries.push(parse_entry(item).ok_or_else(|| self.malformed("look-up"))?);
        }
        Ok((entries, res))
    }
}
