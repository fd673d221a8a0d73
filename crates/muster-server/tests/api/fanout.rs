//! Fan-out (docs/events.md#delivery-across-instances): subscriptions progress independently of each
//! other, several instances divide them without sending an event twice,
//! and every change to a subscription is audited.
use crate::helpers::*;
use crate::support::receiver::{receiver, slow_receiver, subscribe_all};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

fn env(timeout: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("MUSTER_WEBHOOKS__POLL_INTERVAL_MS", "50"),
        ("MUSTER_WEBHOOKS__REQUEST_TIMEOUT_SECONDS", timeout),
    ]
}

pub(crate) async fn put_people(app: &TestApp, token: &str, ids: impl IntoIterator<Item = String>) {
    for id in ids {
        let body = json!({"attributes": {"given_name": format!("N{id}")}});
        app.put_person(token, &id, body).await;
    }
}

/// Polls `done` every 50 ms, at most `secs` seconds.
pub(crate) async fn wait_for(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..secs * 20 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {secs}s");
}

async fn log(app: &TestApp, sub: &str) -> Vec<Value> {
    let v: Value = app
        .get_json_as(
            &app.admin_token,
            &format!("/api/v1/subscriptions/{sub}/deliveries?limit=1000"),
        )
        .await;
    v["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_receiver_that_hangs_past_the_timeout_does_not_hold_back_another_subscription() {
    // The request timeout (20 s) is longer than the test waits for the
    // healthy receiver (15 s): one at a time across subscriptions, the
    // healthy one could not be done before the hung request ends.
    let app = spawn_app_with(env("20")).await;
    let (slow_url, slow) = slow_receiver(200, Duration::from_secs(60)).await;
    let (ok_url, ok) = receiver(vec![], 200).await;
    // The slow one first: it is first in line too.
    let (slow_sub, _) = subscribe_all(&app, &slow_url).await;
    subscribe_all(&app, &ok_url).await;
    let c = app.syncer().await;
    let t = app.token(&c).await;
    put_people(&app, &t, (1..=5).map(|i| format!("E{i}"))).await;
    wait_for(15, "the healthy receiver got every event", || {
        ok.got().len() >= 5
    })
    .await;
    let cursors: Vec<i64> = ok
        .got()
        .iter()
        .map(|(_, v)| v["cursor"].as_i64().unwrap())
        .collect();
    assert_eq!(cursors, [1, 2, 3, 4, 5], "in order");
    // Meanwhile the slow receiver holds its first event: one request in
    // flight, nothing answered, no attempt finished in its log.
    assert_eq!(slow.arrived(), 1);
    assert!(slow.got().is_empty());
    assert!(log(&app, &slow_sub).await.is_empty());
}

#[tokio::test]
async fn many_subscriptions_each_get_every_event_in_order() {
    // More subscriptions than delivery slots: each still gets its turn.
    let mut e = env("5");
    e.push(("MUSTER_WEBHOOKS__CONCURRENCY", "2"));
    let app = spawn_app_with(e).await;
    let mut receivers = Vec::new();
    for _ in 0..5 {
        let (url, rx) = receiver(vec![], 200).await;
        subscribe_all(&app, &url).await;
        receivers.push(rx);
    }
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &rows(250)).await;
    for rx in &receivers {
        wait_for(60, "every receiver got all 250 events", || {
            rx.got().len() >= 250
        })
        .await;
        let cursors: Vec<i64> = rx
            .got()
            .iter()
            .map(|(_, v)| v["cursor"].as_i64().unwrap())
            .collect();
        assert_eq!(cursors, (1..=250).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn subscription_changes_are_audited_with_their_principal_and_never_the_secret() {
    let app = spawn_app_with(env("5")).await;
    let (url, _rx) = receiver(vec![], 200).await;
    let (sub, secret) = subscribe_all(&app, &format!("{url}?token=receiver-own-token")).await;
    let path = format!("/api/v1/subscriptions/{sub}");
    let patch = |body: Value| {
        app.http
            .patch(app.url(&path))
            .bearer_auth(&app.admin_token)
            .json(&body)
            .send()
    };
    let r = patch(json!({"attributes": ["given_name"], "events": ["person.created"]}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .admin_post(&format!("{path}/rotate-secret"), json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let rotated: Value = r.json().await.unwrap();
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        patch(json!({"state": "disabled"})).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        patch(json!({"state": "active"})).await.unwrap().status(),
        StatusCode::OK
    );
    let r = app
        .admin_post(
            &format!("{path}/redeliver"),
            json!({"from_cursor": 1, "to_cursor": 3}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = app
        .http
        .delete(app.url(&path))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // A receiver that answers 410 has its subscription disabled by the
    // gateway itself.
    let (gone_url, _gone) = receiver(vec![], 410).await;
    let (gone_sub, gone_secret) = subscribe_all(&app, &gone_url).await;
    let c = app.syncer().await;
    let t = app.token(&c).await;
    put_people(&app, &t, ["E1".to_string()]).await;
    let gone_path = format!("/api/v1/subscriptions/{gone_sub}");
    let mut disabled = false;
    for _ in 0..200 {
        let v: Value = app.get_json_as(&app.admin_token, &gone_path).await;
        if v["state"] == "disabled" {
            disabled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(disabled);

    let page: Value = app
        .get_json_as(&app.admin_token, "/api/v1/audit?limit=1000")
        .await;
    let entries: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("subscription."))
        .collect();
    let mine: Vec<&str> = entries
        .iter()
        .filter(|e| e["detail"]["subscription"] == sub.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        mine,
        [
            "subscription.created",
            "subscription.updated",
            "subscription.secret_rotated",
            "subscription.disabled",
            "subscription.enabled",
            "subscription.redelivery_requested",
            "subscription.deleted",
        ]
    );
    for e in entries
        .iter()
        .filter(|e| e["detail"]["subscription"] == sub.as_str())
    {
        assert!(
            e["principal"].as_str().unwrap().starts_with("admin:"),
            "{e}"
        );
        assert_eq!(e["source"], "admin");
    }
    let created = entries
        .iter()
        .find(|e| {
            e["action"] == "subscription.created" && e["detail"]["subscription"] == sub.as_str()
        })
        .unwrap();
    assert!(created["detail"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/hook"));
    let updated = entries
        .iter()
        .find(|e| e["action"] == "subscription.updated")
        .unwrap();
    assert_eq!(updated["detail"]["attributes"], json!(["given_name"]));
    assert_eq!(updated["detail"]["events"], json!(["person.created"]));
    let redelivery = entries
        .iter()
        .find(|e| e["action"] == "subscription.redelivery_requested")
        .unwrap();
    assert_eq!(
        (
            &redelivery["detail"]["from_cursor"],
            &redelivery["detail"]["to_cursor"]
        ),
        (&json!(1), &json!(3))
    );
    let gone: Vec<&&Value> = entries
        .iter()
        .filter(|e| e["detail"]["subscription"] == gone_sub.as_str())
        .collect();
    assert_eq!(gone.len(), 2, "{gone:?}");
    assert_eq!(gone[1]["action"], "subscription.disabled");
    assert_eq!(gone[1]["principal"], "system:webhooks");
    assert!(gone[1]["detail"]["reason"]
        .as_str()
        .unwrap()
        .contains("410"));
    // No secret, and not the receiver's own token from its URL.
    let text = page.to_string();
    for s in [&secret, &new_secret, &gone_secret] {
        assert!(!text.contains(s.as_str()));
    }
    assert!(!text.contains("whsec_"));
    assert!(!text.contains("receiver-own-token"));
    app.assert_chain_verifies().await;
}

#[tokio::test]
async fn two_instances_deliver_every_event_of_every_subscription_exactly_once() {
    if !on_postgres() {
        eprintln!("two_instances_deliver_every_event_of_every_subscription_exactly_once: runs with MUSTER_TEST_BACKEND=postgres only");
        return;
    }
    let a = spawn_app_with(env("5")).await;
    let b = a.spawn_peer(env("5")).await;
    let mut receivers = Vec::new();
    for _ in 0..4 {
        let (url, rx) = receiver(vec![], 200).await;
        subscribe_all(&a, &url).await;
        receivers.push(rx);
    }
    let c = a.syncer().await;
    let t = a.token(&c).await;
    // Changes committed on both instances, so both are woken.
    const N: usize = 60;
    let (ta, tb) = (t.clone(), t.clone());
    tokio::join!(
        put_people(&a, &ta, (0..N / 2).map(|i| format!("A{i}"))),
        put_people(&b, &tb, (0..N / 2).map(|i| format!("B{i}"))),
    );
    for rx in &receivers {
        wait_for(60, "every receiver got every event", || rx.got().len() >= N).await;
    }
    // A moment for any duplicate to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for rx in &receivers {
        let got = rx.got();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (id, _) in &got {
            *seen.entry(id.clone()).or_default() += 1;
        }
        assert_eq!(seen.len(), N);
        assert!(seen.values().all(|n| *n == 1), "an event was sent twice");
        let cursors: Vec<i64> = got
            .iter()
            .map(|(_, v)| v["cursor"].as_i64().unwrap())
            .collect();
        assert_eq!(cursors, (1..=N as i64).collect::<Vec<_>>());
    }
}
