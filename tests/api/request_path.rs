//! The request path's rules: known keys and sessions answered from memory with every
//! revocation seen at once, clients behind a trusted proxy throttled one by one, oversized
//! names refused before anything is kept.

use crate::app::{assert_error, Key, TestApp, ADMIN, ADMIN_PASSWORD};
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A well-formed key id and password that exist nowhere: what a guesser sends (malformed
/// ones are refused before any work and count for nothing).
fn junk() -> Key {
    Key {
        id: accesskeyd::key_format::new_key_id(),
        password: accesskeyd::key_format::new_password(),
        created: Value::Null,
    }
}

/// GET /api/auth/verify with a key, from `peer`, with extra headers; the status and the
/// user it names.
async fn verify(
    app: &TestApp,
    peer: &str,
    key: &Key,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut req = app.get("/api/auth/verify").peer(peer).key(key);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let r = req.send().await;
    (r.status, r.header("x-auth-user").to_string())
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

#[tokio::test]
async fn known_keys_are_answered_from_memory_and_every_revocation_is_seen_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob_user = app.add_user("bob").await;
    let bob = app.login(&bob_user.name, &bob_user.password).await;
    let bob_id = bob.id();
    let key = app.create_key(&bob, "odata").await;
    let verify = || async { app.get("/api/auth/verify").key(&key).send().await };
    assert!(
        eventually(Duration::from_secs(5), || async {
            verify().await.status == StatusCode::OK
                && app.metric("accesskeyd_credential_cache_hits_total").await > 0
        })
        .await,
        "a key used twice is answered from memory"
    );
    // Bob's own login and key creation were announced too; let this process hear them back
    // (within 50 ms), then count.
    app.settle().await;
    assert_eq!(verify().await.status, StatusCode::OK);
    let hits = app.metric("accesskeyd_credential_cache_hits_total").await;
    for _ in 0..20 {
        assert_eq!(verify().await.status, StatusCode::OK);
    }
    assert!(app.metric("accesskeyd_credential_cache_hits_total").await >= hits + 20);

    // An admin disables bob's keys with an override of 0: refused on the very next request.
    let update = |minutes: i64| {
        app.post(&format!("/api/users/{bob_id}/update"))
            .auth(&admin)
            .json(json!({"accessKeyValidityDuration": minutes}))
            .send()
    };
    let a = update(0).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_error(&verify().await, StatusCode::UNAUTHORIZED, "disabled");
    update(-1).await;
    assert_eq!(verify().await.status, StatusCode::OK);

    // The system option: 0 days stops every key at once.
    let set = |days: i64| {
        app.set_option(
            &admin,
            "Authentication/AccessKey/ValidityWithoutUserLogin",
            json!(days),
        )
    };
    assert_eq!(set(0).await.status, StatusCode::OK);
    assert_eq!(verify().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(set(14).await.status, StatusCode::OK);
    assert_eq!(verify().await.status, StatusCode::OK);

    // A session opened with the key, and bob's own session, both known; logout ends one,
    // deleting the key ends the other with the key.
    let key_session = app.key_session(&key).await;
    assert_eq!(app.me(&key_session).await.status, StatusCode::OK);
    assert_eq!(app.me(&key_session).await.status, StatusCode::OK);
    let bob2 = app.login(&bob_user.name, &bob_user.password).await;
    assert_eq!(app.me(&bob2).await.status, StatusCode::OK);
    assert_eq!(
        app.delete("/api/auth/logout")
            .auth(&bob2)
            .send()
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.me(&bob2).await.status,
        StatusCode::UNAUTHORIZED,
        "logged out"
    );

    assert_eq!(
        app.delete(&format!("/api/accesskeys/{}", key.id))
            .auth(&bob)
            .send()
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        verify().await.status,
        StatusCode::UNAUTHORIZED,
        "deleted key"
    );
    assert_eq!(
        app.me(&key_session).await.status,
        StatusCode::UNAUTHORIZED,
        "session of the deleted key"
    );

    // Deleting bob ends his remembered session and his other keys.
    let key2 = app.create_key(&bob, "second").await;
    assert_eq!(
        app.get("/api/auth/verify").key(&key2).send().await.status,
        StatusCode::OK
    );
    assert_eq!(app.me(&bob).await.status, StatusCode::OK);
    assert_eq!(
        app.delete(&format!("/api/users/{bob_id}"))
            .auth(&admin)
            .send()
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/auth/verify").key(&key2).send().await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&bob).await.status, StatusCode::UNAUTHORIZED);
}

/// `[server] trusted_proxies` naming 127.0.0.2 (the "proxy"), with a throttle of 5 failures
/// per name and 20 per address.
const BEHIND_PROXY: &str = "\n[server]\ntrusted_proxies = [\"127.0.0.2\"]\n\n[login_throttle]\nmax_failures = 5\nmax_failures_per_address = 20\nwindow_seconds = 300\n";

const PROXY: &str = "127.0.0.2";

#[tokio::test]
async fn junk_through_a_trusted_proxy_throttles_only_its_client_and_never_a_valid_key() {
    let app = TestApp::spawn_with(BEHIND_PROXY).await;
    let bob = app.user("bob").await;
    let key = app.create_key(&bob, "odata").await;
    // Bob's key is known from its first use on (see the test above).
    app.settle().await;
    let mallory = [("x-forwarded-for", "203.0.113.66")];
    let alice = [("x-forwarded-for", "198.51.100.7")];

    // Bob's feed goes through the proxy too, as mallory's address even.
    assert_eq!(verify(&app, PROXY, &key, &mallory).await.0, StatusCode::OK);

    // Mallory floods junk keys through the proxy until she is throttled.
    let mut throttled = 0;
    for _ in 0..40 {
        let (s, _) = verify(&app, PROXY, &junk(), &mallory).await;
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
    let login = app
        .post("/api/auth/login")
        .peer(PROXY)
        .header("x-forwarded-for", "203.0.113.66")
        .json(json!({"username": ADMIN, "password": ADMIN_PASSWORD, "authProviderId": "builtin"}))
        .send()
        .await;
    assert_eq!(login.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(login.headers.contains_key("retry-after"));

    // The known key passes even from mallory's throttled address; alice, another client of
    // the same proxy, is not throttled at all.
    assert_eq!(
        verify(&app, PROXY, &key, &mallory).await,
        (StatusCode::OK, "bob".into())
    );
    assert_eq!(verify(&app, PROXY, &key, &alice).await.0, StatusCode::OK);
    assert_eq!(
        verify(&app, PROXY, &junk(), &alice).await.0,
        StatusCode::UNAUTHORIZED,
        "alice is judged on her own"
    );
    let r = app
        .post("/api/auth/login")
        .peer(PROXY)
        .header("x-forwarded-for", "198.51.100.7")
        .json(json!({"username": ADMIN, "password": ADMIN_PASSWORD, "authProviderId": "builtin"}))
        .send()
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "alice's admin logs in through the proxy"
    );

    // An untrusted peer's forwarding headers change nothing: it is throttled as itself.
    let mut spoofed = 0;
    for i in 0..30 {
        let xff = format!("192.0.2.{i}");
        let (s, _) = verify(&app, "127.0.0.3", &junk(), &[("x-forwarded-for", &xff)]).await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            spoofed += 1;
        }
    }
    assert!(spoofed >= 5, "the spoofer's own address is throttled");

    // The audit trail names the client the proxy reported; the 429s are one summary row
    // per address, not one row each.
    let admin = app.admin().await;
    let logins = app
        .get("/api/audit?action=login&limit=200")
        .auth(&admin)
        .send()
        .await
        .json();
    assert!(
        logins["events"]
            .as_array()
            .map(|a| a.iter().any(|e| e["remoteAddr"] == "198.51.100.7"))
            .unwrap_or(false),
        "alice's login carries her address: {logins}"
    );
    assert!(app.metric("accesskeyd_throttle_refusals_total").await > throttled + spoofed);
    let rows = accesskeyd::jobs::summarize_refusals(&app.app)
        .await
        .unwrap();
    assert!(rows >= 2, "one row per throttled address ({rows})");
    let summary = app
        .get("/api/audit?action=login.throttled")
        .auth(&admin)
        .send()
        .await;
    let text = &summary.body;
    assert!(text.contains("203.0.113.66"), "{text}");
    assert!(text.contains("127.0.0.3"), "{text}");
    assert_eq!(
        accesskeyd::jobs::summarize_refusals(&app.app)
            .await
            .unwrap(),
        0,
        "nothing twice"
    );
}

#[tokio::test]
async fn oversized_names_are_refused_before_anything_is_kept() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let audit_rows = || async {
        app.get("/api/audit").auth(&admin).send().await.json()["totalResults"].as_i64()
    };
    let before = audit_rows().await;

    // A 300-byte Basic name, a 2 KB password, a 60 KB login name: 400, nothing stored.
    let long_key = Key {
        id: "k".repeat(300),
        password: "pw".into(),
        created: Value::Null,
    };
    assert_eq!(
        verify(&app, "127.0.0.1", &long_key, &[]).await.0,
        StatusCode::BAD_REQUEST
    );
    let long_password = Key {
        id: "akd_x".into(),
        password: "p".repeat(2000),
        created: Value::Null,
    };
    assert_eq!(
        verify(&app, "127.0.0.1", &long_password, &[]).await.0,
        StatusCode::BAD_REQUEST
    );
    for _ in 0..50 {
        let r = app.try_login(&"u".repeat(60_000), "pw", None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    }
    assert_eq!(audit_rows().await, before);

    // Names just under the limit are audited cut short, and the throttle keeps a fixed-size
    // counter per name, however long.
    for i in 0..20 {
        let name = format!("{i:03}{}", "n".repeat(250));
        let s = app
            .try_login(&name, "wrong-password", Some("builtin"))
            .await
            .status;
        assert!(s == StatusCode::UNAUTHORIZED || s == StatusCode::TOO_MANY_REQUESTS);
    }
    let failed = app
        .get("/api/audit?action=login&limit=5")
        .auth(&admin)
        .send()
        .await;
    assert!(!failed.body.contains(&"n".repeat(251)), "names are cut");
}
