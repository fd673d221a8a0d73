//! The customer-side worker examples, `examples/workers/push.py` and
//! `examples/workers/push.sh`, run as a scheduler would run them against a
//! live gateway: a file with one bad row is pushed (exit code 3, the counts
//! and the row error printed, no value), the good rows become people, and a
//! resend with the same Idempotency-Key answers with the same import
//! without making a second one. A client whose tokens are one-time works
//! too: the scripts fetch a token for every request.
use crate::helpers::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The bad row's email, which must never appear in the scripts' output.
const BAD_EMAIL: &str = "not-an-email";

fn worker_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/workers")
        .join(name)
}

/// Five good rows (E0001..E0005, rows 2 to 6) and a bad one (row 7).
fn export_with_one_bad_row() -> String {
    let mut csv = rows(5);
    csv.push_str(&format!("E0099,Bad,Row,{BAD_EMAIL},Ops,A,01/15/2020\n"));
    csv
}

/// Writes `secret` to a file only its owner may read.
fn secret_file(dir: &Path, name: &str, secret: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The id in the summary line, `import ID STATE...: N rows: ...`.
    fn import_id(&self) -> String {
        self.stdout
            .lines()
            .rev()
            .find_map(|l| {
                let rest = l.strip_prefix("import ")?;
                rest.contains(" rows: ")
                    .then(|| rest.split_whitespace().next().unwrap().to_owned())
            })
            .unwrap_or_else(|| panic!("no summary line in:\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `interpreter script file args...` as the client `id`, whose secret
/// is in `secret_path`, and collects what it printed.
async fn run_worker(
    app: &TestApp,
    interpreter: &Path,
    script: &Path,
    file: &Path,
    id: &str,
    secret_path: &Path,
    args: &[&str],
) -> Run {
    let mut cmd = tokio::process::Command::new(interpreter);
    cmd.arg(script)
        .arg(file)
        .args(args)
        .env("MUSTER_URL", &app.base)
        .env("MUSTER_CLIENT_ID", id)
        .env("MUSTER_CLIENT_SECRET_FILE", secret_path)
        .env_remove("MUSTER_CLIENT_SECRET")
        // The gateway is on loopback: no proxy from the environment.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{} did not end within 180 s", script.display()))
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The whole check, for one script run by `interpreter`.
async fn pushes_reports_and_resends_idempotently(interpreter: &Path, script: &Path) {
    let app = spawn_app().await;
    let (client, token) = app.hr_setup().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("employees.csv");
    std::fs::write(&file, export_with_one_bad_row()).unwrap();
    let secret = secret_file(dir.path(), "client-secret", &client.secret);
    let key = "employees-2026-12-04";
    let args = ["--mapping", "hr", "--wait", "60", "--idempotency-key", key];

    // The first push: the good rows are applied, the bad one reported.
    let first = run_worker(&app, interpreter, script, &file, &client.id, &secret, &args).await;
    assert_eq!(first.code, Some(3), "{first}");
    assert!(
        first.stdout.contains(
            " succeeded_with_errors: 6 rows: 5 created, 0 updated, 0 unchanged, 0 deactivated, 1 failed"
        ),
        "{first}"
    );
    assert!(
        first
            .stdout
            .contains(r#"row 7 column "Work Email" (email): invalid_email"#),
        "{first}"
    );
    for text in [&first.stdout, &first.stderr] {
        assert!(!text.contains(BAD_EMAIL), "a value was printed: {first}");
        assert!(!text.contains(&client.secret), "the secret was printed");
        assert!(!text.contains("mct_"), "a token was printed: {first}");
    }
    let id = first.import_id();

    // The gateway agrees: the import is the client's, the people exist.
    let import: Value = app
        .get_json_as(&app.admin_token, &format!("/api/v1/imports/{id}"))
        .await;
    assert_eq!(import["state"], "succeeded_with_errors", "{import}");
    assert_eq!(import["client_id"], client.id.as_str());
    assert_eq!(import["counts"]["created"], 5);
    for i in 1..=5 {
        let p: Value = app
            .get_json_as(&app.admin_token, &format!("/api/v1/people/E{i:04}"))
            .await;
        assert_eq!(p["external_id"], format!("E{i:04}"), "{p}");
        assert_eq!(p["attributes"]["given_name"], format!("Name{i}"), "{p}");
        assert_eq!(
            p["attributes"]["email"],
            format!("name{i}@example.com"),
            "{p}"
        );
    }
    assert_eq!(
        app.get_as(&app.admin_token, "/api/v1/people/E0099")
            .await
            .status(),
        reqwest::StatusCode::NOT_FOUND,
        "the bad row was not applied"
    );

    // The same file with the same key: the same import, not a second one.
    let again = run_worker(&app, interpreter, script, &file, &client.id, &secret, &args).await;
    assert_eq!(again.code, Some(3), "{again}");
    assert_eq!(again.import_id(), id, "{again}");
    assert!(
        again.stdout.contains("5 created, 0 updated, 0 unchanged"),
        "the first import's counts: {again}"
    );
    let imports: Value = app.get_json_as(&token, "/api/v1/imports").await;
    assert_eq!(
        imports["items"].as_array().map(Vec::len),
        Some(1),
        "{imports}"
    );

    // A client with one-time tokens: every request needs a token of its
    // own, which the scripts fetch.
    let once = app
        .create_client(json!({
            "role": "importer",
            "token_policy": "one_time",
            "write_policy": {"attributes": ["*"]}
        }))
        .await;
    let once_secret = secret_file(dir.path(), "once-secret", &once.secret);
    let third = run_worker(
        &app,
        interpreter,
        script,
        &file,
        &once.id,
        &once_secret,
        &["--mapping", "hr", "--wait", "60"],
    )
    .await;
    assert_eq!(third.code, Some(3), "{third}");
    assert!(third.stdout.contains(" 1 failed"), "{third}");
    assert!(third.stdout.contains("invalid_email"), "{third}");
    assert_ne!(third.import_id(), id, "{third}");
}

#[tokio::test]
async fn the_python_worker_pushes_reports_and_resends_idempotently() {
    let Some(python) = venv_python(
        "the_python_worker_pushes_reports_and_resends_idempotently",
        "requests",
    ) else {
        return;
    };
    pushes_reports_and_resends_idempotently(&python, &worker_script("push.py")).await;
}

#[tokio::test]
async fn the_curl_worker_pushes_reports_and_resends_idempotently() {
    if !crate::encrypted::have("bash") || !crate::encrypted::have("curl") {
        return;
    }
    pushes_reports_and_resends_idempotently(Path::new("bash"), &worker_script("push.sh")).await;
}
