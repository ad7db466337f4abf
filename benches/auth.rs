//! Benchmarks of the hot paths, with the production password-hashing parameters:
//! argon2id cost, access-key authentication over HTTP (first use and repeated use), session
//! authentication, and the validity rule. Run: `cargo bench --bench auth`.
//! Method and results: docs/performance.md.

use accesskeyd::app::App;
use accesskeyd::audit::Actor;
use accesskeyd::clock::SystemClock;
use accesskeyd::config::Config;
use accesskeyd::passwords::Hasher;
use accesskeyd::secret::Secret;
use accesskeyd::validity;
use base64::Engine;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs `total` requests with `concurrency` in flight; prints throughput and latency.
async fn load(
    name: &str,
    client: &reqwest::Client,
    url: &str,
    auth: (&str, String),
    total: usize,
    concurrency: usize,
) {
    let started = Instant::now();
    let per_worker = total / concurrency;
    let mut handles = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_string();
        let (h, v) = (auth.0.to_string(), auth.1.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                let t = Instant::now();
                let r = client
                    .get(&url)
                    .header(&h, &v)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
                let _ = r.bytes().await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("worker"));
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    println!(
        "{name}: {} requests, concurrency {concurrency}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        all.len(),
        all.len() as f64 / secs,
        percentile(&all, 0.5).as_secs_f64() * 1000.0,
        percentile(&all, 0.99).as_secs_f64() * 1000.0
    );
}

#[tokio::main]
async fn main() {
    // The validity rule: pure arithmetic, run on every key request.
    let now = chrono::Utc::now();
    let n = 10_000_000u32;
    let t = Instant::now();
    let mut ok = 0u32;
    for i in 0..n {
        let w = validity::window(std::hint::black_box(Some(i64::from(i % 100))), 14);
        if validity::check(Some(now), w, now).is_ok() {
            ok += 1;
        }
    }
    println!(
        "validity::window+check: {:.1} ns/op ({ok} ok)",
        t.elapsed().as_nanos() as f64 / f64::from(n)
    );

    // argon2id with the defaults (19 MiB, t=2, p=1).
    let cfg = Config::default();
    let hasher = Hasher::new(&cfg.password_hashing).expect("hasher");
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        hasher
            .hash(Secret::new("akp_benchmark"))
            .await
            .expect("hash");
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "argon2id hash (m=19456 KiB, t=2, p=1): p50 {:.1} ms, max {:.1} ms",
        percentile(&times, 0.5).as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0
    );

    // The daemon in-process on SQLite with default hashing parameters.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bench.toml");
    std::fs::write(
        &path,
        format!(
            "[database]\nurl = \"sqlite://{}/bench.db\"\n",
            dir.path().display()
        ),
    )
    .expect("config");
    let config = Config::load_from(Some(&path), &[]).expect("config");
    let app = App::new(config, Arc::new(SystemClock)).await.expect("app");
    accesskeyd::users::create_local(
        &app,
        &Actor::system("bench"),
        "bench",
        Secret::new("bench password 1"),
        true,
    )
    .await
    .expect("user");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(accesskeyd::http::serve(
        app.clone(),
        listener,
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let login = client
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"username": "bench", "password": "bench password 1"}))
        .send()
        .await
        .expect("login");
    let token = login.headers()["x-sq-auth"]
        .to_str()
        .expect("token")
        .to_string();
    let mut keys = Vec::new();
    for i in 0..50 {
        let k: serde_json::Value = client
            .post(format!("{base}/api/accesskeys"))
            .header("x-sq-auth", &token)
            .json(&serde_json::json!({"name": format!("k{i}")}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        if k["keyId"].is_null() {
            break; // per-user maximum reached
        }
        keys.push((
            k["keyId"].as_str().unwrap_or_default().to_string(),
            k["password"].as_str().unwrap_or_default().to_string(),
        ));
    }
    let basic = |(k, p): &(String, String)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{k}:{p}"))
        )
    };
    let url = format!("{base}/api/users/me");

    // First use of each key: a full argon2id verification per request.
    let mut first = Vec::new();
    for k in &keys {
        let t = Instant::now();
        let r = client
            .get(&url)
            .header("authorization", basic(k))
            .send()
            .await
            .expect("req");
        assert_eq!(r.status(), 200);
        first.push(t.elapsed());
    }
    first.sort();
    println!(
        "Basic auth, first use of a key (argon2id verify): {} keys, p50 {:.1} ms, p99 {:.1} ms",
        first.len(),
        percentile(&first, 0.5).as_secs_f64() * 1000.0,
        percentile(&first, 0.99).as_secs_f64() * 1000.0
    );

    load(
        "Basic auth, repeated use of one key",
        &client,
        &url,
        ("authorization", basic(&keys[0])),
        4000,
        8,
    )
    .await;
    load(
        "Session token (x-sq-auth)",
        &client,
        &url,
        ("x-sq-auth", token.clone()),
        4000,
        8,
    )
    .await;
    let healthz = format!("{base}/healthz");
    load(
        "GET /healthz (no auth, baseline)",
        &client,
        &healthz,
        ("x-noop", String::new()),
        4000,
        8,
    )
    .await;
    println!(
        "peak RSS of the benchmark process: {:.1} MiB",
        peak_rss_mib()
    );
}
