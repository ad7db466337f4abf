//! The transmitters we take SETs from: each directory's transmitter metadata (SSF 1.0 §7) and
//! signing keys, fetched over HTTP and cached. A SET signed with a key we do not know makes
//! us fetch the keys again (the transmitter rotated them), but not more often than every
//! [`REFETCH_AFTER`]: anyone can send SETs with made-up key ids, and they must not be able
//! to make us hammer the transmitter.

use super::set::{key_for, SetHeader};
use crate::config::{Config, DirectoryConfig, SsfConfig};
use crate::ids::DirectoryId;
use jsonwebtoken::jwk::Jwk;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Metadata and keys are fetched again after this long.
pub const CACHE_TTL: Duration = Duration::from_secs(600);

/// An unknown key id makes us fetch the keys again at most this often.
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// Largest metadata or key-set document read.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// Keys from one JWKS beyond this many are ignored.
const MAX_KEYS: usize = 64;

/// The transmitter could not be asked (down, not JSON, its issuer not the configured one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the SSF transmitter: {0}")]
pub struct Unavailable(pub String);

/// What we use of the transmitter's metadata.
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

/// The keys of a transmitter, as last fetched.
#[derive(Debug, Clone)]
pub struct Keys {
    /// The transmitter's issuer (equal to the configured one: checked on fetching).
    pub issuer: String,
    pub keys: Vec<Jwk>,
}

#[derive(Default)]
struct Cached {
    keys: Option<(Keys, Instant)>,
    /// When an unknown key id last made us fetch.
    last_refetch: Option<Instant>,
}

/// One directory's transmitter.
pub struct Transmitter {
    metadata_url: String,
    issuer: String,
    http: reqwest::Client,
    cache: Mutex<Cached>,
}

impl Transmitter {
    pub fn new(cfg: &SsfConfig, timeout: Duration) -> Result<Transmitter, Unavailable> {
        let http = reqwest::Client::builder()
            // A redirect would take us where the configuration did not say (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|e| Unavailable(format!("HTTP client: {e}")))?;
        Ok(Transmitter {
            metadata_url: cfg.metadata_url(),
            issuer: cfg.transmitter.clone(),
            http,
            cache: Mutex::new(Cached::default()),
        })
    }

    /// The HTTP client (timeouts, no redirects), for polling the same transmitter.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The keys to verify a SET with `header`: the cached ones while fresh and holding the
    /// key it names; fetched again when stale, or when the key is unknown and the last such
    /// fetch is older than [`REFETCH_AFTER`]. When a fetch fails, keys we still hold are used.
    pub async fn keys_for(&self, header: &SetHeader) -> Result<Keys, Unavailable> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        let decision = decide(
            cache
                .keys
                .as_ref()
                .map(|(k, at)| (now.duration_since(*at), key_for(header, &k.keys).is_some())),
            cache.last_refetch.map(|at| now.duration_since(at)),
        );
        match decision {
            Fetch::No => {}
            Fetch::Refetch | Fetch::Stale => {
                if decision == Fetch::Refetch {
                    cache.last_refetch = Some(now);
                }
                match self.fetch().await {
                    Ok(keys) => cache.keys = Some((keys, Instant::now())),
                    Err(e) if cache.keys.is_some() => {
                        tracing::warn!(error = %e, "SSF transmitter keys could not be refreshed; using the ones held");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        cache
            .keys
            .as_ref()
            .map(|(k, _)| k.clone())
            .ok_or_else(|| Unavailable("no keys".into()))
    }

    async fn fetch(&self) -> Result<Keys, Unavailable> {
        let meta: Metadata = serde_json::from_slice(&self.get(&self.metadata_url).await?)
            .map_err(|e| Unavailable(format!("{}: {e}", self.metadata_url)))?;
        // SSF 1.0 §7.2.3: the issuer must be the one we asked (else another transmitter
        // could pass its keys off as this one's).
        if meta.issuer != self.issuer {
            return Err(Unavailable(format!(
                "its metadata names issuer `{}`, not `{}`",
                crate::audit::cut(&meta.issuer, 200),
                self.issuer
            )));
        }
        let body = self.get(&meta.jwks_uri).await?;
        Ok(Keys {
            issuer: meta.issuer,
            keys: parse_jwks(&body).map_err(|e| Unavailable(format!("{}: {e}", meta.jwks_uri)))?,
        })
    }

    /// GETs `url` as JSON, reading at most [`MAX_DOCUMENT_BYTES`].
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

/// Reads a response body, refusing one longer than `max` bytes.
pub async fn read_capped(resp: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err(format!("longer than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether to fetch the keys (also of the secret scanner's keys, `secret_scanning::keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    No,
    /// Nothing held, or held too long.
    Stale,
    /// The SET names a key we do not hold: the transmitter may have rotated.
    Refetch,
}

/// `held`: the age of the held keys and whether they have the key asked for;
/// `since_refetch`: how long ago an unknown key last made us fetch.
pub fn decide(held: Option<(Duration, bool)>, since_refetch: Option<Duration>) -> Fetch {
    match held {
        None => Fetch::Stale,
        Some((age, _)) if age >= CACHE_TTL => Fetch::Stale,
        Some((_, true)) => Fetch::No,
        Some((_, false)) if since_refetch.is_none_or(|d| d >= REFETCH_AFTER) => Fetch::Refetch,
        Some((_, false)) => Fetch::No,
    }
}

/// The keys of a JWKS document; a key of a type we cannot read is skipped, not fatal (a
/// transmitter may publish keys for other uses).
fn parse_jwks(body: &[u8]) -> Result<Vec<Jwk>, String> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
    Ok(set
        .keys
        .into_iter()
        .take(MAX_KEYS)
        .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
        // Encryption keys do not sign.
        .filter(|k| {
            !matches!(
                k.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            )
        })
        .collect())
}

/// Every directory's transmitter, built once from the configuration.
#[derive(Default)]
pub struct Transmitters {
    by_directory: HashMap<DirectoryId, Arc<Transmitter>>,
}

impl Transmitters {
    pub fn from_config(config: &Config) -> Result<Transmitters, Unavailable> {
        let mut by_directory = HashMap::new();
        for d in &config.directories {
            if let DirectoryConfig::Oidc(o) = d {
                if let Some(ssf) = &o.ssf {
                    let t = Transmitter::new(ssf, Duration::from_secs(o.timeout_seconds))?;
                    by_directory.insert(o.id.clone(), Arc::new(t));
                }
            }
        }
        Ok(Transmitters { by_directory })
    }

    pub fn get(&self, dir: &DirectoryId) -> Option<Arc<Transmitter>> {
        self.by_directory.get(dir).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn keys_are_fetched_when_missing_or_stale() {
        assert_eq!(decide(None, None), Fetch::Stale);
        assert_eq!(decide(Some((CACHE_TTL, true)), None), Fetch::Stale);
        assert_eq!(decide(Some((MIN, true)), None), Fetch::No);
    }

    #[test]
    fn an_unknown_key_fetches_again_at_most_every_30_seconds() {
        assert_eq!(decide(Some((MIN, false)), None), Fetch::Refetch);
        assert_eq!(
            decide(Some((MIN, false)), Some(Duration::from_secs(5))),
            Fetch::No
        );
        assert_eq!(
            decide(Some((MIN, false)), Some(REFETCH_AFTER)),
            Fetch::Refetch
        );
    }

    #[test]
    fn unreadable_and_encryption_keys_are_skipped() {
        let keys = parse_jwks(
            br#"{"keys":[
                {"kty":"EC","crv":"P-256","kid":"sig","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
                {"kty":"EC","crv":"P-256","kid":"enc","use":"enc","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
                {"kty":"future-kind","kid":"z"}
            ]}"#,
        )
        .unwrap();
        let kids: Vec<_> = keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect();
        assert_eq!(kids, ["sig"]);
        assert!(parse_jwks(b"[]").is_err());
    }

    #[test]
    fn the_metadata_url_inserts_the_well_known_path_before_the_issuers_path() {
        let cfg = |transmitter: &str, configuration_url: Option<&str>| SsfConfig {
            transmitter: transmitter.into(),
            configuration_url: configuration_url.map(str::to_string),
            audience: None,
            push: true,
            push_token: None,
            poll: None,
            max_age: chrono::Duration::seconds(300),
            suspension_threshold: 100,
            window: chrono::Duration::minutes(60),
        };
        // SSF 1.0 §7.2.1's two examples.
        assert_eq!(
            cfg("https://tr.example.com", None).metadata_url(),
            "https://tr.example.com/.well-known/ssf-configuration"
        );
        assert_eq!(
            cfg("https://tr.example.com/issuer1/", None).metadata_url(),
            "https://tr.example.com/.well-known/ssf-configuration/issuer1"
        );
        assert_eq!(
            cfg(
                "https://accounts.google.com/",
                Some("https://accounts.google.com/.well-known/risc-configuration")
            )
            .metadata_url(),
            "https://accounts.google.com/.well-known/risc-configuration"
        );
    }
}
