//! `muster migrate` for real: an installation built on SQLite through the
//! API (people, imports with row errors, audit, keys, a subscription with
//! delivery attempts), moved to a fresh PostgreSQL database, served from
//! there with the same data directory, and still the same installation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::*;

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}", text(o));
}

/// What must be the same after the move, read through the API.
fn snapshot(rt: &tokio::runtime::Runtime, s: &Server, token: &str) -> Vec<(String, Value)> {
    let mut out = vec![(
        "people".to_owned(),
        Value::Array(all_people(rt, &s.url, token)),
    )];
    for path in [
        "/api/v1/imports?limit=100",
        "/api/v1/keys",
        "/api/v1/clients",
        "/api/v1/mappings/workday/versions",
        "/api/v1/subscriptions",
        "/api/v1/audit?limit=1000",
        "/api/v1/audit/verify",
        "/api/v1/changes?limit=1000",
    ] {
        let (status, v) = api(rt, Method::GET, &format!("{}{path}", s.url), token, None);
        assert_eq!(status, 200, "{path}: {v}");
        out.push((path.to_owned(), v));
    }
    out
}

#[test]
fn migrate_moves_a_whole_installation_to_postgresql_and_it_keeps_working() {
    let Some(pg) = pg_server() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Setup {
        data: dir.path().join("data"),
        database_url: None,
        env: vec![
            (
                "MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS".into(),
                "true".into(),
            ),
            // One failed attempt, then nothing for an hour: the delivery
            // log stays still while it is compared.
            ("MUSTER_WEBHOOKS__RETRY_SCHEDULE".into(), "1h,1h".into()),
        ],
    };
    let s = Server::start(&sqlite, "sqlite");
    let admin = sqlite.admin_token();
    ok(&s.run(PUT_WORKDAY_MAPPING));
    ok(&s.run(PUT_WORKDAY_MAPPING));
    let creds = s.client(IMPORTER);
    let v1 = dir.path().join("v1.csv");
    let v2 = dir.path().join("v2.csv");
    gen_file(&v1, 300, 7, 0.0);
    gen_file(&v2, 300, 7, 20.0);
    // A row without a first name: a row error to move with its import.
    let mut bad = std::fs::read_to_string(&v2).unwrap();
    bad.push_str("E900001,,Nobody,,nobody@example.com,Sales,Clerk,,Berlin,Active,01/02/2020,,\n");
    std::fs::write(&v2, bad).unwrap();
    ok(&s.push(&creds, &[v1.to_str().unwrap(), "--mapping", "workday"]));
    let key = s.run(&["admin", "key", "create", "--algorithm", "age", "--json"]);
    ok(&key);
    let key: Value = serde_json::from_slice(&key.stdout).unwrap();
    // A subscription whose receiver is down: its delivery attempts fail
    // and are logged, and its progress must move too.
    let (status, sub) = api(
        &rt,
        Method::POST,
        &format!("{}/api/v1/subscriptions", s.url),
        &admin,
        Some(json!({
            "url": format!("http://127.0.0.1:{}/hook", free_port()),
            "attributes": ["*"],
            "from_beginning": true,
        })),
    );
    assert_eq!(status, 201, "{sub}");
    let sub_id = sub["subscription"]["id"].as_str().unwrap().to_owned();
    let out = s.push(&creds, &[v2.to_str().unwrap(), "--mapping", "workday"]);
    assert_eq!(out.status.code(), Some(3), "row errors: {}", text(&out));
    let deliveries_path = format!("/api/v1/subscriptions/{sub_id}/deliveries");
    let deliveries = format!("{}{deliveries_path}", s.url);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, d) = api(&rt, Method::GET, &deliveries, &admin, None);
        if d["items"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no delivery attempt: {d}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut before = snapshot(&rt, &s, &admin);
    let (_, d) = api(&rt, Method::GET, &deliveries, &admin, None);
    before.push(("deliveries".into(), d));
    let verified_before = text(&sqlite.audit_verify());
    drop(s); // SIGKILL: WAL keeps every committed transaction.

    let db = PgDb::create(&pg);
    let migrate = |to: &str| {
        sqlite
            .cmd(&[
                "migrate",
                "--from",
                &format!("sqlite://{}", sqlite.data.join("muster.db").display()),
                "--to",
                to,
            ])
            .output()
            .unwrap()
    };
    let out = migrate(&db.url());
    ok(&out);
    let report = text(&out);
    eprintln!("{report}");
    for table in [
        "people",
        "audit",
        "imports",
        "import_errors",
        "keys",
        "deliveries",
    ] {
        let line = report
            .lines()
            .find(|l| l.split_whitespace().next() == Some(table))
            .unwrap_or_else(|| panic!("no count for {table}: {report}"));
        let moved: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(moved > 0, "{table} moved nothing: {report}");
    }
    let people_line = report.lines().find(|l| l.starts_with("people ")).unwrap();
    assert_eq!(
        people_line.split_whitespace().nth(1),
        Some("300"),
        "{report}"
    );
    // A second run is refused: the target is no longer empty.
    let again = migrate(&db.url());
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("not empty"), "{}", text(&again));

    let postgres = Setup {
        database_url: Some(db.url()),
        ..sqlite.clone()
    };
    let verified = postgres.audit_verify();
    ok(&verified);
    assert_eq!(
        text(&verified),
        verified_before,
        "the same chains, the same entries"
    );
    let p = Server::start(&postgres, "postgres");
    // The admin's token moved with the installation.
    let mut after = snapshot(&rt, &p, &admin);
    let (_, d) = api(
        &rt,
        Method::GET,
        &format!("{}{deliveries_path}", p.url),
        &admin,
        None,
    );
    after.push(("deliveries".into(), d));
    for ((what, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(b, a, "{what} differs after the move");
    }
    // The client still gets a token and imports, encrypted to the moved
    // key (its sealed secret opens with the same master key).
    let out = p.push(
        &creds,
        &[
            v1.to_str().unwrap(),
            "--mapping",
            "workday",
            "--encrypt",
            "--encryption",
            "age",
            "--encrypt-key-id",
            key["id"].as_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let counts = &v["import"]["counts"];
    assert_eq!(counts["rows_total"], 300, "{v}");
    assert_eq!(counts["created"], 0, "{v}");
    assert!(
        counts["updated"].as_u64().unwrap() > 0,
        "v2's changes are undone: {v}"
    );
    // The chain goes on from where it was moved.
    ok(&postgres.audit_verify());
    let (_, check) = api(
        &rt,
        Method::GET,
        &format!("{}/api/v1/audit/verify", p.url),
        &admin,
        None,
    );
    assert_eq!(check["ok"], true, "{check}");
}

#[test]
fn every_postgresql_table_and_column_is_moved_or_derived() {
    let Some(pg) = pg_server() else { return };
    let db = PgDb::create(&pg);
    drop(muster_store_postgres::PostgresStore::open(&db.url()).unwrap());
    let (derived_cols, derived_tables) = muster_store_postgres::transfer::derived();
    let mut c = db.client();
    let rows = c
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public'",
            &[],
        )
        .unwrap();
    assert!(!rows.is_empty());
    for r in rows {
        let (table, column): (String, String) = (r.get(0), r.get(1));
        if derived_tables.contains(&table.as_str()) {
            continue;
        }
        let t = muster_store::transfer::TABLES
            .iter()
            .find(|t| t.name == table)
            .unwrap_or_else(|| panic!("table {table} is neither moved nor derived"));
        assert!(
            t.columns.iter().any(|(n, _)| *n == column)
                || derived_cols.contains(&(table.as_str(), column.as_str())),
            "column {table}.{column} is neither moved nor derived"
        );
    }
}

#[test]
fn migrate_refuses_what_it_cannot_move_and_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        data: dir.path().to_owned(),
        database_url: None,
        env: Vec::new(),
    };
    let run = |from: &str, to: &str| {
        let out = setup
            .cmd(&["migrate", "--from", from, "--to", to])
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    };
    let (code, msg) = run("postgres://x@h/db", "postgres://x@h/db");
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("--from must be a sqlite://PATH"), "{msg}");
    let (code, msg) = run("sqlite://m.db", "mysql://u:hunter2@h/db");
    assert_eq!(code, Some(2), "{msg}");
    assert!(
        msg.contains("--to must be a postgres://") && !msg.contains("hunter2"),
        "{msg}"
    );
    let absent = dir.path().join("absent.db");
    let (code, msg) = run(
        &format!("sqlite://{}", absent.display()),
        "postgres://u:hunter2@127.0.0.1:1/db",
    );
    assert_eq!(code, Some(1), "{msg}");
    assert!(
        msg.contains("no SQLite database") && !msg.contains("hunter2"),
        "{msg}"
    );
    assert!(!absent.exists(), "a missing source is not created");
}
