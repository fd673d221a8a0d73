use chrono::Utc;
use muster_core::clock::ManualClock;
use muster_server::config::Config;
use muster_server::Running;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub const MAPPING: &str = r#"
key = "Employee ID"
max_error_rate = 0.7

[attributes.given_name]
column = "First Name"
transforms = ["trim"]
required = true

[attributes.family_name]
column = "Last Name"
transforms = ["trim"]

[attributes.email]
column = "Work Email"
transforms = ["trim", "lower"]

[attributes.department]
column = "Department"
transforms = ["trim"]

[attributes.employment_status]
column = "Worker Status"
transforms = ["trim", "upper"]
values = { A = "active", L = "leave", T = "terminated" }
default = "active"

[attributes.hire_date]
column = "Hire Date"
date_format = "%m/%d/%Y"
"#;

pub const HEADER: &str =
    "Employee ID,First Name,Last Name,Work Email,Department,Worker Status,Hire Date";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    pub running: Option<Running>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Vec::new()).await
}

pub async fn spawn_app_with(extra_env: Vec<(&str, &str)>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![(
        "MUSTER_DATA_DIR".to_string(),
        dir.path().display().to_string(),
    )];
    env.extend(
        extra_env
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let config = Config::load_from(None, env).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let clock = ManualClock::new(Utc::now());
    let running = muster_server::spawn(config, listener, Arc::new(clock.clone()))
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let token_path = dir.path().join("initial-admin-token");
    let admin_token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the initial admin token must be private"
        );
    }
    TestApp {
        base,
        http: reqwest::Client::new(),
        admin_token,
        clock,
        dir,
        running: Some(running),
    }
}

pub struct Client {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn create_client(&self, body: Value) -> Client {
        let r = self.admin_post("/api/v1/clients", body).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        let v: Value = r.json().await.unwrap();
        Client {
            id: v["client"]["client_id"].as_str().unwrap().to_owned(),
            secret: v["client_secret"].as_str().unwrap().to_owned(),
        }
    }

    /// A syncer that may write everything.
    pub async fn syncer(&self) -> Client {
        self.create_client(json!({
            "role": "syncer",
            "write_policy": {"attributes": ["*"], "roles": ["*"]}
        }))
        .await
    }

    pub async fn token_response(&self, c: &Client, scope: Option<&str>) -> reqwest::Response {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.http
            .post(self.url("/oauth2/token"))
            .basic_auth(&c.id, Some(&c.secret))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    pub async fn token(&self, c: &Client) -> String {
        let r = self.token_response(c, None).await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn put_mapping(&self, name: &str, toml: &str) -> reqwest::Response {
        self.http
            .put(self.url(&format!("/api/v1/mappings/{name}")))
            .bearer_auth(&self.admin_token)
            .header("content-type", "application/toml")
            .body(toml.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub async fn upload(
        &self,
        token: &str,
        query: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/api/v1/imports?{query}")))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Uploads a CSV with the test mapping and waits for its end.
    pub async fn import_csv(&self, token: &str, csv: &str) -> Value {
        let r = self
            .upload(token, "mapping=hr&wait=30", "text/csv", csv.to_owned())
            .await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{status} {v}");
        self.wait_import(token, v["id"].as_str().unwrap()).await
    }

    pub async fn wait_import(&self, token: &str, id: &str) -> Value {
        for _ in 0..600 {
            let v: Value = self
                .get_as(token, &format!("/api/v1/imports/{id}"))
                .await
                .json()
                .await
                .unwrap();
            let s = v["state"].as_str().unwrap().to_owned();
            if ["succeeded", "succeeded_with_errors", "failed", "rejected"].contains(&s.as_str()) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("import {id} did not finish");
    }

    pub async fn errors(&self, token: &str, id: &str) -> Vec<Value> {
        let v: Value = self
            .get_as(token, &format!("/api/v1/imports/{id}/errors?limit=1000"))
            .await
            .json()
            .await
            .unwrap();
        v["items"].as_array().unwrap().clone()
    }

    pub async fn audit_count(&self) -> usize {
        let v: Value = self
            .get_as(&self.admin_token, "/api/v1/audit?limit=1000")
            .await
            .json()
            .await
            .unwrap();
        v["items"].as_array().unwrap().len()
    }

    /// The standard setup: the `hr` mapping and a syncer's token.
    pub async fn hr_setup(&self) -> (Client, String) {
        let r = self.put_mapping("hr", MAPPING).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
        let c = self.syncer().await;
        let t = self.token(&c).await;
        (c, t)
    }
}

pub fn rows(n: usize) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for i in 1..=n {
        s.push_str(&format!(
            "E{i:04},Name{i},Family{i},name{i}@example.com,Dept{},A,01/15/2020\n",
            i % 5
        ));
    }
    s
}
