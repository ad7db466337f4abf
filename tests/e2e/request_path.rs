//! The request path across processes and under load: another process on the same database
//! sees a revocation at once, and argon2 work is shed fairly during a flood of connections
//! (the rules of the request path are in the fast tier, tests/api/request_path.rs).

use crate::harness::daemon::{Client, Daemon, ADMIN, ADMIN_PASSWORD};
use accesskeyd::audit::Actor;
use accesskeyd::secret::Secret;
use base64::Engine;
use reqwest::StatusCode;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A well-formed key id and password that exist nowhere: what a guesser sends (malformed
/// ones are refused before any work and count for nothing).
fn junk() -> (String, String) {
    (
        accesskeyd::key_format::new_key_id(),
        accesskeyd::key_format::new_password(),
    )
}

/// A client whose connections come from `source` (any 127.0.0.x works on Linux loopback).
fn from(d: &Daemon, source: &str) -> Client {
    let ip: IpAddr = source.parse().unwrap();
    Client {
        http: reqwest::Client::builder()
            .local_address(ip)
            .build()
            .unwrap(),
        ..d.client()
    }
}

fn basic(key: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:{pw}"))
    )
}

/// GET /api/auth/verify with Basic credentials and extra headers.
async fn verify(c: &Client, key: &str, pw: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut req = c
        .http
        .get(format!("{}/api/auth/verify", c.base))
        .header("authorization", basic(key, pw));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let user = r
        .headers()
        .get("x-auth-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, user)
}

async fn metric(d: &Daemon, name: &str) -> u64 {
    d.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Waits (bounded) until `f` holds; the answer is whether it did.
async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn create_user(d: &Daemon, name: &str) -> Client {
    accesskeyd::users::create_local(
        &d.app,
        &Actor::system("test"),
        name,
        Secret::new(format!("{name}-password-123")),
        false,
    )
    .await
    .unwrap();
    d.login(name, &format!("{name}-password-123"), Some("builtin"))
        .await
}

#[tokio::test]
async fn another_process_on_the_same_database_sees_a_revocation_within_a_second() {
    let d = Daemon::start(None).await;
    let other = d.sibling(None, "", &[]).await;
    let bob = create_user(&d, "bob").await;
    let (key, pw, _) = bob.create_key("etl").await;
    let on_other = other.client().with_basic(&key, &pw);
    let token = bob.token();
    let session_on_other = other.client().with_token(&token);
    // Both known to the other process (answered from its memory).
    assert!(
        eventually(Duration::from_secs(5), || async {
            on_other.get("/api/auth/verify").await.status == StatusCode::OK
                && session_on_other.me().await.status == StatusCode::OK
                && metric(&other, "accesskeyd_credential_cache_hits_total").await >= 2
        })
        .await
    );

    // Revoked on the first process; the other refuses within a second.
    assert_eq!(
        bob.delete(&format!("/api/accesskeys/{key}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        bob.delete("/api/auth/logout").await.status,
        StatusCode::NO_CONTENT
    );
    let start = Instant::now();
    assert!(
        eventually(Duration::from_secs(1), || async {
            on_other.get("/api/auth/verify").await.status == StatusCode::UNAUTHORIZED
                && session_on_other.me().await.status == StatusCode::UNAUTHORIZED
        })
        .await,
        "the other process still accepts after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn during_a_flood_of_unknown_keys_known_keys_stay_fast_and_an_admin_still_logs_in() {
    // Slow enough hashing that a flood queues; a small queue; no throttle, so the queue is
    // what sheds.
    let d = Daemon::start_with(
        None,
        "\n[login_throttle]\nmax_failures = 0\nmax_failures_per_address = 0\n",
        &[
            ("ACCESSKEYD_PASSWORD_HASHING__MEMORY_KIB", "4096"),
            ("ACCESSKEYD_PASSWORD_HASHING__ITERATIONS", "8"),
            ("ACCESSKEYD_PASSWORD_HASHING__MAX_CONCURRENT", "1"),
            ("ACCESSKEYD_PASSWORD_HASHING__MAX_QUEUE", "8"),
        ],
    )
    .await;
    let bob = create_user(&d, "bob").await;
    let (key, pw, _) = bob.create_key("odata").await;
    let known = d.client();
    assert_eq!(verify(&known, &key, &pw, &[]).await.0, StatusCode::OK);

    // Four flooding addresses, 25 requests in flight each, for a bounded time.
    let stop = Instant::now() + Duration::from_secs(4);
    let mut flood = Vec::new();
    for source in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        for _ in 0..25 {
            let c = from(&d, source);
            flood.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                while Instant::now() < stop {
                    let (k, p) = junk();
                    let (s, _) = verify(&c, &k, &p, &[]).await;
                    answers.push(s);
                }
                answers
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The known key never waits for argon2.
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(verify(&known, &key, &pw, &[]).await.0, StatusCode::OK);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    // The admin's password login, from an address of its own, gets its fair share.
    let (s, body, _) = from(&d, "127.0.0.9")
        .login(ADMIN, ADMIN_PASSWORD, Some("builtin"))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");

    let mut shed = 0;
    for f in flood {
        for s in f.await.unwrap() {
            assert!(
                s == StatusCode::UNAUTHORIZED || s == StatusCode::SERVICE_UNAVAILABLE,
                "never anything else: {s}"
            );
            if s == StatusCode::SERVICE_UNAVAILABLE {
                shed += 1;
            }
        }
    }
    assert!(shed > 0, "the flood was shed");
    assert!(metric(&d, "accesskeyd_password_hashing_shed_total").await >= shed);
}
