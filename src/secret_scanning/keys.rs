//! The secret scanner's public keys, read from the configured file or URL and cached like a
//! shared-signals transmitter's: for [`CACHE_TTL`], and read again when a report names a
//! key we do not hold, but not more often than every [`REFETCH_AFTER`] (anyone can send a
//! report with a made-up key identifier, and must not make us hammer GitHub's API).

use super::signature::{parse_public_keys, PublicKeys};
use crate::config::{PublicKeysSource, SecretScanningConfig};
use crate::directory::ssf::transmitter::{decide, read_capped, Fetch};
pub use crate::directory::ssf::transmitter::{CACHE_TTL, REFETCH_AFTER};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Largest keys document read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The keys could not be read (file missing, URL down, not a keys document).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the secret scanner's public keys: {0}")]
pub struct Unavailable(pub String);

#[derive(Default)]
struct Cached {
    keys: Option<(Arc<PublicKeys>, Instant)>,
    /// When an unknown key identifier last made us read the keys.
    last_refetch: Option<Instant>,
}

/// Where the keys come from, and what we hold of them.
pub struct ScannerKeys {
    source: PublicKeysSource,
    http: reqwest::Client,
    cache: Mutex<Cached>,
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
            cache: Mutex::new(Cached::default()),
        })
    }

    /// The keys to check a report signed with `key_identifier`: the held ones while fresh
    /// and holding it; read again when stale, or when it is unknown and the last such read
    /// is older than [`REFETCH_AFTER`]. When a read fails, keys we still hold are used.
    pub async fn keys_for(&self, key_identifier: &str) -> Result<Arc<PublicKeys>, Unavailable> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        let decision = decide(
            cache
                .keys
                .as_ref()
                .map(|(k, at)| (now.duration_since(*at), k.knows(key_identifier))),
            cache.last_refetch.map(|at| now.duration_since(at)),
        );
        if decision != Fetch::No {
            if decision == Fetch::Refetch {
                cache.last_refetch = Some(now);
            }
            match self.read().await {
                Ok(keys) => cache.keys = Some((Arc::new(keys), Instant::now())),
                Err(e) if cache.keys.is_some() => {
                    tracing::warn!(error = %e, "the secret scanner's public keys could not be read again; using the ones held");
                }
                Err(e) => return Err(e),
            }
        }
        cache
            .keys
            .as_ref()
            .map(|(k, _)| k.clone())
            .ok_or_else(|| Unavailable("no keys".into()))
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
        let mut resp = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| Unavailable(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(Unavailable(format!("{url}: HTTP {}", resp.status())));
        }
        read_capped(&mut resp, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| Unavailable(format!("{url}: {e}")))
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
