//! LDAP / Active Directory password check: search the user as a service account, then bind as them.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{
    ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, ResultEntry, Scope,
    SearchOptions,
};
use rustls::{ClientConfig, RootCertStore};

use crate::config::LdapDirectoryConfig;
use crate::directory::{DirectoryError, DirectoryUser};
use crate::secret::Secret;

// LDAP result codes (RFC 4511 appendix A) that the mapping below treats specially.
const RC_SUCCESS: u32 = 0;
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
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
    /// Validates the config (url scheme, starttls only with ldap://, readable CA file with at
    /// least one cert) -> DirectoryError::Misconfigured naming the problem.
    pub fn new(cfg: LdapDirectoryConfig) -> Result<Self, DirectoryError> {
        let bad = |msg: String| Err(DirectoryError::Misconfigured(msg));
        let ldaps = validate_url(&cfg.url)?;
        if cfg.starttls && ldaps {
            return bad(format!(
                "starttls is only for ldap:// URLs; {} already uses TLS",
                cfg.url
            ));
        }
        if cfg.timeout_seconds == 0 {
            return bad("timeout_seconds must be at least 1".into());
        }
        match (&cfg.bind_dn, &cfg.bind_password) {
            (Some(dn), _) if dn.trim().is_empty() => {
                return bad("bind_dn is empty; leave it out for anonymous search".into())
            }
            // A simple bind with a DN and no password is an unauthenticated bind that servers
            // accept as anonymous, which would hide a missing password until searches fail.
            (Some(_), None) => return bad("bind_dn is set but bind_password is missing".into()),
            (Some(_), Some(pw)) if pw.is_empty() => return bad("bind_password is empty".into()),
            (None, Some(_)) => return bad("bind_password is set without bind_dn".into()),
            _ => {}
        }
        if cfg.user_base.trim().is_empty() {
            return bad("user_base is empty".into());
        }
        let user_filter = cfg.user_filter.trim();
        // ldap3's parser also takes a bare `a=b`, which breaks once AND-ed, so insist on parens.
        if !user_filter.is_empty()
            && (!user_filter.starts_with('(')
                || !user_filter.ends_with(')')
                || ldap3::parse_filter(user_filter).is_err())
        {
            return bad(format!(
                "user_filter {:?} is not a valid LDAP filter (it needs the surrounding parentheses)",
                cfg.user_filter
            ));
        }
        for (key, value) in [
            ("username_attribute", &cfg.username_attribute),
            ("id_attribute", &cfg.id_attribute),
            ("display_name_attribute", &cfg.display_name_attribute),
            ("first_name_attribute", &cfg.first_name_attribute),
            ("last_name_attribute", &cfg.last_name_attribute),
            ("email_attribute", &cfg.email_attribute),
        ] {
            if !is_attribute_name(value) {
                return bad(format!("{key} {value:?} is not an LDAP attribute name"));
            }
        }
        if matches!(&cfg.admin_group, Some(g) if g.trim().is_empty()) {
            return bad("admin_group is empty; leave it out to have no admins".into());
        }

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

    async fn authenticate_on(
        &self,
        svc: &mut Ldap,
        username: &str,
        password: &Secret,
    ) -> Result<DirectoryUser, DirectoryError> {
        let entry = self.find_user(svc, username).await?;
        self.user_bind(&entry.dn, password).await?;

        let external_id = self.external_id(&entry)?;
        let is_admin = self.is_admin(svc, &entry.dn).await?;
        let canonical = canonical_username(&entry, &self.cfg.username_attribute, username);
        tracing::debug!(directory = %self.cfg.id, dn = %entry.dn, member_of = entry.values("memberOf").len(), "LDAP user entry");
        tracing::info!(directory = %self.cfg.id, username = %canonical, is_admin, "LDAP login");
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
    async fn find_user(&self, svc: &mut Ldap, username: &str) -> Result<Entry, DirectoryError> {
        let filter = user_filter(
            &self.cfg.user_filter,
            &self.cfg.username_attribute,
            username,
        );
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
        let (entries, res) = self
            .search(svc, group, Scope::Base, &admin_filter(user_dn))
            .await?;
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

/// Accepts `ldap://host[:port][/]` and `ldaps://...`; returns whether it is ldaps.
fn validate_url(url: &str) -> Result<bool, DirectoryError> {
    let bad = |why: &str| {
        Err(DirectoryError::Misconfigured(format!(
            "url {url:?} {why}; expected ldap://host[:port] or ldaps://host[:port]"
        )))
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return bad("has no scheme");
    };
    // ldap3 matches the scheme after lowercasing by the url parser, so accept any case.
    let ldaps = match scheme.to_ascii_lowercase().as_str() {
        "ldap" => false,
        "ldaps" => true,
        _ => return bad("has an unsupported scheme"),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return bad("must not carry a DN, query, or user info");
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => {
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return bad("has an invalid port");
            }
            host
        }
        _ => authority,
    };
    if host.is_empty() {
        return bad("has no host");
    }
    Ok(ldaps)
}

/// Attribute descriptions: a name or OID, optionally with options (`cn;lang-en`).
fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ';' | '.'))
}

fn load_tls_config(path: &Path) -> Result<Arc<ClientConfig>, DirectoryError> {
    let shown = path.display();
    let bad = |msg: String| DirectoryError::Misconfigured(msg);
    let pem = fs::read(path).map_err(|e| bad(format!("cannot read ca_file {shown}: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| bad(format!("ca_file {shown} is not valid PEM: {e}")))?;
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
    fn bad_urls_are_misconfigured() {
        for url in [
            "ldapi:///var/run/slapd.sock",
            "http://x",
            "localhost:389",
            "ldap://",
            "ldap://:389",
            "ldap://h:99999",
            "ldap://h:x",
            "ldap://h/dc=example,dc=org?uid",
        ] {
            let mut c = cfg();
            c.url = url.into();
            assert!(misconfigured(c).contains("url"), "{url}");
        }
    }

    #[test]
    fn starttls_only_with_plain_ldap() {
        let mut c = cfg();
        c.url = "ldaps://h".into();
        c.starttls = true;
        assert!(misconfigured(c).contains("starttls"));
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
    fn other_settings_are_checked() {
        let mut c = cfg();
        c.bind_password = None;
        assert!(misconfigured(c).contains("bind_password"));
        let mut c = cfg();
        c.bind_password = Some(Secret::new(""));
        assert!(misconfigured(c).contains("bind_password"));
        let mut c = cfg();
        c.bind_dn = None;
        assert!(misconfigured(c).contains("bind_dn"));
        let mut c = cfg();
        c.timeout_seconds = 0;
        assert!(misconfigured(c).contains("timeout"));
        let mut c = cfg();
        c.user_filter = "objectClass=person".into();
        assert!(misconfigured(c).contains("user_filter"));
        let mut c = cfg();
        c.username_attribute = "uid)(x".into();
        assert!(misconfigured(c).contains("username_attribute"));
        let mut c = cfg();
        c.user_base = " ".into();
        assert!(misconfigured(c).contains("user_base"));
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
