//! The OpenLDAP change feed (RFC 4533 syncrepl, refreshAndPersist) at the directory level,
//! against the suite's slapd with the syncprov overlay: who arrives, how fast, from which
//! cookie, and how the feed ends when slapd goes away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::harness::slapd::Slapd;
use accesskeyd::config::{ChangeFeed, LdapDirectoryConfig, SyncPolicy};
use accesskeyd::directory::ldap::feed::{Change, FeedBatch};
use accesskeyd::directory::ldap::LdapDirectory;
use accesskeyd::directory::DirectoryError;
use accesskeyd::secret::Secret;

/// The promise of issue 16: a person deleted upstream is known within this.
const PROMPT: Duration = Duration::from_secs(5);
/// How long nothing more must arrive before a test believes nothing more is coming.
const QUIET: Duration = Duration::from_millis(1500);

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
        admin_group: None,
        // Also how often the feed asks a quiet server whether it is still there.
        timeout_seconds: 2,
        active_directory: false,
        required_group: Some(slapd.users_group_dn().into()),
        last_login_attribute: None,
        domain_controllers: None,
        page_size: 500,
        sync: SyncPolicy::default(),
        create_users_from_events: false,
        change_feed: Some(ChangeFeed {
            poll: Duration::from_secs(2),
            window: chrono::Duration::minutes(60),
        }),
        windows_domains: Vec::new(),
    }
}

fn directory(slapd: &Slapd) -> Arc<LdapDirectory> {
    Arc::new(LdapDirectory::new(config(slapd)).expect("valid config"))
}

/// entryUUIDs by username, as the scheduled sync reads them.
async fn ids(dir: &LdapDirectory) -> HashMap<String, String> {
    let mut ids = HashMap::new();
    dir.read_users(|u| {
        ids.insert(u.username, u.external_id);
    })
    .await
    .expect("read users");
    ids
}

fn entry(external_id: &str, deleted: bool) -> Change {
    Change::Entry {
        external_id: external_id.into(),
        deleted,
    }
}

/// The feed's log lines on the test's output (shown when a test fails), while this lives;
/// `#[tokio::test]` runs the feed's task on the test's thread.
fn show_log() -> tracing::subscriber::DefaultGuard {
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("accesskeyd=debug")
        .with_test_writer()
        .finish();
    tracing::subscriber::set_default(subscriber)
}

/// What a batch holds, for the test's output.
fn describe(batch: &FeedBatch) -> String {
    let cookie = batch.cookie.as_deref().map(String::from_utf8_lossy);
    format!("{:?} cookie {cookie:?}", batch.changes)
}

/// A running `syncrepl` and the receiving end of its channel; the task is aborted on drop,
/// also when a test fails.
struct Feed {
    rx: Option<mpsc::Receiver<FeedBatch>>,
    task: Option<JoinHandle<Result<(), DirectoryError>>>,
    /// The last cookie received.
    cookie: Option<Vec<u8>>,
}

impl Feed {
    fn open(dir: &Arc<LdapDirectory>, cookie: Option<Vec<u8>>) -> Feed {
        // Small, so that a consumer that stops reading holds the server back.
        let (tx, rx) = mpsc::channel(4);
        let dir = dir.clone();
        let start = cookie.clone();
        let task = tokio::spawn(async move { dir.syncrepl(start, tx).await });
        Feed {
            rx: Some(rx),
            task: Some(task),
            cookie,
        }
    }

    /// The next batch within `within`; None when the feed ended.
    async fn next(&mut self, within: Duration) -> Option<FeedBatch> {
        let rx = self.rx.as_mut().expect("receiving");
        let batch = tokio::time::timeout(within, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no batch within {within:?}"))?;
        eprintln!("batch: {}", describe(&batch));
        if let Some(cookie) = &batch.cookie {
            self.cookie = Some(cookie.clone());
        }
        Some(batch)
    }

    /// Every change up to the first batch without changes: the end of the refresh.
    async fn refresh(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        loop {
            let batch = self.next(PROMPT).await.expect("the feed runs");
            if batch.changes.is_empty() {
                return changes;
            }
            changes.extend(batch.changes);
        }
    }

    /// Every change until `wanted` is among them (within `within`), and then whatever else
    /// arrives before the feed has been quiet for `QUIET`.
    async fn until(&mut self, wanted: &Change, within: Duration) -> Vec<Change> {
        let deadline = Instant::now() + within;
        let mut changes = Vec::new();
        while !changes.contains(wanted) {
            let left = deadline.saturating_duration_since(Instant::now());
            let batch = tokio::time::timeout(left, self.next(within))
                .await
                .unwrap_or_else(|_| {
                    panic!("{wanted:?} did not arrive within {within:?}; got {changes:?}")
                })
                .expect("the feed runs");
            changes.extend(batch.changes);
        }
        changes.extend(self.quiet().await);
        changes
    }

    /// The changes that arrive before the feed has been quiet for `QUIET`.
    async fn quiet(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        let rx = self.rx.as_mut().expect("receiving");
        while let Ok(Some(batch)) = tokio::time::timeout(QUIET, rx.recv()).await {
            eprintln!("batch: {}", describe(&batch));
            if let Some(cookie) = &batch.cookie {
                self.cookie = Some(cookie.clone());
            }
            changes.extend(batch.changes);
        }
        changes
    }

    /// How `syncrepl` ended, within `within`, while the receiver is still there.
    async fn ended(&mut self, within: Duration) -> Result<(), DirectoryError> {
        let task = self.task.as_mut().expect("running");
        let result = tokio::time::timeout(within, task)
            .await
            .unwrap_or_else(|_| panic!("syncrepl did not return within {within:?}"))
            .expect("syncrepl task");
        self.task = None;
        result
    }

    /// Drops the receiver: syncrepl must then return Ok soon. Returns the last cookie.
    async fn stop(mut self) -> Vec<u8> {
        self.rx = None;
        let result = self.ended(PROMPT).await;
        assert!(
            result.is_ok(),
            "a feed nobody listens to ends with Ok: {result:?}"
        );
        self.cookie.take().expect("a cookie arrived")
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[tokio::test]
async fn the_first_refresh_names_everyone_in_scope_by_the_ids_sync_reads() {
    let _log = show_log();
    let slapd = Slapd::start().await;
    // dave is a person, but not in the required group: out of the feed's scope.
    slapd.add_user("dave", "dave-pw").await;
    let dir = directory(&slapd);
    let ids = ids(&dir).await;
    eprintln!("ids: {ids:?}");
    assert_eq!(ids.len(), 3, "{ids:?}");

    let mut feed = Feed::open(&dir, None);
    let mut changes = feed.refresh().await;
    let mut expected: Vec<Change> = ids.values().map(|id| entry(id, false)).collect();
    changes.sort_by_key(|c| format!("{c:?}"));
    expected.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(changes, expected);
    assert!(feed.cookie.is_some(), "the refresh ends with a cookie");
    // Nothing else while nothing happens.
    assert_eq!(feed.quiet().await, vec![]);
    feed.stop().await;
}

#[tokio::test]
async fn a_person_deleted_in_slapd_arrives_as_deleted_within_5_seconds() {
    let _log = show_log();
    let slapd = Slapd::start().await;
    let dir = directory(&slapd);
    let ids = ids(&dir).await;
    eprintln!("ids: {ids:?}");
    let mut feed = Feed::open(&dir, None);
    feed.refresh().await;
    let before = feed.cookie.clone();

    let started = Instant::now();
    slapd.delete_user("bob").await;
    let bob_gone = entry(&ids["bob"], true);
    let changes = feed.until(&bob_gone, PROMPT).await;
    eprintln!("bob's deletion arrived after {:?}", started.elapsed());
    // memberof's referential integrity also takes him out of the users group, with an
    // internal write syncprov does not replicate: the deletion is all there is.
    assert_eq!(about(&ids, changes), vec![bob_gone], "only bob, once");
    assert_ne!(feed.cookie, before, "the deletion came with a new cookie");
    feed.stop().await;
}

#[tokio::test]
async fn a_person_taken_out_of_the_required_group_leaves_and_comes_back() {
    let _log = show_log();
    let slapd = Slapd::start().await;
    slapd.add_user("dave", "dave-pw").await;
    let dir = directory(&slapd);
    let ids = ids(&dir).await;
    eprintln!("ids: {ids:?}");
    let mut feed = Feed::open(&dir, None);
    feed.refresh().await;

    // The memberof overlay does not replicate the memberOf it rewrites, so the users search
    // never hears of it; the group's own member values say who left.
    slapd
        .remove_from_group(slapd.users_group_dn(), "carol")
        .await;
    let carol_dn = format!("uid=carol,{}", slapd.user_base());
    let carol_left = Change::MemberRemoved { dn: carol_dn };
    assert_eq!(feed.until(&carol_left, PROMPT).await, vec![carol_left]);

    // Back in the group: named again, as joining.
    slapd.add_to_group(slapd.users_group_dn(), "carol").await;
    let carol_back = Change::MemberAdded {
        dn: format!("uid=carol,{}", slapd.user_base()),
    };
    assert_eq!(feed.until(&carol_back, PROMPT).await, vec![carol_back]);

    // A change to someone in scope is news; to someone out of scope, nothing.
    slapd
        .replace_attribute("alice", "mail", "alice@elsewhere.example")
        .await;
    let alice_changed = entry(&ids["alice"], false);
    assert_eq!(
        feed.until(&alice_changed, PROMPT).await,
        vec![alice_changed]
    );
    slapd
        .replace_attribute("dave", "mail", "dave@elsewhere.example")
        .await;
    assert_eq!(feed.quiet().await, vec![]);

    // Someone joining the group for the first time is named the same way.
    slapd.add_to_group(slapd.users_group_dn(), "dave").await;
    let dave_joined = Change::MemberAdded {
        dn: format!("uid=dave,{}", slapd.user_base()),
    };
    assert_eq!(feed.until(&dave_joined, PROMPT).await, vec![dave_joined]);

    // Deleting a member: the users search reports the deletion (memberof's referential
    // integrity takes them out of the group with a write syncprov does not replicate).
    slapd.delete_user("bob").await;
    let bob_gone = entry(&ids["bob"], true);
    assert_eq!(
        about(&ids, feed.until(&bob_gone, PROMPT).await),
        vec![bob_gone]
    );
    feed.stop().await;
}

/// The changes about the people in `ids` (by entryUUID), sorted; the session log replays
/// deletes for entries that were never in scope too (groups, the suffix), which name nobody.
fn about(ids: &HashMap<String, String>, changes: Vec<Change>) -> Vec<Change> {
    let mut known: Vec<Change> = changes
        .into_iter()
        .filter(|c| match c {
            Change::Entry { external_id, .. } => ids.values().any(|id| id == external_id),
            Change::MemberRemoved { .. } | Change::MemberAdded { .. } => true,
        })
        .collect();
    known.sort_by_key(|c| format!("{c:?}"));
    known
}

#[tokio::test]
async fn a_feed_started_again_from_its_cookie_gets_what_it_missed_and_nothing_else() {
    let _log = show_log();
    let slapd = Slapd::start().await;
    slapd.add_user("erin", "erin-pw").await;
    slapd.add_to_group(slapd.users_group_dn(), "erin").await;
    let dir = directory(&slapd);
    let ids = ids(&dir).await;
    eprintln!("ids: {ids:?}");
    let mut feed = Feed::open(&dir, None);
    assert_eq!(feed.refresh().await.len(), 4);
    let cookie = feed.stop().await;

    // While nobody follows: bob deleted, erin's mail changed.
    slapd.delete_user("bob").await;
    slapd
        .replace_attribute("erin", "mail", "erin@elsewhere.example")
        .await;

    let mut feed = Feed::open(&dir, Some(cookie.clone()));
    let bob_gone = entry(&ids["bob"], true);
    let erin_changed = entry(&ids["erin"], false);
    let mut changes = feed.until(&bob_gone, PROMPT).await;
    if !changes.contains(&erin_changed) {
        changes.extend(feed.until(&erin_changed, PROMPT).await);
    }
    // alice and carol did not change: they are not news.
    let mut expected = vec![bob_gone, erin_changed];
    expected.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(about(&ids, changes), expected);
    assert_ne!(feed.cookie.as_ref(), Some(&cookie), "the cookie moved on");

    // And it follows on from there.
    slapd.delete_user("alice").await;
    let alice_gone = entry(&ids["alice"], true);
    let changes = feed.until(&alice_gone, PROMPT).await;
    assert_eq!(about(&ids, changes), vec![alice_gone]);
    feed.stop().await;
}

#[tokio::test]
async fn slapd_killed_mid_feed_ends_it_with_an_error_and_it_resumes_from_its_cookie() {
    let _log = show_log();
    let mut slapd = Slapd::start().await;
    let dir = directory(&slapd);
    let ids = ids(&dir).await;
    eprintln!("ids: {ids:?}");
    let mut feed = Feed::open(&dir, None);
    feed.refresh().await;
    let cookie = feed.cookie.clone().expect("cookie");

    let started = Instant::now();
    slapd.killer()();
    let result = feed.ended(PROMPT).await;
    eprintln!(
        "feed ended {:?} after the kill: {result:?}",
        started.elapsed()
    );
    assert!(
        matches!(&result, Err(DirectoryError::Unavailable(_))),
        "{result:?}"
    );
    // Nothing was reported on the way down: a dropped feed never looks like deletions.
    assert_eq!(feed.quiet().await, vec![]);
    drop(feed);

    // While slapd is down the feed cannot start.
    let mut down = Feed::open(&dir, Some(cookie.clone()));
    let result = down.ended(PROMPT).await;
    assert!(
        matches!(&result, Err(DirectoryError::Unavailable(_))),
        "{result:?}"
    );

    slapd.restart().await;
    let mut feed = Feed::open(&dir, Some(cookie));
    // Nothing happened to anyone in between: nobody is news.
    assert_eq!(about(&ids, feed.quiet().await), vec![]);
    slapd.delete_user("carol").await;
    let carol_gone = entry(&ids["carol"], true);
    let changes = feed.until(&carol_gone, PROMPT).await;
    assert_eq!(about(&ids, changes), vec![carol_gone]);
    feed.stop().await;
}

#[tokio::test]
async fn a_frozen_slapd_is_noticed_although_the_connection_stays_open() {
    let _log = show_log();
    let slapd = Slapd::start().await;
    let dir = directory(&slapd);
    let mut feed = Feed::open(&dir, None);
    feed.refresh().await;

    let started = Instant::now();
    slapd.signaller("STOP")();
    // A WhoAmI every timeout_seconds (2 s), each given 2 s to answer.
    let result = feed.ended(Duration::from_secs(10)).await;
    eprintln!(
        "feed ended {:?} after SIGSTOP: {result:?}",
        started.elapsed()
    );
    let Err(DirectoryError::Unavailable(msg)) = &result else {
        panic!("{result:?}");
    };
    assert!(msg.contains("liveness"), "{msg}");
    slapd.signaller("CONT")();
}

#[tokio::test]
async fn a_cookie_ahead_of_the_server_means_start_over_without_one() {
    let _log = show_log();
    let slapd = Slapd::start().await;
    let dir = directory(&slapd);
    let mut feed = Feed::open(&dir, None);
    feed.refresh().await;
    let cookie = String::from_utf8(feed.stop().await).expect("OpenLDAP cookies are text");
    eprintln!("cookie: {cookie}");

    // As if the server had been restored from a backup older than the cookie.
    let ahead = cookie_from_the_future(&cookie);
    let mut feed = Feed::open(&dir, Some(ahead.into_bytes()));
    let result = feed.ended(PROMPT).await;
    assert!(
        matches!(&result, Err(DirectoryError::FeedReset(_))),
        "{result:?}"
    );
    drop(feed);

    // Without a cookie it works again, from the start.
    let mut feed = Feed::open(&dir, None);
    assert_eq!(feed.refresh().await.len(), 3);
    feed.stop().await;
}

/// `cookie` with the year of every CSN (`csn=YYYY...`) moved to 2999.
fn cookie_from_the_future(cookie: &str) -> String {
    let mut out = String::new();
    let mut rest = cookie;
    while let Some(at) = rest.find("csn=") {
        let (head, tail) = rest.split_at(at + 4);
        out.push_str(head);
        out.push_str("2999");
        rest = tail.get(4..).unwrap_or("");
    }
    out.push_str(rest);
    assert_ne!(out, cookie, "the cookie has a csn: {cookie}");
    out
}

#[tokio::test]
async fn a_feed_resumed_when_nothing_changed_says_so_at_once() {
    let _log = show_log();
    let slapd = Slapd::start().await;
    let dir = directory(&slapd);
    let ids = ids(&dir).await;
    let mut feed = Feed::open(&dir, None);
    feed.refresh().await;
    let cookie = feed.stop().await;

    let mut feed = Feed::open(&dir, Some(cookie));
    // The end of the refresh comes at once. The only write since the cookie was lastbind's
    // authTimestamp on the service account's bind: out of scope, so replayed as a delete of
    // an id that names nobody.
    let mut changes = feed.refresh().await;
    changes.extend(feed.quiet().await);
    assert_eq!(about(&ids, changes), vec![], "nobody is news");
    feed.stop().await;
}

#[tokio::test]
async fn a_consumer_that_goes_away_stops_the_feed_even_while_nothing_happens() {
    let _log = show_log();
    let slapd = Slapd::start().await;
    let dir = directory(&slapd);
    let mut feed = Feed::open(&dir, None);
    feed.refresh().await;
    let started = Instant::now();
    // At once, not whenever the server next has something to say.
    feed.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn active_directory_or_another_id_attribute_cannot_have_this_feed() {
    let _log = show_log();
    let slapd = Slapd::start().await;
    for change in [
        (|c: &mut LdapDirectoryConfig| c.active_directory = true) as fn(&mut LdapDirectoryConfig),
        |c| c.id_attribute = "uid".into(),
    ] {
        let mut cfg = config(&slapd);
        change(&mut cfg);
        let dir = Arc::new(LdapDirectory::new(cfg).expect("valid config"));
        let mut feed = Feed::open(&dir, None);
        let result = feed.ended(PROMPT).await;
        assert!(
            matches!(&result, Err(DirectoryError::Misconfigured(_))),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn a_server_without_syncprov_refuses_the_feed_and_says_what_is_missing() {
    let _log = show_log();
    let slapd = Slapd::start_without_syncprov().await;
    let dir = directory(&slapd);
    let mut feed = Feed::open(&dir, None);
    // The Sync Request is critical: no plain search passing for a feed.
    let result = feed.ended(PROMPT).await;
    let Err(DirectoryError::Unavailable(msg)) = &result else {
        panic!("{result:?}");
    };
    assert!(msg.contains("syncprov"), "{msg}");
    assert_eq!(feed.quiet().await, vec![]);
}
