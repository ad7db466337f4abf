//! What narrows, rotates and traces a key, against the daemon on a real socket and a real
//! nginx in front of it: rotation with an overlap, read-only keys (Basic, a key session and
//! nginx's `auth_request`), network restrictions through a trusted proxy and directly, the
//! addresses a key was used from, and keys that stop when left unused.

use crate::harness::daemon::{assert_error, Answer, Client, Daemon};
use crate::harness::nginx::Nginx;
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::net::IpAddr;

/// A client of `base` whose connections come from `from` (any 127.0.0.x is this machine).
fn from(client: &Client, base: &str, from: &str, user_agent: &str) -> Client {
    let addr: IpAddr = from.parse().expect("an address");
    Client {
        base: base.to_string(),
        http: reqwest::Client::builder()
            .local_address(addr)
            .user_agent(user_agent)
            .build()
            .expect("client"),
        auth: client.auth.clone(),
    }
}

async fn set_option(admin: &Client, path: &str, value: Value) {
    let a = admin
        .post(
            "/api/system/configuration/options",
            json!({"configurationOptions": [{"path": path, "value": value}]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

async fn key_of(owner: &Client, key_id: &str) -> Value {
    let list = owner.get("/api/accesskeys").await;
    list.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["keyId"] == key_id)
        .cloned()
        .unwrap_or_else(|| panic!("{key_id} not listed: {}", list.body))
}

/// Whether the audit trail has `action` with `needle` (some are written just after the
/// answer: a bounded wait).
async fn audit_has(admin: &Client, action: &str, needle: &str) -> bool {
    for _ in 0..200 {
        let a = admin.get(&format!("/api/audit?action={action}")).await;
        if a.body.to_string().contains(needle) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    false
}

async fn works(d: &Daemon, key: &str, pw: &str) -> StatusCode {
    d.client().with_basic(key, pw).me().await.status
}

#[tokio::test]
async fn a_rotated_key_keeps_its_old_password_for_the_overlap_and_no_longer() {
    let d = Daemon::start(None).await;
    let admin = d.admin().await;
    let (key, old, created) = admin.create_key("nightly export").await;
    let valid_until = created["validUntil"].clone();

    // The job's own key rotates itself (as a script would before its password expires).
    let r = d
        .client()
        .with_basic(&key, &old)
        .post(&format!("/api/accesskeys/{key}/rotate"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new = r.body["password"]
        .as_str()
        .expect("a new password")
        .to_string();
    assert_ne!(new, old);
    assert_eq!(r.body["keyId"], key.as_str(), "the same key");
    assert_eq!(
        r.body["validUntil"], valid_until,
        "rotation never extends validity"
    );
    assert!(
        r.body["previousPasswordValidUntil"].is_string(),
        "{}",
        r.body
    );
    assert!(key_of(&admin, &key).await.get("password").is_none());

    // Both work during the overlap (60 minutes by default): running jobs finish.
    assert_eq!(works(&d, &key, &new).await, StatusCode::OK);
    assert_eq!(works(&d, &key, &old).await, StatusCode::OK);
    d.advance(Duration::minutes(59));
    assert_eq!(works(&d, &key, &old).await, StatusCode::OK);
    d.advance(Duration::minutes(2));
    assert_eq!(works(&d, &key, &old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(works(&d, &key, &new).await, StatusCode::OK);
    assert!(key_of(&admin, &key).await["previousPasswordValidUntil"].is_null());
    assert!(audit_has(&admin, "access_key.rotate", "the old password works until").await);

    // With no overlap the old password stops at once, and so do sessions opened with it.
    set_option(
        &admin,
        "Authentication/AccessKey/RotationOverlapMinutes",
        json!(0),
    )
    .await;
    let (_, _, token) = d.client().login(&key, &new, None).await;
    let session = d.client().with_token(&token.expect("a key session"));
    assert_eq!(session.me().await.status, StatusCode::OK);
    let r = admin
        .post(&format!("/api/accesskeys/{key}/rotate"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let newest = r.body["password"].as_str().expect("password").to_string();
    assert_eq!(works(&d, &key, &new).await, StatusCode::UNAUTHORIZED);
    assert_eq!(session.me().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(works(&d, &key, &newest).await, StatusCode::OK);

    // A key rotates only itself: to a sibling key of the same owner, it does not exist.
    let (sibling, sibling_pw, _) = admin.create_key("a sibling").await;
    let by_key = d
        .client()
        .with_basic(&sibling, &sibling_pw)
        .post(&format!("/api/accesskeys/{key}/rotate"), json!({}))
        .await;
    assert_error(&by_key, StatusCode::NOT_FOUND, "not found");
    assert_eq!(works(&d, &key, &newest).await, StatusCode::OK);
}

#[tokio::test]
async fn a_read_key_reads_and_is_refused_every_write_however_it_comes() {
    let d = Daemon::start(None).await;
    let nginx = Nginx::start(&d.url);
    let admin = d.admin().await;
    let r = admin
        .post(
            "/api/accesskeys",
            json!({"name": "power bi", "scope": "read"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["scope"], "read");
    let key = r.body["keyId"].as_str().unwrap().to_string();
    let pw = r.body["password"].as_str().unwrap().to_string();
    assert_eq!(key_of(&admin, &key).await["scope"], "read");

    // Basic credentials: reads pass, a write is a 403 naming the scope.
    let basic = d.client().with_basic(&key, &pw);
    assert_eq!(basic.me().await.status, StatusCode::OK);
    assert_eq!(basic.get("/api/accesskeys").await.status, StatusCode::OK);
    let write = basic.post("/api/accesskeys", json!({"name": "more"})).await;
    assert_error(&write, StatusCode::FORBIDDEN, "scope `read`");
    let delete = basic.delete(&format!("/api/accesskeys/{key}")).await;
    assert_error(&delete, StatusCode::FORBIDDEN, "scope `read`");

    // A session opened with the key is just as narrow.
    let (status, _, token) = d.client().login(&key, &pw, None).await;
    assert_eq!(status, StatusCode::OK);
    let session = d.client().with_token(&token.expect("token"));
    assert_eq!(session.me().await.status, StatusCode::OK);
    let write = session
        .post("/api/accesskeys", json!({"name": "more"}))
        .await;
    assert_error(&write, StatusCode::FORBIDDEN, "scope `read`");

    // Forward authentication reads the method the proxy forwards.
    let verify = |header: &'static str, method: &'static str| {
        basic
            .http
            .get(format!("{}/api/auth/verify", d.url))
            .basic_auth(&key, Some(&pw))
            .header(header, method)
            .send()
    };
    let ok = verify("X-Original-Method", "GET").await.expect("verify");
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-auth-key-scope"], "read");
    let post = verify("X-Original-Method", "POST").await.expect("verify");
    assert_eq!(post.status(), StatusCode::FORBIDDEN);
    let delete = verify("X-Forwarded-Method", "DELETE")
        .await
        .expect("verify");
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    // A client naming a read of its own beside the proxy's header gains nothing.
    let spoofed = basic
        .http
        .get(format!("{}/api/auth/verify", d.url))
        .basic_auth(&key, Some(&pw))
        .header("X-Original-Method", "GET")
        .header("X-Forwarded-Method", "POST")
        .send()
        .await
        .expect("verify");
    assert_eq!(spoofed.status(), StatusCode::FORBIDDEN);
    let own_post = basic
        .http
        .post(format!("{}/api/auth/verify", d.url))
        .basic_auth(&key, Some(&pw))
        .header("X-Original-Method", "GET")
        .send()
        .await
        .expect("verify");
    assert_eq!(
        own_post.status(),
        StatusCode::FORBIDDEN,
        "POST verify stands for a POST"
    );

    // Through a real nginx with auth_request: the guarded app sees reads only.
    let through = from(&basic, &nginx.url(), "127.0.0.1", "excel");
    let get = through.get("/protected/report").await;
    assert_eq!(get.status, StatusCode::OK, "{}", get.body);
    let me = admin.me().await.body;
    assert_eq!(get.headers["x-app-user"], me["username"].as_str().unwrap());
    let post = through
        .send(Method::POST, "/protected/report", Some(json!({})))
        .await;
    assert_eq!(post.status, StatusCode::FORBIDDEN, "{}", post.body);
    let claimed = through
        .http
        .post(format!("{}/protected/report", through.base))
        .basic_auth(&key, Some(&pw))
        .header("X-Original-Method", "GET")
        .send()
        .await
        .expect("through nginx");
    assert_eq!(
        claimed.status(),
        StatusCode::FORBIDDEN,
        "nginx sets the method, not the client"
    );

    // A full key passes the same guard for a write.
    let (full, full_pw, created) = admin.create_key("etl").await;
    assert_eq!(created["scope"], "full");
    let full_through = from(
        &d.client().with_basic(&full, &full_pw),
        &nginx.url(),
        "127.0.0.1",
        "etl",
    );
    let post = full_through
        .send(Method::POST, "/protected/report", Some(json!({})))
        .await;
    assert_eq!(post.status, StatusCode::OK, "{}", post.body);

    // The read key may still rotate itself (it gains nothing by it).
    let rotated = basic
        .post(&format!("/api/accesskeys/{key}/rotate"), json!({}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_eq!(rotated.body["scope"], "read");

    let bad = admin
        .post("/api/accesskeys", json!({"name": "x", "scope": "write"}))
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "scope");
}

#[tokio::test]
async fn a_key_restricted_to_a_network_works_only_from_there_through_the_proxy_and_directly() {
    let d = Daemon::start_with(None, "\n[server]\ntrusted_proxies = [\"127.0.0.1\"]\n", &[]).await;
    let nginx = Nginx::start(&d.url);
    let admin = d.admin().await;
    let r = admin
        .post(
            "/api/accesskeys",
            json!({"name": "office only", "allowedNetworks": ["127.0.0.5/32", "10.20.0.0/16"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.body["allowedNetworks"],
        json!(["127.0.0.5/32", "10.20.0.0/16"])
    );
    let key = r.body["keyId"].as_str().unwrap().to_string();
    let pw = r.body["password"].as_str().unwrap().to_string();
    let basic = d.client().with_basic(&key, &pw);

    // Through nginx (a trusted proxy), the client nginx names is the one that counts.
    let office = from(&basic, &nginx.url(), "127.0.0.5", "excel");
    assert_eq!(office.me().await.status, StatusCode::OK);
    let elsewhere = from(&basic, &nginx.url(), "127.0.0.6", "curl");
    let refused = elsewhere.me().await;
    assert_error(
        &refused,
        StatusCode::UNAUTHORIZED,
        "may not be used from 127.0.0.6",
    );

    // Directly, the connection's own address; a forged X-Forwarded-For from an untrusted
    // peer changes nothing.
    assert_eq!(
        from(&basic, &d.url, "127.0.0.5", "x").me().await.status,
        StatusCode::OK
    );
    let forged = from(&basic, &d.url, "127.0.0.6", "x")
        .http
        .get(format!("{}/api/users/me", d.url))
        .basic_auth(&key, Some(&pw))
        .header("X-Forwarded-For", "127.0.0.5")
        .send()
        .await
        .expect("request");
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert!(
        audit_has(&admin, "access_key.network_refused", "used from 127.0.0.6").await,
        "the refusal is audited"
    );
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("outcome=\"network_refused\"} 2"),
        "{metrics}"
    );

    // The owner widens it again, interactively; a key cannot.
    let by_key = from(&basic, &d.url, "127.0.0.5", "x")
        .send(
            Method::PATCH,
            &format!("/api/accesskeys/{key}"),
            Some(json!({"allowedNetworks": null})),
        )
        .await;
    assert_error(&by_key, StatusCode::FORBIDDEN, "interactively");
    let bad = admin
        .send(
            Method::PATCH,
            &format!("/api/accesskeys/{key}"),
            Some(json!({"allowedNetworks": ["office"]})),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "allowedNetworks");
    let cleared = admin
        .send(
            Method::PATCH,
            &format!("/api/accesskeys/{key}"),
            Some(json!({"allowedNetworks": null})),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert!(cleared.body["allowedNetworks"].is_null());
    assert_eq!(elsewhere.me().await.status, StatusCode::OK);
    assert!(audit_has(&admin, "access_key.update", "allowed networks: anywhere").await);
}

async fn recent_uses(owner: &Client, key: &str, want: usize) -> Vec<Value> {
    // The write follows the request in the background: a bounded wait for it.
    for _ in 0..200 {
        let uses = key_of(owner, key).await["recentUses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if uses.len() >= want {
            return uses;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!(
        "{key} never showed {want} recent uses: {}",
        key_of(owner, key).await
    );
}

#[tokio::test]
async fn a_key_shows_where_it_was_used_from() {
    let d = Daemon::start_with(
        None,
        "\n[access_keys]\nlast_used_write_interval_seconds = 0\n",
        &[],
    )
    .await;
    let admin = d.admin().await;
    let (key, pw, created) = admin.create_key("shared by two jobs").await;
    assert_eq!(created["recentUses"], json!([]));
    let basic = d.client().with_basic(&key, &pw);
    assert_eq!(
        from(&basic, &d.url, "127.0.0.7", "etl-job/1.0")
            .me()
            .await
            .status,
        StatusCode::OK
    );
    recent_uses(&admin, &key, 1).await;
    assert_eq!(
        from(&basic, &d.url, "127.0.0.8", "Microsoft.Data.Mashup")
            .me()
            .await
            .status,
        StatusCode::OK
    );
    let uses = recent_uses(&admin, &key, 2).await;
    assert_eq!(uses[0]["address"], "127.0.0.8", "newest first: {uses:?}");
    assert_eq!(uses[0]["userAgent"], "Microsoft.Data.Mashup");
    assert_eq!(uses[1]["address"], "127.0.0.7");
    assert_eq!(uses[1]["userAgent"], "etl-job/1.0");
    assert!(uses[0]["at"].is_string());
}

#[tokio::test]
async fn a_key_left_unused_stops_at_the_idle_limit_and_a_use_keeps_it() {
    let d = Daemon::start(None).await;
    let admin = d.admin().await;
    set_option(&admin, "Authentication/AccessKey/MaxIdleDays", json!(3)).await;
    let (used, used_pw, _) = admin.create_key("daily job").await;
    let (_idle, idle_pw, created) = admin.create_key("forgotten").await;
    let idle = created["keyId"].as_str().unwrap().to_string();
    let created_at = chrono::DateTime::parse_from_rfc3339(created["createdAt"].as_str().unwrap())
        .expect("createdAt");
    let until = chrono::DateTime::parse_from_rfc3339(created["validUntil"].as_str().unwrap())
        .expect("validUntil");
    assert_eq!(
        until - created_at,
        Duration::days(3),
        "the idle limit ends first"
    );

    // Two days on, one key is used and so kept; the other is not.
    // (The admin signs in again each time: sessions end within the day.)
    d.advance(Duration::days(2));
    assert_eq!(works(&d, &used, &used_pw).await, StatusCode::OK);
    let admin = d.admin().await;
    wait_for_last_used(&admin, &used).await;
    d.advance(Duration::days(2));
    let refused = d.client().with_basic(&idle, &idle_pw).me().await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "idle limit");
    assert_eq!(works(&d, &used, &used_pw).await, StatusCode::OK);
    let admin = d.admin().await;
    assert_eq!(
        key_of(&admin, &idle).await["validUntil"],
        created["validUntil"],
        "it shows when it stopped"
    );

    // The limit off: the idle key works again while its owner's window lasts.
    set_option(&admin, "Authentication/AccessKey/MaxIdleDays", json!(0)).await;
    assert_eq!(works(&d, &idle, &idle_pw).await, StatusCode::OK);
}

async fn wait_for_last_used(owner: &Client, key: &str) -> Answer {
    for _ in 0..200 {
        let k = key_of(owner, key).await;
        if k["lastUsed"].is_string() {
            return owner.get("/api/accesskeys").await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("lastUsed of {key} was never written");
}
