//! The README's quickstart, run for real: the `muster` binary serves on a
//! loopback port, and the same binary's `admin` and `push` commands talk to
//! it, as an operator and a scheduled job would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_muster")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Server {
    child: Child,
    url: String,
    data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// True once `/healthz` answers 200 (the listener alone may accept
/// connections before the gateway serves).
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    if c.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

fn start() -> Server {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(bin())
        .arg("serve")
        .env("MUSTER_DATA_DIR", data.path())
        .env("MUSTER_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !healthy(port) {
        assert!(Instant::now() < deadline, "muster serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, url, data }
}

impl Server {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(repo())
            .env("MUSTER_URL", &self.url)
            .env("MUSTER_DATA_DIR", self.data.path())
            .env_remove("MUSTER_ADMIN_TOKEN")
            .env_remove("MUSTER_CLIENT_ID")
            .env_remove("MUSTER_CLIENT_SECRET");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn client(&self, extra: &[&str]) -> (String, String) {
        let mut args = vec!["admin", "client", "create", "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["client"]["client_id"].as_str().unwrap().to_owned(),
            v["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    fn push(&self, creds: &(String, String), args: &[&str]) -> Output {
        let mut a = vec!["push"];
        a.extend_from_slice(args);
        self.cmd(&a)
            .env("MUSTER_CLIENT_ID", &creds.0)
            .env("MUSTER_CLIENT_SECRET", &creds.1)
            .output()
            .unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_quickstart_pushes_an_hr_export_and_reports_the_result() {
    let s = start();
    let token_file = s.data.path().join("initial-admin-token");
    assert!(token_file.exists());

    let out = s.run(&[
        "admin",
        "mapping",
        "put",
        "workday",
        "examples/hr/mapping.toml",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("version 1"));

    let creds = s.client(&[
        "--role",
        "importer",
        "--attributes",
        "*",
        "--grant-roles",
        "*",
    ]);
    let out = s.push(
        &creds,
        &["examples/hr/employees.csv", "--mapping", "workday"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("50 rows: 50 created"), "{}", text(&out));

    // The same file again changes nothing.
    let out = s.push(
        &creds,
        &[
            "examples/hr/employees.csv",
            "--mapping",
            "workday",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["import"]["counts"]["unchanged"], 50);

    // A file with a bad row: success with row errors, exit code 3.
    let bad = s.data.path().join("bad.csv");
    let mut csv = std::fs::read_to_string(repo().join("examples/hr/employees.csv")).unwrap();
    csv.push_str("E9999999,,Nobody,,x@example.com,Ops,Clerk,,Remote,A,01/01/2020,,employee\n");
    std::fs::write(&bad, csv).unwrap();
    let out = s.push(&creds, &[bad.to_str().unwrap(), "--mapping", "workday"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("required"), "{}", text(&out));

    // An unknown mapping fails with a clear message and exit code 1.
    let out = s.push(&creds, &["examples/hr/employees.csv", "--mapping", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("unknown_mapping"), "{}", text(&out));

    // Wrong credentials: exit code 1, and the secret is not echoed.
    let wrong = (creds.0.clone(), "mcs_wrong-secret".to_owned());
    let out = s.push(
        &wrong,
        &["examples/hr/employees.csv", "--mapping", "workday"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("invalid_client"));
    assert!(!text(&out).contains("mcs_wrong-secret"));

    let out = s.run(&["admin", "import", "list"]);
    assert!(out.status.success());
    assert!(text(&out).contains("succeeded_with_errors"));

    let out = s.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("default: ok"), "{}", text(&out));
}

#[test]
fn a_client_with_one_time_tokens_renews_its_token_for_every_request() {
    let s = start();
    let out = s.run(&[
        "admin",
        "mapping",
        "put",
        "workday",
        "examples/hr/mapping.toml",
    ]);
    assert!(out.status.success());
    let creds = s.client(&[
        "--role",
        "importer",
        "--token-policy",
        "one_time",
        "--attributes",
        "*",
        "--grant-roles",
        "*",
    ]);
    // Upload, polling and the result each need their own token.
    let out = s.push(
        &creds,
        &["examples/hr/employees.csv", "--mapping", "workday"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn sigterm_stops_the_gateway_cleanly() {
    let mut s = start();
    let pid = s.child.id().to_string();
    let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "muster serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut log = String::new();
    use std::io::Read;
    s.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("initial-admin-token"), "{log}");
    let token = std::fs::read_to_string(s.data.path().join("initial-admin-token")).unwrap();
    assert!(
        !log.contains(token.trim()),
        "the admin token reached the log"
    );
}

#[test]
fn push_encrypt_sends_only_ciphertext_to_the_tenants_key_and_imports_it() {
    let s = start();
    let out = s.run(&[
        "admin",
        "mapping",
        "put",
        "workday",
        "examples/hr/mapping.toml",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let creds = s.client(&[
        "--role",
        "importer",
        "--attributes",
        "*",
        "--grant-roles",
        "*",
    ]);
    // Plaintext is refused for this client from now on.
    let out = s.run(&[
        "admin",
        "client",
        "intake-policy",
        &creds.0,
        "--require-encryption",
        "true",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = s.push(
        &creds,
        &["examples/hr/employees.csv", "--mapping", "workday"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("encryption_required"), "{}", text(&out));

    for (algorithm, encryption) in [("age", "age"), ("curve25519", "pgp")] {
        let out = s.run(&["admin", "key", "create", "--algorithm", algorithm, "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        let key: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            !text(&out).contains("SECRET KEY"),
            "no secret is ever printed"
        );
        let out = s.push(
            &creds,
            &[
                "examples/hr/employees.csv",
                "--mapping",
                "workday",
                "--encrypt",
                "--encryption",
                encryption,
                "--encrypt-key-id",
                key["id"].as_str().unwrap(),
                "--json",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["import"]["counts"]["rows_total"], 50, "{v}");
    }
    let out = s.run(&["admin", "key", "list"]);
    assert!(out.status.success());
    assert!(text(&out).contains("x25519") && text(&out).contains("curve25519"));
}

#[test]
fn a_client_pushes_with_an_hmac_signature_instead_of_a_token() {
    let s = start();
    let out = s.run(&[
        "admin",
        "mapping",
        "put",
        "workday",
        "examples/hr/mapping.toml",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let creds = s.client(&[
        "--role",
        "importer",
        "--attributes",
        "*",
        "--grant-roles",
        "*",
    ]);
    let out = s.run(&["admin", "client", "key", "hmac", &creds.0, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let issued: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key_file = s.data.path().join("hmac.key");
    std::fs::write(&key_file, issued["hmac_key"].as_str().unwrap()).unwrap();
    let out = s.run(&["admin", "client", "key", "show", &creds.0]);
    assert!(text(&out).contains("hmac:     set"), "{}", text(&out));

    let out = s
        .cmd(&[
            "push",
            "examples/hr/employees.csv",
            "--mapping",
            "workday",
            "--auth",
            "hmac",
            "--json",
        ])
        .env("MUSTER_CLIENT_ID", &creds.0)
        .env("MUSTER_CLIENT_SIGNING_KEY_FILE", &key_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["import"]["counts"]["created"], 50, "{v}");
    assert!(
        !text(&out).contains(issued["hmac_key"].as_str().unwrap()),
        "the key is never echoed"
    );
}

#[test]
fn an_operator_registers_lists_shows_and_deletes_a_login_sync_issuer() {
    let s = start();
    let out = s.run(&[
        "admin",
        "mapping",
        "put",
        "workday",
        "examples/hr/mapping.toml",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = s.run(&[
        "admin",
        "issuer",
        "create",
        "okta",
        "--issuer",
        "https://idp.example.com",
        "--audience",
        "muster",
        "--mapping",
        "workday",
        "--jwks-file",
        "crates/muster-server/tests/api/fixtures/jwks.json",
        "--roles-claim",
        "groups",
        "--attributes",
        "given_name,family_name",
        "--grant-roles",
        "staff",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("okta"));
    let out = s.run(&["admin", "issuer", "list"]);
    assert!(
        text(&out).contains("https://idp.example.com"),
        "{}",
        text(&out)
    );
    let out = s.run(&["admin", "issuer", "show", "okta", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["principal"], "issuer:okta");
    assert_eq!(v["roles_claim"], "groups");
    let out = s.run(&["admin", "issuer", "delete", "okta"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = s.run(&["admin", "issuer", "show", "okta"]);
    assert!(!out.status.success());
}

#[test]
fn an_operator_rotates_the_master_key_and_retires_the_old_one() {
    let s = start();
    let key_file = s.data.path().join("master.key");
    let before = std::fs::read_to_string(&key_file).unwrap();
    let out = s.run(&["admin", "master-key", "rotate"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["previous"].as_array().unwrap().len(), 1, "{v}");
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), before);
    assert!(!text(&out).contains(before.trim()), "never the key");
    let out = s.run(&["admin", "master-key", "retire-previous"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = s.run(&["admin", "master-key", "status"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["previous"], serde_json::json!([]), "{v}");
    assert!(!s.data.path().join("master.key.previous").exists());
}
