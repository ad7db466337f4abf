//! Names and labels that people read: key labels, descriptions, display names in the web
//! pages, lists and mails. Unicode format characters (bidi overrides such as U+202E,
//! zero-width spaces and joiners) and control characters are invisible or reorder what is
//! shown, so one label could pass for another. Text we accept from API input is refused
//! when it holds one; text a directory sends is stored without them.
//!
//! The format characters (general category Cf) are listed here rather than taken from a
//! crate: the category changes rarely (this is Unicode 15.1's list), the list is short
//! enough to read, and it keeps one dependency fewer on the request path.

/// Unicode 15.1's format characters (Cf), as inclusive ranges.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// A control (Cc) or format (Cf) character: invisible, or changing how the rest is shown.
pub fn is_hidden(c: char) -> bool {
    let u = u32::from(c);
    c.is_control() || FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&u))
}

/// Refuses text with a control or format character, naming the field and the character
/// (`name: U+202E is not allowed ...`).
pub fn check_visible(field: &str, text: &str) -> crate::error::Result<()> {
    match text.chars().find(|c| is_hidden(*c)) {
        None => Ok(()),
        Some(c) => Err(crate::error::Error::invalid(format!(
            "{field}: U+{:04X} is not allowed: control and invisible formatting characters \
             (such as bidi overrides and zero-width spaces) could make it pass for another",
            u32::from(c)
        ))),
    }
}

/// The text without control and format characters, trimmed (a directory's display name,
/// which we cannot refuse).
pub fn visible(text: &str) -> String {
    text.chars()
        .filter(|c| !is_hidden(*c))
        .collect::<String>()
        .trim()
        .to_string()
}

/// Whether a JSON document holds U+0000 in a string: the escape `\u0000` not itself escaped
/// (JSON allows no raw control characters in strings, so the escape is the only way in).
/// Read from the bytes, before parsing, so every body is checked the same way.
pub fn json_has_nul(json: &[u8]) -> bool {
    const ESCAPE: &[u8] = b"\\u0000";
    json.windows(ESCAPE.len()).enumerate().any(|(i, w)| {
        // `\\u0000` is a backslash followed by the text `u0000`: the escape counts only after
        // an even number of backslashes before it.
        w == ESCAPE && json[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_escape_is_found_and_an_escaped_backslash_is_not_one() {
        assert!(json_has_nul(br#"{"name":"a\u0000b"}"#));
        assert!(json_has_nul(br#"["\u0000"]"#));
        assert!(json_has_nul(br#"{"\u0000":1}"#));
        assert!(json_has_nul(br#"{"a":"\\\\\u0000"}"#));
        assert!(!json_has_nul(br#"{"name":"a\\u0000b"}"#));
        assert!(!json_has_nul(br#"{"name":"a\u0001b"}"#));
        assert!(!json_has_nul(b"{}"));
        assert!(!json_has_nul(b""));
    }

    #[test]
    fn bidi_overrides_zero_width_and_control_characters_are_hidden() {
        for c in [
            '\u{202E}',
            '\u{202A}',
            '\u{200B}',
            '\u{200D}',
            '\u{2066}',
            '\u{2069}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{E0041}',
            '\u{0000}',
            '\n',
            '\t',
            '\u{7F}',
            '\u{85}',
        ] {
            assert!(is_hidden(c), "U+{:04X}", u32::from(c));
        }
        for c in [
            'a', 'é', 'ß', ' ', '-', '’', 'ا', '中', '😀', '\u{2028}', '\u{A0}',
        ] {
            assert!(!is_hidden(c), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn a_label_that_hides_a_reversal_is_refused_and_names_the_character() {
        assert!(check_visible("name", "nightly export").is_ok());
        assert!(check_visible("name", "Zoë’s Power BI feed").is_ok());
        let e = check_visible("name", "invoice\u{202E}fdp.exe").unwrap_err();
        assert!(e.to_string().starts_with("name: U+202E"), "{e}");
        let e = check_visible("description", "a\u{200B}b").unwrap_err();
        assert!(e.to_string().starts_with("description: U+200B"), "{e}");
    }

    #[test]
    fn directory_names_lose_what_cannot_be_seen() {
        assert_eq!(visible("Bob\u{202E} Example\u{200B}"), "Bob Example");
        assert_eq!(visible("\u{FEFF}Ann Lee"), "Ann Lee");
        assert_eq!(visible("Ann Lee"), "Ann Lee");
    }
}
