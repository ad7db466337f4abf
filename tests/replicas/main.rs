//! Several replicas as processes on one PostgreSQL database: sessions and revocations shared
//! at once, exactly one replica running the scheduled jobs with takeover when it dies,
//! concurrent writers, a database outage, and copying an SQLite install to PostgreSQL.
//! Needs a PostgreSQL server: ACCESSKEYD_TEST_POSTGRES_URL (run by scripts/test.sh).

#[path = "../e2e/harness/mod.rs"]
mod harness;

use diesel::prelude::*;
use harness::daemon::{Auth, Client};
use harness::db::PgDatabase;
use harness::process::{accesskeyd, run_with_stdin, text, Served};
use reqwest::StatusCode;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PASSWORD: &str = "replica test password";

/// One database and one configuration file shared by the replicas of a test.
struct Cluster {
    db: PgDatabase,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Cluster {
    fn new(extra: &str) -> Cluster {
        let db = PgDatabase::create();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("accesskeyd.toml");
        std::fs::write(
            &config,
            format!(
                "[database]\nurl = \"{}\"\nconnect_timeout_seconds = 2\n\n\
                 [sessions]\ncleanup_interval_seconds = 1\n\n\
                 [password_hashing]\nmemory_kib = 256\niterations = 1\n{extra}",
                db.url
            ),
        )
        .unwrap();
        Cluster { db, dir, config }
    }

    fn command(&self) -> std::process::Command {
        let mut c = accesskeyd(self.dir.path());
        c.arg("--config").arg(&self.config);
        c
    }

    fn local_user(&self, name: &str, admin: bool) {
        let mut c = self.command();
        c.args(["local-user", "add", name]);
        if admin {
            c.arg("--admin");
        }
        let o = run_with_stdin(c, &format!("{PASSWORD}\n"));
        assert!(o.status.success(), "{}", text(&o));
    }

    fn replica(&self) -> Served {
        Served::start_with(self.command())
    }

    fn sql(&self) -> PgConnection {
        PgConnection::establish(&self.db.url).unwrap()
    }
}

fn client(r: &Served) -> Client {
    Client {
        base: r.url.clone(),
        http: reqwest::Client::new(),
        auth: Auth::None,
    }
}

/// A client of the replica's management listener (`/metrics`), as Prometheus scrapes it.
fn management(r: &Served) -> Client {
    Client {
        base: r
            .management_url
            .clone()
            .expect("the replica prints its management address"),
        http: reqwest::Client::new(),
        auth: Auth::None,
    }
}

async fn login(r: &Served, user: &str) -> Client {
    let (status, body, token) = client(r).login(user, PASSWORD, Some("builtin")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    client(r).with_token(&token.unwrap())
}

#[derive(QueryableByName, Debug, Clone)]
struct Run {
    #[diesel(sql_type = diesel::sql_types::Text)]
    replica: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    started_at: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    finished_at: i64,
}

fn runs(c: &Cluster) -> Vec<Run> {
    diesel::sql_query(
        "SELECT replica, started_at, finished_at FROM job_runs \
         WHERE job = 'session-cleanup' ORDER BY started_at, id",
    )
    .load(&mut c.sql())
    .unwrap()
}

fn replica_of(r: &Served) -> String {
    format!("-{}", r.child.id())
}

async fn is_leader(r: &Served) -> bool {
    let m = management(r).get("/metrics").await;
    m.body
        .as_str()
        .unwrap()
        .lines()
        .any(|l| l == "accesskeyd_job_leader 1")
}

/// Replicas remember known keys and sessions; a revocation on another replica reaches them
/// through PostgreSQL NOTIFY, promised within a second.
async fn refused_within_a_second(c: &Client) {
    let start = Instant::now();
    loop {
        let status = c.get("/api/users/me").await.status;
        if status == StatusCode::UNAUTHORIZED {
            return;
        }
        // Until the announcement arrives the replica may still accept the credentials (and
        // then not find a user deleted meanwhile); nothing else.
        assert!(
            status == StatusCode::OK || status == StatusCode::NOT_FOUND,
            "{status}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still accepted after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn metric(r: &Served, name: &str) -> Option<f64> {
    let m = management(r).get("/metrics").await;
    m.body
        .as_str()?
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[tokio::test]
async fn revocations_reach_a_replica_whose_listening_connection_was_killed() {
    let c = Cluster::new("");
    c.local_user("bob", false);
    let replicas = [c.replica(), c.replica()];
    let bob = login(&replicas[0], "bob").await;
    let listening = |c: &Cluster| -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'accesskeyd-revocations'",
        )
        .get_result::<N>(&mut c.sql())
        .unwrap()
        .n
    };
    for round in 0..3 {
        // Both replicas hear each other again (after the previous round's kill).
        let deadline = Instant::now() + Duration::from_secs(15);
        while listening(&c) < 2
            || metric(&replicas[1], "accesskeyd_credential_cache_live").await != Some(1.0)
        {
            assert!(Instant::now() < deadline, "the listener never came back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (key, pw, _) = bob.create_key(&format!("etl {round}")).await;
        let on_b = client(&replicas[1]).with_basic(&key, &pw);
        let hits = metric(&replicas[1], "accesskeyd_credential_cache_hits_total")
            .await
            .unwrap_or(0.0);
        for _ in 0..3 {
            assert_eq!(on_b.me().await.status, StatusCode::OK);
        }
        assert!(
            metric(&replicas[1], "accesskeyd_credential_cache_hits_total")
                .await
                .unwrap_or(0.0)
                > hits,
            "B answers the key from memory"
        );
        // The listening connections die (a failover, a proxy, an admin's pg_terminate_backend);
        // right then the key is deleted on A.
        diesel::sql_query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'accesskeyd-revocations'",
        )
        .execute(&mut c.sql())
        .unwrap();
        assert_eq!(
            bob.delete(&format!("/api/accesskeys/{key}")).await.status,
            StatusCode::OK
        );
        refused_within_a_second(&on_b).await;
    }
}

#[tokio::test]
async fn replicas_share_sessions_and_revocations_and_one_leads_the_jobs() {
    let c = Cluster::new("");
    c.local_user("ops", true);
    c.local_user("bob", false);
    let mut replicas = vec![c.replica(), c.replica(), c.replica()];

    // A session issued by one replica works on every other.
    let ops = login(&replicas[0], "ops").await;
    for r in &replicas[1..] {
        let me = client(r).with_token(&ops.token()).me().await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.body["username"], "ops");
    }

    // A key deleted on A is refused by B on the very next request (well within a second).
    let bob = login(&replicas[1], "bob").await;
    let bob_id = bob.me().await.body["id"].as_str().unwrap().to_string();
    let (key, pw, _) = bob.create_key("etl").await;
    let on_c = client(&replicas[2]).with_basic(&key, &pw);
    assert_eq!(on_c.me().await.status, StatusCode::OK);
    let bob_on_a = client(&replicas[0]).with_token(&bob.token());
    assert_eq!(
        bob_on_a
            .delete(&format!("/api/accesskeys/{key}"))
            .await
            .status,
        StatusCode::OK
    );
    refused_within_a_second(&on_c).await;

    // A validity change on A: B refuses at once.
    let (key2, pw2, _) = bob.create_key("etl 2").await;
    let on_b = client(&replicas[1]).with_basic(&key2, &pw2);
    assert_eq!(on_b.me().await.status, StatusCode::OK);
    let a = ops
        .post(
            &format!("/api/users/{bob_id}/update"),
            json!({"accessKeyValidityDuration": 0}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    refused_within_a_second(&on_b).await;

    // A user deleted on A: sessions on C end at once.
    let bob_on_c = client(&replicas[2]).with_token(&bob.token());
    assert_eq!(bob_on_c.me().await.status, StatusCode::OK);
    assert_eq!(
        ops.delete(&format!("/api/users/{bob_id}")).await.status,
        StatusCode::OK
    );
    refused_within_a_second(&bob_on_c).await;

    // Exactly one replica runs the cleanup job.
    let deadline = Instant::now() + Duration::from_secs(15);
    while runs(&c).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the job never ran: {:?}",
            runs(&c)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = runs(&c);
    let leader_name = before[0].replica.clone();
    assert!(
        before.iter().all(|r| r.replica == leader_name),
        "{before:?}"
    );
    let mut leaders = Vec::new();
    for (i, r) in replicas.iter().enumerate() {
        if is_leader(r).await {
            leaders.push(i);
        }
    }
    assert_eq!(leaders.len(), 1, "one leader by metrics");
    let leader = leaders[0];
    assert!(
        leader_name.ends_with(&replica_of(&replicas[leader])),
        "{leader_name}"
    );

    // The leader dies; another replica takes over the job.
    replicas[leader].kill();
    let killed_at = chrono::Utc::now().timestamp_millis();
    let deadline = Instant::now() + Duration::from_secs(15);
    let successor = loop {
        let after: Vec<Run> = runs(&c)
            .into_iter()
            .filter(|r| r.started_at > killed_at)
            .collect();
        if let Some(r) = after.first() {
            break r.replica.clone();
        }
        assert!(Instant::now() < deadline, "no replica took over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_ne!(successor, leader_name);
    replicas.remove(leader);
    let mut leaders = 0;
    for r in &replicas {
        leaders += usize::from(is_leader(r).await);
    }
    assert_eq!(leaders, 1, "one leader among the survivors");

    // Never two runs at once, over the whole history.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = runs(&c);
    assert!(all.len() >= 5, "{all:?}");
    for pair in all.windows(2) {
        assert!(
            pair[1].started_at >= pair[0].finished_at,
            "overlapping runs: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
}

#[tokio::test]
async fn migrations_started_at_once_take_turns() {
    let c = Cluster::new("");
    // Four `migrate` processes on a fresh database at the same moment: the advisory lock lets
    // one create the schema while the others wait, then find nothing to do.
    let children: Vec<_> = (0..4)
        .map(|_| {
            c.command()
                .arg("migrate")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|ch| ch.wait_with_output().unwrap())
        .collect();
    for o in &outputs {
        assert!(o.status.success(), "{}", text(o));
    }
    let applied = outputs
        .iter()
        .filter(|o| text(o).contains("applied"))
        .count();
    let up_to_date = outputs
        .iter()
        .filter(|o| text(o).contains("up to date"))
        .count();
    assert_eq!((applied, up_to_date), (1, 3));
    // And with replicas running, `migrate` is harmless.
    c.local_user("ops", true);
    let r = c.replica();
    let ops = login(&r, "ops").await;
    let o = c.command().arg("migrate").output().unwrap();
    assert!(text(&o).contains("up to date"), "{}", text(&o));
    assert_eq!(ops.me().await.status, StatusCode::OK);
}

#[tokio::test]
async fn concurrent_key_creation_on_two_replicas_respects_the_maximum() {
    let c = Cluster::new("\n[access_keys]\nmax_per_user = 5\n");
    c.local_user("bob", false);
    let replicas = [c.replica(), c.replica()];
    let sessions = [
        login(&replicas[0], "bob").await,
        login(&replicas[1], "bob").await,
    ];
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = sessions[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            s.post("/api/accesskeys", json!({"name": format!("k{i}")}))
                .await
                .status
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 5);
    let list = sessions[0].get("/api/accesskeys").await;
    assert_eq!(list.body["totalResults"], 5);
}

#[tokio::test]
async fn a_database_outage_gives_503_and_the_daemon_recovers_by_itself() {
    let c = Cluster::new("");
    c.local_user("ops", true);
    let mut r = c.replica();
    let ops = login(&r, "ops").await;
    let (key, pw, _) = ops.create_key("poller").await;
    let basic = client(&r).with_basic(&key, &pw);

    // Traffic while PostgreSQL drops the daemon's connections, then refuses new ones.
    let traffic = {
        let (ops, basic) = (ops.clone(), basic.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let end = Instant::now() + Duration::from_secs(6);
            while Instant::now() < end {
                seen.push(ops.me().await.status);
                seen.push(basic.me().await.status);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };
    let terminate = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
        c.db.name
    );
    for _ in 0..3 {
        c.db.admin_sql(&terminate);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    c.db.admin_sql(&format!(
        "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false",
        c.db.name
    ));
    c.db.admin_sql(&terminate);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = client(&r).get("/readyz").await;
        if ready.status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(Instant::now() < deadline, "readiness never went false");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = ops.me().await;
    assert_eq!(
        during.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        during.body
    );
    assert!(during.body["statusMessage"]
        .as_str()
        .unwrap()
        .contains("database"));

    // The database comes back: the daemon recovers without a restart.
    c.db.admin_sql(&format!(
        "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true",
        c.db.name
    ));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if client(&r).get("/readyz").await.status == StatusCode::OK
            && ops.me().await.status == StatusCode::OK
        {
            break;
        }
        assert!(Instant::now() < deadline, "the daemon did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(basic.me().await.status, StatusCode::OK);
    let seen = traffic.await.unwrap();
    assert!(
        seen.iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::SERVICE_UNAVAILABLE),
        "only 200 or 503 during the outage: {seen:?}"
    );
    assert!(
        seen.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "the outage was not seen"
    );
    assert!(r.is_running(), "the daemon survived");
}

#[tokio::test]
async fn an_sqlite_install_moves_to_postgres_and_its_keys_keep_working() {
    // A single-machine install on SQLite with a user, a key and some history.
    let dir = tempfile::tempdir().unwrap();
    let sqlite_config = dir.path().join("sqlite.toml");
    let sqlite_url = format!("sqlite://{}/accesskeyd.db", dir.path().display());
    std::fs::write(
        &sqlite_config,
        format!("[database]\nurl = \"{sqlite_url}\"\n[password_hashing]\nmemory_kib = 256\niterations = 1\n"),
    )
    .unwrap();
    let cmd = || {
        let mut c = accesskeyd(dir.path());
        c.arg("--config").arg(&sqlite_config);
        c
    };
    let mut add = cmd();
    add.args(["local-user", "add", "ops", "--admin"]);
    assert!(run_with_stdin(add, &format!("{PASSWORD}\n"))
        .status
        .success());
    let mut single = Served::start_with(cmd());
    let ops = login(&single, "ops").await;
    let (key, pw, _) = ops.create_key("report").await;
    let audit_before = ops.get("/api/audit").await.body["totalResults"]
        .as_i64()
        .unwrap();
    single.stop();

    // Copy it to a new PostgreSQL database.
    let c = Cluster::new("");
    let o = accesskeyd(dir.path())
        .args(["migrate-data", "--from", &sqlite_url, "--to", &c.db.url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("copied and verified: 1 user(s), 1 access key(s)"),
        "{}",
        text(&o)
    );
    // A second copy into the now non-empty database is refused and changes nothing.
    let o = accesskeyd(dir.path())
        .args(["migrate-data", "--from", &sqlite_url, "--to", &c.db.url])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("not empty"), "{}", text(&o));

    // The replica on PostgreSQL accepts the old key and password.
    let r = c.replica();
    let me = client(&r).with_basic(&key, &pw).me().await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["username"], "ops");
    let ops = login(&r, "ops").await;
    let audit = ops.get("/api/audit").await.body["totalResults"]
        .as_i64()
        .unwrap();
    assert!(
        audit > audit_before,
        "history kept and new events appended: {audit} vs {audit_before}"
    );
    // New audit ids continue after the copied ones.
    let (k2, _, _) = ops.create_key("after the move").await;
    let last = ops.get("/api/audit?action=access_key.create&limit=1").await;
    assert_eq!(last.body["events"][0]["targetId"], k2.as_str());
}

#[derive(QueryableByName, Debug)]
struct FeedRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    replica: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    connected_at: Option<i64>,
}

fn feed_row(c: &Cluster) -> Option<FeedRow> {
    diesel::sql_query("SELECT replica, connected_at FROM change_feeds WHERE directory_id = 'corp'")
        .load::<FeedRow>(&mut c.sql())
        .unwrap()
        .pop()
}

/// Waits until a replica whose name ends with `suffix` follows the feed.
async fn feed_followed_by(c: &Cluster, suffix: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(FeedRow {
            replica: Some(r),
            connected_at: Some(_),
        }) = feed_row(c)
        {
            if r.ends_with(suffix) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no feed on replica *{suffix}: {:?}",
            feed_row(c)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn only_the_leader_follows_a_change_feed_and_a_successor_resumes_it() {
    let slapd = harness::slapd::Slapd::start().await;
    let c = Cluster::new(&format!(
        r#"
[[directories]]
id = "builtin"
kind = "builtin"

[[directories]]
id = "corp"
kind = "ldap"
url = "{}"
bind_dn = "{}"
bind_password = "{}"
user_base = "{}"
user_filter = "(objectClass=inetOrgPerson)"
timeout_seconds = 3
change_feed = true
"#,
        slapd.url(),
        slapd.service_dn(),
        slapd.service_password(),
        slapd.user_base(),
    ));
    let mut replicas = vec![c.replica(), c.replica()];
    let mut leader = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while leader.is_none() {
        for (i, r) in replicas.iter().enumerate() {
            if is_leader(r).await {
                leader = Some(i);
            }
        }
        assert!(Instant::now() < deadline, "nobody leads");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let leader = leader.unwrap();
    let other = 1 - leader;
    feed_followed_by(&c, &replica_of(&replicas[leader])).await;

    // Bob's and carol's keys, made through the replica that does not lead.
    let keys = |user: &'static str, pw: &'static str| {
        let r = &replicas[other];
        async move {
            let (status, body, token) = client(r).login(user, pw, Some("corp")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            client(r)
                .with_token(&token.unwrap())
                .create_key("etl")
                .await
        }
    };
    let (bob_key, bob_pw, _) = keys("bob", "bob-pw").await;
    let (carol_key, carol_pw, _) = keys("carol", "carol-pw").await;

    // A deletion reaches the leader's feed; the other replica refuses the key too.
    slapd.delete_user("bob").await;
    refused_within(
        &client(&replicas[other]).with_basic(&bob_key, &bob_pw),
        Duration::from_secs(5),
    )
    .await;
    let changes = "accesskeyd_feed_changes_total{directory=\"corp\"}";
    assert!(metric(&replicas[leader], changes).await.unwrap_or(0.0) >= 1.0);
    assert_eq!(
        metric(&replicas[other], changes).await.unwrap_or(0.0),
        0.0,
        "the replica that does not lead follows no feed"
    );

    // The leader dies: the survivor takes the lead and resumes the feed from its cookie.
    replicas[leader].kill();
    let survivor = replicas.remove(other);
    feed_followed_by(&c, &replica_of(&survivor)).await;
    slapd.delete_user("carol").await;
    refused_within(
        &client(&survivor).with_basic(&carol_key, &carol_pw),
        Duration::from_secs(5),
    )
    .await;
}

/// Waits until the client's key is refused, at most `limit`.
async fn refused_within(c: &Client, limit: Duration) {
    let start = Instant::now();
    loop {
        let status = c.get("/api/users/me").await.status;
        if status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            start.elapsed() < limit,
            "still accepted after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
