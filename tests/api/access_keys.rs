//! A user creates access keys and scripts use them: password shown once, key logins, Basic
//! auth on every endpoint, forward auth, deletion, limits, labels.

use crate::app::{assert_error, Key, Session, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn a_key_is_shown_once_and_then_works_like_its_owner() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let bob_id = bob.id();

    let a = app
        .post("/api/accesskeys")
        .auth(&bob)
        .json(json!({"name": "nightly export", "description": "cron on etl-1"}))
        .send()
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let created = a.json();
    let key = Key::from_created(&created);
    assert!(
        key.id.starts_with("akd_") && key.id.len() == 36,
        "{}",
        key.id
    );
    assert!(key.password.starts_with("akp_") && key.password.len() == 36);
    assert_eq!(created["name"], "nightly export");
    assert_eq!(created["description"], "cron on etl-1");
    assert_eq!(created["userId"], bob_id.as_str());
    assert_eq!(created["type"], "AccessKey");
    assert_eq!(created["isAdmin"], false);
    assert!(created["lastUsed"].is_null());

    // The password is in no later answer, and only its argon2id hash is stored.
    let list = app.get("/api/accesskeys").auth(&bob).send().await;
    assert_eq!(list.status, StatusCode::OK);
    let listed = list.json();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1);
    assert_eq!(listed["keys"][0]["keyId"], key.id.as_str());
    assert!(listed["keys"][0].get("password").is_none());
    assert!(!list.body.contains(&key.password));
    let admin = app.admin().await;
    let all = app
        .get("/api/accesskeys?getAll=true")
        .auth(&admin)
        .send()
        .await;
    assert!(!all.body.contains(&key.password));
    let stored: Vec<String> = {
        use accesskeyd::store::schema::access_keys;
        use diesel::prelude::*;
        app.app
            .store
            .read(|c| {
                Ok(access_keys::table
                    .select(access_keys::password_hash)
                    .load(c)?)
            })
            .await
            .unwrap()
    };
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with("$argon2id$"), "{}", stored[0]);
    if let crate::db::TestDatabase::Sqlite(_) = app.db {
        // Not in any page of the file either (WAL included).
        let db = std::fs::read(app.dir.path().join("accesskeyd.db")).unwrap();
        let wal = std::fs::read(app.dir.path().join("accesskeyd.db-wal")).unwrap_or_default();
        let needle = key.password.as_bytes();
        assert!(
            !db.windows(needle.len()).any(|w| w == needle)
                && !wal.windows(needle.len()).any(|w| w == needle),
            "the password is stored in clear"
        );
    }

    // Logging in with the key: no directory named, or the built-in one.
    for provider in [None, Some("builtin")] {
        let r = app.try_login(&key.id, &key.password, provider).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["username"], "bob");
        let s = Session::from_login(&r, "bob's key");
        assert_eq!(app.me(&s).await.json()["id"], bob_id.as_str());
    }

    // Basic auth works on every endpoint, also as Bearer-less stateless calls.
    let me = app.me_with_key(&key).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["username"], "bob");
    // A key login never counts as an interactive login.
    let last_login = app.me(&bob).await.json()["lastLoginAt"].clone();
    assert_eq!(me.json()["lastLoginAt"], last_login);

    // Forward authentication for reverse proxies.
    let v = app.get("/api/auth/verify").key(&key).send().await;
    assert_eq!(v.status, StatusCode::OK);
    assert_eq!(v.header("x-auth-user"), "bob");
    assert_eq!(v.header("x-auth-user-id"), bob_id.as_str());
    assert_eq!(v.header("x-auth-admin"), "false");
    assert_eq!(v.header("x-auth-method"), "access-key");
    assert_eq!(v.header("x-auth-key-id"), key.id.as_str());
    let v = app.post("/api/auth/verify").auth(&bob).send().await;
    assert_eq!(v.status, StatusCode::OK);
    assert_eq!(v.header("x-auth-method"), "interactive");
    assert!(v.headers.get("x-auth-key-id").is_none());
    let v = app
        .get("/api/auth/verify")
        .basic(&key.id, "akp_wrong")
        .send()
        .await;
    assert_eq!(v.status, StatusCode::UNAUTHORIZED);
    assert_eq!(v.header("www-authenticate"), "Basic realm=\"accesskeyd\"");
    let v = app.get("/api/auth/verify").send().await;
    assert_eq!(v.status, StatusCode::UNAUTHORIZED);

    // lastUsed is recorded (in the background) after use.
    let mut seen = Value::Null;
    for _ in 0..50 {
        seen = app.get("/api/accesskeys").auth(&bob).send().await.json()["keys"][0]["lastUsed"]
            .clone();
        if !seen.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen.is_string(), "lastUsed was not recorded");
}

#[tokio::test]
async fn wrong_or_malformed_key_credentials_are_refused() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let key = app.create_key(&bob, "script").await;
    let other = app.create_key(&bob, "other").await;

    for (k, p) in [
        (key.id.as_str(), other.password.as_str()),
        (other.id.as_str(), key.password.as_str()),
        (key.id.as_str(), "akp_"),
        (key.id.as_str(), ""),
        (
            "akd_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            key.password.as_str(),
        ),
    ] {
        let a = app.get("/api/users/me").basic(k, p).send().await;
        assert_error(
            &a,
            StatusCode::UNAUTHORIZED,
            "invalid access key or password",
        );
        let r = app
            .try_login(k, if p.is_empty() { "x" } else { p }, None)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.headers.get("x-sq-auth").is_none());
    }
    for raw in [
        "Basic",
        "Basic !!!notbase64",
        "Basic Ym9i", // "bob": no colon
        "Basic /w==", // not UTF-8
        "Digest abc",
        "Bearer ",
        "Bearer aks_forged",
    ] {
        let a = app
            .get("/api/users/me")
            .header("authorization", raw)
            .send()
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{raw}: {}", a.body);
        assert!(a.json()["statusMessage"].is_string(), "{raw}");
    }
    let a = app.get("/api/users/me").send().await;
    assert_error(&a, StatusCode::UNAUTHORIZED, "authentication required");
    let a = app.get("/api/users/me").bearer(&bob.token).send().await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "Bearer carries a session token too"
    );
}

#[tokio::test]
async fn a_key_session_cannot_mint_keys_and_dies_with_its_key() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let key = app.create_key(&bob, "script").await;
    let key_session = app.key_session(&key).await;

    for with_basic in [false, true] {
        let req = app
            .post("/api/accesskeys")
            .json(json!({"name": "successor"}));
        let req = if with_basic {
            req.key(&key)
        } else {
            req.auth(&key_session)
        };
        assert_error(&req.send().await, StatusCode::FORBIDDEN, "interactive");
    }
    let mine = app.get("/api/accesskeys").auth(&bob).send().await.json();
    assert_eq!(mine["keys"].as_array().unwrap().len(), 1);

    // Deleting the key ends the session opened with it, at once.
    assert_eq!(app.me(&key_session).await.status, StatusCode::OK);
    let del = app
        .delete(&format!("/api/accesskeys/{}", key.id))
        .auth(&bob)
        .send()
        .await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);
    assert!(del.json()["statusMessage"]
        .as_str()
        .unwrap()
        .contains("deleted"));
    assert_eq!(app.me(&key_session).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_with_key(&key).await.status, StatusCode::UNAUTHORIZED);
    let again = app
        .delete(&format!("/api/accesskeys/{}", key.id))
        .auth(&bob)
        .send()
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    // Logging out ends an interactive session everywhere.
    let out = app.delete("/api/auth/logout").auth(&bob).send().await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(app.me(&bob).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_config_switch_lets_key_sessions_mint_keys() {
    let app = TestApp::spawn_with_env(
        "",
        &[(
            "ACCESSKEYD_ACCESS_KEYS__ALLOW_KEY_SESSIONS_TO_CREATE_KEYS",
            "true",
        )],
    )
    .await;
    let bob = app.user("bob").await;
    let key = app.create_key(&bob, "script").await;
    let a = app
        .post("/api/accesskeys")
        .key(&key)
        .json(json!({"name": "successor"}))
        .send()
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}

#[tokio::test]
async fn labels_limits_and_other_peoples_keys() {
    let app = TestApp::spawn_with_env("", &[("ACCESSKEYD_ACCESS_KEYS__MAX_PER_USER", "2")]).await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let count = |body: Value| body["keys"].as_array().unwrap().len();

    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(201)}),
    ] {
        let a = app
            .post("/api/accesskeys")
            .auth(&bob)
            .json(body)
            .send()
            .await;
        assert_error(&a, StatusCode::BAD_REQUEST, "name");
    }
    let key = app.create_key(&bob, "one").await;
    app.create_key(&bob, "two").await;
    let a = app
        .post("/api/accesskeys")
        .auth(&bob)
        .json(json!({"name": "three"}))
        .send()
        .await;
    assert_error(&a, StatusCode::CONFLICT, "most allowed");
    assert_eq!(
        count(app.get("/api/accesskeys").auth(&bob).send().await.json()),
        2
    );

    // Carol can neither see, delete nor create Bob's keys.
    let bob_id = app.me(&bob).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        count(app.get("/api/accesskeys").auth(&carol).send().await.json()),
        0
    );
    assert_eq!(
        app.get("/api/accesskeys?getAll=true")
            .auth(&carol)
            .send()
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(&format!("/api/accesskeys?userId={bob_id}"))
            .auth(&carol)
            .send()
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&format!("/api/accesskeys/{}", key.id))
            .auth(&carol)
            .send()
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let a = app
        .post("/api/accesskeys")
        .auth(&carol)
        .json(json!({"name": "x", "userId": bob_id}))
        .send()
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        count(app.get("/api/accesskeys").auth(&bob).send().await.json()),
        2
    );
}

/// Polls the owner's key list until `lastUsed` of the only key satisfies `ok`.
async fn last_used_until(app: &TestApp, owner: &Session, ok: impl Fn(&Value) -> bool) -> Value {
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = app.get("/api/accesskeys").auth(owner).send().await.json()["keys"][0]["lastUsed"]
            .clone();
        if ok(&seen) {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("lastUsed never satisfied the condition; last seen {seen}");
}

#[tokio::test]
async fn last_used_is_written_at_most_once_a_minute_per_key() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let key = app.create_key(&admin, "poller").await;
    // The key is remembered from its first use on, as in a process that has been serving.
    app.settle().await;

    assert_eq!(app.me_with_key(&key).await.status, StatusCode::OK);
    let first = last_used_until(&app, &admin, |v| v.is_string()).await;

    // Used again 30 s later: not written again.
    app.advance(chrono::Duration::seconds(30));
    assert_eq!(app.me_with_key(&key).await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.get("/api/accesskeys").auth(&admin).send().await.json()["keys"][0]["lastUsed"],
        first
    );

    // Over a minute after the last write: written again, with the newer time.
    app.advance(chrono::Duration::seconds(31));
    assert_eq!(app.me_with_key(&key).await.status, StatusCode::OK);
    let second = last_used_until(&app, &admin, |v| v.is_string() && *v != first).await;
    let (a, b): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = (
        first.as_str().unwrap().parse().unwrap(),
        second.as_str().unwrap().parse().unwrap(),
    );
    assert!(b - a >= chrono::Duration::seconds(61), "{a} -> {b}");
}

#[tokio::test]
async fn a_label_cannot_hide_reversed_or_invisible_text_to_pass_for_another() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    // U+202E shows "invoice-exe.pdf"; U+200B makes a second "payroll" that looks the same.
    for (body, needle) in [
        (json!({"name": "invoice-\u{202E}fdp.exe"}), "name: U+202E"),
        (json!({"name": "pay\u{200B}roll"}), "name: U+200B"),
        (json!({"name": "etl\u{0007}"}), "name: U+0007"),
        (
            json!({"name": "etl", "description": "cron \u{2066}on etl-1"}),
            "description: U+2066",
        ),
    ] {
        let a = app
            .post("/api/accesskeys")
            .auth(&bob)
            .json(body)
            .send()
            .await;
        assert_error(&a, StatusCode::BAD_REQUEST, needle);
    }
    let mine = app.get("/api/accesskeys").auth(&bob).send().await.json();
    assert_eq!(mine["totalResults"], 0, "no key was created: {mine}");
    // Accents, apostrophes and other scripts are fine.
    app.create_key(&bob, "Zoë’s Power BI feed — 財務").await;

    // A service account's name is shown in lists and managers' mails: refused alike.
    let admin = app.admin().await;
    let a = app
        .post("/api/users")
        .auth(&admin)
        .json(json!({"name": "Nightly\u{202E}LTE", "isApplicationServicePrincipal": true, "manager": "builtin:bob"}))
        .send()
        .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "name: U+202E");
}

#[tokio::test]
async fn even_where_keys_may_create_keys_a_key_cannot_give_a_service_account_key_its_expiry() {
    let app = TestApp::spawn_with_env(
        "",
        &[(
            "ACCESSKEYD_ACCESS_KEYS__ALLOW_KEY_SESSIONS_TO_CREATE_KEYS",
            "true",
        )],
    )
    .await;
    let admin = app.admin().await;
    app.user("bob").await;
    let sa = app
        .post("/api/users")
        .auth(&admin)
        .json(json!({"name": "Nightly ETL", "isApplicationServicePrincipal": true, "manager": "builtin:bob"}))
        .send()
        .await;
    assert_eq!(sa.status, StatusCode::CREATED, "{}", sa.body);
    let sa_id = sa.json()["id"].as_str().unwrap().to_string();
    let key = app.create_key(&admin, "admin automation").await;
    let expiry = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let a = app
        .post("/api/accesskeys")
        .key(&key)
        .json(json!({"name": "etl feed", "userId": sa_id, "expiry": expiry}))
        .send()
        .await;
    assert_error(
        &a,
        StatusCode::FORBIDDEN,
        "a service account key's `expiry` cannot be changed with an access key",
    );
    let keys = app
        .get(&format!("/api/accesskeys?userId={sa_id}"))
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(keys["totalResults"], 0, "{keys}");
    // The switch still lets the key make an ordinary key, and the admin signed in makes
    // the service account's.
    let a = app
        .post("/api/accesskeys")
        .key(&key)
        .json(json!({"name": "successor"}))
        .send()
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let a = app
        .post("/api/accesskeys")
        .auth(&admin)
        .json(json!({"name": "etl feed", "userId": sa_id, "expiry": expiry}))
        .send()
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}
