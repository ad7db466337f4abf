//! What each RFC 4533 message becomes, from bytes as a server would send them.

use ldap3::asn1::{StructureTag, TagClass, PL};
use ldap3::controls::{Control, RawControl};

use super::wire::*;
use super::{search_end, SearchEnd};
use crate::directory::ldap::feed::{Change, FeedBatch};

const UUID: [u8; 16] = [
    0x5f, 0x3c, 0x2a, 0x10, 0x8e, 0x4b, 0x10, 0x3d, 0x9a, 0x1e, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45,
];
const UUID_TEXT: &str = "5f3c2a10-8e4b-103d-9a1e-abcdef012345";
const OTHER: [u8; 16] = [0xff; 16];
const OTHER_TEXT: &str = "ffffffff-ffff-ffff-ffff-ffffffffffff";
const COOKIE: &[u8] = b"rid=000,csn=20261206103000.123456Z#000000#000#000000";

/// A BER TLV with a one-byte tag, in the short or long length form.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn octets(v: &[u8]) -> Vec<u8> {
    tlv(0x04, v)
}

fn boolean(v: bool) -> Vec<u8> {
    tlv(0x01, &[if v { 0xff } else { 0 }])
}

fn state_value(state: u8, uuid: &[u8], cookie: Option<&[u8]>) -> Vec<u8> {
    let mut parts = vec![tlv(0x0a, &[state]), octets(uuid)];
    if let Some(cookie) = cookie {
        parts.push(octets(cookie));
    }
    seq(&parts)
}

fn control(oid: &str, value: Vec<u8>) -> Control {
    Control(
        None,
        RawControl {
            ctype: oid.into(),
            crit: false,
            val: Some(value),
        },
    )
}

/// A SearchResultEntry as ldap3 hands it over (only the op's tag matters here).
fn entry_op() -> StructureTag {
    StructureTag {
        class: TagClass::Application,
        id: 4,
        payload: PL::C(vec![]),
    }
}

fn intermediate(name: Option<&str>, value: Option<Vec<u8>>) -> StructureTag {
    let mut parts = Vec::new();
    if let Some(name) = name {
        parts.push(StructureTag {
            class: TagClass::Context,
            id: 0,
            payload: PL::P(name.as_bytes().to_vec()),
        });
    }
    if let Some(value) = value {
        parts.push(StructureTag {
            class: TagClass::Context,
            id: 1,
            payload: PL::P(value),
        });
    }
    StructureTag {
        class: TagClass::Application,
        id: 25,
        payload: PL::C(parts),
    }
}

fn sync_info(value: Vec<u8>) -> Message {
    read_message(intermediate(Some(SYNC_INFO_OID), Some(value)), &[])
}

fn entry(external_id: &str, deleted: bool) -> Change {
    Change::Entry {
        external_id: external_id.into(),
        deleted,
    }
}

fn entry_with_state(state: u8, cookie: Option<&[u8]>) -> Message {
    let value = state_value(state, &UUID, cookie);
    read_message(entry_op(), &[control(SYNC_STATE_OID, value)])
}

#[test]
fn added_changed_and_present_entries_are_news_to_look_at_not_deletions() {
    for state in [0, 1, 2] {
        assert_eq!(
            entry_with_state(state, None),
            Message::Batch(FeedBatch {
                changes: vec![entry(UUID_TEXT, false)],
                cookie: None,
            }),
            "state {state}"
        );
    }
}

#[test]
fn a_deleted_entry_is_reported_deleted_with_its_cookie() {
    assert_eq!(
        entry_with_state(3, Some(COOKIE)),
        Message::Batch(FeedBatch {
            changes: vec![entry(UUID_TEXT, true)],
            cookie: Some(COOKIE.to_vec()),
        })
    );
}

#[test]
fn an_entry_uuid_reads_like_the_entry_uuid_attribute_slapd_stores() {
    assert_eq!(format_entry_uuid(&UUID).as_deref(), Some(UUID_TEXT));
    assert_eq!(format_entry_uuid(&UUID[..15]), None);
    assert_eq!(format_entry_uuid(&[0; 17]), None);
    assert_eq!(format_entry_uuid(b""), None);
}

#[test]
fn an_entry_without_a_readable_sync_state_is_a_protocol_error_not_a_change() {
    let malformed =
        |controls: &[Control]| matches!(read_message(entry_op(), controls), Message::Malformed(_));
    assert!(malformed(&[]), "no control");
    let bad_values = [
        Vec::new(),
        state_value(4, &UUID, None),            // no such state
        state_value(1, &UUID[..8], None),       // short UUID
        seq(&[tlv(0x0a, &[1])]),                // no UUID
        seq(&[tlv(0x02, &[1]), octets(&UUID)]), // INTEGER, not ENUMERATED
        seq(&[tlv(0x0a, &[1]), octets(&UUID), octets(COOKIE), octets(b"x")]), // too many
        state_value(1, &UUID, None)[..10].to_vec(), // truncated
        [state_value(1, &UUID, None), vec![0]].concat(), // trailing byte
        tlv(0x31, &[tlv(0x0a, &[1]), octets(&UUID)].concat()), // a SET
    ];
    for (n, value) in bad_values.into_iter().enumerate() {
        assert!(
            malformed(&[control(SYNC_STATE_OID, value)]),
            "bad value {n}"
        );
    }
    let no_value = Control(
        None,
        RawControl {
            ctype: SYNC_STATE_OID.into(),
            crit: false,
            val: None,
        },
    );
    assert!(malformed(&[no_value]), "control without value");
}

#[test]
fn other_controls_next_to_the_sync_state_do_not_matter() {
    let controls = [
        control("1.2.3.4", b"whatever".to_vec()),
        control(SYNC_STATE_OID, state_value(3, &UUID, None)),
    ];
    assert_eq!(
        read_message(entry_op(), &controls),
        Message::Batch(FeedBatch {
            changes: vec![entry(UUID_TEXT, true)],
            cookie: None,
        })
    );
}

#[test]
fn a_new_cookie_is_a_batch_with_only_the_cookie() {
    assert_eq!(
        sync_info(tlv(0x80, COOKIE)),
        Message::Batch(FeedBatch {
            changes: vec![],
            cookie: Some(COOKIE.to_vec()),
        })
    );
}

#[test]
fn the_end_of_the_refresh_carries_its_cookie_and_says_so() {
    let cookie_only = FeedBatch {
        changes: vec![],
        cookie: Some(COOKIE.to_vec()),
    };
    // refreshDelete [1] and refreshPresent [2]: refreshDone defaults to TRUE.
    for tag in [0xa1, 0xa2] {
        assert_eq!(
            sync_info(tlv(tag, &octets(COOKIE))),
            Message::RefreshDone(Some(cookie_only.clone())),
            "tag {tag:#x}"
        );
        assert_eq!(
            sync_info(tlv(tag, &[octets(COOKIE), boolean(true)].concat())),
            Message::RefreshDone(Some(cookie_only.clone()))
        );
        assert_eq!(sync_info(tlv(tag, &[])), Message::RefreshDone(None));
        // The end of one phase that is not the end of the refresh.
        assert_eq!(
            sync_info(tlv(tag, &[octets(COOKIE), boolean(false)].concat())),
            Message::Batch(cookie_only.clone())
        );
        assert_eq!(sync_info(tlv(tag, &boolean(false))), Message::Nothing);
    }
}

#[test]
fn a_set_of_deleted_uuids_becomes_one_deletion_each() {
    let set = tlv(0x31, &[octets(&UUID), octets(&OTHER)].concat());
    let Message::Batch(batch) = sync_info(tlv(
        0xa3,
        &[octets(COOKIE), boolean(true), set.clone()].concat(),
    )) else {
        panic!("a batch");
    };
    assert_eq!(batch.cookie.as_deref(), Some(COOKIE));
    assert_eq!(batch.changes.len(), 2);
    for id in [UUID_TEXT, OTHER_TEXT] {
        assert!(batch.changes.contains(&entry(id, true)), "{id}");
    }
    // Without a cookie too.
    let Message::Batch(batch) = sync_info(tlv(0xa3, &[boolean(true), set].concat())) else {
        panic!("a batch");
    };
    assert_eq!((batch.changes.len(), batch.cookie), (2, None));
}

#[test]
fn a_present_phase_set_of_uuids_never_becomes_a_deletion() {
    let set = tlv(0x31, &[octets(&UUID), octets(&OTHER)].concat());
    // refreshDeletes defaults to FALSE.
    assert_eq!(
        sync_info(tlv(0xa3, &[octets(COOKIE), set.clone()].concat())),
        Message::PresentIds { count: 2 }
    );
    assert_eq!(
        sync_info(tlv(0xa3, &[boolean(false), set].concat())),
        Message::PresentIds { count: 2 }
    );
}

#[test]
fn malformed_sync_info_is_a_protocol_error() {
    let set = tlv(0x31, &octets(&UUID));
    let bad = [
        tlv(0xa3, &[octets(COOKIE), boolean(true)].concat()), // no UUID set
        tlv(
            0xa3,
            &[boolean(true), tlv(0x31, &octets(&UUID[..4]))].concat(),
        ), // short UUID
        tlv(0xa3, &[set.clone(), boolean(true)].concat()),    // out of order
        tlv(0xa3, &[boolean(true), set.clone(), octets(b"x")].concat()), // too many
        tlv(0xa1, &[boolean(true), octets(COOKIE)].concat()), // out of order
        tlv(0xa4, &[]),                                       // no such choice
        tlv(0xa0, &octets(COOKIE)),                           // newcookie constructed
        tlv(0x04, COOKIE),                                    // not context-tagged
        [tlv(0x80, COOKIE), vec![0]].concat(),                // trailing byte
        Vec::new(),
    ];
    for (n, value) in bad.into_iter().enumerate() {
        assert!(
            matches!(sync_info(value), Message::Malformed(_)),
            "bad value {n}"
        );
    }
    // A Sync Info without a value.
    assert!(matches!(
        read_message(intermediate(Some(SYNC_INFO_OID), None), &[]),
        Message::Malformed(_)
    ));
}

#[test]
fn other_intermediate_responses_and_references_are_no_changes() {
    assert_eq!(
        read_message(intermediate(Some("1.2.3"), Some(vec![1, 2])), &[]),
        Message::OtherIntermediate(Some("1.2.3".into()))
    );
    assert_eq!(
        read_message(intermediate(None, None), &[]),
        Message::OtherIntermediate(None)
    );
    let reference = StructureTag {
        class: TagClass::Application,
        id: 19,
        payload: PL::C(vec![]),
    };
    assert_eq!(read_message(reference, &[]), Message::Reference);
}

#[test]
fn our_reading_agrees_with_ldap3s_own_parsers_on_well_formed_messages() {
    use ldap3::controls::{parse_syncinfo, ControlParser, EntryState as Ldap3State, SyncState};
    let value = state_value(3, &UUID, Some(COOKIE));
    let theirs = SyncState::parse(&value);
    let ours = parse_sync_state(&value).expect("ours");
    assert!(matches!(theirs.state, Ldap3State::Delete));
    assert_eq!(ours.state, EntryState::Delete);
    assert_eq!(
        (ours.entry_uuid, ours.cookie),
        (theirs.entry_uuid, theirs.cookie)
    );

    let set = tlv(0x31, &[octets(&UUID), octets(&OTHER)].concat());
    let value = tlv(0xa3, &[octets(COOKIE), boolean(true), set].concat());
    let theirs = parse_syncinfo(ldap3::ResultEntry::new(intermediate(
        Some(SYNC_INFO_OID),
        Some(value.clone()),
    )));
    let ldap3::controls::SyncInfo::SyncIdSet {
        cookie,
        refresh_deletes,
        sync_uuids,
    } = theirs
    else {
        panic!("ldap3 reads a syncIdSet");
    };
    let Some(SyncInfo::SyncIdSet {
        cookie: our_cookie,
        refresh_deletes: our_deletes,
        uuids,
    }) = parse_sync_info(&value)
    else {
        panic!("we read a syncIdSet");
    };
    assert_eq!((our_cookie, our_deletes), (cookie, refresh_deletes));
    assert_eq!(uuids.len(), sync_uuids.len());
    assert!(uuids.iter().all(|u| sync_uuids.contains(u)));
}

#[test]
fn long_cookies_in_the_long_length_form_are_read_whole() {
    let cookie = vec![b'c'; 300];
    assert_eq!(
        sync_info(tlv(0x80, &cookie)),
        Message::Batch(FeedBatch {
            changes: vec![],
            cookie: Some(cookie),
        })
    );
}

#[test]
fn the_cookie_of_a_sync_done_control_is_found() {
    let done = control(SYNC_DONE_OID, seq(&[octets(COOKIE), boolean(false)]));
    assert_eq!(sync_done_cookie(&[done]), Some(COOKIE.to_vec()));
    let without = control(SYNC_DONE_OID, seq(&[boolean(true)]));
    assert_eq!(sync_done_cookie(&[without]), None);
    assert_eq!(sync_done_cookie(&[]), None);
}

#[test]
fn a_refused_cookie_means_start_over_and_anything_else_try_again_later() {
    assert_eq!(search_end(4096, true), SearchEnd::Reset);
    assert_eq!(search_end(4096, false), SearchEnd::Reset);
    // An unreadable cookie, or one ahead of a server restored from a backup.
    for rc in [2, 53] {
        assert_eq!(search_end(rc, true), SearchEnd::Reset, "rc {rc}");
        assert!(
            matches!(search_end(rc, false), SearchEnd::Failed(_)),
            "rc {rc}"
        );
    }
    // A persistent search that ends, even with success, is an outage to retry.
    for rc in [0, 1, 3, 4, 32, 50, 51, 52, 80] {
        assert!(
            matches!(search_end(rc, true), SearchEnd::Failed(_)),
            "rc {rc}"
        );
    }
    let SearchEnd::Failed(hint) = search_end(12, false) else {
        panic!("failed");
    };
    assert!(hint.contains("syncprov"), "{hint}");
    let SearchEnd::Failed(hint) = search_end(4, false) else {
        panic!("failed");
    };
    assert!(hint.contains("size=unlimited"), "{hint}");
}

mod group {
    use super::*;
    use crate::directory::ldap::syncrepl::group::*;

    fn primitive(bytes: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id: 4,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn constructed(id: u64, parts: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id,
            payload: PL::C(parts),
        }
    }

    /// The group entry as the search sends it, with its Sync State.
    fn group_entry(state: u8, member: &[&str], unique_member: &[&str]) -> ldap3::ResultEntry {
        let attr = |name: &str, values: &[&str]| {
            constructed(
                16,
                vec![
                    primitive(name.as_bytes()),
                    constructed(17, values.iter().map(|v| primitive(v.as_bytes())).collect()),
                ],
            )
        };
        let op = StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::C(vec![
                primitive(b"cn=users,ou=groups,dc=example,dc=org"),
                constructed(
                    16,
                    vec![attr("member", member), attr("uniqueMember", unique_member)],
                ),
            ]),
        };
        let mut entry = ldap3::ResultEntry::new(op);
        entry
            .1
            .push(control(SYNC_STATE_OID, state_value(state, &UUID, None)));
        entry
    }

    fn members(dns: &[&str]) -> Members {
        Members::of(dns.iter().map(|d| d.to_string()))
    }

    #[test]
    fn the_first_view_of_the_group_is_only_a_baseline() {
        let now = members(&["uid=a,dc=x", "uid=b,dc=x"]);
        assert_eq!(movement(None, &now), Movement::default());
    }

    #[test]
    fn who_left_and_who_joined_as_the_group_lists_them() {
        let before = members(&["uid=a,dc=x", "uid=b,dc=x", "cn=placeholder"]);
        let now = members(&["UID=A,DC=X", "uid=c,dc=x", "cn=placeholder"]);
        assert_eq!(
            movement(Some(&before), &now),
            Movement {
                // A DN spelt in another case is the same member.
                left: vec!["uid=b,dc=x".into()],
                joined: vec!["uid=c,dc=x".into()],
            }
        );
        assert_eq!(movement(Some(&now), &now), Movement::default());
    }

    #[test]
    fn the_group_entry_reads_as_its_members() {
        assert_eq!(
            read_group_message(group_entry(2, &["uid=a,dc=x"], &["uid=b,dc=x"])),
            GroupMessage::Members(members(&["uid=a,dc=x", "uid=b,dc=x"]))
        );
        assert_eq!(
            read_group_message(group_entry(1, &[], &[])),
            GroupMessage::Members(members(&[]))
        );
    }

    #[test]
    fn a_deleted_group_has_nobody_and_a_present_one_says_nothing_new() {
        assert_eq!(
            read_group_message(group_entry(3, &["uid=a,dc=x"], &[])),
            GroupMessage::Members(Members::default())
        );
        // Present entries may come without attributes: never "everyone left".
        assert_eq!(
            read_group_message(group_entry(0, &[], &[])),
            GroupMessage::Nothing
        );
    }

    #[test]
    fn a_group_entry_without_sync_state_is_a_protocol_error() {
        let mut entry = group_entry(2, &["uid=a,dc=x"], &[]);
        entry.1.clear();
        assert!(matches!(
            read_group_message(entry),
            GroupMessage::Malformed(_)
        ));
        let info = ldap3::ResultEntry::new(intermediate(Some(SYNC_INFO_OID), None));
        assert_eq!(read_group_message(info), GroupMessage::Nothing);
    }
}
