//! Files in systemd's credentials directory (`LoadCredential=`): a `*_file` setting written
//! as `$CREDENTIALS_DIRECTORY/NAME` (or `${CREDENTIALS_DIRECTORY}/NAME`) names the copy that
//! systemd hands this service, so a root-only secret never has to be readable by the
//! service user on disk.

use super::error::{invalid, ConfigError};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The variable systemd sets to the service's credentials directory.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// The path a file setting `key` names, with a leading `$CREDENTIALS_DIRECTORY/` taken from
/// this process's environment. Every file setting goes through here (the TLS files too).
pub fn credential_path(key: &str, path: &Path) -> Result<PathBuf, ConfigError> {
    let dir = std::env::var_os(CREDENTIALS_DIRECTORY);
    expand_credential_path(key, path, dir.as_deref())
}

/// [`credential_path`] with the directory given: `dir` is the value of
/// `CREDENTIALS_DIRECTORY` (None when unset). Any other path is returned unchanged.
pub fn expand_credential_path(
    key: &str,
    path: &Path,
    dir: Option<&OsStr>,
) -> Result<PathBuf, ConfigError> {
    let bytes = path.as_os_str().as_bytes();
    let Some(name) = [
        b"$CREDENTIALS_DIRECTORY/".as_slice(),
        b"${CREDENTIALS_DIRECTORY}/",
    ]
    .iter()
    .find_map(|prefix| bytes.strip_prefix(*prefix)) else {
        return Ok(path.to_path_buf());
    };
    let name = OsStr::from_bytes(name);
    // systemd's credential names are single file names; anything else is a mistake that
    // would otherwise surface as a confusing "cannot read".
    if name.is_empty() || name == "." || name == ".." || name.as_bytes().contains(&b'/') {
        return Err(invalid(
            key,
            format!(
                "`{}`: after $CREDENTIALS_DIRECTORY/ comes the name of one credential \
                 (LoadCredential=NAME:...), without a slash",
                path.display()
            ),
        ));
    }
    match dir.filter(|d| !d.is_empty()) {
        Some(dir) => Ok(Path::new(dir).join(name)),
        None => Err(invalid(
            key,
            format!(
                "`{}` names a systemd credential, but CREDENTIALS_DIRECTORY is not set: \
                 start the service with LoadCredential={}:/path/to/file in its unit \
                 (or give the file's own path here)",
                path.display(),
                name.to_string_lossy()
            ),
        )),
    }
}

/// [`credential_path`] for an optional setting.
pub(super) fn credential_path_opt(
    key: &str,
    path: Option<PathBuf>,
) -> Result<Option<PathBuf>, ConfigError> {
    path.map(|p| credential_path(key, &p)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(path: &str, dir: Option<&str>) -> Result<PathBuf, String> {
        expand_credential_path(
            "directories[1].bind_password_file",
            Path::new(path),
            dir.map(OsStr::new),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn both_spellings_name_a_file_in_the_credentials_directory() {
        let dir = Some("/run/credentials/accesskeyd.service");
        for path in [
            "$CREDENTIALS_DIRECTORY/ldap-bind-password",
            "${CREDENTIALS_DIRECTORY}/ldap-bind-password",
        ] {
            assert_eq!(
                expand(path, dir).unwrap(),
                PathBuf::from("/run/credentials/accesskeyd.service/ldap-bind-password"),
                "{path}"
            );
        }
    }

    #[test]
    fn other_paths_are_left_alone_with_or_without_the_variable() {
        for path in [
            "/etc/accesskeyd/ldap-bind-password",
            "relative/secret",
            "$CREDENTIALS_DIRECTORY",
            "$HOME/secret",
            "/x/$CREDENTIALS_DIRECTORY/y",
        ] {
            assert_eq!(expand(path, None).unwrap(), PathBuf::from(path));
            assert_eq!(expand(path, Some("/run/c")).unwrap(), PathBuf::from(path));
        }
    }

    #[test]
    fn an_unset_variable_is_an_error_naming_the_setting_and_the_credential() {
        for dir in [None, Some("")] {
            let e = expand("$CREDENTIALS_DIRECTORY/ldap-bind-password", dir).unwrap_err();
            assert!(e.contains("directories[1].bind_password_file"), "{e}");
            assert!(e.contains("CREDENTIALS_DIRECTORY is not set"), "{e}");
            assert!(e.contains("LoadCredential=ldap-bind-password:"), "{e}");
        }
    }

    #[test]
    fn a_credential_name_is_one_file_name() {
        for path in [
            "$CREDENTIALS_DIRECTORY/",
            "$CREDENTIALS_DIRECTORY/../etc/shadow",
            "${CREDENTIALS_DIRECTORY}/a/b",
            "$CREDENTIALS_DIRECTORY/..",
        ] {
            let e = expand(path, Some("/run/c")).unwrap_err();
            assert!(e.contains("bind_password_file"), "{e}");
            assert!(e.contains("without a slash"), "{e}");
        }
    }
}
