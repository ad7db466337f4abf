//! Leaked keys reported by a secret scanner (GitHub's partner program, played by the
//! harness's scanner with a key pair of its own): a signed report of a key's password or
//! key id deletes the key, its owner gets a mail (a real SMTP server) and a signed webhook,
//! and the audit trail says where it was found; unsigned or badly signed reports change
//! nothing; the scanner's keys come from a file or from a URL.

use crate::harness::daemon::{Daemon, LDAP_DIR};
use crate::harness::scanner::{send_raw, Scanner};
use crate::harness::slapd::Slapd;
use crate::harness::smtp::SmtpSink;
use crate::harness::webhook::WebhookReceiver;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

const PEPPER: &str = "lookup-pepper-for-the-tests-0123456789abcdef";
const HOOK_SECRET: &str = "webhook-signing-secret-0123456789";
const PASSWORD_TYPE: &str = "accesskeyd_access_key_password";
const KEY_ID_TYPE: &str = "accesskeyd_access_key_id";

fn sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `[secret_scanning]` with `keys` (`public_keys_file = ...` or `public_keys_url = ...`), the
/// lookup pepper when `pepper`, and mail to `smtp`.
fn config(
    keys: &str,
    pepper: bool,
    smtp: Option<&SmtpSink>,
    hook: Option<&WebhookReceiver>,
) -> String {
    let mut toml = format!("\n[secret_scanning]\n{keys}\n");
    if pepper {
        toml.push_str(&format!("\n[access_keys]\nlookup_pepper = \"{PEPPER}\"\n"));
    }
    if let Some(smtp) = smtp {
        toml.push_str(&format!(
            "\n[notifications.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n\
             from = \"accesskeyd <noreply@example.com>\"\n",
            smtp.port()
        ));
    }
    if let Some(hook) = hook {
        toml.push_str(&format!(
            "\n[notifications.webhook]\nurl = \"{}\"\nsecret = \"{HOOK_SECRET}\"\nretry_base_ms = 50\n",
            hook.url()
        ));
    }
    toml
}

/// A scanner, its keys in a file (in the returned directory), and a daemon taking its
/// reports with the lookup pepper set.
async fn daemon_with_keys_file() -> (Scanner, tempfile::TempDir, Daemon) {
    let scanner = Scanner::new();
    let dir = tempfile::tempdir().unwrap();
    let keys = scanner.write_keys_file(dir.path());
    let d = Daemon::start_with(
        None,
        &config(
            &format!("public_keys_file = \"{}\"", keys.display()),
            true,
            None,
            None,
        ),
        &[],
    )
    .await;
    (scanner, dir, d)
}

async fn key_status(d: &Daemon, key: &str, password: &str) -> StatusCode {
    d.client().with_basic(key, password).me().await.status
}

fn labels(body: &Value) -> Vec<&str> {
    body.as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|v| v["label"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test]
async fn a_leaked_password_deletes_the_key_and_its_owner_is_told_once() {
    let slapd = Slapd::start().await;
    let smtp = SmtpSink::start().await;
    let scanner = Scanner::new();
    let dir = tempfile::tempdir().unwrap();
    let keys = scanner.write_keys_file(dir.path());
    let d = Daemon::start_with(
        Some(&slapd),
        &config(
            &format!("public_keys_file = \"{}\"", keys.display()),
            true,
            Some(&smtp),
            None,
        ),
        &[],
    )
    .await;
    let bob = d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let (key, password, _) = bob.create_key("etl nightly").await;
    let (other_key, other_password, _) = bob.create_key("power bi").await;
    let session = d
        .client()
        .login(&key, &password, None)
        .await
        .2
        .expect("key session");
    assert_eq!(key_status(&d, &key, &password).await, StatusCode::OK);

    // Bob pushed the password to a public repository; GitHub reports it.
    let report = Scanner::report(&[(&password, PASSWORD_TYPE)]);
    let a = scanner.send(&d.url, &report).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body,
        json!([{"token_hash": sha256(&password), "token_type": PASSWORD_TYPE, "label": "true_positive"}])
    );

    // The key and the session opened with it are gone; his other key still works.
    assert_eq!(
        key_status(&d, &key, &password).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        d.client().with_token(&session).me().await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        key_status(&d, &other_key, &other_password).await,
        StatusCode::OK
    );
    let listed = bob.get("/api/accesskeys").await.body;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1, "{listed}");

    // Bob is told which key, and where it was found.
    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    let m = &mails[0];
    assert_eq!(m.rcpt_tos, ["bob@example.org"]);
    assert!(m.subject.contains("etl nightly"), "{}", m.subject);
    for part in [&m.text, &m.html] {
        assert!(part.contains(&key), "{part}");
        assert!(
            part.contains("https://github.com/octo-org/etl/blob/4f1c2e/.env"),
            "{part}"
        );
        assert!(!part.contains(&password), "never the password: {part}");
    }

    // The audit trail names the key, the scanner and the place.
    let admin = d.admin().await;
    let audit = admin.get("/api/audit?action=access_key.leaked").await.body;
    assert_eq!(audit["totalResults"], 1, "{audit}");
    let event = &audit["events"][0];
    assert_eq!(event["actor"], "secret-scanning", "{event}");
    assert!(event.to_string().contains(&key), "{event}");
    assert!(
        event["detail"].as_str().unwrap().contains("octo-org/etl"),
        "{event}"
    );
    assert!(
        event["detail"].as_str().unwrap().contains("its password"),
        "{event}"
    );

    // GitHub sends the same report again: the key is already gone, nobody is mailed again.
    let again = scanner.send(&d.url, &report).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(labels(&again.body), ["false_positive"]);

    // The other key's id shows up in another commit: it goes too, and that is the one mail
    // that follows (the repeated report mailed nothing).
    let a = scanner
        .send(&d.url, &Scanner::report(&[(&other_key, KEY_ID_TYPE)]))
        .await;
    assert_eq!(labels(&a.body), ["true_positive"], "{}", a.body);
    assert_eq!(a.body[0]["token_hash"], sha256(&other_key));
    assert_eq!(
        key_status(&d, &other_key, &other_password).await,
        StatusCode::UNAUTHORIZED
    );
    let mails = smtp.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 2);
    assert!(
        mails[1].subject.contains("power bi"),
        "{}",
        mails[1].subject
    );
    let audit = admin.get("/api/audit?action=access_key.leaked").await.body;
    assert_eq!(audit["totalResults"], 2, "{audit}");
    let metrics = d.metrics().await;
    assert!(
        metrics.contains("accesskeyd_access_keys_leaked_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn unsigned_or_badly_signed_reports_change_nothing() {
    let (scanner, _dir, d) = daemon_with_keys_file().await;
    let admin = d.admin().await;
    let (key, password, _) = admin.create_key("deploy").await;
    let report = Scanner::report(&[(&password, PASSWORD_TYPE), (&key, KEY_ID_TYPE)]);

    // Someone else's key signed it, or the body was changed, or there is no signature, or
    // the key identifier is not the scanner's.
    let stranger = Scanner::new();
    let forged = stranger.sign(&report);
    let tampered = scanner.sign(&Scanner::report(&[("ghp_other", "github_token")]));
    for (signed, why) in [
        (
            Some((scanner.key_id.as_str(), forged.as_str())),
            "another key's signature",
        ),
        (
            Some((scanner.key_id.as_str(), tampered.as_str())),
            "a signature of another body",
        ),
        (
            Some((scanner.key_id.as_str(), "bm90IGEgc2lnbmF0dXJl")),
            "not a signature",
        ),
        (
            Some((stranger.key_id.as_str(), forged.as_str())),
            "an unknown key identifier",
        ),
        (None, "no signature"),
    ] {
        let a = send_raw(&d.url, &report, signed).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{why}: {}", a.body);
        let text = a.body["statusMessage"].as_str().unwrap_or_default();
        assert!(
            text.contains("signature could not be verified"),
            "{why}: {text}"
        );
        assert!(a.body["errorId"].is_string(), "{why}: {}", a.body);
    }
    assert_eq!(key_status(&d, &key, &password).await, StatusCode::OK);

    // Signed, but not ours: another vendor's token, a well-formed password of no key, a
    // near miss of the key id.
    let unknown_password = "akp_".to_string() + &"A".repeat(32);
    let last = if key.ends_with('A') { 'B' } else { 'A' };
    let near = format!("{}{last}", &key[..key.len() - 1]);
    let a = scanner
        .send(
            &d.url,
            &Scanner::report(&[
                ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "github_token"),
                (&unknown_password, PASSWORD_TYPE),
                (&near, KEY_ID_TYPE),
            ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        labels(&a.body),
        ["false_positive", "false_positive", "false_positive"]
    );
    assert_eq!(a.body[0]["token_type"], "github_token");
    assert_eq!(key_status(&d, &key, &password).await, StatusCode::OK);

    // Signed but not a list of tokens: 400. More than 1000 tokens (over the API's usual
    // 64 KiB body limit, under the report's 1 MiB): 413; over 1 MiB: 413.
    let a = scanner.send(&d.url, b"{\"token\": 1}").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    let many: Vec<(String, &str)> = (0..1001)
        .map(|i| (format!("ghp_{i:036}"), "github_token"))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(t, k)| (t.as_str(), *k)).collect();
    let body = Scanner::report(&many);
    assert!(body.len() > 64 * 1024 && body.len() < 1024 * 1024);
    let a = scanner.send(&d.url, &body).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
    let a = scanner.send(&d.url, &Scanner::report(&many[..1000])).await;
    assert_eq!(a.status, StatusCode::OK, "1000 tokens are fine");
    let huge = vec![b' '; 1024 * 1024 + 1];
    let a = scanner.send(&d.url, &huge).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(key_status(&d, &key, &password).await, StatusCode::OK);
}

#[tokio::test]
async fn keys_from_a_url_and_reports_without_a_pepper() {
    let scanner = Scanner::new();
    let server = scanner.serve().await;
    let hook = WebhookReceiver::start(HOOK_SECRET, 0).await;
    // No lookup pepper: passwords cannot be matched, key ids can.
    let d = Daemon::start_with(
        None,
        &config(
            &format!("public_keys_url = \"{}\"", server.url),
            false,
            None,
            Some(&hook),
        ),
        &[],
    )
    .await;
    let admin = d.admin().await;
    let (key, password, _) = admin.create_key("deploy").await;

    let a = scanner
        .send(&d.url, &Scanner::report(&[(&password, PASSWORD_TYPE)]))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(labels(&a.body), ["false_positive"]);
    assert_eq!(key_status(&d, &key, &password).await, StatusCode::OK);

    let a = scanner
        .send(&d.url, &Scanner::report(&[(&key, KEY_ID_TYPE)]))
        .await;
    assert_eq!(labels(&a.body), ["true_positive"], "{}", a.body);
    assert_eq!(
        key_status(&d, &key, &password).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.fetches(), 1, "the keys are fetched once and kept");

    // The webhook hears of it, signed, with its own type and kind.
    let delivery = &hook.wait_for(1, Duration::from_secs(10)).await[0];
    assert!(delivery.signature_valid);
    let payload = delivery.json();
    assert_eq!(payload["type"], "access_keys.leaked", "{payload}");
    assert_eq!(payload["notice"]["kind"], "leaked_key");
    assert_eq!(payload["notice"]["key"]["keyId"], json!(key));
    assert_eq!(payload["notice"]["username"], "root");
    assert_eq!(payload["notice"]["source"], "content");

    // A report signed with a key the document does not hold makes it fetch again (the
    // scanner may have rotated), once: the next such report within 30 s does not.
    let stranger = Scanner::new();
    let body = Scanner::report(&[("x", "y")]);
    for _ in 0..2 {
        let a = send_raw(
            &d.url,
            &body,
            Some((&stranger.key_id, &stranger.sign(&body))),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn without_the_section_the_endpoint_is_not_there() {
    let d = Daemon::start(None).await;
    let scanner = Scanner::new();
    let a = scanner.send(&d.url, &Scanner::report(&[("x", "y")])).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
}

#[tokio::test]
async fn a_rotated_keys_old_password_reported_during_the_overlap_deletes_the_key() {
    let (scanner, _dir, d) = daemon_with_keys_file().await;
    let admin = d.admin().await;
    let (key, old, _) = admin.create_key("etl nightly").await;
    let rotated = admin
        .post(&format!("/api/accesskeys/{key}/rotate"), json!({}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new = rotated.body["password"].as_str().unwrap().to_string();
    assert_eq!(key_status(&d, &key, &old).await, StatusCode::OK, "overlap");

    // The old password, still working for the overlap, turns up in public.
    let report = Scanner::report(&[(&old, PASSWORD_TYPE)]);
    let a = scanner.send(&d.url, &report).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(labels(&a.body), ["true_positive"]);
    assert_eq!(key_status(&d, &key, &old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        key_status(&d, &key, &new).await,
        StatusCode::UNAUTHORIZED,
        "the whole key goes: whoever holds the old password may have seen the new"
    );
}
