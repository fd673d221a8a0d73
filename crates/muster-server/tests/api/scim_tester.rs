//! scim2-tester (PyPI: the python-scim project's SCIM compliance checker)
//! against the live SCIM door: discovery, then create, read, replace,
//! query and delete of every resource type the gateway describes, with
//! the values it makes up from the published schemas. It runs from the
//! virtualenv `scripts/install-test-tools` makes in `.tools/venv`; under
//! CI=true a missing checker is a failure, elsewhere a loud skip.
use crate::helpers::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

#[tokio::test]
async fn scim2_tester_finds_no_error() {
    let Some(python) = venv_python("scim2_tester_finds_no_error", "scim2_tester, httpx2") else {
        return;
    };
    let app = spawn_app().await;
    let c = app
        .create_client(json!({
            "role": "scim",
            "write_policy": {"attributes": ["*"], "roles": ["*"]}
        }))
        .await;
    let r = app
        .admin_post(&format!("/api/v1/clients/{}/scim-token", c.id), json!({}))
        .await;
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/scim_tester.py");
    let run = tokio::process::Command::new(python)
        .arg(script)
        .arg(app.url("/scim/v2"))
        .arg(&token)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("scim2-tester ran longer than 300 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "scim2-tester found errors:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
