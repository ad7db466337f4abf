//! Settings in layers: built-in defaults, then a TOML file, then `ACCESSKEYD_*` variables.
//!
//! Unknown keys are an error that names the key, so a typo never silently falls back to a
//! default. Secrets may come from files (`*_file` keys); they are read once, here. Each
//! section has its own file with its types, defaults and checks; `layering` holds the file,
//! environment and secret-file handling they share.

mod access_keys;
mod audit;
mod credential_cache;
mod credentials;
mod database;
mod directories;
mod error;
mod layering;
mod log;
mod login_throttle;
mod notifications;
mod password_hashing;
mod proxy_auth;
mod secret_scanning;
mod server;
mod sessions;
mod windows;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use access_keys::{AccessKeysConfig, RANGE_MAX_IDLE_MAX, RANGE_ROTATION_OVERLAP_MAX};
pub use audit::AuditConfig;
pub use credential_cache::CredentialCacheConfig;
pub use credentials::{credential_path, expand_credential_path, CREDENTIALS_DIRECTORY};
pub use database::{redact, Backend, DatabaseConfig, DatabaseUrlError};
pub use directories::{
    BuiltinDirectoryConfig, ChangeFeed, DirectoryConfig, DomainControllers, LdapDirectoryConfig,
    OidcDirectoryConfig, SsfConfig, SsfPoll, SyncPolicy, DEFAULT_PENDING_LOGINS_PER_ADDRESS,
    DEFAULT_SSF_MAX_AGE_SECONDS, DEFAULT_SYNC_SCHEDULE, MAX_DOMAIN_CONTROLLERS,
    PERCENT_THRESHOLD_MIN_USERS,
};
pub use error::ConfigError;
pub use layering::ENV_PREFIX;
pub use log::LogConfig;
pub use login_throttle::LoginThrottleConfig;
pub use notifications::{NotificationsConfig, SmtpConfig, SmtpSecurity, WebhookConfig};
pub use password_hashing::PasswordHashingConfig;
pub use proxy_auth::ProxyAuthConfig;
pub use secret_scanning::{PublicKeysSource, SecretScanningConfig, GITHUB_PUBLIC_KEYS_URL};
pub use server::{ClientAddressHeader, ServerConfig, TlsFiles, TlsVersion};
pub use sessions::SessionsConfig;
pub use windows::{RealmMapping, WindowsConfig};

use directories::RawDirectory;
use notifications::RawNotifications;
use proxy_auth::RawProxyAuth;
use secret_scanning::RawSecretScanning;
use serde::Deserialize;
use std::path::Path;
use windows::RawWindows;

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
    /// Leaked-token reports from a secret scanner; None: the endpoint answers 404.
    pub secret_scanning: Option<SecretScanningConfig>,
    pub password_hashing: PasswordHashingConfig,
    pub audit: AuditConfig,
    pub credential_cache: CredentialCacheConfig,
    pub log: LogConfig,
    pub directories: Vec<DirectoryConfig>,
}

/// The file's shape after the environment is laid over it. Sections without cross-checks
/// are read straight into their final types; the others are checked into them.
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
    secret_scanning: Option<RawSecretScanning>,
    #[serde(default)]
    password_hashing: PasswordHashingConfig,
    #[serde(default)]
    audit: AuditConfig,
    #[serde(default)]
    credential_cache: CredentialCacheConfig,
    #[serde(default)]
    log: LogConfig,
    /// Read entry by entry, each by its `kind` ([`RawDirectory::read`]).
    #[serde(default)]
    directories: Vec<toml::Table>,
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
            secret_scanning: None,
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
        let (mut tree, origin) = layering::read_file(file)?;
        layering::apply_env(&mut tree, env)?;
        let mut raw: RawConfig = layering::deserialize(toml::Value::Table(tree), &origin, None)?;
        let directories = std::mem::take(&mut raw.directories)
            .into_iter()
            .enumerate()
            .map(|(i, entry)| RawDirectory::read(i, entry, &origin))
            .collect::<Result<Vec<_>, _>>()?;
        raw.validate(directories)
    }

    /// The built-in directory (a loaded configuration always has exactly one).
    pub fn builtin(&self) -> Option<&BuiltinDirectoryConfig> {
        self.directories.iter().find_map(|d| match d {
            DirectoryConfig::Builtin(b) => Some(b),
            _ => None,
        })
    }
}

impl RawConfig {
    fn validate(self, directories: Vec<RawDirectory>) -> Result<Config, ConfigError> {
        let database = self.database.resolve()?;
        let server = self.server.resolve()?;
        server.validate()?;
        database.validate()?;
        let access_keys = self.access_keys.resolve()?;
        access_keys.validate()?;
        self.sessions.validate()?;
        self.credential_cache.validate()?;
        self.login_throttle.validate()?;
        self.password_hashing.validate()?;
        self.log.validate()?;
        let directories = directories::validate(directories)?;
        // These name directories, so they are checked against the checked list.
        let proxy_auth = self
            .proxy_auth
            .map(|p| p.validate(&directories))
            .transpose()?;
        let windows = self.windows.map(|w| w.validate(&directories)).transpose()?;
        let notifications = self
            .notifications
            .map(RawNotifications::validate)
            .transpose()?;
        let secret_scanning = self
            .secret_scanning
            .map(RawSecretScanning::validate)
            .transpose()?;
        Ok(Config {
            proxy_auth,
            windows,
            notifications,
            secret_scanning,
            server,
            database,
            access_keys,
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
