//! The keyed lookup hash of an access key's password: an HMAC-SHA256 under a secret pepper
//! from the configuration, stored beside the argon2 hash. It finds the key a leaked password
//! belongs to (secret-scanning reports) in one indexed read instead of an argon2 run per
//! key, and tells which of a key's two passwords (during a rotation's overlap) to check.
//! Argon2 still decides every login; without the pepper a stolen database's lookup hashes
//! are worthless, and the passwords are 128 random bits either way.

use crate::secret::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The pepper, and the hash it makes.
#[derive(Clone)]
pub struct KeyLookup {
    pepper: Secret,
}

impl std::fmt::Debug for KeyLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyLookup([redacted])")
    }
}

impl KeyLookup {
    pub fn new(pepper: Secret) -> KeyLookup {
        KeyLookup { pepper }
    }

    /// The lookup hash of `password`, hex: what `access_keys.lookup_hash` stores.
    pub fn hash(&self, password: &str) -> String {
        // An HMAC takes a key of any length: `new_from_slice` cannot fail for it.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.pepper.expose().as_bytes()) else {
            return String::new();
        };
        mac.update(b"accesskeyd key password v1\0");
        mac.update(password.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Is `stored` the lookup hash of `password`? In constant time.
    pub fn matches(&self, stored: &str, password: &str) -> bool {
        let mine = self.hash(password);
        !mine.is_empty() && bool::from(mine.as_bytes().ct_eq(stored.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_keyed_stable_and_matched_in_full() {
        let a = KeyLookup::new(Secret::new("p".repeat(32)));
        let b = KeyLookup::new(Secret::new("q".repeat(32)));
        let h = a.hash("akp_SECRET");
        assert_eq!(h.len(), 64);
        assert_eq!(h, a.hash("akp_SECRET"), "stable");
        assert_ne!(h, b.hash("akp_SECRET"), "another pepper, another hash");
        assert_ne!(h, a.hash("akp_SECRET2"));
        assert!(a.matches(&h, "akp_SECRET"));
        assert!(!a.matches(&h[..63], "akp_SECRET"));
        assert!(!b.matches(&h, "akp_SECRET"));
        assert!(!format!("{a:?}").contains('p'.to_string().repeat(32).as_str()));
    }
}
