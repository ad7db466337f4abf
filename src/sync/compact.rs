//! Compact working sets of a reconciliation run, so that a directory of a million people fits
//! in the memory of a small service: stable ids in 16 bytes when they are UUID/GUID text, the
//! local users' ids as one sorted vector, and the matched upstream entries as one sorted
//! vector with their usernames in a single text arena.

use super::plan::Upstream;
use chrono::{DateTime, Utc};

/// A stable id (`external_id`) as the reconciler holds it: the 16 bytes of a UUID when the
/// text is exactly the canonical lower-case hyphenated form that formatting those bytes gives
/// back (so two ids are equal exactly when their texts are), else the text itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StableId {
    Uuid([u8; 16]),
    Text(Box<str>),
}

/// A borrowed [`StableId`], ordered the same way, for look-ups without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IdKey<'a> {
    Uuid([u8; 16]),
    Text(&'a str),
}

/// The 16 bytes of `text` when it is a canonical UUID (36 characters, lower-case hex,
/// hyphens at 8-4-4-4-12); None for anything else, including upper case and braces.
pub fn canonical_uuid(text: &str) -> Option<[u8; 16]> {
    if text.len() != 36 {
        return None;
    }
    let uuid = uuid::Uuid::try_parse(text).ok()?;
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    (uuid.hyphenated().encode_lower(&mut buf) == text).then(|| *uuid.as_bytes())
}

impl<'a> IdKey<'a> {
    pub fn of(text: &'a str) -> IdKey<'a> {
        match canonical_uuid(text) {
            Some(b) => IdKey::Uuid(b),
            None => IdKey::Text(text),
        }
    }
}

impl StableId {
    pub fn new(text: String) -> StableId {
        match canonical_uuid(&text) {
            Some(b) => StableId::Uuid(b),
            None => StableId::Text(text.into_boxed_str()),
        }
    }

    pub fn key(&self) -> IdKey<'_> {
        match self {
            StableId::Uuid(b) => IdKey::Uuid(*b),
            StableId::Text(t) => IdKey::Text(t),
        }
    }
}

/// The stable ids of the local users of a directory, sorted for look-ups.
#[derive(Debug, Default)]
pub struct IdSet(Vec<StableId>);

impl IdSet {
    pub fn push(&mut self, id: String) {
        self.0.push(StableId::new(id));
    }

    /// Ends filling: sorts, drops duplicates and gives back the spare capacity.
    pub fn seal(&mut self) {
        self.0.sort_unstable();
        self.0.dedup();
        self.0.shrink_to_fit();
    }

    /// Only after [`IdSet::seal`].
    pub fn contains(&self, id: &str) -> bool {
        self.contains_key(IdKey::of(id))
    }

    /// Only after [`IdSet::seal`].
    pub fn contains_key(&self, key: IdKey<'_>) -> bool {
        self.0.binary_search_by(|e| e.key().cmp(&key)).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One upstream entry kept by a run: the username is `names[name.0..name.1]`.
#[derive(Debug)]
struct Entry {
    id: StableId,
    name: (u32, u32),
    disabled: bool,
    last_login: Option<DateTime<Utc>>,
}

/// The upstream entries of local users, filled as pages arrive, then sealed for look-ups.
#[derive(Debug, Default)]
pub struct SeenSet {
    entries: Vec<Entry>,
    names: String,
}

impl SeenSet {
    /// Keeps an entry. A later entry with the same id replaces an earlier one (as a map
    /// would), decided in [`SeenSet::seal`].
    pub fn push(
        &mut self,
        id: String,
        username: &str,
        disabled: bool,
        last_login: Option<DateTime<Utc>>,
    ) {
        // The arena stays below 4 GiB of usernames: far beyond any directory (a million
        // names of 4 KiB); past that an entry is stored with an empty span, which can only
        // make it look renamed, and `seal` refuses such a set instead.
        let start = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push_str(username);
        let end = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.entries.push(Entry {
            id: StableId::new(id),
            name: (start, end),
            disabled,
            last_login,
        });
    }

    /// Keeps only the entries whose id `keep` accepts (before [`SeenSet::seal`]; the
    /// usernames of the others stay in the arena until the set is dropped).
    pub fn retain(&mut self, mut keep: impl FnMut(IdKey<'_>) -> bool) {
        self.entries.retain(|e| keep(e.id.key()));
    }

    /// Ends filling: sorts by id keeping the last of equal ids. False when the usernames
    /// outgrew the arena's 32-bit offsets (the run must fail rather than decide on them).
    pub fn seal(&mut self) -> bool {
        // Stable: equal ids stay in arrival order, so the last one is the newest.
        self.entries.sort_by(|a, b| a.id.cmp(&b.id));
        let mut kept: Vec<Entry> = Vec::with_capacity(0);
        let dups = self.entries.windows(2).any(|w| w[0].id == w[1].id);
        if dups {
            kept.reserve(self.entries.len());
            for e in self.entries.drain(..) {
                match kept.last_mut() {
                    Some(last) if last.id == e.id => *last = e,
                    _ => kept.push(e),
                }
            }
            self.entries = kept;
        }
        self.entries.shrink_to_fit();
        self.names.shrink_to_fit();
        u32::try_from(self.names.len()).is_ok()
    }

    fn index(&self, id: &str) -> Option<usize> {
        let key = IdKey::of(id);
        self.entries.binary_search_by(|e| e.id.key().cmp(&key)).ok()
    }

    /// Only after [`SeenSet::seal`].
    pub fn get(&self, id: &str) -> Option<Upstream<'_>> {
        self.get_key(IdKey::of(id))
    }

    /// Only after [`SeenSet::seal`].
    pub fn get_key(&self, key: IdKey<'_>) -> Option<Upstream<'_>> {
        let i = self
            .entries
            .binary_search_by(|e| e.id.key().cmp(&key))
            .ok()?;
        let e = &self.entries[i];
        let (start, end) = (e.name.0 as usize, e.name.1 as usize);
        Some(Upstream {
            username: self.names.get(start..end).unwrap_or(""),
            disabled: e.disabled,
            last_login: e.last_login,
        })
    }

    /// Moves an entry's last login forward to `at` (a domain controller's newer value).
    pub fn newer_login(&mut self, id: &str, at: DateTime<Utc>) {
        if let Some(i) = self.index(id) {
            let e = &mut self.entries[i];
            if e.last_login.is_none_or(|l| l < at) {
                e.last_login = Some(at);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn only_the_canonical_form_of_a_uuid_is_held_as_bytes() {
        let text = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
        let b = canonical_uuid(text).expect("canonical");
        assert_eq!(uuid::Uuid::from_bytes(b).hyphenated().to_string(), text);
        // Every other spelling of the same UUID stays text, so equality is text equality.
        for other in [
            "3F2504E0-4F89-11D3-9A0C-0305E82C3301",
            "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}",
            "3f2504e04f8911d39a0c0305e82c3301",
            "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            " 3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            "3f2504e0-4f89-11d3-9a0c-0305e82c330g",
            "uid=alice,ou=people",
            "",
        ] {
            assert_eq!(canonical_uuid(other), None, "{other}");
            assert_eq!(StableId::new(other.into()), StableId::Text(other.into()));
        }
        assert_eq!(StableId::new(text.into()), StableId::Uuid(b));
    }

    #[test]
    fn a_set_of_ids_finds_exactly_its_texts() {
        let mut set = IdSet::default();
        for id in [
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            "3F2504E0-4F89-11D3-9A0C-0305E82C3302",
            "employee-17",
            "employee-17",
        ] {
            set.push(id.into());
        }
        set.seal();
        assert_eq!(set.len(), 3);
        assert!(set.contains("3f2504e0-4f89-11d3-9a0c-0305e82c3301"));
        assert!(set.contains("3F2504E0-4F89-11D3-9A0C-0305E82C3302"));
        assert!(set.contains("employee-17"));
        // Same UUID, other spelling: a different stable id, as the text compares.
        assert!(!set.contains("3F2504E0-4F89-11D3-9A0C-0305E82C3301"));
        assert!(!set.contains("3f2504e0-4f89-11d3-9a0c-0305e82c3302"));
        assert!(!set.contains("employee-1"));
    }

    #[test]
    fn seen_entries_are_found_by_id_and_the_last_of_equal_ids_wins() {
        let at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let mut s = SeenSet::default();
        s.push(
            "b1a5e6c2-0000-4000-8000-000000000002".into(),
            "bob",
            false,
            None,
        );
        s.push("x-alice".into(), "alice", true, Some(at));
        s.push(
            "b1a5e6c2-0000-4000-8000-000000000002".into(),
            "robert",
            false,
            None,
        );
        assert!(s.seal());
        assert_eq!(s.len(), 2);
        let bob = s.get("b1a5e6c2-0000-4000-8000-000000000002").unwrap();
        assert_eq!(bob.username, "robert");
        let alice = s.get("x-alice").unwrap();
        assert_eq!(
            (alice.username, alice.disabled, alice.last_login),
            ("alice", true, Some(at))
        );
        assert!(s.get("x-carol").is_none());

        // A controller's value only moves a last login forward.
        s.newer_login("x-alice", at - chrono::Duration::days(1));
        assert_eq!(s.get("x-alice").unwrap().last_login, Some(at));
        let later = at + chrono::Duration::days(1);
        s.newer_login("x-alice", later);
        s.newer_login("b1a5e6c2-0000-4000-8000-000000000002", later);
        s.newer_login("x-nobody", later);
        assert_eq!(s.get("x-alice").unwrap().last_login, Some(later));
        assert_eq!(
            s.get("b1a5e6c2-0000-4000-8000-000000000002")
                .unwrap()
                .last_login,
            Some(later)
        );
    }
}
