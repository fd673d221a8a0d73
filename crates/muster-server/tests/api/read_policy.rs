//! Read policies (docs/people.md#read-policies) on every door a client
//! reads people by, and nodes that manage their own subscription
//! (docs/events.md#nodes-that-manage-their-own-subscription), against a
//! local receiver on a loopback port.
use crate::helpers::*;
use crate::support::receiver::{receiver, subscribe};
use crate::webhooks::app;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn attribute_names(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    names.sort();
    names
}

fn change_names(event: &Value) -> Vec<String> {
    let mut names: Vec<String> = event["data"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["attribute"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_read_policy_limits_person_reads_and_the_change_feed() {
    let app = app().await;
    let narrow = app
        .create_client(json!({
            "role": "reader",
            "read_policy": {
                "attributes": ["given_name", "department"],
                "events": ["person.created", "person.updated"]
            }
        }))
        .await;
    let wide = app.create_client(json!({"role": "reader"})).await;
    let (nt, wt) = (app.token(&narrow).await, app.token(&wide).await);
    let writer = app.syncer().await;
    let t = app.token(&writer).await;
    app.put_person(
        &t,
        "E1",
        json!({
            "attributes": {"given_name": "Ada", "department": "R&D", "termination_date": "2027-01-31"},
            "roles": ["staff"]
        }),
    )
    .await;
    // A change of an attribute the reader may not see, and of one it may.
    app.put_person(
        &t,
        "E1",
        json!({"attributes": {"termination_date": "2027-02-28"}}),
    )
    .await;
    app.put_person(&t, "E1", json!({"attributes": {"department": "Ops"}}))
        .await;

    let (s, one) = send(&app, reqwest::Method::GET, &nt, "/api/v1/people/E1", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        attribute_names(&one["attributes"]),
        ["department", "given_name"]
    );
    assert_eq!(one["roles"], json!([]));
    let (_, page) = send(&app, reqwest::Method::GET, &nt, "/api/v1/people", None).await;
    assert_eq!(
        attribute_names(&page["items"][0]["attributes"]),
        ["department", "given_name"]
    );
    let (_, all) = send(&app, reqwest::Method::GET, &wt, "/api/v1/people/E1", None).await;
    assert!(all["attributes"]["termination_date"].is_string());
    assert_eq!(all["roles"], json!(["staff"]));

    // The feed: the creation without termination_date, no roles.changed,
    // no event for the termination_date-only change, the department
    // change; the cursor moves past everything.
    let (_, feed) = send(&app, reqwest::Method::GET, &nt, "/api/v1/changes", None).await;
    let (_, full) = send(&app, reqwest::Method::GET, &wt, "/api/v1/changes", None).await;
    let items = feed["items"].as_array().unwrap();
    assert_eq!(full["items"].as_array().unwrap().len(), 4, "{full}");
    assert_eq!(items.len(), 2, "{feed}");
    assert_eq!(items[0]["type"], "person.created");
    assert_eq!(change_names(&items[0]), ["department", "given_name"]);
    assert_eq!(items[1]["type"], "person.updated");
    assert_eq!(change_names(&items[1]), ["department"]);
    assert_eq!(feed["next_cursor"], full["next_cursor"]);
    let body = feed.to_string();
    assert!(!body.contains("2027-0") && !body.contains("staff"));

    // Shown and changed by an administrator, checked, audited.
    let admin = app.admin_token.clone();
    let path = format!("/api/v1/clients/{}/read-policy", narrow.id);
    let (s, got) = send(&app, reqwest::Method::GET, &admin, &path, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["attributes"], json!(["given_name", "department"]));
    for (bad, code, names) in [
        (
            json!({"attributes": ["given name"]}),
            "invalid_read_policy",
            "'given name'",
        ),
        (
            json!({"attributes": []}),
            "invalid_read_policy",
            "attributes",
        ),
        (
            json!({"attributes": ["*"], "events": ["person.moved"]}),
            "invalid_read_policy",
            "'person.moved'",
        ),
    ] {
        let (s, p) = send(&app, reqwest::Method::PUT, &admin, &path, Some(bad)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
        assert_eq!(p["code"], code);
        assert!(p["detail"].as_str().unwrap().contains(names), "{p}");
    }
    let (s, _) = send(
        &app,
        reqwest::Method::PUT,
        &admin,
        &path,
        Some(json!({"attributes": ["roles"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, one) = send(&app, reqwest::Method::GET, &nt, "/api/v1/people/E1", None).await;
    assert_eq!(one["attributes"], json!({}));
    assert_eq!(one["roles"], json!(["staff"]));
    let (_, feed) = send(&app, reqwest::Method::GET, &nt, "/api/v1/changes", None).await;
    let items = feed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{feed}");
    assert_eq!(items[0]["type"], "roles.changed");
    // A reader may not change its own policy.
    let (s, _) = send(
        &app,
        reqwest::Method::PUT,
        &nt,
        &path,
        Some(json!({"attributes": ["*"]})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, audit) = send(
        &app,
        reqwest::Method::GET,
        &admin,
        "/api/v1/audit?limit=1000",
        None,
    )
    .await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "client.read_policy_set"
                && e["detail"]["attributes"] == json!(["roles"])),
        "{audit}"
    );
    app.assert_chain_verifies().await;
}

#[tokio::test]
async fn a_node_manages_only_its_own_subscription_within_its_read_policy() {
    let app = app().await;
    let node = app
        .create_client(json!({
            "role": "node",
            "read_policy": {"attributes": ["given_name", "department"]}
        }))
        .await;
    let nt = app.token(&node).await;
    let (url, rx) = receiver(vec![], 200).await;
    let (admin_url, admin_rx) = receiver(vec![], 200).await;
    let (admins, _) = subscribe(&app, json!({"url": admin_url, "attributes": ["*"]})).await;
    let post = |body: Value| {
        let (app, nt) = (&app, nt.clone());
        async move {
            send(
                app,
                reqwest::Method::POST,
                &nt,
                "/api/v1/subscriptions",
                Some(body),
            )
            .await
        }
    };

    // Outside its read policy: refused, naming what is outside.
    let (s, p) = post(json!({"url": url, "attributes": ["given_name", "termination_date"]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["code"], "outside_read_policy");
    assert!(
        p["detail"].as_str().unwrap().contains("'termination_date'"),
        "{p}"
    );
    let (s, created) = post(json!({"url": url, "attributes": ["*"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let own = created["subscription"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["subscription"]["owner"], node.id.as_str());

    // It sees, changes and deletes only its own.
    let (_, list) = send(
        &app,
        reqwest::Method::GET,
        &nt,
        "/api/v1/subscriptions",
        None,
    )
    .await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [own.as_str()]);
    let (_, all) = send(
        &app,
        reqwest::Method::GET,
        &app.admin_token,
        "/api/v1/subscriptions",
        None,
    )
    .await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let theirs = format!("/api/v1/subscriptions/{admins}");
    for (m, path, body) in [
        (reqwest::Method::GET, theirs.clone(), None),
        (
            reqwest::Method::PATCH,
            theirs.clone(),
            Some(json!({"state": "disabled"})),
        ),
        (reqwest::Method::GET, format!("{theirs}/deliveries"), None),
        (
            reqwest::Method::POST,
            format!("{theirs}/rotate-secret"),
            Some(json!({})),
        ),
        (reqwest::Method::DELETE, theirs.clone(), None),
    ] {
        let (s, _) = send(&app, m.clone(), &nt, &path, body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {path}");
    }
    let mine = format!("/api/v1/subscriptions/{own}");
    let (s, p) = send(
        &app,
        reqwest::Method::PATCH,
        &nt,
        &mine,
        Some(json!({"attributes": ["employment_status"]})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(p["code"], "outside_read_policy");

    // Deliveries carry only what its policy allows, and follow the policy
    // when an administrator narrows it.
    let t = app.token(&app.syncer().await).await;
    app.put_person(
        &t,
        "E1",
        json!({"attributes": {"given_name": "Ada", "department": "R&D", "termination_date": "2027-01-31"}}),
    )
    .await;
    wait_for(|| !rx.delivered().is_empty()).await;
    assert_eq!(
        change_names(&rx.delivered()[0].1),
        ["department", "given_name"]
    );
    let (s, _) = send(
        &app,
        reqwest::Method::PUT,
        &app.admin_token,
        &format!("/api/v1/clients/{}/read-policy", node.id),
        Some(json!({"attributes": ["department"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    app.put_person(
        &t,
        "E1",
        json!({"attributes": {"given_name": "Ada L.", "department": "Ops"}}),
    )
    .await;
    wait_for(|| rx.delivered().len() >= 2).await;
    let second = &rx.delivered()[1].1;
    assert_eq!(change_names(second), ["department"]);
    assert!(!second.to_string().contains("Ada"));

    // While the node is disabled its subscription holds its place: the
    // administrators' subscription gets the change, the node's nothing,
    // until the node is enabled again.
    let before = admin_rx.delivered().len();
    let (s, _) = send(
        &app,
        reqwest::Method::POST,
        &app.admin_token,
        &format!("/api/v1/clients/{}/disable", node.id),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    app.put_person(&t, "E1", json!({"attributes": {"department": "Sales"}}))
        .await;
    wait_for(|| admin_rx.delivered().len() > before).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.delivered().len(),
        2,
        "a disabled node's subscription sent"
    );
    let (s, _) = send(
        &app,
        reqwest::Method::POST,
        &app.admin_token,
        &format!("/api/v1/clients/{}/enable", node.id),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    wait_for(|| rx.delivered().len() >= 3).await;
    assert!(rx.delivered()[2].1.to_string().contains("Sales"));
    // Disabling revoked the node's tokens: it asks for a new one.
    let (s, _) = send(&app, reqwest::Method::GET, &nt, &mine, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let nt = app.token(&node).await;

    // A reader without subscriptions:own may not make one; the node
    // deletes its own.
    let reader = app.create_client(json!({"role": "reader"})).await;
    let rt = app.token(&reader).await;
    let (s, p) = send(
        &app,
        reqwest::Method::POST,
        &rt,
        "/api/v1/subscriptions",
        Some(json!({"url": url, "attributes": ["*"]})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{p}");
    let (s, _) = send(&app, reqwest::Method::DELETE, &nt, &mine, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, all) = send(
        &app,
        reqwest::Method::GET,
        &app.admin_token,
        "/api/v1/subscriptions",
        None,
    )
    .await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    app.assert_chain_verifies().await;
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the condition was not met in time");
}
