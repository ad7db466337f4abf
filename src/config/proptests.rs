//! Property tests: any value at a checked key loads or names the key, numbers load as
//! written from TOML and from text, and environment overrides never panic.

use super::*;
use proptest::prelude::*;
use std::io::Write;

/// Keys whose values are checked, as `(section, key, what an error must name)`.
const KEYS: &[(&str, &str, &str)] = &[
    ("server", "listen", "server.listen"),
    ("server", "management_listen", "server.management_listen"),
    ("server", "public_url", "server.public_url"),
    ("server", "max_body_bytes", "server.max_body_bytes"),
    ("server", "trusted_proxies", "server.trusted_proxies"),
    (
        "server",
        "client_address_header",
        "server.client_address_header",
    ),
    (
        "server",
        "request_timeout_seconds",
        "server.request_timeout_seconds",
    ),
    ("server", "max_connections", "server.max_connections"),
    ("database", "url", "database.url"),
    ("database", "pool_size", "database.pool_size"),
    (
        "access_keys",
        "validity_without_user_login_days",
        "access_keys.validity_without_user_login_days",
    ),
    (
        "access_keys",
        "allow_key_sessions_to_create_keys",
        "access_keys.allow_key_sessions_to_create_keys",
    ),
    (
        "sessions",
        "interactive_ttl_minutes",
        "sessions.interactive_ttl_minutes",
    ),
    (
        "login_throttle",
        "max_entries",
        "login_throttle.max_entries",
    ),
    ("password_hashing", "memory_kib", "password_hashing"),
    ("log", "format", "log.format"),
    ("notifications", "schedule", "notifications.schedule"),
];

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn toml_leaf() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        any::<String>().prop_map(toml::Value::String),
        "[ 0-9a-z.:/_,*?-]{0,24}".prop_map(toml::Value::String),
        prop_oneof![
            Just("127.0.0.1:0"),
            Just("[::1]:8080"),
            Just(""),
            Just("10.0.0.0/8, ::1"),
            Just("forwarded"),
            Just("X-Forwarded-For"),
            Just("json"),
            Just("0 */5 * * * *"),
            Just("sqlite://x.db"),
            Just("postgres://u@h/db"),
            Just("https://keys.example.com/"),
            Just(" 4096 "),
            Just("-1"),
            Just("true"),
            Just("0 0 0 31 2 *"),
        ]
        .prop_map(|s| toml::Value::String(s.to_string())),
        any::<i64>().prop_map(toml::Value::Integer),
        (-5i64..5000).prop_map(toml::Value::Integer),
        any::<f64>().prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
        prop_oneof![
            Just("1979-05-27T07:32:00Z"),
            Just("1979-05-27"),
            Just("07:32:00")
        ]
        .prop_map(|d| toml::Value::Datetime(d.parse().unwrap())),
    ]
}

fn toml_value() -> impl Strategy<Value = toml::Value> {
    toml_leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(toml::Value::Array),
            proptest::collection::vec(("[a-z_]{1,6}", inner), 0..3)
                .prop_map(|kv| toml::Value::Table(kv.into_iter().collect())),
        ]
    })
}

/// A document with `value` at `section.key` (notifications get a webhook, so that a good
/// schedule loads).
fn document(section: &str, key: &str, value: toml::Value) -> Option<String> {
    let mut inner = toml::Table::new();
    inner.insert(key.to_string(), value);
    if section == "notifications" {
        let mut hook = toml::Table::new();
        hook.insert("url".into(), "https://hooks.example.com/x".into());
        hook.insert("secret".into(), "0123456789abcdef".into());
        inner.insert("webhook".into(), toml::Value::Table(hook));
    }
    let mut root = toml::Table::new();
    root.insert(section.to_string(), toml::Value::Table(inner));
    toml::to_string(&root).ok()
}

fn check_named(r: Result<Config, ConfigError>, name: &str) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        let text = e.to_string();
        match &e {
            ConfigError::Invalid { key, .. } => prop_assert_eq!(key.as_str(), name, "{}", text),
            ConfigError::Parse { .. } => prop_assert!(text.contains(name), "{}", text),
            ConfigError::Read { .. } => prop_assert!(false, "{}", text),
        }
    }
    Ok(())
}

proptest! {
    // Moderate counts; shrinking is bounded so that a failure reports in seconds.
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    })]

    /// Any TOML value at a checked key: no panic; it loads, or the error names the key.
    #[test]
    fn any_value_loads_or_names_its_key(
        at in 0..KEYS.len(),
        value in toml_value(),
    ) {
        let (section, key, name) = KEYS[at];
        let Some(text) = document(section, key, value) else {
            return Ok(());
        };
        let f = file(&text);
        check_named(Config::load_from(Some(f.path()), &[]), name)?;
    }

    /// Numbers load as themselves, from TOML integers and from strings (environment
    /// variables) alike, and out-of-range ones name the key.
    #[test]
    fn numbers_load_as_written(
        n in prop_oneof![any::<i64>(), -10i64..200_000],
        as_text in any::<bool>(),
    ) {
        let value = if as_text {
            toml::Value::String(format!(" {n} "))
        } else {
            toml::Value::Integer(n)
        };
        let f = file(&document("server", "max_body_bytes", value).unwrap());
        let r = Config::load_from(Some(f.path()), &[]);
        if n >= 1024 {
            let got = r.map(|c| c.server.max_body_bytes as i64);
            prop_assert_eq!(got.map_err(|e| e.to_string()), Ok(n));
        } else {
            check_named(r, "server.max_body_bytes")?;
        }
        let env = [(
            "ACCESSKEYD_ACCESS_KEYS__VALIDITY_WITHOUT_USER_LOGIN_DAYS".to_string(),
            n.to_string(),
        )];
        let r = Config::load_from(None, &env);
        if n >= 0 {
            let got = r.map(|c| c.access_keys.validity_without_user_login_days);
            prop_assert_eq!(got.map_err(|e| e.to_string()), Ok(n));
        } else {
            check_named(r, "access_keys.validity_without_user_login_days")?;
        }
    }

    /// `ACCESSKEYD_SERVER__...` overrides with any text, under known names or made-up
    /// ones: no panic; a bad value of a known key names the key.
    #[test]
    fn server_environment_overrides_never_panic(
        known in proptest::option::of(0..8usize),
        // Made-up names; list indexes stay small (see the report on huge ones).
        made_up in "[A-Z_]{0,12}(__[0-3])?(__[A-Z_]{0,6})?",
        value in prop_oneof![any::<String>(), "[ 0-9a-z.:/,\\[\\]-]{0,24}"],
    ) {
        let (var, name) = match known {
            Some(i) => (
                format!("ACCESSKEYD_SERVER__{}", KEYS[i].1.to_uppercase()),
                Some(KEYS[i].2),
            ),
            None => (format!("ACCESSKEYD_SERVER__{made_up}"), None),
        };
        let r = Config::load_from(None, &[(var.clone(), value.clone())]);
        match name {
            Some(name) => {
                check_named(r, name)?;
            }
            None => {
                if let Err(e) = r {
                    prop_assert!(!matches!(e, ConfigError::Read { .. }), "{}: {}", var, e);
                }
            }
        }
    }
}
