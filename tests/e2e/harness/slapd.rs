//! A throwaway OpenLDAP slapd (Debian's /usr/sbin/slapd) for integration tests.
//!
//! Each `Slapd::start()` gets its own temp dir, mdb database, CA and server certificate,
//! and a pair of free 127.0.0.1 ports (ldap:// and ldaps://). Mutations go through the
//! ldap-utils CLI tools as rootdn. The process is killed on drop, also when a test panics.
//!
//! Seed data: alice, bob, carol under ou=people; the admin group (alice) and the users group
//! (alice, bob, carol) under ou=groups, with `memberOf` kept by the memberof overlay; the
//! service account, and a `limited` service account that slapd stops after 3 entries per
//! search (also paged: size.prtotal=3). The lastbind overlay sets `authTimestamp` (operational,
//! request it by name) on every successful bind.
//!
//! The CLI tools run through `std::process` inside `spawn_blocking` rather than
//! `tokio::process`, because the crate's tokio does not enable the `process` feature.

#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{free_port, write_tls_files};
use tempfile::TempDir;

const SUFFIX: &str = "dc=example,dc=org";
const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
const ROOT_PW: &str = "root-secret";
const SERVICE_DN: &str = "cn=svc,ou=services,dc=example,dc=org";
const SERVICE_PW: &str = "svc-secret";
/// A service account whose searches slapd cuts off after this many entries.
const LIMITED_DN: &str = "cn=limited,ou=services,dc=example,dc=org";
const LIMITED_PW: &str = "limited-secret";
const LIMITED_SIZE: usize = 3;
const USER_BASE: &str = "ou=people,dc=example,dc=org";
const ADMIN_GROUP_DN: &str = "cn=accesskeyd-admins,ou=groups,dc=example,dc=org";
const USERS_GROUP_DN: &str = "cn=accesskeyd-users,ou=groups,dc=example,dc=org";
/// groupOfNames needs at least one member, so each group always keeps this dangling DN and
/// `remove_from_group` can take out the last real member.
const PLACEHOLDER_MEMBER: &str = "cn=placeholder,dc=example,dc=org";
const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct LdapUser {
    pub uid: &'static str,
    pub password: &'static str,
    pub cn: &'static str,
    pub given_name: &'static str,
    pub sn: &'static str,
    pub mail: &'static str,
}

const USERS: &[LdapUser] = &[
    LdapUser {
        uid: "alice",
        password: "alice-pw",
        cn: "Alice Liddell",
        given_name: "Alice",
        sn: "Liddell",
        mail: "alice@example.org",
    },
    LdapUser {
        uid: "bob",
        password: "bob-pw",
        cn: "Bob Builder",
        given_name: "Bob",
        sn: "Builder",
        mail: "bob@example.org",
    },
    LdapUser {
        uid: "carol",
        password: "carol-pw",
        cn: "Carol Danvers",
        given_name: "Carol",
        sn: "Danvers",
        mail: "carol@example.org",
    },
];

pub struct Slapd {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    tls_port: u16,
}

impl Slapd {
    /// Starts slapd and loads the seed data. Panics (with slapd's stderr) when it cannot.
    pub async fn start() -> Slapd {
        Slapd::start_with(Overlays::All).await
    }

    /// Like `start`, without the syncprov overlay: a server that offers no change feed.
    pub async fn start_without_syncprov() -> Slapd {
        Slapd::start_with(Overlays::NoSyncprov).await
    }

    async fn start_with(overlays: Overlays) -> Slapd {
        let dir = tempfile::Builder::new()
            .prefix("slapd-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for slapd: {e}"));
        write_tls_files(dir.path());
        write_config(dir.path(), overlays);
        fs::create_dir(dir.path().join("db")).expect("create db dir");

        let mut slapd = Slapd {
            child: None,
            dir,
            port: 0,
            tls_port: 0,
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            slapd.port = free_port();
            slapd.tls_port = free_port();
            if slapd.port == slapd.tls_port {
                continue;
            }
            match slapd.spawn_and_wait().await {
                Ok(()) => {
                    slapd.ldap_tool("ldapadd", &seed_ldif()).await;
                    return slapd;
                }
                // Someone took a port between our probe and slapd's bind: try new ones.
                Err(StartError::PortInUse(stderr)) => last_error = stderr,
                Err(StartError::Fatal(msg)) => panic!("{msg}"),
            }
        }
        panic!(
            "slapd could not bind free ports after {START_ATTEMPTS} attempts; last stderr:\n{last_error}"
        );
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn service_dn(&self) -> &str {
        SERVICE_DN
    }

    pub fn service_password(&self) -> &str {
        SERVICE_PW
    }

    pub fn user_base(&self) -> &str {
        USER_BASE
    }

    pub fn admin_group_dn(&self) -> &str {
        ADMIN_GROUP_DN
    }

    /// groupOfNames with alice, bob and carol.
    pub fn users_group_dn(&self) -> &str {
        USERS_GROUP_DN
    }

    /// A service account that may read everything but gets sizeLimitExceeded (rc 4) after
    /// `limited_size()` entries of any search, paged or not.
    pub fn limited_dn(&self) -> &str {
        LIMITED_DN
    }

    pub fn limited_password(&self) -> &str {
        LIMITED_PW
    }

    pub fn limited_size(&self) -> usize {
        LIMITED_SIZE
    }

    /// slapd's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A closure that SIGKILLs this slapd from anywhere, e.g. from inside a synchronous
    /// callback while a search is streaming. Its sockets close at once; the zombie is reaped
    /// by `stop()` or drop.
    pub fn killer(&self) -> impl Fn() + Send + Sync + 'static {
        self.signaller("KILL")
    }

    /// A closure that sends `signal` (a kill(1) name such as "STOP" or "CONT") to slapd by
    /// pid. `stop()` and drop still end a stopped slapd (SIGKILL works on stopped processes).
    pub fn signaller(&self, signal: &'static str) -> impl Fn() + Send + Sync + 'static {
        let pid = self.pid().expect("slapd is running");
        move || {
            let status = Command::new("kill")
                .args([format!("-{signal}"), pid.to_string()])
                .stdin(Stdio::null())
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -{signal} {pid} failed: {status}");
            // kill(2) only queues the signal; a slapd thread busy on the other core may
            // answer one more request first. Wait until the kernel reports it stopped.
            if signal == "STOP" {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                while std::time::Instant::now() < deadline {
                    let stat =
                        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                    // Field 3, after the parenthesised command name.
                    if stat
                        .rsplit_once(')')
                        .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
                    {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }

    pub fn users() -> &'static [LdapUser] {
        USERS
    }

    /// Adds an inetOrgPerson under the user base (cn = sn = uid, mail uid@example.org).
    pub async fn add_user(&self, uid: &str, password: &str) {
        let ldif = format!(
            "dn: uid={uid},{USER_BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\n\
             sn: {uid}\nmail: {uid}@example.org\nuserPassword: {password}\n"
        );
        self.ldap_tool("ldapadd", &ldif).await;
    }

    /// Adds `{prefix}{n}` for n in 0..count (cn = sn = uid, all with `password`) in one
    /// ldapadd run.
    pub async fn add_users_bulk(&self, prefix: &str, count: usize, password: &str) {
        let mut ldif = String::with_capacity(count * 160);
        for n in 0..count {
            let uid = format!("{prefix}{n}");
            ldif.push_str(&format!(
                "dn: uid={uid},{USER_BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\n\
                 sn: {uid}\nuserPassword: {password}\n\n"
            ));
        }
        self.ldap_tool("ldapadd", &ldif).await;
    }

    pub async fn delete_user(&self, uid: &str) {
        self.ldap_tool("ldapdelete", &format!("uid={uid},{USER_BASE}\n"))
            .await;
    }

    /// Renames the entry (`uid` and RDN); its entryUUID stays, as in a real rename upstream.
    pub async fn rename_user(&self, uid: &str, new_uid: &str) {
        let ldif = format!(
            "dn: uid={uid},{USER_BASE}\nchangetype: modrdn\nnewrdn: uid={new_uid}\ndeleteoldrdn: 1\n"
        );
        self.ldap_tool("ldapmodify", &ldif).await;
    }

    /// Binds as the user with the LDAP tools, as another application would (sets
    /// authTimestamp through the lastbind overlay). Panics if the bind fails.
    pub async fn bind_as(&self, uid: &str, password: &str) {
        let url = self.url();
        let dn = format!("uid={uid},{USER_BASE}");
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            Command::new("ldapwhoami")
                .env("LDAPNOINIT", "1")
                .args(["-x", "-H", &url, "-D", &dn, "-w", &password])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        assert!(ok, "bind as {uid} failed");
    }

    pub async fn set_password(&self, uid: &str, password: &str) {
        let ldif = format!(
            "dn: uid={uid},{USER_BASE}\nchangetype: modify\nreplace: userPassword\n\
             userPassword: {password}\n"
        );
        self.ldap_tool("ldapmodify", &ldif).await;
    }

    /// Replaces an attribute of the user `uid` (sent base64-encoded, so any Unicode passes).
    pub async fn replace_attribute(&self, uid: &str, attribute: &str, value: &str) {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        let ldif = format!(
            "dn: uid={uid},{USER_BASE}\nchangetype: modify\nreplace: {attribute}\n\
             {attribute}:: {encoded}\n"
        );
        self.ldap_tool("ldapmodify", &ldif).await;
    }

    pub async fn add_to_admins(&self, uid: &str) {
        self.add_to_group(ADMIN_GROUP_DN, uid).await;
    }

    pub async fn remove_from_admins(&self, uid: &str) {
        self.remove_from_group(ADMIN_GROUP_DN, uid).await;
    }

    /// Adds the user `uid` (under the user base) as a `member` of the groupOfNames `group_dn`.
    pub async fn add_to_group(&self, group_dn: &str, uid: &str) {
        let ldif = format!(
            "dn: {group_dn}\nchangetype: modify\nadd: member\nmember: uid={uid},{USER_BASE}\n"
        );
        self.ldap_tool("ldapmodify", &ldif).await;
    }

    pub async fn remove_from_group(&self, group_dn: &str, uid: &str) {
        let ldif = format!(
            "dn: {group_dn}\nchangetype: modify\ndelete: member\nmember: uid={uid},{USER_BASE}\n"
        );
        self.ldap_tool("ldapmodify", &ldif).await;
    }

    /// Starts slapd again after `stop()` or a kill, on the same ports with the same database
    /// (what it had written survives, as after a crash); kills it first if it still runs.
    /// Panics when it does not come back within a few seconds.
    pub async fn restart(&mut self) {
        self.stop();
        // The old listening sockets are gone with the process; slapd binds with SO_REUSEADDR,
        // so only another process taking the port in the meantime could stop it.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn_and_wait().await {
                Ok(()) => return,
                Err(StartError::PortInUse(log)) if Instant::now() < deadline => {
                    eprintln!("slapd restart: a port is still in use, retrying:\n{log}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(StartError::PortInUse(log)) => {
                    panic!("slapd could not get its ports back on restart:\n{log}")
                }
                Err(StartError::Fatal(msg)) => panic!("slapd restart: {msg}"),
            }
        }
    }

    /// Kills slapd and reaps it. Safe to call more than once.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let stderr_path = self.dir.path().join("slapd.stderr");
        let stderr = fs::File::create(&stderr_path).expect("create slapd.stderr");
        let listeners = format!(
            "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
            self.port, self.tls_port
        );
        // Any -d keeps slapd in the foreground, so the pid we hold is slapd itself. `-d 0`
        // would also silence errors such as "bind(6) failed errno=98", which the retry on a
        // port collision and the panic messages need; `none` prints only those.
        let child = Command::new("/usr/sbin/slapd")
            .arg("-h")
            .arg(&listeners)
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-d")
            .arg("none")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| StartError::Fatal(format!("cannot run /usr/sbin/slapd: {e}")))?;
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let log = fs::read_to_string(&stderr_path).unwrap_or_default();
                    if log.contains("errno=98") || log.contains("Address already in use") {
                        return Err(StartError::PortInUse(log));
                    }
                    return Err(StartError::Fatal(format!(
                        "slapd exited with {status} during startup; stderr:\n{log}"
                    )));
                }
            }
            if self.tcp_ready() && self.whoami_ok().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = fs::read_to_string(&stderr_path).unwrap_or_default();
                return Err(StartError::Fatal(format!(
                    "slapd did not answer on {listeners} within {READY_TIMEOUT:?}; stderr:\n{log}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn tcp_ready(&self) -> bool {
        [self.port, self.tls_port].iter().all(|p| {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, *p));
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
    }

    async fn whoami_ok(&self) -> bool {
        let mut cmd = self.cli("ldapwhoami");
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        tokio::task::spawn_blocking(move || cmd.status().map(|s| s.success()).unwrap_or(false))
            .await
            .unwrap_or(false)
    }

    /// An ldap-utils command bound as rootdn over plain ldap://, ignoring ldap.conf.
    fn cli(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.env("LDAPNOINIT", "1")
            .args(["-H", &self.url(), "-x", "-D", ROOT_DN, "-w", ROOT_PW])
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `tool` with `input` on stdin; panics with its output when it fails.
    async fn ldap_tool(&self, tool: &str, input: &str) {
        let mut cmd = self.cli(tool);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let input = input.to_owned();
        let tool_name = tool.to_owned();
        let output = tokio::task::spawn_blocking(move || {
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {tool_name}: {e}"));
            // The tool prints a line per entry while it reads: with a large LDIF, writing all
            // of stdin before reading stdout would deadlock on full pipes. Feed it from a thread.
            let writer = child.stdin.take().map(|mut stdin| {
                let input = input.clone();
                std::thread::spawn(move || stdin.write_all(input.as_bytes()))
            });
            let out = child.wait_with_output().expect("wait for ldap tool");
            if let Some(writer) = writer {
                // A tool that failed early may have closed stdin; its exit status says why.
                let written = writer.join().expect("stdin writer thread");
                if out.status.success() {
                    written.expect("write LDIF to stdin");
                }
            }
            (out, input)
        })
        .await
        .expect("ldap tool task");
        let (out, input) = output;
        assert!(
            out.status.success(),
            "{tool} failed ({}):\nstdout: {}\nstderr: {}\ninput:\n{input}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

enum StartError {
    PortInUse(String),
    Fatal(String),
}

/// Which optional overlays the test server runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Overlays {
    All,
    NoSyncprov,
}

fn write_config(dir: &Path, overlays: Overlays) {
    let d = dir.display();
    let syncprov = match overlays {
        // Content synchronization (RFC 4533) for the change feed: a contextCSN checkpoint
        // every 100 writes or 10 minutes, and the last 1000 changes kept to replay deletions
        // to a cookie.
        Overlays::All => "overlay syncprov\nsyncprov-checkpoint 100 10\nsyncprov-sessionlog 1000\n",
        Overlays::NoSyncprov => "",
    };
    let conf = format!(
        r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema

pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb.la
moduleload memberof.la
moduleload lastbind.la
moduleload syncprov.la

TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key

database mdb
maxsize 1073741824
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {d}/db
# A test database: no fsync per write, which makes bulk loads many times faster.
dbnosync
sizelimit size.prtotal=unlimited
# The change feed's refresh is one search, not paged: the service account reads without limit.
limits dn.exact="{SERVICE_DN}" size=unlimited time=unlimited
limits dn.exact="{LIMITED_DN}" size.soft={LIMITED_SIZE} size.hard={LIMITED_SIZE} size.prtotal={LIMITED_SIZE}
index objectClass eq
index uid eq
index member,uniqueMember eq
index entryUUID,entryCSN eq

overlay memberof
memberof-refint TRUE

# authTimestamp on every successful bind (precision 0: no minimum age between updates).
overlay lastbind
lastbind-precision 0

{syncprov}
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by dn.exact="{SERVICE_DN}" read
    by dn.exact="{LIMITED_DN}" read
    by self read
    by * none
"#
    );
    fs::write(dir.join("slapd.conf"), conf).expect("write slapd.conf");
}

fn seed_ldif() -> String {
    let mut ldif = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: {USER_BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n\n\
         dn: {SERVICE_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n\
         cn: svc\nuserPassword: {SERVICE_PW}\n\n\
         dn: {LIMITED_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n\
         cn: limited\nuserPassword: {LIMITED_PW}\n\n"
    );
    for u in USERS {
        ldif.push_str(&format!(
            "dn: uid={},{USER_BASE}\nobjectClass: inetOrgPerson\nuid: {}\ncn: {}\ngivenName: {}\n\
             sn: {}\nmail: {}\nuserPassword: {}\n\n",
            u.uid, u.uid, u.cn, u.given_name, u.sn, u.mail, u.password
        ));
    }
    ldif.push_str(&format!(
        "dn: {ADMIN_GROUP_DN}\nobjectClass: groupOfNames\ncn: accesskeyd-admins\n\
         member: {PLACEHOLDER_MEMBER}\nmember: uid=alice,{USER_BASE}\n\n\
         dn: {USERS_GROUP_DN}\nobjectClass: groupOfNames\ncn: accesskeyd-users\n\
         member: {PLACEHOLDER_MEMBER}\n"
    ));
    for u in USERS {
        ldif.push_str(&format!("member: uid={},{USER_BASE}\n", u.uid));
    }
    ldif
}
