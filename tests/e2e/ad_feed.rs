//! The directory layer of the change feeds against real servers: Active Directory's DirSync
//! poll and the point look-ups that confirm each change, on the Samba AD DC (one per machine:
//! every Samba test here holds `samba::exclusive()`), and the same look-ups on OpenLDAP.

use std::time::{Duration, Instant};

use crate::harness::samba::{self, SambaDc};
use crate::harness::slapd::Slapd;
use accesskeyd::config::{LdapDirectoryConfig, SyncPolicy};
use accesskeyd::directory::ldap::feed::{Change, FeedBatch, Standing};
use accesskeyd::directory::ldap::LdapDirectory;
use accesskeyd::directory::DirectoryError;
use accesskeyd::secret::Secret;

const PW: &str = "Passw0rd!Str0ng";
/// How long a change may take to show in a poll (Samba answers at once; this only bounds a
/// broken run).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(15);

fn ad_config(dc: &SambaDc, required_group: Option<String>) -> LdapDirectoryConfig {
    LdapDirectoryConfig {
        id: "ad".into(),
        name: "Corp AD".into(),
        url: dc.url(),
        starttls: false,
        ca_file: None,
        bind_dn: Some(dc.admin_bind_dn()),
        bind_password: Some(Secret::new(dc.admin_password())),
        user_base: dc.users_dn(),
        user_filter: "(&(objectCategory=person)(objectClass=user))".into(),
        username_attribute: "sAMAccountName".into(),
        id_attribute: "objectGUID".into(),
        display_name_attribute: "displayName".into(),
        first_name_attribute: "givenName".into(),
        last_name_attribute: "sn".into(),
        email_attribute: "mail".into(),
        admin_group: None,
        timeout_seconds: 10,
        active_directory: true,
        required_group,
        last_login_attribute: None,
        domain_controllers: None,
        page_size: 500,
        sync: SyncPolicy::default(),
        create_users_from_events: false,
        change_feed: None,
        windows_domains: Vec::new(),
    }
}

/// The person's objectGUID as the directory formats it, from a look-up by name.
async fn id_of(dir: &LdapDirectory, sam: &str) -> String {
    dir.lookup(sam).await.expect("look-up").external_id
}

/// Polls from `cookie` until a batch holds a change `wanted` accepts, or panics after
/// CHANGE_TIMEOUT; returns every change seen on the way and the cookie after them.
async fn poll_until(
    dir: &LdapDirectory,
    cookie: Vec<u8>,
    what: &str,
    wanted: impl Fn(&Change) -> bool,
) -> (Vec<Change>, Vec<u8>) {
    let deadline = Instant::now() + CHANGE_TIMEOUT;
    let mut cookie = cookie;
    let mut seen = Vec::new();
    loop {
        let FeedBatch {
            changes,
            cookie: next,
        } = dir.dirsync(Some(cookie.clone())).await.expect("poll");
        cookie = next.expect("every DirSync answer has a cookie");
        let found = changes.iter().any(&wanted);
        seen.extend(changes);
        if found {
            return (seen, cookie);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {CHANGE_TIMEOUT:?}; changes seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn entry_of<'a>(changes: &'a [Change], id: &str) -> Option<&'a Change> {
    changes
        .iter()
        .find(|c| matches!(c, Change::Entry { external_id, .. } if external_id == id))
}

#[tokio::test]
async fn dirsync_reports_disables_enables_and_deletions_and_lookups_confirm_them() {
    let _one_dc = samba::exclusive().await;
    let dc = SambaDc::start().await;
    for u in ["ann", "ben", "gus"] {
        dc.create_user(u, PW).await;
    }
    let dir = LdapDirectory::new(ad_config(&dc, None)).expect("config");
    let (ann, gus) = (id_of(&dir, "ann").await, id_of(&dir, "gus").await);

    // The first poll (no cookie) reports everyone; the baseline gives a cookie without them.
    let first = dir.dirsync(None).await.expect("first poll");
    assert!(
        entry_of(&first.changes, &ann).is_some(),
        "{:?}",
        first.changes
    );
    assert!(
        !first
            .changes
            .iter()
            .any(|c| matches!(c, Change::MemberAdded { .. })),
        "without required_group no membership is reported: {:?}",
        first.changes
    );
    let cookie = dir.dirsync_baseline().await.expect("baseline");
    assert!(!cookie.is_empty());

    // (d) Nothing happened since: an empty batch, with a cookie to keep.
    let quiet = dir.dirsync(Some(cookie.clone())).await.expect("quiet poll");
    assert_eq!(quiet.changes, [], "no change, no entries");
    let cookie = quiet.cookie.expect("a cookie even without changes");

    // (a) Ann is disabled: her entry comes, and the look-up says she is disabled.
    dc.disable_user("ann").await;
    let (changes, cookie) = poll_until(
        &dir,
        cookie,
        "ann disabled",
        |c| matches!(c, Change::Entry { external_id, .. } if *external_id == ann),
    )
    .await;
    assert_eq!(
        entry_of(&changes, &ann),
        Some(&Change::Entry {
            external_id: ann.clone(),
            deleted: false
        })
    );
    match dir.standing_by_id(&ann).await.expect("look-up") {
        Standing::InScope(user) => {
            assert!(user.disabled, "{user:?}");
            assert_eq!(user.username, "ann");
            assert_eq!(user.external_id, ann);
        }
        other => panic!("ann disabled: expected InScope, got {other:?}"),
    }

    // Re-enabled: another entry change, and she is in scope and enabled again.
    dc.enable_user("ann").await;
    let (_, cookie) = poll_until(
        &dir,
        cookie,
        "ann enabled",
        |c| matches!(c, Change::Entry { external_id, .. } if *external_id == ann),
    )
    .await;
    match dir.standing_by_id(&ann).await.expect("look-up") {
        Standing::InScope(user) => assert!(!user.disabled, "{user:?}"),
        other => panic!("ann enabled: expected InScope, got {other:?}"),
    }

    // (b) Gus is deleted: his entry comes marked deleted, and he is absent.
    assert!(matches!(
        dir.standing_by_id(&gus).await.expect("look-up"),
        Standing::InScope(_)
    ));
    dc.delete_user("gus").await;
    let (changes, cookie) = poll_until(
        &dir,
        cookie,
        "gus deleted",
        |c| matches!(c, Change::Entry { external_id, .. } if *external_id == gus),
    )
    .await;
    assert_eq!(
        entry_of(&changes, &gus),
        Some(&Change::Entry {
            external_id: gus.clone(),
            deleted: true
        })
    );
    assert_eq!(
        dir.standing_by_id(&gus).await.expect("look-up"),
        Standing::Absent
    );

    // Ben was not touched: he never appeared after the baseline, and stays in scope.
    let ben = id_of(&dir, "ben").await;
    let after = dir.dirsync(Some(cookie)).await.expect("poll");
    assert_eq!(entry_of(&after.changes, &ben), None);
    assert!(matches!(
        dir.standing_by_id(&ben).await.expect("look-up"),
        Standing::InScope(_)
    ));

    // A cookie the server cannot read: distinguishable, so the caller starts over.
    match dir.dirsync(Some(b"not a cookie".to_vec())).await {
        Err(DirectoryError::FeedReset(m)) => eprintln!("refused cookie: {m}"),
        other => panic!("expected FeedReset, got {other:?}"),
    }
}

#[tokio::test]
async fn leaving_the_required_group_comes_as_member_removed_and_out_of_scope() {
    let _one_dc = samba::exclusive().await;
    let dc = SambaDc::start().await;
    let group = dc.create_group("akd-users").await;
    for u in ["ann", "ben"] {
        dc.create_user(u, PW).await;
    }
    dc.add_members("akd-users", &["ann", "ben"]).await;
    let dir = LdapDirectory::new(ad_config(&dc, Some(group.clone()))).expect("config");
    let ben = id_of(&dir, "ben").await;
    let ben_dn = dc.dn_for("ben");

    let first = dir.dirsync(None).await.expect("first poll");
    assert!(
        first
            .changes
            .contains(&Change::MemberAdded { dn: ben_dn.clone() }),
        "the first poll lists memberships: {:?}",
        first.changes
    );
    let cookie = first.cookie.expect("cookie");
    assert!(matches!(
        dir.standing_by_dn(&ben_dn).await.expect("look-up"),
        Standing::InScope(u) if u.external_id == ben
    ));

    // (c) Ben leaves the group: the removal names his DN, and his DN is now out of scope.
    dc.remove_members("akd-users", &["ben"]).await;
    let (changes, cookie) = poll_until(
        &dir,
        cookie,
        "ben removed",
        |c| matches!(c, Change::MemberRemoved { dn } if dn.eq_ignore_ascii_case(&ben_dn)),
    )
    .await;
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::MemberRemoved { dn } if dn.contains("CN=ann"))),
        "only ben left: {changes:?}"
    );
    assert_eq!(
        dir.standing_by_dn(&ben_dn).await.expect("look-up"),
        Standing::OutOfScope {
            external_id: ben.clone()
        }
    );
    assert_eq!(
        dir.standing_by_id(&ben).await.expect("look-up"),
        Standing::OutOfScope {
            external_id: ben.clone()
        }
    );

    // Re-added: the addition comes too, and he is back in scope.
    dc.add_members("akd-users", &["ben"]).await;
    poll_until(
        &dir,
        cookie,
        "ben re-added",
        |c| matches!(c, Change::MemberAdded { dn } if dn.eq_ignore_ascii_case(&ben_dn)),
    )
    .await;
    assert!(matches!(
        dir.standing_by_dn(&ben_dn).await.expect("look-up"),
        Standing::InScope(_)
    ));

    // A DN that is not there is absent, not an error.
    assert_eq!(
        dir.standing_by_dn(&dc.dn_for("nobody"))
            .await
            .expect("look-up"),
        Standing::Absent
    );
}

#[tokio::test]
async fn an_account_without_replication_rights_still_sees_disables() {
    let _one_dc = samba::exclusive().await;
    let dc = SambaDc::start().await;
    dc.create_user("svcread", PW).await;
    dc.create_user("ann", PW).await;
    let mut cfg = ad_config(&dc, None);
    cfg.bind_dn = Some(dc.dn_for("svcread"));
    cfg.bind_password = Some(Secret::new(PW));
    let dir = LdapDirectory::new(cfg).expect("config");
    let ann = id_of(&dir, "ann").await;

    // DirSync refuses a plain account without LDAP_DIRSYNC_OBJECT_SECURITY; the poll falls
    // back to it and reads what the account may read, which includes userAccountControl.
    let cookie = dir
        .dirsync_baseline()
        .await
        .expect("baseline as a plain account");
    dc.disable_user("ann").await;
    poll_until(
        &dir,
        cookie,
        "ann disabled, seen by a plain account",
        |c| matches!(c, Change::Entry { external_id, .. } if *external_id == ann),
    )
    .await;
}

#[tokio::test]
async fn lookups_and_polls_of_an_unreachable_server_fail_rather_than_say_absent() {
    // (e) A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let cfg = LdapDirectoryConfig {
        url: format!("ldap://127.0.0.1:{port}"),
        bind_dn: Some("CN=svc,DC=corp,DC=test".into()),
        bind_password: Some(Secret::new("pw")),
        user_base: "CN=Users,DC=corp,DC=test".into(),
        timeout_seconds: 2,
        ..offline_ad_config()
    };
    let dir = LdapDirectory::new(cfg).expect("config");
    let id = "04030201-0605-0807-090a-0b0c0d0e0f10";
    assert!(
        matches!(
            dir.standing_by_id(id).await,
            Err(DirectoryError::Unavailable(_))
        ),
        "an unreachable server is an error, never Absent"
    );
    assert!(matches!(
        dir.standing_by_dn("CN=ann,CN=Users,DC=corp,DC=test").await,
        Err(DirectoryError::Unavailable(_))
    ));
    assert!(matches!(
        dir.dirsync(Some(b"cookie".to_vec())).await,
        Err(DirectoryError::Unavailable(_))
    ));
}

fn offline_ad_config() -> LdapDirectoryConfig {
    LdapDirectoryConfig {
        id: "ad".into(),
        name: "Corp AD".into(),
        url: "ldap://127.0.0.1:1".into(),
        starttls: false,
        ca_file: None,
        bind_dn: None,
        bind_password: None,
        user_base: "CN=Users,DC=corp,DC=test".into(),
        user_filter: "(&(objectCategory=person)(objectClass=user))".into(),
        username_attribute: "sAMAccountName".into(),
        id_attribute: "objectGUID".into(),
        display_name_attribute: "displayName".into(),
        first_name_attribute: "givenName".into(),
        last_name_attribute: "sn".into(),
        email_attribute: "mail".into(),
        admin_group: None,
        timeout_seconds: 2,
        active_directory: true,
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

fn slapd_config(slapd: &Slapd) -> LdapDirectoryConfig {
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
        admin_group: None,
        timeout_seconds: 5,
        active_directory: false,
        required_group: Some(slapd.users_group_dn().into()),
        last_login_attribute: None,
        domain_controllers: None,
        page_size: 500,
        sync: SyncPolicy::default(),
        create_users_from_events: false,
        change_feed: None,
        windows_domains: Vec::new(),
    }
}

#[tokio::test]
async fn openldap_lookups_tell_in_scope_out_of_scope_and_absent() {
    let slapd = Slapd::start().await;
    let dir = LdapDirectory::new(slapd_config(&slapd)).expect("config");
    let alice = dir.lookup("alice").await.expect("alice").external_id;
    let bob = dir.lookup("bob").await.expect("bob").external_id;
    let carol = dir.lookup("carol").await.expect("carol").external_id;
    let dn = |uid: &str| format!("uid={uid},{}", slapd.user_base());

    // Alice is in the required group: in scope by id and by DN, mapped as sync maps her.
    match dir.standing_by_id(&alice).await.expect("alice") {
        Standing::InScope(u) => {
            assert_eq!(u.username, "alice");
            assert_eq!(u.external_id, alice);
            assert_eq!(u.dn, dn("alice"));
            assert!(!u.disabled);
        }
        other => panic!("alice: expected InScope, got {other:?}"),
    }
    assert!(matches!(
        dir.standing_by_dn(&dn("alice")).await.expect("alice by DN"),
        Standing::InScope(u) if u.external_id == alice
    ));

    // Bob leaves the required group: out of scope, with his id.
    slapd.remove_from_group(slapd.users_group_dn(), "bob").await;
    let out = Standing::OutOfScope {
        external_id: bob.clone(),
    };
    assert_eq!(dir.standing_by_id(&bob).await.expect("bob"), out);
    assert_eq!(
        dir.standing_by_dn(&dn("bob")).await.expect("bob by DN"),
        out
    );

    // Carol is deleted: absent by id and by DN; an id nobody has is absent too.
    slapd.delete_user("carol").await;
    assert_eq!(
        dir.standing_by_id(&carol).await.expect("carol"),
        Standing::Absent
    );
    assert_eq!(
        dir.standing_by_dn(&dn("carol")).await.expect("carol by DN"),
        Standing::Absent
    );
    assert_eq!(
        dir.standing_by_id("00000000-0000-0000-0000-000000000000")
            .await
            .expect("nobody"),
        Standing::Absent
    );
    // Filter metacharacters in an id match literally instead of matching everyone.
    assert_eq!(dir.standing_by_id("*").await.expect("*"), Standing::Absent);

    // slapd gone: an error, not Absent.
    let mut slapd = slapd;
    slapd.stop();
    assert!(matches!(
        dir.standing_by_id(&alice).await,
        Err(DirectoryError::Unavailable(_))
    ));
}
