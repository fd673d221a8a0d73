//! Change events, the change feed and webhook delivery (docs/events.md), against a
//! local receiver on a loopback port.
use crate::helpers::*;
use crate::support::receiver::{receiver, subscribe};
use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::Mac;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

/// A gateway that delivers to loopback receivers, polling quickly.
pub(crate) async fn app() -> TestApp {
    spawn_app_with(vec![
        ("MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("MUSTER_WEBHOOKS__POLL_INTERVAL_MS", "50"),
        ("MUSTER_WEBHOOKS__REQUEST_TIMEOUT_SECONDS", "5"),
    ])
    .await
}

/// Waits (advancing the injected clock by `step` each round, so retries
/// fall due without sleeping through the schedule) until `done`.
async fn until(app: &TestApp, step: chrono::Duration, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        app.clock.advance(step);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the condition was not met in time");
}

/// The subscription's delivery log once it holds at least `n` attempts:
/// the receiver has an event before the gateway has saved its outcome.
pub(crate) async fn delivery_log(app: &TestApp, sub: &str, n: usize) -> Value {
    for _ in 0..400 {
        let log: Value = app
            .get_json_as(
                &app.admin_token,
                &format!("/api/v1/subscriptions/{sub}/deliveries?limit=100"),
            )
            .await;
        if log["items"].as_array().map_or(0, Vec::len) >= n {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the delivery log did not reach {n} attempts in time");
}

/// The Standard Webhooks signature, computed here from the specification,
/// not with the server's code.
pub(crate) fn expected_signature(secret: &str, id: &str, ts: &str, body: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn a_signed_delivery_verifies_with_an_independently_computed_signature() {
    let app = app().await;
    let (url, rx) = receiver(vec![], 200).await;
    let (sub, secret) = subscribe(
        &app,
        json!({"url": url, "attributes": ["given_name", "department"]}),
    )
    .await;
    assert!(secret.starts_with("whsec_"));
    let c = app.syncer().await;
    let t = app.token(&c).await;
    app.put_person(
        &t,
        "E1",
        json!({"attributes": {"given_name": "Ada", "department": "R&D"}}),
    )
    .await;
    until(&app, chrono::Duration::zero(), || rx.requests() >= 1).await;
    let got = rx.got.lock().unwrap()[0].clone();
    let (h, body) = (&got.0, &got.1);
    let id = h["webhook-id"].to_str().unwrap();
    let ts = h["webhook-timestamp"].to_str().unwrap();
    assert_eq!(
        h["webhook-signature"].to_str().unwrap(),
        expected_signature(&secret, id, ts, body)
    );
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["type"], "person.created");
    assert_eq!(v["id"], id);
    assert_eq!(v["data"]["external_id"], "E1");
    assert_eq!(v["data"]["version"], 1);
    assert_eq!(v["data"]["source"], "api");
    let log = delivery_log(&app, &sub, 1).await;
    assert_eq!(log["items"][0]["outcome"], "delivered");
    assert_eq!(log["items"][0]["event_id"], id);

    // Rotation: during the overlap both secrets sign.
    let r = app
        .admin_post(
            &format!("/api/v1/subscriptions/{sub}/rotate-secret"),
            json!({"overlap_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let new_secret = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_secret, secret);
    app.put_person(&t, "E1", json!({"attributes": {"department": "Ops"}}))
        .await;
    until(&app, chrono::Duration::zero(), || rx.requests() >= 2).await;
    let got = rx.got.lock().unwrap()[1].clone();
    let id = got.0["webhook-id"].to_str().unwrap();
    let ts = got.0["webhook-timestamp"].to_str().unwrap();
    let sigs: Vec<&str> = got.0["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(
        sigs,
        [
            expected_signature(&new_secret, id, ts, &got.1),
            expected_signature(&secret, id, ts, &got.1)
        ]
    );

    // Manual redelivery sends the same event (same webhook-id) again.
    let first_id = rx.got.lock().unwrap()[0].0["webhook-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let r = app
        .admin_post(
            &format!("/api/v1/subscriptions/{sub}/redeliver"),
            json!({"event_id": first_id}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    until(&app, chrono::Duration::zero(), || rx.requests() >= 3).await;
    assert_eq!(
        rx.got.lock().unwrap()[2].0["webhook-id"].to_str().unwrap(),
        first_id
    );
}

#[tokio::test]
async fn a_receiver_that_fails_then_recovers_gets_every_event_in_order_per_person() {
    let app = app().await;
    let (url, rx) = receiver(vec![500, 503, 500, 502], 200).await;
    let (sub, _) = subscribe(&app, json!({"url": url, "attributes": ["*"]})).await;
    let c = app.syncer().await;
    let t = app.token(&c).await;
    app.put_person(&t, "E1", json!({"attributes": {"given_name": "A1"}}))
        .await;
    app.put_person(&t, "E2", json!({"attributes": {"given_name": "B1"}}))
        .await;
    app.put_person(&t, "E1", json!({"attributes": {"given_name": "A2"}}))
        .await;
    app.put_person(
        &t,
        "E2",
        json!({"attributes": {"given_name": "B2"}, "roles": ["staff"]}),
    )
    .await;
    app.put_person(&t, "E1", json!({"attributes": {"given_name": "A3"}}))
        .await;
    // 6 events: E1 v1..v3, E2 v1, E2 v2 (person.updated and roles.changed)
    until(&app, chrono::Duration::minutes(31), || {
        rx.delivered().len() >= 6
    })
    .await;
    let got = rx.delivered();
    for person in ["E1", "E2"] {
        let versions: Vec<i64> = got
            .iter()
            .filter(|(_, v)| v["data"]["external_id"] == person)
            .map(|(_, v)| v["data"]["version"].as_i64().unwrap())
            .collect();
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "{person}: {versions:?}"
        );
    }
    let cursors: Vec<i64> = got
        .iter()
        .map(|(_, v)| v["cursor"].as_i64().unwrap())
        .collect();
    assert_eq!(cursors, (1..=6).collect::<Vec<_>>());
    let log = delivery_log(&app, &sub, 10).await;
    let outcomes: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "failed").count(), 4);
    assert_eq!(outcomes.iter().filter(|o| **o == "delivered").count(), 6);
}

#[tokio::test]
async fn a_410_disables_the_subscription() {
    let app = app().await;
    let (url, rx) = receiver(vec![], 410).await;
    let (sub, _) = subscribe(&app, json!({"url": url, "attributes": ["*"]})).await;
    let c = app.syncer().await;
    let t = app.token(&c).await;
    app.put_person(&t, "E1", json!({"attributes": {"given_name": "A"}}))
        .await;
    let path = format!("/api/v1/subscriptions/{sub}");
    let mut state = Value::Null;
    for _ in 0..200 {
        state = app.get_json_as(&app.admin_token, &path).await;
        if state["state"] == "disabled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(state["state"], "disabled", "{state}");
    app.put_person(&t, "E2", json!({"attributes": {"given_name": "B"}}))
        .await;
    app.clock.advance(chrono::Duration::hours(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.requests(), 1, "nothing more goes to a gone receiver");
}

#[tokio::test]
async fn a_receiver_only_gets_the_attributes_and_events_it_listed() {
    let app = app().await;
    let (url, rx) = receiver(vec![], 200).await;
    subscribe(
        &app,
        json!({"url": url, "attributes": ["given_name", "department"], "events": ["person.created", "person.updated", "roles.changed"]}),
    )
    .await;
    let c = app.syncer().await;
    let t = app.token(&c).await;
    app.put_person(
        &t,
        "E1",
        json!({"attributes": {"given_name": "Ada", "termination_date": "2026-03-01", "department": "R&D"}}),
    )
    .await;
    // only outside the list: not sent
    app.put_person(
        &t,
        "E1",
        json!({"attributes": {"termination_date": "2026-04-01"}}),
    )
    .await;
    // roles are not in the list: roles.changed is not sent either
    app.put_person(&t, "E1", json!({"roles": ["staff"]})).await;
    app.put_person(
        &t,
        "E1",
        json!({"attributes": {"department": "Ops", "termination_date": "2026-05-01"}}),
    )
    .await;
    until(&app, chrono::Duration::zero(), || rx.delivered().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.delivered();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1["type"], "person.created");
    assert_eq!(
        got[0].1["data"]["changes"],
        json!([{"attribute": "department", "value": "R&D"}, {"attribute": "given_name", "value": "Ada"}])
    );
    assert_eq!(
        got[1].1["data"]["changes"],
        json!([{"attribute": "department", "value": "Ops"}])
    );
    for (_, v) in &got {
        let text = v.to_string();
        assert!(!text.contains("termination_date"));
        assert!(["2026-03-01", "2026-04-01", "2026-05-01"]
            .iter()
            .all(|d| !text.contains(d)));
    }
}

#[tokio::test]
async fn the_changes_feed_pages_and_long_polls() {
    let app = app().await;
    let c = app.syncer().await;
    let t = app.token(&c).await;
    for id in ["E1", "E2", "E3"] {
        app.put_person(&t, id, json!({"attributes": {"given_name": id}}))
            .await;
    }
    let page: Value = app
        .get_json_as(&app.admin_token, "/api/v1/changes?limit=2")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["type"], "person.created");
    assert_eq!(page["items"][0]["data"]["changes"][0]["value"], "E1");
    assert_eq!(page["next_cursor"], "2");
    let page: Value = app
        .get_json_as(&app.admin_token, "/api/v1/changes?after=2")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_cursor"], "3");

    // A long poll returns as soon as a change commits.
    let started = std::time::Instant::now();
    let writer = {
        let (http, url, t) = (app.http.clone(), app.url("/api/v1/people/E4"), t.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            http.put(url)
                .bearer_auth(t)
                .json(&json!({"attributes": {"given_name": "E4"}}))
                .send()
                .await
                .unwrap();
        })
    };
    let page: Value = app
        .get_json_as(&app.admin_token, "/api/v1/changes?after=3&wait=20")
        .await;
    writer.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(page["items"][0]["data"]["external_id"], "E4");
    assert_eq!(page["next_cursor"], "4");
    let r = app
        .get_as(&app.admin_token, "/api/v1/changes?wait=31")
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // people:read is needed
    let r = app.get_as(&t, "/api/v1/changes").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_import_of_100_rows_produces_100_events() {
    let app = app().await;
    let (_, t) = app.hr_setup().await;
    let v = app.import_csv(&t, &rows(100)).await;
    assert_eq!(v["counts"]["created"], 100, "{v}");
    let page: Value = app
        .get_json_as(&app.admin_token, "/api/v1/changes?limit=1000")
        .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 100);
    assert!(items.iter().all(|i| i["type"] == "person.created"
        && i["data"]["source"].as_str().unwrap().starts_with("import:")));
    // Importing the same file again changes nothing and adds no event.
    app.import_csv(&t, &rows(100)).await;
    let page: Value = app
        .get_json_as(&app.admin_token, "/api/v1/changes?after=100")
        .await;
    assert!(page["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn private_destinations_are_refused_unless_allowed() {
    let app = spawn_app().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "https://10.0.0.1/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/",
    ] {
        let r = app
            .admin_post(
                "/api/v1/subscriptions",
                json!({"url": url, "attributes": ["*"]}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
    }
}

/// python3 with the Standard Webhooks reference library (`standardwebhooks`
/// from the Python package index), installed on first use. Under CI=true
/// its absence fails the test; elsewhere the test says loudly that it skips.
fn python_with_standardwebhooks() -> Option<&'static str> {
    let has = || {
        std::process::Command::new("python3")
            .args(["-c", "import standardwebhooks"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has() {
        let _ = std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "standardwebhooks",
            ])
            .status();
    }
    if has() {
        return Some("python3");
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true: python3 with standardwebhooks is required for the interop test and could not be installed");
    }
    eprintln!("SKIPPED deliveries_verify_with_the_standard_webhooks_reference_library: python3 with standardwebhooks is not available (pip install standardwebhooks)");
    None
}

/// Asks the reference library whether each secret verifies a delivery as
/// received (headers and body); returns one answer per secret.
fn reference_verifies(
    python: &str,
    secrets: &[&str],
    headers: &HeaderMap,
    body: &str,
) -> Vec<bool> {
    const SCRIPT: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
d = json.load(sys.stdin)
out = []
for secret in d["secrets"]:
    try:
        Webhook(secret).verify(d["body"], d["headers"])
        out.append(True)
    except Exception:
        out.append(False)
print(json.dumps(out))
"#;
    let hs: serde_json::Map<String, Value> = headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("webhook-"))
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap())))
        .collect();
    let input = json!({"secrets": secrets, "headers": hs, "body": body}).to_string();
    let mut child = std::process::Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the reference verifier failed to run");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn deliveries_verify_with_the_standard_webhooks_reference_library() {
    let Some(python) = python_with_standardwebhooks() else {
        return;
    };
    let app = app().await;
    let (url, rx) = receiver(vec![], 200).await;
    let (sub, old) = subscribe(&app, json!({"url": url, "attributes": ["given_name"]})).await;
    let c = app.syncer().await;
    let t = app.token(&c).await;
    app.put_person(&t, "E1", json!({"attributes": {"given_name": "Ada"}}))
        .await;
    until(&app, chrono::Duration::zero(), || rx.requests() >= 1).await;
    let (h, body, _) = rx.got.lock().unwrap()[0].clone();
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert_eq!(
        reference_verifies(python, &[&old, other], &h, &body),
        [true, false],
        "the library accepts our signature, and refuses a wrong secret"
    );
    let tampered = body.replacen("Ada", "Eve", 1);
    assert_ne!(tampered, body);
    assert_eq!(
        reference_verifies(python, &[&old], &h, &tampered),
        [false],
        "a changed body no longer verifies"
    );

    // During a rotation's overlap both secrets sign: a receiver holding
    // either one verifies the delivery.
    let r = app
        .admin_post(
            &format!("/api/v1/subscriptions/{sub}/rotate-secret"),
            json!({"overlap_seconds": 3600}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let new = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    app.put_person(&t, "E2", json!({"attributes": {"given_name": "Grace"}}))
        .await;
    until(&app, chrono::Duration::zero(), || rx.requests() >= 2).await;
    let (h, body, _) = rx.got.lock().unwrap()[1].clone();
    assert_eq!(
        reference_verifies(python, &[&old, &new, other], &h, &body),
        [true, true, false]
    );
}
