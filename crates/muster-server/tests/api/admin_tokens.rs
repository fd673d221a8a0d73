//! Admin API tokens: they expire, an admin mints and revokes them, the
//! list never shows a secret, and an expired or revoked one gets the same
//! answer as a token nobody ever had.
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The 401 a token gets on the admin API: (status, code, detail).
async fn answer(app: &TestApp, token: &str) -> (StatusCode, String, String) {
    let r = app.get_as(token, "/api/v1/clients").await;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        v["code"].as_str().unwrap_or("").to_owned(),
        v["detail"].as_str().unwrap_or("").to_owned(),
    )
}

/// What a token nobody ever had gets.
async fn unknown(app: &TestApp) -> (StatusCode, String, String) {
    let a = answer(app, "mat_neverissuedneverissuedneverissuedneverissu").await;
    assert_eq!(a.0, StatusCode::UNAUTHORIZED);
    assert_eq!(a.1, "invalid_token");
    a
}

async fn mint(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/admin/tokens"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Mints a token with the initial admin's; returns (id, token).
async fn minted(app: &TestApp, body: Value) -> (String, String) {
    let r = mint(app, &app.admin_token, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    (
        v["token"]["id"].as_str().unwrap().to_owned(),
        v["admin_token"].as_str().unwrap().to_owned(),
    )
}

async fn revoke(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/api/v1/admin/tokens/{id}/revoke")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_initial_admin_token_expires_and_is_then_refused_like_an_unknown_one() {
    let app = spawn_app_with(vec![("MUSTER_TOKENS__INITIAL_ADMIN_TTL_SECONDS", "3600")]).await;
    assert_eq!(answer(&app, &app.admin_token).await.0, StatusCode::OK);
    app.clock.advance(chrono::Duration::seconds(3599));
    assert_eq!(answer(&app, &app.admin_token).await.0, StatusCode::OK);
    app.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(answer(&app, &app.admin_token).await, unknown(&app).await);
}

#[tokio::test]
async fn a_minted_admin_token_works_until_its_lifetime_ends() {
    let app = spawn_app().await;
    let (_, t) = minted(&app, json!({"name": "ci", "lifetime_seconds": 600})).await;
    assert!(t.starts_with("mat_"));
    assert_eq!(answer(&app, &t).await.0, StatusCode::OK);
    app.clock.advance(chrono::Duration::seconds(601));
    assert_eq!(answer(&app, &t).await, unknown(&app).await);
}

#[tokio::test]
async fn a_minted_admin_token_without_a_lifetime_gets_the_configured_one() {
    let app = spawn_app_with(vec![("MUSTER_TOKENS__ADMIN_TTL_SECONDS", "7200")]).await;
    let r = mint(&app, &app.admin_token, json!({"name": "laptop"})).await;
    let v: Value = r.json().await.unwrap();
    let created: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(v["token"]["created_at"].clone()).unwrap();
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(v["token"]["expires_at"].clone()).unwrap();
    assert_eq!((expires - created).num_seconds(), 7200, "{v}");
    let t = v["admin_token"].as_str().unwrap();
    app.clock.advance(chrono::Duration::seconds(7200));
    assert_eq!(answer(&app, t).await, unknown(&app).await);
}

#[tokio::test]
async fn a_revoked_admin_token_is_refused_at_once() {
    let app = spawn_app().await;
    let (id, t) = minted(&app, json!({"name": "ci"})).await;
    assert_eq!(answer(&app, &t).await.0, StatusCode::OK);
    let r = revoke(&app, &app.admin_token, &id).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert!(v["revoked_at"].is_string(), "{v}");
    assert_eq!(answer(&app, &t).await, unknown(&app).await);
    // The token that revoked it goes on working.
    assert_eq!(answer(&app, &app.admin_token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn revoking_current_retires_the_token_that_asks() {
    let app = spawn_app().await;
    let (_, t) = minted(&app, json!({"name": "one-off"})).await;
    assert_eq!(revoke(&app, &t, "current").await.status(), StatusCode::OK);
    assert_eq!(answer(&app, &t).await, unknown(&app).await);
    assert_eq!(answer(&app, &app.admin_token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_token_list_shows_ids_names_and_times_but_never_a_secret() {
    let app = spawn_app().await;
    let (id, t) = minted(&app, json!({"name": "ci", "lifetime_seconds": 3600})).await;
    assert_eq!(answer(&app, &t).await.0, StatusCode::OK);
    let r = app.get_as(&app.admin_token, "/api/v1/admin/tokens").await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(!text.contains(&t), "{text}");
    assert!(!text.contains(&app.admin_token), "{text}");
    for d in [
        muster_core::secret::digest(&t),
        muster_core::secret::digest(&app.admin_token),
    ] {
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(&hex), "a digest in {text}");
    }
    let list: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(list.len(), 2, "{text}");
    let initial = &list[0];
    assert_eq!(initial["name"], "initial");
    assert_eq!(initial["admin"], "admin");
    assert!(
        initial["expires_at"].is_string(),
        "the initial token expires"
    );
    assert!(initial["last_used_at"].is_string(), "it was used");
    let ci = list.iter().find(|v| v["id"] == id.as_str()).unwrap();
    assert_eq!(ci["name"], "ci");
    assert!(ci["created_at"].is_string() && ci["expires_at"].is_string());
    assert!(ci["last_used_at"].is_string(), "{ci}");
    assert!(ci["revoked_at"].is_null());
    let mut keys: Vec<&str> = ci.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "admin",
            "created_at",
            "expires_at",
            "id",
            "last_used_at",
            "name",
            "revoked_at"
        ]
    );
}

#[tokio::test]
async fn minting_and_revoking_are_audited_without_the_token() {
    let app = spawn_app().await;
    let (id, t) = minted(&app, json!({"name": "ci"})).await;
    revoke(&app, &app.admin_token, &id).await;
    let audit = app
        .get_as(&app.admin_token, "/api/v1/audit?limit=1000")
        .await
        .text()
        .await
        .unwrap();
    assert!(audit.contains("admin_token.created"), "{audit}");
    assert!(audit.contains("admin_token.revoked"), "{audit}");
    assert!(audit.contains(&id));
    assert!(!audit.contains(&t));
    assert!(!audit.contains(&app.admin_token));
}

#[tokio::test]
async fn bad_token_requests_get_clear_errors() {
    let app = spawn_app().await;
    for (body, code) in [
        (json!({"name": ""}), "invalid_name"),
        (json!({"name": "x".repeat(65)}), "invalid_name"),
        (
            json!({"name": "ci", "lifetime_seconds": 5}),
            "invalid_lifetime",
        ),
        (
            json!({"name": "ci", "lifetime_seconds": 400_000_000u64}),
            "invalid_lifetime",
        ),
    ] {
        let r = mint(&app, &app.admin_token, body.clone()).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], code, "{body}: {v}");
    }
    let r = revoke(&app, &app.admin_token, "no-such-token").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn integration_clients_cannot_mint_admin_tokens() {
    let app = spawn_app().await;
    let c = app.create_client(json!({"role": "admin"})).await;
    let t = app.token(&c).await;
    let r = mint(&app, &t, json!({"name": "escalate"})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app.get_as(&t, "/api/v1/admin/tokens").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_tenant_admin_sees_and_revokes_only_its_own_tenants_tokens() {
    let app = spawn_app().await;
    let (id, t) = minted(&app, json!({"name": "ci"})).await;
    let r = app
        .admin_post("/api/v1/tenants", json!({"id": "acme"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let acme = r.json::<Value>().await.unwrap()["admin_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let list: Vec<Value> = app.get_json_as(&acme, "/api/v1/admin/tokens").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["admin"], "admin@acme");
    assert!(
        list[0]["expires_at"].is_string(),
        "a tenant's first token expires"
    );
    assert_eq!(
        revoke(&app, &acme, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(answer(&app, &t).await.0, StatusCode::OK);
}

async fn restart(app: TestApp) -> TestApp {
    let mut app = app;
    app.running.take().unwrap().stop().await.unwrap();
    app.spawn_peer(vec![]).await
}

#[tokio::test]
async fn a_start_after_the_first_admin_lost_every_token_writes_a_new_initial_token() {
    let app = spawn_app().await;
    let initial = app.admin_token.clone();
    let (_, own) = minted(&app, json!({"name": "own"})).await;
    assert_eq!(
        revoke(&app, &initial, "current").await.status(),
        StatusCode::OK
    );
    // A token of its own still works: nothing new is written.
    let app = restart(app).await;
    assert_eq!(app.admin_token, initial, "the file was left as it was");
    assert_eq!(answer(&app, &initial).await, unknown(&app).await);
    assert_eq!(answer(&app, &own).await.0, StatusCode::OK);
    // Its last token revoked, the next start writes a new initial token.
    assert_eq!(revoke(&app, &own, "current").await.status(), StatusCode::OK);
    let app = restart(app).await;
    assert_ne!(app.admin_token, initial);
    assert_eq!(answer(&app, &app.admin_token).await.0, StatusCode::OK);
    let audit = app
        .get_as(&app.admin_token, "/api/v1/audit?limit=1000")
        .await
        .text()
        .await
        .unwrap();
    assert!(!audit.contains(&app.admin_token));
    let list: Vec<Value> = app
        .get_json_as(&app.admin_token, "/api/v1/admin/tokens")
        .await;
    let live: Vec<&Value> = list.iter().filter(|t| t["revoked_at"].is_null()).collect();
    assert_eq!(live.len(), 1, "{list:?}");
    assert_eq!(live[0]["name"], "initial");
}
