//! Contract cases for fan-out across instances: the per-subscription
//! delivery lease ([`Events::subscription_claim`], [`Events::subscription_save`],
//! [`Events::subscription_release`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::contract::{subscription_row, t0};
use crate::*;
use chrono::Duration;
use muster_core::secret;

pub(crate) fn subscription(s: &dyn Store, id: &str) -> SubscriptionRow {
    s.bootstrap(secret::digest("a"), t0()).unwrap();
    s.subscription_create(
        subscription_row(&TenantId::default_tenant(), id),
        crate::contract::no_audit(),
    )
    .unwrap()
}

fn delivered(id: &str, cursor: i64) -> DeliveryRecord {
    DeliveryRecord {
        seq: 0,
        subscription_id: id.into(),
        event_id: format!("ev{cursor}"),
        cursor,
        attempt: 1,
        at: t0(),
        status: Some(200),
        outcome: "delivered".into(),
        error: None,
        manual: false,
    }
}

fn saving(cursor: i64, records: Vec<DeliveryRecord>) -> DeliverySave {
    DeliverySave {
        progress: DeliveryProgress {
            cursor,
            ..Default::default()
        },
        records,
        ..Default::default()
    }
}

pub fn a_subscription_is_delivered_by_one_lease_holder_at_a_time(s: &dyn Store) {
    subscription(s, "sub_1");
    let lease = Duration::seconds(30);
    // a takes it; b cannot while a's lease runs; a may claim again (renew).
    let got = s.subscription_claim("sub_1", "a", lease, t0()).unwrap();
    assert_eq!(got.unwrap().progress.cursor, 0);
    assert!(s
        .subscription_claim("sub_1", "b", lease, t0() + Duration::seconds(10))
        .unwrap()
        .is_none());
    assert!(s
        .subscription_claim("sub_1", "a", lease, t0() + Duration::seconds(20))
        .unwrap()
        .is_some());
    // A save by the holder commits progress and the log, and extends the lease.
    let t1 = t0() + Duration::seconds(40);
    assert!(s
        .subscription_save(
            "sub_1",
            "a",
            lease,
            &saving(3, vec![delivered("sub_1", 3)]),
            t1
        )
        .unwrap());
    assert!(s
        .subscription_claim("sub_1", "b", lease, t1 + Duration::seconds(29))
        .unwrap()
        .is_none());
    // A save by a non-holder writes nothing.
    assert!(!s
        .subscription_save(
            "sub_1",
            "b",
            lease,
            &saving(9, vec![delivered("sub_1", 9)]),
            t1
        )
        .unwrap());
    assert_eq!(s.delivery_list("sub_1", 0, 10).unwrap().len(), 1);
    // a dies: once its lease has run out, b takes over from a's progress.
    let t2 = t1 + Duration::seconds(31);
    let got = s
        .subscription_claim("sub_1", "b", lease, t2)
        .unwrap()
        .unwrap();
    assert_eq!(got.progress.cursor, 3);
    // a, back from a stall, has lost it: its save is refused.
    assert!(!s
        .subscription_save("sub_1", "a", lease, &saving(5, Vec::new()), t2)
        .unwrap());
    // A release hands it over at once; releasing what one does not hold does nothing.
    s.subscription_release("sub_1", "a").unwrap();
    assert!(s
        .subscription_claim("sub_1", "c", lease, t2)
        .unwrap()
        .is_none());
    s.subscription_release("sub_1", "b").unwrap();
    assert!(s
        .subscription_claim("sub_1", "c", lease, t2)
        .unwrap()
        .is_some());
    // A disabled subscription is not handed out; a 410 save disables it.
    let mut v = saving(4, Vec::new());
    v.disable = Some("the receiver answered 410 Gone".into());
    assert!(s.subscription_save("sub_1", "c", lease, &v, t2).unwrap());
    s.subscription_release("sub_1", "c").unwrap();
    let row = s
        .subscription_get(&TenantId::default_tenant(), "sub_1")
        .unwrap();
    assert_eq!((row.state.as_str(), row.progress.cursor), ("disabled", 4));
    assert!(s
        .subscription_claim("sub_1", "d", lease, t2)
        .unwrap()
        .is_none());
    assert!(s
        .subscription_claim("nope", "d", lease, t2)
        .unwrap()
        .is_none());
}

pub fn a_lease_holder_keeps_a_redelivery_an_admin_asked_for_meanwhile(s: &dyn Store) {
    subscription(s, "sub_1");
    let tenant = TenantId::default_tenant();
    let lease = Duration::seconds(30);
    let row = s
        .subscription_claim("sub_1", "a", lease, t0())
        .unwrap()
        .unwrap();
    assert_eq!(row.progress.redeliver, None);
    // While a delivers, an admin asks for events 2..=5 again.
    s.subscription_redeliver(&tenant, "sub_1", (2, 5), t0(), crate::contract::no_audit())
        .unwrap();
    assert!(s
        .subscription_save("sub_1", "a", lease, &saving(7, Vec::new()), t0())
        .unwrap());
    let row = s.subscription_get(&tenant, "sub_1").unwrap();
    assert_eq!(row.progress.cursor, 7);
    assert_eq!(
        row.progress.redeliver,
        Some((2, 5)),
        "the admin's range stands"
    );
    // The holder working through that range moves it on.
    let mut v = saving(7, Vec::new());
    v.redeliver_seen = Some((2, 5));
    v.progress.redeliver = Some((4, 5));
    assert!(s.subscription_save("sub_1", "a", lease, &v, t0()).unwrap());
    let row = s.subscription_get(&tenant, "sub_1").unwrap();
    assert_eq!(row.progress.redeliver, Some((4, 5)));
    let mut v = saving(7, Vec::new());
    v.redeliver_seen = Some((4, 5));
    assert!(s.subscription_save("sub_1", "a", lease, &v, t0()).unwrap());
    let row = s.subscription_get(&tenant, "sub_1").unwrap();
    assert_eq!(row.progress.redeliver, None);
}
