//! A change and its audit entry commit together or not at all. Each case
//! makes the backend refuse audit appends with a real database mechanism
//! (the backend's `refuse` hook installs a trigger on the audit table, or
//! removes it), then shows that a refused entry leaves no change behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::contract::{age_key, chain_len, client, ctx, item, new_client, t0};
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

pub fn a_key_rotation_happens_whole_or_not_at_all(s: &dyn Store, refuse: &dyn Fn(bool)) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    s.key_create(
        age_key(&t, "k1", KeyPurpose::Decryption),
        recorded("key.created"),
    )
    .unwrap();
    s.key_create(
        age_key(&t, "s1", KeyPurpose::SenderVerification),
        recorded("key.created"),
    )
    .unwrap();
    let later = t0() + chrono::Duration::minutes(5);
    let two: fn() -> Audit<KeyRotation> = || {
        let (a, b) = (entry("key.created"), entry("key.state_changed"));
        Box::new(move |_| vec![a, b])
    };
    let ids = |s: &dyn Store| -> Vec<(String, KeyState)> {
        s.key_list(&t)
            .unwrap()
            .into_iter()
            .map(|k| (k.id, k.state))
            .collect()
    };
    let before = (chain_len(s, &t), ids(s));

    // The audit entries are refused: the old key stays active, no new one.
    refuse(true);
    assert!(s
        .key_rotate(
            age_key(&t, "k2", KeyPurpose::Decryption),
            "k1",
            later,
            two()
        )
        .is_err());
    refuse(false);
    assert_eq!((chain_len(s, &t), ids(s)), before);

    // Only an active decryption key is rotated; nothing is written else.
    for not_rotated in ["s1", "nope"] {
        assert!(s
            .key_rotate(
                age_key(&t, "k2", KeyPurpose::Decryption),
                not_rotated,
                later,
                two()
            )
            .is_err());
    }
    assert_eq!((chain_len(s, &t), ids(s)), before);

    // The new key's id is taken: the old key keeps its state.
    assert!(matches!(
        s.key_rotate(
            age_key(&t, "s1", KeyPurpose::Decryption),
            "k1",
            later,
            two()
        ),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!((chain_len(s, &t), ids(s)), before);

    let done = s
        .key_rotate(
            age_key(&t, "k2", KeyPurpose::Decryption),
            "k1",
            later,
            two(),
        )
        .unwrap();
    assert_eq!(
        (done.new.id.as_str(), done.new.state),
        ("k2", KeyState::Active)
    );
    assert_eq!(
        (done.old.id.as_str(), done.old.state),
        ("k1", KeyState::DecryptOnly)
    );
    assert_eq!(done.old.updated_at, later);
    assert_eq!(chain_len(s, &t), before.0 + 2);
    // A key rotated once is not rotated again.
    assert!(matches!(
        s.key_rotate(
            age_key(&t, "k3", KeyPurpose::Decryption),
            "k1",
            later,
            two()
        ),
        Err(StoreError::Conflict(_))
    ));
    let mut after = ids(s);
    after.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        after,
        [
            ("k1".to_string(), KeyState::DecryptOnly),
            ("k2".to_string(), KeyState::Active),
            ("s1".to_string(), KeyState::Active),
        ]
    );
}
