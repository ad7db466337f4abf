//! The built-in directory: local users with argon2id password hashes in our own database.
//! It holds the break-glass admin for when the company directory is down.

use crate::error::{Error, Result};
use crate::ids::DirectoryId;
use crate::passwords::Hasher;
use crate::secret::Secret;
use crate::store::models::UserRow;
use crate::store::user_rows;
use crate::store::Store;

/// Longest local username accepted.
pub const MAX_USERNAME_LEN: usize = 64;

/// Checks a local username: not empty, not too long, printable, and not shaped like an
/// access key (which login would read as a key).
pub fn validate_username(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > MAX_USERNAME_LEN {
        return Err(Error::invalid(format!(
            "username: must be 1 to {MAX_USERNAME_LEN} characters"
        )));
    }
    if name.trim() != name || name.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(
            "username: no leading or trailing spaces or control characters",
        ));
    }
    if name.starts_with(crate::key_format::KEY_ID_PREFIX) {
        return Err(Error::invalid(format!(
            "username: may not start with `{}` (the access-key prefix)",
            crate::key_format::KEY_ID_PREFIX
        )));
    }
    Ok(())
}

/// Minimum length of a local password.
pub const MIN_PASSWORD_LEN: usize = 12;

pub fn validate_password(password: &Secret) -> Result<()> {
    if password.expose().chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::invalid(format!(
            "password: must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

/// Checks a local user's password. Unknown users cost the same hashing time as known ones.
pub async fn authenticate(
    store: &Store,
    hasher: &Hasher,
    directory_id: &DirectoryId,
    username: &str,
    password: Secret,
    from: Option<std::net::IpAddr>,
) -> Result<UserRow> {
    let dir = directory_id.clone();
    let name = username.to_string();
    let user: Option<UserRow> = store
        .read(move |conn| user_rows::by_username(conn, &dir, &name))
        .await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    // `from` gets its fair share of the hashing queue.
    let ok = hasher.verify_from(password, hash, from).await?;
    match user {
        Some(u) if ok && u.is_active() => Ok(u),
        _ => Err(Error::Unauthenticated(
            "invalid username or password".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(validate_username("admin").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username(" admin").is_err());
        assert!(validate_username("a\u{7}b").is_err());
        assert!(validate_username(&"x".repeat(65)).is_err());
        assert!(validate_username("akd_something").is_err());
        assert!(validate_password(&Secret::new("short")).is_err());
        assert!(validate_password(&Secret::new("long enough pw")).is_ok());
    }
}
