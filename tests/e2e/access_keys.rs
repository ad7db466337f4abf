//! A user creates access keys and scripts use them: password shown once, key logins, Basic
//! auth on every endpoint, forward auth, deletion, limits.

use crate::harness::daemon::{assert_error, Auth, Daemon, LDAP_DIR};
use crate::harness::slapd::Slapd;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_key_is_shown_once_and_then_works_like_its_owner() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();

    let a = bob
        .post(
            "/api/accesskeys",
            json!({"name": "nightly export", "description": "cron on etl-1"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let key = a.body["keyId"].as_str().unwrap().to_string();
    let password = a.body["password"].as_str().unwrap().to_string();
    assert!(key.starts_with("akd_") && key.len() == 36, "{key}");
    assert!(password.starts_with("akp_") && password.len() == 36);
    assert_eq!(a.body["name"], "nightly export");
    assert_eq!(a.body["description"], "cron on etl-1");
    assert_eq!(a.body["userId"], bob_id.as_str());
    assert_eq!(a.body["type"], "AccessKey");
    assert_eq!(a.body["isAdmin"], false);
    assert!(a.body["lastUsed"].is_null());

    // The password is in no later answer, and only its argon2id hash is stored.
    let list = bob.get("/api/accesskeys").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["keys"][0]["keyId"], key.as_str());
    assert!(list.body["keys"][0].get("password").is_none());
    assert!(!list.body.to_string().contains(&password));
    let admin = d.admin().await;
    let all = admin.get("/api/accesskeys?getAll=true").await;
    assert!(!all.body.to_string().contains(&password));
    let stored: Vec<String> = {
        use accesskeyd::store::schema::access_keys;
        use diesel::prelude::*;
        d.app
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
    if let crate::harness::db::TestDatabase::Sqlite(_) = *d.db {
        // Not in any page of the file either (WAL included).
        let db = std::fs::read(d.dir.path().join("accesskeyd.db")).unwrap();
        let wal = std::fs::read(d.dir.path().join("accesskeyd.db-wal")).unwrap_or_default();
        let needle = password.as_bytes();
        assert!(
            !db.windows(needle.len()).any(|w| w == needle)
                && !wal.windows(needle.len()).any(|w| w == needle),
            "the password is stored in clear"
        );
    }

    // Logging in with the key: no directory named, or the built-in one.
    for provider in [None, Some("builtin")] {
        let (status, body, token) = d.client().login(&key, &password, provider).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["username"], "bob");
        let s = d.client().with_token(&token.unwrap());
        assert_eq!(s.me().await.body["id"], bob_id.as_str());
    }
    // Through the LDAP directory a key is just a wrong username.
    let (status, _, _) = d.client().login(&key, &password, Some(LDAP_DIR)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Basic auth works on every endpoint, also as Bearer-less stateless calls.
    let basic = d.client().with_basic(&key, &password);
    let me = basic.me().await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["username"], "bob");
    // A key login never counts as an interactive login.
    let last_login = bob.me().await.body["lastLoginAt"].clone();
    assert_eq!(me.body["lastLoginAt"], last_login);

    // Forward authentication for reverse proxies.
    let v = basic.get("/api/auth/verify").await;
    assert_eq!(v.status, StatusCode::OK);
    assert_eq!(v.headers["x-auth-user"], "bob");
    assert_eq!(v.headers["x-auth-user-id"], bob_id.as_str());
    assert_eq!(v.headers["x-auth-admin"], "false");
    assert_eq!(v.headers["x-auth-method"], "access-key");
    assert_eq!(v.headers["x-auth-key-id"], key.as_str());
    let v = bob
        .send(reqwest::Method::POST, "/api/auth/verify", None)
        .await;
    assert_eq!(v.status, StatusCode::OK);
    assert_eq!(v.headers["x-auth-method"], "interactive");
    assert!(v.headers.get("x-auth-key-id").is_none());
    let v = d
        .client()
        .with_basic(&key, "akp_wrong")
        .get("/api/auth/verify")
        .await;
    assert_eq!(v.status, StatusCode::UNAUTHORIZED);
    assert_eq!(v.headers["www-authenticate"], "Basic realm=\"accesskeyd\"");
    let v = d.client().get("/api/auth/verify").await;
    assert_eq!(v.status, StatusCode::UNAUTHORIZED);

    // lastUsed is recorded (in the background) after use.
    let mut seen = serde_json::Value::Null;
    for _ in 0..50 {
        seen = bob.get("/api/accesskeys").await.body["keys"][0]["lastUsed"].clone();
        if !seen.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen.is_string(), "lastUsed was not recorded");
}

#[tokio::test]
async fn wrong_or_malformed_key_credentials_are_refused() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let (key, password, _) = bob.create_key("script").await;
    let (other_key, other_password, _) = bob.create_key("other").await;

    for (k, p) in [
        (key.as_str(), other_password.as_str()),
        (other_key.as_str(), password.as_str()),
        (key.as_str(), "akp_"),
        (key.as_str(), ""),
        ("akd_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", password.as_str()),
    ] {
        let a = d.client().with_basic(k, p).me().await;
        assert_error(
            &a,
            StatusCode::UNAUTHORIZED,
            "invalid access key or password",
        );
        let (status, _, token) = d
            .client()
            .login(k, if p.is_empty() { "x" } else { p }, None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(token.is_none());
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
        let a = d
            .client()
            .with_auth(Auth::RawAuthorization(raw.into()))
            .me()
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{raw}: {}", a.body);
        assert!(a.body["statusMessage"].is_string(), "{raw}");
    }
    let a = d.client().me().await;
    assert_error(&a, StatusCode::UNAUTHORIZED, "authentication required");
    let a = d.client().with_auth(Auth::Bearer(bob.token())).me().await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "Bearer carries a session token too"
    );
}

#[tokio::test]
async fn a_key_session_cannot_mint_keys_and_dies_with_its_key() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let (key, password, _) = bob.create_key("script").await;
    let key_session = d.login(&key, &password, None).await;

    for c in [key_session.clone(), d.client().with_basic(&key, &password)] {
        let a = c
            .post("/api/accesskeys", json!({"name": "successor"}))
            .await;
        assert_error(&a, StatusCode::FORBIDDEN, "interactive");
    }
    assert_eq!(
        bob.get("/api/accesskeys").await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Deleting the key ends the session opened with it, at once.
    assert_eq!(key_session.me().await.status, StatusCode::OK);
    let del = bob.delete(&format!("/api/accesskeys/{key}")).await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);
    assert!(del.body["statusMessage"]
        .as_str()
        .unwrap()
        .contains("deleted"));
    assert_eq!(key_session.me().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        d.client().with_basic(&key, &password).me().await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = bob.delete(&format!("/api/accesskeys/{key}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    // Logging out ends an interactive session everywhere.
    let out = bob.delete("/api/auth/logout").await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(bob.me().await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_config_switch_lets_key_sessions_mint_keys() {
    let slapd = Slapd::start().await;
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[(
            "ACCESSKEYD_ACCESS_KEYS__ALLOW_KEY_SESSIONS_TO_CREATE_KEYS",
            "true",
        )],
    )
    .await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let (key, password, _) = bob.create_key("script").await;
    let a = d
        .client()
        .with_basic(&key, &password)
        .post("/api/accesskeys", json!({"name": "successor"}))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}

#[tokio::test]
async fn labels_limits_and_other_peoples_keys() {
    let slapd = Slapd::start().await;
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[("ACCESSKEYD_ACCESS_KEYS__MAX_PER_USER", "2")],
    )
    .await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let carol = d.login("carol", "carol-pw", Some(LDAP_DIR)).await;

    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(201)}),
    ] {
        let a = bob.post("/api/accesskeys", body.clone()).await;
        assert_error(&a, StatusCode::BAD_REQUEST, "name");
    }
    let (key, _, _) = bob.create_key("one").await;
    bob.create_key("two").await;
    let a = bob.post("/api/accesskeys", json!({"name": "three"})).await;
    assert_error(&a, StatusCode::CONFLICT, "most allowed");
    assert_eq!(
        bob.get("/api/accesskeys").await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Carol can neither see, delete nor create Bob's keys.
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        carol.get("/api/accesskeys").await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        carol.get("/api/accesskeys?getAll=true").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        carol
            .get(&format!("/api/accesskeys?userId={bob_id}"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        carol.delete(&format!("/api/accesskeys/{key}")).await.status,
        StatusCode::NOT_FOUND
    );
    let a = carol
        .post("/api/accesskeys", json!({"name": "x", "userId": bob_id}))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        bob.get("/api/accesskeys").await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Polls the owner's key list until `lastUsed` of the only key satisfies `ok`.
async fn last_used_until(
    owner: &crate::harness::daemon::Client,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut seen = serde_json::Value::Null;
    for _ in 0..100 {
        seen = owner.get("/api/accesskeys").await.body["keys"][0]["lastUsed"].clone();
        if ok(&seen) {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("lastUsed never satisfied the condition; last seen {seen}");
}

#[tokio::test]
async fn last_used_is_written_at_most_once_a_minute_per_key() {
    let d = Daemon::start(None).await;
    let admin = d.admin().await;
    let (key, pw, _) = admin.create_key("poller").await;
    let basic = d.client().with_basic(&key, &pw);

    assert_eq!(basic.me().await.status, StatusCode::OK);
    let first = last_used_until(&admin, |v| v.is_string()).await;

    // Used again 30 s later: not written again.
    d.advance(chrono::Duration::seconds(30));
    assert_eq!(basic.me().await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        admin.get("/api/accesskeys").await.body["keys"][0]["lastUsed"],
        first
    );

    // Over a minute after the last write: written again, with the newer time.
    d.advance(chrono::Duration::seconds(31));
    assert_eq!(basic.me().await.status, StatusCode::OK);
    let second = last_used_until(&admin, |v| v.is_string() && *v != first).await;
    let (a, b): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = (
        first.as_str().unwrap().parse().unwrap(),
        second.as_str().unwrap().parse().unwrap(),
    );
    assert!(b - a >= chrono::Duration::seconds(61), "{a} -> {b}");
}

#[tokio::test]
async fn a_label_cannot_hide_reversed_or_invisible_text_to_pass_for_another() {
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
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
        let a = bob.post("/api/accesskeys", body).await;
        assert_error(&a, StatusCode::BAD_REQUEST, needle);
    }
    let mine = bob.get("/api/accesskeys").await.body;
    assert_eq!(mine["totalResults"], 0, "no key was created: {mine}");
    // Accents, apostrophes and other scripts are fine.
    bob.create_key("Zoë’s Power BI feed — 財務").await;

    // A service account's name is shown in lists and managers' mails: refused alike.
    let admin = d.admin().await;
    let a = admin
        .post(
            "/api/users",
            json!({"name": "Nightly\u{202E}LTE", "isApplicationServicePrincipal": true, "manager": "corp:bob"}),
        )
        .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "name: U+202E");

    // A directory's display name cannot be refused: it is stored without them.
    slapd
        .replace_attribute("carol", "cn", "Carol \u{202E}nimdA\u{200B}")
        .await;
    let carol = d.login("carol", "carol-pw", Some(LDAP_DIR)).await;
    assert_eq!(carol.me().await.body["name"], "Carol nimdA");
}

#[tokio::test]
async fn even_where_keys_may_create_keys_a_key_cannot_give_a_service_account_key_its_expiry() {
    let slapd = Slapd::start().await;
    let d = Daemon::start_with(
        Some(&slapd),
        "",
        &[(
            "ACCESSKEYD_ACCESS_KEYS__ALLOW_KEY_SESSIONS_TO_CREATE_KEYS",
            "true",
        )],
    )
    .await;
    let admin = d.admin().await;
    d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let sa = admin
        .post(
            "/api/users",
            json!({"name": "Nightly ETL", "isApplicationServicePrincipal": true, "manager": "corp:bob"}),
        )
        .await;
    assert_eq!(sa.status, StatusCode::CREATED, "{}", sa.body);
    let sa_id = sa.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = admin.create_key("admin automation").await;
    let basic = d.client().with_basic(&key, &pw);
    let expiry = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let a = basic
        .post(
            "/api/accesskeys",
            json!({"name": "etl feed", "userId": sa_id, "expiry": expiry}),
        )
        .await;
    assert_error(
        &a,
        StatusCode::FORBIDDEN,
        "a service account key's `expiry` cannot be changed with an access key",
    );
    let keys = admin.get(&format!("/api/accesskeys?userId={sa_id}")).await;
    assert_eq!(keys.body["totalResults"], 0, "{}", keys.body);
    // The switch still lets the key make an ordinary key, and the admin signed in makes
    // the service account's.
    let a = basic
        .post("/api/accesskeys", json!({"name": "successor"}))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let a = admin
        .post(
            "/api/accesskeys",
            json!({"name": "etl feed", "userId": sa_id, "expiry": expiry}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}
