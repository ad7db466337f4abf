//! Fixtures the protocol's tests share: a sample user, the kind of an error, and printers
//! that write JSON string literals and names in mixed case as identity providers may.

use super::error::ScimError;
use super::user::{Email, ScimUser};
use chrono::{TimeZone, Utc};

pub(super) fn alice() -> ScimUser {
    ScimUser {
        id: Some("u-1".into()),
        external_id: Some("ext-1".into()),
        user_name: "alice@example.com".into(),
        active: true,
        given_name: Some("Alice".into()),
        family_name: Some("Liddell".into()),
        display_name: Some("Alice Liddell".into()),
        email: Some(Email::new("alice@example.com")),
        created: Some(Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap()),
        last_modified: Some(Utc.with_ymd_and_hms(2024, 2, 3, 4, 5, 6).single().unwrap()),
    }
}

pub(super) fn err_type(r: Result<impl std::fmt::Debug, ScimError>) -> (u16, Option<&'static str>) {
    let e = r.unwrap_err();
    (e.status, e.scim_type)
}

/// `s` as a JSON string literal, each character written as itself, a short escape or
/// `\uXXXX` (a surrogate pair above the BMP), as `seeds` pick.
pub(super) fn json_string(s: &str, seeds: &[u8]) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        let seed = seeds.get(i % seeds.len().max(1)).copied().unwrap_or(0);
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '/' => Some("\\/"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        let must_escape = c == '"' || c == '\\' || u32::from(c) < 0x20;
        match (seed % 3, short) {
            (0, _) if !must_escape => out.push(c),
            (1, Some(e)) => out.push_str(e),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    if seed & 0x80 == 0 {
                        out.push_str(&format!("\\u{u:04x}"));
                    } else {
                        out.push_str(&format!("\\u{u:04X}"));
                    }
                }
            }
        }
    }
    out.push('"');
    out
}

/// `s` with the case of each ASCII letter picked by the bits of `seed`.
pub(super) fn recase(s: &str, seed: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if seed >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

#[test]
fn the_test_printers_write_valid_json_strings() {
    let s = "a\"/é😀\n";
    let literal = json_string(s, &[0]);
    assert_eq!(literal, "\"a\\u0022/é😀\\u000a\"");
    let escaped = json_string(s, &[1]);
    assert_eq!(escaped, r#""\u0061\"\/\u00e9\ud83d\ude00\n""#);
    for lit in [literal, escaped] {
        assert_eq!(serde_json::from_str::<String>(&lit).unwrap(), s);
    }
}
