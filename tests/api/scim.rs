//! SCIM rules that need no identity provider: the token is checked before the body is
//! read (and an unknown one never waits for the write lock), names a provider sends lose
//! invisible characters, and a query or path that cannot be read is a SCIM error too.

use crate::app::{Resp, TestApp};
use axum::http::StatusCode;
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
    let (_, token) = accesskeyd::scim::create_token(&app.app, "idp", "test provider")
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
