//! A small, fast webhook receiver for `bench/fanout.sh`: accepts Standard
//! Webhooks deliveries on any path, optionally verifies their signatures,
//! and keeps per-path statistics for the benchmark to read.
//!
//!   webhook_receiver [ADDR]        (default 127.0.0.1:0; prints the bound address)
//!
//! Control endpoints (loopback benchmark use only):
//!   PUT    /control/secret/{name}  body: the `whsec_` secret to verify /{name} with
//!   GET    /control/stats/{name}[?n=N]  JSON: requests, distinct events, bad
//!          signatures, p50/p99 ms from the event's timestamp to its first
//!          arrival, first/last arrival (unix ms) and when the N-th distinct
//!          event arrived
//!   DELETE /control/stats/{name}   forget /{name}'s statistics
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::put;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct PathStats {
    requests: u64,
    bad_signatures: u64,
    seen: HashSet<String>,
    /// Arrival (unix ms) of each distinct event, in arrival order.
    arrivals: Vec<i64>,
    /// Event timestamp to first arrival, ms.
    latencies: Vec<f64>,
}

#[derive(Default)]
struct Inner {
    stats: HashMap<String, PathStats>,
    secrets: HashMap<String, Vec<u8>>,
}

type Shared = Arc<Mutex<Inner>>;

fn now_ms() -> (i64, f64) {
    let now = chrono::Utc::now();
    (
        now.timestamp_millis(),
        now.timestamp_micros() as f64 / 1000.0,
    )
}

fn verified(key: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{}.{}.", h("webhook-id"), h("webhook-timestamp")).as_bytes());
    mac.update(body);
    let want = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    h("webhook-signature").split(' ').any(|s| s == want)
}

async fn receive(State(s): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let (arrived, arrived_f) = now_ms();
    let name = uri.path().trim_start_matches('/').to_owned();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let event_ms = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["timestamp"].as_str().map(str::to_owned))
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.timestamp_micros() as f64 / 1000.0);
    let mut g = s.lock().unwrap();
    let ok = match g.secrets.get(&name) {
        Some(k) => verified(k, &headers, &body),
        None => true,
    };
    let st = g.stats.entry(name).or_default();
    st.requests += 1;
    if !ok {
        st.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    if st.seen.insert(id) {
        st.arrivals.push(arrived);
        if let Some(e) = event_ms {
            st.latencies.push(arrived_f - e);
        }
    }
    StatusCode::NO_CONTENT
}

async fn set_secret(State(s): State<Shared>, Path(name): Path<String>, body: String) -> StatusCode {
    let key = body
        .trim()
        .strip_prefix("whsec_")
        .and_then(|k| B64.decode(k).ok());
    match key {
        Some(k) => {
            s.lock().unwrap().secrets.insert(name, k);
            StatusCode::NO_CONTENT
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn stats(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, usize>>,
) -> Json<serde_json::Value> {
    let g = s.lock().unwrap();
    let Some(st) = g.stats.get(&name) else {
        return Json(serde_json::json!({"requests": 0, "distinct": 0}));
    };
    let mut l = st.latencies.clone();
    l.sort_by(|a, b| a.total_cmp(b));
    let nth = q
        .get("n")
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| st.arrivals.get(i));
    Json(serde_json::json!({
        "requests": st.requests,
        "distinct": st.seen.len(),
        "bad_signatures": st.bad_signatures,
        "p50_ms": pct(&l, 0.50),
        "p99_ms": pct(&l, 0.99),
        "first_ms": st.arrivals.first(),
        "last_ms": st.arrivals.last(),
        "nth_ms": nth,
    }))
}

async fn reset(State(s): State<Shared>, Path(name): Path<String>) -> StatusCode {
    s.lock().unwrap().stats.remove(&name);
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let shared: Shared = Arc::default();
    let app = Router::new()
        .route("/control/secret/{name}", put(set_secret))
        .route(
            "/control/stats/{name}",
            axum::routing::get(stats).delete(reset),
        )
        .fallback(axum::routing::post(receive))
        .with_state(shared);
    let l = tokio::net::TcpListener::bind(&addr).await.unwrap();
    println!("{}", l.local_addr().unwrap());
    axum::serve(l, app).await.unwrap();
}
