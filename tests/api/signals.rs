//! Change signals as people see them: a signal suspends someone (keys and sessions stop at
//! once) and a later one lifts it; a revoked credential ends sessions and stops keys until
//! the next interactive sign-in; a flood of signals stops at the directory's threshold and
//! waits for an admin.

use crate::app::{assert_error, Resp, Session, TestApp, BUILTIN};
use accesskeyd::audit::Actor;
use accesskeyd::directory::DirectoryUser;
use accesskeyd::ids::{DirectoryId, UserId};
use accesskeyd::signals::{self, Applied, Effect, Signal};
use axum::http::StatusCode;

fn signal(dir: &str, user: &str, effect: Effect, name: &str) -> Signal {
    Signal {
        directory: DirectoryId::from(dir),
        user: UserId::from(user),
        effect,
        name: name.into(),
        detail: "test".into(),
    }
}

/// `POST /api/directories/{dir}/signals/resume` as `who`.
async fn resume(app: &TestApp, dir: &str, who: &Session) -> Resp {
    app.post(&format!("/api/directories/{dir}/signals/resume"))
        .auth(who)
        .send()
        .await
}

async fn send(app: &TestApp, s: Signal) -> Applied {
    let applied = signals::apply(&app.app, &Actor::system("test"), s)
        .await
        .expect("signal applies");
    app.settle().await;
    applied
}

#[tokio::test]
async fn a_suspension_by_signal_stops_keys_and_sessions_at_once_and_its_lift_brings_the_keys_back()
{
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user("bob").await;
    let key = app.create_key(&bob, "etl").await;
    let id = bob.id();
    assert!(app.key_works(&key).await);

    let applied = send(
        &app,
        signal(BUILTIN, &id, Effect::Suspend, "RISC account-disabled"),
    )
    .await;
    assert_eq!(applied, Applied::Changed);
    assert!(!app.key_works(&key).await, "the key stops at once");
    assert_eq!(app.me(&bob).await.status, StatusCode::UNAUTHORIZED);
    let user = app
        .get(&format!("/api/users/{id}"))
        .auth(&admin)
        .send()
        .await
        .json();
    assert!(user["suspendedAt"].is_string(), "{user}");
    let audit = app
        .get("/api/audit?action=user.suspend")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(audit["totalResults"], 1, "{audit}");
    assert!(
        audit["events"][0]["actor"]
            .as_str()
            .unwrap_or("")
            .contains("RISC account-disabled"),
        "the audit event names the signal: {audit}"
    );
    // A second one changes nothing.
    let again = send(
        &app,
        signal(BUILTIN, &id, Effect::Suspend, "RISC account-disabled"),
    )
    .await;
    assert_eq!(again, Applied::Unchanged);

    let lifted = send(
        &app,
        signal(BUILTIN, &id, Effect::Lift, "RISC account-enabled"),
    )
    .await;
    assert_eq!(lifted, Applied::Changed);
    assert!(app.key_works(&key).await, "the same key works again");
    // The session that was ended stays ended: the person signs in again.
    assert_eq!(app.me(&bob).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_signal_never_lifts_a_suspension_it_did_not_make() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let key = app.create_key(&bob, "etl").await;
    let id = bob.id();
    // Suspended by something else (here, by hand in the database, as reconciliation's grace
    // or SCIM would).
    let uid = UserId::from(id.as_str());
    app.app
        .store
        .write(move |conn| {
            use accesskeyd::store::schema::users;
            use diesel::prelude::*;
            diesel::update(users::table.find(&uid))
                .set(users::suspended_at.eq(Some(
                    accesskeyd::store::timestamp::Timestamp::from_millis(1),
                )))
                .execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
    app.app
        .auth_cache
        .forget(&accesskeyd::auth_cache::Revoked::All);
    assert!(!app.key_works(&key).await);
    let lifted = send(
        &app,
        signal(BUILTIN, &id, Effect::Lift, "RISC account-enabled"),
    )
    .await;
    assert_eq!(lifted, Applied::Unchanged);
    assert!(!app.key_works(&key).await);
}

#[tokio::test]
async fn a_revoked_credential_stops_keys_until_the_next_interactive_sign_in() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let key = app.create_key(&bob, "etl").await;
    let id = bob.id();

    let ended = send(
        &app,
        signal(BUILTIN, &id, Effect::EndSessions, "CAEP session-revoked"),
    )
    .await;
    assert_eq!(ended, Applied::Changed);
    assert_eq!(app.me(&bob).await.status, StatusCode::UNAUTHORIZED);
    assert!(
        app.key_works(&key).await,
        "ending sessions leaves keys alone"
    );

    app.advance(chrono::Duration::seconds(1));
    let lapsed = send(
        &app,
        signal(
            BUILTIN,
            &id,
            Effect::LapseKeys,
            "RISC credential-compromise",
        ),
    )
    .await;
    assert_eq!(lapsed, Applied::Changed);
    assert!(!app.key_works(&key).await, "keys lapse");
    let me = app.me_with_key(&key).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.body);

    // Signing in interactively again brings the keys back.
    app.advance(chrono::Duration::seconds(1));
    app.login("bob", "bob-password-123").await;
    app.settle().await;
    assert!(app.key_works(&key).await);
}

/// An LDAP directory with a change feed that is never connected here (nothing answers), and
/// a threshold of 2.
const CORP: &str = r#"
[[directories]]
id = "corp"
kind = "ldap"
name = "Corp LDAP"
url = "ldap://127.0.0.1:1"
user_base = "ou=people,dc=example,dc=org"
timeout_seconds = 2
change_feed = true
deletion_threshold = 2
"#;

#[tokio::test]
async fn signals_beyond_the_threshold_stop_and_wait_for_an_admin() {
    let app = TestApp::spawn_with(CORP).await;
    let admin = app.admin().await;
    let mut ids = Vec::new();
    for name in ["ann", "ben", "cat", "dan"] {
        let info = accesskeyd::users::upsert_login(
            &app.app,
            &DirectoryId::from("corp"),
            DirectoryUser {
                external_id: format!("{name}-uuid"),
                username: name.into(),
                display_name: None,
                first_name: None,
                last_name: None,
                email: None,
                is_admin: false,
            },
        )
        .await
        .expect("record");
        ids.push(info.row.id.to_string());
    }
    let feed = "LDAP change feed: deleted";
    assert_eq!(
        send(&app, signal("corp", &ids[0], Effect::Suspend, feed)).await,
        Applied::Changed
    );
    assert_eq!(
        send(&app, signal("corp", &ids[1], Effect::Suspend, feed)).await,
        Applied::Changed
    );
    // The third within the window is one too many: withheld, and the signals stop.
    assert_eq!(
        send(&app, signal("corp", &ids[2], Effect::Suspend, feed)).await,
        Applied::Withheld
    );
    assert_eq!(
        send(&app, signal("corp", &ids[3], Effect::Suspend, feed)).await,
        Applied::Withheld
    );
    let cat = app
        .get(&format!("/api/users/{}", ids[2]))
        .auth(&admin)
        .send()
        .await
        .json();
    assert!(cat["suspendedAt"].is_null(), "{cat}");
    // Lifts still pass.
    assert_eq!(
        send(
            &app,
            signal("corp", &ids[0], Effect::Lift, "LDAP change feed: back")
        )
        .await,
        Applied::Changed
    );

    let dir = app
        .get("/api/directories/corp")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(dir["signals"]["source"], "syncrepl", "{dir}");
    assert_eq!(dir["signals"]["stopped"], true, "{dir}");
    assert!(
        dir["signals"]["stoppedReason"]
            .as_str()
            .unwrap_or("")
            .contains("deletion_threshold = 2"),
        "{dir}"
    );
    assert_eq!(dir["signals"]["suspensionsToday"], 2, "{dir}");
    let tripped = app
        .get("/api/audit?action=signals.tripped")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(tripped["totalResults"], 1, "alerted once: {tripped}");
    let m = app.metrics().await;
    assert!(
        m.contains("accesskeyd_signals_total{directory=\"corp\",effect=\"suspend\",outcome=\"withheld\"} 2"),
        "{m}"
    );

    // The Admin Panel says so, with a button that resumes them.
    let tab = app
        .get("/ui/admin/directories")
        .session_cookie(&admin)
        .send()
        .await;
    assert_eq!(tab.status, StatusCode::OK);
    assert!(tab.body.contains("Change signals"), "{}", tab.body);
    assert!(
        tab.body.contains("Stopped suspending:") && tab.body.contains("deletion_threshold = 2"),
        "{}",
        tab.body
    );
    let csrf = tab.csrf_field();
    let r = app
        .post("/ui/admin/directories/corp/signals/resume")
        .session_cookie(&admin)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.header("location"),
        "/ui/admin/directories?notice=signals-resumed#dir-corp"
    );
    let tab = app
        .get("/ui/admin/directories")
        .session_cookie(&admin)
        .send()
        .await;
    assert!(!tab.body.contains("Stopped suspending:"), "{}", tab.body);
    let audit = app
        .get("/api/audit?action=signals.resume")
        .auth(&admin)
        .send()
        .await
        .json();
    assert_eq!(audit["totalResults"], 1, "{audit}");
    // Stopped again by the next suspension: the window still holds two.
    assert_eq!(
        send(&app, signal("corp", &ids[2], Effect::Suspend, feed)).await,
        Applied::Withheld
    );

    // Only an admin resumes, once.
    let bob = app.user("bob").await;
    let r = resume(&app, "corp", &bob).await;
    assert_error(&r, StatusCode::FORBIDDEN, "admin");
    let r = resume(&app, "corp", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["signals"]["stopped"], false);
    let r = resume(&app, "corp", &admin).await;
    assert_error(&r, StatusCode::CONFLICT, "not stopped");
    let r = resume(&app, "nope", &admin).await;
    assert_error(&r, StatusCode::NOT_FOUND, "no directory");
    // The window still holds two suspensions: the next one trips again at once.
    assert_eq!(
        send(&app, signal("corp", &ids[2], Effect::Suspend, feed)).await,
        Applied::Withheld
    );
    // A window later, it passes.
    app.advance(chrono::Duration::minutes(61));
    let r = resume(&app, "corp", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        send(&app, signal("corp", &ids[2], Effect::Suspend, feed)).await,
        Applied::Changed
    );
    // Directories without signals show none.
    let builtin = app
        .get("/api/directories/builtin")
        .auth(&admin)
        .send()
        .await
        .json();
    assert!(builtin["signals"].is_null(), "{builtin}");
}
