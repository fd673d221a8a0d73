//! Contract cases for sharing the import queue between tenants
//! ([`Imports::import_claim`], [`Imports::import_claim_in`]): one tenant's
//! long queue does not keep another tenant's import waiting behind it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::contract::{new_import, t0};
use crate::*;
use chrono::{Duration, Utc};
use muster_core::secret;

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

/// The default tenant and `acme`.
fn two_tenants(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    s.tenant_create(
        crate::contract::new_tenant(&acme(), "Acme"),
        t0(),
        crate::contract::no_audit(),
    )
    .unwrap();
}

fn import(s: &dyn Store, id: &str, tenant: &TenantId) {
    s.import_create(NewImport {
        tenant: tenant.clone(),
        ..new_import(id, &format!("p-{tenant}"), None)
    })
    .unwrap();
}

fn claim(s: &dyn Store, owner: &str, at: chrono::DateTime<Utc>) -> Option<String> {
    s.import_claim(owner, Duration::minutes(1), at)
        .unwrap()
        .map(|i| i.id)
}

fn claim_idle(s: &dyn Store, owner: &str, at: chrono::DateTime<Utc>) -> Option<String> {
    s.import_claim_in(owner, Duration::minutes(1), at, ClaimScope::IdleTenants)
        .unwrap()
        .map(|i| i.id)
}

pub fn a_tenant_with_nothing_running_is_claimed_before_an_older_import_of_a_busy_one(
    s: &dyn Store,
) {
    two_tenants(s);
    let default = TenantId::default_tenant();
    import(s, "a1", &default);
    import(s, "a2", &default);
    import(s, "a3", &default);
    import(s, "b1", &acme());
    // Nobody runs anything: the oldest goes first.
    assert_eq!(claim(s, "x", t0()).as_deref(), Some("a1"));
    // The default tenant has one running, acme none: acme's import jumps
    // the default tenant's older ones.
    assert_eq!(claim(s, "y", t0()).as_deref(), Some("b1"));
    // One each: back to the oldest.
    assert_eq!(claim(s, "z", t0()).as_deref(), Some("a2"));
    // A lease handed back (zero) no longer counts as running.
    let later = t0() + Duration::seconds(5);
    assert!(s.import_renew("a1", "x", Duration::zero(), later).unwrap());
    assert!(s.import_renew("a2", "z", Duration::zero(), later).unwrap());
    import(s, "b2", &acme());
    // acme has b1 running, the default tenant nothing: a1 (oldest) first.
    assert_eq!(claim(s, "x", later).as_deref(), Some("a1"));
    // Now one each again; the oldest of the rest is a2.
    assert_eq!(claim(s, "x", later).as_deref(), Some("a2"));
    assert_eq!(claim(s, "x", later).as_deref(), Some("b2"));
    assert_eq!(claim(s, "x", later).as_deref(), Some("a3"));
    assert!(claim(s, "x", later).is_none());
}

pub fn the_tenant_whose_import_ended_last_waits_for_the_others_turn(s: &dyn Store) {
    two_tenants(s);
    let default = TenantId::default_tenant();
    import(s, "a1", &default);
    import(s, "a2", &default);
    import(s, "b1", &acme());
    assert_eq!(claim(s, "x", t0()).as_deref(), Some("a1"));
    let t1 = t0() + Duration::seconds(10);
    assert!(s
        .import_set_state_claimed("a1", "x", ImportState::Succeeded, None, t1)
        .unwrap());
    // Neither runs anything now; the default tenant had its turn (a1
    // ended), acme never did: b1 before the older a2.
    assert_eq!(claim(s, "x", t1).as_deref(), Some("b1"));
    let t2 = t0() + Duration::seconds(20);
    assert!(s
        .import_set_state_claimed("b1", "x", ImportState::Rejected, Some(("bad", "x")), t2)
        .unwrap());
    import(s, "b2", &acme());
    // acme's import ended last: the default tenant's turn.
    assert_eq!(claim(s, "x", t2).as_deref(), Some("a2"));
    assert_eq!(claim(s, "x", t2).as_deref(), Some("b2"));
}

pub fn a_claim_for_idle_tenants_skips_every_tenant_with_an_import_running(s: &dyn Store) {
    two_tenants(s);
    let default = TenantId::default_tenant();
    import(s, "a1", &default);
    import(s, "a2", &default);
    assert_eq!(claim(s, "x", t0()).as_deref(), Some("a1"));
    // The default tenant runs a1: its a2 may not take the kept slot.
    assert!(claim_idle(s, "x", t0()).is_none());
    import(s, "b1", &acme());
    assert_eq!(claim_idle(s, "x", t0()).as_deref(), Some("b1"));
    assert!(claim_idle(s, "x", t0()).is_none());
    // A run whose lease ran out (its instance died) is not running: the
    // tenant is idle again, and its oldest import is taken up again.
    let later = t0() + Duration::minutes(2);
    assert_eq!(claim_idle(s, "y", later).as_deref(), Some("a1"));
    assert_eq!(claim_idle(s, "y", later).as_deref(), Some("b1"));
    // The unscoped claim still takes what is left.
    assert_eq!(claim(s, "y", later).as_deref(), Some("a2"));
}
