//! HMAC key rotation with an overlap (issue 4), and failed-authentication
//! and token-request limits on every way in, across instances (issues 4, 5).
use crate::helpers::*;
use base64::Engine;
use chrono::Duration;
use muster_httpsig::{content_digest, sign, DigestAlgorithm, HmacKey, SigningKey, SigningParams};
use reqwest::StatusCode;
use serde_json::{json, Value};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A signed `PUT /api/v1/people/{id}` (RFC 9421, HMAC-SHA256).
async fn signed_put(app: &TestApp, client_id: &str, key: &[u8], id: &str) -> reqwest::Response {
    use muster_core::clock::Clock;
    let url = app.url(&format!("/api/v1/people/{id}"));
    let body = serde_json::to_vec(&json!({"attributes": {"given_name": "Signed"}})).unwrap();
    let digest = content_digest(&body, DigestAlgorithm::Sha256);
    let msg = muster_httpsig::Request::new("PUT", &url).header("content-digest", &digest);
    let params = SigningParams {
        label: "sig1".into(),
        components: vec![
            "@method".into(),
            "@target-uri".into(),
            "content-digest".into(),
        ],
        created: Some(app.clock.now().timestamp()),
        nonce: Some(uuid::Uuid::new_v4().simple().to_string()),
        keyid: Some(client_id.to_owned()),
        ..Default::default()
    };
    let key = SigningKey::HmacSha256(HmacKey::new(key.to_vec()));
    let h = sign(&msg, &params, &key).unwrap();
    app.http
        .put(url)
        .header("signature-input", h.signature_input)
        .header("signature", h.signature)
        .header("content-digest", digest)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn issue_hmac(app: &TestApp, client_id: &str, body: Value) -> Value {
    let r = app
        .admin_post(&format!("/api/v1/clients/{client_id}/keys/hmac"), body)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

fn key_of(v: &Value) -> Vec<u8> {
    B64URL.decode(v["hmac_key"].as_str().unwrap()).unwrap()
}

async fn code(r: reqwest::Response) -> (StatusCode, String) {
    let s = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    (s, v["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn both_hmac_keys_verify_during_the_overlap_and_the_old_one_fails_after() {
    let app = spawn_app().await;
    let (c, _) = app.hr_setup().await;
    let first = issue_hmac(&app, &c.id, json!({})).await;
    let old = key_of(&first);
    let second = issue_hmac(&app, &c.id, json!({"overlap_seconds": 600})).await;
    let new = key_of(&second);
    assert_ne!(old, new);
    // The response shows the new key once, with its id and the deadline.
    assert!(second["key_id"].as_str().unwrap().starts_with("hk_"));
    assert_ne!(second["key_id"], first["key_id"]);
    assert!(second["previous_valid_until"].is_string(), "{second}");
    assert_eq!(
        second["keys"]["hmac_previous_until"],
        second["previous_valid_until"]
    );
    let info: Value = app
        .get_as(&app.admin_token, &format!("/api/v1/clients/{}/keys", c.id))
        .await
        .json()
        .await
        .unwrap();
    assert!(!info
        .to_string()
        .contains(second["hmac_key"].as_str().unwrap()));

    for (key, id) in [(&old, "E1"), (&new, "E2")] {
        let r = signed_put(&app, &c.id, key, id).await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    app.clock.advance(Duration::seconds(601));
    assert_eq!(
        code(signed_put(&app, &c.id, &old, "E3").await).await,
        (StatusCode::UNAUTHORIZED, "bad_signature".into())
    );
    let r = signed_put(&app, &c.id, &new, "E4").await;
    assert!(r.status().is_success());

    // Without an overlap the previous key stops at once.
    let third = issue_hmac(&app, &c.id, json!({"overlap_seconds": 0})).await;
    assert!(third.get("previous_valid_until").is_none(), "{third}");
    assert_eq!(
        code(signed_put(&app, &c.id, &new, "E5").await).await.0,
        StatusCode::UNAUTHORIZED
    );
    let r = signed_put(&app, &c.id, &key_of(&third), "E6").await;
    assert!(r.status().is_success());
}

#[tokio::test]
async fn failed_signed_requests_are_limited_per_key_id_with_retry_after() {
    let app = spawn_app_with(vec![("MUSTER_LIMITS__FAILED_AUTH_MAX", "3")]).await;
    let (c, _) = app.hr_setup().await;
    let good = key_of(&issue_hmac(&app, &c.id, json!({})).await);
    for i in 0..3 {
        let r = signed_put(&app, &c.id, &[7u8; 32], &format!("X{i}")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Over the limit even the right key waits.
    let r = signed_put(&app, &c.id, &good, "X9").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
    // The window passes: the right key works again.
    app.clock.advance(Duration::seconds(301));
    let r = signed_put(&app, &c.id, &good, "X9").await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn failed_bearer_tokens_are_limited_per_source_address() {
    let app = spawn_app_with(vec![("MUSTER_LIMITS__FAILED_AUTH_MAX", "3")]).await;
    let (_, t) = app.hr_setup().await;
    for _ in 0..3 {
        let r = app.get_as("mct_not-a-token", "/api/v1/imports").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = app.get_as(&t, "/api/v1/imports").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(code(r).await.1, "too_many_requests");
    app.clock.advance(Duration::seconds(301));
    assert_eq!(
        app.get_as(&t, "/api/v1/imports").await.status(),
        StatusCode::OK
    );
}

fn skip_unless_postgres(test: &str) -> bool {
    if on_postgres() {
        return false;
    }
    eprintln!("{test}: runs with MUSTER_TEST_BACKEND=postgres only");
    true
}

#[tokio::test]
async fn failures_spread_over_two_instances_trip_the_limit_on_both() {
    if skip_unless_postgres("failures_spread_over_two_instances_trip_the_limit_on_both") {
        return;
    }
    let env = vec![
        ("MUSTER_LIMITS__FAILED_AUTH_MAX", "4"),
        ("MUSTER_CLUSTER__HEARTBEAT_MS", "200"),
    ];
    let a = spawn_app_with(env.clone()).await;
    let b = a.spawn_peer(env).await;
    let c = a.syncer().await;
    let wrong = Client {
        id: c.id.clone(),
        secret: "mcs_wrong".into(),
    };
    // Two failures on each: neither instance alone saw four.
    for app in [&a, &b, &a, &b] {
        let r = app.token_response(&wrong, None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // B counted the fourth: it refuses at once, even the right secret.
    let r = b.token_response(&c, None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // A learns it from the database on its next heartbeat.
    let mut refused = false;
    for _ in 0..50 {
        if a.token_response(&c, None).await.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "instance A refuses too");
}

#[tokio::test]
async fn the_token_request_rate_is_shared_out_between_live_instances() {
    if skip_unless_postgres("the_token_request_rate_is_shared_out_between_live_instances") {
        return;
    }
    let env = vec![
        ("MUSTER_LIMITS__TOKEN_REQUESTS_PER_SECOND", "4"),
        ("MUSTER_CLUSTER__HEARTBEAT_MS", "200"),
    ];
    let a = spawn_app_with(env.clone()).await;
    let b = a.spawn_peer(env).await;
    let c = a.syncer().await;
    // Let both instances see each other (a few heartbeats).
    for _ in 0..50 {
        let v: Value = a
            .get_as(&a.admin_token, "/api/v1/admin/master-key")
            .await
            .json()
            .await
            .unwrap();
        if v["instances"].as_object().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    // The injected clock stands still, so no bucket refills: each instance
    // grants its share (4 / 2) and then answers 429.
    for app in [&a, &b] {
        for _ in 0..2 {
            assert_eq!(app.token_response(&c, None).await.status(), StatusCode::OK);
        }
        let r = app.token_response(&c, None).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers().contains_key("retry-after"));
    }
}
