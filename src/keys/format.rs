//! The shape of access-key credentials: a recognisable prefix, random bits and a checksum,
//! so secret scanners can find leaked keys and malformed input is refused before hashing.

use data_encoding::BASE32_NOPAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of every key id (the "username" part). Registered with secret scanners.
pub const KEY_ID_PREFIX: &str = "akd_";
/// Prefix of every key password.
pub const PASSWORD_PREFIX: &str = "akp_";

const RANDOM_BYTES: usize = 16; // 128 random bits in both parts
const CHECKSUM_BYTES: usize = 4;
const ENCODED_LEN: usize = (RANDOM_BYTES + CHECKSUM_BYTES) * 8 / 5; // 32 base32 characters

/// Length of a key id and of a password, prefix included.
pub const TOKEN_LEN: usize = 4 + ENCODED_LEN;

fn checksum(domain: &str, random: &[u8]) -> [u8; CHECKSUM_BYTES] {
    let digest = Sha256::new()
        .chain_update(domain.as_bytes())
        .chain_update(random)
        .finalize();
    let mut out = [0u8; CHECKSUM_BYTES];
    out.copy_from_slice(&digest[..CHECKSUM_BYTES]);
    out
}

fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; RANDOM_BYTES + CHECKSUM_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes[..RANDOM_BYTES]);
    let sum = checksum(prefix, &bytes[..RANDOM_BYTES]);
    bytes[RANDOM_BYTES..].copy_from_slice(&sum);
    format!("{prefix}{}", BASE32_NOPAD.encode(&bytes))
}

fn well_formed(prefix: &str, s: &str) -> bool {
    let Some(body) = s.strip_prefix(prefix) else {
        return false;
    };
    if body.len() != ENCODED_LEN {
        return false;
    }
    match BASE32_NOPAD.decode(body.as_bytes()) {
        Ok(bytes) if bytes.len() == RANDOM_BYTES + CHECKSUM_BYTES => {
            checksum(prefix, &bytes[..RANDOM_BYTES]) == bytes[RANDOM_BYTES..]
        }
        _ => false,
    }
}

/// A new key id: `akd_` + 32 base32 characters (128 random bits + 32-bit checksum).
pub fn new_key_id() -> String {
    generate(KEY_ID_PREFIX)
}

/// A new key password: `akp_` + 32 base32 characters (128 random bits + 32-bit checksum).
pub fn new_password() -> String {
    generate(PASSWORD_PREFIX)
}

/// Does this look like a key id (prefix, length, alphabet, checksum)?
pub fn is_key_id(s: &str) -> bool {
    well_formed(KEY_ID_PREFIX, s)
}

/// Does this look like a key password? Anything else is refused without hashing.
pub fn is_password(s: &str) -> bool {
    well_formed(PASSWORD_PREFIX, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_are_well_formed_and_distinct() {
        let a = new_key_id();
        let b = new_key_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(is_key_id(&a) && !is_password(&a));
        let p = new_password();
        assert!(is_password(&p) && !is_key_id(&p));
    }

    #[test]
    fn malformed_credentials_are_refused() {
        let k = new_key_id();
        // A single changed character breaks the checksum.
        let last = k.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &k[..k.len() - 1],
            if last == 'A' { 'B' } else { 'A' }
        );
        assert!(!is_key_id(&flipped));
        assert!(!is_key_id(&k[..k.len() - 1]));
        assert!(!is_key_id(&format!("{k}A")));
        assert!(!is_key_id(&k.to_lowercase()));
        assert!(!is_key_id(""));
        assert!(!is_key_id("akd_"));
        assert!(!is_key_id("alice"));
        assert!(!is_key_id(&format!("akd_{}", "é".repeat(16))));
    }
}
