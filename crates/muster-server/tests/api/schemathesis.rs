//! schemathesis (PyPI) against a live gateway and its own `/openapi.json`:
//! generated requests to every documented operation, as the initial admin,
//! with two checks: no answer is a 5xx, and every answer matches the
//! document (status, content type, schema). Bounded in time and count.
//! It runs from the virtualenv `scripts/install-test-tools` makes in
//! `.tools/venv`; under CI=true a missing tool is a failure, elsewhere a
//! loud skip.
use crate::helpers::*;
use std::time::Duration;

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let Some(python) = venv_python(
        "schemathesis_finds_no_server_error_and_no_answer_outside_the_document",
        "schemathesis",
    ) else {
        return;
    };
    let app = spawn_app().await;
    let st = python.with_file_name("schemathesis");
    let report = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(st)
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args([
            "--header",
            &format!("Authorization: Bearer {}", app.admin_token),
        ])
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args(["--phases", "examples,fuzzing"])
        .args(["--max-examples", "5", "--max-time", "90", "--workers", "1"])
        // A long poll of the change feed may hold its answer 30 s.
        .args(["--request-timeout", "45", "--seed", "20261204"])
        // Key generation (RSA 4096 among the choices) takes long in a
        // debug build; the key routes have their own tests.
        .args(["--exclude-path-regex", "^/api/v1/keys"])
        .args(["--report-dir", &report.path().display().to_string()])
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("schemathesis ran longer than 300 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Tested:"), "{text}");
}
