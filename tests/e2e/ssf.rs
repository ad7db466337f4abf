//! OpenID Shared Signals: a transmitter (the harness's) pushes CAEP and RISC events about a
//! person of an OpenID Connect directory (the real provider's), and their keys and sessions
//! stop and come back as the events say; bad SETs get the RFC 8935 answers; polling takes
//! and acknowledges queued SETs.

use crate::harness::daemon::Daemon;
use crate::harness::oidc::{Account, OidcProvider};
use crate::harness::ssf::{SigningKey, Transmitter, CAEP, RISC};
use crate::oidc::browser_login;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PUBLIC: &str = "http://accesskeyd.test";

const BEA: Account = Account {
    sub: "sub-bea",
    username: "bea",
    email: "bea@example.org",
    groups: &["staff"],
};

struct World {
    t: Transmitter,
    p: OidcProvider,
    d: Daemon,
}

/// A provider with Bea, a transmitter, and a daemon whose directory `idp` takes the
/// transmitter's signals (`ssf_extra` added to `[directories.ssf]`, `{transmitter}` in it
/// replaced by the transmitter's URL).
async fn world(ssf_extra: &str) -> World {
    let t = Transmitter::start().await;
    let redirect = format!("{PUBLIC}/api/auth/oidc/idp/callback");
    let p = OidcProvider::start(&[("accesskeyd-idp", "secret-idp", &redirect)], &[BEA]).await;
    let extra = format!(
        r#"
[server]
public_url = "{PUBLIC}"

[[directories]]
id = "idp"
kind = "oidc"
issuer = "{}"
client_id = "accesskeyd-idp"
client_secret = "secret-idp"

[directories.ssf]
transmitter = "{}"
{}
"#,
        p.issuer(),
        t.issuer(),
        ssf_extra.replace("{transmitter}", &t.url)
    );
    let d = Daemon::start_with(None, &extra, &[]).await;
    World { t, p, d }
}

impl World {
    /// Bea signs in through the provider: her session token.
    async fn sign_in(&self) -> String {
        let (r, _) = browser_login(&self.d, &self.p, "idp", BEA).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.headers()["x-sq-auth"].to_str().unwrap().to_string()
    }

    /// Bea as the SET names her: the provider's issuer and her `sub`.
    fn bea(&self) -> Value {
        json!({"format": "iss_sub", "iss": self.p.issuer(), "sub": BEA.sub})
    }

    fn set(&self, event: &str, payload: Value) -> Value {
        self.t.claims(PUBLIC, event, payload, self.bea())
    }

    async fn push_token(&self, token: &str, bearer: Option<&str>) -> (StatusCode, Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}/api/ssf/idp/events", self.d.url))
            .header("content-type", "application/secevent+jwt")
            .body(token.to_string());
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let r = req.send().await.expect("push");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn push(&self, claims: &Value) -> (StatusCode, Value) {
        self.push_token(&self.t.sign(claims), None).await
    }

    async fn key_works(&self, key: &str, pw: &str) -> bool {
        self.d.client().with_basic(key, pw).me().await.status == StatusCode::OK
    }
}

/// Waits up to `within` for `f` to hold.
async fn within<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return true;
        }
        if start.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_pushed_account_disabled_stops_the_key_within_two_seconds_and_account_enabled_brings_it_back(
) {
    let w = world("").await;
    let session = w.d.client().with_token(&w.sign_in().await);
    let (key, pw, _) = session.create_key("notebook").await;
    assert!(w.key_works(&key, &pw).await);

    let sent = Instant::now();
    let (s, b) = w
        .push(&w.set(
            &format!("{RISC}account-disabled"),
            json!({"reason": "hijacking"}),
        ))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let pushed = Instant::now();
    assert!(
        within(Duration::from_secs(2), || async {
            !w.key_works(&key, &pw).await
        })
        .await,
        "the key still works {:?} after the SET",
        pushed.elapsed()
    );
    println!(
        "the key refused {:?} after the SET was sent",
        sent.elapsed()
    );
    assert_eq!(
        session.me().await.status,
        StatusCode::UNAUTHORIZED,
        "the session ended too"
    );
    // The directory shows its shared signals: the last event, one suspension today.
    let dir = w.d.admin().await.get("/api/directories/idp").await;
    assert_eq!(
        dir.body["signals"]["source"], "shared-signals",
        "{}",
        dir.body
    );
    assert!(
        dir.body["signals"]["lastEventAt"].is_string(),
        "{}",
        dir.body
    );
    assert_eq!(dir.body["signals"]["suspensionsToday"], 1, "{}", dir.body);

    let (s, b) = w
        .push(&w.set(&format!("{RISC}account-enabled"), json!({})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert!(
        within(Duration::from_secs(2), || async {
            w.key_works(&key, &pw).await
        })
        .await,
        "the key works again after account-enabled"
    );
    let metrics = w.d.metrics().await;
    assert!(
        metrics.contains(
            "accesskeyd_ssf_events_total{directory=\"idp\",event=\"account-disabled\",outcome=\"applied\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn session_revoked_ends_the_web_session_and_leaves_the_key() {
    let w = world("").await;
    let session = w.d.client().with_token(&w.sign_in().await);
    let (key, pw, _) = session.create_key("k").await;
    let (s, _) = w
        .push(&w.set(
            &format!("{CAEP}session-revoked"),
            json!({"event_timestamp": 1615304991643u64}),
        ))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert!(
        within(Duration::from_secs(2), || async {
            session.me().await.status == StatusCode::UNAUTHORIZED
        })
        .await,
        "the session still works"
    );
    assert!(w.key_works(&key, &pw).await, "the key is not touched");
}

#[tokio::test]
async fn a_revoked_credential_lapses_keys_until_the_person_signs_in_again() {
    let w = world("").await;
    let session = w.d.client().with_token(&w.sign_in().await);
    let (key, pw, _) = session.create_key("k").await;
    // A new credential changes nothing.
    let (s, _) = w
        .push(&w.set(
            &format!("{CAEP}credential-change"),
            json!({"credential_type": "password", "change_type": "create"}),
        ))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert!(w.key_works(&key, &pw).await);
    let (s, _) = w
        .push(&w.set(
            &format!("{CAEP}credential-change"),
            json!({"credential_type": "password", "change_type": "revoke"}),
        ))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert!(
        within(Duration::from_secs(2), || async {
            !w.key_works(&key, &pw).await
        })
        .await,
        "the key still works after the revoke"
    );
    // Still refused a little later: it waits for an interactive sign-in, not for time.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(!w.key_works(&key, &pw).await);
    w.sign_in().await;
    assert!(
        within(Duration::from_secs(2), || async {
            w.key_works(&key, &pw).await
        })
        .await,
        "the key works again after signing in"
    );
}

#[tokio::test]
async fn bad_sets_get_the_rfc_8935_answers_and_change_nothing() {
    let w = world("").await;
    let session = w.d.client().with_token(&w.sign_in().await);
    let (key, pw, _) = session.create_key("k").await;
    let disabled = format!("{RISC}account-disabled");

    // Signed by a key that is not the transmitter's, under its kid: not authentic.
    let forger = SigningKey::generate("key-1");
    let (s, b) = w
        .push_token(&forger.sign(&w.set(&disabled, json!({}))), None)
        .await;
    assert_eq!(
        (s, b["err"].as_str()),
        (StatusCode::BAD_REQUEST, Some("authentication_failed")),
        "{b}"
    );
    // A key id the transmitter does not publish: an unacceptable key.
    let stranger = SigningKey::generate("key-unknown");
    let (s, b) = w
        .push_token(&stranger.sign(&w.set(&disabled, json!({}))), None)
        .await;
    assert_eq!(
        (s, b["err"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_key")),
        "{b}"
    );
    // Meant for another receiver.
    let other = w.t.claims(
        "https://elsewhere.example.com",
        &disabled,
        json!({}),
        w.bea(),
    );
    let (s, b) = w.push(&other).await;
    assert_eq!(
        (s, b["err"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_audience")),
        "{b}"
    );
    // Another issuer.
    let mut foreign = w.set(&disabled, json!({}));
    foreign["iss"] = json!("https://evil.example.com");
    let (s, b) = w.push(&foreign).await;
    assert_eq!(
        (s, b["err"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_issuer")),
        "{b}"
    );
    // Not a SET at all, and the wrong media type.
    let (s, b) = w.push_token("not-a-jwt", None).await;
    assert_eq!(
        (s, b["err"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{b}"
    );
    let r = reqwest::Client::new()
        .post(format!("{}/api/ssf/idp/events", w.d.url))
        .header("content-type", "application/json")
        .body(w.t.sign(&w.set(&disabled, json!({}))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Longer than any SET may be (64 KiB): refused before anything reads it.
    let (s, _) = w.push_token(&"a.".repeat(40 * 1024), None).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // The descriptions say nothing specific; the log has it under the id.
    assert!(
        b["description"]
            .as_str()
            .unwrap_or_default()
            .contains("error id"),
        "{b}"
    );
    assert!(
        w.key_works(&key, &pw).await,
        "nothing refused changed anything"
    );

    // A replay: the same SET twice. The first is taken; the second is `invalid_request`
    // (the request is not a new SET; RFC 8935 has no code of its own for it).
    let verification = w.set(
        "https://schemas.openid.net/secevent/ssf/event-type/verification",
        json!({"state": "abc"}),
    );
    let token = w.t.sign(&verification);
    assert_eq!(w.push_token(&token, None).await.0, StatusCode::ACCEPTED);
    let (s, b) = w.push_token(&token, None).await;
    assert_eq!(
        (s, b["err"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{b}"
    );

    // An unknown directory, or one without shared signals.
    let r = reqwest::Client::new()
        .post(format!("{}/api/ssf/builtin/events", w.d.url))
        .header("content-type", "application/secevent+jwt")
        .body(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_subjects_and_unknown_events_are_acknowledged_and_change_nothing() {
    let w = world("").await;
    let session = w.d.client().with_token(&w.sign_in().await);
    let (key, pw, _) = session.create_key("k").await;
    let nobody = w.t.claims(
        PUBLIC,
        &format!("{RISC}account-disabled"),
        json!({}),
        json!({"format": "iss_sub", "iss": w.p.issuer(), "sub": "sub-nobody"}),
    );
    assert_eq!(w.push(&nobody).await.0, StatusCode::ACCEPTED);
    let unknown = w.set(
        "https://schemas.openid.net/secevent/caep/event-type/token-claims-change",
        json!({"claims": {"role": "ro-admin"}}),
    );
    assert_eq!(w.push(&unknown).await.0, StatusCode::ACCEPTED);
    assert!(w.key_works(&key, &pw).await);
    let audit =
        w.d.admin()
            .await
            .get("/api/audit?action=signal.unknown_subject")
            .await;
    assert!(
        audit
            .body
            .to_string()
            .contains("RISC account-disabled: no user of this directory has that id"),
        "{}",
        audit.body
    );
    let metrics = w.d.metrics().await;
    assert!(
        metrics.contains("event=\"unknown\",outcome=\"ignored\"} 1")
            && metrics.contains("event=\"account-disabled\",outcome=\"unknown_subject\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_used() {
    let w = world("").await;
    let session = w.d.client().with_token(&w.sign_in().await);
    let (key, pw, _) = session.create_key("k").await;
    // The first SET makes the daemon fetch and cache the keys.
    let verify = "https://schemas.openid.net/secevent/ssf/event-type/verification";
    assert_eq!(
        w.push(&w.set(verify, json!({}))).await.0,
        StatusCode::ACCEPTED
    );
    let kid = w.t.rotate();
    assert_eq!(kid, "key-2");
    let (s, b) = w
        .push(&w.set(&format!("{RISC}account-disabled"), json!({})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "signed with the new key: {b}");
    assert!(
        within(Duration::from_secs(2), || async {
            !w.key_works(&key, &pw).await
        })
        .await
    );
}

#[tokio::test]
async fn a_push_token_is_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("push-token");
    std::fs::write(&file, "push-secret\n").unwrap();
    let w = world(&format!("push_token_file = \"{}\"\n", file.display())).await;
    let token = w.t.sign(&w.set(
        "https://schemas.openid.net/secevent/ssf/event-type/verification",
        json!({}),
    ));
    let (s, b) = w.push_token(&token, None).await;
    assert_eq!(
        (s, b["err"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("authentication_failed"))
    );
    let (s, b) = w.push_token(&token, Some("wrong")).await;
    assert_eq!(
        (s, b["err"].as_str()),
        (StatusCode::FORBIDDEN, Some("access_denied"))
    );
    let (s, b) = w.push_token(&token, Some("push-secret")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
}

#[tokio::test]
async fn polling_takes_a_queued_set_and_acknowledges_it() {
    // Push is off: polling alone brings the signals, every second.
    let w =
        world("push = false\npoll_url = \"{transmitter}/poll\"\npoll_interval_seconds = 1\n").await;
    let session = w.d.client().with_token(&w.sign_in().await);
    let (key, pw, _) = session.create_key("k").await;
    let pollers = accesskeyd::jobs::spawn_ssf_pollers(w.d.app.clone());
    struct Abort(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.iter().for_each(|h| h.abort());
        }
    }
    let _pollers = Abort(pollers);
    let jti =
        w.t.queue(&w.set(&format!("{RISC}account-disabled"), json!({})));
    assert!(
        within(Duration::from_secs(5), || async {
            !w.key_works(&key, &pw).await
        })
        .await,
        "the polled SET did not stop the key"
    );
    assert!(
        within(Duration::from_secs(5), || async {
            w.t.acked().contains(&jti)
        })
        .await,
        "the SET was not acknowledged: {:?}",
        w.t.acked()
    );
    // A bad SET comes back in setErrs.
    let mut bad = w.set(&format!("{RISC}account-enabled"), json!({}));
    bad["aud"] = json!("https://elsewhere.example.com");
    let bad_jti = w.t.queue(&bad);
    assert!(
        within(Duration::from_secs(5), || async {
            w.t.set_errs()
                .get(&bad_jti)
                .and_then(|e| e["err"].as_str().map(str::to_string))
                == Some("invalid_audience".to_string())
        })
        .await,
        "{:?}",
        w.t.set_errs()
    );
    // Pushes are off for this directory.
    let (s, _) = w
        .push(&w.set(&format!("{RISC}account-enabled"), json!({})))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
