//! Contract cases for the SCIM capability ([`Scim`]): every person gets a
//! SCIM id, the indexed lookups (case rules included), stable paging, the
//! link and unlink of a SCIM DELETE, role members, groups and SCIM tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::contract::{chain_len, client, ctx, no_audit, other_tenant, person_item, t0};
use crate::*;
use chrono::Duration;
use muster_core::secret;

fn entry(t: &TenantId, action: &str) -> AuditDraft {
    AuditDraft {
        tenant: t.clone(),
        at: t0(),
        principal: "client:scim".into(),
        on_behalf_of: None,
        source: "scim".into(),
        action: action.into(),
        person: None,
        detail: serde_json::Value::Null,
    }
}

fn audit_of<T>(t: &TenantId, action: &'static str) -> Audit<T> {
    let e = entry(t, action);
    Box::new(move |_| vec![e])
}

fn with_roles(mut item: BatchItem, roles: &[&str]) -> BatchItem {
    item.incoming.roles = Some(roles.iter().map(|r| r.to_string()).collect());
    item
}

pub fn people_are_found_by_their_scim_attributes_and_paged_in_a_stable_order(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    let other = other_tenant(s);
    let mut batch = Vec::new();
    for i in 0..5 {
        batch.push(person_item(
            i + 1,
            &format!("P{i}"),
            &[
                (scim_attrs::USER_NAME, &format!("User{i}@Example.com")),
                ("email", &format!("Mail{i}@Example.com")),
                (scim_attrs::EMPLOYEE_NUMBER, &format!("EMP-{i}")),
                (scim_attrs::EXTERNAL_ID, &format!("Ext{i}")),
            ],
        ));
    }
    s.apply_batch(&ctx(&t), batch, None, false).unwrap();
    s.apply_batch(
        &ctx(&other),
        vec![person_item(
            1,
            "P1",
            &[(scim_attrs::USER_NAME, "user1@example.com")],
        )],
        None,
        false,
    )
    .unwrap();
    // Every person has an id, distinct.
    let page = s.scim_page(&t, 0, 100).unwrap();
    assert_eq!(page.len(), 5);
    let ids: std::collections::BTreeSet<_> =
        page.iter().map(|p| p.scim_id.clone().unwrap()).collect();
    assert_eq!(ids.len(), 5);
    // Version 7 UUIDs (RFC 9562 §5.7): time-ordered, so a large import
    // appends to the SCIM id index.
    for id in &ids {
        let u = uuid::Uuid::parse_str(id).unwrap();
        assert_eq!(u.get_version_num(), 7, "{id}");
    }
    assert_eq!(s.scim_count(&t).unwrap(), 5);
    // Pages in external id order.
    let firsts: Vec<String> = s
        .scim_page(&t, 1, 2)
        .unwrap()
        .iter()
        .map(|p| p.external_id.to_string())
        .collect();
    assert_eq!(firsts, ["P1", "P2"]);
    let one = |by: ScimLookup| -> Vec<String> {
        s.scim_find(&t, &by, 10)
            .unwrap()
            .iter()
            .map(|p| p.external_id.to_string())
            .collect()
    };
    // userName, email and employeeNumber ignore case; externalId does not.
    assert_eq!(
        one(ScimLookup::UserName("user1@example.COM".into())),
        ["P1"]
    );
    assert_eq!(one(ScimLookup::Email("MAIL2@example.com".into())), ["P2"]);
    assert_eq!(one(ScimLookup::EmployeeNumber("emp-3".into())), ["P3"]);
    assert_eq!(one(ScimLookup::ExternalId("Ext4".into())), ["P4"]);
    assert!(one(ScimLookup::ExternalId("ext4".into())).is_empty());
    let id0 = page[0].scim_id.clone().unwrap();
    assert_eq!(one(ScimLookup::Id(id0.clone())), ["P0"]);
    // Another tenant's person is not found by this tenant's id.
    assert!(s
        .scim_find(&other, &ScimLookup::Id(id0.clone()), 10)
        .unwrap()
        .is_empty());
    assert_eq!(
        s.scim_ids(&t, &["P0", "nobody", "P0"]).unwrap(),
        vec![Some(id0.clone()), None, Some(id0)]
    );
}

pub fn a_scim_delete_unlinks_and_a_new_link_gives_a_new_id(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    s.apply_batch(
        &ctx(&t),
        vec![person_item(1, "P1", &[("given_name", "A")])],
        None,
        false,
    )
    .unwrap();
    let before = chain_len(s, &t);
    let p = ExternalId::parse("P1").unwrap();
    let old = s.person_get(&t, &p).unwrap().scim_id.unwrap();
    // Linking a linked person changes and records nothing.
    let same = s.scim_link(&t, &p, true, audit_of(&t, "x.linked")).unwrap();
    assert_eq!(same.scim_id.as_deref(), Some(old.as_str()));
    assert_eq!(chain_len(s, &t), before);
    let gone = s
        .scim_link(&t, &p, false, audit_of(&t, "x.unlinked"))
        .unwrap();
    assert_eq!(gone.scim_id, None);
    assert_eq!(chain_len(s, &t), before + 1);
    assert!(s
        .scim_find(&t, &ScimLookup::Id(old.clone()), 10)
        .unwrap()
        .is_empty());
    assert_eq!(s.scim_count(&t).unwrap(), 0);
    assert_eq!(s.scim_ids(&t, &["P1"]).unwrap(), vec![None]);
    // Unlinking again is no change.
    s.scim_link(&t, &p, false, audit_of(&t, "x.unlinked"))
        .unwrap();
    assert_eq!(chain_len(s, &t), before + 1);
    let back = s.scim_link(&t, &p, true, audit_of(&t, "x.linked")).unwrap();
    let new = back.scim_id.unwrap();
    assert_ne!(new, old);
    assert_eq!(chain_len(s, &t), before + 2);
    assert!(matches!(
        s.scim_link(&t, &ExternalId::parse("none").unwrap(), true, no_audit()),
        Err(StoreError::NotFound { .. })
    ));
}

pub fn role_members_are_paged_and_groups_are_unique_per_tenant(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    let other = other_tenant(s);
    let batch = (0..5)
        .map(|i| {
            let roles: &[&str] = if i % 2 == 0 { &["eng"] } else { &["ops"] };
            with_roles(person_item(i + 1, &format!("P{i}"), &[]), roles)
        })
        .collect();
    s.apply_batch(&ctx(&t), batch, None, false).unwrap();
    let members = |after: Option<&str>, limit| -> Vec<String> {
        s.scim_role_members(&t, "eng", after, limit)
            .unwrap()
            .iter()
            .map(|p| p.external_id.to_string())
            .collect()
    };
    assert_eq!(members(None, 10), ["P0", "P2", "P4"]);
    assert_eq!(members(None, 2), ["P0", "P2"]);
    assert_eq!(members(Some("P2"), 2), ["P4"]);
    let g = GroupRow {
        tenant: t.clone(),
        id: "g1".into(),
        display_name: "eng".into(),
        external_id: Some("idp-1".into()),
        version: 1,
        created_at: t0(),
        updated_at: t0(),
    };
    let before = chain_len(s, &t);
    s.scim_group_create(g.clone(), audit_of(&t, "g.created"))
        .unwrap();
    assert_eq!(chain_len(s, &t), before + 1);
    // The same name, or the same id, again: a conflict, nothing recorded.
    let mut twin = g.clone();
    twin.id = "g2".into();
    assert!(matches!(
        s.scim_group_create(twin, audit_of(&t, "g.created")),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(chain_len(s, &t), before + 1);
    // Another tenant may have a group of that name and id.
    let mut theirs = g.clone();
    theirs.tenant = other.clone();
    s.scim_group_create(theirs, no_audit()).unwrap();
    assert!(matches!(
        s.scim_group_get(&other, "g1"),
        Ok(GroupRow { ref tenant, .. }) if *tenant == other
    ));
    let up = s
        .scim_group_update(
            &t,
            "g1",
            GroupUpdate {
                display_name: Some("engineering".into()),
                external_id: Some(None),
                if_version: Some(1),
                now: t0() + Duration::seconds(5),
            },
            audit_of(&t, "g.updated"),
        )
        .unwrap();
    assert_eq!(
        (
            up.display_name.as_str(),
            up.external_id.as_deref(),
            up.version
        ),
        ("engineering", None, 2)
    );
    assert_eq!(up.updated_at, t0() + Duration::seconds(5));
    // A stale version is refused.
    assert!(matches!(
        s.scim_group_update(
            &t,
            "g1",
            GroupUpdate {
                display_name: None,
                external_id: None,
                if_version: Some(1),
                now: t0(),
            },
            no_audit(),
        ),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.scim_group_list(&t).unwrap().len(), 1);
    s.scim_group_delete(&t, "g1", audit_of(&t, "g.deleted"))
        .unwrap();
    assert!(matches!(
        s.scim_group_get(&t, "g1"),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(s.scim_group_list(&other).unwrap().len(), 1);
    chain_len(s, &t);
}

pub fn a_scim_token_opens_only_the_scim_scope_and_rotation_ends_the_old_one(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    client(s, &t, "idp");
    let rotate = |token: &str, until, key: Option<&str>| {
        s.scim_token_rotate(
            NewScimToken {
                tenant: t.clone(),
                client_id: "idp".into(),
                id: format!("id-{token}"),
                digest: secret::digest(token),
                created_at: t0(),
                previous_until: until,
                key: key.map(str::to_owned),
            },
            audit_of(&t, "client.scim_token_rotated"),
        )
        .unwrap()
    };
    let row = rotate("first", t0(), Some("employeeNumber"));
    assert_eq!(
        (row.admin.as_str(), row.name.as_str()),
        ("idp", SCIM_TOKEN_NAME)
    );
    assert_eq!(row.expires_at, None);
    let g = s.token_use(secret::digest("first"), t0()).unwrap().unwrap();
    assert_eq!(g.scope, SCIM_TOKEN_SCOPE);
    assert_eq!(g.principal.client_id, "idp");
    assert_eq!(g.principal.scim_key.as_deref(), Some("employeeNumber"));
    // A second token with an hour of overlap: both work for that hour.
    rotate("second", t0() + Duration::hours(1), None);
    let later = t0() + Duration::minutes(30);
    assert!(s.token_use(secret::digest("first"), later).unwrap().is_ok());
    assert!(s
        .token_use(secret::digest("second"), later)
        .unwrap()
        .is_ok());
    let after = t0() + Duration::hours(2);
    assert!(s
        .token_use(secret::digest("first"), after)
        .unwrap()
        .is_err());
    let g = s
        .token_use(secret::digest("second"), after)
        .unwrap()
        .unwrap();
    // The key stays as it was when a rotation names none.
    assert_eq!(g.principal.scim_key.as_deref(), Some("employeeNumber"));
    // A client of another tenant is not found.
    let other = other_tenant(s);
    client(s, &other, "theirs");
    let r = s.scim_token_rotate(
        NewScimToken {
            tenant: t.clone(),
            client_id: "theirs".into(),
            id: "x".into(),
            digest: secret::digest("x"),
            created_at: t0(),
            previous_until: t0(),
            key: None,
        },
        no_audit(),
    );
    assert!(matches!(r, Err(StoreError::NotFound { .. })));
}
