//! `serve` as systemd runs it: the notifications of `Type=notify` (ready, watchdog, reload,
//! stopping) on a socket the test listens on, and secrets handed over as credentials
//! (`LoadCredential=`, read from `$CREDENTIALS_DIRECTORY`).

use crate::harness::daemon::{config_toml, LDAP_DIR};
use crate::harness::db::TestDatabase;
use crate::harness::process::{accesskeyd, text, Served};
use crate::harness::slapd::Slapd;
use reqwest::StatusCode;
use serde_json::json;
use std::process::Command;
use std::time::Duration;
use tokio::net::UnixDatagram;

/// The next notification (one datagram, its `KEY=value` lines) systemd would receive.
async fn next(socket: &UnixDatagram) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), socket.recv(&mut buf))
        .await
        .expect("no notification from serve within 30 s")
        .expect("read the notification socket");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Notifications up to and including the first that holds `line`, at most 50.
async fn until(socket: &UnixDatagram, line: &str) -> Vec<Vec<String>> {
    let mut seen = Vec::new();
    for _ in 0..50 {
        let message = next(socket).await;
        let done = message.iter().any(|l| l == line);
        seen.push(message);
        if done {
            return seen;
        }
    }
    panic!("no {line} among {seen:?}");
}

fn sends(messages: &[Vec<String>], line: &str) -> usize {
    messages
        .iter()
        .filter(|m| m.iter().any(|l| l == line))
        .count()
}

#[tokio::test]
async fn under_systemd_serve_says_ready_feeds_the_watchdog_reloads_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();

    // systemd sets WATCHDOG_PID to the service's main process; `exec` keeps the shell's
    // pid, so the shell can name it before it becomes accesskeyd.
    let base = accesskeyd(dir.path());
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(base.get_program())
        .current_dir(dir.path());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.env("NOTIFY_SOCKET", &socket_path)
        // WatchdogSec=1s: fed every half second.
        .env("WATCHDOG_USEC", "1000000");
    let mut served = Served::start_with(cmd);
    let http = reqwest::Client::new();

    // READY=1 once it serves: the listener answers as soon as systemd hears it.
    let before_ready = until(&socket, "READY=1").await;
    let health = http
        .get(format!("{}/healthz", served.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(
        before_ready
            .last()
            .unwrap()
            .iter()
            .any(|l| l == "STATUS=serving"),
        "{before_ready:?}"
    );

    // The runtime feeds the watchdog, again and again.
    let mut fed = 0;
    for _ in 0..20 {
        if next(&socket).await.iter().any(|l| l == "WATCHDOG=1") {
            fed += 1;
        }
        if fed == 3 {
            break;
        }
    }
    assert_eq!(fed, 3, "WATCHDOG=1 did not keep coming");

    // `systemctl reload` (ExecReload: SIGHUP): reloading, then ready again, still serving.
    let hup = Command::new("kill")
        .args(["-HUP", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let reload = until(&socket, "RELOADING=1").await;
    let reloading = reload.last().unwrap();
    assert!(
        reloading.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    until(&socket, "READY=1").await;
    assert!(served.is_running(), "SIGHUP ended the process");
    let health = http
        .get(format!("{}/healthz", served.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // `systemctl stop` (SIGTERM): STOPPING=1 as shutdown begins, and the process exits.
    served.stop();
    assert!(!served.is_running());
    let last = until(&socket, "STOPPING=1").await;
    assert_eq!(sends(&last, "READY=1"), 0, "{last:?}");
}

#[tokio::test]
async fn without_notify_socket_a_watchdog_variable_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = accesskeyd(dir.path());
    cmd.env_remove("NOTIFY_SOCKET").env("WATCHDOG_USEC", "1000");
    let mut served = Served::start_with(cmd);
    let health = reqwest::get(format!("{}/healthz", served.url))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    served.stop();
}

#[tokio::test]
async fn secrets_handed_over_by_load_credential_are_read_from_the_credentials_directory() {
    let slapd = Slapd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path());
    // systemd's copy of root-only files: /run/credentials/accesskeyd.service/NAME.
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(
        creds.join("ldap-bind-password"),
        format!("{}\n", slapd.service_password()),
    )
    .unwrap();
    std::fs::write(creds.join("database-url"), format!("{}\n", db.url())).unwrap();

    // The LDAP service password from a credential named in the file, the database URL from
    // one named in the environment (the other spelling).
    let toml = config_toml("sqlite://nowhere/not-used.db", Some(&slapd), "");
    let password_line = format!("bind_password = \"{}\"", slapd.service_password());
    assert!(toml.contains(&password_line));
    let toml = toml.replace(
        &password_line,
        "bind_password_file = \"$CREDENTIALS_DIRECTORY/ldap-bind-password\"",
    );
    let cfg = dir.path().join("accesskeyd.toml");
    std::fs::write(&cfg, toml).unwrap();
    let with_credentials = |creds_dir: Option<&std::path::Path>| {
        let mut c = accesskeyd(dir.path());
        c.arg("--config")
            .arg(&cfg)
            .env(
                "ACCESSKEYD_DATABASE__URL_FILE",
                "${CREDENTIALS_DIRECTORY}/database-url",
            )
            .env_remove("CREDENTIALS_DIRECTORY");
        if let Some(d) = creds_dir {
            c.env("CREDENTIALS_DIRECTORY", d);
        }
        c
    };

    let o = with_credentials(Some(&creds))
        .arg("check-config")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("directory {LDAP_DIR} (ldap")),
        "{}",
        text(&o)
    );

    // Serve binds to LDAP with the password from the credential: bob logs in.
    let served = Served::start_with(with_credentials(Some(&creds)));
    let login = reqwest::Client::new()
        .post(format!("{}/api/auth/login", served.url))
        .json(&json!({"username": "bob", "password": "bob-pw", "authProviderId": LDAP_DIR}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    drop(served);

    // Not started with LoadCredential: a configuration error naming the setting.
    let o = with_credentials(None).arg("check-config").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("database.url_file"), "{}", text(&o));
    assert!(
        text(&o).contains("CREDENTIALS_DIRECTORY is not set"),
        "{}",
        text(&o)
    );

    // A credential the unit does not load: the setting and the file are named.
    std::fs::remove_file(creds.join("ldap-bind-password")).unwrap();
    let o = with_credentials(Some(&creds))
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("bind_password_file"), "{out}");
    assert!(out.contains("credentials/ldap-bind-password"), "{out}");
    assert!(!out.contains(slapd.service_password()), "{out}");
}
