//! SCIM rules that need no identity provider: the token is checked before the body is
//! read (and an unknown one never waits for the write lock), names a provider sends lose
//! invisible characters, the life of a provisioned user (set inactive: suspended and still
//! readable; re-activated; deleted; removed when a grace ends) with a key an admin made for
//! them, and a query or path that cannot be read is a SCIM error too.

use crate::app::{Key, Resp, TestApp};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

/// An OpenID Connect directory for SCIM tokens; its issuer is never asked.
const IDP: &str = "\n[[directories]]\nid = \"idp\"\nkind = \"oidc\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"x\"\n";

fn assert_scim_error(r: &Resp, expected: StatusCode, scim_type: Option<&str>) {
    assert_eq!(r.status, expected, "{}", r.body);
    let body = r.json();
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{body}"
    );
    assert_eq!(body["status"], expected.as_u16().to_string());
    if let Some(t) = scim_type {
        assert_eq!(body["scimType"], t, "{body}");
    }
}

async fn token(app: &TestApp) -> String {
    let (_, token) = accesskeyd::scim::create_token(&app.app, &"idp".into(), "test provider")
        .await
        .unwrap();
    token.expose().to_string()
}

#[tokio::test]
async fn search_checks_the_token_before_it_reads_the_body() {
    let app = TestApp::spawn_with(IDP).await;
    let search = |token: Option<&str>| {
        let req = app
            .post("/scim/v2/Users/.search")
            .body("application/scim+json", "{");
        match token {
            Some(t) => req.bearer(t).send(),
            None => req.send(),
        }
    };
    // Without a token, a malformed body is not even looked at.
    assert_scim_error(&search(None).await, StatusCode::UNAUTHORIZED, None);
    assert_scim_error(
        &search(Some("akscim_not-a-token")).await,
        StatusCode::UNAUTHORIZED,
        None,
    );
    // With one, the same body is a syntax error.
    let token = token(&app).await;
    assert_scim_error(
        &search(Some(&token)).await,
        StatusCode::BAD_REQUEST,
        Some("invalidSyntax"),
    );
}

#[tokio::test]
async fn names_a_provider_sends_lose_invisible_characters_before_anyone_sees_them() {
    let app = TestApp::spawn_with(IDP).await;
    let token = token(&app).await;
    // A right-to-left override and a zero-width space would let this name pass for another
    // in the Admin Panel and in mails.
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "eve", "displayName": "Eve\u{202E}nimda\u{200B}",
        "name": {"givenName": "E\u{200B}ve", "familyName": "Adams"}});
    let created = app
        .post("/scim/v2/Users")
        .bearer(&token)
        .body("application/scim+json", body.to_string())
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let record: Value = app
        .get(&format!("/scim/v2/Users/{id}"))
        .bearer(&token)
        .send()
        .await
        .json();
    assert_eq!(record["displayName"], "Evenimda", "{record}");
    assert_eq!(record["name"]["givenName"], "Eve", "{record}");
    let admin = app.admin().await;
    let users = app
        .get("/api/users?limit=100")
        .auth(&admin)
        .send()
        .await
        .body;
    assert!(
        !users.contains('\u{202E}') && !users.contains('\u{200B}'),
        "{users}"
    );
}

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A SCIM request with the provider's token; the answer.
async fn scim(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> Resp {
    let req = app
        .request(method, &format!("/scim/v2{path}"))
        .bearer(token);
    match body {
        Some(b) => {
            req.body("application/scim+json", b.to_string())
                .send()
                .await
        }
        None => req.send().await,
    }
}

fn set_active(active: bool) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": active}]})
}

/// A user provisioned through SCIM who signed in just now, with a key an admin made for them.
async fn provisioned_with_key(app: &TestApp, token: &str, name: &str) -> (String, Key) {
    let created = scim(
        app,
        token,
        Method::POST,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": name})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_string();
    app.set_last_login(&id, app.now()).await;
    let admin = app.admin().await;
    let r = app
        .post("/api/accesskeys")
        .auth(&admin)
        .json(json!({"name": "provisioned", "userId": id}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let key = Key::from_created(&r.json());
    assert!(app.key_works(&key).await);
    (id, key)
}

/// The cleanup job as it runs on the leader, with this daemon's SCIM graces.
async fn run_cleanup(app: &TestApp) -> String {
    let daemon = app.app.clone();
    tokio::task::spawn_blocking(move || {
        let now = daemon.clock.now();
        let graces = accesskeyd::jobs::scim_graces(&daemon);
        daemon
            .leadership
            .run_blocking("session-cleanup", daemon.clock.as_ref(), |conn| {
                accesskeyd::jobs::cleanup(conn, now, &graces)
            })
    })
    .await
    .unwrap()
    .unwrap()
    .expect("the only process leads")
}

#[tokio::test]
async fn a_user_set_inactive_is_suspended_at_once_and_stays_readable_until_deleted() {
    let app = TestApp::spawn_with(IDP).await;
    let token = token(&app).await;
    let (id, key) = provisioned_with_key(&app, &token, "ann").await;
    let user = format!("/Users/{id}");

    // Set inactive: 200 with the resource; the key stops at once.
    let r = scim(&app, &token, Method::PATCH, &user, Some(set_active(false))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["active"], false, "{}", r.body);
    assert_eq!(r.json()["id"], id.as_str());
    assert!(!app.key_works(&key).await, "keys stop at once");
    // Still readable, and found by the provider's lookup, as inactive.
    let r = scim(&app, &token, Method::GET, &user, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["active"], false);
    let r = scim(
        &app,
        &token,
        Method::GET,
        "/Users?filter=userName%20eq%20%22ann%22",
        None,
    )
    .await;
    assert_eq!(r.json()["Resources"][0]["active"], false, "{}", r.body);
    let admin = app.admin().await;
    let audit = app
        .get("/api/audit?action=user.suspend")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(audit["totalResults"], 1, "{audit}");
    assert!(audit["events"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("set inactive via SCIM"));

    // Without a grace nothing is removed by time: a year of cleanup runs later, still there.
    app.advance(chrono::Duration::days(365));
    assert!(run_cleanup(&app)
        .await
        .ends_with(" 0 deprovisioned user(s)"));
    let r = scim(&app, &token, Method::GET, &user, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Re-activated (Entra restores a soft-deleted user so): the key works again once its
    // owner has signed in within the validity window, as for anyone.
    let r = scim(&app, &token, Method::PATCH, &user, Some(set_active(true))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["active"], true);
    app.set_last_login(&id, app.now()).await;
    assert!(app.key_works(&key).await, "restored with the key");

    // Removing `active` means inactive.
    let remove = json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "active"}]});
    let r = scim(&app, &token, Method::PATCH, &user, Some(remove)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["active"], false);
    assert!(!app.key_works(&key).await);

    // DELETE: gone, with the key.
    let r = scim(&app, &token, Method::DELETE, &user, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = scim(&app, &token, Method::GET, &user, None).await;
    assert_scim_error(&r, StatusCode::NOT_FOUND, None);
    assert!(!app.key_works(&key).await);
    // (A new admin session: the first ended in the year that passed.)
    let admin = app.admin().await;
    let audit = app
        .get("/api/audit?action=user.deprovision")
        .auth(&admin)
        .send()
        .await
        .json();
    assert!(
        audit["events"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("1 access key(s)"),
        "{audit}"
    );
}

#[tokio::test]
async fn put_answers_200_with_the_resource_also_when_it_sets_the_user_inactive() {
    let app = TestApp::spawn_with(IDP).await;
    let token = token(&app).await;
    let (id, key) = provisioned_with_key(&app, &token, "bob").await;
    let put = json!({"schemas": [USER_SCHEMA], "userName": "bob", "active": false,
        "name": {"givenName": "Bob", "familyName": "Baker"}, "displayName": "Bob B."});
    let r = scim(
        &app,
        &token,
        Method::PUT,
        &format!("/Users/{id}"),
        Some(put),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("content-type"), "application/scim+json");
    let body = r.json();
    assert_eq!(body["active"], false, "{body}");
    // The other attributes of the same request are stored too.
    assert_eq!(body["name"]["familyName"], "Baker", "{body}");
    assert_eq!(body["displayName"], "Bob B.", "{body}");
    assert!(!app.key_works(&key).await);
    let r = scim(&app, &token, Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(r.json(), body);

    // `attributes` applies to the answer of a write as to a read; a PATCH answers 204 only
    // when the client asks for no body.
    let r = scim(
        &app,
        &token,
        Method::PATCH,
        &format!("/Users/{id}?attributes=displayName"),
        Some(set_active(true)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["displayName"], "Bob B.");
    assert!(r.json().get("active").is_none(), "{}", r.body);
    let r = app
        .request(Method::PATCH, &format!("/scim/v2/Users/{id}"))
        .bearer(&token)
        .header("prefer", "return=minimal")
        .body("application/scim+json", set_active(false).to_string())
        .send()
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(r.body.is_empty());
    let r = scim(&app, &token, Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(r.json()["active"], false, "the change was made: {}", r.body);
}

#[tokio::test]
async fn with_a_grace_users_set_inactive_are_removed_when_it_ends() {
    let app = TestApp::spawn_with(&format!("{IDP}removal_grace_hours = 24\n")).await;
    let token = token(&app).await;
    let (id, key) = provisioned_with_key(&app, &token, "cid").await;
    let r = scim(
        &app,
        &token,
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(set_active(false)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!app.key_works(&key).await);
    // Within the grace: kept.
    app.advance(chrono::Duration::hours(23));
    assert!(run_cleanup(&app)
        .await
        .ends_with(" 0 deprovisioned user(s)"));
    let r = scim(&app, &token, Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(r.json()["active"], false, "{}", r.body);
    // Setting inactive again does not restart the grace.
    scim(
        &app,
        &token,
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(set_active(false)),
    )
    .await;
    app.advance(chrono::Duration::hours(2));
    assert!(run_cleanup(&app)
        .await
        .ends_with(" 1 deprovisioned user(s)"));
    let r = scim(&app, &token, Method::GET, &format!("/Users/{id}"), None).await;
    assert_scim_error(&r, StatusCode::NOT_FOUND, None);
    assert!(!app.key_works(&key).await);
}

#[tokio::test]
async fn bad_input_gets_a_scim_error_not_a_server_error() {
    let app = TestApp::spawn_with(IDP).await;
    let token = token(&app).await;
    let created = scim(
        &app,
        &token,
        Method::POST,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "dan"})),
    )
    .await;
    let user = format!("/Users/{}", created.json()["id"].as_str().unwrap());
    // A repeated query parameter, on reads and on writes alike; without a token, only 401.
    for (method, path) in [
        (Method::GET, "/Users?count=1&count=2".to_string()),
        (Method::GET, format!("{user}?attributes=a&attributes=b")),
        (Method::PATCH, format!("{user}?attributes=a&attributes=b")),
    ] {
        let body = (method == Method::PATCH).then(|| set_active(true));
        let r = scim(&app, &token, method.clone(), &path, body).await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST, None);
        let r = app.request(method, &format!("/scim/v2{path}")).send().await;
        assert_scim_error(&r, StatusCode::UNAUTHORIZED, None);
    }
    // Bodies that are not what they should be.
    for (method, body, scim_type) in [
        (Method::PUT, json!([1]), "invalidSyntax"),
        (Method::PUT, json!({"userName": 7}), "invalidValue"),
        (
            Method::PATCH,
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "userName"}]}),
            "invalidValue",
        ),
        (
            Method::PATCH,
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "emails[value co \"x\"]", "value": "y"}]}),
            "invalidPath",
        ),
    ] {
        let r = scim(&app, &token, method, &user, Some(body)).await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST, Some(scim_type));
    }
    let r = app
        .request(Method::PATCH, &format!("/scim/v2{user}"))
        .bearer(&token)
        .body("application/scim+json", "{\"schemas\": [")
        .send()
        .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("invalidSyntax"));
    let r = scim(
        &app,
        &token,
        Method::PUT,
        "/Users/no-such-user",
        Some(json!({"userName": "x"})),
    )
    .await;
    assert_scim_error(&r, StatusCode::NOT_FOUND, None);
}

#[tokio::test]
async fn an_email_sent_as_not_primary_comes_back_as_sent() {
    let app = TestApp::spawn_with(IDP).await;
    let token = token(&app).await;
    let not_primary = json!([{"value": "eve@example.org", "type": "work", "primary": false}]);
    let r = scim(
        &app,
        &token,
        Method::POST,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "eve", "emails": not_primary})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["emails"], not_primary);
    let user = format!("/Users/{}", r.json()["id"].as_str().unwrap());
    let r = scim(&app, &token, Method::GET, &user, None).await;
    assert_eq!(r.json()["emails"], not_primary, "{}", r.body);

    // PATCHed to primary, then back, as the checker does: each answer and each read as sent.
    for primary in [true, false] {
        let emails = json!([{"value": "eve@example.org", "type": "work", "primary": primary}]);
        let body = json!({"schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "emails", "value": emails}]});
        let r = scim(&app, &token, Method::PATCH, &user, Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["emails"], emails);
        let r = scim(&app, &token, Method::GET, &user, None).await;
        assert_eq!(r.json()["emails"], emails, "{}", r.body);
    }
    // Entra's form changes the address only.
    let body = json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "eve@example.com"}]});
    let r = scim(&app, &token, Method::PATCH, &user, Some(body)).await;
    assert_eq!(
        r.json()["emails"],
        json!([{"value": "eve@example.com", "type": "work", "primary": false}])
    );
    // The API shows the address.
    let admin = app.admin().await;
    let id = user.trim_start_matches("/Users/");
    let r = app
        .get(&format!("/api/users/{id}"))
        .auth(&admin)
        .send()
        .await;
    assert_eq!(r.json()["email"], "eve@example.com", "{}", r.body);
}

#[tokio::test]
async fn an_unknown_scim_token_never_waits_for_the_write_lock() {
    let app = TestApp::spawn_with(IDP).await;
    let token = token(&app).await;
    // As with ingestion tokens: anyone may send unknown tokens, and checking one must not
    // queue behind another writer for the SQLite write lock.
    let holder = match &app.db {
        crate::db::TestDatabase::Sqlite(url) => {
            use diesel::connection::SimpleConnection;
            use diesel::Connection;
            let path = url.strip_prefix("sqlite://").unwrap().to_string();
            let mut c = diesel::SqliteConnection::establish(&path).unwrap();
            c.batch_execute("BEGIN IMMEDIATE").unwrap();
            Some(c)
        }
        crate::db::TestDatabase::Postgres(_) => None,
    };
    let started = std::time::Instant::now();
    let r = app
        .get("/scim/v2/Users")
        .bearer("akscim_unknown-token-from-anyone-00000000000000")
        .send()
        .await;
    assert_scim_error(&r, StatusCode::UNAUTHORIZED, None);
    assert!(
        r.body.contains("unknown or revoked SCIM token"),
        "{}",
        r.body
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "waited {:?} for the write lock",
        started.elapsed()
    );
    drop(holder);

    // A known token works and its last use is recorded.
    let r = app.get("/scim/v2/Users").bearer(&token).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let listed = accesskeyd::bearer::list(&app.app, accesskeyd::bearer::Kind::Scim)
        .await
        .unwrap();
    assert!(listed[0].last_used_at.is_some());
}

#[tokio::test]
async fn a_repeated_query_parameter_or_an_unreadable_id_is_a_scim_error() {
    let app = TestApp::spawn_with(IDP).await;
    let token = token(&app).await;
    // An identity provider that sends `count` twice, or `attributes` twice on one user,
    // reads the answer as SCIM JSON like any other 400, not as plain text.
    for path in [
        "/scim/v2/Users?count=1&count=2",
        "/scim/v2/Users/some-id?attributes=userName&attributes=emails",
    ] {
        let r = app.get(path).bearer(&token).send().await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));
        assert!(r.body.contains("duplicate field"), "{path}: {}", r.body);
        assert_eq!(r.headers["content-type"], "application/scim+json", "{path}");
    }
    // An id that is not UTF-8 once decoded, on a user and on the schemas (no token needed).
    for path in ["/scim/v2/Users/%FF", "/scim/v2/Schemas/%FF"] {
        let r = app.get(path).bearer(&token).send().await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST, Some("invalidValue"));
        assert!(r.body.contains("UTF-8"), "{path}: {}", r.body);
    }
}

#[tokio::test]
async fn a_nul_character_in_what_a_provider_sends_is_refused_and_changes_nothing() {
    let app = TestApp::spawn_with(IDP).await;
    let token = token(&app).await;
    // PostgreSQL cannot store U+0000; every backend refuses it the same way, as bad input.
    let created = scim(
        &app,
        &token,
        Method::POST,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "nul\u{0}name"})),
    )
    .await;
    assert_scim_error(&created, StatusCode::BAD_REQUEST, Some("invalidValue"));
    assert!(created.body.contains("U+0000"), "{}", created.body);

    let ok = scim(
        &app,
        &token,
        Method::POST,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "nula", "emails": [{"value": "nula@example.org", "primary": true}]})),
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let id = ok.json()["id"].as_str().unwrap().to_string();
    let replaced = scim(
        &app,
        &token,
        Method::PUT,
        &format!("/Users/{id}"),
        Some(json!({"schemas": [USER_SCHEMA], "userName": "nula", "emails": [{"value": "nula\u{0}@example.org", "primary": false}]})),
    )
    .await;
    assert_scim_error(&replaced, StatusCode::BAD_REQUEST, Some("invalidValue"));
    let shown = scim(&app, &token, Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.json()["emails"][0]["value"], "nula@example.org");
    // Nobody was made of the refused request.
    let listed = scim(&app, &token, Method::GET, "/Users", None).await;
    assert_eq!(listed.json()["totalResults"], 1, "{}", listed.body);
}

#[tokio::test]
async fn a_method_or_path_scim_does_not_have_is_a_scim_error() {
    let app = TestApp::spawn_with(IDP).await;
    let token = token(&app).await;
    // PUT on the collection: the path exists, the method does not.
    let r = scim(&app, &token, Method::PUT, "/Users", Some(json!({}))).await;
    assert_scim_error(&r, StatusCode::METHOD_NOT_ALLOWED, None);
    assert_eq!(r.headers["content-type"], "application/scim+json");
    // Any method on a path SCIM does not have.
    let r = scim(&app, &token, Method::DELETE, "/Groups/1", None).await;
    assert_scim_error(&r, StatusCode::NOT_FOUND, None);
    // The API keeps its own shape.
    let r = app.request(Method::PUT, "/api/users/me").send().await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.body);
    assert!(r.json()["statusMessage"].is_string(), "{}", r.body);
}
