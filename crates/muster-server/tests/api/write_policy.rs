//! One write-policy test set over every write path (docs/people.md#the-write-policy): CSV import,
//! JSON-lines import, `PUT /api/v1/people/{id}`, `POST /api/v1/people/sync`
//! and `POST /api/v1/login-sync`. For each, the same three records: one
//! the policy allows, one writing an attribute outside it (`department`),
//! one granting a role outside it (`admin`). The refused ones are errors
//! naming the attribute or role and the writer, nothing of them is applied
//! or audited; the allowed one is applied.
use crate::helpers::*;
use crate::login_sync::{claims, issuer, login, sign};
use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// What a path answered for one record: `Ok` or its errors
/// (code, attribute, message).
type Outcome = Result<(), Vec<(String, String, String)>>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Case {
    Allowed,
    ForbiddenAttribute,
    ForbiddenRole,
}

const CASES: [(Case, &str); 3] = [
    (Case::Allowed, "W1"),
    (Case::ForbiddenAttribute, "W2"),
    (Case::ForbiddenRole, "W3"),
];

fn errors_of(v: &Value) -> Vec<(String, String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap_or_default().to_owned(),
                e["attribute"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

const MAPPING: &str = r#"
key = "id"
max_error_rate = 1.0

[attributes.given_name]
column = "first"

[attributes.roles]
column = "roles"
split = ";"
"#;

/// The same, also writing the department (outside the policy).
const MAPPING_DEPT: &str = r#"
key = "id"
max_error_rate = 1.0

[attributes.given_name]
column = "first"

[attributes.department]
column = "dept"

[attributes.roles]
column = "roles"
split = ";"
"#;

fn roles_of(case: Case) -> &'static str {
    if case == Case::ForbiddenRole {
        "staff;admin"
    } else {
        "staff"
    }
}

/// Files: a mapping names its columns for every row, so the record that
/// writes the department goes in its own upload (with the mapping that
/// has the column); each upload's row errors belong to its one record.
async fn via_file(app: &TestApp, token: &str, jsonl: bool) -> Vec<Outcome> {
    let mut out = Vec::new();
    for (case, id) in CASES {
        let mapping = if case == Case::ForbiddenAttribute {
            "wp_dept"
        } else {
            "wp"
        };
        let (body, ct, fmt) = if jsonl {
            let mut rec = json!({"id": id, "first": "Ann", "roles": roles_of(case)});
            if case == Case::ForbiddenAttribute {
                rec["dept"] = json!("R&D");
            }
            (format!("{rec}\n"), "application/x-ndjson", "jsonl")
        } else if case == Case::ForbiddenAttribute {
            (
                format!("id,first,dept,roles\n{id},Ann,R&D,{}\n", roles_of(case)),
                "text/csv",
                "csv",
            )
        } else {
            (
                format!("id,first,roles\n{id},Ann,{}\n", roles_of(case)),
                "text/csv",
                "csv",
            )
        };
        let r = app
            .upload(
                token,
                &format!("mapping={mapping}&format={fmt}&wait=30"),
                ct,
                body,
            )
            .await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        let imp = app.wait_import(token, v["id"].as_str().unwrap()).await;
        let errors = app.errors(token, imp["id"].as_str().unwrap()).await;
        out.push(if errors.is_empty() {
            Ok(())
        } else {
            Err(errors_of(&Value::Array(errors)))
        });
    }
    out
}

fn api_body(case: Case) -> Value {
    let mut attrs = json!({"given_name": "Ann"});
    if case == Case::ForbiddenAttribute {
        attrs["department"] = json!("R&D");
    }
    json!({"attributes": attrs, "roles": roles_of(case).split(';').collect::<Vec<_>>()})
}

async fn via_put(app: &TestApp, token: &str) -> Vec<Outcome> {
    let mut out = Vec::new();
    for (case, id) in CASES {
        let r = app
            .http
            .put(app.url(&format!("/api/v1/people/{id}")))
            .bearer_auth(token)
            .json(&api_body(case))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        out.push(if status.is_success() {
            Ok(())
        } else {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
            Err(errors_of(&v["errors"]))
        });
    }
    out
}

async fn via_sync(app: &TestApp, token: &str) -> Vec<Outcome> {
    let items: Vec<Value> = CASES
        .iter()
        .map(|(case, id)| {
            let mut b = api_body(*case);
            b["external_id"] = json!(id);
            b
        })
        .collect();
    let r = app
        .http
        .post(app.url("/api/v1/people/sync"))
        .bearer_auth(token)
        .json(&json!({ "people": items }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    let results = v["results"].as_array().or(v.as_array()).unwrap().clone();
    results
        .iter()
        .map(|r| {
            if r["status"] == "error" {
                Err(errors_of(&r["errors"]))
            } else {
                Ok(())
            }
        })
        .collect()
}

async fn via_login_sync(app: &TestApp) -> Vec<Outcome> {
    issuer(app, json!({})).await;
    let mut out = Vec::new();
    for (case, id) in CASES {
        let mut c = claims(app, id);
        match case {
            Case::Allowed => c["groups"] = json!(["staff"]),
            Case::ForbiddenAttribute => c["department"] = json!("R&D"),
            Case::ForbiddenRole => c["groups"] = json!(["staff", "admin"]),
        }
        let r = login(app, &sign(Algorithm::RS256, &c)).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        out.push(if status.is_success() {
            Ok(())
        } else {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
            Err(errors_of(&v["errors"]))
        });
    }
    out
}

#[tokio::test]
async fn every_write_path_applies_the_same_write_policy() {
    for path in ["csv", "jsonl", "put", "sync", "login-sync"] {
        let app = spawn_app().await;
        for (name, doc) in [("wp", MAPPING), ("wp_dept", MAPPING_DEPT)] {
            let r = app.put_mapping(name, doc).await;
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
        let c = app
            .create_client(json!({
                "role": "syncer",
                "write_policy": {"attributes": ["given_name"], "roles": ["staff"]}
            }))
            .await;
        let t = app.token(&c).await;
        let audit_before = app.audit_count().await;
        let (outcomes, writer) = match path {
            "csv" => (via_file(&app, &t, false).await, c.id.clone()),
            "jsonl" => (via_file(&app, &t, true).await, c.id.clone()),
            "put" => (via_put(&app, &t).await, c.id.clone()),
            "sync" => (via_sync(&app, &t).await, c.id.clone()),
            _ => (via_login_sync(&app).await, "issuer:okta".to_owned()),
        };
        assert_eq!(outcomes.len(), CASES.len(), "{path}");
        for ((case, id), outcome) in CASES.iter().zip(&outcomes) {
            let person = app
                .get_as(&app.admin_token, &format!("/api/v1/people/{id}"))
                .await;
            match case {
                Case::Allowed => {
                    assert_eq!(outcome, &Ok(()), "{path} {id}");
                    assert_eq!(person.status(), StatusCode::OK, "{path}: applied");
                    let p: Value = person.json().await.unwrap();
                    assert_eq!(p["roles"], json!(["staff"]), "{path}");
                }
                Case::ForbiddenAttribute | Case::ForbiddenRole => {
                    let errors = outcome.as_ref().expect_err(path);
                    let (code, attribute, wanted) = if *case == Case::ForbiddenAttribute {
                        ("attribute_not_permitted", "department", "'department'")
                    } else {
                        ("role_not_permitted", "roles", "'admin'")
                    };
                    assert_eq!(errors.len(), 1, "{path} {id}: {errors:?}");
                    let (c2, a2, msg) = &errors[0];
                    assert_eq!((c2.as_str(), a2.as_str()), (code, attribute), "{path}");
                    assert!(
                        msg.contains(wanted) && msg.contains(&format!("'{writer}'")),
                        "{path}: the error names the {attribute} and the writer: {msg}"
                    );
                    assert!(!msg.contains("R&D"), "{path}: never the value");
                    assert_eq!(
                        person.status(),
                        StatusCode::NOT_FOUND,
                        "{path} {id}: nothing applied"
                    );
                }
            }
        }
        // Audit: the allowed person's change (and the set-up's entries),
        // nothing about the refused ones.
        let audit: Value = app
            .get_json_as(&app.admin_token, "/api/v1/audit?limit=1000")
            .await;
        let items = audit["items"].as_array().unwrap();
        assert!(items.len() > audit_before, "{path}");
        for (_, id) in &CASES[1..] {
            assert!(
                !items.iter().any(|e| e["person"] == json!(id)),
                "{path}: no audit entry for the refused {id}"
            );
        }
        assert!(items.iter().any(|e| e["person"] == json!("W1")), "{path}");
    }
}
