//! Unit tests of the LDAP directory: filters, values, configuration and failure paths
//! without a server.

use super::*;
use ldap3::controls::{Control, PagedResults};
use ldap3::ResultEntry;
use std::collections::HashSet;
use std::fs;

fn cfg() -> LdapDirectoryConfig {
    LdapDirectoryConfig {
        id: "corp".into(),
        name: "Corp".into(),
        url: "ldap://127.0.0.1:1".into(),
        starttls: false,
        ca_file: None,
        bind_dn: Some("cn=svc,dc=example,dc=org".into()),
        bind_password: Some(Secret::new("pw")),
        user_base: "ou=people,dc=example,dc=org".into(),
        user_filter: "(objectClass=inetOrgPerson)".into(),
        username_attribute: "uid".into(),
        id_attribute: "entryUUID".into(),
        display_name_attribute: "cn".into(),
        first_name_attribute: "givenName".into(),
        last_name_attribute: "sn".into(),
        email_attribute: "mail".into(),
        admin_group: None,
        timeout_seconds: 10,
        active_directory: false,
        required_group: None,
        last_login_attribute: None,
        domain_controllers: None,
        page_size: 500,
        sync: crate::config::SyncPolicy::default(),
        create_users_from_events: false,
        change_feed: None,
        windows_domains: Vec::new(),
    }
}

fn misconfigured(cfg: LdapDirectoryConfig) -> String {
    match LdapDirectory::new(cfg) {
        Err(DirectoryError::Misconfigured(m)) => m,
        other => panic!("expected Misconfigured, got {other:?}"),
    }
}

#[test]
fn username_is_escaped_in_the_filter() {
    let f = |u| user_filter("(objectClass=inetOrgPerson)", "uid", u);
    assert_eq!(f("alice"), "(&(objectClass=inetOrgPerson)(uid=alice))");
    assert_eq!(f("*"), r"(&(objectClass=inetOrgPerson)(uid=\2a))");
    assert_eq!(
        f("bob)(uid=*"),
        r"(&(objectClass=inetOrgPerson)(uid=bob\29\28uid=\2a))"
    );
    assert_eq!(
        f("a\\b\0c"),
        r"(&(objectClass=inetOrgPerson)(uid=a\5cb\00c))"
    );
    assert_eq!(user_filter("", "sAMAccountName", "x"), "(sAMAccountName=x)");
    for u in ["*", "bob)(uid=*", "a\\b\0c", "(|(uid=*))"] {
        assert!(ldap3::parse_filter(f(u)).is_ok(), "{u:?}");
    }
}

#[test]
fn dn_is_escaped_in_the_admin_filter() {
    assert_eq!(
        admin_filter(r"cn=Smith\, J (ext)*,dc=x"),
        r"(|(member=cn=Smith\5c, J \28ext\29\2a,dc=x)(uniqueMember=cn=Smith\5c, J \28ext\29\2a,dc=x))"
    );
}

#[test]
fn object_guid_uses_ads_byte_order() {
    let bytes: Vec<u8> = (1..=16).collect();
    assert_eq!(
        format_object_guid(&bytes).as_deref(),
        Some("04030201-0605-0807-090a-0b0c0d0e0f10")
    );
    assert_eq!(
        format_object_guid(&[0xAB; 16]).as_deref(),
        Some("abababab-abab-abab-abab-abababababab")
    );
    assert_eq!(format_object_guid(&bytes[..15]), None);
}

#[test]
fn object_guid_external_id_from_an_entry() {
    let mut c = cfg();
    c.id_attribute = "objectGUID".into();
    let dir = LdapDirectory::new(c).expect("valid");
    let entry = Entry {
        dn: "cn=x".into(),
        attrs: vec![("objectGUID".into(), vec![(1..=16).collect()])],
    };
    assert_eq!(
        dir.external_id(&entry).expect("guid"),
        "04030201-0605-0807-090a-0b0c0d0e0f10"
    );
    let none = Entry {
        dn: "cn=x".into(),
        attrs: vec![],
    };
    assert!(matches!(
        dir.external_id(&none),
        Err(DirectoryError::Unavailable(_))
    ));
}

#[test]
fn canonical_username_keeps_upstream_case() {
    let entry = Entry {
        dn: "uid=Alice".into(),
        attrs: vec![("UID".into(), vec![b"Alice".to_vec(), b"al".to_vec()])],
    };
    assert_eq!(canonical_username(&entry, "uid", "alice"), "Alice");
    assert_eq!(canonical_username(&entry, "uid", "AL"), "al");
    assert_eq!(canonical_username(&entry, "uid", "other"), "Alice");
}

#[test]
fn valid_configs_are_accepted() {
    assert!(LdapDirectory::new(cfg()).is_ok());
    let mut c = cfg();
    c.url = "ldaps://ldap.example.org:636/".into();
    assert!(LdapDirectory::new(c).is_ok());
    let mut c = cfg();
    c.url = "LDAP://[::1]:389".into();
    c.starttls = true;
    c.bind_dn = None;
    c.bind_password = None;
    c.user_filter = String::new();
    assert!(LdapDirectory::new(c).is_ok());
}

#[test]
fn ca_file_must_be_readable_and_hold_a_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = cfg();
    c.ca_file = Some(dir.path().join("missing.pem"));
    assert!(misconfigured(c).contains("cannot read ca_file"));

    let empty = dir.path().join("empty.pem");
    fs::write(&empty, "not a certificate\n").expect("write");
    let mut c = cfg();
    c.ca_file = Some(empty);
    assert!(misconfigured(c).contains("no PEM certificate"));

    let cut = dir.path().join("cut.pem");
    fs::write(&cut, "-----BEGIN CERTIFICATE-----\nAAAA\n").expect("write");
    let mut c = cfg();
    c.ca_file = Some(cut);
    let message = misconfigured(c);
    assert!(
        message.contains("is not valid PEM: the line \"-----END CERTIFICATE-----\" is missing"),
        "{message}"
    );

    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["ca".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let good = dir.path().join("ca.pem");
    fs::write(&good, cert.pem()).expect("write");
    let mut c = cfg();
    c.url = "ldaps://h".into();
    c.ca_file = Some(good);
    assert!(LdapDirectory::new(c).expect("valid").tls.is_some());
}

#[test]
fn bind_result_codes() {
    assert!(matches!(classify_user_bind(0), UserBind::Ok));
    for rc in [49, 48, 50, 53, 19, 32] {
        assert!(matches!(classify_user_bind(rc), UserBind::Refused), "{rc}");
    }
    for rc in [8, 13] {
        assert!(matches!(classify_user_bind(rc), UserBind::NeedsTls), "{rc}");
    }
    for rc in [1, 2, 51, 52, 80] {
        assert!(matches!(classify_user_bind(rc), UserBind::Failed), "{rc}");
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("rfc3339").to_utc()
}

#[test]
fn filetime_values() {
    assert_eq!(
        parse_filetime("133000000000000000"),
        Ok(Some(utc("2022-06-18T04:26:40Z")))
    );
    assert_eq!(
        parse_filetime("116444736000000000"),
        Ok(Some(utc("1970-01-01T00:00:00Z")))
    );
    assert_eq!(
        parse_filetime("133000000000000001"),
        Ok(Some(utc("2022-06-18T04:26:40.0000001Z")))
    );
    assert_eq!(
        parse_filetime("134090000001234567"),
        Ok(Some(utc("2025-11-30T18:13:20.1234567Z")))
    );
    assert_eq!(parse_filetime("0"), Ok(None));
    assert_eq!(parse_filetime("9223372036854775807"), Ok(None));
    for bad in ["-1", "", "x", "99999999999999999999"] {
        assert_eq!(parse_filetime(bad), Err(()), "{bad:?}");
    }
}

#[test]
fn generalized_time_values() {
    let ok = [
        ("20261128020304Z", "2026-11-28T02:03:04Z"),
        ("20261128020304.5Z", "2026-11-28T02:03:04.5Z"),
        ("20261128020304,25Z", "2026-11-28T02:03:04.25Z"),
        (
            "20261128020304.123456789Z",
            "2026-11-28T02:03:04.123456789Z",
        ),
        (
            "20261128020304.1234567891234Z",
            "2026-11-28T02:03:04.123456789Z",
        ),
        ("202611280203Z", "2026-11-28T02:03:00Z"),
        ("202611280203.5Z", "2026-11-28T02:03:30Z"),
        ("2026112802Z", "2026-11-28T02:00:00Z"),
        ("2026112802.25Z", "2026-11-28T02:15:00Z"),
        ("20261128020304+0200", "2026-11-28T00:03:04Z"),
        ("20261128020304-05", "2026-11-28T07:03:04Z"),
        ("20261128000000+0130", "2026-11-27T22:30:00Z"),
        ("20161231235960Z", "2017-01-01T00:00:00Z"),
        ("20240229120000Z", "2024-02-29T12:00:00Z"),
    ];
    for (text, want) in ok {
        assert_eq!(parse_generalized_time(text), Some(utc(want)), "{text}");
    }
    for bad in [
        "",
        "20261128020304",
        "2026112802030Z",
        "20261328020304Z",
        "20250229000000Z",
        "20261128240000Z",
        "20261128026000Z",
        "20261128020361Z",
        "20261128020304.Z",
        "20261128020304Z0",
        "20261128020304+2400",
        "20261128020304+0060",
        "20261128020304+1",
        "2026-11-28T02:03:04Z",
        "20261128020304 Z",
        "２0261128020304Z",
    ] {
        assert_eq!(parse_generalized_time(bad), None, "{bad:?}");
    }
}

#[test]
fn last_login_format_follows_the_value() {
    assert_eq!(
        parse_last_login("133000000000000000"),
        Ok(Some(utc("2022-06-18T04:26:40Z")))
    );
    assert_eq!(parse_last_login("0"), Ok(None));
    assert_eq!(
        parse_last_login("20261128020304Z"),
        Ok(Some(utc("2026-11-28T02:03:04Z")))
    );
    assert_eq!(parse_last_login("yesterday"), Err(()));
    assert_eq!(parse_last_login(""), Err(()));
}

#[test]
fn user_account_control_disabled_bit() {
    assert_eq!(account_disabled("512"), Some(false));
    assert_eq!(account_disabled("514"), Some(true));
    assert_eq!(account_disabled("66050"), Some(true));
    assert_eq!(account_disabled("-2147483646"), Some(true));
    assert_eq!(account_disabled("x"), None);
}

#[test]
fn only_ad_partition_references_are_ignorable() {
    for url in [
        "ldap://DomainDnsZones.corp.example.com/DC=DomainDnsZones,DC=corp,DC=example,DC=com",
        "ldap://ForestDnsZones.corp.example.com/DC=ForestDnsZones,DC=corp,DC=example,DC=com",
        "ldap://corp.example.com/CN=Configuration,DC=corp,DC=example,DC=com",
        "LDAP://corp.example.com/cn=configuration,dc=corp,dc=example,dc=com",
        "ldap://h/dc%3DDomainDnsZones%2Cdc%3Dcorp",
        "ldap://h/DC = DomainDnsZones,DC=corp??sub",
        "ldaps://h:636/DC=ForestDnsZones,DC=corp?objectGUID?sub?(objectClass=*)",
    ] {
        assert!(is_ignorable_reference(url), "{url}");
    }
    for url in [
        "ldap://other.example.com/OU=Sales,DC=corp,DC=example,DC=com",
        "ldap://corp.example.com/DC=corp,DC=example,DC=com",
        "ldap://h/DC=DomainDnsZonesX,DC=corp",
        "ldap://h/OU=x,DC=DomainDnsZones,DC=corp",
        "ldap://h/CN=Configurations,DC=corp",
        "ldap://h/",
        "ldap://h",
        "ldap://DomainDnsZones.corp.example.com",
        "http://h/DC=DomainDnsZones,DC=corp",
        "ldap://h/DC=DomainDnsZones%zz",
        "DC=DomainDnsZones,DC=corp",
    ] {
        assert!(!is_ignorable_reference(url), "{url}");
    }
}

#[test]
fn reference_urls_are_parsed_without_panicking() {
    use ldap3::asn1::{StructureTag, TagClass, PL};
    let url = |s: &str| StructureTag {
        class: TagClass::Universal,
        id: 4,
        payload: PL::P(s.as_bytes().to_vec()),
    };
    let reference = |inner: Vec<StructureTag>| {
        ResultEntry::new(StructureTag {
            class: TagClass::Application,
            id: 19,
            payload: PL::C(inner),
        })
    };
    assert_eq!(
        parse_reference(reference(vec![url("ldap://a/DC=x"), url("ldap://b/DC=x")])),
        Some(vec!["ldap://a/DC=x".to_owned(), "ldap://b/DC=x".to_owned()])
    );
    let not_utf8 = StructureTag {
        class: TagClass::Universal,
        id: 4,
        payload: PL::P(vec![0xff]),
    };
    assert_eq!(parse_reference(reference(vec![not_utf8])), None);
    let nested = reference(vec![StructureTag {
        class: TagClass::Universal,
        id: 16,
        payload: PL::C(vec![]),
    }]);
    assert_eq!(parse_reference(nested), None);
    let primitive = ResultEntry::new(StructureTag {
        class: TagClass::Application,
        id: 19,
        payload: PL::P(vec![]),
    });
    assert_eq!(parse_reference(primitive), None);
}

#[test]
fn scope_filters_escape_the_group_dn() {
    let group = r"cn=Smith\, J (ext)*,ou=groups,dc=x";
    assert_eq!(
        member_of_clause(group, false),
        r"(memberOf=cn=Smith\5c, J \28ext\29\2a,ou=groups,dc=x)"
    );
    assert_eq!(
        member_of_clause(group, true),
        r"(memberOf:1.2.840.113556.1.4.1941:=cn=Smith\5c, J \28ext\29\2a,ou=groups,dc=x)"
    );
    let user = "(objectClass=inetOrgPerson)";
    assert_eq!(
        scope_filter(user, Some(member_of_clause("cn=g,dc=x", false))),
        "(&(objectClass=inetOrgPerson)(memberOf=cn=g,dc=x))"
    );
    assert_eq!(scope_filter(&format!(" {user} "), None), user);
    assert_eq!(
        scope_filter("", Some("(memberOf=cn=g)".into())),
        "(memberOf=cn=g)"
    );
    assert_eq!(scope_filter("  ", None), "(objectClass=*)");
    for ad in [false, true] {
        for u in [user, ""] {
            let f = scope_filter(u, Some(member_of_clause(group, ad)));
            assert!(ldap3::parse_filter(&f).is_ok(), "{f}");
        }
    }
}

#[test]
fn paged_cookie_from_the_response_control() {
    let control = |cookie: &[u8]| {
        Control(
            None,
            PagedResults {
                size: 0,
                cookie: cookie.to_vec(),
            }
            .into(),
        )
    };
    assert_eq!(paged_cookie(&[control(b"abc")]), Some(b"abc".to_vec()));
    assert_eq!(paged_cookie(&[control(b"")]), Some(vec![]));
    assert_eq!(paged_cookie(&[]), None);
    let garbage = Control(
        None,
        ldap3::controls::RawControl {
            ctype: PAGED_RESULTS_OID.into(),
            crit: false,
            val: Some(vec![0x30, 0x05, 0x02]),
        },
    );
    assert_eq!(paged_cookie(&[garbage]), None);
    let no_value = Control(
        None,
        ldap3::controls::RawControl {
            ctype: PAGED_RESULTS_OID.into(),
            crit: false,
            val: None,
        },
    );
    assert_eq!(paged_cookie(&[no_value]), None);
}

#[test]
fn sync_attributes_are_the_needed_ones_once() {
    let dir = LdapDirectory::new(cfg()).expect("valid");
    assert_eq!(dir.sync_attributes(), ["entryUUID", "uid"]);
    let mut c = cfg();
    c.active_directory = true;
    c.id_attribute = "objectGUID".into();
    c.username_attribute = "sAMAccountName".into();
    c.last_login_attribute = Some("lastLogonTimestamp".into());
    let dir = LdapDirectory::new(c).expect("valid");
    assert_eq!(
        dir.sync_attributes(),
        [
            "objectGUID",
            "sAMAccountName",
            "userAccountControl",
            "lastLogonTimestamp"
        ]
    );
    let mut c = cfg();
    c.last_login_attribute = Some("UID".into());
    c.username_attribute = "uid".into();
    c.id_attribute = "uid".into();
    let dir = LdapDirectory::new(c).expect("valid");
    assert_eq!(dir.sync_attributes(), ["uid"]);
}

fn ad_entry(attrs: &[(&str, &[u8])]) -> Entry {
    Entry {
        dn: "CN=Ann,OU=People,DC=corp".into(),
        attrs: attrs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), vec![v.to_vec()]))
            .collect(),
    }
}

#[test]
fn upstream_user_from_an_ad_entry() {
    let mut c = cfg();
    c.active_directory = true;
    c.id_attribute = "objectGUID".into();
    c.username_attribute = "sAMAccountName".into();
    c.last_login_attribute = Some("lastLogonTimestamp".into());
    let dir = LdapDirectory::new(c).expect("valid");
    let guid: Vec<u8> = (1..=16).collect();
    let user = dir
        .upstream_user(ad_entry(&[
            ("objectGUID", &guid),
            ("sAMAccountName", b"Ann"),
            ("userAccountControl", b"514"),
            ("lastLogonTimestamp", b"133000000000000000"),
        ]))
        .expect("user");
    assert_eq!(
        user,
        UpstreamUser {
            dn: "CN=Ann,OU=People,DC=corp".into(),
            external_id: "04030201-0605-0807-090a-0b0c0d0e0f10".into(),
            username: "Ann".into(),
            disabled: true,
            last_login: Some(utc("2022-06-18T04:26:40Z")),
        }
    );
    let never = dir
        .upstream_user(ad_entry(&[
            ("objectGUID", &guid),
            ("sAMAccountName", b"Ann"),
            ("userAccountControl", b"512"),
        ]))
        .expect("user");
    assert!(!never.disabled);
    assert_eq!(never.last_login, None);

    let err = |attrs: &[(&str, &[u8])]| match dir.upstream_user(ad_entry(attrs)) {
        Err(DirectoryError::Unavailable(m)) => m,
        other => panic!("expected Unavailable, got {other:?}"),
    };
    assert!(
        err(&[("sAMAccountName", b"Ann"), ("userAccountControl", b"512")]).contains("objectGUID")
    );
    assert!(
        err(&[("objectGUID", &guid), ("userAccountControl", b"512")]).contains("sAMAccountName")
    );
    assert!(
        err(&[("objectGUID", &guid), ("sAMAccountName", b"Ann")]).contains("userAccountControl")
    );
    assert!(err(&[
        ("objectGUID", &guid),
        ("sAMAccountName", b"Ann"),
        ("userAccountControl", b"512"),
        ("lastLogonTimestamp", b"soon"),
    ])
    .contains("lastLogonTimestamp"));
}

#[test]
fn upstream_user_outside_ad_is_never_disabled() {
    let mut c = cfg();
    c.last_login_attribute = Some("authTimestamp".into());
    let dir = LdapDirectory::new(c).expect("valid");
    let entry = Entry {
        dn: "uid=bob,dc=x".into(),
        attrs: vec![
            ("entryUUID".into(), vec![b"0b5c-id".to_vec()]),
            ("uid".into(), vec![b"bob".to_vec(), b"robert".to_vec()]),
            ("userAccountControl".into(), vec![b"514".to_vec()]),
            ("authTimestamp".into(), vec![b"20261128020304Z".to_vec()]),
        ],
    };
    let user = dir.upstream_user(entry).expect("user");
    assert_eq!(user.username, "bob");
    assert_eq!(user.external_id, "0b5c-id");
    assert!(!user.disabled);
    assert_eq!(user.last_login, Some(utc("2026-11-28T02:03:04Z")));
}

#[tokio::test]
async fn reads_fail_when_the_server_is_unreachable() {
    let dir = LdapDirectory::new(cfg()).expect("valid");
    let mut seen = 0;
    assert!(matches!(
        dir.read_users(|_| seen += 1).await,
        Err(DirectoryError::Unavailable(_))
    ));
    assert_eq!(seen, 0);
    let mut c = cfg();
    c.admin_group = Some("cn=admins,dc=example,dc=org".into());
    let dir = LdapDirectory::new(c).expect("valid");
    assert!(matches!(
        dir.admin_external_ids().await,
        Err(DirectoryError::Unavailable(_))
    ));
    // Without an admin group there is nothing to ask.
    let dir = LdapDirectory::new(cfg()).expect("valid");
    assert_eq!(
        dir.admin_external_ids().await.expect("empty"),
        HashSet::new()
    );
}

/// The reconciler runs reads on spawned tasks.
#[allow(dead_code)]
fn reads_are_send(dir: &LdapDirectory) {
    fn send<T: Send>(_: T) {}
    send(dir.read_users(|_| {}));
    send(dir.admin_external_ids());
}

#[tokio::test]
async fn empty_password_never_reaches_the_server() {
    // Port 1 on loopback refuses connections: any contact would be Unavailable.
    let dir = LdapDirectory::new(cfg()).expect("valid");
    assert!(matches!(
        dir.authenticate("alice", &Secret::new("")).await,
        Err(DirectoryError::InvalidCredentials)
    ));
    assert!(matches!(
        dir.authenticate("alice", &Secret::new("x")).await,
        Err(DirectoryError::Unavailable(_))
    ));
}
