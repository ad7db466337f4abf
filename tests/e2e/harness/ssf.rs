//! A small OpenID Shared Signals transmitter: serves its SSF configuration
//! (`/.well-known/ssf-configuration`) and JWKS, signs SETs with an ES256 test key it can
//! rotate, and holds SETs for RFC 8936 polling (`POST /poll`), remembering what was
//! acknowledged. axum on 127.0.0.1, a free port, stopped on drop.

#![allow(dead_code)]

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};

pub const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";
pub const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";

/// An ES256 signing key and its public JWK.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    pub jwk: Value,
}

impl SigningKey {
    pub fn generate(kid: &str) -> SigningKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let raw = pair.public_key_raw();
        let (x, y) = raw[1..].split_at(32);
        SigningKey {
            kid: kid.to_string(),
            encoding: EncodingKey::from_ec_der(&pair.serialize_der()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
            }),
        }
    }

    /// `claims` signed as a SET (`typ: secevent+jwt`) with this key.
    pub fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(self.kid.clone());
        h.typ = Some("secevent+jwt".into());
        jsonwebtoken::encode(&h, claims, &self.encoding).expect("sign")
    }
}

#[derive(Default)]
struct Shared {
    issuer: String,
    keys: Vec<SigningKey>,
    /// SETs waiting for a poll: (jti, token).
    queue: Vec<(String, String)>,
    acked: Vec<String>,
    set_errs: Map<String, Value>,
    polls: usize,
    generation: usize,
}

pub struct Transmitter {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Transmitter {
    pub async fn start() -> Transmitter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Arc::new(Mutex::new(Shared {
            issuer: url.clone(),
            keys: vec![SigningKey::generate("key-1")],
            generation: 1,
            ..Shared::default()
        }));
        let app = Router::new()
            .route("/.well-known/ssf-configuration", get(configuration))
            .route("/jwks", get(jwks))
            .route("/poll", post(poll))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Transmitter {
            url,
            shared,
            stop: Some(stop),
            task,
        }
    }

    /// The issuer (`iss` of its SETs): its base URL.
    pub fn issuer(&self) -> String {
        self.url.clone()
    }

    /// Rotates: a new key with a new kid replaces the old one in the JWKS.
    pub fn rotate(&self) -> String {
        let mut s = self.shared.lock().expect("lock");
        s.generation += 1;
        let kid = format!("key-{}", s.generation);
        s.keys = vec![SigningKey::generate(&kid)];
        kid
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &Value) -> String {
        let s = self.shared.lock().expect("lock");
        s.keys[0].sign(claims)
    }

    /// A SET of one event from this transmitter for `audience`, about `sub_id`, issued now.
    pub fn claims(&self, audience: &str, event: &str, payload: Value, sub_id: Value) -> Value {
        json!({
            "iss": self.issuer(),
            "aud": audience,
            "iat": chrono::Utc::now().timestamp(),
            "jti": uuid::Uuid::new_v4().simple().to_string(),
            "sub_id": sub_id,
            "events": { event: payload },
        })
    }

    /// Queues a signed SET for the next poll; returns its jti.
    pub fn queue(&self, claims: &Value) -> String {
        let jti = claims["jti"].as_str().expect("jti").to_string();
        let token = self.sign(claims);
        self.shared
            .lock()
            .expect("lock")
            .queue
            .push((jti.clone(), token));
        jti
    }

    /// The jtis the receiver acknowledged, in order.
    pub fn acked(&self) -> Vec<String> {
        self.shared.lock().expect("lock").acked.clone()
    }

    pub fn set_errs(&self) -> Map<String, Value> {
        self.shared.lock().expect("lock").set_errs.clone()
    }

    pub fn polls(&self) -> usize {
        self.shared.lock().expect("lock").polls
    }
}

impl Drop for Transmitter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

type St = State<Arc<Mutex<Shared>>>;

async fn configuration(State(s): St) -> Json<Value> {
    let issuer = s.lock().expect("lock").issuer.clone();
    Json(json!({
        "spec_version": "1_0",
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "delivery_methods_supported": [
            "urn:ietf:rfc:8935",
            "urn:ietf:rfc:8936"
        ],
    }))
}

async fn jwks(State(s): St) -> Json<Value> {
    let keys: Vec<Value> = s
        .lock()
        .expect("lock")
        .keys
        .iter()
        .map(|k| k.jwk.clone())
        .collect();
    Json(json!({ "keys": keys }))
}

/// RFC 8936: takes `ack` and `setErrs`, answers what is still queued.
async fn poll(State(s): St, Json(body): Json<Value>) -> Json<Value> {
    let mut s = s.lock().expect("lock");
    s.polls += 1;
    let acked: Vec<String> = body["ack"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if let Some(errs) = body["setErrs"].as_object() {
        for (k, v) in errs {
            s.set_errs.insert(k.clone(), v.clone());
        }
    }
    let done: Vec<String> = acked
        .iter()
        .cloned()
        .chain(s.set_errs.keys().cloned())
        .collect();
    s.queue.retain(|(jti, _)| !done.contains(jti));
    s.acked.extend(acked);
    let sets: Map<String, Value> = s
        .queue
        .iter()
        .map(|(jti, t)| (jti.clone(), Value::String(t.clone())))
        .collect();
    Json(json!({ "sets": sets, "moreAvailable": false }))
}
