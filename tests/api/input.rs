//! Bad input gets the contract's JSON error and changes nothing; health endpoints answer.

use crate::app::{assert_error, TestApp, ADMIN};
use axum::http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn malformed_requests_get_clear_errors_and_change_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;

    // Malformed JSON, wrong types, wrong content type, oversized bodies.
    let cases: Vec<(&str, &str, String, StatusCode, &str)> = vec![
        (
            "/api/accesskeys",
            "application/json",
            "{\"name\": ".into(),
            StatusCode::BAD_REQUEST,
            "json",
        ),
        (
            "/api/accesskeys",
            "application/json",
            "{\"name\": 42}".into(),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            "/api/accesskeys",
            "application/json",
            "[]".into(),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "/api/accesskeys",
            "text/plain",
            "{\"name\": \"x\"}".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
        (
            "/api/accesskeys",
            "application/json",
            format!("{{\"name\": \"{}\"}}", "x".repeat(100_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
        (
            "/api/auth/login",
            "application/json",
            "{\"username\": [1]}".into(),
            StatusCode::BAD_REQUEST,
            "username",
        ),
        (
            "/api/auth/login",
            "application/json",
            "{}".into(),
            StatusCode::BAD_REQUEST,
            "username",
        ),
        (
            "/api/auth/login",
            "application/json",
            "{\"username\": \"root\"}".into(),
            StatusCode::BAD_REQUEST,
            "password",
        ),
    ];
    for (path, ctype, body, status, needle) in cases {
        let r = app
            .post(path)
            .auth(&admin)
            .body(ctype, body.clone())
            .send()
            .await;
        assert_eq!(
            r.status,
            status,
            "{path} {ctype} {}",
            &body[..body.len().min(40)]
        );
        let v = r.json();
        let msg = v["statusMessage"].as_str().expect("statusMessage");
        assert!(
            msg.to_lowercase().contains(needle),
            "{msg:?} lacks {needle:?}"
        );
    }
    let keys = app.get("/api/accesskeys").auth(&admin).send().await.json();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 0);

    // The Seeq SDK's content type is accepted.
    let r = app
        .post("/api/accesskeys")
        .auth(&admin)
        .body(
            "application/vnd.seeq.v1+json",
            "{\"name\": \"from the SDK\"}",
        )
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    // Bad query parameters and paths.
    for path in [
        "/api/accesskeys?limit=0",
        "/api/accesskeys?limit=abc",
        "/api/users?offset=-1",
        "/api/accesskeys?getAll=maybe",
    ] {
        let a = app.get(path).auth(&admin).send().await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {}", a.body);
        assert!(a.json()["statusMessage"].is_string());
    }
    assert_error(
        &app.get("/api/users/not-a-user").auth(&admin).send().await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    assert_error(
        &app.delete("/api/accesskeys/akd_nope")
            .auth(&admin)
            .send()
            .await,
        StatusCode::NOT_FOUND,
        "not found",
    );

    // Unknown routes and methods.
    assert_error(
        &app.get("/api/nope").auth(&admin).send().await,
        StatusCode::NOT_FOUND,
        "no such endpoint",
    );
    assert_error(
        &app.get("/").send().await,
        StatusCode::NOT_FOUND,
        "no such endpoint",
    );
    let a = app
        .request(Method::PUT, "/api/accesskeys")
        .auth(&admin)
        .json(json!({}))
        .send()
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(a.json()["statusMessage"].is_string());
}

#[tokio::test]
async fn health_readiness_status_and_metrics() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").send().await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz").send().await.status, StatusCode::OK);
    let s = app.get("/api/system/server-status").send().await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.json()["version"], env!("CARGO_PKG_VERSION"));
    app.admin().await;
    let r = app
        .try_login(ADMIN, "wrong password", Some("builtin"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let text = app.metrics().await;
    assert!(
        text.contains("accesskeyd_logins_total{outcome=\"success\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("accesskeyd_logins_total{outcome=\"failure\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn text_with_a_nul_character_is_refused_on_every_backend_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // PostgreSQL cannot store U+0000, so SQLite refuses it too: the same 400 everywhere,
    // in a label, a description, a user's name, and a login's name.
    for (path, body) in [
        ("/api/accesskeys", json!({"name": "etl\u{0}"})),
        (
            "/api/accesskeys",
            json!({"name": "etl", "description": "nightly\u{0}"}),
        ),
        (
            "/api/users",
            json!({"username": "nul\u{0}user", "password": "a-long-enough-password-1"}),
        ),
    ] {
        let r = app.post(path).auth(&admin).json(body).send().await;
        assert_error(&r, StatusCode::BAD_REQUEST, "U+0000");
    }
    let r = app
        .post("/api/auth/login")
        .json(json!({"username": "admin\u{0}", "password": "x"}))
        .send()
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "U+0000");
    let keys = app.get("/api/accesskeys").auth(&admin).send().await.json();
    assert_eq!(keys["totalResults"], 0, "no key was created: {keys}");
    // The text `\u0000` itself (a backslash, then u0000) is just text.
    app.create_key(&admin, "literally \\u0000").await;
}

#[tokio::test]
async fn a_nul_character_in_a_path_or_query_is_bad_input_not_a_server_error() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // SQLite finds nobody by such an id (404, or an empty list); PostgreSQL refuses the text
    // itself (400). Either way the server did not fail, and an error is in the API's shape.
    for path in [
        "/api/users/%00",
        "/api/users/a%00b",
        "/api/accesskeys?userId=%00",
        "/api/directories/%00/runs",
    ] {
        let r = app.get(path).auth(&admin).send().await;
        assert!(
            !r.status.is_server_error(),
            "{path}: {} {}",
            r.status,
            r.body
        );
        if r.status.is_client_error() {
            assert!(r.json()["statusMessage"].is_string(), "{path}: {}", r.body);
        }
    }
}
