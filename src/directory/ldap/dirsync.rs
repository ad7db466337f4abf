//! Active Directory's change feed: one DirSync poll (MS-ADTS 3.1.1.3.4.1.3, control
//! 1.2.840.113556.1.4.841) turned into the [`Change`]s of `feed.rs`.
//!
//! How the poll is made, and why:
//! - **Base.** DirSync only searches a whole naming context: the base must be the root of one
//!   (AD and Samba refuse anything else: Samba with insufficientAccessRights, or
//!   unwillingToPerform with the object-security flag). The poll reads the rootDSE's
//!   `namingContexts` and uses the one holding `user_base` (the domain root, e.g.
//!   `DC=corp,DC=test`). Changes outside `user_base` are reported too: the domain confirms each
//!   with a point lookup under `user_base` anyway.
//! - **Filter.** `(&(objectClass=user)(!(objectClass=computer)))`, or'ed with
//!   `(objectClass=group)` when `required_group` is set. Not `user_filter`: a deleted object
//!   loses most attributes (objectCategory among them) and would no longer match it, so the
//!   deletion would never be seen. objectClass survives deletion.
//! - **Attributes.** objectGUID (always returned, the change's id), userAccountControl
//!   (disable / enable), isDeleted, and `member` when `required_group` is set. DirSync returns
//!   only the requested attributes that changed, and only objects where one of them changed:
//!   renames, moves and changes of attributes that `user_filter` tests are not reported (the
//!   scheduled reconciliation still sees them). Hence `id_attribute` must be objectGUID: no
//!   other id would come with a change.
//! - **Flags.** LDAP_DIRSYNC_INCREMENTAL_VALUES, so that a group's changed members come as
//!   `member;range=1-1` (added) and `member;range=0-0` (removed) values instead of the whole
//!   list. The first poll of a [`LdapDirectory`] asks without LDAP_DIRSYNC_OBJECT_SECURITY,
//!   which needs the "Replicating Directory Changes" (DS-Replication-Get-Changes) extended
//!   right on the domain root and then sees everything, deleted objects included. A service
//!   account without that right gets insufficientAccessRights; the poll is then repeated
//!   with LDAP_DIRSYNC_OBJECT_SECURITY, which needs no special right but returns only what the
//!   account may read, and that flag is kept for later polls. Without the right, deletions
//!   are seen only where the account may read `CN=Deleted Objects` (by default only
//!   administrators may); a deletion not seen is left to the scheduled reconciliation.
//!   Samba 4.17, as tested (tests/e2e/ad_feed.rs and by hand): an account without the right
//!   gets insufficientAccessRights without the flag and sees disables with it, but no
//!   deletions; granting the right (`samba-tool dsacl set --objectdn=<domain root>
//!   --sddl="(OA;;CR;1131f6aa-9c07-11d1-f79f-00c04fc2dcd2;;<account SID>)"`) lets it poll
//!   without the flag, yet Samba still shows deleted objects only to administrators. Samba's
//!   code also reports a deleted object a caller may not read as its bare objectGUID with an
//!   empty DN and no isDeleted, which maps to `Entry { deleted: false }` (the point look-up
//!   then finds it Absent).
//! - **Paging.** While the response control says more data, the search is repeated with the
//!   new cookie; all changes of the poll come back in one [`FeedBatch`] with the last cookie.
//!   (Samba answers everything at once and never sets more data.)
//! - **Deleted members.** Deleting a user ends their group memberships, but Samba does not
//!   report that as a `member;range=0-0` value (seen by hand): the deletion comes as the
//!   user's own `Entry { deleted: true }`.
//! - **Nested groups.** Taking a nested group out of `required_group` reports the group's DN
//!   only; its members' standing changes without a change of their own. The look-up of that
//!   DN is the group's (OutOfScope, no person has its id); the members are left to the
//!   scheduled reconciliation.
//!
//! The first poll (no cookie) reports every user and every membership as a change. A runner
//! that only wants a starting point calls [`LdapDirectory::dirsync_baseline`], which walks the
//! same answer without keeping the changes and returns the cookie.
//!
//! A cookie the server cannot use is [`DirectoryError::FeedReset`]: start again without a
//! cookie (a new baseline); changes in between are left to the scheduled reconciliation.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ldap3::asn1::{parse_tag, write, ASNTag, Integer, OctetString, Sequence, Tag, TagClass, Types};
use ldap3::controls::{Control, RawControl};
use ldap3::{Ldap, Scope};

use crate::directory::DirectoryError;

use super::feed::{Change, FeedBatch};
use super::values::*;
use super::LdapDirectory;

/// LDAP_SERVER_DIRSYNC_OID.
pub(super) const DIRSYNC_OID: &str = "1.2.840.113556.1.4.841";
/// Only objects and attributes the caller may read; no replication right needed.
pub(super) const LDAP_DIRSYNC_OBJECT_SECURITY: u32 = 0x1;
/// Linked attributes (member) as added / removed values rather than the whole list.
pub(super) const LDAP_DIRSYNC_INCREMENTAL_VALUES: u32 = 0x8000_0000;
/// Upper bound of one answer the server may choose to send (AD caps it lower itself).
const DIRSYNC_MAX_BYTES: i32 = 1 << 20;
/// Bound on the answers of one poll, so a server that keeps saying "more data" cannot keep a
/// poll going for ever.
const MAX_ROUNDS: u32 = 10_000;

const ADDED_MEMBERS: &str = "member;range=1-1";
const REMOVED_MEMBERS: &str = "member;range=0-0";

/// The value of a DirSync request control: `SEQUENCE { flags INTEGER, maxBytes INTEGER,
/// cookie OCTET STRING }`. The flags go out as the signed 32-bit integer AD reads (0x80000000
/// is `02 04 80 00 00 00`, as Windows' own client sends it).
pub(super) fn encode_dirsync_request(flags: u32, max_bytes: i32, cookie: &[u8]) -> Vec<u8> {
    let value = Tag::Sequence(Sequence {
        inner: vec![
            Tag::Integer(Integer {
                // Reinterpreting the bits is the point: the high flag makes it negative.
                inner: i64::from(flags as i32),
                ..Default::default()
            }),
            Tag::Integer(Integer {
                inner: i64::from(max_bytes),
                ..Default::default()
            }),
            Tag::OctetString(OctetString {
                inner: cookie.to_vec(),
                ..Default::default()
            }),
        ],
        ..Default::default()
    })
    .into_structure();
    let mut buf = bytes::BytesMut::with_capacity(cookie.len() + 16);
    // Encoding into memory cannot fail (the io::Result is for the Write trait).
    if write::encode_into(&mut buf, value).is_err() {
        return Vec::new();
    }
    buf.to_vec()
}

/// What the server's DirSync response control says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DirSyncResponse {
    /// The server has more changes for this poll: search again with `cookie`.
    pub(super) more_data: bool,
    pub(super) cookie: Vec<u8>,
}

/// Decodes a DirSync response value `SEQUENCE { moreResults INTEGER, unused INTEGER,
/// cookie OCTET STRING }`; None when malformed.
pub(super) fn decode_dirsync_response(value: &[u8]) -> Option<DirSyncResponse> {
    let (rest, tag) = parse_tag(value).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let mut parts = tag
        .match_class(TagClass::Universal)?
        .match_id(Types::Sequence as u64)?
        .expect_constructed()?
        .into_iter();
    let more = universal(parts.next()?, Types::Integer)?;
    let _max = universal(parts.next()?, Types::Integer)?;
    let cookie = universal(parts.next()?, Types::OctetString)?;
    if parts.next().is_some() {
        return None;
    }
    Some(DirSyncResponse {
        more_data: ber_integer(&more)? != 0,
        cookie,
    })
}

fn universal(tag: ldap3::asn1::StructureTag, ty: Types) -> Option<Vec<u8>> {
    tag.match_class(TagClass::Universal)?
        .match_id(ty as u64)?
        .expect_primitive()
}

/// A BER INTEGER's contents (two's complement, big-endian, 1 to 8 bytes).
fn ber_integer(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 8 {
        return None;
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut value: i64 = if negative { -1 } else { 0 };
    for b in bytes {
        value = (value << 8) | i64::from(*b);
    }
    Some(value)
}

/// The DirSync response control among the result's controls, decoded. `Err(())` when it is
/// there but malformed, `Ok(None)` when absent.
fn dirsync_response(ctrls: &[Control]) -> Result<Option<DirSyncResponse>, ()> {
    let Some(raw) = ctrls.iter().find(|c| c.1.ctype == DIRSYNC_OID) else {
        return Ok(None);
    };
    let value = raw.1.val.as_deref().ok_or(())?;
    decode_dirsync_response(value).map(Some).ok_or(())
}

/// Whether a DirSync search that failed with `rc` means the cookie is no good (so the caller
/// must start over without one) rather than a passing failure. Only with a cookie: the same
/// codes without one mean the server does not do DirSync, which a new baseline cannot fix.
/// Samba answers an unreadable cookie with unsupportedCriticalExtension (12); what AD answers
/// is not documented, so protocolError (2) and unwillingToPerform (53) count as well.
pub(super) fn cookie_refused(rc: u32, sent_cookie: bool) -> bool {
    sent_cookie
        && matches!(
            rc,
            RC_PROTOCOL_ERROR | RC_UNSUPPORTED_CRITICAL_EXTENSION | RC_UNWILLING_TO_PERFORM
        )
}

/// The naming context `user_base` lies in: the longest of `contexts` that is a suffix of it,
/// compared RDN by RDN (case and spaces around `,` and `=` do not matter).
pub(super) fn naming_context_of<'a>(user_base: &str, contexts: &'a [String]) -> Option<&'a str> {
    let base = dn_rdns(user_base);
    contexts
        .iter()
        .filter(|nc| {
            let nc = dn_rdns(nc);
            !nc.is_empty() && nc.len() <= base.len() && base[base.len() - nc.len()..] == nc[..]
        })
        .max_by_key(|nc| dn_rdns(nc).len())
        .map(String::as_str)
}

/// A DN's RDNs, lower-cased, without the spaces allowed around `,`, `=` and `+`; commas escaped
/// with `\` stay inside their RDN.
fn dn_rdns(dn: &str) -> Vec<String> {
    let mut rdns = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == ',' || c == ';' {
            rdns.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    rdns.push(current);
    rdns.into_iter()
        .map(|rdn| {
            rdn.split('+')
                .map(|ava| match ava.split_once('=') {
                    Some((a, v)) => format!("{}={}", a.trim(), v.trim()),
                    None => ava.trim().to_owned(),
                })
                .collect::<Vec<_>>()
                .join("+")
                .to_lowercase()
        })
        .filter(|rdn| !rdn.is_empty())
        .collect()
}

/// The changes one DirSync entry stands for. A group's entry (it carries member values) gives
/// one `MemberRemoved` / `MemberAdded` per changed member, and nothing for the group itself;
/// any other entry gives `Entry` with its objectGUID (deleted when isDeleted is TRUE). A
/// group whose only reported change is its deletion therefore also gives an `Entry`: no
/// person has its id, so it leads nowhere. Err names what is malformed.
pub(super) fn changes_of(entry: &Entry) -> Result<Vec<Change>, String> {
    let member_values = |name: &str| -> Result<Vec<Change>, String> {
        entry
            .values(name)
            .iter()
            .map(|v| {
                std::str::from_utf8(v)
                    .map(str::to_owned)
                    .map_err(|_| format!("{name} value of {} is not UTF-8", entry.dn))
            })
            .map(|dn| {
                dn.map(|dn| {
                    if name == REMOVED_MEMBERS {
                        Change::MemberRemoved { dn }
                    } else {
                        Change::MemberAdded { dn }
                    }
                })
            })
            .collect()
    };
    let is_group = entry
        .attrs
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("member") || n.to_lowercase().starts_with("member;"));
    if is_group {
        let mut changes = member_values(REMOVED_MEMBERS)?;
        changes.extend(member_values(ADDED_MEMBERS)?);
        // A server that ignored the incremental flag sends the whole list: all we can tell is
        // who is a member now.
        let whole = entry
            .values("member")
            .iter()
            .filter_map(|v| std::str::from_utf8(v).ok())
            .map(|dn| Change::MemberAdded { dn: dn.to_owned() });
        changes.extend(whole);
        return Ok(changes);
    }
    let guid = entry
        .values("objectGUID")
        .first()
        .ok_or_else(|| format!("DirSync entry {:?} without objectGUID", entry.dn))?;
    let external_id = format_object_guid(guid).ok_or_else(|| {
        format!(
            "objectGUID of {:?} is {} bytes, not a GUID",
            entry.dn,
            guid.len()
        )
    })?;
    let deleted = entry
        .text("isDeleted")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("TRUE"));
    Ok(vec![Change::Entry {
        external_id,
        deleted,
    }])
}

impl LdapDirectory {
    /// One DirSync poll over the domain (see the module documentation): every change since
    /// `cookie` (everything, without one), in one batch with the cookie to store once they are
    /// applied. Needs `active_directory` and `id_attribute = objectGUID` (else Misconfigured).
    ///
    /// Errors: a cookie the server refuses is [`DirectoryError::FeedReset`] (poll again
    /// with None); anything else that goes wrong is `Unavailable` (connection, timeout of
    /// `timeout_seconds` per answer, a result code other than success, a malformed entry or
    /// control) and the whole poll counts as not done: the caller keeps its old cookie.
    pub async fn dirsync(&self, cookie: Option<Vec<u8>>) -> Result<FeedBatch, DirectoryError> {
        let mut changes = Vec::new();
        let mut seen = HashSet::new();
        let cookie = self
            .dirsync_walk(cookie, |change| {
                // The same member or entry can come in several answers of one poll.
                if seen.insert(change.clone()) {
                    changes.push(change);
                }
            })
            .await?;
        tracing::debug!(directory = %self.cfg.id, changes = changes.len(), "DirSync poll");
        Ok(FeedBatch {
            changes,
            cookie: Some(cookie),
        })
    }

    /// The cookie of a poll without a cookie, its changes (every user and membership) dropped
    /// as they arrive: where a runner starts following the directory.
    pub async fn dirsync_baseline(&self) -> Result<Vec<u8>, DirectoryError> {
        let mut count = 0u64;
        let cookie = self.dirsync_walk(None, |_| count += 1).await?;
        tracing::debug!(directory = %self.cfg.id, changes = count, "DirSync baseline");
        Ok(cookie)
    }

    async fn dirsync_walk(
        &self,
        cookie: Option<Vec<u8>>,
        mut sink: impl FnMut(Change) + Send,
    ) -> Result<Vec<u8>, DirectoryError> {
        if !self.cfg.id_attribute.eq_ignore_ascii_case("objectGUID") {
            return Err(DirectoryError::Misconfigured(format!(
                "the Active Directory change feed needs id_attribute = \"objectGUID\" (DirSync \
                 reports changes by objectGUID), not {:?}",
                self.cfg.id_attribute
            )));
        }
        if !self.cfg.active_directory {
            return Err(DirectoryError::Misconfigured(
                "DirSync is an Active Directory control: set active_directory = true".into(),
            ));
        }
        let mut svc = self.service_connection().await?;
        let result = self.dirsync_on(&mut svc, cookie, &mut sink).await;
        self.close(&mut svc).await;
        result
    }

    async fn dirsync_on(
        &self,
        svc: &mut Ldap,
        cookie: Option<Vec<u8>>,
        sink: &mut (impl FnMut(Change) + Send),
    ) -> Result<Vec<u8>, DirectoryError> {
        let base = self.naming_context(svc).await?;
        let members = self.cfg.required_group.is_some();
        let users = "(&(objectClass=user)(!(objectClass=computer)))";
        let filter = if members {
            format!("(|{users}(objectClass=group))")
        } else {
            users.to_owned()
        };
        let mut attrs = vec!["objectGUID", AD_USER_ACCOUNT_CONTROL, "isDeleted"];
        if members {
            attrs.push("member");
        }
        let sent_cookie = cookie.as_ref().is_some_and(|c| !c.is_empty());
        let mut cookie = cookie.unwrap_or_default();
        for round in 1..=MAX_ROUNDS {
            let object_security = self.dirsync_object_security.load(Ordering::Relaxed);
            let flags = LDAP_DIRSYNC_INCREMENTAL_VALUES
                | if object_security {
                    LDAP_DIRSYNC_OBJECT_SECURITY
                } else {
                    0
                };
            let control = RawControl {
                ctype: DIRSYNC_OID.to_owned(),
                crit: true,
                val: Some(encode_dirsync_request(flags, DIRSYNC_MAX_BYTES, &cookie)),
            };
            let answer = self
                .dirsync_round(svc, &base, &filter, &attrs, control, round, sink)
                .await?;
            let res = match answer {
                Ok(res) => res,
                Err(res) if res.rc == RC_INSUFFICIENT_ACCESS_RIGHTS && !object_security => {
                    // Nothing was sent to the sink: the server refuses before the first entry.
                    tracing::info!(directory = %self.cfg.id, "the service account lacks \"Replicating Directory Changes\": DirSync continues with LDAP_DIRSYNC_OBJECT_SECURITY (deleted objects only where the account may read them)");
                    self.dirsync_object_security.store(true, Ordering::Relaxed);
                    continue;
                }
                Err(res) if cookie_refused(res.rc, sent_cookie) => {
                    let err = DirectoryError::FeedReset(format!(
                        "DirSync on {} refused the stored cookie: {res}",
                        self.cfg.url
                    ));
                    tracing::warn!(directory = %self.cfg.id, "{err}");
                    return Err(err);
                }
                Err(res) => {
                    let hint = match res.rc {
                        RC_INSUFFICIENT_ACCESS_RIGHTS => {
                            "; the service account may not use DirSync on the domain root"
                        }
                        RC_UNSUPPORTED_CRITICAL_EXTENSION => {
                            "; the server does not support DirSync (Active Directory or Samba AD only)"
                        }
                        _ => "",
                    };
                    let err = DirectoryError::Unavailable(format!(
                        "DirSync search of {base:?} on {} failed: {res}{hint}",
                        self.cfg.url
                    ));
                    tracing::warn!(directory = %self.cfg.id, "{err}");
                    return Err(err);
                }
            };
            let response = match dirsync_response(&res.ctrls) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    return Err(self.dirsync_malformed("the answer has no DirSync response control"))
                }
                Err(()) => return Err(self.dirsync_malformed("malformed DirSync response control")),
            };
            if !response.more_data {
                return Ok(response.cookie);
            }
            if response.cookie == cookie {
                return Err(self.dirsync_malformed(
                    "the server says more data but sends the same cookie again",
                ));
            }
            cookie = response.cookie;
        }
        Err(self.dirsync_malformed(&format!("still more data after {MAX_ROUNDS} answers")))
    }

    /// One DirSync search: entries go to `sink` as they arrive. Ok(result) on success,
    /// Err(result) for a result code other than success (the caller decides what it means),
    /// and a DirectoryError for a failed transport, a timeout or a malformed entry.
    #[allow(clippy::too_many_arguments)]
    async fn dirsync_round(
        &self,
        svc: &mut Ldap,
        base: &str,
        filter: &str,
        attrs: &[&str],
        control: RawControl,
        round: u32,
        sink: &mut (impl FnMut(Change) + Send),
    ) -> Result<Result<ldap3::LdapResult, ldap3::LdapResult>, DirectoryError> {
        let what = "DirSync search";
        let started = Instant::now();
        let mut stream = svc
            .with_controls(control)
            .with_timeout(self.timeout)
            .streaming_search(base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| self.connection_error(&format!("{what} (answer {round})"), &e))?;
        let mut waited = started.elapsed();
        loop {
            let budget = self.timeout.saturating_sub(waited);
            let wait_started = Instant::now();
            let next = tokio::time::timeout(budget, stream.next()).await;
            waited += wait_started.elapsed();
            let item = match next {
                Ok(Ok(Some(item))) => item,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    return Err(self.connection_error(&format!("{what} (answer {round})"), &e))
                }
                Err(_) => {
                    let err = DirectoryError::Unavailable(format!(
                        "{what} on {}: answer {round} not complete within {}s (timed out)",
                        self.cfg.url,
                        self.timeout.as_secs()
                    ));
                    tracing::warn!(directory = %self.cfg.id, "{err}");
                    return Err(err);
                }
            };
            if item.is_intermediate() || item.is_ref() {
                // References lead to other naming contexts (DNS zones, configuration): no
                // user of this domain lives there.
                continue;
            }
            let entry = parse_entry(item).ok_or_else(|| self.malformed(what))?;
            for change in changes_of(&entry).map_err(|m| self.dirsync_malformed(&m))? {
                sink(change);
            }
        }
        let res = stream.finish().await;
        Ok(if res.rc == RC_SUCCESS {
            Ok(res)
        } else {
            Err(res)
        })
    }

    /// The root of the naming context holding `user_base`, from the rootDSE.
    async fn naming_context(&self, svc: &mut Ldap) -> Result<String, DirectoryError> {
        let res = svc
            .with_timeout(self.timeout)
            .search("", Scope::Base, "(objectClass=*)", vec!["namingContexts"])
            .await
            .map_err(|e| self.connection_error("rootDSE read", &e))?;
        let ldap3::SearchResult(raw, res) = res;
        if res.rc != RC_SUCCESS {
            return Err(self.unavailable("rootDSE read", &res));
        }
        let mut contexts = Vec::new();
        for re in raw {
            if re.is_ref() || re.is_intermediate() {
                continue;
            }
            let entry = parse_entry(re).ok_or_else(|| self.malformed("rootDSE read"))?;
            contexts.extend(
                entry
                    .values("namingContexts")
                    .iter()
                    .filter_map(|v| std::str::from_utf8(v).ok())
                    .map(str::to_owned),
            );
        }
        naming_context_of(&self.cfg.user_base, &contexts)
            .map(str::to_owned)
            .ok_or_else(|| {
                DirectoryError::Misconfigured(format!(
                    "user_base {:?} is in none of the naming contexts {} serves ({}): DirSync \
                     needs the naming context's root",
                    self.cfg.user_base,
                    self.cfg.url,
                    contexts.join("; ")
                ))
            })
    }

    fn dirsync_malformed(&self, what: &str) -> DirectoryError {
        let err = DirectoryError::Unavailable(format!("DirSync on {}: {what}", self.cfg.url));
        tracing::warn!(directory = %self.cfg.id, "{err}");
        err
    }
}

#[cfg(test)]
#[path = "dirsync_tests.rs"]
mod tests;
