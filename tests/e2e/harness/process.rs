//! The daemon as a process: `accesskeyd` commands and `serve` on a free port, stopped with
//! SIGTERM (or killed) on drop, also when a test fails.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_accesskeyd");

pub fn accesskeyd(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("ACCESSKEYD_CONFIG")
        .env("ACCESSKEYD_PASSWORD_HASHING__MEMORY_KIB", "256")
        .env("RUST_LOG", "warn");
    c
}

pub fn run_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn accesskeyd");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A port that was free a moment ago; a server started on it may still lose a race for it
/// (the harnesses retry their start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `serve` process, stopped with SIGTERM (then killed) on drop.
pub struct Served {
    pub child: Child,
    pub lines: Vec<String>,
    pub url: String,
    /// The management listener (`/metrics`, `/healthz`, `/readyz`) as `serve` printed it;
    /// None when it is off.
    pub management_url: Option<String>,
    /// What it logs (stderr), when started with [`Served::start_logged`].
    log: Option<std::sync::Arc<std::sync::Mutex<String>>>,
}

/// The variable of `server.management_listen`.
pub const MANAGEMENT_LISTEN_VAR: &str = "ACCESSKEYD_SERVER__MANAGEMENT_LISTEN";

impl Served {
    /// `serve` in `dir` with no configuration file (the embedded default).
    pub fn start(dir: &Path) -> Served {
        Self::start_with(accesskeyd(dir))
    }

    /// `serve` from `cmd` (which may add `--config` and variables) on a free port, with the
    /// management listener on a port of its choosing unless `cmd` sets
    /// `ACCESSKEYD_SERVER__MANAGEMENT_LISTEN` itself (tests run side by side: the default
    /// port would be taken).
    pub fn start_with(cmd: Command) -> Served {
        Self::spawn(cmd, false)
    }

    /// As [`Served::start_with`], keeping what the process logs for [`Served::log`].
    pub fn start_logged(cmd: Command) -> Served {
        Self::spawn(cmd, true)
    }

    /// What the process has logged so far (started with [`Served::start_logged`]).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .map(|l| l.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// Waits (a bounded time) for a log line containing every one of `needles`; returns it.
    pub fn wait_for_log(&self, needles: &[&str], bound: Duration) -> String {
        let started = std::time::Instant::now();
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_string();
            }
            assert!(
                started.elapsed() < bound,
                "no log line with {needles:?} within {bound:?}; the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn spawn(mut cmd: Command, logged: bool) -> Served {
        let port = free_port();
        if !cmd.get_envs().any(|(k, _)| k == MANAGEMENT_LISTEN_VAR) {
            cmd.env(MANAGEMENT_LISTEN_VAR, "127.0.0.1:0");
        }
        let mut child = cmd
            .arg("serve")
            .env("ACCESSKEYD_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(if logged {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .expect("spawn serve");
        let log = child.stderr.take().map(|stderr| {
            let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    // Shown too, as an inherited stderr would be.
                    eprintln!("{line}");
                    let mut text = sink.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                }
            });
            log
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("serve did not start; output so far: {lines:?}"));
            let done = line.contains("listening on");
            lines.push(line);
            if done {
                break;
            }
        }
        // Printed before the `listening on` line.
        let management_url = lines.iter().find_map(|l| {
            l.strip_prefix("accesskeyd management on ")
                .map(str::to_string)
        });
        // https:// when it serves TLS (`server.tls_cert_file`).
        let scheme = if lines.last().is_some_and(|l| l.contains("https://")) {
            "https"
        } else {
            "http"
        };
        Served {
            child,
            lines,
            url: format!("{scheme}://127.0.0.1:{port}"),
            management_url,
            log,
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `ca.pem`, `server.pem` and `server.key` into `dir`: a fresh CA and a server
/// certificate for 127.0.0.1 and localhost signed by it (slapd's LDAPS, the SMTP sink's
/// STARTTLS).
pub fn write_tls_files(dir: &std::path::Path) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "accesskeyd test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");

    let key = rcgen::KeyPair::generate().expect("server key");
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("sign server cert");

    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
    std::fs::write(dir.join("server.pem"), cert.pem()).expect("write server.pem");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("write server.key");
}
