//! A real SMTP server that keeps what it receives: `python3 smtp_sink.py` (aiosmtpd, from
//! PyPI `aiosmtpd`, which scripts/test.sh installs) on a free 127.0.0.1 port, for tests of
//! mail notifications.
//!
//! `SmtpSink::start()` speaks plain SMTP with no AUTH and no TLS (the daemon's
//! `security = "none"`); `start_with_auth()` requires AUTH PLAIN or LOGIN as `username()` /
//! `password()` before MAIL FROM, over plain text; `start_with(SmtpOptions { starttls: true,
//! .. })` also offers STARTTLS with a certificate for 127.0.0.1 and localhost signed by a
//! fresh CA (`ca_file()`) and refuses mail (and AUTH) before it.
//!
//! Every accepted message is stored in the sink's temp dir; `messages()` returns them in the
//! order received, each with its envelope, raw text and the subject, text/plain and text/html
//! parts decoded by Python's `email` package (RFC 2047 headers, quoted-printable and base64,
//! charsets). `wait_for(n, timeout)` waits until at least n have arrived.
//!
//! The script is compiled into the test binary and written into the temp dir, so it runs
//! from any working directory. The interpreter is `python3` on PATH, or
//! `$ACCESSKEYD_TEST_PYTHON`. The process is killed on drop, also when a test panics, and
//! exits by itself when the test process dies (it reads its stdin, a pipe held by this
//! struct, until end of file).
//!
//! The process is a `std::process` child read by a thread, because the crate's tokio does
//! not enable the `process` feature.

#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::process::{free_port, write_tls_files};
use serde_json::Value;
use tempfile::TempDir;

const SCRIPT: &str = include_str!("smtp_sink.py");
const USERNAME: &str = "notifier";
const PASSWORD: &str = "smtp-secret";
const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(25);

/// What the sink requires of its clients.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmtpOptions {
    /// Require AUTH PLAIN or LOGIN as `notifier` / `smtp-secret` before MAIL FROM.
    pub auth: bool,
    /// Offer STARTTLS (certificate for 127.0.0.1 and localhost, CA in `ca_file()`) and
    /// require it before MAIL FROM and AUTH.
    pub starttls: bool,
}

/// One message the sink accepted.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The envelope sender (MAIL FROM), without angle brackets; empty for `<>`.
    pub mail_from: String,
    /// The envelope recipients (RCPT TO), in order.
    pub rcpt_tos: Vec<String>,
    /// The message as received (headers and body, CRLF line ends, transfer-encoded).
    pub raw: String,
    /// The decoded Subject header; empty when there is none.
    pub subject: String,
    /// The decoded text/plain part (the body itself for a text/plain message), with `\n`
    /// line ends; empty when there is none.
    pub text: String,
    /// The decoded text/html part, with `\n` line ends; empty when there is none.
    pub html: String,
    /// All top-level headers, decoded, in order (names as sent).
    pub headers: Vec<(String, String)>,
    /// The user name the client authenticated as, when it did.
    pub auth_user: Option<String>,
}

impl Mail {
    /// The first top-level header of that name (case-insensitive), decoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct SmtpSink {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    options: SmtpOptions,
}

enum StartError {
    /// Port taken, or no "ready" in time: worth another attempt on a new port.
    Retry(String),
    Fatal(String),
}

impl SmtpSink {
    /// Plain SMTP, no AUTH, no TLS. Panics (with the server's stderr) when it cannot start.
    pub async fn start() -> SmtpSink {
        Self::start_with(SmtpOptions::default()).await
    }

    /// Plain SMTP that requires AUTH (PLAIN or LOGIN) as `username()` / `password()`.
    pub async fn start_with_auth() -> SmtpSink {
        Self::start_with(SmtpOptions {
            auth: true,
            starttls: false,
        })
        .await
    }

    /// Starts the sink on a free port and returns once it listens. Retries on another port
    /// when the port was taken meanwhile or the server did not get ready in time; panics
    /// (never skips) with its stderr when it cannot start.
    pub async fn start_with(options: SmtpOptions) -> SmtpSink {
        let dir = tempfile::Builder::new()
            .prefix("smtp-sink-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for the SMTP sink: {e}"));
        fs::write(dir.path().join("smtp_sink.py"), SCRIPT).expect("write smtp_sink.py");
        fs::create_dir(dir.path().join("mail")).expect("create the mail dir");
        if options.starttls {
            write_tls_files(dir.path());
        }
        let mut sink = SmtpSink {
            child: None,
            dir,
            port: 0,
            options,
        };
        let mut last_error = String::new();
        for attempt in 1..=START_ATTEMPTS {
            sink.port = free_port();
            match sink.spawn_and_wait().await {
                Ok(()) => return sink,
                Err(StartError::Retry(log)) => {
                    sink.stop();
                    eprintln!(
                        "SMTP sink start attempt {attempt} on port {} failed; retrying:\n{log}",
                        sink.port
                    );
                    last_error = log;
                }
                Err(StartError::Fatal(msg)) => {
                    sink.stop();
                    panic!("{msg}");
                }
            }
        }
        panic!(
            "the SMTP sink could not start in {START_ATTEMPTS} attempts; last error:\n{last_error}"
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    pub fn options(&self) -> SmtpOptions {
        self.options
    }

    /// The user AUTH accepts (when started with auth).
    pub fn username(&self) -> &str {
        USERNAME
    }

    /// The password AUTH accepts (when started with auth).
    pub fn password(&self) -> &str {
        PASSWORD
    }

    /// The PEM CA certificate that signed the STARTTLS certificate. Panics unless started
    /// with `starttls`.
    pub fn ca_file(&self) -> PathBuf {
        assert!(
            self.options.starttls,
            "ca_file(): this SMTP sink was started without starttls"
        );
        self.dir.path().join("ca.pem")
    }

    /// The messages received so far, in the order received.
    pub fn messages(&self) -> Vec<Mail> {
        let mail_dir = self.mail_dir();
        let mut numbers: Vec<u64> = fs::read_dir(&mail_dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", mail_dir.display()))
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        numbers.into_iter().map(|n| self.read_mail(n)).collect()
    }

    /// Waits until at least `n` messages have arrived and returns all received (maybe more
    /// than `n`). Panics after `timeout` with what has arrived and the server's stderr.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            let mails = self.messages();
            if mails.len() >= n {
                return mails;
            }
            if Instant::now() > deadline {
                let summary: Vec<String> = mails
                    .iter()
                    .map(|m| {
                        format!(
                            "  from {:?} to {:?}: {:?}",
                            m.mail_from, m.rcpt_tos, m.subject
                        )
                    })
                    .collect();
                panic!(
                    "the SMTP sink on port {} got {} message(s) within {timeout:?}, expected {n}:\n{}\nsink stderr:\n{}",
                    self.port,
                    mails.len(),
                    summary.join("\n"),
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The last lines the server wrote to stderr (startup errors, aiosmtpd warnings).
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.stderr_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Kills the server and reaps it. Safe to call more than once.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("smtp_sink.stderr")
    }

    fn read_mail(&self, n: u64) -> Mail {
        let base = self.mail_dir().join(n.to_string());
        let read = |ext: &str| {
            let path = base.with_extension(ext);
            fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        };
        let json = |ext: &str| -> Value {
            serde_json::from_slice(&read(ext))
                .unwrap_or_else(|e| panic!("bad JSON in message {n}.{ext}: {e}"))
        };
        let meta = json("json");
        let parsed = json("parsed.json");
        if let Some(err) = parsed.get("parse_error").and_then(Value::as_str) {
            panic!("the SMTP sink could not parse message {n}: {err}");
        }
        let string = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let lf = |s: Option<String>| s.unwrap_or_default().replace("\r\n", "\n");
        Mail {
            mail_from: string(&meta, "mail_from").unwrap_or_default(),
            rcpt_tos: meta["rcpt_tos"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            raw: String::from_utf8_lossy(&read("eml")).into_owned(),
            subject: string(&parsed, "subject").unwrap_or_default(),
            text: lf(string(&parsed, "text")),
            html: lf(string(&parsed, "html")),
            headers: parsed["headers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|h| {
                            Some((h[0].as_str()?.to_owned(), h[1].as_str()?.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            auth_user: string(&meta, "auth_user"),
        }
    }

    async fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let python = std::env::var("ACCESSKEYD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let stderr = fs::File::create(self.stderr_path()).expect("create smtp_sink.stderr");
        let mut mode = Vec::new();
        if self.options.auth {
            mode.push("auth");
        }
        if self.options.starttls {
            mode.push("starttls");
        }
        let mode = if mode.is_empty() {
            "none".to_owned()
        } else {
            mode.join(",")
        };
        let dir = self.dir.path();
        let mut cmd = Command::new(&python);
        cmd.arg(dir.join("smtp_sink.py"))
            .arg(self.port.to_string())
            .arg(self.mail_dir())
            .arg(&mode);
        if self.options.starttls {
            cmd.arg(dir.join("server.pem")).arg(dir.join("server.key"));
        }
        let mut child = cmd
            .current_dir(dir)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| StartError::Fatal(format!("cannot run {python} (on PATH?): {e}")))?;

        // Lines of stdout, read by a thread that keeps draining the pipe after "ready".
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            while let Ok(line) = rx.try_recv() {
                if line.trim() == "ready" {
                    return Ok(());
                }
            }
            let child = self.child.as_mut().expect("child");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                let log = fs::read_to_string(self.stderr_path()).unwrap_or_default();
                if log.contains("Errno 98") || log.contains("ddress already in use") {
                    return Err(StartError::Retry(log));
                }
                let hint = if log.contains("No module named 'aiosmtpd'") {
                    "\n(install it: `pip install aiosmtpd`; scripts/test.sh does)"
                } else {
                    ""
                };
                return Err(StartError::Fatal(format!(
                    "the SMTP sink ({python} smtp_sink.py, mode {mode}) exited with {status} \
                     during startup on port {}; stderr:\n{log}{hint}",
                    self.port
                )));
            }
            if Instant::now() > deadline {
                return Err(StartError::Retry(format!(
                    "no \"ready\" within {READY_TIMEOUT:?} on port {}; stderr:\n{}",
                    self.port,
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}
