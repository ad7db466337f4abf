//! The management listener: `/metrics` for Prometheus on an address of its own
//! (`server.management_listen`), never on the public one; the probes on both.

use crate::harness::daemon::{Auth, Client, Daemon};
use crate::harness::process::{accesskeyd, free_port, Served, MANAGEMENT_LISTEN_VAR};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

fn client_of(base: &str) -> Client {
    Client {
        base: base.to_string(),
        http: reqwest::Client::new(),
        auth: Auth::None,
    }
}

/// What an operator checks on a fresh daemon: public and management URLs.
async fn assert_split(public: &Client, management: &Client) {
    // Anyone who reaches the API does not get the numbers.
    let m = public.get("/metrics").await;
    assert_eq!(m.status, StatusCode::NOT_FOUND, "{}", m.body);
    assert_eq!(m.body["statusMessage"], "no such endpoint");

    // Prometheus scrapes them on the management listener.
    let m = management.get("/metrics").await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.body);
    assert_eq!(
        m.headers["content-type"].to_str().unwrap(),
        "text/plain; version=0.0.4"
    );
    let text = m.body.as_str().unwrap();
    assert!(
        text.contains("# TYPE accesskeyd_job_leader gauge"),
        "{text}"
    );
    assert!(
        text.contains("accesskeyd_password_hashing_queued"),
        "{text}"
    );

    // Load balancers and the orchestrator may probe either.
    for c in [public, management] {
        let h = c.get("/healthz").await;
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.body, "ok\n");
        let r = c.get("/readyz").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, "ready\n");
    }

    // The management listener serves nothing else.
    for path in ["/api/users/me", "/api/system/server-status", "/ui/login"] {
        assert_eq!(
            management.get(path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

#[tokio::test]
async fn metrics_are_on_the_management_listener_and_not_on_the_public_one() {
    let d = Daemon::start(None).await;
    assert_split(&d.client(), &d.management()).await;
    // The numbers move with what happens on the public side.
    d.admin().await;
    assert!(d
        .metrics()
        .await
        .contains("accesskeyd_logins_total{outcome=\"success\"} 1"));
}

#[tokio::test]
async fn serve_prints_the_management_address_and_serves_metrics_there() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path());
    let line = served
        .lines
        .iter()
        .find(|l| l.starts_with("accesskeyd management on http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no management line in {:?}", served.lines));
    let management = served.management_url.clone().unwrap();
    assert!(line.ends_with(&management), "{line}");
    assert!(
        !management.ends_with(":0"),
        "the bound port, not the configured 0"
    );
    assert_split(&client_of(&served.url), &client_of(&management)).await;
}

#[tokio::test]
async fn an_empty_management_listen_turns_the_listener_off() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("accesskeyd.toml");
    std::fs::write(&config, "[server]\nmanagement_listen = \"\"\n").unwrap();
    let mut cmd = accesskeyd(dir.path());
    // The file says off; nothing in the environment says otherwise.
    cmd.arg("--config")
        .arg(&config)
        .env_remove(MANAGEMENT_LISTEN_VAR);
    let served = Served::start_with(cmd);
    assert_eq!(served.management_url, None, "{:?}", served.lines);
    assert!(
        !served.lines.iter().any(|l| l.contains("management")),
        "{:?}",
        served.lines
    );
    let public = client_of(&served.url);
    assert_eq!(public.get("/metrics").await.status, StatusCode::NOT_FOUND);
    assert_eq!(public.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(public.get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn serve_stops_when_the_management_address_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut child = accesskeyd(dir.path())
        .arg("serve")
        .env(
            "ACCESSKEYD_SERVER__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(MANAGEMENT_LISTEN_VAR, &address)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running with its management address taken");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on {address} (server.management_listen)"
        )),
        "{stderr}"
    );
    // It never said it was up.
    assert!(!stdout.contains("listening on"), "{stdout}");
    drop(taken);
}
