//! A real SCIM 2.0 service provider for the provisioning tests:
//! scim2-server (the python-scim reference server, from `.tools/venv`),
//! started on a loopback port and stopped by its PID, and a proxy in
//! front of it that answers from a script (429 with `Retry-After`, 500,
//! 503) for the requests it is told to, passing the rest on.
//!
//! scim2-server keeps its resources in memory only: a restart empties it.
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode as AxStatus, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const TOKEN: &str = "peer-token";

pub struct ScimPeer {
    child: Option<Child>,
    pub port: u16,
    python: std::path::PathBuf,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ScimPeer {
    /// Started, or `None` (a loud skip; under CI=true a failure) when the
    /// virtualenv lacks scim2-server.
    pub async fn start(test: &str) -> Option<ScimPeer> {
        let python = crate::helpers::venv_python(test, "scim2_server")?;
        let mut p = ScimPeer {
            child: None,
            port: free_port(),
            python,
            http: reqwest::Client::new(),
        };
        p.spawn().await;
        Some(p)
    }

    async fn spawn(&mut self) {
        let bin = self.python.with_file_name("scim2-server");
        let child = Command::new(bin)
            .args(["--hostname", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--bearer-token", TOKEN])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("scim2-server starts");
        self.child = Some(child);
        for _ in 0..200 {
            if self
                .http
                .get(format!("{}/ServiceProviderConfig", self.base()))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("scim2-server did not answer on port {}", self.port);
    }

    /// Stops it (by PID) and starts it again on the same port: empty.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}/v2", self.port)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base()))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            r = r
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Every resource of `kind` (`Users`, `Groups`).
    pub async fn all(&self, kind: &str) -> Vec<Value> {
        let (s, v) = self
            .call(reqwest::Method::GET, &format!("/{kind}?count=1000"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        v["Resources"].as_array().cloned().unwrap_or_default()
    }

    pub async fn create_user(&self, user: Value) -> String {
        let (s, v) = self.call(reqwest::Method::POST, "/Users", Some(user)).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    pub async fn patch(&self, path: &str, ops: Value) {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        let (s, v) = self.call(reqwest::Method::PATCH, path, Some(body)).await;
        assert!(s == 200 || s == 204, "{s} {v}");
    }
}

impl Drop for ScimPeer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the proxy answers instead of passing a request on.
#[derive(Clone, Debug)]
pub enum Fault {
    /// 429 with `Retry-After: seconds`.
    TooMany(u64),
    /// This status, with a SCIM error body.
    Status(u16),
}

/// The proxy's script: for each request in turn, the fault at its
/// position (`None`: passed on); past the end, `then`.
#[derive(Default)]
struct Script {
    steps: Vec<Option<Fault>>,
    then: Option<Fault>,
    seen: usize,
    faulted: usize,
    /// When set, a request must carry exactly this `Authorization`
    /// (else 401), which is replaced with the peer's bearer token.
    require: Option<String>,
    /// When each request arrived.
    arrivals: Vec<std::time::Instant>,
}

#[derive(Clone)]
pub struct FaultProxy {
    script: Arc<Mutex<Script>>,
    pub url: String,
}

async fn forward(
    State((p, target)): State<(FaultProxy, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let required = {
        let mut s = p.script.lock().unwrap();
        s.arrivals.push(std::time::Instant::now());
        s.require.clone()
    };
    if let Some(want) = &required {
        if auth.as_deref() != Some(want.as_str()) {
            return (AxStatus::UNAUTHORIZED, [("www-authenticate", "Basic")], "").into_response();
        }
    }
    let fault = {
        let mut s = p.script.lock().unwrap();
        let i = s.seen;
        s.seen += 1;
        let f = match s.steps.get(i) {
            Some(f) => f.clone(),
            None => s.then.clone(),
        };
        s.faulted += usize::from(f.is_some());
        f
    };
    let scim_error = |status: u16| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
               "status": status.to_string(), "detail": "injected by the test proxy"})
        .to_string()
    };
    match fault {
        Some(Fault::TooMany(secs)) => {
            return (
                AxStatus::TOO_MANY_REQUESTS,
                [
                    ("retry-after", secs.to_string()),
                    ("content-type", "application/scim+json".into()),
                ],
                scim_error(429),
            )
                .into_response()
        }
        Some(Fault::Status(s)) => {
            return (
                AxStatus::from_u16(s).unwrap(),
                [("content-type", "application/scim+json")],
                scim_error(s),
            )
                .into_response()
        }
        None => {}
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = reqwest::Client::new().request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap(),
        format!("{target}{path}"),
    );
    for name in ["authorization", "content-type", "accept"] {
        if let Some(v) = headers.get(name) {
            if name == "authorization" && required.is_some() {
                // The proxy logs in to the peer itself.
                req = req.header(name, format!("Bearer {TOKEN}"));
            } else {
                req = req.header(name, v.to_str().unwrap());
            }
        }
    }
    match req.body(body.to_vec()).send().await {
        Ok(r) => {
            let status = AxStatus::from_u16(r.status().as_u16()).unwrap();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_else(|| "application/scim+json".into());
            let b = r.bytes().await.unwrap_or_default();
            (status, [("content-type", ct)], b).into_response()
        }
        // The target is down: so is the proxy's answer.
        Err(_) => (AxStatus::BAD_GATEWAY, scim_error(502)).into_response(),
    }
}

impl FaultProxy {
    /// A proxy on a fresh loopback port in front of `target` (a base URL
    /// without path, e.g. `http://127.0.0.1:8080`); its `url` keeps the
    /// path the client asks for.
    pub async fn start(target: &str) -> FaultProxy {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = FaultProxy {
            script: Default::default(),
            url: format!("http://{}", l.local_addr().unwrap()),
        };
        let router = axum::Router::new()
            .fallback(forward)
            .with_state((p.clone(), target.to_owned()));
        tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
        p
    }

    /// From the next request on: `steps` in turn, then `then`.
    pub fn script(&self, steps: Vec<Option<Fault>>, then: Option<Fault>) {
        let mut s = self.script.lock().unwrap();
        s.steps = steps;
        s.then = then;
        s.seen = 0;
    }

    /// From now on a request must authenticate with HTTP Basic as
    /// `user:password` (RFC 7617); the proxy logs in to the peer itself.
    pub fn require_basic(&self, user: &str, password: &str) {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.script.lock().unwrap().require = Some(format!("Basic {b}"));
    }

    /// The most requests that arrived within any one second.
    pub fn busiest_second(&self) -> usize {
        let a = self.script.lock().unwrap().arrivals.clone();
        (0..a.len())
            .map(|i| {
                a[i..]
                    .iter()
                    .take_while(|t| **t - a[i] < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// Requests answered with a fault so far.
    pub fn faulted(&self) -> usize {
        self.script.lock().unwrap().faulted
    }
}
