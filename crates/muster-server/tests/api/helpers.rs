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
    /// Shared by the instances of one gateway (uploads, master key).
    pub dir: Arc<tempfile::TempDir>,
    pub running: Option<Running>,
    /// The PostgreSQL database, when the suite runs on PostgreSQL; last,
    /// so it is dropped after the rest.
    pub db: Option<Arc<TestDb>>,
}

/// Whether this run is against PostgreSQL (`MUSTER_TEST_BACKEND=postgres`)
/// rather than the default SQLite.
pub fn on_postgres() -> bool {
    std::env::var("MUSTER_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// For a test that only means something on SQLite (it reads the database
/// file): says so, loudly, and returns true when running on PostgreSQL.
pub fn skip_on_postgres(test: &str, reason: &str) -> bool {
    if !on_postgres() {
        return false;
    }
    // Straight to the stream: the harness captures eprintln!.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED on PostgreSQL: {test}: {reason}");
    true
}

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh, uniquely named PostgreSQL database, dropped (with whatever
/// connections are still open to it) when this is dropped.
pub struct TestDb {
    server: String,
    pub name: String,
    /// What the gateway is given as `MUSTER_DATABASE_URL`.
    pub url: String,
}

/// The blocking `postgres` client runs a runtime of its own, which must not
/// start inside the test's: its calls run on a thread of their own.
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

impl TestDb {
    pub fn create() -> Self {
        let server = std::env::var("MUSTER_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
        let name = format!("muster_api_{:016x}", rand::random::<u64>());
        off_runtime(|| {
            let mut c = postgres::Client::connect(&server, postgres::NoTls).unwrap_or_else(|e| {
                panic!("MUSTER_TEST_BACKEND=postgres, but PostgreSQL cannot be reached: {e}")
            });
            c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        });
        let url = with_dbname(&server, &name);
        Self { server, name, url }
    }
}

/// `url` with its database name replaced by `name`.
fn with_dbname(url: &str, name: &str) -> String {
    let (head, query) = url
        .split_once('?')
        .map_or((url, None), |(h, q)| (h, Some(q)));
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let base = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl TestDb {
    /// Drops the database now, under a running gateway (it is then gone
    /// for good; the later drop finds nothing to do).
    pub fn destroy(&self) {
        let (server, name) = (&self.server, &self.name);
        off_runtime(|| {
            let mut c = postgres::Client::connect(server, postgres::NoTls).unwrap();
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .unwrap();
        });
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (server, name) = (&self.server, &self.name);
        off_runtime(|| {
            let dropped = postgres::Client::connect(server, postgres::NoTls).and_then(|mut c| {
                c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            });
            if let Err(e) = dropped {
                eprintln!("could not drop the test database {name}: {e}");
            }
        });
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Vec::new()).await
}

pub async fn spawn_app_with(extra_env: Vec<(&str, &str)>) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let db = on_postgres().then(|| Arc::new(TestDb::create()));
    start(dir, db, extra_env, None).await
}

/// The environment that points a gateway at this app's data directory and
/// database (for a second instance, or a restart).
pub fn env_of(dir: &tempfile::TempDir, db: Option<&TestDb>) -> Vec<(String, String)> {
    let mut env = vec![(
        "MUSTER_DATA_DIR".to_string(),
        dir.path().display().to_string(),
    )];
    if let Some(db) = db {
        env.push(("MUSTER_DATABASE_URL".to_string(), db.url.clone()));
    }
    env
}

/// `MUSTER_TEST_LOG=<filter>` (an `EnvFilter` directive: `info`,
/// `muster_server=debug`, ...) shows the gateways' logs in a test run. They
/// go to the harness's captured output: a failing test prints them, and
/// `-- --nocapture` shows them for every test.
fn show_logs() {
    if let Ok(filter) = std::env::var("MUSTER_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

async fn start(
    dir: Arc<tempfile::TempDir>,
    db: Option<Arc<TestDb>>,
    extra_env: Vec<(&str, &str)>,
    clock: Option<ManualClock>,
) -> TestApp {
    show_logs();
    let mut env = env_of(&dir, db.as_deref());
    // Tests move the clock on by days; the initial admin token they all
    // use must outlive that (admin_tokens.rs tests its own lifetime).
    env.push((
        "MUSTER_TOKENS__INITIAL_ADMIN_TTL_SECONDS".to_string(),
        "31536000".to_string(),
    ));
    env.extend(
        extra_env
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let config = Config::load_from(None, env).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let clock = clock.unwrap_or_else(|| ManualClock::new(Utc::now()));
    let running = muster_server::spawn(config, listener, Arc::new(clock.clone()))
        .await
        .unwrap();
    let base = running.local_url();
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
        db,
    }
}

impl TestApp {
    /// Another gateway instance on the same database and data directory
    /// (the upload spool and master key are shared, as they must be), on a
    /// port of its own, with the same clock.
    pub async fn spawn_peer(&self, extra_env: Vec<(&str, &str)>) -> TestApp {
        start(
            self.dir.clone(),
            self.db.clone(),
            extra_env,
            Some(self.clock.clone()),
        )
        .await
    }
}

pub struct Client {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    /// The injected clock's time.
    pub fn clock_now(&self) -> chrono::DateTime<Utc> {
        use muster_core::clock::Clock;
        self.clock.now()
    }

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

    /// The JSON body of an unauthenticated `GET path`, whatever its status.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The JSON body of `GET path` with `token`, whatever its status.
    pub async fn get_json_as<T: serde::de::DeserializeOwned>(&self, token: &str, path: &str) -> T {
        self.get_as(token, path).await.json().await.unwrap()
    }

    /// The typed SDK, presenting `token` (an admin token or an access token).
    pub fn client_as(&self, token: &str) -> muster_client::Client {
        muster_client::Client::new(
            &self.base,
            muster_client::Auth::Bearer(token.to_owned().into()),
        )
        .unwrap()
    }

    /// The typed SDK with the initial admin token.
    pub fn admin_client(&self) -> muster_client::Client {
        self.client_as(&self.admin_token)
    }

    /// Checks that the default tenant's audit chain verifies, through the
    /// SDK; returns what the gateway answered.
    pub async fn assert_chain_verifies(&self) -> muster_proto::AuditVerification {
        let v = self.admin_client().audit_verify().await.unwrap();
        assert!(v.ok, "{v:?}");
        v
    }

    /// A person as the SDK reads it, with the initial admin token.
    pub async fn person(&self, id: &str) -> muster_proto::PersonInfo {
        self.admin_client().person_get(id).await.unwrap()
    }

    /// `PUT /api/v1/people/{id}` with `body`, which must succeed.
    pub async fn put_person(&self, token: &str, id: &str, body: Value) {
        let r = self
            .http
            .put(self.url(&format!("/api/v1/people/{id}")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
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

    /// [`Self::import_csv`], read into the SDK's type.
    pub async fn import_csv_info(&self, token: &str, csv: &str) -> muster_proto::ImportInfo {
        serde_json::from_value(self.import_csv(token, csv).await).unwrap()
    }

    /// [`Self::wait_import`], read into the SDK's type.
    pub async fn wait_import_info(&self, token: &str, id: &str) -> muster_proto::ImportInfo {
        serde_json::from_value(self.wait_import(token, id).await).unwrap()
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

/// The Python of the repository's virtualenv (`.tools/venv`, made by
/// `scripts/install-test-tools`), when it can import `modules` (a Python
/// import list). Under CI=true a missing module fails `test`; elsewhere
/// `test` is skipped, loudly.
pub fn venv_python(test: &str, modules: &str) -> Option<std::path::PathBuf> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".tools/venv/bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true: {test} needs {modules} in .tools/venv; scripts/install-test-tools installs them");
    }
    eprintln!("SKIPPED {test}: no {modules} in .tools/venv (run scripts/install-test-tools)");
    None
}
