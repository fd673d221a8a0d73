use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn a_client_gets_a_token_with_basic_or_post_authentication() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    let r = app.token_response(&c, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 900);
    assert!(v["access_token"].as_str().unwrap().len() >= 43);
    assert_eq!(v["scope"], "imports:create imports:read people:write");

    let r = app
        .http
        .post(app.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.id.as_str()),
            ("client_secret", c.secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_scope_narrows_the_token_and_an_unknown_or_excess_scope_is_refused() {
    let app = spawn_app().await;
    let (_, _) = app.hr_setup().await;
    let c = app.syncer().await;
    let r = app.token_response(&c, Some("imports:create")).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["scope"], "imports:create");
    let t = v["access_token"].as_str().unwrap();
    // people:write is not in the narrowed token.
    let r = app
        .http
        .put(app.url("/api/v1/people/E1"))
        .bearer_auth(t)
        .json(&json!({"attributes": {"given_name": "Ada"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    for scope in ["nonsense", "people:read"] {
        let r = app.token_response(&c, Some(scope)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_scope");
    }
}

#[tokio::test]
async fn a_wrong_secret_an_unknown_client_and_a_disabled_client_are_refused() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    let wrong = Client {
        id: c.id.clone(),
        secret: "mcs_wrong".into(),
    };
    let r = app.token_response(&wrong, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");

    let unknown = Client {
        id: "nobody".into(),
        secret: c.secret.clone(),
    };
    let r = app.token_response(&unknown, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let token = app.token(&c).await;
    let r = app
        .admin_post(&format!("/api/v1/clients/{}/disable", c.id), json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.token_response(&c, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    // Disabling revoked the live token at once.
    let r = app.get_as(&token, "/api/v1/imports").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The failures were audited, without the secret.
    let audit = app
        .get_as(&app.admin_token, "/api/v1/audit?limit=1000")
        .await
        .text()
        .await
        .unwrap();
    assert!(audit.contains("auth.failed"));
    assert!(!audit.contains("mcs_wrong"));
    assert!(!audit.contains(&c.secret));
}

#[tokio::test]
async fn an_expired_token_is_refused_with_the_reason() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    let t = app.token(&c).await;
    assert_eq!(
        app.get_as(&t, "/api/v1/imports").await.status(),
        StatusCode::OK
    );
    app.clock.advance(chrono::Duration::seconds(901));
    let r = app.get_as(&t, "/api/v1/imports").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let h = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(h.starts_with("Bearer error=\"invalid_token\""), "{h}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "invalid_token");
    assert!(v["detail"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn a_one_time_token_raced_by_16_requests_succeeds_once() {
    let app = spawn_app().await;
    let c = app
        .create_client(json!({"role": "syncer", "token_policy": "one_time"}))
        .await;
    let t = app.token(&c).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, url, t) = (app.http.clone(), app.url("/api/v1/imports"), t.clone());
        tasks.push(tokio::spawn(async move {
            http.get(url).bearer_auth(t).send().await.unwrap().status()
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::UNAUTHORIZED => refused += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!((ok, refused), (1, 15));
}

#[tokio::test]
async fn a_revoked_token_stops_working() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    let t = app.token(&c).await;
    let r = app
        .http
        .post(app.url("/oauth2/revoke"))
        .basic_auth(&c.id, Some(&c.secret))
        .form(&[("token", t.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.get_as(&t, "/api/v1/imports").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn malformed_token_requests_get_rfc_6749_errors() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    // Wrong grant type.
    let r = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    // Two authentication methods at once.
    let r = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", c.secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    // Not a form.
    let r = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn the_server_metadata_names_the_endpoints() {
    let app = spawn_app().await;
    let v: Value = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(v["issuer"], app.base);
    assert_eq!(v["token_endpoint"], format!("{}/oauth2/token", app.base));
    assert!(v["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("client_credentials")));
}

#[tokio::test]
async fn a_rotated_secret_overlaps_with_the_old_one_until_it_expires() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    let v: Value = app
        .admin_post(
            &format!("/api/v1/clients/{}/rotate-secret", c.id),
            json!({"overlap_seconds": 60}),
        )
        .await
        .json()
        .await
        .unwrap();
    let new = Client {
        id: c.id.clone(),
        secret: v["client_secret"].as_str().unwrap().to_owned(),
    };
    assert_eq!(app.token_response(&c, None).await.status(), StatusCode::OK);
    assert_eq!(
        app.token_response(&new, None).await.status(),
        StatusCode::OK
    );
    app.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(
        app.token_response(&c, None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.token_response(&new, None).await.status(),
        StatusCode::OK
    );
}
