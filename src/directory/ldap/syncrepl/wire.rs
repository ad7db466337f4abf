//! The messages of an RFC 4533 content-synchronization search and what each means to the
//! feed, as pure functions. ldap3 has parsers for them (`controls::SyncState`,
//! `parse_syncinfo`), but they panic on anything unexpected; a feed that runs for months
//! against whatever the server sends must turn a malformed message into an error instead.

use ldap3::asn1::{parse_tag, StructureTag, TagClass, Types, PL};
use ldap3::controls::Control;

use crate::directory::ldap::feed::{Change, FeedBatch};

/// The Sync State control, on every entry the search returns.
pub(super) const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
/// The Sync Done control, on the search's final result.
pub(super) const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
/// The name of the Sync Info intermediate response.
pub(super) const SYNC_INFO_OID: &str = "1.3.6.1.4.1.4203.1.9.1.4";
/// e-syncRefreshRequired: the server cannot continue from the client's cookie.
pub(super) const RC_SYNC_REFRESH_REQUIRED: u32 = 4096;
/// unavailableCriticalExtension: the server does not know the (critical) Sync Request.
pub(super) const RC_UNAVAILABLE_CRITICAL_EXTENSION: u32 = 12;

/// `state` of a Sync State control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EntryState {
    Present,
    Add,
    Modify,
    Delete,
}

/// A Sync State control (RFC 4533 2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyncState {
    pub(super) state: EntryState,
    pub(super) entry_uuid: Vec<u8>,
    pub(super) cookie: Option<Vec<u8>>,
}

/// A Sync Info message (RFC 4533 2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SyncInfo {
    NewCookie(Vec<u8>),
    RefreshDelete {
        cookie: Option<Vec<u8>>,
        refresh_done: bool,
    },
    RefreshPresent {
        cookie: Option<Vec<u8>>,
        refresh_done: bool,
    },
    SyncIdSet {
        cookie: Option<Vec<u8>>,
        refresh_deletes: bool,
        uuids: Vec<Vec<u8>>,
    },
}

/// What one message of the search stream means to the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Message {
    /// Changes and/or a cookie for the consumer.
    Batch(FeedBatch),
    /// The refresh stage is over (refreshDone): from now on the server sends changes as they
    /// happen. With the batch to hand on, if the message carried a cookie.
    RefreshDone(Option<FeedBatch>),
    /// A syncIdSet of the present phase (refreshDeletes false): the UUIDs of entries that
    /// are still there. Deletions could only be derived by comparing against a full list of
    /// what was there before, which the feed does not keep; the scheduled sync finds them.
    PresentIds { count: usize },
    /// A continuation reference: part of the tree is held by another server and is not fed.
    Reference,
    /// An intermediate response other than Sync Info (named by its OID when it has one).
    OtherIntermediate(Option<String>),
    /// Nothing to hand on (a phase change without a cookie).
    Nothing,
    /// Not what RFC 4533 allows here; says what was wrong.
    Malformed(&'static str),
}

/// Reads one message of the search stream: an entry (protocol op 4) with its Sync State
/// control, an intermediate response (op 25), or a reference (op 19).
pub(super) fn read_message(op: StructureTag, controls: &[Control]) -> Message {
    match op.id {
        4 => match sync_state(controls) {
            Some(state) => entry_message(state),
            None => Message::Malformed("an entry without a valid Sync State control"),
        },
        25 => match parse_intermediate(op) {
            Some(Intermediate::SyncInfo(info)) => info_message(info),
            Some(Intermediate::Other(name)) => Message::OtherIntermediate(name),
            None => Message::Malformed("an unreadable intermediate response"),
        },
        19 => Message::Reference,
        _ => Message::Malformed("an unexpected protocol operation"),
    }
}

/// An entry's change: deleted when the server says `delete` (the entry was deleted or left
/// the search's scope), else it was added, changed or is present.
pub(super) fn entry_message(state: SyncState) -> Message {
    let Some(external_id) = format_entry_uuid(&state.entry_uuid) else {
        return Message::Malformed("a Sync State control whose entryUUID is not 16 bytes");
    };
    Message::Batch(FeedBatch {
        changes: vec![Change::Entry {
            external_id,
            deleted: state.state == EntryState::Delete,
        }],
        cookie: state.cookie,
    })
}

/// What a Sync Info message means: a new cookie, the end of a refresh phase, or a set of
/// deleted entries (refreshDeletes). A present-phase set is not a deletion (see
/// [`Message::PresentIds`]).
pub(super) fn info_message(info: SyncInfo) -> Message {
    let cookie_only = |cookie: Option<Vec<u8>>| {
        cookie.map(|cookie| FeedBatch {
            changes: Vec::new(),
            cookie: Some(cookie),
        })
    };
    match info {
        SyncInfo::NewCookie(cookie) => Message::Batch(FeedBatch {
            changes: Vec::new(),
            cookie: Some(cookie),
        }),
        SyncInfo::RefreshDelete {
            cookie,
            refresh_done,
        }
        | SyncInfo::RefreshPresent {
            cookie,
            refresh_done,
        } => match (cookie_only(cookie), refresh_done) {
            (batch, true) => Message::RefreshDone(batch),
            (Some(batch), false) => Message::Batch(batch),
            (None, false) => Message::Nothing,
        },
        SyncInfo::SyncIdSet {
            refresh_deletes: false,
            uuids,
            ..
        } => Message::PresentIds { count: uuids.len() },
        SyncInfo::SyncIdSet {
            cookie,
            refresh_deletes: true,
            uuids,
        } => {
            let mut changes = Vec::with_capacity(uuids.len());
            for uuid in &uuids {
                let Some(external_id) = format_entry_uuid(uuid) else {
                    return Message::Malformed("a syncIdSet with a UUID that is not 16 bytes");
                };
                changes.push(Change::Entry {
                    external_id,
                    deleted: true,
                });
            }
            if changes.is_empty() && cookie.is_none() {
                return Message::Nothing;
            }
            Message::Batch(FeedBatch { changes, cookie })
        }
    }
}

/// The 16 bytes of a syncUUID as OpenLDAP writes the entry's `entryUUID` attribute (lower-case
/// hyphenated text), which is what `LdapDirectory::external_id` reads; None if not 16 bytes.
pub(super) fn format_entry_uuid(bytes: &[u8]) -> Option<String> {
    let bytes: [u8; 16] = bytes.try_into().ok()?;
    Some(uuid::Uuid::from_bytes(bytes).hyphenated().to_string())
}

/// The Sync State control among an entry's controls; None when absent or malformed.
pub(super) fn sync_state(controls: &[Control]) -> Option<SyncState> {
    let control = controls.iter().find(|c| c.1.ctype == SYNC_STATE_OID)?;
    parse_sync_state(control.1.val.as_deref()?)
}

/// `syncStateValue ::= SEQUENCE { state ENUMERATED, entryUUID syncUUID, cookie syncCookie
/// OPTIONAL }`.
pub(super) fn parse_sync_state(value: &[u8]) -> Option<SyncState> {
    let mut parts = sequence(value)?.into_iter();
    let state = match enumerated(parts.next()?)? {
        0 => EntryState::Present,
        1 => EntryState::Add,
        2 => EntryState::Modify,
        3 => EntryState::Delete,
        _ => return None,
    };
    let entry_uuid = octet_string(parts.next()?)?;
    let cookie = match parts.next() {
        Some(tag) => Some(octet_string(tag)?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(SyncState {
        state,
        entry_uuid,
        cookie,
    })
}

/// The cookie of the Sync Done control on the final result, if there is one.
/// `syncDoneValue ::= SEQUENCE { cookie syncCookie OPTIONAL, refreshDeletes BOOLEAN DEFAULT
/// FALSE }`; malformed is None too (the search is over either way).
pub(super) fn sync_done_cookie(controls: &[Control]) -> Option<Vec<u8>> {
    let control = controls.iter().find(|c| c.1.ctype == SYNC_DONE_OID)?;
    let parts = sequence(control.1.val.as_deref()?)?;
    parts.into_iter().next().and_then(octet_string)
}

/// An intermediate response: Sync Info, or another one by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Intermediate {
    SyncInfo(SyncInfo),
    Other(Option<String>),
}

/// `IntermediateResponse ::= [APPLICATION 25] SEQUENCE { responseName [0] LDAPOID OPTIONAL,
/// responseValue [1] OCTET STRING OPTIONAL }`.
pub(super) fn parse_intermediate(op: StructureTag) -> Option<Intermediate> {
    let parts = op
        .match_class(TagClass::Application)?
        .match_id(25)?
        .expect_constructed()?;
    let mut name = None;
    let mut value = None;
    for part in parts {
        match (part.class, part.id) {
            (TagClass::Context, 0) if name.is_none() && value.is_none() => {
                name = Some(String::from_utf8(part.expect_primitive()?).ok()?);
            }
            (TagClass::Context, 1) if value.is_none() => value = Some(part.expect_primitive()?),
            _ => return None,
        }
    }
    if name.as_deref() != Some(SYNC_INFO_OID) {
        return Some(Intermediate::Other(name));
    }
    parse_sync_info(&value?).map(Intermediate::SyncInfo)
}

/// `syncInfoValue ::= CHOICE { newcookie [0] syncCookie, refreshDelete [1] SEQUENCE {cookie
/// OPTIONAL, refreshDone BOOLEAN DEFAULT TRUE}, refreshPresent [2] (the same), syncIdSet [3]
/// SEQUENCE {cookie OPTIONAL, refreshDeletes BOOLEAN DEFAULT FALSE, syncUUIDs SET OF
/// syncUUID}}` (implicit tags).
pub(super) fn parse_sync_info(value: &[u8]) -> Option<SyncInfo> {
    let (rest, tag) = parse_tag(value).ok()?;
    if !rest.is_empty() || tag.class != TagClass::Context {
        return None;
    }
    let id = tag.id;
    if id == 0 {
        return tag.expect_primitive().map(SyncInfo::NewCookie);
    }
    if id > 3 {
        return None;
    }
    let mut parts = tag.expect_constructed()?.into_iter().peekable();
    let cookie = match parts.peek() {
        Some(t) if is_universal(t, Types::OctetString) => parts.next().and_then(octet_string),
        _ => None,
    };
    let flag = match parts.peek() {
        Some(t) if is_universal(t, Types::Boolean) => Some(boolean(parts.next()?)?),
        _ => None,
    };
    let info = match id {
        1 => SyncInfo::RefreshDelete {
            cookie,
            refresh_done: flag.unwrap_or(true),
        },
        2 => SyncInfo::RefreshPresent {
            cookie,
            refresh_done: flag.unwrap_or(true),
        },
        _ => {
            let set = parts.next()?;
            if !is_universal(&set, Types::Set) {
                return None;
            }
            let uuids = set
                .expect_constructed()?
                .into_iter()
                .map(octet_string)
                .collect::<Option<Vec<_>>>()?;
            SyncInfo::SyncIdSet {
                cookie,
                refresh_deletes: flag.unwrap_or(false),
                uuids,
            }
        }
    };
    if parts.next().is_some() {
        return None;
    }
    Some(info)
}

fn is_universal(tag: &StructureTag, kind: Types) -> bool {
    tag.class == TagClass::Universal && tag.id == kind as u64
}

/// The elements of a BER SEQUENCE that is all of `value`.
fn sequence(value: &[u8]) -> Option<Vec<StructureTag>> {
    let (rest, tag) = parse_tag(value).ok()?;
    if !rest.is_empty() || !is_universal(&tag, Types::Sequence) {
        return None;
    }
    tag.expect_constructed()
}

fn octet_string(tag: StructureTag) -> Option<Vec<u8>> {
    if !is_universal(&tag, Types::OctetString) {
        return None;
    }
    tag.expect_primitive()
}

fn boolean(tag: StructureTag) -> Option<bool> {
    if !is_universal(&tag, Types::Boolean) {
        return None;
    }
    match tag.payload {
        PL::P(bytes) if bytes.len() == 1 => Some(bytes[0] != 0),
        _ => None,
    }
}

/// A small non-negative ENUMERATED (RFC 4533's states are 0 to 3).
fn enumerated(tag: StructureTag) -> Option<u32> {
    if !is_universal(&tag, Types::Enumerated) {
        return None;
    }
    match tag.payload {
        PL::P(bytes) if !bytes.is_empty() && bytes.len() <= 3 && bytes[0] < 0x80 => {
            Some(bytes.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)))
        }
        _ => None,
    }
}
