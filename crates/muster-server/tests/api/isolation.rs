//! The tenant-isolation matrix: every route of the route table, called with
//! the full administrator of one tenant against the resources of another,
//! answers 403 or 404 and never returns or changes the other's data.
use crate::helpers::*;
use muster_server::openapi::ROUTES;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Texts that appear only in the default tenant's data.
struct Victim {
    client_id: String,
    import_id: String,
    key_id: String,
    subscription_id: String,
    markers: Vec<String>,
}

async fn victim(app: &TestApp) -> Victim {
    let (c, t) = app.hr_setup().await;
    let csv = rows(3).replace(",Name", ",Victimname");
    let v = app.import_csv(&t, &csv).await;
    assert_eq!(v["state"], "succeeded", "{v}");
    let r = app.admin_post("/api/v1/keys", json!({"kind": "age"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let key: Value = r.json().await.unwrap();
    let key_id = key["id"].as_str().unwrap().to_owned();
    let r = app
        .admin_post(
            "/api/v1/subscriptions",
            json!({"url": "http://127.0.0.1:9/victim-hook", "attributes": ["*"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let sub: Value = r.json().await.unwrap();
    let subscription_id = sub["subscription"]["id"].as_str().unwrap().to_owned();
    Victim {
        subscription_id: subscription_id.clone(),
        markers: vec![
            c.id.clone(),
            v["id"].as_str().unwrap().to_owned(),
            key_id.clone(),
            subscription_id,
            "victim-hook".into(),
            "Victimname".into(),
            key["public_key"].as_str().unwrap().to_owned(),
        ],
        client_id: c.id,
        import_id: v["id"].as_str().unwrap().to_owned(),
        key_id,
    }
}

fn concrete(path: &str, v: &Victim) -> String {
    path.replace("{client_id}", &v.client_id)
        .replace(
            "{id}",
            if path.contains("/keys/") {
                &v.key_id
            } else if path.contains("/subscriptions/") {
                &v.subscription_id
            } else {
                &v.import_id
            },
        )
        .replace("{name}", "hr")
        .replace("{external_id}", "E0001")
        .replace("{kind}", "hmac")
}

#[tokio::test]
async fn another_tenants_administrator_gets_403_or_404_on_every_route_and_never_data() {
    let app = spawn_app_with(vec![(
        "MUSTER_WEBHOOKS__ALLOW_PRIVATE_DESTINATIONS",
        "true",
    )])
    .await;
    let v = victim(&app).await;
    let r = app
        .admin_post("/api/v1/tenants", json!({"id": "acme", "name": "Acme"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let acme: Value = r.json().await.unwrap();
    let acme = acme["admin_token"].as_str().unwrap().to_owned();

    let mut checked = 0;
    for route in ROUTES {
        if !route.path.starts_with("/api/v1/") {
            continue;
        }
        let path = concrete(route.path, &v);
        let url = app.url(&path);
        let req = match route.method {
            "get" => app.http.get(&url),
            "post" => app.http.post(&url).json(&json!({})),
            "put" => app.http.put(&url).json(&json!({})),
            "patch" => app.http.patch(&url).json(&json!({"state": "disabled"})),
            "delete" => app.http.delete(&url),
            other => panic!("unexpected method {other}"),
        };
        let r = req.bearer_auth(&acme).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        for m in &v.markers {
            assert!(
                !body.contains(m.as_str()),
                "{} {path} answered {status} with the other tenant's data",
                route.method
            );
        }
        let addresses_a_resource = route.path.contains('{');
        // Mapping names and external ids are per tenant: a PUT creates
        // acme's own, which a GET then finds (the markers prove it is not
        // the other tenant's).
        let own_namespace = route.path.starts_with("/api/v1/mappings/{name}")
            || route.path.starts_with("/api/v1/people/{external_id}");
        if addresses_a_resource && !own_namespace {
            assert!(
                [StatusCode::NOT_FOUND, StatusCode::FORBIDDEN].contains(&status)
                    || (status.is_client_error() && route.method != "get"),
                "{} {path}: {status} {body}",
                route.method
            );
            if route.method == "get" {
                assert!(
                    [StatusCode::NOT_FOUND, StatusCode::FORBIDDEN].contains(&status),
                    "{} {path}: {status}",
                    route.method
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} routes checked");

    // Nothing of the default tenant changed.
    let c: Value = app
        .get_json_as(
            &app.admin_token,
            &format!("/api/v1/clients/{}", v.client_id),
        )
        .await;
    assert_eq!(c["disabled"], false, "{c}");
    let k: Value = app
        .get_json_as(&app.admin_token, &format!("/api/v1/keys/{}", v.key_id))
        .await;
    assert_eq!(k["state"], "active", "{k}");
    let m: Value = app
        .get_json_as(&app.admin_token, "/api/v1/mappings/hr")
        .await;
    assert_eq!(m["version"], 1, "{m}");
    let p = app.person("E0001").await;
    assert_eq!(p.version, 1, "{p:?}");
    assert_eq!(p.attributes["given_name"], "Victimname1");
    let s: Value = app
        .get_json_as(
            &app.admin_token,
            &format!("/api/v1/subscriptions/{}", v.subscription_id),
        )
        .await;
    assert_eq!(s["state"], "active", "{s}");
}
