//! Property tests of PATCH: generated paths resolve to the target the attribute table gives,
//! malformed ones are refused, and any operation fails cleanly without touching the user.

use super::*;
use crate::scim::protocol::testing::{json_string, recase};
use crate::scim::protocol::user::USER_SCHEMA;
use proptest::prelude::*;
use serde_json::{json, Map};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Urn {
    None,
    Core,
    Extension,
}

/// What a filter inside `emails[...]` selects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sel {
    Work,
    NotOurs,
    Unsupported,
}

#[derive(Debug, Clone)]
struct PathSpec {
    urn: (Urn, String),
    attr: String,
    filter: Option<(String, Sel)>,
    sub: Option<String>,
    pad: (String, String),
}

impl PathSpec {
    fn print(&self) -> String {
        let mut p = self.pad.0.clone();
        if self.urn.0 != Urn::None {
            p.push_str(&self.urn.1);
            p.push(':');
        }
        p.push_str(&self.attr);
        if let Some((f, _)) = &self.filter {
            p.push_str(&format!("[{f}]"));
        }
        if let Some(s) = &self.sub {
            p.push('.');
            p.push_str(s);
        }
        p.push_str(&self.pad.1);
        p
    }

    /// The target of a well-formed path, from the attribute table of our model: the
    /// SCIM type of the error otherwise.
    fn expected(&self) -> Result<Target, &'static str> {
        if self.urn.0 == Urn::Extension {
            return Ok(Target::Ignored);
        }
        let sub = self.sub.as_deref().map(str::to_ascii_lowercase);
        let filter = self.filter.as_ref().map(|(_, s)| *s);
        let plain = |t| match (filter, &sub) {
            (None, None) => Ok(t),
            _ => Err("invalidPath"),
        };
        match self.attr.to_ascii_lowercase().as_str() {
            "id" => plain(Target::Id),
            "active" => plain(Target::Active),
            "username" => plain(Target::UserName),
            "externalid" => plain(Target::ExternalId),
            "displayname" => plain(Target::DisplayName),
            "name" if filter.is_some() => Err("invalidPath"),
            "name" => Ok(match sub.as_deref() {
                None => Target::Name,
                Some("givenname") => Target::GivenName,
                Some("familyname") => Target::FamilyName,
                Some("formatted") => Target::NameFormatted,
                Some(_) => Target::Ignored,
            }),
            "emails" => match (filter, sub.as_deref()) {
                (None, None) => Ok(Target::Emails),
                (None, Some(_)) => Err("noTarget"),
                (Some(Sel::Unsupported), _) => Err("invalidPath"),
                (Some(Sel::NotOurs), _) => Err("noTarget"),
                (Some(Sel::Work), None) => Ok(Target::WorkEmail),
                (Some(Sel::Work), Some("value")) => Ok(Target::WorkEmailValue),
                (Some(Sel::Work), Some(_)) => Ok(Target::Ignored),
            },
            _ => Ok(Target::Ignored),
        }
    }
}

fn attr_name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9_-]{0,8}"
}

fn urn() -> impl Strategy<Value = (Urn, String)> {
    prop_oneof![
        3 => Just((Urn::None, String::new())),
        2 => any::<u64>().prop_map(|seed| (Urn::Core, recase(USER_SCHEMA, seed))),
        1 => prop_oneof![
            Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
            Just("urn:okta:custom:1.0:user"),
            Just("urn:ietf:params:scim:schemas:core:2.0:Group"),
        ]
        .prop_map(|u| (Urn::Extension, u.to_string())),
    ]
}

fn path_attr() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (
            prop_oneof![
                Just("id"), Just("active"), Just("userName"), Just("externalId"),
                Just("displayName"), Just("name"), Just("emails"), Just("title"),
                Just("phoneNumbers"), Just("addresses"), Just("manager"),
            ],
            any::<u64>(),
        )
            .prop_map(|(a, seed)| recase(a, seed)),
        1 => attr_name(),
    ]
}

fn email_filter() -> impl Strategy<Value = (String, Sel)> {
    let spelled = |s: &'static str| any::<u64>().prop_map(move |seed| recase(s, seed));
    prop_oneof![
        3 => (
            spelled("type"),
            spelled("eq"),
            spelled("work"),
            proptest::collection::vec(any::<u8>(), 1..4),
        )
            .prop_map(|(t, e, w, seeds)| {
                (format!("{t} {e} {}", json_string(&w, &seeds)), Sel::Work)
            }),
        1 => (spelled("primary"), spelled("eq"), spelled("true"))
            .prop_map(|(p, e, t)| (format!("{p} {e} {t}"), Sel::Work)),
        1 => prop_oneof![
            Just("type eq \"home\""), Just("type eq \"other\""), Just("primary eq false"),
        ]
        .prop_map(|f| (f.to_string(), Sel::NotOurs)),
        1 => prop_oneof![
            Just("value co \"x\""), Just("type ne \"work\""), Just(""),
            Just("type eq \"work\" and primary eq true"), Just("(type eq \"work\")"),
            Just("type eq \"work"), Just("type eq"), Just("display eq \"work\""),
        ]
        .prop_map(|f| (f.to_string(), Sel::Unsupported)),
    ]
}

fn path_sub() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => (
            prop_oneof![
                Just("value"), Just("givenName"), Just("familyName"), Just("formatted"),
                Just("display"), Just("type"),
            ],
            any::<u64>(),
        )
            .prop_map(|(s, seed)| recase(s, seed)),
        1 => attr_name(),
    ]
}

fn path_spec() -> impl Strategy<Value = PathSpec> {
    (
        urn(),
        path_attr(),
        proptest::option::weighted(0.3, email_filter()),
        proptest::option::weighted(0.4, path_sub()),
        ("[ \\t]{0,2}", "[ \\t]{0,2}"),
    )
        .prop_map(|(urn, attr, filter, sub, pad)| PathSpec {
            urn,
            attr,
            filter,
            sub,
            pad,
        })
}

/// A path broken in its structure: a bad attribute name, unbalanced brackets, an
/// empty or nested sub-attribute, text after the closing bracket.
fn malformed_path() -> impl Strategy<Value = String> {
    let bad_attr = prop_oneof![
        Just(String::new()),
        "[0-9_-][a-zA-Z0-9]{0,6}",
        "[a-zA-Z]{1,4}[ $@/\\\\!é][a-zA-Z]{1,4}",
    ];
    let shape = prop_oneof![
        bad_attr.prop_map(|a| a),
        (path_attr(), bad_attr_sub()).prop_map(|(a, s)| format!("{a}.{s}")),
        path_attr().prop_map(|a| format!("{a}[type eq \"work\"")),
        path_attr().prop_map(|a| format!("{a}]")),
        path_attr().prop_map(|a| format!("{a}][type eq \"work\"")),
        (path_attr(), attr_name()).prop_map(|(a, s)| format!("{a}[type eq \"work\"]{s}")),
        path_attr().prop_map(|a| format!("{a}[type eq \"work\"].")),
        (path_attr(), attr_name(), attr_name())
            .prop_map(|(a, s, t)| format!("{a}[type eq \"work\"].{s}.{t}")),
        (path_attr(), attr_name()).prop_map(|(a, s)| format!("{a}.{s}[type eq \"work\"]")),
        attr_name().prop_map(|s| format!(".{s}")),
    ];
    (urn(), shape).prop_map(|((kind, u), p)| match kind {
        Urn::None => p,
        _ => format!("{u}:{p}"),
    })
}

fn bad_attr_sub() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[0-9][a-z]{0,4}",
        "[a-z]{1,4}\\.[a-z]{1,4}",
        "[a-z]{1,4} [a-z]{1,4}",
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        Just(Value::from("work")),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("value".to_string()),
                        Just("type".to_string()),
                        Just("primary".to_string()),
                        Just("givenName".to_string()),
                        Just("active".to_string()),
                        any::<String>(),
                    ],
                    inner,
                ),
                0..4,
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn user() -> ScimUser {
    ScimUser {
        id: Some("u-1".into()),
        external_id: Some("ext-1".into()),
        user_name: "alice@example.com".into(),
        active: true,
        given_name: Some("Alice".into()),
        family_name: Some("Liddell".into()),
        display_name: Some("Alice Liddell".into()),
        email: Some(Email::new("alice@example.com")),
        created: None,
        last_modified: None,
    }
}

proptest! {
    // Moderate counts; shrinking is bounded so that a failure reports in seconds.
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    })]

    /// Well-formed PATCH paths (with or without a schema URN, any case, filters on
    /// emails, sub-attributes, surrounding blanks) resolve to the target the attribute
    /// table gives, or to its error.
    #[test]
    fn patch_paths_resolve_as_the_table_says(spec in path_spec()) {
        let text = spec.print();
        let got = parse_path(&text).map_err(|e| (e.status, e.scim_type.unwrap_or("none")));
        prop_assert_eq!(got, spec.expected().map_err(|t| (400, t)), "{:?}", text);
    }

    /// Paths broken in their structure are refused with invalidPath, whatever schema
    /// URN they start with.
    #[test]
    fn malformed_patch_paths_are_refused(p in malformed_path()) {
        match parse_path(&p) {
            Ok(t) => prop_assert!(false, "{:?} accepted as {:?}", p, t),
            Err(e) => prop_assert_eq!((e.status, e.scim_type), (400, Some("invalidPath")), "{:?}", p),
        }
    }

    /// Any path text and any operation object: no panic, 400 errors only, and a PATCH
    /// that fails leaves the user untouched.
    #[test]
    fn patch_arbitrary_operations(
        path in prop_oneof![
            any::<String>(),
            "[a-zA-Z.:\\[\\]\" ]{0,30}",
            path_spec().prop_map(|s| s.print()),
            malformed_path(),
        ],
        op in prop_oneof![Just("add"), Just("Replace"), Just("remove"), Just("move")],
        value in proptest::option::of(json_value()),
        with_path in any::<bool>(),
    ) {
        if let Err(e) = parse_path(&path) {
            prop_assert_eq!(e.status, 400);
            prop_assert!(matches!(e.scim_type, Some("invalidPath" | "noTarget")), "{:?}", e);
        }
        let mut o = Map::new();
        o.insert("op".into(), Value::from(op));
        if with_path {
            o.insert("path".into(), Value::from(path.clone()));
        }
        if let Some(v) = value {
            o.insert("value".into(), v);
        }
        let body = json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [Value::Object(o)]});
        let mut u = user();
        if let Err(e) = apply_patch(&mut u, &body) {
            prop_assert_eq!(e.status, 400);
            prop_assert_eq!(&u, &user());
        }
    }
}

/// Found by `malformed_patch_paths_are_refused`: after a schema URN other than the
/// core User schema anything was accepted (and dropped), even no attribute at all.
#[test]
fn extension_paths_must_still_be_paths() {
    const EXT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    for bad in [
        format!("{EXT}:"),
        format!("{EXT}:manager["),
        format!("{EXT}:manager[value eq \"x\"]x"),
        format!("{EXT}:man ager"),
        format!("{EXT}:manager."),
        "urn:".to_string(),
        "urn:x:".to_string(),
    ] {
        let e = parse_path(&bad).unwrap_err();
        assert_eq!((e.status, e.scim_type), (400, Some("invalidPath")), "{bad}");
    }
    for good in [
        format!("{EXT}:manager"),
        format!("{EXT}:manager.value"),
        format!("{EXT}:manager[value eq \"a:b\"].displayName"),
        // A no-path operation's value may hold the extension's attributes under its URN.
        EXT.to_string(),
        "urn:okta:custom:1.0:user:department".to_string(),
    ] {
        assert_eq!(parse_path(&good).unwrap(), Target::Ignored, "{good}");
    }
}

#[test]
fn the_issue_examples_resolve() {
    assert_eq!(
        parse_path("emails[type eq \"work\"].value").unwrap(),
        Target::WorkEmailValue
    );
    assert_eq!(parse_path("name.givenName").unwrap(), Target::GivenName);
    assert_eq!(
        parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager").unwrap(),
        Target::Ignored
    );
}
