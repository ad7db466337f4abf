//! `[proxy_auth]`: sign-in through a trusted reverse proxy that did the Kerberos handshake.

use super::directories::{is_ldap_directory, DirectoryConfig};
use super::error::{invalid, ConfigError};
use super::layering::{read_secret_file, string_list};
use crate::ids::DirectoryId;
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;

/// Sign-in through a trusted reverse proxy that did the Kerberos (Negotiate) handshake itself
/// and passes the user in a header, with a shared secret proving the request came through it.
#[derive(Debug, Clone)]
pub struct ProxyAuthConfig {
    /// The LDAP / AD directory the names belong to (looked up there, no password).
    pub directory: DirectoryId,
    pub user_header: String,
    pub secret_header: String,
    pub secret: Secret,
    /// Peer addresses the proxy connects from; requests from anywhere else are ignored.
    pub trusted_addresses: Vec<std::net::IpAddr>,
    /// Kerberos realms whose `user@REALM` names are accepted (upper-cased); empty = any.
    pub allowed_realms: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxyAuth {
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

impl RawProxyAuth {
    pub(super) fn validate(
        self,
        directories: &[DirectoryConfig],
    ) -> Result<ProxyAuthConfig, ConfigError> {
        if !is_ldap_directory(directories, &self.directory) {
            return Err(invalid(
                "proxy_auth.directory",
                format!(
                    "`{}` is not an LDAP directory of this configuration",
                    self.directory
                ),
            ));
        }
        let secret = match (self.secret, self.secret_file) {
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
        if self.trusted_addresses.is_empty() {
            return Err(invalid(
                "proxy_auth.trusted_addresses",
                "name at least one address",
            ));
        }
        let trusted_addresses = self
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
            directory: DirectoryId::from(self.directory),
            user_header: self.user_header.unwrap_or_else(|| "X-Remote-User".into()),
            secret_header: self
                .secret_header
                .unwrap_or_else(|| "X-Proxy-Secret".into()),
            secret,
            trusted_addresses,
            allowed_realms: self
                .allowed_realms
                .iter()
                .map(|r| r.trim().to_ascii_uppercase())
                .collect(),
        })
    }
}
