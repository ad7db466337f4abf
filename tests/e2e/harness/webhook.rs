//! A webhook receiver for tests of outgoing webhooks: an axum server in the test process on a
//! free 127.0.0.1 port that records every request it gets.
//!
//! `WebhookReceiver::start(secret, fail_first)` answers the first `fail_first` POSTs with 500
//! and every later one with 200, on any path (`url()` is `http://127.0.0.1:PORT/hook`). Each
//! request is recorded before it is answered, with its headers, raw body, the status it got
//! and whether its `X-Accesskeyd-Signature` header is `sha256=` + lowercase hex
//! HMAC-SHA256(secret, raw body) (`sign` computes that value). Requests with another method
//! than POST are recorded too, answered 405, and do not count towards `fail_first`.
//!
//! The server task is aborted on drop, also when a test panics.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::task::JoinHandle;

pub const SIGNATURE_HEADER: &str = "X-Accesskeyd-Signature";
const POLL: Duration = Duration::from_millis(10);

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Header names in lower case, values lossily decoded, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// `X-Accesskeyd-Signature` is present and equals `sign(secret, body)`.
    pub signature_valid: bool,
    /// The status the receiver answered (500, 200, or 405 for a method other than POST).
    pub answered: u16,
    pub method: String,
    /// Path and query, e.g. `/hook`.
    pub path: String,
}

impl Delivery {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "webhook body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Shared {
    secret: Vec<u8>,
    fail_first: usize,
    /// POSTs seen so far, and every request recorded, under one lock so that the n-th POST
    /// gets the n-th answer even when requests arrive concurrently.
    state: Mutex<(usize, Vec<Delivery>)>,
}

pub struct WebhookReceiver {
    port: u16,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl WebhookReceiver {
    /// Starts the receiver; it answers 500 to the first `fail_first` POSTs, then 200.
    pub async fn start(secret: &str, fail_first: usize) -> WebhookReceiver {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap_or_else(|e| panic!("webhook receiver: bind 127.0.0.1:0: {e}"));
        let port = listener.local_addr().expect("local_addr").port();
        let shared = Arc::new(Shared {
            secret: secret.as_bytes().to_vec(),
            fail_first,
            state: Mutex::new((0, Vec::new())),
        });
        let app = Router::new().fallback(record).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("webhook receiver on port {port} stopped: {e}");
            }
        });
        WebhookReceiver { port, shared, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/hook` (any other path on the port is served the same way).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Every request so far, in the order received.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.state.lock().unwrap().1.clone()
    }

    /// Waits until at least `n` requests have been recorded and returns all (maybe more than
    /// `n`). Panics after `timeout` with what has arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let deliveries = self.deliveries();
            if deliveries.len() >= n {
                return deliveries;
            }
            if Instant::now() > deadline {
                let summary: Vec<String> = deliveries
                    .iter()
                    .map(|d| {
                        format!(
                            "  {} {} -> {} (signature valid: {}): {}",
                            d.method,
                            d.path,
                            d.answered,
                            d.signature_valid,
                            d.body_text()
                        )
                    })
                    .collect();
                panic!(
                    "the webhook receiver on port {} got {} request(s) within {timeout:?}, expected {n}:\n{}",
                    self.port,
                    deliveries.len(),
                    summary.join("\n")
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `sha256=` + lowercase hex HMAC-SHA256(secret, body): the `X-Accesskeyd-Signature` value.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Constant-time check of a `sha256=<hex>` value (lowercase hex only, as `sign` makes).
fn signature_matches(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_part) = header.strip_prefix("sha256=") else {
        return false;
    };
    if hex_part.bytes().any(|b| b.is_ascii_uppercase()) {
        return false;
    }
    let Ok(tag) = hex::decode(hex_part) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let signature_valid = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| signature_matches(&shared.secret, &body, v));
    let header_list = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut state = shared.state.lock().unwrap();
    let (status, text) = if method != Method::POST {
        (StatusCode::METHOD_NOT_ALLOWED, "POST only\n")
    } else {
        state.0 += 1;
        if state.0 <= shared.fail_first {
            (StatusCode::INTERNAL_SERVER_ERROR, "failing on purpose\n")
        } else {
            (StatusCode::OK, "ok\n")
        }
    };
    state.1.push(Delivery {
        headers: header_list,
        body: body.to_vec(),
        signature_valid,
        answered: status.as_u16(),
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| uri.path().to_owned()),
    });
    (status, text)
}
