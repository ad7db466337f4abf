//! Typed ids: a user's id, an access key's row id and a directory's id, so one cannot be
//! passed where another is meant. Each is the text the database and the API hold, unchanged
//! (serde and diesel see a plain string).

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use diesel::{AsExpression, FromSqlRow};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One id type: a string inside, stored as `Text` on every backend (the derives' impls for
/// `DbConn`'s multi-backend come from these generic ones).
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            AsExpression, FromSqlRow,
        )]
        #[serde(transparent)]
        #[diesel(sql_type = Text)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }

            /// The same id in any case (`str::eq_ignore_ascii_case`).
            pub fn eq_ignore_ascii_case(&self, other: &(impl AsRef<str> + ?Sized)) -> bool {
                self.0.eq_ignore_ascii_case(other.as_ref())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_string())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl<DB: Backend> ToSql<Text, DB> for $name
        where
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.0.as_str().to_sql(out)
            }
        }

        impl<DB: Backend> FromSql<Text, DB> for $name
        where
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                String::from_sql(bytes).map($name)
            }
        }
    };
}

text_id!(
    /// A user's id (`users.id`): generated here, lowercase; clients may send it in any case.
    UserId
);

text_id!(
    /// An access key's row id (`access_keys.id`), generated here. Not the public key id
    /// (`access_keys.key_id`, `akd_…`), whose shape is `key_format`'s.
    KeyRowId
);

text_id!(
    /// A directory's id, as configured (`[[directories]] id`, `users.directory_id`). Compared
    /// in any case where a person or a client names one ([`DirectoryId::eq_ignore_ascii_case`]).
    DirectoryId
);

impl UserId {
    /// A new random id (UUID v4, lowercase).
    pub fn generate() -> UserId {
        UserId(uuid::Uuid::new_v4().to_string())
    }

    /// The stored form of an id a client sent: ids are generated lowercase.
    pub fn to_ascii_lowercase(&self) -> UserId {
        UserId(self.0.to_ascii_lowercase())
    }
}

impl KeyRowId {
    /// A new random id (UUID v4).
    pub fn generate() -> KeyRowId {
        KeyRowId(uuid::Uuid::new_v4().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    #[test]
    fn json_sees_a_plain_string() {
        let id = UserId::from("3f2a".to_string());
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""3f2a""#);
        let back: UserId = serde_json::from_str(r#""3f2a""#).unwrap();
        assert_eq!(back, id);
        let dirs: Vec<DirectoryId> = serde_json::from_str(r#"["corp","builtin"]"#).unwrap();
        assert_eq!(
            dirs,
            [DirectoryId::from("corp"), DirectoryId::from("builtin")]
        );
        assert_eq!(
            serde_json::to_string(&dirs).unwrap(),
            r#"["corp","builtin"]"#
        );
        let none: Option<KeyRowId> = serde_json::from_str("null").unwrap();
        assert_eq!(none, None);
    }

    #[test]
    fn display_and_debug_show_the_id() {
        let id = KeyRowId::from("row-1");
        assert_eq!(id.to_string(), "row-1");
        assert_eq!(format!("{id:?}"), r#""row-1""#);
        assert_eq!(id.as_str(), "row-1");
        assert_eq!(id, "row-1");
    }

    #[test]
    fn case_rules() {
        let dir = DirectoryId::from("Corp");
        assert!(dir.eq_ignore_ascii_case("CORP"));
        assert!(!dir.eq_ignore_ascii_case("corp2"));
        assert_ne!(dir, DirectoryId::from("corp"), "equality itself is exact");
        let id = UserId::from("AB-cd");
        assert_eq!(id.to_ascii_lowercase(), UserId::from("ab-cd"));
        let generated = UserId::generate();
        assert_eq!(generated, generated.to_ascii_lowercase());
        assert_ne!(KeyRowId::generate(), KeyRowId::generate());
    }

    diesel::table! {
        things (id) {
            id -> Text,
            owner -> Nullable<Text>,
            directory -> Text,
        }
    }

    #[derive(Queryable, Selectable, Insertable, Debug, PartialEq)]
    #[diesel(table_name = things)]
    struct Thing {
        id: KeyRowId,
        owner: Option<UserId>,
        directory: DirectoryId,
    }

    #[test]
    fn diesel_round_trip_through_the_multi_backend_connection() {
        use crate::store::DbConn;
        let mut conn = DbConn::Sqlite(SqliteConnection::establish(":memory:").unwrap());
        conn.batch_execute(
            "CREATE TABLE things (id TEXT PRIMARY KEY NOT NULL, owner TEXT, directory TEXT NOT NULL)",
        )
        .unwrap();
        let rows = [
            Thing {
                id: KeyRowId::from("k1"),
                owner: Some(UserId::from("u1")),
                directory: DirectoryId::from("corp"),
            },
            Thing {
                id: KeyRowId::from("k2"),
                owner: None,
                directory: DirectoryId::from("builtin"),
            },
        ];
        for row in &rows {
            diesel::insert_into(things::table)
                .values(row)
                .execute(&mut conn)
                .unwrap();
        }
        let k1 = KeyRowId::from("k1");
        let found: Thing = things::table
            .find(&k1)
            .select(Thing::as_select())
            .first(&mut conn)
            .unwrap();
        assert_eq!(found, rows[0]);
        let owners: Vec<Option<UserId>> = things::table
            .filter(things::directory.eq(DirectoryId::from("builtin")))
            .select(things::owner)
            .load(&mut conn)
            .unwrap();
        assert_eq!(owners, [None]);
        let ids: Vec<KeyRowId> = things::table
            .filter(things::owner.eq(Some(UserId::from("u1"))))
            .select(things::id)
            .load(&mut conn)
            .unwrap();
        assert_eq!(ids, [k1]);
    }
}
