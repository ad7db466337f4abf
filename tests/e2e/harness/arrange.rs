//! State arranged directly in the database for tests of what follows from it, shared by the
//! system tier and the in-process tier.

use accesskeyd::app::App;
use accesskeyd::revocation::{self, Revoked};
use accesskeyd::store::schema::users;
use accesskeyd::store::timestamp::Timestamp;
use diesel::prelude::*;

/// A user's last interactive login set to `at` (as if it had happened then), through the
/// revocation road as every change of the daemon's own: a window moved back must reach the
/// credential cache.
pub async fn set_last_login(app: &App, user_id: &str, at: chrono::DateTime<chrono::Utc>) {
    let id = user_id.to_string();
    revocation::write(app, move |c| {
        diesel::update(users::table.find(&id))
            .set(users::last_login_at.eq(Some(Timestamp::from(at))))
            .execute(c)?;
        Ok(((), vec![Revoked::User(id.into())]))
    })
    .await
    .expect("set last login");
}
