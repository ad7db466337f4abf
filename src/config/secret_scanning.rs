//! `[secret_scanning]`: where the public keys that sign leaked-token reports (GitHub's secret
//! scanning partner program) come from. Without the section the report endpoint answers 404.

use super::credentials::credential_path;
use super::error::{invalid, ConfigError};
use super::layering::lenient_opt;
use serde::Deserialize;
use std::path::PathBuf;

/// GitHub's published secret-scanning keys.
pub const GITHUB_PUBLIC_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";

/// Reports of leaked tokens, signed by the scanner.
#[derive(Debug, Clone)]
pub struct SecretScanningConfig {
    pub public_keys: PublicKeysSource,
    /// Timeout of one fetch of the keys from a URL.
    pub timeout_seconds: u64,
}

/// Where the scanner's public keys (GitHub's `{"public_keys": [...]}` document) are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeysSource {
    /// A file, read again as a fetched document would be (so replacing it rotates keys).
    File(PathBuf),
    /// An https URL (http only to a loopback address, for tests and local mirrors).
    Url(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecretScanning {
    public_keys_file: Option<PathBuf>,
    public_keys_url: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt")]
    timeout_seconds: Option<u64>,
}

impl RawSecretScanning {
    pub(super) fn validate(self) -> Result<SecretScanningConfig, ConfigError> {
        let public_keys = match (self.public_keys_file, self.public_keys_url) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "secret_scanning.public_keys_url",
                    "give public_keys_file or public_keys_url, not both",
                ))
            }
            (None, None) => {
                return Err(invalid(
                    "secret_scanning",
                    format!(
                        "give public_keys_url (GitHub's is {GITHUB_PUBLIC_KEYS_URL}) or public_keys_file"
                    ),
                ))
            }
            (Some(file), None) if file.as_os_str().is_empty() => {
                return Err(invalid("secret_scanning.public_keys_file", "is empty"))
            }
            (Some(file), None) => PublicKeysSource::File(credential_path(
                "secret_scanning.public_keys_file",
                &file,
            )?),
            (None, Some(url)) => {
                check_url(&url)?;
                PublicKeysSource::Url(url)
            }
        };
        let timeout_seconds = self.timeout_seconds.unwrap_or(10);
        if !(1..=120).contains(&timeout_seconds) {
            return Err(invalid(
                "secret_scanning.timeout_seconds",
                "must be 1 to 120",
            ));
        }
        Ok(SecretScanningConfig {
            public_keys,
            timeout_seconds,
        })
    }
}

/// https, or http to a loopback host: whoever serves the keys decides which reports revoke
/// keys, so they must not come over a network in the clear.
fn check_url(url: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| invalid("secret_scanning.public_keys_url", format!("`{url}`: {why}"));
    let parsed = url::Url::parse(url).map_err(|_| bad("not a URL"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(bad("http only to a loopback address; use https")),
        _ => Err(bad("not an http(s) URL")),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(file: Option<&str>, url: Option<&str>) -> RawSecretScanning {
        RawSecretScanning {
            public_keys_file: file.map(PathBuf::from),
            public_keys_url: url.map(str::to_string),
            timeout_seconds: None,
        }
    }

    #[test]
    fn keys_come_from_one_file_or_one_safe_url() {
        assert_eq!(
            raw(Some("/etc/keys.json"), None)
                .validate()
                .unwrap()
                .public_keys,
            PublicKeysSource::File("/etc/keys.json".into())
        );
        let c = raw(None, Some(GITHUB_PUBLIC_KEYS_URL)).validate().unwrap();
        assert_eq!(c.timeout_seconds, 10);
        for ok in [
            "http://127.0.0.1:8080/keys",
            "http://[::1]/k",
            "http://localhost/k",
        ] {
            assert!(raw(None, Some(ok)).validate().is_ok(), "{ok}");
        }
        for (bad, key) in [
            (raw(None, None), "secret_scanning"),
            (
                raw(Some("/k"), Some(GITHUB_PUBLIC_KEYS_URL)),
                "public_keys_url",
            ),
            (raw(None, Some("http://keys.example.com/k")), "loopback"),
            (raw(None, Some("ftp://keys.example.com/k")), "http(s)"),
            (raw(None, Some("not a url")), "not a URL"),
            (raw(Some(""), None), "public_keys_file"),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
