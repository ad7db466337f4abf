//! What a directory change feed reports, shared by the OpenLDAP content-synchronization
//! search (RFC 4533, `syncrepl.rs`) and Active Directory's DirSync poll (`dirsync.rs`).
//!
//! A change only names who to look at again; it never decides anything by itself. The domain
//! (`signals`) confirms each change with a point lookup (`LdapDirectory::standing_by_id` /
//! `standing_by_dn`) before it suspends anyone, so a malformed or spurious change cannot
//! suspend a person who is still in scope.

/// One change the feed saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The entry with this stable id (formatted as `external_id`, like `UpstreamUser`)
    /// changed, left the feed's scope, or was deleted (`deleted`: the server said so).
    Entry { external_id: String, deleted: bool },
    /// This DN was taken out of a group (AD incremental member values): it may have left the
    /// scope of `required_group`.
    MemberRemoved { dn: String },
}

/// Changes the feed delivered together, and the cookie to store once they are applied: a
/// restart resumes from the last stored cookie, so a change is applied at least once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedBatch {
    pub changes: Vec<Change>,
    /// The server's opaque state after these changes; None when it sent none with them.
    pub cookie: Option<Vec<u8>>,
}

/// Where a person stands in the directory right now, as a point lookup found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// In scope (matches `user_filter` and `required_group`), with the entry as sync reads it.
    InScope(super::UpstreamUser),
    /// The entry exists but is out of scope (filtered out, or no longer in `required_group`);
    /// carries its stable id.
    OutOfScope { external_id: String },
    /// No entry with that id or DN (deleted, or never there).
    Absent,
}
