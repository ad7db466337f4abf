//! The `accesskeyd` binary as an operator uses it: first start, local users, migrate,
//! check-config, configuration errors, help.

use crate::harness::daemon::config_toml;
use crate::harness::db::TestDatabase;
use crate::harness::process::{accesskeyd, run_with_stdin, text, Served};
use crate::harness::slapd::Slapd;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn the_readme_story_first_start_admin_key_and_curl_style_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = Served::start(dir.path());
    let banner = served.lines.join("\n");
    assert!(
        banner.contains("created the built-in admin user `admin`"),
        "{banner}"
    );
    // Started as a service would be (stdout is a pipe, kept by a log), the password goes
    // to a file only its owner reads, and the output names the file instead.
    let file = dir.path().join("initial-admin-password");
    assert!(banner.contains(&file.display().to_string()), "{banner}");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(password.len() >= 20, "{password:?}");
    assert!(
        !banner.contains(&password),
        "the password is in the output: {banner}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    assert!(
        dir.path().join("accesskeyd.db").exists(),
        "SQLite file in the working directory"
    );

    let http = reqwest::Client::new();
    let login = http
        .post(format!("{}/api/auth/login", served.url))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let token = login.headers()["x-sq-auth"].to_str().unwrap().to_string();
    let key: serde_json::Value = http
        .post(format!("{}/api/accesskeys", served.url))
        .header("x-sq-auth", &token)
        .json(&json!({"name": "curl"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let me = http
        .get(format!("{}/api/users/me", served.url))
        .basic_auth(key["keyId"].as_str().unwrap(), key["password"].as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["username"], "admin");
    assert_eq!(me["isAdmin"], true);
    served.stop();

    // The second start finds an admin and prints no password.
    let served = Served::start(dir.path());
    assert!(
        !served.lines.join("\n").contains("password"),
        "{:?}",
        served.lines
    );
}

#[tokio::test]
async fn local_users_are_created_with_passwords_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let add = |args: &[&str], stdin: &str| {
        let mut c = accesskeyd(dir.path());
        c.args(args);
        run_with_stdin(c, stdin)
    };
    let o = add(
        &["local-user", "add", "ops", "--admin"],
        "ops password 123\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("created built-in admin `ops`"));
    assert!(
        !text(&o).contains("ops password 123"),
        "the password was echoed"
    );
    let o = add(&["local-user", "add", "ops"], "another password\n");
    assert!(!o.status.success());
    assert!(text(&o).contains("already exists"), "{}", text(&o));
    let o = add(&["local-user", "add", "short"], "short\n");
    assert!(!o.status.success());
    assert!(text(&o).contains("at least 12"), "{}", text(&o));
    let o = add(&["local-user", "add", "empty"], "");
    assert!(!o.status.success());
    assert!(text(&o).contains("no password"), "{}", text(&o));
    let o = add(&["local-user", "passwd", "nobody"], "some new password\n");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("no built-in user named `nobody`"),
        "{}",
        text(&o)
    );
    let o = add(&["local-user", "passwd", "ops"], "the new ops password\n");
    assert!(o.status.success(), "{}", text(&o));

    // An admin exists, so serve creates none, and ops logs in with the new password.
    let served = Served::start(dir.path());
    assert!(!served
        .lines
        .join("\n")
        .contains("created the built-in admin"));
    let http = reqwest::Client::new();
    for (pw, status) in [
        ("ops password 123", StatusCode::UNAUTHORIZED),
        ("the new ops password", StatusCode::OK),
    ] {
        let r = http
            .post(format!("{}/api/auth/login", served.url))
            .json(&json!({"username": "ops", "password": pw, "authProviderId": "builtin"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{pw}");
    }
}

#[tokio::test]
async fn migrate_check_config_and_configuration_errors() {
    let slapd = Slapd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("accesskeyd.toml");
    let db = TestDatabase::new(dir.path());
    std::fs::write(&cfg, config_toml(db.url(), Some(&slapd), "")).unwrap();
    let cfg_arg = cfg.to_str().unwrap();

    // Before the first start: fine, with a note that `serve` or `migrate` will migrate.
    // The file is named by ACCESSKEYD_CONFIG here, which is not read as a configuration key.
    let o = accesskeyd(dir.path())
        .arg("check-config")
        .env("ACCESSKEYD_CONFIG", cfg_arg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("migrations pending"), "{}", text(&o));

    let o = accesskeyd(dir.path())
        .args(["--config", cfg_arg, "migrate"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("applied"), "{}", text(&o));
    let o = accesskeyd(dir.path())
        .args(["migrate", "--config", cfg_arg])
        .output()
        .unwrap();
    assert!(text(&o).contains("up to date"), "{}", text(&o));

    let o = accesskeyd(dir.path())
        .args(["--config", cfg_arg, "check-config"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("directory corp (ldap"), "{}", text(&o));
    assert!(text(&o).contains("all checks passed"));

    // A wrong service password is reported with the directory's name, not the password.
    let o = accesskeyd(dir.path())
        .args(["--config", cfg_arg, "check-config"])
        .env("ACCESSKEYD_DIRECTORIES__1__BIND_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("directory corp"), "{}", text(&o));
    assert!(
        !text(&o).contains("wrong"),
        "the password is printed: {}",
        text(&o)
    );

    // A CA file that holds no certificate is a configuration error (exit 2), named.
    let o = accesskeyd(dir.path())
        .args(["--config", cfg_arg, "migrate"])
        .env("ACCESSKEYD_DIRECTORIES__1__CA_FILE", cfg_arg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("corp"), "{}", text(&o));

    // Unknown keys are errors that name the key, from the file and from the environment.
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n").unwrap();
    let o = accesskeyd(dir.path())
        .args(["--config", cfg_arg, "check-config"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("lisen"), "{}", text(&o));
    let o = accesskeyd(dir.path())
        .arg("check-config")
        .env("ACCESSKEYD_SERVER__LISTN", "x")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("listn"), "{}", text(&o));
    let o = accesskeyd(dir.path())
        .args(["--config", "/nonexistent.toml", "serve"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("/nonexistent.toml"));

    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["local-user", "add", "--help"],
        vec!["check-config", "--help"],
    ] {
        let o = accesskeyd(dir.path()).args(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}");
        assert!(text(&o).contains("Usage"), "{args:?}");
    }
    let o = accesskeyd(dir.path())
        .args(["local-user", "add", "--help"])
        .output()
        .unwrap();
    assert!(text(&o).contains("standard input"));
}

#[tokio::test]
async fn sync_from_the_command_line_dry_run_block_and_approve() {
    use crate::harness::daemon::{Daemon, LDAP_DIR};
    let slapd = Slapd::start().await;
    let d = Daemon::start(Some(&slapd)).await;
    d.login("bob", "bob-pw", Some(LDAP_DIR)).await;
    d.login("carol", "carol-pw", Some(LDAP_DIR)).await;
    slapd.delete_user("carol").await;
    let cfg = d.dir.path().join("cli.toml");
    std::fs::write(&cfg, config_toml(d.db.url(), Some(&slapd), "")).unwrap();
    let sync = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = accesskeyd(d.dir.path());
        c.arg("--config").arg(&cfg).arg("sync").args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };

    let o = sync(&[LDAP_DIR, "--dry-run"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains(&format!("reading directory `{LDAP_DIR}`")),
        "{out}"
    );
    assert!(
        out.contains("dry-run") && out.contains("would remove carol"),
        "{out}"
    );

    let strict = [("ACCESSKEYD_DIRECTORIES__1__DELETION_THRESHOLD", "0")];
    let o = sync(&[LDAP_DIR], &strict);
    assert_eq!(o.status.code(), Some(3), "blocked: {}", text(&o));
    let out = text(&o);
    let run: String = out
        .split_whitespace()
        .skip_while(|w| *w != "Approve")
        .nth(2)
        .unwrap()
        .to_string();
    assert!(out.contains("would remove carol"), "{out}");

    let o = sync(&[LDAP_DIR, "--approve-run", &run], &strict);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("removed carol"), "{}", text(&o));

    let o = sync(&["builtin"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("not an LDAP directory"), "{}", text(&o));
    drop(slapd);
    let o = sync(&[LDAP_DIR], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("nobody was removed"), "{}", text(&o));
}

#[tokio::test]
async fn scim_tokens_are_created_listed_and_revoked_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("accesskeyd.toml");
    let db = TestDatabase::new(dir.path());
    let extra = "\n[[directories]]\nid = \"idp\"\nkind = \"oidc\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"x\"\n";
    std::fs::write(&cfg, config_toml(db.url(), None, extra)).unwrap();
    let run = |args: &[&str]| {
        accesskeyd(dir.path())
            .arg("--config")
            .arg(&cfg)
            .arg("scim-token")
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["create", "idp", "--label", "Entra ID"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    let token = out
        .split_whitespace()
        .find(|w| w.starts_with("akscim_"))
        .expect("the token is printed once");
    assert!(out.contains("/scim/v2"), "{out}");
    let o = run(&["list"]);
    let listed = text(&o);
    assert!(
        listed.contains("Entra ID") && listed.contains("never"),
        "{listed}"
    );
    assert!(!listed.contains(token), "list never shows the token");
    let id = listed.split_whitespace().next().unwrap().to_string();
    let o = run(&["revoke", &id]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&run(&["list"])).contains("Entra ID"));
    let o = run(&["create", "builtin"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("not an OpenID Connect directory"),
        "{}",
        text(&o)
    );
}

#[tokio::test]
async fn service_accounts_are_managed_from_the_command_line() {
    let slapd = Slapd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("accesskeyd.toml");
    let db = TestDatabase::new(dir.path());
    std::fs::write(&cfg, config_toml(db.url(), Some(&slapd), "")).unwrap();
    let run = |args: &[&str]| {
        accesskeyd(dir.path())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };
    let with_stdin = |args: &[&str], input: &str| {
        let mut cmd = accesskeyd(dir.path());
        cmd.arg("--config").arg(&cfg).args(args);
        run_with_stdin(cmd, input)
    };
    // Managers are people with a record: a built-in user here.
    let o = with_stdin(&["local-user", "add", "carl"], "carl-password-123\n");
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&[
        "service-account",
        "create",
        "--name",
        "Nightly ETL",
        "--manager",
        "builtin:nobody",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("manager: no user"), "{}", text(&o));
    let o = run(&[
        "service-account",
        "create",
        "--name",
        "Nightly ETL",
        "--manager",
        "builtin:carl",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("nightly-etl") && text(&o).contains("manager carl"),
        "{}",
        text(&o)
    );
    let listed = text(&run(&["service-account", "list"]));
    let id = listed.split_whitespace().next().unwrap().to_string();
    assert!(listed.contains("nightly-etl"), "{listed}");

    // No password can be set for it.
    let o = with_stdin(
        &["local-user", "passwd", "nightly-etl"],
        "some-password-123\n",
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("service account"), "{}", text(&o));

    let o = run(&[
        "service-account",
        "reassign",
        &id,
        "--manager",
        "builtin:admin",
    ]);
    assert!(
        !o.status.success(),
        "there is no user admin yet: {}",
        text(&o)
    );
    let o = run(&["service-account", "delete", &id]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&run(&["service-account", "list"])).contains("nightly-etl"));
}

#[tokio::test]
async fn event_tokens_are_made_for_named_directories_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("accesskeyd.toml");
    let db = TestDatabase::new(dir.path());
    std::fs::write(&cfg, config_toml(db.url(), None, "")).unwrap();
    let run = |args: &[&str]| {
        accesskeyd(dir.path())
            .arg("--config")
            .arg(&cfg)
            .arg("event-token")
            .args(args)
            .output()
            .unwrap()
    };
    // A token names the directories whose logins it reports.
    let o = run(&["create", "--label", "intranet portal"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--directory"), "{}", text(&o));
    let o = run(&["create", "--directory", "nope"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no directory `nope`"), "{}", text(&o));

    let o = run(&[
        "create",
        "--label",
        "intranet portal",
        "--directory",
        "BUILTIN",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("akevt_"), "{out}");
    let listed = text(&run(&["list"]));
    assert!(
        listed.contains("intranet portal") && listed.contains("directories builtin"),
        "{listed}"
    );
}

/// Admin's session token on a daemon started by `Served::start` in `dir`.
async fn admin_token(dir: &std::path::Path, url: &str) -> String {
    let password = std::fs::read_to_string(dir.join("initial-admin-password"))
        .unwrap()
        .trim()
        .to_string();
    let login = reqwest::Client::new()
        .post(format!("{url}/api/auth/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    login.headers()["x-sq-auth"].to_str().unwrap().to_string()
}

/// A key's id and password, as its creator was told them.
async fn new_key(url: &str, token: &str, name: &str) -> Option<(String, String)> {
    let r = reqwest::Client::new()
        .post(format!("{url}/api/accesskeys"))
        .header("x-sq-auth", token)
        .json(&json!({"name": name}))
        .send()
        .await
        .ok()?;
    if r.status() != StatusCode::OK && r.status() != StatusCode::CREATED {
        return None;
    }
    let v: serde_json::Value = r.json().await.ok()?;
    Some((
        v["keyId"].as_str()?.to_string(),
        v["password"].as_str()?.to_string(),
    ))
}

async fn key_works(url: &str, (id, password): &(String, String)) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{url}/api/users/me"))
        .basic_auth(id, Some(password))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_backup_taken_while_keys_are_created_restores_every_key_acknowledged_before_it() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = accesskeyd(dir.path());
    cmd.env("ACCESSKEYD_ACCESS_KEYS__MAX_PER_USER", "100000");
    let mut served = Served::start_with(cmd);
    let token = admin_token(dir.path(), &served.url).await;
    assert!(new_key(&served.url, &token, "before").await.is_some());

    // Someone keeps creating keys while the operator takes the backup.
    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let creator = {
        let (url, token, acknowledged, stop) = (
            served.url.clone(),
            token.clone(),
            acknowledged.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 5000 {
                if let Some(k) = new_key(&url, &token, &format!("job-{i}")).await {
                    acknowledged.lock().unwrap().push(k);
                }
                i += 1;
            }
        })
    };
    while acknowledged.lock().unwrap().len() < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before: Vec<(String, String)> = acknowledged.lock().unwrap().clone();
    let backup = dir.path().join("backups").join("accesskeyd-backup.db");
    std::fs::create_dir(dir.path().join("backups")).unwrap();
    let out = {
        let mut cmd = accesskeyd(dir.path());
        cmd.args(["backup", "--to"]).arg(&backup);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    creator.await.unwrap();
    let during = acknowledged.lock().unwrap().len() - before.len();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("integrity ok"), "{}", text(&out));
    eprintln!(
        "{} keys acknowledged before the backup, {during} while and after it",
        before.len()
    );

    // The same command again refuses to overwrite the backup.
    let again = accesskeyd(dir.path())
        .args(["backup", "--to"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        text(&again).contains("never overwrites"),
        "{}",
        text(&again)
    );
    served.stop();

    // Restored on another machine: the copy is the database of a fresh daemon.
    let restored_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&backup, restored_dir.path().join("accesskeyd.db")).unwrap();
    let restored = Served::start(restored_dir.path());
    assert!(
        !restored
            .lines
            .join("\n")
            .contains("created the built-in admin"),
        "the restored database already has its admin"
    );
    for key in &before {
        assert_eq!(
            key_works(&restored.url, key).await,
            StatusCode::OK,
            "key {} was acknowledged before the backup began",
            key.0
        );
    }
    // Keys made while it ran are there or not, whole: never half a key.
    let after: Vec<(String, String)> = acknowledged.lock().unwrap()[before.len()..].to_vec();
    for key in after.iter().take(50) {
        let s = key_works(&restored.url, key).await;
        assert!(
            s == StatusCode::OK || s == StatusCode::UNAUTHORIZED,
            "{s} for {}",
            key.0
        );
    }
}
