//! Contract cases for master-key rotation (every sealed value listed and
//! swapped only where unchanged), the HMAC key rotation overlap, the shared
//! failed-authentication counters and the live-instance table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::contract::{client, subscription_row, t0};
use crate::*;
use chrono::Duration;
use muster_core::secret;

pub fn every_sealed_value_is_listed_and_swapped_only_where_unchanged(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    let t = TenantId::default_tenant();
    client(s, &TenantId::default_tenant(), "signer");
    client(s, &TenantId::default_tenant(), "plain");
    s.client_keys_set(
        "plain",
        ClientKeyChange::Ed25519(Some(vec![9; 32])),
        t0(),
        crate::contract::no_audit(),
    )
    .unwrap();
    s.client_keys_set(
        "signer",
        ClientKeyChange::Hmac(Some(vec![1])),
        t0(),
        crate::contract::no_audit(),
    )
    .unwrap();
    s.client_hmac_rotate(
        "signer",
        vec![2],
        Some(t0() + Duration::hours(1)),
        t0(),
        crate::contract::no_audit(),
    )
    .unwrap();
    s.key_create(
        KeyRow {
            id: "k1".into(),
            tenant: t.clone(),
            kind: "age".into(),
            algorithm: "x25519".into(),
            purpose: KeyPurpose::Decryption,
            key_ids: vec!["age1k1".into()],
            public_key: "age1k1".into(),
            sealed_secret: Some(vec![3]),
            state: KeyState::Active,
            created_at: t0(),
            updated_at: t0(),
        },
        crate::contract::no_audit(),
    )
    .unwrap();
    s.subscription_create(
        SubscriptionRow {
            url: "https://hooks.example.com/x".into(),
            secret_sealed: vec![4],
            previous_secret_sealed: Some(vec![5]),
            previous_until: Some(t0()),
            ..subscription_row(&t, "sub_1")
        },
        crate::contract::no_audit(),
    )
    .unwrap();

    let mut all: Vec<(SealedColumn, String, Vec<u8>)> = s
        .sealed_all()
        .unwrap()
        .into_iter()
        .map(|v| (v.column, v.id, v.sealed))
        .collect();
    all.sort();
    assert_eq!(
        all,
        vec![
            (SealedColumn::KeySecret, "k1".into(), vec![3]),
            (SealedColumn::ClientHmac, "signer".into(), vec![2]),
            (SealedColumn::ClientHmacPrevious, "signer".into(), vec![1]),
            (SealedColumn::WebhookSecret, "sub_1".into(), vec![4]),
            (SealedColumn::WebhookPreviousSecret, "sub_1".into(), vec![5]),
        ],
        "the client without an HMAC key has nothing sealed"
    );

    let swap = |id: &str, old: u8, new: u8| SealedSwap {
        id: id.into(),
        old: vec![old],
        new: vec![new],
    };
    // Each column is swapped where it still holds the old value only.
    for (col, id, old) in [
        (SealedColumn::KeySecret, "k1", 3),
        (SealedColumn::ClientHmac, "signer", 2),
        (SealedColumn::ClientHmacPrevious, "signer", 1),
        (SealedColumn::WebhookSecret, "sub_1", 4),
        (SealedColumn::WebhookPreviousSecret, "sub_1", 5),
    ] {
        assert_eq!(
            s.sealed_replace(col, vec![swap(id, old + 100, 0)]).unwrap(),
            0,
            "{col:?}: a changed value is left alone"
        );
        assert_eq!(
            s.sealed_replace(col, vec![swap(id, old, old + 10)])
                .unwrap(),
            1,
            "{col:?}"
        );
    }
    assert_eq!(s.key_get(&t, "k1").unwrap().sealed_secret, Some(vec![13]));
    let k = s.client_keys_get("signer").unwrap();
    assert_eq!(k.hmac_sealed, Some(vec![12]));
    assert_eq!(k.hmac_previous_sealed, Some(vec![11]));
    let sub = s.subscription_get(&t, "sub_1").unwrap();
    assert_eq!(sub.secret_sealed, vec![14]);
    assert_eq!(sub.previous_secret_sealed, Some(vec![15]));
}

pub fn a_rotated_hmac_key_keeps_the_previous_one_until_its_deadline(s: &dyn Store) {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    client(s, &TenantId::default_tenant(), "signer");
    let until = t0() + Duration::hours(1);
    assert!(matches!(
        s.client_hmac_rotate(
            "nobody",
            vec![1],
            Some(until),
            t0(),
            crate::contract::no_audit()
        ),
        Err(StoreError::NotFound { .. })
    ));
    // The first key has no previous one to keep.
    let k = s
        .client_hmac_rotate(
            "signer",
            vec![1],
            Some(until),
            t0(),
            crate::contract::no_audit(),
        )
        .unwrap();
    assert_eq!(k.hmac_sealed, Some(vec![1]));
    assert_eq!(
        (k.hmac_previous_sealed, k.hmac_previous_until),
        (None, None)
    );
    let t1 = t0() + Duration::seconds(5);
    let k = s
        .client_hmac_rotate(
            "signer",
            vec![2],
            Some(until),
            t1,
            crate::contract::no_audit(),
        )
        .unwrap();
    assert_eq!(k.hmac_sealed, Some(vec![2]));
    assert_eq!(k.hmac_previous_sealed, Some(vec![1]));
    assert_eq!(k.hmac_previous_until, Some(until));
    assert_eq!(k.updated_at, Some(t1));
    assert_eq!(s.client_keys_get("signer").unwrap(), k);
    // Without an overlap the previous key goes at once.
    let k = s
        .client_hmac_rotate("signer", vec![3], None, t1, crate::contract::no_audit())
        .unwrap();
    assert_eq!(k.hmac_sealed, Some(vec![3]));
    assert_eq!(
        (k.hmac_previous_sealed, k.hmac_previous_until),
        (None, None)
    );
    // Setting or removing the key outright drops any previous key too.
    s.client_hmac_rotate(
        "signer",
        vec![4],
        Some(until),
        t1,
        crate::contract::no_audit(),
    )
    .unwrap();
    let k = s
        .client_keys_set(
            "signer",
            ClientKeyChange::Hmac(None),
            t1,
            crate::contract::no_audit(),
        )
        .unwrap();
    assert_eq!((k.hmac_sealed, k.hmac_previous_sealed), (None, None));
}

pub fn failed_authentications_are_counted_per_key_and_window(s: &dyn Store) {
    let w = Duration::seconds(60);
    let keys = vec!["addr:10.0.0.1".to_string(), "client:c1".to_string()];
    assert_eq!(
        s.auth_failure_record(&keys, w, t0()).unwrap(),
        vec![(1, t0()), (1, t0())]
    );
    let t1 = t0() + Duration::seconds(10);
    let got = s.auth_failure_record(&keys[1..], w, t1).unwrap();
    assert_eq!(got, vec![(2, t0())], "the window started with the first");
    assert!(s.auth_failures_over(3, w, t1).unwrap().is_empty());
    s.auth_failure_record(&keys[1..], w, t1).unwrap();
    assert_eq!(
        s.auth_failures_over(3, w, t1).unwrap(),
        vec![("client:c1".to_string(), t0())]
    );
    // Once the window has passed, the key is over nothing and a failure
    // starts a new window.
    let t2 = t0() + Duration::seconds(61);
    assert!(s.auth_failures_over(3, w, t2).unwrap().is_empty());
    assert_eq!(
        s.auth_failure_record(&keys[1..], w, t2).unwrap(),
        vec![(1, t2)]
    );
}

pub fn instances_are_seen_by_their_heartbeats(s: &dyn Store) {
    s.instance_heartbeat("i1", "mk1", t0()).unwrap();
    let t1 = t0() + Duration::seconds(10);
    s.instance_heartbeat("i2", "mk1", t1).unwrap();
    s.instance_heartbeat("i1", "mk2", t1).unwrap();
    let live = s.instance_list(t0() + Duration::seconds(5)).unwrap();
    assert_eq!(
        live.iter()
            .map(|i| (i.id.as_str(), i.master_key_id.as_str()))
            .collect::<Vec<_>>(),
        vec![("i1", "mk2"), ("i2", "mk1")]
    );
    assert_eq!(live[0].seen_at, t1);
    assert_eq!(s.instance_list(t1 + Duration::seconds(1)).unwrap(), vec![]);
    s.instance_remove("i2").unwrap();
    assert_eq!(s.instance_list(t0()).unwrap().len(), 1);
}
