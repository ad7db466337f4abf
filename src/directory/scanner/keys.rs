//! The secret scanner's public keys, read from the configured file or URL and held as
//! `directory::fetched` holds a peer's keys (a report naming a key we do not hold reads them
//! again, within limits: anyone can send a report with a made-up key identifier, and must
//! not make us hammer GitHub's API).

use super::signature::{parse_public_keys, PublicKeys};
use crate::config::{PublicKeysSource, SecretScanningConfig};
use crate::directory::fetched::{get_json, KeyCache};
use std::sync::Arc;
use std::time::Duration;

/// Largest keys document read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The keys could not be read (file missing, URL down, not a keys document).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the secret scanner's public keys: {0}")]
pub struct Unavailable(pub String);

/// Where the keys come from, and what we hold of them.
pub struct ScannerKeys {
    source: PublicKeysSource,
    http: reqwest::Client,
    keys: KeyCache<Arc<PublicKeys>>,
}

impl ScannerKeys {
    pub fn new(cfg: &SecretScanningConfig) -> Result<ScannerKeys, Unavailable> {
        let http = reqwest::Client::builder()
            // A redirect would take us where the configuration did not say.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(cfg.timeout_seconds))
            // GitHub's API refuses requests without one.
            .user_agent(concat!("accesskeyd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Unavailable(format!("HTTP client: {e}")))?;
        Ok(ScannerKeys {
            source: cfg.public_keys.clone(),
            http,
            keys: KeyCache::default(),
        })
    }

    /// The keys to check a report signed with `key_identifier` (see `KeyCache::get`).
    pub async fn keys_for(&self, key_identifier: &str) -> Result<Arc<PublicKeys>, Unavailable> {
        self.keys
            .get(
                |k| k.knows(key_identifier),
                || async { self.read().await.map(Arc::new) },
                "the secret scanner",
            )
            .await
    }

    async fn read(&self) -> Result<PublicKeys, Unavailable> {
        let (body, from) = match &self.source {
            PublicKeysSource::File(path) => {
                // A small file, read on a blocking thread (the runtime's threads never wait on disk).
                let file = path.clone();
                let body = tokio::task::spawn_blocking(move || std::fs::read(file))
                    .await
                    .map_err(|e| Unavailable(format!("{}: {e}", path.display())))?
                    .map_err(|e| Unavailable(format!("{}: {e}", path.display())))?;
                if body.len() > MAX_DOCUMENT_BYTES {
                    return Err(Unavailable(format!(
                        "{}: longer than {MAX_DOCUMENT_BYTES} bytes",
                        path.display()
                    )));
                }
                (body, path.display().to_string())
            }
            PublicKeysSource::Url(url) => (self.get(url).await?, url.clone()),
        };
        parse_public_keys(&body).map_err(|e| Unavailable(format!("{from}: {e}")))
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, Unavailable> {
        get_json(&self.http, url, MAX_DOCUMENT_BYTES)
            .await
            .map_err(Unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::super::signature::fixtures::{github_document, GITHUB_KEY_ID};
    use super::*;

    fn from_file(path: &std::path::Path) -> ScannerKeys {
        ScannerKeys::new(&SecretScanningConfig {
            public_keys: PublicKeysSource::File(path.to_path_buf()),
            timeout_seconds: 5,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn keys_are_read_from_the_file_and_kept_when_it_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let keys = from_file(&path);
        assert!(keys.keys_for(GITHUB_KEY_ID).await.is_err(), "no file yet");
        std::fs::write(&path, github_document()).unwrap();
        let held = keys.keys_for(GITHUB_KEY_ID).await.unwrap();
        assert!(held.knows(GITHUB_KEY_ID));
        // An unknown identifier reads the file again (it is broken now): the held keys stay.
        std::fs::write(&path, "garbage").unwrap();
        let still = keys.keys_for("rotated").await.unwrap();
        assert!(still.knows(GITHUB_KEY_ID));
    }
}
