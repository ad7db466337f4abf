//! Output types shared by several API areas: the SDK's UserOutputV1 (the user list, one
//! user, and the answer to a login).

use super::state::AppState;
use crate::ids::{DirectoryId, UserId};
use crate::store::timestamp::Timestamp;
use crate::users::UserInfo;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// The SDK's ScalarValueOutputV1: a bare number makes the SDK fail to parse.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScalarValue {
    pub value: i64,
    /// The unit: `min` (minutes).
    #[schema(value_type = String, example = "min")]
    pub uom: &'static str,
}

/// UserOutputV1.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserOutput {
    pub id: UserId,
    /// `User`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "User")]
    pub kind: &'static str,
    /// The display name (the username when there is none).
    pub name: String,
    pub username: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub is_admin: bool,
    pub is_enabled: bool,
    /// The directory's class: `Auth` (built-in), `LDAP` or `OpenIDConnect`.
    pub datasource_class: String,
    /// The directory's id.
    pub datasource_id: DirectoryId,
    /// The directory's name.
    pub datasource_name: String,
    pub created_at: DateTime<Utc>,
    /// The last interactive login; null when never.
    pub last_login_at: Option<DateTime<Utc>>,
    /// The user's access-key validity override in minutes; null when none.
    pub access_key_validity_duration: Option<i64>,
    /// The access-key validity window in force for this user.
    pub effective_access_key_validity_duration: ScalarValue,
    /// accesskeyd's own: when this user's keys stop working unless they log in again.
    pub access_keys_valid_until: Option<DateTime<Utc>>,
    /// accesskeyd's own: since when the user is suspended (gone from the directory, within
    /// `removal_grace_hours`; or a service account whose manager was removed); keys and
    /// sessions are refused meanwhile.
    pub suspended_at: Option<DateTime<Utc>>,
    /// The user's session duration override in minutes, null when none.
    pub session_duration: Option<i64>,
    /// The session duration in force for this user.
    pub effective_session_duration: ScalarValue,
    /// A service account (never logs in; its keys carry an expiry).
    pub is_application_service_principal: bool,
    /// A service account's responsible person; null for people, and for a suspended account.
    pub manager: Option<IdentityOutput>,
}

/// `{"id","name","type"}`, as the SDK's identity previews.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityOutput {
    pub id: UserId,
    pub name: String,
    /// `User`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "User")]
    pub kind: &'static str,
}

pub fn user_output(state: &AppState, u: &UserInfo) -> UserOutput {
    let dir = state.0.directory(&u.row.directory_id);
    let r = &u.row;
    UserOutput {
        id: r.id.clone(),
        kind: "User",
        name: r.display_name.clone().unwrap_or_else(|| r.username.clone()),
        username: r.username.clone(),
        first_name: r.first_name.clone(),
        last_name: r.last_name.clone(),
        email: r.email.clone(),
        is_admin: r.is_admin,
        is_enabled: r.is_enabled,
        datasource_class: dir.map_or("Auth", |d| d.class()).to_string(),
        datasource_id: r.directory_id.clone(),
        datasource_name: dir.map_or_else(|| r.directory_id.to_string(), |d| d.name().to_string()),
        created_at: r.created_at.at(),
        last_login_at: r.last_login(),
        access_key_validity_duration: r.access_key_validity_minutes,
        effective_access_key_validity_duration: ScalarValue {
            value: u.window.minutes(),
            uom: "min",
        },
        access_keys_valid_until: if r.is_service_account {
            None
        } else {
            u.keys_valid_until()
        },
        suspended_at: r.suspended_at.map(Timestamp::at),
        session_duration: r.session_duration_minutes,
        effective_session_duration: ScalarValue {
            value: u.session_minutes,
            uom: "min",
        },
        is_application_service_principal: r.is_service_account,
        manager: r.manager_id.as_ref().map(|id| IdentityOutput {
            id: id.clone(),
            name: u.manager_name.clone().unwrap_or_default(),
            kind: "User",
        }),
    }
}
