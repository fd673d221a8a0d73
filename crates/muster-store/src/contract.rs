//! The behaviour every storage backend must show, as plain functions over a
//! `&dyn Store`. A backend runs them with [`contract_tests!`](crate::contract_tests),
//! which makes each case a test of its own, on a fresh, empty store from
//! the backend's factory (and a guard that cleans it up when dropped).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::*;
use chrono::{Duration, TimeZone, Utc};
use muster_core::audit::verify_chain;
use muster_core::person::Incoming;
use muster_core::secret;
use muster_core::AttrValue;

/// A fresh store and what keeps its database alive (a temporary
/// directory, a test database dropped with it).
pub type Made = (Box<dyn Store>, Box<dyn std::any::Any>);

/// Makes a fresh store, or `None` when the backend's database cannot be
/// reached and the test is skipped (the factory says so on stderr).
pub type Factory<'a> = &'a dyn Fn() -> Option<Made>;

/// Runs one case on a fresh store.
#[doc(hidden)]
pub fn run_case(make: Factory<'_>, case: fn(&dyn Store)) {
    let Some((store, _guard)) = make() else {
        return;
    };
    case(store.as_ref());
}

/// Runs one atomicity case on a fresh store, with the backend's hook that
/// makes its database refuse audit appends.
#[doc(hidden)]
pub fn run_atomic_case(
    make: Factory<'_>,
    refuse: crate::contract_atomic::Refuse<'_>,
    case: fn(&dyn Store, &dyn Fn(bool)),
) {
    let Some((store, guard)) = make() else {
        return;
    };
    case(store.as_ref(), &|on| refuse(guard.as_ref(), on));
}

/// The storage contract as one `#[test]` per case, each on a fresh store,
/// so that every case runs (and fails) on its own and can be run by name.
/// `make` is a factory ([`Factory`]); `refuse` turns the refusal of audit
/// appends on or off in the database of a store the factory made, given
/// its guard ([`contract_atomic::Refuse`](crate::contract_atomic::Refuse)).
/// Invoke it in a module of its own:
///
/// ```text
/// mod contract {
///     muster_store::contract_tests! { make: super::fresh, refuse: super::refuse }
/// }
/// ```
#[macro_export]
macro_rules! contract_tests {
    (make: $make:expr, refuse: $refuse:expr $(,)?) => {
        $crate::contract_tests! { @plain ($make)
            contract::bootstrap_happens_once,
            contract::one_time_tokens_are_used_once,
            contract::expired_revoked_and_disabled_tokens_are_refused,
            contract::mappings_are_versioned,
            contract::an_idempotency_key_returns_the_same_import,
            contract::warnings_are_kept_with_the_import_by_its_lease_holder_only,
            contract::only_changes_are_written_and_audited,
            contract::a_dry_run_writes_nothing_but_its_progress,
            contract::tenants_do_not_see_each_other,
            contract::a_tenant_is_created_with_its_admin_and_token_or_not_at_all,
            contract::keys_keep_their_state_and_sealed_secret,
            contract::intake_policies_default_and_replace,
            contract::read_policies_and_subscription_owners_are_kept,
            contract::prepared_items_store_exactly_what_plain_items_would,
            contract::client_keys_are_set_replaced_and_removed_one_by_one,
            contract::a_nonce_is_accepted_once,
            contract::a_nonce_is_accepted_once_even_when_callers_race,
            contract::a_claimed_import_is_held_until_its_lease_runs_out_or_it_ends,
            contract::issuers_are_stored_found_by_iss_and_deleted,
            contract::issuer_names_and_iss_audience_pairs_are_unique_per_tenant,
            contract::every_change_has_its_event_and_no_event_lacks_its_change,
            contract::events_keep_the_order_of_each_persons_changes,
            contract::events_are_numbered_and_read_per_tenant,
            contract::subscriptions_keep_their_progress_and_delivery_log,
            contract::admin_tokens_expire_are_listed_and_revoked_per_tenant,
            contract_semantics::imports_mark_people_with_their_source_and_api_writes_keep_it,
            contract_semantics::existence_is_answered_in_order,
            contract_semantics::effective_dates_settle_on_write_and_when_due,
            contract_semantics::settlers_racing_apply_a_transition_once,
            contract_rotate::every_sealed_value_is_listed_and_swapped_only_where_unchanged,
            contract_rotate::a_rotated_hmac_key_keeps_the_previous_one_until_its_deadline,
            contract_rotate::failed_authentications_are_counted_per_key_and_window,
            contract_rotate::instances_are_seen_by_their_heartbeats,
            contract_crash::a_batch_commits_only_while_its_instance_holds_the_lease,
            contract_crash::a_fenced_dry_run_batch_moves_only_the_checkpoint,
            contract_crash::validation_writes_of_an_instance_that_lost_the_lease_change_nothing,
            contract_crash::validation_writes_need_a_lease_and_end_with_the_import,
            contract_fanout::a_subscription_is_delivered_by_one_lease_holder_at_a_time,
            contract_fanout::a_lease_holder_keeps_a_redelivery_an_admin_asked_for_meanwhile,
            contract_fairness::a_tenant_with_nothing_running_is_claimed_before_an_older_import_of_a_busy_one,
            contract_fairness::the_tenant_whose_import_ended_last_waits_for_the_others_turn,
            contract_fairness::a_claim_for_idle_tenants_skips_every_tenant_with_an_import_running,
            contract_scim::people_are_found_by_their_scim_attributes_and_paged_in_a_stable_order,
            contract_scim::a_scim_delete_unlinks_and_a_new_link_gives_a_new_id,
            contract_scim::role_members_are_paged_and_groups_are_unique_per_tenant,
            contract_scim::a_scim_token_opens_only_the_scim_scope_and_rotation_ends_the_old_one,
        }
        $crate::contract_tests! { @atomic ($make) ($refuse)
            contract_atomic::an_admin_change_whose_entry_is_refused_leaves_nothing,
            contract_atomic::a_subscription_update_whose_entry_is_refused_leaves_the_old_settings,
            contract_atomic::a_person_write_whose_entry_is_refused_leaves_nothing,
            contract_atomic::a_key_rotation_happens_whole_or_not_at_all,
        }
    };
    (@plain ($make:expr) $($module:ident :: $case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                $crate::contract::run_case(&$make, $crate::$module::$case);
            }
        )*
    };
    (@atomic ($make:expr) ($refuse:expr) $($module:ident :: $case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                $crate::contract::run_atomic_case(&$make, &$refuse, $crate::$module::$case);
            }
        )*
    };
}

/// A change recorded by no audit entry: for cases about something else.
/// Production callers always build their entries ([`Audit`]).
pub fn no_audit<T>() -> Audit<T> {
    Box::new(|_| Vec::new())
}

// ---- fixtures: the builders every case and backend test shares ----------

/// An active age key `id` of `tenant`, made at [`t0`], its secret sealed
/// as three made-up bytes when it is a decryption key.
pub fn age_key(tenant: &TenantId, id: &str, purpose: KeyPurpose) -> KeyRow {
    KeyRow {
        id: id.into(),
        tenant: tenant.clone(),
        kind: "age".into(),
        algorithm: "x25519".into(),
        purpose,
        key_ids: vec![format!("age1{id}")],
        public_key: format!("age1{id}"),
        sealed_secret: (purpose == KeyPurpose::Decryption).then(|| vec![1, 2, 3]),
        state: KeyState::Active,
        created_at: t0(),
        updated_at: t0(),
    }
}

/// The moment the cases start at.
pub fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
}

/// An integration client of `tenant` with public id `id`.
pub fn new_client(tenant: &TenantId, id: &str) -> NewClient {
    NewClient {
        tenant: tenant.clone(),
        kind: PrincipalKind::Client,
        client_id: id.into(),
        name: id.into(),
        role: "syncer".into(),
        token_policy: "ttl".into(),
        token_ttl_seconds: 900,
        write_policy: WritePolicy::allow_all(),
        read_policy: ReadPolicy::default(),
        secret: Some(secret::digest("s")),
    }
}

/// A tenant to create, with its administrator `admin@<id>` and an admin
/// token for them.
pub fn new_tenant(id: &TenantId, name: &str) -> NewTenant {
    NewTenant {
        id: id.clone(),
        name: name.into(),
        admin: NewClient {
            kind: PrincipalKind::Admin,
            role: "admin".into(),
            token_ttl_seconds: 0,
            secret: None,
            ..new_client(id, &format!("admin@{id}"))
        },
        token: NewAdminToken {
            id: format!("tok-{id}"),
            digest: secret::digest(&format!("admin token of {id}")),
            principal_id: String::new(),
            name: INITIAL_TOKEN_NAME.into(),
            created_at: t0(),
            expires_at: None,
        },
    }
}

/// Stores [`new_client`].
pub fn client(store: &dyn Store, tenant: &TenantId, id: &str) -> ClientRow {
    store
        .client_create(new_client(tenant, id), t0(), no_audit())
        .unwrap()
}

/// Creates the tenant `other` beside the default one.
pub fn other_tenant(s: &dyn Store) -> TenantId {
    let other = TenantId::parse("other").unwrap();
    s.tenant_create(new_tenant(&other, "Other"), t0(), no_audit())
        .unwrap();
    other
}

/// An active subscription of `tenant` to created people, from cursor 0.
pub fn subscription_row(tenant: &TenantId, id: &str) -> SubscriptionRow {
    SubscriptionRow {
        id: id.into(),
        tenant: tenant.clone(),
        kind: SubscriptionKind::Webhook,
        url: "https://hooks.example.com/muster".into(),
        target: serde_json::Value::Null,
        events: vec!["person.created".into()],
        attributes: vec!["*".into()],
        owner: None,
        secret_sealed: vec![1, 2, 3],
        previous_secret_sealed: None,
        previous_until: None,
        state: SubscriptionState::Active,
        disabled_reason: None,
        progress: DeliveryProgress::default(),
        created_at: t0(),
        updated_at: t0(),
    }
}

/// A default-tenant CSV import by `principal`, with an idempotency key.
pub fn new_import(id: &str, principal: &str, key: Option<&str>) -> NewImport {
    NewImport {
        id: id.into(),
        tenant: TenantId::default_tenant(),
        principal_id: principal.into(),
        client_id: "c1".into(),
        on_behalf_of: None,
        idempotency_key: key.map(str::to_owned),
        mapping: "hr".into(),
        mapping_version: 1,
        mode: ImportMode::Upsert,
        dry_run: false,
        format: "csv".into(),
        options: serde_json::json!({}),
        bytes: 10,
        created_at: t0(),
    }
}

/// A record of person `id` at file row `row` with these attributes.
pub fn person_item(row: u64, id: &str, attrs: &[(&str, &str)]) -> BatchItem {
    let mut inc = Incoming::new(ExternalId::parse(id).unwrap());
    for (k, v) in attrs {
        inc.attrs.insert(k.to_string(), Some(AttrValue::string(*v)));
    }
    BatchItem::new(row, inc)
}

/// A record of person `id` with only a given name, at row 2.
pub fn item(id: &str, name: &str) -> BatchItem {
    person_item(2, id, &[("given_name", name)])
}

/// An API write to `tenant` by `client:c1` on behalf of someone, at [`t0`].
pub fn ctx(tenant: &TenantId) -> WriteContext {
    WriteContext {
        tenant: tenant.clone(),
        principal: "client:c1".into(),
        on_behalf_of: Some("ops@example.com".into()),
        source: "api".into(),
        policy: WritePolicy::allow_all(),
        now: t0(),
        source_system: None,
    }
}

/// The length of `t`'s audit chain, which must verify.
pub fn chain_len(s: &dyn Store, t: &TenantId) -> u64 {
    let mut rows = Vec::new();
    s.audit_walk(t, &mut |r| {
        rows.push((r.entry, r.hash));
        true
    })
    .unwrap();
    verify_chain(rows).unwrap()
}

// ---- the cases ---------------------------------------------------------------

pub fn bootstrap_happens_once(s: &dyn Store) {
    assert!(s.bootstrap(secret::digest("a"), t0()).unwrap());
    assert!(!s.bootstrap(secret::digest("b"), t0()).unwrap());
    assert_eq!(s.tenant_list().unwrap().len(), 1);
    let grant = s.token_use(secret::digest("a"), t0()).unwrap().unwrap();
    assert_eq!(grant.principal.kind, PrincipalKind::Admin);
    assert!(s.token_use(secret::digest("b"), t0()).unwrap().is_err());
}

pub fn admin_tokens_expire_are_listed_and_revoked_per_tenant(s: &dyn Store) {
    let first = secret::digest("first");
    assert!(s
        .bootstrap_admin(first, Some(t0() + Duration::hours(1)), t0())
        .unwrap());
    let listed = s.admin_token_list(&TenantId::default_tenant()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, INITIAL_TOKEN_NAME);
    assert_eq!(listed[0].admin, "admin");
    assert_eq!(listed[0].expires_at, Some(t0() + Duration::hours(1)));
    assert_eq!(listed[0].last_used_at, None);
    // Used: its last use is recorded; expired: refused as unknown.
    assert!(s
        .token_use(first, t0() + Duration::minutes(5))
        .unwrap()
        .is_ok());
    let listed = s.admin_token_list(&TenantId::default_tenant()).unwrap();
    assert_eq!(listed[0].last_used_at, Some(t0() + Duration::minutes(5)));
    assert_eq!(
        s.token_use(first, t0() + Duration::hours(1))
            .unwrap()
            .unwrap_err(),
        TokenRefusal::Unknown
    );
    // A minted token works until revoked, by id or by its digest.
    let admin = s.token_use(first, t0()).unwrap().unwrap().principal;
    let minted = |name: &str| {
        s.admin_token_create(
            NewAdminToken {
                id: format!("id-{name}"),
                digest: secret::digest(name),
                principal_id: admin.id.clone(),
                name: name.into(),
                created_at: t0(),
                expires_at: Some(t0() + Duration::days(30)),
            },
            crate::contract::no_audit(),
        )
        .unwrap()
    };
    let a = minted("ci");
    assert_eq!(a.id, "id-ci");
    assert_eq!(a.revoked_at, None);
    let b = minted("laptop");
    assert!(s.token_use(secret::digest("ci"), t0()).unwrap().is_ok());
    let other = TenantId::parse("acme").unwrap();
    s.tenant_create(
        new_tenant(&other, "Acme"),
        t0(),
        crate::contract::no_audit(),
    )
    .unwrap();
    assert!(matches!(
        s.admin_token_revoke(
            &other,
            AdminTokenRef::Id(a.id.clone()),
            t0(),
            crate::contract::no_audit()
        ),
        Err(StoreError::NotFound { .. })
    ));
    // Only its own administrator's first token, none of the default tenant's.
    let theirs = s.admin_token_list(&other).unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].admin, "admin@acme");
    let r = s
        .admin_token_revoke(
            &TenantId::default_tenant(),
            AdminTokenRef::Id(a.id.clone()),
            t0() + Duration::minutes(1),
            crate::contract::no_audit(),
        )
        .unwrap();
    assert_eq!(r.revoked_at, Some(t0() + Duration::minutes(1)));
    assert_eq!(
        s.token_use(secret::digest("ci"), t0() + Duration::minutes(2))
            .unwrap()
            .unwrap_err(),
        TokenRefusal::Unknown
    );
    s.admin_token_revoke(
        &TenantId::default_tenant(),
        AdminTokenRef::Digest(secret::digest("laptop")),
        t0(),
        crate::contract::no_audit(),
    )
    .unwrap();
    assert!(s
        .token_use(secret::digest("laptop"), t0())
        .unwrap()
        .is_err());
    let listed = s.admin_token_list(&TenantId::default_tenant()).unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed
        .iter()
        .any(|t| t.id == b.id && t.revoked_at.is_some()));
    assert!(matches!(
        s.admin_token_revoke(
            &TenantId::default_tenant(),
            AdminTokenRef::Id("nope".into()),
            t0(),
            crate::contract::no_audit()
        ),
        Err(StoreError::NotFound { .. })
    ));
    // Only admins get admin tokens.
    let c = client(s, &TenantId::default_tenant(), "c1");
    assert!(s
        .admin_token_create(
            NewAdminToken {
                id: "id-c".into(),
                digest: secret::digest("c"),
                principal_id: c.id,
                name: "c".into(),
                created_at: t0(),
                expires_at: None,
            },
            crate::contract::no_audit()
        )
        .is_err());
}

pub fn one_time_tokens_are_used_once(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let c = client(s, &TenantId::default_tenant(), "c1");
    let d = secret::digest("tok");
    s.token_insert(NewToken {
        digest: d,
        principal_id: c.id.clone(),
        scope: "imports:create".into(),
        one_time: true,
        created_at: t0(),
        expires_at: Some(t0() + Duration::minutes(15)),
    })
    .unwrap();
    assert!(s.token_use(d, t0()).unwrap().is_ok());
    assert_eq!(
        s.token_use(d, t0()).unwrap().unwrap_err(),
        TokenRefusal::Consumed
    );
}

pub fn expired_revoked_and_disabled_tokens_are_refused(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let c = client(s, &TenantId::default_tenant(), "c1");
    let tok = |name: &str| {
        let d = secret::digest(name);
        s.token_insert(NewToken {
            digest: d,
            principal_id: c.id.clone(),
            scope: "imports:create".into(),
            one_time: false,
            created_at: t0(),
            expires_at: Some(t0() + Duration::minutes(15)),
        })
        .unwrap();
        d
    };
    let a = tok("a1");
    assert!(s
        .token_use(a, t0() + Duration::minutes(14))
        .unwrap()
        .is_ok());
    assert_eq!(
        s.token_use(a, t0() + Duration::minutes(15))
            .unwrap()
            .unwrap_err(),
        TokenRefusal::Expired
    );
    let b = tok("b1");
    s.token_revoke(b, "someone-else").unwrap();
    assert!(s.token_use(b, t0()).unwrap().is_ok());
    s.token_revoke(b, &c.id).unwrap();
    assert!(s.token_use(b, t0()).unwrap().is_err());
    let d = tok("d1");
    s.client_set_disabled("c1", true, crate::contract::no_audit())
        .unwrap();
    assert!(s.token_use(d, t0()).unwrap().is_err());
    assert!(s.client_get("c1").unwrap().disabled);
    assert!(matches!(
        s.client_get("nope"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.client_create(
            NewClient {
                tenant: TenantId::default_tenant(),
                kind: PrincipalKind::Client,
                client_id: "c1".into(),
                name: "dup".into(),
                role: "syncer".into(),
                token_policy: "ttl".into(),
                token_ttl_seconds: 900,
                write_policy: WritePolicy::default(),
                read_policy: ReadPolicy::default(),
                secret: None,
            },
            t0(),
            crate::contract::no_audit()
        ),
        Err(StoreError::Conflict(_))
    ));
}

pub fn mappings_are_versioned(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    for i in 1..=2 {
        let m = s
            .mapping_put(
                MappingRow {
                    tenant: t.clone(),
                    name: "hr".into(),
                    version: 0,
                    document: serde_json::json!({"key": format!("K{i}")}),
                    created_at: t0(),
                    created_by: "admin:admin".into(),
                },
                crate::contract::no_audit(),
            )
            .unwrap();
        assert_eq!(m.version, i);
    }
    assert_eq!(s.mapping_get(&t, "hr", None).unwrap().version, 2);
    assert_eq!(
        s.mapping_get(&t, "hr", Some(1)).unwrap().document["key"],
        "K1"
    );
    assert_eq!(s.mapping_versions(&t, "hr").unwrap().len(), 2);
    assert_eq!(s.mapping_list(&t).unwrap().len(), 1);
    assert!(s.mapping_get(&t, "other", None).is_err());
}

pub fn an_idempotency_key_returns_the_same_import(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let (a, fresh) = s.import_create(new_import("i1", "p1", Some("k"))).unwrap();
    assert!(fresh);
    let (b, fresh) = s.import_create(new_import("i2", "p1", Some("k"))).unwrap();
    assert!(!fresh);
    assert_eq!(a.id, b.id);
    let (c, fresh) = s.import_create(new_import("i3", "p2", Some("k"))).unwrap();
    assert!(fresh && c.id == "i3");
    // The key's lookup names each principal's own import.
    assert_eq!(s.import_by_key("p1", "k").unwrap().unwrap().id, a.id);
    assert_eq!(s.import_by_key("p2", "k").unwrap().unwrap().id, "i3");
    assert!(s.import_by_key("p1", "other").unwrap().is_none());
    assert!(s.import_by_key("p3", "k").unwrap().is_none());
    assert_eq!(s.import_pending().unwrap().len(), 2);
    let lease = Duration::minutes(1);
    let held = s.import_claim("w", lease, t0()).unwrap().unwrap();
    assert!(s
        .import_set_state_claimed(&held.id, "w", ImportState::Succeeded, None, t0())
        .unwrap());
    assert_eq!(s.import_pending().unwrap().len(), 1);
    let got = s.import_get(&TenantId::default_tenant(), &held.id).unwrap();
    assert_eq!(got.state, ImportState::Succeeded);
    assert!(got.finished_at.is_some());
}

pub fn warnings_are_kept_with_the_import_by_its_lease_holder_only(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let mut i = new_import("i1", "p1", None);
    i.options = serde_json::json!({"delimiter": ";"});
    s.import_create(i).unwrap();
    let held = s
        .import_claim("w", Duration::minutes(1), t0())
        .unwrap()
        .unwrap();
    let w = serde_json::json!([{"code": "missing_optional_column", "column": "Dept"}]);
    assert!(!s
        .import_set_warnings_claimed(&held.id, "other", &w)
        .unwrap());
    let t = TenantId::default_tenant();
    assert!(s
        .import_get(&t, &held.id)
        .unwrap()
        .options
        .get("warnings")
        .is_none());
    assert!(s.import_set_warnings_claimed(&held.id, "w", &w).unwrap());
    let got = s.import_get(&t, &held.id).unwrap();
    assert_eq!(got.options["warnings"], w);
    // The other options stay.
    assert_eq!(got.options["delimiter"], ";");
    // Replaced, not appended.
    let none = serde_json::json!([]);
    assert!(s.import_set_warnings_claimed(&held.id, "w", &none).unwrap());
    assert_eq!(
        s.import_get(&t, &held.id).unwrap().options["warnings"],
        none
    );
}

pub fn only_changes_are_written_and_audited(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    let ctx = |t: &TenantId| WriteContext {
        source_system: Some("hr".into()),
        ..ctx(t)
    };
    let before = chain_len(s, &t);
    let r = s
        .apply_batch(
            &ctx(&t),
            vec![item("E1", "Ada"), item("E2", "Bob")],
            None,
            false,
        )
        .unwrap();
    assert!(r
        .iter()
        .all(|r| r.kind == ChangeKind::Created && r.version == 1));
    let r = s
        .apply_batch(
            &ctx(&t),
            vec![item("E1", "Ada"), item("E2", "Rob")],
            None,
            false,
        )
        .unwrap();
    assert_eq!(r[0].kind, ChangeKind::Unchanged);
    assert_eq!((r[1].kind, r[1].version), (ChangeKind::Updated, 2));
    assert_eq!(chain_len(s, &t), before + 3);
    let p = s.person_get(&t, &ExternalId::parse("E2").unwrap()).unwrap();
    assert_eq!(p.version, 2);
    assert_eq!(p.on_behalf_of.as_deref(), Some("ops@example.com"));
    let last = s.audit_list(&t, before as i64 + 2, 10).unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].entry.action, "person.updated");
    let detail: serde_json::Value = serde_json::from_str(&last[0].entry.detail).unwrap();
    assert_eq!(detail["changes"][0]["attribute"], "given_name");
    assert_eq!(s.person_list(&t, None, 10).unwrap().len(), 2);
    assert_eq!(s.person_list(&t, Some("E1"), 10).unwrap().len(), 1);
    let fps = s
        .person_fingerprints_of_source(&t, &["E1", "nobody", "E2"], "hr")
        .unwrap();
    let ctx = ctx(&t);
    assert_eq!(
        fps[0],
        Some(
            item("E1", "Ada")
                .incoming
                .fingerprint(&ctx.principal, &ctx.policy)
        )
    );
    assert_eq!(fps[1], None);
    assert!(fps[2].is_some());
}

pub fn a_dry_run_writes_nothing_but_its_progress(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    s.import_create(new_import("i1", "p1", None)).unwrap();
    let before = chain_len(s, &t);
    let r = s
        .apply_batch(
            &ctx(&t),
            vec![item("E1", "Ada")],
            Some(Checkpoint {
                import_id: "i1".into(),
                row: 2,
                unchanged: 3,
            }),
            true,
        )
        .unwrap();
    assert_eq!(r[0].kind, ChangeKind::Created);
    assert!(s.person_get(&t, &ExternalId::parse("E1").unwrap()).is_err());
    assert_eq!(chain_len(s, &t), before);
    let i = s.import_get(&t, "i1").unwrap();
    assert_eq!(
        (i.checkpoint_row, i.counts.created, i.counts.unchanged),
        (2, 1, 3)
    );
}

pub fn tenants_do_not_see_each_other(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let a = TenantId::default_tenant();
    let b = other_tenant(s);
    assert!(matches!(
        s.tenant_create(new_tenant(&b, "Again"), t0(), crate::contract::no_audit()),
        Err(StoreError::Conflict(_))
    ));
    s.apply_batch(&ctx(&a), vec![item("E1", "Ada")], None, false)
        .unwrap();
    assert!(s.person_get(&b, &ExternalId::parse("E1").unwrap()).is_err());
    assert!(s.person_list(&b, None, 10).unwrap().is_empty());
    s.import_create(new_import("i1", "p1", None)).unwrap();
    assert!(s.import_get(&b, "i1").is_err());
    assert_eq!(chain_len(s, &b), 0);
}

pub fn a_tenant_is_created_with_its_admin_and_token_or_not_at_all(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let audit: Audit<TenantCreated> = Box::new(|c| {
        vec![AuditDraft {
            tenant: c.tenant.id.clone(),
            at: t0(),
            principal: "admin".into(),
            on_behalf_of: None,
            source: "admin".into(),
            action: "tenant.created".into(),
            person: None,
            detail: serde_json::json!({ "admin": c.admin.client_id, "token": c.token.id }),
        }]
    });
    let made = s
        .tenant_create(new_tenant(&acme, "Acme"), t0(), audit)
        .unwrap();
    assert_eq!(made.tenant.id, acme);
    assert_eq!(
        (
            made.admin.tenant.clone(),
            made.admin.kind,
            made.admin.client_id.as_str()
        ),
        (acme.clone(), PrincipalKind::Admin, "admin@acme")
    );
    assert_eq!(
        (made.token.admin.as_str(), made.token.id.as_str()),
        ("admin@acme", "tok-acme")
    );
    assert_eq!(chain_len(s, &acme), 1);
    assert_eq!(s.admin_token_list(&acme).unwrap().len(), 1);
    // The second tenant's admin would take a client id that exists: the
    // tenant is not created either, and nothing of it is left.
    let globex = TenantId::parse("globex").unwrap();
    let mut clash = new_tenant(&globex, "Globex");
    clash.admin.client_id = "admin@acme".into();
    clash.token.id = "tok-globex".into();
    assert!(s.tenant_create(clash, t0(), no_audit()).is_err());
    assert!(s.tenant_list().unwrap().iter().all(|t| t.id != globex));
    assert_eq!(chain_len(s, &globex), 0);
    assert!(s.admin_token_list(&globex).unwrap().is_empty());
}

pub fn keys_keep_their_state_and_sealed_secret(store: &dyn Store) {
    store.bootstrap([0; 32], t0()).unwrap();
    let other = other_tenant(store);
    let tenant = TenantId::default_tenant();
    let key = |id: &str, purpose, secret: Option<Vec<u8>>| KeyRow {
        sealed_secret: secret,
        ..age_key(&tenant, id, purpose)
    };
    let a = store
        .key_create(
            key("k1", KeyPurpose::Decryption, Some(vec![1, 2, 3])),
            crate::contract::no_audit(),
        )
        .unwrap();
    assert_eq!(a.sealed_secret.as_deref(), Some(&[1u8, 2, 3][..]));
    assert_eq!(a.key_ids, vec!["age1k1".to_string()]);
    store
        .key_create(
            key("k2", KeyPurpose::SenderVerification, None),
            crate::contract::no_audit(),
        )
        .unwrap();
    assert!(matches!(
        store.key_create(
            key("k1", KeyPurpose::Decryption, None),
            crate::contract::no_audit()
        ),
        Err(StoreError::Conflict(_))
    ));
    let later = t0() + Duration::minutes(5);
    let b = store
        .key_set_state(
            &tenant,
            "k1",
            KeyState::DecryptOnly,
            later,
            crate::contract::no_audit(),
        )
        .unwrap();
    assert_eq!(b.state, KeyState::DecryptOnly);
    assert_eq!(b.updated_at, later);
    let ids: Vec<_> = store
        .key_list(&tenant)
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["k1", "k2"]);
    // Another tenant sees none of them and cannot change them.
    assert!(store.key_list(&other).unwrap().is_empty());
    assert!(matches!(
        store.key_get(&other, "k1"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.key_set_state(
            &other,
            "k1",
            KeyState::Revoked,
            later,
            crate::contract::no_audit()
        ),
        Err(StoreError::NotFound { .. })
    ));
    // Only sealed secrets are listed for re-sealing, and swapped where the
    // row still holds what was read.
    let sealed: Vec<_> = store
        .sealed_all()
        .unwrap()
        .into_iter()
        .filter(|v| v.column == SealedColumn::KeySecret)
        .map(|v| (v.id, v.sealed))
        .collect();
    assert_eq!(sealed, vec![("k1".to_string(), vec![1, 2, 3])]);
    let swap = |id: &str, old: Vec<u8>, new: Vec<u8>| SealedSwap {
        id: id.into(),
        old,
        new,
    };
    assert_eq!(
        store
            .sealed_replace(
                SealedColumn::KeySecret,
                vec![swap("k1", vec![1, 2, 3], vec![9, 9])]
            )
            .unwrap(),
        1
    );
    assert_eq!(
        store.key_get(&tenant, "k1").unwrap().sealed_secret,
        Some(vec![9, 9])
    );
    assert_eq!(
        store
            .sealed_replace(SealedColumn::KeySecret, vec![swap("k2", vec![], vec![1])])
            .unwrap(),
        0
    );
    assert_eq!(store.key_get(&tenant, "k2").unwrap().sealed_secret, None);
}

pub fn read_policies_and_subscription_owners_are_kept(store: &dyn Store) {
    store.bootstrap([0; 32], t0()).unwrap();
    let t = TenantId::default_tenant();
    let narrow = ReadPolicy {
        attributes: vec!["given_name".into(), "department".into()],
        events: vec!["person.created".into()],
    };
    let made = store
        .client_create(
            NewClient {
                read_policy: narrow.clone(),
                ..new_client(&t, "node")
            },
            t0(),
            no_audit(),
        )
        .unwrap();
    assert_eq!(made.read_policy, narrow);
    assert_eq!(store.client_get("node").unwrap().read_policy, narrow);
    assert_eq!(
        client(store, &t, "plain").read_policy,
        ReadPolicy::default()
    );
    let wider = ReadPolicy {
        attributes: vec!["*".into()],
        events: Vec::new(),
    };
    let after = store
        .client_set_read_policy("node", &wider, no_audit())
        .unwrap();
    assert_eq!(after.read_policy, wider);
    assert_eq!(
        store
            .client_list(&t)
            .unwrap()
            .iter()
            .find(|c| c.client_id == "node")
            .unwrap()
            .read_policy,
        wider
    );
    assert!(matches!(
        store.client_set_read_policy("nobody", &wider, no_audit()),
        Err(StoreError::NotFound { .. })
    ));
    let owned = SubscriptionRow {
        owner: Some("node".into()),
        ..subscription_row(&t, "sub_own")
    };
    assert_eq!(
        store
            .subscription_create(owned.clone(), no_audit())
            .unwrap(),
        owned
    );
    let mut changed = store.subscription_get(&t, "sub_own").unwrap();
    assert_eq!(changed.owner.as_deref(), Some("node"));
    changed.attributes = vec!["department".into()];
    // An update keeps the owner.
    changed.owner = None;
    let kept = store.subscription_update(&changed, no_audit()).unwrap();
    assert_eq!(kept.owner.as_deref(), Some("node"));
    assert_eq!(kept.attributes, vec!["department".to_string()]);

    // A kind other than webhook keeps its kind and settings; an update
    // changes the settings, never the kind.
    let nats = SubscriptionRow {
        kind: SubscriptionKind::Nats,
        url: "nats://127.0.0.1:4222".into(),
        target: serde_json::json!({"subject_prefix": "hr"}),
        ..subscription_row(&t, "sub_nats")
    };
    assert_eq!(
        store.subscription_create(nats.clone(), no_audit()).unwrap(),
        nats
    );
    let mut changed = store.subscription_get(&t, "sub_nats").unwrap();
    changed.target = serde_json::json!({"subject_prefix": "people"});
    changed.kind = SubscriptionKind::Webhook;
    let kept = store.subscription_update(&changed, no_audit()).unwrap();
    assert_eq!(kept.kind, SubscriptionKind::Nats);
    assert_eq!(kept.target["subject_prefix"], "people");
    let webhook = store.subscription_get(&t, "sub_own").unwrap();
    assert_eq!(webhook.kind, SubscriptionKind::Webhook);
    assert_eq!(webhook.target, serde_json::Value::Null);
}

pub fn intake_policies_default_and_replace(store: &dyn Store) {
    store.bootstrap([0; 32], t0()).unwrap();
    let c = client(store, &TenantId::default_tenant(), "hr");
    assert_eq!(
        store.intake_policy_get(&c.id).unwrap(),
        IntakePolicy::default()
    );
    let p = IntakePolicy {
        require_encryption: true,
        require_signed_by: Some("k1".into()),
    };
    store
        .intake_policy_put(&c.id, &p, crate::contract::no_audit())
        .unwrap();
    assert_eq!(store.intake_policy_get(&c.id).unwrap(), p);
    store
        .intake_policy_put(&c.id, &IntakePolicy::default(), crate::contract::no_audit())
        .unwrap();
    assert_eq!(
        store.intake_policy_get(&c.id).unwrap(),
        IntakePolicy::default()
    );
    assert!(store
        .intake_policy_put("no-such-principal", &p, crate::contract::no_audit())
        .is_err());
}

/// Work prepared off the writer (BatchItem::prepared) changes nothing about
/// the outcome: two tenants get the same items, one plain and one
/// prepared, and end with the same people, versions and audit details.
pub fn prepared_items_store_exactly_what_plain_items_would(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let (plain, prep) = (TenantId::default_tenant(), TenantId::parse("prep").unwrap());
    s.tenant_create(
        new_tenant(&prep, "Prepared"),
        t0(),
        crate::contract::no_audit(),
    )
    .unwrap();
    let prepared = |t: &TenantId, items: Vec<BatchItem>| {
        let c = ctx(t);
        let key = Incoming::fingerprint_key(&c.principal, &c.policy);
        items
            .into_iter()
            .map(|i| BatchItem::prepared(i.row, i.incoming, &key, &c.policy))
            .collect::<Vec<_>>()
    };
    // A bulk round, large enough for a backend's bulk path (PostgreSQL
    // copies 64 or more new people): new people, some changed again later
    // in the same batch, and people already stored.
    let mut bulk: Vec<BatchItem> = (100..300)
        .map(|i| item(&format!("E{i}"), &format!("N{i}")))
        .collect();
    bulk.extend((100..120).map(|i| item(&format!("E{i}"), &format!("M{i}"))));
    bulk.push(item("E3", "Cyd"));
    for round in [
        vec![item("E1", "Ada"), item("E2", "Bob")],
        // E2 exists now: its prepared creation must be ignored.
        vec![item("E1", "Ada"), item("E2", "Rob"), item("E3", "Cy")],
        bulk,
    ] {
        let a = s
            .apply_batch(&ctx(&plain), round.clone(), None, false)
            .unwrap();
        let b = s
            .apply_batch(&ctx(&prep), prepared(&prep, round), None, false)
            .unwrap();
        assert_eq!(a, b);
    }
    let ids = ["E1", "E2", "E3", "E100", "E119", "E120", "E299"];
    for id in ids {
        let id = ExternalId::parse(id).unwrap();
        let (x, y) = (
            s.person_get(&plain, &id).unwrap(),
            s.person_get(&prep, &id).unwrap(),
        );
        assert_eq!((x.state, x.version), (y.state, y.version));
    }
    let details = |t: &TenantId| {
        let mut v = Vec::new();
        s.audit_walk(t, &mut |r| {
            if r.entry.person.is_some() {
                v.push((r.entry.action.clone(), r.entry.detail.clone()));
            }
            true
        })
        .unwrap();
        v
    };
    assert_eq!(details(&plain), details(&prep));
    // Both chains verify (the default tenant's also holds its bootstrap).
    chain_len(s, &prep);
    chain_len(s, &plain);
    let events = |t: &TenantId| {
        s.changes_list(t, 0, 1000)
            .unwrap()
            .into_iter()
            .map(|e| (e.cursor, e.kind, e.external_id, e.version))
            .collect::<Vec<_>>()
    };
    let (a, b) = (events(&plain), events(&prep));
    assert_eq!(a, b);
    // Creations: 2, then 1, then 200; changes: 1, then 20 + 1. Numbered
    // 1, 2, ... without a gap.
    assert_eq!(a.len(), 225);
    assert!(a.iter().enumerate().all(|(i, e)| e.0 == i as i64 + 1));
    let e100 = s
        .person_get(&prep, &ExternalId::parse("E100").unwrap())
        .unwrap();
    assert_eq!(e100.version, 2, "created, then changed in the same batch");
}

pub fn client_keys_are_set_replaced_and_removed_one_by_one(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    client(s, &t, "signer");
    assert_eq!(s.client_keys_get("signer").unwrap(), ClientKeys::default());
    assert!(matches!(
        s.client_keys_get("nobody"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.client_keys_set(
            "nobody",
            ClientKeyChange::Hmac(Some(vec![1])),
            t0(),
            crate::contract::no_audit()
        ),
        Err(StoreError::NotFound { .. })
    ));

    let t1 = t0() + Duration::seconds(1);
    let k = s
        .client_keys_set(
            "signer",
            ClientKeyChange::Hmac(Some(vec![1, 2, 3])),
            t1,
            crate::contract::no_audit(),
        )
        .unwrap();
    assert_eq!(k.hmac_sealed, Some(vec![1, 2, 3]));
    assert_eq!(k.updated_at, Some(t1));
    let k = s
        .client_keys_set(
            "signer",
            ClientKeyChange::Ed25519(Some(vec![9; 32])),
            t1,
            crate::contract::no_audit(),
        )
        .unwrap();
    let k2 = s
        .client_keys_set(
            "signer",
            ClientKeyChange::JwtKeys(Some(r#"{"keys":[]}"#.into())),
            t1,
            crate::contract::no_audit(),
        )
        .unwrap();
    assert_eq!(k2.hmac_sealed, Some(vec![1, 2, 3]), "other keys stay");
    assert_eq!(k2.ed25519_public, k.ed25519_public);
    assert_eq!(k2.jwt_keys.as_deref(), Some(r#"{"keys":[]}"#));

    // Rotation replaces; removal clears only that key.
    let t2 = t0() + Duration::seconds(2);
    s.client_keys_set(
        "signer",
        ClientKeyChange::Hmac(Some(vec![4, 5])),
        t2,
        crate::contract::no_audit(),
    )
    .unwrap();
    let k = s
        .client_keys_set(
            "signer",
            ClientKeyChange::Ed25519(None),
            t2,
            crate::contract::no_audit(),
        )
        .unwrap();
    assert_eq!(k.hmac_sealed, Some(vec![4, 5]));
    assert_eq!(k.ed25519_public, None);
    assert!(k.jwt_keys.is_some());
    assert_eq!(s.client_keys_get("signer").unwrap(), k);
    assert_eq!(k.updated_at, Some(t2));
}

pub fn a_nonce_is_accepted_once(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    let a = client(s, &t, "client-a");
    let b = client(s, &t, "client-b");
    let until = t0() + Duration::seconds(600);
    assert!(s.nonce_record(&a.id, "n1", until, t0()).unwrap());
    assert!(!s.nonce_record(&a.id, "n1", until, t0()).unwrap());
    // Nonces are per client.
    assert!(s.nonce_record(&b.id, "n1", until, t0()).unwrap());
    assert!(s.nonce_record(&a.id, "n2", until, t0()).unwrap());
    // Still refused just before it expires; forgotten after.
    let before = until - Duration::seconds(1);
    assert!(!s.nonce_record(&a.id, "n1", until, before).unwrap());
    let after = until + Duration::seconds(1);
    assert!(s
        .nonce_record(&a.id, "n1", after + Duration::seconds(600), after)
        .unwrap());
    assert!(!s
        .nonce_record(&a.id, "n1", after + Duration::seconds(600), after)
        .unwrap());
}

pub fn a_nonce_is_accepted_once_even_when_callers_race(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    let a = client(s, &t, "racer");
    let until = t0() + Duration::seconds(600);
    let wins = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                if s.nonce_record(&a.id, "same", until, t0()).unwrap() {
                    wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(wins.into_inner(), 1);
}

pub fn a_claimed_import_is_held_until_its_lease_runs_out_or_it_ends(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    s.import_create(new_import("i1", "p1", None)).unwrap();
    s.import_create(new_import("i2", "p1", None)).unwrap();
    let lease = Duration::minutes(1);
    // Oldest first, and a held import is not handed out again.
    let first = s.import_claim("a", lease, t0()).unwrap().unwrap();
    assert_eq!(first.id, "i1");
    let second = s.import_claim("b", lease, t0()).unwrap().unwrap();
    assert_eq!(second.id, "i2");
    assert!(s.import_claim("c", lease, t0()).unwrap().is_none());
    // a renews in time; b's lease runs out and c gets i2, with its progress.
    let later = t0() + Duration::seconds(50);
    assert!(s.import_renew("i1", "a", lease, later).unwrap());
    s.apply_batch(
        &ctx(&TenantId::default_tenant()),
        vec![item("E1", "Ada")],
        Some(Checkpoint {
            import_id: "i2".into(),
            row: 2,
            unchanged: 0,
        }),
        false,
    )
    .unwrap();
    let after = t0() + Duration::seconds(70);
    let again = s.import_claim("c", lease, after).unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.checkpoint_row), ("i2", 2));
    // The old holder learns it lost the import and must stop.
    assert!(!s.import_renew("i2", "b", lease, after).unwrap());
    assert!(s.import_claim("b", lease, after).unwrap().is_none());
    // A zero lease hands an import back at once (a clean shutdown).
    assert!(s.import_renew("i2", "c", Duration::zero(), after).unwrap());
    let back = s.import_claim("d", lease, after).unwrap().unwrap();
    assert_eq!(back.id, "i2");
    // A final state releases the import for good.
    assert!(s
        .import_set_state_claimed("i1", "a", ImportState::Succeeded, None, after)
        .unwrap());
    assert!(s
        .import_set_state_claimed(
            "i2",
            "d",
            ImportState::Failed,
            Some(("internal", "x")),
            after
        )
        .unwrap());
    assert!(!s.import_renew("i1", "a", lease, after).unwrap());
    let much_later = after + Duration::hours(1);
    assert!(s.import_claim("a", lease, much_later).unwrap().is_none());
    assert!(s.import_pending().unwrap().is_empty());
}

fn issuer(tenant: &TenantId, name: &str, iss: &str, aud: &str) -> IssuerRow {
    IssuerRow {
        id: format!("{}-{name}", tenant.as_str()),
        tenant: tenant.clone(),
        name: name.into(),
        issuer: iss.into(),
        audience: aud.into(),
        settings: IssuerSettings {
            algorithms: vec!["RS256".into(), "HS256".into()],
            clock_skew_seconds: 60,
            jwks: Some(r#"{"keys":[]}"#.into()),
            jwks_url: None,
            jwks_cache_seconds: 300,
            mapping: "idp".into(),
            roles_claim: Some("groups".into()),
            write_policy: muster_core::policy::WritePolicy {
                attributes: vec!["given_name".into()],
                roles: vec!["staff".into()],
            },
        },
        hs256_sealed: Some(vec![9, 8, 7]),
        created_at: t0(),
    }
}

pub fn issuers_are_stored_found_by_iss_and_deleted(store: &dyn Store) {
    store.bootstrap([0; 32], t0()).unwrap();
    let other = other_tenant(store);
    let tenant = TenantId::default_tenant();
    let a = issuer(&tenant, "okta", "https://idp.example", "muster");
    assert_eq!(
        store
            .issuer_create(a.clone(), crate::contract::no_audit())
            .unwrap(),
        a
    );
    assert_eq!(store.issuer_get(&tenant, "okta").unwrap(), a);
    // The same IdP, another audience, another tenant.
    let b = issuer(&other, "okta", "https://idp.example", "muster-other");
    store
        .issuer_create(b.clone(), crate::contract::no_audit())
        .unwrap();
    store
        .issuer_create(
            issuer(&tenant, "entra", "https://login.example", "muster"),
            crate::contract::no_audit(),
        )
        .unwrap();
    let names: Vec<String> = store
        .issuer_list(&tenant)
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, vec!["entra".to_string(), "okta".to_string()]);
    // Found only among the tenant's own issuers.
    assert_eq!(
        store.issuer_find(&tenant, "https://idp.example").unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        store.issuer_find(&other, "https://idp.example").unwrap(),
        vec![b.clone()]
    );
    assert!(store
        .issuer_find(&tenant, "https://nobody.example")
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.issuer_get(&other, "entra"),
        Err(StoreError::NotFound { .. })
    ));
    // Another tenant's issuer cannot be deleted by name from this one.
    assert!(matches!(
        store.issuer_delete(&tenant, "missing", crate::contract::no_audit()),
        Err(StoreError::NotFound { .. })
    ));
    store
        .issuer_delete(&tenant, "okta", crate::contract::no_audit())
        .unwrap();
    assert!(matches!(
        store.issuer_get(&tenant, "okta"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(store
        .issuer_find(&tenant, "https://idp.example")
        .unwrap()
        .is_empty());
    assert_eq!(
        store.issuer_find(&other, "https://idp.example").unwrap(),
        vec![b]
    );
}

pub fn issuer_names_and_iss_audience_pairs_are_unique_per_tenant(store: &dyn Store) {
    store.bootstrap([0; 32], t0()).unwrap();
    let other = other_tenant(store);
    let tenant = TenantId::default_tenant();
    store
        .issuer_create(
            issuer(&tenant, "okta", "https://idp.example", "muster"),
            crate::contract::no_audit(),
        )
        .unwrap();
    let mut same_name = issuer(&tenant, "okta", "https://else.example", "x");
    same_name.id = "another-id".into();
    assert!(matches!(
        store.issuer_create(same_name, crate::contract::no_audit()),
        Err(StoreError::Conflict(_))
    ));
    // Within a tenant, (iss, aud) selects one issuer...
    let mut same_pair = issuer(&tenant, "entra", "https://idp.example", "muster");
    same_pair.id = "a-third-id".into();
    assert!(matches!(
        store.issuer_create(same_pair, crate::contract::no_audit()),
        Err(StoreError::Conflict(_))
    ));
    // ...but another tenant may register the same identity provider and
    // audience: it is that tenant's own issuer.
    let theirs = issuer(&other, "mine", "https://idp.example", "muster");
    assert_eq!(
        store
            .issuer_create(theirs.clone(), crate::contract::no_audit())
            .unwrap(),
        theirs
    );
    assert!(matches!(
        store.issuer_create(
            issuer(
                &TenantId::parse("nosuch").unwrap(),
                "x",
                "https://x.example",
                "x"
            ),
            crate::contract::no_audit()
        ),
        Err(StoreError::NotFound { .. }) | Err(StoreError::Conflict(_))
    ));
}

// ---- change events (docs/events.md#event-kinds) ---------------------------------------------

fn with_attr(id: &str, attr: &str, value: &str) -> BatchItem {
    let mut inc = Incoming::new(ExternalId::parse(id).unwrap());
    inc.attrs
        .insert(attr.into(), Some(AttrValue::string(value)));
    BatchItem::new(2, inc)
}

fn with_roles(id: &str, roles: &[&str]) -> BatchItem {
    let mut inc = Incoming::new(ExternalId::parse(id).unwrap());
    inc.roles = Some(roles.iter().map(|r| r.to_string()).collect());
    BatchItem::new(2, inc)
}

pub fn every_change_has_its_event_and_no_event_lacks_its_change(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    let audit_before = chain_len(s, &t) as i64;
    let mut created = item("E1", "Ada");
    created.incoming.roles = Some(["staff".to_string()].into());
    let batches = vec![
        vec![created, item("E2", "Bob")],
        // unchanged, and a dry run: no events
        vec![item("E1", "Ada")],
        vec![
            with_attr("E1", "employment_status", "terminated"),
            item("E2", "Rob"),
        ],
        vec![with_attr("E1", "employment_status", "active")],
        vec![with_roles("E2", &["staff", "vpn"])],
    ];
    for (i, b) in batches.into_iter().enumerate() {
        if i == 1 {
            s.apply_batch(&ctx(&t), b.clone(), None, true).unwrap();
        }
        s.apply_batch(&ctx(&t), b, None, false).unwrap();
    }
    let ev = s.changes_list(&t, 0, 100).unwrap();
    let kinds: Vec<(&str, &str, i64)> = ev
        .iter()
        .map(|e| (e.kind.as_str(), e.external_id.as_str(), e.version))
        .collect();
    assert_eq!(
        kinds,
        [
            ("person.created", "E1", 1),
            ("roles.changed", "E1", 1),
            ("person.created", "E2", 1),
            ("person.deactivated", "E1", 2),
            ("person.updated", "E2", 2),
            ("person.reactivated", "E1", 3),
            ("roles.changed", "E2", 3),
        ]
    );
    let cursors: Vec<i64> = ev.iter().map(|e| e.cursor).collect();
    assert_eq!(cursors, (1..=7).collect::<Vec<_>>());
    // Each person change is one audit entry, whose detail the events carry.
    let audit = s.audit_list(&t, audit_before, 100).unwrap();
    assert_eq!(audit.len(), 6);
    for e in &ev {
        let a = audit
            .iter()
            .find(|a| {
                a.entry.person.as_deref() == Some(e.external_id.as_str())
                    && serde_json::from_str::<serde_json::Value>(&a.entry.detail).unwrap()
                        ["version"]
                        == e.version
            })
            .expect("every event has its change");
        assert_eq!(a.entry.detail, e.detail);
        assert_eq!(a.entry.at, e.created_at);
        assert_eq!(
            (e.principal.as_str(), e.source.as_str()),
            ("client:c1", "api")
        );
        assert_eq!(e.on_behalf_of.as_deref(), Some("ops@example.com"));
        assert!(uuid::Uuid::parse_str(&e.id).is_ok_and(|u| u.get_version_num() == 7));
    }
    for a in &audit {
        assert!(ev.iter().any(
            |e| Some(e.external_id.as_str()) == a.entry.person.as_deref()
                && e.kind == a.entry.action
        ));
    }
    let ids: std::collections::BTreeSet<&str> = ev.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), ev.len(), "event ids are unique");
    // paging
    let page = s.changes_list(&t, 3, 2).unwrap();
    assert_eq!(page.iter().map(|e| e.cursor).collect::<Vec<_>>(), [4, 5]);
    assert!(s.changes_list(&t, 7, 10).unwrap().is_empty());
    assert_eq!(s.changes_head(&t).unwrap(), 7);
}

pub fn events_keep_the_order_of_each_persons_changes(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    // One id named several times within a batch and across batches.
    s.apply_batch(
        &ctx(&t),
        vec![
            item("E1", "A"),
            item("E2", "B"),
            item("E1", "C"),
            item("E1", "D"),
        ],
        None,
        false,
    )
    .unwrap();
    s.apply_batch(
        &ctx(&t),
        vec![item("E2", "E"), item("E1", "F")],
        None,
        false,
    )
    .unwrap();
    let ev = s.changes_list(&t, 0, 100).unwrap();
    for id in ["E1", "E2"] {
        let versions: Vec<i64> = ev
            .iter()
            .filter(|e| e.external_id == id)
            .map(|e| e.version)
            .collect();
        let n = versions.len() as i64;
        assert_eq!(versions, (1..=n).collect::<Vec<_>>(), "{id}");
    }
    assert!(ev.windows(2).all(|w| w[0].cursor < w[1].cursor));
    let last = ev.iter().rev().find(|e| e.external_id == "E1").unwrap();
    let detail: serde_json::Value = serde_json::from_str(&last.detail).unwrap();
    assert_eq!(detail["changes"][0]["after"], "F");
}

pub fn events_are_numbered_and_read_per_tenant(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let a = TenantId::default_tenant();
    let b = other_tenant(s);
    s.apply_batch(
        &ctx(&a),
        vec![item("E1", "Ada"), item("E2", "Bob")],
        None,
        false,
    )
    .unwrap();
    s.apply_batch(&ctx(&b), vec![item("E1", "Eve")], None, false)
        .unwrap();
    let ea = s.changes_list(&a, 0, 10).unwrap();
    let eb = s.changes_list(&b, 0, 10).unwrap();
    assert_eq!(ea.len(), 2);
    assert_eq!(eb.len(), 1);
    assert_eq!(eb[0].cursor, 1, "each tenant has its own cursor");
    assert_eq!(eb[0].tenant, b);
    assert!(eb[0].detail.contains("Eve") && !ea.iter().any(|e| e.detail.contains("Eve")));
}

pub fn subscriptions_keep_their_progress_and_delivery_log(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let a = TenantId::default_tenant();
    let b = other_tenant(s);
    let row = SubscriptionRow {
        attributes: vec!["given_name".into()],
        progress: DeliveryProgress {
            cursor: 4,
            sink: crate::SinkProgress {
                backfill: Some(String::new()),
                quarantine: None,
                backfill_error: None,
                failed_for: None,
            },
            ..Default::default()
        },
        ..subscription_row(&a, "sub_1")
    };

    let got = s
        .subscription_create(row.clone(), crate::contract::no_audit())
        .unwrap();
    assert_eq!(got, row);
    assert!(matches!(
        s.subscription_create(row.clone(), crate::contract::no_audit()),
        Err(StoreError::Conflict(_))
    ));
    assert!(s.subscription_get(&b, "sub_1").is_err());
    assert!(s.subscription_list(&b).unwrap().is_empty());
    assert_eq!(s.subscription_active().unwrap().len(), 1);

    let mut changed = got.clone();
    changed.attributes = vec!["given_name".into(), "department".into()];
    changed.previous_secret_sealed = Some(vec![9]);
    changed.previous_until = Some(t0() + Duration::hours(1));
    changed.progress.cursor = 99; // ignored: progress is the worker's
    let got = s
        .subscription_update(&changed, crate::contract::no_audit())
        .unwrap();
    assert_eq!(got.attributes.len(), 2);
    assert_eq!(got.previous_secret_sealed, Some(vec![9]));
    assert_eq!(got.progress.cursor, 4);

    let rec = |cursor: i64, outcome: &str| DeliveryRecord {
        seq: 0,
        subscription_id: "sub_1".into(),
        event_id: format!("ev{cursor}"),
        cursor,
        attempt: 1,
        at: t0(),
        status: Some(500),
        outcome: outcome.into(),
        error: None,
        manual: false,
    };
    let p = DeliveryProgress {
        cursor: 5,
        attempt: 1,
        next_attempt_at: Some(t0() + Duration::seconds(5)),
        redeliver: None,
        sink: crate::SinkProgress {
            backfill: Some("e-0042".into()),
            quarantine: Some(crate::Quarantine {
                since: t0(),
                tries: 2,
                reason: "HTTP 503".into(),
            }),
            backfill_error: Some("the target answered 503".into()),
            failed_for: Some("ab12".into()),
        },
    };
    let lease = Duration::minutes(1);
    let held = s.subscription_claim("sub_1", "w", lease, t0()).unwrap();
    assert!(held.is_some());
    let save = DeliverySave {
        progress: p.clone(),
        redeliver_seen: None,
        records: vec![rec(5, "delivered"), rec(6, "failed")],
        disable: None,
    };
    assert!(s
        .subscription_save("sub_1", "w", lease, &save, t0())
        .unwrap());
    let got = s.subscription_get(&a, "sub_1").unwrap();
    assert_eq!(got.progress, p);
    // A provisioning sink's links: per kind, replaced by key, listed in
    // key order, and gone with the subscription.
    use crate::{LinkKind, TargetLink};
    let link = |k: &str, id: &str| TargetLink {
        key: k.into(),
        target_id: id.into(),
        sent: serde_json::json!({"userName": k}),
    };
    for k in ["p2", "p1", "p3"] {
        s.target_link_put("sub_1", LinkKind::User, &link(k, &format!("t-{k}")))
            .unwrap();
    }
    s.target_link_put("sub_1", LinkKind::User, &link("p2", "t-new"))
        .unwrap();
    s.target_link_put(
        "sub_1",
        LinkKind::Group,
        &TargetLink {
            key: "p1".into(),
            target_id: "g1".into(),
            sent: serde_json::Value::Null,
        },
    )
    .unwrap();
    let got_links = s
        .target_links("sub_1", LinkKind::User, &["p2", "nobody", "p1"])
        .unwrap();
    assert_eq!(got_links[0].as_ref().unwrap().target_id, "t-new");
    assert!(got_links[1].is_none());
    assert_eq!(got_links[2], Some(link("p1", "t-p1")));
    let listed = s
        .target_link_list("sub_1", LinkKind::User, "p1", 10)
        .unwrap();
    let keys: Vec<&str> = listed.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, ["p2", "p3"]);
    assert_eq!(
        s.target_link_of("sub_1", LinkKind::User, "t-new")
            .unwrap()
            .map(|l| l.key),
        Some("p2".to_owned())
    );
    assert!(s
        .target_link_of("sub_1", LinkKind::User, "t-p2")
        .unwrap()
        .is_none());
    assert!(s
        .target_link_of("sub_1", LinkKind::Group, "t-p1")
        .unwrap()
        .is_none());
    let groups = s
        .target_link_list("sub_1", LinkKind::Group, "", 10)
        .unwrap();
    assert_eq!(groups[0].sent, serde_json::Value::Null);
    s.target_link_delete("sub_1", LinkKind::User, "p3").unwrap();
    s.target_link_delete("sub_1", LinkKind::User, "p3").unwrap();
    assert_eq!(
        s.target_link_list("sub_1", LinkKind::User, "", 10)
            .unwrap()
            .len(),
        2
    );
    assert!(s
        .target_link_put("no_such_sub", LinkKind::User, &link("p1", "x"))
        .is_err());

    let log = s.delivery_list("sub_1", 0, 10).unwrap();
    assert_eq!(log.len(), 2);
    assert!(log[0].seq < log[1].seq);
    assert_eq!((log[1].cursor, log[1].outcome.as_str()), (6, "failed"));
    assert_eq!(s.delivery_list("sub_1", log[0].seq, 10).unwrap().len(), 1);

    let got = s
        .subscription_redeliver(&a, "sub_1", (2, 3), t0(), crate::contract::no_audit())
        .unwrap();
    assert_eq!(got.progress.redeliver, Some((2, 3)));
    assert!(s
        .subscription_redeliver(&b, "sub_1", (2, 3), t0(), crate::contract::no_audit())
        .is_err());

    let save = DeliverySave {
        progress: got.progress.clone(),
        redeliver_seen: got.progress.redeliver,
        records: vec![rec(7, "gone")],
        disable: Some("gone".into()),
    };
    assert!(s
        .subscription_save("sub_1", "w", lease, &save, t0())
        .unwrap());
    let got = s.subscription_get(&a, "sub_1").unwrap();
    assert_eq!(got.state, SubscriptionState::Disabled);
    assert_eq!(got.disabled_reason.as_deref(), Some("gone"));
    assert!(s.subscription_active().unwrap().is_empty());
    assert!(s
        .subscription_delete(&b, "sub_1", crate::contract::no_audit())
        .is_err());
    s.subscription_delete(&a, "sub_1", crate::contract::no_audit())
        .unwrap();
    assert!(s.subscription_list(&a).unwrap().is_empty());
    assert!(s
        .target_link_list("sub_1", LinkKind::User, "", 10)
        .unwrap()
        .is_empty());
}
