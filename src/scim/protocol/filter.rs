//! User filters (RFC 7644 §3.4.2.2): the tokenizer (PATCH paths filter emails with it too),
//! `parse_filter` for the `eq` and `and` subset identity providers send, and `matches`.

use super::error::ScimError;
use super::user::{strip_core_urn, ScimUser};
use crate::ids::UserId;

/// A user filter: the subset of RFC 7644 §3.4.2.2 that IdPs send to find a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Eq(Attr, String),
    And(Box<Filter>, Box<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    UserName,
    ExternalId,
    Id,
}

/// IdPs send one or two comparisons; far more is a mistake or abuse.
const MAX_COMPARISONS: usize = 16;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Tok {
    Word(String),
    Str(String),
}

/// Splits into bare words and JSON string literals (compValue strings are JSON, RFC 7644 §3.4.2.2).
pub(super) fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b.is_ascii_whitespace() {
            i += 1;
        } else if b == b'"' {
            let start = i;
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err("unterminated string".into()),
                    Some(b'\\') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            // Both ends are ASCII quotes, so these are char boundaries.
            let lit = &s[start..=i];
            let text: String =
                serde_json::from_str(lit).map_err(|_| format!("invalid string {lit}"))?;
            out.push(Tok::Str(text));
            i += 1;
        } else if b == b'(' || b == b')' {
            return Err("grouping with parentheses is not supported".into());
        } else {
            let start = i;
            while bytes
                .get(i)
                .is_some_and(|&c| !c.is_ascii_whitespace() && !matches!(c, b'"' | b'(' | b')'))
            {
                i += 1;
            }
            out.push(Tok::Word(s[start..i].to_string()));
        }
    }
    Ok(out)
}

/// Parses `attr eq "value"` comparisons joined by `and`; anything else is invalidFilter.
pub fn parse_filter(s: &str) -> Result<Filter, ScimError> {
    let toks = tokenize(s).map_err(ScimError::invalid_filter)?;
    let mut pos = 0;
    let mut filter = parse_comparison(&toks, &mut pos)?;
    let mut comparisons = 1;
    while let Some(tok) = toks.get(pos) {
        match tok {
            Tok::Word(w) if w.eq_ignore_ascii_case("and") => {
                // Bounds the nesting that `matches` and drop recurse through.
                comparisons += 1;
                if comparisons > MAX_COMPARISONS {
                    return Err(ScimError::invalid_filter(format!(
                        "at most {MAX_COMPARISONS} comparisons are supported"
                    )));
                }
                pos += 1;
                let right = parse_comparison(&toks, &mut pos)?;
                filter = Filter::And(Box::new(filter), Box::new(right));
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("or") || w.eq_ignore_ascii_case("not") => {
                return Err(ScimError::invalid_filter(format!(
                    "'{w}' is not supported; only 'and'"
                )))
            }
            Tok::Word(w) => {
                return Err(ScimError::invalid_filter(format!(
                    "expected 'and', found '{w}'"
                )))
            }
            Tok::Str(v) => {
                return Err(ScimError::invalid_filter(format!(
                    "expected 'and', found \"{v}\""
                )))
            }
        }
    }
    Ok(filter)
}

fn parse_comparison(toks: &[Tok], pos: &mut usize) -> Result<Filter, ScimError> {
    let attr = match toks.get(*pos) {
        Some(Tok::Word(w)) => filter_attr(w)?,
        Some(Tok::Str(v)) => {
            return Err(ScimError::invalid_filter(format!(
                "expected an attribute name, found \"{v}\""
            )))
        }
        None => {
            return Err(ScimError::invalid_filter(
                "expected a comparison such as userName eq \"alice\"",
            ))
        }
    };
    let op = match toks.get(*pos + 1) {
        Some(Tok::Word(w)) => w,
        _ => {
            return Err(ScimError::invalid_filter(
                "expected an operator after the attribute",
            ))
        }
    };
    if !op.eq_ignore_ascii_case("eq") {
        return Err(ScimError::invalid_filter(format!(
            "operator '{op}' is not supported; only 'eq'"
        )));
    }
    let value = match toks.get(*pos + 2) {
        Some(Tok::Str(v)) => v.clone(),
        Some(Tok::Word(w)) => {
            return Err(ScimError::invalid_filter(format!(
                "expected a quoted string after '{op}', found '{w}'"
            )))
        }
        None => {
            return Err(ScimError::invalid_filter(format!(
                "missing value after '{op}'"
            )))
        }
    };
    *pos += 3;
    Ok(Filter::Eq(attr, value))
}

fn filter_attr(w: &str) -> Result<Attr, ScimError> {
    let name = strip_core_urn(w).unwrap_or(w);
    match name.to_ascii_lowercase().as_str() {
        "username" => Ok(Attr::UserName),
        "externalid" => Ok(Attr::ExternalId),
        "id" => Ok(Attr::Id),
        _ => Err(ScimError::invalid_filter(format!(
            "filtering on '{w}' is not supported; use userName, externalId or id"
        ))),
    }
}

/// userName is caseExact=false (RFC 7643 §4.1.1); id and externalId are case-exact.
pub fn matches(f: &Filter, u: &ScimUser) -> bool {
    match f {
        Filter::Eq(Attr::UserName, v) => eq_ignore_case(&u.user_name, v),
        Filter::Eq(Attr::ExternalId, v) => u.external_id.as_deref() == Some(v.as_str()),
        Filter::Eq(Attr::Id, v) => u.id.as_ref().map(UserId::as_str) == Some(v.as_str()),
        Filter::And(a, b) => matches(a, u) && matches(b, u),
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::protocol::testing::alice;

    fn eq(a: Attr, v: &str) -> Filter {
        Filter::Eq(a, v.into())
    }

    #[test]
    fn filters_parse() {
        assert_eq!(
            parse_filter("userName eq \"bjensen\"").unwrap(),
            eq(Attr::UserName, "bjensen")
        );
        assert_eq!(
            parse_filter("  USERNAME   EQ \"a b\" ").unwrap(),
            eq(Attr::UserName, "a b")
        );
        assert_eq!(
            parse_filter("externalId Eq \"x\"").unwrap(),
            eq(Attr::ExternalId, "x")
        );
        assert_eq!(parse_filter("id eq \"\"").unwrap(), eq(Attr::Id, ""));
        assert_eq!(
            parse_filter(r#"userName eq "say \"hi\" \\ \u00e9""#).unwrap(),
            eq(Attr::UserName, "say \"hi\" \\ é")
        );
        assert_eq!(
            parse_filter("urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"x\"").unwrap(),
            eq(Attr::UserName, "x")
        );
        assert_eq!(
            parse_filter("userName eq \"a\" and externalId eq \"b\" AND id eq \"c\"").unwrap(),
            Filter::And(
                Box::new(Filter::And(
                    Box::new(eq(Attr::UserName, "a")),
                    Box::new(eq(Attr::ExternalId, "b"))
                )),
                Box::new(eq(Attr::Id, "c"))
            )
        );
        assert_eq!(
            parse_filter("userName eq \"a and b\"").unwrap(),
            eq(Attr::UserName, "a and b")
        );
        assert!(parse_filter(&["id eq \"x\""; 16].join(" and ")).is_ok());
    }

    #[test]
    fn filters_reject() {
        let too_long = ["id eq \"x\""; 17].join(" and ");
        for f in [
            "",
            "userName",
            "userName eq",
            "userName eq bjensen",
            "userName eq 5",
            "userName eq true",
            "userName ne \"x\"",
            "userName co \"x\"",
            "userName pr",
            "displayName eq \"x\"",
            "emails[type eq \"work\"].value eq \"x\"",
            "userName eq \"a\" or id eq \"b\"",
            "not userName eq \"a\"",
            "userName eq \"a\" and",
            "userName eq \"a\" id eq \"b\"",
            "(userName eq \"a\")",
            "userName eq \"unterminated",
            "userName eq \"bad \\q escape\"",
            "\"x\" eq userName",
            too_long.as_str(),
        ] {
            let e = parse_filter(f).unwrap_err();
            assert_eq!((e.status, e.scim_type), (400, Some("invalidFilter")), "{f}");
            assert!(!e.detail.is_empty());
        }
    }

    #[test]
    fn filters_match() {
        let u = alice();
        let m = |f: &str| matches(&parse_filter(f).unwrap(), &u);
        assert!(m("userName eq \"ALICE@example.com\""));
        assert!(!m("userName eq \"alice\""));
        assert!(m("externalId eq \"ext-1\""));
        assert!(!m("externalId eq \"EXT-1\""));
        assert!(m("id eq \"u-1\""));
        assert!(!m("id eq \"U-1\""));
        assert!(m("userName eq \"alice@example.com\" and id eq \"u-1\""));
        assert!(!m("userName eq \"alice@example.com\" and id eq \"u-2\""));
        let nobody = ScimUser::default();
        assert!(!matches(&eq(Attr::ExternalId, ""), &nobody));
        let greek = ScimUser {
            user_name: "ΣΊΣΥΦΟΣ".into(),
            ..Default::default()
        };
        assert!(matches(&eq(Attr::UserName, "σίσυφοσ"), &greek));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::scim::protocol::testing::{json_string, recase};
    use crate::scim::protocol::user::USER_SCHEMA;
    use proptest::prelude::*;

    fn ws() -> impl Strategy<Value = String> {
        "[ \\t\\n\\r\\f]{1,3}"
    }

    /// An attribute as written and what it means (None: not one we filter on).
    fn known_filter_attr() -> impl Strategy<Value = (String, Option<Attr>)> {
        let known = prop_oneof![
            Just(("userName", Attr::UserName)),
            Just(("externalId", Attr::ExternalId)),
            Just(("id", Attr::Id)),
        ];
        (known, any::<u64>(), any::<bool>(), any::<u64>()).prop_map(
            |((name, attr), seed, urn, urn_seed)| {
                let name = recase(name, seed);
                let name = if urn {
                    format!("{}:{name}", recase(USER_SCHEMA, urn_seed))
                } else {
                    name
                };
                (name, Some(attr))
            },
        )
    }

    fn filter_attr_name() -> impl Strategy<Value = (String, Option<Attr>)> {
        prop_oneof![
            8 => known_filter_attr(),
            1 => prop_oneof![
                Just("displayName"),
                Just("emails.value"),
                Just("name.givenName"),
                Just("meta.created"),
                Just("userNames"),
                Just("ids"),
                Just("urn:ietf:params:scim:schemas:core:2.0:User"),
                Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
            ]
            .prop_map(|n| (n.to_string(), None)),
        ]
    }

    fn eq_op() -> impl Strategy<Value = (String, bool)> {
        any::<u64>().prop_map(|seed| (recase("eq", seed), true))
    }

    /// An operator as written, and whether it is the one we support.
    fn filter_op() -> impl Strategy<Value = (String, bool)> {
        prop_oneof![
            8 => eq_op(),
            1 => prop_oneof![
                Just("ne"), Just("co"), Just("sw"), Just("ew"), Just("gt"),
                Just("ge"), Just("lt"), Just("le"), Just("=="), Just("eq="),
            ]
            .prop_map(|o| (o.to_string(), false)),
        ]
    }

    #[derive(Debug, Clone)]
    enum Val {
        /// A JSON string literal: the text and how it is escaped.
        Str(String, Vec<u8>),
        /// Anything else written where the value goes.
        Bare(&'static str),
        /// `pr`: no value at all.
        Missing,
    }

    fn string_value() -> impl Strategy<Value = Val> {
        (
            prop_oneof![
                any::<String>(),
                "[a-z@. \"\\\\/]{0,12}",
                Just("a and b".to_string())
            ],
            proptest::collection::vec(any::<u8>(), 1..8),
        )
            .prop_map(|(s, e)| Val::Str(s, e))
    }

    fn filter_value() -> impl Strategy<Value = Val> {
        prop_oneof![
            8 => string_value(),
            1 => prop_oneof![
                Just("true"), Just("false"), Just("null"), Just("42"), Just("bjensen"),
                Just("'single'"),
            ]
            .prop_map(Val::Bare),
            1 => Just(Val::Missing),
        ]
    }

    #[derive(Debug, Clone)]
    struct Cmp {
        attr: (String, Option<Attr>),
        op: (String, bool),
        value: Val,
        gaps: (String, String),
    }

    impl Cmp {
        fn print(&self) -> String {
            let value = match &self.value {
                Val::Str(s, seeds) => json_string(s, seeds),
                Val::Bare(b) => b.to_string(),
                Val::Missing => String::new(),
            };
            format!(
                "{}{}{}{}{value}",
                self.attr.0, self.gaps.0, self.op.0, self.gaps.1
            )
        }

        /// The comparison it parses to, if it is in the subset we support.
        fn supported(&self) -> Option<Filter> {
            match (&self.attr.1, self.op.1, &self.value) {
                (Some(a), true, Val::Str(s, _)) => Some(Filter::Eq(*a, s.clone())),
                _ => None,
            }
        }
    }

    fn comparison() -> impl Strategy<Value = Cmp> {
        (
            filter_attr_name(),
            filter_op(),
            filter_value(),
            (ws(), ws()),
        )
            .prop_map(|(attr, op, value, gaps)| Cmp {
                attr,
                op,
                value,
                gaps,
            })
    }

    /// Comparisons known to be in the supported subset.
    fn supported_comparison() -> impl Strategy<Value = Cmp> {
        (known_filter_attr(), eq_op(), string_value(), (ws(), ws())).prop_map(
            |(attr, op, value, gaps)| Cmp {
                attr,
                op,
                value,
                gaps,
            },
        )
    }

    /// RFC 7644 filter expressions, more than we support: and, or, not, grouping.
    #[derive(Debug, Clone)]
    enum Expr {
        Cmp(Cmp),
        And(Box<Expr>, Box<Expr>, String, (String, String)),
        Or(Box<Expr>, Box<Expr>),
        Not(Box<Expr>),
        Group(Box<Expr>),
    }

    impl Expr {
        fn print(&self) -> String {
            match self {
                Expr::Cmp(c) => c.print(),
                Expr::And(l, r, and, (a, b)) => format!("{}{a}{and}{b}{}", l.print(), r.print()),
                Expr::Or(l, r) => format!("{} or {}", l.print(), r.print()),
                Expr::Not(e) => format!("not ({})", e.print()),
                Expr::Group(e) => format!("({})", e.print()),
            }
        }

        /// The comparisons of an and-chain of supported comparisons, in order; None when
        /// anything outside the subset is used.
        fn flatten(&self, out: &mut Vec<Filter>) -> Option<()> {
            match self {
                Expr::Cmp(c) => out.push(c.supported()?),
                Expr::And(l, r, _, _) => {
                    l.flatten(out)?;
                    r.flatten(out)?;
                }
                Expr::Or(..) | Expr::Not(_) | Expr::Group(_) => return None,
            }
            Some(())
        }

        /// What `parse_filter` must return: the comparisons joined from the left.
        fn expected(&self) -> Option<Filter> {
            let mut list = Vec::new();
            self.flatten(&mut list)?;
            if list.len() > MAX_COMPARISONS {
                return None;
            }
            list.into_iter()
                .reduce(|l, r| Filter::And(Box::new(l), Box::new(r)))
        }
    }

    fn and_word() -> impl Strategy<Value = (String, (String, String))> {
        (any::<u64>(), ws(), ws()).prop_map(|(seed, a, b)| (recase("and", seed), (a, b)))
    }

    fn expr() -> impl Strategy<Value = Expr> {
        comparison()
            .prop_map(Expr::Cmp)
            .prop_recursive(5, 24, 2, |inner| {
                prop_oneof![
                    6 => (inner.clone(), inner.clone(), and_word()).prop_map(|(l, r, (w, gaps))| {
                        Expr::And(Box::new(l), Box::new(r), w, gaps)
                    }),
                    1 => (inner.clone(), inner.clone())
                        .prop_map(|(l, r)| Expr::Or(Box::new(l), Box::new(r))),
                    1 => inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
                    1 => inner.prop_map(|e| Expr::Group(Box::new(e))),
                ]
            })
    }

    /// A printer for parsed filters (the module has none): the canonical spelling.
    fn print_filter(f: &Filter) -> String {
        match f {
            Filter::Eq(a, v) => {
                let name = match a {
                    Attr::UserName => "userName",
                    Attr::ExternalId => "externalId",
                    Attr::Id => "id",
                };
                format!("{name} eq {}", serde_json::to_string(v).unwrap())
            }
            Filter::And(l, r) => format!("{} and {}", print_filter(l), print_filter(r)),
        }
    }

    fn comparisons(f: &Filter) -> usize {
        match f {
            Filter::Eq(..) => 1,
            Filter::And(l, r) => comparisons(l) + comparisons(r),
        }
    }

    fn assert_invalid_filter(
        r: Result<Filter, ScimError>,
        input: &str,
    ) -> Result<(), TestCaseError> {
        match r {
            Ok(f) => Err(TestCaseError::fail(format!("{input:?} accepted as {f:?}"))),
            Err(e) => {
                prop_assert_eq!(
                    (e.status, e.scim_type),
                    (400, Some("invalidFilter")),
                    "{:?}",
                    input
                );
                prop_assert!(!e.detail.is_empty());
                Ok(())
            }
        }
    }

    proptest! {
        // Moderate counts; shrinking is bounded so that a failure reports in seconds.
        #![proptest_config(ProptestConfig {
            cases: 256,
            max_shrink_iters: 4096,
            ..ProptestConfig::default()
        })]

        /// Every value survives the JSON escapes IdPs may use, and and-chains of up to 16
        /// supported comparisons parse to exactly the comparisons written, joined from the
        /// left; 17 or more are refused.
        #[test]
        fn filter_and_chains_round_trip(
            chain in proptest::collection::vec(supported_comparison(), 1..20),
            ands in proptest::collection::vec(and_word(), 19),
            pad in ("[ \\t]{0,2}", "[ \\t]{0,2}"),
        ) {
            let mut text = pad.0.clone();
            for (i, c) in chain.iter().enumerate() {
                if i > 0 {
                    let (w, (a, b)) = &ands[i - 1];
                    text.push_str(&format!("{a}{w}{b}"));
                }
                text.push_str(&c.print());
            }
            text.push_str(&pad.1);
            let r = parse_filter(&text);
            if chain.len() > MAX_COMPARISONS {
                assert_invalid_filter(r, &text)?;
            } else {
                let want = chain
                    .iter()
                    .map(|c| c.supported().unwrap())
                    .reduce(|l, r| Filter::And(Box::new(l), Box::new(r)))
                    .unwrap();
                prop_assert_eq!(r.map_err(|e| e.detail), Ok(want), "{:?}", text);
            }
        }

        /// Filters from the RFC grammar (and, or, not, grouping, any operator, attribute or
        /// value): accepted exactly when they stay in the supported subset, and then parsed
        /// to the structure generated; refused with invalidFilter otherwise.
        #[test]
        fn filter_grammar_accepts_exactly_the_subset(e in expr()) {
            let text = e.print();
            match e.expected() {
                Some(want) => {
                    let got = parse_filter(&text).map_err(|e| e.detail);
                    prop_assert_eq!(got, Ok(want), "{:?}", text);
                }
                None => assert_invalid_filter(parse_filter(&text), &text)?,
            }
        }

        /// Any text: no panic, invalidFilter when refused, and what is accepted prints to a
        /// filter that parses back to the same thing.
        #[test]
        fn filter_arbitrary_text(
            s in prop_oneof![
                any::<String>(),
                proptest::collection::vec(
                    prop_oneof![
                        Just("userName"), Just("id"), Just("externalId"), Just("eq"),
                        Just("EQ"), Just("and"), Just("or"), Just("not"), Just("("), Just(")"),
                        Just("\"x\""), Just("\"a\\\"b\""), Just("\""), Just("\\"),
                        Just("\"\\u12\""), Just("\"\\ud800\""), Just("\"\\ud83d\\ude00\""),
                        Just("["), Just("]"), Just("pr"), Just(""), Just("é"),
                        Just("urn:ietf:params:scim:schemas:core:2.0:User:"),
                    ],
                    0..12,
                )
                .prop_map(|t| t.join(" ")),
                proptest::collection::vec(
                    prop_oneof![Just("id"), Just("eq"), Just("\"v\""), Just("and"), Just("\\"), Just("\""), Just("é")],
                    0..12,
                )
                .prop_map(|t| t.concat()),
            ]
        ) {
            match parse_filter(&s) {
                Ok(f) => {
                    prop_assert!(comparisons(&f) <= MAX_COMPARISONS);
                    let printed = print_filter(&f);
                    prop_assert_eq!(
                        parse_filter(&printed).map_err(|e| e.detail),
                        Ok(f),
                        "{:?} → {:?}", s, printed
                    );
                }
                Err(e) => {
                    prop_assert_eq!((e.status, e.scim_type), (400, Some("invalidFilter")));
                }
            }
        }
    }
}
