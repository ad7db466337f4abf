//! OpenID Connect logins against a real provider (the npm package oidc-provider): the browser
//! flow with PKCE, the API-client flow, keys revived by an OIDC login, admin from groups,
//! key rotation, and the failures that must give no session.

use crate::harness::daemon::{assert_error, Client, Daemon};
use crate::harness::oidc::{Account, OidcProvider};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The base URL the daemon believes it has; the provider registers redirect URIs under it.
const PUBLIC: &str = "http://accesskeyd.test";

const ANN: Account = Account {
    sub: "sub-ann",
    username: "ann",
    email: "ann@example.org",
    groups: &["staff", "akd-admins"],
};
const BEN: Account = Account {
    sub: "sub-ben",
    username: "ben",
    email: "ben@example.org",
    groups: &["staff"],
};
const GUEST: Account = Account {
    sub: "sub-guest",
    username: "guest",
    email: "guest@example.org",
    groups: &["guests"],
};

fn redirect_uri(dir: &str) -> String {
    format!("{PUBLIC}/api/auth/oidc/{dir}/callback")
}

fn directory(id: &str, p: &OidcProvider) -> String {
    format!(
        r#"
[[directories]]
id = "{id}"
kind = "oidc"
name = "IdP {id}"
issuer = "{}"
client_id = "accesskeyd-{id}"
client_secret = "secret-{id}"
scopes = ["openid", "profile", "email", "groups"]
groups_claim = "groups"
admin_group = "akd-admins"
allowed_groups = ["staff"]
"#,
        p.issuer()
    )
}

async fn provider(id: &str) -> OidcProvider {
    let client = format!("accesskeyd-{id}");
    let secret = format!("secret-{id}");
    OidcProvider::start(&[(&client, &secret, &redirect_uri(id))], &[ANN, BEN, GUEST]).await
}

async fn daemon(dirs: &[(&str, &OidcProvider)]) -> Daemon {
    let mut extra = format!("\n[server]\npublic_url = \"{PUBLIC}\"\n");
    for (id, p) in dirs {
        extra.push_str(&directory(id, p));
    }
    Daemon::start_with(None, &extra, &[]).await
}

/// A browser, or an API client that keeps cookies: its own cookie jar, redirects not
/// followed (the test plays the provider's part of them).
pub(crate) struct Browser {
    pub http: reqwest::Client,
}

impl Browser {
    pub(crate) fn new() -> Browser {
        Self::build(reqwest::Client::builder())
    }

    /// A browser on another machine: its requests come from `addr` (a loopback address).
    pub(crate) fn at(addr: &str) -> Browser {
        Self::build(reqwest::Client::builder().local_address(Some(addr.parse().unwrap())))
    }

    fn build(builder: reqwest::ClientBuilder) -> Browser {
        Browser {
            http: builder
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// GET start, as a sign-in link does.
    pub(crate) async fn open_start(&self, d: &Daemon, dir: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/api/auth/oidc/{dir}/start", d.url))
            .send()
            .await
            .unwrap()
    }

    /// GET start; the provider URL it redirects to.
    pub(crate) async fn start(&self, d: &Daemon, dir: &str) -> String {
        let r = self.open_start(d, dir).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        r.headers()["location"].to_str().unwrap().to_string()
    }

    /// The provider sent the browser to our callback: the same request against the real
    /// daemon.
    pub(crate) async fn callback(&self, d: &Daemon, callback_url: &str) -> reqwest::Response {
        let u = url::Url::parse(callback_url).unwrap();
        assert!(callback_url.starts_with(PUBLIC), "{callback_url}");
        self.http
            .get(format!(
                "{}{}?{}",
                d.url,
                u.path(),
                u.query().unwrap_or_default()
            ))
            .send()
            .await
            .unwrap()
    }

    /// An API client completing the flow: POST /api/auth/login with the code and state it
    /// caught from the provider's redirect.
    pub(crate) async fn post_code(
        &self,
        d: &Daemon,
        dir: &str,
        callback_url: &str,
    ) -> (StatusCode, Value, Option<String>) {
        Client {
            http: self.http.clone(),
            ..d.client()
        }
        .post_login_code(
            dir,
            &query(callback_url, "code"),
            &query(callback_url, "state"),
        )
        .await
    }
}

fn query(url: &str, key: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

/// A whole sign-in in a fresh browser: start, the provider, the callback.
pub(crate) async fn browser_login(
    d: &Daemon,
    p: &OidcProvider,
    dir: &str,
    who: Account,
) -> (reqwest::Response, String) {
    let browser = Browser::new();
    let auth = browser.start(d, dir).await;
    let back = p.authorize(&auth, who.sub).await;
    (browser.callback(d, &back).await, back)
}

#[tokio::test]
async fn a_browser_login_creates_the_user_sets_a_cookie_and_keeps_keys_alive() {
    let p = provider("idp").await;
    let d = daemon(&[("idp", &p)]).await;

    let providers = d.client().get("/api/auth/providers").await;
    let list = providers.body["authProviders"].as_array().unwrap();
    assert!(list
        .iter()
        .any(|x| x["datasourceId"] == "idp" && x["datasourceClass"] == "OpenIDConnect"));

    let browser = Browser::new();
    let auth = browser.start(&d, "idp").await;
    assert!(auth.starts_with(&p.issuer()), "{auth}");
    assert_eq!(query(&auth, "code_challenge_method"), "S256");
    assert!(!query(&auth, "code_challenge").is_empty() && !query(&auth, "nonce").is_empty());
    assert_eq!(query(&auth, "redirect_uri"), redirect_uri("idp"));

    let back = p.authorize(&auth, ANN.sub).await;
    let r = browser.callback(&d, &back).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("accesskeyd_session=aks_"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let token = r.headers()["x-sq-auth"].to_str().unwrap().to_string();
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["username"], "ann");
    assert_eq!(user["email"], "ann@example.org");
    assert_eq!(user["isAdmin"], true, "admin from the groups claim");
    assert_eq!(user["datasourceId"], "idp");
    assert!(user["lastLoginAt"].is_string());

    // The cookie reads, but never changes anything (no CSRF through it).
    let jar = cookie.split(';').next().unwrap().to_string();
    let http = reqwest::Client::new();
    let me = http
        .get(format!("{}/api/users/me", d.url))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let post = http
        .post(format!("{}/api/accesskeys", d.url))
        .header("cookie", &jar)
        .json(&json!({"name": "via cookie"}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::FORBIDDEN);

    // A key made in the OIDC session; it lapses, and the next OIDC login revives it.
    let ann = d.client().with_token(&token);
    let (key, pw, _) = ann.create_key("notebook").await;
    let id = user["id"].as_str().unwrap().to_string();
    d.set_last_login(&id, d.app.clock.now() - chrono::Duration::days(20))
        .await;
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::UNAUTHORIZED
    );
    let (r, _) = browser_login(&d, &p, "idp", ANN).await;
    assert_eq!(r.status(), StatusCode::OK);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["id"], id.as_str(), "keyed by issuer + sub");
    assert_eq!(
        d.client().with_basic(&key, &pw).me().await.status,
        StatusCode::OK
    );

    // Ben is staff but no admin; a guest is in none of the allowed groups.
    let (r, _) = browser_login(&d, &p, "idp", BEN).await;
    assert_eq!(r.json::<Value>().await.unwrap()["isAdmin"], false);
    let (r, _) = browser_login(&d, &p, "idp", GUEST).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["statusMessage"]
            .as_str()
            .unwrap()
            .contains("allowed groups"),
        "{body}"
    );
}

#[tokio::test]
async fn api_clients_complete_the_flow_with_code_and_state() {
    let p = provider("idp").await;
    let d = daemon(&[("idp", &p)]).await;
    // The client keeps cookies, as HTTP client libraries can: the start's binding cookie
    // goes back with the code and state.
    let client = Browser::new();
    let auth = client.start(&d, "idp").await;
    let back = p.authorize(&auth, BEN.sub).await;
    let (status, body, token) = client.post_code(&d, "idp", &back).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "ben");
    let me = d.client().with_token(&token.unwrap()).me().await;
    assert_eq!(me.body["username"], "ben");
    // A password login cannot go through an OIDC directory.
    let (status, body, _) = d.client().login("ben", "x", Some("idp")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn bad_state_replays_expiry_and_a_dead_provider_give_no_session() {
    let mut p = provider("idp").await;
    let d = daemon(&[("idp", &p)]).await;

    // An unknown state.
    let browser = Browser::new();
    let auth = browser.start(&d, "idp").await;
    let back = p.authorize(&auth, BEN.sub).await;
    let forged = back.replace(&query(&back, "state"), "forged-state");
    let r = browser.callback(&d, &forged).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());

    // The real callback works once; replayed, it is refused.
    assert_eq!(browser.callback(&d, &back).await.status(), StatusCode::OK);
    let r = browser.callback(&d, &back).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["statusMessage"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );

    // A used code with a fresh state of ours: the provider refuses it.
    let fresh = browser.start(&d, "idp").await;
    let mixed = format!(
        "{PUBLIC}/api/auth/oidc/idp/callback?code={}&state={}",
        query(&back, "code"),
        query(&fresh, "state")
    );
    let a = browser.post_code(&d, "idp", &mixed).await;
    assert_eq!(a.0, StatusCode::UNAUTHORIZED, "{}", a.1);
    assert!(
        a.1["statusMessage"]
            .as_str()
            .unwrap()
            .contains("the provider refused the code"),
        "{}",
        a.1
    );

    // Too slow: the state expired.
    let auth = browser.start(&d, "idp").await;
    let back = p.authorize(&auth, BEN.sub).await;
    d.advance(chrono::Duration::minutes(11));
    let r = browser.callback(&d, &back).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["statusMessage"].as_str().unwrap().contains("too long"),
        "{body}"
    );

    // The provider says no.
    let r = browser
        .callback(
            &d,
            &format!("{PUBLIC}/api/auth/oidc/idp/callback?error=access_denied&state=x"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The provider goes down between the person's login there and the callback: 503, not
    // 401, and no session.
    let auth = browser.start(&d, "idp").await;
    let back = p.authorize(&auth, BEN.sub).await;
    p.stop();
    let r = browser.callback(&d, &back).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().get("set-cookie").is_none());
    // A daemon that never reached the provider cannot even start a login: 503.
    let cold = daemon(&[("idp", &p)]).await;
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/api/auth/oidc/idp/start", cold.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);

    let a = d.client().get("/api/auth/oidc/nope/start").await;
    assert_error(&a, StatusCode::NOT_FOUND, "no directory");
    let a = d.client().get("/api/auth/oidc/builtin/start").await;
    assert_error(
        &a,
        StatusCode::BAD_REQUEST,
        "not an OpenID Connect directory",
    );
}

#[tokio::test]
async fn bad_id_tokens_are_refused_and_missing_claims_come_from_userinfo() {
    let p = provider("idp").await;
    let d = daemon(&[("idp", &p)]).await;
    for (mode, why) in [
        ("tampered", "not valid"),
        ("wrong-audience", "not valid"),
        ("expired", "not valid"),
    ] {
        p.set_token_mode(mode).await;
        let (r, _) = browser_login(&d, &p, "idp", BEN).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{mode}");
        assert!(r.headers().get("set-cookie").is_none(), "{mode}");
        assert!(r.headers().get("x-sq-auth").is_none(), "{mode}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["statusMessage"].as_str().unwrap().contains(why),
            "{mode}: {body}"
        );
    }
    // An ID token without the profile claims: they are read from userinfo.
    p.set_token_mode("lean").await;
    let (r, _) = browser_login(&d, &p, "idp", ANN).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ann: Value = r.json().await.unwrap();
    assert_eq!(ann["username"], "ann", "username from userinfo");
    assert_eq!(ann["email"], "ann@example.org");
    assert_eq!(ann["isAdmin"], true, "groups from userinfo");
    // Nobody else was created by the refused logins; a normal one then works.
    let admin = d.admin().await;
    assert_eq!(
        admin.get("/api/users").await.body["totalResults"],
        2,
        "root and ann"
    );
    p.set_token_mode("normal").await;
    let (r, _) = browser_login(&d, &p, "idp", BEN).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn key_rotation_at_the_provider_and_two_providers_at_once() {
    let p1 = provider("one").await;
    let p2 = provider("two").await;
    let d = daemon(&[("one", &p1), ("two", &p2)]).await;

    let (r, _) = browser_login(&d, &p1, "one", ANN).await;
    let first: Value = r.json().await.unwrap();
    // The provider rotates its signing key and retires the old one: tokens signed with the
    // new key are accepted after the keys are fetched again.
    p1.rotate_keys_retiring_old().await;
    let (r, _) = browser_login(&d, &p1, "one", ANN).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], first["id"]);

    // The same sub and name at another provider is another person.
    let (r, _) = browser_login(&d, &p2, "two", ANN).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["datasourceId"], "two");
    // A state of one provider's login cannot finish at the other's callback.
    let browser = Browser::new();
    let auth = browser.start(&d, "one").await;
    let back = p1.authorize(&auth, BEN.sub).await;
    let wrong = back.replace("/api/auth/oidc/one/", "/api/auth/oidc/two/");
    let r = browser.callback(&d, &wrong).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["statusMessage"]
            .as_str()
            .unwrap()
            .contains("another directory"),
        "{body}"
    );
}

impl Client {
    /// POST /api/auth/login with authProviderId, code and state.
    pub async fn post_login_code(
        &self,
        dir: &str,
        code: &str,
        state: &str,
    ) -> (StatusCode, Value, Option<String>) {
        let a = self
            .post(
                "/api/auth/login",
                json!({"authProviderId": dir, "code": code, "state": state}),
            )
            .await;
        let token = a
            .headers
            .get("x-sq-auth")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (a.status, a.body, token)
    }
}

#[tokio::test]
async fn the_sign_in_page_button_comes_back_to_the_key_list() {
    let p = provider("idp").await;
    let d = daemon(&[("idp", &p)]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/ui/login", d.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("href=\"/ui/login/oidc/idp\""), "{page}");
    assert!(page.contains("Sign in with IdP idp"));

    let r = http
        .get(format!("{}/ui/login/oidc/idp", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        set.iter().any(|c| c.starts_with("accesskeyd_ui_return=1;")
            && c.split("; ").any(|a| a == "Path=/api/auth/oidc")),
        "{set:?}"
    );
    // The button binds the sign-in to this browser, as the API's start does.
    let binding = set
        .iter()
        .find(|c| c.starts_with("accesskeyd_oidc_binding="))
        .expect("binding cookie");
    let binding = binding.split(';').next().unwrap().to_string();
    let auth = r.headers()["location"].to_str().unwrap().to_string();
    let back = p.authorize(&auth, BEN.sub).await;
    let u = url::Url::parse(&back).unwrap();
    let callback = format!("{}{}?{}", d.url, u.path(), u.query().unwrap());
    let r = http
        .get(&callback)
        .header("cookie", format!("accesskeyd_ui_return=1; {binding}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/ui/keys");
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("accesskeyd_session=aks_"))
        .expect("session cookie");
    assert!(cookies
        .iter()
        .any(|c| c.starts_with("accesskeyd_ui_return=;") && c.contains("Max-Age=0")));
    let jar = session.split(';').next().unwrap();
    let keys = http
        .get(format!("{}/ui/keys", d.url))
        .header("cookie", jar)
        .send()
        .await
        .unwrap();
    assert_eq!(keys.status(), StatusCode::OK);
    assert!(keys.text().await.unwrap().contains("My access keys"));

    // A refusal at the provider comes back as a page, not JSON.
    let r = http
        .get(format!(
            "{}/api/auth/oidc/idp/callback?error=access_denied",
            d.url
        ))
        .header("cookie", "accesskeyd_ui_return=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(r.text().await.unwrap().contains("access_denied"));
}

const TOM: Account = Account {
    sub: "sub-tom",
    username: "tom",
    email: "tom@example.org",
    groups: &["staff"],
};
const MALLORY: Account = Account {
    sub: "sub-mallory",
    username: "mallory",
    email: "mallory@example.org",
    groups: &["staff"],
};
/// A newcomer whose provider username is `tom` from the start.
const EVE: Account = Account {
    sub: "sub-eve",
    username: "tom",
    email: "eve@example.org",
    groups: &["staff"],
};

#[tokio::test]
async fn a_username_someone_picks_at_the_provider_never_takes_over_another_persons_record() {
    let p = OidcProvider::start(
        &[("accesskeyd-idp", "secret-idp", &redirect_uri("idp"))],
        &[TOM, MALLORY, EVE],
    )
    .await;
    let d = daemon(&[("idp", &p)]).await;

    // Tom signs in and makes a key for his scripts; the apps behind forward authentication
    // see him as `tom`.
    let (r, _) = browser_login(&d, &p, "idp", TOM).await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.headers()["x-sq-auth"].to_str().unwrap().to_string();
    let tom: Value = r.json().await.unwrap();
    let (key, pw, _) = d.client().with_token(&token).create_key("nightly").await;
    let tom_key = d.client().with_basic(&key, &pw);
    let seen = tom_key.get("/api/auth/verify").await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.headers["x-auth-user"], "tom");

    // Mallory signs in under her own name, then sets her username to `tom` at the provider
    // and signs in again: refused, and no session.
    let (r, _) = browser_login(&d, &p, "idp", MALLORY).await;
    assert_eq!(r.status(), StatusCode::OK);
    let mallory: Value = r.json().await.unwrap();
    p.set_username(MALLORY.sub, "tom").await;
    let (r, _) = browser_login(&d, &p, "idp", MALLORY).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.headers().get("x-sq-auth").is_none());
    let body: Value = r.json().await.unwrap();
    let message = body["statusMessage"].as_str().unwrap();
    assert!(
        message.contains("`tom`") && message.contains("belongs to another account"),
        "{body}"
    );

    // A newcomer whose username is `tom` from the start fares no better.
    let (r, _) = browser_login(&d, &p, "idp", EVE).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // Nothing changed for Tom: his key works and the apps still see him.
    let seen = tom_key.get("/api/auth/verify").await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.headers["x-auth-user"], "tom");
    assert_eq!(seen.headers["x-auth-user-id"], tom["id"].as_str().unwrap());
    let admin = d.admin().await;
    let id = tom["id"].as_str().unwrap();
    let record = admin.get(&format!("/api/users/{id}")).await;
    assert_eq!(record.body["username"], "tom");
    assert_eq!(record.body["isEnabled"], true);
    let mid = mallory["id"].as_str().unwrap();
    let record = admin.get(&format!("/api/users/{mid}")).await;
    assert_eq!(
        record.body["username"], "mallory",
        "her record is not renamed"
    );
    assert_eq!(
        admin.get("/api/users").await.body["totalResults"],
        3,
        "root, tom and mallory; nobody for eve"
    );

    // The admin finds both attempts in the audit trail, naming both identities...
    let audit = admin.get("/api/audit?action=login.name_conflict").await;
    assert_eq!(audit.body["totalResults"], 2, "{}", audit.body);
    let events = audit.body["events"].as_array().unwrap();
    for (event, who) in events.iter().zip(["sub-eve", "sub-mallory"]) {
        assert_eq!(event["outcome"], "failure");
        assert_eq!(event["target"], "tom");
        let detail = event["detail"].as_str().unwrap();
        assert!(
            detail.contains(who) && detail.contains("sub-tom"),
            "{detail}"
        );
    }
    // ...and in the Admin Panel's audit tab.
    let page = reqwest::Client::new()
        .get(format!(
            "{}/ui/admin/audit?action=login.name_conflict",
            d.url
        ))
        .header("cookie", format!("accesskeyd_session={}", admin.token()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("2 event(s)"), "{html}");
    assert!(
        html.contains("login.name_conflict") && html.contains("sub-mallory"),
        "{html}"
    );

    // Tom keeps signing in to his own record.
    let (r, _) = browser_login(&d, &p, "idp", TOM).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], tom["id"]);
}

#[tokio::test]
async fn a_sign_in_finishes_only_in_the_browser_that_started_it() {
    let p = provider("idp").await;
    let d = daemon(&[("idp", &p)]).await;

    // The start binds the sign-in to the browser with a short-lived cookie.
    let mine = Browser::new();
    let r = mine.open_start(&d, "idp").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("accesskeyd_oidc_binding="), "{cookie}");
    for attribute in ["Path=/api/auth", "HttpOnly", "SameSite=Lax", "Max-Age=600"] {
        assert!(
            cookie.split("; ").any(|a| a == attribute),
            "{attribute}: {cookie}"
        );
    }

    // An attacker signs in at the provider as himself in his own browser and makes the
    // victim's browser load the callback: the victim gets no session of his.
    let attacker = Browser::new();
    let auth = attacker.start(&d, "idp").await;
    let back = p.authorize(&auth, BEN.sub).await;
    let r = mine.callback(&d, &back).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());
    let body: Value = r.json().await.unwrap();
    assert!(
        body["statusMessage"]
            .as_str()
            .unwrap()
            .contains("not started in this browser"),
        "{body}"
    );
    // The state is used up: not even its own browser can finish it now.
    let r = attacker.callback(&d, &back).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A client without the cookie cannot complete it through the API either.
    let auth = attacker.start(&d, "idp").await;
    let back = p.authorize(&auth, BEN.sub).await;
    let (status, body, token) = Browser::new().post_code(&d, "idp", &back).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(token.is_none());

    // In the browser that started them, sign-ins finish; two started side by side (two
    // tabs) both do.
    let first = mine.start(&d, "idp").await;
    let second = mine.start(&d, "idp").await;
    for auth in [first, second] {
        let back = p.authorize(&auth, ANN.sub).await;
        let r = mine.callback(&d, &back).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["username"], "ann");
    }
    let audit = d.admin().await.get("/api/audit?action=login").await;
    let refusals = audit.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("not started in this browser")
        })
        .count();
    assert_eq!(
        refusals, 2,
        "both refusals are failed logins in the audit trail"
    );
}

#[tokio::test]
async fn one_address_cannot_fill_the_pending_sign_ins() {
    let p = provider("idp").await;
    let d = daemon(&[("idp", &p)]).await;

    // Someone at 127.0.0.2 starts sign-ins and never finishes them: after 20, refused
    // with 429 and when to try again.
    let flood = Browser::at("127.0.0.2");
    for n in 0..20 {
        let r = flood.open_start(&d, "idp").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "start {n}");
    }
    let r = flood.open_start(&d, "idp").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["statusMessage"]
            .as_str()
            .unwrap()
            .contains("too many OpenID Connect sign-ins started from your address"),
        "{body}"
    );

    // Someone else signs in meanwhile, from 127.0.0.3.
    let colleague = Browser::at("127.0.0.3");
    let auth = colleague.start(&d, "idp").await;
    let back = p.authorize(&auth, BEN.sub).await;
    assert_eq!(colleague.callback(&d, &back).await.status(), StatusCode::OK);

    // What is stored stays bounded: the 20 of the first address, no more.
    let pending = || async {
        use accesskeyd::store::schema::oidc_logins;
        use diesel::prelude::*;
        d.app
            .store
            .read(|c| Ok(oidc_logins::table.count().get_result::<i64>(c)?))
            .await
            .unwrap()
    };
    assert_eq!(pending().await, 20);

    // Once they have expired, the address may start again.
    d.advance(chrono::Duration::minutes(11));
    assert_eq!(
        flood.open_start(&d, "idp").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(pending().await, 1, "the expired ones were pruned");
}
