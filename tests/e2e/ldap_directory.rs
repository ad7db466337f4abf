//! The LDAP directory module against a real OpenLDAP slapd: binds, TLS, failures.

use std::time::{Duration, Instant};

use crate::harness::slapd::Slapd;
use accesskeyd::config::LdapDirectoryConfig;
use accesskeyd::directory::ldap::LdapDirectory;
use accesskeyd::directory::{DirectoryError, DirectoryUser};
use accesskeyd::secret::Secret;

fn config(slapd: &Slapd) -> LdapDirectoryConfig {
    LdapDirectoryConfig {
        id: "corp".into(),
        name: "Corp LDAP".into(),
        url: slapd.url(),
        starttls: false,
        ca_file: None,
        bind_dn: Some(slapd.service_dn().into()),
        bind_password: Some(Secret::new(slapd.service_password())),
        user_base: slapd.user_base().into(),
        user_filter: "(objectClass=inetOrgPerson)".into(),
        username_attribute: "uid".into(),
        id_attribute: "entryUUID".into(),
        display_name_attribute: "cn".into(),
        first_name_attribute: "givenName".into(),
        last_name_attribute: "sn".into(),
        email_attribute: "mail".into(),
        admin_group: Some(slapd.admin_group_dn().into()),
        timeout_seconds: 5,
        active_directory: false,
        required_group: None,
        last_login_attribute: None,
        page_size: 500,
        sync: accesskeyd::config::SyncPolicy::default(),
    }
}

fn directory(cfg: LdapDirectoryConfig) -> LdapDirectory {
    LdapDirectory::new(cfg).expect("valid config")
}

async fn login(dir: &LdapDirectory, user: &str, pw: &str) -> Result<DirectoryUser, DirectoryError> {
    dir.authenticate(user, &Secret::new(pw)).await
}

fn assert_invalid(r: Result<DirectoryUser, DirectoryError>, what: &str) {
    assert!(
        matches!(r, Err(DirectoryError::InvalidCredentials)),
        "{what}: expected InvalidCredentials, got {r:?}"
    );
}

fn assert_unavailable(r: Result<DirectoryUser, DirectoryError>, what: &str) -> String {
    match r {
        Err(DirectoryError::Unavailable(m)) => {
            eprintln!("{what}: {m}");
            m
        }
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

fn looks_like_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test]
async fn alice_logs_in_over_plain_ldap_as_admin() {
    let slapd = Slapd::start().await;
    let dir = directory(config(&slapd));
    let alice = &Slapd::users()[0];
    let user = login(&dir, "alice", alice.password).await.expect("alice");
    assert_eq!(user.username, "alice");
    assert!(user.is_admin);
    assert!(looks_like_uuid(&user.external_id), "{}", user.external_id);
    assert_eq!(user.display_name.as_deref(), Some(alice.cn));
    assert_eq!(user.first_name.as_deref(), Some(alice.given_name));
    assert_eq!(user.last_name.as_deref(), Some(alice.sn));
    assert_eq!(user.email.as_deref(), Some(alice.mail));

    // Case-insensitive match upstream; the canonical upstream spelling comes back.
    let again = login(&dir, "ALICE", alice.password).await.expect("ALICE");
    assert_eq!(again.username, "alice");
    assert_eq!(again.external_id, user.external_id);
}

#[tokio::test]
async fn bob_is_not_admin() {
    let slapd = Slapd::start().await;
    let dir = directory(config(&slapd));
    let bob = login(&dir, "bob", "bob-pw").await.expect("bob");
    assert_eq!(bob.username, "bob");
    assert!(!bob.is_admin);
}

#[tokio::test]
async fn bad_credentials_are_invalid() {
    let slapd = Slapd::start().await;
    let dir = directory(config(&slapd));
    assert_invalid(login(&dir, "alice", "wrong").await, "wrong password");
    assert_invalid(login(&dir, "alice", "").await, "empty password");
    assert_invalid(login(&dir, "nobody", "x").await, "unknown user");
    assert_invalid(login(&dir, "", "x").await, "empty username");
    // Filter metacharacters must match literally, not widen the search.
    for name in ["*", "bob)(uid=*", "b*", "*)(|(uid=*", "bob\\", "(uid=bob)"] {
        assert_invalid(login(&dir, name, "bob-pw").await, name);
    }
    // The service account is outside user_base and cannot log in.
    assert_invalid(login(&dir, "svc", slapd.service_password()).await, "svc");
}

#[tokio::test]
async fn starttls_and_ldaps_with_ca_file() {
    let slapd = Slapd::start().await;

    let mut cfg = config(&slapd);
    cfg.starttls = true;
    cfg.ca_file = Some(slapd.ca_file());
    let user = login(&directory(cfg), "alice", "alice-pw")
        .await
        .expect("StartTLS");
    assert!(user.is_admin);

    let mut cfg = config(&slapd);
    cfg.url = slapd.ldaps_url();
    cfg.ca_file = Some(slapd.ca_file());
    let dir = directory(cfg);
    let user = login(&dir, "bob", "bob-pw").await.expect("LDAPS");
    assert!(!user.is_admin);
    dir.check().await.expect("check over LDAPS");
}

#[tokio::test]
async fn tls_without_the_right_ca_is_unavailable() {
    let slapd = Slapd::start().await;
    let other = Slapd::start().await; // its CA did not sign `slapd`'s certificate

    for starttls in [false, true] {
        let mut cfg = config(&slapd);
        if starttls {
            cfg.starttls = true;
        } else {
            cfg.url = slapd.ldaps_url();
        }
        cfg.ca_file = Some(other.ca_file());
        let started = Instant::now();
        let msg = assert_unavailable(
            login(&directory(cfg.clone()), "alice", "alice-pw").await,
            "wrong CA",
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert!(msg.contains("certificate"), "{msg}");

        // No ca_file: the platform roots do not know the test CA either.
        cfg.ca_file = None;
        assert_unavailable(
            login(&directory(cfg), "alice", "alice-pw").await,
            "platform roots",
        );
    }
}

#[tokio::test]
async fn stopped_server_is_unavailable_quickly() {
    let mut slapd = Slapd::start().await;
    let mut cfg = config(&slapd);
    cfg.timeout_seconds = 2;
    let dir = directory(cfg);
    slapd.stop();
    slapd.stop(); // idempotent
    let started = Instant::now();
    assert_unavailable(login(&dir, "alice", "alice-pw").await, "stopped slapd");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(
        dir.check().await,
        Err(DirectoryError::Unavailable(_))
    ));
}

#[tokio::test]
async fn silent_server_times_out() {
    // A listener that accepts but never answers: only the timeout can end the attempt.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let slapd = Slapd::start().await;
    let mut cfg = config(&slapd);
    cfg.url = format!("ldap://127.0.0.1:{port}");
    cfg.timeout_seconds = 1;
    let started = Instant::now();
    let msg = assert_unavailable(
        login(&directory(cfg), "alice", "alice-pw").await,
        "silent server",
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(msg.contains("timed out"), "{msg}");
    drop(listener);
}

#[tokio::test]
async fn wrong_service_password_is_unavailable() {
    let slapd = Slapd::start().await;
    let mut cfg = config(&slapd);
    cfg.bind_password = Some(Secret::new("not-the-service-password"));
    let dir = directory(cfg);
    let msg = assert_unavailable(login(&dir, "alice", "alice-pw").await, "service bind");
    assert!(!msg.contains("not-the-service-password"), "{msg}");
    assert!(msg.contains("49"), "{msg}");
    assert!(matches!(
        dir.check().await,
        Err(DirectoryError::Unavailable(_))
    ));
}

#[tokio::test]
async fn admin_group_changes_apply_on_next_login() {
    let slapd = Slapd::start().await;
    let dir = directory(config(&slapd));
    assert!(
        login(&dir, "alice", "alice-pw")
            .await
            .expect("alice")
            .is_admin
    );
    slapd.remove_from_admins("alice").await;
    assert!(
        !login(&dir, "alice", "alice-pw")
            .await
            .expect("alice")
            .is_admin
    );

    slapd.add_to_admins("bob").await;
    assert!(login(&dir, "bob", "bob-pw").await.expect("bob").is_admin);

    // A missing admin group means no admins, not an error.
    let mut cfg = config(&slapd);
    cfg.admin_group = Some("cn=missing,ou=groups,dc=example,dc=org".into());
    assert!(
        !login(&directory(cfg), "bob", "bob-pw")
            .await
            .expect("bob")
            .is_admin
    );
}

#[tokio::test]
async fn user_changes_upstream_apply() {
    let slapd = Slapd::start().await;
    let dir = directory(config(&slapd));
    slapd.add_user("dave", "dave-pw").await;
    let dave = login(&dir, "dave", "dave-pw").await.expect("dave");
    assert_eq!(dave.email.as_deref(), Some("dave@example.org"));
    assert_eq!(dave.first_name, None);

    slapd.set_password("dave", "new-pw").await;
    assert_invalid(login(&dir, "dave", "dave-pw").await, "old password");
    assert!(login(&dir, "dave", "new-pw").await.is_ok());

    slapd.delete_user("dave").await;
    assert_invalid(login(&dir, "dave", "new-pw").await, "deleted user");
}

#[tokio::test]
async fn ambiguous_username_is_invalid() {
    let slapd = Slapd::start().await;
    let mut cfg = config(&slapd);
    // Matching on sn makes "Builder" ambiguous once a second Builder exists.
    cfg.username_attribute = "sn".into();
    let dir = directory(cfg);
    assert_eq!(
        login(&dir, "builder", "bob-pw")
            .await
            .expect("bob")
            .username,
        "Builder"
    );
    slapd.add_user("Builder", "x").await; // sn = Builder as well
    assert_invalid(login(&dir, "Builder", "bob-pw").await, "ambiguous");
}

#[tokio::test]
async fn check_reports_good_and_bad_configs() {
    let slapd = Slapd::start().await;
    directory(config(&slapd))
        .check()
        .await
        .expect("good config");

    let mut cfg = config(&slapd);
    cfg.user_base = "ou=nowhere,dc=example,dc=org".into();
    assert!(matches!(
        directory(cfg).check().await,
        Err(DirectoryError::Misconfigured(m)) if m.contains("user_base")
    ));

    let mut cfg = config(&slapd);
    cfg.admin_group = Some("cn=missing,dc=example,dc=org".into());
    assert!(matches!(
        directory(cfg).check().await,
        Err(DirectoryError::Misconfigured(m)) if m.contains("admin_group")
    ));

    // Anonymous sees nothing under these ACLs.
    let mut cfg = config(&slapd);
    cfg.bind_dn = None;
    cfg.bind_password = None;
    assert!(directory(cfg).check().await.is_err());
}

#[tokio::test]
async fn harness_memberof_overlay_is_active() {
    let slapd = Slapd::start().await;
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&slapd.url())
        .await
        .expect("connect");
    ldap3::drive!(conn);
    ldap.simple_bind(slapd.service_dn(), slapd.service_password())
        .await
        .expect("bind")
        .success()
        .expect("svc bind");
    let alice = format!("uid=alice,{}", slapd.user_base());
    let (entries, _) = ldap
        .search(
            &alice,
            ldap3::Scope::Base,
            "(objectClass=*)",
            vec!["memberOf"],
        )
        .await
        .expect("search")
        .success()
        .expect("search ok");
    let entry = ldap3::SearchEntry::construct(entries.into_iter().next().expect("alice"));
    assert_eq!(
        entry.attrs.get("memberOf").map(Vec::as_slice),
        Some([slapd.admin_group_dn().to_owned()].as_slice())
    );
    ldap.unbind().await.expect("unbind");
}
