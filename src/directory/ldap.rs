//! LDAP / Active Directory password check: search the user as a service account, then bind as them.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use ldap3::controls::{Control, PagedResults};
use ldap3::{
    ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, ResultEntry, Scope,
    SearchOptions,
};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::CertificateDer;

use crate::config::LdapDirectoryConfig;
use crate::directory::{DirectoryError, DirectoryUser};
use crate::secret::Secret;

// LDAP result codes (RFC 4511 appendix A) that the mapping below treats specially.
const RC_SUCCESS: u32 = 0;
const RC_TIME_LIMIT_EXCEEDED: u32 = 3;
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
const RC_REFERRAL: u32 = 10;
const RC_ADMIN_LIMIT_EXCEEDED: u32 = 11;
const RC_STRONGER_AUTH_REQUIRED: u32 = 8;
const RC_CONFIDENTIALITY_REQUIRED: u32 = 13;
const RC_CONSTRAINT_VIOLATION: u32 = 19;
const RC_NO_SUCH_OBJECT: u32 = 32;
const RC_INAPPROPRIATE_AUTHENTICATION: u32 = 48;
const RC_INVALID_CREDENTIALS: u32 = 49;
const RC_INSUFFICIENT_ACCESS_RIGHTS: u32 = 50;
const RC_UNWILLING_TO_PERFORM: u32 = 53;

/// Requesting only this OID returns entries without attributes (RFC 4511 4.5.1.8).
const NO_ATTRIBUTES: &str = "1.1";

/// The Paged Results control (RFC 2696).
const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";
/// AD's LDAP_MATCHING_RULE_IN_CHAIN: `memberOf` with it also matches nested membership.
const AD_MATCHING_RULE_IN_CHAIN: &str = "1.2.840.113556.1.4.1941";
const AD_USER_ACCOUNT_CONTROL: &str = "userAccountControl";
/// userAccountControl bit ACCOUNTDISABLE.
const UF_ACCOUNTDISABLE: i64 = 0x2;
/// Naming contexts below an AD domain root that AD answers with continuation references
/// (first RDN of the referenced DN): application partitions and the configuration partition,
/// never user accounts of the domain.
const AD_NON_USER_PARTITIONS: &[(&str, &str)] = &[
    ("DC", "DomainDnsZones"),
    ("DC", "ForestDnsZones"),
    ("CN", "Configuration"),
];
/// 100 ns intervals between 1601-01-01 (FILETIME epoch) and 1970-01-01.
const FILETIME_UNIX_EPOCH_SECONDS: i64 = 11_644_473_600;
const FILETIME_TICKS_PER_SECOND: i64 = 10_000_000;

/// One user entry as the reconciler needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUser {
    pub dn: String,
    /// Same formatting as [`LdapDirectory::authenticate`]: `entryUUID` text, `objectGUID` as
    /// a GUID string, other binary ids as hex.
    pub external_id: String,
    /// First value of `username_attribute`, as stored upstream.
    pub username: String,
    /// AD only (`active_directory`): userAccountControl has ACCOUNTDISABLE (0x2). Else false.
    pub disabled: bool,
    /// From `last_login_attribute`: a Windows FILETIME (`lastLogonTimestamp`, `lastLogon`;
    /// 0 and "never" are None) or a GeneralizedTime (`authTimestamp`). None when absent.
    pub last_login: Option<DateTime<Utc>>,
}

/// What a paged read went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Entries handed to the visitor.
    pub entries: u64,
    /// Search requests sent (one per page).
    pub pages: u64,
    /// Continuation references to AD's DNS / configuration partitions, skipped.
    pub ignored_references: u64,
}

/// An LDAP or Active Directory server people log in through.
///
/// TLS roots: with `ca_file` the server certificate must chain to a certificate in that PEM
/// bundle (ring provider, our own `ClientConfig`). Without `ca_file`, ldap3 builds its default
/// config from the platform store (it loads it through rustls-native-certs, i.e. the system CA
/// bundle); if that store cannot be loaded, ldap3 ends up with an empty store and every TLS
/// handshake fails with an "unknown issuer" error, which surfaces as `Unavailable`.
#[derive(Debug)]
pub struct LdapDirectory {
    cfg: LdapDirectoryConfig,
    /// Present when `ca_file` is set; `None` lets ldap3 use the platform roots.
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
}

/// An entry of a search result, with every value kept as raw bytes (objectGUID is binary).
struct Entry {
    dn: String,
    attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// Values of `name`; attribute names are case-insensitive in LDAP.
    fn values(&self, name: &str) -> &[Vec<u8>] {
        self.attrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }

    fn text(&self, name: &str) -> Option<String> {
        self.values(name)
            .iter()
            .find_map(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned)
    }
}

impl LdapDirectory {
    /// Builds the directory from its configuration, which loading has checked (URL form,
    /// STARTTLS only with ldap://, bind DN and password, attribute names, filter, page size).
    /// Only the CA file is read here: one that cannot be read or holds no usable certificate
    /// is DirectoryError::Misconfigured naming the problem.
    pub fn new(cfg: LdapDirectoryConfig) -> Result<Self, DirectoryError> {
        let ldaps = cfg.uses_ldaps();
        let uses_tls = ldaps || cfg.starttls;
        let tls = match &cfg.ca_file {
            Some(path) => {
                let tls = load_tls_config(path)?;
                if !uses_tls {
                    tracing::warn!(directory = %cfg.id, "ca_file is set but {} uses neither ldaps:// nor starttls; it is ignored", cfg.url);
                }
                Some(tls)
            }
            None => {
                // ldap3 builds its default config with `ClientConfig::builder()`, which needs a
                // process-wide provider; make it ring (a no-op if one is installed already).
                if uses_tls && rustls::crypto::CryptoProvider::get_default().is_none() {
                    let _ = rustls::crypto::ring::default_provider().install_default();
                }
                None
            }
        };
        if !uses_tls {
            tracing::warn!(directory = %cfg.id, "{} uses neither ldaps:// nor starttls: passwords cross the network in clear text", cfg.url);
        }
        let timeout = Duration::from_secs(cfg.timeout_seconds);
        Ok(LdapDirectory { cfg, tls, timeout })
    }

    pub fn config(&self) -> &LdapDirectoryConfig {
        &self.cfg
    }

    /// Checks `password` for `username`: search as the service account, bind as the found DN on
    /// a fresh connection, then look the DN up in the admin group as the service account.
    ///
    /// Unknown, ambiguous or empty credentials and refused user binds are `InvalidCredentials`;
    /// a directory that cannot be reached or fails otherwise is `Unavailable` (never a 401).
    pub async fn authenticate(
        &self,
        username: &str,
        password: &Secret,
    ) -> Result<DirectoryUser, DirectoryError> {
        // An empty password turns a simple bind into an unauthenticated bind (RFC 4513 5.1.2)
        // that servers answer with success: it must never reach the server.
        if password.is_empty() || username.trim().is_empty() {
            return Err(DirectoryError::InvalidCredentials);
        }
        let mut svc = self.service_connection().await?;
        let result = self.authenticate_on(&mut svc, username, password).await;
        self.close(&mut svc).await;
        result
    }

    /// For `accesskeyd check-config`: connect, service bind, base-scope search of user_base
    /// (and of admin_group when set).
    pub async fn check(&self) -> Result<(), DirectoryError> {
        let mut svc = self.service_connection().await?;
        let result = self.check_on(&mut svc).await;
        self.close(&mut svc).await;
        result
    }

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
    fn sync_attributes(&self) -> Vec<&str> {
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

    fn upstream_user(&self, entry: Entry) -> Result<UpstreamUser, DirectoryError> {
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
    async fn paged_read(
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

    async fn check_on(&self, svc: &mut Ldap) -> Result<(), DirectoryError> {
        let base = &self.cfg.user_base;
        let (entries, res) = self
            .search(svc, base, Scope::Base, "(objectClass=*)")
            .await?;
        match res.rc {
            RC_SUCCESS if !entries.is_empty() => {}
            RC_SUCCESS => {
                return Err(DirectoryError::Misconfigured(format!(
                    "user_base {base:?} is not visible to the service account"
                )))
            }
            RC_NO_SUCH_OBJECT => {
                return Err(DirectoryError::Misconfigured(format!(
                    "user_base {base:?} does not exist"
                )))
            }
            _ => return Err(self.unavailable(&format!("search of user_base {base:?}"), &res)),
        }
        if let Some(group) = &self.cfg.admin_group {
            let (entries, res) = self
                .search(svc, group, Scope::Base, "(objectClass=*)")
                .await?;
            match res.rc {
                RC_SUCCESS if !entries.is_empty() => {}
                RC_SUCCESS | RC_NO_SUCH_OBJECT => {
                    return Err(DirectoryError::Misconfigured(format!(
                        "admin_group {group:?} does not exist or is not visible to the service account"
                    )))
                }
                _ => {
                    return Err(self.unavailable(&format!("search of admin_group {group:?}"), &res))
                }
            }
        }
        Ok(())
    }

    /// Describes a user someone else has authenticated (a trusted proxy that did the
    /// Kerberos handshake): the same search and mapping as a login, without a bind. Unknown
    /// or ambiguous names are InvalidCredentials.
    pub async fn lookup(&self, username: &str) -> Result<DirectoryUser, DirectoryError> {
        self.lookup_by(None, username).await
    }

    /// [`Self::lookup`] by another attribute than the login name (a Kerberos principal in
    /// `userPrincipalName`); `None` is the login name's attribute.
    pub async fn lookup_by(
        &self,
        attribute: Option<&str>,
        value: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        if value.trim().is_empty() {
            return Err(DirectoryError::InvalidCredentials);
        }
        let mut svc = self.service_connection().await?;
        let result = self.describe_on(&mut svc, attribute, value, None).await;
        self.close(&mut svc).await;
        result
    }

    async fn authenticate_on(
        &self,
        svc: &mut Ldap,
        username: &str,
        password: &Secret,
    ) -> Result<DirectoryUser, DirectoryError> {
        self.describe_on(svc, None, username, Some(password)).await
    }

    /// Finds the user, binds as them when a password is given, and maps the entry.
    async fn describe_on(
        &self,
        svc: &mut Ldap,
        attribute: Option<&str>,
        username: &str,
        password: Option<&Secret>,
    ) -> Result<DirectoryUser, DirectoryError> {
        let entry = self.find_user(svc, attribute, username).await?;
        if let Some(password) = password {
            self.user_bind(&entry.dn, password).await?;
        }

        let external_id = self.external_id(&entry)?;
        let is_admin = self.is_admin(svc, &entry.dn).await?;
        let canonical = canonical_username(&entry, &self.cfg.username_attribute, username);
        tracing::debug!(directory = %self.cfg.id, dn = %entry.dn, member_of = entry.values("memberOf").len(), "LDAP user entry");
        if password.is_some() {
            tracing::info!(directory = %self.cfg.id, username = %canonical, is_admin, "LDAP login");
        } else {
            tracing::info!(directory = %self.cfg.id, username = %canonical, is_admin, "LDAP user looked up");
        }
        Ok(DirectoryUser {
            external_id,
            username: canonical,
            display_name: entry.text(&self.cfg.display_name_attribute),
            first_name: entry.text(&self.cfg.first_name_attribute),
            last_name: entry.text(&self.cfg.last_name_attribute),
            email: entry.text(&self.cfg.email_attribute),
            is_admin,
        })
    }

    /// The one entry under user_base matching the username, or InvalidCredentials.
    async fn find_user(
        &self,
        svc: &mut Ldap,
        attribute: Option<&str>,
        username: &str,
    ) -> Result<Entry, DirectoryError> {
        // The same scope as directory sync: someone outside required_group cannot log in,
        // rather than logging in only to be removed at the next run.
        let scope = scope_filter(
            &self.cfg.user_filter,
            self.cfg
                .required_group
                .as_deref()
                .map(|g| member_of_clause(g, self.cfg.active_directory)),
        );
        let attribute = attribute.unwrap_or(&self.cfg.username_attribute);
        let filter = user_filter(&scope, attribute, username);
        let attrs = [
            self.cfg.username_attribute.as_str(),
            &self.cfg.id_attribute,
            &self.cfg.display_name_attribute,
            &self.cfg.first_name_attribute,
            &self.cfg.last_name_attribute,
            &self.cfg.email_attribute,
            // Not used for the admin decision (the group search is authoritative and also
            // covers uniqueMember); fetched so a debug line can show what the server thinks.
            "memberOf",
        ];
        // Two entries are enough to know the username is ambiguous.
        svc.with_search_options(SearchOptions::new().sizelimit(2));
        let res = svc
            .with_timeout(self.timeout)
            .search(&self.cfg.user_base, Scope::Subtree, &filter, attrs.to_vec())
            .await
            .map_err(|e| self.connection_error("user search", &e))?;
        let (raw, res) = (res.0, res.1);
        match res.rc {
            RC_SUCCESS => {}
            RC_SIZE_LIMIT_EXCEEDED if raw.len() > 1 => {}
            RC_NO_SUCH_OBJECT => {
                return Err(DirectoryError::Unavailable(format!(
                    "user_base {:?} does not exist on {}",
                    self.cfg.user_base, self.cfg.url
                )))
            }
            _ => return Err(self.unavailable("user search", &res)),
        }
        let mut entries = raw
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(parse_entry)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.malformed("user search"))?;
        match entries.len() {
            1 => Ok(entries.remove(0)),
            0 => {
                tracing::debug!(directory = %self.cfg.id, "LDAP login: no such user");
                Err(DirectoryError::InvalidCredentials)
            }
            _ => {
                // Refusing is the only safe answer: we cannot know which person is meant.
                tracing::warn!(directory = %self.cfg.id, "LDAP login: username matches several entries; check username_attribute and user_filter");
                Err(DirectoryError::InvalidCredentials)
            }
        }
    }

    /// Binds as `dn` on its own connection, so the service connection keeps its identity.
    async fn user_bind(&self, dn: &str, password: &Secret) -> Result<(), DirectoryError> {
        let mut ldap = self.connect().await?;
        let result = ldap
            .with_timeout(self.timeout)
            .simple_bind(dn, password.expose())
            .await;
        self.close(&mut ldap).await;
        let res = result.map_err(|e| self.connection_error("user bind", &e))?;
        match classify_user_bind(res.rc) {
            UserBind::Ok => Ok(()),
            UserBind::Refused => {
                // AD puts the reason ("data 52e" wrong password, 533 disabled, 775 locked...)
                // in the diagnostic text; it is worth a log line but not a different answer.
                tracing::info!(directory = %self.cfg.id, rc = res.rc, text = %res.text, "LDAP bind refused");
                Err(DirectoryError::InvalidCredentials)
            }
            UserBind::NeedsTls => Err(DirectoryError::Unavailable(format!(
                "{} refuses password binds without TLS ({res}); use ldaps:// or starttls",
                self.cfg.url
            ))),
            UserBind::Failed => Err(self.unavailable("user bind", &res)),
        }
    }

    /// Membership of the DN in admin_group, read as the service account.
    async fn is_admin(&self, svc: &mut Ldap, user_dn: &str) -> Result<bool, DirectoryError> {
        let Some(group) = &self.cfg.admin_group else {
            return Ok(false);
        };
        // Active Directory: nested membership, asked of the user's entry with the matching
        // rule (the same rule sync uses). Elsewhere: the group entry's member/uniqueMember.
        let (base, filter) = if self.cfg.active_directory {
            (user_dn, member_of_clause(group, true))
        } else {
            (group.as_str(), admin_filter(user_dn))
        };
        let (entries, res) = self.search(svc, base, Scope::Base, &filter).await?;
        match res.rc {
            RC_SUCCESS => Ok(!entries.is_empty()),
            RC_NO_SUCH_OBJECT => {
                tracing::warn!(directory = %self.cfg.id, admin_group = %group, "admin group not found; nobody is admin");
                Ok(false)
            }
            _ => Err(self.unavailable("admin group search", &res)),
        }
    }

    fn external_id(&self, entry: &Entry) -> Result<String, DirectoryError> {
        let attr = &self.cfg.id_attribute;
        let Some(raw) = entry.values(attr).first() else {
            return Err(DirectoryError::Unavailable(format!(
                "entry {} has no {attr} (is it readable by the service account?)",
                entry.dn
            )));
        };
        if attr.eq_ignore_ascii_case("objectGUID") {
            return format_object_guid(raw).ok_or_else(|| {
                DirectoryError::Unavailable(format!(
                    "objectGUID of {} is {} bytes, not a GUID",
                    entry.dn,
                    raw.len()
                ))
            });
        }
        // Other binary ids (e.g. a custom octet-string attribute) are kept stable as hex.
        Ok(match std::str::from_utf8(raw) {
            Ok(s) => s.to_owned(),
            Err(_) => hex::encode(raw),
        })
    }

    /// Base-or-other search with the configured timeout; transport failures become Unavailable.
    async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
    ) -> Result<(Vec<Entry>, LdapResult), DirectoryError> {
        let res = ldap
            .with_timeout(self.timeout)
            .search(base, scope, filter, vec![NO_ATTRIBUTES])
            .await
            .map_err(|e| self.connection_error("search", &e))?;
        let entries = res
            .0
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(parse_entry)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.malformed("search"))?;
        Ok((entries, res.1))
    }

    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        // The connect timeout covers TCP connect, StartTLS and the TLS handshake.
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.cfg.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.cfg.url)
            .await
            .map_err(|e| self.connection_error("connect", &e))?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// A connection bound as the service account, or anonymous without bind_dn.
    async fn service_connection(&self) -> Result<Ldap, DirectoryError> {
        let mut ldap = self.connect().await?;
        let (Some(dn), Some(pw)) = (&self.cfg.bind_dn, &self.cfg.bind_password) else {
            return Ok(ldap);
        };
        let result = ldap
            .with_timeout(self.timeout)
            .simple_bind(dn, pw.expose())
            .await;
        let err = match result {
            Ok(res) if res.rc == RC_SUCCESS => return Ok(ldap),
            Ok(res) => self.unavailable(&format!("service account bind as {dn:?}"), &res),
            Err(e) => self.connection_error("service account bind", &e),
        };
        self.close(&mut ldap).await;
        Err(err)
    }

    /// Unbind; the connection is going away either way, so errors only get a debug line.
    async fn close(&self, ldap: &mut Ldap) {
        if let Err(e) = ldap.with_timeout(self.timeout).unbind().await {
            tracing::debug!(directory = %self.cfg.id, "LDAP unbind: {e}");
        }
    }

    fn connection_error(&self, what: &str, e: &LdapError) -> DirectoryError {
        let hint = match e {
            LdapError::Timeout { .. } => " (timed out)",
            _ if e.to_string().contains("certificate") => {
                " (TLS certificate not trusted: check ca_file and that the URL host is in the certificate)"
            }
            _ => "",
        };
        let err = DirectoryError::Unavailable(format!("{what} on {}: {e}{hint}", self.cfg.url));
        tracing::warn!(directory = %self.cfg.id, "{err}");
        err
    }

    fn unavailable(&self, what: &str, res: &LdapResult) -> DirectoryError {
        let err = DirectoryError::Unavailable(format!("{what} on {}: {res}", self.cfg.url));
        tracing::warn!(directory = %self.cfg.id, "{err}");
        err
    }

    fn malformed(&self, what: &str) -> DirectoryError {
        DirectoryError::Unavailable(format!(
            "{what} on {}: malformed entry in the reply",
            self.cfg.url
        ))
    }
}

enum UserBind {
    Ok,
    Refused,
    NeedsTls,
    Failed,
}

/// What the result code of the user's own bind means.
///
/// - 0 success.
/// - 49 invalidCredentials: wrong password, and on AD also disabled / locked / expired accounts
///   (the sub-code is in the diagnostic text) -> InvalidCredentials.
/// - 48 inappropriateAuthentication, 50 insufficientAccessRights, 53 unwillingToPerform
///   (OpenLDAP ppolicy / 389-ds for locked or inactivated accounts), 19 constraintViolation
///   (password policy), 32 noSuchObject (entry deleted since the search) -> InvalidCredentials:
///   each is about this account, and a 401 is the honest answer to its owner.
/// - 8 strongerAuthRequired, 13 confidentialityRequired: the server wants TLS -> Unavailable,
///   since no password can ever succeed with this config.
/// - anything else (busy, unavailable, operationsError, other...) -> Unavailable.
fn classify_user_bind(rc: u32) -> UserBind {
    match rc {
        RC_SUCCESS => UserBind::Ok,
        RC_INVALID_CREDENTIALS
        | RC_INAPPROPRIATE_AUTHENTICATION
        | RC_INSUFFICIENT_ACCESS_RIGHTS
        | RC_UNWILLING_TO_PERFORM
        | RC_CONSTRAINT_VIOLATION
        | RC_NO_SUCH_OBJECT => UserBind::Refused,
        RC_STRONGER_AUTH_REQUIRED | RC_CONFIDENTIALITY_REQUIRED => UserBind::NeedsTls,
        _ => UserBind::Failed,
    }
}

/// `(&{user_filter}({attr}={escaped username}))`; the username is escaped per RFC 4515 so that
/// `*`, `(`, `)`, `\` and NUL match literally instead of changing the filter.
fn user_filter(user_filter: &str, attr: &str, username: &str) -> String {
    let user_filter = user_filter.trim();
    let matcher = format!("({attr}={})", ldap_escape(username.trim()));
    if user_filter.is_empty() {
        matcher
    } else {
        format!("(&{user_filter}{matcher})")
    }
}

/// `(|(member={dn})(uniqueMember={dn}))` with the DN escaped as a filter value.
fn admin_filter(user_dn: &str) -> String {
    let dn = ldap_escape(user_dn);
    format!("(|(member={dn})(uniqueMember={dn}))")
}

/// AD's objectGUID: the first three fields are little-endian on the wire, so the bytes
/// 01..10 read as 04030201-0605-0807-090a-0b0c0d0e0f10.
fn format_object_guid(raw: &[u8]) -> Option<String> {
    let bytes: [u8; 16] = raw.try_into().ok()?;
    Some(uuid::Uuid::from_bytes_le(bytes).hyphenated().to_string())
}

/// The username as stored upstream (its canonical case), preferring the value that matches
/// what was typed when the attribute has several.
fn canonical_username(entry: &Entry, attr: &str, typed: &str) -> String {
    let typed = typed.trim();
    let values: Vec<&str> = entry
        .values(attr)
        .iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .collect();
    values
        .iter()
        .find(|v| v.to_lowercase() == typed.to_lowercase())
        .or_else(|| values.first())
        .map(|v| (*v).to_owned())
        .unwrap_or_else(|| typed.to_owned())
}

/// ldap3's `SearchEntry::construct` panics on a malformed reply; this returns None instead.
fn parse_entry(re: ResultEntry) -> Option<Entry> {
    let mut tags = re.0.match_id(4)?.expect_constructed()?.into_iter();
    let dn = String::from_utf8(tags.next()?.expect_primitive()?).ok()?;
    let mut attrs = Vec::new();
    for partial in tags.next()?.expect_constructed()? {
        let mut parts = partial.expect_constructed()?.into_iter();
        let name = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
        let values = parts
            .next()?
            .expect_constructed()?
            .into_iter()
            .map(|t| t.expect_primitive())
            .collect::<Option<Vec<_>>>()?;
        attrs.push((name, values));
    }
    Some(Entry { dn, attrs })
}

/// `(&{user_filter}{extra})`, either part alone when the other is absent, and
/// `(objectClass=*)` when nothing restricts the search.
fn scope_filter(user_filter: &str, extra: Option<String>) -> String {
    let user_filter = user_filter.trim();
    match (user_filter.is_empty(), extra) {
        (true, None) => "(objectClass=*)".to_owned(),
        (true, Some(extra)) => extra,
        (false, None) => user_filter.to_owned(),
        (false, Some(extra)) => format!("(&{user_filter}{extra})"),
    }
}

/// Membership of `group_dn` (escaped as a filter value): `(memberOf=<dn>)`, on AD
/// `(memberOf:1.2.840.113556.1.4.1941:=<dn>)` so that nested groups count.
fn member_of_clause(group_dn: &str, active_directory: bool) -> String {
    let dn = ldap_escape(group_dn.trim());
    if active_directory {
        format!("(memberOf:{AD_MATCHING_RULE_IN_CHAIN}:={dn})")
    } else {
        format!("(memberOf={dn})")
    }
}

/// The URLs of a SearchResultReference; None when malformed (ldap3's `parse_refs` panics).
fn parse_reference(re: ResultEntry) -> Option<Vec<String>> {
    re.0.expect_constructed()?
        .into_iter()
        .map(|t| String::from_utf8(t.expect_primitive()?).ok())
        .collect()
}

/// Whether a continuation reference points at one of AD's DNS application partitions or its
/// configuration partition: the first RDN of the URL's DN is `DC=DomainDnsZones`,
/// `DC=ForestDnsZones` or `CN=Configuration` (case-insensitive).
fn is_ignorable_reference(url: &str) -> bool {
    let Some(dn) = ldap_url_dn(url) else {
        return false;
    };
    let first_rdn = dn.split(',').next().unwrap_or_default();
    let Some((attr, value)) = first_rdn.split_once('=') else {
        return false;
    };
    let (attr, value) = (attr.trim(), value.trim());
    AD_NON_USER_PARTITIONS
        .iter()
        .any(|(a, v)| attr.eq_ignore_ascii_case(a) && value.eq_ignore_ascii_case(v))
}

/// The DN of an LDAP URL (RFC 4516: `ldap://host/dn?attrs?scope?filter?exts`), percent-decoded.
fn ldap_url_dn(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("ldap") && !scheme.eq_ignore_ascii_case("ldaps") {
        return None;
    }
    let (_, path) = rest.split_once('/')?;
    let dn = path.split('?').next().unwrap_or_default();
    percent_decode(dn)
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// The cookie of the Paged Results response control: None when the control is absent or
/// malformed; empty when the search is complete.
fn paged_cookie(ctrls: &[Control]) -> Option<Vec<u8>> {
    let raw = ctrls.iter().find(|c| c.1.ctype == PAGED_RESULTS_OID)?;
    let (rest, tag) = ldap3::asn1::parse_tag(raw.1.val.as_deref()?).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let mut parts = tag.expect_constructed()?.into_iter();
    let _size = parts.next()?.expect_primitive()?;
    parts.next()?.expect_primitive()
}

/// AD's userAccountControl (a signed 32-bit decimal) has ACCOUNTDISABLE set; None if not a number.
fn account_disabled(value: &str) -> Option<bool> {
    let flags: i64 = value.trim().parse().ok()?;
    Some(flags & UF_ACCOUNTDISABLE != 0)
}

/// A last-login value: all digits is a Windows FILETIME (`lastLogonTimestamp`), anything else a
/// GeneralizedTime (`authTimestamp`). `Ok(None)` for FILETIME's "never" values.
fn parse_last_login(value: &str) -> Result<Option<DateTime<Utc>>, ()> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        parse_filetime(value)
    } else {
        parse_generalized_time(value).map(Some).ok_or(())
    }
}

/// Windows FILETIME: 100 ns intervals since 1601-01-01 UTC. 0 and i64::MAX mean never.
fn parse_filetime(value: &str) -> Result<Option<DateTime<Utc>>, ()> {
    let ticks: i64 = value.parse().map_err(|_| ())?;
    if ticks == 0 || ticks == i64::MAX {
        return Ok(None);
    }
    if ticks < 0 {
        return Err(());
    }
    let secs = ticks / FILETIME_TICKS_PER_SECOND - FILETIME_UNIX_EPOCH_SECONDS;
    let nanos = (ticks % FILETIME_TICKS_PER_SECOND) * 100;
    DateTime::from_timestamp(secs, nanos as u32)
        .map(Some)
        .ok_or(())
}

/// GeneralizedTime (RFC 4517 3.3.13): `YYYYMMDDHH[MM[SS]][(.|,)fraction](Z|(+|-)HH[MM])`.
/// The fraction applies to the last unit given; a leap second (60) rolls into the next minute.
fn parse_generalized_time(value: &str) -> Option<DateTime<Utc>> {
    let b = value.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize, n: usize| -> Option<u32> {
        let part = b.get(*i..*i + n)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        *i += n;
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let is_digit_at = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);

    let year = digits(&mut i, 4)?;
    let month = digits(&mut i, 2)?;
    let day = digits(&mut i, 2)?;
    let hour = digits(&mut i, 2)?;
    let mut minute = None;
    let mut second = None;
    if is_digit_at(i) {
        minute = Some(digits(&mut i, 2)?);
        if is_digit_at(i) {
            second = Some(digits(&mut i, 2)?);
        }
    }
    let mut fraction_nanos: i64 = 0;
    if matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        let start = i;
        while is_digit_at(i) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let unit_nanos: u128 = match (minute, second) {
            (_, Some(_)) => 1_000_000_000,
            (Some(_), None) => 60_000_000_000,
            _ => 3_600_000_000_000,
        };
        // Twelve digits are below a nanosecond even for fractions of an hour.
        let used = &value[start..i.min(start + 12)];
        let numerator: u128 = used.parse().ok()?;
        let nanos = numerator * unit_nanos / 10u128.pow(used.len() as u32);
        fraction_nanos = i64::try_from(nanos).ok()?;
    }
    let offset_seconds: i64 = match b.get(i) {
        Some(b'Z') => {
            i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let sign = if *sign == b'-' { -1 } else { 1 };
            i += 1;
            let hours = digits(&mut i, 2)?;
            let minutes = if is_digit_at(i) {
                digits(&mut i, 2)?
            } else {
                0
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (i64::from(hours) * 3600 + i64::from(minutes) * 60)
        }
        _ => return None,
    };
    if i != b.len() {
        return None;
    }
    let (minute, second) = (minute.unwrap_or(0), second.unwrap_or(0));
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let midnight = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_opt(0, 0, 0)?
        .and_utc();
    let local_seconds = i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    midnight
        .checked_add_signed(TimeDelta::seconds(local_seconds - offset_seconds))?
        .checked_add_signed(TimeDelta::nanoseconds(fraction_nanos))
}

/// A PEM error in words: the markers and lines it names as text, not as byte lists.
fn pem_error_text(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "the line \"-----END {}-----\" is missing",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("illegal section start: {:?}", String::from_utf8_lossy(line))
        }
        other => other.to_string(),
    }
}

fn load_tls_config(path: &Path) -> Result<Arc<ClientConfig>, DirectoryError> {
    let shown = path.display();
    let bad = |msg: String| DirectoryError::Misconfigured(msg);
    let pem = fs::read(path).map_err(|e| bad(format!("cannot read ca_file {shown}: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            bad(format!(
                "ca_file {shown} is not valid PEM: {}",
                pem_error_text(&e)
            ))
        })?;
        roots.add(cert).map_err(|e| {
            bad(format!(
                "ca_file {shown} holds an unusable certificate: {e}"
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(bad(format!("ca_file {shown} contains no PEM certificate")));
    }
    // An explicit provider keeps this independent of whatever default the process installed.
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LdapDirectoryConfig {
        LdapDirectoryConfig {
            id: "corp".into(),
            name: "Corp".into(),
            url: "ldap://127.0.0.1:1".into(),
            starttls: false,
            ca_file: None,
            bind_dn: Some("cn=svc,dc=example,dc=org".into()),
            bind_password: Some(Secret::new("pw")),
            user_base: "ou=people,dc=example,dc=org".into(),
            user_filter: "(objectClass=inetOrgPerson)".into(),
            username_attribute: "uid".into(),
            id_attribute: "entryUUID".into(),
            display_name_attribute: "cn".into(),
            first_name_attribute: "givenName".into(),
            last_name_attribute: "sn".into(),
            email_attribute: "mail".into(),
            admin_group: None,
            timeout_seconds: 10,
            active_directory: false,
            required_group: None,
            last_login_attribute: None,
            page_size: 500,
            sync: crate::config::SyncPolicy::default(),
            create_users_from_events: false,
        }
    }

    fn misconfigured(cfg: LdapDirectoryConfig) -> String {
        match LdapDirectory::new(cfg) {
            Err(DirectoryError::Misconfigured(m)) => m,
            other => panic!("expected Misconfigured, got {other:?}"),
        }
    }

    #[test]
    fn username_is_escaped_in_the_filter() {
        let f = |u| user_filter("(objectClass=inetOrgPerson)", "uid", u);
        assert_eq!(f("alice"), "(&(objectClass=inetOrgPerson)(uid=alice))");
        assert_eq!(f("*"), r"(&(objectClass=inetOrgPerson)(uid=\2a))");
        assert_eq!(
            f("bob)(uid=*"),
            r"(&(objectClass=inetOrgPerson)(uid=bob\29\28uid=\2a))"
        );
        assert_eq!(
            f("a\\b\0c"),
            r"(&(objectClass=inetOrgPerson)(uid=a\5cb\00c))"
        );
        assert_eq!(user_filter("", "sAMAccountName", "x"), "(sAMAccountName=x)");
        for u in ["*", "bob)(uid=*", "a\\b\0c", "(|(uid=*))"] {
            assert!(ldap3::parse_filter(f(u)).is_ok(), "{u:?}");
        }
    }

    #[test]
    fn dn_is_escaped_in_the_admin_filter() {
        assert_eq!(
            admin_filter(r"cn=Smith\, J (ext)*,dc=x"),
            r"(|(member=cn=Smith\5c, J \28ext\29\2a,dc=x)(uniqueMember=cn=Smith\5c, J \28ext\29\2a,dc=x))"
        );
    }

    #[test]
    fn object_guid_uses_ads_byte_order() {
        let bytes: Vec<u8> = (1..=16).collect();
        assert_eq!(
            format_object_guid(&bytes).as_deref(),
            Some("04030201-0605-0807-090a-0b0c0d0e0f10")
        );
        assert_eq!(
            format_object_guid(&[0xAB; 16]).as_deref(),
            Some("abababab-abab-abab-abab-abababababab")
        );
        assert_eq!(format_object_guid(&bytes[..15]), None);
    }

    #[test]
    fn object_guid_external_id_from_an_entry() {
        let mut c = cfg();
        c.id_attribute = "objectGUID".into();
        let dir = LdapDirectory::new(c).expect("valid");
        let entry = Entry {
            dn: "cn=x".into(),
            attrs: vec![("objectGUID".into(), vec![(1..=16).collect()])],
        };
        assert_eq!(
            dir.external_id(&entry).expect("guid"),
            "04030201-0605-0807-090a-0b0c0d0e0f10"
        );
        let none = Entry {
            dn: "cn=x".into(),
            attrs: vec![],
        };
        assert!(matches!(
            dir.external_id(&none),
            Err(DirectoryError::Unavailable(_))
        ));
    }

    #[test]
    fn canonical_username_keeps_upstream_case() {
        let entry = Entry {
            dn: "uid=Alice".into(),
            attrs: vec![("UID".into(), vec![b"Alice".to_vec(), b"al".to_vec()])],
        };
        assert_eq!(canonical_username(&entry, "uid", "alice"), "Alice");
        assert_eq!(canonical_username(&entry, "uid", "AL"), "al");
        assert_eq!(canonical_username(&entry, "uid", "other"), "Alice");
    }

    #[test]
    fn valid_configs_are_accepted() {
        assert!(LdapDirectory::new(cfg()).is_ok());
        let mut c = cfg();
        c.url = "ldaps://ldap.example.org:636/".into();
        assert!(LdapDirectory::new(c).is_ok());
        let mut c = cfg();
        c.url = "LDAP://[::1]:389".into();
        c.starttls = true;
        c.bind_dn = None;
        c.bind_password = None;
        c.user_filter = String::new();
        assert!(LdapDirectory::new(c).is_ok());
    }

    #[test]
    fn ca_file_must_be_readable_and_hold_a_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = cfg();
        c.ca_file = Some(dir.path().join("missing.pem"));
        assert!(misconfigured(c).contains("cannot read ca_file"));

        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "not a certificate\n").expect("write");
        let mut c = cfg();
        c.ca_file = Some(empty);
        assert!(misconfigured(c).contains("no PEM certificate"));

        let cut = dir.path().join("cut.pem");
        fs::write(&cut, "-----BEGIN CERTIFICATE-----\nAAAA\n").expect("write");
        let mut c = cfg();
        c.ca_file = Some(cut);
        let message = misconfigured(c);
        assert!(
            message.contains("is not valid PEM: the line \"-----END CERTIFICATE-----\" is missing"),
            "{message}"
        );

        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["ca".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let good = dir.path().join("ca.pem");
        fs::write(&good, cert.pem()).expect("write");
        let mut c = cfg();
        c.url = "ldaps://h".into();
        c.ca_file = Some(good);
        assert!(LdapDirectory::new(c).expect("valid").tls.is_some());
    }

    #[test]
    fn bind_result_codes() {
        assert!(matches!(classify_user_bind(0), UserBind::Ok));
        for rc in [49, 48, 50, 53, 19, 32] {
            assert!(matches!(classify_user_bind(rc), UserBind::Refused), "{rc}");
        }
        for rc in [8, 13] {
            assert!(matches!(classify_user_bind(rc), UserBind::NeedsTls), "{rc}");
        }
        for rc in [1, 2, 51, 52, 80] {
            assert!(matches!(classify_user_bind(rc), UserBind::Failed), "{rc}");
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("rfc3339").to_utc()
    }

    #[test]
    fn filetime_values() {
        assert_eq!(
            parse_filetime("133000000000000000"),
            Ok(Some(utc("2022-06-18T04:26:40Z")))
        );
        assert_eq!(
            parse_filetime("116444736000000000"),
            Ok(Some(utc("1970-01-01T00:00:00Z")))
        );
        assert_eq!(
            parse_filetime("133000000000000001"),
            Ok(Some(utc("2022-06-18T04:26:40.0000001Z")))
        );
        assert_eq!(
            parse_filetime("134090000001234567"),
            Ok(Some(utc("2025-11-30T18:13:20.1234567Z")))
        );
        assert_eq!(parse_filetime("0"), Ok(None));
        assert_eq!(parse_filetime("9223372036854775807"), Ok(None));
        for bad in ["-1", "", "x", "99999999999999999999"] {
            assert_eq!(parse_filetime(bad), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn generalized_time_values() {
        let ok = [
            ("20261128020304Z", "2026-11-28T02:03:04Z"),
            ("20261128020304.5Z", "2026-11-28T02:03:04.5Z"),
            ("20261128020304,25Z", "2026-11-28T02:03:04.25Z"),
            (
                "20261128020304.123456789Z",
                "2026-11-28T02:03:04.123456789Z",
            ),
            (
                "20261128020304.1234567891234Z",
                "2026-11-28T02:03:04.123456789Z",
            ),
            ("202611280203Z", "2026-11-28T02:03:00Z"),
            ("202611280203.5Z", "2026-11-28T02:03:30Z"),
            ("2026112802Z", "2026-11-28T02:00:00Z"),
            ("2026112802.25Z", "2026-11-28T02:15:00Z"),
            ("20261128020304+0200", "2026-11-28T00:03:04Z"),
            ("20261128020304-05", "2026-11-28T07:03:04Z"),
            ("20261128000000+0130", "2026-11-27T22:30:00Z"),
            ("20161231235960Z", "2017-01-01T00:00:00Z"),
            ("20240229120000Z", "2024-02-29T12:00:00Z"),
        ];
        for (text, want) in ok {
            assert_eq!(parse_generalized_time(text), Some(utc(want)), "{text}");
        }
        for bad in [
            "",
            "20261128020304",
            "2026112802030Z",
            "20261328020304Z",
            "20250229000000Z",
            "20261128240000Z",
            "20261128026000Z",
            "20261128020361Z",
            "20261128020304.Z",
            "20261128020304Z0",
            "20261128020304+2400",
            "20261128020304+0060",
            "20261128020304+1",
            "2026-11-28T02:03:04Z",
            "20261128020304 Z",
            "２0261128020304Z",
        ] {
            assert_eq!(parse_generalized_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn last_login_format_follows_the_value() {
        assert_eq!(
            parse_last_login("133000000000000000"),
            Ok(Some(utc("2022-06-18T04:26:40Z")))
        );
        assert_eq!(parse_last_login("0"), Ok(None));
        assert_eq!(
            parse_last_login("20261128020304Z"),
            Ok(Some(utc("2026-11-28T02:03:04Z")))
        );
        assert_eq!(parse_last_login("yesterday"), Err(()));
        assert_eq!(parse_last_login(""), Err(()));
    }

    #[test]
    fn user_account_control_disabled_bit() {
        assert_eq!(account_disabled("512"), Some(false));
        assert_eq!(account_disabled("514"), Some(true));
        assert_eq!(account_disabled("66050"), Some(true));
        assert_eq!(account_disabled("-2147483646"), Some(true));
        assert_eq!(account_disabled("x"), None);
    }

    #[test]
    fn only_ad_partition_references_are_ignorable() {
        for url in [
            "ldap://DomainDnsZones.corp.example.com/DC=DomainDnsZones,DC=corp,DC=example,DC=com",
            "ldap://ForestDnsZones.corp.example.com/DC=ForestDnsZones,DC=corp,DC=example,DC=com",
            "ldap://corp.example.com/CN=Configuration,DC=corp,DC=example,DC=com",
            "LDAP://corp.example.com/cn=configuration,dc=corp,dc=example,dc=com",
            "ldap://h/dc%3DDomainDnsZones%2Cdc%3Dcorp",
            "ldap://h/DC = DomainDnsZones,DC=corp??sub",
            "ldaps://h:636/DC=ForestDnsZones,DC=corp?objectGUID?sub?(objectClass=*)",
        ] {
            assert!(is_ignorable_reference(url), "{url}");
        }
        for url in [
            "ldap://other.example.com/OU=Sales,DC=corp,DC=example,DC=com",
            "ldap://corp.example.com/DC=corp,DC=example,DC=com",
            "ldap://h/DC=DomainDnsZonesX,DC=corp",
            "ldap://h/OU=x,DC=DomainDnsZones,DC=corp",
            "ldap://h/CN=Configurations,DC=corp",
            "ldap://h/",
            "ldap://h",
            "ldap://DomainDnsZones.corp.example.com",
            "http://h/DC=DomainDnsZones,DC=corp",
            "ldap://h/DC=DomainDnsZones%zz",
            "DC=DomainDnsZones,DC=corp",
        ] {
            assert!(!is_ignorable_reference(url), "{url}");
        }
    }

    #[test]
    fn reference_urls_are_parsed_without_panicking() {
        use ldap3::asn1::{StructureTag, TagClass, PL};
        let url = |s: &str| StructureTag {
            class: TagClass::Universal,
            id: 4,
            payload: PL::P(s.as_bytes().to_vec()),
        };
        let reference = |inner: Vec<StructureTag>| {
            ResultEntry::new(StructureTag {
                class: TagClass::Application,
                id: 19,
                payload: PL::C(inner),
            })
        };
        assert_eq!(
            parse_reference(reference(vec![url("ldap://a/DC=x"), url("ldap://b/DC=x")])),
            Some(vec!["ldap://a/DC=x".to_owned(), "ldap://b/DC=x".to_owned()])
        );
        let not_utf8 = StructureTag {
            class: TagClass::Universal,
            id: 4,
            payload: PL::P(vec![0xff]),
        };
        assert_eq!(parse_reference(reference(vec![not_utf8])), None);
        let nested = reference(vec![StructureTag {
            class: TagClass::Universal,
            id: 16,
            payload: PL::C(vec![]),
        }]);
        assert_eq!(parse_reference(nested), None);
        let primitive = ResultEntry::new(StructureTag {
            class: TagClass::Application,
            id: 19,
            payload: PL::P(vec![]),
        });
        assert_eq!(parse_reference(primitive), None);
    }

    #[test]
    fn scope_filters_escape_the_group_dn() {
        let group = r"cn=Smith\, J (ext)*,ou=groups,dc=x";
        assert_eq!(
            member_of_clause(group, false),
            r"(memberOf=cn=Smith\5c, J \28ext\29\2a,ou=groups,dc=x)"
        );
        assert_eq!(
            member_of_clause(group, true),
            r"(memberOf:1.2.840.113556.1.4.1941:=cn=Smith\5c, J \28ext\29\2a,ou=groups,dc=x)"
        );
        let user = "(objectClass=inetOrgPerson)";
        assert_eq!(
            scope_filter(user, Some(member_of_clause("cn=g,dc=x", false))),
            "(&(objectClass=inetOrgPerson)(memberOf=cn=g,dc=x))"
        );
        assert_eq!(scope_filter(&format!(" {user} "), None), user);
        assert_eq!(
            scope_filter("", Some("(memberOf=cn=g)".into())),
            "(memberOf=cn=g)"
        );
        assert_eq!(scope_filter("  ", None), "(objectClass=*)");
        for ad in [false, true] {
            for u in [user, ""] {
                let f = scope_filter(u, Some(member_of_clause(group, ad)));
                assert!(ldap3::parse_filter(&f).is_ok(), "{f}");
            }
        }
    }

    #[test]
    fn paged_cookie_from_the_response_control() {
        let control = |cookie: &[u8]| {
            Control(
                None,
                PagedResults {
                    size: 0,
                    cookie: cookie.to_vec(),
                }
                .into(),
            )
        };
        assert_eq!(paged_cookie(&[control(b"abc")]), Some(b"abc".to_vec()));
        assert_eq!(paged_cookie(&[control(b"")]), Some(vec![]));
        assert_eq!(paged_cookie(&[]), None);
        let garbage = Control(
            None,
            ldap3::controls::RawControl {
                ctype: PAGED_RESULTS_OID.into(),
                crit: false,
                val: Some(vec![0x30, 0x05, 0x02]),
            },
        );
        assert_eq!(paged_cookie(&[garbage]), None);
        let no_value = Control(
            None,
            ldap3::controls::RawControl {
                ctype: PAGED_RESULTS_OID.into(),
                crit: false,
                val: None,
            },
        );
        assert_eq!(paged_cookie(&[no_value]), None);
    }

    #[test]
    fn sync_attributes_are_the_needed_ones_once() {
        let dir = LdapDirectory::new(cfg()).expect("valid");
        assert_eq!(dir.sync_attributes(), ["entryUUID", "uid"]);
        let mut c = cfg();
        c.active_directory = true;
        c.id_attribute = "objectGUID".into();
        c.username_attribute = "sAMAccountName".into();
        c.last_login_attribute = Some("lastLogonTimestamp".into());
        let dir = LdapDirectory::new(c).expect("valid");
        assert_eq!(
            dir.sync_attributes(),
            [
                "objectGUID",
                "sAMAccountName",
                "userAccountControl",
                "lastLogonTimestamp"
            ]
        );
        let mut c = cfg();
        c.last_login_attribute = Some("UID".into());
        c.username_attribute = "uid".into();
        c.id_attribute = "uid".into();
        let dir = LdapDirectory::new(c).expect("valid");
        assert_eq!(dir.sync_attributes(), ["uid"]);
    }

    fn ad_entry(attrs: &[(&str, &[u8])]) -> Entry {
        Entry {
            dn: "CN=Ann,OU=People,DC=corp".into(),
            attrs: attrs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), vec![v.to_vec()]))
                .collect(),
        }
    }

    #[test]
    fn upstream_user_from_an_ad_entry() {
        let mut c = cfg();
        c.active_directory = true;
        c.id_attribute = "objectGUID".into();
        c.username_attribute = "sAMAccountName".into();
        c.last_login_attribute = Some("lastLogonTimestamp".into());
        let dir = LdapDirectory::new(c).expect("valid");
        let guid: Vec<u8> = (1..=16).collect();
        let user = dir
            .upstream_user(ad_entry(&[
                ("objectGUID", &guid),
                ("sAMAccountName", b"Ann"),
                ("userAccountControl", b"514"),
                ("lastLogonTimestamp", b"133000000000000000"),
            ]))
            .expect("user");
        assert_eq!(
            user,
            UpstreamUser {
                dn: "CN=Ann,OU=People,DC=corp".into(),
                external_id: "04030201-0605-0807-090a-0b0c0d0e0f10".into(),
                username: "Ann".into(),
                disabled: true,
                last_login: Some(utc("2022-06-18T04:26:40Z")),
            }
        );
        let never = dir
            .upstream_user(ad_entry(&[
                ("objectGUID", &guid),
                ("sAMAccountName", b"Ann"),
                ("userAccountControl", b"512"),
            ]))
            .expect("user");
        assert!(!never.disabled);
        assert_eq!(never.last_login, None);

        let err = |attrs: &[(&str, &[u8])]| match dir.upstream_user(ad_entry(attrs)) {
            Err(DirectoryError::Unavailable(m)) => m,
            other => panic!("expected Unavailable, got {other:?}"),
        };
        assert!(
            err(&[("sAMAccountName", b"Ann"), ("userAccountControl", b"512")])
                .contains("objectGUID")
        );
        assert!(
            err(&[("objectGUID", &guid), ("userAccountControl", b"512")])
                .contains("sAMAccountName")
        );
        assert!(err(&[("objectGUID", &guid), ("sAMAccountName", b"Ann")])
            .contains("userAccountControl"));
        assert!(err(&[
            ("objectGUID", &guid),
            ("sAMAccountName", b"Ann"),
            ("userAccountControl", b"512"),
            ("lastLogonTimestamp", b"soon"),
        ])
        .contains("lastLogonTimestamp"));
    }

    #[test]
    fn upstream_user_outside_ad_is_never_disabled() {
        let mut c = cfg();
        c.last_login_attribute = Some("authTimestamp".into());
        let dir = LdapDirectory::new(c).expect("valid");
        let entry = Entry {
            dn: "uid=bob,dc=x".into(),
            attrs: vec![
                ("entryUUID".into(), vec![b"0b5c-id".to_vec()]),
                ("uid".into(), vec![b"bob".to_vec(), b"robert".to_vec()]),
                ("userAccountControl".into(), vec![b"514".to_vec()]),
                ("authTimestamp".into(), vec![b"20261128020304Z".to_vec()]),
            ],
        };
        let user = dir.upstream_user(entry).expect("user");
        assert_eq!(user.username, "bob");
        assert_eq!(user.external_id, "0b5c-id");
        assert!(!user.disabled);
        assert_eq!(user.last_login, Some(utc("2026-11-28T02:03:04Z")));
    }

    #[tokio::test]
    async fn reads_fail_when_the_server_is_unreachable() {
        let dir = LdapDirectory::new(cfg()).expect("valid");
        let mut seen = 0;
        assert!(matches!(
            dir.read_users(|_| seen += 1).await,
            Err(DirectoryError::Unavailable(_))
        ));
        assert_eq!(seen, 0);
        let mut c = cfg();
        c.admin_group = Some("cn=admins,dc=example,dc=org".into());
        let dir = LdapDirectory::new(c).expect("valid");
        assert!(matches!(
            dir.admin_external_ids().await,
            Err(DirectoryError::Unavailable(_))
        ));
        // Without an admin group there is nothing to ask.
        let dir = LdapDirectory::new(cfg()).expect("valid");
        assert_eq!(
            dir.admin_external_ids().await.expect("empty"),
            HashSet::new()
        );
    }

    /// The reconciler runs reads on spawned tasks.
    #[allow(dead_code)]
    fn reads_are_send(dir: &LdapDirectory) {
        fn send<T: Send>(_: T) {}
        send(dir.read_users(|_| {}));
        send(dir.admin_external_ids());
    }

    #[tokio::test]
    async fn empty_password_never_reaches_the_server() {
        // Port 1 on loopback refuses connections: any contact would be Unavailable.
        let dir = LdapDirectory::new(cfg()).expect("valid");
        assert!(matches!(
            dir.authenticate("alice", &Secret::new("")).await,
            Err(DirectoryError::InvalidCredentials)
        ));
        assert!(matches!(
            dir.authenticate("alice", &Secret::new("x")).await,
            Err(DirectoryError::Unavailable(_))
        ));
    }
}
