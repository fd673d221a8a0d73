use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn a_person_is_upserted_read_and_listed() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    let t = app.token(&c).await;
    let put = |body: Value| {
        app.http
            .put(app.url("/api/v1/people/E1"))
            .bearer_auth(&t)
            .header("on-behalf-of", "jane.hr@example.com")
            .json(&body)
            .send()
    };
    let r = put(json!({"attributes": {"given_name": "Ada", "email": "ada@example.com"}, "roles": ["staff"]}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["version"].as_i64()),
        (Some("created"), Some(1))
    );
    let v: Value = put(json!({"attributes": {"given_name": "Ada"}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "unchanged");
    let v: Value = put(json!({"attributes": {"employment_status": "terminated"}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "deactivated");

    let reader = app.create_client(json!({"role": "reader"})).await;
    let rt = app.token(&reader).await;
    let p: Value = app.get_json_as(&rt, "/api/v1/people/E1").await;
    assert_eq!(p["attributes"]["given_name"], "Ada");
    assert_eq!(p["roles"], json!(["staff"]));
    assert_eq!(p["version"], 2);
    assert_eq!(p["on_behalf_of"], "jane.hr@example.com");
    assert_eq!(p["updated_by"], format!("client:{}", c.id));
    let l: Value = app.get_json_as(&rt, "/api/v1/people").await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    // A syncer writes but does not read.
    assert_eq!(
        app.get_as(&t, "/api/v1/people/E1").await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_batch_sync_answers_per_item_and_applies_only_the_good_ones() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    let t = app.token(&c).await;
    let r = app
        .http
        .post(app.url("/api/v1/people/sync"))
        .bearer_auth(&t)
        .json(&json!({"people": [
            {"external_id": "E1", "attributes": {"given_name": "Ada"}},
            {"external_id": "E2", "attributes": {"email": "SECRET-not-an-email"}},
            {"external_id": "E1", "attributes": {"given_name": "Again"}},
            {"external_id": "", "attributes": {}},
            {"external_id": "E3", "attributes": {"shoe_size!": "42"}}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(!text.contains("SECRET"), "an error quoted a value: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let statuses: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["created", "error", "error", "error", "error"]);
    assert_eq!(v["results"][1]["errors"][0]["code"], "invalid_email");
    assert_eq!(v["results"][2]["errors"][0]["code"], "duplicate_key");
}

#[tokio::test]
async fn a_write_outside_the_write_policy_is_refused_naming_attribute_and_client() {
    let app = spawn_app().await;
    let c = app
        .create_client(json!({
            "role": "syncer",
            "client_id": "directory-feed",
            "write_policy": {"attributes": ["given_name", "email"], "roles": ["staff"]}
        }))
        .await;
    let t = app.token(&c).await;
    let r = app
        .http
        .put(app.url("/api/v1/people/E1"))
        .bearer_auth(&t)
        .json(&json!({"attributes": {"given_name": "Ada", "department": "Finance"}, "roles": ["admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    let errs = v["errors"].as_array().unwrap();
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0]["code"], "attribute_not_permitted");
    assert_eq!(errs[0]["attribute"], "department");
    assert!(errs[0]["message"]
        .as_str()
        .unwrap()
        .contains("directory-feed"));
    assert_eq!(errs[1]["code"], "role_not_permitted");
    let r = app.get_as(&app.admin_token, "/api/v1/people/E1").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "nothing may be written");
}

#[tokio::test]
async fn a_bad_json_body_gets_a_clear_error() {
    let app = spawn_app().await;
    let c = app.syncer().await;
    let t = app.token(&c).await;
    for (body, ct) in [
        ("{not json", "application/json"),
        ("{\"attributes\": []}", "application/json"),
        ("{}", "text/plain"),
    ] {
        let r = app
            .http
            .put(app.url("/api/v1/people/E1"))
            .bearer_auth(&t)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{body}: {}", r.status());
        let v: Value = r.json().await.unwrap();
        assert!(v["detail"].as_str().is_some());
    }
}
