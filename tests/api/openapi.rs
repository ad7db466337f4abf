//! The OpenAPI document: served without credentials, equal to the committed snapshot
//! docs/openapi.json (so that a change to the API shows in review as a diff of it), and
//! whole: every operation named, every scheme and reference defined, a valid 3.1 document.

use crate::app::TestApp;
use axum::http::{header, StatusCode};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")
}

async fn served() -> (String, Value) {
    let app = TestApp::spawn().await;
    let r = app.get("/api/openapi.json").send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header(header::CONTENT_TYPE.as_str()), "application/json");
    let doc = r.json();
    (r.body, doc)
}

#[tokio::test]
async fn the_document_is_served_without_credentials_and_matches_the_snapshot() {
    let (text, doc) = served().await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "accesskeyd");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let path = snapshot_path();
    let fresh = format!("{}\n", text.trim_end());
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("write docs/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        panic!(
            "the API's OpenAPI document differs from docs/openapi.json: if the change is \
             meant, run `UPDATE_OPENAPI=1 cargo test --test api openapi` to rewrite the file \
             and commit it with the change"
        );
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation of the document, as (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        out.insert(r.clone());
                    }
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_operation_is_whole() {
    let (_, doc) = served().await;
    let ops = operations(&doc);
    let schemes: BTreeSet<&str> = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        schemes,
        BTreeSet::from([
            "basic",
            "ingestionBearer",
            "scimBearer",
            "session",
            "sessionBearer",
            "sqAuth",
            "ssfPushBearer"
        ])
    );
    let mut ids = BTreeSet::new();
    for (method, path, op) in &ops {
        let name = format!("{} {path}", method.to_uppercase());
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{name}: no operationId");
        assert!(ids.insert(id.to_string()), "{name}: operationId {id} twice");
        assert!(
            op["tags"].as_array().is_some_and(|t| !t.is_empty()),
            "{name}: no tag"
        );
        assert!(op["summary"].is_string(), "{name}: no summary");
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses
                .keys()
                .any(|s| s.starts_with('2') || s.starts_with('3')),
            "{name}: no success answer"
        );
        // An operation that takes credentials says how it refuses them.
        if let Some(security) = op["security"].as_array() {
            for requirement in security {
                for scheme in requirement.as_object().expect("requirement").keys() {
                    assert!(
                        schemes.contains(scheme.as_str()),
                        "{name}: unknown scheme {scheme}"
                    );
                }
            }
            assert!(responses.contains_key("401"), "{name}: no 401");
        }
        // Changes are never made with the browser session cookie.
        if method != "get" {
            let cookie = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r.get("session").is_some());
            assert!(!cookie, "{name}: a change with the session cookie");
        }
        if op.get("requestBody").is_some() {
            assert!(responses.contains_key("400"), "{name}: a body, no 400");
            assert!(responses.contains_key("413"), "{name}: a body, no 413");
        }
    }
    // Every reference is to something the document holds.
    let mut all = BTreeSet::new();
    refs(&doc, &mut all);
    for r in all {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{r}: not in the document");
    }
}

/// The API's routes are all registered with their operation (`utoipa_axum::routes!`); only
/// these are added without one. The probes, the pages and the metrics are no API and are
/// built in other files (health.rs, ui/).
const UNDOCUMENTED: &[&str] = &["\"/scim/v2/{*rest}\""];

#[test]
fn no_api_route_is_added_without_its_operation() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/http") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.ends_with(".rs") || name == "health.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.starts_with("//") {
                continue;
            }
            if let Some(at) = line.find(".route(") {
                let first = line[at + ".route(".len()..]
                    .split(',')
                    .next()
                    .unwrap_or_default()
                    .trim();
                if !UNDOCUMENTED.contains(&first) {
                    found.push(format!("{name}:{}: {line}", i + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "routes added without an operation (use `.routes(routes!(handler))` with a \
         #[utoipa::path] on the handler):\n{}",
        found.join("\n")
    );
}

/// A 3.1 validator, where one is installed (`pip install openapi-spec-validator`; the
/// end-to-end script installs it).
#[test]
fn the_snapshot_is_a_valid_openapi_3_1_document() {
    let check = "import sys\n\
        try:\n    from openapi_spec_validator import validate\n\
        except ImportError:\n    print('skipped: openapi-spec-validator is not installed'); sys.exit(0)\n\
        from openapi_spec_validator.readers import read_from_filename\n\
        spec, _ = read_from_filename(sys.argv[1])\n\
        validate(spec)\nprint('valid')\n";
    let out = std::process::Command::new("python3")
        .args(["-c", check])
        .arg(snapshot_path())
        .output();
    match out {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "docs/openapi.json is not a valid OpenAPI document:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!("openapi-spec-validator: {}", text.trim());
        }
        Err(e) => eprintln!("skipped: no python3 ({e})"),
    }
}
