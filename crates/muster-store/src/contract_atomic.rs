//! A change and its audit entry commit together or not at all. Each case
//! makes the backend refuse audit appends with a real database mechanism
//! (the backend's `refuse` hook installs a trigger on the audit table, or
//! removes it), then shows that a refused entry leaves no change behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::contract::{chain_len, client, ctx, item, new_client, t0};
use crate::contract_fanout::subscription;
use crate::*;
use muster_core::secret;

/// Turns the refusal of audit appends on (`true`) or off (`false`) in the
/// database of the store the factory made, given the factory's guard.
pub type Refuse<'a> = &'a dyn Fn(&dyn std::any::Any, bool);

fn entry(action: &str) -> AuditDraft {
    AuditDraft {
        tenant: TenantId::default_tenant(),
        at: t0(),
        principal: "admin".into(),
        on_behalf_of: None,
        source: "admin".into(),
        action: action.into(),
        person: None,
        detail: serde_json::json!({}),
    }
}

fn recorded<T>(action: &str) -> Audit<T> {
    let e = entry(action);
    Box::new(move |_| vec![e])
}

pub fn an_admin_change_whose_entry_is_refused_leaves_nothing(s: &dyn Store, refuse: &dyn Fn(bool)) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    let before = chain_len(s, &t);
    refuse(true);
    assert!(s
        .client_create(
            new_client(&TenantId::default_tenant(), "c9"),
            t0(),
            recorded("client.created")
        )
        .is_err());
    assert!(matches!(
        s.client_get("c9"),
        Err(StoreError::NotFound { .. })
    ));
    let existing = client(s, &t, "c1");
    assert!(s
        .client_set_disabled("c1", true, recorded("client.disabled"))
        .is_err());
    assert!(!s.client_get("c1").unwrap().disabled);
    assert_eq!(existing.client_id, "c1");
    refuse(false);
    assert_eq!(chain_len(s, &t), before);
    s.client_create(
        new_client(&TenantId::default_tenant(), "c9"),
        t0(),
        recorded("client.created"),
    )
    .unwrap();
    assert_eq!(chain_len(s, &t), before + 1);
}

pub fn a_subscription_update_whose_entry_is_refused_leaves_the_old_settings(
    s: &dyn Store,
    refuse: &dyn Fn(bool),
) {
    let sub = subscription(s, "sub1");
    let t = TenantId::default_tenant();
    let before = chain_len(s, &t);
    let mut changed = sub.clone();
    changed.url = "https://hooks.example.com/elsewhere".into();
    refuse(true);
    assert!(s
        .subscription_update(&changed, recorded("subscription.updated"))
        .is_err());
    assert_eq!(s.subscription_get(&t, "sub1").unwrap().url, sub.url);
    assert!(s
        .subscription_delete(&t, "sub1", recorded("subscription.deleted"))
        .is_err());
    assert!(s.subscription_get(&t, "sub1").is_ok());
    refuse(false);
    assert_eq!(chain_len(s, &t), before);
    let now = s
        .subscription_update(&changed, recorded("subscription.updated"))
        .unwrap();
    assert_eq!(now.url, changed.url);
    assert_eq!(chain_len(s, &t), before + 1);
}

pub fn a_person_write_whose_entry_is_refused_leaves_nothing(s: &dyn Store, refuse: &dyn Fn(bool)) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    let before = chain_len(s, &t);
    let id = ExternalId::parse("E1").unwrap();
    refuse(true);
    assert!(s
        .apply_batch(&ctx(&t), vec![item("E1", "Ada")], None, false)
        .is_err());
    assert!(matches!(
        s.person_get(&t, &id),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(s.changes_head(&t).unwrap(), 0);
    refuse(false);
    assert_eq!(chain_len(s, &t), before);
    s.apply_batch(&ctx(&t), vec![item("E1", "Ada")], None, false)
        .unwrap();
    assert!(s.person_get(&t, &id).is_ok());
    assert_eq!(chain_len(s, &t), before + 1);
}
