//! The outbound destination rule end to end: webhook deliveries judged at
//! connect time (not only when the subscription was saved), JWK Set URLs
//! judged when an issuer is registered, and login-sync requests that
//! cannot make the gateway fetch at will.
use crate::helpers::*;
use crate::login_sync::{claims, issuer, login, sign};
use crate::support::receiver::serve;
use crate::webhooks::delivery_log;
use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A TCP listener on loopback that counts the connections it gets (and
/// closes them): a receiver that must see nothing.
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    (port, n)
}

/// Replaces a subscription's URL in the store, as a name that resolved
/// to a public address when it was saved and to this one now would.
async fn store_url(app: &TestApp, id: &str, url: String) {
    let store = app.running.as_ref().unwrap().state.store.clone();
    let id = id.to_owned();
    tokio::task::spawn_blocking(move || {
        let tenant = muster_core::TenantId::default_tenant();
        let mut sub = store.subscription_get(&tenant, &id).unwrap();
        sub.url = url;
        store
            .subscription_update(&sub, muster_store::contract::no_audit())
            .unwrap();
    })
    .await
    .unwrap();
}

async fn refused_at_connect_time(host: &str) {
    // Private destinations are not allowed (the default).
    let app = spawn_app_with(vec![("MUSTER_WEBHOOKS__POLL_INTERVAL_MS", "50")]).await;
    let (port, connections) = counting_listener().await;
    // A public IP literal passes when the subscription is saved...
    let r = app
        .admin_post(
            "/api/v1/subscriptions",
            json!({"url": "https://93.184.216.34/hook", "attributes": ["*"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    let sub = v["subscription"]["id"].as_str().unwrap().to_owned();
    // ...and then names the gateway's own network.
    store_url(&app, &sub, format!("https://{host}:{port}/hook")).await;

    let (_, token) = app.hr_setup().await;
    let r = app
        .http
        .put(app.url("/api/v1/people/E1"))
        .bearer_auth(&token)
        .json(&json!({"attributes": {"given_name": "Ada"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let log = delivery_log(&app, &sub, 1).await["items"]
        .as_array()
        .unwrap()
        .clone();
    let error = log[0]["error"].as_str().unwrap_or_default();
    assert_eq!(log[0]["outcome"], "failed", "{log:?}");
    assert!(error.starts_with("refused: "), "{error}");
    assert!(error.contains(host), "{error}");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a connection was made"
    );
}

#[tokio::test]
async fn a_stored_webhook_url_naming_a_loopback_address_gets_no_connection_and_is_recorded_as_refused(
) {
    refused_at_connect_time("127.0.0.1").await;
}

#[tokio::test]
async fn a_stored_webhook_url_whose_host_resolves_to_loopback_gets_no_connection_and_is_recorded_as_refused(
) {
    refused_at_connect_time("localhost").await;
}

#[tokio::test]
async fn subscriptions_to_special_purpose_addresses_in_any_spelling_are_refused() {
    let app = spawn_app().await;
    for url in [
        "https://[::127.0.0.1]/hook",
        "https://[64:ff9b::7f00:1]/hook",
        "https://[2002:7f00:1::1]/hook",
        "https://[fec0::1]/hook",
        "https://0.1.2.3/hook",
        "https://198.18.0.1/hook",
        "https://224.0.0.1/hook",
        "https://240.0.0.1/hook",
        "https://2130706433/hook",
        "https://localhost/hook",
    ] {
        let r = app
            .admin_post(
                "/api/v1/subscriptions",
                json!({"url": url, "attributes": ["*"]}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["detail"].as_str().unwrap().starts_with("url: "),
            "{url}: {v}"
        );
    }
}

#[tokio::test]
async fn a_jwks_url_in_a_special_purpose_range_is_refused_when_the_issuer_is_registered() {
    let app = spawn_app().await;
    let r = app
        .put_mapping(
            "idp",
            "key = \"employee_number\"\n[attributes.given_name]\ncolumn = \"given_name\"\n",
        )
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    for url in [
        "https://169.254.169.254/latest/meta-data/jwks",
        "https://[::ffff:169.254.169.254]/jwks",
        "https://[::127.0.0.1]/jwks",
        "https://10.0.0.5/jwks",
        "https://localhost/jwks",
        "http://127.0.0.1:9/jwks",
    ] {
        let r = app
            .admin_post(
                "/api/v1/issuers",
                json!({"name": "okta", "issuer": "https://idp.example.com", "audience": "muster",
                       "jwks_url": url, "mapping": "idp"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["detail"].as_str().unwrap().starts_with("jwks_url: "),
            "{url}: {v}"
        );
    }
}

/// A JWK Set endpoint that always fails, counting the requests it gets.
async fn failing_jwks_server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            h.fetch_add(1, Ordering::SeqCst);
            async { axum::http::StatusCode::SERVICE_UNAVAILABLE }
        }),
    );
    (serve(app, "/jwks.json").await, hits)
}

#[tokio::test]
async fn unauthenticated_logins_make_at_most_one_jwks_fetch_per_interval_even_when_it_fails() {
    // The JWK Set is served on loopback, so private destinations are allowed.
    let app = spawn_app_with(vec![(
        "MUSTER_OUTBOUND__ALLOW_PRIVATE_DESTINATIONS",
        "true",
    )])
    .await;
    let (url, hits) = failing_jwks_server().await;
    issuer(&app, json!({"jwks": null, "jwks_url": url})).await;
    let token = sign(Algorithm::RS256, &claims(&app, "E1"));

    // Twenty in a row, then twenty at once: one fetch in all.
    for _ in 0..20 {
        let r = login(&app, &token).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "jwks_unavailable", "{v}");
    }
    let at_once = (0..20).map(|_| login(&app, &token));
    for r in futures::future::join_all(at_once).await {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // After the interval, twenty at once make one more.
    app.clock.advance(chrono::Duration::seconds(11));
    let at_once = (0..20).map(|_| login(&app, &token));
    for r in futures::future::join_all(at_once).await {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

/// A JWK Set endpoint that answers `body` slowly or not at all.
async fn jwks_server(body: axum::body::Body) -> String {
    let body = Arc::new(std::sync::Mutex::new(Some(body)));
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let b = body.lock().unwrap().take();
            async move {
                match b {
                    Some(b) => axum::response::Response::new(b),
                    None => axum::response::Response::new(axum::body::Body::empty()),
                }
            }
        }),
    );
    serve(app, "/jwks.json").await
}

async fn refused_as_unavailable(app: &TestApp) {
    let r = login(app, &sign(Algorithm::RS256, &claims(app, "E1"))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "jwks_unavailable", "{v}");
}

#[tokio::test]
async fn a_jwks_answer_larger_than_256_kib_is_not_read() {
    let app = spawn_app_with(vec![(
        "MUSTER_OUTBOUND__ALLOW_PRIVATE_DESTINATIONS",
        "true",
    )])
    .await;
    // A chunked body (no length announced): refused while reading.
    let big = futures::stream::iter(
        (0..80).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 4096]))),
    );
    let url = jwks_server(axum::body::Body::from_stream(big)).await;
    issuer(&app, json!({"jwks": null, "jwks_url": url})).await;
    refused_as_unavailable(&app).await;
}

#[tokio::test]
async fn a_jwks_endpoint_that_trickles_its_answer_is_given_up_after_5_seconds() {
    let app = spawn_app_with(vec![(
        "MUSTER_OUTBOUND__ALLOW_PRIVATE_DESTINATIONS",
        "true",
    )])
    .await;
    // One byte a second, for a minute.
    let slow = futures::stream::unfold(0u32, |n| async move {
        (n < 60).then_some(())?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        Some((
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b" ")),
            n + 1,
        ))
    });
    let url = jwks_server(axum::body::Body::from_stream(slow)).await;
    issuer(&app, json!({"jwks": null, "jwks_url": url})).await;
    let started = std::time::Instant::now();
    refused_as_unavailable(&app).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}");
}
