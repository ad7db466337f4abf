//! The request path under load and attack: known keys and sessions answered from memory with
//! every revocation seen at once (also by another process on the same database), clients
//! behind a trusted proxy throttled one by one, oversized names refused before anything is
//! kept, and argon2 work shed fairly during a flood.

use crate::harness::daemon::{assert_error, Client, Daemon, ADMIN, ADMIN_PASSWORD};
use accesskeyd::audit::Actor;
use accesskeyd::secret::Secret;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A well-formed key id and password that exist nowhere: what a guesser sends (malformed
/// ones are refused before any work and count for nothing).
fn junk() -> (String, String) {
    (
        accesskeyd::keys::format::new_key_id(),
        accesskeyd::keys::format::new_password(),
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
async fn known_keys_are_answered_from_memory_and_every_revocation_is_seen_at_once() {
    let d = Daemon::start(None).await;
    let admin = d.admin().await;
    let bob = create_user(&d, "bob").await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("odata").await;
    let key_client = d.client().with_basic(&key, &pw);
    assert!(
        eventually(Duration::from_secs(5), || async {
            key_client.get("/api/auth/verify").await.status == StatusCode::OK
                && metric(&d, "accesskeyd_credential_cache_hits_total").await > 0
        })
        .await,
        "a key used twice is answered from memory"
    );
    // Bob's own login and key creation were announced too; let this process hear them back
    // (within 50 ms), then count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        key_client.get("/api/auth/verify").await.status,
        StatusCode::OK
    );
    let hits = metric(&d, "accesskeyd_credential_cache_hits_total").await;
    for _ in 0..20 {
        assert_eq!(
            key_client.get("/api/auth/verify").await.status,
            StatusCode::OK
        );
    }
    assert!(metric(&d, "accesskeyd_credential_cache_hits_total").await >= hits + 20);

    // An admin disables bob's keys with an override of 0: refused on the very next request.
    let a = admin
        .post(
            &format!("/api/users/{bob_id}/update"),
            json!({"accessKeyValidityDuration": 0}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_error(
        &key_client.get("/api/auth/verify").await,
        StatusCode::UNAUTHORIZED,
        "disabled",
    );
    admin
        .post(
            &format!("/api/users/{bob_id}/update"),
            json!({"accessKeyValidityDuration": -1}),
        )
        .await;
    assert_eq!(
        key_client.get("/api/auth/verify").await.status,
        StatusCode::OK
    );

    // The system option: 0 days stops every key at once.
    let set = |days: i64| {
        admin.post(
            "/api/system/configuration/options",
            json!({"configurationOptions": [{"path": "Authentication/AccessKey/ValidityWithoutUserLogin", "value": days}]}),
        )
    };
    assert_eq!(set(0).await.status, StatusCode::OK);
    assert_eq!(
        key_client.get("/api/auth/verify").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(set(14).await.status, StatusCode::OK);
    assert_eq!(
        key_client.get("/api/auth/verify").await.status,
        StatusCode::OK
    );

    // A session opened with the key, and bob's own session, both known; logout ends one,
    // deleting the key ends the other with the key.
    let (s, _, token) = d.client().login(&key, &pw, None).await;
    assert_eq!(s, StatusCode::OK);
    let key_session = d.client().with_token(&token.unwrap());
    assert_eq!(key_session.me().await.status, StatusCode::OK);
    assert_eq!(key_session.me().await.status, StatusCode::OK);
    let bob2 = d.login("bob", "bob-password-123", Some("builtin")).await;
    assert_eq!(bob2.me().await.status, StatusCode::OK);
    assert_eq!(
        bob2.delete("/api/auth/logout").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        bob2.me().await.status,
        StatusCode::UNAUTHORIZED,
        "logged out"
    );

    assert_eq!(
        bob.delete(&format!("/api/accesskeys/{key}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        key_client.get("/api/auth/verify").await.status,
        StatusCode::UNAUTHORIZED,
        "deleted key"
    );
    assert_eq!(
        key_session.me().await.status,
        StatusCode::UNAUTHORIZED,
        "session of the deleted key"
    );

    // Deleting bob ends his remembered session and his other keys.
    let (key2, pw2, _) = bob.create_key("second").await;
    let key2_client = d.client().with_basic(&key2, &pw2);
    assert_eq!(
        key2_client.get("/api/auth/verify").await.status,
        StatusCode::OK
    );
    assert_eq!(bob.me().await.status, StatusCode::OK);
    assert_eq!(
        admin.delete(&format!("/api/users/{bob_id}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        key2_client.get("/api/auth/verify").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(bob.me().await.status, StatusCode::UNAUTHORIZED);
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

/// `[server] trusted_proxies` naming 127.0.0.2 (the "proxy"), with a throttle of 5 failures
/// per name and 20 per address.
const BEHIND_PROXY: &str = "\n[server]\ntrusted_proxies = [\"127.0.0.2\"]\n\n[login_throttle]\nmax_failures = 5\nmax_failures_per_address = 20\nwindow_seconds = 300\n";

#[tokio::test]
async fn junk_through_a_trusted_proxy_throttles_only_its_client_and_never_a_valid_key() {
    let d = Daemon::start_with(None, BEHIND_PROXY, &[]).await;
    let bob = create_user(&d, "bob").await;
    let (key, pw, _) = bob.create_key("odata").await;
    let proxy = from(&d, "127.0.0.2");
    let mallory = [("x-forwarded-for", "203.0.113.66")];
    let alice = [("x-forwarded-for", "198.51.100.7")];

    // Bob's feed goes through the proxy too, as mallory's address even.
    assert_eq!(verify(&proxy, &key, &pw, &mallory).await.0, StatusCode::OK);

    // Mallory floods junk keys through the proxy until she is throttled.
    let mut throttled = 0;
    for _ in 0..40 {
        let (k, p) = junk();
        let (s, _) = verify(&proxy, &k, &p, &mallory).await;
        assert!(
            s == StatusCode::UNAUTHORIZED || s == StatusCode::TOO_MANY_REQUESTS,
            "{s}"
        );
        if s == StatusCode::TOO_MANY_REQUESTS {
            throttled += 1;
        }
    }
    assert!(
        throttled >= 15,
        "mallory's address is throttled ({throttled})"
    );
    // A password login from mallory's address costs argon2: still throttled.
    let login = proxy
        .http
        .post(format!("{}/api/auth/login", proxy.base))
        .header("x-forwarded-for", "203.0.113.66")
        .json(&json!({"username": ADMIN, "password": ADMIN_PASSWORD, "authProviderId": "builtin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(login.headers().contains_key("retry-after"));

    // The known key passes even from mallory's throttled address; alice, another client of
    // the same proxy, is not throttled at all.
    assert_eq!(
        verify(&proxy, &key, &pw, &mallory).await,
        (StatusCode::OK, "bob".into())
    );
    assert_eq!(verify(&proxy, &key, &pw, &alice).await.0, StatusCode::OK);
    let (k, p) = junk();
    assert_eq!(
        verify(&proxy, &k, &p, &alice).await.0,
        StatusCode::UNAUTHORIZED,
        "alice is judged on her own"
    );
    let (s, _, _) = Client {
        http: reqwest::Client::builder()
            .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
            .default_headers(
                [(
                    "x-forwarded-for".parse().unwrap(),
                    "198.51.100.7".parse().unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap(),
        ..d.client()
    }
    .login(ADMIN, ADMIN_PASSWORD, Some("builtin"))
    .await;
    assert_eq!(s, StatusCode::OK, "alice's admin logs in through the proxy");

    // An untrusted peer's forwarding headers change nothing: it is throttled as itself.
    let spoofer = from(&d, "127.0.0.3");
    let mut spoofed = 0;
    for i in 0..30 {
        let xff = format!("192.0.2.{i}");
        let (k, p) = junk();
        let (s, _) = verify(&spoofer, &k, &p, &[("x-forwarded-for", &xff)]).await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            spoofed += 1;
        }
    }
    assert!(spoofed >= 5, "the spoofer's own address is throttled");

    // The audit trail names the client the proxy reported; the 429s are one summary row
    // per address, not one row each.
    let admin = d.admin().await;
    let logins = admin.get("/api/audit?action=login&limit=200").await;
    assert!(
        logins.body["events"]
            .as_array()
            .map(|a| a.iter().any(|e| e["remoteAddr"] == "198.51.100.7"))
            .unwrap_or(false),
        "alice's login carries her address: {}",
        logins.body
    );
    assert!(metric(&d, "accesskeyd_throttle_refusals_total").await > throttled + spoofed);
    let rows = accesskeyd::jobs::summarize_refusals(&d.app).await.unwrap();
    assert!(rows >= 2, "one row per throttled address ({rows})");
    let summary = admin.get("/api/audit?action=login.throttled").await;
    let text = summary.body.to_string();
    assert!(text.contains("203.0.113.66"), "{text}");
    assert!(text.contains("127.0.0.3"), "{text}");
    assert_eq!(
        accesskeyd::jobs::summarize_refusals(&d.app).await.unwrap(),
        0,
        "nothing twice"
    );
}

#[tokio::test]
async fn oversized_names_are_refused_before_anything_is_kept() {
    let d = Daemon::start(None).await;
    let admin = d.admin().await;
    let audit_rows = |a: Value| a["totalResults"].as_i64();
    let before = audit_rows(admin.get("/api/audit").await.body);

    // A 300-byte Basic name, a 2 KB password, a 60 KB login name: 400, nothing stored.
    let long_key = "k".repeat(300);
    let c = d.client();
    assert_eq!(
        verify(&c, &long_key, "pw", &[]).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        verify(&c, "akd_x", &"p".repeat(2000), &[]).await.0,
        StatusCode::BAD_REQUEST
    );
    for _ in 0..50 {
        let (s, body, _) = c.login(&"u".repeat(60_000), "pw", None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(audit_rows(admin.get("/api/audit").await.body), before);

    // Names just under the limit are audited cut short, and the throttle keeps a fixed-size
    // counter per name, however long.
    for i in 0..20 {
        let name = format!("{i:03}{}", "n".repeat(250));
        let (s, _, _) = c.login(&name, "wrong-password", Some("builtin")).await;
        assert!(s == StatusCode::UNAUTHORIZED || s == StatusCode::TOO_MANY_REQUESTS);
    }
    let failed = admin.get("/api/audit?action=login&limit=5").await.body;
    let text = failed.to_string();
    assert!(!text.contains(&"n".repeat(251)), "names are cut");
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
