//! Subscriptions of kind `nats`, against the real NATS server with
//! JetStream (`MUSTER_TEST_NATS_URL`, default nats://127.0.0.1:4222): each
//! event published once to `<prefix>.<tenant>.<type>`, acknowledged,
//! minimised like a webhook's payload, in order per person; a redelivery
//! deduplicated by `Nats-Msg-Id`; a missing stream retried until it is
//! there, with nothing lost.
use crate::helpers::*;
use crate::webhooks::{app, delivery_log};
use async_nats::jetstream;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

fn nats_url() -> String {
    std::env::var("MUSTER_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A JetStream context on the test server; `None` (a loud skip, or under
/// CI=true a failure) when it is not running.
async fn jetstream(test: &str) -> Option<jetstream::Context> {
    match async_nats::connect(nats_url()).await {
        Ok(c) => Some(jetstream::new(c)),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CI=true: {test} needs NATS with JetStream at {} ({e})",
                nats_url()
            )
        }
        Err(_) => {
            eprintln!(
                "SKIPPED {test}: no NATS at {} (set MUSTER_TEST_NATS_URL)",
                nats_url()
            );
            None
        }
    }
}

/// A subject prefix and stream name of this test's own.
fn names() -> (String, String) {
    let u = uuid::Uuid::new_v4().simple().to_string();
    (format!("t{u}"), format!("MUSTER_TEST_{}", u.to_uppercase()))
}

async fn create_stream(
    js: &jetstream::Context,
    name: &str,
    prefix: &str,
) -> jetstream::stream::Stream {
    js.create_stream(jetstream::stream::Config {
        name: name.to_owned(),
        subjects: vec![format!("{prefix}.>")],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Every message in the stream, in stream order: (subject, Nats-Msg-Id,
/// payload).
async fn read_all(
    stream: &jetstream::stream::Stream,
    expect: usize,
) -> Vec<(String, String, Value)> {
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..40 {
        let mut batch = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_millis(250))
            .messages()
            .await
            .unwrap();
        while let Some(m) = batch.next().await {
            let m = m.unwrap();
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            got.push((
                m.subject.to_string(),
                id,
                serde_json::from_slice(&m.payload).unwrap(),
            ));
            m.ack().await.unwrap();
        }
        if got.len() >= expect {
            break;
        }
    }
    got
}

async fn subscribe(app: &TestApp, body: Value) -> Value {
    let r = app.admin_post("/api/v1/subscriptions", body).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

#[tokio::test]
async fn events_are_published_once_each_in_order_minimised_and_a_redelivery_is_deduplicated() {
    let Some(js) = jetstream("nats::events_are_published_once_each").await else {
        return;
    };
    let (prefix, name) = names();
    let mut stream = create_stream(&js, &name, &prefix).await;
    let app = app().await;
    let created = subscribe(
        &app,
        json!({"kind": "nats", "url": nats_url(), "subject_prefix": prefix,
               "attributes": ["given_name", "department", "roles"]}),
    )
    .await;
    assert!(created.get("secret").is_none(), "{created}");
    let sub = created["subscription"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["subscription"]["kind"], "nats");
    assert_eq!(created["subscription"]["subject_prefix"], prefix.as_str());

    let t = app.token(&app.syncer().await).await;
    for (who, name, dept) in [
        ("E1", "A1", "R&D"),
        ("E2", "B1", "Ops"),
        ("E1", "A2", "R&D"),
        ("E2", "B2", "Sales"),
        ("E1", "A3", "Ops"),
    ] {
        app.put_person(
            &t,
            who,
            json!({"attributes": {"given_name": name, "department": dept,
                                  "termination_date": "2030-01-31"}}),
        )
        .await;
    }
    app.put_person(&t, "E2", json!({"roles": ["staff"]})).await;
    // 6 events: E1 v1..v3, E2 v1..v2, and E2's roles.changed.
    let got = read_all(&stream, 6).await;
    assert_eq!(got.len(), 6, "{got:?}");
    let cursors: Vec<i64> = got
        .iter()
        .map(|(_, _, v)| v["cursor"].as_i64().unwrap())
        .collect();
    assert_eq!(cursors, (1..=6).collect::<Vec<_>>());
    for (subject, id, v) in &got {
        assert_eq!(
            subject,
            &format!("{prefix}.default.{}", v["type"].as_str().unwrap())
        );
        assert_eq!(id, v["id"].as_str().unwrap(), "Nats-Msg-Id is the event id");
        assert!(!v.to_string().contains("termination_date"), "{v}");
        assert!(!v.to_string().contains("2030-01-31"), "{v}");
    }
    assert_eq!(got[5].0, format!("{prefix}.default.roles.changed"));
    for person in ["E1", "E2"] {
        let versions: Vec<i64> = got
            .iter()
            .filter(|(_, _, v)| v["data"]["external_id"] == person)
            .map(|(_, _, v)| v["data"]["version"].as_i64().unwrap())
            .collect();
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "{person}: {versions:?}"
        );
    }
    let log = delivery_log(&app, &sub, 6).await;
    assert!(log["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "delivered" && r["status"].is_null()));

    // Sent again (as after a crash before the progress was saved): the
    // same ids, which the stream drops as duplicates.
    let r = app
        .admin_post(
            &format!("/api/v1/subscriptions/{sub}/redeliver"),
            json!({"from_cursor": 1, "to_cursor": 6}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    delivery_log(&app, &sub, 12).await;
    assert_eq!(stream.info().await.unwrap().state.messages, 6);
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn a_missing_stream_holds_the_events_back_until_it_exists() {
    let Some(js) = jetstream("nats::a_missing_stream_holds_the_events_back").await else {
        return;
    };
    let (prefix, name) = names();
    let app = app().await;
    let created = subscribe(
        &app,
        json!({"kind": "nats", "url": nats_url(), "subject_prefix": prefix, "attributes": ["*"]}),
    )
    .await;
    let sub = created["subscription"]["id"].as_str().unwrap().to_owned();
    let t = app.token(&app.syncer().await).await;
    app.put_person(&t, "E1", json!({"attributes": {"given_name": "Ada"}}))
        .await;
    app.put_person(&t, "E2", json!({"attributes": {"given_name": "Bo"}}))
        .await;
    let log = delivery_log(&app, &sub, 1).await;
    let first = &log["items"][0];
    assert_eq!(first["outcome"], "failed", "{log}");
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("no JetStream stream takes subject"),
        "{log}"
    );
    let stream = create_stream(&js, &name, &prefix).await;
    // The retry falls due on the injected clock.
    for _ in 0..200 {
        app.clock.advance(chrono::Duration::minutes(5));
        tokio::time::sleep(Duration::from_millis(25)).await;
        let s: Value = app
            .get_json_as(&app.admin_token, &format!("/api/v1/subscriptions/{sub}"))
            .await;
        if s["cursor"] == 2 {
            break;
        }
    }
    let got = read_all(&stream, 2).await;
    let people: Vec<&str> = got
        .iter()
        .map(|(_, _, v)| v["data"]["external_id"].as_str().unwrap())
        .collect();
    assert_eq!(people, ["E1", "E2"]);
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn a_nats_subscription_is_checked_when_made_and_keeps_its_credentials_to_itself() {
    // The outbound rule: no plain nats://, no private address, by default.
    let strict = spawn_app().await;
    for url in [
        "nats://127.0.0.1:4222",
        "tls://127.0.0.1:4222",
        "https://example.com/x",
    ] {
        let r = strict
            .admin_post(
                "/api/v1/subscriptions",
                json!({"kind": "nats", "url": url, "attributes": ["*"]}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let p: Value = r.json().await.unwrap();
        assert!(
            p["detail"].as_str().unwrap().starts_with("url:"),
            "{url}: {p}"
        );
    }

    let app = app().await;
    for (body, needle) in [
        (
            json!({"kind": "nats", "url": nats_url(), "subject_prefix": "a.*", "attributes": ["*"]}),
            "subject_prefix:",
        ),
        (
            json!({"kind": "nats", "url": nats_url(), "attributes": ["*"],
                   "credentials": {"token": "t", "user": "u", "password": "p"}}),
            "credentials:",
        ),
        (
            json!({"url": "http://127.0.0.1:9/x", "subject_prefix": "x", "attributes": ["*"]}),
            "subject_prefix:",
        ),
        (
            json!({"kind": "mqtt", "url": nats_url(), "attributes": ["*"]}),
            "kind",
        ),
    ] {
        let r = app.admin_post("/api/v1/subscriptions", body.clone()).await;
        assert!(r.status().is_client_error(), "{body}");
        let p: Value = r.json().await.unwrap();
        assert!(
            p["detail"].as_str().unwrap().contains(needle),
            "{body}: {p}"
        );
    }

    let token = "nats-token-not-to-be-shown";
    let created = subscribe(
        &app,
        json!({"kind": "nats", "url": nats_url(), "attributes": ["*"],
               "credentials": {"token": token}}),
    )
    .await;
    let sub = created["subscription"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["subscription"]["subject_prefix"], "muster");
    let path = format!("/api/v1/subscriptions/{sub}");
    let r = app
        .admin_post(&format!("{path}/rotate-secret"), json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .http
        .patch(app.url(&path))
        .bearer_auth(&app.admin_token)
        .json(&json!({"subject_prefix": "hr", "credentials": {"token": "another-token-here"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let shown: Value = app.get_json_as(&app.admin_token, &path).await;
    assert_eq!(shown["subject_prefix"], "hr");
    let audit: Value = app
        .get_json_as(&app.admin_token, "/api/v1/audit?limit=100")
        .await;
    let text = format!("{shown}{audit}");
    assert!(!text.contains(token) && !text.contains("another-token-here"));
    assert!(
        audit.to_string().contains("\"credentials\":\"replaced\""),
        "{audit}"
    );
    app.assert_chain_verifies().await;
}
