//! The daemon in-process for the fast tier: the router called with `oneshot` (no TCP
//! listener), the built-in directory only, SQLite in a temp dir (or, like the end-to-end
//! suite, a fresh PostgreSQL database when `ACCESSKEYD_TEST_BACKEND=postgres`), and a clock
//! the test moves. Requests and answers read like what a user or script does.

#![allow(dead_code)]

use crate::db::TestDatabase;
use accesskeyd::app::App;
use accesskeyd::audit::Actor;
use accesskeyd::clock::OffsetClock;
use accesskeyd::config::Config;
use accesskeyd::hearing::Hearing;
use accesskeyd::secret::Secret;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tempfile::TempDir;
use tower::ServiceExt;

pub const ADMIN: &str = "root";
pub const ADMIN_PASSWORD: &str = "root-password-123";
pub const BUILTIN: &str = "builtin";

/// The daemon of one test. Dropping it stops what it started.
pub struct TestApp {
    // Fields drop in this order: the revocation thread stops first, the files go last.
    _hearing: Option<Hearing>,
    router: Router,
    management: Router,
    pub app: Arc<App>,
    pub clock: Arc<OffsetClock>,
    pub db: TestDatabase,
    pub dir: TempDir,
}

/// TOML for the daemon in `dir`: the built-in directory, cheap password hashing (the
/// default parameters are covered by a unit test), then `extra` (whole sections).
fn config_toml(database_url: &str, extra: &str) -> String {
    format!(
        r#"
[database]
url = "{database_url}"

[password_hashing]
memory_kib = 256
iterations = 1

[[directories]]
id = "{BUILTIN}"
kind = "builtin"
name = "Seeq"
{extra}"#
    )
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with("").await
    }

    /// With extra TOML sections.
    pub async fn spawn_with(extra: &str) -> TestApp {
        Self::spawn_with_env(extra, &[]).await
    }

    /// With extra TOML sections and `ACCESSKEYD_*` overrides.
    pub async fn spawn_with_env(extra: &str, env: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::Builder::new()
            .prefix("accesskeyd-api-")
            .tempdir()
            .expect("temp dir");
        let db = TestDatabase::new(dir.path());
        let path = dir.path().join("accesskeyd.toml");
        std::fs::write(&path, config_toml(db.url(), extra)).expect("write config");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::load_from(Some(&path), &env).expect("valid test config");
        let clock = Arc::new(OffsetClock::default());
        let app = App::new(config, clock.clone()).await.expect("app starts");
        // What a serving process runs beside its listener: remembered credentials are used
        // only while it hears revocations, as in production.
        let hearing = Hearing::start(&app.services).expect("revocation hearing");
        accesskeyd::users::create_local(
            &app,
            &Actor::system("test"),
            ADMIN,
            Secret::new(ADMIN_PASSWORD),
            true,
        )
        .await
        .expect("create admin");
        TestApp {
            _hearing: hearing,
            router: accesskeyd::http::router(app.clone()),
            management: accesskeyd::http::management_router(app.clone()),
            app,
            clock,
            db,
            dir,
        }
    }

    /// Waits (at most 5 s) until this process has heard its own announcements back and the
    /// credential cache has stopped changing: what a test then makes known stays known.
    /// (The revocation poll runs every 50 ms; a login or a new key heard back later would
    /// evict what was remembered before it.)
    pub async fn settle(&self) {
        let cache = &self.app.auth_cache;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut seen = None;
        while std::time::Instant::now() < deadline {
            let now = cache.is_live().then(|| cache.generation());
            if now.is_some() && now == seen {
                return;
            }
            seen = now;
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
        panic!("the credential cache did not settle within 5 s");
    }

    /// Moves the daemon's clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.app.clock.now()
    }

    pub fn get(&self, path: &str) -> Request<'_> {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Request<'_> {
        self.request(Method::POST, path)
    }

    pub fn delete(&self, path: &str) -> Request<'_> {
        self.request(Method::DELETE, path)
    }

    pub fn request(&self, method: Method, path: &str) -> Request<'_> {
        Request {
            router: &self.router,
            method,
            path: path.to_string(),
            headers: HeaderMap::new(),
            body: Vec::new(),
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// The Prometheus text the management routes serve (in-process, no listener).
    pub async fn metrics(&self) -> String {
        let r = Request {
            router: &self.management,
            ..self.get("/metrics")
        }
        .send()
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    /// One counter or gauge of `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> u64 {
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// POST /api/auth/login; the answer, whatever it is.
    pub async fn try_login(&self, user: &str, password: &str, provider: Option<&str>) -> Resp {
        let mut body = json!({ "username": user, "password": password });
        if let Some(p) = provider {
            body["authProviderId"] = json!(p);
        }
        self.post("/api/auth/login").json(body).send().await
    }

    /// An interactive sign-in through the built-in directory; must succeed.
    pub async fn login(&self, user: &str, password: &str) -> Session {
        let r = self.try_login(user, password, Some(BUILTIN)).await;
        Session::from_login(&r, user)
    }

    /// A login with an access key (what the SDK does), no directory named; must succeed.
    pub async fn key_session(&self, key: &Key) -> Session {
        let r = self.try_login(&key.id, &key.password, None).await;
        Session::from_login(&r, &key.id)
    }

    /// The built-in admin, signed in.
    pub async fn admin(&self) -> Session {
        self.login(ADMIN, ADMIN_PASSWORD).await
    }

    /// A built-in user who has never signed in (password `<name>-password-123`).
    pub async fn add_user(&self, name: &str) -> LocalUser {
        self.add_local(name, false).await
    }

    /// A built-in admin who has never signed in.
    pub async fn add_admin(&self, name: &str) -> LocalUser {
        self.add_local(name, true).await
    }

    async fn add_local(&self, name: &str, admin: bool) -> LocalUser {
        let password = format!("{name}-password-123");
        let row = accesskeyd::users::create_local(
            &self.app,
            &Actor::system("test"),
            name,
            Secret::new(password.clone()),
            admin,
        )
        .await
        .expect("create local user");
        LocalUser {
            id: row.id.to_string(),
            name: name.to_string(),
            password,
        }
    }

    /// A built-in user, created and signed in.
    pub async fn user(&self, name: &str) -> Session {
        let u = self.add_user(name).await;
        self.login(&u.name, &u.password).await
    }

    /// A built-in admin other than `root`, created and signed in.
    pub async fn another_admin(&self, name: &str) -> Session {
        let u = self.add_admin(name).await;
        self.login(&u.name, &u.password).await
    }

    /// Creates a key through the API (must succeed).
    pub async fn create_key(&self, owner: &Session, label: &str) -> Key {
        let r = self
            .post("/api/accesskeys")
            .auth(owner)
            .json(json!({ "name": label }))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "create key: {}", r.body);
        Key::from_created(&r.json())
    }

    /// GET /api/users/me as `who`.
    pub async fn me(&self, who: &Session) -> Resp {
        self.get("/api/users/me").auth(who).send().await
    }

    /// GET /api/users/me with a key's Basic credentials.
    pub async fn me_with_key(&self, key: &Key) -> Resp {
        self.get("/api/users/me").key(key).send().await
    }

    /// Whether a key works right now (401 means no; anything else is a failure).
    pub async fn key_works(&self, key: &Key) -> bool {
        let status = self.me_with_key(key).await.status;
        assert!(
            status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
            "unexpected {status}"
        );
        status == StatusCode::OK
    }

    /// Sets runtime options as `admin`; the answer.
    pub async fn set_option(&self, admin: &Session, path: &str, value: Value) -> Resp {
        self.post("/api/system/configuration/options")
            .auth(admin)
            .json(json!({"configurationOptions": [{"path": path, "value": value}]}))
            .send()
            .await
    }

    /// Arranges a user's last interactive login directly in the database (as if it had
    /// happened then), for tests of what follows from an old login.
    pub async fn set_last_login(&self, user_id: &str, at: chrono::DateTime<chrono::Utc>) {
        crate::arrange::set_last_login(&self.app, user_id, at).await;
    }
}

/// A built-in user as created, before any sign-in.
pub struct LocalUser {
    pub id: String,
    pub name: String,
    pub password: String,
}

/// An API session (`x-sq-auth`), and who it is for.
#[derive(Clone)]
pub struct Session {
    pub token: String,
    /// The login answer: the user record.
    pub user: Value,
}

impl Session {
    /// The session of a successful login answer; panics when the login failed.
    pub fn from_login(r: &Resp, who: &str) -> Session {
        assert_eq!(
            r.status,
            StatusCode::OK,
            "login of {who} failed: {}",
            r.body
        );
        let token = r.header("x-sq-auth").to_string();
        Session {
            token,
            user: r.json(),
        }
    }

    /// The user's id.
    pub fn id(&self) -> String {
        self.user["id"].as_str().expect("user id").to_string()
    }
}

/// An access key as created: its id and the password shown once.
#[derive(Clone)]
pub struct Key {
    pub id: String,
    pub password: String,
    /// The creation answer.
    pub created: Value,
}

impl Key {
    pub fn from_created(body: &Value) -> Key {
        Key {
            id: body["keyId"].as_str().expect("keyId").to_string(),
            password: body["password"].as_str().expect("password").to_string(),
            created: body.clone(),
        }
    }
}

/// Who makes a request, for tests that try the same thing as several callers.
#[derive(Clone, Copy)]
pub enum Caller<'a> {
    /// With the session header.
    Session(&'a Session),
    /// With the key's Basic credentials.
    Key(&'a Key),
}

/// A request being put together; `send` hands it to the router.
pub struct Request<'a> {
    router: &'a Router,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    peer: IpAddr,
}

impl Request<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
        self
    }

    /// The API session header.
    pub fn auth(self, s: &Session) -> Self {
        self.header("x-sq-auth", &s.token)
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn basic(self, key_id: &str, password: &str) -> Self {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{key_id}:{password}"));
        self.header("authorization", &format!("Basic {pair}"))
    }

    pub fn key(self, k: &Key) -> Self {
        self.basic(&k.id, &k.password)
    }

    /// As `caller`: a session or a key.
    pub fn by(self, caller: Caller<'_>) -> Self {
        match caller {
            Caller::Session(s) => self.auth(s),
            Caller::Key(k) => self.key(k),
        }
    }

    /// One cookie (`name=value`), added to the request's Cookie header.
    pub fn cookie(mut self, name: &str, value: &str) -> Self {
        let pair = format!("{name}={value}");
        let joined = match self.headers.get(header::COOKIE) {
            Some(v) => format!("{}; {pair}", v.to_str().expect("cookie header")),
            None => pair,
        };
        self.headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&joined).expect("cookie value"),
        );
        self
    }

    /// The browser session cookie of the pages.
    pub fn session_cookie(self, s: &Session) -> Self {
        self.cookie("accesskeyd_session", &s.token)
    }

    pub fn json(self, v: Value) -> Self {
        self.body("application/json", v.to_string())
    }

    /// An HTML form, as a browser posts it.
    pub fn form(self, fields: &[(&str, &str)]) -> Self {
        let text = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.body("application/x-www-form-urlencoded", text)
    }

    /// A body as is, with its content type.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("content type"),
        );
        self
    }

    /// The TCP peer the request comes from (127.0.0.1 unless set).
    pub fn peer(mut self, ip: &str) -> Self {
        self.peer = ip.parse().expect("an IP address");
        self
    }

    pub async fn send(self) -> Resp {
        let mut req = axum::http::Request::builder()
            .method(self.method)
            .uri(&self.path);
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        if !self.body.is_empty() {
            req = req.header(header::CONTENT_LENGTH, self.body.len());
        }
        let mut req = req.body(Body::from(self.body)).expect("request");
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(self.peer, 40000)));
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("the router is infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("response body");
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

/// An answer: status, headers and the body as text.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    /// The body as JSON; panics (with the body) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Every `Set-Cookie` of the answer.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("set-cookie").to_string())
            .collect()
    }

    /// The `Set-Cookie` of `name`; panics when there is none.
    pub fn set_cookie(&self, name: &str) -> String {
        let set = self.set_cookies();
        set.iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} cookie in {set:?}"))
    }

    /// The value of a page's `<input type="hidden" name="csrf" value="...">`.
    pub fn csrf_field(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in the page:\n{}", self.body))
            + 19;
        self.body[at..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// Asserts an error answer in the contract's shape.
pub fn assert_error(r: &Resp, status: StatusCode, needle: &str) {
    assert_eq!(r.status, status, "unexpected status; body {}", r.body);
    let body = r.json();
    let msg = body["statusMessage"]
        .as_str()
        .unwrap_or_else(|| panic!("no statusMessage in {body}"));
    assert!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "statusMessage {msg:?} does not mention {needle:?}"
    );
}
