//! Unit tests of the DirSync control encoding, the response decoding, the mapping of entries to
//! changes and the choice of naming context; and of the id look-up filters of `feed.rs`.

use super::*;
use crate::directory::ldap::feed::Change;
use base64::Engine;

fn entry(dn: &str, attrs: &[(&str, &[&[u8]])]) -> Entry {
    Entry {
        dn: dn.into(),
        attrs: attrs
            .iter()
            .map(|(n, vs)| ((*n).to_owned(), vs.iter().map(|v| v.to_vec()).collect()))
            .collect(),
    }
}

const GUID_BYTES: [u8; 16] = [
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
];
const GUID_TEXT: &str = "04030201-0605-0807-090a-0b0c0d0e0f10";

#[test]
fn the_request_control_is_the_ber_sequence_ad_reads() {
    // Flags 0x80000001 as a signed 32-bit INTEGER, maxBytes 1 MiB, a three-byte cookie.
    let value = encode_dirsync_request(
        LDAP_DIRSYNC_INCREMENTAL_VALUES | LDAP_DIRSYNC_OBJECT_SECURITY,
        1 << 20,
        b"abc",
    );
    assert_eq!(
        value,
        [
            0x30, 0x10, // SEQUENCE, 16 bytes
            0x02, 0x04, 0x80, 0x00, 0x00, 0x01, // flags
            0x02, 0x03, 0x10, 0x00, 0x00, // maxBytes
            0x04, 0x03, b'a', b'b', b'c', // cookie
        ]
    );
    // The first poll sends an empty cookie.
    let value = encode_dirsync_request(LDAP_DIRSYNC_INCREMENTAL_VALUES, 1 << 20, b"");
    assert_eq!(
        value,
        [
            0x30, 0x0d, 0x02, 0x04, 0x80, 0x00, 0x00, 0x00, 0x02, 0x03, 0x10, 0x00, 0x00, 0x04,
            0x00
        ]
    );
}

#[test]
fn a_request_decodes_as_a_response_with_the_same_cookie() {
    // The request and response share one shape, so an encoded request round-trips.
    let cookie: Vec<u8> = (0..=255u8).cycle().take(600).collect();
    let value = encode_dirsync_request(LDAP_DIRSYNC_INCREMENTAL_VALUES, 1 << 20, &cookie);
    let decoded = decode_dirsync_response(&value).expect("decodes");
    // The flags word is non-zero, which in a response means "more data".
    assert!(decoded.more_data);
    assert_eq!(decoded.cookie, cookie);
    let value = encode_dirsync_request(0, 0, b"c");
    assert_eq!(
        decode_dirsync_response(&value),
        Some(DirSyncResponse {
            more_data: false,
            cookie: b"c".to_vec()
        })
    );
}

#[test]
fn a_captured_samba_response_decodes() {
    // The DirSync response control value Samba 4.17 sent after a first poll, as ldapsearch
    // printed it: moreResults 0, unused 0, a 108-byte cookie ("MSDS", version 3, ...).
    let value = base64::engine::general_purpose::STANDARD
        .decode(
            "MHQCAQACAQAEbE1TRFMDAAAAgKBz9HGF3QEAAAAAAAAAACgAAACdDwAAAAAAAAAAAAAAAAAAnQ8AAAAAAADm\
             JF3Oh8pBRbZfhoBA5htGAQAAAAAAAAABAAAAAAAAAOYkXc6HykFFtl+GgEDmG0adDwAAAAAAAA==",
        )
        .expect("base64");
    let decoded = decode_dirsync_response(&value).expect("decodes");
    assert!(!decoded.more_data);
    assert_eq!(decoded.cookie.len(), 108);
    assert_eq!(&decoded.cookie[..4], b"MSDS");
    assert_eq!(decoded.cookie, value[10..]);
}

#[test]
fn malformed_responses_are_refused_not_guessed() {
    let good = encode_dirsync_request(0, 0, b"c");
    assert!(decode_dirsync_response(&good).is_some());
    // Truncated, trailing garbage, a missing part, an extra part, wrong types.
    assert_eq!(decode_dirsync_response(&good[..good.len() - 1]), None);
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(decode_dirsync_response(&trailing), None);
    assert_eq!(
        decode_dirsync_response(&[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]),
        None
    );
    assert_eq!(
        decode_dirsync_response(&[
            0x30, 0x0b, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x04, 0x00, 0x04, 0x01, 0x00
        ]),
        None
    );
    assert_eq!(
        decode_dirsync_response(&[0x30, 0x08, 0x04, 0x01, 0x00, 0x02, 0x01, 0x00, 0x04, 0x00]),
        None
    );
    assert_eq!(
        decode_dirsync_response(&[0x31, 0x08, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x04, 0x00]),
        None
    );
    assert_eq!(decode_dirsync_response(&[]), None);
}

#[test]
fn ber_integers_are_twos_complement() {
    assert_eq!(ber_integer(&[0x00]), Some(0));
    assert_eq!(ber_integer(&[0x01]), Some(1));
    assert_eq!(ber_integer(&[0xff]), Some(-1));
    assert_eq!(ber_integer(&[0x00, 0x80]), Some(128));
    assert_eq!(ber_integer(&[0x80, 0x00, 0x00, 0x00]), Some(-2_147_483_648));
    assert_eq!(ber_integer(&[]), None);
    assert_eq!(ber_integer(&[0; 9]), None);
}

#[test]
fn a_disabled_user_is_an_entry_change_with_its_guid() {
    let e = entry(
        "CN=ann,CN=Users,DC=corp,DC=test",
        &[
            ("objectGUID", &[&GUID_BYTES]),
            ("instanceType", &[b"4"]),
            ("userAccountControl", &[b"514"]),
        ],
    );
    assert_eq!(
        changes_of(&e),
        Ok(vec![Change::Entry {
            external_id: GUID_TEXT.into(),
            deleted: false
        }])
    );
}

#[test]
fn a_deleted_user_is_an_entry_change_marked_deleted() {
    let e = entry(
        "CN=gus\\0ADEL:04030201-0605-0807-090a-0b0c0d0e0f10,CN=Deleted Objects,DC=corp,DC=test",
        &[("objectGUID", &[&GUID_BYTES]), ("isDeleted", &[b"TRUE"])],
    );
    assert_eq!(
        changes_of(&e),
        Ok(vec![Change::Entry {
            external_id: GUID_TEXT.into(),
            deleted: true
        }])
    );
    // Samba shows a deletion the account may not read as the bare objectGUID and an empty
    // DN: still a change to look at.
    let bare = entry("", &[("objectGUID", &[&GUID_BYTES])]);
    assert_eq!(
        changes_of(&bare),
        Ok(vec![Change::Entry {
            external_id: GUID_TEXT.into(),
            deleted: false
        }])
    );
}

#[test]
fn a_group_change_names_each_removed_and_added_member() {
    let ann = "CN=ann,CN=Users,DC=corp,DC=test";
    let ben = "CN=ben,CN=Users,DC=corp,DC=test";
    let cat = "CN=cat,CN=Users,DC=corp,DC=test";
    let e = entry(
        "CN=akd-users,CN=Users,DC=corp,DC=test",
        &[
            ("objectGUID", &[&GUID_BYTES]),
            ("member;range=0-0", &[ann.as_bytes(), ben.as_bytes()]),
            ("member;range=1-1", &[cat.as_bytes()]),
        ],
    );
    assert_eq!(
        changes_of(&e),
        Ok(vec![
            Change::MemberRemoved { dn: ann.into() },
            Change::MemberRemoved { dn: ben.into() },
            Change::MemberAdded { dn: cat.into() },
        ]),
        "no Entry for the group itself"
    );
    // A server that ignores incremental values sends the whole list: members, no removals.
    let whole = entry(
        "CN=akd-users,CN=Users,DC=corp,DC=test",
        &[
            ("objectGUID", &[&GUID_BYTES]),
            ("member", &[cat.as_bytes()]),
        ],
    );
    assert_eq!(
        changes_of(&whole),
        Ok(vec![Change::MemberAdded { dn: cat.into() }])
    );
}

#[test]
fn entries_without_a_usable_guid_are_malformed() {
    let none = entry("CN=x,DC=corp,DC=test", &[("userAccountControl", &[b"512"])]);
    assert!(changes_of(&none)
        .unwrap_err()
        .contains("without objectGUID"));
    let short = entry("CN=x,DC=corp,DC=test", &[("objectGUID", &[b"abc"])]);
    assert!(changes_of(&short).unwrap_err().contains("3 bytes"));
    let bad_member = entry(
        "CN=g,DC=corp,DC=test",
        &[
            ("objectGUID", &[&GUID_BYTES]),
            ("member;range=0-0", &[&[0xff, 0xfe]]),
        ],
    );
    assert!(changes_of(&bad_member).unwrap_err().contains("not UTF-8"));
}

#[test]
fn the_naming_context_is_the_longest_suffix_of_user_base() {
    let contexts: Vec<String> = [
        "DC=corp,DC=test",
        "CN=Configuration,DC=corp,DC=test",
        "CN=Schema,CN=Configuration,DC=corp,DC=test",
        "DC=DomainDnsZones,DC=corp,DC=test",
        "DC=sub,DC=corp,DC=test",
    ]
    .map(String::from)
    .to_vec();
    let nc = |base: &str| naming_context_of(base, &contexts);
    assert_eq!(nc("CN=Users,DC=corp,DC=test"), Some("DC=corp,DC=test"));
    assert_eq!(nc("dc=corp, dc=test"), Some("DC=corp,DC=test"));
    assert_eq!(nc("ou=People , DC = corp,DC=test"), Some("DC=corp,DC=test"));
    assert_eq!(
        nc("OU=x,DC=sub,DC=corp,DC=test"),
        Some("DC=sub,DC=corp,DC=test")
    );
    assert_eq!(nc("DC=other,DC=test"), None);
    // A suffix of the text that is not a suffix of RDNs does not count.
    assert_eq!(nc("CN=Users,DC=xcorp,DC=test"), None);
    // An escaped comma stays inside its RDN: `OU=a\\,DC=corp` is one RDN, under DC=test.
    assert_eq!(nc("OU=a\\,DC=corp,DC=test"), None);
    assert_eq!(nc("CN=b\\,c,DC=corp,DC=test"), Some("DC=corp,DC=test"));
    assert_eq!(naming_context_of("DC=corp,DC=test", &[]), None);
}

#[test]
fn only_a_refusal_of_a_sent_cookie_asks_for_a_new_baseline() {
    for rc in [2, 12, 53] {
        assert!(cookie_refused(rc, true), "{rc}");
        assert!(!cookie_refused(rc, false), "{rc} without a cookie");
    }
    // Busy, unavailable, timeouts, rights: passing or configuration problems.
    for rc in [1, 3, 50, 51, 52, 80] {
        assert!(!cookie_refused(rc, true), "{rc}");
    }
}

#[test]
fn guid_text_turns_back_into_the_bytes_ad_stores() {
    assert_eq!(object_guid_bytes(GUID_TEXT), Some(GUID_BYTES));
    assert_eq!(
        format_object_guid(&object_guid_bytes(GUID_TEXT).unwrap()).as_deref(),
        Some(GUID_TEXT)
    );
    let random = uuid::Uuid::new_v4().hyphenated().to_string();
    let bytes = object_guid_bytes(&random).unwrap();
    assert_eq!(format_object_guid(&bytes), Some(random));
    assert_eq!(
        object_guid_bytes("04030201-0605-0807-090A-0B0C0D0E0F10"),
        Some(GUID_BYTES)
    );
    assert_eq!(object_guid_bytes("not-a-guid"), None);
    assert_eq!(object_guid_bytes(""), None);
}

#[test]
fn ids_are_searched_the_way_the_directory_stores_them() {
    assert_eq!(
        id_clause("objectGUID", GUID_TEXT).as_deref(),
        Some(r"(objectGUID=\01\02\03\04\05\06\07\08\09\0a\0b\0c\0d\0e\0f\10)")
    );
    assert_eq!(id_clause("objectGUID", "*)(uid=*"), None);
    let uuid = "8c5e7a3e-0b1c-103f-9a3e-2b6b1b9d1c11";
    assert_eq!(
        id_clause("entryUUID", uuid).as_deref(),
        Some("(entryUUID=8c5e7a3e-0b1c-103f-9a3e-2b6b1b9d1c11)")
    );
    // Filter metacharacters in a text id match literally.
    assert_eq!(
        id_clause("employeeNumber", "*)(x=*").as_deref(),
        Some(r"(employeeNumber=\2a\29\28x=\2a)")
    );
    // An id that reads as hex may be a binary id kept as hex: both are asked for.
    assert_eq!(
        id_clause("objectSid", "0105ff").as_deref(),
        Some(r"(|(objectSid=0105ff)(objectSid=\01\05\ff))")
    );
}

fn ad_directory(id_attribute: &str, active_directory: bool) -> LdapDirectory {
    LdapDirectory::new(crate::config::LdapDirectoryConfig {
        id: "ad".into(),
        name: "AD".into(),
        // Nothing listens there: a poll that got as far as connecting would be Unavailable.
        url: "ldap://127.0.0.1:1".into(),
        starttls: false,
        ca_file: None,
        bind_dn: None,
        bind_password: None,
        user_base: "CN=Users,DC=corp,DC=test".into(),
        user_filter: "(objectClass=user)".into(),
        username_attribute: "sAMAccountName".into(),
        id_attribute: id_attribute.into(),
        display_name_attribute: "displayName".into(),
        first_name_attribute: "givenName".into(),
        last_name_attribute: "sn".into(),
        email_attribute: "mail".into(),
        admin_group: None,
        timeout_seconds: 1,
        active_directory,
        required_group: None,
        last_login_attribute: None,
        domain_controllers: None,
        page_size: 500,
        sync: crate::config::SyncPolicy::default(),
        create_users_from_events: false,
        change_feed: None,
        windows_domains: Vec::new(),
    })
    .expect("config")
}

#[tokio::test]
async fn dirsync_needs_active_directory_and_object_guid_before_it_connects() {
    let misconfigured = |r: Result<FeedBatch, DirectoryError>| match r {
        Err(DirectoryError::Misconfigured(m)) => m,
        other => panic!("expected Misconfigured, got {other:?}"),
    };
    let m = misconfigured(ad_directory("objectSid", true).dirsync(None).await);
    assert!(m.contains("objectGUID"), "{m}");
    let m = misconfigured(ad_directory("objectGUID", false).dirsync(None).await);
    assert!(m.contains("active_directory"), "{m}");
    // Configured right, the poll gets as far as the (absent) server.
    assert!(matches!(
        ad_directory("objectGUID", true).dirsync(None).await,
        Err(DirectoryError::Unavailable(_))
    ));
}

#[tokio::test]
async fn an_id_that_cannot_be_a_guid_is_not_looked_up() {
    match ad_directory("objectGUID", true)
        .standing_by_id("alice")
        .await
    {
        Err(DirectoryError::Misconfigured(m)) => assert!(m.contains("not a GUID"), "{m}"),
        other => panic!("expected Misconfigured, got {other:?}"),
    }
}
