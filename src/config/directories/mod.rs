//! `[[directories]]`: where the people who sign in come from. An entry's `kind` (`builtin`,
//! `ldap`, `oidc`) picks the struct its keys are read into, and each struct refuses keys it
//! does not have: which keys belong to which kind is said once, by the types.

mod builtin;
mod ldap;
mod oidc;
mod ssf;

pub use builtin::BuiltinDirectoryConfig;
pub use ldap::{
    ChangeFeed, DomainControllers, LdapDirectoryConfig, SyncPolicy, DEFAULT_SYNC_SCHEDULE,
    MAX_DOMAIN_CONTROLLERS, PERCENT_THRESHOLD_MIN_USERS,
};
pub use oidc::{OidcDirectoryConfig, DEFAULT_PENDING_LOGINS_PER_ADDRESS};
pub use ssf::{SsfConfig, SsfPoll, DEFAULT_SSF_MAX_AGE_SECONDS};

use crate::config::error::{invalid, ConfigError};
use crate::config::layering::{deserialize, fields_of};
use crate::ids::DirectoryId;
use builtin::RawBuiltin;
use ldap::RawLdap;
use oidc::RawOidc;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::HashSet;

/// One configured directory.
#[derive(Debug, Clone)]
pub enum DirectoryConfig {
    Builtin(BuiltinDirectoryConfig),
    Ldap(Box<LdapDirectoryConfig>),
    Oidc(Box<OidcDirectoryConfig>),
}

impl DirectoryConfig {
    pub fn id(&self) -> &DirectoryId {
        match self {
            DirectoryConfig::Builtin(b) => &b.id,
            DirectoryConfig::Ldap(l) => &l.id,
            DirectoryConfig::Oidc(o) => &o.id,
        }
    }
}

/// The value of an entry's `kind` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirectoryKind {
    Builtin,
    Ldap,
    Oidc,
}

impl DirectoryKind {
    const ALL: [DirectoryKind; 3] = [
        DirectoryKind::Builtin,
        DirectoryKind::Ldap,
        DirectoryKind::Oidc,
    ];

    fn name(self) -> &'static str {
        match self {
            DirectoryKind::Builtin => "builtin",
            DirectoryKind::Ldap => "ldap",
            DirectoryKind::Oidc => "oidc",
        }
    }

    /// The keys an entry of this kind takes (besides `kind`), as its struct declares them.
    fn keys(self) -> &'static [&'static str] {
        match self {
            DirectoryKind::Builtin => fields_of::<RawBuiltin>(),
            DirectoryKind::Ldap => fields_of::<RawLdap>(),
            DirectoryKind::Oidc => fields_of::<RawOidc>(),
        }
    }
}

/// What every entry has: `id` (read with the rest) and `kind`. Other keys are left alone.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "id")]
    _id: IgnoredAny,
    kind: String,
}

/// A `[[directories]]` entry as written, in the shape of its kind.
#[derive(Debug)]
pub(super) enum RawDirectory {
    Builtin(RawBuiltin),
    Ldap(Box<RawLdap>),
    Oidc(Box<RawOidc>),
}

impl RawDirectory {
    /// Reads entry `i`. This is serde's internal tagging (`#[serde(tag = "kind")]`) in two
    /// steps: a derived tagged enum buffers the entry before reading the variant, and errors
    /// of the buffered read lose their key (`directories[0]` instead of
    /// `directories[0].starttls`); `tests::a_derived_tagged_enum_loses_the_key` shows it.
    pub(super) fn read(i: usize, table: toml::Table, origin: &str) -> Result<Self, ConfigError> {
        let at = format!("directories[{i}]");
        let head: Head = deserialize(toml::Value::Table(table.clone()), origin, Some(&at))?;
        let kind = DirectoryKind::ALL
            .into_iter()
            .find(|k| k.name() == head.kind)
            .ok_or_else(|| {
                invalid(
                    format!("{at}.kind"),
                    format!(
                        "unknown kind `{}`: use `builtin`, `ldap` or `oidc`",
                        head.kind
                    ),
                )
            })?;
        // A key of another kind is named as such; other unknown keys (typos) are refused by
        // the kind's struct, whose message lists the keys it has.
        let own = kind.keys();
        let foreign = table.keys().find(|k| {
            k.as_str() != "kind"
                && !own.contains(&k.as_str())
                && DirectoryKind::ALL
                    .iter()
                    .any(|other| other.keys().contains(&k.as_str()))
        });
        if let Some(k) = foreign {
            return Err(invalid(
                format!("{at}.{k}"),
                format!("is not a setting of a `{}` directory", kind.name()),
            ));
        }
        let mut entry = table;
        entry.remove("kind");
        let entry = toml::Value::Table(entry);
        Ok(match kind {
            DirectoryKind::Builtin => RawDirectory::Builtin(deserialize(entry, origin, Some(&at))?),
            DirectoryKind::Ldap => {
                RawDirectory::Ldap(Box::new(deserialize(entry, origin, Some(&at))?))
            }
            DirectoryKind::Oidc => {
                RawDirectory::Oidc(Box::new(deserialize(entry, origin, Some(&at))?))
            }
        })
    }

    fn id(&self) -> &str {
        match self {
            RawDirectory::Builtin(b) => &b.id,
            RawDirectory::Ldap(l) => &l.id,
            RawDirectory::Oidc(o) => &o.id,
        }
    }

    /// Checks entry `i` and fills in its defaults.
    fn validate(self, i: usize) -> Result<DirectoryConfig, ConfigError> {
        let key = |k: &str| format!("directories[{i}].{k}");
        let id = self.id();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                key("id"),
                "must be non-empty and use only letters, digits, `-` and `_`",
            ));
        }
        Ok(match self {
            RawDirectory::Builtin(b) => DirectoryConfig::Builtin(b.validate()),
            RawDirectory::Ldap(l) => DirectoryConfig::Ldap(Box::new(l.validate(key)?)),
            RawDirectory::Oidc(o) => DirectoryConfig::Oidc(Box::new(o.validate(key)?)),
        })
    }
}

/// Checks every entry, that ids are unique (regardless of case), and that there is exactly
/// one built-in directory: added first when the file has none.
pub(super) fn validate(entries: Vec<RawDirectory>) -> Result<Vec<DirectoryConfig>, ConfigError> {
    let mut directories = Vec::new();
    let mut ids = HashSet::new();
    for (i, raw) in entries.into_iter().enumerate() {
        let dir = raw.validate(i)?;
        if !ids.insert(dir.id().as_str().to_ascii_lowercase()) {
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
            DirectoryConfig::Builtin(b) => Some(b.id.to_string()),
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
    Ok(directories)
}

/// `id` names an LDAP directory of this configuration (regardless of case).
pub(super) fn is_ldap_directory(directories: &[DirectoryConfig], id: &str) -> bool {
    directories
        .iter()
        .any(|d| matches!(d, DirectoryConfig::Ldap(l) if l.id.eq_ignore_ascii_case(id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::io::Write;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_from(Some(f.path()), &env)
    }

    const LDAP: &str = "[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\n";

    /// serde's own internally tagged enum over the same structs: it refuses a key of another
    /// kind and reads environment text, but an error inside the entry loses its key, which
    /// is why [`RawDirectory::read`] tags in two steps.
    #[test]
    fn a_derived_tagged_enum_loses_the_key() {
        #[derive(Debug, Deserialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        #[allow(dead_code)]
        enum Tagged {
            Builtin(RawBuiltin),
            Ldap(Box<RawLdap>),
            Oidc(Box<RawOidc>),
        }
        let read = |text: &str| {
            let table: toml::Table = toml::from_str(text).unwrap();
            serde_path_to_error::deserialize::<_, Tagged>(toml::Value::Table(table))
        };
        let e = read("id = \"a\"\nkind = \"builtin\"\nurl = \"ldap://x\"\n").unwrap_err();
        assert!(e.inner().to_string().contains("unknown field `url`"), "{e}");
        assert!(matches!(
            read("id = \"a\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nstarttls = \"true\"\npage_size = \" 7\"\n"),
            Ok(Tagged::Ldap(_))
        ));
        let e = read("id = \"a\"\nkind = \"ldap\"\nstarttls = \"maybe\"\n").unwrap_err();
        assert_eq!(e.path().to_string(), ".", "the key is lost: {e}");
        let err = load(&format!("{LDAP}starttls = \"maybe\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`directories[0].starttls`"), "{err}");
    }

    #[test]
    fn the_keys_of_each_kind_come_from_its_struct() {
        assert_eq!(DirectoryKind::Builtin.keys(), ["id", "name"]);
        let ldap = DirectoryKind::Ldap.keys();
        assert!(ldap.contains(&"bind_password") && ldap.contains(&"admin_group"));
        assert!(!ldap.contains(&"issuer") && !ldap.contains(&"kind"));
        let oidc = DirectoryKind::Oidc.keys();
        assert!(oidc.contains(&"issuer") && oidc.contains(&"removal_grace_hours"));
        assert!(!oidc.contains(&"url"));
    }

    #[test]
    fn keys_of_another_kind_typos_and_bad_values_are_named() {
        for (text, key, says) in [
            (
                "[[directories]]\nid = \"a\"\nkind = \"builtin\"\nurl = \"ldap://x\"\n".to_string(),
                "directories[0].url",
                "is not a setting of a `builtin` directory",
            ),
            (
                "[[directories]]\nid = \"a\"\nkind = \"oidc\"\nissuer = \"https://i\"\nclient_id = \"c\"\nbind_dn = \"x\"\n".to_string(),
                "directories[0].bind_dn",
                "is not a setting of a `oidc` directory",
            ),
            (
                format!("{LDAP}bind_pasword = \"x\"\n"),
                "directories[0].bind_pasword",
                "unknown field `bind_pasword`",
            ),
            (
                format!("{LDAP}page_size = \"many\"\n"),
                "directories[0].page_size",
                "invalid digit",
            ),
            (
                "[[directories]]\nid = \"a\"\nkind = \"nis\"\n".to_string(),
                "directories[0].kind",
                "unknown kind `nis`",
            ),
            (
                "[[directories]]\nkind = \"ldap\"\n".to_string(),
                "directories[0]",
                "missing field `id`",
            ),
            (
                "[[directories]]\nid = \"a\"\n".to_string(),
                "directories[0]",
                "missing field `kind`",
            ),
        ] {
            let err = load(&text, &[]).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{text:?}: {err}");
        }
        // A position the file does not have is an entry without an id.
        let err = load(LDAP, &[("ACCESSKEYD_DIRECTORIES__2__BIND_PASSWORD", "pw")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`directories[1]`: missing field `id`"),
            "{err}"
        );
    }

    #[test]
    fn environment_text_is_read_inside_each_kind() {
        let c = load(
            "[[directories]]\nid = \"idp\"\nkind = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"c\"\n",
            &[
                ("ACCESSKEYD_DIRECTORIES__0__TIMEOUT_SECONDS", " 3 "),
                ("ACCESSKEYD_DIRECTORIES__0__SCOPES", "openid, groups"),
                ("ACCESSKEYD_DIRECTORIES__0__USERNAME_CLAIM_IS_PROVIDER_CONTROLLED", "true"),
                ("ACCESSKEYD_DIRECTORIES__1__ID", "corp"),
                ("ACCESSKEYD_DIRECTORIES__1__KIND", "ldap"),
                ("ACCESSKEYD_DIRECTORIES__1__URL", "ldap://x"),
                ("ACCESSKEYD_DIRECTORIES__1__USER_BASE", "dc=x"),
                ("ACCESSKEYD_DIRECTORIES__1__PAGE_SIZE", "50"),
                ("ACCESSKEYD_DIRECTORIES__1__REMOVE_DISABLED", "true"),
            ],
        )
        .unwrap();
        let DirectoryConfig::Oidc(o) = &c.directories[1] else {
            panic!("expected oidc")
        };
        assert_eq!(o.timeout_seconds, 3);
        assert_eq!(o.scopes, ["openid", "groups"]);
        assert!(o.username_claim_is_provider_controlled);
        let DirectoryConfig::Ldap(l) = &c.directories[2] else {
            panic!("expected ldap")
        };
        assert_eq!(l.page_size, 50);
        assert!(l.sync.remove_disabled);
    }
}
