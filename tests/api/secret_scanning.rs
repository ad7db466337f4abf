//! Leaked keys reported by a secret scanner, in-process: a signed report deletes the keys it
//! names (by password through the lookup hash, or by key id) and answers GitHub's verdicts;
//! an unsigned or forged one changes nothing; without the section there is no endpoint.
//! (Mail, webhooks and keys from a URL: tests/e2e/secret_scanning.rs.)

use crate::app::{assert_error, Key, TestApp};
use crate::scanner::Scanner;
use axum::http::StatusCode;
use serde_json::Value;

const PEPPER: &str = "lookup-pepper-for-the-tests-0123456789abcdef";

/// A daemon taking reports signed by `scanner`, with the lookup pepper.
async fn spawn(scanner: &Scanner, keys_dir: &tempfile::TempDir) -> TestApp {
    let keys = scanner.write_keys_file(keys_dir.path());
    TestApp::spawn_with(&format!(
        "\n[access_keys]\nlookup_pepper = \"{PEPPER}\"\n\n[secret_scanning]\npublic_keys_file = \"{}\"\n",
        keys.display()
    ))
    .await
}

/// POSTs `body` from `peer` with the given signature headers.
async fn report(
    app: &TestApp,
    body: &[u8],
    signed: Option<(&str, &str)>,
    peer: &str,
) -> (StatusCode, Value) {
    let mut req = app
        .post("/api/secret-scanning/reports")
        .peer(peer)
        .body("application/json", body.to_vec());
    if let Some((key_id, sig)) = signed {
        req = req
            .header("Github-Public-Key-Identifier", key_id)
            .header("Github-Public-Key-Signature", sig);
    }
    let r = req.send().await;
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

fn labels(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x["label"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test]
async fn a_signed_report_deletes_the_keys_it_names_and_the_audit_says_who_sent_it() {
    let scanner = Scanner::new();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(&scanner, &dir).await;
    let bob = app.user("bob").await;
    let notebook: Key = app.create_key(&bob, "notebook").await;
    let etl: Key = app.create_key(&bob, "etl").await;
    let kept: Key = app.create_key(&bob, "kept").await;

    let body = Scanner::report(&[
        (&notebook.password, "accesskeyd_access_key_password"),
        ("ghp_not_ours", "github_token"),
        (&etl.id, "accesskeyd_access_key_id"),
    ]);
    let sig = scanner.sign(&body);
    let (status, answer) = report(&app, &body, Some((&scanner.key_id, &sig)), "192.0.2.40").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        labels(&answer),
        ["true_positive", "false_positive", "true_positive"]
    );
    assert_eq!(answer[1]["token_type"], "github_token");

    assert!(!app.key_works(&notebook).await);
    assert!(!app.key_works(&etl).await);
    assert!(app.key_works(&kept).await);

    let admin = app.admin().await;
    let audit = app
        .get("/api/audit?action=access_key.leaked")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(audit["totalResults"], 2, "{audit}");
    for event in audit["events"].as_array().unwrap() {
        assert_eq!(event["actor"], "secret-scanning", "{event}");
        assert_eq!(event["remoteAddr"], "192.0.2.40", "{event}");
    }
    assert_eq!(app.metric("accesskeyd_access_keys_leaked_total").await, 2);

    // The same report again: the keys are gone already.
    let (_, again) = report(&app, &body, Some((&scanner.key_id, &sig)), "192.0.2.40").await;
    assert_eq!(
        labels(&again),
        ["false_positive", "false_positive", "false_positive"]
    );
}

#[tokio::test]
async fn unsigned_or_forged_reports_change_nothing() {
    let scanner = Scanner::new();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(&scanner, &dir).await;
    let bob = app.user("bob").await;
    let key = app.create_key(&bob, "notebook").await;
    let body = Scanner::report(&[(&key.id, "accesskeyd_access_key_id")]);
    let forger = Scanner::new();
    let forged = forger.sign(&body);
    for signed in [None, Some((scanner.key_id.as_str(), forged.as_str()))] {
        let (status, answer) = report(&app, &body, signed, "192.0.2.41").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
        assert!(answer["errorId"].is_string(), "{answer}");
    }
    assert!(app.key_works(&key).await);

    // Without [secret_scanning] there is nothing to report to.
    let plain = TestApp::spawn().await;
    let r = plain
        .post("/api/secret-scanning/reports")
        .body("application/json", body)
        .send()
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not taken here");
}
