//! Signing keys fetched from a peer (a shared-signals transmitter's JWKS, a secret scanner's
//! public keys), held for [`CACHE_TTL`] and fetched again when a message names a key we do
//! not hold, but not more often than every [`REFETCH_AFTER`]: anyone can send a message
//! with a made-up key id, and must not make us hammer the peer. Also the capped JSON GET
//! both (and the SSF poller) read with.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Keys are fetched again after this long.
pub const CACHE_TTL: Duration = Duration::from_secs(600);

/// An unknown key id makes us fetch the keys again at most this often.
pub const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// Whether to fetch the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    No,
    /// Nothing held, or held too long.
    Stale,
    /// The message names a key we do not hold: the peer may have rotated.
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

struct Held<K> {
    keys: Option<(K, Instant)>,
    /// When an unknown key id last made us fetch.
    last_refetch: Option<Instant>,
}

/// The keys of one peer, as last fetched.
pub struct KeyCache<K> {
    held: Mutex<Held<K>>,
}

impl<K> Default for KeyCache<K> {
    fn default() -> Self {
        KeyCache {
            held: Mutex::new(Held {
                keys: None,
                last_refetch: None,
            }),
        }
    }
}

impl<K: Clone> KeyCache<K> {
    /// The keys to check a message with: the held ones while fresh and `knows` the key it
    /// names; else `fetch`ed (see [`decide`]). When a fetch fails, keys we still hold are
    /// used (logged as `peer`'s).
    pub async fn get<E, Fut>(
        &self,
        knows: impl Fn(&K) -> bool,
        fetch: impl FnOnce() -> Fut,
        peer: &str,
    ) -> Result<K, E>
    where
        E: Display,
        Fut: Future<Output = Result<K, E>>,
    {
        let mut held = self.held.lock().await;
        let now = Instant::now();
        let decision = decide(
            held.keys
                .as_ref()
                .map(|(k, at)| (now.duration_since(*at), knows(k))),
            held.last_refetch.map(|at| now.duration_since(at)),
        );
        if decision == Fetch::No {
            if let Some((k, _)) = &held.keys {
                return Ok(k.clone());
            }
        }
        if decision == Fetch::Refetch {
            held.last_refetch = Some(now);
        }
        match fetch().await {
            Ok(k) => {
                held.keys = Some((k.clone(), Instant::now()));
                Ok(k)
            }
            Err(e) => match &held.keys {
                Some((k, _)) => {
                    tracing::warn!(error = %e, "{peer}: keys could not be fetched again; using the ones held");
                    Ok(k.clone())
                }
                None => Err(e),
            },
        }
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

/// GETs `url` as JSON, reading at most `max` bytes; the error names the URL.
pub async fn get_json(http: &reqwest::Client, url: &str, max: usize) -> Result<Vec<u8>, String> {
    let mut resp = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    read_capped(&mut resp, max)
        .await
        .map_err(|e| format!("{url}: {e}"))
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

    #[tokio::test]
    async fn held_keys_outlive_a_failed_fetch_and_an_unknown_key_waits_its_turn() {
        let cache: KeyCache<Vec<&str>> = KeyCache::default();
        let failed: Result<Vec<&str>, String> = cache
            .get(|_| true, || async { Err("down".to_string()) }, "peer")
            .await;
        assert_eq!(failed, Err("down".to_string()), "nothing held");
        let got = cache
            .get(|_| true, || async { Ok::<_, String>(vec!["a"]) }, "peer")
            .await;
        assert_eq!(got, Ok(vec!["a"]));
        // "b" unknown: fetched again, which fails; the held keys stay.
        let kept = cache
            .get(
                |k| k.contains(&"b"),
                || async { Err("down".to_string()) },
                "peer",
            )
            .await;
        assert_eq!(kept, Ok(vec!["a"]));
        // And not fetched again within REFETCH_AFTER.
        let waits = cache
            .get(
                |k| k.contains(&"b"),
                || async { Ok::<_, String>(vec!["a", "b"]) },
                "peer",
            )
            .await;
        assert_eq!(waits, Ok(vec!["a"]));
    }
}
