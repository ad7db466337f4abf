//! Bad input gets the contract's JSON error and changes nothing; health endpoints answer.

use crate::harness::daemon::{assert_error, Daemon};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn malformed_requests_get_clear_errors_and_change_nothing() {
    let d = Daemon::start(None).await;
    let admin = d.admin().await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", d.url);
    let token = admin.token();

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
        let resp = http
            .post(url(path))
            .header("x-sq-auth", &token)
            .header("content-type", ctype)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            status,
            "{path} {ctype} {}",
            &body[..body.len().min(40)]
        );
        let v: serde_json::Value = resp.json().await.expect("JSON error body");
        let msg = v["statusMessage"].as_str().expect("statusMessage");
        assert!(
            msg.to_lowercase().contains(needle),
            "{msg:?} lacks {needle:?}"
        );
    }
    assert_eq!(
        admin.get("/api/accesskeys").await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // The Seeq SDK's content type is accepted.
    let resp = http
        .post(url("/api/accesskeys"))
        .header("x-sq-auth", &token)
        .header("content-type", "application/vnd.seeq.v1+json")
        .body("{\"name\": \"from the SDK\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Bad query parameters and paths.
    for path in [
        "/api/accesskeys?limit=0",
        "/api/accesskeys?limit=abc",
        "/api/users?offset=-1",
        "/api/accesskeys?getAll=maybe",
    ] {
        let a = admin.get(path).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {}", a.body);
        assert!(a.body["statusMessage"].is_string());
    }
    assert_error(
        &admin.get("/api/users/not-a-user").await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    assert_error(
        &admin.delete("/api/accesskeys/akd_nope").await,
        StatusCode::NOT_FOUND,
        "not found",
    );

    // Unknown routes and methods.
    assert_error(
        &admin.get("/api/nope").await,
        StatusCode::NOT_FOUND,
        "no such endpoint",
    );
    assert_error(
        &d.client().get("/").await,
        StatusCode::NOT_FOUND,
        "no such endpoint",
    );
    let a = admin
        .send(reqwest::Method::PUT, "/api/accesskeys", Some(json!({})))
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(a.body["statusMessage"].is_string());
}

#[tokio::test]
async fn health_readiness_status_and_metrics() {
    let d = Daemon::start(None).await;
    let c = d.client();
    assert_eq!(c.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(c.get("/readyz").await.status, StatusCode::OK);
    let s = c.get("/api/system/server-status").await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.body["version"], env!("CARGO_PKG_VERSION"));
    d.admin().await;
    let (status, _, _) = c.login("root", "wrong password", Some("builtin")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let text = d.metrics().await;
    assert!(
        text.contains("accesskeyd_logins_total{outcome=\"success\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("accesskeyd_logins_total{outcome=\"failure\"} 1"),
        "{text}"
    );
}
