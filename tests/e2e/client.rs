//! A Python client generated from docs/openapi.json by a well-known generator (PyPI
//! `openapi-python-client`) runs the key lifecycle against the daemon
//! (tests/sdk/generated_client.py): the document is usable, not only valid.

use crate::harness::daemon::{Daemon, ADMIN, ADMIN_PASSWORD};
use std::process::{Command, Output};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn a_client_generated_from_the_document_runs_the_key_lifecycle() {
    let d = Daemon::start(None).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let parent = dir.path().to_path_buf();
    let url = d.url.clone();
    let (generated, ran) = tokio::task::spawn_blocking(move || {
        // The document as API clients see it: without the shared-signals push, which only
        // transmitters call, with `application/secevent+jwt` (a media type the generator
        // does not know).
        let full = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        let mut doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(full).expect("read the document"))
                .expect("the document is JSON");
        let removed = doc["paths"]
            .as_object_mut()
            .expect("paths")
            .remove("/api/ssf/{directory}/events");
        assert!(removed.is_some(), "the push endpoint moved: update this test");
        let document = parent.join("openapi.json");
        std::fs::write(&document, doc.to_string()).expect("write the client's document");
        // `--meta none`: the package alone, importable from `parent`; a warning (a schema
        // it could not turn into Python) fails the test.
        let generated = Command::new("openapi-python-client")
            .args(["generate", "--path"])
            .arg(&document)
            .args(["--meta", "none", "--fail-on-warning"])
            .arg("--output-path")
            .arg(parent.join("accesskeyd_client"))
            .current_dir(&parent)
            .output()
            .expect("run openapi-python-client (pip install openapi-python-client; scripts/test.sh does)");
        if !generated.status.success() {
            return (generated, None);
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/generated_client.py");
        let ran = Command::new("python3")
            .arg(script)
            .arg(&parent)
            .args([&url, ADMIN, ADMIN_PASSWORD])
            .output()
            .expect("run python3");
        (generated, Some(ran))
    })
    .await
    .expect("generator task");
    assert!(generated.status.success(), "generate: {}", text(&generated));
    let ran = ran.expect("the script ran");
    let out = text(&ran);
    assert!(ran.status.success() && out.contains("client: ok"), "{out}");
}
