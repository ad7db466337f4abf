//! A real OpenID Connect provider for integration tests: `node tests/oidc-provider/server.mjs`
//! (the `oidc-provider` npm package, pinned in tests/oidc-provider/package.json) on a free
//! 127.0.0.1 port, with static clients and accounts given by the test.
//!
//! The provider requires PKCE (S256), accepts client_secret_basic and client_secret_post,
//! offers the scopes openid, profile (preferred_username, name), email (email,
//! email_verified) and groups (groups), and puts the granted claims in the ID token. Its
//! authorization responses carry `iss` besides `code` and `state` (RFC 9207). State (codes,
//! sessions) lives in the node process's memory.
//!
//! `authorize` plays the user's browser through the provider's development login and consent
//! pages (any password signs in the account whose sub is the login name). `rotate_keys`
//! makes the provider sign with a new key, published in front of the old ones in its JWKS.
//! `set_token_mode` makes its token endpoint answer bad ID tokens (tampered, wrong audience,
//! expired).
//!
//! Needs `node` (>= 20) on PATH and `npm ci --prefix tests/oidc-provider` (scripts/test.sh
//! runs it). The process is killed on drop, also when a test panics, and exits by itself when
//! the test process dies (it watches its stdin, a pipe held by this struct).
//!
//! The process is a `std::process` child read by a thread, because the crate's tokio does
//! not enable the `process` feature.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::header::LOCATION;
use reqwest::{redirect, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use url::Url;

const READY_TIMEOUT: Duration = Duration::from_secs(15);
const START_ATTEMPTS: u32 = 3;
/// Redirects and form posts `authorize` follows before giving up.
const MAX_STEPS: usize = 20;
/// The password typed at the provider's login page; devInteractions accepts any.
const ANY_PASSWORD: &str = "any-password";

/// An account at the provider. `name` (the profile claim) is `username`; `email_verified`
/// is true.
#[derive(Clone, Copy, Debug)]
pub struct Account {
    pub sub: &'static str,
    pub username: &'static str,
    pub email: &'static str,
    pub groups: &'static [&'static str],
}

pub struct OidcProvider {
    child: Option<Child>,
    port: u16,
    issuer: String,
    dir: TempDir,
}

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider")
}

impl OidcProvider {
    /// Starts `node tests/oidc-provider/server.mjs` on a free port with the given clients
    /// (client_id, client_secret, redirect_uri) and accounts, and waits for it to answer.
    /// The node process binds port 0 itself and reports the port, so there is no race for it.
    /// Panics with the provider's stderr when it cannot start.
    pub async fn start(clients: &[(&str, &str, &str)], accounts: &[Account]) -> OidcProvider {
        // Seen rarely under a full parallel test run: node started but never reported
        // "ready". A fresh process then starts normally, so try up to three times.
        for attempt in 1..=START_ATTEMPTS {
            match Self::try_start(clients, accounts).await {
                Ok(p) => return p,
                Err(log) if attempt < START_ATTEMPTS => {
                    eprintln!("OIDC provider start attempt {attempt} timed out; retrying. stderr:\n{log}");
                }
                Err(log) => panic!(
                    "the OIDC provider did not print \"ready\" within {READY_TIMEOUT:?} in {START_ATTEMPTS} attempts; stderr:\n{log}"
                ),
            }
        }
        unreachable!("the loop returns or panics")
    }

    async fn try_start(
        clients: &[(&str, &str, &str)],
        accounts: &[Account],
    ) -> Result<OidcProvider, String> {
        let dir = provider_dir();
        let server = dir.join("server.mjs");
        if !dir
            .join("node_modules/oidc-provider/package.json")
            .is_file()
        {
            panic!(
                "{} has no node_modules/oidc-provider: run `npm ci --prefix tests/oidc-provider` \
                 (scripts/test.sh does)",
                dir.display()
            );
        }
        let config = json!({
            "port": 0,
            "exit_with_stdin": true,
            "clients": clients.iter().map(|(id, secret, redirect_uri)| json!({
                "client_id": id,
                "client_secret": secret,
                "redirect_uris": [redirect_uri],
            })).collect::<Vec<_>>(),
            "accounts": accounts.iter().map(|a| (a.sub.to_string(), json!({
                "preferred_username": a.username,
                "name": a.username,
                "email": a.email,
                "groups": a.groups,
            }))).collect::<serde_json::Map<String, Value>>(),
        });

        let tmp = tempfile::Builder::new()
            .prefix("oidc-provider-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for the OIDC provider: {e}"));
        let stderr_path = tmp.path().join("oidc-provider.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("create oidc-provider.stderr");
        let mut child = Command::new("node")
            .arg(&server)
            .current_dir(&dir)
            .env("OIDC_CONFIG", config.to_string())
            .env_remove("NODE_OPTIONS")
            .env_remove("DEBUG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `node {}` (Node.js >= 20 on PATH?): {e}",
                    server.display()
                )
            });

        // Lines of stdout, read by a thread that keeps draining the pipe after "ready".
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });

        let mut provider = OidcProvider {
            child: Some(child),
            port: 0,
            issuer: String::new(),
            dir: tmp,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match rx.try_recv() {
                Ok(line) => {
                    if let Some(issuer) = line.strip_prefix("ready ") {
                        let issuer = issuer.trim().to_string();
                        provider.port = Url::parse(&issuer)
                            .ok()
                            .and_then(|u| u.port())
                            .unwrap_or_else(|| panic!("bad issuer in {line:?}"));
                        provider.issuer = issuer;
                        break;
                    }
                    continue;
                }
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => {
                    // stdout closed: the process is exiting; let try_wait below report it.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            let child = provider.child.as_mut().expect("child");
            if let Ok(Some(status)) = child.try_wait() {
                provider.child = None;
                let log = provider.stderr();
                let hint = if log.contains("ERR_MODULE_NOT_FOUND") {
                    "\n(node_modules missing or stale? run `npm ci --prefix tests/oidc-provider`)"
                } else {
                    ""
                };
                panic!(
                    "the OIDC provider exited with {status} during startup; stderr:\n{log}{hint}"
                );
            }
            if Instant::now() > deadline {
                let log = provider.stderr();
                provider.stop();
                return Err(log);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(provider)
    }

    /// `http://127.0.0.1:<port>`, the `iss` of its tokens; discovery is at
    /// `{issuer}/.well-known/openid-configuration`.
    pub fn issuer(&self) -> String {
        self.issuer.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the provider wrote to stderr so far (warnings, errors, rotations).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("oidc-provider.stderr")).unwrap_or_default()
    }

    /// Makes the provider sign new tokens with a newly generated RS256 key, published first
    /// in its JWKS; the old public keys stay published. Returns the new key's `kid`.
    pub async fn rotate_keys(&self) -> String {
        self.rotate("/test/rotate").await
    }

    /// Like `rotate_keys`, but the JWKS then holds only the new key: tokens signed before
    /// no longer verify against it.
    pub async fn rotate_keys_retiring_old(&self) -> String {
        self.rotate("/test/rotate?retire=1").await
    }

    /// Changes what the provider's token endpoint puts in `id_token` from now on (also
    /// after key rotations), for tests of ID token validation:
    /// - `"normal"`: untouched (the initial mode);
    /// - `"tampered"`: `sub` and `preferred_username` changed (prefixed with `tampered-`),
    ///   original header and signature kept, so the signature does not verify;
    /// - `"wrong-audience"`: `aud` is `"someone-else"`, correctly signed, other claims
    ///   (nonce, ...) unchanged;
    /// - `"expired"`: `exp` two hours ago, `iat` one token lifetime before it, correctly
    ///   signed, other claims unchanged.
    ///
    /// Panics when the provider does not answer 200 (e.g. an unknown mode).
    pub async fn set_token_mode(&self, mode: &str) {
        let url = Url::parse_with_params(
            &format!("{}/test/token-mode", self.issuer),
            [("mode", mode)],
        )
        .expect("token-mode URL");
        self.test_get(url.as_str()).await;
    }

    /// Sets the account's `preferred_username` from now on, as a person does at providers
    /// that let people edit their username.
    pub async fn set_username(&self, sub: &str, username: &str) {
        let url = Url::parse_with_params(
            &format!("{}/test/username", self.issuer),
            [("sub", sub), ("value", username)],
        )
        .expect("username URL");
        self.test_get(url.as_str()).await;
    }

    async fn rotate(&self, path: &str) -> String {
        let url = format!("{}{path}", self.issuer);
        let body = self.test_get(&url).await;
        body["kid"]
            .as_str()
            .unwrap_or_else(|| panic!("GET {url}: no kid in {body}"))
            .to_string()
    }

    /// GETs one of the provider's test routes; panics unless it answers 200 with JSON.
    async fn test_get(&self, url: &str) -> Value {
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("build reqwest client")
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "GET {url}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}: {body}"))
    }

    /// Kills the provider and reaps it. Safe to call more than once.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Plays the user's browser at the provider: opens `authorization_url` (the one the
    /// client redirected to, with its state, nonce and code_challenge), signs in as `sub` on
    /// the development login page (any password), grants consent if asked, and follows the
    /// provider's redirects until one leaves the provider. That redirect, to the client's
    /// redirect_uri, is not followed: its full URL is returned (`code`, `state`, `iss`; or
    /// `error` when the provider refused the request). Each call is a fresh browser (its own
    /// cookie store), so the provider has no session from an earlier call.
    ///
    /// Panics, with the page or error and the provider's stderr, when the provider answers
    /// otherwise, e.g. an unknown client or redirect_uri, or an unknown `sub`.
    pub async fn authorize(&self, authorization_url: &str, sub: &str) -> String {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build reqwest client");
        let issuer = Url::parse(&self.issuer).expect("issuer URL");
        let mut url = Url::parse(authorization_url)
            .unwrap_or_else(|e| panic!("bad authorization URL {authorization_url:?}: {e}"));
        let mut logged_in = false;
        let mut consented = false;
        let mut trail = Vec::new();

        // `form`: the form to post to `url` instead of GETting it.
        let mut form: Option<Vec<(&str, &str)>> = None;
        for _ in 0..MAX_STEPS {
            trail.push(format!(
                "{} {url}",
                if form.is_some() { "POST" } else { "GET" }
            ));
            let request = match form.take() {
                Some(fields) => http.post(url.clone()).form(&fields),
                None => http.get(url.clone()),
            };
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", trail.last().unwrap()));
            let status = response.status();

            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_else(|| panic!("{status} without Location at {url}"))
                    .to_string();
                let next = url
                    .join(&location)
                    .unwrap_or_else(|e| panic!("bad Location {location:?} at {url}: {e}"));
                if next.origin() != issuer.origin() {
                    return next.to_string();
                }
                url = next;
                continue;
            }

            let body = response.text().await.unwrap_or_default();
            if status != StatusCode::OK || !url.path().starts_with("/interaction/") {
                panic!(
                    "the OIDC provider answered {status} at {url} while authorizing as {sub}:\n{body}\n\
                     steps:\n{}\nprovider stderr:\n{}",
                    trail.join("\n"),
                    self.stderr()
                );
            }
            if body.contains(r#"name="prompt" value="login""#) {
                if logged_in {
                    panic!(
                        "the OIDC provider asked for a login again after signing in as {sub:?}: \
                         is it one of its accounts?\nsteps:\n{}\nprovider stderr:\n{}",
                        trail.join("\n"),
                        self.stderr()
                    );
                }
                logged_in = true;
                form = Some(vec![
                    ("prompt", "login"),
                    ("login", sub),
                    ("password", ANY_PASSWORD),
                ]);
            } else if body.contains(r#"name="prompt" value="consent""#) {
                if consented {
                    panic!(
                        "the OIDC provider asked for consent twice\nsteps:\n{}",
                        trail.join("\n")
                    );
                }
                consented = true;
                form = Some(vec![("prompt", "consent")]);
            } else {
                panic!("unexpected interaction page at {url}:\n{body}");
            }
            // The dev interaction forms post back to the interaction's own URL.
        }
        panic!(
            "no redirect to the client after {MAX_STEPS} steps:\n{}",
            trail.join("\n")
        );
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}
