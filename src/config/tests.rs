//! Loading whole configurations: layering, the errors that name keys, and the checks that
//! span sections.

use super::*;
use std::io::Write;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn huge_list_indices_in_the_environment_are_refused_not_allocated() {
    let e = Config::load_from(
        None,
        &env(&[("ACCESSKEYD_DIRECTORIES__18446744073709551615__ID", "x")]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");
}

#[test]
fn the_sample_configuration_loads_with_the_request_path_settings() {
    let f = file(include_str!("../../config/accesskeyd.toml"));
    let c = Config::load_from(Some(f.path()), &[]).unwrap();
    assert!(c.server.trusted_proxies.is_empty());
    assert_eq!(c.server.header_read_timeout_seconds, 10);
    assert_eq!(c.login_throttle.max_entries, 100_000);
    assert!(c.credential_cache.enabled);
    assert_eq!(c.audit.retention_days, 400);
    let c = Config::load_from(
        Some(f.path()),
        &env(&[("ACCESSKEYD_SERVER__TRUSTED_PROXIES", "10.0.1.0/24, ::1")]),
    )
    .unwrap();
    assert_eq!(c.server.trusted_proxies.len(), 2);
    let bad = Config::load_from(
        Some(f.path()),
        &env(&[("ACCESSKEYD_SERVER__TRUSTED_PROXIES", "10.0.1.0/33")]),
    );
    assert!(bad.unwrap_err().to_string().contains("10.0.1.0/33"));
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_without_a_file() {
    let c = Config::load_from(None, &[]).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:8080");
    assert_eq!(c.database.url, "sqlite://accesskeyd.db");
    assert_eq!(c.access_keys.validity_without_user_login_days, 14);
    assert_eq!(c.directories.len(), 1);
    assert_eq!(c.builtin().unwrap().id, "builtin");
}

#[test]
fn unknown_keys_are_named() {
    let f = file("[server]\nlisten = \"127.0.0.1:1\"\nlistn = 3\n");
    let err = Config::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("listn"), "{err}");
    let f = file("[serverx]\n");
    let err = Config::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("serverx"), "{err}");
    let err = Config::load_from(None, &env(&[("ACCESSKEYD_SERVER__LISTN", "x")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("listn"), "{err}");
    let f = file("[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\nbind_pasword = \"x\"\n");
    let err = Config::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("bind_pasword"), "{err}");
}

#[test]
fn env_overrides_file_and_keeps_digit_secrets_strings() {
    let f = file(
        "[server]\nlisten = \"127.0.0.1:9000\"\n[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\nbind_dn = \"cn=svc\"\n",
    );
    let c = Config::load_from(
        Some(f.path()),
        &env(&[
            ("ACCESSKEYD_SERVER__LISTEN", "127.0.0.1:9001"),
            (
                "ACCESSKEYD_ACCESS_KEYS__VALIDITY_WITHOUT_USER_LOGIN_DAYS",
                "3",
            ),
            ("ACCESSKEYD_DIRECTORIES__0__BIND_PASSWORD", "123456"),
            ("ACCESSKEYD_DIRECTORIES__0__STARTTLS", "true"),
            ("OTHER", "ignored"),
            ("ACCESSKEYD_CONFIG", "/etc/accesskeyd/accesskeyd.toml"),
        ]),
    )
    .unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:9001");
    assert_eq!(c.access_keys.validity_without_user_login_days, 3);
    let DirectoryConfig::Ldap(l) = &c.directories[1] else {
        panic!("expected ldap")
    };
    assert_eq!(l.bind_password.as_ref().unwrap().expose(), "123456");
    assert!(l.starttls);
    assert_eq!(l.username_attribute, "uid");
}

#[test]
fn active_directory_defaults_follow_the_id_attribute() {
    let f = file("[[directories]]\nid = \"ad\"\nkind = \"ldap\"\nurl = \"ldaps://dc\"\nuser_base = \"DC=x\"\nid_attribute = \"objectGUID\"\n");
    let c = Config::load_from(Some(f.path()), &[]).unwrap();
    let DirectoryConfig::Ldap(l) = &c.directories[1] else {
        panic!("expected ldap")
    };
    assert!(l.active_directory && l.sync.remove_disabled);
    assert_eq!(
        l.user_filter,
        "(&(objectCategory=person)(objectClass=user))"
    );
    assert_eq!(
        l.sync.schedule.as_ref().map(cron::Schedule::source),
        Some(DEFAULT_SYNC_SCHEDULE)
    );
    let f = file("[[directories]]\nid = \"o\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\nsync_schedule = \"\"\n");
    let c = Config::load_from(Some(f.path()), &[]).unwrap();
    let DirectoryConfig::Ldap(l) = &c.directories[1] else {
        panic!("expected ldap")
    };
    assert!(!l.active_directory && !l.sync.remove_disabled);
    assert_eq!(l.user_filter, "(objectClass=person)");
    assert!(l.sync.schedule.is_none());
    let f = file("[[directories]]\nid = \"o\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\nsync_schedule = \"every 5 minutes\"\n");
    let err = Config::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("sync_schedule"), "{err}");
}

#[test]
fn notifications_need_a_channel_and_valid_settings() {
    let ok = file("[notifications]\n[notifications.smtp]\nhost = \"mail\"\nfrom = \"a <a@example.com>\"\n[notifications.webhook]\nurl = \"https://hooks.example.com/x\"\nsecret = \"0123456789abcdef\"\n");
    let n = Config::load_from(Some(ok.path()), &[])
        .unwrap()
        .notifications
        .unwrap();
    let smtp = n.smtp.unwrap();
    assert_eq!((smtp.port, smtp.security), (587, SmtpSecurity::Starttls));
    assert_eq!(n.webhook.unwrap().max_attempts, 5);
    assert_eq!(n.schedule.source(), "0 0 7 * * *");
    for (bad, key) in [
        ("[notifications]\n", "notifications"),
        ("[notifications]\nschedule = \"daily\"\n[notifications.webhook]\nurl = \"https://x\"\nsecret = \"0123456789abcdef\"\n", "notifications.schedule"),
        ("[notifications.smtp]\nhost = \"m\"\nfrom = \"not an address\"\n", "notifications.smtp.from"),
        ("[notifications.smtp]\nhost = \"m\"\nfrom = \"a@b.c\"\nusername = \"u\"\n", "notifications.smtp.username"),
        ("[notifications.smtp]\nhost = \"m\"\nfrom = \"a@b.c\"\nsecurity = \"ssl\"\n", "security"),
        ("[notifications.webhook]\nurl = \"ftp://x\"\nsecret = \"0123456789abcdef\"\n", "notifications.webhook.url"),
        ("[notifications.webhook]\nurl = \"https://x\"\nsecret = \"short\"\n", "notifications.webhook.secret"),
    ] {
        let f = file(bad);
        let err = Config::load_from(Some(f.path()), &[]).unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
}

#[test]
fn windows_realms_must_name_ldap_directories() {
    let base = "[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\n\n[windows]\nkeytab = \"/etc/http.keytab\"\nservice_principal = \"HTTP/web.corp.test\"\n";
    let f = file(&format!(
        "{base}[[windows.realms]]\nrealm = \"CORP.TEST\"\ndirectory = \"corp\"\nmatch_attribute = \"userPrincipalName\"\n"
    ));
    let w = Config::load_from(Some(f.path()), &[])
        .unwrap()
        .windows
        .unwrap();
    assert_eq!(
        w.realms[0].match_attribute.as_deref(),
        Some("userPrincipalName")
    );
    for (bad, key) in [
        ("[[windows.realms]]\nrealm = \"CORP.TEST\"\ndirectory = \"builtin\"\n", "windows.realms[0].directory"),
        ("[[windows.realms]]\nrealm = \"a\"\ndirectory = \"corp\"\n[[windows.realms]]\nrealm = \"A\"\ndirectory = \"corp\"\n", "windows.realms[1].realm"),
        ("", "windows.realms"),
        ("[[windows.realms]]\nrealm = \"CORP.TEST\"\ndirectory = \"corp\"\nmatch_attribute = \"a)(b\"\n", "match_attribute"),
    ] {
        let f = file(&format!("{base}{bad}"));
        let err = Config::load_from(Some(f.path()), &[]).unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
    let f = file("[windows]\nservice_principal = \"HTTP\"\n");
    let err = Config::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("windows.keytab"), "{err}");
}

#[test]
fn lists_come_from_the_environment_as_comma_separated_text() {
    let f = file("[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\n\n[proxy_auth]\ndirectory = \"corp\"\nsecret = \"0123456789abcdef\"\ntrusted_addresses = [\"10.0.0.1\"]\n");
    let c = Config::load_from(
        Some(f.path()),
        &env(&[(
            "ACCESSKEYD_PROXY_AUTH__TRUSTED_ADDRESSES",
            "10.0.0.2, 10.0.0.3",
        )]),
    )
    .unwrap();
    let p = c.proxy_auth.unwrap();
    assert_eq!(p.trusted_addresses.len(), 2);
    assert_eq!(p.user_header, "X-Remote-User");
    let f = file("[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\n\n[proxy_auth]\ndirectory = \"corp\"\nsecret = \"short\"\ntrusted_addresses = [\"10.0.0.1\"]\n");
    let err = Config::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("proxy_auth.secret"), "{err}");
}

#[test]
fn secrets_from_files() {
    let secret = file("s3cret\n");
    let f = file(&format!(
        "[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldaps://x\"\nuser_base = \"dc=x\"\nbind_dn = \"cn=svc\"\nbind_password_file = \"{}\"\n",
        secret.path().display()
    ));
    let c = Config::load_from(Some(f.path()), &[]).unwrap();
    let DirectoryConfig::Ldap(l) = &c.directories[1] else {
        panic!("expected ldap")
    };
    assert_eq!(l.bind_password.as_ref().unwrap().expose(), "s3cret");
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cret"), "Debug leaks the secret");
}

#[test]
fn the_database_url_can_come_from_a_file_and_is_not_printed() {
    let secret = file("postgres://akd:pg-s3cret@db.example.com/akd\n");
    let f = file(&format!(
        "[database]\nurl_file = \"{}\"\n",
        secret.path().display()
    ));
    let c = Config::load_from(Some(f.path()), &[]).unwrap();
    assert_eq!(
        c.database.url,
        "postgres://akd:pg-s3cret@db.example.com/akd"
    );
    assert!(!format!("{c:?}").contains("pg-s3cret"));
}

#[test]
fn oidc_directories_take_the_login_safety_keys_and_others_do_not() {
    let base = "[[directories]]\nid = \"idp\"\nkind = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"c\"\n";
    let load = |extra: &str| Config::load_from(Some(file(&format!("{base}{extra}")).path()), &[]);
    let oidc = |c: Config| match &c.directories[1] {
        DirectoryConfig::Oidc(o) => (
            o.username_claim_is_provider_controlled,
            o.pending_logins_per_address,
        ),
        _ => panic!("expected oidc"),
    };
    assert_eq!(oidc(load("").unwrap()), (false, 20), "safe defaults");
    assert_eq!(
        oidc(
            load("username_claim_is_provider_controlled = true\npending_logins_per_address = 50\n")
                .unwrap()
        ),
        (true, 50)
    );
    for bad in [
        "pending_logins_per_address = 0\n",
        "pending_logins_per_address = 10001\n",
    ] {
        let err = load(bad).unwrap_err().to_string();
        assert!(
            err.contains("directories[0].pending_logins_per_address"),
            "{err}"
        );
    }
    let ldap = file("[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\nusername_claim_is_provider_controlled = true\n");
    let err = Config::load_from(Some(ldap.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("username_claim_is_provider_controlled") && err.contains("is not a setting"),
        "{err}"
    );
}

#[test]
fn invalid_values_are_named() {
    for (text, needle) in [
        ("[server]\nlisten = \"nope\"\n", "server.listen"),
        ("[database]\nurl = \"mysql://x\"\n", "database.url"),
        ("[database]\nurl = \"accesskeyd.db\"\n", "database.url"),
        (
            "[access_keys]\nvalidity_without_user_login_days = -1\n",
            "validity_without_user_login_days",
        ),
        ("[[directories]]\nid = \"x\"\nkind = \"nis\"\n", "directories[0].kind"),
        (
            "[[directories]]\nid = \"x\"\nkind = \"ldap\"\nurl = \"http://x\"\nuser_base = \"dc=x\"\n",
            "directories[0].url",
        ),
        (
            "[[directories]]\nid = \"x\"\nkind = \"ldap\"\nurl = \"ldaps://x\"\nstarttls = true\nuser_base = \"dc=x\"\n",
            "starttls",
        ),
        (
            "[[directories]]\nid = \"a\"\nkind = \"builtin\"\n[[directories]]\nid = \"b\"\nkind = \"builtin\"\n",
            "builtin",
        ),
        (
            "[[directories]]\nid = \"a\"\nkind = \"builtin\"\nurl = \"ldap://x\"\n",
            "directories[0].url",
        ),
        (
            "[[directories]]\nid = \"Builtin\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\n",
            "reserved",
        ),
        ("[database]\nconnect_timeout_seconds = 0\n", "connect_timeout_seconds"),
        (
            "[[directories]]\nid = \"x\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\nbind_dn = \"cn=a\"\nbind_password_file = \"/nonexistent/secret\"\n",
            "bind_password_file",
        ),
    ] {
        let f = file(text);
        let err = Config::load_from(Some(f.path()), &[]).unwrap_err().to_string();
        assert!(err.contains(needle), "{text:?} -> {err}");
    }
}

const OIDC_SSF: &str = "[[directories]]\nid = \"idp\"\nkind = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"c\"\n[directories.ssf]\ntransmitter = \"https://idp.example.com\"\n";

fn ssf_of(c: &Config) -> &SsfConfig {
    match &c.directories[1] {
        DirectoryConfig::Oidc(o) => o.ssf.as_ref().expect("ssf"),
        _ => panic!("expected oidc"),
    }
}

#[test]
fn shared_signals_take_their_defaults_from_a_transmitter_alone() {
    let f = file(OIDC_SSF);
    let c = Config::load_from(Some(f.path()), &[]).unwrap();
    let s = ssf_of(&c);
    assert_eq!(s.transmitter, "https://idp.example.com");
    assert!(s.push && s.push_token.is_none() && s.poll.is_none());
    assert_eq!(s.audience_or(&c.server.public_url()), c.server.public_url());
    assert_eq!(s.max_age, chrono::Duration::seconds(300));
    assert_eq!(s.suspension_threshold, 100);
    assert_eq!(s.window, chrono::Duration::minutes(60));
    // Without the table there are no shared signals.
    let f = file("[[directories]]\nid = \"idp\"\nkind = \"oidc\"\nissuer = \"https://i\"\nclient_id = \"c\"\n");
    let c = Config::load_from(Some(f.path()), &[]).unwrap();
    assert!(matches!(&c.directories[1], DirectoryConfig::Oidc(o) if o.ssf.is_none()));
}

#[test]
fn shared_signals_are_set_from_the_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("push-token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let f = file(OIDC_SSF);
    let c = Config::load_from(
        Some(f.path()),
        &env(&[
            (
                "ACCESSKEYD_DIRECTORIES__0__SSF__AUDIENCE",
                "https://keys.example.com/ssf",
            ),
            (
                "ACCESSKEYD_DIRECTORIES__0__SSF__PUSH_TOKEN_FILE",
                token.to_str().unwrap(),
            ),
            (
                "ACCESSKEYD_DIRECTORIES__0__SSF__POLL_URL",
                "https://idp.example.com/ssf/poll",
            ),
            (
                "ACCESSKEYD_DIRECTORIES__0__SSF__POLL_INTERVAL_SECONDS",
                " 7 ",
            ),
            ("ACCESSKEYD_DIRECTORIES__0__SSF__MAX_AGE_SECONDS", "120"),
            ("ACCESSKEYD_DIRECTORIES__0__SSF__SUSPENSION_THRESHOLD", "5"),
            ("ACCESSKEYD_DIRECTORIES__0__SSF__WINDOW_MINUTES", "10"),
        ]),
    )
    .unwrap();
    let s = ssf_of(&c);
    assert_eq!(s.audience.as_deref(), Some("https://keys.example.com/ssf"));
    assert!(s.push_token.as_ref().unwrap().ct_eq("s3cret"));
    let poll = s.poll.as_ref().unwrap();
    assert_eq!(poll.url, "https://idp.example.com/ssf/poll");
    assert_eq!(poll.interval, std::time::Duration::from_secs(7));
    assert_eq!(s.max_age, chrono::Duration::seconds(120));
    assert_eq!(
        (s.suspension_threshold, s.window),
        (5, chrono::Duration::minutes(10))
    );
    // The secret stays out of Debug output.
    assert!(!format!("{s:?}").contains("s3cret"));
}

#[test]
fn shared_signal_settings_that_cannot_work_are_named() {
    for (extra, needle) in [
        ("", ""),
        ("push = false\n", "directories[0].ssf.push"),
        ("poll_interval_seconds = 5\n", "directories[0].ssf.poll_url"),
        ("poll_url = \"ftp://x\"\n", "directories[0].ssf.poll_url"),
        (
            "poll_url = \"https://x\"\npoll_interval_seconds = 0\n",
            "poll_interval_seconds",
        ),
        (
            "max_age_seconds = 5\n",
            "directories[0].ssf.max_age_seconds",
        ),
        ("suspension_threshold = 0\n", "suspension_threshold"),
        ("window_minutes = 0\n", "window_minutes"),
        ("audience = \"\"\n", "directories[0].ssf.audience"),
        (
            "push = false\npoll_url = \"https://x\"\npush_token = \"t\"\n",
            "push_token_file",
        ),
        (
            "push_token_file = \"/nonexistent/token\"\n",
            "push_token_file",
        ),
        ("configuration_url = \"not a url\"\n", "configuration_url"),
        ("transmiter = \"https://x\"\n", "transmiter"),
    ] {
        let text = format!("{OIDC_SSF}{extra}");
        let f = file(&text);
        let got = Config::load_from(Some(f.path()), &[]);
        if needle.is_empty() {
            assert!(got.is_ok(), "{got:?}");
            continue;
        }
        let err = got.unwrap_err().to_string();
        assert!(err.contains(needle), "{extra:?} -> {err}");
    }
    let f = file("[[directories]]\nid = \"idp\"\nkind = \"oidc\"\nissuer = \"https://i\"\nclient_id = \"c\"\n[directories.ssf]\npush = true\n");
    let err = Config::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("directories[0].ssf.transmitter") && err.contains("required"),
        "{err}"
    );
    // An LDAP directory has no shared signals.
    let f = file("[[directories]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://x\"\nuser_base = \"dc=x\"\n[directories.ssf]\ntransmitter = \"https://x\"\n");
    let err = Config::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("directories[0].ssf") && err.contains("not a setting of a `ldap` directory"),
        "{err}"
    );
}

#[test]
fn secret_scanning_takes_one_key_source_also_from_the_environment() {
    let c = Config::load_from(None, &[]).unwrap();
    assert!(c.secret_scanning.is_none(), "off by default");
    let c = Config::load_from(
        None,
        &env(&[(
            "ACCESSKEYD_SECRET_SCANNING__PUBLIC_KEYS_URL",
            GITHUB_PUBLIC_KEYS_URL,
        )]),
    )
    .unwrap();
    let s = c.secret_scanning.unwrap();
    assert_eq!(
        s.public_keys,
        PublicKeysSource::Url(GITHUB_PUBLIC_KEYS_URL.into())
    );
    assert_eq!(s.timeout_seconds, 10);
    let f = file("[secret_scanning]\npublic_keys_file = \"/etc/k.json\"\nurl = \"x\"\n");
    let err = Config::load_from(Some(f.path()), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `url`"), "{err}");
}

#[test]
fn tls_takes_a_certificate_and_a_key_together_and_makes_the_public_url_https() {
    let c = Config::load_from(None, &[]).unwrap();
    assert_eq!(c.server.tls(), None);
    assert_eq!(c.server.public_url(), "http://127.0.0.1:8080");

    let f = file(
        "[server]\nlisten = \"127.0.0.1:8443\"\ntls_cert_file = \"/etc/accesskeyd/tls.pem\"\ntls_key_file = \"/etc/accesskeyd/tls.key\"\n",
    );
    let c = Config::load_from(Some(f.path()), &[]).unwrap();
    let tls = c.server.tls().expect("TLS configured");
    assert_eq!(tls.cert, std::path::Path::new("/etc/accesskeyd/tls.pem"));
    assert_eq!(tls.key, std::path::Path::new("/etc/accesskeyd/tls.key"));
    assert_eq!(tls.min_version, TlsVersion::V1_2);
    assert_eq!(c.server.public_url(), "https://127.0.0.1:8443");

    // An explicit public_url (a proxy's name) still wins.
    let c = Config::load_from(
        Some(f.path()),
        &env(&[
            ("ACCESSKEYD_SERVER__PUBLIC_URL", "https://keys.example.com/"),
            ("ACCESSKEYD_SERVER__TLS_MIN_VERSION", "1.3"),
        ]),
    )
    .unwrap();
    assert_eq!(c.server.public_url(), "https://keys.example.com");
    assert_eq!(c.server.tls().unwrap().min_version, TlsVersion::V1_3);
}

#[test]
fn tls_settings_that_cannot_work_are_named() {
    for (text, needle) in [
        (
            "[server]\ntls_cert_file = \"/x/cert.pem\"\n",
            "server.tls_key_file",
        ),
        (
            "[server]\ntls_key_file = \"/x/key.pem\"\n",
            "server.tls_cert_file",
        ),
        (
            "[server]\ntls_cert_file = \"\"\ntls_key_file = \"/x/key.pem\"\n",
            "server.tls_cert_file",
        ),
        // A systemd credential without systemd's credentials directory (tests never set it).
        (
            "[server]\ntls_cert_file = \"/x/cert.pem\"\ntls_key_file = \"$CREDENTIALS_DIRECTORY/tls-key\"\n",
            "server.tls_key_file",
        ),
        ("[server]\ntls_min_version = \"1.1\"\n", "tls_min_version"),
        ("[server]\ntls_min_version = \"ssl3\"\n", "tls_min_version"),
    ] {
        let f = file(text);
        let err = Config::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
}

#[test]
fn tls_versions_are_read_as_operators_write_them() {
    for (text, version) in [
        ("\"1.2\"", TlsVersion::V1_2),
        ("\"1.3\"", TlsVersion::V1_3),
        ("\"TLSv1.3\"", TlsVersion::V1_3),
        ("1.3", TlsVersion::V1_3),
        ("1.2", TlsVersion::V1_2),
    ] {
        let f = file(&format!("[server]\ntls_min_version = {text}\n"));
        let c = Config::load_from(Some(f.path()), &[]).unwrap();
        assert_eq!(c.server.tls_min_version, version, "{text}");
    }
    assert!("1.0".parse::<TlsVersion>().is_err());
    assert_eq!(TlsVersion::V1_3.to_string(), "1.3");
}
