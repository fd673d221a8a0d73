//! Master-key rotation (docs/intake.md#master-key-rotation): every sealed row re-sealed under a new
//! key without stopping imports; uploads waiting under the old key still
//! open; the old key is retired only when nothing needs it.
use crate::helpers::*;
use crate::support::receiver::{receiver, subscribe};
use crate::webhooks::expected_signature;
use base64::Engine;
use muster_httpsig::{content_digest, sign, DigestAlgorithm, HmacKey, SigningKey, SigningParams};
use muster_intake::{seal::UnsealReader, sealed_box};
use muster_store::SealedColumn;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Read;
use std::time::Duration;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn key_file(app: &TestApp) -> [u8; 32] {
    let text = std::fs::read_to_string(app.dir.path().join("master.key")).unwrap();
    hex::decode(text.trim()).unwrap().try_into().unwrap()
}

async fn rotate(app: &TestApp) -> Value {
    let r = app
        .admin_post("/api/v1/admin/master-key/rotate", json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn retire(app: &TestApp) -> reqwest::Response {
    app.admin_post("/api/v1/admin/master-key/retire-previous", json!({}))
        .await
}

fn age_encrypt(recipient: &str, plain: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let r = muster_intake::decrypt::PublicRecipient::parse(recipient).unwrap();
    let mut w = muster_intake::decrypt::encrypt_writer(Vec::new(), &r, false).unwrap();
    w.write_all(plain).unwrap();
    w.finish().unwrap()
}

/// Whether `key` opens a sealed row (with the label the gateway binds it to).
fn opens(key: &[u8; 32], column: SealedColumn, id: &str, sealed: &[u8]) -> bool {
    let aad = match column {
        SealedColumn::KeySecret => format!("muster-key:{id}"),
        SealedColumn::ClientHmac | SealedColumn::ClientHmacPrevious => {
            format!("muster client hmac key:{id}")
        }
        SealedColumn::IssuerHs256 => format!("muster issuer hs256 secret:{id}"),
        SealedColumn::WebhookSecret | SealedColumn::WebhookPreviousSecret => {
            format!("muster-webhook-secret:{id}")
        }
    };
    if column == SealedColumn::KeySecret {
        let mut out = Vec::new();
        UnsealReader::new(sealed, key, aad.as_bytes())
            .and_then(|mut r| r.read_to_end(&mut out))
            .is_ok()
    } else {
        sealed_box::open(key, aad.as_bytes(), sealed).is_ok()
    }
}

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
    let h = sign(
        &msg,
        &params,
        &SigningKey::HmacSha256(HmacKey::new(key.to_vec())),
    )
    .unwrap();
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

async fn hmac_key(app: &TestApp, client_id: &str) -> Vec<u8> {
    let r = app
        .admin_post(&format!("/api/v1/clients/{client_id}/keys/hmac"), json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    B64URL.decode(v["hmac_key"].as_str().unwrap()).unwrap()
}

async fn age_key(app: &TestApp) -> String {
    let r = app.admin_post("/api/v1/keys", json!({"kind": "age"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    v["public_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn rotating_the_master_key_reseals_every_secret_and_the_old_key_alone_opens_none() {
    let app = spawn_app_with(vec![
        ("MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("MUSTER_WEBHOOKS__POLL_INTERVAL_MS", "50"),
    ])
    .await;
    let (c, t) = app.hr_setup().await;
    let recipient = age_key(&app).await;
    let hmac = hmac_key(&app, &c.id).await;
    let (url, rx) = receiver(vec![], 200).await;
    let (sub_id, whsec) = subscribe(
        &app,
        json!({"url": url, "events": ["person.created"], "attributes": ["*"]}),
    )
    .await;
    let old = key_file(&app);
    let old_hex = hex::encode(old);

    let v = rotate(&app).await;
    let new = key_file(&app);
    assert_ne!(new, old);
    assert_eq!(v["previous"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["reseal"]["resealed"]["tenant_keys"], 1, "{v}");
    assert_eq!(v["reseal"]["resealed"]["client_hmac_keys"], 1, "{v}");
    assert_eq!(v["reseal"]["resealed"]["webhook_secrets"], 1, "{v}");
    assert!(!v.to_string().contains(&old_hex) && !v.to_string().contains(&hex::encode(new)));

    // Every sealed row opens with the new key, none with the old one.
    let store = app.running.as_ref().unwrap().state.store.clone();
    let all = tokio::task::spawn_blocking(move || store.sealed_all().unwrap())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    for s in &all {
        assert!(opens(&new, s.column, &s.id, &s.sealed), "{s:?}");
        assert!(!opens(&old, s.column, &s.id, &s.sealed), "{s:?}");
    }

    // The audit log records the rotation, never a key.
    let audit: Value = app
        .get_json_as(&app.admin_token, "/api/v1/audit?limit=1000")
        .await;
    let rotated: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "master_key.rotated")
        .collect();
    assert_eq!(rotated.len(), 1, "{audit}");
    let text = audit.to_string();
    assert!(!text.contains(&old_hex) && !text.contains(&hex::encode(new)));

    // Decryption keys, signed requests and webhook signatures still work.
    let csv = rows(5);
    let r = app
        .upload(
            &t,
            "mapping=hr&wait=30&format=csv",
            "application/octet-stream",
            age_encrypt(&recipient, csv.as_bytes()),
        )
        .await;
    let imp: Value = r.json().await.unwrap();
    let imp = app.wait_import_info(&t, imp["id"].as_str().unwrap()).await;
    assert_eq!(imp.state.as_str(), "succeeded", "{imp:?}");
    let r = signed_put(&app, &c.id, &hmac, "S1").await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    for _ in 0..200 {
        if !rx.delivered().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (h, body, _) = rx.got.lock().unwrap()[0].clone();
    let get = |n: &str| h.get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(
        get("webhook-signature"),
        expected_signature(&whsec, &get("webhook-id"), &get("webhook-timestamp"), &body),
        "subscription {sub_id}"
    );

    // Nothing needs the old key: it is retired, and things keep working.
    let r = retire(&app).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["retired"].as_array().unwrap().len(), 1, "{v}");
    assert!(!app.dir.path().join("master.key.previous").exists());
    let r = signed_put(&app, &c.id, &hmac, "S2").await;
    assert!(r.status().is_success());
}

#[tokio::test]
async fn an_upload_waiting_under_the_old_key_imports_after_rotation_and_holds_back_retirement() {
    // An instance without a worker keeps the upload waiting in the spool.
    let mut app = spawn_app_with(vec![("MUSTER_IMPORT__WORKER", "false")]).await;
    let (_c, t) = app.hr_setup().await;
    let recipient = age_key(&app).await;
    let r = app
        .upload(
            &t,
            "mapping=hr&format=csv",
            "application/octet-stream",
            age_encrypt(&recipient, rows(7).as_bytes()),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let v = rotate(&app).await;
    assert_eq!(v["uploads_on_previous_keys"], 1, "{v}");
    let r = retire(&app).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let p: Value = r.json().await.unwrap();
    assert!(p["detail"].as_str().unwrap().contains("upload"), "{p}");

    // A restart with a worker imports it: the upload opens with the
    // previous key, the tenant key (re-sealed) with the new one.
    app.running.take().unwrap().stop().await.unwrap();
    let app = app.spawn_peer(vec![]).await;
    let v = app.wait_import_info(&t, &id).await;
    assert_eq!(v.state.as_str(), "succeeded", "{v:?}");
    assert_eq!(v.counts.created, 7);
    let r = retire(&app).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn an_import_running_through_a_rotation_completes() {
    let app = spawn_app_with(vec![("MUSTER_IMPORT__BATCH_SIZE", "50")]).await;
    let (_c, t) = app.hr_setup().await;
    let r = app.upload(&t, "mapping=hr", "text/csv", rows(3000)).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    rotate(&app).await;
    rotate(&app).await;
    let v = app.wait_import_info(&t, &id).await;
    assert_eq!(v.state.as_str(), "succeeded", "{v:?}");
    assert_eq!(v.counts.created, 3000);
}

#[tokio::test]
async fn only_the_installations_operator_may_rotate_or_retire_the_master_key() {
    let app = spawn_app().await;
    let r = app
        .admin_post("/api/v1/tenants", json!({"id": "acme"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let acme_admin = r.json::<Value>().await.unwrap()["admin_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_c, syncer) = app.hr_setup().await;
    for token in [&acme_admin, &syncer] {
        for path in [
            "/api/v1/admin/master-key/rotate",
            "/api/v1/admin/master-key/retire-previous",
        ] {
            let r = app
                .http
                .post(app.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        }
    }
    let before = key_file(&app);
    assert_eq!(key_file(&app), before, "nothing was rotated");
    let v: Value = app
        .get_json_as(&app.admin_token, "/api/v1/admin/master-key")
        .await;
    assert!(v["current"].as_str().unwrap().starts_with("mk_"), "{v}");
}

#[tokio::test]
async fn every_instance_moves_to_the_new_key_before_the_old_one_is_retired() {
    if !on_postgres() {
        eprintln!("runs with MUSTER_TEST_BACKEND=postgres only");
        return;
    }
    let env = vec![("MUSTER_CLUSTER__HEARTBEAT_MS", "200")];
    let a = spawn_app_with(env.clone()).await;
    let b = a.spawn_peer(env).await;
    let (c, _t) = a.hr_setup().await;
    let hmac = hmac_key(&a, &c.id).await;
    let v = rotate(&a).await;
    let current = v["current"].as_str().unwrap().to_owned();
    // B opens what A re-sealed under the new key at once.
    let r = signed_put(&b, &c.id, &hmac, "P1").await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    // A key issued through B after the rotation opens on A.
    let hmac2 = hmac_key(&b, &c.id).await;
    let r = signed_put(&a, &c.id, &hmac2, "P2").await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    // Both instances report the new key within a few heartbeats; then the
    // previous key can go.
    let mut all_moved = false;
    for _ in 0..100 {
        let v: Value = a
            .get_json_as(&a.admin_token, "/api/v1/admin/master-key")
            .await;
        let inst = v["instances"].as_object().unwrap();
        if inst.len() == 2 && inst.values().all(|k| k == &json!(current)) {
            all_moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(all_moved, "both instances seal with {current}");
    let r = retire(&b).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = signed_put(&a, &c.id, &hmac2, "P3").await;
    assert!(r.status().is_success());
}
