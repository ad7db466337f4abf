//! Lookups of the users table that several domains make, written once. Each runs on the
//! caller's connection, so inside the caller's transaction.

use super::models::UserRow;
use super::schema::users;
use super::DbConn;
use crate::error::Result;
use crate::ids::{DirectoryId, UserId};
use diesel::prelude::*;

/// The user `id`, given in any case (ids are stored lowercase).
pub fn by_id(conn: &mut DbConn, id: &UserId) -> Result<Option<UserRow>> {
    Ok(users::table
        .find(id.to_ascii_lowercase())
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// The users with these ids, as stored (no case folding; ids the service itself holds).
pub fn by_ids(conn: &mut DbConn, ids: &[UserId]) -> Result<Vec<UserRow>> {
    Ok(users::table
        .filter(users::id.eq_any(ids))
        .select(UserRow::as_select())
        .load(conn)?)
}

/// The record holding `username` in directory `dir` (exact match: names are unique per
/// directory as stored).
pub fn by_username(
    conn: &mut DbConn,
    dir: &DirectoryId,
    username: &str,
) -> Result<Option<UserRow>> {
    Ok(users::table
        .filter(users::directory_id.eq(dir))
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// The record with the directory's stable id `external_id` in directory `dir`.
pub fn by_external_id(
    conn: &mut DbConn,
    dir: &DirectoryId,
    external_id: &str,
) -> Result<Option<UserRow>> {
    Ok(users::table
        .filter(users::directory_id.eq(dir))
        .filter(users::external_id.eq(external_id))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// Does some record of directory `dir` hold `username`?
pub fn username_taken(conn: &mut DbConn, dir: &DirectoryId, username: &str) -> Result<bool> {
    let holders: i64 = users::table
        .filter(users::directory_id.eq(dir))
        .filter(users::username.eq(username))
        .count()
        .get_result(conn)?;
    Ok(holders > 0)
}

/// The service accounts `manager` answers for.
pub fn service_accounts_of(conn: &mut DbConn, manager: &UserId) -> Result<Vec<UserRow>> {
    Ok(users::table
        .filter(users::is_service_account.eq(true))
        .filter(users::manager_id.eq(manager))
        .select(UserRow::as_select())
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{run_migrations, Backend};

    fn conn_with(rows: &[UserRow]) -> DbConn {
        let mut conn: DbConn = Backend::Sqlite(":memory:".into())
            .connect()
            .expect("open SQLite");
        run_migrations(&mut conn).expect("migrate");
        for row in rows {
            diesel::insert_into(users::table)
                .values(row)
                .execute(&mut conn)
                .expect("insert");
        }
        conn
    }

    #[test]
    fn finds_by_id_in_any_case_and_by_name_and_stable_id_exactly() {
        let mut ann = UserRow::fixture("ann");
        ann.external_id = "sub-ann".into();
        let mut conn = conn_with(&[ann, UserRow::fixture("bob")]);
        let corp = DirectoryId::from("corp");

        let found = by_id(&mut conn, &UserId::from("ANN")).expect("query");
        assert_eq!(found.map(|u| u.username), Some("ann".to_string()));
        assert!(by_id(&mut conn, &UserId::from("nobody"))
            .expect("query")
            .is_none());

        let by_name = by_username(&mut conn, &corp, "bob").expect("query");
        assert_eq!(by_name.map(|u| u.id), Some(UserId::from("bob")));
        // Names and directories compare as stored.
        assert!(by_username(&mut conn, &corp, "BOB")
            .expect("query")
            .is_none());
        let elsewhere = DirectoryId::from("other");
        assert!(by_username(&mut conn, &elsewhere, "bob")
            .expect("query")
            .is_none());
        assert!(username_taken(&mut conn, &corp, "bob").expect("query"));
        assert!(!username_taken(&mut conn, &corp, "carl").expect("query"));

        let by_sub = by_external_id(&mut conn, &corp, "sub-ann").expect("query");
        assert_eq!(by_sub.map(|u| u.id), Some(UserId::from("ann")));
        assert!(by_external_id(&mut conn, &corp, "ann")
            .expect("query")
            .is_none());

        let mut both = by_ids(&mut conn, &[UserId::from("bob"), UserId::from("ann")])
            .expect("query")
            .into_iter()
            .map(|u| u.username)
            .collect::<Vec<_>>();
        both.sort();
        assert_eq!(both, ["ann", "bob"]);
    }

    #[test]
    fn service_accounts_of_a_manager_are_only_theirs() {
        let mut etl = UserRow::fixture("etl");
        etl.is_service_account = true;
        etl.manager_id = Some(UserId::from("ann"));
        let mut other = UserRow::fixture("other");
        other.is_service_account = true;
        other.manager_id = Some(UserId::from("bob"));
        // A person is never among the accounts someone answers for.
        let mut person = UserRow::fixture("carl");
        person.manager_id = Some(UserId::from("ann"));
        let mut conn = conn_with(&[
            UserRow::fixture("ann"),
            UserRow::fixture("bob"),
            etl,
            other,
            person,
        ]);
        let managed = service_accounts_of(&mut conn, &UserId::from("ann")).expect("query");
        let ids: Vec<UserId> = managed.into_iter().map(|u| u.id).collect();
        assert_eq!(ids, [UserId::from("etl")]);
    }
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// `(username, external_id)` of the records of directory `dir` whose username, lowercased by
/// the database, is one of `lowercased` (names reported by systems that ignore case, such as
/// Windows; at most a few hundred per call, the bound parameters' limit).
pub fn by_usernames_ignoring_case(
    conn: &mut DbConn,
    dir: &DirectoryId,
    lowercased: &[String],
) -> Result<Vec<(String, String)>> {
    Ok(users::table
        .filter(users::directory_id.eq(dir))
        .filter(lower(users::username).eq_any(lowercased))
        .select((users::username, users::external_id))
        .load(conn)?)
}
