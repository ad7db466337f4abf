//! The TLS trust of an LDAP directory with its own CA file (`ca_file`).

use std::fs;
use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::CertificateDer;

use crate::directory::DirectoryError;

/// A PEM error in words: the markers and lines it names as text, not as byte lists.
pub(super) fn pem_error_text(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "the line \"-----END {}-----\" is missing",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("illegal section start: {:?}", String::from_utf8_lossy(line))
        }
        other => other.to_string(),
    }
}

pub(super) fn load_tls_config(path: &Path) -> Result<Arc<ClientConfig>, DirectoryError> {
    let shown = path.display();
    let bad = |msg: String| DirectoryError::Misconfigured(msg);
    let pem = fs::read(path).map_err(|e| bad(format!("cannot read ca_file {shown}: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            bad(format!(
                "ca_file {shown} is not valid PEM: {}",
                pem_error_text(&e)
            ))
        })?;
        roots.add(cert).map_err(|e| {
            bad(format!(
                "ca_file {shown} holds an unusable certificate: {e}"
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(bad(format!("ca_file {shown} contains no PEM certificate")));
    }
    // An explicit provider keeps this independent of whatever default the process installed.
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}
