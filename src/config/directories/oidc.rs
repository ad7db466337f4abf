//! `kind = "oidc"`: an OpenID Connect provider people log in through.

use super::ssf::{RawSsf, SsfConfig};
use crate::config::error::{invalid, ConfigError};
use crate::config::layering::{lenient_opt, read_secret_file, string_list_opt};
use crate::ids::DirectoryId;
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;

/// Default of `pending_logins_per_address`.
pub const DEFAULT_PENDING_LOGINS_PER_ADDRESS: u64 = 20;

/// An OpenID Connect provider people log in through.
#[derive(Debug, Clone)]
pub struct OidcDirectoryConfig {
    pub id: DirectoryId,
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
    /// `[directories.ssf]`: shared signals (CAEP, RISC) from the provider's transmitter.
    pub ssf: Option<SsfConfig>,
}

/// An `oidc` entry as written. `admin_group`, `timeout_seconds` and `removal_grace_hours`
/// are shared with `ldap` entries; every other key is this kind's own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawOidc {
    pub(super) id: String,
    name: Option<String>,
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    client_secret_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "string_list_opt")]
    scopes: Option<Vec<String>>,
    username_claim: Option<String>,
    groups_claim: Option<String>,
    admin_group: Option<String>,
    #[serde(default, deserialize_with = "string_list_opt")]
    allowed_groups: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient_opt")]
    timeout_seconds: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt")]
    removal_grace_hours: Option<u64>,
    #[serde(default, deserialize_with = "lenient_opt")]
    username_claim_is_provider_controlled: Option<bool>,
    #[serde(default, deserialize_with = "lenient_opt")]
    pending_logins_per_address: Option<u64>,
    ssf: Option<RawSsf>,
}

impl RawOidc {
    /// `key` names a key of this entry (`directories[i].…`).
    pub(super) fn validate(
        self,
        key: impl Fn(&str) -> String,
    ) -> Result<OidcDirectoryConfig, ConfigError> {
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
            (None, Some(path)) => Some(read_secret_file(&key("client_secret_file"), &path)?),
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
        let ssf = match self.ssf {
            Some(raw) => Some(raw.validate(|k| key(&format!("ssf.{k}")))?),
            None => None,
        };
        Ok(OidcDirectoryConfig {
            ssf,
            name: self.name.unwrap_or_else(|| self.id.clone()),
            id: DirectoryId::from(self.id),
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
        })
    }
}
