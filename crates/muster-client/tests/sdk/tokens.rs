//! Token fetch, caching, sharing and renewal.
use crate::fake::{spawn, CLIENT_ID, SECRET};
use muster_client::{Auth, Client, ClientAuthMethod, ClientError, SecretString};
use std::sync::atomic::Ordering;

#[tokio::test]
async fn both_client_authentication_methods_get_a_token_with_an_awkward_secret() {
    let app = spawn(false, 900).await;
    for method in [ClientAuthMethod::Basic, ClientAuthMethod::Post] {
        let t = app.client(method).request_token().await.unwrap();
        assert!(t.access_token.starts_with("mct_"));
        assert_eq!(t.expires_in, 900);
    }
}

#[tokio::test]
async fn a_wrong_secret_is_an_oauth_error_that_does_not_echo_the_secret() {
    let app = spawn(false, 900).await;
    let c = Client::new(
        &app.url,
        Auth::client_credentials(CLIENT_ID, SecretString::from("mcs_wrong-secret")),
    )
    .unwrap();
    let e = c.tenant_list().await.unwrap_err();
    assert!(
        matches!(&e, ClientError::OAuth { error, .. } if error.error == "invalid_client"),
        "{e:?}"
    );
    assert!(e.is_unauthorized());
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains("wrong-secret") && !shown.contains(SECRET),
        "{shown}"
    );
}

#[tokio::test]
async fn a_reusable_token_is_fetched_once_for_concurrent_callers() {
    let app = spawn(false, 900).await;
    let c = app.client(ClientAuthMethod::Basic);
    let calls = (0..16).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.tenant_list().await })
    });
    for r in futures::future::join_all(calls).await {
        r.unwrap().unwrap();
    }
    assert_eq!(app.fake.token_fetches.load(Ordering::SeqCst), 1);
    assert_eq!(app.fake.refusals.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_token_that_lives_less_than_the_margin_is_fetched_for_every_request() {
    let app = spawn(false, 20).await;
    let c = app.client(ClientAuthMethod::Basic);
    for _ in 0..3 {
        c.tenant_list().await.unwrap();
    }
    assert_eq!(app.fake.token_fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_consumed_one_time_token_is_replaced_and_the_request_retried_once() {
    let app = spawn(true, 900).await;
    let c = app.client(ClientAuthMethod::Basic);
    for _ in 0..4 {
        c.tenant_list().await.unwrap();
    }
    // The second request finds its cached token consumed and retries;
    // after that the client knows not to cache one-time tokens.
    assert_eq!(app.fake.refusals.load(Ordering::SeqCst), 1);
    assert_eq!(app.fake.token_fetches.load(Ordering::SeqCst), 4);
    assert_eq!(app.fake.api_requests.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_refused_admin_token_is_not_retried() {
    let app = spawn(false, 900).await;
    let c = Client::new(&app.url, Auth::Bearer(SecretString::from("mat_unknown"))).unwrap();
    let e = c.tenant_list().await.unwrap_err();
    assert_eq!(e.code(), Some("invalid_token"));
    assert_eq!(app.fake.api_requests.load(Ordering::SeqCst), 1);
    assert!(!e.to_string().contains("mat_unknown"));
}

#[tokio::test]
async fn a_token_can_be_revoked() {
    let app = spawn(false, 900).await;
    let c = app.client(ClientAuthMethod::Post);
    let t = c.request_token().await.unwrap();
    c.revoke_token(&t.access_token).await.unwrap();
    assert_eq!(*app.fake.revoked.lock().unwrap(), vec![t.access_token]);

    // Revoking the cached token makes the next request fetch another,
    // without a refused request in between.
    c.tenant_list().await.unwrap();
    let cached = format!("mct_{}", app.fake.token_fetches.load(Ordering::SeqCst));
    c.revoke_token(&cached).await.unwrap();
    c.tenant_list().await.unwrap();
    c.tenant_list().await.unwrap();
    assert_eq!(app.fake.refusals.load(Ordering::SeqCst), 0);
    assert_eq!(app.fake.token_fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn problems_and_foreign_error_pages_are_told_apart() {
    let app = spawn(false, 900).await;
    let c = app.client(ClientAuthMethod::Basic);
    let e = c.person_get("E1").await.unwrap_err();
    assert_eq!(e.code(), Some("person_not_found"));
    assert_eq!(e.status().map(|s| s.as_u16()), Some(404));
    assert_eq!(e.to_string(), "no such person (person_not_found, HTTP 404)");

    let e = c.mapping_list().await.unwrap_err();
    assert!(matches!(e, ClientError::Decode { .. }), "{e:?}");
    assert!(e.to_string().contains("text/html"), "{e}");
}

#[tokio::test]
async fn an_unreachable_gateway_is_a_transport_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let c = Client::new(&url, Auth::Bearer(SecretString::from("mat_x"))).unwrap();
    let e = c.tenant_list().await.unwrap_err();
    assert!(matches!(e, ClientError::Transport(_)), "{e:?}");
    assert!(e.to_string().starts_with("cannot reach the gateway"), "{e}");
}
