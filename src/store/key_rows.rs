//! Lookups of the access_keys table that several places make, written once. Each runs on
//! the caller's connection, so inside the caller's transaction.

use super::models::{AccessKeyRow, UserRow};
use super::schema::{access_keys, users};
use super::DbConn;
use crate::error::Result;
use crate::ids::UserId;
use diesel::prelude::*;

/// The key whose public id (`akd_…`) is `key_id`.
pub fn by_key_id(conn: &mut DbConn, key_id: &str) -> Result<Option<AccessKeyRow>> {
    Ok(access_keys::table
        .filter(access_keys::key_id.eq(key_id))
        .select(AccessKeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// The key whose public id is `key_id`, with the user who holds it.
pub fn by_key_id_with_owner(
    conn: &mut DbConn,
    key_id: &str,
) -> Result<Option<(AccessKeyRow, UserRow)>> {
    Ok(access_keys::table
        .inner_join(users::table)
        .filter(access_keys::key_id.eq(key_id))
        .select((AccessKeyRow::as_select(), UserRow::as_select()))
        .first(conn)
        .optional()?)
}

/// How many keys `user` holds.
pub fn count_held_by(conn: &mut DbConn, user: &UserId) -> Result<i64> {
    Ok(access_keys::table
        .filter(access_keys::user_id.eq(user))
        .count()
        .get_result(conn)?)
}

/// The keys a secret scanner's report may name, with their holders, in one read: by key id,
/// or by the lookup hash of a current or a rotation's old password (both indexed). Whether
/// an old password still counts is the caller's decision (`keys::leaked::matches`).
pub fn leak_candidates(
    conn: &mut DbConn,
    key_ids: &[String],
    lookup_hashes: &[String],
) -> Result<Vec<(AccessKeyRow, UserRow)>> {
    if key_ids.is_empty() && lookup_hashes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(access_keys::table
        .inner_join(users::table)
        .filter(
            access_keys::key_id
                .eq_any(key_ids)
                .or(access_keys::lookup_hash.eq_any(lookup_hashes))
                .or(access_keys::previous_lookup_hash.eq_any(lookup_hashes)),
        )
        .select((AccessKeyRow::as_select(), UserRow::as_select()))
        .load(conn)?)
}
