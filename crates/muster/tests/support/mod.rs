//! Shared by the whole-system tests (`migrate`, `crash`): the real `muster`
//! binary as a server process on a loopback port, its CLI, plain HTTP to
//! it, and fresh PostgreSQL databases dropped afterwards.
#![allow(dead_code)]

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_muster")
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `muster admin mapping put workday` with the README's example mapping.
pub const PUT_WORKDAY_MAPPING: &[&str] = &[
    "admin",
    "mapping",
    "put",
    "workday",
    "examples/hr/mapping.toml",
];

/// `muster admin client create` arguments for an importer that may write
/// every attribute and grant every role.
pub const IMPORTER: &[&str] = &[
    "--role",
    "importer",
    "--attributes",
    "*",
    "--grant-roles",
    "*",
];

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// How a server process is started: its data directory (shared by
/// instances of one installation), database and extra settings.
#[derive(Clone)]
pub struct Setup {
    pub data: PathBuf,
    /// `None`: the embedded SQLite database in the data directory.
    pub database_url: Option<String>,
    pub env: Vec<(String, String)>,
}

impl Setup {
    /// A command of the binary configured like the server.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(repo())
            .env("MUSTER_DATA_DIR", &self.data)
            .env_remove("MUSTER_ADMIN_TOKEN")
            .env_remove("MUSTER_CLIENT_ID")
            .env_remove("MUSTER_CLIENT_SECRET")
            .env_remove("MUSTER_DATABASE_URL");
        // The tests' own settings are not the gateway's (its configuration
        // refuses unknown MUSTER_ variables).
        for (k, _) in std::env::vars() {
            if k.starts_with("MUSTER_CRASH_") || k.starts_with("MUSTER_TEST_") {
                c.env_remove(k);
            }
        }
        if let Some(u) = &self.database_url {
            c.env("MUSTER_DATABASE_URL", u);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data.join("initial-admin-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// `muster audit verify` straight on the database.
    pub fn audit_verify(&self) -> Output {
        self.cmd(&["audit", "verify"]).output().unwrap()
    }
}

/// A running `muster serve`; killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub url: String,
    pub setup: Setup,
    pub log: PathBuf,
    /// The data directory when the server has one of its own
    /// ([`Server::fresh`]), removed after the process is gone.
    own_data: Option<tempfile::TempDir>,
}

/// True once `/healthz` answers 200.
pub fn healthy(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    if c.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

impl Server {
    /// Starts `muster serve` and waits until it answers; its log goes to
    /// `<data>/serve-<name>.log` (appended across restarts).
    pub fn start(setup: &Setup, name: &str) -> Server {
        let mut s = Server::spawn(setup, name);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !healthy(s.port) {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!(
                    "muster serve exited with {st}: {}",
                    std::fs::read_to_string(&s.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "muster serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// Starts `muster serve` without waiting for it (a server on TLS is
    /// asked whether it is up over TLS, by the test).
    pub fn spawn(setup: &Setup, name: &str) -> Server {
        let port = free_port();
        let log = setup.data.join(format!("serve-{name}.log"));
        std::fs::create_dir_all(&setup.data).unwrap();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = setup
            .cmd(&["serve"])
            .env("MUSTER_LISTEN", format!("127.0.0.1:{port}"))
            .env("MUSTER_LOG_FORMAT", "json")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        Server {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
            setup: setup.clone(),
            log,
            own_data: None,
        }
    }

    /// `muster serve` on a data directory of its own with the embedded
    /// database, and `env` as extra settings; the directory is removed
    /// when the server is dropped.
    pub fn fresh(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup {
            data: dir.path().to_owned(),
            database_url: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let mut s = Server::start(&setup, "fresh");
        s.own_data = Some(dir);
        s
    }

    /// The data directory.
    pub fn data(&self) -> &Path {
        &self.setup.data
    }

    /// Everything the process has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// This process's instance id, from its startup log line (the last
    /// one in the log, which restarts append to).
    pub fn instance(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("this instance's id"))
            .expect("the instance id is logged at startup");
        let v: Value = serde_json::from_str(line).unwrap();
        v["fields"]["instance"]
            .as_str()
            .or_else(|| v["instance"].as_str())
            .expect("the startup line names the instance")
            .to_owned()
    }

    /// A CLI command pointed at this server.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.setup.cmd(args);
        c.env("MUSTER_URL", &self.url);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `muster admin client create --json ...`: (client_id, secret).
    pub fn client(&self, extra: &[&str]) -> (String, String) {
        let mut args = vec!["admin", "client", "create", "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert!(out.status.success(), "{}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["client"]["client_id"].as_str().unwrap().to_owned(),
            v["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    pub fn push(&self, creds: &(String, String), args: &[&str]) -> Output {
        let mut a = vec!["push"];
        a.extend_from_slice(args);
        self.cmd(&a)
            .env("MUSTER_CLIENT_ID", &creds.0)
            .env("MUSTER_CLIENT_SECRET", &creds.1)
            .output()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP request with a bearer token; answers the status and JSON body.
pub fn api(
    rt: &tokio::runtime::Runtime,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    rt.block_on(async {
        let c = reqwest::Client::new();
        let mut req = c.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
}

/// Every person of the tenant, through the paged API, as returned.
pub fn all_people(rt: &tokio::runtime::Runtime, base: &str, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            Some(a) => format!("{base}/api/v1/people?limit=1000&after={a}"),
            None => format!("{base}/api/v1/people?limit=1000"),
        };
        let (status, page) = api(rt, reqwest::Method::GET, &url, token, None);
        assert_eq!(status, 200, "{page}");
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => after = Some(c.to_owned()),
            None => return out,
        }
    }
}

// ---- PostgreSQL ---------------------------------------------------------

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The test server's admin URL, or `None` (after saying so loudly) when it
/// cannot be reached outside CI; under `CI=true` that is a failure.
pub fn pg_server() -> Option<String> {
    let url = std::env::var("MUSTER_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.into());
    match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(_) => Some(url),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL not reachable: {e}")
        }
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "\n**********\nSKIPPED: PostgreSQL not reachable ({e})\n**********"
            );
            None
        }
    }
}

/// A fresh database, dropped with its connections when this is dropped.
pub struct PgDb {
    server: String,
    pub name: String,
}

impl PgDb {
    pub fn create(server: &str) -> PgDb {
        let name = format!("muster_test_{:016x}", rand::random::<u64>());
        let mut c = postgres::Client::connect(server, postgres::NoTls).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        PgDb {
            server: server.to_owned(),
            name,
        }
    }

    /// The URL of this database (the server URL with its name swapped in).
    pub fn url(&self) -> String {
        let base = self
            .server
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&self.server);
        format!("{base}/{}", self.name)
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).unwrap()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let dropped = postgres::Client::connect(&self.server, postgres::NoTls).and_then(|mut c| {
            c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
        });
        if let Err(e) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// A generated Workday-style export (see `muster-gen`).
pub fn gen_file(path: &Path, rows: u64, seed: u64, change_percent: f64) {
    let f = std::fs::File::create(path).unwrap();
    muster_gen::write_export(
        std::io::BufWriter::new(f),
        &muster_gen::GenOptions {
            rows,
            seed,
            change_percent,
        },
    )
    .unwrap();
}
