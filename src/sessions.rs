//! Session tokens: issued at login, stored only as SHA-256 hashes, expired and revoked here.

use crate::error::Result;
use crate::ids::{KeyRowId, UserId};
use crate::secret::Secret;
use crate::store::models::SessionRow;
use crate::store::schema::sessions;
use crate::store::timestamp::Timestamp;
use crate::store::{DbConn, Store};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of session tokens, so they are recognisable in logs that should never hold them.
pub const TOKEN_PREFIX: &str = "aks_";

/// The database key of a token. A 256-bit random token needs no salt or slow hash: the hash
/// only keeps a database leak from handing out live sessions.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new bearer secret: `prefix` + 256 random bits, base64url. Stored only through
/// [`token_hash`]; the prefix lets secret scanners recognise leaked ones.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Creates a session (inside the caller's transaction) and returns its token.
pub fn issue(
    conn: &mut DbConn,
    user_id: &UserId,
    access_key_id: Option<&KeyRowId>,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Secret> {
    let token = random_token(TOKEN_PREFIX);
    let row = SessionRow {
        token_hash: token_hash(&token),
        user_id: user_id.clone(),
        access_key_id: access_key_id.cloned(),
        created_at: Timestamp::from(now),
        expires_at: Timestamp::from(now + ttl),
    };
    diesel::insert_into(sessions::table)
        .values(&row)
        .execute(conn)?;
    Ok(Secret::new(token))
}

/// Ends one session and announces it (the caller tells `revocation::changed` after).
/// Returns whether it existed.
pub async fn revoke(store: &Store, hash: String) -> Result<bool> {
    store
        .write(move |conn| {
            let n = diesel::delete(sessions::table.filter(sessions::token_hash.eq(&hash)))
                .execute(conn)?;
            crate::revocation::announce(conn, &crate::revocation::Revoked::Session(hash))?;
            Ok(n > 0)
        })
        .await
}

/// Removes sessions that expired before `now` (inside the caller's connection).
pub fn remove_expired(conn: &mut DbConn, now: DateTime<Utc>) -> Result<usize> {
    Ok(
        diesel::delete(sessions::table.filter(sessions::expires_at.le(Timestamp::from(now))))
            .execute(conn)?,
    )
}
