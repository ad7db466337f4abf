//! The accesskeyd daemon started in-process on a free port with its own SQLite file and a
//! clock the test can move, plus a small HTTP client speaking the API like a user would.

#![allow(dead_code)]

use super::db::TestDatabase;
use super::slapd::Slapd;
use accesskeyd::app::App;
use accesskeyd::audit::Actor;
use accesskeyd::clock::OffsetClock;
use accesskeyd::config::Config;
use accesskeyd::secret::Secret;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use tempfile::TempDir;

pub const ADMIN: &str = "root";
pub const ADMIN_PASSWORD: &str = "root-password-123";
pub const LDAP_DIR: &str = "corp";

pub struct Daemon {
    pub url: String,
    /// The management listener (`/metrics`, `/healthz`, `/readyz`) on its own free port;
    /// None when the configuration turns it off (`server.management_listen = ""`).
    pub management_url: Option<String>,
    pub app: Arc<App>,
    pub clock: Arc<OffsetClock>,
    pub dir: Arc<TempDir>,
    pub db: Arc<TestDatabase>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// TOML for a daemon in `dir`, with the LDAP directory of `slapd` when given. Password
/// hashing is cheap here; the default parameters are covered by a unit test.
pub fn config_toml(database_url: &str, slapd: Option<&Slapd>, extra: &str) -> String {
    let mut toml = format!(
        r#"
[database]
url = "{database_url}"

[password_hashing]
memory_kib = 256
iterations = 1

[[directories]]
id = "builtin"
kind = "builtin"
name = "Seeq"
"#
    );
    if let Some(s) = slapd {
        toml.push_str(&format!(
            r#"
[[directories]]
id = "{LDAP_DIR}"
kind = "ldap"
name = "Corp LDAP"
url = "{}"
bind_dn = "{}"
bind_password = "{}"
user_base = "{}"
user_filter = "(objectClass=inetOrgPerson)"
admin_group = "{}"
timeout_seconds = 3
"#,
            s.url(),
            s.service_dn(),
            s.service_password(),
            s.user_base(),
            s.admin_group_dn()
        ));
    }
    // `extra` may add whole sections; keys of sections above go through the env instead.
    toml.push_str(extra);
    toml
}

impl Daemon {
    pub async fn start(slapd: Option<&Slapd>) -> Daemon {
        Self::start_with(slapd, "", &[]).await
    }

    /// Starts with extra TOML and `ACCESSKEYD_*` overrides.
    pub async fn start_with(slapd: Option<&Slapd>, extra: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("accesskeyd-test-")
            .tempdir()
            .expect("temp dir");
        let db = TestDatabase::new(dir.path());
        let d = Self::start_on(Arc::new(dir), Arc::new(db), slapd, extra, env).await;
        accesskeyd::users::create_local(
            &d.app,
            &Actor::system("test"),
            ADMIN,
            Secret::new(ADMIN_PASSWORD),
            true,
        )
        .await
        .expect("create admin");
        d
    }

    /// A second daemon on this one's database, configured differently (as another replica,
    /// or the same installation after a configuration change).
    pub async fn sibling(
        &self,
        slapd: Option<&Slapd>,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        Self::start_on(self.dir.clone(), self.db.clone(), slapd, extra, env).await
    }

    async fn start_on(
        dir: Arc<TempDir>,
        db: Arc<TestDatabase>,
        slapd: Option<&Slapd>,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let path = dir
            .path()
            .join(format!("accesskeyd-{}.toml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, config_toml(db.url(), slapd, extra)).expect("write config");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::load_from(Some(&path), &env).expect("valid test config");
        let clock = Arc::new(OffsetClock::default());
        let app = App::new(config, clock.clone()).await.expect("app starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        // A free port rather than the configured one: tests run side by side.
        let management = if app.config.server.management_listen.trim().is_empty() {
            None
        } else {
            accesskeyd::http::bind_management("127.0.0.1:0")
                .await
                .expect("bind management")
        };
        let management_url = management
            .as_ref()
            .map(|m| format!("http://{}", m.local_addr().expect("management addr")));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = app.clone();
        let task = tokio::spawn(async move {
            let _ = accesskeyd::http::serve_with_management(served, listener, management, async {
                let _ = stopped.await;
            })
            .await;
        });
        Daemon {
            url,
            management_url,
            app,
            clock,
            dir,
            db,
            stop: Some(stop),
            task,
        }
    }

    /// Arranges a user's last interactive login directly in the database (as if it had
    /// happened then), for tests of what follows from an old login.
    pub async fn set_last_login(&self, user_id: &str, at: chrono::DateTime<chrono::Utc>) {
        super::arrange::set_last_login(&self.app, user_id, at).await;
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

    pub fn client(&self) -> Client {
        Client {
            base: self.url.clone(),
            http: reqwest::Client::new(),
            auth: Auth::None,
        }
    }

    /// A client of the management listener, as a Prometheus scraper would be.
    pub fn management(&self) -> Client {
        Client {
            base: self
                .management_url
                .clone()
                .expect("this daemon has no management listener"),
            http: reqwest::Client::new(),
            auth: Auth::None,
        }
    }

    /// The Prometheus text of `/metrics`, scraped from the management listener.
    pub async fn metrics(&self) -> String {
        let m = self.management().get("/metrics").await;
        assert_eq!(m.status, StatusCode::OK, "{}", m.body);
        m.body.as_str().expect("metrics text").to_string()
    }

    /// A client logged in as the built-in admin.
    pub async fn admin(&self) -> Client {
        self.login(ADMIN, ADMIN_PASSWORD, Some("builtin")).await
    }

    /// Logs in (must succeed) and returns a client carrying the session token.
    pub async fn login(&self, user: &str, password: &str, provider: Option<&str>) -> Client {
        let (status, body, token) = self.client().login(user, password, provider).await;
        assert_eq!(status, StatusCode::OK, "login of {user} failed: {body}");
        self.client().with_token(&token.expect("x-sq-auth header"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

#[derive(Clone)]
pub enum Auth {
    None,
    Token(String),
    Bearer(String),
    Basic(String, String),
    RawAuthorization(String),
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub auth: Auth,
}

/// An answer: status, JSON body (or the text as a string), headers.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Client {
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            auth: Auth::Token(token.to_string()),
            ..self.clone()
        }
    }

    pub fn with_basic(&self, key: &str, password: &str) -> Client {
        Client {
            auth: Auth::Basic(key.to_string(), password.to_string()),
            ..self.clone()
        }
    }

    pub fn with_auth(&self, auth: Auth) -> Client {
        Client {
            auth,
            ..self.clone()
        }
    }

    pub fn token(&self) -> String {
        match &self.auth {
            Auth::Token(t) | Auth::Bearer(t) => t.clone(),
            _ => panic!("client has no token"),
        }
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        req = match &self.auth {
            Auth::None => req,
            Auth::Token(t) => req.header("x-sq-auth", t),
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic(k, p) => req.header(
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{k}:{p}"))
                ),
            ),
            Auth::RawAuthorization(v) => req.header("authorization", v),
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    /// POST /api/auth/login; returns status, body and the x-sq-auth token.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        provider: Option<&str>,
    ) -> (StatusCode, Value, Option<String>) {
        let mut body = json!({ "username": user, "password": password });
        if let Some(p) = provider {
            body["authProviderId"] = json!(p);
        }
        let a = self.post("/api/auth/login", body).await;
        let token = a
            .headers
            .get("x-sq-auth")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (a.status, a.body, token)
    }

    /// Creates a key (must succeed); returns (keyId, password, full body).
    pub async fn create_key(&self, label: &str) -> (String, String, Value) {
        let a = self.post("/api/accesskeys", json!({ "name": label })).await;
        assert_eq!(a.status, StatusCode::CREATED, "create key: {}", a.body);
        let key = a.body["keyId"].as_str().expect("keyId").to_string();
        let pw = a.body["password"].as_str().expect("password").to_string();
        (key, pw, a.body)
    }

    /// The caller's own user record.
    pub async fn me(&self) -> Answer {
        self.get("/api/users/me").await
    }
}

/// Asserts an error answer in the contract's shape.
pub fn assert_error(a: &Answer, status: StatusCode, needle: &str) {
    assert_eq!(a.status, status, "unexpected status; body {}", a.body);
    let msg = a.body["statusMessage"]
        .as_str()
        .unwrap_or_else(|| panic!("no statusMessage in {}", a.body));
    assert!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "statusMessage {msg:?} does not mention {needle:?}"
    );
}
