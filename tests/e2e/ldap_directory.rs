//! The LDAP directory module against a real OpenLDAP slapd: binds, TLS, failures, and the
//! paged reads that directory sync relies on.

use std::time::{Duration, Instant};

use crate::harness::slapd::Slapd;
use accesskeyd::config::{LdapDirectoryConfig, SyncPolicy};
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
        domain_controllers: None,
        page_size: 500,
        sync: SyncPolicy::default(),
        create_users_from_events: false,
        change_feed: None,
        windows_domains: Vec::new(),
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
    let mut groups = entry.attrs.get("memberOf").cloned().unwrap_or_default();
    groups.sort();
    assert_eq!(groups, [slapd.admin_group_dn(), slapd.users_group_dn()]);
    ldap.unbind().await.expect("unbind");
}

// ---------------------------------------------------------------------------------------------
// Directory reads for sync

use accesskeyd::directory::ldap::{ReadStats, UpstreamUser};

/// All of example.org, where the services and groups live too: only the filter keeps them out.
fn sync_config(slapd: &Slapd) -> LdapDirectoryConfig {
    let mut cfg = config(slapd);
    cfg.user_base = "dc=example,dc=org".into();
    cfg
}

async fn read(dir: &LdapDirectory) -> Result<(Vec<UpstreamUser>, ReadStats), DirectoryError> {
    let mut users = Vec::new();
    let stats = dir.read_users(|u| users.push(u)).await?;
    users.sort_by(|a, b| a.username.cmp(&b.username));
    Ok((users, stats))
}

fn usernames(users: &[UpstreamUser]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

fn unavailable<T: std::fmt::Debug>(r: Result<T, DirectoryError>, what: &str) -> String {
    match r {
        Err(DirectoryError::Unavailable(m)) => {
            eprintln!("{what}: {m}");
            m
        }
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn read_users_pages_through_everyone() {
    let slapd = Slapd::start().await;
    let mut cfg = sync_config(&slapd);
    cfg.page_size = 1;
    let dir = directory(cfg);
    let (users, stats) = read(&dir).await.expect("read");
    assert_eq!(usernames(&users), ["alice", "bob", "carol"]);
    assert_eq!(stats.entries, 3);
    assert!(stats.pages >= 3, "{stats:?}");
    assert_eq!(stats.ignored_references, 0);
    for u in &users {
        assert_eq!(u.dn, format!("uid={},{}", u.username, slapd.user_base()));
        assert!(looks_like_uuid(&u.external_id), "{}", u.external_id);
        assert!(!u.disabled);
        assert_eq!(u.last_login, None);
    }
    // The ids are the ones a login reports.
    let alice = login(&dir, "alice", "alice-pw").await.expect("alice");
    assert_eq!(alice.external_id, users[0].external_id);

    // One page for everything.
    let (users, stats) = read(&directory(sync_config(&slapd))).await.expect("read");
    assert_eq!(usernames(&users), ["alice", "bob", "carol"]);
    assert_eq!(stats.pages, 1);

    // Without a filter the services, groups and OUs are entries too, and lack a uid.
    let mut cfg = sync_config(&slapd);
    cfg.user_filter = String::new();
    let msg = unavailable(read(&directory(cfg)).await, "no user filter");
    assert!(msg.contains("has no uid"), "{msg}");
}

#[tokio::test]
async fn read_users_keeps_to_the_required_group() {
    let slapd = Slapd::start().await;
    slapd.add_user("dave", "dave-pw").await;
    let mut cfg = sync_config(&slapd);
    cfg.required_group = Some(slapd.users_group_dn().into());
    cfg.page_size = 2;
    let dir = directory(cfg);
    let (users, _) = read(&dir).await.expect("read");
    assert_eq!(usernames(&users), ["alice", "bob", "carol"]);

    slapd.remove_from_group(slapd.users_group_dn(), "bob").await;
    slapd.add_to_group(slapd.users_group_dn(), "dave").await;
    let (users, _) = read(&dir).await.expect("read");
    assert_eq!(usernames(&users), ["alice", "carol", "dave"]);
}

#[tokio::test]
async fn admin_external_ids_are_the_admin_group_members() {
    let slapd = Slapd::start().await;
    let mut cfg = sync_config(&slapd);
    cfg.page_size = 1;
    let dir = directory(cfg.clone());
    let (users, _) = read(&dir).await.expect("read");
    let id = |name: &str| {
        users
            .iter()
            .find(|u| u.username == name)
            .expect(name)
            .external_id
            .clone()
    };
    let admins = dir.admin_external_ids().await.expect("admins");
    assert_eq!(admins, [id("alice")].into_iter().collect());

    slapd.add_to_admins("carol").await;
    let admins = dir.admin_external_ids().await.expect("admins");
    assert_eq!(admins, [id("alice"), id("carol")].into_iter().collect());
    slapd.remove_from_admins("alice").await;
    slapd.remove_from_admins("carol").await;
    assert!(dir.admin_external_ids().await.expect("admins").is_empty());

    cfg.admin_group = None;
    assert!(directory(cfg)
        .admin_external_ids()
        .await
        .expect("no group")
        .is_empty());
}

#[tokio::test]
async fn last_login_comes_from_auth_timestamp() {
    let slapd = Slapd::start().await;
    let mut cfg = sync_config(&slapd);
    cfg.last_login_attribute = Some("authTimestamp".into());
    let dir = directory(cfg);
    let (users, _) = read(&dir).await.expect("read");
    assert!(users.iter().all(|u| u.last_login.is_none()), "{users:?}");

    let before = chrono::Utc::now();
    login(&dir, "carol", "carol-pw").await.expect("carol");
    let (users, _) = read(&dir).await.expect("read");
    let carol = users.iter().find(|u| u.username == "carol").expect("carol");
    let at = carol.last_login.expect("carol has logged in");
    // authTimestamp has whole seconds.
    let lag = at.signed_duration_since(before);
    assert!(
        lag > chrono::TimeDelta::seconds(-2) && lag < chrono::TimeDelta::seconds(60),
        "authTimestamp {at} vs login at {before}"
    );
    let others: Vec<_> = users.iter().filter(|u| u.username != "carol").collect();
    assert!(others.iter().all(|u| u.last_login.is_none()), "{others:?}");
}

#[tokio::test]
async fn harness_lastbind_sets_auth_timestamp() {
    let slapd = Slapd::start().await;
    let dn = format!("uid=bob,{}", slapd.user_base());
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&slapd.url())
        .await
        .expect("connect");
    ldap3::drive!(conn);
    let auth_timestamp = |ldap: &mut ldap3::Ldap| {
        let mut ldap = ldap.clone();
        let dn = dn.clone();
        async move {
            let (entries, _) = ldap
                .search(
                    &dn,
                    ldap3::Scope::Base,
                    "(objectClass=*)",
                    vec!["authTimestamp"],
                )
                .await
                .expect("search")
                .success()
                .expect("search ok");
            let entry = ldap3::SearchEntry::construct(entries.into_iter().next().expect("bob"));
            entry.attrs.get("authTimestamp").cloned()
        }
    };
    ldap.simple_bind(slapd.service_dn(), slapd.service_password())
        .await
        .expect("bind")
        .success()
        .expect("svc bind");
    assert_eq!(auth_timestamp(&mut ldap).await, None);
    // A failed bind leaves it alone, a good one sets it.
    login(&directory(config(&slapd)), "bob", "wrong")
        .await
        .expect_err("wrong password");
    assert_eq!(auth_timestamp(&mut ldap).await, None);
    login(&directory(config(&slapd)), "bob", "bob-pw")
        .await
        .expect("bob");
    let stamp = auth_timestamp(&mut ldap).await.expect("authTimestamp");
    assert_eq!(stamp.len(), 1);
    assert!(stamp[0].len() == 15 && stamp[0].ends_with('Z'), "{stamp:?}");
    ldap.unbind().await.expect("unbind");
}

#[tokio::test]
async fn size_limit_fails_the_read() {
    let slapd = Slapd::start().await;
    slapd.add_users_bulk("extra", 5, "pw").await;
    for page_size in [1, 2, 500] {
        let mut cfg = sync_config(&slapd);
        cfg.bind_dn = Some(slapd.limited_dn().into());
        cfg.bind_password = Some(Secret::new(slapd.limited_password()));
        cfg.page_size = page_size;
        let dir = directory(cfg);
        let mut seen = 0;
        let msg = unavailable(dir.read_users(|_| seen += 1).await, "limited account");
        assert!(msg.contains("size limit"), "{msg}");
        assert!(msg.contains("rc=4"), "{msg}");
        assert!(
            seen <= slapd.limited_size(),
            "page size {page_size}: saw {seen}"
        );
    }
    // The same search as the unlimited service account is fine.
    let (users, _) = read(&directory(sync_config(&slapd))).await.expect("read");
    assert_eq!(users.len(), 8);
}

#[tokio::test]
async fn server_killed_mid_read_fails_the_read() {
    let slapd = Slapd::start().await;
    let mut cfg = sync_config(&slapd);
    cfg.page_size = 1;
    let dir = directory(cfg);
    let kill = slapd.killer();
    let mut seen = 0;
    let started = Instant::now();
    let result = dir
        .read_users(|_| {
            seen += 1;
            if seen == 1 {
                kill();
            }
        })
        .await;
    let msg = unavailable(result, "killed mid-read");
    assert_eq!(seen, 1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(msg.contains("page"), "{msg}");
}

#[tokio::test]
async fn server_stalled_mid_read_times_out() {
    let slapd = Slapd::start().await;
    let mut cfg = sync_config(&slapd);
    cfg.page_size = 1;
    cfg.timeout_seconds = 1;
    let dir = directory(cfg);
    let pause = slapd.signaller("STOP");
    let mut seen = 0;
    let started = Instant::now();
    let result = dir
        .read_users(|_| {
            seen += 1;
            if seen == 1 {
                pause();
            }
        })
        .await;
    let msg = unavailable(result, "stalled mid-read");
    assert_eq!(seen, 1);
    assert!(msg.contains("timed out"), "{msg}");
    // One timeout for the page, one at most for the unbind afterwards.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stopped_server_fails_reads_quickly() {
    let mut slapd = Slapd::start().await;
    let mut cfg = sync_config(&slapd);
    cfg.timeout_seconds = 2;
    let dir = directory(cfg);
    slapd.stop();
    let started = Instant::now();
    let mut seen = 0;
    unavailable(dir.read_users(|_| seen += 1).await, "stopped slapd");
    unavailable(dir.admin_external_ids().await, "stopped slapd");
    assert_eq!(seen, 0);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bulk_directory_is_read_completely() {
    let slapd = Slapd::start().await;
    let started = Instant::now();
    slapd.add_users_bulk("bulk", 2000, "bulk-pw").await;
    eprintln!("2000 users added in {:?}", started.elapsed());
    let mut cfg = sync_config(&slapd);
    cfg.page_size = 500;
    let dir = directory(cfg);
    let mut names = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    let started = Instant::now();
    let stats = dir
        .read_users(|u| {
            ids.insert(u.external_id);
            assert!(names.insert(u.username), "duplicate");
        })
        .await
        .expect("read");
    eprintln!("2003 users read in {:?}: {stats:?}", started.elapsed());
    assert_eq!(stats.entries, 2003);
    assert_eq!(stats.pages, 5);
    assert_eq!(names.len(), 2003);
    assert_eq!(ids.len(), 2003);
    assert!((0..2000).all(|n| names.contains(&format!("bulk{n}"))));
    assert!(login(&dir, "bulk1999", "bulk-pw").await.is_ok());

    // Pages larger than slapd's default size limit (500) are fine too.
    let mut cfg = sync_config(&slapd);
    cfg.page_size = 1000;
    let mut count = 0u64;
    let stats = directory(cfg)
        .read_users(|_| count += 1)
        .await
        .expect("read");
    assert_eq!((count, stats.entries, stats.pages), (2003, 2003, 3));

    // Killed while the first of four full pages streams: never a short Ok.
    let kill = slapd.killer();
    let mut seen = 0u64;
    let result = dir
        .read_users(|_| {
            seen += 1;
            if seen == 1 {
                kill();
            }
        })
        .await;
    unavailable(result, "killed during a 500-entry page");
    assert!(seen < 2003, "{seen}");
}
