//! Windows sign-in with Kerberos in the daemon itself: a real MIT KDC issues the tickets,
//! `curl --negotiate` does what a browser on a domain-joined PC does, slapd holds the users.

use crate::harness::daemon::{Daemon, LDAP_DIR};
use crate::harness::kdc::Kdc;
use crate::harness::slapd::Slapd;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;

const REALM: &str = "EXAMPLE.ORG";

fn windows_toml(
    keytab: &Path,
    service: Option<&str>,
    realm: &str,
    match_attribute: Option<&str>,
) -> String {
    let mut s = format!("\n[windows]\nkeytab = \"{}\"\n", keytab.display());
    if let Some(sp) = service {
        s.push_str(&format!("service_principal = \"{sp}\"\n"));
    }
    s.push_str(&format!(
        "\n[[windows.realms]]\nrealm = \"{realm}\"\ndirectory = \"{LDAP_DIR}\"\n"
    ));
    if let Some(a) = match_attribute {
        s.push_str(&format!("match_attribute = \"{a}\"\n"));
    }
    s
}

/// What `curl --negotiate -u :` got from `/api/auth/windows` with the user's ticket cache.
struct CurlAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
    /// The `Authorization: Negotiate ...` value curl sent (from its trace).
    sent_token: Option<String>,
}

impl CurlAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn curl_negotiate(d: &Daemon, kdc: &Kdc, cache: &Path) -> CurlAnswer {
    curl_negotiate_at(d, kdc, cache, "/api/auth/windows").await
}

async fn curl_negotiate_at(d: &Daemon, kdc: &Kdc, cache: &Path, path: &str) -> CurlAnswer {
    // The service principal is derived from the host name in the URL: HTTP/localhost.
    let port = d.url.rsplit(':').next().unwrap().to_string();
    let url = format!("http://localhost:{port}{path}");
    let krb5_config = kdc.krb5_config();
    let ccache = format!("FILE:{}", cache.display());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "-v", "-4", "--negotiate", "-u", ":", "-D", "-", &url])
            .env("KRB5_CONFIG", krb5_config)
            .env("KRB5CCNAME", ccache)
            .output()
            .expect("run curl")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "curl failed: {stderr}");
    // With -D - the last response's headers come first, then the body.
    let (head, body) = stdout
        .rsplit_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no headers in curl output: {stdout}"));
    let last_head = head.rsplit("HTTP/1.1").next().unwrap();
    let mut lines = last_head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {stdout}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let sent_token = stderr
        .lines()
        .find_map(|l| l.strip_prefix("> Authorization: Negotiate "))
        .map(|t| t.trim().to_string());
    CurlAnswer {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
        sent_token,
    }
}

async fn windows_with(
    d: &Daemon,
    authorization: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = reqwest::Client::new().get(format!("{}/api/auth/windows", d.url));
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, r.json().await.unwrap_or(Value::Null), challenge)
}

/// A realm with bob (same name as in slapd) and the service's key in a keytab.
async fn realm_with_bob() -> (Kdc, std::path::PathBuf) {
    let kdc = Kdc::start(REALM).await;
    kdc.add_user("bob", "bob-kerberos-pw").await;
    let keytab = kdc.add_service("HTTP/localhost").await;
    (kdc, keytab)
}

#[tokio::test]
async fn a_windows_user_signs_in_with_a_kerberos_ticket_and_their_keys_revive() {
    let slapd = Slapd::start().await;
    let (kdc, keytab) = realm_with_bob().await;
    let toml = windows_toml(&keytab, Some("HTTP/localhost"), REALM, None);
    let d = Daemon::start_with(Some(&slapd), &toml, &[]).await;

    // A browser first asks without credentials and is told to negotiate.
    let (s, body, challenge) = windows_with(&d, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(challenge.as_deref(), Some("Negotiate"));

    // Bob has a key from an earlier password login, unused for 20 days: it has lapsed.
    let (_, pw_login, token) = d.client().login("bob", "bob-pw", Some(LDAP_DIR)).await;
    let bob_id = pw_login["id"].as_str().unwrap().to_string();
    let (key, pw, _) = d
        .client()
        .with_token(token.as_deref().unwrap())
        .create_key("etl")
        .await;
    d.set_last_login(&bob_id, d.app.clock.now() - chrono::Duration::days(20))
        .await;
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );

    let cache = kdc.kinit("bob", "bob-kerberos-pw").await;
    let before = d.app.clock.now();
    let a = curl_negotiate(&d, &kdc, &cache).await;
    assert_eq!(
        a.status,
        200,
        "{:?} {}\nKDC:\n{}",
        a.headers,
        a.body,
        kdc.log_tail()
    );
    // The same user record (stable id) a password login through the directory gives.
    assert_eq!(a.body["id"], bob_id.as_str());
    assert_eq!(a.body["username"], "bob");
    let last_login =
        chrono::DateTime::parse_from_rfc3339(a.body["lastLoginAt"].as_str().unwrap()).unwrap();
    assert!(
        last_login >= before - chrono::Duration::seconds(1),
        "{last_login}"
    );
    // Mutual authentication: the service proves itself to the client.
    let mutual = a.header("WWW-Authenticate").expect("mutual token");
    let token_b64 = mutual.strip_prefix("Negotiate ").expect("Negotiate token");
    assert!(!base64::engine::general_purpose::STANDARD
        .decode(token_b64)
        .unwrap()
        .is_empty());
    assert!(a.header("Set-Cookie").unwrap().contains("HttpOnly"));
    let session = a.header("x-sq-auth").expect("session token").to_string();
    assert_eq!(
        d.client().with_token(&session).me().await.body["id"],
        bob_id.as_str()
    );

    // The key works again, as after any interactive login.
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::OK
    );

    // The same from the sign-in page's "Sign in with Windows": on to the key list.
    let cache = kdc.kinit("bob", "bob-kerberos-pw").await;
    let page = curl_negotiate_at(&d, &kdc, &cache, "/ui/login/windows").await;
    assert_eq!(page.status, 303, "{:?}", page.headers);
    assert_eq!(page.header("Location"), Some("/ui/keys"));
    assert!(page
        .header("Set-Cookie")
        .unwrap()
        .starts_with("accesskeyd_session=aks_"));

    // The captured ticket cannot be replayed by someone who saw the request.
    let replayed = a.sent_token.expect("curl trace shows the token");
    let (s, body, _) = windows_with(&d, Some(&format!("Negotiate {replayed}"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "replay accepted: {body}");
    let message = body["statusMessage"].as_str().unwrap().to_lowercase();
    assert!(message.contains("replay"), "{message}");
}

#[tokio::test]
async fn tickets_that_do_not_verify_here_are_refused() {
    let slapd = Slapd::start().await;
    let (kdc, _) = realm_with_bob().await;
    // The daemon holds the key of another service: a ticket for HTTP/localhost is not ours.
    let other = kdc.add_service("HTTP/elsewhere.example.org").await;
    let d = Daemon::start_with(Some(&slapd), &windows_toml(&other, None, REALM, None), &[]).await;
    let cache = kdc.kinit("bob", "bob-kerberos-pw").await;
    let a = curl_negotiate(&d, &kdc, &cache).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.header("WWW-Authenticate"), Some("Negotiate"));
    assert!(
        a.body["statusMessage"]
            .as_str()
            .unwrap()
            .contains("not accepted"),
        "{}",
        a.body
    );

    // Garbage and NTLM are answered, not crashed on; the service still works afterwards.
    let (s, body, _) = windows_with(&d, Some("Negotiate YWJjZGVmZ2hpamtsbW5vcA==")).await;
    assert!(
        s == StatusCode::BAD_REQUEST || s == StatusCode::UNAUTHORIZED,
        "{s} {body}"
    );
    let (s, body, _) = windows_with(&d, Some("Negotiate not base64 at all")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let ntlm = base64::engine::general_purpose::STANDARD
        .encode(b"NTLMSSP\0\x01\0\0\0\x07\x82\x08\xa2\0\0\0\0");
    for header in [format!("Negotiate {ntlm}"), format!("NTLM {ntlm}")] {
        let (s, body, challenge) = windows_with(&d, Some(&header)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
        assert!(
            body["statusMessage"].as_str().unwrap().contains("NTLM"),
            "{body}"
        );
        assert_eq!(challenge.as_deref(), Some("Negotiate"));
    }
    assert_eq!(d.client().get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_realm_without_a_directory_is_forbidden_and_principals_can_match_an_attribute() {
    let slapd = Slapd::start().await;
    let (kdc, keytab) = realm_with_bob().await;
    let cache = kdc.kinit("bob", "bob-kerberos-pw").await;

    // Only another realm is mapped: bob@EXAMPLE.ORG has a valid ticket but no directory.
    let d = Daemon::start_with(
        Some(&slapd),
        &windows_toml(&keytab, None, "CORP.TEST", None),
        &[],
    )
    .await;
    let a = curl_negotiate(&d, &kdc, &cache).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.body["statusMessage"].as_str().unwrap().contains(REALM),
        "{}",
        a.body
    );
    drop(d);

    // Matched by the whole principal in an attribute (`userPrincipalName` on AD; `mail` in
    // this directory): bob was renamed to robert upstream, his principal still finds him.
    slapd.rename_user("bob", "robert").await;
    let toml = windows_toml(&keytab, Some("HTTP/localhost"), REALM, Some("mail"));
    let d = Daemon::start_with(Some(&slapd), &toml, &[]).await;
    let cache = kdc.kinit("bob", "bob-kerberos-pw").await;
    let a = curl_negotiate(&d, &kdc, &cache).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["username"], "robert");

    // Someone with a valid ticket who is not in the directory: forbidden, not created.
    kdc.add_user("mallory", "mallory-pw").await;
    let cache = kdc.kinit("mallory", "mallory-pw").await;
    let a = curl_negotiate(&d, &kdc, &cache).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.body["statusMessage"]
            .as_str()
            .unwrap()
            .contains("not a user of directory"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn a_keytab_without_the_service_principal_stops_the_start() {
    let (kdc, keytab) = realm_with_bob().await;
    let mut config = accesskeyd::config::Config::default();
    config.windows = Some(accesskeyd::config::WindowsConfig {
        keytab: keytab.clone(),
        service_principal: Some("HTTP/not-in-the-keytab.example.org".into()),
        realms: vec![],
    });
    let err = accesskeyd::kerberos::Acceptor::new(config.windows.as_ref().unwrap()).unwrap_err();
    assert!(err.contains("not-in-the-keytab"), "{err}");
    let missing = accesskeyd::config::WindowsConfig {
        keytab: kdc.krb5_config().with_file_name("missing.keytab"),
        service_principal: None,
        realms: vec![],
    };
    let err = accesskeyd::kerberos::Acceptor::new(&missing).unwrap_err();
    assert!(err.contains("missing.keytab"), "{err}");
}
