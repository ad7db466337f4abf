//! HTTPS in the daemon itself, as an operator sets it up: a certificate from a private CA,
//! curl with `--cacert`, HTTP/2 through ALPN, a rotation by SIGHUP and by replacing the
//! files while a keep-alive connection stays open, a broken new file that changes nothing,
//! and the configuration errors at start.

use crate::harness::process::{accesskeyd, text, Served};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const CERT_VAR: &str = "ACCESSKEYD_SERVER__TLS_CERT_FILE";
const KEY_VAR: &str = "ACCESSKEYD_SERVER__TLS_KEY_FILE";

/// A private CA, as a company's would be, that issues server certificates for 127.0.0.1.
struct Ca {
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
    pem_path: PathBuf,
}

/// A certificate and its key, as PEM text.
struct Issued {
    cert: String,
    key: String,
}

impl Ca {
    fn new(dir: &Path) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Example Corp private CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).unwrap();
        let pem_path = dir.join("ca.pem");
        std::fs::write(&pem_path, cert.pem()).unwrap();
        Ca {
            key,
            cert,
            pem_path,
        }
    }

    /// A server certificate for 127.0.0.1 and localhost named `name`, with the CA after
    /// it in the file (a chain, as CAs deliver them).
    fn issue(&self, name: &str, serial: u64) -> Issued {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert: format!("{}{}", cert.pem(), self.cert.pem()),
            key: key.serialize_pem(),
        }
    }
}

/// Where the daemon reads its certificate and key.
struct Installed {
    cert: PathBuf,
    key: PathBuf,
}

impl Installed {
    fn at(dir: &Path) -> Installed {
        Installed {
            cert: dir.join("tls.pem"),
            key: dir.join("tls.key"),
        }
    }

    /// Puts a new pair in place the way deployment tools do: each file written beside its
    /// place and renamed over it, the key first.
    fn install(&self, issued: &Issued) {
        for (path, text) in [(&self.key, &issued.key), (&self.cert, &issued.cert)] {
            let staged = path.with_extension("new");
            std::fs::write(&staged, text).unwrap();
            std::fs::rename(&staged, path).unwrap();
        }
    }

    fn command(&self, dir: &Path) -> Command {
        let mut c = accesskeyd(dir);
        c.env(CERT_VAR, &self.cert)
            .env(KEY_VAR, &self.key)
            .env("RUST_LOG", "info");
        c
    }
}

fn address(served: &Served) -> SocketAddr {
    served
        .url
        .trim_start_matches("https://")
        .parse()
        .expect("https address")
}

/// A TLS client that trusts only `ca.pem` and offers `alpn`.
fn client(
    ca: &Path,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn http1_client(ca: &Path) -> tokio_rustls::TlsConnector {
    client(ca, &[b"http/1.1"], rustls::ALL_VERSIONS)
}

async fn connect(
    connector: &tokio_rustls::TlsConnector,
    to: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(to).await?;
    let name = rustls_pki_types::ServerName::IpAddress(to.ip().into());
    connector.connect(name, tcp).await
}

/// The subject CN of the certificate the server presented on this connection.
fn presented(stream: &TlsStream<TcpStream>) -> String {
    let certs = stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("a certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(certs[0].as_ref()).unwrap();
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default();
    name.to_string()
}

/// The name on the certificate a new connection gets.
async fn certificate_of_a_new_connection(ca: &Path, to: SocketAddr) -> String {
    let stream = connect(&http1_client(ca), to)
        .await
        .expect("TLS connection");
    presented(&stream)
}

/// Sends `GET /healthz` on an open HTTP/1.1 connection and reads the answer's status.
async fn healthz<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> u16 {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    crate::connections::read_response(stream).await.0
}

/// Waits (a bounded time) until new connections get the certificate named `name`.
async fn until_new_connections_get(ca: &Path, to: SocketAddr, name: &str) {
    let mut seen = String::new();
    for _ in 0..60 {
        seen = certificate_of_a_new_connection(ca, to).await;
        if seen == name {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("new connections still get {seen:?}, not {name:?}");
}

fn sighup(served: &Served) {
    let status = Command::new("kill")
        .args(["-HUP", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// curl's exit status, what it printed and its complaints.
fn curl(args: &[&str]) -> (i32, String, String) {
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A private CA in `dir` and, installed where the daemon's settings point, a certificate
/// it issued for `name` (serial 1) with its key.
fn installed(dir: &Path, name: &str) -> (Ca, Installed) {
    let ca = Ca::new(dir);
    let files = Installed::at(dir);
    files.install(&ca.issue(name, 1));
    (ca, files)
}

#[tokio::test]
async fn curl_with_the_company_ca_signs_in_and_uses_a_key_over_http1_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, files) = installed(dir.path(), "keys.example.com");
    let served = Served::start_with(files.command(dir.path()));
    assert!(served.url.starts_with("https://"), "{:?}", served.lines);
    let password = std::fs::read_to_string(dir.path().join("initial-admin-password"))
        .unwrap()
        .trim()
        .to_string();
    let cacert = ca.pem_path.to_str().unwrap();
    let url = |path: &str| format!("{}{path}", served.url);

    // The sign-in page's cookie is Secure: public_url is https without being set.
    let (code, out, err) = curl(&[
        "--cacert",
        cacert,
        "-D",
        "-",
        "-o",
        "/dev/null",
        &url("/ui/login"),
    ]);
    assert_eq!(code, 0, "{err}");
    let cookie = out
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: accesskeyd_login_csrf=")
        })
        .unwrap_or_else(|| panic!("no sign-in cookie: {out}"));
    assert!(cookie.contains("Secure"), "{cookie}");

    // Signing in over HTTP/1.1.
    let login = format!(r#"{{"username":"admin","password":"{password}"}}"#);
    let (code, out, err) = curl(&[
        "--cacert",
        cacert,
        "--http1.1",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-w",
        "version %{http_version} status %{http_code}",
        "-H",
        "content-type: application/json",
        "-d",
        &login,
        &url("/api/auth/login"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("version 1.1 status 200"), "{out}");
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("x-sq-auth: "))
        .unwrap_or_else(|| panic!("no token: {out}"))
        .trim()
        .to_string();

    // A key, created and used over HTTP/2.
    let (code, out, err) = curl(&[
        "--cacert",
        cacert,
        "--http2",
        "-w",
        "\nversion %{http_version}",
        "-H",
        &format!("x-sq-auth: {token}"),
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"name":"over h2"}"#,
        &url("/api/accesskeys"),
    ]);
    assert_eq!(code, 0, "{err}");
    let (body, version) = out.rsplit_once('\n').unwrap();
    assert_eq!(version, "version 2", "{out}");
    let key: serde_json::Value = serde_json::from_str(body).unwrap();
    let user = format!(
        "{}:{}",
        key["keyId"].as_str().unwrap(),
        key["password"].as_str().unwrap()
    );
    for (flag, expected) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let (code, out, err) = curl(&[
            "--cacert",
            cacert,
            flag,
            "-u",
            &user,
            "-w",
            "\nversion %{http_version} status %{http_code}",
            &url("/api/users/me"),
        ]);
        assert_eq!(code, 0, "{err}");
        let (body, tail) = out.rsplit_once('\n').unwrap();
        assert_eq!(tail, format!("version {expected} status 200"), "{out}");
        assert!(body.contains(r#""username":"admin""#), "{body}");
    }

    // Without the company CA, curl refuses the certificate (exit 60).
    let (code, _, err) = curl(&[&url("/healthz")]);
    assert_eq!(code, 60, "{err}");

    // The management listener stays plain HTTP, with the certificate's expiry in /metrics.
    let management = served.management_url.clone().expect("management listener");
    assert!(management.starts_with("http://"), "{management}");
    let metrics = reqwest::get(format!("{management}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("accesskeyd_tls_certificate_expiry_timestamp_seconds "),
        "{metrics}"
    );
}

#[tokio::test]
async fn tls_min_version_1_3_refuses_a_tls_1_2_client() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, files) = installed(dir.path(), "keys.example.com");
    let mut cmd = files.command(dir.path());
    cmd.env("ACCESSKEYD_SERVER__TLS_MIN_VERSION", "1.3");
    let served = Served::start_with(cmd);
    let to = address(&served);
    let tls12 = client(&ca.pem_path, &[b"http/1.1"], &[&rustls::version::TLS12]);
    assert!(
        connect(&tls12, to).await.is_err(),
        "a TLS 1.2 handshake succeeded"
    );
    let tls13 = client(&ca.pem_path, &[b"http/1.1"], &[&rustls::version::TLS13]);
    let mut stream = connect(&tls13, to).await.expect("TLS 1.3");
    assert_eq!(healthz(&mut stream).await, 200);
}

#[tokio::test]
async fn a_rotated_certificate_reaches_new_connections_while_an_open_one_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, files) = installed(dir.path(), "first.example.com");
    let mut cmd = files.command(dir.path());
    // The open connection must outlive both rotations.
    cmd.env("ACCESSKEYD_SERVER__KEEP_ALIVE_TIMEOUT_SECONDS", "300");
    let served = Served::start_logged(cmd);
    let to = address(&served);

    // A client with a keep-alive connection, as a long-running script has.
    let mut open = connect(&http1_client(&ca.pem_path), to).await.unwrap();
    assert_eq!(presented(&open), "first.example.com");
    assert_eq!(healthz(&mut open).await, 200);

    // Renewed, then `systemctl reload` (SIGHUP).
    files.install(&ca.issue("second.example.com", 2));
    sighup(&served);
    served.wait_for_log(
        &["TLS certificate reloaded", "Signal", "second.example.com"],
        Duration::from_secs(30),
    );
    until_new_connections_get(&ca.pem_path, to, "second.example.com").await;
    assert_eq!(
        healthz(&mut open).await,
        200,
        "the open connection was dropped"
    );
    assert_eq!(presented(&open), "first.example.com");

    // Renewed again by a tool that only replaces the files (no signal).
    files.install(&ca.issue("third.example.com", 3));
    until_new_connections_get(&ca.pem_path, to, "third.example.com").await;
    served.wait_for_log(
        &[
            "TLS certificate reloaded",
            "FilesChanged",
            "third.example.com",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(
        healthz(&mut open).await,
        200,
        "the open connection was dropped"
    );
}

#[tokio::test]
async fn a_broken_new_file_keeps_the_old_certificate_and_the_log_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, files) = installed(dir.path(), "good.example.com");
    let served = Served::start_logged(files.command(dir.path()));
    let to = address(&served);

    // A certificate file that holds no certificate (an upload gone wrong).
    std::fs::write(&files.cert, "<html>502 Bad Gateway</html>\n").unwrap();
    sighup(&served);
    let line = served.wait_for_log(&["not reloaded", "Signal"], Duration::from_secs(30));
    assert!(line.contains("server.tls_cert_file"), "{line}");
    assert!(line.contains(&files.cert.display().to_string()), "{line}");
    assert!(line.contains("no certificate"), "{line}");
    assert_eq!(
        certificate_of_a_new_connection(&ca.pem_path, to).await,
        "good.example.com"
    );

    // The right certificate back, but a key of another pair: seen as a change, refused.
    let good = ca.issue("good.example.com", 1);
    let other = ca.issue("other.example.com", 2);
    std::fs::write(&files.cert, &good.cert).unwrap();
    std::fs::write(&files.key, &other.key).unwrap();
    let line = served.wait_for_log(
        &["not reloaded", "does not belong"],
        Duration::from_secs(30),
    );
    assert!(line.contains(&files.key.display().to_string()), "{line}");
    assert_eq!(
        certificate_of_a_new_connection(&ca.pem_path, to).await,
        "good.example.com"
    );
    let mut stream = connect(&http1_client(&ca.pem_path), to).await.unwrap();
    assert_eq!(healthz(&mut stream).await, 200);

    // No key material in the log.
    let key_text = other.key.lines().nth(1).unwrap();
    assert!(!served.log().contains(key_text), "key text in the log");
}

#[tokio::test]
async fn http2_connections_end_when_idle_and_get_bounded_streams() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, files) = installed(dir.path(), "keys.example.com");
    let mut cmd = files.command(dir.path());
    cmd.env("ACCESSKEYD_SERVER__HEADER_READ_TIMEOUT_SECONDS", "2")
        .env("ACCESSKEYD_SERVER__KEEP_ALIVE_TIMEOUT_SECONDS", "2");
    let served = Served::start_with(cmd);
    let to = address(&served);
    let h2_client = client(&ca.pem_path, &[b"h2"], rustls::ALL_VERSIONS);
    let bound = Duration::from_secs(30);

    // A request, then nothing: the server ends the connection (GOAWAY) on its own.
    let tls = connect(&h2_client, to).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, connection) = h2::client::handshake(tls).await.unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("{}/healthz", served.url))
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    assert_eq!(send.current_max_send_streams(), 32);
    let ended = tokio::time::timeout(bound, connection).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection stayed open");

    // No request at all after the handshake: ended too.
    let tls = connect(&h2_client, to).await.unwrap();
    let (_send, connection) = h2::client::handshake(tls).await.unwrap();
    let ended = tokio::time::timeout(bound, connection).await;
    assert!(
        ended.is_ok(),
        "an HTTP/2 connection without requests stayed open"
    );

    // A TCP connection that never starts its handshake is closed as well.
    let mut silent = TcpStream::connect(to).await.unwrap();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(bound, silent.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a connection without a handshake stayed open"
    );
}

#[tokio::test]
async fn a_missing_file_a_wrong_key_or_half_the_settings_stop_the_start_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, files) = installed(dir.path(), "keys.example.com");

    // check-config reads and describes the pair.
    let o = files
        .command(dir.path())
        .arg("check-config")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("TLS certificate"), "{}", text(&o));
    assert!(text(&o).contains("keys.example.com"), "{}", text(&o));

    let missing = dir.path().join("missing.pem");
    let o = files
        .command(dir.path())
        .env(CERT_VAR, &missing)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&missing.display().to_string()),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("server.tls_cert_file"), "{}", text(&o));

    let other = dir.path().join("other.key");
    std::fs::write(&other, ca.issue("other.example.com", 2).key).unwrap();
    for command in ["serve", "check-config"] {
        let o = files
            .command(dir.path())
            .env(KEY_VAR, &other)
            .arg(command)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{command}: {}", text(&o));
        assert!(
            text(&o).contains(&other.display().to_string()),
            "{}",
            text(&o)
        );
        assert!(text(&o).contains("does not belong"), "{}", text(&o));
    }

    let o = accesskeyd(dir.path())
        .env(CERT_VAR, &files.cert)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("server.tls_key_file"), "{}", text(&o));

    let o = files
        .command(dir.path())
        .env("ACCESSKEYD_SERVER__TLS_MIN_VERSION", "1.1")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("tls_min_version"), "{}", text(&o));
}

#[tokio::test]
async fn an_rsa_pair_made_with_openssl_in_pkcs1_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let files = Installed::at(dir.path());
    let o = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&files.key)
        .arg("2048")
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::read_to_string(&files.key)
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-days",
            "30",
            "-subj",
            "/CN=rsa.example.com",
            "-key",
        ])
        .arg(&files.key)
        .arg("-out")
        .arg(&files.cert)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", text(&o));
    let o = files
        .command(dir.path())
        .arg("check-config")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("rsa.example.com"), "{}", text(&o));
}

#[tokio::test]
async fn sighup_without_tls_only_says_there_is_nothing_to_reload() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = accesskeyd(dir.path());
    cmd.env("RUST_LOG", "info");
    let mut served = Served::start_logged(cmd);
    sighup(&served);
    served.wait_for_log(&["nothing to reload"], Duration::from_secs(30));
    assert!(served.is_running(), "SIGHUP ended the process");
    let r = reqwest::get(format!("{}/healthz", served.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
