//! Contract cases for import semantics (docs/people.md#import-semantics): source marks for
//! snapshot imports, existence checks for manager references, and due
//! effective-date transitions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::contract::{chain_len, person_item};
use crate::*;
use chrono::{TimeZone, Utc};
use muster_core::secret;

/// People as a database made before import semantics stored them (id,
/// attributes JSON), and the `due_on` each backend's schema step must give
/// them: a stored termination date of someone not terminated and not
/// rehired since. Each backend's upgrade test stores these at the old
/// schema, opens the store and compares.
pub const PRE_UPGRADE_PEOPLE: &[(&str, &str, Option<&str>)] = &[
    (
        "LEAVES",
        r#"{"employment_status":"active","hire_date":"2020-01-01","termination_date":"2999-01-31"}"#,
        Some("2999-01-31"),
    ),
    (
        "NO-HIRE",
        r#"{"termination_date":"2999-02-01"}"#,
        Some("2999-02-01"),
    ),
    (
        "GONE",
        r#"{"employment_status":"terminated","termination_date":"2020-06-30"}"#,
        None,
    ),
    (
        "STAYS",
        r#"{"employment_status":"active","hire_date":"2020-01-01","termination_date":null}"#,
        None,
    ),
    (
        "REHIRED",
        r#"{"employment_status":"active","hire_date":"2024-01-01","termination_date":"2022-12-31"}"#,
        None,
    ),
];

fn day(d: u32, m: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, 9, 0, 0).unwrap()
}

fn ctx(source_system: Option<&str>, now: chrono::DateTime<Utc>) -> WriteContext {
    WriteContext {
        on_behalf_of: None,
        source: if source_system.is_some() {
            "import:x".into()
        } else {
            "api".into()
        },
        now,
        source_system: source_system.map(str::to_owned),
        ..crate::contract::ctx(&TenantId::default_tenant())
    }
}

fn person(id: &str, attrs: &[(&str, &str)]) -> BatchItem {
    person_item(1, id, attrs)
}

fn status(s: &dyn Store, id: &str) -> String {
    let p = s
        .person_get(&TenantId::default_tenant(), &ExternalId::parse(id).unwrap())
        .unwrap();
    p.state.attrs["employment_status"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub fn imports_mark_people_with_their_source_and_api_writes_keep_it(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), day(1, 1)).unwrap();
    let t = TenantId::default_tenant();
    let active = [("employment_status", "active")];
    let hr = ctx(Some("hr"), day(1, 1));
    s.apply_batch(
        &hr,
        vec![
            person("E1", &active),
            person("E2", &active),
            person("E3", &[("employment_status", "terminated")]),
        ],
        None,
        false,
    )
    .unwrap();
    s.apply_batch(
        &ctx(Some("other"), day(1, 1)),
        vec![person("E4", &active)],
        None,
        false,
    )
    .unwrap();
    // An API write changes E1 but not whose import source it belongs to.
    s.apply_batch(
        &ctx(None, day(1, 1)),
        vec![person("E1", &[("department", "R&D")])],
        None,
        false,
    )
    .unwrap();
    let e1 = s.person_get(&t, &ExternalId::parse("E1").unwrap()).unwrap();
    assert_eq!(e1.source_system.as_deref(), Some("hr"));
    assert_eq!(
        s.person_source_active(&t, "hr", None, 100).unwrap(),
        ["E1", "E2"],
        "terminated people and other sources' are left out"
    );
    assert_eq!(
        s.person_source_active(&t, "hr", Some("E1"), 1).unwrap(),
        ["E2"]
    );
    assert!(s
        .person_source_active(&TenantId::parse("other").unwrap(), "hr", None, 100)
        .unwrap()
        .is_empty());

    let fp = s
        .person_fingerprints_of_source(&t, &["E2", "E4", "E9"], "hr")
        .unwrap();
    assert!(fp[0].is_some() && fp[1].is_none() && fp[2].is_none());

    // Another source confirms E2 unchanged: E2 moves to it, quietly.
    let audit = chain_len(s, &TenantId::default_tenant());
    let r = s
        .apply_batch(
            &ctx(Some("other"), day(1, 1)),
            vec![person("E2", &active)],
            None,
            false,
        )
        .unwrap();
    assert_eq!(r[0].kind, ChangeKind::Unchanged);
    assert_eq!(r[0].version, 1);
    assert_eq!(
        chain_len(s, &TenantId::default_tenant()),
        audit,
        "a confirmation is not a change"
    );
    let e2 = s.person_get(&t, &ExternalId::parse("E2").unwrap()).unwrap();
    assert_eq!(e2.source_system.as_deref(), Some("other"));
    assert_eq!(e2.version, 1);
    assert_eq!(s.person_source_active(&t, "hr", None, 100).unwrap(), ["E1"]);
    assert!(s
        .person_fingerprints_of_source(&t, &["E2"], "other")
        .unwrap()[0]
        .is_some());
    // And in a dry run nothing moves.
    s.apply_batch(
        &ctx(Some("hr"), day(1, 1)),
        vec![person("E2", &active)],
        None,
        true,
    )
    .unwrap();
    let e2 = s.person_get(&t, &ExternalId::parse("E2").unwrap()).unwrap();
    assert_eq!(e2.source_system.as_deref(), Some("other"));
}

pub fn existence_is_answered_in_order(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), day(1, 1)).unwrap();
    let t = TenantId::default_tenant();
    s.apply_batch(
        &ctx(None, day(1, 1)),
        vec![person("M1", &[]), person("M2", &[])],
        None,
        false,
    )
    .unwrap();
    assert_eq!(
        s.person_exists(&t, &["M2", "X", "M1"]).unwrap(),
        [true, false, true]
    );
    assert!(s.person_exists(&t, &[]).unwrap().is_empty());
    let other = TenantId::parse("other").unwrap();
    assert_eq!(s.person_exists(&other, &["M1"]).unwrap(), [false]);
}

pub fn effective_dates_settle_on_write_and_when_due(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), day(1, 1)).unwrap();
    let t = TenantId::default_tenant();
    let now = ctx(None, day(1, 1));
    let r = s
        .apply_batch(
            &now,
            vec![
                person(
                    "E1",
                    &[
                        ("employment_status", "active"),
                        ("termination_date", "2026-02-01"),
                    ],
                ),
                person(
                    "E2",
                    &[("employment_status", "active"), ("hire_date", "2026-03-01")],
                ),
                person(
                    "E3",
                    &[
                        ("employment_status", "active"),
                        ("termination_date", "2025-12-01"),
                    ],
                ),
            ],
            None,
            false,
        )
        .unwrap();
    assert!(r.iter().all(|r| r.kind == ChangeKind::Created));
    assert_eq!(status(s, "E1"), "active", "a future termination waits");
    assert_eq!(status(s, "E2"), "pending", "a future hire is pending");
    assert_eq!(status(s, "E3"), "terminated", "a past termination applies");
    assert!(s.person_settle_due(&now, 100).unwrap().is_empty());

    let head = s.changes_head(&t).unwrap();
    let audit = chain_len(s, &TenantId::default_tenant());
    let mut feb = ctx(None, day(1, 2));
    feb.principal = "system:scheduler".into();
    feb.source = "schedule".into();
    let r = s.person_settle_due(&feb, 100).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].kind, ChangeKind::Deactivated);
    assert_eq!(status(s, "E1"), "terminated");
    assert_eq!(status(s, "E2"), "pending");
    assert_eq!(chain_len(s, &TenantId::default_tenant()), audit + 1);
    let events = s.changes_list(&t, head, 10).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "person.deactivated");
    assert_eq!(events[0].external_id, "E1");
    assert_eq!(events[0].source, "schedule");
    assert!(
        s.person_settle_due(&feb, 100).unwrap().is_empty(),
        "a transition is applied once"
    );

    let mut mar = feb.clone();
    mar.now = day(1, 3);
    let r = s.person_settle_due(&mar, 100).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(status(s, "E2"), "active");
    assert!(s.person_settle_due(&mar, 100).unwrap().is_empty());
    assert_eq!(chain_len(s, &TenantId::default_tenant()), audit + 2);
}

pub fn settlers_racing_apply_a_transition_once(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), day(1, 1)).unwrap();
    let items: Vec<BatchItem> = (0..20)
        .map(|i| {
            person(
                &format!("E{i}"),
                &[
                    ("employment_status", "active"),
                    ("termination_date", "2026-02-01"),
                ],
            )
        })
        .collect();
    s.apply_batch(&ctx(None, day(1, 1)), items, None, false)
        .unwrap();
    let audit = chain_len(s, &TenantId::default_tenant());
    let later = ctx(None, day(2, 2));
    let applied: usize = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut n = 0;
                    loop {
                        let r = s.person_settle_due(&later, 3).unwrap();
                        if r.is_empty() {
                            return n;
                        }
                        n += r
                            .iter()
                            .filter(|r| r.kind == ChangeKind::Deactivated)
                            .count();
                    }
                })
            })
            .collect();
        runs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(applied, 20);
    assert_eq!(
        chain_len(s, &TenantId::default_tenant()),
        audit + 20,
        "one audit entry per transition"
    );
}
