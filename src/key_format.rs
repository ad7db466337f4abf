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

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// The body alphabet of BASE32_NOPAD (RFC 4648, upper case).
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    /// A well-formed token for `prefix` built from the given random bits, as `generate` does.
    fn token(prefix: &str, random: &[u8; RANDOM_BYTES]) -> String {
        let mut bytes = random.to_vec();
        bytes.extend_from_slice(&checksum(prefix, random));
        format!("{prefix}{}", BASE32_NOPAD.encode(&bytes))
    }

    fn is_kind(prefix: &str, s: &str) -> bool {
        if prefix == KEY_ID_PREFIX {
            is_key_id(s)
        } else {
            is_password(s)
        }
    }

    fn prefix() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just(KEY_ID_PREFIX), Just(PASSWORD_PREFIX)]
    }

    /// Strings near the format: a prefix (or a damaged one) and a body of any length from
    /// the alphabet, lower case, or anything.
    fn near_miss() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just(KEY_ID_PREFIX.to_string()),
                Just(PASSWORD_PREFIX.to_string()),
                "[a-z_]{0,5}",
                ".{0,5}",
            ],
            prop_oneof![
                "[A-Z2-7]{0,40}",
                "[A-Z2-7]{32}",
                "[A-Za-z0-9=]{30,34}",
                ".{0,40}",
            ],
        )
            .prop_map(|(p, b)| p + &b)
    }

    proptest! {
        // Moderate counts; shrinking is bounded so that a failure reports in seconds.
        #![proptest_config(ProptestConfig {
            cases: 512,
            max_shrink_iters: 4096,
            ..ProptestConfig::default()
        })]

        #[test]
        fn generated_credentials_are_accepted(_n in 0u8..8) {
            let id = new_key_id();
            let pw = new_password();
            prop_assert_eq!(id.len(), TOKEN_LEN);
            prop_assert_eq!(pw.len(), TOKEN_LEN);
            prop_assert!(is_key_id(&id) && !is_password(&id), "{}", id);
            prop_assert!(is_password(&pw) && !is_key_id(&pw), "{}", pw);
        }

        /// Any 128 bits with their checksum are accepted for their own kind only, and the
        /// printed form is the one canonical encoding of those bits.
        #[test]
        fn every_random_value_round_trips(p in prefix(), random in any::<[u8; RANDOM_BYTES]>()) {
            let t = token(p, &random);
            prop_assert_eq!(t.len(), TOKEN_LEN);
            prop_assert!(is_kind(p, &t));
            let other = if p == KEY_ID_PREFIX { PASSWORD_PREFIX } else { KEY_ID_PREFIX };
            prop_assert!(!is_kind(other, &t));
            let decoded = BASE32_NOPAD.decode(&t.as_bytes()[p.len()..]).unwrap();
            prop_assert_eq!(&decoded[..RANDOM_BYTES], &random[..]);
            prop_assert_eq!(BASE32_NOPAD.encode(&decoded), &t[p.len()..]);
        }

        /// Changing any one character of a valid token (prefix included, to any other
        /// character, ASCII or not) is refused by the format or the checksum.
        #[test]
        fn any_single_character_change_is_refused(
            p in prefix(),
            random in any::<[u8; RANDOM_BYTES]>(),
            at in 0..TOKEN_LEN,
            to in prop_oneof![
                proptest::sample::select(ALPHABET.chars().collect::<Vec<_>>()),
                proptest::char::range('a', 'z'),
                any::<char>(),
            ],
        ) {
            let t = token(p, &random);
            let mut chars: Vec<char> = t.chars().collect();
            prop_assume!(chars[at] != to);
            chars[at] = to;
            let m: String = chars.into_iter().collect();
            prop_assert!(!is_key_id(&m) && !is_password(&m), "{} accepted (from {})", m, t);
        }

        /// Dropping, inserting or duplicating a character is refused too.
        #[test]
        fn length_changes_are_refused(
            p in prefix(),
            random in any::<[u8; RANDOM_BYTES]>(),
            at in 0..=TOKEN_LEN,
            insert in any::<char>(),
            delete in any::<bool>(),
        ) {
            let t = token(p, &random);
            let mut chars: Vec<char> = t.chars().collect();
            if delete {
                chars.remove(at.min(TOKEN_LEN - 1));
            } else {
                chars.insert(at, insert);
            }
            let m: String = chars.into_iter().collect();
            prop_assert!(!is_key_id(&m) && !is_password(&m), "{} accepted", m);
        }

        /// Arbitrary text never panics; whatever is accepted has the exact shape.
        #[test]
        fn arbitrary_strings_never_panic(s in prop_oneof![near_miss(), any::<String>()]) {
            for (p, ok) in [(KEY_ID_PREFIX, is_key_id(&s)), (PASSWORD_PREFIX, is_password(&s))] {
                if ok {
                    prop_assert_eq!(s.len(), TOKEN_LEN);
                    let body = s.strip_prefix(p).unwrap();
                    prop_assert!(body.chars().all(|c| ALPHABET.contains(c)), "{}", s);
                }
            }
        }
    }
}
