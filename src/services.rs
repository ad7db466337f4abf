//! What the domain runs on: configuration, storage, clock, hasher, directories and the
//! caches, built once and shared by every request and job (the application holds them).

use crate::auth_cache::AuthCache;
use crate::clock::Clock;
use crate::config::{Config, DirectoryConfig};
use crate::directory::ldap::LdapDirectory;
use crate::directory::oidc::OidcDirectory;
use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::ids::DirectoryId;
use crate::last_used::LastUsed;
use crate::metrics::Metrics;
use crate::passwords::Hasher;
use crate::store::Store;
use crate::throttle::LoginThrottle;
use std::sync::Arc;

pub struct Services {
    pub config: Arc<Config>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub hasher: Hasher,
    /// In configuration order; the built-in directory is always present.
    pub directories: Vec<Directory>,
    /// Decisions on known keys and sessions, answered from memory (see `auth_cache`).
    pub auth_cache: Arc<AuthCache>,
    pub last_used: LastUsed,
    pub metrics: Metrics,
    pub throttle: LoginThrottle,
    /// This process's name among replicas (`replica_id`), recorded with what it runs.
    pub replica: String,
    /// Accepts Kerberos tickets when `[windows]` is configured (needs the `kerberos` feature).
    pub kerberos: Option<Arc<crate::kerberos::Acceptor>>,
    /// The shared-signals transmitters of OpenID Connect directories (metadata, keys).
    pub ssf: crate::directory::ssf::transmitter::Transmitters,
    /// The lookup hash of key passwords, when `access_keys.lookup_pepper` is configured.
    pub key_lookup: Option<crate::key_lookup::KeyLookup>,
    /// Keys whose use from outside their networks was audited lately (one event per key per
    /// `last_used_write_interval_seconds`).
    pub network_refusals: crate::last_used::OncePer,
    /// The secret scanner's public keys, when `[secret_scanning]` is configured.
    pub secret_scanning: Option<crate::directory::scanner::keys::ScannerKeys>,
    builtin_id: DirectoryId,
}

impl Services {
    /// Builds the services on an opened (and migrated) store.
    pub fn with_store(config: Config, clock: Arc<dyn Clock>, store: Store) -> Result<Services> {
        let hasher = Hasher::new(&config.password_hashing)?;
        let directories = build_directories(&config)?;
        let builtin_id = config
            .builtin()
            .map(|b| b.id.clone())
            .ok_or_else(|| Error::invalid("directories: a `builtin` directory is required"))?;
        let kerberos = match &config.windows {
            Some(w) => Some(Arc::new(
                crate::kerberos::Acceptor::new(w).map_err(Error::Invalid)?,
            )),
            None => None,
        };
        let auth_cache = Arc::new(AuthCache::new(
            &config.credential_cache,
            config.access_keys.last_used_write_interval_seconds,
        ));
        let ssf = crate::directory::ssf::transmitter::Transmitters::from_config(&config)
            .map_err(|e| Error::invalid(e.to_string()))?;
        let key_lookup = config
            .access_keys
            .lookup_pepper
            .clone()
            .map(crate::key_lookup::KeyLookup::new);
        let secret_scanning = config
            .secret_scanning
            .as_ref()
            .map(crate::directory::scanner::keys::ScannerKeys::new)
            .transpose()
            .map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Services {
            secret_scanning,
            network_refusals: crate::last_used::OncePer::new(
                config.access_keys.last_used_write_interval_seconds,
            ),
            key_lookup,
            ssf,
            kerberos,
            last_used: LastUsed::new(config.access_keys.last_used_write_interval_seconds),
            throttle: LoginThrottle::new(&config.login_throttle),
            builtin_id,
            replica: replica_id(),
            config: Arc::new(config),
            store,
            clock,
            hasher,
            directories,
            auth_cache,
            metrics: Metrics::default(),
        })
    }

    /// The directory with this id, in any case.
    pub fn directory(&self, id: &DirectoryId) -> Option<&Directory> {
        self.directories
            .iter()
            .find(|d| d.id().eq_ignore_ascii_case(id))
    }

    pub fn builtin_id(&self) -> &DirectoryId {
        &self.builtin_id
    }
}

/// The directories of a configuration, ready to use.
pub fn build_directories(config: &Config) -> Result<Vec<Directory>> {
    config
        .directories
        .iter()
        .map(|d| match d {
            DirectoryConfig::Builtin(b) => Ok(Directory::Builtin(b.clone())),
            DirectoryConfig::Ldap(l) => LdapDirectory::new(l.as_ref().clone())
                .map(|d| Directory::Ldap(Box::new(d)))
                .map_err(|e| Error::invalid(format!("directories `{}`: {e}", l.id))),
            DirectoryConfig::Oidc(o) => OidcDirectory::new(o.as_ref().clone())
                .map(|d| Directory::Oidc(Box::new(d)))
                .map_err(|e| Error::invalid(format!("directories `{}`: {e}", o.id))),
        })
        .collect()
}

/// This process's name among replicas: host name and process id.
pub fn replica_id() -> String {
    let host = host_name()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}-{}", std::process::id())
}

/// The kernel's host name, from gethostname(2) rather than /proc/sys, which the systemd
/// unit hides (`ProcSubset=pid`).
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length; gethostname writes at most that.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}
