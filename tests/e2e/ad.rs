//! Active Directory against a real Samba AD domain controller on loopback: binary objectGUID
//! ids, AD bind errors, nested admin groups, disabled accounts, renames, lastLogonTimestamp
//! and paged reads. One DC per machine: every test here holds `samba::exclusive()`.

use crate::harness::daemon::{assert_error, Daemon};
use crate::harness::samba::{self, SambaDc};
use reqwest::StatusCode;
use serde_json::{json, Value};

const AD: &str = "ad";
const PW: &str = "Passw0rd!Str0ng";

fn ad_directory(dc: &SambaDc, admin_group: &str, page_size: u32) -> String {
    format!(
        r#"
[[directories]]
id = "{AD}"
kind = "ldap"
name = "Corp AD"
url = "{}"
bind_dn = "{}"
bind_password = "{}"
user_base = "{}"
user_filter = "(&(objectCategory=person)(objectClass=user))"
username_attribute = "sAMAccountName"
id_attribute = "objectGUID"
admin_group = "{admin_group}"
last_login_attribute = "lastLogonTimestamp"
page_size = {page_size}
timeout_seconds = 15
"#,
        dc.url(),
        dc.admin_bind_dn(),
        dc.admin_password(),
        dc.users_dn(),
    )
}

async fn sync(admin: &crate::harness::daemon::Client) -> Value {
    let a = admin
        .post(&format!("/api/directories/{AD}/sync"), json!({}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body
}

fn looks_like_guid(s: &str) -> bool {
    let parts: Vec<usize> = s.split('-').map(str::len).collect();
    parts == [8, 4, 4, 4, 12] && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

#[tokio::test]
async fn active_directory_logins_nested_admins_disabled_renamed_and_deleted_accounts() {
    let _one_dc = samba::exclusive().await;
    let dc = SambaDc::start().await;
    let admins = dc.create_group("akd-admins").await;
    dc.create_group("ops-team").await;
    dc.add_members("akd-admins", &["ops-team"]).await;
    for u in ["dana", "erin", "frank", "gus"] {
        dc.create_user(u, PW).await;
    }
    dc.add_members("ops-team", &["dana"]).await;
    let d = Daemon::start_with(None, &ad_directory(&dc, &admins, 500), &[]).await;
    let admin = d.admin().await;

    // Dana is an admin through a nested group; her id is the objectGUID as a GUID string.
    let dana = d.login("dana", PW, Some(AD)).await;
    let me = dana.me().await;
    assert_eq!(me.body["username"], "dana");
    assert_eq!(me.body["isAdmin"], true, "nested group membership counts");
    assert_eq!(me.body["email"], "dana@corp.test");
    let dana_id = me.body["id"].as_str().unwrap().to_string();

    // AD's bind errors: a wrong password (52e) is 401, not 503.
    let (status, body, _) = d.client().login("erin", "wrong", Some(AD)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let erin = d.login("erin", PW, Some(AD)).await;
    assert_eq!(erin.me().await.body["isAdmin"], false);
    let (erin_key, erin_pw, _) = erin.create_key("erin's feed").await;
    let frank = d.login("frank", PW, Some(AD)).await;
    let frank_id = frank.me().await.body["id"].as_str().unwrap().to_string();
    let (frank_key, frank_pw, _) = frank.create_key("frank's notebook").await;
    d.login("gus", PW, Some(AD)).await;

    // The stable ids stored are GUIDs.
    let users = admin.get("/api/users").await;
    assert_eq!(users.status, StatusCode::OK);
    {
        use accesskeyd::store::schema::users;
        use diesel::prelude::*;
        let ids: Vec<String> = d
            .app
            .store
            .read(|c| {
                Ok(users::table
                    .filter(users::directory_id.eq(AD))
                    .select(users::external_id)
                    .load(c)?)
            })
            .await
            .unwrap();
        assert_eq!(ids.len(), 4);
        assert!(ids.iter().all(|i| looks_like_guid(i)), "{ids:?}");
    }

    // Upstream: erin is disabled (533 at login), frank renamed, gus deleted.
    dc.disable_user("erin").await;
    let (status, _, _) = d.client().login("erin", PW, Some(AD)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a disabled account cannot log in"
    );
    dc.rename_user("frank", "frankie").await;
    dc.delete_user("gus").await;

    let run = sync(&admin).await;
    assert_eq!(run["status"], "ok", "{run}");
    let mut gone: Vec<(String, String)> = run["removals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["username"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    gone.sort();
    assert_eq!(
        gone,
        [
            ("erin".to_string(), "disabled".to_string()),
            ("gus".to_string(), "absent".to_string())
        ]
    );
    assert_eq!(run["counts"]["renamed"], 1);
    assert_error(
        &d.client().with_basic(&erin_key, &erin_pw).me().await,
        StatusCode::UNAUTHORIZED,
        "invalid access key",
    );
    let frankie = d.client().with_basic(&frank_key, &frank_pw).me().await;
    assert_eq!(
        frankie.status,
        StatusCode::OK,
        "a rename keeps the person and the key"
    );
    assert_eq!(frankie.body["username"], "frankie");
    assert_eq!(frankie.body["id"], frank_id.as_str());

    // Dana leaves the nested admin group: the next sync takes admin away.
    dc.remove_members("ops-team", &["dana"]).await;
    let run = sync(&admin).await;
    assert_eq!(run["counts"]["adminChanges"], 1, "{run}");
    assert_eq!(
        admin.get(&format!("/api/users/{dana_id}")).await.body["isAdmin"],
        false
    );

    // lastLogonTimestamp (set by her first bind) moves an older local login forward.
    let old = d.app.clock.now() - chrono::Duration::days(30);
    d.set_last_login(&dana_id, old).await;
    let run = sync(&admin).await;
    assert_eq!(run["counts"]["lastLogins"], 1, "{run}");
    let last: chrono::DateTime<chrono::Utc> =
        admin.get(&format!("/api/users/{dana_id}")).await.body["lastLoginAt"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    assert!(last > old + chrono::Duration::days(29), "{last}");
}

#[tokio::test]
async fn active_directory_paged_reads_of_a_thousand_users() {
    let _one_dc = samba::exclusive().await;
    let dc = SambaDc::start().await;
    let admins = dc.create_group("akd-admins").await;
    dc.create_user("hank", PW).await;
    dc.create_users_bulk("bulk", 1000, "").await;
    // Pages of 200; the sync must read every page.
    let d = Daemon::start_with(None, &ad_directory(&dc, &admins, 200), &[]).await;
    let admin = d.admin().await;
    d.login("hank", PW, Some(AD)).await;
    let run = sync(&admin).await;
    assert_eq!(run["status"], "ok", "{run}");
    assert!(run["counts"]["read"].as_i64().unwrap() >= 1001, "{run}");
    assert_eq!(run["counts"]["matched"], 1);
    assert_eq!(run["counts"]["removed"], 0);
}
