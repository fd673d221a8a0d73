//! The store contract against PostgreSQL, and what only a shared database
//! has to show: several instances on one database doing nothing twice.
//! Each test gets a fresh, uniquely named database, dropped afterwards even
//! when the test fails.
//!
//! The server is `MUSTER_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it cannot be
//! reached the tests fail under `CI=true` and are skipped, loudly,
//! otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Duration;
use muster_core::person::ChangeKind;
use muster_core::{secret, ExternalId, TenantId};
use muster_store::contract::{chain_len, ctx, item, new_import, t0};
use muster_store::*;
use muster_store_postgres::testing::{server, TestDb};
use muster_store_postgres::PostgresStore;
use postgres::NoTls;
use std::sync::{Arc, Barrier};

/// A store on a fresh database of its own, or `None` (said so) when the
/// server cannot be reached.
fn fresh() -> Option<contract::Made> {
    let server = server()?;
    let db = TestDb::create(&server);
    let store = db.open();
    Some((Box::new(store), Box::new(db)))
}

fn refuse(guard: &dyn std::any::Any, on: bool) {
    let db = guard.downcast_ref::<TestDb>().unwrap();
    let mut c = db.config().connect(NoTls).unwrap();
    c.batch_execute(if on {
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$; \
         CREATE TRIGGER refuse_audit BEFORE INSERT ON audit \
         FOR EACH ROW EXECUTE FUNCTION refuse_audit();"
    } else {
        "DROP TRIGGER refuse_audit ON audit; DROP FUNCTION refuse_audit();"
    })
    .unwrap();
}

/// The store contract, one test per case.
mod store_contract {
    muster_store::contract_tests! { make: super::fresh, refuse: super::refuse }
}

#[test]
fn instances_opening_at_once_migrate_once() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server);
    let go = Arc::new(Barrier::new(4));
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let (cfg, go) = (db.config(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                PostgresStore::open_with(cfg, 1).map(drop)
            })
        })
        .collect();
    for t in opened {
        t.join().unwrap().unwrap();
    }
    // Opening again is a no-op.
    drop(db.open());
    let mut c = db.config().connect(NoTls).unwrap();
    let rows = c
        .query("SELECT version FROM schema_migrations", &[])
        .unwrap();
    assert_eq!(rows.len(), PostgresStore::schema_version() as usize);
}

#[test]
fn a_one_time_token_is_used_once_across_instances() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server);
    let stores = [Arc::new(db.open()), Arc::new(db.open())];
    stores[0].bootstrap(secret::digest("a"), t0()).unwrap();
    let admin = stores[0].client_get("admin").unwrap();
    for round in 0..5 {
        let d = secret::digest(&format!("tok{round}"));
        stores[0]
            .token_insert(NewToken {
                digest: d,
                principal_id: admin.id.clone(),
                scope: "imports:create".into(),
                one_time: true,
                created_at: t0(),
                expires_at: Some(t0() + Duration::minutes(15)),
            })
            .unwrap();
        let go = Arc::new(Barrier::new(8));
        let won: usize = (0..8)
            .map(|i| {
                let (s, go) = (stores[i % 2].clone(), go.clone());
                std::thread::spawn(move || {
                    go.wait();
                    s.token_use(d, t0()).unwrap().is_ok()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(won, 1, "round {round}");
    }
}

#[test]
fn concurrent_batches_from_two_instances_keep_the_chain_whole() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server);
    let stores = [Arc::new(db.open()), Arc::new(db.open())];
    stores[0].bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    let before = chain_len(stores[0].as_ref(), &t);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (s, t) = (stores[w % 2].clone(), t.clone());
            std::thread::spawn(move || {
                for b in 0..10 {
                    // Each worker its own people, plus one everyone writes.
                    let mut items: Vec<BatchItem> = (0..20)
                        .map(|i| item(&format!("W{w}-{b}-{i}"), "Ada"))
                        .collect();
                    items.push(item("SHARED", &format!("w{w}b{b}")));
                    s.apply_batch(&ctx(&t), items, None, false).unwrap();
                    s.audit_append(AuditDraft {
                        tenant: t.clone(),
                        at: t0(),
                        principal: "system".into(),
                        on_behalf_of: None,
                        source: "test".into(),
                        action: "test.ping".into(),
                        person: None,
                        detail: serde_json::json!({}),
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // 4 workers x 10 batches x (20 created + 1 shared change + 1 ping).
    assert_eq!(chain_len(stores[1].as_ref(), &t), before + 4 * 10 * 22);
    let shared = stores[1]
        .person_get(&t, &ExternalId::parse("SHARED").unwrap())
        .unwrap();
    assert_eq!(shared.version, 40);
}

#[test]
fn a_batch_naming_a_person_twice_applies_both_in_order() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server);
    let s = db.open();
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    let before = chain_len(&s, &t);
    let r = s
        .apply_batch(
            &ctx(&t),
            vec![item("E1", "Ada"), item("E1", "Bob"), item("E1", "Bob")],
            None,
            false,
        )
        .unwrap();
    let got: Vec<_> = r.iter().map(|r| (r.kind, r.version)).collect();
    assert_eq!(
        got,
        [
            (ChangeKind::Created, 1),
            (ChangeKind::Updated, 2),
            (ChangeKind::Unchanged, 2)
        ]
    );
    let p = s.person_get(&t, &ExternalId::parse("E1").unwrap()).unwrap();
    assert_eq!(p.version, 2);
    assert_eq!(
        p.state.attrs["given_name"].expose(),
        &serde_json::json!("Bob")
    );
    assert_eq!(chain_len(&s, &t), before + 2);
}

#[test]
fn a_large_batch_is_applied_whole() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server);
    let s = db.open();
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    s.import_create(new_import("i1", "p1", None)).unwrap();
    let n = 5000;
    let items = |name: &str| -> Vec<BatchItem> {
        (0..n)
            .map(|i| item(&format!("P{i:06}"), &format!("{name}{}", i % 7)))
            .collect()
    };
    let started = std::time::Instant::now();
    let r = s
        .apply_batch(
            &ctx(&t),
            items("A"),
            Some(Checkpoint {
                import_id: "i1".into(),
                row: n,
                unchanged: 0,
            }),
            false,
        )
        .unwrap();
    eprintln!("{n} new people in one batch: {:?}", started.elapsed());
    assert!(r.iter().all(|r| r.kind == ChangeKind::Created));
    let started = std::time::Instant::now();
    let r = s.apply_batch(&ctx(&t), items("A"), None, false).unwrap();
    eprintln!("{n} unchanged people in one batch: {:?}", started.elapsed());
    assert!(r.iter().all(|r| r.kind == ChangeKind::Unchanged));
    let started = std::time::Instant::now();
    let r = s.apply_batch(&ctx(&t), items("B"), None, false).unwrap();
    eprintln!("{n} changed people in one batch: {:?}", started.elapsed());
    assert!(r
        .iter()
        .all(|r| r.kind == ChangeKind::Updated && r.version == 2));
    assert_eq!(s.import_get(&t, "i1").unwrap().counts.created, n);
    assert_eq!(s.person_list(&t, Some("P004990"), 100).unwrap().len(), 9);
    let mut walked = 0;
    s.audit_walk(&t, &mut |_| {
        walked += 1;
        true
    })
    .unwrap();
    assert_eq!(walked, 1 + 2 * n);
}

#[test]
fn instances_claiming_by_tenant_turns_at_once_never_share_an_import() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server);
    let setup = db.open();
    setup.bootstrap(secret::digest("a"), t0()).unwrap();
    let tenants = [TenantId::default_tenant(), TenantId::parse("acme").unwrap()];
    setup
        .tenant_create(
            muster_store::contract::new_tenant(&tenants[1], "Acme"),
            t0(),
            muster_store::contract::no_audit(),
        )
        .unwrap();
    let mut all = Vec::new();
    for i in 0..24 {
        let mut imp = new_import(&format!("i{i}"), "p1", None);
        // The default tenant queues most of them.
        imp.tenant = tenants[usize::from(i % 4 == 0)].clone();
        imp.principal_id = format!("p{i}");
        setup.import_create(imp).unwrap();
        all.push(format!("i{i}"));
    }
    // Four instances claim at once, half of the claims for idle tenants
    // only, until nothing is left that they may take.
    let start = Arc::new(Barrier::new(4));
    let claimed: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..4)
            .map(|n| {
                let (store, start) = (db.open(), start.clone());
                scope.spawn(move || {
                    start.wait();
                    let mut got = Vec::new();
                    let mut k = 0;
                    loop {
                        let scope = if (n + k) % 2 == 0 {
                            ClaimScope::AnyTenant
                        } else {
                            ClaimScope::IdleTenants
                        };
                        k += 1;
                        let owner = format!("instance-{n}");
                        match store
                            .import_claim_in(&owner, Duration::minutes(1), t0(), scope)
                            .unwrap()
                        {
                            Some(i) => got.push(i.id),
                            None if scope == ClaimScope::AnyTenant => break,
                            None => {}
                        }
                    }
                    got
                })
            })
            .collect();
        runs.into_iter().flat_map(|r| r.join().unwrap()).collect()
    });
    let mut sorted = claimed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), claimed.len(), "an import was claimed twice");
    all.sort();
    assert_eq!(sorted, all, "every import was claimed");
}

#[test]
fn each_pending_import_is_claimed_by_one_instance() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server);
    let (a, b) = (db.open(), db.open());
    a.bootstrap(secret::digest("a"), t0()).unwrap();
    a.import_create(new_import("i1", "p1", None)).unwrap();
    a.import_create(new_import("i2", "p1", None)).unwrap();
    let lease = Duration::minutes(1);
    let first = a.import_claim("a", lease, t0()).unwrap().unwrap();
    let second = b.import_claim("b", lease, t0()).unwrap().unwrap();
    assert_eq!((first.id.as_str(), second.id.as_str()), ("i1", "i2"));
    assert!(a.import_claim("a", lease, t0()).unwrap().is_none());
    // a keeps i1; b's instance dies and its lease runs out.
    let later = t0() + Duration::seconds(50);
    assert!(a.import_renew("i1", "a", lease, later).unwrap());
    let after = t0() + Duration::seconds(70);
    let again = a.import_claim("a", lease, after).unwrap().unwrap();
    assert_eq!(again.id, "i2");
    assert!(!b.import_renew("i2", "b", lease, after).unwrap());
    // A finished import is no longer claimable.
    assert!(a
        .import_set_state_claimed("i1", "a", ImportState::Succeeded, None, after)
        .unwrap());
    assert!(a
        .import_set_state_claimed("i2", "a", ImportState::Succeeded, None, after)
        .unwrap());
    assert!(b
        .import_claim("b", lease, after + Duration::hours(1))
        .unwrap()
        .is_none());
}

#[test]
fn the_password_is_not_shown() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server);
    let mut cfg = db.config();
    cfg.password("hunter2-secret");
    // Where the server trusts local connections the password is not asked.
    if let Ok(s) = PostgresStore::open_with(cfg, 1) {
        let shown = format!("{s:?}");
        assert!(shown.contains(&db.name), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    let err =
        PostgresStore::open("postgres://u:hunter2-secret@127.0.0.1:1/nowhere?connect_timeout=2")
            .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
    let err = PostgresStore::open("postgres://u:hunter2-secret@127.0.0.1:notaport/x").unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
}

/// A database made by the release before import semantics (migrations 1 to
/// 5) gets due dates for its stored future terminations when opened.
#[test]
fn upgrading_gives_stored_terminations_their_due_date() {
    let Some(server) = server() else { return };
    let db = TestDb::create(&server);
    let mut c = db.config().connect(NoTls).unwrap();
    c.batch_execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .unwrap();
    for (v, name, sql) in [
        (1, "initial", include_str!("../migrations/0001_initial.sql")),
        (2, "keys", include_str!("../migrations/0002_keys.sql")),
        (
            3,
            "client_keys",
            include_str!("../migrations/0003_client_keys.sql"),
        ),
        (4, "issuers", include_str!("../migrations/0004_issuers.sql")),
        (5, "outbox", include_str!("../migrations/0005_outbox.sql")),
    ] {
        c.batch_execute(sql).unwrap();
        c.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&v, &name],
        )
        .unwrap();
    }
    c.batch_execute(
        "INSERT INTO tenants (id, name, created_at) VALUES ('default', 'default', now())",
    )
    .unwrap();
    let people = muster_store::contract_semantics::PRE_UPGRADE_PEOPLE;
    for (id, attrs, _) in people {
        c.execute(
            "INSERT INTO people (tenant_id, external_id, version, fingerprint, attrs, roles, \
             created_at, updated_at, updated_by, on_behalf_of, source) \
             VALUES ('default', $1, 1, NULL, $2::text::jsonb, '[]', now(), now(), 'client:c', NULL, 'api')",
            &[&id, &attrs],
        )
        .unwrap();
    }
    drop(c);
    drop(db.open());
    let mut c = db.config().connect(NoTls).unwrap();
    for (id, _, want) in people {
        let due: Option<String> = c
            .query_one("SELECT due_on FROM people WHERE external_id = $1", &[&id])
            .unwrap()
            .get(0);
        assert_eq!(due.as_deref(), *want, "{id}");
    }
}
