//! The signature of a secret scanner's report, pure: GitHub's public keys document
//! (`{"public_keys": [{"key_identifier", "key" (PEM SPKI), "is_current"}]}`) and the check of
//! an ECDSA P-256 / SHA-256 signature (base64 of DER) over the report's raw body.

use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde::Deserialize;
use std::str::FromStr;

/// Keys of one document beyond this many are ignored.
const MAX_KEYS: usize = 64;

/// Longest key identifier or signature header read, in bytes (GitHub's are 64 and about 96).
pub const MAX_HEADER_BYTES: usize = 512;

/// The scanner's keys, by identifier.
#[derive(Clone, Default)]
pub struct PublicKeys {
    keys: Vec<(String, VerifyingKey)>,
}

impl std::fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(id, _)| id))
            .finish()
    }
}

impl PublicKeys {
    /// Does the document hold a key with this identifier?
    pub fn knows(&self, key_identifier: &str) -> bool {
        self.key(key_identifier).is_some()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn key(&self, key_identifier: &str) -> Option<&VerifyingKey> {
        self.keys
            .iter()
            .find(|(id, _)| id == key_identifier)
            .map(|(_, k)| k)
    }
}

/// Reads GitHub's public keys document. A key that is not a P-256 public key in PEM is
/// skipped, not fatal (the document may one day hold keys of another kind); a retired key
/// (`is_current: false`) is kept, since reports signed before the rotation still arrive.
pub fn parse_public_keys(body: &[u8]) -> Result<PublicKeys, String> {
    #[derive(Deserialize)]
    struct Document {
        public_keys: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        key_identifier: String,
        key: String,
    }
    let doc: Document = serde_json::from_slice(body)
        .map_err(|e| format!("not a public keys document ({{\"public_keys\": [...]}}): {e}"))?;
    let keys: Vec<(String, VerifyingKey)> = doc
        .public_keys
        .into_iter()
        .take(MAX_KEYS)
        .filter_map(|e| {
            VerifyingKey::from_str(e.key.trim())
                .ok()
                .map(|k| (e.key_identifier, k))
        })
        .collect();
    if keys.is_empty() {
        return Err("the document holds no P-256 public key".into());
    }
    Ok(PublicKeys { keys })
}

/// Why a report's signature was refused (for the log; the caller reads one fixed text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no Github-Public-Key-Identifier or Github-Public-Key-Signature header")]
    Missing,
    #[error("key identifier `{0}` is not among the scanner's keys")]
    UnknownKey(String),
    #[error("the signature is not base64 of a DER ECDSA signature")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks `signature` (base64 of a DER ECDSA signature) over `body` with the key named
/// `key_identifier`.
pub fn verify(
    keys: &PublicKeys,
    key_identifier: &str,
    signature: &str,
    body: &[u8],
) -> Result<(), Refusal> {
    let key = keys
        .key(key_identifier)
        .ok_or_else(|| Refusal::UnknownKey(key_identifier.chars().take(80).collect()))?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| Refusal::Malformed)?;
    let sig = Signature::from_der(&der).map_err(|_| Refusal::Malformed)?;
    key.verify(body, &sig).map_err(|_| Refusal::Mismatch)
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! A real example and a key pair of our own, for the tests of this folder.
    use base64::Engine;

    /// The example of GitHub's partner-program documentation (key, body and signature).
    pub const GITHUB_KEY_ID: &str =
        "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a";
    pub const GITHUB_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9MJJHnMfn2+H4xL4YaPDA4RpJqUq\nkCmRCBnYERxZanmcpzQSXs1X/AljlKkbJ8qpVIW4clayyef9gWhFbNHWAA==\n-----END PUBLIC KEY-----\n";
    pub const GITHUB_BODY: &[u8] =
        br#"[{"token":"some_token","type":"some_type","url":"some_url"}]"#;
    pub const GITHUB_SIGNATURE: &str =
        "MEUCIQDKZokqnCjrRtw0tni+2Ltvl/uiMJ1EGumEsp1BsNr32AIgQY1YXD2nlj+XNfGK4rBfkMJ1JDOQcYXxa2sY8FNkrKc=";

    pub fn github_document() -> String {
        serde_json::json!({"public_keys": [
            {"key_identifier": "retired", "key": "not a key", "is_current": false},
            {"key_identifier": GITHUB_KEY_ID, "key": GITHUB_KEY, "is_current": true},
        ]})
        .to_string()
    }

    /// A new P-256 key pair: the public key as PEM, and a signer giving base64 DER.
    pub fn key_pair() -> (String, impl Fn(&[u8]) -> String) {
        use p256::ecdsa::signature::Signer;
        use p256::pkcs8::DecodePrivateKey;
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let signing = p256::ecdsa::SigningKey::from_pkcs8_der(&pair.serialize_der()).unwrap();
        let sign = move |body: &[u8]| {
            let sig: p256::ecdsa::Signature = signing.sign(body);
            base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
        };
        (pair.public_key_pem(), sign)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn githubs_own_example_verifies() {
        let keys = parse_public_keys(github_document().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1, "the unreadable key is skipped");
        assert!(keys.knows(GITHUB_KEY_ID));
        assert_eq!(
            verify(&keys, GITHUB_KEY_ID, GITHUB_SIGNATURE, GITHUB_BODY),
            Ok(())
        );
    }

    #[test]
    fn a_changed_body_a_bad_signature_or_an_unknown_key_is_refused() {
        let keys = parse_public_keys(github_document().as_bytes()).unwrap();
        let mut body = GITHUB_BODY.to_vec();
        body[12] = b'S';
        assert_eq!(
            verify(&keys, GITHUB_KEY_ID, GITHUB_SIGNATURE, &body),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify(&keys, GITHUB_KEY_ID, "not base64!", GITHUB_BODY),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            verify(&keys, GITHUB_KEY_ID, "AAAA", GITHUB_BODY),
            Err(Refusal::Malformed)
        );
        assert_eq!(
            verify(&keys, "other", GITHUB_SIGNATURE, GITHUB_BODY),
            Err(Refusal::UnknownKey("other".into()))
        );
    }

    #[test]
    fn a_key_pair_of_our_own_signs_and_verifies() {
        let (pem, sign) = key_pair();
        let doc = serde_json::json!({"public_keys": [
            {"key_identifier": "mine", "key": pem, "is_current": true}
        ]});
        let keys = parse_public_keys(doc.to_string().as_bytes()).unwrap();
        let body = br#"[{"token":"akd_X","type":"accesskeyd_key_id"}]"#;
        let sig = sign(body);
        assert_eq!(verify(&keys, "mine", &sig, body), Ok(()));
        assert_eq!(verify(&keys, "mine", &sig, b"[]"), Err(Refusal::Mismatch));
    }

    #[test]
    fn documents_without_a_usable_key_are_refused() {
        assert!(parse_public_keys(b"[]").is_err());
        assert!(parse_public_keys(br#"{"public_keys": []}"#).is_err());
        assert!(parse_public_keys(
            br#"{"public_keys": [{"key_identifier": "x", "key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}]}"#
        )
        .is_err());
    }
}
