//! `[windows]`: Kerberos (SPNEGO) sign-in done by accesskeyd itself, and which directory the
//! people of each realm belong to.

use super::credentials::credential_path;
use super::directories::{is_ldap_directory, DirectoryConfig};
use super::error::{invalid, ConfigError};
use crate::ids::DirectoryId;
use serde::Deserialize;
use std::path::PathBuf;

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
    pub directory: DirectoryId,
    /// Unset: the principal's name part (`alice` of `alice@CORP`) is looked up like a login
    /// name (the directory's `username_attribute`, e.g. `sAMAccountName`). Set (e.g.
    /// `userPrincipalName`): the whole principal is looked up in this attribute.
    #[serde(default)]
    pub match_attribute: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWindows {
    keytab: Option<PathBuf>,
    service_principal: Option<String>,
    #[serde(default)]
    realms: Vec<RealmMapping>,
}

impl RawWindows {
    pub(super) fn validate(
        self,
        directories: &[DirectoryConfig],
    ) -> Result<WindowsConfig, ConfigError> {
        let keytab = self
            .keytab
            .ok_or_else(|| invalid("windows.keytab", "is required"))?;
        let keytab = credential_path("windows.keytab", &keytab)?;
        if let Some(sp) = &self.service_principal {
            let (service, host) = sp.split_once('/').unwrap_or((sp, ""));
            if service.is_empty() || host.is_empty() || host.starts_with('@') {
                return Err(invalid(
                    "windows.service_principal",
                    format!("`{sp}` is not of the form HTTP/host.example.com[@REALM]"),
                ));
            }
        }
        if self.realms.is_empty() {
            return Err(invalid(
                "windows.realms",
                "map at least one Kerberos realm to a directory",
            ));
        }
        for (i, r) in self.realms.iter().enumerate() {
            let key = |k: &str| format!("windows.realms[{i}].{k}");
            if r.realm.trim().is_empty() || r.realm.contains('@') {
                return Err(invalid(
                    key("realm"),
                    format!("`{}` is not a realm", r.realm),
                ));
            }
            if self.realms[..i]
                .iter()
                .any(|o| o.realm.eq_ignore_ascii_case(&r.realm))
            {
                return Err(invalid(
                    key("realm"),
                    format!("`{}` is mapped twice", r.realm),
                ));
            }
            if !is_ldap_directory(directories, r.directory.as_str()) {
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
            service_principal: self.service_principal,
            realms: self.realms,
        })
    }
}
