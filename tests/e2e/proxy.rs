//! Windows sign-in through a trusted reverse proxy that did the Negotiate handshake: the
//! user header counts only with the proxy's secret, and as a name the directory knows (the
//! proxy's address rule and the message without any configuration are in the fast tier,
//! tests/api/windows.rs).

use crate::harness::daemon::{Daemon, LDAP_DIR};
use crate::harness::slapd::Slapd;
use reqwest::StatusCode;
use serde_json::Value;

const SECRET: &str = "proxy-shared-secret-0123456789";

fn proxy(trusted: &str) -> String {
    format!(
        "\n[proxy_auth]\ndirectory = \"{LDAP_DIR}\"\nsecret = \"{SECRET}\"\ntrusted_addresses = [\"{trusted}\"]\n"
    )
}

async fn windows(d: &Daemon, headers: &[(&str, &str)]) -> (StatusCode, Value, Option<String>) {
    let mut req = reqwest::Client::new().get(format!("{}/api/auth/windows", d.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let token = r
        .headers()
        .get("x-sq-auth")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, r.json().await.unwrap_or(Value::Null), token)
}

#[tokio::test]
async fn the_proxy_vouches_for_a_user_and_nobody_else_can() {
    let slapd = Slapd::start().await;
    let d = Daemon::start_with(Some(&slapd), &proxy("127.0.0.1"), &[]).await;

    let (s, body, token) = windows(
        &d,
        &[
            ("X-Remote-User", "bob@EXAMPLE.ORG"),
            ("X-Proxy-Secret", SECRET),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "bob");
    assert!(body["lastLoginAt"].is_string());
    let bob = d.client().with_token(&token.unwrap());
    let me = bob.me().await.body;
    // The same record a password login through the directory gives.
    let (_, pw_login, _) = d.client().login("bob", "bob-pw", Some(LDAP_DIR)).await;
    assert_eq!(me["id"], pw_login["id"]);

    // A lapsed key revives with a proxy sign-in.
    let (key, pw, _) = bob.create_key("etl").await;
    let id = me["id"].as_str().unwrap().to_string();
    d.set_last_login(&id, d.app.clock.now() - chrono::Duration::days(20))
        .await;
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );
    let (s, _, _) = windows(
        &d,
        &[
            ("X-Remote-User", "EXAMPLE\\bob"),
            ("X-Proxy-Secret", SECRET),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::OK
    );

    // Without the secret, or with a wrong one, the header means nothing.
    for headers in [
        vec![("X-Remote-User", "bob")],
        vec![
            ("X-Remote-User", "bob"),
            ("X-Proxy-Secret", "proxy-shared-secret-012345678X"),
        ],
    ] {
        let (s, body, token) = windows(&d, &headers).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
        assert!(token.is_none());
        assert!(body["statusMessage"]
            .as_str()
            .unwrap()
            .contains("[proxy_auth]"));
    }
    // A name the directory does not know.
    let (s, _, token) = windows(
        &d,
        &[("X-Remote-User", "mallory"), ("X-Proxy-Secret", SECRET)],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(token.is_none());
}

#[tokio::test]
async fn an_allow_list_of_realms_lets_only_those_realms_sign_in_through_the_proxy() {
    let slapd = Slapd::start().await;
    let only_example = format!("{}allowed_realms = [\"example.org\"]\n", proxy("127.0.0.1"));
    let d = Daemon::start_with(Some(&slapd), &only_example, &[]).await;
    let sign_in = |name: &'static str| {
        let d = &d;
        async move { windows(d, &[("X-Remote-User", name), ("X-Proxy-Secret", SECRET)]).await }
    };

    let (s, body, token) = sign_in("bob@EXAMPLE.ORG").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(token.is_some());

    // Another realm's bob is somebody else: refused, and the answer says why.
    for (name, needle) in [
        ("bob@PARTNER.ORG", "realm `PARTNER.ORG`"),
        // A NetBIOS domain is not the realm, and is not guessed from it.
        ("EXAMPLE\\bob", "NetBIOS"),
        ("bob", "no realm"),
    ] {
        let (s, body, token) = sign_in(name).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{name}: {body}");
        assert!(token.is_none(), "{name}");
        let message = body["statusMessage"].as_str().unwrap();
        assert!(
            message.contains(needle) && message.contains("allowed_realms"),
            "{name}: {message}"
        );
    }

    // Listing the domain too lets DOMAIN\user names in.
    let with_domain = format!(
        "{}allowed_realms = [\"EXAMPLE.ORG\", \"EXAMPLE\"]\n",
        proxy("127.0.0.1")
    );
    let d = d.sibling(Some(&slapd), &with_domain, &[]).await;
    let (s, body, _) = windows(
        &d,
        &[
            ("X-Remote-User", "EXAMPLE\\bob"),
            ("X-Proxy-Secret", SECRET),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "bob");
}
