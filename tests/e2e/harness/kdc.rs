//! A throwaway MIT Kerberos KDC (Debian's /usr/sbin/krb5kdc) for Kerberos/SPNEGO tests.
//!
//! Each `Kdc::start(realm)` creates a fresh realm (db2 database, stash, empty ACL) in its own
//! temp dir, driven only by `KRB5_CONFIG` and `KRB5_KDC_PROFILE` pointing into that dir, and
//! runs `krb5kdc -n` in the foreground on a free 127.0.0.1 port (UDP and TCP). Principals are
//! added with `kadmin.local`, tickets obtained with `kinit`. The KDC is killed on drop, also
//! when a test panics.
//!
//! Clients and the service under test must use `krb5_config()` as `KRB5_CONFIG` (it has the
//! realm's `kdc = 127.0.0.1:PORT`, no DNS lookups and no reverse DNS; `localhost` maps to the
//! realm). A service reads its key from the file `add_service` returns (`KRB5_KTNAME=FILE:..`);
//! a client uses the cache `kinit` returns (`KRB5CCNAME=FILE:..`).
//!
//! krb5kdc binds with SO_REUSEPORT, so a second krb5kdc on the same port would silently share
//! it instead of failing: after startup we count the sockets on our port in /proc/net and
//! retry on another port when anything else holds it (or when krb5kdc cannot bind at all).
//!
//! The tools run through `std::process` inside `spawn_blocking` rather than `tokio::process`,
//! because the crate's tokio does not enable the `process` feature.

#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const KRB5KDC: &str = "/usr/sbin/krb5kdc";
const MASTER_PW: &str = "master-secret";
const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// A principal that never exists: the KDC answering "not found" for it proves it serves.
const PROBE_PRINCIPAL: &str = "readiness-probe";

pub struct Kdc {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    realm: String,
    caches: AtomicUsize,
}

enum StartError {
    PortInUse(String),
    Fatal(String),
}

impl Kdc {
    /// Creates the realm and starts krb5kdc on a free port; returns once the KDC answers an
    /// AS request. Panics (with the KDC's log tail) when it cannot; never skips.
    pub async fn start(realm: &str) -> Kdc {
        let dir = tempfile::Builder::new()
            .prefix("kdc-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for the KDC: {e}"));
        let mut kdc = Kdc {
            child: None,
            dir,
            port: 0,
            realm: realm.to_owned(),
            caches: AtomicUsize::new(0),
        };
        fs::write(kdc.dir.path().join("kadm5.acl"), "").expect("write kadm5.acl");

        let mut last_error = String::new();
        for attempt in 0..START_ATTEMPTS {
            kdc.port = free_port();
            kdc.write_config();
            if attempt == 0 {
                // The database does not depend on the port; create it once.
                let out = kdc
                    .run(
                        "kdb5_util",
                        &["create", "-s", "-r", realm, "-P", MASTER_PW],
                        None,
                    )
                    .await;
                assert!(
                    out.status.success(),
                    "kdb5_util create failed for realm {realm}: {}",
                    text(&out)
                );
            }
            match kdc.spawn_and_wait().await {
                Ok(()) => return kdc,
                Err(StartError::PortInUse(log)) => {
                    kdc.stop();
                    last_error = log;
                }
                Err(StartError::Fatal(msg)) => {
                    kdc.stop();
                    panic!("{msg}");
                }
            }
        }
        panic!(
            "krb5kdc could not get a port of its own after {START_ATTEMPTS} attempts; \
             last log:\n{last_error}"
        );
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The krb5.conf for clients and the service under test (set as `KRB5_CONFIG`).
    pub fn krb5_config(&self) -> PathBuf {
        self.dir.path().join("krb5.conf")
    }

    /// The kdc.conf (`KRB5_KDC_PROFILE`) of this realm.
    pub fn kdc_profile(&self) -> PathBuf {
        self.dir.path().join("kdc.conf")
    }

    /// `name@REALM` unless `name` already names a realm.
    pub fn principal(&self, name: &str) -> String {
        if name.contains('@') {
            name.to_owned()
        } else {
            format!("{name}@{}", self.realm)
        }
    }

    /// Adds a user principal with a password.
    pub async fn add_user(&self, name: &str, password: &str) {
        let principal = self.principal(name);
        self.kadmin(&format!("addprinc -pw \"{password}\" {principal}"))
            .await;
    }

    /// Adds a service principal (e.g. `HTTP/localhost`) with a random key and exports it
    /// into a keytab file of its own; returns that keytab's path (use as `KRB5_KTNAME`).
    pub async fn add_service(&self, principal: &str) -> PathBuf {
        let principal = self.principal(principal);
        let keytab = self
            .dir
            .path()
            .join(format!("{}.keytab", sanitize(&principal)));
        self.kadmin(&format!("addprinc -randkey {principal}")).await;
        self.kadmin(&format!("ktadd -k {} {principal}", keytab.display()))
            .await;
        assert!(keytab.is_file(), "ktadd wrote no {}", keytab.display());
        keytab
    }

    /// Runs `kinit` for the user; returns the path of a fresh credentials cache holding the
    /// TGT (use as `KRB5CCNAME=FILE:<path>`). Panics with kinit's output when it fails.
    pub async fn kinit(&self, name: &str, password: &str) -> PathBuf {
        let principal = self.principal(name);
        let n = self.caches.fetch_add(1, Ordering::SeqCst);
        let cache = self
            .dir
            .path()
            .join(format!("cc-{}-{n}", sanitize(&principal)));
        let ccname = format!("FILE:{}", cache.display());
        let out = self
            .run_with(
                "kinit",
                &["-c", &ccname, &principal],
                Some(format!("{password}\n")),
                &[("KRB5CCNAME", &ccname)],
            )
            .await;
        assert!(
            out.status.success() && cache.is_file(),
            "kinit {principal} failed ({}): {}\nKDC log:\n{}",
            out.status,
            text(&out),
            self.log_tail()
        );
        cache
    }

    /// The last lines of the KDC's log and stderr.
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        for f in ["kdc.log", "krb5kdc.stderr"] {
            let content = fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            let lines: Vec<&str> = content.lines().collect();
            let from = lines.len().saturating_sub(30);
            s.push_str(&format!("--- {f}\n{}\n", lines[from..].join("\n")));
        }
        s
    }

    /// Kills the KDC and reaps it. Safe to call more than once.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn write_config(&self) {
        let dir = self.dir.path().display();
        let (realm, port) = (&self.realm, self.port);
        let krb5_conf = format!(
            "[libdefaults]\n\
             \x20default_realm = {realm}\n\
             \x20dns_lookup_kdc = false\n\
             \x20dns_lookup_realm = false\n\
             \x20dns_canonicalize_hostname = false\n\
             \x20rdns = false\n\
             \x20ignore_acceptor_hostname = false\n\
             [realms]\n\
             \x20{realm} = {{\n\
             \x20 kdc = 127.0.0.1:{port}\n\
             \x20}}\n\
             [domain_realm]\n\
             \x20localhost = {realm}\n\
             \x20.localhost = {realm}\n"
        );
        let kdc_conf = format!(
            "[kdcdefaults]\n\
             \x20kdc_listen = 127.0.0.1:{port}\n\
             \x20kdc_tcp_listen = 127.0.0.1:{port}\n\
             [realms]\n\
             \x20{realm} = {{\n\
             \x20 database_name = {dir}/principal\n\
             \x20 key_stash_file = {dir}/stash\n\
             \x20 acl_file = {dir}/kadm5.acl\n\
             \x20 kdc_listen = 127.0.0.1:{port}\n\
             \x20 kdc_tcp_listen = 127.0.0.1:{port}\n\
             \x20}}\n\
             [logging]\n\
             \x20kdc = FILE:{dir}/kdc.log\n\
             \x20default = FILE:{dir}/kdc.log\n"
        );
        fs::write(self.krb5_config(), krb5_conf).expect("write krb5.conf");
        fs::write(self.kdc_profile(), kdc_conf).expect("write kdc.conf");
    }

    async fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let log_path = self.dir.path().join("kdc.log");
        let _ = fs::write(&log_path, "");
        let stderr = fs::File::create(self.dir.path().join("krb5kdc.stderr"))
            .expect("create krb5kdc.stderr");
        let child = self
            .command(KRB5KDC)
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| StartError::Fatal(format!("cannot run {KRB5KDC}: {e}")))?;
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let log = self.log_tail();
                    if log.contains("Address already in use") {
                        return Err(StartError::PortInUse(log));
                    }
                    return Err(StartError::Fatal(format!(
                        "krb5kdc exited with {status} during startup on port {}; log:\n{log}",
                        self.port
                    )));
                }
            }
            let started = fs::read_to_string(&log_path)
                .map(|l| l.contains("commencing operation"))
                .unwrap_or(false);
            if started && self.answers().await {
                // Another krb5kdc (SO_REUSEPORT) may share the port and take our requests.
                let (tcp, udp) = (sockets_on("tcp", self.port), sockets_on("udp", self.port));
                if tcp != 1 || udp != 1 {
                    return Err(StartError::PortInUse(format!(
                        "port {} is shared ({tcp} tcp listeners, {udp} udp sockets)\n{}",
                        self.port,
                        self.log_tail()
                    )));
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StartError::Fatal(format!(
                    "krb5kdc did not answer on 127.0.0.1:{} within {READY_TIMEOUT:?}; log:\n{}",
                    self.port,
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// An AS request for a principal that does not exist: "not found" means the KDC serves.
    async fn answers(&self) -> bool {
        let ccname = format!("FILE:{}", self.dir.path().join("probe-cc").display());
        let probe = self.principal(PROBE_PRINCIPAL);
        let out = self
            .run_with("kinit", &["-c", &ccname, &probe], None, &[])
            .await;
        text(&out).contains("not found in Kerberos database")
    }

    async fn kadmin(&self, query: &str) {
        let out = self
            .run("kadmin.local", &["-r", &self.realm, "-q", query], None)
            .await;
        // kadmin.local -q exits 0 even when the query fails; failures print "... while ...".
        let output = text(&out);
        assert!(
            out.status.success() && !output.contains(" while "),
            "kadmin.local -q {query:?} failed ({}): {output}",
            out.status
        );
    }

    /// A command with this realm's configuration and no inherited Kerberos state.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.dir.path())
            .env("KRB5_CONFIG", self.krb5_config())
            .env("KRB5_KDC_PROFILE", self.kdc_profile())
            .env(
                "KRB5CCNAME",
                format!("FILE:{}", self.dir.path().join("default-cc").display()),
            )
            .env(
                "KRB5_KTNAME",
                format!("FILE:{}", self.dir.path().join("default.keytab").display()),
            )
            .env_remove("KRB5_CLIENT_KTNAME")
            .env_remove("KRB5_TRACE");
        cmd
    }

    async fn run(&self, program: &str, args: &[&str], stdin: Option<String>) -> Output {
        self.run_with(program, args, stdin, &[]).await
    }

    async fn run_with(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<String>,
        envs: &[(&str, &str)],
    ) -> Output {
        let mut cmd = self.command(program);
        cmd.args(args)
            .envs(envs.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let name = program.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
            if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
                // Small input: the tool reads it before writing much, so no deadlock.
                let _ = pipe.write_all(input.as_bytes());
            }
            child
                .wait_with_output()
                .unwrap_or_else(|e| panic!("wait for {name}: {e}"))
        })
        .await
        .expect("Kerberos tool task")
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A 127.0.0.1 port free for both TCP and UDP right now.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Sockets bound to local `port` in /proc/net/{tcp,udp} (and the v6 tables): TCP in LISTEN
/// state, UDP in any state.
fn sockets_on(proto: &str, port: u16) -> usize {
    let want = format!(":{port:04X}");
    [proto.to_owned(), format!("{proto}6")]
        .iter()
        .map(|table| {
            fs::read_to_string(Path::new("/proc/net").join(table))
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter(|line| {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    cols.len() > 3
                        && cols[1].ends_with(&want)
                        && (proto == "udp" || cols[3] == "0A")
                })
                .count()
        })
        .sum()
}
