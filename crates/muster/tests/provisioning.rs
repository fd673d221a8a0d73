//! `muster admin subscription create --kind scim` and `reconcile`, from
//! the command line, against scim2-server (the reference SCIM server,
//! from `.tools/venv`) on a loopback port: settings from a TOML file, the
//! token from a file, the people already there provisioned, and a
//! reconcile that reports (dry) and then deactivates a User Muster does
//! not know.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn users(rt: &tokio::runtime::Runtime, base: &str) -> Vec<Value> {
    let (s, v) = api(
        rt,
        reqwest::Method::GET,
        &format!("{base}/Users?count=1000"),
        "tok",
        None,
    );
    assert_eq!(s, 200, "{v}");
    v["Resources"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_scim_subscription_made_from_the_cli_provisions_and_reconciles() {
    let server = repo().join(".tools/venv/bin/scim2-server");
    if !server.exists() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "CI=true: this test needs scim2-server in .tools/venv (scripts/install-test-tools)"
            );
        }
        eprintln!("SKIPPED: no scim2-server in .tools/venv (run scripts/install-test-tools)");
        return;
    }
    let port = free_port();
    let _peer = Peer(
        Command::new(&server)
            .args([
                "--hostname",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--bearer-token",
                "tok",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}/v2");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "scim2-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let s = Server::fresh(&[
        ("MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("MUSTER_WEBHOOKS__POLL_INTERVAL_MS", "50"),
    ]);
    assert!(s.run(PUT_WORKDAY_MAPPING).status.success());
    let file = s.data().join("people.csv");
    gen_file(&file, 25, 3, 0.0);
    let creds = s.client(IMPORTER);
    let out = s.push(&creds, &[file.to_str().unwrap(), "--mapping", "workday"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let settings = s.data().join("target.toml");
    std::fs::write(
        &settings,
        "match = \"userName\"\nconcurrency = 2\nrate_per_second = 0\nextra_users = \"deactivate\"\ngroups = false\n\n[mapping]\ntitle = \"upper(job_title)\"\n",
    )
    .unwrap();
    let token = s.data().join("target-token");
    std::fs::write(&token, "tok\n").unwrap();
    let out = s.run(&[
        "admin",
        "subscription",
        "create",
        &base,
        "--kind",
        "scim",
        "--attributes",
        "*",
        "--scim-settings",
        settings.to_str().unwrap(),
        "--scim-token-file",
        token.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("tok\""), "the token is never printed");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["subscription"]["id"].as_str().unwrap().to_owned();
    assert_eq!(v["subscription"]["scim"]["concurrency"], 2);
    assert_eq!(
        v["subscription"]["scim"]["mapping"]["title"],
        "upper(job_title)"
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    while users(&rt, &base).len() < 25 {
        assert!(Instant::now() < deadline, "the people were not provisioned");
        std::thread::sleep(Duration::from_millis(100));
    }
    let with_title = users(&rt, &base)
        .into_iter()
        .filter_map(|u| u["title"].as_str().map(str::to_owned))
        .collect::<Vec<_>>();
    assert!(
        with_title.iter().all(|t| *t == t.to_uppercase()),
        "{with_title:?}"
    );
    let (st, _) = api(
        &rt,
        reqwest::Method::POST,
        &format!("{base}/Users"),
        "tok",
        Some(serde_json::json!({"userName": "stranger", "active": true})),
    );
    assert_eq!(st, 201);

    let out = s.run(&["admin", "subscription", "reconcile", &id, "--dry-run"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("26 Users on the target, 25 people in scope (dry run"),
        "{t}"
    );
    assert!(t.contains("Users no person is linked to: 1"), "{t}");
    let out = s.run(&["admin", "subscription", "reconcile", &id]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("Users no person is linked to (deactivated): 1"),
        "{t}"
    );
    let stranger = users(&rt, &base)
        .into_iter()
        .find(|u| u["userName"] == "stranger")
        .unwrap();
    assert_eq!(stranger["active"], false);

    let out = s.run(&["admin", "subscription", "show", &id]);
    assert!(text(&out).contains("scim"), "{}", text(&out));
    // A webhook is not reconciled: a clear refusal.
    let out = s.run(&[
        "admin",
        "subscription",
        "create",
        "http://127.0.0.1:9/h",
        "--attributes",
        "*",
        "--json",
    ]);
    let hook: Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = s.run(&[
        "admin",
        "subscription",
        "reconcile",
        hook["subscription"]["id"].as_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("only a scim subscription is reconciled"),
        "{}",
        text(&out)
    );
}
