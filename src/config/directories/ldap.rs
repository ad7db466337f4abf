//! `kind = "ldap"`: an LDAP or Active Directory server people log in through, and how its
//! users are reconciled. Every setting is checked here, once: the directory module builds
//! on a checked [`LdapDirectoryConfig`] and only reads the CA file itself.

use crate::config::credentials::credential_path_opt;
use crate::config::error::{invalid, ConfigError};
use crate::config::layering::{lenient_opt, read_secret_file, string_list_opt};
use crate::ids::DirectoryId;
use crate::secret::Secret;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// Below this many local users the percentage threshold does not apply: one leaver in a
/// directory of three is a third, not a mass removal.
pub const PERCENT_THRESHOLD_MIN_USERS: u64 = 20;

/// Default schedule: every 15 minutes.
pub const DEFAULT_SYNC_SCHEDULE: &str = "0 */15 * * * *";

/// An LDAP / AD directory, as checked at load: the URL is `ldap://host[:port]` or
/// `ldaps://host[:port]` (STARTTLS only with the first), a bind DN comes with a non-empty
/// password, names of attributes are attribute names, and the filter parses.
#[derive(Debug, Clone)]
pub struct LdapDirectoryConfig {
    pub id: DirectoryId,
    pub name: String,
    pub url: String,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    pub user_base: String,
    pub user_filter: String,
    pub username_attribute: String,
    pub id_attribute: String,
    pub display_name_attribute: String,
    pub first_name_attribute: String,
    pub last_name_attribute: String,
    pub email_attribute: String,
    pub admin_group: Option<String>,
    pub timeout_seconds: u64,
    /// Active Directory (objectGUID ids, userAccountControl, nested groups by matching rule,
    /// lastLogonTimestamp) rather than OpenLDAP-style servers.
    pub active_directory: bool,
    /// Only members of this group (DN) are in scope; on AD nested membership counts.
    pub required_group: Option<String>,
    /// Attribute with the last login upstream: `lastLogon` (AD, FILETIME, exact but kept per
    /// domain controller), `lastLogonTimestamp` (AD, replicated, up to 14 days late) or
    /// `authTimestamp` (OpenLDAP lastbind overlay, GeneralizedTime).
    pub last_login_attribute: Option<String>,
    /// Where `lastLogon` is read besides `url` (it is kept per domain controller); only with
    /// `last_login_attribute = "lastLogon"` on Active Directory.
    pub domain_controllers: Option<DomainControllers>,
    /// Entries per page of the paged (RFC 2696) sync search.
    pub page_size: i32,
    pub sync: SyncPolicy,
    /// A reported login event for a username with no record yet creates the user after
    /// looking the name up here (same record as their first login would make).
    pub create_users_from_events: bool,
    /// `change_feed = true`: follow the directory's changes as they happen and suspend people
    /// who leave (the scheduled sync still decides deletions).
    pub change_feed: Option<ChangeFeed>,
    /// The Windows domain names of this directory's people (NetBIOS `CORP`, DNS
    /// `corp.example`), compared without regard to case: a Windows Security event counts only
    /// for an account of one of them. Default: from `user_base`'s `DC=` parts.
    pub windows_domains: Vec<String>,
}

/// Most domain controllers read for `lastLogon` (listed or discovered).
pub const MAX_DOMAIN_CONTROLLERS: usize = 64;

/// The domain controllers whose `lastLogon` a sync reads: Active Directory keeps that
/// attribute per controller and never replicates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainControllers {
    /// `domain_controllers`: these URLs (`ldap://` or `ldaps://`, checked like `url`).
    Listed(Vec<String>),
    /// `domain_controllers_srv`: the controllers the SRV records
    /// `_ldap._tcp.dc._msdcs.<domain>` name, asked of `dns_servers` (empty: the system's
    /// resolver, /etc/resolv.conf).
    Srv {
        domain: String,
        dns_servers: Vec<SocketAddr>,
    },
}

/// How a directory's change feed runs (`change_feed = true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFeed {
    /// Active Directory: how often DirSync is polled (`change_feed_poll_seconds`, default 2).
    /// OpenLDAP's feed is pushed by the server and does not poll.
    pub poll: std::time::Duration,
    /// The window the deletion thresholds apply to (`change_feed_window_minutes`, default
    /// 60): more suspensions than `deletion_threshold` (or `deletion_threshold_percent` of
    /// the directory's users) within it stop the feed until an admin resumes it.
    pub window: chrono::Duration,
}

impl LdapDirectoryConfig {
    /// `last_login_attribute` is AD's per-controller `lastLogon` (any case).
    pub fn reads_last_logon(&self) -> bool {
        self.last_login_attribute
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case("lastLogon"))
    }

    /// The URL is `ldaps://` (TLS from the first byte); the scheme's case does not matter.
    pub fn uses_ldaps(&self) -> bool {
        self.url
            .split_once("://")
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("ldaps"))
    }
}

/// How directory reconciliation runs and how careful it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPolicy {
    /// When runs start (cron with seconds: `sec min hour day month weekday`, parsed at load;
    /// `source()` is the text as written); None = no schedule.
    pub schedule: Option<cron::Schedule>,
    /// Remove users whose account is disabled upstream (AD userAccountControl bit 0x2).
    pub remove_disabled: bool,
    /// A run that would remove more users than this stops as blocked.
    pub deletion_threshold: u64,
    /// …or more than this percentage of the directory's local users (applies from
    /// [`PERCENT_THRESHOLD_MIN_USERS`] local users on).
    pub deletion_threshold_percent: u64,
    /// Hours a vanished user stays suspended before deletion; 0 deletes at once.
    pub removal_grace_hours: u64,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy {
            schedule: default_schedule(),
            remove_disabled: false,
            deletion_threshold: 500,
            deletion_threshold_percent: 25,
            removal_grace_hours: 0,
        }
    }
}

/// [`DEFAULT_SYNC_SCHEDULE`], parsed (a test makes sure it parses).
fn default_schedule() -> Option<cron::Schedule> {
    cron::Schedule::from_str(DEFAULT_SYNC_SCHEDULE).ok()
}

/// An `ldap` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawLdap {
    pub(super) id: String,
    name: Option<String>,
    url: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt")]
    starttls: Option<bool>,
    ca_file: Option<PathBuf>,
    bind_dn: Option<String>,
    bind_password: Option<Secret>,
    bind_password_file: Option<PathBuf>,
    user_base: Option<String>,
    user_filter: Option<String>,
    username_attribute: Option<String>,
    id_attribute: Option<String>,
    display_name_attribute: Option<String>,
    first_name_attribute: Option<String>,
    last_name_attribute: Option<String>,
    email_attribute: Option<String>,
    admin_group: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt")]
    timeout_seconds: Option<u64>,
    server_type: Option<String>,
    required_group: Option<String>,
    last_login_attribute: Option<String>,
    #[serde(default, deserialize_with = "string_list_opt")]
    domain_controllers: Option<Vec<String>>,
    domain_controllers_srv: Option<String>,
    #[serde(default, deserialize_with = "string_list_opt")]
    dns_servers: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient_opt")]
    page_size: Option<i32>,
    sync_schedule: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt")]
    remove_disabled: Option<bool>,
    #[serde(default, deserialize_with = "lenient_opt")]
    deletion_threshold: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt")]
    deletion_threshold_percent: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt")]
    removal_grace_hours: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt")]
    create_users_from_events: Option<bool>,
    #[serde(default, deserialize_with = "lenient_opt")]
    change_feed: Option<bool>,
    #[serde(default, deserialize_with = "lenient_opt")]
    change_feed_poll_seconds: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt")]
    change_feed_window_minutes: Option<u64>,
    #[serde(default, deserialize_with = "string_list_opt")]
    windows_domains: Option<Vec<String>>,
}

impl RawLdap {
    /// `key` names a key of this entry (`directories[i].…`).
    pub(super) fn validate(
        self,
        key: impl Fn(&str) -> String,
    ) -> Result<LdapDirectoryConfig, ConfigError> {
        let url = self.url.ok_or_else(|| invalid(key("url"), "is required"))?;
        let starttls = self.starttls.unwrap_or(false);
        check_url(&url, starttls).map_err(|m| invalid(key(m.0), m.1))?;
        let bind_password = match (self.bind_password, self.bind_password_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    key("bind_password_file"),
                    "set either bind_password or bind_password_file, not both",
                ))
            }
            (Some(p), None) => Some(p),
            (None, Some(path)) => Some(read_secret_file(&key("bind_password_file"), &path)?),
            (None, None) => None,
        };
        match (&self.bind_dn, &bind_password) {
            (Some(dn), _) if dn.trim().is_empty() => {
                return Err(invalid(
                    key("bind_dn"),
                    "is empty; leave it out for anonymous search",
                ))
            }
            // A simple bind with a DN and no password is an unauthenticated bind that servers
            // accept as anonymous, which would hide a missing password until searches fail.
            (Some(_), None) => {
                return Err(invalid(
                    key("bind_password"),
                    "bind_dn is set but bind_password is missing",
                ))
            }
            (Some(_), Some(pw)) if pw.is_empty() => {
                return Err(invalid(key("bind_password"), "is empty"))
            }
            (None, Some(_)) => {
                return Err(invalid(key("bind_dn"), "is required with a bind password"))
            }
            _ => {}
        }
        let user_base = self
            .user_base
            .ok_or_else(|| invalid(key("user_base"), "is required"))?;
        if user_base.trim().is_empty() {
            return Err(invalid(key("user_base"), "is empty"));
        }
        let timeout_seconds = self.timeout_seconds.unwrap_or(10);
        if timeout_seconds == 0 {
            return Err(invalid(key("timeout_seconds"), "must be at least 1"));
        }
        let id_attribute = self.id_attribute.unwrap_or_else(|| "entryUUID".into());
        let active_directory = match self.server_type.as_deref() {
            None => id_attribute.eq_ignore_ascii_case("objectGUID"),
            Some("active_directory") => true,
            Some("openldap") => false,
            Some(other) => {
                return Err(invalid(
                    key("server_type"),
                    format!("`{other}`: use `openldap` or `active_directory`"),
                ))
            }
        };
        let user_filter = self.user_filter.unwrap_or_else(|| {
            // People only: not the OUs and groups `(objectClass=*)` would bring into
            // a sync; on AD not computers or contacts either (both are `person`s).
            if active_directory {
                "(&(objectCategory=person)(objectClass=user))".to_string()
            } else {
                "(objectClass=person)".to_string()
            }
        });
        // ldap3's parser also takes a bare `a=b`, which breaks once AND-ed, so insist on parens.
        if !(user_filter.starts_with('(') && user_filter.ends_with(')')) {
            return Err(invalid(
                key("user_filter"),
                "must be an LDAP filter in parentheses",
            ));
        }
        if ldap3::parse_filter(&user_filter).is_err() {
            return Err(invalid(
                key("user_filter"),
                format!("`{user_filter}` is not a valid LDAP filter"),
            ));
        }
        let username_attribute = self.username_attribute.unwrap_or_else(|| "uid".into());
        let display_name_attribute = self.display_name_attribute.unwrap_or_else(|| "cn".into());
        let first_name_attribute = self
            .first_name_attribute
            .unwrap_or_else(|| "givenName".into());
        let last_name_attribute = self.last_name_attribute.unwrap_or_else(|| "sn".into());
        let email_attribute = self.email_attribute.unwrap_or_else(|| "mail".into());
        for (name, value) in [
            ("username_attribute", &username_attribute),
            ("id_attribute", &id_attribute),
            ("display_name_attribute", &display_name_attribute),
            ("first_name_attribute", &first_name_attribute),
            ("last_name_attribute", &last_name_attribute),
            ("email_attribute", &email_attribute),
        ] {
            if !is_attribute_name(value) {
                return Err(invalid(
                    key(name),
                    format!("`{value}` is not an LDAP attribute name"),
                ));
            }
        }
        if matches!(&self.admin_group, Some(g) if g.trim().is_empty()) {
            return Err(invalid(
                key("admin_group"),
                "is empty; leave it out to have no admins",
            ));
        }
        if matches!(&self.required_group, Some(g) if g.trim().is_empty()) {
            return Err(invalid(
                key("required_group"),
                "is empty; leave it out to admit every user",
            ));
        }
        let page_size = self.page_size.unwrap_or(500);
        if !(1..=100_000).contains(&page_size) {
            return Err(invalid(key("page_size"), "must be between 1 and 100000"));
        }
        let schedule = match self.sync_schedule.as_deref().map(str::trim) {
            None => default_schedule(),
            Some("") => None,
            Some(expr) => Some(cron::Schedule::from_str(expr).map_err(|e| {
                invalid(
                    key("sync_schedule"),
                    format!(
                        "`{expr}` is not a cron expression (sec min hour day month weekday): {e}"
                    ),
                )
            })?),
        };
        let deletion_threshold_percent = self.deletion_threshold_percent.unwrap_or(25);
        if !(1..=100).contains(&deletion_threshold_percent) {
            return Err(invalid(
                key("deletion_threshold_percent"),
                "must be between 1 and 100",
            ));
        }
        if let Some(attr) = &self.last_login_attribute {
            if !["lastLogonTimestamp", "lastLogon", "authTimestamp"]
                .iter()
                .any(|a| a.eq_ignore_ascii_case(attr))
            {
                return Err(invalid(
                    key("last_login_attribute"),
                    format!(
                        "`{attr}`: use lastLogon or lastLogonTimestamp (AD) or authTimestamp (OpenLDAP lastbind)"
                    ),
                ));
            }
        }
        let srv_set = self.domain_controllers_srv.is_some();
        let domain_controllers = domain_controllers(
            self.domain_controllers,
            self.domain_controllers_srv,
            self.dns_servers,
            starttls,
        )
        .map_err(|(k, m)| invalid(key(k), m))?;
        if domain_controllers.is_some() {
            let last_logon = self
                .last_login_attribute
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case("lastLogon"));
            let k = if srv_set {
                "domain_controllers_srv"
            } else {
                "domain_controllers"
            };
            if !active_directory {
                return Err(invalid(key(k), "applies to Active Directory only"));
            }
            if !last_logon {
                return Err(invalid(
                    key(k),
                    "only reads lastLogon: set last_login_attribute = \"lastLogon\"",
                ));
            }
        }
        let removal_grace_hours = self.removal_grace_hours.unwrap_or(0);
        if removal_grace_hours > 87_600 {
            return Err(invalid(
                key("removal_grace_hours"),
                "at most 87600 (10 years)",
            ));
        }
        let change_feed = if self.change_feed.unwrap_or(false) {
            // A syncrepl deletion names the entry only by its entryUUID.
            if !active_directory && !id_attribute.eq_ignore_ascii_case("entryUUID") {
                return Err(invalid(
                    key("change_feed"),
                    "on OpenLDAP needs id_attribute = \"entryUUID\" (the id syncrepl reports)",
                ));
            }
            let poll = self.change_feed_poll_seconds.unwrap_or(2);
            if !(1..=300).contains(&poll) {
                return Err(invalid(
                    key("change_feed_poll_seconds"),
                    "must be between 1 and 300",
                ));
            }
            let window = self.change_feed_window_minutes.unwrap_or(60);
            if !(1..=10_080).contains(&window) {
                return Err(invalid(
                    key("change_feed_window_minutes"),
                    "must be between 1 and 10080 (a week)",
                ));
            }
            Some(ChangeFeed {
                poll: std::time::Duration::from_secs(poll),
                // At most a week, so this cannot overflow.
                window: chrono::Duration::minutes(i64::try_from(window).unwrap_or(60)),
            })
        } else {
            None
        };
        let windows_domains = match self.windows_domains {
            None => domains_of_base(&user_base),
            Some(list) => {
                check_windows_domains(list).map_err(|m| invalid(key("windows_domains"), m))?
            }
        };
        let sync = SyncPolicy {
            schedule,
            remove_disabled: self.remove_disabled.unwrap_or(active_directory),
            deletion_threshold: self.deletion_threshold.unwrap_or(500),
            deletion_threshold_percent,
            removal_grace_hours,
        };
        Ok(LdapDirectoryConfig {
            name: self.name.unwrap_or_else(|| self.id.clone()),
            id: DirectoryId::from(self.id),
            url,
            starttls,
            ca_file: credential_path_opt(&key("ca_file"), self.ca_file)?,
            bind_dn: self.bind_dn,
            bind_password,
            user_base,
            user_filter,
            username_attribute,
            id_attribute,
            display_name_attribute,
            first_name_attribute,
            last_name_attribute,
            email_attribute,
            admin_group: self.admin_group,
            timeout_seconds,
            active_directory,
            required_group: self.required_group,
            last_login_attribute: self.last_login_attribute,
            domain_controllers,
            page_size,
            sync,
            create_users_from_events: self.create_users_from_events.unwrap_or(false),
            change_feed,
            windows_domains,
        })
    }
}

/// A NetBIOS or DNS domain name as far as it matters here: not empty, at most 255 bytes,
/// and nothing that belongs to an account name (`\`, `@`), a path or a space.
fn is_domain_name(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 255
        && !d
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '\\' | '@' | '/'))
}

/// Most names `windows_domains` may list.
const MAX_WINDOWS_DOMAINS: usize = 50;

/// The Windows domains of a directory whose `windows_domains` is unset: `DC=corp,DC=example`
/// is the DNS name `corp.example` and, as NetBIOS names usually are, its first label `CORP`.
/// A base without `DC=` parts has none (no Windows event then counts; the docs say to set
/// the list).
fn domains_of_base(user_base: &str) -> Vec<String> {
    let labels: Vec<String> = user_base
        .split(',')
        .filter_map(|rdn| {
            let (attr, value) = rdn.split_once('=')?;
            attr.trim()
                .eq_ignore_ascii_case("dc")
                .then(|| value.trim().to_string())
        })
        .filter(|v| !v.is_empty())
        .collect();
    let Some(first) = labels.first() else {
        return Vec::new();
    };
    let netbios = first.to_ascii_uppercase();
    let dns = labels.join(".").to_ascii_lowercase();
    if labels.len() == 1 {
        return vec![netbios];
    }
    vec![netbios, dns]
}

/// `windows_domains` as written: 1 to [`MAX_WINDOWS_DOMAINS`] names, each a NetBIOS or DNS
/// domain name (no spaces, `\`, `@` or `/`), trimmed; an error says what is wrong.
fn check_windows_domains(list: Vec<String>) -> Result<Vec<String>, String> {
    if list.is_empty() {
        return Err("is empty; leave it out to derive the domains from user_base".into());
    }
    if list.len() > MAX_WINDOWS_DOMAINS {
        return Err(format!("at most {MAX_WINDOWS_DOMAINS} names"));
    }
    list.into_iter()
        .map(|d| {
            let d = d.trim().to_string();
            if !is_domain_name(&d) {
                return Err(format!(
                    "`{d}` is not a domain name: give the NetBIOS name (CORP) or the DNS name (corp.example)"
                ));
            }
            Ok(d)
        })
        .collect()
}

/// Accepts `ldap://host[:port][/]` and `ldaps://...` (STARTTLS only with `ldap://`); an
/// error is the key at fault and what is wrong.
fn check_url(url: &str, starttls: bool) -> Result<(), (&'static str, String)> {
    let parsed = url::Url::parse(url).map_err(|e| ("url", format!("`{url}`: {e}")))?;
    // The URL parser lower-cases the scheme, as ldap3 does: any case is accepted.
    match parsed.scheme() {
        "ldap" => {}
        "ldaps" if starttls => return Err(("starttls", "cannot be used with ldaps://".into())),
        "ldaps" => {}
        other => return Err(("url", format!("scheme `{other}`: use ldap:// or ldaps://"))),
    }
    let bad = |why: &str| {
        Err((
            "url",
            format!("`{url}` {why}; expected ldap://host[:port] or ldaps://host[:port]"),
        ))
    };
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
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
    Ok(())
}

/// `domain_controllers`, or `domain_controllers_srv` with `dns_servers`; an error is the key at
/// fault and what is wrong.
fn domain_controllers(
    listed: Option<Vec<String>>,
    srv: Option<String>,
    dns_servers: Option<Vec<String>>,
    starttls: bool,
) -> Result<Option<DomainControllers>, (&'static str, String)> {
    match (listed, srv) {
        (Some(_), Some(_)) => Err((
            "domain_controllers_srv",
            "set either domain_controllers or domain_controllers_srv, not both".into(),
        )),
        (Some(urls), None) => {
            if dns_servers.is_some() {
                return Err((
                    "dns_servers",
                    "applies to domain_controllers_srv only".into(),
                ));
            }
            if urls.is_empty() {
                return Err((
                    "domain_controllers",
                    "is empty; leave it out to read lastLogon from url only".into(),
                ));
            }
            if urls.len() > MAX_DOMAIN_CONTROLLERS {
                return Err((
                    "domain_controllers",
                    format!("at most {MAX_DOMAIN_CONTROLLERS} controllers"),
                ));
            }
            for url in &urls {
                check_url(url, starttls).map_err(|(_, m)| ("domain_controllers", m))?;
            }
            Ok(Some(DomainControllers::Listed(urls)))
        }
        (None, Some(domain)) => {
            let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            };
            if domain.len() > 253 || !domain.split('.').all(label_ok) {
                return Err((
                    "domain_controllers_srv",
                    format!("`{domain}` is not a DNS domain name (such as corp.example.com)"),
                ));
            }
            let dns_servers = dns_servers
                .unwrap_or_default()
                .iter()
                .map(|s| parse_dns_server(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| ("dns_servers", m))?;
            Ok(Some(DomainControllers::Srv {
                domain,
                dns_servers,
            }))
        }
        (None, None) if dns_servers.is_some() => Err((
            "dns_servers",
            "applies to domain_controllers_srv only".into(),
        )),
        (None, None) => Ok(None),
    }
}

/// `10.0.0.53`, `10.0.0.53:5353`, `[2001:db8::53]:53` or `2001:db8::53`; port 53 by default.
fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    text.parse::<SocketAddr>()
        .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("`{text}` is not an IP address (with an optional :port)"))
}

/// Attribute descriptions: a name or OID, optionally with options (`cn;lang-en`).
fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ';' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::io::Write;

    /// An `ldap` entry that loads once it has a bind password (or loses its bind DN).
    const ENTRY: &str = "[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nuser_base = \"ou=people,dc=example,dc=org\"\n";

    /// Loads [`ENTRY`] followed by `extra`, with `ACCESSKEYD_DIRECTORIES__0__{key}` set for
    /// each pair (so the environment's text values go through the kind's struct too).
    fn load(extra: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(format!("{ENTRY}{extra}").as_bytes()).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (format!("ACCESSKEYD_DIRECTORIES__0__{k}"), v.to_string()))
            .collect();
        Config::load_from(Some(f.path()), &env)
    }

    fn ldap(c: Config) -> LdapDirectoryConfig {
        match c.directories.into_iter().nth(1) {
            Some(crate::config::DirectoryConfig::Ldap(l)) => *l,
            other => panic!("expected ldap, got {other:?}"),
        }
    }

    /// The error of a configuration that must not load: it names `key` of the entry.
    fn refused(extra: &str, env: &[(&str, &str)], key: &str) {
        let err = load(extra, env).unwrap_err().to_string();
        assert!(
            err.contains(&format!("`directories[0].{key}`")),
            "{extra:?} {env:?}: {err}"
        );
    }

    const BIND: &str = "bind_dn = \"cn=svc,dc=example,dc=org\"\nbind_password = \"pw\"\n";

    #[test]
    fn the_default_schedule_parses() {
        assert_eq!(
            SyncPolicy::default()
                .schedule
                .as_ref()
                .map(cron::Schedule::source),
            Some(DEFAULT_SYNC_SCHEDULE)
        );
    }

    #[test]
    fn valid_configs_load() {
        let l = ldap(load(BIND, &[]).unwrap());
        assert!(!l.uses_ldaps() && !l.starttls);
        let l = ldap(load(BIND, &[("URL", "ldaps://ldap.example.org:636/")]).unwrap());
        assert!(l.uses_ldaps());
        let l = ldap(load("", &[("URL", "LDAP://[::1]:389"), ("STARTTLS", "true")]).unwrap());
        assert!(!l.uses_ldaps() && l.starttls && l.bind_dn.is_none());
        let l = ldap(load("", &[("URL", "LDAPS://h")]).unwrap());
        assert!(l.uses_ldaps());
    }

    #[test]
    fn a_change_feed_is_opt_in_with_its_defaults_and_checked_limits() {
        assert_eq!(ldap(load(BIND, &[]).unwrap()).change_feed, None);
        let l = ldap(load(BIND, &[("CHANGE_FEED", "true")]).unwrap());
        assert_eq!(
            l.change_feed,
            Some(ChangeFeed {
                poll: std::time::Duration::from_secs(2),
                window: chrono::Duration::minutes(60),
            })
        );
        let l = ldap(
            load(
                BIND,
                &[
                    ("CHANGE_FEED", "true"),
                    ("CHANGE_FEED_POLL_SECONDS", "5"),
                    ("CHANGE_FEED_WINDOW_MINUTES", "10080"),
                ],
            )
            .unwrap(),
        );
        let feed = l.change_feed.unwrap();
        assert_eq!(feed.poll, std::time::Duration::from_secs(5));
        assert_eq!(feed.window, chrono::Duration::weeks(1));
        for (k, v) in [
            ("CHANGE_FEED_POLL_SECONDS", "0"),
            ("CHANGE_FEED_POLL_SECONDS", "301"),
            ("CHANGE_FEED_WINDOW_MINUTES", "0"),
            ("CHANGE_FEED_WINDOW_MINUTES", "10081"),
        ] {
            refused(
                BIND,
                &[("CHANGE_FEED", "true"), (k, v)],
                &k.to_ascii_lowercase(),
            );
        }
        // syncrepl names a deleted entry only by its entryUUID.
        refused(
            BIND,
            &[("CHANGE_FEED", "true"), ("ID_ATTRIBUTE", "uid")],
            "change_feed",
        );
        // On AD the feed reads objectGUID itself.
        let ad = ldap(
            load(
                BIND,
                &[("CHANGE_FEED", "true"), ("ID_ATTRIBUTE", "objectGUID")],
            )
            .unwrap(),
        );
        assert!(ad.active_directory && ad.change_feed.is_some());
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
            "ldap://u@h",
        ] {
            refused(BIND, &[("URL", url)], "url");
        }
    }

    #[test]
    fn starttls_only_with_plain_ldap() {
        refused(
            BIND,
            &[("URL", "ldaps://h"), ("STARTTLS", "true")],
            "starttls",
        );
    }

    #[test]
    fn other_settings_are_checked() {
        let err = load("bind_dn = \"cn=svc\"\n", &[]).unwrap_err().to_string();
        assert!(
            err.contains("`directories[0].bind_password`")
                && err.contains("bind_dn is set but bind_password is missing"),
            "{err}"
        );
        refused(
            "bind_dn = \"cn=svc\"\nbind_password = \"\"\n",
            &[],
            "bind_password",
        );
        refused("bind_password = \"pw\"\n", &[], "bind_dn");
        refused("bind_dn = \" \"\nbind_password = \"pw\"\n", &[], "bind_dn");
        refused(BIND, &[("TIMEOUT_SECONDS", "0")], "timeout_seconds");
        for filter in ["objectClass=person", "(|(a=b)(c))", ""] {
            refused(BIND, &[("USER_FILTER", filter)], "user_filter");
        }
        for attribute in [
            "username_attribute",
            "id_attribute",
            "display_name_attribute",
            "first_name_attribute",
            "last_name_attribute",
            "email_attribute",
        ] {
            refused(
                BIND,
                &[(&attribute.to_ascii_uppercase(), "uid)(x")],
                attribute,
            );
        }
        refused(BIND, &[("USER_BASE", " ")], "user_base");
        refused(BIND, &[("ADMIN_GROUP", " ")], "admin_group");
    }

    #[test]
    fn windows_domains_default_to_the_base_and_are_checked() {
        // ENTRY's user_base is ou=people,dc=example,dc=org.
        assert_eq!(
            ldap(load(BIND, &[]).unwrap()).windows_domains,
            ["EXAMPLE", "example.org"]
        );
        assert_eq!(
            ldap(load(BIND, &[("USER_BASE", "CN=Users,DC=Corp,DC=Example,DC=Com")]).unwrap())
                .windows_domains,
            ["CORP", "corp.example.com"]
        );
        assert_eq!(
            ldap(load(BIND, &[("USER_BASE", "ou=people,dc=lab")]).unwrap()).windows_domains,
            ["LAB"]
        );
        assert!(
            ldap(load(BIND, &[("USER_BASE", "o=corp")]).unwrap())
                .windows_domains
                .is_empty(),
            "no DC= parts, no domains"
        );
        let l = ldap(
            load(
                &format!("{BIND}windows_domains = [\"EU\", \" ad.corp.example \"]\n"),
                &[],
            )
            .unwrap(),
        );
        assert_eq!(l.windows_domains, ["EU", "ad.corp.example"]);
        let l = ldap(load(BIND, &[("WINDOWS_DOMAINS", "EU, eu.corp.example")]).unwrap());
        assert_eq!(l.windows_domains, ["EU", "eu.corp.example"]);
        refused(
            &format!("{BIND}windows_domains = []\n"),
            &[],
            "windows_domains",
        );
        for bad in ["CORP\\\\alice", "a b", "alice@corp", "x/y", " "] {
            refused(
                &format!("{BIND}windows_domains = [\"{bad}\"]\n"),
                &[],
                "windows_domains",
            );
        }
        let many: Vec<String> = (0..51).map(|i| format!("\"D{i}\"")).collect();
        refused(
            &format!("{BIND}windows_domains = [{}]\n", many.join(", ")),
            &[],
            "windows_domains",
        );
    }

    #[test]
    fn sync_settings_are_checked() {
        refused(BIND, &[("REQUIRED_GROUP", " ")], "required_group");
        refused(
            BIND,
            &[("LAST_LOGIN_ATTRIBUTE", "last login")],
            "last_login_attribute",
        );
        refused(BIND, &[("PAGE_SIZE", "0")], "page_size");
        let ad_last_logon = [
            ("SERVER_TYPE", "active_directory"),
            ("LAST_LOGIN_ATTRIBUTE", "lastLogon"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = ad_last_logon.to_vec();
            all.extend_from_slice(extra);
            all
        };
        refused(
            BIND,
            &with(&[("DOMAIN_CONTROLLERS", "http://dc2.corp.example")]),
            "domain_controllers",
        );
        refused(
            BIND,
            &with(&[
                ("DOMAIN_CONTROLLERS", "ldap://dc2"),
                ("DOMAIN_CONTROLLERS_SRV", "corp.example"),
            ]),
            "domain_controllers_srv",
        );
        refused(
            BIND,
            &with(&[("DOMAIN_CONTROLLERS_SRV", "corp example")]),
            "domain_controllers_srv",
        );
        refused(
            BIND,
            &with(&[
                ("DOMAIN_CONTROLLERS_SRV", "corp.example"),
                ("DNS_SERVERS", "dns.corp.example"),
            ]),
            "dns_servers",
        );
        refused(BIND, &with(&[("DNS_SERVERS", "10.0.0.53")]), "dns_servers");
        refused(
            BIND,
            &[
                ("SERVER_TYPE", "active_directory"),
                ("LAST_LOGIN_ATTRIBUTE", "lastLogonTimestamp"),
                ("DOMAIN_CONTROLLERS", "ldap://dc2"),
            ],
            "domain_controllers",
        );
        refused(
            BIND,
            &[
                ("LAST_LOGIN_ATTRIBUTE", "lastLogon"),
                ("DOMAIN_CONTROLLERS", "ldap://dc2"),
            ],
            "domain_controllers",
        );
        let l = ldap(
            load(
                BIND,
                &with(&[(
                    "DOMAIN_CONTROLLERS",
                    "ldap://dc1:389, ldaps://dc2.corp.example",
                )]),
            )
            .unwrap(),
        );
        assert_eq!(
            l.domain_controllers,
            Some(DomainControllers::Listed(vec![
                "ldap://dc1:389".into(),
                "ldaps://dc2.corp.example".into()
            ]))
        );
        let l = ldap(
            load(
                BIND,
                &with(&[
                    ("DOMAIN_CONTROLLERS_SRV", "Corp.Example."),
                    ("DNS_SERVERS", "10.0.0.53, [::1]:5353"),
                ]),
            )
            .unwrap(),
        );
        assert_eq!(
            l.domain_controllers,
            Some(DomainControllers::Srv {
                domain: "corp.example".into(),
                dns_servers: vec![
                    "10.0.0.53:53".parse().unwrap(),
                    "[::1]:5353".parse().unwrap()
                ],
            })
        );
        refused(
            BIND,
            &[("DELETION_THRESHOLD_PERCENT", "0")],
            "deletion_threshold_percent",
        );
        refused(BIND, &[("SYNC_SCHEDULE", "*/5")], "sync_schedule");
        let l = ldap(load(BIND, &[("SYNC_SCHEDULE", " 0 0 * * * * ")]).unwrap());
        assert_eq!(
            l.sync.schedule.as_ref().map(cron::Schedule::source),
            Some("0 0 * * * *"),
            "parsed once, at load, from the trimmed text"
        );
    }
}
