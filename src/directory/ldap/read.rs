//! The whole-directory read behind sync: users in scope page by page (referrals and size
//! limits handled), and who the admins are.

use std::collections::HashSet;
use std::time::Instant;

use ldap3::controls::PagedResults;
use ldap3::{Ldap, LdapResult, Scope};

use crate::directory::DirectoryError;

use super::values::*;
use super::{LdapDirectory, ReadStats, UpstreamUser};

impl LdapDirectory {
    /// Reads every user in scope with a paged search (RFC 2696, `page_size` entries per page)
    /// as the service account: base `user_base`, subtree, `user_filter` AND-ed with membership
    /// of `required_group` when set (nested on AD). Calls `visit` once per entry as pages
    /// arrive; only one page is ever held in memory.
    ///
    /// Any problem fails the whole read with `Unavailable`, so that a partial read never looks
    /// like users having vanished: connection lost, timeout (`timeout_seconds` per page, not
    /// counting the time spent in `visit`), a result code other than success (also after some
    /// entries were visited: sizeLimitExceeded, timeLimitExceeded, referral...), a malformed
    /// entry, an entry without the id or username attribute, and continuation references,
    /// except those to AD's DomainDnsZones / ForestDnsZones / Configuration partitions (counted
    /// in `ignored_references`, not followed). On an error `visit` may already have seen some
    /// entries: the caller must discard them.
    pub async fn read_users(
        &self,
        mut visit: impl FnMut(UpstreamUser) + Send,
    ) -> Result<ReadStats, DirectoryError> {
        let ad = self.cfg.active_directory;
        let group = self.cfg.required_group.as_deref();
        let filter = scope_filter(
            &self.cfg.user_filter,
            group.map(|g| member_of_clause(g, ad)),
        );
        let attrs = self.sync_attributes();
        let stats = self
            .paged_read("user sync search", &filter, &attrs, |entry| {
                visit(self.upstream_user(entry)?);
                Ok(())
            })
            .await?;
        tracing::debug!(directory = %self.cfg.id, entries = stats.entries, pages = stats.pages, ignored_references = stats.ignored_references, "LDAP users read");
        Ok(stats)
    }

    /// External ids of the members of `admin_group` in scope: a paged search of
    /// `(&{user_filter}(memberOf=<admin_group>))` under `user_base` (on AD with the nested
    /// matching rule). Empty without `admin_group`. Fails like [`Self::read_users`].
    pub async fn admin_external_ids(&self) -> Result<HashSet<String>, DirectoryError> {
        let Some(group) = &self.cfg.admin_group else {
            return Ok(HashSet::new());
        };
        let filter = scope_filter(
            &self.cfg.user_filter,
            Some(member_of_clause(group, self.cfg.active_directory)),
        );
        let mut ids = HashSet::new();
        self.paged_read(
            "admin group member search",
            &filter,
            &[self.cfg.id_attribute.as_str()],
            |entry| {
                ids.insert(self.external_id(&entry)?);
                Ok(())
            },
        )
        .await?;
        Ok(ids)
    }

    /// The lower-cased DNs listed as `member` / `uniqueMember` of `admin_group` (the same
    /// source a login's admin check reads on non-AD servers); None without `admin_group`,
    /// empty (with a warning) when the group does not exist.
    pub async fn admin_member_dns(&self) -> Result<Option<HashSet<String>>, DirectoryError> {
        let Some(group) = &self.cfg.admin_group else {
            return Ok(None);
        };
        let mut svc = self.service_connection().await?;
        let result = svc
            .with_timeout(self.timeout)
            .search(
                group,
                Scope::Base,
                "(objectClass=*)",
                vec!["member", "uniqueMember"],
            )
            .await
            .map_err(|e| self.connection_error("admin group read", &e));
        self.close(&mut svc).await;
        let ldap3::SearchResult(raw, res) = result?;
        match res.rc {
            RC_SUCCESS => {}
            RC_NO_SUCH_OBJECT => {
                tracing::warn!(directory = %self.cfg.id, admin_group = %group, "admin group not found; nobody is admin");
                return Ok(Some(HashSet::new()));
            }
            _ => return Err(self.unavailable("admin group read", &res)),
        }
        let mut dns = HashSet::new();
        for re in raw {
            if re.is_ref() || re.is_intermediate() {
                continue;
            }
            let entry = parse_entry(re).ok_or_else(|| self.malformed("admin group read"))?;
            for attr in ["member", "uniqueMember"] {
                for v in entry.values(attr) {
                    if let Ok(dn) = std::str::from_utf8(v) {
                        dns.insert(dn.to_lowercase());
                    }
                }
            }
        }
        Ok(Some(dns))
    }

    /// The attributes `read_users` needs, each once.
    pub(super) fn sync_attributes(&self) -> Vec<&str> {
        let mut attrs: Vec<&str> = vec![&self.cfg.id_attribute, &self.cfg.username_attribute];
        if self.cfg.active_directory {
            attrs.push(AD_USER_ACCOUNT_CONTROL);
        }
        if let Some(attr) = &self.cfg.last_login_attribute {
            attrs.push(attr);
        }
        let mut unique: Vec<&str> = Vec::with_capacity(attrs.len());
        for attr in attrs {
            if !unique.iter().any(|a| a.eq_ignore_ascii_case(attr)) {
                unique.push(attr);
            }
        }
        unique
    }

    pub(super) fn upstream_user(&self, entry: Entry) -> Result<UpstreamUser, DirectoryError> {
        let external_id = self.external_id(&entry)?;
        let missing = |attr: &str| {
            DirectoryError::Unavailable(format!(
                "entry {} has no {attr} (is it readable by the service account?)",
                entry.dn
            ))
        };
        let bad_value = |attr: &str, value: &str| {
            DirectoryError::Unavailable(format!(
                "entry {} has an unreadable {attr} value {value:?}",
                entry.dn
            ))
        };
        let attr = &self.cfg.username_attribute;
        let username = entry
            .text(attr)
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| missing(attr))?;
        // A missing userAccountControl would make every account look enabled, which would
        // silently keep disabled people in: fail instead.
        let disabled = if self.cfg.active_directory {
            let uac = entry
                .text(AD_USER_ACCOUNT_CONTROL)
                .ok_or_else(|| missing(AD_USER_ACCOUNT_CONTROL))?;
            account_disabled(&uac).ok_or_else(|| bad_value(AD_USER_ACCOUNT_CONTROL, &uac))?
        } else {
            false
        };
        let last_login = match &self.cfg.last_login_attribute {
            Some(attr) => match entry.text(attr) {
                Some(value) => parse_last_login(&value).map_err(|()| bad_value(attr, &value))?,
                None => None,
            },
            None => None,
        };
        Ok(UpstreamUser {
            dn: entry.dn,
            external_id,
            username,
            disabled,
            last_login,
        })
    }

    /// A paged search under `user_base` on a fresh service connection.
    pub(super) async fn paged_read(
        &self,
        what: &str,
        filter: &str,
        attrs: &[&str],
        on_entry: impl FnMut(Entry) -> Result<(), DirectoryError> + Send,
    ) -> Result<ReadStats, DirectoryError> {
        let mut svc = self.service_connection().await?;
        let result = self
            .paged_search(&mut svc, what, filter, attrs, on_entry)
            .await;
        // Also after an error: unbinding closes the socket, which ends whatever the server
        // still had to send.
        self.close(&mut svc).await;
        result
    }

    /// Drives the paging by hand rather than with ldap3's `PagedResults` adapter: the adapter
    /// looks only at the cookie of each page (an intermediate page that failed but carried a
    /// cookie would be skipped silently), panics on a malformed control, and hides where
    /// pages begin.
    async fn paged_search(
        &self,
        ldap: &mut Ldap,
        what: &str,
        filter: &str,
        attrs: &[&str],
        mut on_entry: impl FnMut(Entry) -> Result<(), DirectoryError> + Send,
    ) -> Result<ReadStats, DirectoryError> {
        let mut stats = ReadStats::default();
        let mut cookie = Vec::new();
        loop {
            let page = stats.pages + 1;
            let control = PagedResults {
                size: self.cfg.page_size,
                cookie: std::mem::take(&mut cookie),
            };
            let started = Instant::now();
            // The ldap3 timeout bounds sending the request and each wait for a message; the
            // budget below bounds the page as a whole.
            let mut stream = ldap
                .with_controls(control)
                .with_timeout(self.timeout)
                .streaming_search(&self.cfg.user_base, Scope::Subtree, filter, attrs.to_vec())
                .await
                .map_err(|e| self.connection_error(&format!("{what} (page {page})"), &e))?;
            stats.pages = page;
            let mut waited = started.elapsed();
            loop {
                let budget = self.timeout.saturating_sub(waited);
                let wait_started = Instant::now();
                let next = tokio::time::timeout(budget, stream.next()).await;
                waited += wait_started.elapsed();
                let item = match next {
                    Ok(Ok(Some(item))) => item,
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => {
                        return Err(self.connection_error(
                            &format!("{what} (page {page}, after {} entries)", stats.entries),
                            &e,
                        ))
                    }
                    Err(_) => {
                        let err = DirectoryError::Unavailable(format!(
                            "{what} on {}: page {page} not complete within {}s, after {} entries (timed out)",
                            self.cfg.url,
                            self.timeout.as_secs(),
                            stats.entries
                        ));
                        tracing::warn!(directory = %self.cfg.id, "{err}");
                        return Err(err);
                    }
                };
                if item.is_intermediate() {
                    // Not part of a plain search's answer; nothing to read from it.
                    continue;
                }
                if item.is_ref() {
                    let urls = parse_reference(item).ok_or_else(|| self.malformed(what))?;
                    if !urls.is_empty() && urls.iter().all(|u| is_ignorable_reference(u)) {
                        tracing::debug!(directory = %self.cfg.id, ?urls, "skipping continuation reference to an AD DNS / configuration partition");
                        stats.ignored_references += 1;
                        continue;
                    }
                    let err = DirectoryError::Unavailable(format!(
                        "{what} on {}: the server refers part of {:?} to {} (continuation reference); \
                         referrals are not followed: point url at a server holding all of user_base \
                         (on AD, the global catalog) or narrow user_base",
                        self.cfg.url,
                        self.cfg.user_base,
                        urls.join(" ")
                    ));
                    tracing::warn!(directory = %self.cfg.id, "{err}");
                    return Err(err);
                }
                let entry = parse_entry(item).ok_or_else(|| self.malformed(what))?;
                on_entry(entry)?;
                stats.entries += 1;
            }
            let res = stream.finish().await;
            if res.rc != RC_SUCCESS {
                return Err(self.search_failed(what, page, stats.entries, &res));
            }
            match paged_cookie(&res.ctrls) {
                Some(next) if next.is_empty() => return Ok(stats),
                Some(next) => cookie = next,
                None if res.ctrls.iter().any(|c| c.1.ctype == PAGED_RESULTS_OID) => {
                    return Err(DirectoryError::Unavailable(format!(
                        "{what} on {}: malformed paged results control in the reply",
                        self.cfg.url
                    )))
                }
                // The server ignored the (non-critical) control and sent everything at once.
                None => return Ok(stats),
            }
        }
    }

    /// A search that ended with a result code other than success, with what it likely means.
    fn search_failed(
        &self,
        what: &str,
        page: u64,
        entries: u64,
        res: &LdapResult,
    ) -> DirectoryError {
        let hint = match res.rc {
            RC_SIZE_LIMIT_EXCEEDED => {
                "; size limit exceeded: the server caps how many entries the service account may \
                 read (OpenLDAP: limits size.prtotal / size.hard for it; AD: MaxResultSetSize)"
                    .to_owned()
            }
            RC_TIME_LIMIT_EXCEEDED => {
                "; time limit exceeded: the server caps how long the search may run".to_owned()
            }
            RC_ADMIN_LIMIT_EXCEEDED => "; administrative limit exceeded".to_owned(),
            RC_REFERRAL => format!(
                "; user_base is held by another server: {} (referrals are not followed)",
                res.refs.join(" ")
            ),
            _ => String::new(),
        };
        let err = DirectoryError::Unavailable(format!(
            "{what} on {} failed on page {page} after {entries} entries: {res}{hint}",
            self.cfg.url
        ));
        tracing::warn!(directory = %self.cfg.id, "{err}");
        err
    }
}
