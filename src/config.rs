//! Settings in layers: built-in defaults, then a TOML file, then `ACCESSKEYD_*` variables.
//!
//! Unknown keys are an error that names the key, so a typo never silently falls back to a
//! default. Secrets may come from files (`*_file` keys); they are read once, here.

use crate::secret::Secret;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use std::collections::HashSet;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Prefix of environment variables that override the file. Nested keys are joined with `__`,
/// array entries are addressed by index: `ACCESSKEYD_DIRECTORIES__1__BIND_PASSWORD_FILE`.
pub const ENV_PREFIX: &str = "ACCESSKEYD_";

/// Variables with the prefix that are not configuration keys: `ACCESSKEYD_CONFIG` names the
/// file itself (read by the command line), `ACCESSKEYD_TEST_*` belong to the test suite.
fn is_reserved_env(name: &str) -> bool {
    name == "ACCESSKEYD_CONFIG" || name.starts_with("ACCESSKEYD_TEST_")
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The whole configuration after layering and validation.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub access_keys: AccessKeysConfig,
    pub sessions: SessionsConfig,
    pub login_throttle: LoginThrottleConfig,
    pub proxy_auth: Option<ProxyAuthConfig>,
    pub windows: Option<WindowsConfig>,
    pub notifications: Option<NotificationsConfig>,
    pub password_hashing: PasswordHashingConfig,
    pub audit: AuditConfig,
    pub credential_cache: CredentialCacheConfig,
    pub log: LogConfig,
    pub directories: Vec<DirectoryConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port the HTTP API listens on.
    pub listen: String,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[serde(deserialize_with = "lenient")]
    pub max_body_bytes: usize,
    /// The base URL people reach accesskeyd at (OIDC redirect URIs are built from it).
    /// Default `http://{listen}`; required behind a reverse proxy.
    pub public_url: Option<String>,
    /// Reverse proxies (CIDRs or addresses) whose client-address header is believed. Empty:
    /// the TCP peer is the client, and forwarding headers are ignored.
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Which header trusted proxies name the client in.
    pub client_address_header: ClientAddressHeader,
    /// A connection must deliver a whole request head within this many seconds of its
    /// first byte (or of being opened).
    #[serde(deserialize_with = "lenient")]
    pub header_read_timeout_seconds: u64,
    /// An idle keep-alive connection is closed after this many seconds.
    #[serde(deserialize_with = "lenient")]
    pub keep_alive_timeout_seconds: u64,
    /// A request (body read and handler) taking longer gets 503 and is abandoned.
    #[serde(deserialize_with = "lenient")]
    pub request_timeout_seconds: u64,
    /// Open connections at most; further ones wait in the kernel's accept queue.
    /// 0 = three quarters of the process's open-file limit.
    #[serde(deserialize_with = "lenient")]
    pub max_connections: usize,
    /// Address:port of the management listener (`/metrics`, `/healthz`, `/readyz`); empty =
    /// none. `/metrics` is not served on `listen`.
    pub management_listen: String,
}

/// The header a trusted proxy puts the client's address in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum ClientAddressHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, Traefik, HAProxy, most balancers).
    #[default]
    #[serde(rename = "x-forwarded-for", alias = "X-Forwarded-For")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    #[serde(rename = "forwarded", alias = "Forwarded")]
    Forwarded,
}

impl ServerConfig {
    /// `public_url` without a trailing slash, or `http://{listen}`.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 64 * 1024,
            public_url: None,
            trusted_proxies: Vec::new(),
            client_address_header: ClientAddressHeader::XForwardedFor,
            header_read_timeout_seconds: 10,
            keep_alive_timeout_seconds: 60,
            request_timeout_seconds: 60,
            max_connections: 0,
            management_listen: "127.0.0.1:9464".into(),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (relative paths are relative to the working directory) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DB`. May hold a password: never printed whole.
    pub url: String,
    /// Read `url` from this file instead (it holds the database password).
    pub url_file: Option<PathBuf>,
    #[serde(deserialize_with = "lenient")]
    pub pool_size: u32,
    /// How long a request waits for a free connection before it gets 503.
    #[serde(deserialize_with = "lenient")]
    pub connect_timeout_seconds: u64,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &crate::transfer::redact(&self.url))
            .field("url_file", &self.url_file)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_seconds", &self.connect_timeout_seconds)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://accesskeyd.db".into(),
            url_file: None,
            pool_size: 8,
            connect_timeout_seconds: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessKeysConfig {
    /// Initial value of the runtime option `Authentication/AccessKey/ValidityWithoutUserLogin`
    /// (days). Used only until an admin changes the option; the database value wins after that.
    #[serde(deserialize_with = "lenient")]
    pub validity_without_user_login_days: i64,
    /// Most keys one user may hold at once.
    #[serde(deserialize_with = "lenient")]
    pub max_per_user: i64,
    /// Longest label accepted, in characters.
    #[serde(deserialize_with = "lenient")]
    pub max_label_length: usize,
    /// Let a session opened with an access key create further keys. Off: a leaked key cannot
    /// mint itself a successor that outlives its deletion.
    #[serde(deserialize_with = "lenient")]
    pub allow_key_sessions_to_create_keys: bool,
    /// `lastUsed` is written at most this often per key, so key traffic does not turn into
    /// one database write per request.
    #[serde(deserialize_with = "lenient")]
    pub last_used_write_interval_seconds: u64,
    /// Initial value of `Authentication/AccessKey/Creation/Enabled`: people create their own
    /// keys (false: only admins create keys).
    #[serde(deserialize_with = "lenient")]
    pub creation_enabled: bool,
    /// Initial value of `Authentication/AccessKey/ServicePrincipal/MaxLifetime` (days).
    #[serde(deserialize_with = "lenient")]
    pub service_account_max_lifetime_days: i64,
    /// Initial value of `Authentication/AccessKey/WarningDays`.
    #[serde(deserialize_with = "lenient")]
    pub warning_days: i64,
}

impl Default for AccessKeysConfig {
    fn default() -> Self {
        AccessKeysConfig {
            validity_without_user_login_days: 14,
            max_per_user: 20,
            max_label_length: 200,
            allow_key_sessions_to_create_keys: false,
            last_used_write_interval_seconds: 60,
            creation_enabled: true,
            service_account_max_lifetime_days: 365,
            warning_days: 3,
        }
    }
}

/// Sign-in through a trusted reverse proxy that did the Kerberos (Negotiate) handshake itself
/// and passes the user in a header, with a shared secret proving the request came through it.
#[derive(Debug, Clone)]
pub struct ProxyAuthConfig {
    /// The LDAP / AD directory the names belong to (looked up there, no password).
    pub directory: String,
    pub user_header: String,
    pub secret_header: String,
    pub secret: Secret,
    /// Peer addresses the proxy connects from; requests from anywhere else are ignored.
    pub trusted_addresses: Vec<std::net::IpAddr>,
    /// Kerberos realms whose `user@REALM` names are accepted (upper-cased); empty = any.
    pub allowed_realms: Vec<String>,
}

/// Warnings before access keys stop working: by e-mail and/or a signed webhook.
#[derive(Debug, Clone)]
pub struct NotificationsConfig {
    /// Cron expression (seconds first) of the daily check; runs on the leader replica.
    pub schedule: String,
    pub smtp: Option<SmtpConfig>,
    pub webhook: Option<WebhookConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587); refuses servers without it.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a test server.
    None,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// PEM CA certificate(s) for a relay with a private CA; default: the public web roots.
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender address, e.g. `accesskeyd <noreply@example.com>`.
    pub from: String,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// HMAC-SHA256 key of the `X-Accesskeyd-Signature` header.
    pub secret: Secret,
    /// Attempts per warning (the first included); waits double from `retry_base_ms`.
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifications {
    schedule: Option<String>,
    smtp: Option<RawSmtp>,
    webhook: Option<RawWebhook>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt")]
    port: Option<u16>,
    security: Option<SmtpSecurity>,
    ca_file: Option<PathBuf>,
    username: Option<String>,
    password: Option<Secret>,
    password_file: Option<PathBuf>,
    from: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt")]
    timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Option<String>,
    secret: Option<Secret>,
    secret_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "lenient_opt")]
    max_attempts: Option<u32>,
    #[serde(default, deserialize_with = "lenient_opt")]
    retry_base_ms: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt")]
    timeout_seconds: Option<u64>,
}

/// Kerberos (SPNEGO) sign-in done by accesskeyd itself (`kerberos` cargo feature).
#[derive(Debug, Clone)]
pub struct WindowsConfig {
    /// Keytab holding the service principal's keys (read at every sign-in, so a rotated
    /// keytab takes effect without a restart).
    pub keytab: PathBuf,
    /// `HTTP/host.example.com` (any realm in the keytab) or `HTTP/host.example.com@REALM`;
    /// unset: any principal in the keytab.
    pub service_principal: Option<String>,
    /// Which directory the people of each Kerberos realm belong to.
    pub realms: Vec<RealmMapping>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmMapping {
    /// Kerberos realm, matched without regard to case (`CORP.EXAMPLE.COM`).
    pub realm: String,
    /// Id of an LDAP / AD directory.
    pub directory: String,
    /// Unset: the principal's name part (`alice` of `alice@CORP`) is looked up like a login
    /// name (the directory's `username_attribute`, e.g. `sAMAccountName`). Set (e.g.
    /// `userPrincipalName`): the whole principal is looked up in this attribute.
    #[serde(default)]
    pub match_attribute: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindows {
    keytab: Option<PathBuf>,
    service_principal: Option<String>,
    #[serde(default)]
    realms: Vec<RealmMapping>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxyAuth {
    directory: String,
    user_header: Option<String>,
    secret_header: Option<String>,
    secret: Option<Secret>,
    secret_file: Option<PathBuf>,
    #[serde(deserialize_with = "string_list")]
    trusted_addresses: Vec<String>,
    #[serde(default, deserialize_with = "string_list")]
    allowed_realms: Vec<String>,
}

/// Limits on failed logins, against password guessing (and directory account lockouts that
/// guessing through us would cause) and against forcing argon2 work with bad credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginThrottleConfig {
    /// Failed attempts for one username or key from one address within the window before
    /// further attempts get 429. 0 turns throttling off.
    #[serde(deserialize_with = "lenient")]
    pub max_failures: u32,
    /// Failed attempts from one address, all names together, within the window before
    /// further attempts get 429. 0 turns this limit off.
    #[serde(deserialize_with = "lenient")]
    pub max_failures_per_address: u32,
    /// The window, in seconds; a throttled caller waits until it has passed.
    #[serde(deserialize_with = "lenient")]
    pub window_seconds: u64,
    /// Counters kept at most (each a fixed few dozen bytes); the oldest go first.
    #[serde(deserialize_with = "lenient")]
    pub max_entries: usize,
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        LoginThrottleConfig {
            max_failures: 10,
            max_failures_per_address: 100,
            window_seconds: 300,
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Lifetime of a session opened by an interactive login, in minutes.
    #[serde(deserialize_with = "lenient")]
    pub interactive_ttl_minutes: i64,
    /// Lifetime of a session opened by logging in with an access key, in minutes. The key's
    /// validity is checked on every request as well.
    #[serde(deserialize_with = "lenient")]
    pub access_key_ttl_minutes: i64,
    /// How often expired sessions are removed from the database, in seconds.
    #[serde(deserialize_with = "lenient")]
    pub cleanup_interval_seconds: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            interactive_ttl_minutes: 12 * 60,
            access_key_ttl_minutes: 60,
            cleanup_interval_seconds: 300,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordHashingConfig {
    /// argon2id memory cost in KiB (OWASP: 19456 = 19 MiB).
    #[serde(deserialize_with = "lenient")]
    pub memory_kib: u32,
    #[serde(deserialize_with = "lenient")]
    pub iterations: u32,
    #[serde(deserialize_with = "lenient")]
    pub parallelism: u32,
    /// Hashes computed at once; bounds the memory argon2 can take (this × memory_kib).
    /// 0 = the number of CPUs.
    #[serde(deserialize_with = "lenient")]
    pub max_concurrent: usize,
    /// Hashes that may wait for a free slot; past this, work is refused at once with 503
    /// and Retry-After. Each client address gets a fair share. 0 = 4 × max_concurrent.
    #[serde(deserialize_with = "lenient")]
    pub max_queue: usize,
}

impl Default for PasswordHashingConfig {
    fn default() -> Self {
        PasswordHashingConfig {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 0,
            max_queue: 0,
        }
    }
}

/// The audit trail's upkeep.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Events older than this many days are removed by the cleanup job. 0 keeps them forever.
    #[serde(deserialize_with = "lenient")]
    pub retention_days: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_days: 400,
        }
    }
}

/// What each process remembers of credentials it has verified, so that known keys and
/// sessions are decided without a database read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialCacheConfig {
    /// Off: every request reads the database (as before).
    #[serde(deserialize_with = "lenient")]
    pub enabled: bool,
    /// A background re-check compares every remembered entry with the database this often,
    /// in seconds: the most an entry can lag behind a change that was not announced.
    #[serde(deserialize_with = "lenient")]
    pub recheck_seconds: u64,
    /// Keys, sessions and users remembered at most (each kind).
    #[serde(deserialize_with = "lenient")]
    pub max_entries: usize,
}

impl Default for CredentialCacheConfig {
    fn default() -> Self {
        CredentialCacheConfig {
            enabled: true,
            recheck_seconds: 30,
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// tracing filter, e.g. `info` or `accesskeyd=debug,info`. `RUST_LOG` wins when set.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

/// One configured directory.
#[derive(Debug, Clone)]
pub enum DirectoryConfig {
    Builtin(BuiltinDirectoryConfig),
    Ldap(Box<LdapDirectoryConfig>),
    Oidc(Box<OidcDirectoryConfig>),
}

/// An OpenID Connect provider people log in through.
#[derive(Debug, Clone)]
pub struct OidcDirectoryConfig {
    pub id: String,
    pub name: String,
    /// The issuer URL; endpoints and keys come from its `/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// Scopes asked for (`openid` is always asked for).
    pub scopes: Vec<String>,
    /// The claim that becomes the username (default `preferred_username`).
    pub username_claim: String,
    /// The claim listing the person's groups (e.g. `groups`), if the provider sends one.
    pub groups_claim: Option<String>,
    /// Members of this group (a value of `groups_claim`) are admins.
    pub admin_group: Option<String>,
    /// If not empty, only members of one of these groups may log in.
    pub allowed_groups: Vec<String>,
    /// Timeout of each request to the provider.
    pub timeout_seconds: u64,
    /// Hours a user deprovisioned through SCIM stays suspended (keys refused, restorable by
    /// the provider) before deletion; 0 deletes at once.
    pub removal_grace_hours: u64,
    /// The admin vouches that only the provider (its admins) sets `username_claim`, never the
    /// person: a SCIM-provisioned record may then be linked at a first login by its userName,
    /// not only by `externalId` = `sub`. Off by default: many providers let people edit the
    /// claim, and a name anyone can choose must never decide whose record a login gets.
    pub username_claim_is_provider_controlled: bool,
    /// Logins started and not finished that one client address (an IPv6 /64) may have
    /// pending at once: starting one needs no credentials, so one address alone must not be
    /// able to fill the global cap and block everyone's sign-in.
    pub pending_logins_per_address: u64,
}

/// Default of `pending_logins_per_address`.
pub const DEFAULT_PENDING_LOGINS_PER_ADDRESS: u64 = 20;

impl DirectoryConfig {
    pub fn id(&self) -> &str {
        match self {
            DirectoryConfig::Builtin(b) => &b.id,
            DirectoryConfig::Ldap(l) => &l.id,
            DirectoryConfig::Oidc(o) => &o.id,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BuiltinDirectoryConfig {
    pub id: String,
    /// Shown in `/api/auth/providers`. SPy selects a provider by this name and defaults to
    /// "Seeq", so that is our default too.
    pub name: String,
}

impl Default for BuiltinDirectoryConfig {
    fn default() -> Self {
        BuiltinDirectoryConfig {
            id: "builtin".into(),
            name: "Seeq".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LdapDirectoryConfig {
    pub id: String,
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
    /// Attribute with the last login upstream: `lastLogonTimestamp` (AD, FILETIME) or
    /// `authTimestamp` (OpenLDAP lastbind overlay, GeneralizedTime).
    pub last_login_attribute: Option<String>,
    /// Entries per page of the paged (RFC 2696) sync search.
    pub page_size: i32,
    pub sync: SyncPolicy,
    /// A reported login event for a username with no record yet creates the user after
    /// looking the name up here (same record as their first login would make).
    pub create_users_from_events: bool,
}

/// How directory reconciliation runs and how careful it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPolicy {
    /// Cron expression (with seconds: `sec min hour day month weekday`); None = no schedule.
    pub schedule: Option<String>,
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
            schedule: Some(DEFAULT_SYNC_SCHEDULE.to_string()),
            remove_disabled: false,
            deletion_threshold: 500,
            deletion_threshold_percent: 25,
            removal_grace_hours: 0,
        }
    }
}

/// Below this many local users the percentage threshold does not apply: one leaver in a
/// directory of three is a third, not a mass removal.
pub const PERCENT_THRESHOLD_MIN_USERS: u64 = 20;

/// Default schedule: every 15 minutes.
pub const DEFAULT_SYNC_SCHEDULE: &str = "0 */15 * * * *";

/// The file shape of a `[[directories]]` entry: every key of every kind, checked per kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    id: String,
    kind: String,
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
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    client_secret_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "string_list_opt")]
    scopes: Option<Vec<String>>,
    username_claim: Option<String>,
    groups_claim: Option<String>,
    #[serde(default, deserialize_with = "string_list_opt")]
    allowed_groups: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient_opt")]
    username_claim_is_provider_controlled: Option<bool>,
    #[serde(default, deserialize_with = "lenient_opt")]
    pending_logins_per_address: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    database: DatabaseConfig,
    #[serde(default)]
    access_keys: AccessKeysConfig,
    #[serde(default)]
    sessions: SessionsConfig,
    #[serde(default)]
    login_throttle: LoginThrottleConfig,
    #[serde(default)]
    proxy_auth: Option<RawProxyAuth>,
    #[serde(default)]
    windows: Option<RawWindows>,
    #[serde(default)]
    notifications: Option<RawNotifications>,
    #[serde(default)]
    password_hashing: PasswordHashingConfig,
    #[serde(default)]
    audit: AuditConfig,
    #[serde(default)]
    credential_cache: CredentialCacheConfig,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    directories: Vec<RawDirectory>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            access_keys: AccessKeysConfig::default(),
            sessions: SessionsConfig::default(),
            login_throttle: LoginThrottleConfig::default(),
            proxy_auth: None,
            windows: None,
            notifications: None,
            password_hashing: PasswordHashingConfig::default(),
            audit: AuditConfig::default(),
            credential_cache: CredentialCacheConfig::default(),
            log: LogConfig::default(),
            directories: vec![DirectoryConfig::Builtin(BuiltinDirectoryConfig::default())],
        }
    }
}

impl Config {
    /// Loads defaults ← `file` (if any) ← the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &vars)
    }

    /// Same as [`Config::load`] with the environment given explicitly (tests).
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let (mut tree, origin) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                let value: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                (value, path.display().to_string())
            }
            None => (toml::Table::new(), "configuration".to_string()),
        };
        apply_env(&mut tree, env)?;
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|e| {
                ConfigError::Parse {
                    path: origin,
                    message: format!("`{}`: {}", e.path(), e.inner()),
                }
            })?;
        raw.validate()
    }

    /// The built-in directory (a loaded configuration always has exactly one).
    pub fn builtin(&self) -> Option<&BuiltinDirectoryConfig> {
        self.directories.iter().find_map(|d| match d {
            DirectoryConfig::Builtin(b) => Some(b),
            _ => None,
        })
    }
}

/// Largest list index an environment variable may address, plus one.
const MAX_ENV_INDEX: usize = 1000;

/// Applies `ACCESSKEYD_A__B=v` as `a.b = "v"`; values stay strings and the typed fields
/// parse them, so a password of digits stays a password.
fn apply_env(tree: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if is_reserved_env(name) {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(invalid(name.clone(), "empty path segment in variable name"));
        }
        insert_path(tree, &path, value, name)?;
    }
    Ok(())
}

fn insert_path(
    table: &mut toml::Table,
    path: &[String],
    value: &str,
    var: &str,
) -> Result<(), ConfigError> {
    let (head, rest) = path
        .split_first()
        .ok_or_else(|| invalid(var, "empty variable name"))?;
    if rest.is_empty() {
        table.insert(head.clone(), toml::Value::String(value.to_string()));
        return Ok(());
    }
    // `directories` is an array of tables addressed by index.
    if let Some((index, after)) = rest
        .split_first()
        .filter(|(i, _)| i.parse::<usize>().is_ok())
    {
        let index: usize = index.parse().unwrap_or_default();
        // A list entry is padded up to its index: bound it, or one variable could make
        // the process allocate without limit.
        if index >= MAX_ENV_INDEX {
            return Err(invalid(
                var,
                format!(
                    "list index {index} is too large (at most {})",
                    MAX_ENV_INDEX - 1
                ),
            ));
        }
        let entry = table
            .entry(head.clone())
            .or_insert_with(|| toml::Value::Array(Vec::new()));
        let array = entry
            .as_array_mut()
            .ok_or_else(|| invalid(var, format!("`{head}` is not a list")))?;
        while array.len() <= index {
            array.push(toml::Value::Table(toml::Table::new()));
        }
        let inner = array[index]
            .as_table_mut()
            .ok_or_else(|| invalid(var, format!("`{head}[{index}]` is not a table")))?;
        if after.is_empty() {
            return Err(invalid(var, "a list entry needs a key after its index"));
        }
        return insert_path(inner, after, value, var);
    }
    let entry = table
        .entry(head.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let inner = entry
        .as_table_mut()
        .ok_or_else(|| invalid(var, format!("`{head}` is not a table")))?;
    insert_path(inner, rest, value, var)
}

/// Accepts a value of its own type or a string that parses to it (environment variables).
fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + FromStr,
    T::Err: Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Value(T),
        Text(String),
    }
    match Either::<T>::deserialize(d)? {
        Either::Value(v) => Ok(v),
        Either::Text(s) => s.trim().parse().map_err(D::Error::custom),
    }
}

/// A list, or (from an environment variable) one comma-separated string.
fn string_list<'de, D>(d: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(l) => l,
        Either::Text(s) => s
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
    })
}

/// CIDRs (`10.0.0.0/8`) or single addresses, as a list or one comma-separated string.
fn cidr_list<'de, D>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error>
where
    D: Deserializer<'de>,
{
    string_list(d)?
        .iter()
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| D::Error::custom(format!("`{s}` is not an address or CIDR")))
        })
        .collect()
}

fn string_list_opt<'de, D>(d: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    string_list(d).map(Some)
}

fn lenient_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + FromStr,
    T::Err: Display,
{
    lenient(d).map(Some)
}

fn read_secret_file(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    // Files written by `echo` or editors end in a newline that is not part of the secret.
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

impl RawConfig {
    fn validate(mut self) -> Result<Config, ConfigError> {
        if let Some(path) = self.database.url_file.take() {
            self.database.url = read_secret_file("database.url_file", &path)?
                .expose()
                .trim()
                .to_string();
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "server.listen",
                format!("`{}` is not an address:port", self.server.listen),
            ));
        }
        if !self.server.management_listen.trim().is_empty()
            && self
                .server
                .management_listen
                .trim()
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(invalid(
                "server.management_listen",
                format!(
                    "`{}` is not an address:port (empty turns the management listener off)",
                    self.server.management_listen
                ),
            ));
        }
        if let Some(u) = &self.server.public_url {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") && p.query().is_none() => {}
                _ => {
                    return Err(invalid(
                        "server.public_url",
                        format!("`{u}` is not an http(s) base URL"),
                    ))
                }
            }
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        if let Err(e) = crate::store::Backend::parse(&self.database.url) {
            return Err(invalid("database.url", e.to_string()));
        }
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1"));
        }
        if self.database.connect_timeout_seconds == 0 {
            return Err(invalid(
                "database.connect_timeout_seconds",
                "must be at least 1",
            ));
        }
        let ak = &self.access_keys;
        if ak.validity_without_user_login_days < 0 {
            return Err(invalid(
                "access_keys.validity_without_user_login_days",
                "must be 0 (keys disabled) or more",
            ));
        }
        if ak.max_per_user < 1 {
            return Err(invalid("access_keys.max_per_user", "must be at least 1"));
        }
        if ak.max_label_length < 1 {
            return Err(invalid(
                "access_keys.max_label_length",
                "must be at least 1",
            ));
        }
        if self.sessions.interactive_ttl_minutes < 1 {
            return Err(invalid(
                "sessions.interactive_ttl_minutes",
                "must be at least 1",
            ));
        }
        if self.sessions.access_key_ttl_minutes < 1 {
            return Err(invalid(
                "sessions.access_key_ttl_minutes",
                "must be at least 1",
            ));
        }
        for (key, value) in [
            (
                "server.header_read_timeout_seconds",
                self.server.header_read_timeout_seconds,
            ),
            (
                "server.keep_alive_timeout_seconds",
                self.server.keep_alive_timeout_seconds,
            ),
            (
                "server.request_timeout_seconds",
                self.server.request_timeout_seconds,
            ),
            (
                "credential_cache.recheck_seconds",
                self.credential_cache.recheck_seconds,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.login_throttle.max_entries < 100 {
            return Err(invalid(
                "login_throttle.max_entries",
                "must be at least 100",
            ));
        }
        if self.login_throttle.window_seconds == 0 {
            return Err(invalid(
                "login_throttle.window_seconds",
                "must be at least 1",
            ));
        }
        let ph = &self.password_hashing;
        if ph.memory_kib < 8 * ph.parallelism.max(1) || ph.iterations < 1 || ph.parallelism < 1 {
            return Err(invalid(
                "password_hashing",
                "memory_kib must be ≥ 8 × parallelism, iterations and parallelism ≥ 1",
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid("log.format", "must be `text` or `json`"));
        }

        let mut directories = Vec::new();
        let mut ids = HashSet::new();
        for (i, raw) in self.directories.into_iter().enumerate() {
            let dir = raw.validate(i)?;
            if !ids.insert(dir.id().to_ascii_lowercase()) {
                return Err(invalid(
                    format!("directories[{i}].id"),
                    format!("`{}` is used twice", dir.id()),
                ));
            }
            directories.push(dir);
        }
        let builtins = directories
            .iter()
            .filter(|d| matches!(d, DirectoryConfig::Builtin(_)))
            .count();
        match builtins {
            // The built-in directory holds the break-glass admin and owns access keys: always there.
            0 => directories.insert(
                0,
                DirectoryConfig::Builtin(BuiltinDirectoryConfig::default()),
            ),
            1 => {}
            _ => {
                return Err(invalid(
                    "directories",
                    "at most one directory of kind `builtin`",
                ))
            }
        }
        let builtin_id = directories
            .iter()
            .find_map(|d| match d {
                DirectoryConfig::Builtin(b) => Some(b.id.clone()),
                _ => None,
            })
            .unwrap_or_default();
        if builtins == 0
            && directories
                .iter()
                .skip(1)
                .any(|d| d.id().eq_ignore_ascii_case(&builtin_id))
        {
            return Err(invalid(
                "directories",
                format!("the id `{builtin_id}` is reserved for the built-in directory"),
            ));
        }

        let proxy_auth = match self.proxy_auth {
            None => None,
            Some(p) => Some(validate_proxy_auth(p, &directories)?),
        };
        let windows = match self.windows {
            None => None,
            Some(w) => Some(validate_windows(w, &directories)?),
        };
        let notifications = match self.notifications {
            None => None,
            Some(n) => Some(validate_notifications(n)?),
        };
        Ok(Config {
            proxy_auth,
            windows,
            notifications,
            server: self.server,
            database: self.database,
            access_keys: self.access_keys,
            sessions: self.sessions,
            login_throttle: self.login_throttle,
            password_hashing: self.password_hashing,
            audit: self.audit,
            credential_cache: self.credential_cache,
            log: self.log,
            directories,
        })
    }
}

/// `secret` or `secret_file`, not both; `required` names the key when neither is set.
fn secret_or_file(
    key: &str,
    inline: Option<Secret>,
    file: Option<PathBuf>,
    required: bool,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(invalid(
            format!("{key}_file"),
            format!("set either {key} or {key}_file, not both"),
        )),
        (Some(s), None) => Ok(Some(s)),
        (None, Some(path)) => Ok(Some(read_secret_file(&format!("{key}_file"), &path)?)),
        (None, None) if required => Err(invalid(key, "is required")),
        (None, None) => Ok(None),
    }
}

fn validate_notifications(n: RawNotifications) -> Result<NotificationsConfig, ConfigError> {
    let schedule = n.schedule.unwrap_or_else(|| "0 0 7 * * *".into());
    if cron::Schedule::from_str(&schedule).is_err() {
        return Err(invalid(
            "notifications.schedule",
            format!("`{schedule}` is not a cron expression (seconds first, e.g. `0 0 7 * * *`)"),
        ));
    }
    let smtp = match n.smtp {
        None => None,
        Some(s) => {
            let host = s
                .host
                .filter(|h| !h.trim().is_empty())
                .ok_or_else(|| invalid("notifications.smtp.host", "is required"))?;
            let from = s
                .from
                .filter(|f| !f.trim().is_empty())
                .ok_or_else(|| invalid("notifications.smtp.from", "is required"))?;
            if from.parse::<lettre::message::Mailbox>().is_err() {
                return Err(invalid(
                    "notifications.smtp.from",
                    format!("`{from}` is not an e-mail address"),
                ));
            }
            let security = s.security.unwrap_or(SmtpSecurity::Starttls);
            let password = secret_or_file(
                "notifications.smtp.password",
                s.password,
                s.password_file,
                false,
            )?;
            if password.is_some() != s.username.is_some() {
                return Err(invalid(
                    "notifications.smtp.username",
                    "username and password go together",
                ));
            }
            Some(SmtpConfig {
                host,
                port: s.port.unwrap_or(match security {
                    SmtpSecurity::Tls => 465,
                    SmtpSecurity::Starttls => 587,
                    SmtpSecurity::None => 25,
                }),
                security,
                ca_file: s.ca_file,
                username: s.username,
                password,
                from,
                timeout_seconds: s.timeout_seconds.unwrap_or(30),
            })
        }
    };
    let webhook = match n.webhook {
        None => None,
        Some(w) => {
            let url = w
                .url
                .ok_or_else(|| invalid("notifications.webhook.url", "is required"))?;
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url::Url::parse(&url).is_err()
            {
                return Err(invalid(
                    "notifications.webhook.url",
                    format!("`{url}` is not an http(s) URL"),
                ));
            }
            let secret = secret_or_file(
                "notifications.webhook.secret",
                w.secret,
                w.secret_file,
                true,
            )?
            .ok_or_else(|| invalid("notifications.webhook.secret", "is required"))?;
            if secret.expose().len() < 16 {
                return Err(invalid(
                    "notifications.webhook.secret",
                    "must be at least 16 characters",
                ));
            }
            Some(WebhookConfig {
                url,
                secret,
                max_attempts: w.max_attempts.unwrap_or(5).clamp(1, 20),
                retry_base_ms: w.retry_base_ms.unwrap_or(1000),
                timeout_seconds: w.timeout_seconds.unwrap_or(10),
            })
        }
    };
    if smtp.is_none() && webhook.is_none() {
        return Err(invalid(
            "notifications",
            "configure [notifications.smtp], [notifications.webhook], or both",
        ));
    }
    Ok(NotificationsConfig {
        schedule,
        smtp,
        webhook,
    })
}

fn is_ldap_directory(directories: &[DirectoryConfig], id: &str) -> bool {
    directories
        .iter()
        .any(|d| matches!(d, DirectoryConfig::Ldap(l) if l.id.eq_ignore_ascii_case(id)))
}

fn validate_windows(
    w: RawWindows,
    directories: &[DirectoryConfig],
) -> Result<WindowsConfig, ConfigError> {
    let keytab = w
        .keytab
        .ok_or_else(|| invalid("windows.keytab", "is required"))?;
    if let Some(sp) = &w.service_principal {
        let (service, host) = sp.split_once('/').unwrap_or((sp, ""));
        if service.is_empty() || host.is_empty() || host.starts_with('@') {
            return Err(invalid(
                "windows.service_principal",
                format!("`{sp}` is not of the form HTTP/host.example.com[@REALM]"),
            ));
        }
    }
    if w.realms.is_empty() {
        return Err(invalid(
            "windows.realms",
            "map at least one Kerberos realm to a directory",
        ));
    }
    for (i, r) in w.realms.iter().enumerate() {
        let key = |k: &str| format!("windows.realms[{i}].{k}");
        if r.realm.trim().is_empty() || r.realm.contains('@') {
            return Err(invalid(
                key("realm"),
                format!("`{}` is not a realm", r.realm),
            ));
        }
        if w.realms[..i]
            .iter()
            .any(|o| o.realm.eq_ignore_ascii_case(&r.realm))
        {
            return Err(invalid(
                key("realm"),
                format!("`{}` is mapped twice", r.realm),
            ));
        }
        if !is_ldap_directory(directories, &r.directory) {
            return Err(invalid(
                key("directory"),
                format!(
                    "`{}` is not an LDAP directory of this configuration",
                    r.directory
                ),
            ));
        }
        if let Some(a) = &r.match_attribute {
            if a.is_empty() || !a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(invalid(
                    key("match_attribute"),
                    format!("`{a}` is not an LDAP attribute name"),
                ));
            }
        }
    }
    Ok(WindowsConfig {
        keytab,
        service_principal: w.service_principal,
        realms: w.realms,
    })
}

fn validate_proxy_auth(
    p: RawProxyAuth,
    directories: &[DirectoryConfig],
) -> Result<ProxyAuthConfig, ConfigError> {
    if !is_ldap_directory(directories, &p.directory) {
        return Err(invalid(
            "proxy_auth.directory",
            format!(
                "`{}` is not an LDAP directory of this configuration",
                p.directory
            ),
        ));
    }
    let secret = match (p.secret, p.secret_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "proxy_auth.secret_file",
                "set either secret or secret_file, not both",
            ))
        }
        (Some(s), None) => s,
        (None, Some(path)) => read_secret_file("proxy_auth.secret_file", &path)?,
        (None, None) => return Err(invalid("proxy_auth.secret", "is required")),
    };
    if secret.expose().len() < 16 {
        return Err(invalid(
            "proxy_auth.secret",
            "must be at least 16 characters",
        ));
    }
    if p.trusted_addresses.is_empty() {
        return Err(invalid(
            "proxy_auth.trusted_addresses",
            "name at least one address",
        ));
    }
    let trusted_addresses = p
        .trusted_addresses
        .iter()
        .map(|a| {
            a.parse().map_err(|_| {
                invalid(
                    "proxy_auth.trusted_addresses",
                    format!("`{a}` is not an IP address"),
                )
            })
        })
        .collect::<Result<Vec<std::net::IpAddr>, _>>()?;
    Ok(ProxyAuthConfig {
        directory: p.directory,
        user_header: p.user_header.unwrap_or_else(|| "X-Remote-User".into()),
        secret_header: p.secret_header.unwrap_or_else(|| "X-Proxy-Secret".into()),
        secret,
        trusted_addresses,
        allowed_realms: p
            .allowed_realms
            .iter()
            .map(|r| r.trim().to_ascii_uppercase())
            .collect(),
    })
}

impl RawDirectory {
    fn validate(self, i: usize) -> Result<DirectoryConfig, ConfigError> {
        let key = |k: &str| format!("directories[{i}].{k}");
        if self.id.is_empty()
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                key("id"),
                "must be non-empty and use only letters, digits, `-` and `_`",
            ));
        }
        let ldap_only: [(&str, bool); 26] = [
            (
                "create_users_from_events",
                self.create_users_from_events.is_some(),
            ),
            ("url", self.url.is_some()),
            ("starttls", self.starttls.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("bind_dn", self.bind_dn.is_some()),
            ("bind_password", self.bind_password.is_some()),
            ("bind_password_file", self.bind_password_file.is_some()),
            ("user_base", self.user_base.is_some()),
            ("user_filter", self.user_filter.is_some()),
            ("username_attribute", self.username_attribute.is_some()),
            ("id_attribute", self.id_attribute.is_some()),
            (
                "display_name_attribute",
                self.display_name_attribute.is_some(),
            ),
            ("first_name_attribute", self.first_name_attribute.is_some()),
            ("last_name_attribute", self.last_name_attribute.is_some()),
            ("email_attribute", self.email_attribute.is_some()),
            ("admin_group", self.admin_group.is_some()),
            ("server_type", self.server_type.is_some()),
            ("required_group", self.required_group.is_some()),
            ("last_login_attribute", self.last_login_attribute.is_some()),
            ("page_size", self.page_size.is_some()),
            ("sync_schedule", self.sync_schedule.is_some()),
            ("remove_disabled", self.remove_disabled.is_some()),
            ("deletion_threshold", self.deletion_threshold.is_some()),
            (
                "deletion_threshold_percent",
                self.deletion_threshold_percent.is_some(),
            ),
            ("removal_grace_hours", self.removal_grace_hours.is_some()),
            ("timeout_seconds", self.timeout_seconds.is_some()),
        ];
        let oidc_only: [(&str, bool); 10] = [
            ("issuer", self.issuer.is_some()),
            ("client_id", self.client_id.is_some()),
            ("client_secret", self.client_secret.is_some()),
            ("client_secret_file", self.client_secret_file.is_some()),
            ("scopes", self.scopes.is_some()),
            ("username_claim", self.username_claim.is_some()),
            ("groups_claim", self.groups_claim.is_some()),
            ("allowed_groups", self.allowed_groups.is_some()),
            (
                "username_claim_is_provider_controlled",
                self.username_claim_is_provider_controlled.is_some(),
            ),
            (
                "pending_logins_per_address",
                self.pending_logins_per_address.is_some(),
            ),
        ];
        let kind = self.kind.clone();
        let not_for = |list: &[(&str, bool)], except: &[&str]| -> Result<(), ConfigError> {
            match list.iter().find(|(k, set)| *set && !except.contains(k)) {
                Some((k, _)) => Err(invalid(
                    key(k),
                    format!("is not a setting of a `{kind}` directory"),
                )),
                None => Ok(()),
            }
        };
        match self.kind.as_str() {
            "oidc" => {
                not_for(
                    &ldap_only,
                    &["admin_group", "timeout_seconds", "removal_grace_hours"],
                )?;
                let removal_grace_hours = self.removal_grace_hours.unwrap_or(0);
                if removal_grace_hours > 87_600 {
                    return Err(invalid(
                        key("removal_grace_hours"),
                        "at most 87600 (10 years)",
                    ));
                }
                let issuer = self
                    .issuer
                    .ok_or_else(|| invalid(key("issuer"), "is required"))?;
                match url::Url::parse(&issuer) {
                    Ok(u) if matches!(u.scheme(), "https" | "http") => {}
                    _ => {
                        return Err(invalid(
                            key("issuer"),
                            format!("`{issuer}` is not an http(s) URL"),
                        ))
                    }
                }
                let client_id = self
                    .client_id
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| invalid(key("client_id"), "is required"))?;
                let client_secret = match (self.client_secret, self.client_secret_file) {
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            key("client_secret_file"),
                            "set either client_secret or client_secret_file, not both",
                        ))
                    }
                    (Some(s), None) => Some(s),
                    (None, Some(path)) => {
                        Some(read_secret_file(&key("client_secret_file"), &path)?)
                    }
                    (None, None) => None,
                };
                let mut scopes = self
                    .scopes
                    .unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
                if !scopes.iter().any(|s| s == "openid") {
                    scopes.insert(0, "openid".into());
                }
                let timeout_seconds = self.timeout_seconds.unwrap_or(10);
                if timeout_seconds == 0 {
                    return Err(invalid(key("timeout_seconds"), "must be at least 1"));
                }
                if self.admin_group.is_some() && self.groups_claim.is_none() {
                    return Err(invalid(
                        key("admin_group"),
                        "needs groups_claim (the claim the group is looked up in)",
                    ));
                }
                let allowed_groups = self.allowed_groups.unwrap_or_default();
                if !allowed_groups.is_empty() && self.groups_claim.is_none() {
                    return Err(invalid(
                        key("allowed_groups"),
                        "needs groups_claim (the claim the groups are looked up in)",
                    ));
                }
                let pending_logins_per_address = self
                    .pending_logins_per_address
                    .unwrap_or(DEFAULT_PENDING_LOGINS_PER_ADDRESS);
                if !(1..=10_000).contains(&pending_logins_per_address) {
                    return Err(invalid(
                        key("pending_logins_per_address"),
                        "1 to 10000 (the cap of all pending logins together)",
                    ));
                }
                Ok(DirectoryConfig::Oidc(Box::new(OidcDirectoryConfig {
                    name: self.name.unwrap_or_else(|| self.id.clone()),
                    id: self.id,
                    issuer,
                    client_id,
                    client_secret,
                    scopes,
                    username_claim: self
                        .username_claim
                        .unwrap_or_else(|| "preferred_username".into()),
                    groups_claim: self.groups_claim,
                    admin_group: self.admin_group,
                    allowed_groups,
                    timeout_seconds,
                    removal_grace_hours,
                    username_claim_is_provider_controlled: self
                        .username_claim_is_provider_controlled
                        .unwrap_or(false),
                    pending_logins_per_address,
                })))
            }
            "builtin" => {
                not_for(&ldap_only, &[])?;
                not_for(&oidc_only, &[])?;
                Ok(DirectoryConfig::Builtin(BuiltinDirectoryConfig {
                    name: self.name.unwrap_or_else(|| "Seeq".into()),
                    id: self.id,
                }))
            }
            "ldap" => {
                not_for(&oidc_only, &[])?;
                let url = self.url.ok_or_else(|| invalid(key("url"), "is required"))?;
                let parsed = url::Url::parse(&url)
                    .map_err(|e| invalid(key("url"), format!("`{url}`: {e}")))?;
                let starttls = self.starttls.unwrap_or(false);
                match parsed.scheme() {
                    "ldap" => {}
                    "ldaps" if starttls => {
                        return Err(invalid(key("starttls"), "cannot be used with ldaps://"))
                    }
                    "ldaps" => {}
                    other => {
                        return Err(invalid(
                            key("url"),
                            format!("scheme `{other}`: use ldap:// or ldaps://"),
                        ))
                    }
                }
                let bind_password = match (self.bind_password, self.bind_password_file) {
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            key("bind_password_file"),
                            "set either bind_password or bind_password_file, not both",
                        ))
                    }
                    (Some(p), None) => Some(p),
                    (None, Some(path)) => {
                        Some(read_secret_file(&key("bind_password_file"), &path)?)
                    }
                    (None, None) => None,
                };
                if bind_password.is_some() && self.bind_dn.is_none() {
                    return Err(invalid(key("bind_dn"), "is required with a bind password"));
                }
                let user_base = self
                    .user_base
                    .ok_or_else(|| invalid(key("user_base"), "is required"))?;
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
                if !(user_filter.starts_with('(') && user_filter.ends_with(')')) {
                    return Err(invalid(
                        key("user_filter"),
                        "must be an LDAP filter in parentheses",
                    ));
                }
                let page_size = self.page_size.unwrap_or(500);
                if !(1..=100_000).contains(&page_size) {
                    return Err(invalid(key("page_size"), "must be between 1 and 100000"));
                }
                let schedule = match self.sync_schedule.as_deref().map(str::trim) {
                    None => Some(DEFAULT_SYNC_SCHEDULE.to_string()),
                    Some("") => None,
                    Some(expr) => {
                        cron::Schedule::from_str(expr).map_err(|e| {
                            invalid(
                                key("sync_schedule"),
                                format!("`{expr}` is not a cron expression (sec min hour day month weekday): {e}"),
                            )
                        })?;
                        Some(expr.to_string())
                    }
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
                            format!("`{attr}`: use lastLogonTimestamp (AD) or authTimestamp (OpenLDAP lastbind)"),
                        ));
                    }
                }
                if self.removal_grace_hours.unwrap_or(0) > 87_600 {
                    return Err(invalid(
                        key("removal_grace_hours"),
                        "at most 87600 (10 years)",
                    ));
                }
                let sync = SyncPolicy {
                    schedule,
                    remove_disabled: self.remove_disabled.unwrap_or(active_directory),
                    deletion_threshold: self.deletion_threshold.unwrap_or(500),
                    deletion_threshold_percent,
                    removal_grace_hours: self.removal_grace_hours.unwrap_or(0),
                };
                Ok(DirectoryConfig::Ldap(Box::new(LdapDirectoryConfig {
                    name: self.name.unwrap_or_else(|| self.id.clone()),
                    id: self.id,
                    url,
                    starttls,
                    ca_file: self.ca_file,
                    bind_dn: self.bind_dn,
                    bind_password,
                    user_base,
                    user_filter,
                    username_attribute: self.username_attribute.unwrap_or_else(|| "uid".into()),
                    id_attribute,
                    display_name_attribute: self
                        .display_name_attribute
                        .unwrap_or_else(|| "cn".into()),
                    first_name_attribute: self
                        .first_name_attribute
                        .unwrap_or_else(|| "givenName".into()),
                    last_name_attribute: self.last_name_attribute.unwrap_or_else(|| "sn".into()),
                    email_attribute: self.email_attribute.unwrap_or_else(|| "mail".into()),
                    admin_group: self.admin_group,
                    timeout_seconds,
                    active_directory,
                    required_group: self.required_group,
                    last_login_attribute: self.last_login_attribute,
                    page_size,
                    sync,
                    create_users_from_events: self.create_users_from_events.unwrap_or(false),
                })))
            }
            other => Err(invalid(
                key("kind"),
                format!("unknown kind `{other}`: use `builtin`, `ldap` or `oidc`"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn huge_list_indices_in_the_environment_are_refused_not_allocated() {
        let e = Config::load_from(
            None,
            &env(&[("ACCESSKEYD_DIRECTORIES__18446744073709551615__ID", "x")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }

    #[test]
    fn the_sample_configuration_loads_with_the_request_path_settings() {
        let f = file(include_str!("../config/accesskeyd.toml"));
        let c = Config::load_from(Some(f.path()), &[]).unwrap();
        assert!(c.server.trusted_proxies.is_empty());
        assert_eq!(c.server.header_read_timeout_seconds, 10);
        assert_eq!(c.login_throttle.max_entries, 100_000);
        assert!(c.credential_cache.enabled);
        assert_eq!(c.audit.retention_days, 400);
        let c = Config::load_from(
            Some(f.path()),
            &env(&[("ACCESSKEYD_SERVER__TRUSTED_PROXIES", "10.0.1.0/24, ::1")]),
        )
        .unwrap();
        assert_eq!(c.server.trusted_proxies.len(), 2);
        let bad = Config::load_from(
            Some(f.path()),
            &env(&[("ACCESSKEYD_SERVER__TRUSTED_PROXIES", "10.0.1.0/33")]),
        );
        assert!(bad.unwrap_err().to_string().contains("10.0.1.0/33"));
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_a_file() {
        let c = Config::load_from(None, &[]).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.database.url, "sqlite://accesskeyd.db");
        assert_eq!(c.access_keys.validity_without_user_login_days, 14);
        assert_eq!(c.directories.len(), 1);
        assert_eq!(c.builtin().unwrap().id, "builtin");
    }

    #[test]
    fn unknown_keys_are_named() {
        let f = file("[server]\nlisten = \"127.0.0.1:1\"\nlistn = 3\n");
        let err = Config::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
        let f = file("[serverx]\n");
        let err = Config::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("serverx"), "{err}");
        let err = Config::load_from(None, &env(&[("ACCESSKEYD_SERVER__LISTN", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
        let f = file("[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\nbind_pasword = \"x\"\n");
        let err = Config::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bind_pasword"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_keeps_digit_secrets_strings() {
        let f = file(
            "[server]\nlisten = \"127.0.0.1:9000\"\n[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\nbind_dn = \"cn=svc\"\n",
        );
        let c = Config::load_from(
            Some(f.path()),
            &env(&[
                ("ACCESSKEYD_SERVER__LISTEN", "127.0.0.1:9001"),
                (
                    "ACCESSKEYD_ACCESS_KEYS__VALIDITY_WITHOUT_USER_LOGIN_DAYS",
                    "3",
                ),
                ("ACCESSKEYD_DIRECTORIES__0__BIND_PASSWORD", "123456"),
                ("ACCESSKEYD_DIRECTORIES__0__STARTTLS", "true"),
                ("OTHER", "ignored"),
                ("ACCESSKEYD_CONFIG", "/etc/accesskeyd/accesskeyd.toml"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:9001");
        assert_eq!(c.access_keys.validity_without_user_login_days, 3);
        let DirectoryConfig::Ldap(l) = &c.directories[1] else {
            panic!("expected ldap")
        };
        assert_eq!(l.bind_password.as_ref().unwrap().expose(), "123456");
        assert!(l.starttls);
        assert_eq!(l.username_attribute, "uid");
    }

    #[test]
    fn active_directory_defaults_follow_the_id_attribute() {
        let f = file("[[directories]]\nid = \"ad\"\nkind = \"ldap\"\nurl = \"ldaps://dc\"\nuser_base = \"DC=x\"\nid_attribute = \"objectGUID\"\n");
        let c = Config::load_from(Some(f.path()), &[]).unwrap();
        let DirectoryConfig::Ldap(l) = &c.directories[1] else {
            panic!("expected ldap")
        };
        assert!(l.active_directory && l.sync.remove_disabled);
        assert_eq!(
            l.user_filter,
            "(&(objectCategory=person)(objectClass=user))"
        );
        assert_eq!(l.sync.schedule.as_deref(), Some(DEFAULT_SYNC_SCHEDULE));
        let f = file("[[directories]]\nid = \"o\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\nsync_schedule = \"\"\n");
        let c = Config::load_from(Some(f.path()), &[]).unwrap();
        let DirectoryConfig::Ldap(l) = &c.directories[1] else {
            panic!("expected ldap")
        };
        assert!(!l.active_directory && !l.sync.remove_disabled);
        assert_eq!(l.user_filter, "(objectClass=person)");
        assert_eq!(l.sync.schedule, None);
        let f = file("[[directories]]\nid = \"o\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\nsync_schedule = \"every 5 minutes\"\n");
        let err = Config::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sync_schedule"), "{err}");
    }

    #[test]
    fn notifications_need_a_channel_and_valid_settings() {
        let ok = file("[notifications]\n[notifications.smtp]\nhost = \"mail\"\nfrom = \"a <a@example.com>\"\n[notifications.webhook]\nurl = \"https://hooks.example.com/x\"\nsecret = \"0123456789abcdef\"\n");
        let n = Config::load_from(Some(ok.path()), &[])
            .unwrap()
            .notifications
            .unwrap();
        let smtp = n.smtp.unwrap();
        assert_eq!((smtp.port, smtp.security), (587, SmtpSecurity::Starttls));
        assert_eq!(n.webhook.unwrap().max_attempts, 5);
        assert_eq!(n.schedule, "0 0 7 * * *");
        for (bad, key) in [
            ("[notifications]\n", "notifications"),
            ("[notifications]\nschedule = \"daily\"\n[notifications.webhook]\nurl = \"https://x\"\nsecret = \"0123456789abcdef\"\n", "notifications.schedule"),
            ("[notifications.smtp]\nhost = \"m\"\nfrom = \"not an address\"\n", "notifications.smtp.from"),
            ("[notifications.smtp]\nhost = \"m\"\nfrom = \"a@b.c\"\nusername = \"u\"\n", "notifications.smtp.username"),
            ("[notifications.smtp]\nhost = \"m\"\nfrom = \"a@b.c\"\nsecurity = \"ssl\"\n", "security"),
            ("[notifications.webhook]\nurl = \"ftp://x\"\nsecret = \"0123456789abcdef\"\n", "notifications.webhook.url"),
            ("[notifications.webhook]\nurl = \"https://x\"\nsecret = \"short\"\n", "notifications.webhook.secret"),
        ] {
            let f = file(bad);
            let err = Config::load_from(Some(f.path()), &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn windows_realms_must_name_ldap_directories() {
        let base = "[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\n\n[windows]\nkeytab = \"/etc/http.keytab\"\nservice_principal = \"HTTP/web.corp.test\"\n";
        let f = file(&format!(
            "{base}[[windows.realms]]\nrealm = \"CORP.TEST\"\ndirectory = \"corp\"\nmatch_attribute = \"userPrincipalName\"\n"
        ));
        let w = Config::load_from(Some(f.path()), &[])
            .unwrap()
            .windows
            .unwrap();
        assert_eq!(
            w.realms[0].match_attribute.as_deref(),
            Some("userPrincipalName")
        );
        for (bad, key) in [
            ("[[windows.realms]]\nrealm = \"CORP.TEST\"\ndirectory = \"builtin\"\n", "windows.realms[0].directory"),
            ("[[windows.realms]]\nrealm = \"a\"\ndirectory = \"corp\"\n[[windows.realms]]\nrealm = \"A\"\ndirectory = \"corp\"\n", "windows.realms[1].realm"),
            ("", "windows.realms"),
            ("[[windows.realms]]\nrealm = \"CORP.TEST\"\ndirectory = \"corp\"\nmatch_attribute = \"a)(b\"\n", "match_attribute"),
        ] {
            let f = file(&format!("{base}{bad}"));
            let err = Config::load_from(Some(f.path()), &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let f = file("[windows]\nservice_principal = \"HTTP\"\n");
        let err = Config::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("windows.keytab"), "{err}");
    }

    #[test]
    fn lists_come_from_the_environment_as_comma_separated_text() {
        let f = file("[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\n\n[proxy_auth]\ndirectory = \"corp\"\nsecret = \"0123456789abcdef\"\ntrusted_addresses = [\"10.0.0.1\"]\n");
        let c = Config::load_from(
            Some(f.path()),
            &env(&[(
                "ACCESSKEYD_PROXY_AUTH__TRUSTED_ADDRESSES",
                "10.0.0.2, 10.0.0.3",
            )]),
        )
        .unwrap();
        let p = c.proxy_auth.unwrap();
        assert_eq!(p.trusted_addresses.len(), 2);
        assert_eq!(p.user_header, "X-Remote-User");
        let f = file("[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\n\n[proxy_auth]\ndirectory = \"corp\"\nsecret = \"short\"\ntrusted_addresses = [\"10.0.0.1\"]\n");
        let err = Config::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("proxy_auth.secret"), "{err}");
    }

    #[test]
    fn secrets_from_files() {
        let secret = file("s3cret\n");
        let f = file(&format!(
            "[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldaps://x\"\nuser_base = \"dc=x\"\nbind_dn = \"cn=svc\"\nbind_password_file = \"{}\"\n",
            secret.path().display()
        ));
        let c = Config::load_from(Some(f.path()), &[]).unwrap();
        let DirectoryConfig::Ldap(l) = &c.directories[1] else {
            panic!("expected ldap")
        };
        assert_eq!(l.bind_password.as_ref().unwrap().expose(), "s3cret");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "Debug leaks the secret");
    }

    #[test]
    fn the_database_url_can_come_from_a_file_and_is_not_printed() {
        let secret = file("postgres://akd:pg-s3cret@db.example.com/akd\n");
        let f = file(&format!(
            "[database]\nurl_file = \"{}\"\n",
            secret.path().display()
        ));
        let c = Config::load_from(Some(f.path()), &[]).unwrap();
        assert_eq!(
            c.database.url,
            "postgres://akd:pg-s3cret@db.example.com/akd"
        );
        assert!(!format!("{c:?}").contains("pg-s3cret"));
    }

    #[test]
    fn oidc_directories_take_the_login_safety_keys_and_others_do_not() {
        let base = "[[directories]]\nid = \"idp\"\nkind = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"c\"\n";
        let load =
            |extra: &str| Config::load_from(Some(file(&format!("{base}{extra}")).path()), &[]);
        let oidc = |c: Config| match &c.directories[1] {
            DirectoryConfig::Oidc(o) => (
                o.username_claim_is_provider_controlled,
                o.pending_logins_per_address,
            ),
            _ => panic!("expected oidc"),
        };
        assert_eq!(oidc(load("").unwrap()), (false, 20), "safe defaults");
        assert_eq!(
            oidc(load("username_claim_is_provider_controlled = true\npending_logins_per_address = 50\n").unwrap()),
            (true, 50)
        );
        for bad in [
            "pending_logins_per_address = 0\n",
            "pending_logins_per_address = 10001\n",
        ] {
            let err = load(bad).unwrap_err().to_string();
            assert!(
                err.contains("directories[0].pending_logins_per_address"),
                "{err}"
            );
        }
        let ldap = file("[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\nusername_claim_is_provider_controlled = true\n");
        let err = Config::load_from(Some(ldap.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("username_claim_is_provider_controlled")
                && err.contains("is not a setting"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_are_named() {
        for (text, needle) in [
            ("[server]\nlisten = \"nope\"\n", "server.listen"),
            ("[database]\nurl = \"mysql://x\"\n", "database.url"),
            ("[database]\nurl = \"accesskeyd.db\"\n", "database.url"),
            (
                "[access_keys]\nvalidity_without_user_login_days = -1\n",
                "validity_without_user_login_days",
            ),
            ("[[directories]]\nid = \"x\"\nkind = \"nis\"\n", "directories[0].kind"),
            (
                "[[directories]]\nid = \"x\"\nkind = \"ldap\"\nurl = \"http://x\"\nuser_base = \"dc=x\"\n",
                "directories[0].url",
            ),
            (
                "[[directories]]\nid = \"x\"\nkind = \"ldap\"\nurl = \"ldaps://x\"\nstarttls = true\nuser_base = \"dc=x\"\n",
                "starttls",
            ),
            (
                "[[directories]]\nid = \"a\"\nkind = \"builtin\"\n[[directories]]\nid = \"b\"\nkind = \"builtin\"\n",
                "builtin",
            ),
            (
                "[[directories]]\nid = \"a\"\nkind = \"builtin\"\nurl = \"ldap://x\"\n",
                "directories[0].url",
            ),
            (
                "[[directories]]\nid = \"Builtin\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\n",
                "reserved",
            ),
            ("[database]\nconnect_timeout_seconds = 0\n", "connect_timeout_seconds"),
            (
                "[[directories]]\nid = \"x\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\nbind_dn = \"cn=a\"\nbind_password_file = \"/nonexistent/secret\"\n",
                "bind_password_file",
            ),
        ] {
            let f = file(text);
            let err = Config::load_from(Some(f.path()), &[]).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} -> {err}");
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    /// Keys whose values are checked, as `(section, key, what an error must name)`.
    const KEYS: &[(&str, &str, &str)] = &[
        ("server", "listen", "server.listen"),
        ("server", "management_listen", "server.management_listen"),
        ("server", "public_url", "server.public_url"),
        ("server", "max_body_bytes", "server.max_body_bytes"),
        ("server", "trusted_proxies", "server.trusted_proxies"),
        (
            "server",
            "client_address_header",
            "server.client_address_header",
        ),
        (
            "server",
            "request_timeout_seconds",
            "server.request_timeout_seconds",
        ),
        ("server", "max_connections", "server.max_connections"),
        ("database", "url", "database.url"),
        ("database", "pool_size", "database.pool_size"),
        (
            "access_keys",
            "validity_without_user_login_days",
            "access_keys.validity_without_user_login_days",
        ),
        (
            "access_keys",
            "allow_key_sessions_to_create_keys",
            "access_keys.allow_key_sessions_to_create_keys",
        ),
        (
            "sessions",
            "interactive_ttl_minutes",
            "sessions.interactive_ttl_minutes",
        ),
        (
            "login_throttle",
            "max_entries",
            "login_throttle.max_entries",
        ),
        ("password_hashing", "memory_kib", "password_hashing"),
        ("log", "format", "log.format"),
        ("notifications", "schedule", "notifications.schedule"),
    ];

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn toml_leaf() -> impl Strategy<Value = toml::Value> {
        prop_oneof![
            any::<String>().prop_map(toml::Value::String),
            "[ 0-9a-z.:/_,*?-]{0,24}".prop_map(toml::Value::String),
            prop_oneof![
                Just("127.0.0.1:0"),
                Just("[::1]:8080"),
                Just(""),
                Just("10.0.0.0/8, ::1"),
                Just("forwarded"),
                Just("X-Forwarded-For"),
                Just("json"),
                Just("0 */5 * * * *"),
                Just("sqlite://x.db"),
                Just("postgres://u@h/db"),
                Just("https://keys.example.com/"),
                Just(" 4096 "),
                Just("-1"),
                Just("true"),
                Just("0 0 0 31 2 *"),
            ]
            .prop_map(|s| toml::Value::String(s.to_string())),
            any::<i64>().prop_map(toml::Value::Integer),
            (-5i64..5000).prop_map(toml::Value::Integer),
            any::<f64>().prop_map(toml::Value::Float),
            any::<bool>().prop_map(toml::Value::Boolean),
            prop_oneof![
                Just("1979-05-27T07:32:00Z"),
                Just("1979-05-27"),
                Just("07:32:00")
            ]
            .prop_map(|d| toml::Value::Datetime(d.parse().unwrap())),
        ]
    }

    fn toml_value() -> impl Strategy<Value = toml::Value> {
        toml_leaf().prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(toml::Value::Array),
                proptest::collection::vec(("[a-z_]{1,6}", inner), 0..3)
                    .prop_map(|kv| toml::Value::Table(kv.into_iter().collect())),
            ]
        })
    }

    /// A document with `value` at `section.key` (notifications get a webhook, so that a good
    /// schedule loads).
    fn document(section: &str, key: &str, value: toml::Value) -> Option<String> {
        let mut inner = toml::Table::new();
        inner.insert(key.to_string(), value);
        if section == "notifications" {
            let mut hook = toml::Table::new();
            hook.insert("url".into(), "https://hooks.example.com/x".into());
            hook.insert("secret".into(), "0123456789abcdef".into());
            inner.insert("webhook".into(), toml::Value::Table(hook));
        }
        let mut root = toml::Table::new();
        root.insert(section.to_string(), toml::Value::Table(inner));
        toml::to_string(&root).ok()
    }

    fn check_named(r: Result<Config, ConfigError>, name: &str) -> Result<(), TestCaseError> {
        if let Err(e) = r {
            let text = e.to_string();
            match &e {
                ConfigError::Invalid { key, .. } => prop_assert_eq!(key.as_str(), name, "{}", text),
                ConfigError::Parse { .. } => prop_assert!(text.contains(name), "{}", text),
                ConfigError::Read { .. } => prop_assert!(false, "{}", text),
            }
        }
        Ok(())
    }

    proptest! {
        // Moderate counts; shrinking is bounded so that a failure reports in seconds.
        #![proptest_config(ProptestConfig {
            cases: 256,
            max_shrink_iters: 4096,
            ..ProptestConfig::default()
        })]

        /// Any TOML value at a checked key: no panic; it loads, or the error names the key.
        #[test]
        fn any_value_loads_or_names_its_key(
            at in 0..KEYS.len(),
            value in toml_value(),
        ) {
            let (section, key, name) = KEYS[at];
            let Some(text) = document(section, key, value) else {
                return Ok(());
            };
            let f = file(&text);
            check_named(Config::load_from(Some(f.path()), &[]), name)?;
        }

        /// Numbers load as themselves, from TOML integers and from strings (environment
        /// variables) alike, and out-of-range ones name the key.
        #[test]
        fn numbers_load_as_written(
            n in prop_oneof![any::<i64>(), -10i64..200_000],
            as_text in any::<bool>(),
        ) {
            let value = if as_text {
                toml::Value::String(format!(" {n} "))
            } else {
                toml::Value::Integer(n)
            };
            let f = file(&document("server", "max_body_bytes", value).unwrap());
            let r = Config::load_from(Some(f.path()), &[]);
            if n >= 1024 {
                let got = r.map(|c| c.server.max_body_bytes as i64);
                prop_assert_eq!(got.map_err(|e| e.to_string()), Ok(n));
            } else {
                check_named(r, "server.max_body_bytes")?;
            }
            let env = [(
                "ACCESSKEYD_ACCESS_KEYS__VALIDITY_WITHOUT_USER_LOGIN_DAYS".to_string(),
                n.to_string(),
            )];
            let r = Config::load_from(None, &env);
            if n >= 0 {
                let got = r.map(|c| c.access_keys.validity_without_user_login_days);
                prop_assert_eq!(got.map_err(|e| e.to_string()), Ok(n));
            } else {
                check_named(r, "access_keys.validity_without_user_login_days")?;
            }
        }

        /// `ACCESSKEYD_SERVER__...` overrides with any text, under known names or made-up
        /// ones: no panic; a bad value of a known key names the key.
        #[test]
        fn server_environment_overrides_never_panic(
            known in proptest::option::of(0..8usize),
            // Made-up names; list indexes stay small (see the report on huge ones).
            made_up in "[A-Z_]{0,12}(__[0-3])?(__[A-Z_]{0,6})?",
            value in prop_oneof![any::<String>(), "[ 0-9a-z.:/,\\[\\]-]{0,24}"],
        ) {
            let (var, name) = match known {
                Some(i) => (
                    format!("ACCESSKEYD_SERVER__{}", KEYS[i].1.to_uppercase()),
                    Some(KEYS[i].2),
                ),
                None => (format!("ACCESSKEYD_SERVER__{made_up}"), None),
            };
            let r = Config::load_from(None, &[(var.clone(), value.clone())]);
            match name {
                Some(name) => {
                    check_named(r, name)?;
                }
                None => {
                    if let Err(e) = r {
                        prop_assert!(!matches!(e, ConfigError::Read { .. }), "{}: {}", var, e);
                    }
                }
            }
        }
    }
}
