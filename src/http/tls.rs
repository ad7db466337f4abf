//! HTTPS on the public listener: the certificate and key files (`server.tls_cert_file`,
//! `server.tls_key_file`) read, checked and held behind a swap, so that a reload (SIGHUP,
//! `systemctl reload`, a change of the files) gives new handshakes the new certificate
//! while open connections carry on with theirs. A bad new file keeps the old certificate.

use crate::app::App;
use crate::config::{ConfigError, ServerConfig, TlsFiles, TlsVersion};
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

/// The settings named in errors.
const CERT_SETTING: &str = "server.tls_cert_file";
const KEY_SETTING: &str = "server.tls_key_file";

/// The protocols offered in ALPN, preferred first.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// How often the files are looked at for a change (content and metadata, so that a
/// rename over the file and a Kubernetes-style symlink swap are both seen).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// A certificate that expires within this time is warned about at start and at each reload.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// What the log, `check-config` and the metrics say about a certificate (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The leaf's subject, e.g. `CN=keys.example.com`.
    pub subject: String,
    /// The leaf's serial number, as colon-separated hex.
    pub serial: String,
    pub not_after: DateTime<Utc>,
    /// Certificates in the file: the leaf and its chain.
    pub chain_length: usize,
}

/// The listener's certificate: the one new handshakes get, and how to read it again.
pub struct ServerTls {
    files: TlsFiles,
    current: Arc<Current>,
    acceptor: tokio_rustls::TlsAcceptor,
    /// What the files looked like at the last read, and what was taken from them; held
    /// across a reload, so that two reloads (a signal and a change) do not interleave.
    state: Mutex<State>,
}

struct State {
    info: CertificateInfo,
    seen: Fingerprint,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// The certified key new handshakes get; swapped whole by a reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl Current {
    fn get(&self) -> Arc<CertifiedKey> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = key;
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

impl ServerTls {
    /// Reads and checks the files of `server`; None when it has no TLS settings. A problem
    /// is a configuration error naming the setting and the file.
    pub fn load(server: &ServerConfig) -> Result<Option<ServerTls>, ConfigError> {
        let Some(files) = server.tls() else {
            return Ok(None);
        };
        let (seen, loaded) = read_pair(&files);
        let (key, info) = loaded?;
        let current = Arc::new(Current(RwLock::new(Arc::new(key))));
        let config = server_config(current.clone(), files.min_version)?;
        Ok(Some(ServerTls {
            files,
            current,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            state: Mutex::new(State { info, seen }),
        }))
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The certificate new handshakes get.
    pub fn certificate(&self) -> CertificateInfo {
        self.lock().info.clone()
    }

    /// Handshakes with the current certificate, offering h2 and http/1.1 in ALPN.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.acceptor.clone()
    }

    /// Reads both files again. A good pair replaces the certificate for new handshakes;
    /// a bad one changes nothing and is the error. Blocking file I/O.
    pub fn reload(&self) -> Result<CertificateInfo, ConfigError> {
        let mut state = self.lock();
        let (seen, loaded) = read_pair(&self.files);
        // Remembered even when bad, so that the watcher reports a broken file once, not at
        // every look.
        state.seen = seen;
        let (key, info) = loaded?;
        self.current.set(Arc::new(key));
        state.info = info.clone();
        Ok(info)
    }

    /// Whether either file differs from its last read. Blocking file I/O.
    pub fn files_changed(&self) -> bool {
        let now = Fingerprint::of(&self.files);
        self.lock().seen != now
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a reload happened (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadCause {
    /// SIGHUP, which `systemctl reload` sends.
    Signal,
    /// The watcher saw a file change.
    FilesChanged,
}

/// What a reload did.
#[derive(Debug)]
pub enum Reloaded {
    /// No TLS settings: plain HTTP has nothing to reload.
    NothingToReload,
    /// New handshakes get this certificate.
    Replaced(CertificateInfo),
    /// The files could not be used; new handshakes still get the `kept` certificate.
    Kept {
        kept: CertificateInfo,
        error: ConfigError,
    },
}

/// The one reload path (SIGHUP, `systemctl reload`, a change of the files): reads the files
/// again, logs the outcome, warns about an expiring certificate and sets the expiry gauge.
/// Blocking file I/O; open connections are not touched.
pub fn reload(
    tls: Option<&ServerTls>,
    cause: ReloadCause,
    now: DateTime<Utc>,
    metrics: &Metrics,
) -> Reloaded {
    let Some(tls) = tls else {
        tracing::info!(
            ?cause,
            "reload: no TLS certificate is configured (server.tls_cert_file); nothing to reload"
        );
        return Reloaded::NothingToReload;
    };
    match tls.reload() {
        Ok(info) => {
            tracing::info!(
                ?cause,
                subject = %info.subject,
                serial = %info.serial,
                not_after = %info.not_after,
                "TLS certificate reloaded; new connections get it, open ones keep theirs"
            );
            note_expiry(&info, now, metrics);
            Reloaded::Replaced(info)
        }
        Err(error) => {
            let kept = tls.certificate();
            tracing::warn!(
                ?cause,
                error = %error,
                serial = %kept.serial,
                "TLS certificate not reloaded: keeping the current one"
            );
            Reloaded::Kept { kept, error }
        }
    }
}

/// At start: logs the certificate, warns if it expires soon, sets the expiry gauge.
pub fn announce(tls: &ServerTls, now: DateTime<Utc>, metrics: &Metrics) {
    let info = tls.certificate();
    tracing::info!(
        subject = %info.subject,
        serial = %info.serial,
        not_after = %info.not_after,
        chain_length = info.chain_length,
        min_version = %tls.files.min_version,
        cert_file = %tls.files.cert.display(),
        "HTTPS certificate loaded"
    );
    note_expiry(&info, now, metrics);
}

fn note_expiry(info: &CertificateInfo, now: DateTime<Utc>, metrics: &Metrics) {
    metrics.set_tls_certificate_expiry(info.not_after.timestamp());
    match expiry(info.not_after, now) {
        Expiry::Valid => {}
        Expiry::Soon { days_left } => tracing::warn!(
            subject = %info.subject,
            not_after = %info.not_after,
            days_left,
            "the TLS certificate expires within {EXPIRY_WARNING_DAYS} days: renew it \
             (a new file is picked up without a restart)"
        ),
        Expiry::Expired => tracing::warn!(
            subject = %info.subject,
            not_after = %info.not_after,
            "the TLS certificate has expired: clients refuse it; renew it"
        ),
    }
}

/// How close a certificate is to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Valid,
    /// Within [`EXPIRY_WARNING_DAYS`]; `days_left` whole days remain.
    Soon {
        days_left: i64,
    },
    Expired,
}

pub fn expiry(not_after: DateTime<Utc>, now: DateTime<Utc>) -> Expiry {
    let left = not_after - now;
    if left <= chrono::Duration::zero() {
        Expiry::Expired
    } else if left < chrono::Duration::days(EXPIRY_WARNING_DAYS) {
        Expiry::Soon {
            days_left: left.num_days(),
        }
    } else {
        Expiry::Valid
    }
}

/// Looks at the files every [`WATCH_INTERVAL`] and reloads when either changed.
pub async fn watch_files(tls: Arc<ServerTls>, app: Arc<App>) {
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (tls, app) = (tls.clone(), app.clone());
        // File reads off the runtime's threads: a hung network mount must not stall it.
        let _ = tokio::task::spawn_blocking(move || {
            if tls.files_changed() {
                reload(
                    Some(&tls),
                    ReloadCause::FilesChanged,
                    app.clock.now(),
                    &app.metrics,
                );
            }
        })
        .await;
    }
}

/// rustls's server configuration: our versions, ALPN h2 then http/1.1, the swappable key.
fn server_config(
    current: Arc<Current>,
    min_version: TlsVersion,
) -> Result<rustls::ServerConfig, ConfigError> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| invalid("server.tls_min_version", e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(current);
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
    Ok(config)
}

fn invalid(key: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message,
    }
}

/// Reads both files once: what they looked like, and the key and certificate from them.
fn read_pair(
    files: &TlsFiles,
) -> (
    Fingerprint,
    Result<(CertifiedKey, CertificateInfo), ConfigError>,
) {
    let (cert_seen, cert) = read_file(&files.cert);
    let (key_seen, key) = read_file(&files.key);
    let seen = Fingerprint {
        cert: cert_seen,
        key: key_seen,
    };
    let loaded = match (cert, key) {
        (Err(e), _) => Err(unreadable(CERT_SETTING, &files.cert, &e)),
        (_, Err(e)) => Err(unreadable(KEY_SETTING, &files.key, &e)),
        (Ok(cert), Ok(key)) => certified_key(files, &cert, &key),
    };
    (seen, loaded)
}

fn unreadable(setting: &str, path: &Path, e: &io::Error) -> ConfigError {
    invalid(setting, format!("cannot read {}: {e}", path.display()))
}

/// The certified key from the PEM text of the two files, checked: a certificate first, a
/// key rustls can sign with, and the key belonging to the certificate.
fn certified_key(
    files: &TlsFiles,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(CertifiedKey, CertificateInfo), ConfigError> {
    let cert_path = files.cert.display();
    let key_path = files.key.display();
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            invalid(
                CERT_SETTING,
                format!("{cert_path}: not a PEM certificate file ({e})"),
            )
        })?;
    let Some(leaf) = chain.first() else {
        return Err(invalid(
            CERT_SETTING,
            format!("{cert_path}: no certificate (-----BEGIN CERTIFICATE-----) in the file"),
        ));
    };
    let info = describe(leaf, chain.len())
        .map_err(|e| invalid(CERT_SETTING, format!("{cert_path}: {e}")))?;
    // The key file's own text never goes into a message: only what kind of problem it has.
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        let what = match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no private key (PKCS#8, PKCS#1 or SEC1 PEM) in the file"
            }
            _ => "not a readable PEM private key (damaged or cut short)",
        };
        invalid(KEY_SETTING, format!("{key_path}: {what}"))
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(key).map_err(|e| {
        invalid(
            KEY_SETTING,
            format!("{key_path}: the key cannot be used for TLS ({e})"),
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok((certified, info))
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(invalid(
            KEY_SETTING,
            format!(
                "the private key in {key_path} does not belong to the certificate in \
                 {cert_path} (a certificate and key from different pairs?)"
            ),
        )),
        Err(e) => Err(invalid(CERT_SETTING, format!("{cert_path}: {e}"))),
    }
}

/// Subject, serial and expiry of the leaf.
fn describe(leaf: &CertificateDer<'_>, chain_length: usize) -> Result<CertificateInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("the first certificate cannot be parsed ({e})"))?;
    let not_after = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
        .ok_or_else(|| "the certificate's end date is out of range".to_string())?;
    Ok(CertificateInfo {
        subject: cert.subject().to_string(),
        serial: cert.raw_serial_as_string(),
        not_after,
        chain_length,
    })
}

/// What the two files looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    cert: FileState,
    key: FileState,
}

impl Fingerprint {
    fn of(files: &TlsFiles) -> Fingerprint {
        Fingerprint {
            cert: read_file(&files.cert).0,
            key: read_file(&files.key).0,
        }
    }
}

/// One file as last seen: the file the path leads to (after symlinks), its modification
/// time and its content's digest; or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileState {
    Unreadable(io::ErrorKind),
    Read {
        /// Device and inode: a rename over the file or a symlink swap changes them.
        identity: (u64, u64),
        modified: Option<SystemTime>,
        digest: [u8; 32],
    },
}

/// Reads `path`: how it looks, and its bytes.
fn read_file(path: &Path) -> (FileState, io::Result<Vec<u8>>) {
    let read = std::fs::File::open(path).and_then(|mut f| {
        let meta = f.metadata()?;
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        io::Read::read_to_end(&mut f, &mut bytes)?;
        Ok((meta, bytes))
    });
    match read {
        Ok((meta, bytes)) => (
            FileState::Read {
                identity: identity(&meta),
                modified: meta.modified().ok(),
                digest: Sha256::digest(&bytes).into(),
            },
            Ok(bytes),
        ),
        Err(e) => (FileState::Unreadable(e.kind()), Err(e)),
    }
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A certificate for `name` (self-signed) with its key, as PEM text.
    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    struct Files {
        dir: tempfile::TempDir,
        files: TlsFiles,
    }

    fn files_with(cert: &str, key: &str) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("tls.pem"),
            key: dir.path().join("tls.key"),
            min_version: TlsVersion::V1_2,
        };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        Files { dir, files }
    }

    fn server(files: &TlsFiles) -> ServerConfig {
        ServerConfig {
            tls_cert_file: Some(files.cert.clone()),
            tls_key_file: Some(files.key.clone()),
            ..ServerConfig::default()
        }
    }

    fn load_err(f: &Files) -> String {
        ServerTls::load(&server(&f.files)).unwrap_err().to_string()
    }

    #[test]
    fn a_matching_pair_loads_with_its_subject_and_expiry() {
        let (cert, key) = pair("keys.example.com");
        let f = files_with(&cert, &key);
        let tls = ServerTls::load(&server(&f.files)).unwrap().unwrap();
        let info = tls.certificate();
        assert!(
            info.subject.is_empty() || info.subject.contains("CN="),
            "{info:?}"
        );
        assert!(!info.serial.is_empty());
        assert_eq!(info.chain_length, 1);
        assert!(info.not_after > Utc::now());
        assert!(ServerTls::load(&ServerConfig::default()).unwrap().is_none());
    }

    #[test]
    fn a_key_of_another_pair_is_named_as_not_belonging() {
        let (cert, _) = pair("a.example.com");
        let (_, other_key) = pair("b.example.com");
        let f = files_with(&cert, &other_key);
        let err = load_err(&f);
        assert!(err.contains("server.tls_key_file"), "{err}");
        assert!(err.contains("does not belong"), "{err}");
        assert!(err.contains(&f.files.key.display().to_string()), "{err}");
    }

    #[test]
    fn missing_swapped_and_damaged_files_are_named_without_key_material() {
        let (cert, key) = pair("keys.example.com");

        // Missing key file.
        let f = files_with(&cert, &key);
        std::fs::remove_file(&f.files.key).unwrap();
        let err = load_err(&f);
        assert!(
            err.contains("server.tls_key_file") && err.contains("cannot read"),
            "{err}"
        );
        assert!(err.contains("tls.key"), "{err}");

        // The two paths swapped: the certificate file holds a key.
        let f = files_with(&key, &cert);
        let err = load_err(&f);
        assert!(
            err.contains("server.tls_cert_file") && err.contains("no certificate"),
            "{err}"
        );

        // A key file without a key.
        let f = files_with(&cert, "just some text\n");
        let err = load_err(&f);
        assert!(err.contains("no private key"), "{err}");

        // A key cut short: named, and none of its text in the message.
        let cut = &key[..key.len() / 2];
        let f = files_with(&cert, cut);
        let err = load_err(&f);
        assert!(err.contains("server.tls_key_file"), "{err}");
        let body_line = key.lines().nth(1).unwrap();
        assert!(!err.contains(&body_line[..16]), "key text in: {err}");

        // A certificate that is not one.
        let broken = cert.replace(&cert.lines().nth(2).unwrap()[..20], "!!!!!!!!!!!!!!!!!!!!");
        let f = files_with(&broken, &key);
        let err = load_err(&f);
        assert!(err.contains("server.tls_cert_file"), "{err}");
    }

    #[test]
    fn sec1_keys_are_read_too() {
        // rcgen writes PKCS#8; SEC1 is the EC key in its own structure (PKCS#1 RSA keys
        // from openssl: the end-to-end tests).
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pkcs8 = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
        let PrivateKeyDer::Pkcs8(pkcs8) = pkcs8 else {
            panic!("rcgen wrote PKCS#8")
        };
        // The SEC1 ECPrivateKey sits in the PKCS#8 structure's last OCTET STRING.
        let der = pkcs8.secret_pkcs8_der();
        let sec1 = sec1_from_pkcs8(der);
        let pem = format!(
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
            base64_lines(&sec1)
        );
        let f = files_with(&cert.pem(), &pem);
        ServerTls::load(&server(&f.files)).unwrap().unwrap();
    }

    /// The ECPrivateKey inside a PKCS#8 PrivateKeyInfo: its `privateKey` OCTET STRING
    /// (the third element), for the small DER rcgen writes.
    fn sec1_from_pkcs8(der: &[u8]) -> Vec<u8> {
        fn header(d: &[u8]) -> (usize, usize) {
            if d[1] & 0x80 == 0 {
                (2, d[1] as usize)
            } else {
                let n = (d[1] & 0x7f) as usize;
                let len = d[2..2 + n].iter().fold(0usize, |a, b| a << 8 | *b as usize);
                (2 + n, len)
            }
        }
        let (h, _) = header(der);
        let mut rest = &der[h..];
        for _ in 0..2 {
            let (h, len) = header(rest);
            rest = &rest[h + len..];
        }
        let (h, len) = header(rest);
        assert_eq!(rest[0], 0x04, "an OCTET STRING");
        rest[h..h + len].to_vec()
    }

    fn base64_lines(der: &[u8]) -> String {
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        text.as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_reload_takes_a_good_pair_and_keeps_the_old_one_after_a_bad_one() {
        let (cert, key) = pair("old.example.com");
        let f = files_with(&cert, &key);
        let tls = ServerTls::load(&server(&f.files)).unwrap().unwrap();
        let old = tls.certificate();
        let old_key = tls.current.get();

        // A new certificate alone (its key not yet written): refused, the old one stays.
        let (new_cert, new_key) = pair("new.example.com");
        std::fs::write(&f.files.cert, &new_cert).unwrap();
        let err = tls.reload().unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
        assert_eq!(tls.certificate(), old);
        assert!(Arc::ptr_eq(&tls.current.get(), &old_key));

        // Then its key: taken.
        std::fs::write(&f.files.key, &new_key).unwrap();
        let new = tls.reload().unwrap();
        assert_ne!(new.serial, old.serial);
        assert_eq!(tls.certificate(), new);
        assert!(!Arc::ptr_eq(&tls.current.get(), &old_key));
    }

    #[test]
    fn changes_are_seen_after_a_rewrite_a_rename_over_a_symlink_swap_and_a_removal() {
        let (cert, key) = pair("keys.example.com");
        let f = files_with(&cert, &key);
        let tls = ServerTls::load(&server(&f.files)).unwrap().unwrap();
        assert!(!tls.files_changed());
        assert!(!tls.files_changed(), "looking changes nothing");

        // Rewritten in place with other bytes.
        let (cert2, key2) = pair("keys.example.com");
        std::fs::write(&f.files.cert, &cert2).unwrap();
        assert!(tls.files_changed());
        assert!(tls.reload().is_err(), "key not yet replaced");
        assert!(!tls.files_changed(), "a failed reload counts as read");

        // A new file renamed over the old one.
        let staged = f.dir.path().join("staged.key");
        std::fs::write(&staged, &key2).unwrap();
        std::fs::rename(&staged, &f.files.key).unwrap();
        assert!(tls.files_changed());
        tls.reload().unwrap();
        assert!(!tls.files_changed());

        // Kubernetes-style: the path is a symlink through `..data` to a directory that is
        // swapped whole.
        let d = tempfile::tempdir().unwrap();
        let v1 = d.path().join("v1");
        let v2 = d.path().join("v2");
        for (v, (c, k)) in [(&v1, (&cert, &key)), (&v2, (&cert2, &key2))] {
            std::fs::create_dir(v).unwrap();
            std::fs::write(v.join("tls.crt"), c).unwrap();
            std::fs::write(v.join("tls.key"), k).unwrap();
        }
        let data = d.path().join("..data");
        std::os::unix::fs::symlink(&v1, &data).unwrap();
        let files = TlsFiles {
            cert: d.path().join("tls.crt"),
            key: d.path().join("tls.key"),
            min_version: TlsVersion::V1_3,
        };
        std::os::unix::fs::symlink(data.join("tls.crt"), &files.cert).unwrap();
        std::os::unix::fs::symlink(data.join("tls.key"), &files.key).unwrap();
        let tls = ServerTls::load(&server(&files)).unwrap().unwrap();
        let first = tls.certificate();
        let tmp = d.path().join("..data_tmp");
        std::os::unix::fs::symlink(&v2, &tmp).unwrap();
        std::fs::rename(&tmp, &data).unwrap();
        assert!(tls.files_changed());
        assert_ne!(tls.reload().unwrap().serial, first.serial);
    }

    #[test]
    fn a_removed_file_is_a_change_and_a_reload_error_naming_it() {
        let (cert, key) = pair("keys.example.com");
        let f = files_with(&cert, &key);
        let tls = ServerTls::load(&server(&f.files)).unwrap().unwrap();
        std::fs::remove_file(&f.files.cert).unwrap();
        assert!(tls.files_changed());
        let err = tls.reload().unwrap_err().to_string();
        assert!(
            err.contains("server.tls_cert_file") && err.contains("tls.pem"),
            "{err}"
        );
        assert!(!tls.files_changed());
    }

    #[test]
    fn the_reload_path_reports_what_it_did() {
        let metrics = Metrics::default();
        let now = Utc::now();
        assert!(matches!(
            reload(None, ReloadCause::Signal, now, &metrics),
            Reloaded::NothingToReload
        ));
        let (cert, key) = pair("keys.example.com");
        let f = files_with(&cert, &key);
        let tls = ServerTls::load(&server(&f.files)).unwrap().unwrap();
        let Reloaded::Replaced(info) = reload(Some(&tls), ReloadCause::Signal, now, &metrics)
        else {
            panic!("not replaced")
        };
        assert!(metrics.render(false).contains(&format!(
            "accesskeyd_tls_certificate_expiry_timestamp_seconds {}",
            info.not_after.timestamp()
        )));
        std::fs::write(&f.files.key, "garbage").unwrap();
        let Reloaded::Kept { kept, error } =
            reload(Some(&tls), ReloadCause::FilesChanged, now, &metrics)
        else {
            panic!("not kept")
        };
        assert_eq!(kept, info);
        assert!(error.to_string().contains("server.tls_key_file"), "{error}");
    }

    #[test]
    fn expiry_is_judged_against_the_given_time() {
        let not_after = Utc.with_ymd_and_hms(2030, 6, 30, 12, 0, 0).unwrap();
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap();
        assert_eq!(expiry(not_after, at(2030, 1, 1)), Expiry::Valid);
        assert_eq!(expiry(not_after, at(2030, 6, 16)), Expiry::Valid);
        assert_eq!(
            expiry(not_after, at(2030, 6, 17)),
            Expiry::Soon { days_left: 13 }
        );
        assert_eq!(
            expiry(not_after, at(2030, 6, 30) - chrono::Duration::hours(1)),
            Expiry::Soon { days_left: 0 }
        );
        assert_eq!(expiry(not_after, at(2030, 6, 30)), Expiry::Expired);
        assert_eq!(expiry(not_after, at(2031, 1, 1)), Expiry::Expired);
    }
}
