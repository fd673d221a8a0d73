//! The README's quickstart, run for real: the `muster` binary serves on a
//! loopback port, and the same binary's `admin` and `push` commands talk to
//! it, as an operator and a scheduled job would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::{repo, text, Server, Setup, IMPORTER, PUT_WORKDAY_MAPPING};

fn start() -> Server {
    Server::fresh(&[])
}

#[test]
fn the_quickstart_pushes_an_hr_export_and_reports_the_result() {
    let s = start();
    let token_file = s.data().join("initial-admin-token");
    assert!(token_file.exists());

    let out = s.run(PUT_WORKDAY_MAPPING);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("version 1"));

    let creds = s.client(IMPORTER);
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
    let bad = s.data().join("bad.csv");
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
    let out = s.run(PUT_WORKDAY_MAPPING);
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

/// A self-signed certificate for 127.0.0.1 and its key, in PEM, and the
/// certificate's DER (what a client is presented).
fn self_signed() -> (String, String, Vec<u8>) {
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    (
        c.cert.pem(),
        c.key_pair.serialize_pem(),
        c.cert.der().to_vec(),
    )
}

#[test]
fn sighup_makes_the_gateway_present_the_new_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("chain.pem"), certs.path().join("key.pem"));
    // Each file renamed into place whole, as a deployment tool does.
    let install = |(chain, k, _): &(String, String, Vec<u8>)| {
        for (path, text) in [(&cert, chain), (&key, k)] {
            let tmp = path.with_extension("new");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
    };
    let (old, new) = (self_signed(), self_signed());
    install(&old);
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        data: dir.path().to_owned(),
        database_url: None,
        env: vec![
            ("MUSTER_TLS__CERT_FILE".into(), cert.display().to_string()),
            ("MUSTER_TLS__KEY_FILE".into(), key.display().to_string()),
            // The files are not watched in this test: only SIGHUP reloads.
            ("MUSTER_TLS__RELOAD_CHECK_SECONDS".into(), "3600".into()),
        ],
    };
    let s = Server::spawn(&setup, "tls");
    let health = format!("https://127.0.0.1:{}/healthz", s.port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Which certificate a fresh connection is shown (trusting any: the
    // test only asks which one it is).
    let presented = || -> Option<Vec<u8>> {
        rt.block_on(async {
            let http = reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .tls_info(true)
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let r = http.get(&health).send().await.ok()?;
            r.extensions()
                .get::<reqwest::tls::TlsInfo>()?
                .peer_certificate()
                .map(<[u8]>::to_vec)
        })
    };
    let mut shown = None;
    wait_until(60, "muster serve answers over TLS", || {
        shown = presented();
        shown.is_some()
    });
    assert_eq!(shown.as_deref(), Some(&old.2[..]), "{}", s.log_text());
    install(&new);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        presented().as_deref(),
        Some(&old.2[..]),
        "nothing but SIGHUP reloads here"
    );
    let st = Command::new("kill")
        .args(["-HUP", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    wait_until(30, "the new certificate after SIGHUP", || {
        presented().as_deref() == Some(&new.2[..])
    });
    // The new certificate can be served before the reload's log line is
    // written.
    wait_until(10, "the reload's log line", || {
        s.log_text().contains("SIGHUP")
    });
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
    let log = s.log_text();
    assert!(log.contains("initial-admin-token"), "{log}");
    let token = std::fs::read_to_string(s.data().join("initial-admin-token")).unwrap();
    assert!(
        !log.contains(token.trim()),
        "the admin token reached the log"
    );
}

#[test]
fn a_node_client_is_created_with_a_read_policy_that_admins_show_and_change() {
    let s = start();
    let out = s.run(&[
        "admin",
        "client",
        "create",
        "--role",
        "node",
        "--id",
        "directory-app",
        "--read-attributes",
        "given_name,department",
        "--read-events",
        "person.created,person.updated",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["client"]["read_policy"],
        serde_json::json!({"attributes": ["given_name", "department"], "events": ["person.created", "person.updated"]})
    );
    assert!(v["client"]["permissions"]
        .as_array()
        .unwrap()
        .contains(&"subscriptions:own".into()));
    let out = s.run(&["admin", "client", "read-policy", "directory-app"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("attributes: given_name,department"),
        "{}",
        text(&out)
    );
    let out = s.run(&[
        "admin",
        "client",
        "read-policy",
        "directory-app",
        "--attributes",
        "department",
        "--events",
        "*",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"attributes": ["department"], "events": []})
    );
    let out = s.run(&[
        "admin",
        "client",
        "read-policy",
        "directory-app",
        "--attributes",
        "no such",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("invalid_read_policy"), "{}", text(&out));
}

#[test]
fn push_encrypt_sends_only_ciphertext_to_the_tenants_key_and_imports_it() {
    let s = start();
    let out = s.run(PUT_WORKDAY_MAPPING);
    assert!(out.status.success(), "{}", text(&out));
    let creds = s.client(IMPORTER);
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
    let out = s.run(PUT_WORKDAY_MAPPING);
    assert!(out.status.success(), "{}", text(&out));
    let creds = s.client(IMPORTER);
    let out = s.run(&["admin", "client", "key", "hmac", &creds.0, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let issued: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key_file = s.data().join("hmac.key");
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
    let out = s.run(PUT_WORKDAY_MAPPING);
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

// ---- fan-out: subscriptions from the command line, several instances ----

/// A webhook receiver on a loopback port, on plain threads: records the
/// path and `webhook-id` of every request, answers 200 after `delay`.
#[derive(Clone)]
struct Hooks {
    port: u16,
    got: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Hooks {
    fn start(delay: Duration) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let g = g.clone();
                std::thread::spawn(move || {
                    let mut w = conn.try_clone().unwrap();
                    let mut r = BufReader::new(conn);
                    // Keep-alive: requests one after another on a connection.
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                        let (mut len, mut id) = (0usize, String::new());
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            let (k, v) = h.split_once(':').unwrap_or((h, ""));
                            match k.to_ascii_lowercase().as_str() {
                                "content-length" => len = v.trim().parse().unwrap_or(0),
                                "webhook-id" => id = v.trim().to_owned(),
                                _ => {}
                            }
                        }
                        let mut body = vec![0; len];
                        if r.read_exact(&mut body).is_err() {
                            return;
                        }
                        std::thread::sleep(delay);
                        g.lock().unwrap().push((path, id));
                        if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Self { port, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Deliveries per webhook-id, to `path`.
    fn counts(&self, path: &str) -> std::collections::HashMap<String, usize> {
        let mut m = std::collections::HashMap::new();
        for (p, id) in self.got.lock().unwrap().iter() {
            if p == path {
                *m.entry(id.clone()).or_default() += 1;
            }
        }
        m
    }
}

fn wait_until(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {secs}s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HR export of `n` people, numbered from `from`, in the example's
/// columns; without roles, so each new person is one event.
fn hr_csv(from: usize, n: usize) -> String {
    let mut s = String::from(
        "Employee ID,First Name,Last Name,Preferred Name,Work Email,Department,Job Title,\
         Manager ID,Location,Worker Status,Hire Date,Termination Date,Roles\n",
    );
    for i in from..from + n {
        s.push_str(&format!(
            "E{i:07},Name{i},Family{i},,n{i}@example.com,Dept{},Clerk,,Remote,A,01/15/2020,,\n",
            i % 7
        ));
    }
    s
}

fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "{}", text(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn an_operator_makes_a_nats_subscription_whose_credentials_come_from_a_file() {
    let s = Server::fresh(&[("MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS", "true")]);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("nats-token");
    std::fs::write(&token_file, "nats-token-from-a-file\n").unwrap();
    let token_path = token_file.display().to_string();
    let created = json_of(&s.run(&[
        "admin",
        "subscription",
        "create",
        "nats://127.0.0.1:4222",
        "--kind",
        "nats",
        "--subject-prefix",
        "hr.people",
        "--nats-token-file",
        &token_path,
        "--attributes",
        "*",
        "--json",
    ]));
    assert_eq!(created["subscription"]["kind"], "nats");
    assert_eq!(created["subscription"]["subject_prefix"], "hr.people");
    assert!(created.get("secret").is_none(), "{created}");
    let id = created["subscription"]["id"].as_str().unwrap().to_owned();
    let out = s.run(&[
        "admin",
        "subscription",
        "update",
        &id,
        "--subject-prefix",
        "people",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = s.run(&["admin", "subscription", "show", &id]);
    let shown = text(&out);
    assert!(
        shown.contains("nats") && shown.contains("people.<tenant>.<event type>"),
        "{shown}"
    );
    assert!(!shown.contains("nats-token-from-a-file"), "{shown}");
    let out = s.run(&["admin", "subscription", "rotate-secret", &id]);
    assert!(!out.status.success());
    assert!(text(&out).contains("signs nothing"), "{}", text(&out));
}

#[test]
fn an_operator_manages_a_webhook_subscription_from_the_command_line() {
    let hooks = Hooks::start(Duration::ZERO);
    let s = Server::fresh(&[
        ("MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("MUSTER_WEBHOOKS__POLL_INTERVAL_MS", "100"),
    ]);
    let url = hooks.url("/hook");
    let created = json_of(&s.run(&[
        "admin",
        "subscription",
        "create",
        &url,
        "--attributes",
        "given_name,department",
        "--events",
        "person.created,person.updated",
        "--json",
    ]));
    let id = created["subscription"]["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        created["subscription"]["attributes"],
        serde_json::json!(["given_name", "department"])
    );
    let out = s.run(&["admin", "subscription", "list"]);
    assert!(text(&out).contains(&id), "{}", text(&out));
    assert!(!text(&out).contains(&secret), "the secret is shown once");

    // Changes flow to the receiver.
    assert!(s
        .run(&[
            "admin",
            "mapping",
            "put",
            "workday",
            "examples/hr/mapping.toml"
        ])
        .status
        .success());
    let creds = s.client(IMPORTER);
    let out = s.push(
        &creds,
        &["examples/hr/employees.csv", "--mapping", "workday"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    wait_until(60, "50 deliveries", || hooks.counts("/hook").len() >= 50);
    let log = json_of(&s.run(&[
        "admin",
        "subscription",
        "deliveries",
        &id,
        "--limit",
        "1000",
        "--json",
    ]));
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 50);
    assert!(items.iter().all(|i| i["outcome"] == "delivered"));
    let out = s.run(&["admin", "subscription", "deliveries", &id, "--limit", "2"]);
    assert!(text(&out).contains("delivered"), "{}", text(&out));
    assert!(text(&out).contains("(more: --after"), "{}", text(&out));

    // Redelivery of one event by id, and of a range by cursor.
    let first = items[0]["event_id"].as_str().unwrap().to_owned();
    let out = s.run(&["admin", "subscription", "redeliver", &id, "--event", &first]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until(30, "the redelivery", || hooks.counts("/hook")[&first] == 2);
    // Cursor 2 is E1's roles.changed, not subscribed to: of 2..=3 only
    // the second person's person.created goes out again.
    assert_eq!(items[1]["cursor"], 3);
    let second = items[1]["event_id"].as_str().unwrap().to_owned();
    let out = s.run(&[
        "admin",
        "subscription",
        "redeliver",
        &id,
        "--from",
        "2",
        "--to",
        "3",
    ]);
    assert!(text(&out).contains("2..=3"), "{}", text(&out));
    wait_until(30, "the range redelivery", || {
        hooks.counts("/hook")[&second] == 2
    });
    let out = s.run(&["admin", "subscription", "redeliver", &id]);
    assert_eq!(out.status.code(), Some(2), "--event or --from is required");

    let shown = json_of(&s.run(&[
        "admin",
        "subscription",
        "update",
        &id,
        "--attributes",
        "given_name",
        "--json",
    ]));
    assert_eq!(shown["attributes"], serde_json::json!(["given_name"]));
    let out = s.run(&["admin", "subscription", "update", &id]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nothing to change"), "{}", text(&out));

    let out = s.run(&[
        "admin",
        "subscription",
        "rotate-secret",
        &id,
        "--overlap",
        "60",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("whsec_"));
    assert!(!text(&out).contains(&secret));
    assert!(text(&out).contains("signs too until"), "{}", text(&out));

    let shown = json_of(&s.run(&["admin", "subscription", "disable", &id, "--json"]));
    assert_eq!(shown["state"], "disabled");
    let out = s.run(&["admin", "subscription", "show", &id]);
    assert!(
        text(&out).contains("disabled by an admin"),
        "{}",
        text(&out)
    );
    let shown = json_of(&s.run(&["admin", "subscription", "enable", &id, "--json"]));
    assert_eq!(shown["state"], "active");

    let out = s.run(&["admin", "subscription", "delete", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let out = s.run(&["admin", "subscription", "show", &id]);
    assert_eq!(out.status.code(), Some(1));
    let out = s.run(&[
        "admin",
        "subscription",
        "create",
        "ftp://example.com/x",
        "--attributes",
        "*",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("url"), "{}", text(&out));
}

/// Instance `name` of an installation on `data`, on the embedded database
/// or on the PostgreSQL database `db`, delivering webhooks promptly.
fn instance(data: &Path, db: Option<&str>, name: &str) -> Server {
    let env = [
        ("MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("MUSTER_WEBHOOKS__POLL_INTERVAL_MS", "100"),
        ("MUSTER_WEBHOOKS__LEASE_SECONDS", "3"),
        ("MUSTER_WEBHOOKS__REQUEST_TIMEOUT_SECONDS", "1"),
    ];
    let setup = Setup {
        data: data.to_owned(),
        database_url: db.map(str::to_owned),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    Server::start(&setup, name)
}

/// Subscriptions `/hook/0..n` on `hooks`, the `workday` mapping and an
/// importer, made through instance `i`; returns the subscriptions (id,
/// path) and a push of a file through any instance as that importer.
#[allow(clippy::type_complexity)]
fn fanout_setup(
    i: &Server,
    hooks: &Hooks,
    n: usize,
) -> (Vec<(String, String)>, Box<dyn Fn(&Server, &Path)>) {
    let run = |args: &[&str]| i.run(args);
    let mut subs = Vec::new();
    for k in 0..n {
        let path = format!("/hook/{k}");
        let v = json_of(&run(&[
            "admin",
            "subscription",
            "create",
            &hooks.url(&path),
            "--attributes",
            "*",
            "--json",
        ]));
        subs.push((v["subscription"]["id"].as_str().unwrap().to_owned(), path));
    }
    assert!(run(&[
        "admin",
        "mapping",
        "put",
        "workday",
        "examples/hr/mapping.toml"
    ])
    .status
    .success());
    let creds = json_of(&run(&[
        &["admin", "client", "create"],
        IMPORTER,
        &["--json"],
    ]
    .concat()));
    let id = creds["client"]["client_id"].as_str().unwrap().to_owned();
    let secret = creds["client_secret"].as_str().unwrap().to_owned();
    let push = move |i: &Server, file: &Path| {
        let out = i
            .cmd(&["push", file.to_str().unwrap(), "--mapping", "workday"])
            .env("MUSTER_CLIENT_ID", &id)
            .env("MUSTER_CLIENT_SECRET", &secret)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    };
    (subs, Box::new(push))
}

#[test]
fn a_gateway_killed_between_commit_and_delivery_delivers_every_event_after_restart() {
    // The embedded default: one instance on SQLite, killed with SIGKILL
    // while committed events still wait for delivery, then started again.
    let data = tempfile::tempdir().unwrap();
    let hooks = Hooks::start(Duration::from_millis(10));
    let a = instance(data.path(), None, "a");
    let (subs, push) = fanout_setup(&a, &hooks, 1);
    let path = subs[0].1.clone();
    let f = data.path().join("1.csv");
    std::fs::write(&f, hr_csv(0, 300)).unwrap();
    push(&a, &f);
    wait_until(60, "deliveries under way", || {
        hooks.counts(&path).len() >= 20
    });
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let before = hooks.counts(&path).len();
    assert!(
        before < 300,
        "the kill came too late: {before} of 300 delivered"
    );
    let _b = instance(data.path(), None, "b");
    wait_until(120, "all 300 events after the restart", || {
        hooks.counts(&path).len() >= 300
    });
    let c = hooks.counts(&path);
    assert_eq!(c.len(), 300, "every event, and no other");
    let repeats: usize = c.values().map(|n| n - 1).sum();
    eprintln!("killed after {before} of 300 events; {repeats} sent again after the restart");
    assert!(repeats <= 300, "{repeats} repeats");
}

#[test]
fn two_instances_deliver_each_event_once_and_the_survivor_finishes_a_killed_holders_work() {
    if std::env::var("MUSTER_TEST_BACKEND").as_deref() != Ok("postgres") {
        eprintln!("runs with MUSTER_TEST_BACKEND=postgres only (two instances share one PostgreSQL database)");
        return;
    }
    let Some(server) = support::pg_server() else {
        return;
    };
    let db = support::PgDb::create(&server);
    let data = tempfile::tempdir().unwrap();
    let hooks = Hooks::start(Duration::from_millis(10));
    let a = instance(data.path(), Some(&db.url()), "a");
    let b = instance(data.path(), Some(&db.url()), "b");
    let (subs, push) = fanout_setup(&a, &hooks, 3);
    // Normal operation: changes committed through both instances, every
    // event reaches every subscription exactly once.
    let (f1, f2) = (data.path().join("1.csv"), data.path().join("2.csv"));
    std::fs::write(&f1, hr_csv(0, 100)).unwrap();
    std::fs::write(&f2, hr_csv(100, 100)).unwrap();
    push(&a, &f1);
    push(&b, &f2);
    for (_, path) in &subs {
        wait_until(120, "200 events at every receiver", || {
            hooks.counts(path).len() >= 200
        });
    }
    std::thread::sleep(Duration::from_secs(1));
    for (_, path) in &subs {
        let c = hooks.counts(path);
        assert_eq!(c.len(), 200);
        assert!(
            c.values().all(|n| *n == 1),
            "an event was sent twice to {path}"
        );
    }

    // The holder of a subscription dies mid-way: once its lease has run
    // out, the other instance finishes the work.
    let (sub, path) = subs[0].clone();
    let f3 = data.path().join("3.csv");
    std::fs::write(&f3, hr_csv(200, 400)).unwrap();
    push(&b, &f3);
    wait_until(60, "deliveries under way", || {
        hooks.counts(&path).len() >= 250
    });
    let lease_owner = || {
        db.client()
            .query_one(
                "SELECT coalesce(lease_owner, '') FROM subscriptions WHERE id = $1",
                &[&sub],
            )
            .unwrap()
            .get::<_, String>(0)
    };
    // Between two turns the lease may be free for a moment.
    let mut owner = String::new();
    wait_until(30, "a holder of the lease", || {
        owner = lease_owner();
        !owner.is_empty()
    });
    let (mut holder, survivor) = if owner == a.instance() {
        (a, b)
    } else {
        assert_eq!(owner, b.instance(), "one of the two holds the lease");
        (b, a)
    };
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    let before = hooks.counts(&path).len();
    assert!(before < 600, "the kill came too late to show a takeover");
    wait_until(120, "all 600 events after the takeover", || {
        hooks.counts(&path).len() >= 600
    });
    // The survivor holds it now, or has finished and handed it back.
    let owner = lease_owner();
    assert!(owner.is_empty() || owner == survivor.instance(), "{owner}");
    // At least once: a repeat is possible only for what the dead holder
    // sent after its last save.
    let repeats: usize = hooks.counts(&path).values().map(|n| n - 1).sum();
    eprintln!(
        "killed the holder after {before} of 600 events; {repeats} sent again after the takeover"
    );
    assert!(repeats <= 200, "{repeats} repeats");
}

#[test]
fn an_operator_rotates_the_master_key_and_retires_the_old_one() {
    let s = start();
    let key_file = s.data().join("master.key");
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
    assert!(!s.data().join("master.key.previous").exists());
}

#[test]
fn an_operator_creates_lists_and_revokes_admin_tokens_and_replaces_the_initial_one() {
    let s = start();
    let initial = s.data().join("initial-admin-token");
    let initial_token = std::fs::read_to_string(&initial).unwrap();
    let initial_token = initial_token.trim();

    // Create: printed once, with its id and expiry.
    let v = json_of(&s.run(&[
        "admin",
        "token",
        "create",
        "--name",
        "ci",
        "--lifetime",
        "3600",
        "--json",
    ]));
    let ci_id = v["token"]["id"].as_str().unwrap().to_owned();
    let ci = v["admin_token"].as_str().unwrap().to_owned();
    assert!(ci.starts_with("mat_"), "{v}");
    assert_eq!(v["token"]["name"], "ci");
    let ci_file = s.data().join("ci-token");
    std::fs::write(&ci_file, &ci).unwrap();
    let ci_file = ci_file.to_str().unwrap();
    let out = s.run(&["admin", "--token-file", ci_file, "tenant", "list"]);
    assert!(out.status.success(), "the new token works: {}", text(&out));

    // List: ids, names, times; never a token.
    let out = s.run(&["admin", "token", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = text(&out);
    assert!(
        listed.contains(&ci_id) && listed.contains("initial"),
        "{listed}"
    );
    assert!(
        !listed.contains(&ci) && !listed.contains(initial_token),
        "{listed}"
    );
    let l = json_of(&s.run(&["admin", "token", "list", "--json"]));
    assert_eq!(l.as_array().unwrap().len(), 2, "{l}");
    assert!(!l.to_string().contains(&ci), "{l}");

    // Revoke: refused from the next request on.
    let out = s.run(&["admin", "token", "revoke", &ci_id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("revoked"), "{}", text(&out));
    let out = s.run(&["admin", "--token-file", ci_file, "tenant", "list"]);
    assert!(!out.status.success(), "a revoked token is refused");
    assert!(text(&out).contains("invalid_token"), "{}", text(&out));

    // Replace the initial token: a new one in a 0600 file, the initial one
    // revoked and its file gone.
    let own = s.data().join("my-admin-token");
    let out = s.run(&[
        "admin",
        "token",
        "replace-initial",
        "--name",
        "operator",
        "--out",
        own.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!initial.exists(), "the initial token file is deleted");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&own).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let own_token = std::fs::read_to_string(&own).unwrap();
    assert!(
        !text(&out).contains(own_token.trim()),
        "written, not printed"
    );
    let own = own.to_str().unwrap();
    let l = json_of(&s.run(&["admin", "--token-file", own, "token", "list", "--json"]));
    let by_name = |n: &str| {
        l.as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == n)
            .cloned()
            .unwrap()
    };
    assert!(by_name("initial")["revoked_at"].is_string(), "{l}");
    assert!(by_name("operator")["revoked_at"].is_null(), "{l}");
    // The initial token no longer works, wherever it was kept.
    let kept = s.data().join("kept-initial");
    std::fs::write(&kept, initial_token).unwrap();
    let out = s.run(&[
        "admin",
        "--token-file",
        kept.to_str().unwrap(),
        "tenant",
        "list",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("invalid_token"), "{}", text(&out));
    // With no initial token file left, replace-initial says so.
    let out = s.run(&["admin", "token", "replace-initial"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("initial-admin-token"), "{}", text(&out));
}

/// Reads a child's stdout lines on a thread; `next` waits for one.
struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    fn of(child: &mut std::process::Child) -> Lines {
        use std::io::BufRead;
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    fn next(&self, what: &str) -> String {
        self.0
            .recv_timeout(Duration::from_secs(90))
            .unwrap_or_else(|_| panic!("no line: {what}"))
    }
}

/// Sends SIGTERM and waits for the exit status.
fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn private_file(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn the_scheduled_worker_pushes_from_its_config_file_on_its_interval_and_stops_on_sigterm() {
    use std::os::unix::fs::PermissionsExt;
    let s = start();
    assert!(s.run(PUT_WORKDAY_MAPPING).status.success());
    let (id, secret) = s.client(IMPORTER);
    let dir = s.data().join("push");
    std::fs::create_dir(&dir).unwrap();
    private_file(&dir.join("secret"), &format!("{secret}\n"));
    let config = dir.join("push.toml");
    let employees = repo().join("examples/hr/employees.csv");
    private_file(
        &config,
        &format!(
            "client_id = \"{id}\"\nsecret_file = \"secret\"\nfile = \"{}\"\n\
             mapping = \"workday\"\nevery = \"2s\"\n",
            employees.display()
        ),
    );
    let config = config.to_str().unwrap();

    // Readable by others: refused before anything is sent.
    std::fs::set_permissions(config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = s.run(&["push", "--config", config]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("chmod 600"), "{}", text(&out));
    std::fs::set_permissions(config, std::fs::Permissions::from_mode(0o600)).unwrap();

    let mut child = s
        .cmd(&["push", "--config", config])
        .env_remove("MUSTER_CLIENT_ID")
        .env_remove("MUSTER_CLIENT_SECRET")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::of(&mut child);
    assert!(lines.next("the start").contains("every 2 s"));
    let first = lines.next("the first run");
    assert!(
        first.contains(" run 1: import ") && first.contains("50 created"),
        "{first}"
    );
    let second = lines.next("the second run");
    assert!(
        second.contains(" run 2: import ") && second.contains("50 unchanged"),
        "{second}"
    );
    let status = terminate(&mut child);
    assert!(status.success(), "{status}");
    assert!(lines.next("the stop").ends_with("stopped"));
    // Each run was its own import.
    let out = s.run(&["admin", "import", "list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["items"].as_array().unwrap().len() >= 2, "{v}");
}

#[test]
fn a_gateway_that_does_not_answer_is_retried_and_reported_in_one_line() {
    let s = start();
    let dead = format!("http://127.0.0.1:{}", support::free_port());
    let mut child = s
        .cmd(&[
            "push",
            "examples/hr/employees.csv",
            "--mapping",
            "workday",
            "--every",
            "1h",
            "--retries",
            "2",
            "--url",
            &dead,
        ])
        .env("MUSTER_CLIENT_ID", "nobody")
        .env("MUSTER_CLIENT_SECRET", "mcs_not-a-real-secret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::of(&mut child);
    lines.next("the start");
    let run = lines.next("the first run");
    assert!(
        run.contains(" run 1: failed: cannot reach the gateway") && run.contains("3 attempts"),
        "{run}"
    );
    assert!(!run.contains("mcs_not-a-real-secret"), "{run}");
    // Waiting for the next start, it stops at once.
    let status = terminate(&mut child);
    assert!(status.success(), "{status}");
}

#[test]
fn push_names_the_encoding_of_a_windows_1252_export_or_is_told_what_it_looks_like() {
    let s = start();
    assert!(s.run(PUT_WORKDAY_MAPPING).status.success());
    let creds = s.client(IMPORTER);
    // The quickstart export with one accented name, as windows-1252.
    let csv = std::fs::read_to_string(repo().join("examples/hr/employees.csv")).unwrap();
    let (header, rest) = csv.split_once('\n').unwrap();
    let first = rest.lines().next().unwrap();
    let mut cells: Vec<&str> = first.split(',').collect();
    cells[1] = "Zo\u{EB}";
    let row = cells.join(",");
    let mut bytes = format!("{header}\n").into_bytes();
    bytes.extend(row.chars().map(|c| u8::try_from(u32::from(c)).unwrap()));
    bytes.push(b'\n');
    let file = s.data().join("latin1.csv");
    std::fs::write(&file, bytes).unwrap();
    let f = file.to_str().unwrap();

    let out = s.push(&creds, &[f, "--mapping", "workday"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("invalid_encoding") && text(&out).contains("windows-1252"),
        "{}",
        text(&out)
    );
    let out = s.push(
        &creds,
        &[f, "--mapping", "workday", "--encoding", "windows-1252"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("1 rows: 1 created"), "{}", text(&out));
}
