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
