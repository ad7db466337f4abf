//! A secret scanner as GitHub's partner program is one: a P-256 key pair of its own, its
//! public keys document in GitHub's format (`{"public_keys": [...]}`), written to a file or
//! served over HTTP (axum on 127.0.0.1, a free port, stopped on drop), and reports signed
//! as GitHub signs them (base64 DER ECDSA over the body, `Github-Public-Key-*` headers).

#![allow(dead_code)]

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub const KEYS_PATH: &str = "/meta/public_keys/secret_scanning";

pub struct Scanner {
    pub key_id: String,
    public_pem: String,
    signing: SigningKey,
}

/// What the daemon answered to a report.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Scanner {
    pub fn new() -> Scanner {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        Scanner {
            key_id: hex::encode(&pair.public_key_raw()[1..33]),
            public_pem: pair.public_key_pem(),
            signing: SigningKey::from_pkcs8_der(&pair.serialize_der()).expect("pkcs8"),
        }
    }

    /// The public keys document, with a retired key before ours as GitHub's has.
    pub fn document(&self) -> Value {
        let retired = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        json!({"public_keys": [
            {"key_identifier": "retired", "key": retired.public_key_pem(), "is_current": false},
            {"key_identifier": self.key_id, "key": self.public_pem, "is_current": true},
        ]})
    }

    /// Writes the document into `dir`; its path.
    pub fn write_keys_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("secret-scanning-keys.json");
        std::fs::write(&path, self.document().to_string()).expect("write keys");
        path
    }

    /// Base64 of the DER signature over `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let sig: Signature = self.signing.sign(body);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }

    /// A report body of `(token, type)` pairs found at a GitHub URL.
    pub fn report(tokens: &[(&str, &str)]) -> Vec<u8> {
        let list: Vec<Value> = tokens
            .iter()
            .map(|(token, kind)| {
                json!({
                    "token": token,
                    "type": kind,
                    "url": "https://github.com/octo-org/etl/blob/4f1c2e/.env",
                    "source": "content",
                })
            })
            .collect();
        serde_json::to_vec(&list).expect("json")
    }

    /// POSTs `body` to the daemon at `base`, signed with this scanner's key.
    pub async fn send(&self, base: &str, body: &[u8]) -> Answer {
        let sig = self.sign(body);
        send_raw(base, body, Some((&self.key_id, &sig))).await
    }

    /// Serves the document over HTTP; the server counts the requests it answered.
    pub async fn serve(&self) -> KeyServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}{KEYS_PATH}", listener.local_addr().expect("addr"));
        let shared = Arc::new((self.document(), AtomicUsize::new(0)));
        let app = Router::new()
            .route(KEYS_PATH, get(document))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        KeyServer {
            url,
            shared,
            stop: Some(stop),
            task,
        }
    }
}

async fn document(State(shared): State<Arc<(Value, AtomicUsize)>>) -> Json<Value> {
    shared.1.fetch_add(1, Ordering::SeqCst);
    Json(shared.0.clone())
}

/// POSTs `body` with the given `(key identifier, signature)` headers, if any.
pub async fn send_raw(base: &str, body: &[u8], signed: Option<(&str, &str)>) -> Answer {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/api/secret-scanning/reports"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some((key_id, sig)) = signed {
        req = req
            .header("Github-Public-Key-Identifier", key_id)
            .header("Github-Public-Key-Signature", sig);
    }
    let r = req.send().await.expect("report");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

pub struct KeyServer {
    pub url: String,
    shared: Arc<(Value, AtomicUsize)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl KeyServer {
    /// How many times the document was fetched.
    pub fn fetches(&self) -> usize {
        self.shared.1.load(Ordering::SeqCst)
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}
