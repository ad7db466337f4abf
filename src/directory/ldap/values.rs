//! What LDAP servers send and expect, as pure functions: result codes, filters (escaped),
//! entries, GUIDs, Active Directory's FILETIME and account-control bits, generalized time,
//! referrals and the paged-results cookie.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use ldap3::controls::Control;
use ldap3::{ldap_escape, ResultEntry};

// LDAP result codes (RFC 4511 appendix A) that the mapping below treats specially.
pub(super) const RC_SUCCESS: u32 = 0;
pub(super) const RC_PROTOCOL_ERROR: u32 = 2;
pub(super) const RC_TIME_LIMIT_EXCEEDED: u32 = 3;
pub(super) const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
pub(super) const RC_REFERRAL: u32 = 10;
pub(super) const RC_ADMIN_LIMIT_EXCEEDED: u32 = 11;
pub(super) const RC_UNSUPPORTED_CRITICAL_EXTENSION: u32 = 12;
pub(super) const RC_STRONGER_AUTH_REQUIRED: u32 = 8;
pub(super) const RC_CONFIDENTIALITY_REQUIRED: u32 = 13;
pub(super) const RC_CONSTRAINT_VIOLATION: u32 = 19;
pub(super) const RC_NO_SUCH_OBJECT: u32 = 32;
pub(super) const RC_INAPPROPRIATE_AUTHENTICATION: u32 = 48;
pub(super) const RC_INVALID_CREDENTIALS: u32 = 49;
pub(super) const RC_INSUFFICIENT_ACCESS_RIGHTS: u32 = 50;
pub(super) const RC_UNWILLING_TO_PERFORM: u32 = 53;

/// Requesting only this OID returns entries without attributes (RFC 4511 4.5.1.8).
pub(super) const NO_ATTRIBUTES: &str = "1.1";

/// The Paged Results control (RFC 2696).
pub(super) const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";
/// AD's LDAP_MATCHING_RULE_IN_CHAIN: `memberOf` with it also matches nested membership.
pub(super) const AD_MATCHING_RULE_IN_CHAIN: &str = "1.2.840.113556.1.4.1941";
pub(super) const AD_USER_ACCOUNT_CONTROL: &str = "userAccountControl";
/// userAccountControl bit ACCOUNTDISABLE.
pub(super) const UF_ACCOUNTDISABLE: i64 = 0x2;
/// Naming contexts below an AD domain root that AD answers with continuation references
/// (first RDN of the referenced DN): application partitions and the configuration partition,
/// never user accounts of the domain.
pub(super) const AD_NON_USER_PARTITIONS: &[(&str, &str)] = &[
    ("DC", "DomainDnsZones"),
    ("DC", "ForestDnsZones"),
    ("CN", "Configuration"),
];
/// 100 ns intervals between 1601-01-01 (FILETIME epoch) and 1970-01-01.
pub(super) const FILETIME_UNIX_EPOCH_SECONDS: i64 = 11_644_473_600;
pub(super) const FILETIME_TICKS_PER_SECOND: i64 = 10_000_000;

/// An entry of a search result, with every value kept as raw bytes (objectGUID is binary).
pub(super) struct Entry {
    pub(super) dn: String,
    pub(super) attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// Values of `name`; attribute names are case-insensitive in LDAP.
    pub(super) fn values(&self, name: &str) -> &[Vec<u8>] {
        self.attrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }

    pub(super) fn text(&self, name: &str) -> Option<String> {
        self.values(name)
            .iter()
            .find_map(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned)
    }
}

pub(super) enum UserBind {
    Ok,
    Refused,
    NeedsTls,
    Failed,
}

/// What the result code of the user's own bind means.
///
/// - 0 success.
/// - 49 invalidCredentials: wrong password, and on AD also disabled / locked / expired accounts
///   (the sub-code is in the diagnostic text) -> InvalidCredentials.
/// - 48 inappropriateAuthentication, 50 insufficientAccessRights, 53 unwillingToPerform
///   (OpenLDAP ppolicy / 389-ds for locked or inactivated accounts), 19 constraintViolation
///   (password policy), 32 noSuchObject (entry deleted since the search) -> InvalidCredentials:
///   each is about this account, and a 401 is the honest answer to its owner.
/// - 8 strongerAuthRequired, 13 confidentialityRequired: the server wants TLS -> Unavailable,
///   since no password can ever succeed with this config.
/// - anything else (busy, unavailable, operationsError, other...) -> Unavailable.
pub(super) fn classify_user_bind(rc: u32) -> UserBind {
    match rc {
        RC_SUCCESS => UserBind::Ok,
        RC_INVALID_CREDENTIALS
        | RC_INAPPROPRIATE_AUTHENTICATION
        | RC_INSUFFICIENT_ACCESS_RIGHTS
        | RC_UNWILLING_TO_PERFORM
        | RC_CONSTRAINT_VIOLATION
        | RC_NO_SUCH_OBJECT => UserBind::Refused,
        RC_STRONGER_AUTH_REQUIRED | RC_CONFIDENTIALITY_REQUIRED => UserBind::NeedsTls,
        _ => UserBind::Failed,
    }
}

/// `(&{user_filter}({attr}={escaped username}))`; the username is escaped per RFC 4515 so that
/// `*`, `(`, `)`, `\` and NUL match literally instead of changing the filter.
pub(super) fn user_filter(user_filter: &str, attr: &str, username: &str) -> String {
    let user_filter = user_filter.trim();
    let matcher = format!("({attr}={})", ldap_escape(username.trim()));
    if user_filter.is_empty() {
        matcher
    } else {
        format!("(&{user_filter}{matcher})")
    }
}

/// `(|(member={dn})(uniqueMember={dn}))` with the DN escaped as a filter value.
pub(super) fn admin_filter(user_dn: &str) -> String {
    let dn = ldap_escape(user_dn);
    format!("(|(member={dn})(uniqueMember={dn}))")
}

/// AD's objectGUID: the first three fields are little-endian on the wire, so the bytes
/// 01..10 read as 04030201-0605-0807-090a-0b0c0d0e0f10.
pub(super) fn format_object_guid(raw: &[u8]) -> Option<String> {
    let bytes: [u8; 16] = raw.try_into().ok()?;
    Some(uuid::Uuid::from_bytes_le(bytes).hyphenated().to_string())
}

/// The inverse of [`format_object_guid`]: the 16 bytes AD stores for a GUID string (the first
/// three fields back in little-endian order). None when `text` is not a GUID.
pub(super) fn object_guid_bytes(text: &str) -> Option<[u8; 16]> {
    let uuid = uuid::Uuid::try_parse(text.trim()).ok()?;
    Some(uuid.to_bytes_le())
}

/// Every byte as `\xx`: a filter value (RFC 4515) that matches exactly these bytes, which is how
/// AD is asked for a binary attribute such as objectGUID.
pub(super) fn escape_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// The filter clause that finds the entry whose `attr` [`LdapDirectory::external_id`] formatted
/// as `external_id`: objectGUID as its bytes (None when `external_id` is not a GUID); other
/// attributes as the escaped text, or (`(|(attr=text)(attr=bytes))`) when the text is even-length
/// hex, also as the bytes it spells, since a binary id other than objectGUID is kept as hex.
///
/// [`LdapDirectory::external_id`]: super::LdapDirectory
pub(super) fn id_clause(attr: &str, external_id: &str) -> Option<String> {
    if attr.eq_ignore_ascii_case("objectGUID") {
        let bytes = object_guid_bytes(external_id)?;
        return Some(format!("({attr}={})", escape_bytes(&bytes)));
    }
    let text = format!("({attr}={})", ldap_escape(external_id));
    match hex::decode(external_id) {
        Ok(bytes) if !bytes.is_empty() => {
            Some(format!("(|{text}({attr}={}))", escape_bytes(&bytes)))
        }
        _ => Some(text),
    }
}

/// The username as stored upstream (its canonical case), preferring the value that matches
/// what was typed when the attribute has several.
pub(super) fn canonical_username(entry: &Entry, attr: &str, typed: &str) -> String {
    let typed = typed.trim();
    let values: Vec<&str> = entry
        .values(attr)
        .iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .collect();
    values
        .iter()
        .find(|v| v.to_lowercase() == typed.to_lowercase())
        .or_else(|| values.first())
        .map(|v| (*v).to_owned())
        .unwrap_or_else(|| typed.to_owned())
}

/// ldap3's `SearchEntry::construct` panics on a malformed reply; this returns None instead.
pub(super) fn parse_entry(re: ResultEntry) -> Option<Entry> {
    let mut tags = re.0.match_id(4)?.expect_constructed()?.into_iter();
    let dn = String::from_utf8(tags.next()?.expect_primitive()?).ok()?;
    let mut attrs = Vec::new();
    for partial in tags.next()?.expect_constructed()? {
        let mut parts = partial.expect_constructed()?.into_iter();
        let name = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
        let values = parts
            .next()?
            .expect_constructed()?
            .into_iter()
            .map(|t| t.expect_primitive())
            .collect::<Option<Vec<_>>>()?;
        attrs.push((name, values));
    }
    Some(Entry { dn, attrs })
}

/// `(&{user_filter}{extra})`, either part alone when the other is absent, and
/// `(objectClass=*)` when nothing restricts the search.
pub(super) fn scope_filter(user_filter: &str, extra: Option<String>) -> String {
    let user_filter = user_filter.trim();
    match (user_filter.is_empty(), extra) {
        (true, None) => "(objectClass=*)".to_owned(),
        (true, Some(extra)) => extra,
        (false, None) => user_filter.to_owned(),
        (false, Some(extra)) => format!("(&{user_filter}{extra})"),
    }
}

/// Membership of `group_dn` (escaped as a filter value): `(memberOf=<dn>)`, on AD
/// `(memberOf:1.2.840.113556.1.4.1941:=<dn>)` so that nested groups count.
pub(super) fn member_of_clause(group_dn: &str, active_directory: bool) -> String {
    let dn = ldap_escape(group_dn.trim());
    if active_directory {
        format!("(memberOf:{AD_MATCHING_RULE_IN_CHAIN}:={dn})")
    } else {
        format!("(memberOf={dn})")
    }
}

/// The URLs of a SearchResultReference; None when malformed (ldap3's `parse_refs` panics).
pub(super) fn parse_reference(re: ResultEntry) -> Option<Vec<String>> {
    re.0.expect_constructed()?
        .into_iter()
        .map(|t| String::from_utf8(t.expect_primitive()?).ok())
        .collect()
}

/// Whether a continuation reference points at one of AD's DNS application partitions or its
/// configuration partition: the first RDN of the URL's DN is `DC=DomainDnsZones`,
/// `DC=ForestDnsZones` or `CN=Configuration` (case-insensitive).
pub(super) fn is_ignorable_reference(url: &str) -> bool {
    let Some(dn) = ldap_url_dn(url) else {
        return false;
    };
    let first_rdn = dn.split(',').next().unwrap_or_default();
    let Some((attr, value)) = first_rdn.split_once('=') else {
        return false;
    };
    let (attr, value) = (attr.trim(), value.trim());
    AD_NON_USER_PARTITIONS
        .iter()
        .any(|(a, v)| attr.eq_ignore_ascii_case(a) && value.eq_ignore_ascii_case(v))
}

/// The DN of an LDAP URL (RFC 4516: `ldap://host/dn?attrs?scope?filter?exts`), percent-decoded.
pub(super) fn ldap_url_dn(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("ldap") && !scheme.eq_ignore_ascii_case("ldaps") {
        return None;
    }
    let (_, path) = rest.split_once('/')?;
    let dn = path.split('?').next().unwrap_or_default();
    percent_decode(dn)
}

pub(super) fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// The cookie of the Paged Results response control: None when the control is absent or
/// malformed; empty when the search is complete.
pub(super) fn paged_cookie(ctrls: &[Control]) -> Option<Vec<u8>> {
    let raw = ctrls.iter().find(|c| c.1.ctype == PAGED_RESULTS_OID)?;
    let (rest, tag) = ldap3::asn1::parse_tag(raw.1.val.as_deref()?).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let mut parts = tag.expect_constructed()?.into_iter();
    let _size = parts.next()?.expect_primitive()?;
    parts.next()?.expect_primitive()
}

/// AD's userAccountControl (a signed 32-bit decimal) has ACCOUNTDISABLE set; None if not a number.
pub(super) fn account_disabled(value: &str) -> Option<bool> {
    let flags: i64 = value.trim().parse().ok()?;
    Some(flags & UF_ACCOUNTDISABLE != 0)
}

/// A last-login value: all digits is a Windows FILETIME (`lastLogonTimestamp`), anything else a
/// GeneralizedTime (`authTimestamp`). `Ok(None)` for FILETIME's "never" values.
pub(super) fn parse_last_login(value: &str) -> Result<Option<DateTime<Utc>>, ()> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        parse_filetime(value)
    } else {
        parse_generalized_time(value).map(Some).ok_or(())
    }
}

/// Windows FILETIME: 100 ns intervals since 1601-01-01 UTC. 0 and i64::MAX mean never.
pub(super) fn parse_filetime(value: &str) -> Result<Option<DateTime<Utc>>, ()> {
    let ticks: i64 = value.parse().map_err(|_| ())?;
    if ticks == 0 || ticks == i64::MAX {
        return Ok(None);
    }
    if ticks < 0 {
        return Err(());
    }
    let secs = ticks / FILETIME_TICKS_PER_SECOND - FILETIME_UNIX_EPOCH_SECONDS;
    let nanos = (ticks % FILETIME_TICKS_PER_SECOND) * 100;
    DateTime::from_timestamp(secs, nanos as u32)
        .map(Some)
        .ok_or(())
}

/// GeneralizedTime (RFC 4517 3.3.13): `YYYYMMDDHH[MM[SS]][(.|,)fraction](Z|(+|-)HH[MM])`.
/// The fraction applies to the last unit given; a leap second (60) rolls into the next minute.
pub(super) fn parse_generalized_time(value: &str) -> Option<DateTime<Utc>> {
    let b = value.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize, n: usize| -> Option<u32> {
        let part = b.get(*i..*i + n)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        *i += n;
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let is_digit_at = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);

    let year = digits(&mut i, 4)?;
    let month = digits(&mut i, 2)?;
    let day = digits(&mut i, 2)?;
    let hour = digits(&mut i, 2)?;
    let mut minute = None;
    let mut second = None;
    if is_digit_at(i) {
        minute = Some(digits(&mut i, 2)?);
        if is_digit_at(i) {
            second = Some(digits(&mut i, 2)?);
        }
    }
    let mut fraction_nanos: i64 = 0;
    if matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        let start = i;
        while is_digit_at(i) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let unit_nanos: u128 = match (minute, second) {
            (_, Some(_)) => 1_000_000_000,
            (Some(_), None) => 60_000_000_000,
            _ => 3_600_000_000_000,
        };
        // Twelve digits are below a nanosecond even for fractions of an hour.
        let used = &value[start..i.min(start + 12)];
        let numerator: u128 = used.parse().ok()?;
        let nanos = numerator * unit_nanos / 10u128.pow(used.len() as u32);
        fraction_nanos = i64::try_from(nanos).ok()?;
    }
    let offset_seconds: i64 = match b.get(i) {
        Some(b'Z') => {
            i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let sign = if *sign == b'-' { -1 } else { 1 };
            i += 1;
            let hours = digits(&mut i, 2)?;
            let minutes = if is_digit_at(i) {
                digits(&mut i, 2)?
            } else {
                0
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (i64::from(hours) * 3600 + i64::from(minutes) * 60)
        }
        _ => return None,
    };
    if i != b.len() {
        return None;
    }
    let (minute, second) = (minute.unwrap_or(0), second.unwrap_or(0));
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let midnight = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_opt(0, 0, 0)?
        .and_utc();
    let local_seconds = i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    midnight
        .checked_add_signed(TimeDelta::seconds(local_seconds - offset_seconds))?
        .checked_add_signed(TimeDelta::nanoseconds(fraction_nanos))
}
