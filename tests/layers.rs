//! The layer rule, checked on the source: every `crate::` and `super::` path in `src/` may
//! only name a module of its own layer or a lower one, and no two modules may reach each
//! other through imports. docs/architecture.md draws the same layers; a change that breaks
//! them fails here, with the file and the path that breaks them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module belongs to the layer of the longest prefix named here.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundations",
        &[
            "clock",
            "secret",
            "error",
            "config",
            "text",
            "metrics",
            "validity",
            "key_format",
            "key_lookup",
            "ids",
            "scim::protocol",
            "sync::plan",
        ],
    ),
    ("storage", &["store", "audit", "transfer"]),
    ("directories", &["directory", "kerberos", "passwords"]),
    (
        "domain",
        &[
            "caller",
            "auth_cache",
            "throttle",
            "last_used",
            "leadership",
            "services",
            "revocation",
            "sessions",
            "bearer",
            "tokens",
            "options",
            "users",
            "service_accounts",
            "keys",
            "key_usage",
            "key_report",
            "auth",
            "events",
            "scim",
            "sync",
            "notify",
            "signals",
            "ssf",
            "secret_scanning",
        ],
    ),
    (
        "application",
        &["app", "jobs", "hearing", "feeds", "systemd"],
    ),
    ("interfaces", &["http", "cli", "main", "lib"]),
];

/// Module path (`keys::format`) of every file under `src/`.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if parts.last().map(String::as_str) == Some("mod") {
                parts.pop();
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    let mut best: Option<(usize, usize, &'static str)> = None;
    for (i, (name, members)) in LAYERS.iter().enumerate() {
        for m in *members {
            let matches = module == *m || module.starts_with(&format!("{m}::"));
            if matches && best.is_none_or(|(len, _, _)| m.len() > len) {
                best = Some((m.len(), i, name));
            }
        }
    }
    best.map(|(_, i, name)| (i, name))
}

/// The source without comments (a doc comment may name a path it does not import) and
/// without inline `#[cfg(test)] mod … { … }` blocks, whose `super` is the file's own module.
fn code_of(text: &str) -> String {
    let code = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = String::with_capacity(code.len());
    let mut rest = code.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let is_module = after.trim_start().starts_with("mod ");
        match (is_module, after.find('{')) {
            (true, Some(open)) if !after[..open].contains(';') => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (i, ch) in after[open..].char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// Expands `use` trees: `crate::{a::{b, c}, d}` → `crate::a::b`, `crate::a::c`, `crate::d`.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        if !path.is_empty() {
            out.push(format!("{prefix}{path}"));
        }
        return;
    };
    let head = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut depth = 0;
    let mut start = 0;
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&format!("{prefix}{head}"), &inner[start..i], out);
                start = i + 1;
            }
            _ => {}
        }
    }
    expand(&format!("{prefix}{head}"), &inner[start..], out);
}

/// Every path a file names that starts with `crate::` or `super::`, as written.
fn paths_in(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `use` statements, braces included.
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        let stmt_start = &rest[i + 4..];
        rest = stmt_start;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let trimmed = stmt_start.trim_start();
        if !(trimmed.starts_with("crate::") || trimmed.starts_with("super::")) {
            continue;
        }
        if let Some(end) = trimmed.find(';') {
            expand("", &trimmed[..end], &mut out);
        }
    }
    // Paths written in full inside the code (`crate::transfer::redact(..)`).
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if code[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path.trim_end_matches(':').to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The module a path names: the longest known module it starts with. (`super` is the
/// parent of the module, whatever file holds it.)
fn resolve(from: &str, path: &str, known: &BTreeMap<String, PathBuf>) -> Option<String> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut full: Vec<&str> = from.split("::").filter(|s| !s.is_empty()).collect();
    if segments.first() == Some(&"crate") {
        full.clear();
        segments.remove(0);
    }
    while segments.first() == Some(&"super") {
        full.pop();
        segments.remove(0);
    }
    full.extend(segments);
    (1..=full.len())
        .rev()
        .map(|n| full[..n].join("::"))
        .find(|m| known.contains_key(m))
}

#[test]
fn imports_only_point_down_and_never_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&src);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    let mut unplaced = Vec::new();
    for (module, file) in &known {
        let Some((layer, layer_name)) = layer_of(module) else {
            unplaced.push(module.clone());
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for path in paths_in(&code_of(&text)) {
            let Some(target) = resolve(module, &path, &known) else {
                continue;
            };
            // A module's own children and the crate root are not edges between rooms.
            if target == *module || target == "lib" || target.starts_with(&format!("{module}::")) {
                continue;
            }
            let Some((target_layer, target_name)) = layer_of(&target) else {
                continue;
            };
            if target_layer > layer {
                upward.push(format!(
                    "{module} ({layer_name}) uses `{path}`, which is in {target} ({target_name})"
                ));
            }
            edges.entry(module.clone()).or_default().insert(target);
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules without a layer (add them to LAYERS here and to docs/architecture.md): {unplaced:?}"
    );
    let mut found: Vec<String> = upward;
    found.extend(
        circles(&edges)
            .iter()
            .map(|c| format!("circle: {}", c.join(" → "))),
    );
    assert!(
        found.is_empty(),
        "imports that point up a layer, and import circles (modules that reach each other):\n{}",
        found.join("\n")
    );
}

/// Strongly connected components of more than one module (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(targets) = s.edges.get(v) {
            for w in targets {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(lw));
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low[v];
                    s.low.insert(v, lv.min(iw));
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn the_checker_sees_use_trees_and_paths_in_code() {
    let code = "use crate::{app::App, keys::{format, cache::LastUsed as L}};\n\
                fn f() { crate::transfer::redact(x); let s = super::extract::cookie(); }";
    let paths = paths_in(code);
    for expected in [
        "crate::app::App",
        "crate::keys::format",
        "crate::keys::cache::LastUsed",
        "crate::transfer::redact",
        "super::extract::cookie",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not in {paths:?}"
        );
    }
    let known: BTreeMap<String, PathBuf> = ["http", "http::extract", "http::ui", "keys"]
        .iter()
        .map(|m| (m.to_string(), PathBuf::new()))
        .collect();
    assert_eq!(
        resolve("http::ui::admin", "super::super::extract::cookie", &known).as_deref(),
        Some("http::extract")
    );
    assert_eq!(
        resolve("http::auth", "super::extract::cookie", &known).as_deref(),
        Some("http::extract")
    );
    assert_eq!(
        resolve("http::auth", "crate::keys::verify", &known).as_deref(),
        Some("keys")
    );
    let stripped = code_of(
        "use crate::a; // crate::b in a comment\n#[cfg(test)]\nmod tests {\n    use super::*;\n    fn f() { if x { } }\n}\nfn g() { crate::c::d(); }",
    );
    assert_eq!(paths_in(&stripped), vec!["crate::a", "crate::c::d"]);
    let mut up = BTreeMap::new();
    up.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    up.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circles(&up), vec![vec!["a".to_string(), "b".to_string()]]);
}
