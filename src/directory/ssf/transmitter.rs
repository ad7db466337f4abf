//! The transmitters we take SETs from: each directory's transmitter metadata (SSF 1.0 §7) and
//! signing keys, fetched over HTTP and held as `directory::fetched` holds a peer's keys (a
//! SET signed with a key we do not know fetches them again, within limits).

use super::set::{key_for, SetHeader};
use crate::config::{Config, DirectoryConfig, SsfConfig};
use crate::directory::fetched::{get_json, KeyCache};
use crate::ids::DirectoryId;
use jsonwebtoken::jwk::Jwk;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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

/// One directory's transmitter.
pub struct Transmitter {
    metadata_url: String,
    issuer: String,
    http: reqwest::Client,
    keys: KeyCache<Keys>,
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
            keys: KeyCache::default(),
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
        self.keys
            .get(
                |k| key_for(header, &k.keys).is_some(),
                || self.fetch(),
                "SSF transmitter",
            )
            .await
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
        get_json(&self.http, url, MAX_DOCUMENT_BYTES)
            .await
            .map_err(Unavailable)
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
