use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_client_secret_is_shown_once_and_stored_only_as_a_digest() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    assert!(c.secret.starts_with("mcs_") && c.secret.len() >= 47);
    let listed = app
        .get_as(&app.admin_token, "/api/v1/clients")
        .await
        .text()
        .await
        .unwrap();
    assert!(listed.contains(&c.id));
    assert!(!listed.contains(&c.secret));
    if skip_on_postgres(
        "a_client_secret_is_shown_once_and_stored_only_as_a_digest (at-rest part)",
        "it reads the SQLite file",
    ) {
        return;
    }
    let db = std::fs::read(app.dir.path().join("muster.db")).unwrap();
    let wal = std::fs::read(app.dir.path().join("muster.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes
            .windows(c.secret.len())
            .any(|w| w == c.secret.as_bytes()));
    }
}

#[tokio::test]
async fn clients_are_validated_with_errors_that_name_the_field() {
    let app = spawn_app().await;
    let r = app
        .admin_post("/api/v1/clients", json!({"role": "wizard"}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().starts_with("role"));
    let r = app
        .admin_post(
            "/api/v1/clients",
            json!({"role": "syncer", "colour": "red"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .admin_post(
            "/api/v1/clients",
            json!({"role": "syncer", "write_policy": {"attributes": ["Not An Attribute"]}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    app.create_client(json!({"role": "syncer", "client_id": "hr-feed"}))
        .await;
    let r = app
        .admin_post(
            "/api/v1/clients",
            json!({"role": "syncer", "client_id": "hr-feed"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn mappings_are_versioned_and_invalid_ones_are_refused() {
    let app = spawn_app().await;
    let r = app.put_mapping("hr", MAPPING).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.put_mapping("hr", MAPPING).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["version"], 2);
    let v: Value = app
        .get_json_as(&app.admin_token, "/api/v1/mappings/hr/versions")
        .await;
    assert_eq!(v.as_array().unwrap().len(), 2);
    let r = app
        .put_mapping(
            "bad",
            "key = \"ID\"\n[attributes.shoe_size]\ncolumn = \"S\"\n",
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().contains("shoe_size"), "{v}");
}

#[tokio::test]
async fn a_new_tenant_gets_its_own_admin_and_sees_nothing_of_the_default_tenant() {
    let app = spawn_app().await;
    let (_, t) = app.hr_setup().await;
    app.import_csv(&t, &rows(3)).await;
    let r = app
        .admin_post("/api/v1/tenants", json!({"id": "acme"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    let acme = v["admin_token"].as_str().unwrap().to_owned();
    for path in [
        "/api/v1/people/E0001",
        "/api/v1/mappings/hr",
        "/api/v1/clients/nobody",
    ] {
        let r = app.get_as(&acme, path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let v: Value = app.get_json_as(&acme, "/api/v1/people").await;
    assert!(v["items"].as_array().unwrap().is_empty());
    let v: Value = app.get_json_as(&acme, "/api/v1/imports").await;
    assert!(v["items"].as_array().unwrap().is_empty());
    // A tenant admin cannot create tenants.
    let r = app
        .http
        .post(app.url("/api/v1/tenants"))
        .bearer_auth(&acme)
        .json(&json!({"id": "evil"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn unknown_routes_and_missing_credentials_get_problem_documents() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(app.url("/api/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = app
        .http
        .get(app.url("/api/v1/people"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "invalid_token");
}

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let app = spawn_app().await;
    let v: Value = app.get_json("/openapi.json").await;
    let paths = v["paths"].as_object().unwrap();
    for (path, method) in [
        ("/oauth2/token", "post"),
        ("/oauth2/revoke", "post"),
        ("/.well-known/oauth-authorization-server", "get"),
        ("/api/v1/tenants", "post"),
        ("/api/v1/tenants", "get"),
        ("/api/v1/clients", "post"),
        ("/api/v1/clients", "get"),
        ("/api/v1/clients/{client_id}", "get"),
        ("/api/v1/clients/{client_id}/disable", "post"),
        ("/api/v1/clients/{client_id}/enable", "post"),
        ("/api/v1/clients/{client_id}/rotate-secret", "post"),
        ("/api/v1/mappings", "get"),
        ("/api/v1/mappings/{name}", "put"),
        ("/api/v1/mappings/{name}", "get"),
        ("/api/v1/mappings/{name}/versions", "get"),
        ("/api/v1/imports", "post"),
        ("/api/v1/imports", "get"),
        ("/api/v1/imports/{id}", "get"),
        ("/api/v1/imports/{id}/errors", "get"),
        ("/api/v1/imports/{id}/events", "get"),
        ("/api/v1/people", "get"),
        ("/api/v1/people/sync", "post"),
        ("/api/v1/people/{external_id}", "put"),
        ("/api/v1/people/{external_id}", "get"),
        ("/api/v1/audit", "get"),
        ("/api/v1/audit/verify", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is missing from /openapi.json"
        );
    }
}

#[tokio::test]
async fn query_parameters_that_do_not_parse_are_problems_naming_the_parameter() {
    let app = crate::webhooks::app().await;
    let r = app
        .admin_post(
            "/api/v1/subscriptions",
            json!({"url": "http://127.0.0.1:9/h", "attributes": ["*"]}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let sub = v["subscription"]["id"].as_str().unwrap().to_owned();
    for (path, names) in [
        ("/api/v1/people?limit=lots".to_owned(), "limit"),
        ("/api/v1/audit?after=yesterday".to_owned(), "after"),
        (
            format!("/api/v1/subscriptions/{sub}/deliveries?limit=-1"),
            "limit",
        ),
        (
            format!("/api/v1/subscriptions/{sub}/deliveries?since=1"),
            "since",
        ),
        ("/api/v1/changes?wait=forever".to_owned(), "wait"),
    ] {
        let r = app.get_as(&app.admin_token, &path).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/problem+json",
            "{path}"
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "invalid_parameter", "{path}: {v}");
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.contains(names), "{path}: {detail}");
        for value in ["lots", "yesterday", "forever"] {
            assert!(
                !detail.contains(value),
                "the value is not repeated: {detail}"
            );
        }
    }
    let r = app
        .admin_post(
            &format!("/api/v1/subscriptions/{sub}/reconcile?dry_run=maybe"),
            json!(null),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().contains("dry_run"), "{v}");
}
