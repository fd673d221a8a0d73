//! Local HTTP peers on loopback ports: a webhook receiver that records
//! every delivery and answers from a script, and `serve` for a one-off
//! endpoint (a JWK Set, say).
use crate::helpers::TestApp;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Serves `router` on a fresh loopback port; returns the URL of `path` on it.
pub async fn serve(router: axum::Router, path: &str) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    url
}

/// What a webhook receiver got: every answered request's headers, body and
/// the status it answered, in arrival order.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<(HeaderMap, String, u16)>>>,
    /// Requests that arrived, answered or not yet.
    arrived: Arc<AtomicUsize>,
    /// Statuses to answer, in turn; then `then`.
    script: Arc<Mutex<Vec<u16>>>,
    then: u16,
    /// How long each request waits before it is answered.
    delay: Duration,
}

impl Receiver {
    /// The deliveries it accepted (answered 2xx): headers and parsed body.
    pub fn delivered(&self) -> Vec<(HeaderMap, Value)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| (200..300).contains(&g.2))
            .map(|(h, b, _)| (h.clone(), serde_json::from_str(b).unwrap()))
            .collect()
    }

    /// Every answered request's `webhook-id` and parsed body, whatever it
    /// answered.
    pub fn got(&self) -> Vec<(String, Value)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(h, b, _)| {
                (
                    h["webhook-id"].to_str().unwrap().to_owned(),
                    serde_json::from_str(b).unwrap(),
                )
            })
            .collect()
    }

    /// How many requests it has answered.
    pub fn requests(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// How many requests have arrived, answered or not.
    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> AxStatus {
    r.arrived.fetch_add(1, Ordering::SeqCst);
    if !r.delay.is_zero() {
        tokio::time::sleep(r.delay).await;
    }
    let status = {
        let mut s = r.script.lock().unwrap();
        if s.is_empty() {
            r.then
        } else {
            s.remove(0)
        }
    };
    r.got.lock().unwrap().push((headers, body, status));
    AxStatus::from_u16(status).unwrap()
}

async fn start(r: Receiver) -> (String, Receiver) {
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r.clone());
    (serve(app, "/hook").await, r)
}

/// A receiver at `<url>` answering the statuses of `script` in turn, then
/// always `then`.
pub async fn receiver(script: Vec<u16>, then: u16) -> (String, Receiver) {
    start(Receiver {
        script: Arc::new(Mutex::new(script)),
        then,
        ..Default::default()
    })
    .await
}

/// A receiver that answers every request `status`, after `delay`.
pub async fn slow_receiver(status: u16, delay: Duration) -> (String, Receiver) {
    start(Receiver {
        then: status,
        delay,
        ..Default::default()
    })
    .await
}

/// Creates a subscription (`body` as `POST /api/v1/subscriptions` takes
/// it); returns its id and signing secret.
pub async fn subscribe(app: &TestApp, body: Value) -> (String, String) {
    let r = app.admin_post("/api/v1/subscriptions", body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    (
        v["subscription"]["id"].as_str().unwrap().to_owned(),
        v["secret"].as_str().unwrap().to_owned(),
    )
}

/// A subscription of `url` to every attribute and event.
pub async fn subscribe_all(app: &TestApp, url: &str) -> (String, String) {
    subscribe(app, json!({"url": url, "attributes": ["*"]})).await
}
