//! LDAP / Active Directory password check: search the user as a service account, then bind as them.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Scope, SearchOptions};
use rustls::ClientConfig;

use crate::config::LdapDirectoryConfig;
use crate::directory::{DirectoryError, DirectoryUser};
use crate::secret::Secret;

mod controllers;
mod dirsync;
pub mod feed;
mod read;
mod syncrepl;
mod tls;
mod values;

pub use controllers::{ControllerRead, ControllersRead};
use tls::load_tls_config;
use values::*;

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
    /// DirSync found the service account without "Replicating Directory Changes": later polls
    /// ask with LDAP_DIRSYNC_OBJECT_SECURITY straight away (see `dirsync.rs`).
    dirsync_object_security: AtomicBool,
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
        if cfg.reads_last_logon() && cfg.domain_controllers.is_none() {
            tracing::warn!(directory = %cfg.id, "lastLogon is kept per domain controller and only {} is read: sign-ins at other controllers are missed; list them in domain_controllers or set domain_controllers_srv", cfg.url);
        }
        let timeout = Duration::from_secs(cfg.timeout_seconds);
        Ok(LdapDirectory {
            cfg,
            tls,
            timeout,
            dirsync_object_security: AtomicBool::new(false),
        })
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

#[cfg(test)]
mod tests;
