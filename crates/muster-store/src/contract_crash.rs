//! Contract cases for crash safety: an import's batches are fenced by its
//! lease, so an instance that stalled past its lease cannot commit work
//! that the instance which took the import over is redoing, and neither
//! can its validation bookkeeping (reset, state, row errors, totals).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::contract::{chain_len, new_import, person_item, t0};
use crate::*;
use chrono::{Duration, Utc};
use muster_core::secret;

fn import(id: &str, dry_run: bool) -> NewImport {
    NewImport {
        dry_run,
        ..new_import(id, "p1", None)
    }
}

fn ctx(import: &str, now: chrono::DateTime<Utc>) -> WriteContext {
    WriteContext {
        on_behalf_of: None,
        source: format!("import:{import}"),
        now,
        ..crate::contract::ctx(&TenantId::default_tenant())
    }
}

fn item(row: u64, id: &str, name: &str) -> BatchItem {
    person_item(row, id, &[("given_name", name)])
}

fn cp(import: &str, row: u64) -> Checkpoint {
    Checkpoint {
        import_id: import.into(),
        row,
        unchanged: 0,
    }
}

pub fn a_batch_commits_only_while_its_instance_holds_the_lease(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    s.import_create(import("i1", false)).unwrap();
    let lease = Duration::seconds(30);
    assert_eq!(s.import_claim("a", lease, t0()).unwrap().unwrap().id, "i1");
    // The holder commits its first batch.
    let r = s
        .apply_batch_claimed(
            &ctx("i1", t0()),
            vec![item(2, "E1", "Ada")],
            cp("i1", 2),
            "a",
            false,
        )
        .unwrap()
        .expect("the holder's batch commits");
    assert_eq!(r.results[0].kind, ChangeKind::Created);
    let audited = chain_len(s, &TenantId::default_tenant());
    // "a" stalls past its lease; "b" takes the import over from row 2.
    let later = t0() + Duration::seconds(45);
    let taken = s.import_claim("b", lease, later).unwrap().unwrap();
    assert_eq!((taken.id.as_str(), taken.checkpoint_row), ("i1", 2));
    // "a" wakes up and tries its next batch: refused, nothing written.
    let stale = s
        .apply_batch_claimed(
            &ctx("i1", later),
            vec![item(3, "E2", "Bob")],
            cp("i1", 3),
            "a",
            false,
        )
        .unwrap();
    assert!(
        stale.is_none(),
        "a batch after the lease was taken over must not commit"
    );
    assert!(s.person_get(&t, &ExternalId::parse("E2").unwrap()).is_err());
    assert_eq!(
        chain_len(s, &TenantId::default_tenant()),
        audited,
        "no audit entry from the refused batch"
    );
    assert_eq!(
        s.changes_head(&t).unwrap(),
        1,
        "no event from the refused batch"
    );
    let row = s.import_get(&t, "i1").unwrap();
    assert_eq!((row.checkpoint_row, row.counts.created), (2, 1));
    // The new holder applies the same rows once.
    let r = s
        .apply_batch_claimed(
            &ctx("i1", later),
            vec![item(3, "E2", "Bob")],
            cp("i1", 3),
            "b",
            false,
        )
        .unwrap()
        .expect("the new holder's batch commits");
    assert_eq!(r.results[0].kind, ChangeKind::Created);
    assert_eq!(chain_len(s, &TenantId::default_tenant()), audited + 1);
    let row = s.import_get(&t, "i1").unwrap();
    assert_eq!((row.checkpoint_row, row.counts.created), (3, 2));
    // Once the import has ended (which releases it), no batch commits.
    assert!(s
        .import_set_state_claimed("i1", "b", ImportState::Succeeded, None, later)
        .unwrap());
    let after_end = s
        .apply_batch_claimed(
            &ctx("i1", later),
            vec![item(4, "E3", "Cy")],
            cp("i1", 4),
            "b",
            false,
        )
        .unwrap();
    assert!(after_end.is_none());
    assert_eq!(chain_len(s, &TenantId::default_tenant()), audited + 1);
}

pub fn a_fenced_dry_run_batch_moves_only_the_checkpoint(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    s.import_create(import("d1", true)).unwrap();
    let lease = Duration::seconds(30);
    s.import_claim("a", lease, t0()).unwrap().unwrap();
    let before = chain_len(s, &TenantId::default_tenant());
    let r = s
        .apply_batch_claimed(
            &ctx("d1", t0()),
            vec![item(2, "E1", "Ada")],
            cp("d1", 2),
            "a",
            true,
        )
        .unwrap()
        .expect("the holder's dry run commits its progress");
    assert_eq!(r.results[0].kind, ChangeKind::Created);
    assert!(s.person_get(&t, &ExternalId::parse("E1").unwrap()).is_err());
    assert_eq!(chain_len(s, &TenantId::default_tenant()), before);
    let row = s.import_get(&t, "d1").unwrap();
    assert_eq!((row.checkpoint_row, row.counts.created), (2, 1));
    assert!(s
        .apply_batch_claimed(
            &ctx("d1", t0()),
            vec![item(3, "E2", "Bob")],
            cp("d1", 3),
            "x",
            true
        )
        .unwrap()
        .is_none());
    assert_eq!(s.import_get(&t, "d1").unwrap().checkpoint_row, 2);
}

fn row_error(row: u64, code: &str) -> RowErrorRecord {
    RowErrorRecord {
        row,
        column: Some("id".into()),
        attribute: None,
        code: code.into(),
        message: format!("{code} on row {row}"),
    }
}

/// The import as a reader sees it: state, error, counts, checkpoint and
/// its row errors (codes by row).
fn seen(s: &dyn Store, id: &str) -> (ImportState, Option<String>, Counts, u64, Vec<(u64, String)>) {
    let row = s.import_get(&TenantId::default_tenant(), id).unwrap();
    let errors = s
        .import_errors(id, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|(_, e)| (e.row, e.code))
        .collect();
    (
        row.state,
        row.error_code,
        row.counts,
        row.checkpoint_row,
        errors,
    )
}

pub fn validation_writes_of_an_instance_that_lost_the_lease_change_nothing(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    s.import_create(import("v1", false)).unwrap();
    let lease = Duration::seconds(30);
    s.import_claim("a", lease, t0()).unwrap().unwrap();
    // "a" validates: resets, says so, records an error and the totals.
    assert!(s.import_reset_claimed("v1", "a", t0()).unwrap());
    assert!(s
        .import_set_state_claimed("v1", "a", ImportState::Parsing, None, t0())
        .unwrap());
    assert!(s
        .import_add_errors_claimed("v1", "a", &[row_error(3, "a_first")])
        .unwrap());
    assert!(s.import_set_total_claimed("v1", "a", 10, 1).unwrap());
    // "a" stalls past its lease; "b" takes the import over and starts its
    // own validation from scratch.
    let later = t0() + Duration::seconds(45);
    assert_eq!(s.import_claim("b", lease, later).unwrap().unwrap().id, "v1");
    assert!(s.import_reset_claimed("v1", "b", later).unwrap());
    assert!(s
        .import_set_state_claimed("v1", "b", ImportState::Parsing, None, later)
        .unwrap());
    assert!(s
        .import_add_errors_claimed("v1", "b", &[row_error(4, "b_first")])
        .unwrap());
    let before = seen(s, "v1");
    assert_eq!(before.4, vec![(4, "b_first".to_owned())]);
    // "a" wakes up and goes on where it was: every write is refused and
    // the import stays exactly as "b" left it.
    assert!(!s
        .import_add_errors_claimed("v1", "a", &[row_error(5, "a_late")])
        .unwrap());
    assert!(!s.import_set_total_claimed("v1", "a", 99, 9).unwrap());
    assert!(!s
        .import_set_state_claimed("v1", "a", ImportState::Applying, None, later)
        .unwrap());
    assert!(!s
        .import_set_state_claimed(
            "v1",
            "a",
            ImportState::Rejected,
            Some(("too_many_row_errors", "x")),
            later
        )
        .unwrap());
    assert!(!s.import_reset_claimed("v1", "a", later).unwrap());
    assert_eq!(seen(s, "v1"), before, "the stale instance changed nothing");
    // The lease is still "b"'s: "a"'s refused end did not release it.
    assert!(s.import_claim("c", lease, later).unwrap().is_none());
    // "b" finishes its validation.
    assert!(s.import_set_total_claimed("v1", "b", 10, 1).unwrap());
    assert!(s
        .import_set_state_claimed("v1", "b", ImportState::Applying, None, later)
        .unwrap());
    let (state, _, counts, _, errors) = seen(s, "v1");
    assert_eq!(state, ImportState::Applying);
    assert_eq!((counts.rows_total, counts.failed), (10, 1));
    assert_eq!(errors, vec![(4, "b_first".to_owned())]);
}

pub fn validation_writes_need_a_lease_and_end_with_the_import(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    // Nobody has claimed it yet: no instance may write its bookkeeping.
    s.import_create(import("v2", false)).unwrap();
    let before = seen(s, "v2");
    assert!(!s.import_reset_claimed("v2", "a", t0()).unwrap());
    assert!(!s
        .import_set_state_claimed("v2", "a", ImportState::Parsing, None, t0())
        .unwrap());
    assert!(!s
        .import_add_errors_claimed("v2", "a", &[row_error(2, "x")])
        .unwrap());
    assert!(!s.import_set_total_claimed("v2", "a", 5, 1).unwrap());
    assert_eq!(seen(s, "v2"), before);
    // Nor for an import that does not exist.
    assert!(!s.import_reset_claimed("nope", "a", t0()).unwrap());
    assert!(!s
        .import_add_errors_claimed("nope", "a", &[row_error(2, "x")])
        .unwrap());
    // Claimed: the holder's final state ends it and releases the lease ...
    s.import_claim("a", Duration::seconds(30), t0())
        .unwrap()
        .unwrap();
    assert!(s
        .import_add_errors_claimed("v2", "a", &[row_error(2, "bad"), row_error(3, "bad")])
        .unwrap());
    assert!(s
        .import_set_state_claimed(
            "v2",
            "a",
            ImportState::Rejected,
            Some(("too_many_row_errors", "2 of 2 rows have errors")),
            t0()
        )
        .unwrap());
    let ended = seen(s, "v2");
    assert_eq!(ended.0, ImportState::Rejected);
    assert_eq!(ended.1.as_deref(), Some("too_many_row_errors"));
    assert_eq!(ended.4.len(), 2);
    assert!(s.import_get(&t, "v2").unwrap().finished_at.is_some());
    // ... after which even its former holder writes nothing more.
    assert!(!s.import_reset_claimed("v2", "a", t0()).unwrap());
    assert!(!s
        .import_add_errors_claimed("v2", "a", &[row_error(4, "late")])
        .unwrap());
    assert!(!s
        .import_set_state_claimed("v2", "a", ImportState::Succeeded, None, t0())
        .unwrap());
    assert_eq!(seen(s, "v2"), ended);
}
